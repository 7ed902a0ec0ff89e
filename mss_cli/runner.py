"""Running a Typer app as a Unix command: one-line errors on stderr and the documented exit codes,
whatever goes wrong. Shared by ``mss`` and ``mss-research``.

Exit codes: 0 all done, 1 some input failed, 2 usage errors, 130/143/129 interrupted (SIGINT,
SIGTERM, SIGHUP), 141 the reader of stdout went away (``| head``).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import Callable

import typer

from mss_cli import signals, stdio
from mss_cli.errors import MssError, one_line

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def say(message: str) -> None:
    """Status on stderr (stdout carries only results)."""
    print(message, file=sys.stderr, flush=True)


def error(message: str, prog: str = "mss") -> None:
    say(f"{prog}: error: {one_line(message)}")


def recorded_command(prog: str) -> str:
    """This run's command line as a shell would re-run it (each argument quoted where it must be)."""
    return shlex.join([prog, *sys.argv[1:]])


def keep_libraries_off_stderr() -> None:
    """Decoders inside libsndfile (libmpg123) print notes and warnings straight to file descriptor 2
    ("Warning: Xing stream size off ..."), which would break one line per error. The command's own
    messages go to a duplicate of the real stderr, and descriptor 2 to /dev/null. Not where stderr
    is not the process's own (tests capturing it) or with MSS_DEBUG=1 (everything is shown)."""
    if sys.stderr is not sys.__stderr__ or os.environ.get("MSS_DEBUG"):
        return
    try:
        real = os.dup(2)
        quiet = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    sys.stderr.flush()
    sys.stderr = open(real, "w", buffering=1, encoding=sys.__stderr__.encoding, errors="backslashreplace")  # noqa: SIM115
    os.dup2(quiet, 2)
    os.close(quiet)


def run_app(
    typer_app: typer.Typer, prog: str, args: list[str], usage_hint: Callable[[str, list[str]], str] | None = None
) -> None:
    """Run a command line of ``typer_app`` and exit with its code. ``usage_hint``: a Click usage
    error's message and the arguments -> a hint to add to it ('' for none)."""
    signals.install()
    stdio.guard_stdout()
    try:
        code = typer_app(args=args, prog_name=prog, standalone_mode=False)
    except stdio.OutputClosed as exc:
        stdio.silence_stdout()
        if not exc.reader_gone:  # `| head` taking what it wants is no error worth a line
            error(str(exc), prog)
        sys.exit(exc.exit_code)
    except signals.Interrupted as exc:
        error({signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}.get(exc.signum, "interrupted"), prog)
        sys.exit(exc.exit_code)
    except MssError as exc:
        error(str(exc), prog)
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if "\n" in message:  # the help text itself (the command alone): on stdout, as --help prints it
            print(message)
        elif message.strip():  # (an empty one is 'no arguments', whose help is printed already)
            ctx = getattr(exc, "ctx", None)
            hint = (usage_hint(message, args) if usage_hint else "") or (
                f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            )
            error(message + hint, prog)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        error("interrupted", prog)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("MSS_DEBUG"):
            raise
        error(f"internal error ({type(exc).__name__}: {exc}); MSS_DEBUG=1 shows the traceback", prog)
        sys.exit(1)
    if code == 130:  # Typer turns Ctrl-C into exit code 130 without a word
        error("interrupted", prog)
    sys.exit(code if isinstance(code, int) else 0)
