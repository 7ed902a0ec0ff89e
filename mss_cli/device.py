"""Choosing where the model runs: ``auto`` prefers CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import re

from mss_cli.errors import UsageError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def pick_device(name: str = "auto") -> str:
    """Validate a --device value and resolve it to a torch device string that exists here."""
    if not DEVICE_PATTERN.match(name):
        raise UsageError(f"--device {name}: expected auto, cpu, cuda, cuda:N or mps")
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) found")
    if name == "mps" and not has_mps:
        raise UsageError("--device mps: MPS is not available on this machine")
    return name
