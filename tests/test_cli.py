"""The mss command as users run it: outputs, options, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import build_tiny_weights, tone
from conftest import run_mss as run

from mss_cli.cli import split_clip_lists


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = [l for l in err.splitlines() if l.startswith("mss: error:")]
    assert lines, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def separate(capsys, weights: Path, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "separate", *extra, "--weights", str(weights), "--quiet")


def test_help_is_fast_and_does_not_import_torch():
    code = (
        "import sys\nfrom mss_cli.cli import main\n"
        "try:\n    main(['separate', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--like" in proc.stdout


def test_version_and_bare_command(capsys):
    from mss_cli import __version__

    assert run(capsys, "--version") == (0, f"mss {__version__}\n", "")
    code, out, err = run(capsys)  # no command: the help, and no empty error line after it
    assert code == 2 and "separate" in out and "error" not in err


def new_file_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def mode_of(path: str | Path) -> int:
    return Path(path).stat().st_mode & 0o777


def test_separate_writes_target_and_residual_that_sum_to_the_mix(capsys, workdir, tiny_weights):
    code, out, err = separate(
        capsys, tiny_weights, "song.wav", "--like", "like_1.wav", "like_2.flac", "--not", "not_1.wav"
    )
    assert code == 0, err
    mix, rate = sf.read("song.wav")
    target, r1 = sf.read("separated/song/like.wav")
    residual, r2 = sf.read("separated/song/no_like.wav")
    assert rate == r1 == r2 and target.shape == residual.shape == mix.shape
    assert np.abs(target + residual - mix).max() < 2.5 / 32768  # exact up to 16-bit rounding
    assert np.abs(target).max() > 1e-3  # the model did produce something
    assert sf.info("separated/song/like.wav").subtype == "PCM_16"  # the input's bit depth
    assert mode_of("separated/song/like.wav") == new_file_mode()  # not mkstemp's private 0600
    assert not list(Path("separated").rglob("*.partial*"))


def test_negatives_are_suppressed_unless_asked_not_to(capsys, workdir, tiny_weights):
    """--not clips are separated in their own right and taken out of the target by default;
    --no-suppress leaves them steering the conditioning vector only (as in the paper)."""
    args = ("song.wav", "--like", "like_1.wav", "--not", "not_1.wav", "--bit-depth", "32f")
    code, _, err = run(capsys, "separate", *args, "-o", "a", "--weights", str(tiny_weights))
    assert code == 0 and "1 negative(s) (suppressed)" in err, err
    code, _, err = run(capsys, "separate", *args, "--no-suppress", "-o", "b", "--weights", str(tiny_weights))
    assert code == 0 and "1 negative(s);" in err, err
    suppressed, steered = sf.read("a/song/like.wav")[0], sf.read("b/song/like.wav")[0]
    assert np.abs(suppressed - steered).max() > 1e-3
    # Suppression only removes: bin by bin the target keeps at most what the steered mask keeps.
    assert np.sum(suppressed**2) < np.sum(steered**2)


def test_shifts_change_the_target_and_keep_the_residual_complementary(capsys, workdir, tiny_weights):
    """--shifts N reaches the separator (the target differs from one pass) and, like every mask,
    leaves target + residual equal to the mix."""
    args = ("song.wav", "--like", "like_1.wav", "--bit-depth", "32f")
    assert run(capsys, "separate", *args, "-o", "one", "--weights", str(tiny_weights))[0] == 0
    code, _, err = run(capsys, "separate", *args, "--shifts", "3", "-o", "three", "--weights", str(tiny_weights))
    assert code == 0, err
    one, three = sf.read("one/song/like.wav")[0], sf.read("three/song/like.wav")[0]
    residual = sf.read("three/song/no_like.wav")[0]
    assert np.abs(one - three).max() > 1e-4
    assert np.abs(three + residual - sf.read("song.wav")[0]).max() < 1e-5


def test_json_lines_describe_each_written_file(capsys, workdir, tiny_weights):
    code, out, err = run(capsys, "separate", "song.wav", "--like", "like_*.*", "--weights", str(tiny_weights), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["stem"] for r in rows] == ["like", "no_like"]
    for r in rows:
        assert Path(r["path"]).is_file() and r["sample_rate"] == 44100 and r["device"] == "cpu"
        assert abs(r["duration"] - 3.0) < 1e-6 and r["input"] == "song.wav" and r["seconds"] >= 0
        assert r["nmf"] is None  # no --not clips: the network's mask alone


def test_name_template_format_and_no_residual(capsys, workdir, tiny_weights):
    code, _, err = separate(
        capsys,
        tiny_weights,
        "song.wav",
        "--like",
        "like_1.wav",
        "--name",
        "guitar",
        "--filename",
        "{parent}-{track}.{stem}.{ext}",
        "-o",
        "out",
        "--format",
        "flac",
        "--bit-depth",
        "24",
    )
    assert code == 0, err
    files = sorted(p.name for p in Path("out").iterdir() if not p.name.startswith("."))
    assert files == [f"{workdir.name}-song.guitar.flac", f"{workdir.name}-song.no_guitar.flac"]
    assert sf.info(f"out/{files[0]}").subtype == "PCM_24"
    code, _, err = separate(
        capsys, tiny_weights, "song.wav", "--like", "like_1.wav", "--no-residual", "-o", "solo", "--format", "mp3"
    )
    assert code == 0, err
    assert [p.name for p in Path("solo/song").iterdir() if not p.name.startswith(".")] == ["like.mp3"]
    assert sf.info("solo/song/like.mp3").channels == 2


def test_existing_output_is_an_error_unless_overwrite(capsys, workdir, tiny_weights):
    assert separate(capsys, tiny_weights, "song.wav", "--like", "like_1.wav")[0] == 0
    before = Path("separated/song/like.wav").read_bytes()
    Path("separated/song/like.wav").chmod(0o640)
    code, _, err = separate(capsys, tiny_weights, "song.wav", "--like", "like_2.flac")
    assert code == 1
    assert_one_line_error(err, "like.wav", "exists")
    assert Path("separated/song/like.wav").read_bytes() == before
    code, _, err = separate(capsys, tiny_weights, "song.wav", "--like", "like_2.flac", "--overwrite")
    assert code == 0, err
    assert Path("separated/song/like.wav").read_bytes() != before
    assert mode_of("separated/song/like.wav") == 0o640  # the replaced file's permissions kept


def test_same_input_and_options_give_the_same_bytes(capsys, workdir, tiny_weights):
    args = ("song.wav", "--like", "like_1.wav", "--chunk", "1", "--overwrite")
    assert separate(capsys, tiny_weights, *args)[0] == 0
    first = Path("separated/song/like.wav").read_bytes()
    assert separate(capsys, tiny_weights, *args)[0] == 0
    assert Path("separated/song/like.wav").read_bytes() == first


def test_folder_input_jobs_and_failures_keep_going(capsys, workdir, tiny_weights):
    (workdir / "album" / "cd2").mkdir(parents=True)
    for name in ("a.wav", "cd2/b.flac"):
        sf.write(workdir / "album" / name, tone(1.5, seed=len(name)), 44100)
    (workdir / "album" / "notes.txt").write_text("not audio")
    (workdir / "album" / "broken.wav").write_text("not a wav file")
    code, out, err = run(
        capsys,
        "separate",
        "album",
        "missing.wav",
        "--like",
        "like_1.wav",
        "--weights",
        str(tiny_weights),
        "--jobs",
        "2",
        "--json",
    )
    assert code == 1
    written = {Path(json.loads(l)["path"]).parent.name for l in out.splitlines()}
    assert written == {"a", "b"}
    assert "broken.wav" in err and "missing.wav" in err and "notes.txt" not in err
    assert "Traceback" not in err


def test_colliding_output_names_fail_for_the_later_input(capsys, workdir, tiny_weights):
    for folder in ("x", "y"):
        (workdir / folder).mkdir()
        sf.write(workdir / folder / "take.wav", tone(1.2), 44100)
    code, _, err = separate(capsys, tiny_weights, "x/take.wav", "y/take.wav", "--like", "like_1.wav")
    assert code == 1
    assert_one_line_error(err, "y/take.wav", "{parent}")
    code, _, err = separate(
        capsys,
        tiny_weights,
        "x/take.wav",
        "y/take.wav",
        "--like",
        "like_1.wav",
        "--filename",
        "{parent}/{track}/{stem}.{ext}",
        "-o",
        "ok",
    )
    assert code == 0, err
    assert Path("ok/x/take/like.wav").is_file() and Path("ok/y/take/like.wav").is_file()


def test_shard_processes_only_its_slice(capsys, workdir, tiny_weights):
    (workdir / "many").mkdir()
    for i in range(5):
        sf.write(workdir / "many" / f"t{i}.wav", tone(1.1, seed=i), 44100)
    tracks = set()
    for i in (1, 2):
        code, out, err = run(
            capsys,
            "separate",
            "many",
            "--like",
            "like_1.wav",
            "--weights",
            str(tiny_weights),
            "--shard",
            f"{i}/2",
            "--json",
            "--no-residual",
        )
        assert code == 0, err
        got = {Path(json.loads(l)["input"]).stem for l in out.splitlines()}
        assert got and not got & tracks
        tracks |= got
    assert tracks == {f"t{i}" for i in range(5)}


def test_stdin_to_stdout_pipe(workdir, tiny_weights):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    command = [sys.executable, "-m", "mss_cli", "separate", "-", "--like", "like_1.wav", "-o", "-"]
    command += ["--weights", str(tiny_weights)]
    with open("song.wav", "rb") as src:
        proc = subprocess.run(
            command,
            stdin=src,
            capture_output=True,
            env=env,
        )
    assert proc.returncode == 0, proc.stderr.decode()
    Path("piped.wav").write_bytes(proc.stdout)
    piped, rate = sf.read("piped.wav")
    mix, _ = sf.read("song.wav")
    assert rate == 44100 and piped.shape == mix.shape
    assert np.abs(piped).max() > 1e-3
    # Garbage on stdin: one error line that calls it "-", not the temporary file it was spooled to.
    bad = subprocess.run(
        command,
        input=b"not audio at all" * 100,
        capture_output=True,
        env=env,
    )
    err = bad.stderr.decode()
    assert bad.returncode == 1 and bad.stdout == b""
    assert_one_line_error(err, "-: cannot decode")
    assert "mss-stdin" not in err and err.count("cannot decode") == 1, err


def test_profiles_are_saved_listed_and_reused(capsys, workdir, tiny_weights, tmp_path_factory):
    clips = ["--like", "like_1.wav", "like_2.flac", "--not", "not_1.wav"]
    code, _, err = run(capsys, "embed", *clips, "-o", "tones", "--weights", str(tiny_weights), "--quiet")
    assert code == 0, err
    code, out, _ = run(capsys, "profiles", "--json")
    row = json.loads(out)
    assert (
        row["name"] == "tones"
        and row["positives"] == ["like_1.wav", "like_2.flac"]
        and row["negatives"] == ["not_1.wav"]
    )
    assert mode_of(row["path"]) == new_file_mode()  # not the private 0600 safetensors' writer gives
    assert separate(capsys, tiny_weights, "song.wav", "--profile", "tones", "-o", "a")[0] == 0
    assert separate(capsys, tiny_weights, "song.wav", *clips, "-o", "b")[0] == 0
    assert Path("a/song/tones.wav").read_bytes() == Path("b/song/like.wav").read_bytes()  # suppression kept
    assert separate(capsys, tiny_weights, "song.wav", *clips, "-o", "d", "--no-suppress")[0] == 0
    assert Path("a/song/tones.wav").read_bytes() != Path("d/song/like.wav").read_bytes()
    other = build_tiny_weights(tmp_path_factory.mktemp("w2") / "other.safetensors", seed=1)
    code, _, err = separate(capsys, other, "song.wav", "--profile", "tones", "-o", "c")
    assert code == 2
    assert_one_line_error(err, "tones.safetensors", "made for model")


def test_info_json_reports_model_and_checksum(capsys, tiny_weights):
    code, out, _ = run(capsys, "info", "--json", "--weights", str(tiny_weights))
    assert code == 0
    info = json.loads(out)
    assert len(info["sha256"]) == 64 and info["model_id"] == info["sha256"][:12]
    assert info["config"]["channels"] == [4, 8, 8, 16] and info["device"] == "cpu"
    assert "bass" in info["classes"]  # what --class takes: the shipped class-conditioned model's classes
    assert info["class_synonyms"]["guitar"] == ["electric_guitar", "acoustic_guitar"]


def test_info_lists_the_classes_a_class_conditioned_model_accepts(capsys, tiny_classcond_weights):
    code, out, _ = run(capsys, "info", "--json", "--weights", str(tiny_classcond_weights))
    assert code == 0
    classes = json.loads(out)["classes"]
    assert "bass" in classes and "drums" in classes and "viola" not in classes  # viola: an unseen class


def test_unquoted_globs_give_several_examples():
    argv = ["separate", "song.wav", "--like", "g1.wav", "g2.wav", "--not", "v.wav", "--json"]
    assert split_clip_lists(argv) == [
        "separate",
        "song.wav",
        "--like",
        "g1.wav",
        "--like",
        "g2.wav",
        "--not",
        "v.wav",
        "--json",
    ]


# --- errors: one line, the file and the cause, the documented exit code, nothing left behind ---------


@pytest.mark.parametrize(
    "args, code, needles",
    [
        (["song.wav"], 2, ["--like"]),
        (["song.wav", "--like", "nothing_*.wav"], 2, ["nothing_*.wav", "no file matches"]),
        (["song.wav", "--like", "absent.wav"], 2, ["absent.wav", "not found"]),
        (["song.wav", "--like", "like_1.wav", "--overlap", "2"], 2, ["--overlap"]),
        (["song.wav", "--like", "like_1.wav", "--precision", "fp16"], 2, ["precision 'fp16'"]),
        (["song.wav", "--like", "like_1.wav", "--shifts", "0"], 2, ["--shifts"]),
        (["song.wav", "--like", "like_1.wav", "--device", "tpu"], 2, ["device 'tpu'"]),
        (["song.wav", "--like", "like_1.wav", "--shard", "3/2"], 2, ["--shard"]),
        (["song.wav", "--like", "like_1.wav", "--filename", "{track}.{ext}"], 2, ["{stem}"]),
        (["song.wav", "--like", "like_1.wav", "--format", "mp3", "--bit-depth", "24"], 2, ["bit depth 24: mp3"]),
        (["song.wav", "--like", "like_1.wav", "--profile", "x"], 2, ["--profile"]),
        (["missing.wav", "--like", "like_1.wav"], 1, ["missing.wav", "not found"]),
    ],
)
def test_usage_and_input_errors(capsys, workdir, tiny_weights, args, code, needles):
    got, _, err = separate(capsys, tiny_weights, *args)
    assert got == code, err
    assert_one_line_error(err, *needles)
    assert not Path("separated").exists() or not list(Path("separated").rglob("*.wav"))


def test_class_conditioned_model_separates_by_class_name(capsys, workdir, tiny_weights, tiny_classcond_weights):
    code, _, err = separate(capsys, tiny_classcond_weights, "song.wav", "--class", "bass")
    assert code == 0, err
    target, _ = sf.read("separated/song/bass.wav")
    assert target.shape == sf.read("song.wav")[0].shape
    for args, weights, needles in (
        (["--class", "viola"], tiny_classcond_weights, ["viola", "not a class this model was trained on"]),
        (["--class", "bass", "--not", "like_1.wav"], tiny_classcond_weights, ["--not goes with --like"]),
        (["--class", "bass"], tiny_weights, ["a class needs a class-conditioned model"]),
        (
            ["--like", "like_1.wav", "--baseline", str(tiny_classcond_weights)],
            tiny_weights,
            ["--baseline", "give one of those"],
        ),
        (
            ["--like", "like_1.wav", "--class", "bass", "--baseline", str(tiny_weights)],
            tiny_weights,
            ["a class needs a class-conditioned model"],
        ),
        (["--class", "guitar"], tiny_classcond_weights, ["could be electric_guitar or acoustic_guitar"]),
        (["--like", "like_1.wav", "--name", "x", "--class", "bass"], tiny_weights, ["a single target"]),
        (
            ["--like", "like_1.wav", "--class", "viola", "--baseline", str(tiny_classcond_weights)],
            tiny_weights,
            ["viola", "not a class this model was trained on"],
        ),
        (["--like", "like_1.wav"], tiny_classcond_weights, ["class-conditioned", "named class"]),
    ):
        code, _, err = separate(capsys, weights, "song.wav", *args, "--overwrite")
        assert code == 2, err
        assert_one_line_error(err, *needles)


def test_with_class_averages_the_two_models(capsys, workdir, tiny_weights, tiny_classcond_weights):
    """--like with --with-class: the few-shot and the class-conditioned separations, averaged; with
    --not the negatives are taken out of the few-shot model's share (the baseline gets none)."""

    def target(*args: str) -> np.ndarray:
        code, _, err = run(
            capsys, "separate", "song.wav", *args, "--bit-depth", "32f", "--overwrite", "--quiet", "--name", "t"
        )
        assert code == 0, err
        return sf.read("separated/song/t.wav")[0]

    with_bass = ["--with-class", "bass", "--weights", str(tiny_weights), "--baseline", str(tiny_classcond_weights)]
    for negatives in ([], ["--not", "not_1.wav"]):
        fewshot = target("--like", "like_1.wav", *negatives, "--weights", str(tiny_weights))
        baseline = target("--class", "bass", "--weights", str(tiny_classcond_weights))
        both = target("--like", "like_1.wav", *negatives, *with_bass)
        np.testing.assert_allclose(both, (fewshot + baseline) / 2, atol=1e-4)
    # A profile takes the place of the clips.
    assert (
        run(capsys, "embed", "--like", "like_1.wav", "-o", "./guitar.safetensors", "--weights", str(tiny_weights))[0]
        == 0
    )
    from_profile = target("--profile", "./guitar.safetensors", *with_bass)
    np.testing.assert_allclose(
        from_profile, (target("--like", "like_1.wav", "--weights", str(tiny_weights)) + baseline) / 2, atol=1e-4
    )


def test_bad_example_clips(capsys, workdir, tiny_weights):
    sf.write("short.wav", tone(0.4, channels=1), 44100)
    sf.write("silent.wav", np.zeros((44100 * 2, 1), np.float32), 44100)
    Path("garbage.wav").write_bytes(b"RIFF....garbage")
    sf.write(
        "nan.wav", np.where(np.arange(44100 * 2)[:, None] == 500, np.nan, tone(2.0, channels=1)), 44100, subtype="FLOAT"
    )
    for name, needle in (
        ("short.wav", "too short"),
        ("silent.wav", "silent"),
        ("garbage.wav", "decode"),
        ("nan.wav", "NaN"),
    ):
        code, _, err = separate(capsys, tiny_weights, "song.wav", "--like", name)
        assert code == 2, err
        assert_one_line_error(err, name, needle)


def test_bad_inputs(capsys, workdir, tiny_weights):
    sf.write("silent.wav", np.zeros((44100, 2), np.float32), 44100)
    sf.write("empty.wav", np.zeros((0, 2), np.float32), 44100)
    Path("text.wav").write_text("hello")
    mix = tone(1.0)
    mix[300, 1] = np.inf  # one bad sample would spread over a whole chunk of output
    sf.write("inf.wav", mix, 44100, subtype="FLOAT")
    for name, needle in (
        ("silent.wav", "silent"),
        ("empty.wav", "empty"),
        ("text.wav", "decode"),
        ("inf.wav", "infinite"),
    ):
        code, _, err = separate(capsys, tiny_weights, name, "--like", "like_1.wav")
        assert code == 1, err
        assert_one_line_error(err, name, needle)
    assert not list(Path(".").rglob("*.partial*")) and not list(Path("separated").rglob("*.wav"))


def test_missing_and_corrupt_weights(capsys, workdir, tiny_weights):
    code, _, err = run(capsys, "separate", "song.wav", "--like", "like_1.wav", "--weights", "nope.safetensors")
    assert code == 2
    assert_one_line_error(err, "nope.safetensors", "not found")
    corrupt = workdir / "corrupt.safetensors"
    corrupt.write_bytes(tiny_weights.read_bytes()[:5000])
    code, _, err = run(capsys, "separate", "song.wav", "--like", "like_1.wav", "--weights", str(corrupt))
    assert code == 2
    assert_one_line_error(err, "corrupt.safetensors")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(capsys, workdir, tiny_weights):
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    code, _, err = separate(capsys, tiny_weights, "song.wav", "--like", "like_1.wav", "-o", "locked")
    assert code == 1
    assert_one_line_error(err, "locked")


def test_output_folder_that_is_a_file(capsys, workdir, tiny_weights):
    Path("taken").write_text("a file where the output folder should be")
    code, _, err = separate(capsys, tiny_weights, "song.wav", "--like", "like_1.wav", "-o", "taken")
    assert code == 1
    assert_one_line_error(err, "taken", "cannot create output folder")


def test_interrupt_leaves_no_partial_file(capsys, workdir, tiny_weights, monkeypatch):
    import mss_cli.engine as engine

    def interrupted(self, blocks, frames):
        yield next(iter(blocks))[:10, None]  # some output reaches the file, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.OverlapAdd, "run", interrupted)
    code, _, err = separate(capsys, tiny_weights, "song.wav", "--like", "like_1.wav")
    assert code == 130
    assert "interrupted" in err
    assert not [p for p in Path("separated").rglob("*") if p.is_file()]
