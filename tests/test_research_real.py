"""Real stems: MUSDB18-style .stem.mp4 files decoded into a dataset and drawn as evaluation episodes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (.ci/apt-packages.txt)")


def stem_mp4(path: Path, seed: int) -> Path:
    """A 7-s .stem.mp4 as MUSDB18 ships them: stream 0 the mixture, then drums, bass, other, vocals."""
    parts = [tone(7.0, freq=f, seed=seed + i) for i, f in enumerate((80.0, 110.0, 660.0, 330.0))]
    wavs = []
    for i, audio in enumerate([sum(parts), *parts]):
        wavs.append(path.with_suffix(f".{i}.wav"))
        sf.write(wavs[-1], audio * 0.5, 44100)
    inputs = [arg for w in wavs for arg in ("-i", str(w))]
    maps = [arg for i in range(len(wavs)) for arg in ("-map", str(i))]
    subprocess.run(["ffmpeg", "-v", "error", *inputs, *maps, "-c:a", "aac", "-f", "mp4", str(path)], check=True)
    return path


@pytest.mark.slow
def test_songs_are_split_and_stems_decoded(tmp_path):
    from mss_research.data.realstems import import_musdb
    from mss_research.paper_eval import REAL, episodes_for

    (tmp_path / "src").mkdir()
    for i, name in enumerate(["A - One", "B - Two", "C - Three", "D - Four"]):
        stem_mp4(tmp_path / "src" / f"{name}.stem.mp4", seed=10 * i)
    summary = import_musdb(tmp_path / "src", tmp_path / "real", held_out=2, seed=0)
    assert summary == {"real": 2, "train": 2}
    rows = [r for p in sorted((tmp_path / "real" / "works").glob("*.json")) for r in json.loads(p.read_text())]
    assert {r["class"] for r in rows} == {"drums", "bass", "other", "vocals"} and len(rows) == 16
    audio = np.load(tmp_path / "real" / rows[0]["path"])
    assert audio.dtype == np.int16 and audio.shape[1] == 2 and abs(audio.shape[0] - 7 * 44100) < 2048
    # The same songs are held out whatever the order they are found in, and a rerun decodes nothing new.
    assert import_musdb(tmp_path / "src", tmp_path / "real", held_out=2, seed=0) == summary
    episodes = episodes_for(tmp_path / "real", REAL, 6, seed=1)
    held = {r["work"] for r in rows if r["split"] == "real"}
    for e in episodes:
        assert e.target_class in ("drums", "bass", "vocals") and e.work in held
        assert e.work not in e.positive_works and set(e.positive_works) <= held
        assert (e.class_id == -1) == (e.target_class == "vocals")  # vocals: not a taxonomy class


def test_a_folder_without_stems_is_a_usage_error(tmp_path):
    from mss_cli.errors import UsageError
    from mss_research.data.realstems import import_musdb

    with pytest.raises(UsageError, match="no .stem.mp4 files"):
        import_musdb(tmp_path, tmp_path / "out")
