"""Real recorded stems as a dataset the episode sampler reads, beside the synthetic renders.

Three sources, each imported into its own dataset folder:

- MUSDB18's 7-second previews (``import_musdb``),
- the CC0 album "Everything is Free" (``import_multitrack`` with ``everything_is_free_class``): seven
  electronic-pop songs, each part (lead and backing vocals, kicks, hats, synths, bass) its own file,
- URMP excerpts (``import_multitrack`` with ``urmp_class``): chamber pieces recorded part by part.

MUSDB18's previews (``.stem.mp4``: stream 0 the mixture, 1-4 drums,
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

# Words of "Everything is Free" part names (``1.Hydrogen_Stem_HH GLITCH_mobile.m4a``): what each
# part is. Parts named only by a section or gesture (BREAK, FILL, BUILD...) may be drums or synths;
# they are left out rather than guessed, so no drum part ever hides in "other".
EIF_DRUM_WORDS = {
    "KICK", "SNARE", "HH", "HAT", "HATS", "CLAP", "CLAPS", "DRUM", "DRUMS", "TOM", "TOMS", "CRASH",
    "CYMBALS", "BEAT", "BREAKBEAT", "TOPS", "PERC", "PRC", "K",
}  # fmt: skip
EIF_UNSURE_WORDS = {"BREAK", "FILL", "BUILD", "CRUSH", "SCRATCH", "EDM"}
EIF_TONAL_WORDS = {"PIANO", "PAD", "MELODY", "SYNTH", "KEYS", "ORGAN"}
URMP_CLASSES = {"vn": "violin", "va": "viola", "vc": "cello", "db": "bass", "fl": "flute",
                "ob": "oboe", "cl": "clarinet", "sax": "sax", "bn": "bassoon", "tpt": "trumpet",
                "hn": "french_horn", "tbn": "trombone", "tba": "tuba"}  # fmt: skip


def decode_stream(path: Path, stream: int) -> np.ndarray:
    """One audio stream of a container as int16 stereo at 44.1 kHz, (frames, 2)."""
    if shutil.which("ffmpeg") is None:
        raise UsageError("real stems are decoded with ffmpeg, which is not on PATH")
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:a:{stream}", "-ac", "2", "-ar", str(SAMPLE_RATE)]
    out = subprocess.run([*command, "-f", "s16le", "-"], capture_output=True, check=False)
    if out.returncode != 0:
        raise UsageError(f"{path}: cannot decode audio stream {stream} ({out.stderr.decode().strip()[:200]})")
    return np.frombuffer(out.stdout, np.int16).reshape(-1, 2)


def write_stems(out: Path, work: str, stems: dict[str, np.ndarray], source: str, split: str) -> None:
    """One song's stems (int16 stereo, one per class, equal lengths) and then its manifest rows,
    whose existence marks the song complete."""
    rows = []
    for cls, audio in stems.items():
        rel = Path("stems") / work / f"{cls}.npy"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(out / rel, audio, allow_pickle=False)
        rows.append(
            {
                "work": work,
                "class": cls,
                "program": -1,
                "soundfont": source,
                "split": split,
                "duration": round(len(audio) / SAMPLE_RATE, 3),
                "path": str(rel),
                "sample_rate": SAMPLE_RATE,
            }
        )
    write_work_rows(out, work, rows)


def work_id(source: str, name: str) -> str:
    """A stable id for a song from its source and file or folder name: ``musdb-artist-title``."""
    return f"{source}-" + "".join(c.lower() if c.isalnum() else "-" for c in name).strip("-")


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
        work = work_id("musdb", path.name.removesuffix(".stem.mp4"))
        if work in done:
            continue
        stems = {cls: decode_stream(path, stream) for stream, cls in MUSDB_STREAMS.items()}
        frames = min(len(a) for a in stems.values())
        write_stems(out, work, {cls: audio[:frames] for cls, audio in stems.items()}, SOURCE, split)
    rows = read_manifest(out)
    return {split: len({r["work"] for r in rows if r["split"] == split}) for split in ("real", "train")}


def everything_is_free_class(path: Path) -> str | None:
    """The class of an "Everything is Free" part from its file name, None to leave it out:
    vocals (lead and backing), drums, bass, or other (synths, effects, keys)."""
    name = path.stem.removesuffix("_mobile")
    words = set(name.split("_Stem_", 1)[-1].upper().replace("_", " ").split())
    if "Master" in name:
        return None
    if any("VOX" in w for w in words):
        return "vocals"
    if words & EIF_DRUM_WORDS:
        return "drums"
    if "BASS" in words:
        return None if words & EIF_TONAL_WORDS else "bass"  # "PAD + BASS": neither one thing nor the other
    if words & EIF_UNSURE_WORDS and not words & EIF_TONAL_WORDS:
        return None
    return "other"


def urmp_class(path: Path) -> str | None:
    """The class of a URMP part file (``AuSep_2_vc_12_Spring.wav``), None for a file that is not one part."""
    parts = path.stem.split("_")
    if parts[0] != "AuSep" or len(parts) < 3:
        return None
    return URMP_CLASSES.get(parts[2])


def import_multitrack(
    source: str | Path, out: str | Path, class_of, pattern: str, name: str, split: str = "train"
) -> dict:
    """Import songs laid out one folder each (the files matching ``pattern`` are its parts) into the
    dataset folder ``out``, all in ``split``. ``class_of(path)`` names each part's class (None leaves
    it out); the parts of one class are summed into one stem, so a target is never also heard in
    the rest of the mixture. Resumable: a song whose manifest exists is skipped."""
    source, out = Path(source), Path(out)
    songs: dict[Path, list[tuple[Path, str]]] = {}
    for path in sorted(source.rglob(pattern)):
        cls = class_of(path)
        if cls is not None:
            songs.setdefault(path.parent, []).append((path, cls))
    if not songs:
        raise UsageError(f"{source}: no {pattern} files")
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / DATASET_FILE, lambda tmp: tmp.write_text(json.dumps({"source": name})))
    done = {r["work"] for r in read_manifest(out)}
    for folder, parts in songs.items():
        work = work_id(name, folder.name)
        if work in done:
            continue
        decoded = [(decode_stream(path, 0), cls) for path, cls in parts]
        frames = max(len(a) for a, _ in decoded)
        stems: dict[str, np.ndarray] = {}
        for audio, cls in decoded:
            stem = stems.setdefault(cls, np.zeros((frames, 2), np.float32))
            stem[: len(audio)] += audio
        peak = max(float(np.abs(sum(stems.values())).max()), 1.0)
        scale = min(1.0, 32767 / peak)  # one gain for every stem: the mixture (their sum) never clips
        write_stems(
            out, work, {cls: np.round(stem * scale).astype(np.int16) for cls, stem in stems.items()}, name, split
        )
    rows = read_manifest(out)
    return {
        "works": len({r["work"] for r in rows}),
        "stems": {cls: sum(r["class"] == cls for r in rows) for cls in sorted({r["class"] for r in rows})},
    }


MULTITRACK_SOURCES = {
    # name: (files that are parts, their classes). Licences: Everything is Free CC0 1.0; URMP's
    # terms: non-commercial research (weights trained on it must say so).
    "everything-is-free": ("*_mobile.m4a", everything_is_free_class),
    "urmp": ("AuSep_*.wav", urmp_class),
}
