"""The paper's evaluation (mss-research eval): the method table on a tiny dataset, the NMF baseline,
the class-conditioned baseline's coverage, runs paired with earlier ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tone

from mss_cli.errors import UsageError
from mss_cli.evaluate import bss_sdr
from mss_cli.nmf import ODDS_SHARE
from mss_cli.report import Case, table
from mss_cli.weights import load_model
from mss_research import paper_eval as pe
from mss_research import report
from mss_research.cli import main


@pytest.mark.slow
def test_methods_table_on_a_tiny_dataset(tmp_path, tiny_dataset, tiny_weights, tiny_classcond_weights):
    model = load_model(tiny_weights)
    cases = pe.evaluate(
        tiny_dataset, model, load_model(tiny_classcond_weights), episodes=2, seed=1, progress=lambda m: None
    )
    methods = {c.method for c in cases}
    assert {
        "mixture (floor)",
        "oracle IRM (ceiling)",
        "NMF from 5 examples",
        "few-shot, 10 positives",
        "few-shot, 5 positives + 5 negatives",
    } <= methods
    # The averaged methods run where the baseline does: on the episodes of its trained classes.
    covered = {(c.group, c.episode) for c in cases if c.method == pe.BASELINE}
    assert covered
    for averaged in (pe.FEWSHOT_5 + pe.AVERAGED, pe.FEWSHOT_5_SUPPRESSED + pe.AVERAGED):
        assert {(c.group, c.episode) for c in cases if c.method == averaged} == covered
    floor = [c for c in cases if c.method == "mixture (floor)"]
    assert all(c.sdri == 0 for c in floor)
    irm = [c for c in cases if c.method.startswith("oracle")]
    assert np.median([c.sdri for c in irm]) > 3  # the ideal mask is a real ceiling
    md = report.save(cases, tmp_path, "test", comparisons=pe.COMPARISONS)
    assert "| few-shot, 5 positives |" in md and (tmp_path / "evaluation.png").stat().st_size > 1000


def test_the_default_method_mixes_nmf_in_as_mss_separate_does(tiny_dataset, tiny_weights, monkeypatch):
    """``NMF_DEFAULT`` follows ``mss_cli.nmf.nmf_join``: with no join elsewhere (conftest), the
    network alone where the clips do not sound alike, and where they do, what ``--nmf`` gives too
    (half NMF); with the product's log-odds join elsewhere, NMF joins in there too."""
    from mss_cli import nmf

    model = load_model(tiny_weights)
    (episode,) = pe.episodes_for(tiny_dataset, "seen", 1, 1)

    def run(nmf_mode):
        return pe.fewshot(model, episode, 5, 5, suppressed=True, nmf=nmf_mode)

    monkeypatch.setattr(nmf, "ALIKE", 1.0)  # nothing sounds alike
    np.testing.assert_array_equal(run(None), run(False))
    assert not np.array_equal(run(True), run(False))
    monkeypatch.setattr(nmf, "ALIKE", -1.0)  # everything sounds alike
    np.testing.assert_array_equal(run(None), run(True))
    assert not np.array_equal(run(None), run(False))
    monkeypatch.setattr(nmf, "ALIKE", 1.0)
    monkeypatch.setattr(nmf, "ODDS_SHARE", ODDS_SHARE)  # the product's join where nothing sounds alike
    default, forced, alone = run(None), run(True), run(False)
    assert not np.array_equal(default, alone) and not np.array_equal(default, forced)


def test_nmf_baseline_recovers_a_tone_from_its_examples():
    from mss_research.data.episodes import Episode

    target = tone(3.0, freq=220, channels=1)[:, 0]
    other = tone(3.0, freq=1550, channels=1, seed=3)[:, 0]
    clips = np.stack([tone(2.0, freq=220, channels=1, seed=s)[:, 0] for s in range(5)])
    e = Episode(target + other, target, clips, np.zeros((0, 1), np.float32), "x", 0, "w", [], [], ["x"])
    est = pe.nmf_baseline(e)
    assert bss_sdr(target, est) > bss_sdr(target, e.mixture) + 6


def test_class_conditioned_baseline_skips_classes_it_was_not_trained_on(tiny_classcond_weights):
    """Its table has rows for the unseen classes too, but untrained ones: those episodes are skipped,
    never separated with a random vector."""
    from mss_research.data.episodes import Episode

    model = load_model(tiny_classcond_weights)
    mix = tone(2.0, channels=1)[:, 0]

    def episode(cls: str) -> Episode:
        return Episode(mix, mix, np.zeros((0, 1), np.float32), np.zeros((0, 1), np.float32), cls, 0, "w", [], [], [cls])

    assert "viola" in model.config.class_names and "viola" not in pe.trained_classes(model)
    assert pe.classcond(model, episode("viola")) is None
    est = pe.classcond(model, episode("bass"))
    assert est.shape == mix.shape and np.isfinite(est).all()


def test_chosen_methods_and_a_run_paired_with_an_earlier_one(tmp_path, tiny_dataset, tiny_weights, capsys):
    """--method runs only the named methods; --against pairs them with an earlier run's on the same
    episodes (two weights files compared), and refuses a run whose episodes differ (after saving its
    own results)."""
    from conftest import build_tiny_weights

    other = build_tiny_weights(tmp_path / "other.safetensors", seed=1)

    def mss_eval(weights, out: str, *extra: str) -> int:
        try:
            main(
                [
                    "eval",
                    "--data",
                    str(tiny_dataset),
                    "--weights",
                    str(weights),
                    "--episodes",
                    "2",
                    "--seed",
                    "1",
                    "--method",
                    pe.FEWSHOT_5,
                    "--method",
                    pe.FEWSHOT_5_NEG,
                    "-o",
                    str(tmp_path / out),
                    *extra,
                ]
            )
        except SystemExit as exc:
            return exc.code
        return 0

    assert mss_eval(tiny_weights, "a") == 0
    first = report.load_cases(tmp_path / "a")
    assert {c.method for c in first} == {pe.FEWSHOT_5, pe.FEWSHOT_5_NEG}
    assert mss_eval(other, "b", "--against", str(tmp_path / "a")) == 0
    md = (tmp_path / "b" / "evaluation.md").read_text()
    assert "## By target class" in md and f"| group | class | episodes | {pe.FEWSHOT_5} | {pe.FEWSHOT_5_NEG} |" in md
    label = str(tmp_path / "a")
    second = report.load_cases(tmp_path / "b" / "evaluation.jsonl")
    for group in {c.group for c in second}:
        diffs = [b.sdri - a.sdri for a, b in zip(first, second) if a.group == group and a.method == pe.FEWSHOT_5]
        assert (
            f"{group}, {pe.FEWSHOT_5} (this run) vs {pe.FEWSHOT_5} ({label}), on all {len(diffs)} episodes:" in md
            and f"paired difference {np.median(diffs):+.2f} dB (median)" in md
        )
    capsys.readouterr()
    moved = [Case(**{**c.__dict__, "target_class": "nothing"}) for c in first]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "evaluation.jsonl").write_text("".join(json.dumps(c.__dict__) + "\n" for c in moved))
    assert mss_eval(other, "d", "--against", str(tmp_path / "c")) == 2
    err = capsys.readouterr().err
    assert "its episodes are not this run's" in err and "results are saved" in err
    # The run's own results are kept (they took the evaluation's minutes), without the comparison.
    assert len(report.load_cases(tmp_path / "d")) == len(first)
    assert "## Against" not in (tmp_path / "d" / "evaluation.md").read_text()
    (tmp_path / "e.jsonl").write_text("not json\n")
    assert mss_eval(other, "f", "--against", str(tmp_path / "e.jsonl")) == 2  # refused before the slow part
    assert "not an evaluation.jsonl of mss eval" in capsys.readouterr().err
    assert mss_eval(other, "g", "--method", "few-shot, 7 positives") == 2
    assert "no method 'few-shot, 7 positives' here" in capsys.readouterr().err


def test_group_episodes_skips_a_group_the_data_cannot_serve(tiny_dataset, monkeypatch):
    notes: list[str] = []
    monkeypatch.setitem(pe.GROUPS, "empty split", ("data", "test", "all"))  # the tiny render has no test split
    served = dict(pe.group_episodes(tiny_dataset, 2, 1, notes.append))
    assert "empty split" not in served and any(n.startswith("skipping empty split:") for n in notes)
    assert "seen" in served and all(len(eps) == 2 for eps in served.values())
    assert len(served) + len(notes) == len(pe.GROUPS)


def test_groups_can_be_chosen_and_keep_their_episodes(tiny_dataset, tiny_real_dataset):
    """--group runs the named groups only, with the same episodes as a run of every group."""
    every = dict(pe.group_episodes(tiny_dataset, 2, 1, lambda _: None, tiny_real_dataset))
    chosen = dict(pe.group_episodes(tiny_dataset, 2, 1, lambda _: None, tiny_real_dataset, groups=[pe.REAL]))
    assert list(chosen) == [pe.REAL]
    assert [e.work for e in chosen[pe.REAL]] == [e.work for e in every[pe.REAL]]
    assert np.array_equal(chosen[pe.REAL][0].mixture, every[pe.REAL][0].mixture)
    with pytest.raises(UsageError, match="no group 'loud'"):
        list(pe.group_episodes(tiny_dataset, 2, 1, groups=["loud"]))


def test_real_instrument_groups_draw_from_every_instrument_dataset(tmp_path, tiny_dataset):
    """The real-instrument group draws targets from all --instruments datasets (recordings and
    held-out renders), the guitar group only guitars; a song's backing (drums) is never a target;
    without --instruments both are skipped with a note."""
    from conftest import tone

    from mss_research.data.realstems import write_stems

    parts = {"a": ("violin", "cello", "drums"), "b": ("acoustic_guitar", "piano", "drums")}
    for name, classes in parts.items():
        for song in range(3):
            stems = {
                cls: (tone(4.0, freq=110.0 * (i + 2) * (1 + 0.03 * song), seed=song * 7 + i) * 8000).astype(np.int16)
                for i, cls in enumerate(classes)
            }
            write_stems(tmp_path / name, f"{name}-{song}", stems, "tones", "real")
    notes: list[str] = []
    served = dict(
        pe.group_episodes(
            tiny_dataset,
            12,
            1,
            notes.append,
            groups=[pe.INSTRUMENTS, pe.GUITAR],
            instruments=[tmp_path / "a", tmp_path / "b"],
        )
    )
    targets = {e.target_class for e in served[pe.INSTRUMENTS]}
    assert targets <= {"violin", "cello", "acoustic_guitar", "piano"} and len(targets) >= 3
    assert {e.work[0] for e in served[pe.INSTRUMENTS]} == {"a", "b"}
    assert {e.target_class for e in served[pe.GUITAR]} == {"acoustic_guitar"}
    for e in served[pe.INSTRUMENTS] + served[pe.GUITAR]:
        assert e.work not in e.positive_works
    skipped = dict(pe.group_episodes(tiny_dataset, 2, 1, notes.append, groups=[pe.INSTRUMENTS]))
    assert not skipped and notes[-1] == f"skipping {pe.INSTRUMENTS}: no dataset given (--instruments)"


def test_per_class_pairing_compares_the_same_episodes_class_by_class():
    from mss_cli.report import Case
    from mss_research.probes.classes_paired import per_class

    def case(episode: int, method: str, cls: str, sdri: float) -> Case:
        return Case("g", episode, method, cls, sdri, sdri, sdri)

    ours = [
        case(0, "m", "sax", 5.0),
        case(1, "m", "sax", 1.0),
        case(2, "m", "cello", 2.0),
        case(2, "nmf", "cello", 3.0),
    ]
    ours += [case(0, "nmf", "sax", 4.0), case(1, "nmf", "sax", 3.0)]
    assert per_class(ours, ours, "m", "nmf") == [("g", "cello", 1, -1.0, 0), ("g", "sax", 2, -0.5, 1)]
    earlier = [case(0, "m", "sax", 0.0), case(1, "m", "flute", 0.0)]  # episode 1 is another target there
    with pytest.raises(SystemExit, match="not the same episodes"):
        per_class(ours, earlier, "m", "m")


FEWSHOT_5 = "few-shot, 5 positives"
FEWSHOT_5_NEG = "few-shot, 5 positives + 5 negatives"
BASELINE = "class-conditioned baseline"


def test_baseline_is_compared_on_the_episodes_it_covers():
    """The class-conditioned baseline skips unseen classes; the table compares it on its episodes
    only, as a paired difference; negatives are compared with no negatives the same way."""
    few = [Case("g", i, FEWSHOT_5, "bass", 0.0, 0.0, sdri) for i, sdri in enumerate([1.0, 2.0, 9.0, 9.0])]
    base = [Case("g", i, BASELINE, "bass", 0.0, 0.0, sdri) for i, sdri in enumerate([3.0, 5.0])]
    neg = [Case("g", i, FEWSHOT_5_NEG, "bass", 0.0, 0.0, sdri) for i, sdri in enumerate([1.5, 1.0, 9.5, 10.0])]
    md = table(
        few + base + neg, report.comparison_notes(few + base + neg, [(BASELINE, FEWSHOT_5), (FEWSHOT_5_NEG, FEWSHOT_5)])
    )
    assert (
        "g, class-conditioned baseline vs few-shot, 5 positives, on the 2 of 4 episodes it covers: "
        "median SDRi +4.00 vs +1.50 dB; paired difference +2.50 dB (median), "
        "class-conditioned baseline better in 2 of 2."
    ) in md
    assert "on all 4 episodes: median SDRi +5.50 vs +5.50 dB; paired difference +0.50 dB (median)" in md
    assert "few-shot, 5 positives + 5 negatives better in 3 of 4" in md
    assert report.paired_note(few, "g", BASELINE, FEWSHOT_5) == ""


def test_paired_over_every_group_and_in_any_metric():
    """Episodes are numbered within a group, so pooling the groups pairs by (group, episode); the
    table and --against add that pooled line where there are several groups; SI-SDR pairs alike."""
    few = [
        Case(g, i, FEWSHOT_5, "bass", 0.0, si, sdri)
        for g, i, si, sdri in [("a", 0, 1.0, 1.0), ("a", 1, 1.0, 2.0), ("b", 0, 1.0, 3.0)]
    ]
    neg = [
        Case(g, i, FEWSHOT_5_NEG, "bass", 0.0, si, sdri)
        for g, i, si, sdri in [("a", 0, 0.0, 2.0), ("a", 1, 4.0, 2.5), ("b", 0, 3.0, 2.0)]
    ]
    ours, theirs = report.paired(few + neg, None, FEWSHOT_5_NEG, FEWSHOT_5)
    assert list(ours - theirs) == [1.0, 0.5, -1.0]
    assert report.paired_note(few + neg, None, FEWSHOT_5_NEG, FEWSHOT_5, "si_sdr") == (
        f"all groups, {FEWSHOT_5_NEG} vs {FEWSHOT_5}, on all 3 episodes: median SI-SDR +3.00 vs +1.00 dB; "
        f"paired difference +2.00 dB (median), {FEWSHOT_5_NEG} better in 2 of 3."
    )
    assert (
        f"- all groups, {FEWSHOT_5_NEG} vs {FEWSHOT_5}, on all 3 episodes: median SDRi +2.00 vs +2.00 dB; "
        "paired difference +0.50 dB (median)"
        in table(few + neg, report.comparison_notes(few + neg, [(FEWSHOT_5_NEG, FEWSHOT_5)]))
    )
    assert (
        "- all groups, few-shot, 5 positives (this run) vs few-shot, 5 positives (earlier), on all 3 episodes"
        in report.against(few, few, "earlier")
    )
