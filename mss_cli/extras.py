"""Optional dependencies: a feature that needs an extra says which one, in one line."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from mss_cli.errors import UsageError


def require(module: str, extra: str) -> ModuleType:
    """``module``, imported, or a ``UsageError`` naming the extra of mss-cli that installs it."""
    try:
        return import_module(module)
    except ImportError:
        raise UsageError(
            f"this needs the [{extra}] extra (no module {module!r}): pip install 'mss-cli[{extra}]'"
        ) from None
