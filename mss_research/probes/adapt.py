"""Test-time adaptation: does tuning the conditioning vector on mixtures made from the user's own
clips separate the weak real classes (bowed strings, marimba) better? (`experiments/test-time-adaptation.md`)

    python -m mss_research.probes.adapt WEIGHTS INSTRUMENTS... [--episodes 100] [--steps 60] [--nmf]

On the "real instruments" group's episodes of ``mss-research eval`` (same seed, same episodes),
the default method (5 clips + 5 suppressed negatives) against the same with its conditioning
vector tuned for up to ``--steps`` Adam steps: each step separates a batch of mixtures made from
one of the first 4 positive clips (the target) and 1-3 of the negative clips (at random gains and
offsets) and lowers their -SDR; mixtures of the 5th clip, held out, choose the step kept (the
untuned vector included). Only the vector moves (a profile can store it); the suppression vectors
stay. Prints the paired difference, overall and per class, and the seconds adaptation costs.
``--nmf`` also scores NMF from the clips joined as ``mss_cli.nmf.nmf_join`` joins it: with the
untuned vector (``mss separate``'s default), the tuned one (``--adapt``) and the tuned one with
``--nmf``'s join (``--adapt --nmf``), each paired against the network alone
(`experiments/nmf-mix.md`, `experiments/nmf-gate.md`).
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace

import numpy as np
import torch

from mss_cli.adapt import mixtures, separated, tune_vector
from mss_cli.conditioning import clip_likeness, unwanted_vectors
from mss_cli.level import at_level
from mss_cli.metrics import negative_sdr
from mss_cli.nmf import clip_bases, nmf_join
from mss_cli.report import Case
from mss_cli.weights import load_model
from mss_research.data.episodes import Episode
from mss_research.paper_eval import (
    FEWSHOT_5_SUPPRESSED,
    INSTRUMENTS,
    NMF_DEFAULT,
    episodes_for,
    score,
    separate_episode,
)
from mss_research.report import paired_note

ADAPTED = FEWSHOT_5_SUPPRESSED + ", vector tuned on the clips"
ADAPTED_DEFAULT = ADAPTED + ", NMF joined in (default)"  # --adapt
BOTH = ADAPTED + ", NMF joined in (--nmf)"  # --adapt --nmf


def adapted_vector(
    model, cond: torch.Tensor, episode: Episode, steps: int, lr: float, seed: int, check_every: int = 0
) -> tuple[torch.Tensor, int]:
    """``cond`` (cond_dim,) tuned as ``mss_cli.adapt`` tunes it, on mixtures of the episode's 5
    positive clips over its negative clips. With ``check_every``, the first four clips train and
    every ``check_every`` steps the vector is scored on fixed mixtures of the fifth (held out), and
    the best of those checks, the untuned vector included, is kept. Returns the vector and the
    step it is from (0: the untuned one)."""
    positives, others = list(episode.positives[:5]), list(episode.negatives[:5])
    if not check_every:
        return tune_vector(model, cond, positives, others, steps, lr, seed), steps
    held_mix, held_target = (torch.from_numpy(a) for a in mixtures(positives[4:5], others, 4, random.Random(seed + 1)))

    def held_out_loss(vector: torch.Tensor) -> float:
        with torch.no_grad():
            return float(negative_sdr(held_target, separated(model, vector, held_mix)).mean())

    best = {"vector": cond.clone(), "step": 0, "loss": held_out_loss(cond)}

    def check(step: int, vector: torch.Tensor) -> None:
        if step % check_every == 0 and (value := held_out_loss(vector)) < best["loss"]:
            best.update(vector=vector.clone(), step=step, loss=value)

    tune_vector(model, cond, positives[:4], others, steps, lr, seed, on_step=check)
    return best["vector"], best["step"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("instruments", nargs="+")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--check-every", type=int, default=0, help="hold out the 5th clip and keep the best check")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--classes", default="", help="only episodes of these classes (comma-separated)")
    parser.add_argument("--nmf", action="store_true", help="also the tuned vector with NMF mixed in (--adapt --nmf)")
    args = parser.parse_args(argv)
    from mss_cli.evaluate import bss_sdr

    model = load_model(args.weights)
    episodes = episodes_for(args.instruments, INSTRUMENTS, args.episodes, args.seed)
    wanted = set(filter(None, args.classes.split(",")))
    cases: list[Case] = []
    seconds = []
    for index, episode in enumerate(episodes):
        if wanted and episode.target_class not in wanted:
            continue
        pos = embed(model, episode.positives[:5])
        neg = embed(model, episode.negatives[:5])
        cond, unwanted = default_vectors(model, pos, neg)
        floor = bss_sdr(episode.target, episode.mixture)
        plain = separate_episode(model, cond, episode, unwanted)
        started = time.time()
        tuned, kept = adapted_vector(model, cond, episode, args.steps, args.lr, index, args.check_every)
        seconds.append(time.time() - started)
        adapted = separate_episode(model, tuned, episode, unwanted)
        cases.append(score(INSTRUMENTS, index, FEWSHOT_5_SUPPRESSED, episode, plain, floor))
        cases.append(score(INSTRUMENTS, index, ADAPTED, episode, adapted, floor))
        if args.nmf:
            likeness = clip_likeness(pos, neg)
            bases = clip_bases(model, list(episode.positives[:5]), list(episode.negatives[:5]))
            by_default, forced = (
                replace(bases, share=s, odds=o) for s, o in (nmf_join(n, likeness) for n in (None, True))
            )
            runs = (
                (NMF_DEFAULT, cond, by_default),
                (ADAPTED_DEFAULT, tuned, by_default),
                (BOTH, tuned, forced),
            )
            for name, vector, mixed in runs:
                estimate = separate_episode(model, vector, episode, unwanted, bases=mixed)
                cases.append(score(INSTRUMENTS, index, name, episode, estimate, floor))
        print(
            f"{index} {episode.target_class}: "
            + " -> ".join(f"{c.sdri:+.2f}" for c in cases if c.episode == index)
            + " dB "
            f"(step {kept}; {seconds[-1]:.1f} s)",
            flush=True,
        )
    print(paired_note(cases, INSTRUMENTS, ADAPTED, FEWSHOT_5_SUPPRESSED))
    if args.nmf:
        print(paired_note(cases, INSTRUMENTS, NMF_DEFAULT, FEWSHOT_5_SUPPRESSED))
        for name in (ADAPTED_DEFAULT, BOTH):
            print(paired_note(cases, INSTRUMENTS, name, NMF_DEFAULT))
    for cls in sorted({c.target_class for c in cases}):
        of = [c for c in cases if c.target_class == cls]
        print(f"{cls}: " + paired_note(of, INSTRUMENTS, ADAPTED, FEWSHOT_5_SUPPRESSED))
        medians = {m: np.median([c.sdri for c in of if c.method == m]) for m in dict.fromkeys(c.method for c in of)}
        print("  medians: " + ", ".join(f"{m} {v:+.2f}" for m, v in medians.items()))
    print(f"adaptation: {np.median(seconds):.1f} s per target (median), {args.steps} steps of 4 mixtures")


def embed(model, clips: np.ndarray) -> torch.Tensor:
    """Per-clip embeddings of example clips, each at the level the model's training clips had."""
    with torch.no_grad():
        at = np.stack([at_level(c, model.config.clip_dbfs, model.config.sample_rate) for c in clips])
        return model.embed_windows(torch.from_numpy(at).to(model.device))


def default_vectors(model, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The default method's conditioning vector and suppression vectors from per-clip embeddings
    ``pos`` and ``neg`` (``embed``), as ``mss separate`` makes them from 5 clips and 5 negatives."""
    with torch.no_grad():
        return model.conditioning(pos[None], neg[None])[0], unwanted_vectors(model, pos, neg)


if __name__ == "__main__":
    main()
