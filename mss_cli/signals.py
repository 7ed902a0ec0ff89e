"""Stopping on SIGINT (Ctrl-C), SIGTERM (``kill``, ``timeout``, SLURM) and SIGHUP (a closed terminal
or ssh session): the first signal stops
the run, files in flight are abandoned at their next chunk and their temporary outputs removed;
signals that follow are ignored while that cleanup runs, so a second Ctrl-C cannot abort it."""

from __future__ import annotations

import signal
import threading

STOP = threading.Event()
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []


class Interrupted(BaseException):
    """The run was stopped by a signal. A BaseException, like KeyboardInterrupt: no ``except
    Exception`` on the way catches it, and every writer's cleanup (``except BaseException``) runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _on_signal(signum: int, frame: object) -> None:
    if STOP.is_set():
        return  # already stopping: let the cleanup finish
    _received.append(signum)
    STOP.set()
    # Ignored at the OS level from here on: Python resets its own handlers to the default while the
    # interpreter shuts down, and a second Ctrl-C landing then would kill the process by SIGINT
    # instead of letting it exit with its code. (SIGKILL still ends a cleanup that hangs.)
    for other in SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP as above (from the main thread, where Python runs handlers);
    a new run starts unstopped."""
    STOP.clear()
    _received.clear()
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _on_signal)


def check() -> None:
    """In a worker thread: raise ``Interrupted`` once a signal has stopped the run."""
    if STOP.is_set():
        raise Interrupted(_received[0] if _received else signal.SIGINT)
