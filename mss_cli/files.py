"""How mss writes files (stems, profiles, weights, checkpoints, logs, dataset manifests).

Every output is written under a temporary name and renamed when complete, so an interrupted write
never leaves a truncated file under the real name. The temporary file's creator decides its mode
(``mkstemp`` and safetensors' writer both make it private, 0600), so the mode is set explicitly:
what any new file would get under the umask, or, when a file is replaced (``--overwrite``), the
permissions it had, as with ``cp`` or a shell redirection onto it.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from mss_cli.errors import MssError, UsageError


def _current_umask() -> int:
    """The process umask (read once, at import, while nothing else runs: reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


NEW_FILE_MODE = 0o666 & ~_current_umask()


def output_mode(path: Path) -> int:
    """The mode the finished file at ``path`` should have."""
    return stat.S_IMODE(path.stat().st_mode) if path.exists() else NEW_FILE_MODE


def refuse_to_replace(path: Path, what: str, usage: bool = False) -> None:
    """The one refusal, in one wording, to replace an existing ``what`` (output, profile, weights
    file, ...) that --overwrite did not allow. ``usage``: checked from the command line before any
    work, so the command as given cannot run (exit 2); else one failed output among others (exit 1)."""
    if path.exists():
        raise (UsageError if usage else MssError)(f"{path}: {what} exists (use --overwrite to replace it)")


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write`` on a hidden temporary file beside ``path``, give it the output mode, then
    rename it to ``path``; the temporary file is removed if anything fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        os.chmod(tmp, output_mode(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def partial_prefix(stem: str) -> str:
    """The start of a stem's temporary name: hidden, and naming the run that writes it (host and
    pid), so that a later run can remove what a killed one left (``remove_stale_partials``)."""
    return f".{stem}.mss-{_host()}-{os.getpid()}."


PARTIAL = re.compile(r"^\..*\.mss-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\..*\.partial\.[a-z0-9]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:32] or "host"


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the temporary stems in ``folder`` that a run on this machine left when it was killed
    (SIGKILL, a crash, power loss: no cleanup ran); a live run's, and other machines', stay."""
    removed = []
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return removed
    for name in names:
        m = PARTIAL.match(name)
        if not m or m["host"] != _host() or _alive(int(m["pid"])):
            continue
        try:
            (folder / name).unlink()
            removed.append(folder / name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's live process, or not a pid we can ask about: leave it
    return True
