"""NMF from the example clips: a classical mask mixed into the network's.

The network knows an instrument through what training played it. For instruments training
covered poorly (bowed strings of real recordings above all), the clips' own spectra say more:
KL-divergence NMF learns bases from the ``--like`` clips (the target) and from the ``--not`` clips
(what to leave), and on each chunk of the track, with those bases fixed and a few free ones for
whatever neither explains, the target's share of each bin is a mask. The engine fits it on the
network's modelled bins (0-11 kHz) and extends it above as the network extends its own: as good
(paired means within 0.05 dB) at about 2.5 times less NMF time (`experiments/nmf-bins.md`).

Where NMF helps shows in the clips: when the example encoder hears the ``--like`` and ``--not``
clips alike (violin against viola, one sax against another), its vector cannot tell them apart
and NMF's fine spectral detail can. So by default NMF's mask is mixed in at half for those targets
only (``nmf_share``); elsewhere the network's mask stands, since NMF mixed in everywhere costs real
vocals about half a decibel (`experiments/nmf-mix.md`, `experiments/nmf-gate.md`). ``--nmf`` mixes
it into every target, ``--no-nmf`` into none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mss_cli.errors import UsageError

if TYPE_CHECKING:
    import torch

    from mss_cli.model import ConditionedUNet

COMPONENTS = 16  # bases learned from each side's clips
FREE = 8  # bases each chunk learns for what neither side's clips explain
ITERATIONS = 60
EPS = 1e-9
MAX_SECONDS = 60.0  # of each side's clips that bases are learned from
# The network's share of the mixed mask where the clips sound alike (likeness over ALIKE), and,
# with --nmf, elsewhere. Chosen on seed 11's validation episodes: NMF mixed into every target lost
# least at 0.75 (0.5 cost winds and keys more); on the targets whose clips sound alike, half won
# most, and real vocals, drums and bass seldom sound like their negatives (`experiments/nmf-gate.md`).
ALIKE = 0.45  # the cosine of the clips' mean embeddings (``conditioning.clip_likeness``)
ALIKE_SHARE = 0.5
SHARE = 0.75


def kl_nmf(
    v: torch.Tensor, fixed: torch.Tensor | None, free: int, iters: int = ITERATIONS, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL-divergence NMF of ``v`` (F, T) by multiplicative updates: (bases (F, K), activations (K, T)).
    The columns of ``fixed`` (F, k) are kept as they are; ``free`` more bases are learned. Seeded,
    so a chunk separates the same way every run."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    k = 0 if fixed is None else fixed.shape[1]
    w = torch.rand(v.shape[0], k + free, generator=gen, dtype=v.dtype).to(v.device) + 1e-3
    if fixed is not None:
        w[:, :k] = fixed
    h = torch.rand(k + free, v.shape[1], generator=gen, dtype=v.dtype).to(v.device) + 1e-3
    for _ in range(iters):
        h *= (w.T @ (v / (w @ h + EPS))) / (w.sum(0)[:, None] + EPS)
        if free:
            update = ((v / (w @ h + EPS)) @ h[k:].T) / (h[k:].sum(1)[None] + EPS)
            w[:, k:] *= update
            w[:, k:] /= w[:, k:].sum(0, keepdim=True) + EPS
    return w, h


@dataclass(frozen=True)
class ClipBases:
    """What NMF learned from a target's clips, and how much of the mask stays the network's."""

    target: torch.Tensor  # (F, COMPONENTS) from the --like clips
    other: torch.Tensor  # (F, COMPONENTS) from the --not clips
    share: float  # the network's share of the mixed mask, 0 to 1

    @property
    def mixed_in(self) -> float:
        """NMF's share of the mixed mask (what the status line and ``--json`` report)."""
        return 1 - self.share


def learn_bases(magnitudes: list[torch.Tensor], components: int = COMPONENTS, seed: int = 0) -> torch.Tensor:
    """Bases (F, components) for the magnitude spectrograms (F, T_i) of one side's clips together."""
    import torch

    return kl_nmf(torch.cat(magnitudes, dim=1).double(), None, components, seed=seed)[0].float()


def nmf_mask(magnitude: torch.Tensor, bases: ClipBases, bins: int | None = None, free: int = FREE) -> torch.Tensor:
    """The target's share of each bin of ``magnitude`` (rows, F, T), row by row, with the clips'
    bases fixed and ``free`` bases learned for the rest. ``bins``: fit the lowest bins only (the
    network's modelled bins) and extend the mask above as the network extends its own
    (``model.extend_mask``); None: every bin."""
    import torch

    from mss_cli.model import extend_mask

    bins = magnitude.shape[1] if bins is None else bins
    fixed = torch.cat([bases.target, bases.other], dim=1)[:bins].float().to(magnitude.device)
    k = bases.target.shape[1]
    masks = []
    with torch.autocast(magnitude.device.type, enabled=False):  # float32 throughout, whatever the run's precision
        for row in magnitude[:, :bins].float():
            w, h = kl_nmf(row, fixed, free, seed=1)
            masks.append((w[:, :k] @ h[:k]) / (w @ h + EPS))
    return extend_mask(torch.stack(masks), magnitude.shape[1]).to(magnitude.dtype)


def clip_magnitudes(
    model: ConditionedUNet, pieces: Sequence[np.ndarray], seconds: float = MAX_SECONDS
) -> list[torch.Tensor]:
    """Magnitude spectrograms (F, T) of mono ``pieces`` at the model's rate, on the model's
    transform; at most ``seconds`` of them, taken evenly, so a long clip costs no more to learn."""
    import torch

    step = max(1, int(np.ceil(sum(len(p) for p in pieces) / (seconds * model.config.sample_rate))))
    with torch.no_grad():
        return [
            model.spectrogram.stft(torch.from_numpy(p).to(model.device)[None])[0].abs().cpu() for p in pieces[::step]
        ]


def nmf_share(nmf: bool | None, likeness: float | None) -> float | None:
    """The network's share of a target's mask with NMF mixed in, or None for the network's mask
    alone. ``nmf``: True (``--nmf``), False (``--no-nmf``) or None (by the clips); ``likeness``:
    ``Conditioning.likeness``, None without ``--not`` clips (nothing to learn unwanted bases from)."""
    if nmf is False or likeness is None:
        return None
    if likeness > ALIKE:
        return ALIKE_SHARE
    return SHARE if nmf else None


def clip_bases(
    model: ConditionedUNet, targets: Sequence[np.ndarray], others: Sequence[np.ndarray], share: float = SHARE
) -> ClipBases:
    """NMF bases from mono pieces of the ``--like`` clips (``targets``) and the ``--not`` clips
    (``others``) at the model's rate (``adapt.pieces``), with the network's ``share``."""
    if not len(others):
        raise UsageError("NMF mixing needs clips of what not to keep (not_ / --not): its unwanted bases come from them")
    target = learn_bases(clip_magnitudes(model, targets))
    return ClipBases(target, learn_bases(clip_magnitudes(model, others), seed=2), share)
