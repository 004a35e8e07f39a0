"""Path-graph Laplacian bases, graph Fourier transforms and equal-energy bands (Atsuko eq. 1)."""

from __future__ import annotations

import math

import pytest
import torch

from mser_lib.spectral import graph as G


@pytest.mark.parametrize("T", [1, 2, 3, 8, 37])
def test_eigenbasis_orthonormal_ordered_and_exact(T):
    lap = G.path_graph_laplacian(T)
    evals, U = G.path_graph_eigh(T)
    eye = torch.eye(T, dtype=torch.float64)
    assert torch.allclose(U.T @ U, eye, atol=1e-10)
    assert torch.allclose(lap @ U, U * evals[None, :], atol=1e-10)
    assert bool((evals[1:] > evals[:-1]).all())                      # strictly low -> high frequency
    if T > 1:  # closed form of the normalised path Laplacian
        k = torch.arange(T, dtype=torch.float64)
        assert torch.allclose(evals, 1 - torch.cos(math.pi * k / (T - 1)), atol=1e-10)
    # sign convention: the first entry of every basis vector is positive
    assert bool((U[0] > 0).all())
    # frequency grows with the index: number of sign changes of column k is k
    changes = []
    for k in range(T):
        s = torch.sign(U[:, k][U[:, k].abs() > 1e-9])   # ignore exact zeros (e.g. a middle node)
        changes.append(int((s[1:] != s[:-1]).sum()))
    assert changes == list(range(T))


def test_combinatorial_laplacian_has_dct2_eigenvectors():
    T = 12
    lap = G.combinatorial_laplacian(T)
    V = G.dct2_basis(T)
    k = torch.arange(T, dtype=torch.float64)
    lam = 2 - 2 * torch.cos(math.pi * k / T)
    assert torch.allclose(V.T @ V, torch.eye(T, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(lap @ V, V * lam[None, :], atol=1e-10)
    # eigh of D - A gives the same vectors up to sign
    _, U = torch.linalg.eigh(lap)
    assert torch.allclose((U.T @ V).abs(), torch.eye(T, dtype=torch.float64), atol=1e-8)
    # ... whereas the normalised Laplacian's basis (eq. 1) is not the DCT (degree-1 end nodes)
    _, Un = G.path_graph_eigh(T)
    assert not torch.allclose((Un.T @ V).abs(), torch.eye(T, dtype=torch.float64), atol=1e-3)


def test_basis_cache_per_length_dtype_device():
    G.basis_cache_clear()
    a = G.path_graph_basis(9, torch.float32)
    b = G.path_graph_basis(9, torch.float32)
    assert a[1] is b[1]                                   # cached object
    c = G.path_graph_basis(9, torch.float64)
    assert c[1].dtype == torch.float64
    assert c[1] is not a[1]
    info = G.basis_cache_info()
    assert info["eigh_misses"] == 1
    assert info["cast_entries"] == 2
    d = G.path_graph_basis(9, torch.float32, cache=False)
    assert d[1] is not a[1]
    assert torch.equal(d[1], a[1])


def _padded_batch(lengths, L, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), L, D, generator=g)
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None], mask


def test_fourier_roundtrip_parseval_and_padding():
    x, mask = _padded_batch([7, 12, 3, 7, 0], 12, 5)
    c = G.graph_fourier(x, mask)
    assert torch.allclose(G.inverse_graph_fourier(c, mask), x, atol=1e-5)
    assert torch.allclose(c.pow(2).sum((1, 2)), x.pow(2).sum((1, 2)), rtol=1e-5)   # orthonormal basis
    assert bool((c[~mask] == 0).all())                   # nothing beyond T_i, empty row all zero


def test_band_components_sum_to_input_are_orthogonal_and_zero_on_padding():
    x, mask = _padded_batch([20, 9, 14, 20, 1, 0], 20, 4)
    cuts = [0.2, 0.55]
    comps = G.band_components(x, mask, cuts)
    assert comps.shape == (6, 3, 20, 4)
    assert torch.allclose(comps.sum(1), x, atol=1e-5)
    assert bool((comps.permute(0, 2, 1, 3)[~mask] == 0).all())
    gram = torch.einsum("bkld,bjld->bkj", comps, comps)   # per-sample inner products of bands
    off = gram - torch.diag_embed(torch.diagonal(gram, dim1=1, dim2=2))
    assert off.abs().max() < 1e-4 * gram.abs().max()


def test_padded_sequence_is_not_a_longer_graph():
    """A sample padded into a longer batch has exactly the components of the same sample alone."""
    x, mask = _padded_batch([11, 25, 6], 25, 3, seed=1)
    cuts = [0.1, 0.4]
    comps, coeffs = G.band_decompose(x, mask, cuts)
    for i, T in enumerate([11, 25, 6]):
        alone, c_alone = G.band_decompose(x[i:i + 1, :T], torch.ones(1, T, dtype=torch.bool), cuts)
        assert torch.allclose(comps[i, :, :T], alone[0], atol=1e-6)
        assert torch.allclose(coeffs[i, :T], c_alone[0], atol=1e-6)
    # using the padded length's basis would give something else
    wrong = G.band_components(x[2:3], torch.ones(1, 25, dtype=torch.bool), cuts)
    assert not torch.allclose(wrong[0, :, :6], comps[2, :, :6], atol=1e-3)


def test_band_index_uses_normalised_frequency():
    cuts = [0.25, 0.5]
    for T in (5, 9, 33):
        idx = G.band_index(T, cuts)
        nu = torch.arange(T, dtype=torch.float64) / (T - 1)
        expect = (nu >= 0.25).long() + (nu >= 0.5).long()
        assert torch.equal(idx, expect)
        slices = G.band_slices(T, cuts)
        assert slices[0][0] == 0
        assert slices[-1][1] == T
        assert all(slices[b][1] == slices[b + 1][0] for b in range(2))   # contiguous partition
    with pytest.raises(ValueError):
        G.band_index(5, [0.5, 0.25])


def _long_tail_signals(n, seed, lengths=(16, 40)):
    """AR(1)-like sequences of varying length: energy concentrated at low graph frequency."""
    g = torch.Generator().manual_seed(seed)
    L = lengths[1]
    lens = torch.randint(lengths[0], lengths[1] + 1, (n,), generator=g)
    eps = torch.randn(n, L, 6, generator=g)
    x = torch.zeros(n, L, 6)
    for t in range(L):
        x[:, t] = (0.5 * x[:, t - 1] if t else 0) + eps[:, t]
    mask = torch.arange(L)[None, :] < lens[:, None]
    return x * mask[..., None], mask


def test_equal_energy_boundaries_split_training_spectra_equally():
    x, mask = _long_tail_signals(400, seed=0)
    acc = G.SpectrumAccumulator(num_bins=64)
    for s in range(0, 400, 50):                      # accumulated batch by batch, like the trainer
        acc.update(x[s:s + 50], mask[s:s + 50])
    cuts = G.equal_energy_boundaries(acc.mean_spectrum(), 3)
    assert cuts.shape == (2,)
    assert 0 < cuts[0] < cuts[1] < 1
    assert cuts[0] < 1 / 3                           # long tail: the low band is narrow

    def fractions(xx, mm, cc):
        _, coeffs = G.band_decompose(xx, mm, cc)
        e = G.band_energy(coeffs, mm, cc).sum(0)
        return e / e.sum()

    frac = fractions(x, mask, cuts)
    assert (frac - 1 / 3).abs().max() < 0.05, frac
    # equidistant bands are far from equal on this spectrum (what the paper's partition fixes)
    eq = fractions(x, mask, G.equal_width_boundaries(3))
    assert eq[0] > 0.6
    assert eq[2] < 0.15
    # the boundaries transfer to new sequences of the same process (and other lengths)
    x2, m2 = _long_tail_signals(300, seed=1, lengths=(10, 48))
    assert (fractions(x2, m2, cuts) - 1 / 3).abs().max() < 0.08


def test_equal_energy_boundaries_edge_cases():
    flat = torch.ones(30)
    assert torch.allclose(G.equal_energy_boundaries(flat, 3), torch.tensor([10 / 30, 20 / 30],
                                                                          dtype=torch.float64))
    assert G.equal_energy_boundaries(flat, 1).numel() == 0
    assert torch.allclose(G.equal_energy_boundaries(torch.zeros(16), 4), G.equal_width_boundaries(4))
    spike = torch.zeros(16)
    spike[0] = 100.0
    spike[1:] = 0.01
    cuts = G.equal_energy_boundaries(spike, 3)       # every band keeps at least one bin
    assert cuts.tolist() == [1 / 16, 2 / 16]


def test_dc_heavy_cuts_leave_no_band_empty_under_the_nonempty_rule():
    # a spectrum whose DC bin holds 80 % of the energy: both equal-energy cuts land on the first bin edge
    spectrum = torch.full((128,), 0.2 / 127, dtype=torch.float64)
    spectrum[0] = 0.8
    cuts = G.equal_energy_boundaries(spectrum, 3)
    assert float(cuts[1]) <= 2 / 128
    for T in range(3, 66):
        exact = G.band_index(T, cuts)
        assert not bool((exact == 1).any()), T                   # the middle band is empty for every T
        idx = G.band_index(T, cuts, nonempty=True)
        counts = torch.bincount(idx, minlength=3)
        assert int(counts.min()) >= 1, (T, counts.tolist())
        assert bool((idx[1:] >= idx[:-1]).all())                 # bands stay contiguous and ordered
    # components still sum back to the signal
    x = torch.randn(4, 9, 5, dtype=torch.float64)
    mask = torch.arange(9)[None] < torch.tensor([9, 7, 3, 2])[:, None]
    comps, _ = G.band_decompose(x, mask, cuts, nonempty=True)
    torch.testing.assert_close(comps.sum(1), x * mask[..., None])
    assert G.band_index(2, cuts, nonempty=True).tolist() == G.band_index(2, cuts).tolist()   # T < K: unchanged
