"""Streaming chunked overlap-add separation (after demucs/apply.py, but constant-memory).

The track arrives in blocks; chunks of ``chunk`` samples start every ``stride`` samples, each is
separated (all its channels, and up to ``batch_size`` chunks, in one forward pass), weighted by a
triangular window and accumulated. Output before the next chunk's start is final and leaves at
once, so memory holds about two chunks whatever the track's length. The first and last chunks
reach half a chunk past the track's ends (zero padding) so every sample is covered by the peak of
some window, not only by a window's edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch


def chunk_window(length: int) -> np.ndarray:
    """Triangle weights, strictly positive so a lone chunk still normalises."""
    half = np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)).astype(np.float64)
    return (half / half.max()).astype(np.float32)


class OverlapAdd:
    """Turns input blocks (frames, C) into separated target blocks (frames, C), in order."""

    def __init__(self, separate: Callable[[torch.Tensor], torch.Tensor], chunk: int, overlap: float,
                 batch_size: int = 1, on_chunk: Callable[[], None] | None = None, align: int = 1) -> None:
        """``align``: chunk starts, lengths and the lead are multiples of it. For an STFT U-Net that is
        hop x 2^depth, so every chunk sees the same frame grid and pooling phase as the whole track."""
        if not 0.0 <= overlap < 1.0:
            raise ValueError("overlap must be in [0, 1)")
        self.separate = separate
        self.chunk = -(-chunk // align) * align
        self.stride = max(align, int(round(self.chunk * (1.0 - overlap) / align)) * align)
        self.batch_size = max(1, batch_size)
        self.window = chunk_window(self.chunk)
        self.on_chunk = on_chunk
        self.lead = self.chunk // 2 // align * align  # zero padding so the track's start sits mid-window

    def chunks_for(self, frames: int) -> int:
        """How many chunks a track of ``frames`` samples needs (for progress bars)."""
        total = frames + 2 * self.lead
        return 1 + max(0, -(-(total - self.chunk) // self.stride))

    def run(self, blocks: Iterable[np.ndarray], frames: int) -> Iterator[np.ndarray]:
        """Yield the separated signal for a track of exactly ``frames`` samples, block by block."""
        padded_total = frames + 2 * self.lead
        n_chunks = self.chunks_for(frames)
        source = iter(blocks)
        channels: int | None = None
        inbuf = np.zeros((0, 0), np.float32)
        in_start = 0  # padded-time index of inbuf[0]
        fed = self.lead  # padded-time samples available (the lead is virtual zeros)
        acc: np.ndarray | None = None
        wsum = np.zeros(0, np.float64)
        acc_start = 0  # padded-time index of acc[0]
        emitted = 0  # output samples emitted (track time)
        pending: list[int] = []
        next_chunk = 0

        def ensure(upto: int) -> None:
            nonlocal inbuf, fed, channels
            while fed < min(upto, self.lead + frames):
                block = next(source, None)
                if block is None:
                    break
                if channels is None:
                    channels = block.shape[1]
                    inbuf = np.zeros((self.lead, channels), np.float32)
                inbuf = np.concatenate([inbuf, block.astype(np.float32, copy=False)])
                fed += block.shape[0]

        def slice_input(start: int) -> np.ndarray:
            seg = inbuf[start - in_start : start - in_start + self.chunk]
            return np.pad(seg, ((0, self.chunk - seg.shape[0]), (0, 0)))

        def flush(final: bool) -> Iterator[np.ndarray]:
            nonlocal acc, wsum, acc_start, emitted, inbuf, in_start
            starts = pending[:]
            pending.clear()
            batch = np.stack([slice_input(s) for s in starts])  # (n, chunk, C)
            n, length, c = batch.shape
            rows = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 2, 1).reshape(n * c, length)))
            out = self.separate(rows).reshape(n, c, length).permute(0, 2, 1).numpy()
            end = starts[-1] + self.chunk
            if acc is None:
                acc = np.zeros((0, c))
            if acc.shape[0] < end - acc_start:
                grow = end - acc_start - acc.shape[0]
                acc = np.concatenate([acc, np.zeros((grow, c))])
                wsum = np.concatenate([wsum, np.zeros(grow)])
            for s, y in zip(starts, out):
                acc[s - acc_start : s - acc_start + length] += y * self.window[:, None]
                wsum[s - acc_start : s - acc_start + length] += self.window
                if self.on_chunk:
                    self.on_chunk()
            ready = padded_total if final else (starts[-1] + self.stride)
            ready = min(ready, self.lead + frames)
            cut = ready - acc_start
            if cut > 0:
                done = (acc[:cut] / np.maximum(wsum[:cut], 1e-8)[:, None]).astype(np.float32)
                skip = max(0, self.lead - acc_start)
                piece = done[skip:]
                if piece.shape[0]:
                    emitted += piece.shape[0]
                    yield piece
                acc, wsum, acc_start = acc[cut:], wsum[cut:], acc_start + cut
            drop = (starts[-1] + self.stride) - in_start
            if drop > 0:
                inbuf, in_start = inbuf[drop:], in_start + drop

        while next_chunk < n_chunks:
            start = next_chunk * self.stride
            ensure(start + self.chunk)
            if channels is None:
                raise ValueError("no audio data")
            pending.append(start)
            next_chunk += 1
            if len(pending) == self.batch_size or next_chunk == n_chunks:
                yield from flush(final=next_chunk == n_chunks)
        if emitted != frames:
            raise RuntimeError(f"overlap-add produced {emitted} of {frames} samples")
