"""Input level: the separator is not scale-free, so tracks and clips are brought to its level.

The model's features are ``log(1 + |X|)``: linear in the magnitude for quiet sounds, logarithmic for
loud ones. A mixture or example clip far louder or softer than the renders it trained on is a
different input to it (`experiments/input-level.md`: 0.2-0.35 dB lost 12-18 dB above the renders,
1 dB lost 24 dB below them). Mastered music typically sits 10 dB or more above our renders, so
every mixture and clip is scaled to the renders' typical level before the model sees it; the mask
is applied to the audio as it came, so the output keeps the input's level.

The level is a gated RMS (after ITU-R BS.1770's gating, without its K-weighting): the mean power
of 400 ms blocks that are neither below -70 dBFS nor more than 20 dB below the others' mean, so a
track's silent intro or a clip's fading tail does not make it look quiet.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

BLOCK_SECONDS = 0.4
ABSOLUTE_GATE_DB = -70.0
RELATIVE_GATE_DB = -20.0


class LevelMeter:
    """Accumulates the gated RMS of a signal that arrives in blocks (frames, channels) or (frames,)."""

    def __init__(self, sample_rate: int) -> None:
        self.block = max(1, int(BLOCK_SECONDS * sample_rate))
        self.powers: list[float] = []
        self._rest = np.zeros(0, np.float32)

    def add(self, audio: np.ndarray) -> None:
        """Blocks' mean power over all channels; one value per 400 ms, so a long track costs little."""
        frames = audio.reshape(audio.shape[0], -1).astype(np.float32, copy=False)
        power = np.einsum("ij,ij->i", frames, frames) / frames.shape[1]  # per frame, float32: cheap
        data = np.concatenate([self._rest, power])
        whole = data.shape[0] // self.block * self.block
        # Block means accumulated in float64, so a long block of small values loses nothing.
        self.powers += (data[:whole].reshape(-1, self.block).sum(axis=1, dtype=np.float64) / self.block).tolist()
        self._rest = data[whole:]

    def dbfs(self) -> float | None:
        """The gated level in dBFS; None for silence. A signal shorter than one block is one block."""
        powers = np.asarray(self.powers + ([float(self._rest.mean(dtype=np.float64))] if self._rest.size else []))
        loud = powers[powers > 10 ** (ABSOLUTE_GATE_DB / 10)]
        if loud.size == 0:
            return None
        loud = loud[loud > loud.mean() * 10 ** (RELATIVE_GATE_DB / 10)]
        return float(10 * np.log10(loud.mean()))


def level_dbfs(audio: np.ndarray | Iterable[np.ndarray], sample_rate: int) -> float | None:
    """Gated RMS level of a whole signal (an array, or its blocks), in dBFS; None for silence."""
    meter = LevelMeter(sample_rate)
    for block in [audio] if isinstance(audio, np.ndarray) else audio:
        meter.add(block)
    return meter.dbfs()


def gain_to(level: float | None, reference_dbfs: float | None) -> float:
    """The factor that brings a signal at ``level`` dBFS to ``reference_dbfs`` (1 for silence, or
    where there is no reference: a model that takes its inputs as they come)."""
    if level is None or reference_dbfs is None:
        return 1.0
    return float(10 ** ((reference_dbfs - level) / 20))


def gain_for(audio: np.ndarray | Iterable[np.ndarray], reference_dbfs: float | None, sample_rate: int) -> float:
    """The factor that brings ``audio`` (an array, or its blocks) to ``reference_dbfs``."""
    return gain_to(level_dbfs(audio, sample_rate), reference_dbfs)


def at_level(audio: np.ndarray, reference_dbfs: float | None, sample_rate: int) -> np.ndarray:
    """``audio`` scaled to ``reference_dbfs`` (an example clip, before the model embeds it)."""
    return audio * np.float32(gain_for(audio, reference_dbfs, sample_rate))
