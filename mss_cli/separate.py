"""Separate one track into its stems: decode -> measure its level -> resample -> overlap-add model
-> resample back -> encode.

This is the library entry point for every input; it streams end to end (the level is a first pass
over the decoded file), so memory does not depend on the track's length. Each target is one stem;
the residual is the mixture minus every stem at the input's own rate, so the stems and the
residual sum back to the input exactly (up to output rounding).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mss_cli.audio import (
    AtomicWriter,
    AudioInfo,
    AudioReader,
    Resampler,
    array_blocks,
    as_float_frames,
    check_audio,
    resolve_subtype,
    stdout_writer,
)
from mss_cli.device import PRECISIONS, Precision
from mss_cli.engine import OverlapAdd, make_separator
from mss_cli.errors import MssError
from mss_cli.formats import BIT_DEPTHS, FORMATS
from mss_cli.level import level_dbfs
from mss_cli.targets import residual_name, stem_names

if TYPE_CHECKING:
    from mss_cli.targets import Target

# Seconds of one-channel audio in one pass of the model on the CPU: peak memory grows by about
# 6 MB per such second on the shipped model (434 MB for 2 x 10 s, 665 MB for 2 x 30 s, measured),
# so 60 keeps a run under 1 GB whatever the input's channels and --batch-size.
ROW_SECONDS = 60.0
MAX_CHUNK_SECONDS = 30.0  # one chunk of one channel must fit that budget twice (stereo)
CHANNEL_SECONDS = 640.0  # channels x chunk seconds held by the overlap-add buffers (64 x 10 s: 755 MB)


@dataclass
class SeparationOptions:
    """How to separate and write (``mss separate``'s options of the same names)."""

    chunk_seconds: float = 10.0
    overlap: float = 0.15
    batch_size: int = 1
    precision: Precision = "auto"
    shifts: int = 1
    fmt: str = "wav"  # a key of formats.FORMATS
    bit_depth: str | None = None  # one of formats.BIT_DEPTHS; None: as the input
    mp3_bitrate: int | None = None  # kbit/s, constant (None: libsndfile's default)
    overwrite: bool = False

    def __post_init__(self) -> None:
        """Python callers get the checks the CLI's option ranges give: a ValueError naming the
        argument, never an overflow or a division by zero deep in the engine."""

        def whole(name: str, low: int, high: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name}={value!r}: a whole number from {low} to {high}")

        if not isinstance(self.chunk_seconds, (int, float)) or not 1.0 <= self.chunk_seconds <= MAX_CHUNK_SECONDS:
            raise ValueError(f"chunk_seconds={self.chunk_seconds!r}: from 1 to {MAX_CHUNK_SECONDS:g} seconds")
        if not isinstance(self.overlap, (int, float)) or not 0.0 <= self.overlap <= 0.9:
            raise ValueError(f"overlap={self.overlap!r}: a fraction from 0 to 0.9")
        whole("batch_size", 1, 256)
        whole("shifts", 1, 16)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: one of {', '.join(PRECISIONS)}")
        if self.fmt not in FORMATS:
            raise ValueError(f"fmt={self.fmt!r}: one of {', '.join(FORMATS)}")
        if self.bit_depth is not None and self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit_depth={self.bit_depth!r}: None or one of {', '.join(BIT_DEPTHS)}")
        if self.mp3_bitrate is not None:
            whole("mp3_bitrate", 32, 320)


@dataclass
class Written:
    """One output file, as reported by ``--json``. ``nmf``: NMF's share of a target's mask where
    it is joined in (``mss_cli.nmf``), else None, so that a pipeline sees which targets had it;
    ``nmf_join``: how, "mean" (of the masks) or "odds" (of their log-odds)."""

    input: str
    stem: str
    path: str
    sample_rate: int
    duration: float
    seconds: float
    device: str
    clipped_samples: int = 0
    nmf: float | None = None
    nmf_join: str | None = None


def separate_blocks(
    targets: Sequence[Target],
    blocks: Callable[[], Iterator[np.ndarray]],
    info: AudioInfo,
    options: SeparationOptions,
    label: str,
    on_chunk: Callable[[], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
    """The streaming core of ``separate_file`` and ``separate_array``: (stems, mixture) block pairs,
    one block per target, at the input's rate and channels, in order, for an input whose ``blocks()`` can be read twice
    (a first pass measures the whole track's level, so every chunk is scaled alike and chunking
    changes nothing). Memory does not depend on the input's length. A silent input is an
    ``MssError`` after that first pass, before any separation; one whose blocks do not add up to
    ``info.frames``, after the last block."""
    model = targets[0].model
    rate = model.config.sample_rate
    # The overlap-add buffers hold every channel of a chunk: a many-channel input gets shorter chunks
    # (64 channels: 10 s), so that they too stay within the memory budget.
    chunk_seconds = min(options.chunk_seconds, max(1.0, CHANNEL_SECONDS / info.channels))
    chunk = int(chunk_seconds * rate)
    align = model.config.hop * model.config.frame_multiple
    peak = 0.0

    def measured() -> Iterator[np.ndarray]:
        nonlocal peak
        for block in blocks():
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
            yield block

    level = level_dbfs(measured(), info.sample_rate)
    if peak == 0.0:
        raise MssError(f"{label}: input is silent")
    separate = make_separator(targets, options.precision, options.shifts, level)
    # On the CPU a pass holds at most ROW_SECONDS of one-channel audio, whatever the channels and
    # batch; a GPU takes the batch as asked (its memory is the user's to size with --batch-size).
    max_rows = max(1, int(ROW_SECONDS // chunk_seconds)) if model.device.type == "cpu" else None
    engine = OverlapAdd(separate, chunk, options.overlap, options.batch_size, on_chunk, align, max_rows, len(targets))
    model_frames = int(round(info.frames * rate / info.sample_rate))
    if on_start:
        on_start(engine.chunks_for(model_frames))
    down = Resampler(info.sample_rate, rate, info.channels)
    ups = [Resampler(rate, info.sample_rate, info.channels) for _ in targets]
    mixture_fifo = np.zeros((0, info.channels), np.float32)

    def to_model_rate() -> Iterator[np.ndarray]:
        nonlocal mixture_fifo
        for block in blocks():
            mixture_fifo = np.concatenate([mixture_fifo, block])
            yield down(block)
        yield down(np.zeros((0, info.channels), np.float32), last=True)

    def paired(stems: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        nonlocal mixture_fifo, produced
        length = stems[0].shape[0]
        produced += length
        mix, mixture_fifo = mixture_fifo[:length], mixture_fifo[length:]
        return stems, mix

    produced = 0
    for block in engine.run(to_model_rate(), model_frames):
        yield paired([up(np.ascontiguousarray(block[:, k])) for k, up in enumerate(ups)])
    yield paired([up(np.zeros((0, info.channels), np.float32), last=True) for up in ups])
    if produced != info.frames:
        raise MssError(f"{label}: internal length mismatch ({produced} != {info.frames} samples)")


def residual_of(mix: np.ndarray, stems: Sequence[np.ndarray]) -> np.ndarray:
    """The mixture minus every stem: what no target claimed."""
    total = stems[0]
    for stem in stems[1:]:
        total = total + stem
    return mix - total


def separate_array(
    targets: Sequence[Target],
    audio: np.ndarray,
    sample_rate: int,
    options: SeparationOptions | None = None,
) -> dict[str, np.ndarray]:
    """Separate audio held in memory: ``audio`` (frames,) or (frames, channels), float or signed
    integer PCM (scaled to [-1, 1] as soundfile reads it); returns each target's stem and the
    residual, by name, as float32 arrays of the input's shape. The same streaming engine as
    ``separate_file``, so a file and its samples give the same stems."""
    options = options or SeparationOptions()
    frames = as_float_frames(audio)
    shape = (frames.shape[0],) if np.ndim(audio) == 1 else frames.shape
    info = AudioInfo(sample_rate, frames.shape[1], frames.shape[0], "FLOAT")
    check_audio(info, "audio")

    parts = list(separate_blocks(targets, lambda: array_blocks(frames), info, options, "audio"))
    stems = [np.concatenate([p[0][k] for p in parts]).reshape(shape) for k in range(len(targets))]
    names = [t.name for t in targets]
    out = dict(zip(names, stems))
    out[residual_name(names)] = residual_of(frames.reshape(shape), stems)
    return out


def separate_file(
    targets: Sequence[Target],
    source: str | Path,
    outputs: Mapping[str, str | Path],
    options: SeparationOptions,
    label: str | None = None,
    on_chunk: Callable[[], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> list[Written]:
    """Separate ``source`` into the stems named in ``outputs`` (stem name -> path, or "-" for
    stdout): any of the targets' names and the residual's (``targets.stem_names``).

    Writers are opened before any work so an existing output or an unwritable folder fails fast,
    and every writer is aborted (temporary file removed) if anything goes wrong, including
    KeyboardInterrupt: the stems of one input are written together or not at all.
    """
    started = time.time()
    label = label or str(source)
    names = [t.name for t in targets]
    known = stem_names(names)
    unknown = [n for n in outputs if n not in known]
    if unknown:
        raise ValueError(f"outputs: no stem named {unknown[0]!r} (this run's stems: {', '.join(known)})")
    residual = residual_name(names)
    with AudioReader(source, label) as reader:
        info = reader.info
        subtype = resolve_subtype(options.fmt, options.bit_depth, info.subtype)
        writers = {}
        try:
            for name, dest in outputs.items():
                writers[name] = (
                    stdout_writer(info, options.fmt, subtype, options.mp3_bitrate)
                    if dest == "-"
                    else AtomicWriter(
                        Path(dest),
                        info.sample_rate,
                        info.channels,
                        options.fmt,
                        subtype,
                        options.overwrite,
                        options.mp3_bitrate,
                    )
                )
            for stems, mix in separate_blocks(targets, reader.blocks, info, options, label, on_chunk, on_start):
                for name, stem in zip(names, stems):
                    if name in writers:
                        writers[name].write(stem)
                if residual in writers:
                    writers[residual].write(residual_of(mix, stems))
            for writer in writers.values():
                writer.commit()
        except BaseException:
            for writer in writers.values():
                writer.abort()  # a stem already committed is taken back: the stems of a run go together
            raise
    seconds = time.time() - started
    device = str(targets[0].model.device)
    joins = {t.name: t.cond.bases for t in targets if t.cond.bases is not None}
    return [
        Written(
            input=label,
            stem=name,
            path=str(dest),
            sample_rate=info.sample_rate,
            duration=info.duration,
            seconds=round(seconds, 3),
            device=device,
            clipped_samples=writers[name].clipped,
            nmf=round(joins[name].mixed_in, 3) if name in joins else None,
            nmf_join=joins[name].join if name in joins else None,
        )
        for name, dest in outputs.items()
    ]
