"""The streaming engine and audio plumbing: overlap-add exactness, seams, memory, resampling, layouts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import build_tiny_weights, tone

from mss_cli.audio import Resampler
from mss_cli.conditioning import Conditioning, Partner, condition
from mss_cli.device import autocast_dtype
from mss_cli.engine import OverlapAdd
from mss_cli.errors import UsageError
from mss_cli.inputs import Naming, shard
from mss_cli.metrics import snr_db
from mss_cli.separate import SeparationOptions, separate_file
from mss_cli.targets import Target
from mss_cli.weights import load_model
from mss_research.probes import inputs_as_they_come


def blocks_of(x: np.ndarray, size: int = 4096):
    return (x[i : i + size] for i in range(0, len(x), size))


def run_engine(fn, x: np.ndarray, chunk: int, overlap: float, batch: int = 1, align: int = 1) -> np.ndarray:
    """One stem through the engine: ``fn`` maps rows to rows."""
    engine = OverlapAdd(lambda rows: fn(rows)[:, None], chunk, overlap, batch, align=align)
    return np.concatenate([block[:, 0] for block in engine.run(blocks_of(x), len(x))])


def one_target(model, cond: torch.Tensor, unwanted=None, partner=None, name: str = "t") -> Target:
    return Target(name, model, Conditioning(cond.reshape(-1), "", [], [], unwanted), partner)


def make_separator(model, cond, precision="auto", unwanted=None, shifts=1, level=None, partner=None):
    """``engine.make_separator`` for one target: rows -> that target's rows."""
    from mss_cli.engine import make_separator as separator_of

    run = separator_of([one_target(model, cond, unwanted, partner)], precision, shifts, level)
    return lambda rows: run(rows)[:, 0]


@pytest.mark.parametrize("frames", [1, 999, 1000, 1001, 7777])
@pytest.mark.parametrize(
    "chunk, overlap, batch, align",
    [(1000, 0.0, 1, 1), (1000, 0.25, 1, 1), (640, 0.5, 3, 64), (300, 0.75, 2, 1), (1000, 0.3, 2, 128)],
)
def test_overlap_add_reconstructs_a_pointwise_model_exactly(frames, chunk, overlap, batch, align):
    x = np.random.default_rng(frames).standard_normal((frames, 3)).astype(np.float32)
    y = run_engine(lambda rows: 0.5 * rows, x, chunk, overlap, batch, align)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, 0.5 * x, atol=1e-6)


@pytest.mark.parametrize("length", [2048, 5000, 44100, 130560])
def test_hop_aligned_istft_matches_torch_istft(length):
    from mss_cli.model import Spectrogram

    spectrogram = Spectrogram(2048, 512)
    x = torch.from_numpy(np.random.default_rng(length).standard_normal((3, length)).astype(np.float32))
    spec = spectrogram.stft(x)
    for n in (length, length - 100):
        ours = spectrogram.istft(spec, n)
        reference = torch.istft(spec, 2048, 512, window=spectrogram.window, center=True, length=n)
        assert ours.shape == reference.shape
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(spectrogram.istft(spec, length), x, atol=1e-5, rtol=0)  # perfect reconstruction


@pytest.mark.parametrize("negatives, shifts", [(0, 1), (2, 1), (0, 3), (2, 4)])
def test_chunked_output_matches_whole_track(tiny_weights, negatives, shifts):
    model = load_model(tiny_weights)
    cond = torch.randn(model.config.cond_dim)
    x = tone(20.0, freq=180) + tone(20.0, freq=610, seed=5)
    unwanted = torch.randn(negatives, model.config.cond_dim) if negatives else None
    fn = make_separator(model, cond, unwanted=unwanted, shifts=shifts)
    align = model.config.hop * model.config.frame_multiple
    whole = run_engine(fn, x, len(x) + 44100, 0.0, align=align)
    for chunk, overlap in ((2.0, 0.25), (5.0, 0.25), (5.0, 0.5)):
        chunked = run_engine(fn, x, int(chunk * 44100), overlap, align=align)
        assert snr_db(whole, chunked) > 30.0


def test_suppression_takes_each_negatives_mask_out_of_the_targets(tiny_weights):
    """What ``make_separator`` computes with suppression vectors, against the formula written out
    with the plain (unfused, unbound) model: target mask x sqrt(1 - the negatives' bin-wise maximum)."""
    model = load_model(tiny_weights, fuse=False).eval()
    cond, unwanted = torch.randn(1, model.config.cond_dim), torch.randn(3, model.config.cond_dim)
    x = torch.from_numpy(tone(2.0, freq=180, channels=1) + tone(2.0, freq=610, seed=5, channels=1)).reshape(1, -1)
    with torch.no_grad():
        spec, feats = model.features(x)
        target = model.mask(feats, cond)
        most = torch.stack([model.mask(feats, u[None]) for u in unwanted]).amax(0)
        expected = model.apply_mask(spec, target * (1 - most).sqrt(), x.shape[-1])
        plain = model.apply_mask(spec, target, x.shape[-1])
    got = make_separator(model, cond, "fp32", unwanted)(x)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert snr_db(plain[0].numpy(), got[0].numpy()) < 20.0  # the negatives did take something out
    # A negative that asks for what the target's vector asks for leaves the target mask x sqrt(1 - mask).
    same = make_separator(model, cond, "fp32", cond)(x)
    torch.testing.assert_close(
        same, model.apply_mask(spec, target * (1 - target).sqrt(), x.shape[-1]), atol=1e-4, rtol=0
    )


def test_a_partners_mask_is_averaged_with_the_models_after_its_suppression(tmp_path, tiny_weights):
    """A partner (``--with-class``): the target mask is the mean of the model's (its negatives
    taken out first) and the partner's, the partner seeing the track at its own
    training level; since the mask is applied linearly, the output is the mean of the separate outputs."""
    model = load_model(tiny_weights, fuse=False).eval()
    other = load_model(build_tiny_weights(tmp_path / "cc.safetensors", seed=3, kind="classcond"), fuse=False).eval()
    other.config.mixture_dbfs = -30.0  # another training level than the model's: the partner's own gain applies
    cond, unwanted, theirs = (torch.randn(n, model.config.cond_dim) for n in (1, 2, 1))
    x = torch.from_numpy(tone(2.0, freq=180, channels=1) + tone(2.0, freq=610, seed=5, channels=1)).reshape(1, -1)
    level = -12.0
    alone = make_separator(model, cond, "fp32", unwanted, level=level)(x)
    partner = make_separator(other, theirs, "fp32", level=level)(x)
    both = make_separator(model, cond, "fp32", unwanted, level=level, partner=Partner(other, theirs[0]))(x)
    torch.testing.assert_close(both, (alone + partner) / 2, atol=1e-4, rtol=0)
    assert snr_db(alone[0].numpy(), both[0].numpy()) < 30.0  # the partner did change the estimate
    tiny_other_grid = load_model(tiny_weights)
    tiny_other_grid.config.hop = 32
    with pytest.raises(UsageError, match="cannot be averaged"):
        make_separator(model, cond, partner=Partner(tiny_other_grid, theirs[0]))


def test_shifts_average_the_masks_of_delayed_passes(tiny_weights):
    """``shifts`` N: the mean of N masks, the i-th computed on the frames delayed by
    i * frame_multiple // N (zero frames in front, cropped after); 1 is the plain pass. The result
    differs from the plain pass (the delays do move the U-Net's stride grid) but not by much."""
    model = load_model(tiny_weights, fuse=False).eval()
    cond = torch.randn(1, model.config.cond_dim)
    x = torch.from_numpy(tone(2.0, freq=180, channels=1) + tone(2.0, freq=610, seed=5, channels=1)).reshape(1, -1)
    multiple = model.config.frame_multiple
    with torch.no_grad():
        spec, feats = model.features(x)
        frames = feats.shape[-1]
        plain = model.mask(feats, cond)
        delayed = []
        for delay in (0, multiple // 3, 2 * multiple // 3):
            padded = torch.nn.functional.pad(feats, (delay, 0))
            delayed.append(model.mask(padded, cond)[..., delay : delay + frames])
        expected = torch.stack(delayed).mean(0)
        torch.testing.assert_close(model.mask(feats, cond, 1), plain)
        torch.testing.assert_close(model.mask(feats, cond, 3), expected, atol=1e-6, rtol=0)
        assert 1e-3 < (expected - plain).abs().max() < 0.5
        want = model.apply_mask(spec, expected, x.shape[-1])
    torch.testing.assert_close(make_separator(model, cond, "fp32", shifts=3)(x), want, atol=1e-4, rtol=0)


def test_clips_of_one_instrument_share_a_suppression_pass(tmp_path, tiny_weights):
    from mss_cli.conditioning import similar_groups

    embeddings = torch.tensor([[1.0, 0, 0], [0.99, 0.1, 0], [0, 1.0, 0], [0, 0.98, 0.2], [0, 0, 1.0]])
    assert similar_groups(embeddings) == [[0, 1], [2, 3], [4]]
    assert similar_groups(embeddings, threshold=1.01) == [[0], [1], [2], [3], [4]]
    model = load_model(tiny_weights)
    sf.write(tmp_path / "like.wav", tone(1.5, channels=1), 44100)
    sf.write(tmp_path / "not.wav", tone(1.5, freq=97, channels=1, seed=3), 44100)
    cond = condition(model, [str(tmp_path / "like.wav")], [str(tmp_path / "not.wav")] * 3)
    assert cond.negatives == [str(tmp_path / "not.wav")] * 3
    assert cond.unwanted.shape == (1, model.config.cond_dim)  # the same clip three times: one pass


def test_resampling_round_trip_keeps_length_and_signal():
    t = np.arange(96000) / 48000  # band-limited content: what 44.1 kHz can carry survives the trip
    x = np.stack([np.sin(2 * np.pi * 1000 * t), 0.5 * np.sin(2 * np.pi * 7000 * t)], axis=1).astype(np.float32)
    down, up = Resampler(48000, 44100, 2), Resampler(44100, 48000, 2)
    mid = np.concatenate([down(b) for b in blocks_of(x, 3001)] + [down(x[:0], last=True)])
    assert len(mid) == round(len(x) * 44100 / 48000)
    back = np.concatenate([up(b) for b in blocks_of(mid, 2999)] + [up(mid[:0], last=True)])
    assert back.shape == x.shape
    edge = 2000  # the filters' edges
    assert snr_db(x[edge:-edge], back[edge:-edge]) > 60.0


@pytest.mark.parametrize("channels, rate", [(1, 44100), (2, 48000), (6, 22050)])
def test_channel_layouts_and_rates_are_kept(tmp_path, tiny_weights, channels, rate):
    model = load_model(tiny_weights)
    sf.write(tmp_path / "like.wav", tone(1.5, channels=1), 44100)
    cond = condition(model, [str(tmp_path / "like.wav")])
    src = tmp_path / "in.flac"
    sf.write(src, tone(2.5, rate=rate, channels=channels), rate)
    outputs = {"t": tmp_path / "t.wav", "no_t": tmp_path / "r.wav"}
    separate_file([Target("t", model, cond)], src, outputs, SeparationOptions(chunk_seconds=1.0, bit_depth="32f"))
    t, tr = sf.read(tmp_path / "t.wav", always_2d=True)
    r, _ = sf.read(tmp_path / "r.wav", always_2d=True)
    x, _ = sf.read(src, always_2d=True)
    assert tr == rate and t.shape == x.shape
    np.testing.assert_allclose(t + r, x, atol=1e-5)


def test_level_meter_gates_silence_and_matches_in_blocks():
    from mss_cli.level import at_level, gain_to, level_dbfs

    x = tone(4.0)
    rms_db = 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))
    assert level_dbfs(x, 44100) == pytest.approx(rms_db, abs=0.05)
    # A silent half (and a faint hiss) does not make the track look quieter; nor does reading it in blocks.
    padded = np.concatenate([np.zeros((4 * 44100, 2), np.float32), 1e-5 * x, x])
    assert level_dbfs(padded, 44100) == pytest.approx(rms_db, abs=0.05)
    assert level_dbfs(blocks_of(padded, 3001), 44100) == pytest.approx(level_dbfs(padded, 44100), abs=1e-9)
    assert level_dbfs(np.zeros((44100, 2), np.float32), 44100) is None
    assert gain_to(None, -20.0) == gain_to(-10.0, None) == 1.0
    assert level_dbfs(at_level(x[:, 0], -30.0, 44100), 44100) == pytest.approx(-30.0, abs=1e-3)


def test_separation_does_not_depend_on_the_input_level(tmp_path, tiny_weights):
    """A track and its example clip 18 dB louder give the same target, 18 dB louder: the network sees
    both at its training level (``mss_cli.level``), and the mask applies to the audio as it came."""
    model = load_model(tiny_weights)
    x = tone(3.0, freq=220) + tone(3.0, freq=330, seed=1)
    targets = []
    for gain in (1.0, 8.0):
        folder = tmp_path / str(gain)
        folder.mkdir()
        sf.write(folder / "like.wav", gain * tone(1.5, channels=1), 44100, subtype="FLOAT")
        sf.write(folder / "in.wav", gain * x, 44100, subtype="FLOAT")
        cond = condition(model, [str(folder / "like.wav")])
        options = SeparationOptions(chunk_seconds=1.0, bit_depth="32f")
        separate_file([Target("t", model, cond)], folder / "in.wav", {"t": folder / "t.wav"}, options)
        targets.append(sf.read(folder / "t.wav")[0] / gain)
    assert snr_db(targets[0], targets[1]) > 60.0
    # Without the levels the same model does depend on them: the test above is not vacuous.
    fn = make_separator(inputs_as_they_come(model), torch.randn(model.config.cond_dim))
    rows = torch.from_numpy(np.ascontiguousarray(x.T))
    assert snr_db(fn(rows).numpy(), fn(8 * rows).numpy() / 8) < 40.0


def test_long_examples_are_windowed_not_truncated(tmp_path, tiny_weights):
    from mss_cli.conditioning import clip_windows

    sf.write(tmp_path / "long.wav", tone(10.0, channels=2), 44100)
    windows = clip_windows(tmp_path / "long.wav", 44100)
    assert [len(w) for w in windows] == [3 * 44100] * 3 + [44100]
    model = load_model(tiny_weights)
    assert condition(model, [str(tmp_path / "long.wav")]).vector.shape == (model.config.cond_dim,)


def test_template_naming_and_shards():
    naming = Naming(Path("out"), "{parent}/{track}-{stem}.{ext}", "flac")
    assert naming.path("/music/album/01 song.mp3", "guitar") == Path("out/album/01 song-guitar.flac")
    assert naming.path("-", "target") == Path("out/stdin/stdin-target.flac")
    items = [f"f{i:02d}" for i in range(11)]
    parts = [shard(items, (i, 4)) for i in range(1, 5)]
    assert sorted(sum(parts, [])) == items and [len(p) for p in parts] == [3, 3, 3, 2]
    assert shard(items[::-1], (2, 4)) == parts[1]  # independent of argument order


PEAK_RSS = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import torch
    from mss_cli.weights import load_model
    from mss_cli.conditioning import Conditioning
    from mss_cli.separate import SeparationOptions, separate_file
    from mss_cli.targets import Target
    model = load_model(sys.argv[1])
    out = Path(sys.argv[3])
    target = Target("t", model, Conditioning(torch.zeros(model.config.cond_dim), model.model_id, [], []))
    separate_file([target], sys.argv[2], {"t": out / "t.wav", "no_t": out / "r.wav"},
                  SeparationOptions(chunk_seconds=10.0, overwrite=True))
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def test_peak_memory_does_not_grow_with_track_length(tmp_path, tiny_weights):
    """A 10-minute track separates in about the same peak memory as a 1-minute one. Holding the
    track whole even once (float32 at 44.1 kHz: 106 MB for 10 minutes) would break the 10% bound
    (about 45 MB over a 1-minute run's peak); the engine's buffers are a chunk long whatever the length."""
    rss = {}
    for minutes in (1, 10):
        src = tmp_path / f"{minutes}.wav"
        rate = 8000  # keeps the 60-minute file small on disk; it is resampled to 44.1 kHz and back
        with sf.SoundFile(src, "w", rate, 1, subtype="PCM_16") as fh:
            for _ in range(minutes):
                fh.write(tone(60.0, rate=rate, channels=1, freq=300))
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(tiny_weights), str(src), str(tmp_path)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        rss[minutes] = json.loads(proc.stdout)["peak_rss_mb"]
        assert sf.info(tmp_path / "t.wav").frames == minutes * 60 * rate
    print(f"peak RSS: 1 min {rss[1]:.0f} MB, 10 min {rss[10]:.0f} MB")
    assert rss[10] < rss[1] * 1.10


def test_folding_batch_norms_keeps_the_output(tiny_weights):
    """load_model folds batch norms into the convolutions; the separation must not change."""
    import copy

    from safetensors.torch import load_file

    from mss_cli.model import ConditionedUNet, ModelConfig, bind_conditioning, fuse_for_inference
    from mss_cli.weights import read_metadata

    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in load_model(tiny_weights).modules())
    plain = ConditionedUNet(ModelConfig.from_dict(json.loads(read_metadata(tiny_weights)["config"])))
    plain.load_state_dict(load_file(str(tiny_weights)))
    plain.eval()
    with torch.no_grad():  # non-trivial running statistics and affine terms, as after training
        for m in plain.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
        plain.film.weight.normal_(0.0, 0.5)  # FiLM starts as the identity; make it act
        plain.film.bias.normal_(0.0, 0.5)
    fused = fuse_for_inference(copy.deepcopy(plain))
    x = torch.from_numpy(tone(2.0, channels=1)[:, 0])[None]
    with torch.inference_mode():
        cond = plain.conditioning(plain.embed_windows(x)[None])
        np.testing.assert_allclose(fused.conditioning(fused.embed_windows(x)[None]).numpy(), cond.numpy(), atol=1e-5)
        expected = plain(x, cond).numpy()
        np.testing.assert_allclose(fused(x, cond).numpy(), expected, atol=1e-5)
        # FiLM folded into the convolutions (what separation runs): same output, whatever cond it is given.
        bound = bind_conditioning(plain, cond)
        np.testing.assert_allclose(bound(x, torch.zeros_like(cond)).numpy(), expected, atol=1e-5)
        assert not np.allclose(plain(x, torch.zeros_like(cond)).numpy(), expected, atol=1e-3)  # cond matters
        np.testing.assert_allclose(plain(x, cond).numpy(), expected)  # the original is untouched


def test_precision_choice_and_bf16_output(tiny_weights):
    assert autocast_dtype("cpu", "fp32") is None
    assert autocast_dtype("cpu", "bf16") is torch.bfloat16
    assert autocast_dtype("mps", "auto") is None  # MPS autocast to bf16 is not dependable
    with pytest.raises(UsageError, match="precision"):
        autocast_dtype("cpu", "fp16")
    model = load_model(tiny_weights)
    cond = torch.randn(model.config.cond_dim)
    x = torch.from_numpy(tone(3.0, channels=2).T.copy())
    full, half = make_separator(model, cond, "fp32")(x), make_separator(model, cond, "bf16")(x)
    assert full.dtype == half.dtype == torch.float32 and full.shape == half.shape == x.shape
    assert snr_db(full.numpy(), half.numpy()) > 25.0


def test_separate_array_gives_the_stems_separate_file_writes(tmp_path, tiny_weights):
    """The Python API on samples in memory runs the same streaming engine as on files."""
    from mss_cli import separate_array
    from mss_cli.errors import MssError

    model = load_model(tiny_weights)
    sf.write(tmp_path / "clip.wav", tone(2.0, freq=300, channels=1), 44100)
    cond = condition(model, [str(tmp_path / "clip.wav")])
    audio = tone(4.0, rate=22050, freq=300) + tone(4.0, rate=22050, freq=800, seed=1)
    sf.write(tmp_path / "mix.wav", audio, 22050, subtype="FLOAT")
    targets = [Target("t", model, cond)]
    outputs = {"t": tmp_path / "t.wav", "no_t": tmp_path / "r.wav"}
    separate_file(targets, tmp_path / "mix.wav", outputs, SeparationOptions(chunk_seconds=1.0, bit_depth="32f"))
    stems = separate_array(targets, audio, 22050, SeparationOptions(chunk_seconds=1.0))
    assert stems["t"].shape == audio.shape and stems["t"].dtype == np.float32
    assert np.array_equal(stems["t"], sf.read(tmp_path / "t.wav", dtype="float32")[0])
    assert np.allclose(stems["t"] + stems["no_t"], audio, atol=1e-6)
    mono = separate_array(targets, (audio[:, 0] * 32767).astype(np.int16), 22050)["t"]
    assert mono.shape == (audio.shape[0],)
    with pytest.raises(MssError, match="expected"):
        separate_array(targets, np.zeros((2, 2, 2), np.float32), 22050)
    with pytest.raises(MssError, match="dtype uint8"):
        separate_array(targets, np.zeros(100, np.uint8), 22050)


CLIP_PEAK_RSS = textwrap.dedent(
    """
    import json, resource, sys
    from mss_cli.conditioning import condition
    from mss_cli.weights import load_model
    condition(load_model(sys.argv[1]), [sys.argv[2]])
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_example_clip_length(tmp_path, tiny_weights):
    """A 10-minute example clip embeds in about the peak memory of a 1-minute one: its windows are
    embedded as they are decoded (holding them all, at 44.1 kHz float32, is 106 MB more)."""
    rss = {}
    for minutes in (1, 10):
        src = tmp_path / f"{minutes}.wav"
        with sf.SoundFile(src, "w", 8000, 1, subtype="PCM_16") as fh:
            for _ in range(minutes):
                fh.write(tone(60.0, rate=8000, channels=1, freq=300))
        proc = subprocess.run(
            [sys.executable, "-c", CLIP_PEAK_RSS, str(tiny_weights), str(src)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        rss[minutes] = json.loads(proc.stdout)["peak_rss_mb"]
    print(f"peak RSS embedding a clip: 1 min {rss[1]:.0f} MB, 10 min {rss[10]:.0f} MB")
    assert rss[10] < rss[1] + 60  # measured +18 to +32 MB (allocator noise); holding the windows: +145 MB


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"chunk_seconds": float("inf")}, "chunk_seconds=inf"),
        ({"chunk_seconds": 0.5}, "chunk_seconds=0.5"),
        ({"chunk_seconds": 600}, "chunk_seconds=600"),
        ({"overlap": 0.95}, "overlap=0.95"),
        ({"shifts": 0}, "shifts=0"),
        ({"shifts": -2}, "shifts=-2"),
        ({"shifts": 2.5}, "shifts=2.5"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"precision": "fp16"}, "precision='fp16'"),
        ({"fmt": "aiff"}, "fmt='aiff'"),
        ({"bit_depth": 16}, "bit_depth=16"),
        ({"mp3_bitrate": 8}, "mp3_bitrate=8"),
    ],
)
def test_separation_options_are_validated_in_the_library(setting, named):
    """Python callers get a ValueError naming the argument, not an error deep in the engine."""
    from mss_cli.separate import SeparationOptions

    with pytest.raises(ValueError, match=re.escape(named)):
        SeparationOptions(**setting)
    assert SeparationOptions(chunk_seconds=30, overlap=0.0, shifts=16, mp3_bitrate=320).shifts == 16


def test_a_silent_input_is_refused_before_any_separation(tmp_path, tiny_weights, monkeypatch):
    """A long silent track is refused after the level pass, not after separating all of it."""
    from mss_cli import separate as separate_module
    from mss_cli.errors import MssError

    model = load_model(tiny_weights)
    sf.write(tmp_path / "clip.wav", tone(2.0, freq=300, channels=1), 44100)
    cond = condition(model, [str(tmp_path / "clip.wav")])

    def never(*args, **kwargs):
        raise AssertionError("the model ran on silence")

    monkeypatch.setattr(separate_module, "make_separator", never)
    with pytest.raises(MssError, match="audio: input is silent"):
        separate_module.separate_array([Target("t", model, cond)], np.zeros((44100 * 120, 2), np.float32), 44100)


def test_rows_are_separated_in_passes_of_at_most_max_rows_with_the_same_result(tiny_weights):
    """A many-channel input or a large batch goes through the model a few rows at a time: the
    memory follows the budget, and the output is what one pass gives."""
    model = load_model(tiny_weights)
    fn = make_separator(model, torch.randn(model.config.cond_dim))
    calls: list[int] = []

    def counted(rows: torch.Tensor) -> torch.Tensor:
        calls.append(rows.shape[0])
        return fn(rows)

    x = tone(3.0, channels=2)
    x = np.concatenate([x] * 8, axis=1)  # 16 channels
    align = model.config.hop * model.config.frame_multiple
    stem = lambda rows: fn(rows)[:, None]  # noqa: E731
    whole = np.concatenate(list(OverlapAdd(stem, 44100, 0.25, batch_size=2, align=align).run([x], len(x))))
    split = OverlapAdd(lambda rows: counted(rows)[:, None], 44100, 0.25, batch_size=2, align=align, max_rows=5)
    passes = np.concatenate(list(split.run([x], len(x))))
    assert max(calls) == 5 and np.allclose(passes, whole, atol=1e-5)


def test_several_targets_share_each_bin_in_proportion_to_their_masks(tmp_path, tiny_weights):
    """Several targets in one pass: where their masks claim more than a whole bin, each is divided
    by their sum (``make_separator``); the residual is what none claimed, so the stems and the
    residual sum to the mixture. A class target of another model shares the STFT."""
    from mss_cli.engine import make_separator as separator_of

    model = load_model(tiny_weights, fuse=False).eval()
    other = load_model(build_tiny_weights(tmp_path / "cc.safetensors", seed=3, kind="classcond"), fuse=False).eval()
    a, b, c = (torch.randn(1, model.config.cond_dim) for _ in range(3))
    x = torch.from_numpy(tone(2.0, freq=180, channels=1) + tone(2.0, freq=610, seed=5, channels=1)).reshape(1, -1)
    targets = [one_target(model, a, name="a"), one_target(model, b, name="b"), one_target(other, c, name="c")]
    got = separator_of(targets, "fp32")(x)
    with torch.no_grad():
        spec, feats = model.features(x)
        masks = [model.mask(feats, a), model.mask(feats, b), other.mask(other.features_of(spec), c)]
        total = torch.stack(masks).sum(0).clamp_min(1.0)
        assert float(torch.stack(masks).sum(0).max()) > 1.0  # the sharing is exercised
        want = torch.stack([model.apply_mask(spec, m / total, x.shape[-1]) for m in masks], dim=1)
    assert got.shape == (1, 3, x.shape[-1])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_stems_of_several_targets_and_the_residual_sum_to_the_mixture(tmp_path, tiny_weights):
    from mss_cli.separate import separate_array

    model = load_model(tiny_weights)
    targets = [one_target(model, torch.randn(model.config.cond_dim), name=n) for n in ("a", "b", "c")]
    audio = tone(3.0, rate=48000, freq=220) + tone(3.0, rate=48000, freq=880, seed=2)
    stems = separate_array(targets, audio, 48000, SeparationOptions(chunk_seconds=1.0))
    assert list(stems) == ["a", "b", "c", "other"]
    assert np.abs(sum(stems.values()) - audio).max() < 1e-4
    alone = separate_array(targets[:1], audio, 48000, SeparationOptions(chunk_seconds=1.0))
    assert list(alone) == ["a", "no_a"] and not np.array_equal(alone["a"], stems["a"])
