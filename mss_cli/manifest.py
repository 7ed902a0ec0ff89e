"""The small record mss leaves in every folder it writes stems into, so its outputs are never taken
for inputs: a folder scan skips the files a manifest lists, whichever ``-o`` wrote them.

One JSON line per written file, appended (an append of one short line is atomic, so parallel
jobs and shards writing into one folder need no lock); an unreadable or damaged line is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

MANIFEST = ".mss-manifest.jsonl"


def record(outputs: Iterable[tuple[str, Path]], source: str) -> None:
    """Add each (stem, path) written for ``source`` to its folder's manifest (best effort: a folder
    that took the stem but refuses the manifest costs only the skipping)."""
    from mss_cli import __version__

    for stem, path in outputs:
        line = json.dumps({"file": path.name, "stem": stem, "input": source, "mss": __version__}) + "\n"
        try:
            fd = os.open(path.parent / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line.encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)
        except OSError:
            pass


def written_here(folder: Path) -> set[str]:
    """The names of the files mss wrote into ``folder`` (none when it has no manifest)."""
    try:
        text = (folder / MANIFEST).read_text("utf-8", "surrogateescape")
    except OSError:
        return set()
    names = set()
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            names.add(entry["file"])
    return names
