"""Shared fixtures: a tiny random model saved as a weights file, and short synthetic audio.

Tests marked ``slow`` (long end-to-end runs) are skipped unless ``MSS_SLOW_TESTS=1``, which CI sets,
so ``python -m pytest`` stays quick on a laptop and CI still runs everything.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TINY = dict(n_fft=256, hop=64, bins=64, channels=[4, 8, 8, 16], embed_dim=16, cond_dim=16)


def tone(seconds: float, rate: int = 44100, freq: float = 440.0, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise (never silent), shape (frames, channels)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    mono = sum(0.2 / k * np.sin(2 * math.pi * freq * k * t) for k in range(1, 5)) + 0.01 * rng.standard_normal(t.size)
    out = np.stack([mono * (0.8 + 0.2 * c) for c in range(channels)], axis=1)
    return out.astype(np.float32)


@pytest.fixture(autouse=True)
def clips_never_alike(request, monkeypatch) -> None:
    """By default every target with --not clips joins NMF's mask in (``mss_cli.nmf.nmf_join``).
    Tests made with the tiny model check the network's path unless they set ``nmf.ALIKE`` and
    ``nmf.ODDS_SHARE`` themselves (``test_nmf.py``): no clips sound alike, and elsewhere the
    network's mask stands; tests of the shipped weights keep the product's joins."""
    if "shipped" not in request.node.path.name:
        from mss_cli import nmf

        monkeypatch.setattr(nmf, "ALIKE", 1.0)
        monkeypatch.setattr(nmf, "ODDS_SHARE", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MSS_SLOW_TESTS"):
        return
    skip = pytest.mark.skip(reason="slow: set MSS_SLOW_TESTS=1 to run it (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def run_mss(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``mss ARGS`` in this process, as a shell runs it: (exit code, stdout, stderr)."""
    from mss_cli.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def build_tiny_weights(path: Path, seed: int = 0, kind: str = "fewshot") -> Path:
    import torch

    from mss_cli.model import ConditionedUNet, ModelConfig
    from mss_cli.weights import save_model
    from mss_research.data.taxonomy import load_taxonomy

    torch.manual_seed(seed)
    names = [c.name for c in load_taxonomy().classes] if kind == "classcond" else []
    model = ConditionedUNet(ModelConfig(**TINY, kind=kind, num_classes=len(names), class_names=names))
    with torch.no_grad():  # a non-trivial mask: random FiLM instead of the identity initialisation
        model.film.weight.normal_(0, 0.3)
    return save_model(model.eval(), path, half=False)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return build_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_classcond_weights(tmp_path_factory) -> Path:
    return build_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny-cc.safetensors", kind="classcond")


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    """A folder with a song, two positive and one negative example clip; cwd is set to it."""
    sf.write(tmp_path / "song.wav", tone(3.0, freq=220) + tone(3.0, freq=330, seed=1), 44100, subtype="PCM_16")
    sf.write(tmp_path / "like_1.wav", tone(1.5, freq=220, channels=1, seed=2), 44100)
    sf.write(tmp_path / "like_2.flac", tone(2.0, rate=22050, freq=247, channels=2, seed=3), 22050)
    sf.write(tmp_path / "not_1.wav", tone(1.2, freq=330, channels=1, seed=4), 44100)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_dataset_plan() -> dict:
    """What ``tiny_dataset`` renders (``render.build``'s arguments), for tests that build it again.
    Seed 34 puts an unseen class (accordion) in two training and two validation works, so that the
    unseen-class tests run instead of skipping."""
    return {"generated": 5, "corpus": 2, "seed": 34, "val_fraction": 0.3, "timbre": 1}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_dataset_plan) -> Path:
    """Five generated songs and two chorales, rendered with FluidSynth (the Debian packages of .ci/run)."""
    from mss_research.data.render import build
    from mss_research.data.taxonomy import load_taxonomy

    missing = [
        f for f in load_taxonomy().train_soundfonts + load_taxonomy().reserved_soundfonts if not os.path.exists(f)
    ]
    try:
        import fluidsynth  # noqa: F401  (needs the Debian libfluidsynth)
    except (ImportError, OSError) as exc:
        missing.append(f"libfluidsynth ({exc})")
    if missing:
        message = f"FluidSynth or soundfonts missing (install .ci/apt-packages.txt): {missing}"
        if os.environ.get("MSS_REQUIRE_DATA_TESTS"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("data")
    build(root, **tiny_dataset_plan, jobs=2, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_real_dataset(tmp_path_factory) -> Path:
    """Recorded stems as ``mss-research data real`` lays them out, with tones for audio: three
    training songs and two held-out ones (the ``real`` split), each with drums, bass, other and vocals."""
    from mss_research.data.realstems import write_stems

    root = tmp_path_factory.mktemp("real")
    freqs = {"drums": 70.0, "bass": 55.0, "other": 660.0, "vocals": 330.0}
    for i in range(5):
        stems = {
            cls: (tone(4.0, freq=freq * (1 + 0.05 * i), seed=10 * i + j) * 8000).astype(np.int16)
            for j, (cls, freq) in enumerate(freqs.items())
        }
        write_stems(root, f"song-{i}", stems, "tones", "real" if i >= 3 else "train")
    return root
