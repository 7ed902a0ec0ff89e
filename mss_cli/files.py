"""The permissions of the files mss writes (stems, profiles, weights).

Every output is written under a temporary name and renamed when complete. The temporary file's
creator decides its mode (``mkstemp`` and safetensors' writer both make it private, 0600), so the
mode is set explicitly: what any new file would get under the umask, or, when a file is replaced
(``--overwrite``), the permissions it had, as with ``cp`` or a shell redirection onto it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def _current_umask() -> int:
    """The process umask (read once, at import, while nothing else runs: reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


NEW_FILE_MODE = 0o666 & ~_current_umask()


def output_mode(path: Path) -> int:
    """The mode the finished file at ``path`` should have."""
    return stat.S_IMODE(path.stat().st_mode) if path.exists() else NEW_FILE_MODE
