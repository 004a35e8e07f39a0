"""Mask-aware real-DFT low/high split along the sequence axis (FEMF eq. 8, the "FourierLayer").

For one sample with ``T`` real positions (padding at the end) the real DFT of each channel has
``T // 2 + 1`` bins (``torch.fft.rfft``). The low band keeps the first ``c`` bins, the high band
the rest, and both are brought back to the time axis with the inverse transform:

    low  = irfft(rfft(x[:T]) * [k < c])          high = x[:T] - low

**Cutoff rule** (:func:`cutoff_bins`): ``c = floor(ratio * (T // 2 + 1) + 0.5)`` (round half up),
clamped to ``[1, T // 2 + 1]``. So ``ratio`` is the fraction of the rfft bins kept in the low band
(FEMF's truncation coefficient, 0.6 on MOSI and 0.4 on MOSEI in its Fig. 4), the DC bin always
stays low (``c >= 1``), ``ratio = 1`` keeps everything low, and:

* ``T = 1``: one bin; ``low = x``, ``high = 0``.
* ``T = 2``: bins DC and Nyquist; ``ratio < 0.75`` gives ``low`` = the mean and ``high`` = the
  alternating part, ``ratio >= 0.75`` keeps both bins low.
* ``T = 0`` (a missing modality, an all-False mask row): ``low = high = 0``.

Properties (tested in ``tests/test_spectral_dft.py``): ``low + high == x`` on real positions and
both are 0 on padding; the low-pass map is an orthogonal projection, so the bands are orthogonal
and ``||x||^2 = ||low||^2 + ||high||^2`` per channel; padding never enters the spectrum (changing
padded values changes nothing).

Implementation: for sequences up to ``MATRIX_MAX_LEN`` positions the low-pass map of every length
is a cached ``T x T`` real matrix (the projection ``F^-1 diag(k < c) F``), gathered per sample
from a zero-padded bank and applied with one batched matmul (no Python loop over samples, one
GEMM, differentiable). Longer sequences use ``torch.fft`` bucketed by unique length. Both run in
float32 (float64 stays float64) with autocast switched off, so the split is exact under AMP too.

:func:`reference_cutoff_split` reproduces the public FEMF code's rule for comparison
(docs/reference-differences.md, row 1): ``c = int(T * ratio)`` with ``T`` the padded batch length, used as
an index into the ``T // 2 + 1`` rfft bins, no mask. With its ratio 0.9 and any ``T >= 3`` no bin
is removed, and the "high band" is float rounding noise (about 1e-7 of the signal's norm).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

MATRIX_MAX_LEN = 128


def cutoff_bins(length: int, ratio: float) -> int:
    """Number ``c`` of rfft bins kept in the low band for a sequence of ``length`` real positions.

    ``c = clamp(floor(ratio * (length // 2 + 1) + 0.5), 1, length // 2 + 1)``; 0 when length is 0.
    """
    if length <= 0:
        return 0
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    n_bins = length // 2 + 1
    c = int(math.floor(ratio * n_bins + 0.5 + 1e-9))
    return min(max(c, 1), n_bins)


@lru_cache(maxsize=4096)
def _lowpass_matrix_np(length: int, c: int) -> np.ndarray:
    """The ``(length, length)`` low-pass projection keeping rfft bins ``< c`` (float64)."""
    eye = np.eye(length)
    spec = np.fft.rfft(eye, axis=0)
    spec[c:] = 0.0
    return np.fft.irfft(spec, n=length, axis=0)


_BANKS: dict = {}


def _bank(max_len: int, ratio: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(max_len + 1, max_len, max_len)``: entry ``T`` is the low-pass matrix of length ``T``,
    zero-padded (entry 0 is all zeros). Cached per (max_len, ratio, dtype, device)."""
    key = (max_len, float(ratio), dtype, str(device))
    bank = _BANKS.get(key)
    if bank is None:
        arr = np.zeros((max_len + 1, max_len, max_len))
        for t in range(1, max_len + 1):
            arr[t, :t, :t] = _lowpass_matrix_np(t, cutoff_bins(t, ratio))
        bank = torch.as_tensor(arr, dtype=dtype, device=device)
        if len(_BANKS) > 64:
            _BANKS.clear()
        _BANKS[key] = bank
    return bank


def real_lengths(mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` number of real positions per row; checks that the real positions are a prefix.

    Raises:
        ValueError: if a row has a real position after a padded one.
    """
    lengths = mask.sum(1)
    prefix = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
    if not torch.equal(prefix, mask.bool()):
        raise ValueError("dft_split needs padding at the end: each mask row must be True..True False..False")
    return lengths


def dft_split(x: torch.Tensor, mask: torch.Tensor | None, ratio: float,
              method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``x`` into low and high frequency bands along its sequence axis (FEMF eq. 8).

    Args:
        x: ``(B, L, D)`` features; padded positions may hold anything (they are ignored).
        mask: ``(B, L)`` bool, True on real positions (a prefix of each row); ``None`` = all real.
        ratio: fraction of each sample's ``T // 2 + 1`` rfft bins kept in the low band
            (see :func:`cutoff_bins`).
        method: ``"matrix"`` (cached projection matrices, one bmm), ``"fft"`` (torch.fft bucketed by
            unique length) or ``"auto"`` (matrix when ``L <= MATRIX_MAX_LEN``).

    Returns:
        ``(low, high)``, each ``(B, L, D)``, zero on padding, ``low + high == x`` on real positions.
        The split runs in float32 (float64 inputs in float64), also under autocast/AMP, where a
        bfloat16 matmul would blur the band boundary (errors of about 1e-2 of the signal); so the
        bands are float32 for float32, float16 and bfloat16 inputs.
    """
    if x.dim() != 3:
        raise ValueError(f"x must be (B, L, D), got shape {tuple(x.shape)}")
    B, L, _ = x.shape
    if mask is None:
        mask = torch.ones(B, L, dtype=torch.bool, device=x.device)
    mask = mask.bool()
    lengths = real_lengths(mask)
    if method == "auto":
        method = "matrix" if L <= MATRIX_MAX_LEN else "fft"
    if method not in ("matrix", "fft"):
        raise ValueError(f"method must be 'auto', 'matrix' or 'fft', got {method!r}")
    with torch.autocast(device_type=x.device.type, enabled=False):     # exact bands, also under AMP
        x = x if x.dtype == torch.float64 else x.float()
        xm = x * mask.unsqueeze(-1).to(x.dtype)
        if method == "matrix":
            low = torch.bmm(_bank(L, ratio, x.dtype, x.device)[lengths], xm)
        else:
            low = _fft_lowpass(xm, lengths, ratio)
        return low, xm - low


def _fft_lowpass(xm: torch.Tensor, lengths: torch.Tensor, ratio: float) -> torch.Tensor:
    """Low band via rfft/irfft, one call per unique length (out-of-place, differentiable)."""
    low = torch.zeros_like(xm)
    for t in torch.unique(lengths).tolist():
        if t == 0:
            continue
        rows = torch.nonzero(lengths == t).squeeze(1)
        seg = xm[rows, :t]
        spec = torch.fft.rfft(seg, dim=1)
        c = cutoff_bins(t, ratio)
        spec = torch.cat([spec[:, :c], torch.zeros_like(spec[:, c:])], dim=1)
        part = torch.fft.irfft(spec, n=t, dim=1)
        cols = torch.arange(t, device=xm.device)
        low = low.index_put((rows[:, None], cols[None, :]), part)
    return low


def band_energy(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``(B, 2)``: energy (sum of squares over positions and channels) of the low and high band."""
    return torch.stack([low.pow(2).sum((1, 2)), high.pow(2).sum((1, 2))], dim=1)


def reference_cutoff_split(x: torch.Tensor, ratio: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The public FEMF code's split, for comparison only (docs/reference-differences.md, row 1).

    ``T`` is the padded length of the batch (no mask: padding enters the spectrum),
    ``c = int(T * ratio)`` is used as an index into the ``T // 2 + 1`` rfft bins (orthonormal FFT),
    ``low = irfft(bins < c)`` and ``high = x - low``. For ``ratio = 0.9`` and ``T >= 3``,
    ``c >= T // 2 + 1``: nothing is removed, ``low == x`` up to rounding and ``high`` is rounding
    noise (about 1e-7 of the norm of ``x`` in float32).

    Args:
        x: ``(B, T, D)``.
        ratio: the reference's ratio (0.9 in its code).

    Returns:
        ``(low, high)``, each ``(B, T, D)``.
    """
    T = x.shape[1]
    c = int(T * ratio)
    spec = torch.fft.rfft(x, dim=1, norm="ortho")
    spec = spec.clone()
    spec[:, c:] = 0
    low = torch.fft.irfft(spec, n=T, dim=1, norm="ortho")
    return low, x - low


def reference_bins_removed(length: int, ratio: float = 0.9) -> int:
    """How many of the ``length // 2 + 1`` rfft bins the reference rule moves to the high band."""
    return max(0, length // 2 + 1 - int(length * ratio))
