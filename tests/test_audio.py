"""Decoding through ffmpeg, the error when it is missing, and the stdout WAV writer."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

import mss_cli.audio as audio
from mss_cli.errors import MssError

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


@needs_ffmpeg
def test_m4a_is_decoded_through_ffmpeg(tmp_path):
    sf.write(tmp_path / "a.wav", tone(2.0, rate=48000), 48000)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "a.wav"), "-c:a", "aac", str(tmp_path / "a.m4a")], check=True
    )
    with audio.AudioReader(tmp_path / "a.m4a") as reader:
        assert reader.info.sample_rate == 48000 and reader.info.channels == 2
        data = np.concatenate(list(reader.blocks()))
        assert abs(len(data) - 96000) < 2048 and np.abs(data).max() > 0.1
        tmp = reader._tmp
    assert not tmp.exists()  # the decoded temporary file is gone


@needs_ffmpeg
def test_a_wav_libsndfile_cannot_seek_is_decoded_through_ffmpeg(tmp_path):
    """GSM 6.10 in WAV opens in libsndfile but cannot seek, and every input is read twice."""
    sf.write(tmp_path / "a.wav", tone(2.0, rate=8000, channels=1), 8000)
    command = ["ffmpeg", "-v", "error", "-i", str(tmp_path / "a.wav"), "-c:a", "libgsm_ms", str(tmp_path / "gsm.wav")]
    if subprocess.run(command, capture_output=True).returncode != 0:
        pytest.skip("this ffmpeg has no GSM encoder")
    with audio.AudioReader(tmp_path / "gsm.wav") as reader:
        first, second = np.concatenate(list(reader.blocks())), np.concatenate(list(reader.blocks()))
        assert reader.info.sample_rate == 8000 and abs(len(first) - 16000) < 400
        assert np.array_equal(first, second) and np.abs(first).max() > 0.05


@needs_ffmpeg
def test_a_signal_during_an_ffmpeg_decode_leaves_no_decoded_track(tmp_path, monkeypatch):
    from mss_cli import signals

    (tmp_path / "a.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A not really")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def interrupted(*args, **kwargs):
        raise signals.Interrupted(15)

    monkeypatch.setattr(audio.subprocess, "run", interrupted)
    with pytest.raises(signals.Interrupted):
        audio.AudioReader(tmp_path / "a.m4a")
    assert not list((tmp_path / "tmp").iterdir())


def test_missing_ffmpeg_is_named_in_the_error(tmp_path, monkeypatch):
    (tmp_path / "a.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A not really")
    monkeypatch.setattr(audio, "ffmpeg_binary", lambda: None)
    with pytest.raises(MssError, match="a.m4a.*ffmpeg"):
        audio.AudioReader(tmp_path / "a.m4a")


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_wav_stream_writer_matches_soundfile(subtype):
    x = tone(0.5, channels=2) * 0.9
    buf = io.BytesIO()
    writer = audio.WavStreamWriter(buf, 44100, 2, len(x), subtype)
    writer.write(x[:1000])
    writer.write(x[1000:])
    writer.commit()
    y, rate = sf.read(io.BytesIO(buf.getvalue()), dtype="float32")
    assert rate == 44100 and y.shape == x.shape
    assert np.abs(y - x).max() < (1e-6 if subtype == "FLOAT" else 2.0 / 2**15)
