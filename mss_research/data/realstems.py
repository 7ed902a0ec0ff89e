"""Real recorded stems as a dataset the episode sampler reads, beside the synthetic renders.

The first source is MUSDB18's 7-second previews (``.stem.mp4``: stream 0 the mixture, 1-4 drums,
bass, other and vocals, AAC-coded; academic licence, many tracks CC BY-NC-SA). The stems are
decoded (ffmpeg) to the synthetic data's layout, int16 stereo at 44.1 kHz, and a track's mixture is
the sum of its stems, as in the renders. "other" is a stem of whatever else plays: it sounds in
mixtures and serves as a negative, but is never a target (it is not one instrument).

Songs are split deterministically from the seed: ``held_out`` songs go to the ``real`` split, which
evaluation uses and training never reads; the rest to ``train``. The MUSDB18 test split is reserved
for a final report: import it whole into its own folder (``split="real"``, ``held_out=None``) and
never train or choose on it.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np

from mss_cli.audio import SAMPLE_RATE
from mss_cli.errors import UsageError
from mss_cli.files import write_atomically
from mss_research.data.render import DATASET_FILE, read_manifest, write_work_rows

MUSDB_STREAMS = {1: "drums", 2: "bass", 3: "other", 4: "vocals"}
# Classes a real stem can be the target of (``other`` is a blend, never a target).
REAL_TARGETS = ("drums", "bass", "vocals")
SOURCE = "musdb18-preview"


def decode_stream(path: Path, stream: int) -> np.ndarray:
    """One audio stream of a container as int16 stereo at 44.1 kHz, (frames, 2)."""
    if shutil.which("ffmpeg") is None:
        raise UsageError("real stems are decoded with ffmpeg, which is not on PATH")
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:a:{stream}", "-ac", "2", "-ar", str(SAMPLE_RATE)]
    out = subprocess.run([*command, "-f", "s16le", "-"], capture_output=True, check=False)
    if out.returncode != 0:
        raise UsageError(f"{path}: cannot decode audio stream {stream} ({out.stderr.decode().strip()[:200]})")
    return np.frombuffer(out.stdout, np.int16).reshape(-1, 2)


def work_id(path: Path) -> str:
    """A stable id from the song's file name: ``musdb-artist-title``."""
    name = path.name.removesuffix(".stem.mp4")
    return "musdb-" + "".join(c.lower() if c.isalnum() else "-" for c in name).strip("-")


def splits(songs: list[Path], held_out: int | None, seed: int) -> dict[Path, str]:
    """``held_out`` songs (all of them when None) in the ``real`` split, the rest in ``train``."""
    order = sorted(songs, key=lambda p: p.name)
    random.Random(seed).shuffle(order)
    count = len(order) if held_out is None else held_out
    return {p: "real" if i < count else "train" for i, p in enumerate(order)}


def import_musdb(source: str | Path, out: str | Path, held_out: int | None = 24, seed: int = 0) -> dict:
    """Decode every ``*.stem.mp4`` under ``source`` into the dataset folder ``out`` (resumable: a
    song whose manifest exists is skipped); returns a summary of the splits."""
    source, out = Path(source), Path(out)
    songs = sorted(source.rglob("*.stem.mp4"))
    if not songs:
        raise UsageError(f"{source}: no .stem.mp4 files")
    if held_out is not None and not 0 <= held_out <= len(songs):
        raise UsageError(f"--held-out {held_out}: between 0 and the {len(songs)} songs found")
    out.mkdir(parents=True, exist_ok=True)
    record = {"source": SOURCE, "held_out": held_out, "seed": seed}
    write_atomically(out / DATASET_FILE, lambda tmp: tmp.write_text(json.dumps(record)))
    done = {r["work"] for r in read_manifest(out)}
    for path, split in splits(songs, held_out, seed).items():
        work = work_id(path)
        if work in done:
            continue
        stems = {cls: decode_stream(path, stream) for stream, cls in MUSDB_STREAMS.items()}
        frames = min(len(a) for a in stems.values())
        rows = []
        for cls, audio in stems.items():
            rel = Path("stems") / work / f"{cls}.npy"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(out / rel, audio[:frames], allow_pickle=False)  # complete once the work's rows are written
            rows.append(
                {
                    "work": work,
                    "class": cls,
                    "program": -1,
                    "soundfont": SOURCE,
                    "split": split,
                    "duration": round(frames / SAMPLE_RATE, 3),
                    "path": str(rel),
                    "sample_rate": SAMPLE_RATE,
                }
            )
        write_work_rows(out, work, rows)
    rows = read_manifest(out)
    return {split: len({r["work"] for r in rows if r["split"] == split}) for split in ("real", "train")}
