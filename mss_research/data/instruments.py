"""Real instruments for the renderer: SFZ libraries (sfizz), single-note recordings, physical models.

General MIDI soundfonts give the model three timbres per class, recorded decades ago and played
without expression; users' guitars, pianos, saxes and strings are real players on real instruments.
The libraries listed in ``libraries.json`` are multi-sampled recordings of real instruments (velocity
layers, round robins, release samples) that arrive whole through GitHub snapshots, and physical
models for the bowed and blown instruments no library here records. Each entry
names its repository, the programs that play each taxonomy class, its licence and whether it is
held out: a held-out library is never rendered into training or validation works, only into the
evaluation's real-instrument group, as a timbre the model never heard.

Three kinds of player:

- ``SfzPlayer``: sfizz (``pysfizz``) in process, events placed sample-accurately inside 64-frame
  blocks, pitch bend for vibrato on held notes of monophonic parts.
- ``NotePlayer``: a folder of one-note recordings named ``inst_PITCH_LENGTH_DYNAMIC_ARTICULATION``
  (the Philharmonia Orchestra's samples). Each note plays the recording nearest in pitch (shifted by
  resampling when not exact), dynamic (from the velocity) and length, cut at the note's end with a
  release fade.
- ``FaustPlayer``: Faust's physical models of bowed and blown instruments (violin, trumpet) in
  DawDreamer, for instruments no library here records.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from mss_cli.audio import SAMPLE_RATE
from mss_research.data.scores import Note

# Targets of the evaluation's real-instrument groups: what the held-out libraries and URMP's
# recordings play (their drums, bass and vocals are real songs' backings, which the
# real-recordings group covers).
INSTRUMENT_TARGETS = (
    "violin", "viola", "cello", "sax", "flute", "clarinet", "oboe", "trombone",
    "piano", "electric_piano", "acoustic_guitar", "electric_guitar", "mallets",
)  # fmt: skip
GUITARS = ("acoustic_guitar", "electric_guitar")
BLOCK = 64  # sfizz block: events land on their exact frame inside it
RELEASE_SECONDS = 0.12  # fade at a note library's note end (a player's release)
TAIL_SECONDS = 1.5


@dataclass(frozen=True)
class Library:
    """One sample library: where it lives, what it plays, under which licence."""

    name: str  # the entry's name (a library split in two, held out in part, has two entries)
    folder: str  # where its repository is checked out under the libraries root
    repo: str  # owner/name on GitHub
    kind: str  # "sfz", "notes" or "faust"
    programs: dict[str, tuple[str, ...]]  # class -> SFZ files (sfz), sample folders (notes) or models (faust)
    licence: str
    held_out: bool
    wrapper: str = ""  # SFZ text put before each program (``#define``s the program expects)
    controls: dict[str, dict[int, int]] | None = None  # program -> MIDI controller -> value it needs

    def classes(self) -> list[str]:
        return list(self.programs)


@cache
def libraries() -> tuple[Library, ...]:
    """Every library of ``libraries.json``."""
    raw = json.loads(resources.files("mss_research.data").joinpath("libraries.json").read_text())
    return tuple(
        Library(
            name=name,
            folder=spec.get("folder", name),
            repo=spec["repo"],
            kind=spec["kind"],
            programs={cls: tuple(paths) for cls, paths in spec["programs"].items()},
            licence=spec["licence"],
            held_out=spec.get("held_out", False),
            wrapper=spec.get("wrapper", ""),
            controls={p: {int(k): v for k, v in cc.items()} for p, cc in spec.get("controls", {}).items()},
        )
        for name, spec in raw["libraries"].items()
    )


def available(root: str | Path, held_out: bool) -> dict[str, list[tuple[Library, str]]]:
    """class -> (library, program) for the libraries checked out under ``root``, the held-out ones
    or the others; a program file missing on disk is left out."""
    out: dict[str, list[tuple[Library, str]]] = {}
    for lib in libraries():
        if lib.held_out != held_out:
            continue
        if lib.kind == "faust" and importlib.util.find_spec("dawdreamer") is None:
            continue
        for cls, programs in lib.programs.items():
            for program in programs:
                if lib.kind == "faust" or Path(root, lib.folder, program).exists():
                    out.setdefault(cls, []).append((lib, program))
    return out


# --- sfizz ---------------------------------------------------------------------------------------


# sfizz streams a sample beyond its first 8192 frames from a background thread, and its
# freewheeling render waits only for loads that thread has already picked up: a note that starts
# before the pick-up ends where the loaded frames end (measured: a fresh player's piano part lost
# up to 5.5% of its RMS, `experiments/sfizz-in-memory.md`). Samples held in memory from load on make every note
# whole and a render repeatable; the largest program here then holds under 1 GB.
IN_MEMORY = "<control>\nhint_ram_based=1"


def _program_path(root: Path, lib: Library, program: str) -> Path:
    """The SFZ file to load: a wrapper beside the program that holds its samples in memory and
    defines what the program expects (``lib.wrapper``), then includes it."""
    path = root / lib.folder / program
    wrapped = path.with_name(f".mss-{path.name}")
    text = "\n".join(filter(None, (IN_MEMORY, lib.wrapper, f'#include "{path.name}"'))) + "\n"
    if not wrapped.exists() or wrapped.read_text() != text:
        wrapped.write_text(text)
    return wrapped


class SfzPlayer:
    """Plays notes on SFZ programs with sfizz. A synth carries state from what it played (its
    round-robin positions and random draws), so a program is loaded afresh before each part it
    plays after its first: a part's audio then depends on the part alone, never on the works its
    process rendered before (as ``render.PartPlayer`` does with a new FluidSynth per part).
    Reloading costs 0.1 s for most programs here, about 1 s for the largest."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._synths: dict[tuple[str, str], object] = {}
        self._played: set[tuple[str, str]] = set()

    def _synth(self, lib: Library, program: str, fresh: bool = False):
        """The program's synth; ``fresh``: reloaded first if it has played since it was loaded."""
        key = (lib.name, program)
        if key not in self._synths:
            import pysfizz._sfizz as sfizz

            synth = sfizz.Synth(SAMPLE_RATE, BLOCK)
            synth.enable_freewheeling()
            self._synths[key] = synth
            self._load(synth, lib, program)
        elif fresh and key in self._played:
            self._load(self._synths[key], lib, program)
        if fresh:
            self._played.add(key)
        return self._synths[key]

    def _load(self, synth, lib: Library, program: str) -> None:
        if not synth.load_sfz_file(str(_program_path(self.root, lib, program))) or not synth.get_num_regions():
            raise ValueError(f"{lib.name}/{program}: sfizz cannot load it")
        self._played.discard((lib.name, program))

    def keys(self, lib: Library, program: str) -> list[int]:
        synth = self._synth(lib, program)
        return [k for k in range(128) if synth.get_regions_for_note(k)]

    def render(self, notes: list[Note], lib: Library, program: str, vibrato: float = 0.0, seed: int = 0) -> np.ndarray:
        """float32 (frames, 2): ``notes`` with their release tails. ``vibrato`` (cents, 0 for none)
        bends held notes after a delay, at 4.5-6 Hz, as a string or wind player does."""
        synth = self._synth(lib, program, fresh=True)
        synth.all_sound_off()
        synth.pitch_wheel(0, 0)
        for number, value in (lib.controls or {}).get(program, {}).items():
            synth.cc(0, number, value)
        events = sorted(
            [(n.start, 1, n.pitch, n.velocity) for n in notes] + [(n.start + n.duration, 0, n.pitch, 0) for n in notes]
        )
        end = max(n.start + n.duration for n in notes) + TAIL_SECONDS
        blocks = int(math.ceil(end * SAMPLE_RATE / BLOCK))
        bend = _vibrato_curve(notes, blocks, vibrato, random.Random(seed)) if vibrato else None
        out = np.zeros((blocks * BLOCK, 2), np.float32)
        i = 0
        for b in range(blocks):
            stop = (b + 1) * BLOCK
            while i < len(events) and int(events[i][0] * SAMPLE_RATE) < stop:
                t, on, pitch, velocity = events[i]
                delay = max(0, int(t * SAMPLE_RATE) - b * BLOCK)
                if on:
                    synth.note_on(delay, pitch, max(1, min(127, velocity)))
                else:
                    synth.note_off(delay, pitch, 0)
                i += 1
            if bend is not None and (b == 0 or bend[b] != bend[b - 1]):  # only changes: no event, no processing
                synth.pitch_wheel(0, int(bend[b]))
            left, right = synth.render_block()
            out[b * BLOCK : stop, 0], out[b * BLOCK : stop, 1] = left, right
        synth.all_sound_off()
        return out


def _vibrato_curve(notes: list[Note], blocks: int, cents: float, rng: random.Random) -> np.ndarray:
    """Pitch-wheel values per block: a sine of ``cents`` depth on notes longer than 0.4 s, starting
    0.25 s into the note and fading in (a default bend range of 200 cents is assumed)."""
    t = (np.arange(blocks) * BLOCK) / SAMPLE_RATE
    depth = np.zeros(blocks)
    for n in notes:
        if n.duration < 0.4:
            continue
        onset = n.start + 0.25
        inside = (t >= onset) & (t < n.start + n.duration)
        depth[inside] = np.minimum(1.0, (t[inside] - onset) / 0.3)
    rate = rng.uniform(4.5, 6.0)
    return np.clip(np.round(depth * cents / 200 * 8191 * np.sin(2 * np.pi * rate * t)), -8192, 8191)


# --- libraries of single notes -------------------------------------------------------------------

NOTE_NAMES = {"C": 0, "Cs": 1, "D": 2, "Ds": 3, "E": 4, "F": 5, "Fs": 6, "G": 7, "Gs": 8, "A": 9, "As": 10, "B": 11}
DYNAMICS = {"pianissimo": 30, "piano": 50, "mezzo-piano": 64, "mezzo-forte": 80, "forte": 100, "fortissimo": 118}
LENGTHS = {"025": 0.25, "05": 0.5, "1": 1.0, "15": 1.5, "long": 2.5, "very-long": 4.0}
# Articulations that sound as a plain note (the others are trills, tremolo, harmonics, effects).
PLAIN = {"normal", "arco-normal", "non-vibrato", "nonlegato", "tenuto", "staccato", "staccatissimo", "vibrato"}
NAME = re.compile(r"^[a-z-]+_([A-G]s?)(-?\d)_([0-9a-z-]+)_([a-z-]+)_([a-z-]+)$")


@dataclass(frozen=True)
class NoteSample:
    path: Path
    pitch: int
    length: float
    velocity: int
    short: bool  # staccato
    empty: bool  # a 0-byte file (the Philharmonia copy has one): listed, never chosen


@cache
def note_samples(folder: Path) -> tuple[NoteSample, ...]:
    """The plain-articulation notes of a note-library folder, parsed from their file names."""
    found = []
    for path in sorted(folder.glob("*.mp3")):
        m = NAME.match(path.stem)
        if not m or m.group(3) not in LENGTHS or m.group(4) not in DYNAMICS or m.group(5) not in PLAIN:
            continue
        pitch = 12 * (int(m.group(2)) + 1) + NOTE_NAMES[m.group(1)]
        found.append(
            NoteSample(
                path,
                pitch,
                LENGTHS[m.group(3)],
                DYNAMICS[m.group(4)],
                "stacc" in m.group(5),
                path.stat().st_size == 0,
            )
        )
    return tuple(found)


class NotePlayer:
    """Plays notes from a folder of one-note recordings (decoded once per process)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._decoded: dict[Path, np.ndarray] = {}

    def keys(self, lib: Library, program: str) -> list[int]:
        pitches = {s.pitch for s in note_samples(self.root / lib.folder / program)}
        return list(range(min(pitches) - 2, max(pitches) + 3)) if pitches else []

    def _audio(self, path: Path) -> np.ndarray:
        if path not in self._decoded:
            import soundfile as sf
            import soxr

            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
            audio = np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio[:, :2]
            if rate != SAMPLE_RATE:
                audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
            # the recordings start with a little silence: begin at the attack
            onset = int(np.argmax(np.abs(audio).max(axis=1) > 0.01 * max(1e-6, float(np.abs(audio).max()))))
            self._decoded[path] = audio[max(0, onset - 64) :]
        return self._decoded[path]

    def _choose(self, samples: tuple[NoteSample, ...], note: Note, rng: random.Random) -> NoteSample:
        def cost(s: NoteSample) -> float:
            return (
                abs(s.pitch - note.pitch) * 4
                + abs(s.velocity - note.velocity) / 20
                + abs(math.log2(s.length / max(0.1, note.duration)))
                + (2 if s.short != (note.duration < 0.2) else 0)
                + rng.random() * 0.5  # round robin among near equals
                + (math.inf if s.empty else 0.0)
            )

        return min(samples, key=cost)

    def render(self, notes: list[Note], lib: Library, program: str, vibrato: float = 0.0, seed: int = 0) -> np.ndarray:
        """float32 (frames, 2). Recorded players already have their own vibrato: ``vibrato`` is unused."""
        import soxr

        samples = note_samples(self.root / lib.folder / program)
        rng = random.Random(seed)
        end = max(n.start + n.duration for n in notes) + TAIL_SECONDS
        out = np.zeros((int(end * SAMPLE_RATE) + SAMPLE_RATE, 2), np.float32)
        release = int(RELEASE_SECONDS * SAMPLE_RATE)
        for n in notes:
            s = self._choose(samples, n, rng)
            audio = self._audio(s.path)
            if s.pitch != n.pitch:  # resampling shifts the pitch (and the length with it)
                ratio = 2 ** ((s.pitch - n.pitch) / 12)
                audio = soxr.resample(audio, SAMPLE_RATE, SAMPLE_RATE * ratio).astype(np.float32)
            keep = min(len(audio), int(n.duration * SAMPLE_RATE) + release)
            audio = audio[:keep].copy()
            fade = min(release, keep)
            audio[keep - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
            gain = 10 ** ((n.velocity - s.velocity) / 127 * 12 / 20)  # the rest of the velocity as level
            start = int(n.start * SAMPLE_RATE)
            stop = min(len(out), start + keep)
            out[start:stop] += audio[: stop - start] * gain
        return out


# --- physical models -----------------------------------------------------------------------------

# Faust's physical models (pm.NAME_ui_MIDI): the pitches each plays well.
FAUST_KEYS = {"violin": (55, 100), "brass": (52, 84), "clarinet": (50, 89), "flute": (60, 96)}
FAUST_VOICES = 4


class FaustPlayer:
    """Plays notes on Faust physical models (``pm.violin_ui_MIDI``, ``pm.brass_ui_MIDI``, ...) in
    DawDreamer: bowed and blown instruments no note library here has (violin, trumpet). Each render
    draws the player's bow pressure and position or lip tension, and a vibrato."""

    def __init__(self, root: str | Path) -> None:
        self._engines: dict[str, tuple[object, object]] = {}

    def keys(self, lib: Library, program: str) -> list[int]:
        low, high = FAUST_KEYS[program]
        return list(range(low, high + 1))

    def _engine(self, program: str):
        if program not in self._engines:
            import dawdreamer

            engine = dawdreamer.RenderEngine(SAMPLE_RATE, 256)
            synth = engine.make_faust_processor(program)
            synth.num_voices = FAUST_VOICES
            dsp = f'declare options "[midi:on][nvoices:{FAUST_VOICES}]"; import("stdfaust.lib"); '
            dsp += f"process = pm.{program}_ui_MIDI <: _,_; effect = _,_;"
            synth.set_dsp_string(dsp)
            if not synth.compile():
                raise ValueError(f"Faust cannot compile pm.{program}_ui_MIDI")
            engine.load_graph([(synth, [])])
            self._engines[program] = (engine, synth)
        return self._engines[program]

    def render(self, notes: list[Note], lib: Library, program: str, vibrato: float = 0.0, seed: int = 0) -> np.ndarray:
        engine, synth = self._engine(program)
        rng = random.Random(seed)
        synth.clear_midi()
        known = {p["name"] for p in synth.get_parameters_description()}
        for path, value in _faust_settings(program, vibrato, rng).items():
            if path in known:
                synth.set_parameter(path, value)
        for n in notes:
            synth.add_midi_note(n.pitch, max(1, min(127, n.velocity)), n.start, n.duration)
        engine.render(max(n.start + n.duration for n in notes) + TAIL_SECONDS)
        return np.ascontiguousarray(engine.get_audio().T, dtype=np.float32)


def _faust_settings(program: str, vibrato: float, rng: random.Random) -> dict[str, float]:
    """A player's settings for one part: parameter path -> value (paths as the models name them)."""
    settings = {f"/{program}/otherParams/vibratoGain": min(1.0, vibrato / 40), f"/{program}/otherParams/outGain": 0.5}
    settings[f"/{program}/otherParams/vibratoFrequency"] = rng.uniform(4.5, 6.5)
    if program == "violin":
        settings["/violin/bow/pressure"] = rng.uniform(0.3, 0.75)
        settings["/violin/bow/position"] = rng.uniform(0.55, 0.85)
    return settings


class Players:
    """The player for each library kind, sharing loaded programs across works in one process."""

    def __init__(self, root: str | Path) -> None:
        self._players = {"sfz": SfzPlayer(root), "notes": NotePlayer(root), "faust": FaustPlayer(root)}

    def __call__(self, lib: Library) -> SfzPlayer | NotePlayer | FaustPlayer:
        return self._players[lib.kind]
