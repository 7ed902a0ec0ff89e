"""Separating many inputs: where each input's stems go (planned before any model loads, so
``--skip-existing`` and name clashes cost nothing), how many files run at once, and the worker
pool that separates them and reports each as it finishes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mss_cli import signals, stdio
from mss_cli.errors import MssError
from mss_cli.inputs import STDIN, Naming

if TYPE_CHECKING:
    from mss_cli.api import Separator
    from mss_cli.separate import Written

# Peak memory of one file in flight on the CPU is under 1 GB (separate.ROW_SECONDS); parallel jobs
# get at most one per this much available memory.
JOB_MEMORY = 1 << 30


class Plan(NamedTuple):
    """One input of a run: the stems to write for it (name -> path, "-": stdout), or why it cannot
    be separated."""

    source: str
    outputs: dict[str, Path | str] | None
    problem: str | None = None


@dataclass
class Batch:
    """A run's plans, and how many inputs ``skip_existing`` left out."""

    plans: list[Plan] = field(default_factory=list)
    skipped: int = 0


def plan_batch(files: Sequence[str], stems: Sequence[str], naming: Naming | None, skip_existing: bool) -> Batch:
    """Where each input's ``stems`` go (``naming``; None: the first stem to stdout). An input fails on
    its own (``Plan.problem``) where an output would replace an input or another input's output,
    or where the file system cannot take its name."""
    batch = Batch()
    if naming is None:
        batch.plans = [Plan(f, {stems[0]: "-"}) for f in files]
        return batch
    claimed: dict[Path, str] = {}
    sources = {Path(f).resolve(): f for f in files if f != STDIN}
    for f in files:
        try:
            paths = {stem: naming.path(f, stem) for stem in stems}
        except MssError as exc:
            batch.plans.append(Plan(f, None, str(exc)))
            continue
        resolved = [p.resolve() for p in paths.values()]
        if replaced := _owner(sources, resolved):
            problem = f"{f}: its output would replace the input {replaced} (change --filename or -o)"
            batch.plans.append(Plan(f, None, problem))
            continue
        if skip_existing and all(p.exists() for p in paths.values()):
            batch.skipped += 1
            continue
        if clash := _owner(claimed, resolved):
            problem = f"{f}: its output name collides with that of {clash} (add {{parent}} to --filename)"
            batch.plans.append(Plan(f, None, problem))
            continue
        claimed.update(dict.fromkeys(resolved, f))
        batch.plans.append(Plan(f, paths))
    return batch


def _owner(owners: dict[Path, str], paths: list[Path]) -> str | None:
    """The input that already owns one of ``paths`` (as that input's file, or one of its outputs)."""
    return next((owners[p] for p in paths if p in owners), None)


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _cpu_ticks() -> tuple[int, int] | None:
    """The whole machine's (busy, all) CPU time in clock ticks since boot, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy, busy + idle


class IdleMeter:
    """How many cores other processes leave idle, measured over a stretch of this process's own
    work (its start-up: importing torch, loading the model), with its own CPU time taken out. The
    load average would not do: it counts the previous run of a shell loop for a minute after."""

    def __init__(self) -> None:
        self.start = (_cpu_ticks(), time.monotonic(), time.process_time())

    def idle_cores(self) -> float | None:
        """Cores not busy with other processes since this meter was made; None where unknown."""
        ticks, wall, own = self.start
        now = _cpu_ticks()
        seconds = time.monotonic() - wall
        if ticks is None or now is None or seconds < 0.2:
            return None
        per_second = os.sysconf("SC_CLK_TCK")
        others = max(0.0, ((now[0] - ticks[0]) / per_second - (time.process_time() - own)) / seconds)
        return cpu_count() - others


def default_threads(meter: IdleMeter | None = None) -> int:
    """The CPU threads a run takes by default: its cores less those other processes keep busy
    (``IdleMeter``), at least 1. OpenMP threads wait for each other at every layer, so a thread on
    a core that is busy elsewhere stalls them all (`experiments/threads-and-jobs.md`)."""
    cores = cpu_count()
    idle = meter.idle_cores() if meter is not None else None
    return cores if idle is None else max(1, min(cores, int(idle + 0.5)))


def available_memory() -> int | None:
    """Bytes of memory available to new work (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_jobs(files: int, threads: int, cpu: bool) -> int:
    """Files separated at once by default: on the CPU one per thread (a file's chunks run one
    after another, and single-threaded layers scale better across files than across threads),
    within the memory available; on a GPU one (it is busy with one file's batches)."""
    if not cpu:
        return 1
    memory = available_memory()
    by_memory = max(1, memory // JOB_MEMORY) if memory is not None else threads
    return max(1, min(files, threads, by_memory))


Reporter = Callable[[str], None]


def run_batch(
    separator: Separator,
    plans: Sequence[Plan],
    write: dict,
    jobs: int = 1,
    progress=None,
    on_error: Reporter | None = None,
    on_written: Callable[[Written], None] | None = None,
    finished: list[str] | None = None,
) -> list[str]:
    """Separate every planned input (``jobs`` at once, in threads), reporting each failure to
    ``on_error`` and each written stem to ``on_written`` as files finish; returns the failures'
    messages, and appends each separated input to ``finished``. ``write``: ``separate_file``'s
    format arguments. A failure never stops the other files; a signal stops them all at their
    next chunk (``signals``), as does stdout going away."""
    from mss_cli.audio import spooled_stdin
    from mss_cli.manifest import record
    from mss_cli.progress import make_progress

    failures: list[str] = []
    progress = progress or make_progress(enabled=False, total_files=len(plans))
    finished = finished if finished is not None else []

    def fail(message: str) -> None:
        failures.append(message)
        if on_error:
            on_error(message)

    def one(plan: Plan) -> None:
        signals.check()  # files still queued when a signal came are not started
        source, outputs, problem = plan
        if problem:
            fail(problem)
            return
        task = progress.file_task(source)

        def advance() -> None:
            signals.check()  # a worker thread stops at its next chunk once a signal stopped the run
            task.advance()

        def run(path: str | Path, label: str | None) -> list[Written]:
            return separator.separate_file(path, outputs, label=label, on_chunk=advance, on_start=task.start, **write)

        try:
            if source == STDIN:
                with spooled_stdin() as tmp:
                    written = run(tmp, "-")
            else:
                written = run(source, None)
        except stdio.OutputClosed:
            raise  # not this file's failure: the run's stdout is gone, so the run stops
        except MssError as exc:
            fail(str(exc))
            return
        except Exception as exc:  # a bug must not stop the other files, nor print a traceback
            if os.environ.get("MSS_DEBUG"):
                raise
            fail(f"{source}: internal error ({type(exc).__name__}: {exc}); MSS_DEBUG=1 shows the traceback")
            return
        finally:
            task.finish()
        record([(w.stem, Path(w.path)) for w in written if w.path != "-"], source)
        finished.append(source)
        for w in written:
            if on_written:
                on_written(w)

    with progress:
        if jobs == 1:
            for plan in plans:
                one(plan)
        else:
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(one, plans))
    return failures
