"""Separation metrics. The signal-to-distortion ratio here is the plain energy ratio (the MDX
'new SDR'); BSSEval v4 SDR, which allows a distortion filter, is computed by ``mss_cli.evaluate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

EPS = 1e-9


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|s|^2 / |s - s_hat|^2) in dB."""
    num = float(np.sum(reference.astype(np.float64) ** 2)) + EPS
    den = float(np.sum((reference.astype(np.float64) - estimate) ** 2)) + EPS
    return 10.0 * np.log10(num / den)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR (Le Roux et al. 2019): the estimate's gain does not count."""
    ref = reference.astype(np.float64).ravel()
    est = estimate.astype(np.float64).ravel()
    alpha = float(np.dot(est, ref) / (np.dot(ref, ref) + EPS))
    return sdr(alpha * ref, est)


def snr_db(a: np.ndarray, b: np.ndarray) -> float:
    """Agreement of two signals (e.g. chunked vs whole-track output): SDR of b against a."""
    return sdr(a, b)


def negative_sdr(target: torch.Tensor, estimate: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """-SDR per example (dB), the training loss (and test-time adaptation's): the evaluation metric
    itself. Unlike a magnitude L1 it weighs quiet and loud targets alike, so 'output silence'
    (SDR 0 dB) is not a comfortable minimum."""
    import torch

    error = ((target - estimate) ** 2).sum(dim=-1)
    energy = (target**2).sum(dim=-1)
    return 10 * torch.log10(error + eps) - 10 * torch.log10(energy + eps)
