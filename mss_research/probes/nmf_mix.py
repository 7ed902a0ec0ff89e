"""Does the model's estimate mixed with NMF's, both from the same clips, separate the real
instruments better than either? (`experiments/nmf-mix.md`)

    python -m mss_research.probes.nmf_mix WEIGHTS DATA... [--group "real instruments"] [--episodes 100] [--seed 11]

On a group's episodes of ``mss-research eval`` (DATA: its datasets, as ``--instruments`` or
``--real`` takes them): the default method (5 clips + 5 suppressed negatives), NMF from the 5
clips (``paper_eval.nmf_baseline``), NMF that also fixes bases learned from the 5 negative clips,
weighted sums of the model's estimate and each NMF's (a sum of estimates is the same sum of their
masks on the one mixture), and with ``--choose`` the sum whose share is chosen per episode on
mixtures of its clips (``chosen_share``; not kept in the product). Each is paired against the
default method, overall and per class.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from mss_cli.adapt import mixtures
from mss_cli.evaluate import bss_sdr
from mss_cli.metrics import sdr
from mss_cli.nmf import clip_bases
from mss_cli.report import Case
from mss_cli.weights import load_model
from mss_research.data.episodes import Episode
from mss_research.paper_eval import (
    FEWSHOT_5_SUPPRESSED,
    GROUPS,
    INSTRUMENTS,
    NMF,
    episodes_for,
    nmf_baseline,
    score,
    separate_episode,
)
from mss_research.probes.adapt import default_vectors, embed
from mss_research.report import paired_note

NMF_NEG = "NMF from 5 examples and 5 negatives"
WEIGHTS = (0.25, 0.5, 0.75)  # the model's share
CHOICES = (0.0, 0.25, 0.5, 0.75, 1.0)
CHOSEN = "model + NMF with negatives, share chosen on the clips"


def nmf_with_negatives(model, episode: Episode) -> np.ndarray:
    """NMF's estimate alone as ``--nmf`` makes it: bases learned from the positive and negative
    clips (``mss_cli.nmf.clip_bases``), the network's share 0."""
    bases = replace(clip_bases(model, list(episode.positives[:5]), list(episode.negatives[:5])), share=0.0)
    return separate_episode(model, torch.zeros(model.config.cond_dim), episode, bases=bases)


def model_estimate(model, pos: torch.Tensor, neg: torch.Tensor, episode: Episode) -> np.ndarray:
    """The default method's estimate of ``episode``'s mixture from per-clip embeddings ``pos`` and ``neg``."""
    cond, unwanted = default_vectors(model, pos, neg)
    return separate_episode(model, cond, episode, unwanted)


def chosen_share(model, episode: Episode, pos: torch.Tensor, neg: torch.Tensor, seed: int) -> float:
    """The model's share that separates mixtures of the clips best, scored by SDR: each positive
    clip held out in turn (the model conditioned on the other four, NMF's target bases learned from
    them) over 1-3 negative clips' second halves (``mss_cli.adapt.mixtures``). NMF's unwanted bases
    come from the negatives' first halves, so it never meets the audio it is scored on; the
    model's suppression embeds the whole clips, an advantage that favours the model."""
    rng = random.Random(seed)
    scores = np.zeros(len(CHOICES))
    positives, negatives = episode.positives[:5], episode.negatives[:5]
    half = negatives.shape[1] // 2
    for i in range(len(positives)):
        keep = [j for j in range(len(positives)) if j != i]
        others = [np.resize(n[half:], positives.shape[1]) for n in negatives]
        mixed, targets = mixtures(positives[i : i + 1], others, 2, rng)
        for mix, target in zip(mixed, targets):
            held = replace(episode, mixture=mix, positives=positives[keep], negatives=negatives[:, :half])
            ours = model_estimate(model, pos[keep], neg, held)
            theirs = nmf_with_negatives(model, held)
            for k, w in enumerate(CHOICES):
                scores[k] += sdr(target, w * ours + (1 - w) * theirs)
    return CHOICES[int(np.argmax(scores))]


def gate_rows(doc: str, argv: list[str] | None, extra: Callable[..., dict]) -> None:
    """The loop of the probes that study when to mix NMF in (``nmf_gate``, ``nmf_check``): for each
    of a group's episodes, the default method's estimate and NMF's, and one JSON line to ``-o``
    with the episode's index, class and what ``extra(model, episode, pos, neg, floor, ours,
    theirs, index)`` measures."""
    parser = group_parser(doc)
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args(argv)
    model = load_model(args.weights)
    with open(args.out, "w") as out:
        for index, episode in enumerate(episodes_for(args.data, args.group, args.episodes, args.seed)):
            pos, neg = embed(model, episode.positives[:5]), embed(model, episode.negatives[:5])
            floor = bss_sdr(episode.target, episode.mixture)
            ours = model_estimate(model, pos, neg, episode)
            theirs = nmf_with_negatives(model, episode)
            row = {"index": index, "class": episode.target_class}
            row.update(extra(model, episode, pos, neg, floor, ours, theirs, index))
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(" ".join(f"{k}={v:+.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def group_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments of a probe on one group's episodes: WEIGHTS DATA... --group --episodes --seed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("data", nargs="+")
    parser.add_argument("--group", default=INSTRUMENTS, choices=list(GROUPS))
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = group_parser(__doc__)
    parser.add_argument("--choose", action="store_true", help="also the share chosen on the clips (slow)")
    args = parser.parse_args(argv)
    model = load_model(args.weights)
    cases: list[Case] = []
    methods = [NMF, NMF_NEG]
    for index, episode in enumerate(episodes_for(args.data, args.group, args.episodes, args.seed)):
        pos, neg = embed(model, episode.positives[:5]), embed(model, episode.negatives[:5])
        floor = bss_sdr(episode.target, episode.mixture)
        ours = model_estimate(model, pos, neg, episode)
        estimates = {
            FEWSHOT_5_SUPPRESSED: ours,
            NMF: nmf_baseline(episode),
            NMF_NEG: nmf_with_negatives(model, episode),
        }
        for base in (NMF, NMF_NEG):
            for w in WEIGHTS:
                estimates[f"{w:g} model + {1 - w:g} {base}"] = w * ours + (1 - w) * estimates[base]
        share = chosen_share(model, episode, pos, neg, index) if args.choose else None
        if share is not None:
            estimates[CHOSEN] = share * ours + (1 - share) * estimates[NMF_NEG]
        for name, estimate in estimates.items():
            cases.append(score(args.group, index, name, episode, estimate, floor))
        line = " ".join(f"{c.sdri:+.1f}" for c in cases[-len(estimates) :])
        print(f"{index} {episode.target_class}: {line}" + ("" if share is None else f" (share {share:g})"), flush=True)
        methods = list(estimates)
    for name in methods[1:]:
        print(f"{name} vs model: {paired_note(cases, args.group, name, FEWSHOT_5_SUPPRESSED)}")
    for cls in sorted({c.target_class for c in cases}):
        of = [c for c in cases if c.target_class == cls]
        medians = {m: np.median([c.sdri for c in of if c.method == m]) for m in methods}
        print(f"{cls} ({len(of) // len(methods)}): " + ", ".join(f"{m} {v:+.2f}" for m, v in medians.items()))


if __name__ == "__main__":
    main()
