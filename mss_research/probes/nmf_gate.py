"""Can the clips alone say when NMF should be mixed in? (`experiments/nmf-gate.md`)

    python -m mss_research.probes.nmf_gate WEIGHTS DATA... --group GROUP [--episodes 100] [--seed 11] [-o FILE]

``--nmf`` lifts the bowed strings and costs real vocals (`experiments/nmf-mix.md`). A gate that
turns it on per target must decide from what a user gives: the clips. For each of a group's
episodes of ``mss-research eval`` this scores the default method and NMF mixed in at the
network's shares 0.75 and 0.5, and measures what a gate could read from the clips:

- ``self``: the network's SDR improvement on mixtures of the clips, each positive held out in turn
  (the network conditioned on the other four) over 1-3 negatives (``mss_cli.adapt.mixtures``);
- ``cohesion``: the mean cosine between the positive clips' embeddings;
- ``contrast``: the cosine between the mean positive and mean negative embeddings
  (``conditioning.clip_likeness``, which the default's gate reads).

One JSON line per episode goes to ``-o``; the threshold is chosen on one seed and checked on another.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import torch

from mss_cli.adapt import mixtures
from mss_cli.conditioning import clip_likeness
from mss_cli.evaluate import bss_sdr
from mss_cli.metrics import sdr
from mss_research.data.episodes import Episode
from mss_research.probes.nmf_mix import gate_rows, model_estimate

SHARES = (0.75, 0.5)  # the network's share of the mixed estimate


def self_check(model, episode: Episode, pos: torch.Tensor, neg: torch.Tensor, seed: int) -> float:
    """The network's mean SDR improvement on two mixtures per positive clip, that clip held out
    (the network conditioned on the other four) over 1-3 of the negative clips."""
    rng = random.Random(seed)
    positives, negatives = episode.positives[:5], list(episode.negatives[:5])
    gains = []
    for i in range(len(positives)):
        keep = [j for j in range(len(positives)) if j != i]
        mixed, targets = mixtures(positives[i : i + 1], negatives, 2, rng)
        for mix, target in zip(mixed, targets):
            held = replace(episode, mixture=mix, positives=positives[keep])
            gains.append(sdr(target, model_estimate(model, pos[keep], neg, held)) - sdr(target, mix))
    return float(np.mean(gains))


def features(model, episode: Episode, pos: torch.Tensor, neg: torch.Tensor, seed: int) -> dict[str, float]:
    unit = torch.nn.functional.normalize(pos, dim=-1)
    pairs = unit @ unit.T
    n = len(unit)
    return {
        "self": self_check(model, episode, pos, neg, seed),
        "cohesion": float((pairs.sum() - n) / (n * (n - 1))),
        "contrast": clip_likeness(pos, neg),
    }


def measures(model, episode: Episode, pos, neg, floor: float, ours, theirs, index: int) -> dict[str, float]:
    """The default's SDR improvement, NMF's mixed in at each share, and the clips' features."""
    row = {"default": bss_sdr(episode.target, ours) - floor}
    for w in SHARES:
        row[f"mixed {w:g}"] = bss_sdr(episode.target, w * ours + (1 - w) * theirs) - floor
    row.update(features(model, episode, pos, neg, index))
    return row


def main(argv: list[str] | None = None) -> None:
    gate_rows(__doc__, argv, measures)


if __name__ == "__main__":
    main()
