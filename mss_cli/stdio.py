"""stdout as a pipeline sees it: closed, full, or cut short by the reader (``| head``).

Python reports these as a BrokenPipeError or OSError from whichever print or write meets them,
which Typer turns into a silent exit 1, and at exit its final flush of stdout prints "Exception
ignored" lines. ``guard_stdout`` wraps stdout so that every write failure is an ``OutputClosed``
(an ``MssError``: one line, its own exit code), and ``silence_stdout`` points descriptor 1 at
/dev/null once a run stops on one, so that nothing more is attempted at exit.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

from mss_cli.errors import MssError

SIGPIPE_EXIT = 141  # what a shell reports for a process killed by SIGPIPE, as `| head` leaves many


class OutputClosed(MssError):
    """stdout cannot take what mss writes: the reader went away (exit 141) or the device failed (1)."""

    def __init__(self, exc: OSError | None) -> None:
        self.reader_gone = exc is not None and (isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE)
        reason = "it is closed" if exc is None else "the reader closed the pipe" if self.reader_gone else exc.strerror
        super().__init__(f"cannot write to stdout ({reason or exc})")
        self.exit_code = SIGPIPE_EXIT if self.reader_gone else 1


class _Guarded:
    """A stream whose write and flush failures become ``OutputClosed``; all else is the stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: Any) -> int:
        if self._stream is None:
            raise OutputClosed(None)
        try:
            return self._stream.write(data)
        except OSError as exc:
            raise OutputClosed(exc) from None

    def flush(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputClosed(exc) from None

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    @property
    def buffer(self) -> _Guarded:
        return _Guarded(None if self._stream is None else self._stream.buffer)

    def __getattr__(self, name: str) -> Any:
        if self._stream is None:
            raise OutputClosed(None)
        return getattr(self._stream, name)


def guard_stdout() -> None:
    """Wrap ``sys.stdout`` (None where descriptor 1 was closed when Python started)."""
    if not isinstance(sys.stdout, _Guarded):
        sys.stdout = _Guarded(sys.stdout)  # type: ignore[assignment]


def silence_stdout() -> None:
    """After stdout failed: discard what is still buffered and anything written until exit (the
    process's descriptor 1 only where stdout is the process's own, not a test's capture)."""
    own = isinstance(sys.stdout, _Guarded) and sys.stdout._stream is sys.__stdout__ and sys.__stdout__ is not None
    if own:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.close(null)
        except OSError:
            pass
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)
