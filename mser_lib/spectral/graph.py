"""Temporal path graphs: Laplacian eigenbases, graph Fourier transforms and equal-energy bands.

This is the spectral part of Atsuko's Spectral-Band Hierarchical Routing Network (paper 001,
section 3.1).

**Eq. 1.** A sequence of ``T`` time steps is a path graph ``G = (V, E)`` with ``V = {1..T}`` and
``E = {(t, t+1)}``. Its normalised Laplacian is ``L = I - D^{-1/2} A D^{-1/2}`` (``A`` adjacency,
``D`` degrees). ``L = U diag(lambda) U^T``; small eigenvalues are smooth (low-frequency) basis vectors,
large ones oscillate fast. Features ``X`` (T, D) project to the graph-spectral domain as
``C = U^T X`` and back as ``X = U C``. For the path graph the eigenvalues are distinct,
``lambda_k = 1 - cos(pi k / (T - 1))``, so the basis is unique up to the sign of each column, which we
fix deterministically (the first entry of every eigenvector, which is never zero on a path, is made
positive). :func:`path_graph_basis` computes it once per length with ``torch.linalg.eigh`` in float64
and caches it per ``(T, dtype, device)``.

Useful fact checked by the tests: the *combinatorial* Laplacian ``D - A`` of the path has the
orthonormal DCT-II vectors as eigenvectors (:func:`dct2_basis`), with eigenvalues
``2 - 2 cos(pi k / T)``; the normalised Laplacian's eigenvectors are not DCT vectors (the end nodes
have degree 1), hence ``eigh``.

**Variable lengths.** A padded sample of real length ``T_i`` is a path graph on ``T_i`` nodes, not on
the padded length ``L``: every function here takes a boolean ``mask`` (B, L) whose ``True`` entries
form a prefix (padding at the end, as in :mod:`mser_lib.data.batch`) and uses the basis of ``T_i`` for
sample ``i``: the cached basis of each unique length (bucketed batches have few) is zero-padded to
``L`` and gathered per sample (:func:`padded_basis`), so a batch costs a few batched products.

**Normalised frequency (the band boundary convention).** Coefficient ``k`` of a length-``T`` sequence
has normalised frequency ``nu_k = k / (T - 1)`` in [0, 1] (``nu = 0`` when ``T = 1``). For the path graph
``nu_k = arccos(1 - lambda_k) / pi``, so this is at the same time the fraction of the spectrum index
range and a monotone function of the eigenvalue: a boundary expressed in ``nu`` means the same
frequency for every length, which is what lets boundaries fitted on training spectra of mixed
lengths apply to any sequence. Band ``b`` (0 = lowest) of ``K`` holds the coefficients with
``beta_{b-1} <= nu_k < beta_b`` where ``beta_0 = 0 < beta_1 < ... < beta_{K-1} < beta_K = 1`` (the
highest band also holds ``nu = 1``); only the ``K - 1`` interior cuts are stored.

**Equal-Energy Partitioning.** Average spectral energies ``|C_k|^2`` (summed over features) are
accumulated on ``F`` equal-width bins of ``nu`` over the training split (:class:`SpectrumAccumulator`);
:func:`equal_energy_boundaries` puts each cut on the bin edge whose cumulative energy is nearest to
``b / K``, so the bands of the training spectra carry near-equal energy.

**Band components.** ``X_b = U_b U_b^T X`` with ``U_b`` the columns of band ``b``; since the bands
partition the orthonormal basis, ``sum_b X_b = X`` on real positions (zero information loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "path_graph_adjacency", "path_graph_laplacian", "path_graph_eigh", "path_graph_basis",
    "basis_cache_clear", "basis_cache_info", "combinatorial_laplacian", "dct2_basis",
    "normalised_frequency", "band_index", "band_slices", "sequence_lengths", "padded_basis", "band_masks",
    "graph_fourier",
    "inverse_graph_fourier", "band_components", "band_decompose", "spectrum_energy",
    "SpectrumAccumulator", "equal_energy_boundaries", "equal_width_boundaries", "band_energy",
]

_FREQ_EPS = 1e-9  # nu_k and bin edges are compared with this slack so both sides agree exactly


# ---------------------------------------------------------------------------------------------
# Graphs and bases
# ---------------------------------------------------------------------------------------------
def path_graph_adjacency(T: int) -> torch.Tensor:
    """Adjacency ``A`` (T, T), float64, of the path graph 1 - 2 - ... - T."""
    a = torch.zeros(T, T, dtype=torch.float64)
    if T > 1:
        i = torch.arange(T - 1)
        a[i, i + 1] = 1.0
        a[i + 1, i] = 1.0
    return a


def path_graph_laplacian(T: int, normalized: bool = True) -> torch.Tensor:
    """Laplacian (T, T), float64, of the path graph on ``T`` nodes.

    ``normalized=True``: eq. 1, ``L = I - D^{-1/2} A D^{-1/2}`` (an isolated node, ``T = 1``, gets
    ``L = [[0]]``). ``normalized=False``: the combinatorial Laplacian ``D - A``.
    """
    if T < 1:
        raise ValueError(f"a path graph needs T >= 1 nodes, got {T}")
    a = path_graph_adjacency(T)
    deg = a.sum(1)
    if not normalized:
        return torch.diag(deg) - a
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(1e-300).rsqrt(), torch.zeros_like(deg))
    lap = torch.diag((deg > 0).to(torch.float64)) - inv_sqrt[:, None] * a * inv_sqrt[None, :]
    return lap


def _fix_signs(vecs: torch.Tensor) -> torch.Tensor:
    """Flip columns so that each one's first clearly non-zero entry is positive (deterministic)."""
    scale = vecs.abs().amax(0, keepdim=True).clamp_min(1e-300)
    nonzero = vecs.abs() > 1e-8 * scale
    first = nonzero.to(torch.int64).argmax(0)  # index of the first non-negligible entry per column
    signs = torch.sign(vecs[first, torch.arange(vecs.shape[1])])
    signs[signs == 0] = 1.0
    return vecs * signs[None, :]


def _compute_eigh(T: int, normalized: bool) -> tuple[torch.Tensor, torch.Tensor]:
    lap = path_graph_laplacian(T, normalized)
    evals, evecs = torch.linalg.eigh(lap)  # ascending eigenvalues = low to high frequency
    order = torch.argsort(evals, stable=True)
    evals, evecs = evals[order], evecs[:, order]
    return evals, _fix_signs(evecs)


@lru_cache(maxsize=1024)
def _eigh_cached(T: int, normalized: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _compute_eigh(T, normalized)


def path_graph_eigh(T: int, normalized: bool = True, cache: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (T,) ascending and sign-fixed orthonormal eigenvectors (T, T) (columns), float64 CPU.

    Do not modify the returned tensors in place when ``cache`` is on (they are shared).
    """
    if cache:
        return _eigh_cached(int(T), bool(normalized))
    return _compute_eigh(int(T), bool(normalized))


_BASIS_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def path_graph_basis(T: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                     cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The eq. 1 eigenbasis of the normalised path Laplacian for length ``T``, cast to ``dtype``/``device``.

    Computed in float64 with ``torch.linalg.eigh``, sorted low to high frequency, sign-fixed, and
    cached per ``(T, dtype, device)`` when ``cache`` is on.

    Returns:
        ``(eigenvalues (T,), U (T, T))`` with ``U[:, k]`` the k-th lowest-frequency basis vector.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    key = (int(T), dtype, str(device))
    if cache:
        hit = _BASIS_CACHE.get(key)
        if hit is not None:
            return hit
    evals, evecs = path_graph_eigh(T, True, cache=cache)
    # cast on the CPU first: some backends (MPS) have no float64
    out = (evals.to(dtype).to(device), evecs.to(dtype).to(device))
    if cache:
        _BASIS_CACHE[key] = out
    return out


def basis_cache_clear() -> None:
    """Empty both caches (the float64 eigendecompositions and the cast copies)."""
    _BASIS_CACHE.clear()
    _eigh_cached.cache_clear()
    _band_index_cached.cache_clear()


def basis_cache_info() -> dict:
    info = _eigh_cached.cache_info()
    return {"eigh_hits": info.hits, "eigh_misses": info.misses, "eigh_size": info.currsize,
            "cast_entries": len(_BASIS_CACHE)}


def combinatorial_laplacian(T: int) -> torch.Tensor:
    """``D - A`` (T, T), float64, of the path graph."""
    return path_graph_laplacian(T, normalized=False)


def dct2_basis(T: int) -> torch.Tensor:
    """Orthonormal DCT-II vectors as columns (T, T), float64: ``v_k(n) = c_k cos(pi k (n + 1/2) / T)``.

    They are the eigenvectors of :func:`combinatorial_laplacian` with eigenvalues
    ``2 - 2 cos(pi k / T)``, ``k = 0..T-1``.
    """
    n = torch.arange(T, dtype=torch.float64)[:, None]
    k = torch.arange(T, dtype=torch.float64)[None, :]
    v = torch.cos(math.pi * k * (n + 0.5) / T)
    c = torch.full((T,), math.sqrt(2.0 / T), dtype=torch.float64)
    c[0] = math.sqrt(1.0 / T)
    return v * c[None, :]


# ---------------------------------------------------------------------------------------------
# Frequencies and bands
# ---------------------------------------------------------------------------------------------
def normalised_frequency(T: int) -> torch.Tensor:
    """``nu_k = k / (T - 1)`` (T,), float64, in [0, 1]; ``[0.]`` for ``T = 1``."""
    if T <= 1:
        return torch.zeros(max(T, 0), dtype=torch.float64)
    return torch.arange(T, dtype=torch.float64) / (T - 1)


def _as_cuts(boundaries) -> torch.Tensor:
    b = torch.as_tensor(boundaries, dtype=torch.float64).detach().cpu().reshape(-1)
    if b.numel() and (bool((b <= 0).any()) or bool((b >= 1).any()) or bool((b[1:] <= b[:-1]).any())):
        raise ValueError(f"band cuts must be strictly increasing inside (0, 1), got {b.tolist()}")
    return b


def band_index(T: int, boundaries, nonempty: bool = False) -> torch.Tensor:
    """Band of each coefficient of a length-``T`` sequence (T,) long, from the ``K - 1`` cuts in (0, 1).

    ``nonempty=True``: a sequence of at least ``K`` steps gets at least one coefficient in every band.
    Cuts fitted on a spectrum whose DC coefficient holds most of the energy can both fall below the
    first non-zero frequency ``1 / (T - 1)`` of every short sequence, which leaves a band empty for all of
    them (equal energy cannot split one coefficient); there the first coefficient of an empty band is
    moved up from the band below (or down from the band above at the top), keeping bands contiguous
    and ordered. Sequences shorter than ``K`` keep the plain rule.
    """
    cuts = _as_cuts(boundaries)
    nu = normalised_frequency(T)
    idx = torch.bucketize(nu + _FREQ_EPS, cuts, right=True)
    K = cuts.numel() + 1
    if not nonempty or T < K or K == 1:
        return idx
    # starts[b] = index of the first coefficient of band b (b = 1..K-1); bands are contiguous ranges
    starts = [int((idx < b).sum()) for b in range(1, K)]
    for b in range(K - 1):                       # every band below b + 1 keeps a coefficient ...
        starts[b] = max(starts[b], (starts[b - 1] if b else 0) + 1)
    for b in reversed(range(K - 1)):             # ... and every band above it too
        starts[b] = min(starts[b], (starts[b + 1] if b + 1 < K - 1 else T) - 1)
    edges = torch.tensor(starts, dtype=torch.int64)
    return torch.bucketize(torch.arange(T), edges, right=True)


@lru_cache(maxsize=4096)
def _band_slices_cached(T: int, cuts: tuple[float, ...], nonempty: bool = False) -> tuple[tuple[int, int], ...]:
    idx = band_index(T, cuts, nonempty)
    out = []
    for b in range(len(cuts) + 1):
        sel = torch.nonzero(idx == b).flatten()
        if sel.numel() == 0:
            # an empty band: an empty slice placed where the band would start
            start = int((idx < b).sum())
            out.append((start, start))
        else:
            out.append((int(sel[0]), int(sel[-1]) + 1))
    return tuple(out)


def band_slices(T: int, boundaries, nonempty: bool = False) -> tuple[tuple[int, int], ...]:
    """Contiguous coefficient ranges ``[(start, end), ...]`` of the K bands for length ``T`` (cached).

    Bands are contiguous because the basis is sorted by frequency; a band can be empty for short T
    (for ``T >= K`` never with ``nonempty``, see :func:`band_index`).
    """
    cuts = tuple(float(c) for c in _as_cuts(boundaries).tolist())
    return _band_slices_cached(int(T), cuts, bool(nonempty))


def equal_width_boundaries(K: int) -> torch.Tensor:
    """The equidistant cuts ``[1/K, ..., (K-1)/K]`` (the placeholder before fitting)."""
    return torch.arange(1, K, dtype=torch.float64) / K


# ---------------------------------------------------------------------------------------------
# Transforms on padded batches
# ---------------------------------------------------------------------------------------------
def sequence_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Real lengths (B,) long from a prefix mask (B, L)."""
    return mask.to(torch.int64).sum(1)


def _unique_lengths(mask: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """Unique real lengths (a Python list) and each sample's index into it (B,) on mask's device."""
    uniq, inv = torch.unique(sequence_lengths(mask), return_inverse=True)
    return [int(t) for t in uniq.tolist()], inv


def padded_basis(mask: torch.Tensor, dtype: torch.dtype = torch.float32, cache: bool = True
                 ) -> torch.Tensor:
    """Per-sample eigenbasis zero-padded to the batch length: (B, L, L), ``[i, :T_i, :T_i] = U_{T_i}``
    ((1, L, L) when every sample has the same length).

    Built from one cached basis per unique length (bucketed batches have few), so every transform
    below is a handful of batched matrix products whatever the mix of lengths.
    """
    B, L = mask.shape
    uniq, inv = _unique_lengths(mask)
    mats = []
    for T in uniq:
        if T == 0:
            mats.append(torch.zeros(L, L, dtype=dtype, device=mask.device))
        else:
            u = path_graph_basis(T, dtype, mask.device, cache)[1]
            mats.append(u if T == L else torch.nn.functional.pad(u, (0, L - T, 0, L - T)))
    if len(mats) == 1:
        return mats[0].unsqueeze(0)  # (1, L, L): broadcasts in the products below, no copy
    return torch.stack(mats)[inv]


@lru_cache(maxsize=8192)
def _band_index_cached(T: int, cuts: tuple[float, ...], nonempty: bool = False) -> torch.Tensor:
    return band_index(T, cuts, nonempty)


def band_masks(mask: torch.Tensor, boundaries, dtype: torch.dtype = torch.float32, nonempty: bool = False
               ) -> torch.Tensor:
    """(B, K, L) 0/1: coefficient ``k`` of sample ``i`` belongs to band ``b`` (and ``k < T_i``);
    ``nonempty``: see :func:`band_index`."""
    cuts = tuple(float(c) for c in _as_cuts(boundaries).tolist())
    K = len(cuts) + 1
    B, L = mask.shape
    uniq, inv = _unique_lengths(mask)
    rows = torch.full((len(uniq), L), -1, dtype=torch.int64)
    for r, T in enumerate(uniq):
        if T > 0:
            rows[r, :T] = _band_index_cached(T, cuts, bool(nonempty))
    ids = rows.to(mask.device)[inv]                                              # (B, L)
    return (ids[:, None, :] == torch.arange(K, device=mask.device)[None, :, None]).to(dtype)


def graph_fourier(x: torch.Tensor, mask: torch.Tensor, cache: bool = True) -> torch.Tensor:
    """Graph Fourier coefficients ``C_i = U_{T_i}^T X_i`` of each sample on its own path graph.

    Args:
        x: (B, L, D) features, padded at the end.
        mask: (B, L) bool prefix mask (True = real position). All-False rows give zeros.
    Returns:
        (B, L, D): coefficient ``k`` of sample ``i`` at index ``k < T_i`` (low to high frequency);
        zeros at ``k >= T_i``.
    """
    u = padded_basis(mask, x.dtype, cache)
    return u.transpose(1, 2) @ (x * mask[..., None].to(x.dtype))


def inverse_graph_fourier(coeffs: torch.Tensor, mask: torch.Tensor, cache: bool = True) -> torch.Tensor:
    """Inverse of :func:`graph_fourier`: ``X_i = U_{T_i} C_i`` (B, L, D), zeros on padding."""
    u = padded_basis(mask, coeffs.dtype, cache)
    return u @ (coeffs * mask[..., None].to(coeffs.dtype))


def band_decompose(x: torch.Tensor, mask: torch.Tensor, boundaries, cache: bool = True, nonempty: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Band components and graph Fourier coefficients in one pass.

    ``X_b = U_b (U_b^T X)`` per sample, with ``U_b`` the basis columns whose normalised frequency lies in
    band ``b`` (see the module docstring); computed as ``U (m_b * (U^T X))`` with the padded
    per-sample basis and band masks ``m_b``: ``(K + 1) L^2 D`` multiply-adds per sample in ``K + 1``
    batched products.

    Args:
        x: (B, L, D); mask: (B, L) bool prefix mask; boundaries: the K - 1 cuts in (0, 1);
        nonempty: every band keeps a coefficient when ``T_i >= K`` (:func:`band_index`).
    Returns:
        components (B, K, L, D) with ``components.sum(1) == x`` on real positions and zeros on padding;
        coefficients (B, L, D) as :func:`graph_fourier`.
    """
    u = padded_basis(mask, x.dtype, cache)                                       # (B, L, L)
    coeffs = u.transpose(1, 2) @ (x * mask[..., None].to(x.dtype))              # (B, L, D)
    m = band_masks(mask, boundaries, x.dtype, nonempty)                          # (B, K, L)
    comps = u[:, None] @ (m[..., None] * coeffs[:, None])                        # (B, K, L, D)
    return comps, coeffs


def band_components(x: torch.Tensor, mask: torch.Tensor, boundaries, cache: bool = True) -> torch.Tensor:
    """Band components (B, K, L, D) of ``x`` (B, L, D); they sum back to ``x`` on real positions."""
    return band_decompose(x, mask, boundaries, cache)[0]


def band_energy(coeffs: torch.Tensor, mask: torch.Tensor, boundaries, nonempty: bool = False) -> torch.Tensor:
    """Energy ``sum_{k in b, d} C_k^2`` per sample and band (B, K) from coefficients (B, L, D).

    (By orthonormality this also equals ``||X_b||^2`` of the band component.)
    """
    m = band_masks(mask, boundaries, coeffs.dtype, nonempty)                     # (B, K, L)
    return (m * coeffs.pow(2).sum(-1)[:, None, :]).sum(-1)


# ---------------------------------------------------------------------------------------------
# Training-set spectra and Equal-Energy Partitioning
# ---------------------------------------------------------------------------------------------
def _bin_of(T: int, num_bins: int) -> torch.Tensor:
    nu = normalised_frequency(T)
    return torch.floor(nu * num_bins + _FREQ_EPS).clamp(0, num_bins - 1).to(torch.int64)


def spectrum_energy(x: torch.Tensor, mask: torch.Tensor, num_bins: int = 128
                    ) -> tuple[torch.Tensor, int]:
    """Spectral energy of a batch on ``num_bins`` equal-width bins of normalised frequency.

    Args:
        x: (B, L, D); mask: (B, L) prefix mask.
    Returns:
        ``(energy (num_bins,) float64 on CPU, number of non-empty samples)``: bin ``j`` holds
        ``sum_i sum_{k: nu_k in [j/F, (j+1)/F)} ||C_{i,k}||^2`` (the top bin also holds ``nu = 1``).
    """
    coeffs = graph_fourier(x.detach(), mask)
    e = coeffs.to(torch.float64).pow(2).sum(-1).cpu()  # (B, L)
    out = torch.zeros(num_bins, dtype=torch.float64)
    lengths = sequence_lengths(mask).cpu()
    n = 0
    for T in torch.unique(lengths).tolist():
        if T <= 0:
            continue
        rows = e[lengths == T, :T].sum(0)  # (T,)
        out.index_add_(0, _bin_of(int(T), num_bins), rows)
        n += int((lengths == T).sum())
    return out, n


class SpectrumAccumulator:
    """Running average spectral energy over batches (the training split), per bin of ``nu``."""

    def __init__(self, num_bins: int = 128):
        self.num_bins = int(num_bins)
        self.total = torch.zeros(self.num_bins, dtype=torch.float64)
        self.count = 0

    def update(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        e, n = spectrum_energy(x, mask, self.num_bins)
        self.total += e
        self.count += n

    def mean_spectrum(self) -> torch.Tensor:
        """(F,) float64: average energy per sample in each bin."""
        return self.total / max(self.count, 1)


def equal_energy_boundaries(mean_spectrum: torch.Tensor | Sequence[float] | np.ndarray, K: int = 3
                            ) -> torch.Tensor:
    """Equal-Energy Partitioning: the ``K - 1`` cuts (float64 fractions of normalised frequency).

    Args:
        mean_spectrum: (F,) non-negative energy per equal-width bin of ``nu`` over [0, 1]
            (e.g. :meth:`SpectrumAccumulator.mean_spectrum` of the training split).
        K: number of bands.
    Returns:
        (K - 1,) cuts ``beta_b = e_b / F`` on bin edges ``1 <= e_1 < ... < e_{K-1} <= F - 1``; each
        ``e_b`` is the edge whose cumulative energy fraction is nearest to ``b / K``, then pushed so
        every band keeps at least one bin. A zero spectrum gives the equidistant cuts.
    """
    s = torch.as_tensor(mean_spectrum, dtype=torch.float64).detach().cpu().reshape(-1).clamp_min(0.0)
    F = s.numel()
    if K < 1:
        raise ValueError("K must be >= 1")
    if K == 1:
        return torch.zeros(0, dtype=torch.float64)
    if F < K:
        raise ValueError(f"need at least K={K} bins, got {F}")
    total = float(s.sum())
    if total <= 0:
        return equal_width_boundaries(K)
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(s, 0) / total])  # (F+1,) at edges
    edges = []
    for b in range(1, K):
        e = int(torch.argmin((cum - b / K).abs()))
        lo = (edges[-1] + 1) if edges else 1
        hi = F - (K - b)
        edges.append(min(max(e, lo), hi))
    return torch.tensor(edges, dtype=torch.float64) / F
