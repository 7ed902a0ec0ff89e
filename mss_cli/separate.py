"""Separate one track: decode -> measure its level -> resample -> overlap-add model -> resample
back -> encode.

This is the library entry point the CLI calls for every input; it streams end to end (the level
is a first pass over the decoded file), so memory does not depend on the track's length. The
residual is computed as mixture minus target at the input's own rate, so target + residual
reproduces the input exactly (up to output rounding).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from mss_cli.audio import (
    BLOCK,
    AtomicWriter,
    AudioInfo,
    AudioReader,
    Resampler,
    WavStreamWriter,
    check_audio,
    check_samples,
    resolve_subtype,
)
from mss_cli.conditioning import Conditioning, Partner
from mss_cli.device import Precision
from mss_cli.engine import OverlapAdd
from mss_cli.errors import MssError
from mss_cli.level import level_dbfs

if TYPE_CHECKING:
    import torch

    from mss_cli.model import ConditionedUNet

# Seconds of one-channel audio in one pass of the model on the CPU: peak memory grows by about
# 6 MB per such second on the shipped model (434 MB for 2 x 10 s, 665 MB for 2 x 30 s, measured),
# so 60 keeps a run under 1 GB whatever the input's channels and --batch-size.
ROW_SECONDS = 60.0
MAX_CHUNK_SECONDS = 30.0  # one chunk of one channel must fit that budget twice (stereo)
CHANNEL_SECONDS = 640.0  # channels x chunk seconds held by the overlap-add buffers (64 x 10 s: 755 MB)
Format = Literal["wav", "flac", "mp3", "ogg"]
BitDepth = Literal["16", "24", "32f"]
Role = Literal["target", "residual"]


@dataclass
class SeparationOptions:
    """How to separate and write (``mss separate``'s options of the same names)."""

    chunk_seconds: float = 10.0
    overlap: float = 0.15
    batch_size: int = 1
    precision: Precision = "auto"
    shifts: int = 1
    fmt: Format = "wav"
    bit_depth: BitDepth | None = None  # None: as the input
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
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision={self.precision!r}: auto, fp32 or bf16")
        if self.fmt not in ("wav", "flac", "mp3", "ogg"):
            raise ValueError(f"fmt={self.fmt!r}: wav, flac, mp3 or ogg")
        if self.bit_depth not in (None, "16", "24", "32f"):
            raise ValueError(f"bit_depth={self.bit_depth!r}: None, '16', '24' or '32f'")
        if self.mp3_bitrate is not None:
            whole("mp3_bitrate", 32, 320)


@dataclass
class Written:
    """One output file, as reported by ``--json``."""

    input: str
    stem: str
    path: str
    sample_rate: int
    duration: float
    seconds: float
    device: str
    clipped_samples: int = 0


class Stem(NamedTuple):
    """One stem to write: its name (``--json``'s ``stem``) and where it goes ("-": stdout)."""

    name: str
    dest: Path | str


@dataclass
class Outputs:
    """The stems to write, by role; plain (name, dest) pairs are taken as ``Stem``."""

    paths: dict[Role, Stem] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paths = {role: Stem(*stem) for role, stem in self.paths.items()}


def make_separator(
    model: ConditionedUNet,
    cond_vector: torch.Tensor,
    precision: Precision = "auto",
    unwanted: torch.Tensor | None = None,
    shifts: int = 1,
    level: float | None = None,
    partners: Sequence[Partner] = (),
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function rows (N, samples) -> target rows, running the model on its device with the
    conditioning folded into its weights (``bind_conditioning``) and in ``precision``; every mask
    is the mean over ``shifts`` passes (``ConditionedUNet.mask``).

    ``unwanted`` (M, cond_dim), from ``conditioning.unwanted_vectors``: one more pass per row of
    it, each separating an unwanted instrument, whose mask is then taken out of the target's
    (``take_out`` in the model). The spectrogram is computed once for all of them.

    ``level``: the whole input's gated level in dBFS (``level.level_dbfs``); the network sees the
    input scaled to the level its training mixtures had (``ModelConfig.mixture_dbfs``), so a loud
    master and a quiet recording of one song separate alike, and the output keeps the input's own
    level. None: the input as it comes.

    ``partners``: (model, conditioning vector) pairs, other separators with the same transform
    (``conditioning.with_class``: the class-conditioned baseline); the target's mask is the mean of
    theirs and this model's (after its suppression: the partners get no negatives), a two-model
    ensemble that averages out part of each model's errors (`experiments/average-with-baseline.md`)."""
    import torch

    from mss_cli.device import autocast_dtype
    from mss_cli.level import gain_to
    from mss_cli.model import bind_conditioning, check_same_transform, take_out

    device = model.device
    bound = bind_conditioning(model, cond_vector.reshape(1, -1))
    unwanted_models = [bind_conditioning(model, v.reshape(1, -1)) for v in ([] if unwanted is None else unwanted)]
    for other, _ in partners:
        check_same_transform(model, other)
    bound_partners = [
        (
            bind_conditioning(m, v.reshape(1, -1)),
            gain_to(level, m.config.mixture_dbfs),
            torch.zeros(1, m.config.cond_dim, device=device),
        )
        for m, v in partners
    ]
    dtype = autocast_dtype(str(device), precision)
    unused = torch.zeros(1, model.config.cond_dim, device=device)
    gain = gain_to(level, model.config.mixture_dbfs)

    def run(rows: torch.Tensor) -> torch.Tensor:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None),
        ):
            rows = rows.to(device)
            spec, feats = bound.features(rows, gain)
            cond = unused.expand(rows.shape[0], -1)
            mask = bound.mask(feats, cond, shifts)
            if unwanted_models:
                most = unwanted_models[0].mask(feats, cond, shifts)
                for other in unwanted_models[1:]:
                    most = torch.maximum(most, other.mask(feats, cond, shifts))
                mask = take_out(mask, most)
            for partner, partner_gain, idle in bound_partners:
                mask = mask + partner.mask(
                    partner.features_of(spec, partner_gain), idle.expand(rows.shape[0], -1), shifts
                )
            mask = mask / (1 + len(bound_partners))
            out = bound.apply_mask(spec, mask, rows.shape[-1])
        return out.float().cpu()

    return run


def separate_blocks(
    model: ConditionedUNet,
    cond: Conditioning,
    blocks: Callable[[], Iterator[np.ndarray]],
    info: AudioInfo,
    options: SeparationOptions,
    label: str,
    on_chunk: Callable[[], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The streaming core of ``separate_file`` and ``separate_array``: (target, mixture) block pairs
    at the input's rate and channels, in order, for an input whose ``blocks()`` can be read twice
    (a first pass measures the whole track's level, so every chunk is scaled alike and chunking
    changes nothing). Memory does not depend on the input's length. A silent input is an
    ``MssError`` after that first pass, before any separation; one whose blocks do not add up to
    ``info.frames``, after the last block."""
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
    separate = make_separator(
        model, cond.vector, options.precision, cond.unwanted, options.shifts, level, cond.partners
    )
    # On the CPU a pass holds at most ROW_SECONDS of one-channel audio, whatever the channels and
    # batch; a GPU takes the batch as asked (its memory is the user's to size with --batch-size).
    max_rows = max(1, int(ROW_SECONDS // chunk_seconds)) if model.device.type == "cpu" else None
    engine = OverlapAdd(separate, chunk, options.overlap, options.batch_size, on_chunk, align, max_rows)
    model_frames = int(round(info.frames * rate / info.sample_rate))
    if on_start:
        on_start(engine.chunks_for(model_frames))
    down = Resampler(info.sample_rate, rate, info.channels)
    up = Resampler(rate, info.sample_rate, info.channels)
    mixture_fifo = np.zeros((0, info.channels), np.float32)

    def to_model_rate() -> Iterator[np.ndarray]:
        nonlocal mixture_fifo
        for block in blocks():
            mixture_fifo = np.concatenate([mixture_fifo, block])
            yield down(block)
        yield down(np.zeros((0, info.channels), np.float32), last=True)

    def paired(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal mixture_fifo
        mix, mixture_fifo = mixture_fifo[: target.shape[0]], mixture_fifo[target.shape[0] :]
        return target, mix

    produced = 0
    for block in engine.run(to_model_rate(), model_frames):
        out = up(block)
        produced += out.shape[0]
        yield paired(out)
    tail = up(np.zeros((0, info.channels), np.float32), last=True)
    produced += tail.shape[0]
    yield paired(tail)
    if produced != info.frames:
        raise MssError(f"{label}: internal length mismatch ({produced} != {info.frames} samples)")


def separate_array(
    model: ConditionedUNet,
    cond: Conditioning,
    audio: np.ndarray,
    sample_rate: int,
    options: SeparationOptions | None = None,
) -> dict[Role, np.ndarray]:
    """Separate audio held in memory: ``audio`` (frames,) or (frames, channels), float or signed
    integer PCM (scaled to [-1, 1] as soundfile reads it); returns the target and the residual (mixture
    minus target) as float32 arrays of the same shape. The same streaming engine as
    ``separate_file``, so a file and its samples give the same stems."""
    options = options or SeparationOptions()
    samples = np.asarray(audio)
    if samples.ndim not in (1, 2) or samples.shape[0] == 0:
        raise MssError(f"audio of shape {samples.shape}: expected (frames,) or (frames, channels)")
    if np.issubdtype(samples.dtype, np.signedinteger):  # as soundfile reads integer PCM
        samples = samples / np.float32(-np.iinfo(samples.dtype).min)
    elif not np.issubdtype(samples.dtype, np.floating):
        raise MssError(f"audio of dtype {samples.dtype}: expected float or signed integer samples")
    frames = samples.reshape(samples.shape[0], -1).astype(np.float32, copy=False)
    info = AudioInfo(sample_rate, frames.shape[1], frames.shape[0], "FLOAT")
    check_audio(info, "audio")

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, frames.shape[0], BLOCK):
            block = frames[start : start + BLOCK]
            check_samples(block, "audio")
            yield block

    target = np.concatenate([t for t, _ in separate_blocks(model, cond, blocks, info, options, "audio")])
    target = target.reshape(samples.shape)
    return {"target": target, "residual": frames.reshape(samples.shape) - target}


def separate_file(
    model: ConditionedUNet,
    cond: Conditioning,
    source: str | Path,
    outputs: Outputs,
    options: SeparationOptions,
    label: str | None = None,
    on_chunk: Callable[[], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> list[Written]:
    """Separate ``source`` into the stems named in ``outputs`` (``target`` and/or ``residual`` roles),
    as ``cond`` asks (its vector, and its negatives' suppression vectors if it has them).

    Writers are opened  before any work so an existing output or an unwritable folder fails fast, and every writer is
    aborted (temporary file removed) if anything goes wrong, including KeyboardInterrupt.
    """
    started = time.time()
    label = label or str(source)
    with AudioReader(source, label) as reader:
        info = reader.info
        subtype = resolve_subtype(options.fmt, options.bit_depth, info.subtype)
        writers: dict[str, tuple[str, object]] = {}
        try:
            for role, (name, dest) in outputs.paths.items():
                if dest == "-":
                    writers[role] = (
                        name,
                        WavStreamWriter(
                            sys.stdout.buffer, info.sample_rate, info.channels, info.frames, subtype or "PCM_16"
                        ),
                    )
                else:
                    writers[role] = (
                        name,
                        AtomicWriter(
                            Path(dest),
                            info.sample_rate,
                            info.channels,
                            options.fmt,
                            subtype,
                            options.overwrite,
                            options.mp3_bitrate,
                        ),
                    )
            for target, mix in separate_blocks(model, cond, reader.blocks, info, options, label, on_chunk, on_start):
                if "target" in writers:
                    writers["target"][1].write(target)
                if "residual" in writers:
                    writers["residual"][1].write(mix - target)
            for _, writer in writers.values():
                writer.commit()
        except BaseException:
            for _, writer in writers.values():
                writer.abort()  # a stem already committed is taken back: the stems of a run go together
            raise
    seconds = time.time() - started
    device = str(model.device)
    return [
        Written(
            input=label,
            stem=name,
            path=str(dest),
            sample_rate=info.sample_rate,
            duration=info.duration,
            seconds=round(seconds, 3),
            device=device,
            clipped_samples=writers[role][1].clipped,
        )
        for role, (name, dest) in outputs.paths.items()
    ]
