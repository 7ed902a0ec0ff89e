"""mss: few-shot music source separation (Wang et al., ICASSP 2022) as a command-line tool.

Everything the CLI does is available here, through one object; names are imported lazily so
that ``import mss_cli`` (and ``mss --help``) stays fast and does not import torch::

    from mss_cli import Separator
    separator = Separator()
    separator.add(like=["guitar_1.wav", "guitar_2.wav"], not_=["vocals.wav"])
    stems = separator.separate(audio, 44100)  # {"guitar": ..., "no_guitar": ...}

The pieces it is made of (``Target``, ``separate_file``, ``condition``, ...) stay public for
callers that hold their own models.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Separator": "mss_cli.api",
    "TargetSpec": "mss_cli.targets",
    "Target": "mss_cli.targets",
    "load_model": "mss_cli.weights",
    "shipped_weights": "mss_cli.weights",
    "condition": "mss_cli.conditioning",
    "class_condition": "mss_cli.conditioning",
    "class_partner": "mss_cli.conditioning",
    "load_profile": "mss_cli.conditioning",
    "save_profile": "mss_cli.conditioning",
    "separate_file": "mss_cli.separate",
    "separate_array": "mss_cli.separate",
    "SeparationOptions": "mss_cli.separate",
    "pick_device": "mss_cli.device",
    "MssError": "mss_cli.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mss_cli' has no attribute {name!r}")
