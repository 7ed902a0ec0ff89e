"""Evaluation: the method table on a tiny dataset, the NMF baseline, and a user's own folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf

from conftest import tone
from mss_cli import evaluate as ev
from mss_cli.cli import main
from mss_cli.weights import load_model


def test_methods_table_on_a_tiny_dataset(tmp_path, tiny_dataset, tiny_weights, tiny_classcond_weights):
    model = load_model(tiny_weights)
    cases = ev.evaluate(tiny_dataset, model, load_model(tiny_classcond_weights), episodes=2, seed=1, progress=lambda m: None)
    methods = {c.method for c in cases}
    assert {"mixture (floor)", "oracle IRM (ceiling)", "NMF from 5 examples", "few-shot, 10 positives",
            "few-shot, 5 positives + 5 negatives"} <= methods
    # The averaged methods run where the baseline does: on the episodes of its trained classes.
    covered = {(c.group, c.episode) for c in cases if c.method == ev.BASELINE}
    assert covered
    for averaged in (ev.FEWSHOT_5 + ev.AVERAGED, ev.FEWSHOT_5_SUPPRESSED + ev.AVERAGED):
        assert {(c.group, c.episode) for c in cases if c.method == averaged} == covered
    floor = [c for c in cases if c.method == "mixture (floor)"]
    assert all(c.sdri == 0 for c in floor)
    irm = [c for c in cases if c.method.startswith("oracle")]
    assert np.median([c.sdri for c in irm]) > 3  # the ideal mask is a real ceiling
    md = ev.save(cases, tmp_path, "test")
    assert "| few-shot, 5 positives |" in md and (tmp_path / "evaluation.png").stat().st_size > 1000


def test_nmf_baseline_recovers_a_tone_from_its_examples():
    from mss_cli.data.episodes import Episode

    target = tone(3.0, freq=220, channels=1)[:, 0]
    other = tone(3.0, freq=1550, channels=1, seed=3)[:, 0]
    clips = np.stack([tone(2.0, freq=220, channels=1, seed=s)[:, 0] for s in range(5)])
    e = Episode(target + other, target, clips, np.zeros((0, 1), np.float32), "x", 0, "w", [], [], ["x"])
    est = ev.nmf_baseline(e)
    assert ev.bss_sdr(target, est) > ev.bss_sdr(target, e.mixture) + 6


def test_class_conditioned_baseline_skips_classes_it_was_not_trained_on(tiny_classcond_weights):
    """Its table has rows for the unseen classes too, but untrained ones: those episodes are skipped,
    never separated with a random vector."""
    from mss_cli.data.episodes import Episode

    model = load_model(tiny_classcond_weights)
    mix = tone(2.0, channels=1)[:, 0]
    episode = lambda cls: Episode(mix, mix, np.zeros((0, 1), np.float32), np.zeros((0, 1), np.float32), cls, 0, "w", [], [], [cls])
    assert "viola" in model.config.class_names and "viola" not in ev.trained_classes(model)
    assert ev.classcond(model, episode("viola")) is None
    est = ev.classcond(model, episode("bass"))
    assert est.shape == mix.shape and np.isfinite(est).all()


def test_eval_on_a_users_folder(tmp_path, tiny_weights, capsys):
    case = tmp_path / "cases" / "song1"
    (case / "like").mkdir(parents=True)
    t, o = tone(3.0, freq=220), tone(3.0, freq=900, seed=2)
    sf.write(case / "target.wav", t, 44100, subtype="FLOAT")
    sf.write(case / "mixture.wav", t + o, 44100, subtype="FLOAT")
    sf.write(case / "like" / "a.wav", tone(2.0, freq=220, seed=5), 44100)
    try:
        main(["eval", "--folder", str(tmp_path / "cases"), "--weights", str(tiny_weights), "-o", str(tmp_path / "docs")])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "few-shot, 1 positives" in out and (tmp_path / "docs" / "evaluation.md").is_file()
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["evaluation.jsonl", "evaluation.md", "evaluation.png"]
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


def test_baseline_is_compared_on_the_episodes_it_covers():
    """The class-conditioned baseline skips unseen classes; the table compares it on its episodes
    only, as a paired difference; negatives are compared with no negatives the same way."""
    few = [ev.Case("g", i, ev.FEWSHOT_5, "bass", 0.0, 0.0, sdri) for i, sdri in enumerate([1.0, 2.0, 9.0, 9.0])]
    base = [ev.Case("g", i, ev.BASELINE, "bass", 0.0, 0.0, sdri) for i, sdri in enumerate([3.0, 5.0])]
    neg = [ev.Case("g", i, ev.FEWSHOT_5_NEG, "bass", 0.0, 0.0, sdri) for i, sdri in enumerate([1.5, 1.0, 9.5, 10.0])]
    md = ev.table(few + base + neg)
    assert ("g, class-conditioned baseline vs few-shot, 5 positives, on the 2 of 4 episodes it covers: "
            "median SDRi +4.00 vs +1.50 dB; paired difference +2.50 dB (median), class-conditioned baseline better in 2 of 2.") in md
    assert "on all 4 episodes: median SDRi +5.50 vs +5.50 dB; paired difference +0.50 dB (median)" in md
    assert "few-shot, 5 positives + 5 negatives better in 3 of 4" in md
    assert ev.paired_note(few, "g", ev.BASELINE, ev.FEWSHOT_5) == ""


def test_paired_over_every_group_and_in_any_metric():
    """Episodes are numbered within a group, so pooling the groups pairs by (group, episode); the
    table and --against add that pooled line where there are several groups; SI-SDR pairs alike."""
    few = [ev.Case(g, i, ev.FEWSHOT_5, "bass", 0.0, si, sdri)
           for g, i, si, sdri in [("a", 0, 1.0, 1.0), ("a", 1, 1.0, 2.0), ("b", 0, 1.0, 3.0)]]
    neg = [ev.Case(g, i, ev.FEWSHOT_5_NEG, "bass", 0.0, si, sdri)
           for g, i, si, sdri in [("a", 0, 0.0, 2.0), ("a", 1, 4.0, 2.5), ("b", 0, 3.0, 2.0)]]
    ours, theirs = ev.paired(few + neg, None, ev.FEWSHOT_5_NEG, ev.FEWSHOT_5)
    assert list(ours - theirs) == [1.0, 0.5, -1.0]
    assert ev.paired_note(few + neg, None, ev.FEWSHOT_5_NEG, ev.FEWSHOT_5, "si_sdr") == (
        f"all groups, {ev.FEWSHOT_5_NEG} vs {ev.FEWSHOT_5}, on all 3 episodes: median SI-SDR +3.00 vs +1.00 dB; "
        f"paired difference +2.00 dB (median), {ev.FEWSHOT_5_NEG} better in 2 of 3.")
    assert f"- all groups, {ev.FEWSHOT_5_NEG} vs {ev.FEWSHOT_5}, on all 3 episodes: median SDRi +2.00 vs +2.00 dB; " \
           "paired difference +0.50 dB (median)" in ev.table(few + neg)
    assert "- all groups, few-shot, 5 positives (this run) vs few-shot, 5 positives (earlier), on all 3 episodes" \
           in ev.against(few, few, "earlier")


def test_table_by_target_class():
    """The medians per group and class, each method a column; a class a method did not cover is n/a."""
    few = [ev.Case("seen", i, ev.FEWSHOT_5, cls, 0.0, 0.0, sdri)
           for i, (cls, sdri) in enumerate([("cello", -2.0), ("bass", 11.0), ("bass", 13.0), ("cello", 0.0)])]
    base = [ev.Case("seen", 1, ev.BASELINE, "bass", 0.0, 0.0, 9.0)]
    floor = [ev.Case("seen", c.episode, "mixture (floor)", c.target_class, 0.0, 0.0, 0.0) for c in few]  # not a column
    md = ev.by_class(few + base + floor)
    assert md.splitlines()[0] == f"| group | class | episodes | {ev.FEWSHOT_5} | {ev.BASELINE} |"
    assert md.splitlines()[2:] == ["| seen | bass | 2 | +12.00 | +9.00 |", "| seen | cello | 2 | -1.00 | n/a |"]


def test_chosen_methods_and_a_run_paired_with_an_earlier_one(tmp_path, tiny_dataset, tiny_weights, capsys):
    """--method runs only the named methods; --against pairs them with an earlier run's on the same
    episodes (two weights files compared), and refuses a run whose episodes differ (after saving its
    own results)."""
    from conftest import build_tiny_weights

    other = build_tiny_weights(tmp_path / "other.safetensors", seed=1)

    def mss_eval(weights, out: str, *extra: str) -> int:
        try:
            main(["eval", "--data", str(tiny_dataset), "--weights", str(weights), "--episodes", "2", "--seed", "1",
                  "--method", ev.FEWSHOT_5, "--method", ev.FEWSHOT_5_NEG, "-o", str(tmp_path / out), *extra])
        except SystemExit as exc:
            return exc.code
        return 0

    assert mss_eval(tiny_weights, "a") == 0
    first = ev.load_cases(tmp_path / "a")
    assert {c.method for c in first} == {ev.FEWSHOT_5, ev.FEWSHOT_5_NEG}
    assert mss_eval(other, "b", "--against", str(tmp_path / "a")) == 0
    md = (tmp_path / "b" / "evaluation.md").read_text()
    assert "## By target class" in md and f"| group | class | episodes | {ev.FEWSHOT_5} | {ev.FEWSHOT_5_NEG} |" in md
    label = str(tmp_path / "a")
    second = ev.load_cases(tmp_path / "b" / "evaluation.jsonl")
    for group in {c.group for c in second}:
        diffs = [b.sdri - a.sdri for a, b in zip(first, second) if a.group == group and a.method == ev.FEWSHOT_5]
        assert (f"{group}, {ev.FEWSHOT_5} (this run) vs {ev.FEWSHOT_5} ({label}), on all {len(diffs)} episodes:" in md
                and f"paired difference {np.median(diffs):+.2f} dB (median)" in md)
    capsys.readouterr()
    moved = [ev.Case(**{**c.__dict__, "target_class": "nothing"}) for c in first]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "evaluation.jsonl").write_text("".join(json.dumps(c.__dict__) + "\n" for c in moved))
    assert mss_eval(other, "d", "--against", str(tmp_path / "c")) == 2
    err = capsys.readouterr().err
    assert "its episodes are not this run's" in err and "results are saved" in err
    # The run's own results are kept (they took the evaluation's minutes), without the comparison.
    assert len(ev.load_cases(tmp_path / "d")) == len(first)
    assert "## Against" not in (tmp_path / "d" / "evaluation.md").read_text()
    (tmp_path / "e.jsonl").write_text("not json\n")
    assert mss_eval(other, "f", "--against", str(tmp_path / "e.jsonl")) == 2  # refused before the slow part
    assert "not an evaluation.jsonl of mss eval" in capsys.readouterr().err
    assert mss_eval(other, "g", "--method", "few-shot, 7 positives") == 2
    assert "no method 'few-shot, 7 positives' here" in capsys.readouterr().err


def test_group_episodes_skips_a_group_the_data_cannot_serve(tiny_dataset, monkeypatch):
    notes: list[str] = []
    monkeypatch.setitem(ev.GROUPS, "empty split", ("test", "all"))  # the tiny render has no test split
    served = dict(ev.group_episodes(tiny_dataset, 2, 1, notes.append))
    assert "empty split" not in served and any(n.startswith("skipping empty split:") for n in notes)
    assert "seen" in served and all(len(eps) == 2 for eps in served.values())
    assert len(served) + len(notes) == len(ev.GROUPS)
