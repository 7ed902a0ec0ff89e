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

from mss_research.data.taxonomy import load_taxonomy

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
        assert e.class_id == load_taxonomy().index(e.target_class)  # vocals too: a (recorded-only) class


def test_a_folder_without_stems_is_a_usage_error(tmp_path):
    from mss_cli.errors import UsageError
    from mss_research.data.realstems import import_musdb

    with pytest.raises(UsageError, match="no .stem.mp4 files"):
        import_musdb(tmp_path, tmp_path / "out")


def test_part_names_give_classes():
    """Everything is Free's part names and URMP's file names: vocals lead and backing, drum parts
    by their words, a part that may be drums or a synth left out, the master mix never a part."""
    from mss_research.data.realstems import everything_is_free_class, urmp_class

    eif = {
        "1.Hydrogen_Stem_VOX LEAD_mobile.m4a": "vocals",
        "2.Lithium_Stem_BGVOX HARMONY_mobile.m4a": "vocals",
        "3.Sodium_Stem_HH GLITCH_mobile.m4a": "drums",
        "4.Potassium_Stem_K & SN_mobile.m4a": "drums",
        "5.Rubidium_Stem_SY BASS_mobile.m4a": "bass",
        "2.Lithium_Stem_PAD + BASS_mobile.m4a": None,
        "6.Caesium_Stem_BREAK_mobile.m4a": None,
        "3.Sodium_Stem_FILL PIANO_mobile.m4a": "other",
        "5.Rubidium_Stem_MINILOGUE_SYNTH_mobile.m4a": "other",
        "6.Caesium_Master_mobile.m4a": None,
    }
    assert {name: everything_is_free_class(Path(name)) for name in eif} == eif
    assert urmp_class(Path("AuSep_3_va_24_Pirates.wav")) == "viola"
    assert urmp_class(Path("AuSep_1_vn_12_Spring.wav")) == "violin"
    assert urmp_class(Path("AuSep_5_db_39_Jerusalem.wav")) == "bass"  # the taxonomy's bass takes upright bass
    assert urmp_class(Path("AuMix_10_March_tpt_sax.wav")) is None  # the mix, not a part


def test_multitrack_parts_of_a_class_are_summed_into_one_stem(tmp_path):
    """A target must never also sound in the rest of its mixture: the lead and backing vocals are
    one vocals stem, kick and hats one drums stem; loud parts are scaled alike, so the stems still
    add up to the song and their sum does not clip."""
    from mss_research.data.realstems import everything_is_free_class, import_multitrack

    song = tmp_path / "src" / "1.Song"
    song.mkdir(parents=True)
    parts = {
        "VOX LEAD": 330.0,
        "BGVOX 1": 440.0,
        "KICK": 60.0,
        "HH": 5000.0,
        "SY BASS": 55.0,
        "PAD": 880.0,
        "BREAK": 99.0,
    }
    audio = {}
    for i, (name, freq) in enumerate(parts.items()):
        audio[name] = tone(2.0, freq=freq, seed=i) * 2.0  # 7 parts near full scale: their sum would clip
        sf.write(song / f"1.Song_Stem_{name}.wav", audio[name], 44100, subtype="FLOAT")
    summary = import_multitrack(tmp_path / "src", tmp_path / "out", everything_is_free_class, "*.wav", "eif")
    assert summary == {"works": 1, "stems": {"bass": 1, "drums": 1, "other": 1, "vocals": 1}}
    rows = json.loads(next((tmp_path / "out" / "works").glob("*.json")).read_text())
    assert {r["split"] for r in rows} == {"train"} and rows[0]["work"] == "eif-1-song"
    stems = {r["class"]: np.load(tmp_path / "out" / r["path"]).astype(np.float64) / 32768 for r in rows}
    vocals = audio["VOX LEAD"] + audio["BGVOX 1"]
    scale = np.dot(stems["vocals"][:, 0], vocals[:, 0]) / np.dot(vocals[:, 0], vocals[:, 0])
    assert 0 < scale < 1  # scaled down, and the same gain for every stem:
    for cls, names in {"vocals": ["VOX LEAD", "BGVOX 1"], "drums": ["KICK", "HH"], "bass": ["SY BASS"]}.items():
        expected = sum(audio[n] for n in names) * scale
        assert np.abs(stems[cls] - expected).max() < 2e-3
    assert np.abs(sum(stems.values())).max() <= 1.0


def test_a_multitrack_folder_without_parts_is_a_usage_error(tmp_path):
    from mss_cli.errors import UsageError
    from mss_research.data.realstems import import_multitrack, urmp_class

    with pytest.raises(UsageError, match="no AuSep_"):
        import_multitrack(tmp_path, tmp_path / "out", urmp_class, "AuSep_*.wav", "urmp")
