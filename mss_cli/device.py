"""Choosing where the model runs (``auto`` prefers CUDA, then Apple's MPS, then the CPU) and in
which precision."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal, cast

from mss_cli.errors import UsageError

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "fp32", "bf16"]

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(name: str) -> str:
    """A device name as written (torch-free, so a bad one is refused before anything loads)."""
    if not DEVICE_PATTERN.match(name):
        raise UsageError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    return name


def pick_device(name: str = "auto") -> str:
    """Validate a device name and resolve it to a torch device string that exists here."""
    check_device(name)
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r}: CUDA is not available on this machine")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) found")
    if name == "mps" and not has_mps:
        raise UsageError("device 'mps': MPS is not available on this machine")
    return name


PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16")


def check_precision(precision: str) -> Precision:
    """A --precision value, validated (a usage error otherwise)."""
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return cast(Precision, precision)


def autocast_dtype(device: str, precision: Precision = "auto") -> torch.dtype | None:
    """The reduced precision to run the separator in (a torch dtype), or None for float32.

    ``auto`` picks bfloat16 only where the hardware computes it natively: CUDA GPUs with bf16, and
    CPUs with bf16 dot-product instructions (AMX tiles, or AVX512-BF16 as on AMD Zen 4). Measured
    on a 2-core AMD EPYC with AVX512-BF16: the U-Net 1.41x faster, output 47.6 dB from float32's.
    Elsewhere bfloat16 would be emulated, and slower.
    """
    check_precision(precision)
    import torch

    kind = device.split(":")[0]
    if precision == "fp32" or kind == "mps":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    native = [
        getattr(torch.cpu, name, lambda: False) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    return torch.bfloat16 if any(check() for check in native) else None
