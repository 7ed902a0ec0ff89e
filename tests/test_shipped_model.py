"""End to end with the shipped weights on examples/: quality floor, seams, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mss_cli.cli import main
from mss_cli.conditioning import condition
from mss_cli.engine import OverlapAdd, make_separator
from mss_cli.metrics import si_sdr, snr_db
from mss_cli.targets import Target
from mss_cli.weights import BASELINE_WEIGHTS, load_model, shipped_weights

EXAMPLES = Path(__file__).parents[1] / "examples"
pytestmark = pytest.mark.skipif(not shipped_weights().is_file(), reason="no shipped weights")


def cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code
    return 0


def demo_improvement(out: Path, instrument: str, *how: str) -> float:
    """Separate the demo mix with the conditioning options ``how``; SI-SDR gain over the mixture."""
    args = ("separate", str(EXAMPLES / "demo_mix.flac"), *how, "--name", "est", "-o", str(out), "--bit-depth", "32f")
    assert cli(*args, "--quiet") == 0
    mix, _ = sf.read(EXAMPLES / "demo_mix.flac")
    ref, _ = sf.read(EXAMPLES / "reference" / f"{instrument}.flac")
    est, _ = sf.read(out / "demo_mix" / "est.wav")
    res, _ = sf.read(out / "demo_mix" / "no_est.wav")
    np.testing.assert_allclose(est + res, mix, atol=1e-5)
    # SI-SDR, not plain SDR: a silent output scores 0 dB plain SDR, far above a quiet stem's mixture.
    improvement = si_sdr(ref.ravel(), est.ravel()) - si_sdr(ref.ravel(), mix.ravel())
    print(
        f"{instrument} {' '.join(a for a in how if a.startswith('--'))}: "
        f"SI-SDR {si_sdr(ref.ravel(), est.ravel()):.2f} dB, improvement {improvement:.2f} dB"
    )
    return improvement


def demo_clips(instrument: str) -> list[str]:
    return sorted(str(p) for p in (EXAMPLES / "clips").glob(f"{instrument}_*.flac"))


@pytest.mark.parametrize("instrument, other", [("trumpet", "bass"), ("bass", "trumpet")])
def test_demo_separation_improves_on_the_mixture(tmp_path, instrument, other):
    assert demo_improvement(tmp_path, instrument, "--like", *demo_clips(instrument), "--not", *demo_clips(other)) > 3.0


needs_baseline = pytest.mark.skipif(
    not shipped_weights(BASELINE_WEIGHTS).is_file(), reason="no shipped baseline weights"
)


@needs_baseline
@pytest.mark.parametrize("instrument", ["trumpet", "bass"])
def test_class_conditioned_baseline_on_the_demo(tmp_path, instrument):
    assert demo_improvement(tmp_path, instrument, "--class", instrument) > 3.0


@needs_baseline
@pytest.mark.parametrize("instrument, other", [("trumpet", "bass"), ("bass", "trumpet")])
def test_clips_and_class_name_together_on_the_demo(tmp_path, instrument, other):
    how = ("--with-class", instrument, "--like", *demo_clips(instrument), "--not", *demo_clips(other))
    assert demo_improvement(tmp_path, instrument, *how) > 3.0


def test_chunked_equals_whole_track_with_shipped_weights():
    """On a 60 s input, --chunk 5 and one chunk over the whole track agree to 30 dB or more."""
    model = load_model()
    cond = condition(model, sorted(str(p) for p in (EXAMPLES / "clips").glob("trumpet_*.flac")))
    mix, rate = sf.read(EXAMPLES / "demo_mix.flac", dtype="float32")
    x = np.concatenate([mix, mix[::-1], mix])[: 60 * rate]
    separate = make_separator([Target("trumpet", model, cond)])
    align = model.config.hop * model.config.frame_multiple

    def run(chunk_seconds: float, overlap: float) -> np.ndarray:
        engine = OverlapAdd(separate, int(chunk_seconds * rate), overlap, align=align)
        return np.concatenate(list(engine.run((x[i : i + 65536] for i in range(0, len(x), 65536)), len(x))))[:, 0]

    whole = run(61.0, 0.0)
    chunked = run(5.0, 0.25)
    print(f"chunk 5 s vs whole track: {snr_db(whole, chunked):.1f} dB")
    assert snr_db(whole, chunked) >= 30.0


def test_shipped_model_is_deterministic(tmp_path):
    args = [
        str(EXAMPLES / "demo_mix.flac"),
        "--like",
        str(EXAMPLES / "clips" / "bass_1.flac"),
        "--quiet",
        "--no-residual",
        "--chunk",
        "5",
    ]
    assert cli("separate", *args, "-o", str(tmp_path / "a")) == 0
    assert cli("separate", *args, "-o", str(tmp_path / "b")) == 0
    assert (tmp_path / "a/demo_mix/bass.wav").read_bytes() == (tmp_path / "b/demo_mix/bass.wav").read_bytes()


@needs_baseline
def test_profiles_and_a_class_in_one_run_give_named_stems_that_sum_to_the_mix(tmp_path, monkeypatch):
    """The issue's command: two profiles and a class in one run write a stem each and ``other``,
    which sum to the mixture; each target still comes out of the mix."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for instrument in ("trumpet", "bass"):
        assert cli("embed", "--like", *demo_clips(instrument), "-o", instrument, "--quiet") == 0
    args = ["--profile", "trumpet", "--profile", "bass", "--class", "drums", "--bit-depth", "32f", "--quiet"]
    assert cli("separate", str(EXAMPLES / "demo_mix.flac"), *args, "-o", str(tmp_path / "o")) == 0
    folder = tmp_path / "o" / "demo_mix"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "bass.wav",
        "drums.wav",
        "other.wav",
        "trumpet.wav",
    ]
    mix, _ = sf.read(EXAMPLES / "demo_mix.flac")
    stems = {p.stem: sf.read(p)[0] for p in folder.glob("*.wav")}
    assert np.abs(sum(stems.values()) - mix).max() < 1e-4
    for instrument in ("trumpet", "bass"):
        ref, _ = sf.read(EXAMPLES / "reference" / f"{instrument}.flac")
        gain = si_sdr(ref.ravel(), stems[instrument].ravel()) - si_sdr(ref.ravel(), mix.ravel())
        print(f"{instrument} among three targets: SI-SDR improvement {gain:.2f} dB")
        assert gain > 3.0
