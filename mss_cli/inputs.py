"""Which files a run processes and where their outputs go: globs, folders, shards, name templates."""

from __future__ import annotations

import glob
import string
from dataclasses import dataclass
from pathlib import Path

from mss_cli.audio import is_audio_file
from mss_cli.errors import UsageError

STDIN = "-"
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


def expand_inputs(items: list[str]) -> list[str]:
    """INPUT arguments -> sorted, de-duplicated files ('-' is stdin, kept where it stands).

    Folders are searched recursively for audio files; a missing path is kept so that it fails as
    that input (exit 1) while the others are still processed.
    """
    out: list[str] = []
    for item in items:
        if item == STDIN:
            out.append(item)
        elif has_magic(item) and not Path(item).exists():
            matches = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file() or Path(p).is_dir())
            if not matches:
                raise UsageError(f"{item}: no file matches")
            out += expand_inputs(matches)
        elif Path(item).is_dir():
            out += sorted(str(p) for p in Path(item).rglob("*") if p.is_file() and is_audio_file(p))
        else:
            out.append(item)
    seen: set[str] = set()
    return [x for x in out if not (x in seen or seen.add(x))]


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
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise UsageError(f"--filename {template}: {exc}") from None
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
        src = Path("stdin" if source == STDIN else source)
        track = src.stem
        parent = src.resolve().parent.name if source != STDIN else "stdin"
        return self.out_dir / self.template.format(track=track, stem=stem, ext=self.ext, parent=parent)
