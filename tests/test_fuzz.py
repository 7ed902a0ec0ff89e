"""Fuzzing mss separate with damaged files: a few hundred mutated WAV, FLAC, MP3 and OGG files (and
float files with absurd values) in one batch call. Whatever each file holds, mss answers with exit
code 0, 1 or 2, never a traceback or an internal error, no partial file, no stem with a NaN.
MSS_FUZZ_N sets how many mutated files (320 in CI; 1,000 for a release check)."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from mss_cli.manifest import MANIFEST

FORMATS = {"wav": "PCM_16", "flac": "PCM_16", "mp3": "MPEG_LAYER_III", "ogg": "VORBIS"}


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of: flipped bytes, a truncation, a header overwritten, a chunk repeated, bytes dropped."""
    data = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        data = data[: rng.randrange(1, len(data))]
    elif kind == 2:
        for i in range(rng.randrange(4, 64)):
            data[i % len(data)] = rng.randrange(256)
    elif kind == 3:
        start = rng.randrange(len(data))
        data[start:start] = data[start : start + rng.randint(1, 4096)]
    else:
        start = rng.randrange(len(data))
        del data[start : start + rng.randint(1, 4096)]
    return bytes(data)


@pytest.mark.slow
def test_a_batch_of_damaged_files(tmp_path, tiny_weights):
    rng = random.Random(7)
    sources = tmp_path / "in"
    sources.mkdir()
    seeds = {}
    for ext, subtype in FORMATS.items():
        path = tmp_path / f"seed.{ext}"
        sf.write(path, tone(1.5, freq=330) * 0.5, 44100, subtype=subtype)
        seeds[ext] = path.read_bytes()
    for i in range(int(os.environ.get("MSS_FUZZ_N", "320"))):
        ext = rng.choice(list(FORMATS))
        (sources / f"f{i:03d}.{ext}").write_bytes(mutate(seeds[ext], rng))
    for i, value in enumerate([1e20, 1e30, 3e38, -1e25, 1e5]):
        audio = tone(1.0)
        audio[rng.randrange(len(audio)), 0] = value
        sf.write(sources / f"huge{i}.wav", audio, 44100, subtype="FLOAT")
    sf.write(tmp_path / "clip.wav", tone(1.5, freq=330, channels=1), 44100)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mss_cli", "separate", str(sources), "--like", str(tmp_path / "clip.wav")]
    proc = subprocess.run(
        [*command, "-o", str(out), "--weights", str(tiny_weights), "--bit-depth", "32f"],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-3000:]
    stray = [line for line in proc.stderr.splitlines() if not line.startswith(("mss: ", "  "))]
    assert not stray, stray[:10]  # every line is mss's own: no decoder chatter
    assert not [p for p in out.rglob(".*") if p.is_file() and p.name != MANIFEST]  # no partial file
    for stem in out.rglob("*.wav"):
        assert np.isfinite(sf.read(stem, dtype="float32")[0]).all(), stem
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mss: error:")]
    files = len(list(sources.iterdir()))
    separated = len({p.parent for p in out.rglob("like.wav")})
    print(f"fuzz: {files} files, {separated} separated, {len(errors)} one-line errors, exit {proc.returncode}")
    huge = [line for line in proc.stderr.splitlines() if "huge" in line and line.startswith("mss: error:")]
    assert len(huge) == 5  # each absurd float file is one error line (1e5 too: above the 1e4 bound)
