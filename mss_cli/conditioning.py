"""From example clips to a conditioning vector, and profiles that store it for reuse.

Each clip is cut into windows of ``WINDOW_SECONDS`` (a final shorter piece of at least
``MIN_SECONDS`` is kept), windows are embedded a few at a time (long clips never go through the
encoder at once), a clip's embedding is the mean of its windows', and the set's embedding the mean
of its clips' — the few-shot average of Wang et al. with every clip counting equally.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

    from mss_cli.model import ConditionedUNet
    from mss_cli.nmf import ClipBases

from mss_cli.errors import MssError, UsageError
from mss_cli.files import refuse_to_replace

# Negative clips whose embeddings are at least this close (cosine) share one suppression pass.
SAME_INSTRUMENT_COSINE = 0.9
WINDOW_SECONDS = 3.0
MIN_SECONDS = 1.0
SILENCE_PEAK = 1e-4
PROFILE_FORMAT = "mss-profile-1"
# A bound far above any conditioning value the models produce (ReLU outputs of a few units): a
# profile holding more was corrupted, and would make every output sample NaN.
MAX_CONDITIONING = 1e4
MAX_PROFILE_BYTES = 16 << 20  # a profile is a few kB (its vectors), some 260 kB with NMF bases
# The profile tensor holding ``Conditioning.unwanted`` (its name in the file format).
PROFILE_UNWANTED = "suppress"
PROFILE_BASES = ("nmf_target", "nmf_other")  # NMF bases (``mss_cli.nmf``), when the profile has them


# An example clip: a file, or samples in memory ((frames,) or (frames, channels), at ``sample_rate``).
Clip = str | os.PathLike | np.ndarray


class Partner(NamedTuple):
    """Another separator whose mask is averaged with a target's (``class_partner``)."""

    model: ConditionedUNet
    vector: torch.Tensor


@dataclass
class Conditioning:
    """The vector that steers the separator, with where it came from."""

    vector: torch.Tensor  # (cond_dim,)
    model_id: str
    positives: list[str]
    negatives: list[str]
    # (groups, cond_dim): one unwanted instrument per group of similar negative clips, whose mask the
    # separator takes out of the target's (``unwanted_vectors``); None: the negatives only steer.
    unwanted: torch.Tensor | None = None
    # Adam steps the vector was tuned for on mixtures of its own clips (``adapt``; 0: as embedded).
    adapted_steps: int = 0
    # NMF bases learned from the clips, whose mask is mixed into the network's (``mss_cli.nmf``).
    bases: ClipBases | None = None
    # How alike the encoder hears the --like and --not clips (``clip_likeness``; None: no negatives).
    likeness: float | None = None


def clip_label(clip: Clip, index: int) -> str:
    """What errors and profiles call a clip: its path, or its place among arrays."""
    return f"clip {index + 1} (an array)" if isinstance(clip, np.ndarray) else str(clip)


def _mono(clip: Clip, sample_rate: int, clip_rate: int | None) -> Iterator[np.ndarray]:
    """A clip's mono float32 blocks at ``sample_rate``, decoded from its file or taken from its array."""
    from mss_cli.audio import array_blocks, as_float_frames, mono_blocks, read_mono

    if not isinstance(clip, np.ndarray):
        yield from read_mono(clip, sample_rate)
        return
    if clip_rate is None:
        raise MssError("an example clip given as an array needs its sample_rate")
    what = "an example clip"
    yield from mono_blocks(array_blocks(as_float_frames(clip, what), what), clip_rate, sample_rate)


def _windows(clip: Clip, sample_rate: int, clip_rate: int | None = None) -> Iterator[np.ndarray]:
    """A clip's mono windows of WINDOW_SECONDS as it is decoded, then its shorter rest if that is
    MIN_SECONDS or more (or if it is all the clip has)."""
    window = int(WINDOW_SECONDS * sample_rate)
    buffer = np.zeros(0, np.float32)
    whole = False
    for block in _mono(clip, sample_rate, clip_rate):
        buffer = np.concatenate([buffer, block])
        while buffer.shape[0] >= window:
            whole = True
            yield buffer[:window]
            buffer = buffer[window:]
    if buffer.shape[0] >= int(MIN_SECONDS * sample_rate) or (not whole and buffer.shape[0]):
        yield buffer


def clip_windows(
    path: Clip,
    sample_rate: int,
    reference_dbfs: float | None = None,
    clip_rate: int | None = None,
    label: str | None = None,
) -> Iterator[np.ndarray]:
    """The non-silent mono windows of one example clip, checked for length and silence; with
    ``reference_dbfs``, the whole clip scaled to that gated level (the model's training clips',
    ``ModelConfig.clip_dbfs``). Two passes over the file, the level and checks and then the windows,
    so memory holds a few windows however long the clip is. ``clip_rate``: an array clip's rate."""
    from mss_cli.level import LevelMeter, gain_to

    label = label or clip_label(path, 0)
    meter = LevelMeter(sample_rate)
    total = loud = 0
    for w in _windows(path, sample_rate, clip_rate):
        meter.add(w)
        total += w.shape[0]
        loud += int(np.abs(w).max() > SILENCE_PEAK)
    if total < int(MIN_SECONDS * sample_rate):
        raise UsageError(f"{label}: example too short ({total / sample_rate:.2f} s; at least {MIN_SECONDS:g} s needed)")
    if not loud:
        raise UsageError(f"{label}: example is silent")
    gain = np.float32(gain_to(meter.dbfs(), reference_dbfs))
    return (w * gain for w in _windows(path, sample_rate, clip_rate) if np.abs(w).max() > SILENCE_PEAK)


def embed_clips(model, paths: Sequence[Clip], batch: int = 8, sample_rate: int | None = None) -> torch.Tensor:
    """Per-clip embeddings (clips, embed_dim): the mean of each clip's window embeddings, the windows
    going through the encoder ``batch`` at a time as they are decoded. ``sample_rate``: that of
    clips given as arrays."""
    import torch

    device = model.device
    out = []
    for index, path in enumerate(paths):
        try:
            windows = clip_windows(
                path, model.config.sample_rate, model.config.clip_dbfs, sample_rate, clip_label(path, index)
            )
            sums, count = None, 0
            for group in _batches(windows, batch):
                length = max(w.shape[0] for w in group)
                with torch.inference_mode():
                    # Equal-length windows batch together; a short last window goes alone (no padding bias).
                    if any(w.shape[0] != length for w in group):
                        embs = torch.cat([model.embed_windows(torch.from_numpy(w)[None].to(device)) for w in group])
                    else:
                        embs = model.embed_windows(torch.from_numpy(np.stack(group)).to(device))
                sums = embs.sum(0) if sums is None else sums + embs.sum(0)
                count += len(group)
        except UsageError:
            raise
        except MssError as exc:  # a bad example file is a bad option value: exit 2
            raise UsageError(str(exc)) from None
        out.append(sums / count)
    return torch.stack(out)


def _batches(items: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    group: list[np.ndarray] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def similar_groups(embeddings: torch.Tensor, threshold: float = SAME_INSTRUMENT_COSINE) -> list[list[int]]:
    """Greedy grouping of clip embeddings (N, E): each clip joins the first group whose first clip
    is at least ``threshold`` cosine-similar, else starts a group."""
    import torch

    unit = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    groups: list[list[int]] = []
    for i in range(len(unit)):
        home = next((g for g in groups if float(unit[i] @ unit[g[0]]) >= threshold), None)
        if home is None:
            groups.append([i])
        else:
            home.append(i)
    return groups


def unwanted_vectors(
    model,
    positive: torch.Tensor,
    negative: torch.Tensor,
    groups: list[list[int]] | None = None,
) -> torch.Tensor:
    """Per-clip embeddings, positives (P, E) and negatives (M, E) -> (groups, cond_dim) for
    ``make_separator``'s ``unwanted``: clips of one instrument (similar embeddings, or the given
    ``groups`` of clip indices) are averaged into one vector, so five clips of the vocals cost one
    pass, not five. Measured on 300 validation
    episodes (5 negatives of 3.2 instruments on average): one pass per clip, per true instrument or
    per group at 0.9 (3.8 passes) gave the same SDR (mean differences within 0.01 dB)."""
    import torch

    groups = similar_groups(negative) if groups is None else groups
    return model.unwanted_conditioning(positive, torch.stack([negative[g].mean(0) for g in groups]))


def clip_likeness(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """The cosine between the mean embeddings of the positive (P, E) and negative (M, E) clips.
    Near 1, the encoder hears the target like what it is to leave out (violin against viola), so
    its vector steers the separator poorly and NMF from the clips decides the bins best
    (``mss_cli.nmf.nmf_join``)."""
    import torch

    return float(torch.nn.functional.cosine_similarity(positive.float().mean(0), negative.float().mean(0), dim=0))


def condition(
    model, positives: Sequence[Clip], negatives: Sequence[Clip] = (), sample_rate: int | None = None
) -> Conditioning:
    """Embed example clips (files, or arrays at ``sample_rate``) into the conditioning vector for
    ``model``; the negatives also give the suppression vectors (``unwanted_vectors``)."""
    import torch

    for what, clips in (("positives", positives), ("negatives", negatives)):
        if isinstance(clips, (str, os.PathLike, np.ndarray)):
            raise TypeError(f"{what}: a list of clips, not one {type(clips).__name__} (write [{what}])")
    if not positives:
        raise UsageError("no positive example clips")
    if model.config.kind != "fewshot":
        raise UsageError("this model is class-conditioned: it separates a named class, not one shown by example clips")
    pos = embed_clips(model, list(positives), sample_rate=sample_rate)
    neg = embed_clips(model, list(negatives), sample_rate=sample_rate) if len(negatives) else None
    with torch.inference_mode():
        vector = model.conditioning(pos[None], None if neg is None else neg[None])[0]
        unwanted = None if neg is None else unwanted_vectors(model, pos, neg).cpu()
    return Conditioning(
        vector.cpu(),
        model.model_id,
        [clip_label(c, i) for i, c in enumerate(positives)],
        [clip_label(c, i) for i, c in enumerate(negatives)],
        unwanted,
        likeness=None if neg is None else clip_likeness(pos, neg),
    )


def trained_classes(model) -> list[str]:
    """The classes a class-conditioned model has learned vectors for (``classes.trained_classes``)."""
    from mss_cli.classes import trained_classes as trained

    return trained(model.config.class_names)


def class_vector(model, name: str) -> torch.Tensor:
    """The learned conditioning vector (cond_dim,) of one of a class-conditioned model's trained
    classes (``name`` as ``classes.resolve_class`` takes it: any case, a synonym)."""
    import torch

    from mss_cli.classes import resolve_class

    if model.config.kind != "classcond":
        raise UsageError(
            "a class needs the class-conditioned model (mss-classcond.safetensors); this one is few-shot "
            "and takes example clips"
        )
    name = resolve_class(name, trained_classes(model))
    with torch.inference_mode():
        index = torch.tensor([model.config.class_names.index(name)], device=model.device)
        return model.class_conditioning(index)[0].cpu()


def class_condition(model, name: str) -> Conditioning:
    """A class of the class-conditioned ``model``, labelled like a conditioning made from clips."""
    return Conditioning(class_vector(model, name), model.model_id, [f"class:{name}"], [])


def class_partner(model, baseline, name: str) -> Partner:
    """The class-conditioned ``baseline`` separating class ``name``, to average with a target of
    the few-shot ``model`` (``Target.partner``). The two models were trained apart and err apart:
    on synthetic validation episodes the average beat either alone, on real recordings it does not
    (`experiments/average-with-baseline.md`)."""
    from mss_cli.model import check_same_transform

    check_same_transform(model, baseline)
    return Partner(baseline, class_vector(baseline, name))


def save_profile(cond: Conditioning, path: str | Path, overwrite: bool = False) -> Path:
    """Safetensors file: the vector (and the negatives' suppression vectors) plus the model id and
    example names as metadata."""
    from mss_cli.weights import write_safetensors

    path = Path(path)
    if not overwrite:
        refuse_to_replace(path, "profile")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a profile file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only file system, or a file where a folder should be (XDG_DATA_HOME)
        raise UsageError(f"{path.parent}: cannot create the profile folder ({exc.strerror or exc})") from None
    meta = {
        "format": PROFILE_FORMAT,
        "model_id": cond.model_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "positives": json.dumps([Path(p).name for p in cond.positives]),
        "negatives": json.dumps([Path(p).name for p in cond.negatives]),
        "adapted_steps": str(cond.adapted_steps),
    }
    tensors = {"conditioning": cond.vector.float().contiguous()}
    if cond.unwanted is not None:
        tensors[PROFILE_UNWANTED] = cond.unwanted.float().contiguous()
    if cond.bases is not None:
        meta["nmf_share"] = str(cond.bases.share)
        meta["nmf_join"] = cond.bases.join
        for key, bases in zip(PROFILE_BASES, (cond.bases.target, cond.bases.other)):
            tensors[key] = bases.float().contiguous()
    return write_safetensors(tensors, path, meta)


def profile_metadata(path: str | Path) -> dict[str, str]:
    from mss_cli.weights import read_metadata

    try:
        meta = read_metadata(path)
    except MssError as exc:
        raise UsageError(str(exc).replace("weights", "profile")) from None
    if meta.get("format") != PROFILE_FORMAT:
        raise UsageError(f"{path}: not an mss profile")
    if not meta.get("model_id"):
        raise UsageError(f"{path}: corrupt profile (no model id)")
    for key in ("positives", "negatives"):
        try:
            clips = json.loads(meta.get(key, "[]"))
        except ValueError:
            clips = None
        if not (isinstance(clips, list) and all(isinstance(c, str) for c in clips)):
            raise UsageError(f"{path}: corrupt profile ({key} is not a list of file names)")
    return meta


def profile_bases(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str], model) -> ClipBases | None:
    """A profile's NMF bases and share (``mss_cli.nmf``), checked against the model's transform;
    None for a profile made without them."""
    from mss_cli.nmf import ClipBases

    if not any(key in tensors for key in PROFILE_BASES):
        return None
    bins = model.config.stft_bins
    nmf = profile_nmf(path, meta)
    bases = [tensors.get(key) for key in PROFILE_BASES]
    if nmf is None or any(b is None or b.ndim != 2 or b.shape[0] != bins for b in bases):
        raise UsageError(f"{path}: corrupt profile (NMF bases or share that do not fit the model, {bins} bins)")
    if any(bool((b < 0).any()) for b in bases):
        raise UsageError(f"{path}: corrupt profile (negative NMF bases)")
    share, join = nmf
    return ClipBases(bases[0], bases[1], share, join == "odds")


def profile_nmf(path: str | Path, meta: dict[str, str]) -> tuple[float, str] | None:
    """The network's share of a profile's joined mask and how the masks join ("mean" or "odds",
    ``mss_cli.nmf.ClipBases``); None without NMF. A profile that does not say how holds a mean."""
    if "nmf_share" not in meta:
        return None
    try:
        share = float(meta["nmf_share"])
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise UsageError(f"{path}: corrupt profile (nmf_share {meta['nmf_share']!r} is not from 0 to 1)")
    join = meta.get("nmf_join", "mean")
    if join not in ("mean", "odds"):
        raise UsageError(f"{path}: corrupt profile (nmf_join {join!r} is not mean or odds)")
    return share, join


def profile_adapted_steps(meta: dict[str, str]) -> int:
    """The steps a profile's vector was adapted for (``adapt``; 0 for a profile made without, or
    by an mss before adaptation existed)."""
    steps = meta.get("adapted_steps", "0")
    return int(steps) if steps.isdigit() else 0


def load_profile(path: str | Path, model) -> Conditioning:
    """Read a profile, refusing one made for another model (its vector would be meaningless)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: profile not found")
    size = path.stat().st_size
    if size > MAX_PROFILE_BYTES:  # read whole below: a huge file would fill the memory
        raise UsageError(f"{path}: not a profile ({size:,} bytes; a profile is a few kB)")
    meta = profile_metadata(path)
    if meta["model_id"] != model.model_id:
        raise UsageError(
            f"{path}: profile was made for model {meta['model_id']}, not {model.model_id} (re-run mss embed)"
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UsageError(f"{path}: corrupt profile ({exc})") from None
    if "conditioning" not in tensors:
        raise UsageError(f"{path}: corrupt profile (no 'conditioning' vector)")
    if not all(t.is_floating_point() for t in tensors.values()):
        raise UsageError(f"{path}: corrupt profile (its vectors are not floating point)")
    tensors = {name: t.float() for name, t in tensors.items()}  # fp16 or bf16 vectors work as float32
    vector = tensors["conditioning"]
    if vector.shape != (model.config.cond_dim,):
        raise UsageError(
            f"{path}: profile vector has shape {tuple(vector.shape)}, model needs ({model.config.cond_dim},)"
        )
    if not all(bool(t.isfinite().all()) and float(t.abs().max()) < MAX_CONDITIONING for t in tensors.values()):
        raise UsageError(f"{path}: corrupt profile (values that are not finite or far outside any embedding)")
    negatives = json.loads(meta.get("negatives", "[]"))
    # A profile without this tensor (made without negatives, or by an older mss): its negatives steer only.
    unwanted = tensors.get(PROFILE_UNWANTED)
    if unwanted is not None and not (
        unwanted.ndim == 2 and 1 <= unwanted.shape[0] <= len(negatives) and unwanted.shape[1] == model.config.cond_dim
    ):
        raise UsageError(
            f"{path}: profile suppression vectors have shape {tuple(unwanted.shape)}, expected "
            f"(1 to {len(negatives)}, {model.config.cond_dim})"
        )
    positives = json.loads(meta.get("positives", "[]"))
    bases = profile_bases(path, tensors, meta, model)
    return Conditioning(vector, meta["model_id"], positives, negatives, unwanted, profile_adapted_steps(meta), bases)
