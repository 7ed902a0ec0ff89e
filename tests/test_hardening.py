"""Careless and hostile input: help aliases, class names, swallowed inputs, terminals, corrupt profiles."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import run_mss as run
from conftest import tone
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mss: error: ") and "Traceback" not in err, err
    return lines[0]


def test_h_is_help_everywhere(capsys):
    for args in (["-h"], ["separate", "-h"], ["profiles", "-h"]):
        code, out, _ = run(capsys, *args)
        assert code == 0 and "Usage: mss" in out


def test_class_names_ignore_case_and_suggest_the_nearest(capsys, workdir, tiny_classcond_weights):
    weights = ["--weights", str(tiny_classcond_weights), "--quiet"]
    assert run(capsys, "separate", "song.wav", "--class", "Bass", "-o", "a", *weights)[0] == 0
    code, _, err = run(capsys, "separate", "song.wav", "--class", "bas", "-o", "b", *weights)
    assert code == 2 and "did you mean bass?" in one_error_line(err)


def test_info_lists_only_the_classes_class_takes(capsys, tiny_classcond_weights):
    from mss_cli.conditioning import trained_classes
    from mss_cli.weights import load_model

    code, out, _ = run(capsys, "info", "--json", "--weights", str(tiny_classcond_weights))
    details = json.loads(out)
    assert code == 0 and details["classes"] == trained_classes(load_model(tiny_classcond_weights))
    assert "class_names" not in details["config"]


def test_an_input_taken_by_like_gets_a_hint(capsys, workdir, tiny_weights):
    code, _, err = run(capsys, "separate", "--like", "like_1.wav", "song.wav", "--weights", str(tiny_weights))
    assert code == 2 and "put INPUT first, or last after --" in one_error_line(err)
    rest = ["-o", "x", "--weights", str(tiny_weights), "--quiet"]
    code, _, err = run(capsys, "separate", "--like", "like_1.wav", *rest, "--", "song.wav")
    assert code == 0, err


def test_stdout_on_a_terminal_is_refused(capsys, monkeypatch, workdir, tiny_weights):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, _, err = run(
        capsys, "separate", "song.wav", "--like", "like_1.wav", "-o", "-", "--weights", str(tiny_weights)
    )
    assert code == 2 and "stdout, which is a terminal" in one_error_line(err)


def filled(value: float):
    """A corruption of a profile: its vector filled with ``value``."""
    return lambda t, m: ({**t, "conditioning": torch.full_like(t["conditioning"], value)}, m)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (filled(float("nan")), "not finite"),
        (filled(1e30), "not finite"),
        (lambda t, m: (t, {k: v for k, v in m.items() if k != "model_id"}), "no model id"),
        (lambda t, m: (t, {**m, "negatives": "not json"}), "negatives is not a list"),
        (lambda t, m: (t, {**m, "positives": "[1, 2]"}), "positives is not a list"),
        (lambda t, m: ({k: v.long() for k, v in t.items()}, m), "not floating point"),
    ],
)
def test_a_corrupt_profile_is_a_usage_error_before_any_file(capsys, workdir, tiny_weights, corrupt, message):
    from safetensors import safe_open

    weights = ["--weights", str(tiny_weights), "--quiet"]
    assert run(capsys, "embed", "--like", "like_1.wav", "--not", "not_1.wav", "-o", "p.safetensors", *weights)[0] == 0
    with safe_open("p.safetensors", "pt") as fh:
        meta = fh.metadata()
    tensors, meta = corrupt(load_file("p.safetensors"), meta)
    save_file(tensors, "p.safetensors", metadata=meta)
    code, _, err = run(capsys, "separate", "song.wav", "--profile", "./p.safetensors", "-o", "out", *weights)
    assert code == 2 and message in one_error_line(err)
    assert not os.path.exists("out")  # nothing was processed


def test_profiles_in_half_precision_work_and_huge_or_unreadable_ones_are_refused(capsys, workdir, tiny_weights):
    weights = ["--weights", str(tiny_weights), "--quiet"]
    assert run(capsys, "embed", "--like", "like_1.wav", "-o", "p.safetensors", *weights)[0] == 0
    with safe_open("p.safetensors", "pt") as fh:
        meta = fh.metadata()
    save_file({k: v.half() for k, v in load_file("p.safetensors").items()}, "half.safetensors", metadata=meta)
    assert run(capsys, "separate", "song.wav", "--profile", "./half.safetensors", "-o", "out", *weights)[0] == 0
    with open("p.safetensors", "r+b") as fh:
        fh.truncate(3 << 30)  # sparse: 3 GB that would be read whole
    code, _, err = run(capsys, "separate", "song.wav", "--profile", "./p.safetensors", "-o", "o2", *weights)
    assert code == 2 and "not a profile (3,221,225,472 bytes" in one_error_line(err)
    if os.path.exists("/proc/self/mem"):
        code, _, err = run(capsys, "separate", "song.wav", "--profile", "/proc/self/mem", "-o", "o3", *weights)
        assert code == 2 and "/proc/self/mem" in one_error_line(err)
    shutil.copy(tiny_weights, "big.safetensors")
    with open("big.safetensors", "r+b") as fh:
        fh.truncate(3 << 30)
    code, _, err = run(capsys, "info", "--weights", "big.safetensors")
    assert code == 2 and "far larger" in one_error_line(err)
    assert not os.path.exists("o2") and not os.path.exists("o3")


def test_profiles_lists_the_good_ones_past_a_corrupt_one(capsys, workdir, tiny_weights):
    weights = ["--weights", str(tiny_weights), "--quiet"]
    for name in ("a", "c"):
        assert run(capsys, "embed", "--like", "like_1.wav", "-o", name, *weights)[0] == 0
    folder = workdir / "xdg" / "mss" / "profiles"
    (folder / "b.safetensors").write_bytes(b"not a safetensors file")
    code, out, err = run(capsys, "profiles")
    lines = out.splitlines()
    assert (
        code == 1 and lines[0].startswith("NAME\tMODEL") and [line.split("\t")[0] for line in lines[1:]] == ["a", "c"]
    )
    assert "b.safetensors" in one_error_line(err)


def test_no_pydub_warning_without_ffmpeg(tmp_path):
    code = "from mss_cli.audio import ffmpeg_binary\nprint(ffmpeg_binary())"
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "None" and proc.stderr == ""


def with_rate_in_header(path, rate: int) -> None:
    """Rewrite a PCM WAV's header to claim ``rate`` (the sample rate and byte rate fields)."""
    data = bytearray(path.read_bytes())
    block_align = int.from_bytes(data[32:34], "little")
    data[24:28] = rate.to_bytes(4, "little")
    data[28:32] = (rate * block_align).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_absurd_headers_are_refused_before_any_work(capsys, workdir, tiny_weights):
    import soundfile as sf
    from conftest import tone

    weights = ["--weights", str(tiny_weights), "--quiet"]
    sf.write("rate1.wav", tone(2.0), 44100, subtype="PCM_16")
    with_rate_in_header(workdir / "rate1.wav", 1)
    sf.write("wide.wav", tone(0.5, channels=100), 44100, subtype="PCM_16")
    code, _, err = run(
        capsys, "separate", "rate1.wav", "wide.wav", "song.wav", "--like", "like_1.wav", "-o", "o", *weights
    )
    assert code == 1 and "rate1.wav: sample rate 1 Hz (mss takes 1000 to 768000 Hz)" in err
    assert "wide.wav: 100 channels (mss takes at most 64)" in err
    assert sorted(p.name for p in (workdir / "o").rglob("*") if not p.name.startswith(".")) == [
        "like.wav",
        "no_like.wav",
        "song",
    ]
    code, _, err = run(capsys, "separate", "song.wav", "--like", "rate1.wav", "-o", "p", *weights)
    assert code == 2 and "sample rate 1 Hz" in one_error_line(err)


@pytest.mark.parametrize("value", [float("nan"), 1e20, 3e38])
def test_huge_or_non_finite_samples_are_refused_not_turned_into_nan(capsys, workdir, tiny_weights, value):
    import soundfile as sf
    from conftest import tone

    audio = tone(3.0)
    audio[44100, 0] = value
    sf.write("bad.wav", audio, 44100, subtype="FLOAT")
    code, _, err = run(
        capsys, "separate", "bad.wav", "--like", "like_1.wav", "-o", "o", "--weights", str(tiny_weights), "--quiet"
    )
    assert code == 1 and "contains NaN, infinite or absurd samples" in one_error_line(err)
    assert not list(workdir.glob("o/**/*.wav"))  # no stem, partial or whole, was written


@pytest.mark.parametrize(
    "signals_sent, jobs, code", [(["SIGTERM"], 1, 143), (["SIGINT", "SIGINT"], 2, 130), (["SIGHUP"], 1, 129)]
)
def test_a_signal_stops_the_run_and_leaves_no_partial_file(workdir, tiny_weights, signals_sent, jobs, code):
    """SIGTERM (kill, timeout, SLURM), Ctrl-C twice with --jobs, and SIGHUP (a closed terminal):
    files in flight are abandoned at their next chunk, their temporary outputs removed, and the
    exit code says which signal."""
    import signal
    import time

    import soundfile as sf
    from conftest import tone

    for name in ("long1.wav", "long2.wav"):
        sf.write(name, tone(240.0, rate=8000, channels=1), 8000, subtype="PCM_16")
    args = ["long1.wav", "long2.wav", "--like", "like_1.wav", "-o", "out", "--chunk", "1", "--jobs", str(jobs)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mss_cli", "separate", *args, "--weights", str(tiny_weights), "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list(workdir.glob("out/**/.*partial*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before any output was started"
    for name in signals_sent:
        proc.send_signal(getattr(signal, name))
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert lines[-1] == f"mss: error: {({143: 'terminated', 129: 'hung up'}).get(code, 'interrupted')}", err
    assert lines[-2] == "mss: stopped; 0 of 2 file(s) had been separated", err  # what a batch did
    assert "Traceback" not in err
    assert not [p for p in workdir.glob("out/**/*") if p.is_file()]  # no stem, partial or whole


def test_bad_filename_templates_and_stdin_twice_are_usage_errors(capsys, workdir, tiny_weights):
    weights = ["--weights", str(tiny_weights), "--quiet"]
    for template, message in [("{stem:d}", "no format spec"), ("{stem!r}", "no format spec"), ("{}", "unknown field")]:
        code, _, err = run(capsys, "separate", "song.wav", "--like", "like_1.wav", "--filename", template, *weights)
        assert code == 2 and message in one_error_line(err)
    code, _, err = run(capsys, "separate", "-", "-", "--like", "like_1.wav", *weights)
    assert code == 2 and "only once" in one_error_line(err)


@pytest.mark.parametrize("stdin", ["terminal", "closed"])
def test_stdin_that_is_a_terminal_or_closed_is_refused_at_once(capsys, workdir, tiny_weights, monkeypatch, stdin):
    """`mss separate -` typed at a prompt would wait forever for audio; a closed stdin has no buffer."""

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal() if stdin == "terminal" else None)
    code, _, err = run(capsys, "separate", "-", "--like", "like_1.wav", "--weights", str(tiny_weights))
    assert code == 2 and "stdin, which is a terminal or closed" in one_error_line(err)


def test_outputs_stay_inside_o_and_never_replace_an_input(capsys, workdir, tiny_weights):
    import shutil

    weights = ["--weights", str(tiny_weights), "--quiet"]
    (workdir / "in").mkdir()
    shutil.copy("song.wav", workdir / "in" / "...wav")  # its track name is '..'
    code, _, err = run(capsys, "separate", "in/...wav", "--like", "like_1.wav", "-o", "out", *weights)
    assert code == 0, err
    assert sorted(str(p.relative_to(workdir)) for p in workdir.glob("out/**/*.wav")) == [
        "out/_/like.wav",
        "out/_/no_like.wav",
    ]
    code, _, err = run(
        capsys, "separate", "song.wav", "--like", "like_1.wav", "-o", "out", "--filename", "../{stem}.{ext}", *weights
    )
    assert code == 1 and "would be outside the output folder" in err and not (workdir / "like.wav").exists()
    (workdir / "in" / "like.wav").write_bytes((workdir / "song.wav").read_bytes())
    before = (workdir / "in" / "like.wav").read_bytes()
    args = ["separate", "in/like.wav", "--like", "like_1.wav", "-o", ".", "--filename", "in/{stem}.{ext}"]
    code, _, err = run(capsys, *args, "--overwrite", *weights)
    assert code == 1 and "would replace the input in/like.wav" in err
    assert (workdir / "in" / "like.wav").read_bytes() == before


def test_a_second_run_in_a_folder_skips_its_own_outputs_and_can_resume(capsys, workdir, tiny_weights):
    weights = ["--weights", str(tiny_weights), "--json"]
    (workdir / "album").mkdir()
    for name in ("a.wav", "b.wav"):
        (workdir / "album" / name).write_bytes((workdir / "song.wav").read_bytes())
    (workdir / "album" / ".a.like.x.partial.wav").write_bytes((workdir / "song.wav").read_bytes())
    code, out, err = run(capsys, "separate", "album", "--like", "like_1.wav", "-o", "album/separated", *weights)
    assert code == 0, err
    assert sorted(json.loads(line)["input"] for line in out.splitlines())[::2] == ["album/a.wav", "album/b.wav"]
    for stem in ("like", "no_like"):  # as if interrupted before b was done (a run's stems go together)
        (workdir / "album" / "separated" / "b" / f"{stem}.wav").unlink()
    code, out, err = run(
        capsys, "separate", "album", "--like", "like_1.wav", "-o", "album/separated", "--skip-existing", *weights
    )
    assert code == 0, err
    assert {json.loads(line)["input"] for line in out.splitlines()} == {"album/b.wav"}
    code, _, err = run(capsys, "separate", "album", "--like", "like_1.wav", "--skip-existing", "--overwrite", *weights)
    assert code == 2 and "contradict" in one_error_line(err)


def test_a_name_taken_between_check_and_rename_is_not_replaced(tmp_path):
    import numpy as np

    from mss_cli.audio import AtomicWriter
    from mss_cli.errors import MssError

    dest = tmp_path / "t.wav"
    writer = AtomicWriter(dest, 44100, 1, "wav", "PCM_16", overwrite=False)
    writer.write(np.zeros((100, 1), np.float32))
    dest.write_bytes(b"another run's stem")  # the race: another process finished first
    with pytest.raises(MssError, match="exists"):
        writer.commit()
    assert dest.read_bytes() == b"another run's stem" and [p.name for p in tmp_path.iterdir()] == ["t.wav"]


def test_mp3_above_48_khz_names_the_output_not_a_temporary(capsys, workdir, tiny_weights):
    import soundfile as sf
    from conftest import tone

    sf.write("hi.wav", tone(2.0, rate=96000), 96000, subtype="PCM_16")
    code, _, err = run(
        capsys,
        "separate",
        "hi.wav",
        "--like",
        "like_1.wav",
        "-f",
        "mp3",
        "-o",
        "o",
        "--weights",
        str(tiny_weights),
        "--quiet",
    )
    line = one_error_line(err)
    assert code == 1 and "o/hi/like.mp3: MP3 takes sample rates up to 48000 Hz" in line and "partial" not in line


def test_errors_are_one_line_whatever_the_file_name(capsys, workdir, tiny_weights):
    (workdir / "bad\nname.wav").write_bytes(b"not audio at all")
    code, _, err = run(
        capsys, "separate", "bad\nname.wav", "--like", "like_1.wav", "--weights", str(tiny_weights), "--quiet"
    )
    assert code == 1 and "bad\\nname.wav" in one_error_line(err)


def test_a_truncated_file_names_the_cause(capsys, workdir, tiny_weights):
    import soundfile as sf
    from conftest import tone

    sf.write("whole.flac", tone(3.0), 44100, subtype="PCM_16")
    data = (workdir / "whole.flac").read_bytes()
    (workdir / "half.flac").write_bytes(data[: len(data) // 2])
    code, _, err = run(
        capsys, "separate", "half.flac", "--like", "like_1.wav", "--weights", str(tiny_weights), "--quiet"
    )
    assert code == 1 and "half.flac: cannot decode audio" in one_error_line(err) and "internal" not in err
    code, _, err = run(capsys, "separate", "song.wav", "--like", "half.flac", "--weights", str(tiny_weights), "--quiet")
    assert code == 2 and "half.flac: cannot decode audio" in one_error_line(err)


def test_mp3_bitrate(capsys, workdir, tiny_weights):
    import soundfile as sf
    from conftest import tone

    sf.write("long.wav", tone(10.0), 44100, subtype="PCM_16")
    weights = ["--weights", str(tiny_weights), "--quiet", "--no-residual"]
    sizes = {}
    for kbps in ("64", "192"):
        args = ["separate", "long.wav", "--like", "like_1.wav", "-f", "mp3", "--mp3-bitrate", kbps, "-o", kbps]
        assert run(capsys, *args, *weights)[0] == 0
        sizes[kbps] = (workdir / kbps / "long" / "like.mp3").stat().st_size * 8 / 10 / 1000  # kbit/s
    assert abs(sizes["64"] - 64) < 4 and abs(sizes["192"] - 192) < 8
    code, _, err = run(capsys, "separate", "long.wav", "--like", "like_1.wav", "--mp3-bitrate", "64", *weights)
    assert code == 2 and "--mp3-bitrate goes with --format mp3" in one_error_line(err)


def test_profiles_show_and_rm(capsys, workdir, tiny_weights):
    weights = ["--weights", str(tiny_weights), "--quiet"]
    for name in ("a", "b"):
        assert run(capsys, "embed", "--like", "like_1.wav", "--not", "not_1.wav", "-o", name, *weights)[0] == 0
    code, out, _ = run(capsys, "profiles", "show", "a", "--json")
    row = json.loads(out)
    assert code == 0 and row["name"] == "a" and row["positives"] == ["like_1.wav"] and row["negatives"] == ["not_1.wav"]
    code, out, _ = run(capsys, "profiles", "show", "a")
    assert code == 0 and "positives: like_1.wav" in out
    code, _, err = run(capsys, "profiles", "rm", "a", "nothere")
    assert code == 2 and "nothere.safetensors: profile not found" in one_error_line(err)
    before = (workdir / "song.wav").read_bytes()  # rm removes profiles only, never any file given by path
    for path in ("./song.wav", str(workdir / "song.wav")):
        code, _, err = run(capsys, "profiles", "rm", path, "a")
        assert code == 2 and "song.wav: not a valid safetensors profile" in one_error_line(err)
    assert (workdir / "song.wav").read_bytes() == before and run(capsys, "profiles", "show", "a")[0] == 0
    (workdir / "song.safetensors").write_bytes(before)
    assert run(capsys, "profiles", "rm", "song.safetensors")[0] == 2 and (workdir / "song.safetensors").exists()
    assert run(capsys, "profiles", "rm", "a")[0] == 0
    code, out, _ = run(capsys, "profiles", "--json")
    assert code == 0 and [json.loads(line)["name"] for line in out.splitlines()] == ["b"]


def test_help_is_compact_with_examples_and_completion_works():
    help_text = subprocess.run([sys.executable, "-m", "mss_cli", "separate", "-h"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "Examples:" in help_text.stdout and "<bool>" not in help_text.stdout
    assert len(help_text.stdout.splitlines()) < 100
    env = {**os.environ, "_MSS_COMPLETE": "complete_bash", "COMP_WORDS": "mss sep", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "mss_cli"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.split() == ["separate"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t, m: (t, {k: v for k, v in m.items() if k != "config"}), "no mss model config"),
        (lambda t, m: (t, {**m, "config": "not json"}), "malformed model config"),
        (lambda t, m: (t, {**m, "config": "[1, 2]"}), "malformed model config"),
        (lambda t, m: (t, {**m, "config": '{"channels": "wide"}'}), "malformed model config"),
        *[
            (lambda t, m, bad=bad: (t, {**m, "config": json.dumps({**json.loads(m["config"]), **bad})}), needle)
            for bad, needle in [
                ({"hop": 0}, "hop 0"),
                ({"hop": -512}, "hop -512"),
                ({"sample_rate": 1}, "sample_rate 1"),
                ({"n_fft": 2**29}, "n_fft 536870912"),
                ({"bins": 0}, "bins 0"),
                ({"clip_dbfs": "loud"}, "clip_dbfs 'loud'"),
                ({"mixture_dbfs": 1e308}, "mixture_dbfs 1e+308"),
                ({"channels": [4, 200_000]}, "U-Net widths [4, 200000]"),
            ]
        ],
        (
            lambda t, m: (
                {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in t.items()},
                m,
            ),
            "non-finite values",
        ),
    ],
)
def test_malformed_weights_are_usage_errors_before_any_file(capsys, workdir, tiny_weights, change, message):
    from safetensors import safe_open

    with safe_open(str(tiny_weights), "pt") as fh:
        meta = fh.metadata()
    tensors, meta = change(load_file(str(tiny_weights)), meta)
    save_file(tensors, "bad.safetensors", metadata=meta)
    for args in (["separate", "song.wav", "--like", "like_1.wav", "-o", "out"], ["info"]):
        code, _, err = run(capsys, *args, "--weights", "bad.safetensors")
        assert code == 2 and message in one_error_line(err)
    assert not os.path.exists("out")


def test_progress_shows_file_names_as_text_never_as_terminal_codes():
    from mss_cli.progress import RunProgress

    run = RunProgress(True, 1)
    task = run.file_task("in/\x1b]0;pwned\x07[bold]x.wav")
    assert "\x1b" not in task.label and "\x07" not in task.label and "[bold]x.wav" in task.label
    assert run.progress.columns[0].markup is False  # "[bold]" in a name is shown, not applied


def test_one_file_named_several_ways_is_one_input(workdir):
    from mss_cli.inputs import expand_inputs

    (workdir / "in").mkdir()
    (workdir / "in" / "a.wav").write_bytes((workdir / "song.wav").read_bytes())
    assert expand_inputs(["in/a.wav", "./in/a.wav", "in/../in/a.wav"]) == ["in/a.wav"]
    (workdir / "in" / "loop").symlink_to(workdir / "in")  # a ** glob walks round it
    assert expand_inputs(["in/**/*.wav"]) == ["in/a.wav"]
    assert expand_inputs(["in"]) == ["in/a.wav"]


def test_a_folder_inside_the_output_folder_or_unreadable_is_an_error_not_nothing_to_do(capsys, workdir, tiny_weights):
    weights = ["--weights", str(tiny_weights), "--quiet"]
    (workdir / "music").mkdir()
    (workdir / "music" / "a.wav").write_bytes((workdir / "song.wav").read_bytes())
    for folder, out in (("music", "music"), ("music", ".")):
        code, _, err = run(capsys, "separate", folder, "--like", "like_1.wav", "-o", out, *weights)
        assert code == 2 and "inside the output folder" in one_error_line(err)
    if os.geteuid() != 0:  # root reads any folder
        (workdir / "music").chmod(0)
        code, _, err = run(capsys, "separate", "music", "--like", "like_1.wav", "-o", "out", *weights)
        (workdir / "music").chmod(0o755)
        assert code == 2 and "cannot read this folder" in one_error_line(err)


def test_stdout_cut_short_closed_or_full_is_one_line_or_a_quiet_sigpipe_exit(workdir, tiny_weights):
    """`| head` taking what it wants ends mss quietly with the SIGPIPE status; a closed or full
    stdout is one error line; never a traceback or Python's "Exception ignored" lines."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    sf.write("long.wav", tone(30.0), 44100)
    mss = [
        sys.executable,
        "-m",
        "mss_cli",
        "separate",
        "long.wav",
        "--like",
        "like_1.wav",
        "--weights",
        str(tiny_weights),
    ]
    for extra in (["-o", "-", "--quiet"], ["-o", "out", "--json", "--format", "flac"]):
        proc = subprocess.Popen([*mss, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdout.read(100 if "-" in extra else 1)
        proc.stdout.close()  # the reader goes away, as `head -c 100` does
        code = proc.wait(timeout=120)  # 5 MB of WAV meet the closed pipe; two JSON lines may fit in it first
        assert code == 141 if "-" in extra else code in (0, 141)
        assert proc.stderr.read() == b""
    assert not list(Path(".").rglob(".*partial*"))
    closed = (["sh", "-c", 'exec "$@" >&-', "sh", *mss, "-o", "-", "-q"], None, "it is closed")
    full = ([*mss, "-o", "-", "-q"], "/dev/full", "No space left on device")
    for command, device, needle in [closed, full] if os.path.exists("/dev/full") else [closed]:
        with open(device or os.devnull, "wb") as sink:
            done = subprocess.run(command, stdout=sink if device else None, stderr=subprocess.PIPE, env=env)
        lines = done.stderr.decode().strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and needle in lines[0], done.stderr.decode()


@pytest.fixture()
def full_disk(tmp_path):
    """A 64-kB file system, mounted where root may mount one (CI's and this machine's case)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:80]})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_a_full_disk_is_one_error_line_and_leaves_nothing(capsys, workdir, tiny_weights, full_disk, fmt):
    args = ["separate", "song.wav", "--like", "like_1.wav", "-o", str(full_disk), "-f", fmt]
    code, _, err = run(capsys, *args, "--weights", str(tiny_weights), "--quiet")
    assert code == 1 and "the disk is full" in one_error_line(err)
    assert not [p for p in full_disk.rglob("*") if p.is_file()]


def test_a_full_tmpdir_while_reading_stdin_is_one_error_line(workdir, tiny_weights, full_disk):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]), TMPDIR=str(full_disk))
    command = [sys.executable, "-m", "mss_cli", "separate", "-", "--like", "like_1.wav", "-o", "out", "-q"]
    with open("song.wav", "rb") as song:
        done = subprocess.run([*command, "--weights", str(tiny_weights)], stdin=song, stderr=subprocess.PIPE, env=env)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "cannot spool standard input" in lines[0], lines
    assert "No space left on device" in lines[0] and not [p for p in full_disk.rglob("*") if p.is_file()]


def test_embed_onto_a_full_disk_a_folder_or_a_file_as_data_home_is_one_error_line(
    capsys, workdir, tiny_weights, full_disk, monkeypatch
):
    weights = ["--weights", str(tiny_weights), "--quiet"]
    with open(full_disk / "filler", "wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\0" * (1 << 20))  # the 64 kB fill up
    code, _, err = run(capsys, "embed", "--like", "like_1.wav", "-o", str(full_disk / "p.safetensors"), *weights)
    assert code == 1 and "p.safetensors: cannot write it" in one_error_line(err) and "No space" in err
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]
    (workdir / "folder.safetensors").mkdir()
    code, _, err = run(capsys, "embed", "--like", "like_1.wav", "-o", "folder.safetensors", "--overwrite", *weights)
    assert code == 2 and "is a folder" in one_error_line(err)
    (workdir / "afile").write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(workdir / "afile"))
    code, _, err = run(capsys, "embed", "--like", "like_1.wav", "-o", "guitar", *weights)
    assert code == 2 and "cannot create the profile folder" in one_error_line(err)


def test_names_too_long_for_the_file_system_are_one_error_line(capsys, workdir, tiny_weights):
    weights = ["--weights", str(tiny_weights), "--quiet"]
    code, _, err = run(capsys, "separate", "song.wav", "--like", "like_1.wav", "--name", "a" * 250, *weights)
    assert code == 2 and "up to 100 letters" in one_error_line(err)
    template = "{track}/" + "b" * 300 + "{stem}.{ext}"
    code, _, err = run(capsys, "separate", "song.wav", "--like", "like_1.wav", "--filename", template, *weights)
    assert code == 1 and "output name is too long" in one_error_line(err)
    deep = "/".join(["c" * 200] * 25)  # a 5,000-character path, as output folder and as input
    code, _, err = run(capsys, "separate", "song.wav", "--like", "like_1.wav", "-o", deep, *weights)
    assert code == 1 and "output name is too long" in one_error_line(err)
    code, _, err = run(capsys, "separate", f"{deep}/x.wav", "song.wav", "--like", "like_1.wav", "-o", "o", *weights)
    assert code == 1 and "File name too long" in err and "internal error" not in err
    assert (workdir / "o" / "song" / "like.wav").is_file()  # the other input was separated


def test_a_file_name_that_is_not_utf8_is_separated(capsys, workdir, tiny_weights):
    name = os.fsdecode(b"\xff\xfebad.wav")  # as Python sees it: surrogate escapes
    shutil.copy("song.wav", name)
    code, out, err = run(capsys, "separate", name, "--like", "like_1.wav", "-o", "o", "--json", "--quiet",
                         "--weights", str(tiny_weights))  # fmt: skip
    assert code == 0, err
    assert os.path.isfile(os.path.join("o", os.fsdecode(b"\xff\xfebad"), "like.wav"))
    assert [json.loads(line)["stem"] for line in out.splitlines()] == ["like", "no_like"]


def test_a_fifo_input_is_refused_at_once_not_waited_on(capsys, workdir, tiny_weights):
    os.mkfifo("pipe.wav")
    code, _, err = run(capsys, "separate", "pipe.wav", "--like", "like_1.wav", "-q", "--weights", str(tiny_weights))
    assert code == 1 and "a pipe or device, not a file: give it on stdin as - instead" in one_error_line(err)


def test_partials_a_killed_run_left_are_removed_by_the_next_run_into_that_folder(capsys, workdir, tiny_weights):
    """SIGKILL leaves hidden partials (no cleanup runs); the next run into that folder removes those
    of dead runs on this machine, and leaves a live run's and other machines' alone."""
    from mss_cli.files import partial_prefix

    args = ["separate", "song.wav", "--like", "like_1.wav", "-o", "out", "--weights", str(tiny_weights), "-q"]
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.kill()
    proc.wait()  # a pid that no process has now
    folder = workdir / "out" / "song"
    folder.mkdir(parents=True)
    dead = folder / (partial_prefix("like").replace(f"-{os.getpid()}.", f"-{proc.pid}.") + "x1.partial.wav")
    live = folder / (partial_prefix("like") + "x2.partial.wav")
    other = folder / ".like.mss-otherhost-1.x3.partial.wav"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    assert run(capsys, *args)[0] == 0
    assert not dead.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["like.wav", "no_like.wav"]


def test_an_unreadable_subfolder_is_named_not_skipped_silently(capsys, workdir, tiny_weights, monkeypatch):
    from mss_cli import inputs

    for sub in ("ok", "locked"):
        (workdir / "album" / sub).mkdir(parents=True)
        (workdir / "album" / sub / "a.wav").write_bytes((workdir / "song.wav").read_bytes())
    scandir = os.scandir

    def refusing(path):  # what a folder without read permission does (root reads any, so it is simulated)
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return scandir(path)

    monkeypatch.setattr(inputs.os, "scandir", refusing)
    code, _, err = run(
        capsys, "separate", "album", "--like", "like_1.wav", "-o", "o", "-q", "--weights", str(tiny_weights)
    )
    assert (
        code == 0
        and err.strip() == "mss: warning: skipped a folder that cannot be read: album/locked (Permission denied)"
    )
    assert (workdir / "o" / "a" / "like.wav").is_file()
