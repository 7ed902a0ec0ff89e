"""The paper's comparison on our validation data (``mss-research eval --data``).

Methods on the same fixed episodes (mixture segment, target, example clips from other works):
few-shot with 1/3/5/10 positives, 5 positives + 5 negatives (steering the model only, as in the
paper, and also suppressed: their own masks taken out, as ``mss separate`` does), the
class-conditioned baseline, a classical few-shot baseline (NMF bases learned from the example
clips, semi-supervised on the mixture), the mixture itself (floor) and the oracle ideal ratio mask
(ceiling of a mask model). Groups: seen classes, unseen classes (never training targets), unseen
timbres (works rendered with the reserved soundfonts). SDR is BSSEval's (512-tap distortion
filter, fast-bss-eval) over each segment; SI-SDR and SDRi (improvement over the mixture's SDR) are
reported beside it. A run can be paired with an earlier one on the same episodes (``--against``):
how two weights files compare.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from mss_cli.audio import SAMPLE_RATE
from mss_cli.conditioning import (
    Conditioning,
    Partner,
    class_vector,
    clip_likeness,
    trained_classes,
    unwanted_vectors,
)
from mss_cli.engine import make_separator
from mss_cli.errors import UsageError
from mss_cli.evaluate import bss_sdr
from mss_cli.level import at_level, level_dbfs
from mss_cli.metrics import si_sdr
from mss_cli.model import ModelConfig, Spectrogram
from mss_cli.nmf import ClipBases, clip_bases, kl_nmf, nmf_join
from mss_cli.report import Case
from mss_cli.targets import Target
from mss_research.data.episodes import Episode, EpisodeSampler
from mss_research.data.instruments import GUITARS, INSTRUMENT_TARGETS
from mss_research.data.realstems import REAL_TARGETS

REAL = "real recordings"
INSTRUMENTS = "real instruments"
GUITAR = "guitar in productions"
# group -> (datasets, split, target classes). Datasets: "data" the renders (--data); "real" a
# real-stem dataset (--real: held-out songs, examples from other songs); "instruments" the
# real-instrument datasets (--instruments: URMP recordings imported with --all-held-out, held-out
# libraries rendered over held-out songs with mss-research data sampled --held-out).
GROUPS = {
    "seen": ("data", "val", "seen"),
    "unseen": ("data", "val", "unseen"),
    "unseen timbre": ("data", "timbre", "all"),
    REAL: ("real", "real", REAL_TARGETS),
    INSTRUMENTS: ("instruments", "real", INSTRUMENT_TARGETS),
    GUITAR: ("instruments", "real", GUITARS),
}
NMF = "NMF from 5 examples"
SEGMENT_SECONDS = 6.0
EXAMPLE_SECONDS = 3.0
BASELINE = "class-conditioned baseline"
FEWSHOT_5 = "few-shot, 5 positives"
FEWSHOT_5_NEG = "few-shot, 5 positives + 5 negatives"
FEWSHOT_5_SUPPRESSED = "few-shot, 5 positives + 5 suppressed negatives"
AVERAGED = ", averaged with the baseline"  # the suffix of the methods that --class with --like runs
NMF_MORE = FEWSHOT_5_SUPPRESSED + ", NMF joined in (--nmf)"  # what --nmf runs
NMF_DEFAULT = FEWSHOT_5_SUPPRESSED + ", NMF joined in (default)"  # what mss separate runs by default
SETTING = f"{SEGMENT_SECONDS:g}-s mono segments, {EXAMPLE_SECONDS:g}-s example clips"
# The paired differences the table states: what each use of the examples adds, and the baseline.
COMPARISONS = (
    (BASELINE, FEWSHOT_5),
    (FEWSHOT_5_NEG, FEWSHOT_5),
    (FEWSHOT_5_SUPPRESSED, FEWSHOT_5),
    (FEWSHOT_5_SUPPRESSED, FEWSHOT_5_NEG),
    (FEWSHOT_5 + AVERAGED, FEWSHOT_5),
    (FEWSHOT_5 + AVERAGED, BASELINE),
    (FEWSHOT_5_SUPPRESSED + AVERAGED, FEWSHOT_5_SUPPRESSED),
    (FEWSHOT_5, NMF),
    (FEWSHOT_5_SUPPRESSED, NMF),
    (NMF_MORE, FEWSHOT_5_SUPPRESSED),
    (NMF_MORE, NMF),
    (NMF_DEFAULT, FEWSHOT_5_SUPPRESSED),
    (NMF_DEFAULT, NMF),
)


def fewshot(
    model,
    episode: Episode,
    positives: int,
    negatives: int,
    suppressed: bool = False,
    shifts: int = 1,
    baseline=None,
    nmf: bool | None = False,
) -> np.ndarray | None:
    """The few-shot model given the episode's first ``positives`` and ``negatives`` clips, on the
    model's device (training validates on the GPU it trains on); ``suppressed``: the negatives'
    own masks are taken out of the target's too, as ``mss separate`` does by default; ``shifts``:
    each mask averaged over that many shifted passes (``ConditionedUNet.mask``); ``baseline``: averaged
    with that class-conditioned model's mask for the target's class (``--class`` with ``--like``),
    or None where the baseline was not trained on it; ``nmf``: NMF bases learned from the clips mix
    their mask in, as ``--nmf`` (True), ``--no-nmf`` (False) or neither (None) does (``mss_cli.nmf``)."""
    device = model.device
    partner = None if baseline is None else Partner(baseline, target_class_vector(baseline, episode))
    if partner is not None and partner.vector is None:
        return None

    def embed(clips: np.ndarray) -> torch.Tensor:
        # Each clip at the level the model's training clips had, as ``conditioning.embed_clips`` does.
        clips = np.stack([at_level(c, model.config.clip_dbfs, model.config.sample_rate) for c in clips])
        return model.embed_windows(torch.from_numpy(clips).to(device))[None]

    with torch.inference_mode():
        pos = embed(episode.positives[:positives])
        neg_clips = episode.negatives[:negatives]
        neg = embed(neg_clips) if len(neg_clips) else None
        cond = model.conditioning(pos, neg)
        unwanted = unwanted_vectors(model, pos[0], neg[0]) if suppressed and neg is not None else None
    join = nmf_join(nmf, None if neg is None else clip_likeness(pos[0], neg[0]))
    bases = None if join is None else clip_bases(model, list(episode.positives[:positives]), list(neg_clips), *join)
    return separate_episode(model, cond[0], episode, unwanted, shifts, partner, bases)


def target_class_vector(model, episode: Episode) -> torch.Tensor | None:
    """A class-conditioned model's vector for the episode's target, None where it was not trained on that class."""
    return class_vector(model, episode.target_class) if episode.target_class in trained_classes(model) else None


def classcond(model, episode: Episode) -> np.ndarray | None:
    """The class-conditioned baseline, or None where the target is not one of its trained classes."""
    vector = target_class_vector(model, episode)
    return None if vector is None else separate_episode(model, vector, episode)


def separate_episode(
    model,
    cond: torch.Tensor,
    episode: Episode,
    unwanted: torch.Tensor | None = None,
    shifts: int = 1,
    partner: Partner | None = None,
    bases: ClipBases | None = None,
) -> np.ndarray:
    """The episode's mixture through the separator exactly as ``mss separate`` runs it (``cond``:
    the conditioning vector, (cond_dim,))."""
    level = level_dbfs(episode.mixture, model.config.sample_rate)
    target = Target("target", model, Conditioning(cond, "", [], [], unwanted, bases=bases), partner)
    run = make_separator([target], shifts=shifts, level=level)
    return run(torch.from_numpy(episode.mixture)[None])[0, 0].numpy()


# The oracle and NMF baselines use the separator's transform (ModelConfig's n_fft and hop), with no model.
SPECTROGRAM = Spectrogram(ModelConfig.n_fft, ModelConfig.hop)


def _stft(x: np.ndarray) -> torch.Tensor:
    return SPECTROGRAM.stft(torch.from_numpy(x)[None])[0]


def _istft(spec: torch.Tensor, length: int) -> np.ndarray:
    return SPECTROGRAM.istft(spec[None], length)[0].numpy()


def oracle_irm(episode: Episode) -> np.ndarray:
    target, rest = _stft(episode.target).abs(), _stft(episode.mixture - episode.target).abs()
    mask = target / (target + rest + 1e-8)
    return _istft(_stft(episode.mixture) * mask, len(episode.mixture))


def nmf_baseline(episode: Episode, positives: int = 5, components: int = 16, iters: int = 60) -> np.ndarray:
    """Bases of the target learned from its example clips; the mixture gets extra free bases."""
    examples = torch.cat([_stft(clip).abs() for clip in episode.positives[:positives]], dim=1).double()
    w_target, _ = kl_nmf(examples, None, components, iters, seed=0)
    mix_spec = _stft(episode.mixture)
    w, h = kl_nmf(mix_spec.abs().double(), w_target, components, iters, seed=1)
    target = w[:, :components] @ h[:components]
    mask = (target / (w @ h + 1e-9)).float()
    return _istft(mix_spec * mask, len(episode.mixture))


def score(group: str, index: int, method: str, episode: Episode, estimate: np.ndarray, floor: float) -> Case:
    """One estimate of one episode's target, scored as every table here is; ``floor`` is the
    mixture's own SDR (computed once per episode), which SDRi is measured from. The mixture itself
    scores the floor (a BSSEval SDR costs ~90 ms on a 6-s segment; not computed twice)."""
    value = floor if estimate is episode.mixture else bss_sdr(episode.target, estimate)
    return Case(group, index, method, episode.target_class, value, si_sdr(episode.target, estimate), value - floor)


def episodes_for(root: str | Path | Sequence[str | Path], group: str, count: int, seed: int) -> list[Episode]:
    _, split, targets = GROUPS[group]
    sampler = EpisodeSampler(
        root,
        split,
        int(SEGMENT_SECONDS * SAMPLE_RATE),
        int(EXAMPLE_SECONDS * SAMPLE_RATE),
        max_positives=10,
        targets=targets,
        seed=seed,
    )
    return [sampler.sample(positives=10, negatives=5) for _ in range(count)]


def group_episodes(
    root: str | Path,
    count: int,
    seed: int,
    progress: Callable[[str], None] = print,
    real: str | Path | None = None,
    groups: Sequence[str] = (),
    instruments: Sequence[str | Path] = (),
) -> Iterator[tuple[str, list[Episode]]]:
    """Each group's fixed episodes (``episodes_for``): the synthetic groups from ``root``, the real
    recordings from ``real``, the real instruments from the ``instruments`` datasets together. A
    group the data has no usable stems for (a small or custom render may lack a split; a dataset
    not given) is skipped with a note, so one missing group does not end a run that has the others.
    ``groups`` names the groups to run (default: all); a group's episodes are the same whichever
    others run."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise UsageError(f"no group {unknown[0]!r}; the groups are: {'; '.join(GROUPS)}")
    sources = {"data": root, "real": real, "instruments": list(instruments) or None}
    flags = {"real": "--real", "instruments": "--instruments"}
    for group in groups or GROUPS:
        source = sources[GROUPS[group][0]]
        if source is None:
            progress(f"skipping {group}: no dataset given ({flags[GROUPS[group][0]]})")
            continue
        try:
            episodes = episodes_for(source, group, count, seed)
        except ValueError as exc:
            progress(f"skipping {group}: {exc}")
            continue
        yield group, episodes


def evaluate(
    root: str | Path,
    model,
    baseline=None,
    episodes: int = 30,
    seed: int = 7,
    progress: Callable[[str], None] = print,
    methods: Sequence[str] = (),
    real: str | Path | None = None,
    groups: Sequence[str] = (),
    instruments: Sequence[str | Path] = (),
) -> list[Case]:
    """Run every method (or those named in ``methods``) on fixed episodes of each group, the real
    recordings' from the ``real`` dataset and the real instruments' from the ``instruments``
    datasets if given (deterministic for a seed: a later run with
    other weights sees the same episodes)."""
    every = {
        "mixture (floor)": lambda e: e.mixture,
        "oracle IRM (ceiling)": oracle_irm,
        NMF: nmf_baseline,
        "few-shot, 1 positive": lambda e: fewshot(model, e, 1, 0),
        "few-shot, 3 positives": lambda e: fewshot(model, e, 3, 0),
        FEWSHOT_5: lambda e: fewshot(model, e, 5, 0),
        "few-shot, 10 positives": lambda e: fewshot(model, e, 10, 0),
        FEWSHOT_5_NEG: lambda e: fewshot(model, e, 5, 5),
        FEWSHOT_5_SUPPRESSED: lambda e: fewshot(model, e, 5, 5, suppressed=True),
        NMF_MORE: lambda e: fewshot(model, e, 5, 5, suppressed=True, nmf=True),
        NMF_DEFAULT: lambda e: fewshot(model, e, 5, 5, suppressed=True, nmf=None),
    }
    if baseline is not None:
        every[BASELINE] = lambda e: classcond(baseline, e)
        every[FEWSHOT_5 + AVERAGED] = lambda e: fewshot(model, e, 5, 0, baseline=baseline)
        every[FEWSHOT_5_SUPPRESSED + AVERAGED] = lambda e: fewshot(model, e, 5, 5, suppressed=True, baseline=baseline)
    unknown = [m for m in methods if m not in every]
    if unknown:
        raise UsageError(f"no method {unknown[0]!r} here; the methods are: {'; '.join(every)}")
    chosen = {m: every[m] for m in methods} if methods else every
    cases: list[Case] = []
    for group, eps in group_episodes(root, episodes, seed, progress, real, groups, instruments):
        started = time.time()
        for index, e in enumerate(eps):
            floor = bss_sdr(e.target, e.mixture)
            for name, fn in chosen.items():
                est = fn(e)
                if est is not None:
                    cases.append(score(group, index, name, e, est, floor))
        progress(f"{group}: {len(eps)} episodes in {time.time() - started:.0f} s")
    return cases
