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
(a weighted mean of the masks); elsewhere it joins the network's mask through their log-odds, at
0.1 of them (``nmf_join``). A mean of log-odds keeps a bin shut where the network is sure it is
not the target, so NMF's looser mask lets little of a vocal's or a drum kit's bleed through there,
while it still lifts the bins the network is unsure of: a weighted mean of the masks everywhere
costs real vocals about a decibel (`experiments/nmf-mix.md`, `experiments/nmf-gate.md`,
`experiments/nmf-combine.md`). ``--nmf`` gives NMF 0.25 of the log-odds elsewhere, ``--no-nmf``
mixes nothing in.
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
ODDS_EPS = 1e-4  # masks are clamped this far from 0 and 1 before their log-odds are taken
MAX_SECONDS = 60.0  # of each side's clips that bases are learned from
# How NMF's mask joins the network's (``nmf_join``), chosen on validation episodes other than the
# evaluation's (`experiments/nmf-gate.md`, `experiments/nmf-combine.md`): where the clips sound
# alike (likeness over ALIKE), the mean of the two masks, half each, won most; elsewhere the
# log-odds' mean with the network's ODDS_SHARE of it lifts the real instruments and guitars and
# moves no real vocals, drums or bass median by 0.3 dB (0.85 moved vocals 0.35). --nmf gives NMF
# more of the log-odds (NMF_ODDS_SHARE), for more on the instruments and a cost on vocals.
ALIKE = 0.45  # the cosine of the clips' mean embeddings (``conditioning.clip_likeness``)
ALIKE_SHARE = 0.5
ODDS_SHARE: float | None = 0.9  # None: the network's mask alone where the clips do not sound alike
NMF_ODDS_SHARE = 0.75
SHARE = 0.75  # a plain mean's share where nothing else is said (probes, ``clip_bases``)


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
    """What NMF learned from a target's clips, and how its mask joins the network's."""

    target: torch.Tensor  # (F, COMPONENTS) from the --like clips
    other: torch.Tensor  # (F, COMPONENTS) from the --not clips
    share: float  # the network's share of the joined mask (or of its log-odds), 0 to 1
    odds: bool = False  # join the masks' log-odds (True) or the masks themselves (False)

    @property
    def mixed_in(self) -> float:
        """NMF's share of the joined mask, or of its log-odds (what the status line and ``--json``
        report)."""
        return 1 - self.share

    @property
    def join(self) -> str:
        """How the masks join, as ``--json`` and profiles say it: "odds" or "mean"."""
        return "odds" if self.odds else "mean"


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


def mix_masks(network: torch.Tensor, nmf: torch.Tensor, bases: ClipBases) -> torch.Tensor:
    """A target's mask from the network's and NMF's: ``bases.share`` of it the network's, as a
    weighted mean of the masks or of their log-odds (``bases.odds``)."""
    import torch

    if not bases.odds:
        return bases.share * network + bases.mixed_in * nmf.to(network.dtype)
    network_odds, nmf_odds = (torch.logit(m.float().clamp(ODDS_EPS, 1 - ODDS_EPS)) for m in (network, nmf))
    return torch.sigmoid(bases.share * network_odds + bases.mixed_in * nmf_odds).to(network.dtype)


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


def nmf_join(nmf: bool | None, likeness: float | None) -> tuple[float, bool] | None:
    """How NMF's mask joins a target's (the network's share, and whether of the log-odds), or
    None for the network's mask alone. ``nmf``: True (``--nmf``), False (``--no-nmf``) or None (by
    the clips); ``likeness``: ``Conditioning.likeness``, None without ``--not`` clips (nothing to
    learn unwanted bases from)."""
    if nmf is False or likeness is None:
        return None
    if likeness > ALIKE:
        return ALIKE_SHARE, False
    share = NMF_ODDS_SHARE if nmf else ODDS_SHARE
    return None if share is None else (share, True)


def clip_bases(
    model: ConditionedUNet,
    targets: Sequence[np.ndarray],
    others: Sequence[np.ndarray],
    share: float = SHARE,
    odds: bool = False,
) -> ClipBases:
    """NMF bases from mono pieces of the ``--like`` clips (``targets``) and the ``--not`` clips
    (``others``) at the model's rate (``adapt.pieces``), joined to the network's mask with its
    ``share`` (of the log-odds where ``odds``)."""
    if not len(others):
        raise UsageError("NMF mixing needs clips of what not to keep (not_ / --not): its unwanted bases come from them")
    target = learn_bases(clip_magnitudes(model, targets))
    return ClipBases(target, learn_bases(clip_magnitudes(model, others), seed=2), share, odds)
