"""The README's demo material: a short mixture plus solo example clips of two of its instruments.

Works are generated from ids outside the training plan ("demo-*"), and rendered only with the
MIT-licensed soundfonts (FluidR3_GM, MuseScore_General), so the files are free to redistribute.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import soundfile as sf

from mss_cli.audio import SAMPLE_RATE
from mss_research.data.render import PartPlayer, render_work
from mss_research.data.scores import Work, pop_arrangement
from mss_research.data.taxonomy import load_taxonomy

CLIP_SECONDS = 4.0
TAXONOMY_VERSION = 1  # the classes examples/ was rendered with: a later version's extra classes change every work


def _arrangement_with(classes: set[str], prefix: str, start: int, seconds: float) -> tuple[Work, random.Random]:
    tax = load_taxonomy(TAXONOMY_VERSION)
    for i in range(start, start + 5000):
        rng = random.Random(f"{prefix}-{i}")
        work = pop_arrangement(f"{prefix}-{i}", tax, rng, seconds)
        if classes <= {s.instrument for s in work.stems}:
            return work, rng
    raise RuntimeError(f"no arrangement with {classes}")


def _active_excerpt(audio: np.ndarray, length: int) -> np.ndarray:
    """The loudest ``length`` samples (by RMS over 0.5 s hops): a clip that shows the instrument."""
    hop = SAMPLE_RATE // 2
    starts = range(0, max(1, audio.shape[0] - length), hop)
    best = max(starts, key=lambda s: float(np.mean(audio[s : s + length] ** 2)))
    return audio[best : best + length]


def render_demo(
    out: str | Path, targets: tuple[str, str] = ("bass", "trumpet"), clips: int = 4, seconds: float = 25.0
) -> list[Path]:
    """Write demo_mix.flac, reference/<class>.flac and clips/<class>_<n>.flac under ``out``."""
    tax = load_taxonomy(TAXONOMY_VERSION)
    fonts = tax.redistributable_soundfonts
    player = PartPlayer()
    out = Path(out)
    written: list[Path] = []
    work, rng = _arrangement_with(set(targets) | {"drums"}, "demo", 0, seconds)
    stems = render_work(work, player, tax, rng, fonts, ())
    mix = np.sum([a for _, a in stems], axis=0)
    (out / "reference").mkdir(parents=True, exist_ok=True)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    sf.write(out / "demo_mix.flac", mix, SAMPLE_RATE, subtype="PCM_16")
    written.append(out / "demo_mix.flac")
    for meta, audio in stems:
        if meta["class"] in targets:
            sf.write(out / "reference" / f"{meta['class']}.flac", audio, SAMPLE_RATE, subtype="PCM_16")
            written.append(out / "reference" / f"{meta['class']}.flac")
    for cls in targets:
        start = 100
        for n in range(1, clips + 1):
            other, orng = _arrangement_with({cls}, "democlip", start, 12.0)
            start = int(other.work_id.rsplit("-", 1)[1]) + 1
            other.stems = [s for s in other.stems if s.instrument == cls] + [
                s for s in other.stems if s.instrument != cls
            ][:1]
            solo = next(a for m, a in render_work(other, player, tax, orng, fonts, ()) if m["class"] == cls)
            clip = _active_excerpt(solo, int(CLIP_SECONDS * SAMPLE_RATE))
            clip = clip * (0.5 / max(1e-6, float(np.abs(clip).max())))
            path = out / "clips" / f"{cls}_{n}.flac"
            sf.write(path, clip, SAMPLE_RATE, subtype="PCM_16")
            written.append(path)
    return written
