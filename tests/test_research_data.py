"""Data synthesis: rendered stems, manifest, mixture alignment and the episode sampler's guarantees."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from mss_research.data.episodes import EpisodeSampler, collate
from mss_research.data.render import DATASET_FILE, build, dataset_taxonomy_version, plan, read_manifest
from mss_research.data.scores import pop_arrangement
from mss_research.data.taxonomy import load_taxonomy


def test_taxonomy_holds_out_a_quarter_of_the_classes_across_families():
    """A quarter of version 1's classes; later versions add training classes only, so that the
    evaluation's unseen group stays the same set and results stay comparable across versions."""
    tax = load_taxonomy()
    assert len(tax.unseen) >= len(load_taxonomy(1).classes) / 4
    unseen_families = {tax.get(c).family for c in tax.unseen}
    assert len(unseen_families) >= 4
    for c in tax.classes:
        assert c.low < c.high
        assert not c.recorded_only or not c.roles, "the arrangement generator must never pick a class it cannot render"
    assert [c.name for c in tax.classes if c.recorded_only] == ["vocals"]
    assert not set(tax.reserved_soundfonts) & set(tax.train_soundfonts)
    assert set(tax.redistributable_soundfonts) <= set(tax.train_soundfonts)


def test_taxonomy_versions_only_append_classes():
    """A later version keeps every earlier class at its id (the class-conditioned baseline's table
    rows), and version 1 is the 23 classes the shipped weights were trained on."""
    first, latest = load_taxonomy(1), load_taxonomy()
    assert len(first.classes) == 23 and latest.version > 1
    assert latest.classes[: len(first.classes)] == first.classes
    assert set(first.unseen) == set(latest.unseen)  # new classes widen training, not the held-out set
    with pytest.raises(ValueError):
        load_taxonomy(latest.version + 1)


def test_taxonomy_version_1_reproduces_the_shipped_dataset():
    """The model card's data command (--taxonomy-version 1) draws the same arrangements as the build
    the shipped weights were trained on: these are the classes its first works hold."""
    import random

    recorded = {
        "gen00000": ["drums", "bass", "mallets", "organ", "flute", "oboe"],
        "gen00001": ["drums", "bass", "mallets", "harp", "accordion", "clarinet"],
    }
    for work_id, classes in recorded.items():
        work = pop_arrangement(work_id, load_taxonomy(1), random.Random(f"0:{work_id}"))
        assert [s.instrument for s in work.stems] == classes


def test_a_dataset_keeps_its_taxonomy_version(tmp_path):
    from mss_cli.errors import UsageError

    assert dataset_taxonomy_version(tmp_path) is None
    (tmp_path / "works").mkdir()
    assert dataset_taxonomy_version(tmp_path) == 1  # built before versions were recorded
    with pytest.raises(UsageError, match="taxonomy version 1"):
        build(tmp_path, generated=0, corpus=0, jobs=1, progress=False)  # the latest: another version
    (tmp_path / DATASET_FILE).write_text(json.dumps({"taxonomy_version": 2}))
    assert dataset_taxonomy_version(tmp_path) == 2
    with pytest.raises(UsageError, match="does not exist"):
        build(tmp_path, generated=0, corpus=0, jobs=1, progress=False, taxonomy_version=99)


def test_a_resumed_build_keeps_its_record(tmp_path):
    build(tmp_path, generated=0, corpus=0, jobs=1, progress=False, taxonomy_version=1)
    record = tmp_path / DATASET_FILE
    assert json.loads(record.read_text()) == {"taxonomy_version": 1}
    record.write_text(json.dumps({"taxonomy_version": 1, "marker": "first build"}))
    build(tmp_path, generated=0, corpus=0, jobs=1, progress=False, taxonomy_version=1)
    assert json.loads(record.read_text())["marker"] == "first build"  # read, not rewritten


def test_generated_arrangements_are_deterministic_and_in_range():
    import random

    tax = load_taxonomy()
    a = pop_arrangement("w", tax, random.Random("s"))
    b = pop_arrangement("w", tax, random.Random("s"))
    assert [(s.instrument, len(s.notes)) for s in a.stems] == [(s.instrument, len(s.notes)) for s in b.stems]
    assert len({s.instrument for s in a.stems}) == len(a.stems)  # one stem per class
    for stem in a.stems:
        if stem.instrument != "drums":
            cls = tax.get(stem.instrument)
            assert all(cls.low <= n.pitch <= cls.high for n in stem.notes)


def test_splits_are_stable_and_disjoint():
    specs = plan(40, 0, seed=1, val_fraction=0.2, timbre=2, taxonomy_version=1)
    again = plan(60, 0, seed=1, val_fraction=0.2, timbre=2, taxonomy_version=1)
    split = {s.work_id: s.split for s in again}
    assert all(split[s.work_id] == s.split for s in specs if s.split != "timbre")
    later = plan(40, 0, seed=1, val_fraction=0.2, timbre=2, taxonomy_version=2)
    assert [s.split for s in later] == [s.split for s in specs]  # held-out works stay held out in every version
    assert {s.split for s in specs} == {"train", "val", "timbre"}


def test_rendered_stems_and_manifest(tiny_dataset):
    rows = read_manifest(tiny_dataset)
    lines = (tiny_dataset / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(l) for l in lines] == rows
    assert {"work", "class", "program", "soundfont", "split", "duration", "path"} <= set(rows[0])
    by_work: dict[str, list[dict]] = {}
    for r in rows:
        by_work.setdefault(r["work"], []).append(r)
    assert any(w.startswith("m21_") for w in by_work)
    assert any(r["split"] == "timbre" for r in rows)
    tax = load_taxonomy()
    for stems in by_work.values():
        audio = [np.load(tiny_dataset / r["path"]) for r in stems]
        assert len({a.shape for a in audio}) == 1 and audio[0].dtype == np.int16 and audio[0].shape[1] == 2
        mixture = np.sum([a.astype(np.float64) / 32768 for a in audio], axis=0)
        assert np.abs(mixture).max() < 1.0  # the mixture (sum of the stems) never clips
        assert all(np.abs(a).max() > 0 for a in audio)
        fonts = {r["soundfont"] for r in stems}
        reserved = {p.rsplit("/", 1)[-1] for p in tax.reserved_soundfonts}
        if stems[0]["split"] == "timbre":
            assert fonts <= reserved
        else:
            assert not fonts & reserved


def test_build_resumes_without_rerendering(tiny_dataset, tiny_dataset_plan):
    before = {p: p.stat().st_mtime_ns for p in (tiny_dataset / "stems").rglob("*.npy")}
    stats = build(tiny_dataset, **tiny_dataset_plan, jobs=1, progress=False)
    assert stats["rendered_stem_hours"] == 0
    assert {p: p.stat().st_mtime_ns for p in (tiny_dataset / "stems").rglob("*.npy")} == before


def test_episode_sampler_guarantees(tiny_dataset):
    tax = load_taxonomy()
    sampler = EpisodeSampler(tiny_dataset, "train", segment=44100, example=22050, seed=0)
    targets = Counter()
    for _ in range(40):
        e = sampler.sample()
        targets[e.target_class] += 1
        assert e.target_class in tax.seen  # unseen classes are never training targets
        assert e.work not in e.positive_works  # positives come from other works
        assert e.target_class not in e.negative_classes  # negatives are never the target class
        assert 1 <= len(e.positives) <= 5 and len(e.negatives) <= 5
        assert e.mixture.shape == e.target.shape == (44100,) and e.positives.shape[1] == 22050
        assert np.abs(e.mixture).max() <= 1.0
    assert len(targets) > 1
    batch = collate([sampler.sample() for _ in range(3)])
    assert batch["positives"].shape[0] == 3 and batch["positive_valid"].any(dim=1).all()
    fixed = sampler.sample(positives=2, negatives=0)
    assert len(fixed.positives) <= 2 and len(fixed.negatives) == 0


def test_unseen_classes_can_be_kept_out_of_training_mixtures(tiny_dataset):
    tax = load_taxonomy()

    def heard(hide: bool) -> set[str]:
        """Every class audible in 60 training mixtures."""
        samplers = [
            EpisodeSampler(tiny_dataset, "train", segment=44100, example=22050, seed=i, hide_unseen=hide)
            for i in range(60)
        ]
        return {c for s in samplers for c in s.sample().mixture_classes}

    if not heard(False) & set(tax.unseen):
        pytest.skip("this tiny dataset's training mixtures hold no unseen-class stem")
    assert not heard(True) & set(tax.unseen)


def test_unseen_split_for_evaluation(tiny_dataset):
    tax = load_taxonomy()
    try:
        sampler = EpisodeSampler(tiny_dataset, "train", segment=44100, example=22050, targets="unseen")
    except ValueError:
        pytest.skip("this tiny dataset has no unseen class in two works")
    for _ in range(5):
        assert sampler.sample().target_class in tax.unseen


def test_hydrogen_kits_play_gm_drum_parts():
    """Recorded Hydrogen kits (Debian hydrogen-drumkits) play the generated drum parts."""
    import os
    import random

    from mss_research.data.hydrogen import PREFIX, HydrogenKit, available_kits
    from mss_research.data.render import PartPlayer
    from mss_research.data.scores import drum_part

    kits = available_kits(load_taxonomy().hydrogen_drumkits)
    if not kits:
        message = "hydrogen-drumkits not installed (see .ci/apt-packages.txt)"
        if os.environ.get("MSS_REQUIRE_DATA_TESTS"):
            pytest.fail(message)
        pytest.skip(message)
    kit = HydrogenKit(kits[0][len(PREFIX) :], 44100)
    assert {36, 38, 42} <= set(kit.notes)  # kick, snare, closed hi-hat
    part = drum_part("rock", 2, 0.125, random.Random(0))
    audio = PartPlayer().render(part, kits[0], 0, 0, True)
    assert audio.shape == (int((max(n.start for n in part) + 1.5) * 44100), 2)
    assert np.abs(audio[:2205]).max() > 0.01  # the downbeat's kick and crash sound at once


@pytest.mark.slow
def test_a_work_renders_the_same_whatever_its_process_rendered_before(tiny_dataset, tiny_dataset_plan, tmp_path):
    """A stem is a function of its work alone: the same plan built by one process (every work
    after the others) gives the bytes that two processes gave. A FluidSynth reused across parts
    carries state (its 64-frame block grid, dither index, voices), so each part gets a new one
    (``PartPlayer.render``); before, evaluation data differed from build to build (medians moved by
    up to 1.8 dB)."""
    build(tmp_path, **tiny_dataset_plan, jobs=1, progress=False)
    ours = sorted(p.relative_to(tmp_path) for p in (tmp_path / "stems").rglob("*.npy"))
    assert ours == sorted(p.relative_to(tiny_dataset) for p in (tiny_dataset / "stems").rglob("*.npy"))
    for path in ours:
        assert (tmp_path / path).read_bytes() == (tiny_dataset / path).read_bytes(), path


def test_a_reused_synth_renders_as_a_fresh_one(tiny_dataset):
    """The unit behind the test above: a player that has played another part, of another length and
    preset, plays a part exactly as a new player does."""
    import random

    from mss_research.data.render import PartPlayer
    from mss_research.data.scores import Note

    font = load_taxonomy().train_soundfonts[0]
    rng = random.Random(0)
    part = [Note(rng.uniform(0, 1.0), 0.3, rng.randrange(50, 70), 90) for _ in range(12)]
    fresh = PartPlayer().render(part, font, 0, 0, False)
    player = PartPlayer()
    player.render([Note(0.0123, 0.5, 60, 80)], font, 0, 40, False)
    again = player.render(part, font, 0, 0, False)
    assert np.abs(fresh).max() > 0.01
    np.testing.assert_array_equal(again, fresh)


def test_several_folders_are_drawn_by_their_shares(tiny_dataset, tiny_real_dataset):
    """Synthetic renders and recorded stems in one sampler: each folder's share of targets holds,
    a mixture is one work's stems, and a real target's examples are mostly real (SAME_SOURCE)."""
    from mss_research.data.episodes import SAME_SOURCE

    real_works = {f"song-{i}" for i in range(3)}
    only_real = EpisodeSampler([tiny_dataset, tiny_real_dataset], "train", 44100, 22050, seed=3, shares=[0, 1])
    episodes = [only_real.sample(positives=3, negatives=2) for _ in range(60)]
    assert {e.work for e in episodes} <= real_works
    assert {e.target_class for e in episodes} == {"drums", "bass", "vocals"}  # "other" is never a target
    assert all(e.class_id == load_taxonomy().index(e.target_class) for e in episodes)
    clips = [w for e in episodes for w in e.positive_works]
    assert all(e.work not in e.positive_works for e in episodes)
    assert sum(w in real_works for w in clips) / len(clips) > SAME_SOURCE - 0.1
    assert any(w not in real_works for w in clips)  # and sometimes synthetic drums or bass
    mixed = EpisodeSampler([tiny_dataset, tiny_real_dataset], "train", 44100, 22050, seed=4, shares=[0.5, 0.5])
    share = np.mean([mixed.sample().work in real_works for _ in range(200)])
    assert 0.35 < share < 0.65
    with pytest.raises(ValueError, match="share"):
        EpisodeSampler([tiny_dataset, tiny_real_dataset], "train", 44100, 22050, shares=[1.0])


def test_balance_evens_out_the_target_classes():
    """--balance: a class comes up in proportion to its stem count to the power 1 - balance."""
    import random

    from mss_research.data.episodes import class_weights

    targets = [("w", {"class": "drums"})] * 90 + [("w", {"class": "cello"})] * 10
    rng = random.Random(0)
    for balance, cello in [(0.0, 0.1), (0.5, 10**0.5 / (90**0.5 + 10**0.5)), (1.0, 0.5)]:
        draws = rng.choices(targets, cum_weights=class_weights(targets, balance), k=20000)
        assert abs(sum(row["class"] == "cello" for _, row in draws) / len(draws) - cello) < 0.015


def test_a_balanced_sampler_draws_rare_classes_more_often(tiny_dataset):
    """The sampler's own draws follow --balance, and 0 keeps the draws an unbalanced sampler makes."""
    from collections import Counter

    def counts(sampler: EpisodeSampler) -> Counter:
        return Counter(sampler.sample(positives=1, negatives=0).target_class for _ in range(300))

    def balanced(balance: float) -> EpisodeSampler:
        return EpisodeSampler(tiny_dataset, "train", 44100, 22050, seed=2, balance=balance)

    plain, even = counts(balanced(0.0)), counts(balanced(1.0))
    assert plain == counts(EpisodeSampler(tiny_dataset, "train", 44100, 22050, seed=2))
    rarest = min(plain, key=plain.get)
    assert even[rarest] > plain[rarest]
    assert max(even.values()) - min(even.values()) < max(plain.values()) - min(plain.values())
    with pytest.raises(ValueError, match="balance"):
        EpisodeSampler(tiny_dataset, "train", 44100, 22050, balance=2.0)


def test_production_effects_change_rendered_stems_and_keep_their_level(tiny_dataset, tiny_real_dataset, monkeypatch):
    """--production: rendered stems and clips come through random effects chains at their own RMS;
    recorded stems never do (they are produced already)."""
    import random

    from mss_research.data import production

    x = np.random.default_rng(0).standard_normal(44100).astype(np.float32) * 0.1
    outs = [production.produce(x, "electric_guitar", random.Random(seed)) for seed in range(8)]
    assert all(o.shape == x.shape and o.dtype == np.float32 for o in outs)
    assert all(abs(np.sqrt(np.mean(o**2)) / np.sqrt(np.mean(x**2)) - 1) < 1e-3 for o in outs)
    assert sum(not np.allclose(o, x) for o in outs) >= 6  # (a chain may be empty)

    calls: list[str] = []
    real_produce = production.produce
    monkeypatch.setattr(production, "produce", lambda a, cls, rng: calls.append(cls) or real_produce(a, cls, rng))

    def episodes(root, share):
        sampler = EpisodeSampler(root, "train", 44100, 22050, seed=5, production=share)
        return [sampler.sample(positives=2, negatives=1) for _ in range(6)]

    episodes(tiny_dataset, 0.0)
    assert not calls
    produced = episodes(tiny_dataset, 1.0)
    # every mixture stem and every example clip: at least target + one other + 2 positives each
    assert len(calls) >= 4 * len(produced)
    assert {e.target_class for e in produced} <= set(calls)
    calls.clear()
    recorded = episodes(tiny_real_dataset, 1.0)
    assert not calls
    assert all(np.array_equal(a.mixture, b.mixture) for a, b in zip(recorded, episodes(tiny_real_dataset, 0.0)))
