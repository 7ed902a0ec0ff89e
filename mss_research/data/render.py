"""Render symbolic works to per-instrument stems with FluidSynth, and build a cached dataset.

Each work is rendered into its own folder and its manifest rows are written last, atomically, so an
interrupted build resumes by skipping works whose manifest exists. Everything is derived from
``(seed, work_id)``, so a rebuild gives the same audio.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from mss_cli.audio import SAMPLE_RATE
from mss_cli.errors import UsageError
from mss_cli.files import write_atomically
from mss_research.data.hydrogen import PREFIX as HYDROGEN
from mss_research.data.hydrogen import HydrogenKit, available_kits
from mss_research.data.scores import Note, Work, corpus_paths, corpus_work, pop_arrangement
from mss_research.data.taxonomy import Taxonomy, load_taxonomy

TAIL_SECONDS = 1.5
HYDROGEN_GAIN = 0.3  # recorded kits peak near full scale; FluidSynth renders at gain 0.4


class PartPlayer:
    """Plays parts on soundfont presets and recorded Hydrogen kits.

    Every part gets a new FluidSynth: a reused one carries state from what it played before (notes
    start on its 64-frame block grid, its dither index runs on, its voices keep history), so a stem
    would depend on the works its process rendered earlier, and a build with other jobs or order
    gave other data (the evaluation's medians moved by up to 1.8 dB between two builds). With dynamic
    sample loading a new synth decodes only the preset it plays: 20-50 ms, not the seconds a whole
    compressed soundfont takes. Hydrogen kits hold no playing state and are loaded once."""

    def __init__(self, gain: float = 0.4) -> None:
        self.gain = gain
        self._kits: dict[str, HydrogenKit] = {}

    def render(self, notes: list[Note], soundfont: str, bank: int, program: int, drums: bool) -> np.ndarray:
        """Play ``notes`` on one preset; returns float32 (frames, 2) including the release tail.

        A 'hydrogen:<folder>' soundfont plays the notes on that recorded Hydrogen drum kit."""
        if soundfont.startswith(HYDROGEN):
            folder = soundfont[len(HYDROGEN) :]
            if folder not in self._kits:
                self._kits[folder] = HydrogenKit(folder, SAMPLE_RATE)
            return self._kits[folder].render(notes, SAMPLE_RATE, TAIL_SECONDS) * HYDROGEN_GAIN
        import fluidsynth

        synth = fluidsynth.Synth(
            gain=self.gain,
            samplerate=float(SAMPLE_RATE),
            **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.dynamic-sample-loading": 1},
        )
        sfid = synth.sfload(soundfont)
        synth.system_reset()  # channels take the font's defaults: a preset it lacks plays piano / kit 0
        channel = 9 if drums else 0
        synth.program_select(channel, sfid, bank, program)
        events = sorted(
            [(n.start, 1, n.pitch, n.velocity) for n in notes] + [(n.start + n.duration, 0, n.pitch, 0) for n in notes]
        )
        blocks: list[np.ndarray] = []
        position = 0
        for t, is_on, pitch, velocity in events:
            frame = max(position, int(round(t * SAMPLE_RATE)))
            if frame > position:
                blocks.append(synth.get_samples(frame - position))
                position = frame
            if is_on:
                synth.noteon(channel, pitch, velocity)
            else:
                synth.noteoff(channel, pitch)
        blocks.append(synth.get_samples(int(TAIL_SECONDS * SAMPLE_RATE)))
        synth.delete()
        audio = np.concatenate(blocks).reshape(-1, 2).astype(np.float32) / 32768.0
        return audio


def presets_for(
    instrument: str, taxonomy: Taxonomy, soundfonts: tuple[str, ...], rng: random.Random, drumkits: tuple[str, ...] = ()
) -> tuple[str, int, int]:
    """(soundfont, bank, program) for a class: GM programs, or a GM kit / real drum-kit soundfont."""
    cls = taxonomy.get(instrument)
    if cls.is_drums:
        if drumkits and rng.random() < 0.4:
            return rng.choice(drumkits), 0, 0
        return rng.choice(soundfonts), 128, rng.choice(taxonomy.gm_drum_kits)
    return rng.choice(soundfonts), 0, rng.choice(cls.programs)


def humanise(notes: list[Note], rng: random.Random, timing: float = 0.008, velocity: int = 10) -> list[Note]:
    return [
        Note(
            max(0.0, n.start + rng.gauss(0, timing)),
            n.duration,
            n.pitch,
            int(np.clip(n.velocity + rng.randint(-velocity, velocity), 1, 127)),
        )
        for n in notes
    ]


def colour(audio: np.ndarray, rng: random.Random) -> np.ndarray:
    """Per-stem mixing: a spectral tilt (EQ), a short synthetic room (reverb) and a stereo pan."""
    n = audio.shape[0]
    size = 1 << int(np.ceil(np.log2(n + SAMPLE_RATE)))
    freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    tilt_db = np.clip(rng.uniform(-2.0, 2.0) * np.log2(np.maximum(freqs, 20.0) / 1000.0), -9.0, 9.0)
    spectrum = np.fft.rfft(audio, size, axis=0) * (10.0 ** (tilt_db / 20.0))[:, None]
    wet = rng.uniform(0.0, 0.3)
    if wet > 0.02:
        rt60 = rng.uniform(0.2, 1.2)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        noise = np.random.default_rng(rng.randrange(2**32)).standard_normal((t.size, 2))
        ir = noise * np.exp(-6.9 * t / rt60)[:, None]
        ir /= np.sqrt((ir**2).sum(axis=0, keepdims=True))
        spectrum = spectrum * (1.0 + wet * np.fft.rfft(ir, size, axis=0))
    out = np.fft.irfft(spectrum, size, axis=0)[: n + int(0.3 * SAMPLE_RATE)]
    theta = (rng.uniform(-0.6, 0.6) + 1.0) * np.pi / 4
    return (out * (np.sqrt(2.0) * np.array([np.cos(theta), np.sin(theta)]))).astype(np.float32)


def render_work(
    work: Work,
    player: PartPlayer,
    taxonomy: Taxonomy,
    rng: random.Random,
    soundfonts: tuple[str, ...],
    drumkits: tuple[str, ...],
) -> list[tuple[dict, np.ndarray]]:
    """Render every stem, pad them to one length and scale them jointly so the mixture never clips."""
    rendered: list[tuple[dict, np.ndarray]] = []
    for stem in work.stems:
        soundfont, bank, program = presets_for(stem.instrument, taxonomy, soundfonts, rng, drumkits)
        audio = player.render(humanise(stem.notes, rng), soundfont, bank, program, stem.instrument == "drums")
        if np.abs(audio).max() < 1e-4:
            continue  # a preset missing from this soundfont renders silence: not a stem
        gain_db = rng.uniform(-6.0, 0.0) if stem.role in ("drums", "bass") else rng.uniform(-10.0, 0.0)
        audio = colour(audio, rng) * 10 ** (gain_db / 20)
        meta = {
            "class": stem.instrument,
            "role": stem.role,
            "program": program,
            "bank": bank,
            "soundfont": Path(soundfont).name,
        }
        rendered.append((meta, audio))
    if len(rendered) < 2:
        return []
    length = max(a.shape[0] for _, a in rendered)
    stems = [np.pad(a, ((0, length - a.shape[0]), (0, 0))) for _, a in rendered]
    return [(meta, s) for (meta, _), s in zip(rendered, scale_jointly(stems, rng))]


def scale_jointly(stems: list[np.ndarray], rng: random.Random) -> list[np.ndarray]:
    """One random gain for every stem of a work, so that neither a stem nor the mixture (their sum)
    clips: the work's peak lands between 0.3 and 0.95 of full scale."""
    peak = max(np.abs(np.sum(stems, axis=0)).max(), max(np.abs(s).max() for s in stems))
    scale = rng.uniform(0.3, 0.95) / peak
    return [s * scale for s in stems]


def save_work(
    out_dir: Path, work_id: str, stems: list[tuple[dict, np.ndarray]], source: str, split: str
) -> tuple[float, int]:
    """A work's stems as int16 ``.npy`` files, then its manifest rows (which mark it complete);
    returns the seconds and bytes of stems written."""
    rows: list[dict] = []
    seconds, size = 0.0, 0
    stem_dir = out_dir / "stems" / work_id
    for i, (meta, audio) in enumerate(stems):
        stem_dir.mkdir(parents=True, exist_ok=True)
        path = stem_dir / f"{i:02d}_{meta['class']}.npy"
        data = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
        np.save(path, data)
        seconds += data.shape[0] / SAMPLE_RATE
        size += path.stat().st_size
        rows.append(
            {
                **meta,
                "work": work_id,
                "source": source,
                "split": split,
                "duration": round(data.shape[0] / SAMPLE_RATE, 3),
                "path": str(path.relative_to(out_dir)),
                "sample_rate": SAMPLE_RATE,
            }
        )
    write_work_rows(out_dir, work_id, rows)
    return seconds, size


@dataclass(frozen=True)
class WorkSpec:
    """What to render: enough to regenerate the work deterministically in any process."""

    work_id: str
    kind: str  # "generated" or a music21 corpus path
    split: str  # train / val / timbre (val works rendered with the reserved soundfonts)
    seed: int
    taxonomy_version: int  # whose classes the work may use (taxonomy.load_taxonomy)


def _build_one(args: tuple[WorkSpec, str]) -> tuple[str, float, int]:
    spec, out = args
    out_dir = Path(out)
    if work_rows_path(out_dir, spec.work_id).exists():
        return spec.work_id, 0.0, 0
    taxonomy = load_taxonomy(spec.taxonomy_version)
    rng = random.Random(f"{spec.seed}:{spec.work_id}")
    if spec.kind == "generated":
        work: Work | None = pop_arrangement(spec.work_id, taxonomy, rng)
    else:
        work = corpus_work(spec.kind, spec.work_id, taxonomy, rng)
    stems: list[tuple[dict, np.ndarray]] = []
    if work is not None:
        reserved = spec.split == "timbre"
        fonts = tuple(
            f for f in (taxonomy.reserved_soundfonts if reserved else taxonomy.train_soundfonts) if os.path.exists(f)
        )
        kits = (
            ()
            if reserved
            else tuple(f for f in taxonomy.drumkit_soundfonts if os.path.exists(f))
            + tuple(available_kits(taxonomy.hydrogen_drumkits))
        )
        global _PLAYER
        if "_PLAYER" not in globals():
            _PLAYER = PartPlayer()
        stems = render_work(work, _PLAYER, taxonomy, rng, fonts, kits)
    seconds, size = save_work(out_dir, spec.work_id, stems, work.source if work else "", spec.split)
    return spec.work_id, seconds, size


def plan(
    generated: int, corpus: int, seed: int, val_fraction: float, timbre: int, taxonomy_version: int
) -> list[WorkSpec]:
    """The fixed list of works; a work's split depends only on its id and the seed (stable on resume,
    and the same in every taxonomy version: a validation work is held out of every dataset)."""
    specs: list[WorkSpec] = []
    sources = [(f"gen{i:05d}", "generated") for i in range(generated)]
    sources += [(f"m21_{i:05d}", p) for i, p in enumerate(corpus_paths(corpus))] if corpus else []
    for work_id, kind in sources:
        split = "val" if random.Random(f"split:{seed}:{work_id}").random() < val_fraction else "train"
        specs.append(WorkSpec(work_id, kind, split, seed, taxonomy_version))
    val = [s for s in specs if s.split == "val"][:timbre]
    specs += [WorkSpec(f"{s.work_id}_timbre", s.kind, "timbre", seed, taxonomy_version) for s in val]
    return specs


def work_rows_path(root: str | Path, work_id: str) -> Path:
    """Where one work's stem rows live (the renderer skips a work whose rows exist)."""
    return Path(root, "works", f"{work_id}.json")


def write_work_rows(root: str | Path, work_id: str, rows: list[dict]) -> None:
    """One work's stem rows, written atomically and after its stems: a work's manifest existing is
    what marks it complete (a resumed build skips it; ``read_manifest`` reads it)."""
    path = work_rows_path(root, work_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(rows)))


DATASET_FILE = "dataset.json"


def dataset_taxonomy_version(root: str | Path) -> int | None:
    """The taxonomy version a dataset folder was rendered with: recorded by ``build``; 1 for a
    dataset built before versions were recorded (it has works and no record); None for a new folder."""
    record = Path(root, DATASET_FILE)
    if record.exists():
        return int(json.loads(record.read_text())["taxonomy_version"])
    return 1 if Path(root, "works").is_dir() else None


def read_manifest(root: str | Path) -> list[dict]:
    """All stem rows of a built dataset (the per-work manifests are the source of truth)."""
    rows: list[dict] = []
    for path in sorted(Path(root, "works").glob("*.json")):
        rows += json.loads(path.read_text())
    return rows


def build(
    out: str | Path,
    generated: int = 400,
    corpus: int = 150,
    seed: int = 0,
    val_fraction: float = 0.1,
    timbre: int = 0,
    jobs: int = 2,
    progress: bool = True,
    taxonomy_version: int | None = None,
) -> dict:
    """Render the dataset under ``out`` (resumable) and write ``manifest.jsonl``; returns speed figures.

    ``taxonomy_version`` (the latest when None) must match the folder's: resuming a build with other
    classes would mix two datasets (a UsageError)."""
    out = Path(out)
    try:
        version = load_taxonomy(taxonomy_version).version
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    existing = dataset_taxonomy_version(out)
    if existing is not None and existing != version:
        raise UsageError(
            f"{out} was rendered with taxonomy version {existing}, not {version}: "
            f"resume it with --taxonomy-version {existing} or build into a new folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    if not (out / DATASET_FILE).exists():  # a resumed build already has its record
        write_atomically(out / DATASET_FILE, lambda tmp: tmp.write_text(json.dumps({"taxonomy_version": version})))
    specs = plan(generated, corpus, seed, val_fraction, timbre, version)
    start = time.time()
    seconds = size = done = 0
    with get_context("spawn").Pool(jobs) as workers:
        for _, s, b in workers.imap_unordered(_build_one, [(spec, str(out)) for spec in specs]):
            seconds, size, done = seconds + s, size + b, done + 1
            if progress and done % 20 == 0:
                print(
                    f"{done}/{len(specs)} works, {seconds / 3600:.2f} h of stems, {time.time() - start:.0f} s",
                    flush=True,
                )
    rows = read_manifest(out)
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    wall = time.time() - start
    return {
        "works": len(specs),
        "stems": len(rows),
        "rendered_stem_hours": seconds / 3600,
        "wall_seconds": wall,
        "stem_hours_per_wall_hour": seconds / wall if wall else 0.0,
        "mb_per_stem_hour": (size / 1e6) / (seconds / 3600) if seconds else 0.0,
    }
