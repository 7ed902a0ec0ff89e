"""Named stems, several targets per run, outputs never taken for inputs, streams, planning before
torch, class names, and the Python object the CLI is built on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_mss as run
from conftest import tone

from mss_cli.targets import TargetSpec, name_from_clips, residual_name

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def stems_in(folder: str | Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))


def test_stems_are_named_after_what_they_are():
    assert name_from_clips(["clips/guitar_1.wav", "clips/guitar_2.flac", "guitar-03.wav"]) == "guitar"
    assert name_from_clips(["Lead Vocals 1.wav", "Lead Vocals 2.wav"]) == "Lead_Vocals"
    assert name_from_clips(["a.wav", "b.wav"]) is None  # nothing shared: the fallback names it
    assert TargetSpec(like=("x.wav", "y.wav")).resolved_name() == "target"
    assert TargetSpec(like="sax_1.wav").like == ("sax_1.wav",)  # one clip given bare is one clip, never its letters
    assert TargetSpec(profile="/p/horns.safetensors").resolved_name() == "horns"
    assert TargetSpec(class_name="Rhodes").resolved_name(["piano", "electric_piano"]) == "electric_piano"
    assert TargetSpec("lead", like=("a.wav",)).resolved_name() == "lead"
    assert residual_name(["bass"]) == "no_bass" and residual_name(["bass", "drums"]) == "other"


def test_a_second_instrument_from_the_same_song_does_not_collide(capsys, workdir, tiny_weights):
    """The first friction: two instruments of one song into one folder, each under its own name."""
    sf.write("sax_1.wav", tone(1.5, freq=330, channels=1, seed=5), 44100)
    w = ("--weights", str(tiny_weights), "--quiet")
    assert run(capsys, "separate", "song.wav", "--like", "like_1.wav", *w)[0] == 0
    code, _, err = run(capsys, "separate", "song.wav", "--like", "sax_1.wav", *w)
    assert code == 0, err
    assert stems_in("separated/song") == ["like.wav", "no_like.wav", "no_sax.wav", "sax.wav"]


def test_several_targets_in_one_run_sum_to_the_mixture(capsys, workdir, tiny_weights):
    sf.write("sax_1.wav", tone(1.5, freq=330, channels=1, seed=5), 44100)
    sf.write("sax_2.wav", tone(1.5, freq=331, channels=1, seed=6), 44100)
    args = ["song.wav", "--target", "low=like_1.wav", "like_2.flac", "--target", "sax=sax_*.wav"]
    code, out, err = run(capsys, "separate", *args, "--weights", str(tiny_weights), "--bit-depth", "32f", "--json")
    assert code == 0, err
    assert [json.loads(line)["stem"] for line in out.splitlines()] == ["low", "sax", "other"]
    assert stems_in("separated/song") == ["low.wav", "other.wav", "sax.wav"]
    mix = sf.read("song.wav")[0]
    total = sum(sf.read(f"separated/song/{n}.wav")[0] for n in ("low", "sax", "other"))
    assert np.abs(total - mix).max() < 1e-4
    code, _, err = run(capsys, "separate", "song.wav", "--target", "a=like_1.wav", "--target", "a=sax_1.wav")
    assert code == 0 or "two stems" not in err  # one target's clips may be given in several --target words
    for bad, message in (
        (["--target", "like_1.wav"], "expected NAME=CLIP"),
        (["--like", "like_1.wav", "--name", "other", "--profile", "x/p.safetensors"], "--profile x/p.safetensors"),
        (["--target", "other=like_1.wav", "--target", "b=sax_1.wav"], "two stems are named 'other'"),
        (["--target", "x=like_1.wav", "--with-class", "bass", "--like", "sax_1.wav"], "a single target"),
    ):
        code, _, err = run(capsys, "separate", "song.wav", *bad, "--weights", str(tiny_weights), "-o", "bad")
        assert code == 2 and message in err, err


def test_a_rerun_into_a_new_folder_never_separates_earlier_stems(capsys, workdir, tiny_weights):
    """mss lists what it writes in a manifest in each output folder; folder scans skip those
    files, whichever -o wrote them."""
    Path("album").mkdir()
    shutil.copy("song.wav", "album/a.wav")
    shutil.copy("song.wav", "album/b.wav")
    w = ("--like", "like_1.wav", "--weights", str(tiny_weights), "--quiet")
    assert run(capsys, "separate", "album", *w, "-o", "album/stems")[0] == 0
    code, out, err = run(capsys, "separate", ".", "-o", "again", *w[:-1], "--json")
    assert code == 0, err
    inputs = sorted({json.loads(line)["input"] for line in out.splitlines()})
    assert inputs == ["album/a.wav", "album/b.wav", "like_1.wav", "like_2.flac", "not_1.wav", "song.wav"]
    # A stem given by name is still separated: only folder scans skip what mss wrote.
    assert run(capsys, "separate", "album/stems/a/like.wav", *w, "-o", "named")[0] == 0


def test_skip_existing_decides_before_torch_or_the_clips(workdir, tiny_weights):
    """All inputs done: nothing loads (torch is never imported, the example clips never read)."""
    base = [sys.executable, "-c", "import sys\nfrom mss_cli.cli import main\nmain(sys.argv[1:])"]
    args = ["separate", "song.wav", "--like", "like_1.wav", "--weights", str(tiny_weights)]
    assert subprocess.run(base + args, capture_output=True).returncode == 0
    probe = (
        "import sys\nfrom mss_cli.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\nassert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, *args, "--skip-existing"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do: all 1 input(s) have their outputs" in proc.stderr


@needs_ffmpeg
@pytest.mark.parametrize("container", ["mp3", "adts", "matroska"])
def test_a_compressed_stream_on_stdin_and_any_format_to_stdout(workdir, tiny_weights, container):
    """An MP3 stream has no exact length in its header: its samples are counted; other containers
    go through ffmpeg; -o - writes the --format asked for."""
    codec = {"adts": ["-c:a", "aac"]}.get(container, [])
    stream = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "song.wav", *codec, "-f", container, "-"], capture_output=True, check=True
    ).stdout
    cmd = [sys.executable, "-m", "mss_cli", "separate", "-", "--like", "like_1.wav", "--weights", str(tiny_weights)]
    proc = subprocess.run([*cmd, "-o", "-", "--format", "flac", "-q"], input=stream, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    Path("out.flac").write_bytes(proc.stdout)
    info = sf.info("out.flac")
    assert info.format == "FLAC" and abs(info.duration - 3.0) < 0.1


def test_class_names_accept_synonyms_and_ask_when_ambiguous():
    from mss_cli.classes import resolve_class
    from mss_cli.errors import UsageError

    trained = ["piano", "electric_piano", "acoustic_guitar", "electric_guitar", "bass", "drums"]
    assert resolve_class("Electric Guitar", trained) == "electric_guitar"
    assert resolve_class("rhodes", trained) == "electric_piano"
    assert resolve_class("bass guitar", trained) == "bass"
    with pytest.raises(UsageError, match="could be electric_guitar or acoustic_guitar: which one"):
        resolve_class("guitar", trained)
    with pytest.raises(UsageError, match="did you mean piano"):
        resolve_class("pianoo", trained)
    with pytest.raises(UsageError, match="not a class this model was trained on"):
        resolve_class("sitar", trained)  # a near name is no suggestion for a word that is no class here


def test_the_separator_object_on_arrays(tmp_path, tiny_weights, tiny_classcond_weights):
    """The README's four lines, with clips as arrays and a class target; errors name arguments."""
    from mss_cli import Separator
    from mss_cli.errors import UsageError

    separator = Separator(tiny_weights, device="cpu", baseline=tiny_classcond_weights, chunk_seconds=1.0)
    assert separator.add("tone", like=[tone(1.5, freq=220, channels=1)], sample_rate=44100) == "tone"
    assert separator.add(class_name="bass") == "bass"
    audio = tone(3.0, rate=48000, freq=220) + tone(3.0, rate=48000, freq=880, seed=1)
    stems = separator.separate(audio, 48000)
    assert list(stems) == separator.stems == ["tone", "bass", "other"]
    assert all(s.shape == audio.shape and s.dtype == np.float32 for s in stems.values())
    assert np.abs(sum(stems.values()) - audio).max() < 1e-4
    sf.write(tmp_path / "song.wav", audio, 48000, subtype="FLOAT")
    written = separator.separate_file(tmp_path / "song.wav", tmp_path / "out", bit_depth="32f")
    assert [Path(w.path).name for w in written] == ["tone.wav", "bass.wav", "other.wav"]
    assert np.array_equal(sf.read(tmp_path / "out" / "tone.wav", dtype="float32")[0], stems["tone"])
    with pytest.raises(TypeError, match="a list of clips"):
        Separator(tiny_weights, device="cpu").add(like=tone(1.5, channels=1), sample_rate=44100)
    broken = tone(1.5, channels=1)
    broken[100] = np.nan
    with pytest.raises(UsageError, match="an example clip: contains NaN"):  # checked as a file's samples are
        Separator(tiny_weights, device="cpu").add(like=[broken], sample_rate=44100)
    with pytest.raises(UsageError, match="exactly one of: like"):
        separator.add(like=["a.wav"], class_name="bass")
    with pytest.raises(UsageError, match="two stems are named 'tone'"):
        separator.add("tone", class_name="drums")
    with pytest.raises(ValueError, match="threads=0"):
        Separator(tiny_weights, device="cpu", threads=0)
    with pytest.raises(UsageError, match="no targets"):
        Separator(tiny_weights, device="cpu").separate(audio, 48000)


def test_adapting_tunes_the_vector_on_mixtures_of_the_clips(capsys, workdir, tiny_weights):
    """Test-time adaptation lowers the -SDR of mixtures made from the target's own clips, moves
    only the vector (the model is untouched), and a profile keeps the tuned vector."""
    import random

    import torch

    from mss_cli.adapt import mixtures, separated, tune_vector
    from mss_cli.metrics import negative_sdr
    from mss_cli.weights import load_model

    model = load_model(tiny_weights)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    targets = [tone(1.0, freq=220, channels=1, seed=s)[:, 0] for s in (1, 2)]
    others = [tone(1.0, freq=660, channels=1, seed=s)[:, 0] for s in (3, 4)]
    vector = torch.randn(model.config.cond_dim)
    tuned = tune_vector(model, vector, targets, others, steps=30, lr=0.05)
    mixed, chosen = (torch.from_numpy(a) for a in mixtures(targets, others, 8, random.Random(9)))
    with torch.no_grad():
        loss = [float(negative_sdr(chosen, separated(model, v, mixed)).mean()) for v in (vector, tuned)]
    assert loss[1] < loss[0] - 0.1, loss  # a tiny random model moves little, but it moves
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())  # frozen only while tuning
    w = ("--weights", str(tiny_weights), "--quiet")
    code, _, err = run(capsys, "embed", "--like", "like_1.wav", "--adapt", "-o", "plain", *w)
    assert code == 2 and "needs its like clips and not_ clips" in err
    assert run(capsys, "embed", "--like", "like_1.wav", "--not", "not_1.wav", "--adapt", "-o", "tuned", *w)[0] == 0
    code, out, _ = run(capsys, "profiles", "show", "tuned", "--json")
    assert json.loads(out)["adapted_steps"] == 20
    assert run(capsys, "separate", "song.wav", "--profile", "tuned", "--weights", str(tiny_weights), "-q")[0] == 0
