"""Which files a run processes and where their outputs go: globs, folders, shards, name templates."""

from __future__ import annotations

import glob
import os
import string
from dataclasses import dataclass
from pathlib import Path

from mss_cli.audio import is_audio_file
from mss_cli.errors import MssError, UsageError
from mss_cli.files import partial_prefix
from mss_cli.manifest import written_here

STDIN = "-"
NAME_MAX = 255  # bytes in one path component, and in a whole path (Linux, macOS and most file systems)
PATH_MAX = 4096
TEMPLATE_FIELDS = {"track", "stem", "ext", "parent"}


def has_magic(pattern: str) -> bool:
    return glob.has_magic(pattern)


def expand_examples(patterns: list[str], option: str) -> list[str]:
    """--like/--not values: files or (quoted) globs; a glob matching nothing is a usage error."""
    files: list[str] = []
    for pattern in patterns:
        if has_magic(pattern) and not Path(pattern).exists():
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches:
                raise UsageError(f"{option} {pattern}: no file matches")
            files += matches
        else:
            if not Path(pattern).is_file():
                raise UsageError(f"{option} {pattern}: file not found")
            files.append(pattern)
    return files


def expand_inputs(items: list[str], skip: Path | None = None, skipped: list[str] | None = None) -> list[str]:
    """INPUT arguments -> sorted, de-duplicated files ('-' is stdin, kept where it stands).

    Folders are searched recursively for audio files, leaving out hidden files (an interrupted
    writer's temporaries), the stems any earlier run wrote (its manifests) and the folder ``skip``
    (the run's own output folder); a missing path is kept so that it fails as that input (exit 1)
    while the others are still processed.
    """
    if items.count(STDIN) > 1:
        raise UsageError("- (stdin) can be given only once")
    skip = skip.resolve() if skip is not None else None

    def wanted(p: Path) -> bool:
        return (
            p.is_file()
            and is_audio_file(p)
            and not p.name.startswith(".")
            and not (skip is not None and p.resolve().is_relative_to(skip))
        )

    out: list[str] = []
    for item in items:
        if item == STDIN or not _checkable(item):
            out.append(item)  # a name the file system refuses fails as that input, the others go on
        elif has_magic(item) and not Path(item).exists():
            matches = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file() or Path(p).is_dir())
            if not matches:
                raise UsageError(f"{item}: no file matches")
            out += expand_inputs(matches, skip, skipped)
        elif Path(item).is_dir():
            if skip is not None and Path(item).resolve().is_relative_to(skip):
                raise UsageError(
                    f"{item}: it is inside the output folder, whose files are never inputs: give another -o"
                )
            if not os.access(item, os.R_OK | os.X_OK):
                raise UsageError(f"{item}: cannot read this folder (permission denied)")
            out += sorted(_files_under(Path(item), wanted, skipped if skipped is not None else []))
        else:
            out.append(item)
    # One file named several ways (in/a.wav, ./in/a.wav, in/../in/a.wav, or through a symlink loop
    # that a ** glob walks round) is one input, separated once under the first of its names.
    seen: set[str] = set()
    return [x for x in out if not ((key := x if x == STDIN else os.path.realpath(x)) in seen or seen.add(key))]


def _files_under(folder: Path, wanted, skipped: list[str]) -> list[str]:
    """Every wanted file under ``folder``, following folder links (each real folder walked once, so
    a link loop ends), except the stems an earlier run wrote (``manifest``); a subfolder that cannot
    be read is named in ``skipped`` with why."""
    found: list[str] = []
    seen: set[str] = set()
    pending = [folder]
    while pending:
        current = pending.pop()
        real = os.path.realpath(current)
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(current) as entries:
                listed = [(Path(e.path), e.is_dir()) for e in entries]
        except OSError as exc:
            skipped.append(f"{current} ({exc.strerror or exc})")
            continue
        outputs = written_here(current)
        for path, is_dir in listed:
            if is_dir:
                pending.append(path)
            elif path.name not in outputs and wanted(path):
                found.append(str(path))
    return found


def _checkable(item: str) -> bool:
    """Whether the file system can say if ``item`` exists (not for a name longer than it takes)."""
    try:
        Path(item).exists()
    except OSError:
        return False
    return True


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """'I/N' with 1 <= I <= N."""
    if value is None:
        return None
    try:
        index, count = (int(v) for v in value.split("/"))
    except ValueError:
        raise UsageError(f"--shard {value}: expected I/N, e.g. 2/8") from None
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {value}: need 1 <= I <= N")
    return index, count


def shard(items: list[str], spec: tuple[int, int] | None) -> list[str]:
    """The I-th of N contiguous, near-equal slices of the sorted list (stable across machines)."""
    if spec is None:
        return items
    index, count = spec
    ordered = sorted(items)
    size, extra = divmod(len(ordered), count)
    start = (index - 1) * size + min(index - 1, extra)
    return ordered[start : start + size + (1 if index - 1 < extra else 0)]


def check_template(template: str) -> None:
    """A --filename template: only the known fields, bare (no conversion or format spec), {stem} in it."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise UsageError(f"--filename {template}: {exc}") from None
    names = {f for f, _, _ in fields}
    if any(spec or conv for _, spec, conv in fields):
        raise UsageError(f"--filename {template}: fields take no format spec or conversion (write {{stem}})")
    unknown = names - TEMPLATE_FIELDS
    if unknown:
        raise UsageError(
            f"--filename {template}: unknown field {{{sorted(unknown)[0]}}} "
            "(use {track}, {stem}, {ext}, {parent})"
        )
    if "stem" not in names:
        raise UsageError(f"--filename {template}: must contain {{stem}} (stems would overwrite each other)")


@dataclass(frozen=True)
class Naming:
    out_dir: Path
    template: str
    ext: str

    def path(self, source: str, stem: str) -> Path:
        """Where ``source``'s ``stem`` goes; an error for the file if that would be outside ``out_dir``
        (a file named ``...wav`` has the track name ``..``; a template may hold ``../``)."""
        src = Path("stdin" if source == STDIN else source)
        track = safe_name(src.stem)
        parent = safe_name(src.resolve().parent.name) if source != STDIN else "stdin"
        path = self.out_dir / self.template.format(track=track, stem=stem, ext=self.ext, parent=parent)
        resolved = path.resolve()
        # the stem is written first under a longer hidden name: partial_prefix, mkstemp's 8
        # characters and ".partial.EXT" (AtomicWriter); that name must fit too
        temporary = f"{partial_prefix(path.stem)}{'x' * 8}.partial.{self.ext}"
        longest = max(len(os.fsencode(part)) for part in (*path.parts, temporary))
        if longest > NAME_MAX or len(os.fsencode(str(resolved))) > PATH_MAX:
            raise MssError(f"{source}: its output name is too long for the file system ({path})")
        if not resolved.is_relative_to(self.out_dir.resolve()):
            raise MssError(f"{source}: its output {path} would be outside the output folder {self.out_dir}")
        return path


def safe_name(name: str) -> str:
    """A file name as a path component: '.', '..' and '' (no name) become '_'."""
    return "_" if name in ("", ".", "..") else name
