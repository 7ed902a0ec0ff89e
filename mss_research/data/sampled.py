"""Works played on recorded-sample instruments, by players in rooms, inside real productions.

Each work is a generated arrangement (``scores.pop_arrangement``) whose parts are played, where a
library has the class, on a recorded-sample instrument (``instruments``), and otherwise on the
training soundfonts. What makes the renders sound like recordings:

- **Players**: a dynamic level per work and a phrase-long swell on the velocities, humanised timing
  and velocity, legato or staccato note lengths on melodic parts, vibrato on held notes of bowed
  and blown instruments.
- **Rooms and microphones**: each part through its own room (a synthetic impulse response or an
  algorithmic reverb), a microphone's colour (spectral tilt, resonances) and a pan; electric guitars
  through amplifier and cabinet chains (clean or distorted), any part through the production
  chains of ``production``.
- **Levels**: parts balanced by role (drums and bass up front, pads behind), and a bus compressor
  whose gain, computed from the mix, is applied to every stem alike, so the stems still sum to the
  mixture.
- **Real productions**: with ``backing``, a work's drums and bass (and often vocals) are a real
  song's recorded stems (MUSDB18 previews, ``mss-research data real``), and the rendered parts play
  over them.

``held_out=True`` renders the evaluation's works: only the held-out libraries, over the backing
dataset's held-out songs, all in the ``real`` split. Otherwise works use the training libraries and
the backing's training songs, split train/val as the soundfont renders are. Resumable and
deterministic from ``(seed, work_id)`` like ``render.build``, up to small timing-dependent
differences while sfizz streams sample files into a fresh synth (seen in tests under load).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, replace
from functools import cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from mss_cli.audio import SAMPLE_RATE
from mss_cli.errors import UsageError
from mss_cli.files import write_atomically
from mss_research.data.instruments import Library, Players, available
from mss_research.data.production import chain
from mss_research.data.render import (
    DATASET_FILE,
    PartPlayer,
    colour,
    humanise,
    presets_for,
    read_manifest,
    save_work,
    scale_jointly,
    work_rows_path,
)
from mss_research.data.scores import Note, Stem, pop_arrangement
from mss_research.data.taxonomy import load_taxonomy

LIBRARY_SHARE = 0.85  # how often a part whose class has a library is played on it
FOCUS = 0.7  # how often a work draws its parts only from the classes that have libraries
BACKED = 0.5  # how often a training work plays over a real song's drums and bass
ROLE_DB = {"drums": (-4, 0), "bass": (-6, -2), "chords": (-13, -4), "lead": (-7, -1), "line": (-14, -6)}
BOWED_OR_BLOWN = {"strings", "reed", "woodwind", "brass"}


@dataclass(frozen=True)
class SampledSpec:
    work_id: str
    split: str  # train / val, or real for the held-out works
    seed: int
    libraries: str  # the libraries root
    backing: str  # a real-stem dataset folder, or ""


# --- players -------------------------------------------------------------------------------------


def expressive(notes: list[Note], role: str, rng: random.Random) -> list[Note]:
    """A player's reading of the notes: dynamics from a level and phrase swells, articulation."""
    level = rng.uniform(-25, 12)
    period = rng.uniform(4, 12)  # seconds per swell
    phase = rng.uniform(0, 2 * np.pi)
    swell = rng.uniform(5, 18)
    notes = sorted(humanise(notes, rng, timing=rng.uniform(0.004, 0.02), velocity=8), key=lambda n: n.start)
    style = rng.choice(["legato", "staccato", "as written", "as written"]) if role in ("lead", "line") else "as written"
    out = []
    for i, n in enumerate(notes):
        velocity = n.velocity + level + swell * np.sin(2 * np.pi * n.start / period + phase)
        duration = n.duration
        if style == "legato":
            following = [m.start for m in notes[i + 1 : i + 4] if m.start > n.start + 0.05]
            duration = max(duration, following[0] - n.start + 0.03) if following else duration
        elif style == "staccato":
            duration = max(0.06, duration * rng.uniform(0.3, 0.5))
        out.append(Note(n.start, duration, n.pitch, int(np.clip(velocity, 8, 127))))
    return out


def fit_keys(notes: list[Note], keys: list[int]) -> list[Note]:
    """Move notes by octaves into the keys a program plays (a part's range may exceed a library's)."""
    if not keys:
        return []
    low, high = min(keys), max(keys)
    moved = []
    for n in notes:
        pitch = n.pitch
        while pitch < low and pitch + 12 <= high:
            pitch += 12
        while pitch > high and pitch - 12 >= low:
            pitch -= 12
        if low <= pitch <= high:
            moved.append(Note(n.start, n.duration, pitch, n.velocity))
    return moved


# --- rooms, microphones, levels ------------------------------------------------------------------


def room(audio: np.ndarray, rng: random.Random) -> np.ndarray:
    """A room for a part: the synthetic room and microphone tilt of ``render.colour`` (with a pan),
    and sometimes an algorithmic reverb on top (a hall or plate send)."""
    out = colour(audio, rng)
    if rng.random() < 0.35:
        import pedalboard as pb

        verb = pb.Reverb(
            room_size=rng.uniform(0.3, 0.95), damping=rng.uniform(0.2, 0.8), wet_level=rng.uniform(0.05, 0.3)
        )
        out = verb(out.T.copy(), SAMPLE_RATE).T.astype(np.float32)
    return out


def produced(audio: np.ndarray, cls: str, rng: random.Random) -> np.ndarray:
    """A stereo part through a production chain for its class (amps and cabinets for electric
    guitars, EQ, compression, modulation), at its own RMS."""
    board = chain(cls, rng)
    if not len(board):
        return audio
    out = board(audio.T.copy(), SAMPLE_RATE).T[: len(audio)].astype(np.float32)
    before, after = float(np.sqrt(np.mean(audio**2))), float(np.sqrt(np.mean(out**2)))
    return out * np.float32(before / after) if after > 1e-9 else audio


def bus_compress(stems: list[np.ndarray], rng: random.Random) -> list[np.ndarray]:
    """A mix-bus compressor: one gain curve from the mix's level, applied to every stem, so that
    the stems still sum exactly to the (compressed) mixture."""
    mix = np.sum(stems, axis=0).mean(axis=1)
    hop = 512
    frames = len(mix) // hop + 1
    padded = np.pad(mix, (0, frames * hop - len(mix)))
    level = np.sqrt((padded.reshape(frames, hop) ** 2).mean(axis=1) + 1e-12)
    db = 20 * np.log10(level)
    threshold = np.percentile(db, 80) - rng.uniform(2, 8)
    ratio = rng.uniform(2, 5)
    reduction = np.maximum(0.0, db - threshold) * (1 - 1 / ratio)
    smooth = np.zeros_like(reduction)
    attack, release = 0.5, 0.92  # per 512-frame hop: fast attack, slower release
    for i, r in enumerate(reduction):
        prev = smooth[i - 1] if i else 0.0
        smooth[i] = prev + (r - prev) * (attack if r > prev else 1 - release)
    gain = 10 ** (-np.repeat(smooth, hop)[: len(mix)] / 20)
    return [(s * gain[:, None]).astype(np.float32) for s in stems]


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


# --- backings ------------------------------------------------------------------------------------


def backing_songs(folder: str, split: str) -> dict[str, dict[str, str]]:
    """song -> class -> stem path of a real-stem dataset's songs in ``split`` (its drums, bass and
    vocals: the "other" stem may hold any instrument, a target's among them, so it is left out)."""
    songs: dict[str, dict[str, str]] = {}
    for r in read_manifest(folder):
        if r["split"] == split and r["class"] in ("drums", "bass", "vocals"):
            songs.setdefault(r["work"], {})[r["class"]] = str(Path(folder, r["path"]))
    return {w: s for w, s in songs.items() if "drums" in s}


# --- one work ------------------------------------------------------------------------------------


@cache
def _players(root: str) -> Players:
    """One set of library players per process: loaded programs serve every work it renders."""
    return Players(root)


@cache
def _fluid() -> PartPlayer:
    return PartPlayer()


def render_sampled(spec: SampledSpec) -> list[tuple[dict, np.ndarray]]:
    """Every stem of one work, padded to one length and scaled jointly (the mixture never clips)."""
    rng = random.Random(f"{spec.seed}:{spec.work_id}")
    held_out = spec.split == "real"
    taxonomy = load_taxonomy()
    libs = available(spec.libraries, held_out)
    players, fluid = _players(spec.libraries), _fluid()

    songs = backing_songs(spec.backing, "real" if held_out else "train") if spec.backing else {}
    backed = bool(songs) and (held_out or rng.random() < BACKED)
    focus = held_out or rng.random() < FOCUS
    keep = set(libs) | {"drums", "bass"}
    focused = replace(taxonomy, classes=tuple(c for c in taxonomy.classes if c.name in keep))
    # the generator takes up to 3 chord, 2 lead and 1 line parts, each of another class
    enough = all(len(focused.with_role(role)) >= 3 for role in ("chords", "lead", "line"))
    work = pop_arrangement(spec.work_id, focused if focus and enough else taxonomy, rng, rng.uniform(10, 20))

    parts: list[tuple[dict, np.ndarray]] = []
    if backed:
        song = rng.choice(sorted(songs))
        stems = songs[song]
        vocals = "vocals" in stems and (rng.random() < 0.7)
        for cls in ("drums", "bass", "vocals"):
            if cls in stems and (cls != "vocals" or vocals):
                audio = np.load(stems[cls]).astype(np.float32) / 32768
                parts.append(({"class": cls, "role": cls, "program": -1, "soundfont": song}, audio))
    fonts = tuple(f for f in taxonomy.train_soundfonts if os.path.exists(f))
    for stem in work.stems:
        if backed and stem.role in ("drums", "bass"):
            continue  # the real song plays these
        rendered = _render_part(stem, libs, players, fluid, taxonomy, fonts, rng, held_out)
        if rendered is not None:
            parts.append(rendered)
    if sum(m["program"] >= 0 for m, _ in parts) < 1 or len(parts) < 2:
        return []
    return mix(parts, rng, backed)


def _render_part(
    stem: Stem, libs, players: Players, fluid: PartPlayer, taxonomy, fonts, rng: random.Random, held_out: bool
) -> tuple[dict, np.ndarray] | None:
    """One part on a library program (or a soundfont where its class has none, in training works)."""
    cls = taxonomy.get(stem.instrument)
    notes = expressive(stem.notes, stem.role, rng) if not cls.is_drums else humanise(stem.notes, rng)
    if stem.instrument in libs and (held_out or rng.random() < LIBRARY_SHARE):
        lib, program = rng.choice(libs[stem.instrument])
        player = players(lib)
        notes = fit_keys(notes, player.keys(lib, program))
        if not notes:
            return None
        vibrato = rng.uniform(8, 35) if cls.family in BOWED_OR_BLOWN and stem.role in ("lead", "line") else 0.0
        audio = player.render(notes, lib, program, vibrato, seed=rng.randrange(2**31))
        meta = {"class": stem.instrument, "role": stem.role, "program": 0, "soundfont": _label(lib, program)}
    elif held_out or not fonts:
        return None
    else:
        soundfont, bank, program = presets_for(stem.instrument, taxonomy, fonts, rng)
        audio = fluid.render(notes, soundfont, bank, program, cls.is_drums)
        meta = {"class": stem.instrument, "role": stem.role, "program": program, "soundfont": Path(soundfont).name}
    if np.abs(audio).max() < 1e-4:
        return None
    audio = room(audio, rng)
    if stem.instrument == "electric_guitar" or rng.random() < 0.4:
        audio = produced(audio, stem.instrument, rng)
    return meta, audio


def _label(lib: Library, program: str) -> str:
    return f"{lib.name}/{Path(program).stem}"


def mix(parts: list[tuple[dict, np.ndarray]], rng: random.Random, backed: bool) -> list[tuple[dict, np.ndarray]]:
    """Balance the parts by role (a real backing keeps its own balance, and the rendered parts sit
    against it), pad to one length (a backed work to the song's), bus-compress and scale."""
    length = min(len(a) for m, a in parts if m["program"] < 0) if backed else max(len(a) for _, a in parts)
    backing_rms = rms(np.sum([a[:length] for m, a in parts if m["program"] < 0], axis=0)) if backed else 0.1
    balanced = []
    for meta, audio in parts:
        audio = np.pad(audio[:length], ((0, max(0, length - len(audio))), (0, 0)))
        if meta["program"] >= 0:
            level = rms(audio)
            if level < 1e-5:
                continue
            low, high = ROLE_DB[meta["role"]]
            audio = audio * (backing_rms / level * 10 ** (rng.uniform(low, high) / 20))
        balanced.append((meta, audio.astype(np.float32)))
    if not any(m["program"] >= 0 for m, _ in balanced) or len(balanced) < 2:
        return []
    stems = [a for _, a in balanced]
    if rng.random() < 0.5:
        stems = bus_compress(stems, rng)
    return [(meta, s) for (meta, _), s in zip(balanced, scale_jointly(stems, rng))]


def _build_one(args: tuple[SampledSpec, str]) -> tuple[str, float]:
    spec, out = args
    if work_rows_path(out, spec.work_id).exists():
        return spec.work_id, 0.0
    seconds, _ = save_work(Path(out), spec.work_id, render_sampled(spec), "sampled", spec.split)
    return spec.work_id, seconds


def build_sampled(
    out: str | Path,
    libraries: str | Path,
    works: int,
    seed: int = 0,
    backing: str | Path | None = None,
    held_out: bool = False,
    val_fraction: float = 0.1,
    jobs: int = 2,
    progress: bool = True,
) -> dict:
    """Render (or resume) ``works`` sampled works under ``out``; returns counts and speed."""
    out, libraries = Path(out), Path(libraries)
    if not available(libraries, held_out):
        raise UsageError(f"{libraries}: none of the {'held-out' if held_out else 'training'} libraries is there")
    if backing is not None and not Path(backing, "works").is_dir():
        raise UsageError(f"{backing}: not a real-stem dataset (mss-research data real)")
    out.mkdir(parents=True, exist_ok=True)
    record = {"source": "sampled", "held_out": held_out, "seed": seed, "taxonomy_version": load_taxonomy().version}
    write_atomically(out / DATASET_FILE, lambda tmp: tmp.write_text(json.dumps(record)))
    prefix = "heldout" if held_out else "smp"
    specs = []
    for i in range(works):
        work_id = f"{prefix}{i:05d}"
        if held_out:
            split = "real"
        else:
            split = "val" if random.Random(f"split:{seed}:{work_id}").random() < val_fraction else "train"
        specs.append(SampledSpec(work_id, split, seed, str(libraries.resolve()), str(backing or "")))
    start, seconds, done = time.time(), 0.0, 0
    with get_context("spawn").Pool(jobs) as pool:
        for _, s in pool.imap_unordered(_build_one, [(spec, str(out)) for spec in specs]):
            seconds, done = seconds + s, done + 1
            if progress and done % 20 == 0:
                hours = seconds / 3600
                print(f"{done}/{len(specs)} works, {hours:.2f} h of stems, {time.time() - start:.0f} s", flush=True)
    rows = read_manifest(out)
    wall = time.time() - start
    return {
        "works": len({r["work"] for r in rows}),
        "stems": {cls: sum(r["class"] == cls for r in rows) for cls in sorted({r["class"] for r in rows})},
        "stem_hours": round(seconds / 3600, 3),
        "wall_seconds": round(wall, 1),
    }
