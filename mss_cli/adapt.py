"""Test-time adaptation: the conditioning vector tuned on mixtures made from the user's own clips.

The example encoder places a target's clips where training put similar sounds; for an instrument
training never quite covered (bowed strings of real recordings), that point separates it poorly
although the clips say what it sounds like. A few Adam steps on the vector alone, each separating
mixtures of one ``--like`` clip over some ``--not`` clips and lowering their -SDR, move it where
the separator takes those clips out best. The model does not change, so a profile stores the
result and an album pays for it once (`experiments/test-time-adaptation.md`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from mss_cli.conditioning import Clip, Conditioning, clip_label, clip_windows
from mss_cli.errors import UsageError
from mss_cli.metrics import negative_sdr

if TYPE_CHECKING:
    import torch

    from mss_cli.model import ConditionedUNet

STEPS = 20
LEARNING_RATE = 0.02
BATCH = 4


def mixtures(
    targets: Sequence[np.ndarray], others: Sequence[np.ndarray], batch: int, rng: random.Random
) -> tuple[np.ndarray, np.ndarray]:
    """(mixtures, targets), (batch, samples): one of ``targets`` over 1 to 3 of ``others``, each at a
    random gain (-6 to +6 dB against the target) and a random circular offset."""
    mixed, chosen = [], []
    for _ in range(batch):
        target = targets[rng.randrange(len(targets))]
        rest = np.zeros_like(target)
        for clip in rng.sample(list(others), rng.randint(1, min(3, len(others)))):
            gain = 10 ** (rng.uniform(-6, 6) / 20) * np.sqrt(np.mean(target**2) / (np.mean(clip**2) + 1e-12))
            rest += np.roll(clip, rng.randrange(len(clip))) * np.float32(gain)
        mixed.append(target + rest)
        chosen.append(target)
    return np.stack(mixed), np.stack(chosen)


def separated(model: ConditionedUNet, vector: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Each row through ``model`` with the conditioning ``vector``, shown at the model's training
    level as ``mss separate`` shows a track (``level``)."""
    import torch

    from mss_cli.level import gain_to

    level = 10 * torch.log10(rows.pow(2).mean(-1).clamp_min(1e-10))
    estimates = []
    for row, dbfs in zip(rows, level):
        spec, feats = model.features(row[None], gain_to(float(dbfs), model.config.mixture_dbfs))
        estimates.append(model.apply_mask(spec, model.mask(feats, vector[None]), row.shape[-1]))
    return torch.cat(estimates)


def tune_vector(
    model: ConditionedUNet,
    vector: torch.Tensor,
    targets: Sequence[np.ndarray],
    others: Sequence[np.ndarray],
    steps: int = STEPS,
    lr: float = LEARNING_RATE,
    seed: int = 0,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """``vector`` (cond_dim,) after ``steps`` Adam steps on ``mixtures`` of ``targets`` over ``others``
    (mono pieces at the model's rate, all one length); the model's weights do not move.
    ``on_step(step, vector)`` sees the vector after each step (1 to ``steps``)."""
    import torch

    rng = random.Random(seed)
    base = vector.detach().clone().to(model.device)
    delta = torch.zeros_like(base, requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=lr)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            for step in range(1, steps + 1):
                mixed, chosen = (torch.from_numpy(a).to(model.device) for a in mixtures(targets, others, BATCH, rng))
                loss = negative_sdr(chosen, separated(model, base + delta, mixed)).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                if on_step is not None:
                    on_step(step, (base + delta).detach())
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return (base + delta).detach().cpu()


def pieces(model: ConditionedUNet, clips: Sequence[Clip], sample_rate: int | None) -> list[np.ndarray]:
    """Every non-silent mono window of the clips at the model's rate (as they are embedded)."""
    out: list[np.ndarray] = []
    for index, clip in enumerate(clips):
        out += list(clip_windows(clip, model.config.sample_rate, None, sample_rate, clip_label(clip, index)))
    return out


def adapt(
    model: ConditionedUNet,
    cond: Conditioning,
    targets: Sequence[np.ndarray],
    others: Sequence[np.ndarray],
    steps: int = STEPS,
) -> Conditioning:
    """``cond`` with its vector tuned on mixtures of ``targets`` over ``others``: the ``pieces`` of
    the like and not clips it was made from; its suppression vectors stay as they are."""
    if not len(others):
        raise UsageError(
            "adapting needs clips of what not to keep (not_ / --not): they are what the clips are mixed with"
        )
    if model.config.kind != "fewshot":
        raise UsageError("only a few-shot model's conditioning is adapted")
    length = min(len(p) for p in [*targets, *others])
    vector = tune_vector(model, cond.vector, [t[:length] for t in targets], [o[:length] for o in others], steps)
    return replace(cond, vector=vector, adapted_steps=steps)
