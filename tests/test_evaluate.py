"""mss eval --folder on a user's own cases, and the reports every evaluation writes."""

from __future__ import annotations

import shutil

import soundfile as sf
from conftest import tone

from mss_cli import report
from mss_cli.cli import main
from mss_cli.report import Case

FEWSHOT_5 = "few-shot, 5 positives"
FEWSHOT_5_NEG = "few-shot, 5 positives + 5 negatives"
BASELINE = "class-conditioned baseline"


def test_eval_on_a_users_folder(tmp_path, tiny_weights, capsys):
    case = tmp_path / "cases" / "song1"
    (case / "like").mkdir(parents=True)
    t, o = tone(3.0, freq=220), tone(3.0, freq=900, seed=2)
    sf.write(case / "target.wav", t, 44100, subtype="FLOAT")
    sf.write(case / "mixture.wav", t + o, 44100, subtype="FLOAT")
    sf.write(case / "like" / "a.wav", tone(2.0, freq=220, seed=5), 44100)
    try:
        main(
            ["eval", "--folder", str(tmp_path / "cases"), "--weights", str(tiny_weights), "-o", str(tmp_path / "docs")]
        )
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "few-shot, 1 positives" in out and (tmp_path / "docs" / "evaluation.md").is_file()
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == [
        "evaluation.jsonl",
        "evaluation.md",
        "evaluation.png",
    ]
    (tmp_path / "docs" / "evaluation.md").write_text("an earlier run's table")
    again = ["eval", "--folder", str(tmp_path / "cases"), "--weights", str(tiny_weights), "-o", str(tmp_path / "docs")]
    try:
        main(again)
    except SystemExit as exc:
        assert exc.code == 2
    assert "evaluation.md: result of an earlier evaluation exists (use --overwrite" in capsys.readouterr().err
    assert (tmp_path / "docs" / "evaluation.md").read_text() == "an earlier run's table"
    try:
        main(again + ["--overwrite"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "few-shot, 1 positives" in (tmp_path / "docs" / "evaluation.md").read_text()
    shutil.rmtree(case / "like")
    (case / "like").mkdir()
    try:
        main(["eval", "--folder", str(tmp_path / "cases"), "--weights", str(tiny_weights), "-o", str(tmp_path / "d2")])
    except SystemExit as exc:
        assert exc.code == 2
    assert "no example clips" in capsys.readouterr().err
    for missing, message in ((tmp_path / "nope", "cannot read the cases folder"), (case / "like", "no case folders")):
        try:
            main(["eval", "--folder", str(missing), "--weights", str(tiny_weights), "-o", str(tmp_path / "d3")])
        except SystemExit as exc:
            assert exc.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_table_by_target_class():
    """The medians per group and class, each method a column; a class a method did not cover is n/a."""
    few = [
        Case("seen", i, FEWSHOT_5, cls, 0.0, 0.0, sdri)
        for i, (cls, sdri) in enumerate([("cello", -2.0), ("bass", 11.0), ("bass", 13.0), ("cello", 0.0)])
    ]
    base = [Case("seen", 1, BASELINE, "bass", 0.0, 0.0, 9.0)]
    floor = [Case("seen", c.episode, "mixture (floor)", c.target_class, 0.0, 0.0, 0.0) for c in few]  # not a column
    md = report.by_class(few + base + floor)
    assert md.splitlines()[0] == f"| group | class | episodes | {FEWSHOT_5} | {BASELINE} |"
    assert md.splitlines()[2:] == ["| seen | bass | 2 | +12.00 | +9.00 |", "| seen | cello | 2 | -1.00 | n/a |"]
