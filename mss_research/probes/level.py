"""How the separation depends on the input's level: the same episodes, played louder or softer.

The model sees ``log(1 + |X|)``, which is not scale-free: a mixture 12 dB louder than the renders
it trained on is a different input to it, and so are example clips recorded hotter. Mastered music
sits far above our renders (commercial tracks measure about -14 to -8 dBFS RMS). On `mss eval`'s
episodes for a seed (11 by default: not the table's 7), with 5 positives, the model is run as it
was before ``mss_cli.level`` (inputs as they come) on each episode with its mixture, or its clips,
scaled by each gain (the estimate scaled back), and with mixtures and clips brought to fixed levels
around the training split's medians; then as ``mss separate`` runs it (inputs brought to the
model's levels, ``ModelConfig.mixture_dbfs`` and ``clip_dbfs``) with mixture and clips scaled
together. Each variant is paired against the episode as rendered, inputs as they come (`mss eval`'s
paired note). The level statistics of the episodes' mixtures and clips are printed too.

Usage:

    python -m mss_research.probes.level DATA [EPISODES_PER_GROUP] [SEED] [WEIGHTS]
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import torch

from mss_cli.audio import SAMPLE_RATE
from mss_cli.evaluate import bss_sdr
from mss_cli.level import gain_to, level_dbfs
from mss_cli.report import Case
from mss_cli.weights import load_model
from mss_research.data.episodes import EpisodeSampler
from mss_research.paper_eval import EXAMPLE_SECONDS, SEGMENT_SECONDS, fewshot, group_episodes, score
from mss_research.probes import inputs_as_they_come
from mss_research.report import paired_note, pools

GAINS_DB = (-24, -12, -6, 6, 12, 18)
OFFSETS_DB = (-6, 0, 6)
PIPELINE_GAINS_DB = (-24, 0, 12, 18)


def training_levels(data: str, count: int = 300) -> tuple[float, float]:
    """Median gated level (dBFS) of training-split mixtures and of their positive clips."""
    sampler = EpisodeSampler(
        data, "train", int(SEGMENT_SECONDS * SAMPLE_RATE), int(EXAMPLE_SECONDS * SAMPLE_RATE), seed=0
    )
    mixtures, clips = [], []
    for _ in range(count):
        e = sampler.sample(positives=5, negatives=0)
        mixtures.append(level_dbfs(e.mixture, SAMPLE_RATE))
        clips += [level_dbfs(c, SAMPLE_RATE) for c in e.positives]
    return float(np.median(mixtures)), float(np.median(clips))


def main(data: str, count: int = 100, seed: int = 11, weights: str | None = None) -> None:
    torch.set_num_threads(2)
    model = load_model(weights)
    raw = inputs_as_they_come(load_model(weights))
    mix_ref, clip_ref = training_levels(data)
    print(
        f"training split, median gated level: mixtures {mix_ref:.1f} dBFS, positive clips {clip_ref:.1f} dBFS",
        flush=True,
    )
    cases: list[Case] = []
    levels: dict[str, list[float]] = {"mixture": [], "positive clip": []}
    for group, episodes in group_episodes(data, count, seed):
        for i, e in enumerate(episodes):
            floor = bss_sdr(e.target, e.mixture)
            mix_level = level_dbfs(e.mixture, SAMPLE_RATE)
            clip_levels = [level_dbfs(c, SAMPLE_RATE) for c in e.positives]
            clip_gains = np.array([gain_to(level, clip_ref) for level in clip_levels], np.float32)[:, None]
            levels["mixture"].append(mix_level)
            levels["positive clip"] += clip_levels[:5]
            variants = {"as rendered": (raw, 1.0, e.positives)}
            for gain_db in GAINS_DB:
                g = 10 ** (gain_db / 20)
                variants[f"mixture {gain_db:+d} dB"] = (raw, g, e.positives)
                variants[f"clips {gain_db:+d} dB"] = (raw, 1.0, e.positives * np.float32(g))
            for offset in OFFSETS_DB:
                variants[f"normalised, mixture to {mix_ref + offset:.0f} dBFS"] = (
                    raw,
                    gain_to(mix_level, mix_ref + offset),
                    e.positives * clip_gains,
                )
            variants["normalised, clips only"] = (raw, 1.0, e.positives * clip_gains)
            for gain_db in PIPELINE_GAINS_DB:
                g = 10 ** (gain_db / 20)
                variants[f"mss separate's levels, mixture and clips {gain_db:+d} dB"] = (
                    model,
                    g,
                    e.positives * np.float32(g),
                )
            for name, (separator, g, clips) in variants.items():
                g = np.float32(g)
                estimate = fewshot(separator, replace(e, mixture=e.mixture * g, positives=clips), 5, 0) / g
                cases.append(score(group, i, name, e, estimate, floor))
        print(f"{group}: done", flush=True)
    for name, values in levels.items():
        q = np.percentile(values, [5, 50, 95])
        print(f"{name} gated level: median {q[1]:.1f} dBFS (5-95%: {q[0]:.1f} to {q[2]:.1f})")
    for name in dict.fromkeys(c.method for c in cases):
        if name != "as rendered":
            for group in pools(cases):
                print(paired_note(cases, group, name, "as rendered"))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    args = sys.argv[1:]
    main(args[0], *(int(a) for a in args[1:3]), *args[3:4])
