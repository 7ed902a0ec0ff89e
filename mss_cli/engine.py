"""The separation engine: the separator a run's targets make (``make_separator``), and streaming
chunked overlap-add over a track (after demucs/apply.py, but constant-memory).

The track arrives in blocks; chunks of ``chunk`` samples start every ``stride`` samples, each is
separated (all its channels, and up to ``batch_size`` chunks, in one forward pass), weighted by a
triangular window and accumulated. Output before the next chunk's start is final and leaves at
once, so memory holds about ``batch_size`` + 1 chunks whatever the track's length. The first chunk
starts at the track's start and the last is zero-padded past its end, exactly as the model sees
the track's ends when it processes the whole track at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from mss_cli.device import Precision, autocast_dtype
from mss_cli.level import gain_to
from mss_cli.model import bind_conditioning, check_same_transform, take_out
from mss_cli.nmf import mix_masks, nmf_mask

if TYPE_CHECKING:
    from mss_cli.targets import Target


def chunk_window(length: int) -> np.ndarray:
    """Triangle weights, strictly positive so a lone chunk still normalises."""
    half = np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)).astype(np.float64)
    return (half / half.max()).astype(np.float32)


class OverlapAdd:
    """Turns input blocks (frames, C) into separated blocks (frames, stems, C), in order."""

    def __init__(
        self,
        separate: Callable[[torch.Tensor], torch.Tensor],
        chunk: int,
        overlap: float,
        batch_size: int = 1,
        on_chunk: Callable[[], None] | None = None,
        align: int = 1,
        max_rows: int | None = None,
        stems: int = 1,
    ) -> None:
        """``separate``: rows (N, samples) -> (N, stems, samples).
        ``align``: chunk starts, lengths and the lead are multiples of it. For an STFT U-Net that is
        hop x 2^depth, so every chunk sees the same frame grid and pooling phase as the whole track.
        ``max_rows``: at most this many channel-chunks per call of ``separate`` (rows are separated
        independently, so a many-channel input or a large batch is split into passes: memory then
        follows the budget, not the input's channel count)."""
        if not 0.0 <= overlap < 1.0:
            raise ValueError("overlap must be in [0, 1)")
        self.separate = separate
        self.chunk = -(-chunk // align) * align
        self.stride = max(align, int(round(self.chunk * (1.0 - overlap) / align)) * align)
        self.batch_size = max(1, batch_size)
        self.window = chunk_window(self.chunk)
        self.on_chunk = on_chunk
        self.max_rows = max_rows
        self.stems = stems

    def chunks_for(self, frames: int) -> int:
        """How many chunks a track of ``frames`` samples needs (for progress bars)."""
        return 1 + max(0, -(-(frames - self.chunk) // self.stride))

    def run(self, blocks: Iterable[np.ndarray], frames: int) -> Iterator[np.ndarray]:
        """Yield the separated signal for a track of exactly ``frames`` samples, block by block."""
        n_chunks = self.chunks_for(frames)
        source = iter(blocks)
        inbuf: np.ndarray | None = None  # input samples [in_start, in_start + len)
        in_start = 0
        acc: np.ndarray | None = None  # weighted output sum for samples [acc_start, ...)
        wsum = np.zeros(0, np.float32)
        acc_start = 0
        pending: list[int] = []

        def ensure(upto: int) -> None:
            nonlocal inbuf
            while (0 if inbuf is None else in_start + inbuf.shape[0]) < min(upto, frames):
                block = next(source, None)
                if block is None:
                    break
                block = block.astype(np.float32, copy=False)
                inbuf = block if inbuf is None else np.concatenate([inbuf, block])

        def flush(final: bool) -> Iterator[np.ndarray]:
            nonlocal acc, wsum, acc_start, inbuf, in_start
            c = inbuf.shape[1]
            length = self.chunk
            end = pending[-1] + length
            if acc is None:
                acc = np.zeros((0, self.stems, c), np.float32)
            grow = end - acc_start - acc.shape[0]
            if grow > 0:
                acc = np.concatenate([acc, np.zeros((grow, self.stems, c), np.float32)])
                wsum = np.concatenate([wsum, np.zeros(grow, np.float32)])
            # Rows are (chunk, channel) pairs in chunk-major order, separated max_rows at a time and
            # added into the output as they come: no array of every row's input or output at once.
            rows = [(start, channel) for start in pending for channel in range(c)]
            step = self.max_rows or len(rows)
            for first in range(0, len(rows), step):
                group = rows[first : first + step]
                batch = np.zeros((len(group), length), np.float32)
                for i, (start, channel) in enumerate(group):
                    seg = inbuf[start - in_start : start - in_start + length, channel]
                    batch[i, : seg.shape[0]] = seg
                out = self.separate(torch.from_numpy(batch)).numpy()
                for (start, channel), y in zip(group, out):
                    acc[start - acc_start : start - acc_start + length, :, channel] += (y * self.window).T
            for start in pending:
                wsum[start - acc_start : start - acc_start + length] += self.window
                if self.on_chunk:
                    self.on_chunk()
            # Everything before the next chunk's start has all its contributions: it is final.
            next_start = pending[-1] + self.stride
            ready = (frames if final else min(frames, next_start)) - acc_start
            if ready > 0:
                yield acc[:ready] / wsum[:ready, None, None]
                acc, wsum, acc_start = acc[ready:], wsum[ready:], acc_start + ready
            if next_start > in_start:
                inbuf, in_start = inbuf[next_start - in_start :], next_start
            pending.clear()

        for index in range(n_chunks):
            start = index * self.stride
            ensure(start + self.chunk)
            if inbuf is None:
                raise ValueError("no audio data")
            pending.append(start)
            if len(pending) == self.batch_size or index == n_chunks - 1:
                yield from flush(final=index == n_chunks - 1)
        if acc_start != frames:
            raise RuntimeError(f"overlap-add produced {acc_start} of {frames} samples")


def make_separator(
    targets: Sequence[Target],
    precision: Precision = "auto",
    shifts: int = 1,
    level: float | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function rows (N, samples) -> stems (N, len(targets), samples): each target's model runs
    on its device with its conditioning folded into its weights (``bind_conditioning``), in
    ``precision``; every mask is the mean over ``shifts`` passes (``ConditionedUNet.mask``). The
    STFT is computed once and shared by every model (they must have one transform).

    A target's ``unwanted`` vectors (``conditioning.unwanted_vectors``) cost one more pass each,
    separating an unwanted instrument whose mask is then taken out of the target's (``take_out``).
    A target's ``partner`` (the class-conditioned baseline and a class vector) runs one more pass,
    and the target's mask is the mean of its own (after suppression) and the partner's: a
    two-model ensemble that averages out part of each model's errors
    (`experiments/average-with-baseline.md`). A target's NMF ``bases`` (``Conditioning.bases``) mix
    the NMF mask they give on the chunk's modelled bins, extended above as the network's is, into
    its mask, ``bases.share`` of it staying the network's (``mss_cli.nmf``).

    Several targets: where their masks claim more than the whole of a time-frequency bin (sum over
    1), each is scaled by that sum, so the stems share the bin in proportion to their masks and the
    residual (mixture minus the stems) never holds a negative share. One target is left as it is.

    ``level``: the whole input's gated level in dBFS (``level.level_dbfs``); each network sees the
    input scaled to the level its training mixtures had (``ModelConfig.mixture_dbfs``), so a loud
    master and a quiet recording of one song separate alike, and the output keeps the input's own
    level. None: the input as it comes."""
    if not targets:
        raise ValueError("targets: at least one target is needed")
    first = targets[0].model
    device = first.device
    for target in targets:
        check_same_transform(first, target.model)
        if target.partner is not None:
            check_same_transform(first, target.partner.model)

    def bound(model, vector: torch.Tensor) -> tuple:
        """The model with ``vector`` folded in, and what its features are keyed by: the weights
        (models of one weights file share their features) and the gain they are computed at."""
        gain = gain_to(level, model.config.mixture_dbfs)
        return bind_conditioning(model, vector.reshape(1, -1)), (id(model), gain)

    plans = [
        (
            bound(t.model, t.cond.vector),
            [bound(t.model, v) for v in ([] if t.cond.unwanted is None else t.cond.unwanted)],
            None if t.partner is None else bound(t.partner.model, t.partner.vector),
            t.cond.bases,
            t.model.config.bins,
        )
        for t in targets
    ]
    dtype = autocast_dtype(str(device), precision)
    lead, (_, lead_gain) = plans[0][0]

    def run(rows: torch.Tensor) -> torch.Tensor:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None),
        ):
            rows = rows.to(device)
            spec, lead_features = lead.features(rows, lead_gain)
            features = {plans[0][0][1]: lead_features}
            idle = {}  # a bound model ignores its conditioning argument: zeros of the right width

            def mask(model, key: tuple) -> torch.Tensor:
                if key not in features:
                    features[key] = model.features_of(spec, key[1])
                width = model.config.cond_dim
                if width not in idle:
                    idle[width] = torch.zeros(rows.shape[0], width, device=device)
                return model.mask(features[key], idle[width], shifts)

            # NMF's input, once per chunk for every target that mixes NMF in
            magnitude = spec.abs().float() if any(plan[3] is not None for plan in plans) else None
            masks = []
            for own, unwanted, partner, bases, bins in plans:
                m = mask(*own)
                if unwanted:
                    most = mask(*unwanted[0])
                    for other in unwanted[1:]:
                        most = torch.maximum(most, mask(*other))
                    m = take_out(m, most)
                if partner is not None:
                    m = (m + mask(*partner)) / 2
                if bases is not None:
                    m = mix_masks(m, nmf_mask(magnitude, bases, bins), bases)
                masks.append(m)
            if len(masks) > 1:
                total = torch.stack(masks).sum(0).clamp_min(1.0)
                masks = [m / total for m in masks]
            out = torch.stack([lead.apply_mask(spec, m, rows.shape[-1]) for m in masks], dim=1)
        return out.float().cpu()

    return run
