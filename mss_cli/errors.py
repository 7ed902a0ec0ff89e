"""Errors the user can act on. The CLI prints them as one line and maps them to exit codes."""

from __future__ import annotations


class MssError(Exception):
    """A failure with a one-line, user-facing message (no traceback is ever shown for it)."""

    exit_code = 1


class UsageError(MssError):
    """Bad command-line usage: exit code 2, like Typer/Click usage errors."""

    exit_code = 2


def one_line(text: str) -> str:
    """``text`` with control characters escaped (a file name may hold a newline or an escape code,
    which would break a one-line message or drive the terminal)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
