"""Audio I/O in blocks: decode (soundfile, or ffmpeg for other containers), resample (soxr), encode.

Nothing here holds a whole track in memory: inputs are read block by block (stdin and ffmpeg
containers are first spooled to a temporary file), and outputs are written block by block to a
temporary name that is renamed only when the file is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from mss_cli.errors import MssError, UsageError
from mss_cli.files import output_mode, partial_prefix, refuse_to_replace, remove_stale_partials
from mss_cli.formats import FORMATS

SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".w64", ".rf64", ".opus", ".caf"}
FFMPEG_EXTENSIONS = {".m4a", ".aac", ".mp4", ".webm", ".mka", ".wma", ".ac3", ".alac", ".mov", ".mkv", ".ape", ".wv"}
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS

BLOCK = 65536
# The sample rate mss's models and training data work at (tracks at other rates are resampled).
SAMPLE_RATE = 44100
# What a file's header may claim: beyond these, a header is corrupt or hostile (resampling 1 Hz to
# 44.1 kHz, or 1,000 channels of buffers, would exhaust memory).
MIN_RATE, MAX_RATE = 1000, 768_000
MAX_CHANNELS = 64
# Float samples beyond this (80 dB over full scale) are not audio; squared in float32 for the level,
# values near 1e20 overflow and would turn every output sample into NaN.
MAX_SAMPLE = 1e4
MP3_MAX_RATE = 48_000


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def ffmpeg_binary() -> str | None:
    """ffmpeg as pydub finds it (PATH, or pydub's configured converter). pydub warns on import when
    ffmpeg is missing; mss says so itself, in one line, where a file needs it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from pydub.utils import which

    return which("ffmpeg")


def check_audio(info: AudioInfo, source: str) -> None:
    """Refuse, before any work, what a header may claim but no audio is: no samples, an absurd
    sample rate, or more channels than buffers should be sized for."""
    problem = (
        "empty audio (0 samples)"
        if info.frames == 0
        else f"sample rate {info.sample_rate} Hz (mss takes {MIN_RATE} to {MAX_RATE} Hz)"
        if not MIN_RATE <= info.sample_rate <= MAX_RATE
        else f"{info.channels} channels (mss takes at most {MAX_CHANNELS})"
        if info.channels > MAX_CHANNELS
        else None
    )
    if problem:
        raise MssError(f"{source}: {problem}")


def check_samples(block: np.ndarray, source: str) -> None:
    """Refuse NaN, infinite and absurd samples: one would spread over a whole chunk's output."""
    peak = float(np.abs(block).max()) if block.size else 0.0
    if not peak <= MAX_SAMPLE:
        raise MssError(f"{source}: contains NaN, infinite or absurd samples (peak {peak:.3g}; not valid audio)")


def as_float_frames(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    """Samples in memory, (frames,) or (frames, channels), float or signed integer PCM (scaled to
    [-1, 1] as soundfile reads it) -> float32 (frames, channels)."""
    samples = np.asarray(audio)
    if samples.ndim not in (1, 2) or samples.shape[0] == 0:
        raise MssError(f"{what} of shape {samples.shape}: expected (frames,) or (frames, channels)")
    if np.issubdtype(samples.dtype, np.signedinteger):
        samples = samples / np.float32(-np.iinfo(samples.dtype).min)
    elif not np.issubdtype(samples.dtype, np.floating):
        raise MssError(f"{what} of dtype {samples.dtype}: expected float or signed integer samples")
    return samples.reshape(samples.shape[0], -1).astype(np.float32, copy=False)


class AudioReader:
    """A decoded audio file read in float32 blocks of shape (frames, channels)."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        """``name``: what errors call the file, where its path means nothing to the user (stdin's spool)."""
        self.source = name or str(path)
        self._tmp: Path | None = None
        path = Path(path)
        try:
            found = path.exists()
        except OSError as exc:  # a name too long for the file system
            raise MssError(f"{self.source}: cannot open ({exc.strerror or exc})") from None
        if not found:
            raise MssError(f"{self.source}: file not found")
        if path.is_dir():
            raise MssError(f"{self.source}: is a folder, not an audio file")
        if not path.is_file():  # a FIFO waits for a writer forever, and is read once: stdin is spooled
            raise MssError(f"{self.source}: a pipe or device, not a file: give it on stdin as - instead")
        if not os.access(path, os.R_OK):
            raise MssError(f"{self.source}: permission denied")
        try:
            self._file = sf.SoundFile(os.fsencode(path))  # bytes: a name that is not UTF-8 opens too
        except (sf.LibsndfileError, RuntimeError, TypeError):
            self._file = self._via_ffmpeg(path)
        if not self._file.seekable():  # blocks() reads a file twice; libsndfile cannot seek GSM 6.10 WAVs
            self._file.close()
            self._file = self._via_ffmpeg(path)
        try:
            frames = self._counted_frames() if self._file.format == "MP3" else self._file.frames
            self.info = AudioInfo(self._file.samplerate, self._file.channels, frames, self._file.subtype)
            check_audio(self.info, self.source)
        except MssError:
            self.close()
            raise

    def _counted_frames(self) -> int:
        """An MP3's length, decoded: its header gives only an estimate (from the bitrate, or a Xing
        header a stream written to a pipe lacks), which can be off by a frame or more."""
        frames = 0
        try:
            while block := len(self._file.read(BLOCK, dtype="float32", always_2d=True)):
                frames += block
            self._file.seek(0)
        except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
            raise MssError(f"{self.source}: cannot decode audio ({exc})") from None
        return frames

    def _via_ffmpeg(self, path: Path) -> sf.SoundFile:
        """Decode a container soundfile cannot read into a temporary float WAV (bounded memory)."""
        ffmpeg = ffmpeg_binary()
        if ffmpeg is None:
            hint = (
                "install ffmpeg to read this format"
                if path.suffix.lower() in FFMPEG_EXTENSIONS
                else "not a readable audio file"
            )
            raise MssError(f"{self.source}: cannot decode ({hint}; ffmpeg not found)")
        fd, tmp = tempfile.mkstemp(suffix=".wav", prefix="mss-decode-")
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            return self._decode(ffmpeg, path, tmp)
        except BaseException:  # a signal during the decode too: the whole decoded track goes
            self._cleanup()
            raise

    def _decode(self, ffmpeg: str, path: Path, tmp: str) -> sf.SoundFile:
        """ffmpeg writes the decoded track to ``tmp``; the caller removes it on any failure."""
        proc = subprocess.run(
            [
                ffmpeg,
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-i",
                str(path),
                "-vn",
                "-c:a",
                "pcm_f32le",
                "-rf64",
                "auto",
                tmp,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1].replace(str(path), self.source)
            raise MssError(f"{self.source}: cannot decode audio ({reason})")
        try:
            return sf.SoundFile(tmp)
        except (sf.LibsndfileError, RuntimeError):
            raise MssError(f"{self.source}: cannot decode audio (no audio stream)") from None

    def blocks(self, size: int = BLOCK) -> Iterator[np.ndarray]:
        """The whole file from its start, checked: a decoder failure, or a stream that ends before
        the length its header gives (a truncated file), is an error naming the cause."""
        read = 0
        try:
            self._file.seek(0)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise MssError(f"{self.source}: cannot decode audio ({exc})") from None
        while True:
            try:
                data = self._file.read(size, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
                raise MssError(f"{self.source}: cannot decode audio ({exc})") from None
            if data.shape[0] == 0:
                if read < self.info.frames:
                    raise MssError(
                        f"{self.source}: cannot decode audio (the stream ends after {read} of "
                        f"{self.info.frames} samples: a truncated or damaged file)"
                    )
                return
            read += data.shape[0]
            check_samples(data, self.source)
            yield data

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def close(self) -> None:
        self._file.close()
        self._cleanup()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def spooled_stdin(stream: BinaryIO | None = None) -> Iterator[Path]:
    """Copy stdin to a temporary file so it can be decoded like any file (and sought)."""
    stream = stream or sys.stdin.buffer
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix="mss-stdin-")
        with os.fdopen(fd, "wb") as fh:
            shutil.copyfileobj(stream, fh, BLOCK * 4)
    except OSError as exc:  # TMPDIR full or unusable: the whole stream is kept there to be read twice
        if tmp:
            os.unlink(tmp)
        where = tempfile.gettempdir()
        raise MssError(f"-: cannot spool standard input to {where} ({exc.strerror or exc}; set TMPDIR)") from None
    try:
        if os.path.getsize(tmp) == 0:
            raise MssError("-: empty standard input")
        yield Path(tmp)
    finally:
        os.unlink(tmp)


class Resampler:
    """Streaming soxr resampler that returns exactly round(n * out/in) frames in total."""

    def __init__(self, in_rate: int, out_rate: int, channels: int) -> None:
        import soxr

        self.identity = in_rate == out_rate
        self.ratio = out_rate / in_rate
        self.stream = (
            None if self.identity else soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality="HQ")
        )
        self.consumed = 0
        self.produced = 0

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self.identity:
            return block
        self.consumed += block.shape[0]
        out = self.stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)
        if last:
            expected = int(round(self.consumed * self.ratio)) - self.produced
            out = out[:expected] if out.shape[0] >= expected else np.pad(out, ((0, expected - out.shape[0]), (0, 0)))
        self.produced += out.shape[0]
        return out


def resolve_subtype(fmt: str, bit_depth: str | None, input_subtype: str) -> str | None:
    """The encoder subtype: the requested bit depth, else the input's (16-bit where that is unknown)."""
    table = FORMATS[fmt].subtypes
    if table is None:
        if bit_depth:
            raise UsageError(f"bit depth {bit_depth}: {fmt} has none (a compressed format)")
        return None
    if bit_depth:
        if bit_depth not in table:
            raise UsageError(f"bit depth {bit_depth}: not available for {fmt} (choose {', '.join(table)})")
        return table[bit_depth]
    return input_subtype if input_subtype in table.values() else table["16"]


def mp3_settings(kbps: int | None, sample_rate: int) -> dict:
    """soundfile's settings for a constant MP3 bitrate. libsndfile maps a compression level in
    [0, 1] linearly onto the bitrates of the MPEG version the rate needs (MPEG-1, 32-48 kHz:
    32-320 kbit/s; MPEG-2, 16-24 kHz: 8-160; MPEG-2.5: 8-64); a bitrate beyond them is clamped."""
    if kbps is None:
        return {}
    low, high = (32, 320) if sample_rate >= 32000 else (8, 160) if sample_rate >= 16000 else (8, 64)
    level = (high - min(max(kbps, low), high)) / (high - low)
    return {"compression_level": level, "bitrate_mode": "CONSTANT"}


class AtomicWriter:
    """Writes audio to a hidden temporary file beside the destination; ``commit`` renames it.

    An exception (or Ctrl-C) before ``commit`` removes the temporary file, so no partial output is
    ever left under the final name.
    """

    def __init__(
        self,
        path: Path,
        sample_rate: int,
        channels: int,
        fmt: str,
        subtype: str | None,
        overwrite: bool,
        mp3_bitrate: int | None = None,
    ) -> None:
        self.path = path
        self.overwrite = overwrite
        self.created = False  # set by a commit that made a new file under the final name
        if not overwrite:
            refuse_to_replace(path, "output")
        if fmt == "mp3" and sample_rate > MP3_MAX_RATE:
            raise MssError(
                f"{path}: MP3 takes sample rates up to {MP3_MAX_RATE} Hz, the input has {sample_rate} Hz "
                "(use --format flac or wav)"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MssError(f"{path.parent}: cannot create output folder ({exc.strerror})") from None
        if not os.access(path.parent, os.W_OK):
            raise MssError(f"{path.parent}: output folder is not writable")
        mode = output_mode(path)
        try:
            remove_stale_partials(path.parent)
            fd, tmp = tempfile.mkstemp(
                prefix=partial_prefix(path.stem), suffix=f".partial.{FORMATS[fmt].extension}", dir=path.parent
            )
        except OSError as exc:
            raise MssError(f"{path}: cannot write ({exc.strerror or exc})") from None
        os.fchmod(fd, mode)
        os.close(fd)
        self.tmp = Path(tmp)
        self.clipped = 0
        self.peak = 0.0
        self._float = subtype == "FLOAT"
        try:
            self._file = sf.SoundFile(
                os.fsencode(tmp),
                "w",
                sample_rate,
                channels,
                subtype=subtype,
                format=FORMATS[fmt].soundfile,
                **mp3_settings(mp3_bitrate, sample_rate),
            )
        except (sf.LibsndfileError, RuntimeError) as exc:
            self.tmp.unlink(missing_ok=True)
            raise MssError(f"{path}: cannot write {fmt} ({exc})") from None

    def write(self, block: np.ndarray) -> None:
        peak = float(np.abs(block).max()) if block.size else 0.0
        if not np.isfinite(peak):  # never write a stem of NaN: whatever caused it, it is not audio
            raise MssError(f"{self.path}: the separation produced non-finite samples (nothing written)")
        self.peak = max(self.peak, peak)
        if not self._float and peak > 1.0:
            self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))
            block = np.clip(block, -1.0, 1.0)
        try:
            self._file.write(block)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise self._write_error(exc) from None

    def _write_error(self, exc: Exception) -> MssError:
        """libsndfile reports a full disk as 'System error.': say what it is where the disk says so."""
        try:
            stats = os.statvfs(self.tmp.parent)
            full = stats.f_bavail * stats.f_frsize < (1 << 20)
        except OSError:
            full = False
        reason = "the disk is full" if full else getattr(exc, "strerror", None) or str(exc)
        return MssError(f"{self.path}: cannot write ({reason})")

    def commit(self) -> None:
        """Rename the finished file into place. Without ``overwrite`` the name is taken exclusively
        (a hard link fails if it exists), so two runs into one folder cannot replace each other's
        stems between the existence check and the rename."""
        try:
            self._file.close()  # flushes the last frames and the header
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise self._write_error(exc) from None
        if self.overwrite:
            os.replace(self.tmp, self.path)
            return
        try:
            os.link(self.tmp, self.path)
        except FileExistsError:
            self.abort()
            refuse_to_replace(self.path, "output")
        except OSError:  # a file system without hard links: the check in __init__ is all there is
            os.replace(self.tmp, self.path)
        self.created = True
        self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Remove the temporary file; after a ``commit`` that created a new file, that file too."""
        if not self._file.closed:
            with contextlib.suppress(sf.LibsndfileError, RuntimeError, OSError):
                self._file.close()  # a full disk fails the close's flush too; the file goes anyway
        self.tmp.unlink(missing_ok=True)
        if self.created:
            self.path.unlink(missing_ok=True)
            self.created = False


class WavStreamWriter:
    """WAV to a non-seekable stream (stdout): the length is known up front, so the header is exact."""

    def __init__(self, stream: BinaryIO, sample_rate: int, channels: int, frames: int, subtype: str) -> None:
        self.stream = stream
        self.subtype = subtype
        bits, fmt_tag = {"PCM_16": (16, 1), "PCM_24": (24, 1), "FLOAT": (32, 3)}.get(subtype, (16, 1))
        self.bits = bits
        block_align = channels * bits // 8
        data_size = frames * block_align
        header = b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVE"
        header += b"fmt " + struct.pack(
            "<IHHIIHH", 16, fmt_tag, channels, sample_rate, sample_rate * block_align, block_align, bits
        )
        header += b"data" + struct.pack("<I", data_size)
        self.stream.write(header)
        self.clipped = 0
        self.peak = 0.0

    def write(self, block: np.ndarray) -> None:
        self.peak = max(self.peak, float(np.abs(block).max()) if block.size else 0.0)
        if self.bits == 32:
            self.stream.write(block.astype("<f4").tobytes())
            return
        self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))
        scale = 2 ** (self.bits - 1)
        ints = np.clip(np.round(block * scale), -scale, scale - 1).astype("<i4")
        if self.bits == 16:
            self.stream.write(ints.astype("<i2").tobytes())
        else:
            self.stream.write(ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes())

    def commit(self) -> None:
        self.stream.flush()

    def abort(self) -> None:
        self.stream.flush()


class EncodedStreamWriter:
    """A compressed or FLAC stream to stdout: encoded into a temporary file (libsndfile needs to seek
    to finish these formats), which is copied to stdout when complete and then removed."""

    def __init__(self, sample_rate: int, channels: int, fmt: str, subtype: str | None, mp3_bitrate: int | None) -> None:
        fd, tmp = tempfile.mkstemp(prefix="mss-stdout-", suffix=f".{FORMATS[fmt].extension}")
        os.close(fd)
        self.tmp = Path(tmp)
        try:
            self.writer = AtomicWriter(self.tmp, sample_rate, channels, fmt, subtype, True, mp3_bitrate)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    @property
    def clipped(self) -> int:
        return self.writer.clipped

    def write(self, block: np.ndarray) -> None:
        self.writer.write(block)

    def commit(self) -> None:
        try:
            self.writer.commit()
            with open(self.tmp, "rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer, BLOCK * 4)
            sys.stdout.buffer.flush()
        finally:
            self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        self.writer.abort()
        self.tmp.unlink(missing_ok=True)


def stdout_writer(info: AudioInfo, fmt: str, subtype: str | None, mp3_bitrate: int | None = None):
    """A writer of one stem to stdout in ``fmt``: WAV streams as it is separated (its length is
    known up front), other formats once the stem is complete."""
    if fmt == "wav":
        return WavStreamWriter(sys.stdout.buffer, info.sample_rate, info.channels, info.frames, subtype or "PCM_16")
    return EncodedStreamWriter(info.sample_rate, info.channels, fmt, subtype, mp3_bitrate)


def array_blocks(frames: np.ndarray, what: str = "audio") -> Iterator[np.ndarray]:
    """Samples in memory (frames, channels) in blocks, each checked as a file's blocks are."""
    for start in range(0, frames.shape[0], BLOCK):
        block = frames[start : start + BLOCK]
        check_samples(block, what)
        yield block


def mono_blocks(blocks: Iterable[np.ndarray], rate: int, sample_rate: int) -> Iterator[np.ndarray]:
    """(frames, channels) blocks at ``rate`` -> mono float32 blocks at ``sample_rate`` (example
    clips are embedded in mono)."""
    resample = Resampler(rate, sample_rate, 1)
    for block in blocks:
        yield resample(block.mean(axis=1, keepdims=True))[:, 0]
    yield resample(np.zeros((0, 1), np.float32), last=True)[:, 0]


def read_mono(path: str | Path, sample_rate: int) -> Iterator[np.ndarray]:
    """A file's mono float32 blocks at ``sample_rate``."""
    with AudioReader(path) as reader:
        yield from mono_blocks(reader.blocks(), reader.info.sample_rate, sample_rate)


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS
