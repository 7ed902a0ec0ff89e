"""Careless and hostile input: help aliases, class names, swallowed inputs, terminals, corrupt profiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from mss_cli.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


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
    assert code == 2 and "put INPUT before them, or last after --" in one_error_line(err)
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
