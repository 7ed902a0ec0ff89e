"""Streaming chunked overlap-add separation (after demucs/apply.py, but constant-memory).

The track arrives in blocks; chunks of ``chunk`` samples start every ``stride`` samples, each is
separated (all its channels, and up to ``batch_size`` chunks, in one forward pass), weighted by a
triangular window and accumulated. Output before the next chunk's start is final and leaves at
once, so memory holds about ``batch_size`` + 1 chunks whatever the track's length. The first chunk
starts at the track's start and the last is zero-padded past its end, exactly as the model sees
the track's ends when it processes the whole track at once.
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

    def __init__(
        self,
        separate: Callable[[torch.Tensor], torch.Tensor],
        chunk: int,
        overlap: float,
        batch_size: int = 1,
        on_chunk: Callable[[], None] | None = None,
        align: int = 1,
        max_rows: int | None = None,
    ) -> None:
        """``align``: chunk starts, lengths and the lead are multiples of it. For an STFT U-Net that is
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
                acc = np.zeros((0, c), np.float32)
            grow = end - acc_start - acc.shape[0]
            if grow > 0:
                acc = np.concatenate([acc, np.zeros((grow, c), np.float32)])
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
                    acc[start - acc_start : start - acc_start + length, channel] += y * self.window
            for start in pending:
                wsum[start - acc_start : start - acc_start + length] += self.window
                if self.on_chunk:
                    self.on_chunk()
            # Everything before the next chunk's start has all its contributions: it is final.
            next_start = pending[-1] + self.stride
            ready = (frames if final else min(frames, next_start)) - acc_start
            if ready > 0:
                yield acc[:ready] / wsum[:ready, None]
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
