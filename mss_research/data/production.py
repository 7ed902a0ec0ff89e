"""Production effects on rendered stems, drawn per episode: what a mixing engineer does to a track.

FluidSynth renders are dry, clean and alike; recorded songs are equalised, compressed, distorted
(electric guitars through amps and cabinets), modulated and sent to reverbs and delays. A rendered
stem drawn for an episode goes, with probability ``p``, through a random chain of such effects
(pedalboard), so that the separator and the example encoder meet an instrument through many
productions and learn what stays the same. Each stem's chain is its own, as on a mixing desk, and
an example clip gets another chain than the mixture's stem of that class. The stem keeps its level
(RMS), so the episode's gains mean what they did.
"""

from __future__ import annotations

import random

import numpy as np

from mss_cli.audio import SAMPLE_RATE

# Classes whose recorded sound is usually an amplifier's: distortion and a cabinet's low-pass.
AMPLIFIED = {"electric_guitar": 0.8, "synth_lead": 0.3, "organ": 0.3, "bass": 0.15, "clavinet": 0.3}
# Classes a chorus, phaser or delay is usual on.
MODULATED = {"electric_guitar", "electric_piano", "synth_lead", "synth_pad", "synth_brass", "acoustic_guitar", "organ"}


def chain(cls: str, rng: random.Random):
    """A random effects chain for a stem of class ``cls`` (a pedalboard.Pedalboard)."""
    import pedalboard as pb

    u = rng.uniform
    fx: list = []
    if rng.random() < 0.4:
        fx.append(pb.HighpassFilter(cutoff_frequency_hz=u(30, 200)))
    if rng.random() < AMPLIFIED.get(cls, 0.0):
        fx += [pb.Distortion(drive_db=u(6, 30)), pb.LowpassFilter(cutoff_frequency_hz=u(2500, 6500))]
    for _ in range(rng.choice([0, 1, 1, 2])):
        fx.append(pb.PeakFilter(cutoff_frequency_hz=u(150, 8000), gain_db=u(-8, 8), q=u(0.5, 3)))
    if rng.random() < 0.5:
        fx.append(pb.Compressor(threshold_db=u(-30, -10), ratio=u(2, 8), attack_ms=u(1, 30)))
    if cls in MODULATED and rng.random() < 0.4:
        modulation = rng.choice(
            [
                lambda: pb.Chorus(rate_hz=u(0.3, 2), depth=u(0.1, 0.5), mix=u(0.2, 0.6)),
                lambda: pb.Phaser(rate_hz=u(0.2, 2), depth=u(0.3, 0.8), mix=u(0.2, 0.6)),
                lambda: pb.Delay(delay_seconds=u(0.08, 0.5), feedback=u(0, 0.5), mix=u(0.1, 0.35)),
            ]
        )
        fx.append(modulation())
    if rng.random() < 0.35:
        fx.append(pb.Reverb(room_size=u(0.1, 0.9), damping=u(0.2, 0.8), wet_level=u(0.05, 0.35), dry_level=1.0))
    return pb.Pedalboard(fx)


def produce(audio: np.ndarray, cls: str, rng: random.Random) -> np.ndarray:
    """``audio`` (mono float32) through a random chain for its class, at its own RMS."""
    board = chain(cls, rng)
    if not len(board):
        return audio
    out = board(audio[None, :], SAMPLE_RATE)[0, : audio.shape[0]].astype(np.float32)
    before, after = float(np.sqrt(np.mean(audio**2))), float(np.sqrt(np.mean(out**2)))
    return out * np.float32(before / after) if after > 1e-9 else audio
