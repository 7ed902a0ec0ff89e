"""Recorded-sample instruments: SFZ and note-library players, expressive parts, mixing, held-out works."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mss_cli.audio import SAMPLE_RATE
from mss_research.data.instruments import (
    GUITARS,
    INSTRUMENT_TARGETS,
    Library,
    NotePlayer,
    SfzPlayer,
    available,
    libraries,
    note_samples,
)
from mss_research.data.scores import Note
from mss_research.data.taxonomy import load_taxonomy

pytest.importorskip("pysfizz")


def sine(seconds: float, freq: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t) * np.exp(-t)).astype(np.float32)


def sfz_library(
    root: Path, held_out: bool = False, name: str = "tiny.sfz", classes: tuple[str, ...] = ("piano",)
) -> Library:
    """A one-region SFZ instrument (a decaying 261.6-Hz sine at key 60) under ``root/name``,
    standing for every class of ``classes``."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "c4.wav", sine(1.0, 261.63), SAMPLE_RATE)
    (folder / "inst.sfz").write_text(
        "<region> sample=c4.wav pitch_keycenter=60 lokey=48 hikey=72 ampeg_release=0.05 locc100=64\n"
    )
    programs = {cls: ("inst.sfz",) for cls in classes}
    return Library(name, name, f"test/{name}", "sfz", programs, "CC0-1.0", held_out, "", {"inst.sfz": {100: 127}})


def test_the_registry_names_licences_and_holds_out_one_library_per_family():
    libs = libraries()
    assert all(lib.licence and "/" in lib.repo and lib.kind in ("sfz", "notes", "faust") for lib in libs)
    taxonomy = {c.name for c in load_taxonomy().classes}
    assert all(cls in taxonomy for lib in libs for cls in lib.programs)
    held = {cls for lib in libs if lib.held_out for cls in lib.programs}
    trained = {cls for lib in libs if not lib.held_out for cls in lib.programs}
    # a held-out guitar, piano, sax and woodwind, each a timbre that training also has in another library
    assert {"acoustic_guitar", "electric_guitar", "piano", "sax", "flute"} <= held & trained
    # a held-out entry never shares a program with a training one
    used = {(lib.folder, p) for lib in libs if not lib.held_out for ps in lib.programs.values() for p in ps}
    assert not any((lib.folder, p) in used for lib in libs if lib.held_out for ps in lib.programs.values() for p in ps)
    assert set(GUITARS) <= set(INSTRUMENT_TARGETS) <= taxonomy


def test_sfz_player_plays_notes_where_they_are_with_the_controls_set(tmp_path):
    lib = sfz_library(tmp_path)
    player = SfzPlayer(tmp_path)
    assert player.keys(lib, "inst.sfz") == list(range(48, 73))
    audio = player.render([Note(0.5, 0.3, 60, 100), Note(1.5, 0.3, 67, 60)], lib, "inst.sfz")
    assert audio.dtype == np.float32 and audio.shape[1] == 2
    envelope = np.abs(audio).max(axis=1)
    assert envelope[: int(0.49 * SAMPLE_RATE)].max() < 1e-4  # silence before the first note
    assert envelope[int(0.5 * SAMPLE_RATE) : int(0.6 * SAMPLE_RATE)].max() > 0.05
    assert envelope[int(1.0 * SAMPLE_RATE) : int(1.45 * SAMPLE_RATE)].max() < 1e-3  # released
    # the softer second note is softer; a fresh render of the same notes is the same audio
    assert envelope[int(1.5 * SAMPLE_RATE) : int(1.8 * SAMPLE_RATE)].max() < envelope[int(0.5 * SAMPLE_RATE) :].max()
    again = player.render([Note(0.5, 0.3, 60, 100), Note(1.5, 0.3, 67, 60)], lib, "inst.sfz")
    np.testing.assert_array_equal(audio, again)
    # without the controller value the region asks for (locc100=64), nothing plays
    silent = Library(lib.name, lib.folder, lib.repo, "sfz", lib.programs, lib.licence, False)
    assert np.abs(SfzPlayer(tmp_path).render([Note(0.1, 0.3, 60, 100)], silent, "inst.sfz")).max() < 1e-4


def test_a_part_sounds_the_same_whatever_the_program_played_before(tmp_path):
    """Round robins advance with every note: without a fresh load before each part, a part's audio
    would depend on the parts (works) its process rendered before it."""
    folder = tmp_path / "rr"
    folder.mkdir()
    sf.write(folder / "a.wav", sine(1.0, 261.63), SAMPLE_RATE)
    sf.write(folder / "b.wav", sine(1.0, 261.63) * 0.3, SAMPLE_RATE)
    (folder / "inst.sfz").write_text(
        "<group> lokey=48 hikey=72 pitch_keycenter=60 seq_length=2\n"
        "<region> sample=a.wav seq_position=1\n<region> sample=b.wav seq_position=2\n"
    )
    lib = Library("rr", "rr", "test/rr", "sfz", {"piano": ("inst.sfz",)}, "CC0-1.0", False)
    player = SfzPlayer(tmp_path)
    part = [Note(0.1, 0.3, 60, 100)]
    first = player.render(part, lib, "inst.sfz")
    player.render([Note(0.1, 0.2, 62, 90), Note(0.5, 0.2, 64, 90)], lib, "inst.sfz")  # moves the round robin
    np.testing.assert_array_equal(player.render(part, lib, "inst.sfz"), first)  # a, not the softer b


def test_a_program_holds_its_samples_in_memory_from_load_on(tmp_path):
    """sfizz streams a sample past its first 8192 frames from a background thread, and a note
    that outruns the stream ends where the loaded frames end. Held in memory from load on, every
    note plays whole: here it does even with the file gone from disk after the load."""
    lib = sfz_library(tmp_path)
    (tmp_path / "tiny.sfz" / "c4.wav").unlink()
    sf.write(tmp_path / "tiny.sfz" / "c4.wav", np.full(3 * SAMPLE_RATE, 0.1, np.float32), SAMPLE_RATE)
    player = SfzPlayer(tmp_path)
    player.keys(lib, "inst.sfz")  # loads the program
    (tmp_path / "tiny.sfz" / "c4.wav").unlink()
    level = np.abs(player.render([Note(0.1, 2.0, 60, 127)], lib, "inst.sfz")[:, 0])
    held = level[int(0.2 * SAMPLE_RATE) : int(2.0 * SAMPLE_RATE)]
    assert held.min() > 0.9 * held.max() > 0  # sounds until its note-off, 1.9 s past 8192 frames


def test_vibrato_bends_held_notes_only(tmp_path):
    lib = sfz_library(tmp_path)
    player = SfzPlayer(tmp_path)
    notes = [Note(0.0, 0.2, 60, 100), Note(0.3, 1.2, 60, 100)]
    player.render(notes, lib, "inst.sfz")  # the sample file streamed in (see above)
    plain, bent = player.render(notes, lib, "inst.sfz"), player.render(notes, lib, "inst.sfz", vibrato=40.0)
    cut = int(0.55 * SAMPLE_RATE)  # vibrato starts 0.25 s into the held note
    np.testing.assert_allclose(plain[:cut], bent[:cut], atol=1e-6)
    assert np.abs(plain[cut:] - bent[cut:]).max() > 1e-3


def note_library(root: Path) -> Library:
    folder = root / "notes" / "flute"
    folder.mkdir(parents=True)
    for name, freq in (("A4", 440.0), ("C5", 523.25)):
        for dynamic, gain in (("piano", 0.2), ("forte", 1.0)):
            audio = np.concatenate([np.zeros(2000, np.float32), sine(1.5, freq) * gain])
            sf.write(folder / f"flute_{name}_1_{dynamic}_normal.mp3", audio, SAMPLE_RATE)
    sf.write(folder / "flute_A4_1_forte_major-trill.mp3", sine(1.0, 470.0), SAMPLE_RATE)  # not a plain note
    (folder / "flute_A4_1_mezzo-forte_normal.mp3").write_bytes(b"")  # an empty file: never played
    return Library("notes", "notes", "test/notes", "notes", {"flute": ("flute",)}, "test", False)


def test_note_player_picks_the_nearest_recording_and_cuts_it_at_the_note_end(tmp_path):
    lib = note_library(tmp_path)
    samples = note_samples(tmp_path / "notes" / "flute")
    assert sorted((s.pitch, s.velocity) for s in samples if not s.empty) == [(69, 50), (69, 100), (72, 50), (72, 100)]
    player = NotePlayer(tmp_path)
    assert min(player.keys(lib, "flute")) == 67 and max(player.keys(lib, "flute")) == 74
    audio = player.render([Note(0.2, 0.5, 69, 100)], lib, "flute")
    envelope = np.abs(audio).max(axis=1)
    assert envelope[: int(0.19 * SAMPLE_RATE)].max() < 1e-3  # the recording's leading silence is trimmed
    assert envelope[int(0.2 * SAMPLE_RATE) : int(0.3 * SAMPLE_RATE)].max() > 0.3
    assert envelope[int(0.85 * SAMPLE_RATE) :].max() < 1e-3  # cut at 0.7 s plus the release fade
    # a pitch between recordings is the nearest one resampled: 71 from 72 is a semitone down
    shifted = player.render([Note(0.0, 1.0, 71, 100)], lib, "flute")[:, 0]
    spectrum = np.abs(np.fft.rfft(shifted[: SAMPLE_RATE // 2]))
    assert abs(np.argmax(spectrum) * 2 - 493.9) < 6
    player.render([Note(0.2, 0.5, 69, 80)], lib, "flute")  # mezzo-forte: the forte or piano recording
    soft = player.render([Note(0.2, 0.5, 69, 40)], lib, "flute")
    assert np.abs(soft).max() < 0.5 * np.abs(audio).max()


def test_expressive_parts_keep_their_notes_and_shape_them():
    from mss_research.data.sampled import expressive, fit_keys

    notes = [Note(i * 0.5, 0.25, 60 + i % 3, 90) for i in range(16)]
    for seed in range(12):
        played = expressive(notes, "lead", random.Random(seed))
        assert len(played) == len(notes) and all(1 <= n.velocity <= 127 for n in played)
        assert all(abs(p.start - n.start) < 0.1 for p, n in zip(played, notes))
    lengths = {
        round(float(np.mean([n.duration for n in expressive(notes, "lead", random.Random(s))])), 2) for s in range(12)
    }
    assert min(lengths) < 0.2 < 0.3 < max(lengths)  # staccato and legato readings both occur
    moved = fit_keys([Note(0, 1, 30, 80), Note(0, 1, 100, 80), Note(0, 1, 60, 80)], list(range(48, 73)))
    assert [n.pitch for n in moved] == [54, 64, 60]
    assert fit_keys(notes, []) == []


def test_bus_compression_and_mixing_keep_the_stems_summing_to_the_mixture():
    from mss_research.data.sampled import bus_compress, mix

    rng = np.random.default_rng(0)
    stems = [rng.standard_normal((SAMPLE_RATE * 2, 2)).astype(np.float32) * g for g in (0.5, 0.1, 0.02)]
    stems[0][SAMPLE_RATE:] *= 4  # a loud second half
    squashed = bus_compress(stems, random.Random(1))
    gain = squashed[0] / stems[0]
    for before, after in zip(stems, squashed):
        np.testing.assert_allclose(after, before * gain, rtol=1e-4, atol=1e-7)  # one gain for every stem
    assert gain[SAMPLE_RATE + 4096 :].mean() < gain[:SAMPLE_RATE].mean()
    parts = [
        ({"class": "drums", "role": "drums", "program": -1, "soundfont": "song"}, stems[0]),
        ({"class": "piano", "role": "chords", "program": 0, "soundfont": "lib"}, stems[1][:SAMPLE_RATE]),
        ({"class": "sax", "role": "lead", "program": 0, "soundfont": "lib"}, stems[2]),
    ]
    mixed = mix(parts, random.Random(3), backed=True)
    assert [m["class"] for m, _ in mixed] == ["drums", "piano", "sax"]
    assert {a.shape for _, a in mixed} == {(SAMPLE_RATE * 2, 2)}  # the backing's length; a short part padded
    total = np.sum([a for _, a in mixed], axis=0)
    assert np.abs(total).max() <= 0.95 + 1e-6


def test_held_out_works_use_only_held_out_libraries_over_held_out_songs(tmp_path, monkeypatch, tiny_real_dataset):
    from mss_research.data import sampled

    trained = ("piano", "organ", "sax", "flute", "cello", "banjo")
    held = ("electric_piano", "mallets", "acoustic_guitar", "clarinet", "oboe", "trombone")
    lib_train = sfz_library(tmp_path / "libs", name="train.lib", classes=trained)
    lib_held = sfz_library(tmp_path / "libs", held_out=True, name="held.lib", classes=held)
    monkeypatch.setattr("mss_research.data.instruments.libraries", lambda: (lib_train, lib_held))
    monkeypatch.setattr(sampled, "BACKED", 1.0)
    assert set(available(tmp_path / "libs", True)) == set(held)
    songs = {"real": set(), "train": set()}
    for r in json.loads(Path(tiny_real_dataset, "works", "song-3.json").read_text()):
        songs["real"].add(r["work"])
    for held_out, work_id in ((True, "heldout00000"), (False, "smp00000")):
        for attempt in range(6):
            spec = sampled.SampledSpec(
                f"{work_id}{attempt}",
                "real" if held_out else "train",
                0,
                str(tmp_path / "libs"),
                str(tiny_real_dataset),
            )
            parts = sampled.render_sampled(spec)
            if parts:
                break
        rendered = [m for m, _ in parts if m["program"] >= 0]
        backing = {m["soundfont"] for m, _ in parts if m["program"] < 0}
        assert rendered and backing
        if held_out:
            assert {m["soundfont"].split("/")[0] for m in rendered} == {"held.lib"}
            assert backing <= {"song-3", "song-4"}  # the real split of tiny_real_dataset
        else:
            assert "held.lib" not in {m["soundfont"].split("/")[0] for m in rendered}
            assert backing <= {"song-0", "song-1", "song-2"}


@pytest.mark.slow  # compiling two Faust models takes half a minute
def test_physical_models_play_violin_and_trumpet_lines():
    pytest.importorskip("dawdreamer")
    from mss_research.data.instruments import FaustPlayer

    lib = next(lib for lib in libraries() if lib.kind == "faust")
    assert {"violin", "trumpet"} <= set(lib.programs)
    player = FaustPlayer("")
    notes = [Note(0.3, 0.5, 67, 100), Note(0.9, 0.6, 72, 70)]
    for program in ("violin", "brass"):
        audio = player.render(notes, lib, program, vibrato=20.0, seed=1)
        envelope = np.abs(audio).max(axis=1)
        assert audio.shape[1] == 2 and envelope[: int(0.29 * SAMPLE_RATE)].max() < 1e-4
        assert envelope[int(0.3 * SAMPLE_RATE) : int(1.6 * SAMPLE_RATE)].max() > 0.01  # a bow or lips take time
        assert envelope[int(2.2 * SAMPLE_RATE) :].max() < 1e-3  # the notes end
        np.testing.assert_array_equal(audio, player.render(notes, lib, program, vibrato=20.0, seed=1))
