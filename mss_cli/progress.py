"""Progress on stderr (rich), only when stderr is a terminal: files done, and chunks per file."""

from __future__ import annotations

from pathlib import Path

from mss_cli.errors import one_line


class FileTask:
    """Per-file chunk counter; a no-op when progress display is off."""

    def __init__(self, progress, label: str, files_task) -> None:
        self.progress, self.label, self.files_task = progress, label, files_task
        self.task = None

    def start(self, chunks: int) -> None:
        if self.progress:
            self.task = self.progress.add_task(self.label, total=chunks)

    def advance(self) -> None:
        if self.task is not None:
            self.progress.advance(self.task)

    def finish(self) -> None:
        if self.progress:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.progress.advance(self.files_task)


class RunProgress:
    def __init__(self, enabled: bool, total_files: int) -> None:
        self.progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}", markup=False),  # file names are not rich markup
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.files = self.progress.add_task("files", total=total_files)

    def file_task(self, source: str) -> FileTask:
        # a file name's control characters are escaped: they would drive the terminal
        return FileTask(self.progress, one_line(Path(source).name)[:40], getattr(self, "files", None))

    def __enter__(self) -> RunProgress:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()


def make_progress(enabled: bool, total_files: int) -> RunProgress:
    return RunProgress(enabled, total_files)
