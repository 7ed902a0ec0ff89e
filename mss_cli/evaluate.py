"""Evaluation: the paper's comparison on our validation data, and SDR on a user's own folder.

Methods on the same fixed episodes (mixture segment, target, example clips from other works):
few-shot with 1/3/5/10 positives, 5 positives + 5 negatives (steering the model only, as in the
paper, and also suppressed: their own masks taken out, as ``mss separate`` does), the
class-conditioned baseline, a
classical few-shot baseline (NMF bases learned from the example clips, semi-supervised on the
mixture), the mixture itself (floor) and the oracle ideal ratio mask (ceiling of a mask model).
Groups: seen classes, unseen classes (never training targets), unseen timbres (works rendered with
the reserved soundfonts). SDR is BSSEval's (512-tap distortion filter, fast-bss-eval) over each
segment; SI-SDR and SDRi (improvement over the mixture's SDR) are reported beside it. A run can be
paired with an earlier one on the same episodes (``--against``): how two weights files compare.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mss_cli.conditioning import class_vector, suppression_vectors, trained_classes
from mss_cli.data.episodes import Episode, EpisodeSampler
from mss_cli.errors import UsageError
from mss_cli.files import refuse_to_replace, write_atomically
from mss_cli.level import at_level, level_dbfs
from mss_cli.metrics import si_sdr
from mss_cli.model import ModelConfig, Spectrogram
from mss_cli.separate import make_separator

GROUPS = {"seen": ("val", "seen"), "unseen": ("val", "unseen"), "unseen timbre": ("timbre", "all")}
SEGMENT_SECONDS = 6.0
EXAMPLE_SECONDS = 3.0
BASELINE = "class-conditioned baseline"
FEWSHOT_5 = "few-shot, 5 positives"
FEWSHOT_5_NEG = "few-shot, 5 positives + 5 negatives"
FEWSHOT_5_SUPPRESSED = "few-shot, 5 positives + 5 suppressed negatives"
AVERAGED = ", averaged with the baseline"  # the suffix of the methods that --class with --like runs


def bss_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """BSSEval SDR with a 512-tap filter (fast-bss-eval, torch backend; NumPy 2 safe)."""
    import fast_bss_eval

    ref = torch.from_numpy(reference.astype(np.float64))[None]
    est = torch.from_numpy(estimate.astype(np.float64))[None]
    return float(fast_bss_eval.sdr(ref, est, load_diag=1e-6)[0])


def fewshot(model, episode: Episode, positives: int, negatives: int, suppressed: bool = False,
            shifts: int = 1, baseline=None) -> np.ndarray | None:
    """The few-shot model given the episode's first ``positives`` and ``negatives`` clips, on the
    model's device (training validates on the GPU it trains on); ``suppressed``: the negatives'
    own masks are taken out of the target's too, as ``mss separate`` does by default; ``shifts``:
    each mask averaged over that many shifted passes (``Separator.mask``); ``baseline``: averaged
    with that class-conditioned model's mask for the target's class (``--class`` with ``--like``),
    or None where the baseline was not trained on it."""
    device = model.device
    partners = [] if baseline is None else [(baseline, target_class_vector(baseline, episode))]
    if any(vector is None for _, vector in partners):
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
        suppress = suppression_vectors(model, pos[0], neg[0]) if suppressed and neg is not None else None
    return separate_episode(model, cond, episode, suppress, shifts, partners)


def target_class_vector(model, episode: Episode) -> torch.Tensor | None:
    """A class-conditioned model's vector for the episode's target, None where it was not trained on that class."""
    return class_vector(model, episode.target_class) if episode.target_class in trained_classes(model) else None


def classcond(model, episode: Episode) -> np.ndarray | None:
    """The class-conditioned baseline, or None where the target is not one of its trained classes."""
    vector = target_class_vector(model, episode)
    return None if vector is None else separate_episode(model, vector, episode)


def separate_episode(model, cond: torch.Tensor, episode: Episode, suppress: torch.Tensor | None = None,
                     shifts: int = 1, partners: Sequence[tuple] = ()) -> np.ndarray:
    """The episode's mixture through the separator exactly as ``mss separate`` runs it."""
    level = level_dbfs(episode.mixture, model.config.sample_rate)
    run = make_separator(model, cond, suppress=suppress, shifts=shifts, level=level, partners=partners)
    return run(torch.from_numpy(episode.mixture)[None])[0].numpy()


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


def nmf(v: torch.Tensor, w: torch.Tensor | None, free: int, iters: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """KL-divergence NMF with multiplicative updates; columns of ``w`` given are kept fixed."""
    gen = torch.Generator().manual_seed(seed)
    fixed = 0 if w is None else w.shape[1]
    w_all = torch.rand(v.shape[0], fixed + free, generator=gen, dtype=v.dtype) + 1e-3
    if w is not None:
        w_all[:, :fixed] = w
    h = torch.rand(fixed + free, v.shape[1], generator=gen, dtype=v.dtype) + 1e-3
    for _ in range(iters):
        h *= (w_all.T @ (v / (w_all @ h + 1e-9))) / (w_all.sum(0)[:, None] + 1e-9)
        update = ((v / (w_all @ h + 1e-9)) @ h.T) / (h.sum(1)[None] + 1e-9)
        update[:, :fixed] = 1.0
        w_all *= update
        w_all /= w_all.sum(0, keepdim=True) + 1e-9
    return w_all, h


def nmf_baseline(episode: Episode, positives: int = 5, components: int = 16, iters: int = 60) -> np.ndarray:
    """Bases of the target learned from its example clips; the mixture gets extra free bases."""
    examples = torch.cat([_stft(clip).abs() for clip in episode.positives[:positives]], dim=1).double()
    w_target, _ = nmf(examples, None, components, iters, seed=0)
    mix_spec = _stft(episode.mixture)
    w, h = nmf(mix_spec.abs().double(), w_target, components, iters, seed=1)
    target = w[:, :components] @ h[:components]
    mask = (target / (w @ h + 1e-9)).float()
    return _istft(mix_spec * mask, len(episode.mixture))


@dataclass
class Case:
    group: str
    episode: int
    method: str
    target_class: str
    sdr: float
    si_sdr: float
    sdri: float


def score(group: str, index: int, method: str, episode: Episode, estimate: np.ndarray, floor: float) -> Case:
    """One estimate of one episode's target, scored as every table here is; ``floor`` is the
    mixture's own SDR (computed once per episode), which SDRi is measured from. The mixture itself
    scores the floor (a BSSEval SDR costs ~90 ms on a 6-s segment; not computed twice)."""
    value = floor if estimate is episode.mixture else bss_sdr(episode.target, estimate)
    return Case(group, index, method, episode.target_class, value, si_sdr(episode.target, estimate), value - floor)


def episodes_for(root: str | Path, group: str, count: int, seed: int) -> list[Episode]:
    split, targets = GROUPS[group]
    sampler = EpisodeSampler(root, split, int(SEGMENT_SECONDS * 44100), int(EXAMPLE_SECONDS * 44100),
                             max_positives=10, targets=targets, seed=seed)
    return [sampler.sample(positives=10, negatives=5) for _ in range(count)]


def group_episodes(root: str | Path, count: int, seed: int, progress=print) -> Iterator[tuple[str, list[Episode]]]:
    """Each group's fixed episodes (``episodes_for``), skipping with a note a group the data has no
    usable stems for (a small or custom render may lack a split), so one missing group does not end
    a run that has the others."""
    for group in GROUPS:
        try:
            episodes = episodes_for(root, group, count, seed)
        except ValueError as exc:
            progress(f"skipping {group}: {exc}")
            continue
        yield group, episodes


def evaluate(root: str | Path, model, baseline=None, episodes: int = 30, seed: int = 7,
             progress=print, methods: Sequence[str] = ()) -> list[Case]:
    """Run every method (or those named in ``methods``) on fixed episodes of each group
    (deterministic for a seed: a later run with other weights sees the same episodes)."""
    every = {
        "mixture (floor)": lambda e: e.mixture,
        "oracle IRM (ceiling)": oracle_irm,
        "NMF from 5 examples": nmf_baseline,
        "few-shot, 1 positive": lambda e: fewshot(model, e, 1, 0),
        "few-shot, 3 positives": lambda e: fewshot(model, e, 3, 0),
        FEWSHOT_5: lambda e: fewshot(model, e, 5, 0),
        "few-shot, 10 positives": lambda e: fewshot(model, e, 10, 0),
        FEWSHOT_5_NEG: lambda e: fewshot(model, e, 5, 5),
        FEWSHOT_5_SUPPRESSED: lambda e: fewshot(model, e, 5, 5, suppressed=True),
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
    for group, eps in group_episodes(root, episodes, seed, progress):
        started = time.time()
        for index, e in enumerate(eps):
            floor = bss_sdr(e.target, e.mixture)
            for name, fn in chosen.items():
                est = fn(e)
                if est is not None:
                    cases.append(score(group, index, name, e, est, floor))
        progress(f"{group}: {len(eps)} episodes in {time.time() - started:.0f} s")
    return cases


def table(cases: list[Case]) -> str:
    """Markdown: median SDRi / SDR per method and group."""
    groups = list(dict.fromkeys(c.group for c in cases))
    methods = list(dict.fromkeys(c.method for c in cases))
    head = "| method | " + " | ".join(f"{g}: SDRi / SDR / SI-SDR (dB)" for g in groups) + " |"
    lines = [head, "|---" * (len(groups) + 1) + "|"]
    for m in methods:
        cells = []
        for g in groups:
            sel = [c for c in cases if c.method == m and c.group == g]
            cells.append(f"{np.median([c.sdri for c in sel]):+.2f} / {np.median([c.sdr for c in sel]):.2f} / "
                         f"{np.median([c.si_sdr for c in sel]):.2f}" if sel else "n/a")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{g}: {sum(c.group == g and c.method == methods[0] for c in cases)} cases" for g in groups)
    notes = [f"Medians over fixed episodes ({counts}); {SEGMENT_SECONDS:g}-s mono segments, {EXAMPLE_SECONDS:g}-s example clips."]
    notes += [paired_note(cases, g, m, FEWSHOT_5) for g in pools(cases) for m in (BASELINE, FEWSHOT_5_NEG, FEWSHOT_5_SUPPRESSED)]
    notes += [paired_note(cases, g, FEWSHOT_5_SUPPRESSED, FEWSHOT_5_NEG) for g in pools(cases)]
    notes += [paired_note(cases, g, FEWSHOT_5 + AVERAGED, m) for g in pools(cases) for m in (FEWSHOT_5, BASELINE)]
    notes += [paired_note(cases, g, FEWSHOT_5_SUPPRESSED + AVERAGED, FEWSHOT_5_SUPPRESSED) for g in pools(cases)]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" if i else n for i, n in enumerate(x for x in notes if x)) + "\n"


def by_class(cases: list[Case]) -> str:
    """Markdown: median SDRi per group and target class, for each method. A group's median hides
    which instruments fail: in the shipped model's table, drums and bass make up a third of the seen
    group at +11-12 dB, while quiet cellos and pads sit below 0 dB."""
    groups = list(dict.fromkeys(c.group for c in cases))
    methods = [m for m in dict.fromkeys(c.method for c in cases) if not m.startswith("mixture")]
    sdri: dict[tuple[str, str, str], list[float]] = {}
    episodes: dict[tuple[str, str], set[int]] = {}
    for c in cases:
        sdri.setdefault((c.group, c.target_class, c.method), []).append(c.sdri)
        episodes.setdefault((c.group, c.target_class), set()).add(c.episode)
    lines = ["| group | class | episodes | " + " | ".join(methods) + " |", "|---" * (len(methods) + 3) + "|"]
    for group, cls in sorted(episodes, key=lambda key: (groups.index(key[0]), key[1])):
        cells = [f"{np.median(sdri[group, cls, m]):+.2f}" if (group, cls, m) in sdri else "n/a" for m in methods]
        lines.append(f"| {group} | {cls} | {len(episodes[group, cls])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


METRICS = {"sdri": "SDRi", "si_sdr": "SI-SDR", "sdr": "SDR"}


def paired(cases: list[Case], group: str | None, method: str, other: str,
           metric: str = "sdri") -> tuple[np.ndarray, np.ndarray]:
    """``metric`` of ``method`` and of ``other`` on the episodes of ``group`` (of every group, pooled,
    when None) that both have, in the same order: the material every paired figure is made of."""
    def values(name: str) -> dict[tuple[str, int], float]:
        return {(c.group, c.episode): getattr(c, metric) for c in cases if c.method == name and group in (None, c.group)}

    ours, theirs = values(method), values(other)
    both = sorted(ours.keys() & theirs.keys())
    return np.array([ours[k] for k in both]), np.array([theirs[k] for k in both])


def pools(cases: list[Case]) -> list[str | None]:
    """The groups of ``cases`` to pair on: each, then all of them pooled (None) where there are several,
    since a sub-decibel difference that 100 episodes of one group cannot resolve may show over 300."""
    groups = list(dict.fromkeys(c.group for c in cases))
    return [*groups, None] if len(groups) > 1 else groups


def paired_note(cases: list[Case], group: str | None, method: str, other: str, metric: str = "sdri") -> str:
    """``method`` against ``other`` on the episodes of ``group`` (every group's, pooled, when None)
    that both have.

    Two medians over 30 episodes move by a decibel or two with the draw; the median of per-episode
    differences, and how often one wins, compare the two on the same material. Where ``method``
    covers only some episodes (the class-conditioned baseline knows only its training classes),
    ``other`` is scored on exactly those.
    """
    ours, theirs = paired(cases, group, method, other, metric)
    if not len(ours):
        return ""
    every = len({(c.group, c.episode) for c in cases if group in (None, c.group)})
    where = f"all {len(ours)} episodes" if len(ours) == every else f"the {len(ours)} of {every} episodes it covers"
    diffs = ours - theirs
    return (f"{group or 'all groups'}, {method} vs {other}, on {where}: median {METRICS[metric]} {np.median(ours):+.2f} vs "
            f"{np.median(theirs):+.2f} dB; paired difference {np.median(diffs):+.2f} dB (median), "
            f"{method} better in {int((diffs > 0).sum())} of {len(ours)}.")


def load_cases(path: str | Path) -> list[Case]:
    """An earlier run's ``evaluation.jsonl`` (or the folder holding it)."""
    path = Path(path)
    path = path / "evaluation.jsonl" if path.is_dir() else path
    try:
        return [Case(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not an evaluation.jsonl of mss eval ({exc})") from None


def against(cases: list[Case], earlier: list[Case], label: str) -> str:
    """Markdown: each method of this run against the same method of an earlier run, paired per
    episode (``paired_note``), e.g. two weights files evaluated with the same data and seed.

    The episodes must be the same: where both runs have an episode, its target class must agree
    (another dataset or seed gives other episodes, and pairing them would be meaningless).
    """
    theirs = {(c.group, c.episode): c.target_class for c in earlier}
    if any(theirs.get((c.group, c.episode), c.target_class) != c.target_class for c in cases):
        raise UsageError(f"{label}: its episodes are not this run's (another dataset or --seed?)")
    both = ([replace(c, method=f"{c.method} (this run)") for c in cases]
            + [replace(c, method=f"{c.method} ({label})") for c in earlier])
    methods = [m for m in dict.fromkeys(c.method for c in cases) if not m.startswith("mixture")]
    notes = [paired_note(both, g, f"{m} (this run)", f"{m} ({label})") for m in methods for g in pools(cases)]
    lines = [n for n in notes if n] or [f"No episode and method in common with {label}."]
    return "\n".join(f"- {n}" for n in lines) + "\n"


def chart(cases: list[Case], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(c.group for c in cases))
    methods = list(dict.fromkeys(c.method for c in cases))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(groups)
    for i, g in enumerate(groups):
        values = [np.median([c.sdri for c in cases if c.method == m and c.group == g] or [np.nan]) for m in methods]
        ax.bar(np.arange(len(methods)) + i * width, values, width, label=g)
    ax.set_xticks(np.arange(len(methods)) + width * (len(groups) - 1) / 2, methods, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("median SDRi (dB)")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")  # the path may be a temporary name
    plt.close(fig)


OUTPUTS = ("evaluation.md", "evaluation.jsonl", "evaluation.png")


def check_outputs(out_dir: str | Path, overwrite: bool) -> None:
    """Refuse, before an evaluation's slow part, to replace an earlier run's results unasked."""
    if not overwrite:
        for name in OUTPUTS:
            refuse_to_replace(Path(out_dir) / name, "result of an earlier evaluation", usage=True)


def save(cases: list[Case], out_dir: str | Path, command: str, earlier: tuple[str, list[Case]] | None = None) -> str:
    """Write the table (with the comparison against an ``earlier`` run's cases, if given, and the
    table by target class), every case and the chart, each under a temporary name first; returns
    the Markdown printed on stdout (all but the table by class). An earlier run whose episodes are
    not this run's is refused (``UsageError``) after this run's own results are written."""
    md = table(cases)
    refused: UsageError | None = None
    if earlier is not None:
        try:
            md += f"\n## Against {earlier[0]}\n\n" + against(cases, earlier[1], earlier[0])
        except UsageError as exc:  # the run's own results are still written: they took minutes
            refused = exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_class = f"\n## By target class\n\nMedian SDRi (dB) of each method, per group and target class.\n\n{by_class(cases)}"
    text = {"evaluation.md": f"# Evaluation\n\nProduced by `{command}`.\n\n{md}{per_class}",
            "evaluation.jsonl": "".join(json.dumps(c.__dict__) + "\n" for c in cases)}
    for name, content in text.items():
        write_atomically(out / name, lambda tmp, content=content: tmp.write_text(content))
    write_atomically(out / "evaluation.png", lambda tmp: chart(cases, tmp))
    if refused is not None:
        raise UsageError(f"{refused}; this run's results are saved in {out} without the comparison")
    return md


def evaluate_folder(model, folder: str | Path, progress=print) -> list[Case]:
    """A user's own cases: ``folder/<case>/mixture.*``, ``target.*``, ``like/*`` and optional ``not/*``.

    Each case is separated exactly as ``mss separate`` does (streaming engine, the input's rate and
    channels) and scored per channel; the case's figure is the mean over channels.
    """
    import tempfile

    import soundfile as sf

    from mss_cli.audio import is_audio_file
    from mss_cli.conditioning import condition
    from mss_cli.separate import Outputs, SeparationOptions, separate_file

    def one(case: Path, stem: str) -> Path:
        found = sorted(p for p in case.glob(f"{stem}.*") if is_audio_file(p))
        if not found:
            raise UsageError(f"{case}: no {stem}.* audio file")
        return found[0]

    cases: list[Case] = []
    for index, case in enumerate(sorted(p for p in Path(folder).iterdir() if p.is_dir())):
        mixture, target = one(case, "mixture"), one(case, "target")
        likes = sorted(str(p) for p in (case / "like").glob("*") if is_audio_file(p))
        nots = sorted(str(p) for p in (case / "not").glob("*") if is_audio_file(p)) if (case / "not").is_dir() else []
        if not likes:
            raise UsageError(f"{case}: no example clips in like/")
        ref, _ = sf.read(target, always_2d=True)
        mix, _ = sf.read(mixture, always_2d=True)
        if ref.shape != mix.shape:  # checked before the (slow) separation
            raise UsageError(f"{case}: target and mixture differ in length or channels")
        cond = condition(model, likes, nots)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "target.wav"
            separate_file(model, cond, mixture, Outputs({"target": ("target", out)}), SeparationOptions(bit_depth="32f"))
            est, _ = sf.read(out, always_2d=True)
        channels = range(ref.shape[1])
        value = float(np.mean([bss_sdr(ref[:, c], est[:, c]) for c in channels]))
        floor = float(np.mean([bss_sdr(ref[:, c], mix[:, c]) for c in channels]))
        scale_inv = float(np.mean([si_sdr(ref[:, c], est[:, c]) for c in channels]))
        cases.append(Case("folder", index, f"few-shot, {len(likes)} positives" + (f" + {len(nots)} suppressed negatives" if nots else ""),
                          case.name, value, scale_inv, value - floor))
        progress(f"{case.name}: SDR {value:.2f} dB, SDRi {value - floor:+.2f} dB")
    return cases
