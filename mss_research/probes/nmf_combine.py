"""Does another way of joining the network's mask with NMF's beat their weighted mean?
(`experiments/nmf-combine.md`)

    python -m mss_research.probes.nmf_combine WEIGHTS DATA... --group GROUP [--episodes 100] [--seed 11] -o FILE

NMF's mask mixed into the network's as a weighted mean lifts the bowed strings and costs real
vocals: wherever the network is sure a bin is not the target, NMF's share still lets some of it
through. A weighted mean of the two masks' log-odds keeps a bin shut (or open) where either side
is sure of it, and leaves the other to decide where one is unsure. For each of a group's episodes
this scores the network alone and NMF joined to it by each rule of ``RULES`` on every target (a
weighted mean of the masks or of their log-odds, ``mss_cli.nmf.mix_masks``), and the clips'
likeness (``conditioning.clip_likeness``, which decides where the default averages the masks), so
that each rule can be scored where the clips sound alike and another elsewhere, and what the two
masks say of the mixture (``mask_features``), in search of a judge that tells where NMF should
weigh more. One JSON line per episode to ``-o``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

import mss_cli.engine
from mss_cli.conditioning import clip_likeness
from mss_cli.evaluate import bss_sdr
from mss_cli.nmf import clip_bases
from mss_research.paper_eval import separate_episode
from mss_research.probes.adapt import default_vectors
from mss_research.probes.nmf_mix import gate_rows

# name: (the network's share, joined in log-odds), as ``mss_cli.nmf.ClipBases`` holds them
RULES: dict[str, tuple[float, bool]] = {
    "mean 0.5": (0.5, False),
    "mean 0.75": (0.75, False),
    "odds 0.5": (0.5, True),
    "odds 0.75": (0.75, True),
    "odds 0.85": (0.85, True),
    "odds 0.9": (0.9, True),
}


def measures(model, episode, pos, neg, floor: float, ours, theirs, index: int) -> dict[str, float]:
    """The network's SDR improvement, each rule's, and the clips' likeness."""
    row = {"network": bss_sdr(episode.target, ours) - floor, "likeness": clip_likeness(pos, neg)}
    cond, unwanted = default_vectors(model, pos, neg)
    bases = clip_bases(model, list(episode.positives[:5]), list(episode.negatives[:5]))
    cached: list[torch.Tensor] = []
    seen: dict[str, torch.Tensor] = {}
    nmf_mask, mix_masks = mss_cli.engine.nmf_mask, mss_cli.engine.mix_masks

    def once(magnitude, bases, bins):  # NMF's mask is the same for every rule: fit it once
        if not cached:
            cached.append(nmf_mask(magnitude, bases, bins))
            seen["magnitude"] = magnitude
        return cached[0]

    def joined_and_seen(network, nmf, bases):
        seen.setdefault("network", network)
        return mix_masks(network, nmf, bases)

    try:
        mss_cli.engine.nmf_mask, mss_cli.engine.mix_masks = once, joined_and_seen
        for name, (share, odds) in RULES.items():
            joined = replace(bases, share=share, odds=odds)
            row[name] = bss_sdr(episode.target, separate_episode(model, cond, episode, unwanted, bases=joined)) - floor
    finally:
        mss_cli.engine.nmf_mask, mss_cli.engine.mix_masks = nmf_mask, mix_masks
    row.update(mask_features(seen["network"], cached[0], seen["magnitude"], model.config.bins))
    return row


def mask_features(network: torch.Tensor, nmf: torch.Tensor, magnitude: torch.Tensor, bins: int) -> dict[str, float]:
    """What the two masks say of the mixture, over the modelled bins and weighted by its
    magnitude: each one's share of it, how decided each is (mean |2m - 1|) and how far apart."""
    m, n, x = (t[:, :bins].float() for t in (network, nmf, magnitude))
    total = float(x.sum()) + 1e-9

    def mean(t: torch.Tensor) -> float:
        return float((t * x).sum()) / total

    return {
        "network share": mean(m),
        "nmf share": mean(n),
        "network decided": mean((2 * m - 1).abs()),
        "nmf decided": mean((2 * n - 1).abs()),
        "apart": mean((m - n).abs()),
    }


def main(argv: list[str] | None = None) -> None:
    gate_rows(__doc__, argv, measures)


if __name__ == "__main__":
    main()
