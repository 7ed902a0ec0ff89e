"""NMF from the example clips, mixed into the network's mask (``mss_cli.nmf``, ``--nmf/--no-nmf``)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_mss as run
from safetensors.torch import load_file, save_file

from mss_cli import nmf
from mss_cli.api import Separator
from mss_cli.conditioning import Conditioning, clip_likeness, load_profile, save_profile
from mss_cli.engine import make_separator
from mss_cli.errors import UsageError
from mss_cli.nmf import (
    ALIKE,
    ALIKE_SHARE,
    NMF_ODDS_SHARE,
    ODDS_SHARE,
    ClipBases,
    clip_magnitudes,
    kl_nmf,
    learn_bases,
    mix_masks,
    nmf_join,
    nmf_mask,
)
from mss_cli.targets import Target, TargetSpec
from mss_cli.weights import load_model, read_metadata


def sine(freq: float, seconds: float = 1.0, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_fixed_bases_stay_and_free_ones_explain_the_rest():
    gen = torch.Generator().manual_seed(0)
    w_true = torch.rand(40, 3, generator=gen, dtype=torch.float64)
    v = w_true @ torch.rand(3, 50, generator=gen, dtype=torch.float64)
    fixed = w_true[:, :2] / w_true[:, :2].sum(0)
    w, h = kl_nmf(v, fixed, free=1, iters=300)
    assert torch.equal(w[:, :2], fixed)
    assert float((w @ h - v).abs().sum() / v.sum()) < 0.05  # the third source is learned


def test_the_nmf_mask_keeps_the_clips_partials_and_leaves_the_others(tiny_weights):
    model = load_model(tiny_weights)
    bases = ClipBases(
        learn_bases(clip_magnitudes(model, [sine(440.0)])), learn_bases(clip_magnitudes(model, [sine(1320.0)])), 0.0
    )
    spec = model.spectrogram.stft(torch.from_numpy(sine(440.0) + sine(1320.0))[None])
    mask = nmf_mask(spec.abs(), bases)
    bin_of = {f: round(f * model.config.n_fft / model.config.sample_rate) for f in (440.0, 1320.0)}
    assert mask.shape == spec.shape and float(mask.min()) >= 0 and float(mask.max()) <= 1 + 1e-6
    assert float(mask[0, bin_of[440.0]].mean()) > 0.9 and float(mask[0, bin_of[1320.0]].mean()) < 0.1


def test_the_share_mixes_the_two_masks(tiny_weights):
    """Share 1 is the network alone, bit for bit; share 0 is NMF's mask alone; between, the sum."""
    model = load_model(tiny_weights)
    rows = torch.from_numpy(sine(440.0) + sine(1320.0))[None]
    cond = Conditioning(torch.randn(model.config.cond_dim), model.model_id, [], [])
    learned = learn_bases(clip_magnitudes(model, [sine(440.0)])), learn_bases(clip_magnitudes(model, [sine(1320.0)]))

    def separated(share: float | None) -> torch.Tensor:
        bases = None if share is None else ClipBases(*learned, share)
        return make_separator([Target("t", model, replace(cond, bases=bases))])(rows)[0, 0]

    alone, nmf_alone, half = separated(None), separated(0.0), separated(0.5)
    assert torch.equal(separated(1.0), alone)
    torch.testing.assert_close(half, (alone + nmf_alone) / 2, atol=1e-5, rtol=0)
    spec = model.spectrogram.stft(rows)
    mask = nmf_mask(spec.abs(), ClipBases(*learned, 0.0), model.config.bins)
    expected = model.apply_mask(spec, mask, rows.shape[-1])[0]
    torch.testing.assert_close(nmf_alone, expected, atol=1e-5, rtol=0)


def test_nmf_on_the_modelled_bins_extends_its_mask_as_the_network_does(tiny_weights):
    """Fitted on the lowest ``bins``, the mask there is what NMF of those bins alone gives, and
    above it is the mean of the top sixteenth, as ``ConditionedUNet.mask`` extends its own."""
    model = load_model(tiny_weights)
    bins = model.config.bins
    bases = ClipBases(
        learn_bases(clip_magnitudes(model, [sine(440.0)])), learn_bases(clip_magnitudes(model, [sine(1320.0)])), 0.0
    )
    magnitude = model.spectrogram.stft(torch.from_numpy(sine(440.0) + sine(1320.0))[None]).abs()
    mask = nmf_mask(magnitude, bases, bins)
    low = ClipBases(bases.target[:bins], bases.other[:bins], 0.0)
    assert mask.shape == magnitude.shape
    torch.testing.assert_close(mask[:, :bins], nmf_mask(magnitude[:, :bins], low))
    top = mask[:, bins - bins // 16 : bins].mean(1, keepdim=True)
    torch.testing.assert_close(mask[:, bins:], top.expand(-1, magnitude.shape[1] - bins, -1))


def test_nmf_joins_as_a_mean_where_the_clips_sound_alike_and_in_log_odds_elsewhere(monkeypatch):
    """Where the encoder hears the clips alike, half each of the masks (by default and with --nmf);
    elsewhere a small share of the log-odds, more of it with --nmf; --no-nmf nowhere; nothing
    without --not clips to learn unwanted bases from."""
    monkeypatch.setattr(nmf, "ALIKE", ALIKE)  # the product's joins (conftest pins them shut)
    monkeypatch.setattr(nmf, "ODDS_SHARE", ODDS_SHARE)
    assert nmf_join(None, ALIKE + 0.1) == (ALIKE_SHARE, False) == nmf_join(True, ALIKE + 0.1)
    assert nmf_join(None, ALIKE - 0.1) == (ODDS_SHARE, True)
    assert nmf_join(True, ALIKE - 0.1) == (NMF_ODDS_SHARE, True)
    assert nmf_join(False, 1.0) is None and nmf_join(None, None) is None
    assert ALIKE_SHARE < NMF_ODDS_SHARE < ODDS_SHARE < 1


def test_a_log_odds_join_keeps_what_either_mask_is_sure_of():
    """A mean of the masks lets NMF's share through where the network shuts a bin; a mean of their
    log-odds keeps it nearly shut, and where the network is unsure (0.5) NMF decides."""
    network = torch.tensor([[[1e-6, 0.5, 1.0 - 1e-6]]])
    theirs = torch.tensor([[[0.9, 0.9, 0.1]]])
    bases = ClipBases(torch.ones(1, 1), torch.ones(1, 1), 0.85)
    mean = mix_masks(network, theirs, bases)
    odds = mix_masks(network, theirs, replace(bases, odds=True))
    torch.testing.assert_close(mean, 0.85 * network + 0.15 * theirs)
    assert odds[0, 0, 0] < 1e-3 < mean[0, 0, 0] and odds[0, 0, 2] > 0.99 > mean[0, 0, 2]
    assert 0.5 < odds[0, 0, 1] < 0.9
    torch.testing.assert_close(mix_masks(network, network, replace(bases, odds=True)), network.clamp(1e-4, 1 - 1e-4))


def test_likeness_is_the_cosine_of_the_clips_mean_embeddings():
    pos = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert clip_likeness(pos, torch.tensor([[2.0, 0.0]])) == pytest.approx(1.0)
    assert clip_likeness(pos, torch.tensor([[0.0, 1.0], [0.0, 3.0]])) == pytest.approx(0.0)
    assert clip_likeness(pos, torch.tensor([[-1.0, 0.0]])) == pytest.approx(-1.0)


def test_nmf_from_the_clips_in_the_cli_the_api_and_profiles(capsys, workdir, tiny_weights, monkeypatch):
    w = ("--weights", str(tiny_weights), "--quiet")
    code, _, err = run(capsys, "separate", "song.wav", "--like", "like_1.wav", "--nmf", *w)
    assert code == 2 and "needs like clips and not_ clips" in err
    code, _, err = run(capsys, "separate", "song.wav", "--class", "drums", "--nmf", *w)
    assert code == 2 and "--nmf goes with --like or --target clips" in err
    like = ("--like", "like_1.wav", "--like", "like_2.flac", "--not", "not_1.wav")
    # no clips sound alike, and the default leaves the network's mask alone elsewhere (conftest)
    for flag, share, join in (("--nmf", 1 - NMF_ODDS_SHARE, "odds"), (None, None, None), ("--no-nmf", None, None)):
        assert run(capsys, "embed", *like, *filter(None, [flag]), "-o", f"p{flag}", *w)[0] == 0
        shown = json.loads(run(capsys, "profiles", "show", f"p{flag}", "--json")[1])
        assert (shown["nmf"], shown["nmf_join"]) == (pytest.approx(share), join)
    monkeypatch.setattr(nmf, "ODDS_SHARE", ODDS_SHARE)  # the product's default: log-odds elsewhere
    code, out, _ = run(capsys, "separate", "song.wav", *like, "-o", "odds", "--json", *w)
    assert code == 0
    joins = {r["stem"]: (r["nmf"], r["nmf_join"]) for r in map(json.loads, out.splitlines())}
    assert joins == {"like": (round(1 - ODDS_SHARE, 3), "odds"), "no_like": (None, None)}
    monkeypatch.setattr(nmf, "ALIKE", -1.0)  # every clip sounds alike: half of each mask
    code, out, _ = run(capsys, "separate", "song.wav", *like, "-o", "out", "--json", *w)
    assert code == 0
    joins = {r["stem"]: (r["nmf"], r["nmf_join"]) for r in map(json.loads, out.splitlines())}
    assert joins == {"like": (1 - ALIKE_SHARE, "mean"), "no_like": (None, None)}
    assert run(capsys, "embed", *like, "-o", "mixed", *w)[0] == 0
    # the profile says NMF's share and join as mss separate --json does
    shown = json.loads(run(capsys, "profiles", "show", "mixed", "--json")[1])
    assert (shown["nmf"], shown["nmf_join"]) == joins["like"]
    assert run(capsys, "separate", "song.wav", "--profile", "mixed", "-o", "again", *w)[0] == 0
    # a profile separates as its clips did (stems named after the clips, then after the profile)
    for stem, again in (("like.wav", "mixed.wav"), ("no_like.wav", "no_mixed.wav")):
        np.testing.assert_array_equal(sf.read(f"out/song/{stem}")[0], sf.read(f"again/song/{again}")[0])
    # --no-nmf leaves a profile's bases unused: as the clips separate without NMF
    assert run(capsys, "separate", "song.wav", *like, "--no-nmf", "-o", "plain", *w)[0] == 0
    assert run(capsys, "separate", "song.wav", "--profile", "mixed", "--no-nmf", "-o", "unmixed", *w)[0] == 0
    plain, unmixed = sf.read("plain/song/like.wav")[0], sf.read("unmixed/song/mixed.wav")[0]
    np.testing.assert_array_equal(plain, unmixed)
    assert not np.array_equal(plain, sf.read("out/song/like.wav")[0])
    with pytest.raises(UsageError, match="needs like clips and not_ clips"):
        TargetSpec(like=("like_1.wav",), nmf=True)
    separator = Separator(tiny_weights, device="cpu")
    separator.add("strings", like=[sine(440.0), sine(440.0) * 0.5], not_=[sine(1320.0)], sample_rate=44100)
    separator.add("alone", like=[sine(440.0)], sample_rate=44100)  # no --not: nothing to learn from
    assert "strings: 2 example(s), 1 negative(s) (suppressed), NMF joined in (50%)" in separator.describe()
    assert "alone: 1 example(s); " in separator.describe() + "; "
    mix = sine(440.0) + sine(1320.0)
    stems = separator.separate(mix, 44100)
    assert set(stems) == {"strings", "alone", "other"}
    np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-4)


def test_a_profile_with_bases_that_do_not_fit_is_refused(workdir, tiny_weights):
    model = load_model(tiny_weights)
    bins = model.config.n_fft // 2 + 1
    vector = torch.zeros(model.config.cond_dim)
    good = ClipBases(torch.rand(bins, 4), torch.rand(bins, 4), 0.5)
    path = save_profile(
        Conditioning(vector, model.model_id, ["a.wav"], ["b.wav"], bases=good), workdir / "p.safetensors"
    )
    loaded = load_profile(path, model).bases
    assert loaded is not None and loaded.share == 0.5 and torch.equal(loaded.target, good.target)
    assert not loaded.odds
    odds = replace(good, share=0.85, odds=True)
    path = save_profile(Conditioning(vector, model.model_id, [], [], bases=odds), workdir / "o.safetensors")
    assert load_profile(path, model).bases.odds
    tensors, meta = load_file(path), read_metadata(path)
    for join, odds in ((None, False), ("max", None)):  # a profile that does not say how holds a mean
        meta = {k: v for k, v in meta.items() if k != "nmf_join"} | ({} if join is None else {"nmf_join": join})
        save_file(tensors, str(path), meta)
        if odds is None:
            with pytest.raises(UsageError, match="nmf_join 'max' is not mean or odds"):
                load_profile(path, model)
        else:
            assert load_profile(path, model).bases.odds is odds
    bad = ClipBases(torch.rand(bins - 1, 4), torch.rand(bins, 4), 0.5)
    path = save_profile(Conditioning(vector, model.model_id, [], [], bases=bad), workdir / "q.safetensors")
    with pytest.raises(UsageError, match="NMF bases or share that do not fit"):
        load_profile(path, model)
