"""Separation quality on a user's own cases (``mss eval --folder``): BSSEval SDR, SI-SDR and SDRi.

Each case is separated exactly as ``mss separate`` does and scored per channel. Scoring needs the
``[eval]`` extra (fast-bss-eval, matplotlib for the chart).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mss_cli.errors import UsageError
from mss_cli.extras import require
from mss_cli.metrics import si_sdr
from mss_cli.report import Case


def bss_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """BSSEval SDR with a 512-tap filter (fast-bss-eval, torch backend; NumPy 2 safe)."""
    import torch

    fast_bss_eval = require("fast_bss_eval", "eval")
    ref = torch.from_numpy(reference.astype(np.float64))[None]
    est = torch.from_numpy(estimate.astype(np.float64))[None]
    return float(fast_bss_eval.sdr(ref, est, load_diag=1e-6)[0])


def evaluate_folder(model, folder: str | Path, progress: Callable[[str], None] = print) -> list[Case]:
    """A user's own cases: ``folder/<case>/mixture.*``, ``target.*``, ``like/*`` and optional ``not/*``.

    Each case is separated exactly as ``mss separate`` does (streaming engine, the input's rate and
    channels) and scored per channel; the case's figure is the mean over channels.
    """
    import soundfile as sf

    from mss_cli.audio import is_audio_file
    from mss_cli.conditioning import condition
    from mss_cli.separate import SeparationOptions, separate_file
    from mss_cli.targets import Target

    require("fast_bss_eval", "eval")  # before the first (slow) separation

    def one(case: Path, stem: str) -> Path:
        found = sorted(p for p in case.glob(f"{stem}.*") if is_audio_file(p))
        if not found:
            raise UsageError(f"{case}: no {stem}.* audio file")
        return found[0]

    try:
        folders = sorted(p for p in Path(folder).iterdir() if p.is_dir())
    except OSError as exc:
        raise UsageError(f"{folder}: cannot read the cases folder ({exc.strerror or exc})") from None
    if not folders:
        raise UsageError(f"{folder}: no case folders (CASE/mixture.*, target.*, like/*)")
    cases: list[Case] = []
    for index, case in enumerate(folders):
        mixture, target = one(case, "mixture"), one(case, "target")
        likes = sorted(str(p) for p in (case / "like").glob("*") if is_audio_file(p))
        nots = sorted(str(p) for p in (case / "not").glob("*") if is_audio_file(p)) if (case / "not").is_dir() else []
        if not likes:
            raise UsageError(f"{case}: no example clips in like/")
        ref, _ = sf.read(target, always_2d=True)
        mix, _ = sf.read(mixture, always_2d=True)
        if ref.shape != mix.shape:  # checked before the (slow) separation
            raise UsageError(f"{case}: target and mixture differ in length or channels")
        target = Target("target", model, condition(model, likes, nots))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "target.wav"
            separate_file([target], mixture, {"target": out}, SeparationOptions(bit_depth="32f"))
            est, _ = sf.read(out, always_2d=True)
        channels = range(ref.shape[1])
        value = float(np.mean([bss_sdr(ref[:, c], est[:, c]) for c in channels]))
        floor = float(np.mean([bss_sdr(ref[:, c], mix[:, c]) for c in channels]))
        scale_inv = float(np.mean([si_sdr(ref[:, c], est[:, c]) for c in channels]))
        cases.append(
            Case(
                "folder",
                index,
                f"few-shot, {len(likes)} positives" + (f" + {len(nots)} suppressed negatives" if nots else ""),
                case.name,
                value,
                scale_inv,
                value - floor,
            )
        )
        progress(f"{case.name}: SDR {value:.2f} dB, SDRi {value - floor:+.2f} dB")
    return cases
