"""The mask-aware DFT low/high split (FEMF eq. 8) and the reference code's cutoff rule
(docs/reference-differences.md, row 1)."""

import pytest
import torch

from mser_lib.spectral.dft import (
    cutoff_bins,
    dft_split,
    real_lengths,
    reference_bins_removed,
    reference_cutoff_split,
)


def _batch(lengths, L=None, D=5, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    L = L or int(lengths.max())
    x = torch.randn(len(lengths), L, D, generator=g, dtype=dtype)
    mask = torch.arange(L)[None, :] < lengths[:, None]
    return x, mask


@pytest.mark.parametrize("method", ["matrix", "fft"])
@pytest.mark.parametrize("ratio", [0.0, 0.4, 0.6, 1.0])
def test_split_is_exact_orthogonal_and_zero_on_padding(method, ratio):
    x, mask = _batch([0, 1, 2, 3, 7, 16, 23, 24], L=26)
    low, high = dft_split(x, mask, ratio, method=method)
    m = mask.unsqueeze(-1)
    assert torch.allclose(low + high, x * m, atol=1e-5)            # low + high == x on real positions
    assert low[~mask].abs().max() == 0
    assert high[~mask].abs().max() == 0
    # orthogonal bands: per sample and channel, <low, high> = 0 and energies add up
    cross = (low * high).sum(1)
    energy = (x * m).pow(2).sum(1)
    assert cross.abs().max() < 1e-4 * energy.max()
    assert torch.allclose(low.pow(2).sum(1) + high.pow(2).sum(1), energy, rtol=1e-4, atol=1e-5)


def test_padding_never_enters_the_spectrum():
    x, mask = _batch([5, 9, 12], L=12)
    y = x.clone()
    y[~mask] = 1e3                                                  # garbage on padding
    for method in ("matrix", "fft"):
        a = dft_split(x, mask, 0.6, method)
        b = dft_split(y, mask, 0.6, method)
        assert torch.allclose(a[0], b[0], atol=1e-5)
        assert torch.allclose(a[1], b[1], atol=1e-4)


def test_bands_are_band_limited():
    x, mask = _batch([20, 20], L=20, D=3)
    low, high = dft_split(x, mask, 0.6, "matrix")
    c = cutoff_bins(20, 0.6)                                        # 11 bins, 7 kept low
    assert c == 7
    spec_low, spec_high = torch.fft.rfft(low, dim=1), torch.fft.rfft(high, dim=1)
    assert spec_low[:, c:].abs().max() < 1e-4
    assert spec_high[:, :c].abs().max() < 1e-4
    assert spec_high[:, c:].abs().max() > 0.1                      # something really is high


def test_short_sequences_T1_T2():
    x, mask = _batch([1, 2], L=2, D=4)
    low, high = dft_split(x, mask, 0.6)
    # T = 1: one bin (DC), everything is low
    assert torch.allclose(low[0, 0], x[0, 0])
    assert high[0].abs().max() == 0
    # T = 2, ratio 0.6: c = 1, low = mean, high = the alternating part
    mean = x[1].mean(0)
    assert torch.allclose(low[1], mean.expand(2, -1), atol=1e-6)
    assert torch.allclose(high[1, 0], -high[1, 1], atol=1e-6)
    low_all, high_all = dft_split(x, mask, 1.0)
    assert high_all.abs().max() < 1e-6
    assert torch.allclose(low_all, x * mask.unsqueeze(-1), atol=1e-6)


def test_cutoff_rule():
    # c = round(ratio * (T // 2 + 1)), clamped to [1, T // 2 + 1]; DC always low
    assert [cutoff_bins(t, 0.6) for t in range(1, 10)] == [1, 1, 1, 2, 2, 2, 2, 3, 3]
    assert cutoff_bins(9, 0.4) == 2                                 # 0.4 * 5 = 2.0000000000000004
    assert cutoff_bins(24, 0.0) == 1
    assert cutoff_bins(24, 1.0) == 13
    assert cutoff_bins(0, 0.5) == 0
    with pytest.raises(ValueError):
        cutoff_bins(5, 1.5)


def test_matrix_and_fft_agree_and_are_differentiable():
    x, mask = _batch([3, 8, 13, 40], L=40, D=3, dtype=torch.float64)
    a = dft_split(x, mask, 0.4, "matrix")
    b = dft_split(x, mask, 0.4, "fft")
    assert torch.allclose(a[0], b[0], atol=1e-10)
    xs = x[:2, :8, :2].clone().requires_grad_(True)
    ms = mask[:2, :8]
    assert torch.autograd.gradcheck(lambda t: dft_split(t, ms, 0.5, "matrix")[1], (xs,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda t: dft_split(t, ms, 0.5, "fft")[1], (xs,), fast_mode=True)


@pytest.mark.parametrize("method", ["matrix", "fft"])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.bfloat16])
def test_split_runs_in_fp32_under_autocast(method, in_dtype):
    """Under bfloat16 autocast (AMP) the split still runs in float32: bands are float32 and as exact
    as outside autocast (a bfloat16 matmul would be off by about 1e-2)."""
    x, mask = _batch([3, 7, 16, 23, 24], L=26, D=16)
    x = x.to(in_dtype)
    ref_low, ref_high = dft_split(x.double(), mask, 0.6, method=method)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, high = dft_split(x, mask, 0.6, method=method)
    assert low.dtype == high.dtype == torch.float32
    assert torch.allclose(low.double(), ref_low, atol=1e-5)
    assert torch.allclose(high.double(), ref_high, atol=1e-5)
    assert torch.allclose(low + high, x.float() * mask.unsqueeze(-1), atol=1e-5)
    assert dft_split(x.double(), mask, 0.6, method=method)[0].dtype == torch.float64


def test_femf_band_split_is_fp32_under_autocast():
    """FEMF's Fourier layer (eq. 8) under bfloat16 autocast: the bands (and their energies) are float32."""
    from mser_lib.data import DatasetInfo, collate
    from mser_lib.models.femf import FEMF, FEMFConfig

    from helpers import tiny_split

    info = DatasetInfo("tiny", "sequence", "regression", "mosi", {"text": 6, "audio": 5, "vision": 4})
    split = tiny_split(6, lengths=[3, 9, 1, 12, 5, 7], dims=(6, 5, 4), layout="sequence", seed=0)
    b = collate(split, list(range(6)), "sequence")
    torch.manual_seed(0)
    model = FEMF(info, FEMFConfig(hidden=16, heads=2, expert_depth=1, dropout=0.0))
    model.set_stage("full")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(b)
    assert out.diagnostics["band_energy"].dtype == torch.float32
    assert torch.isfinite(out.prediction.float()).all()


def test_long_sequences_use_fft_path():
    x, mask = _batch([150, 300], L=300, D=2)
    low, high = dft_split(x, mask, 0.3)                             # auto -> fft
    assert torch.allclose(low + high, x * mask.unsqueeze(-1), atol=1e-5)


def test_non_prefix_mask_is_rejected():
    mask = torch.tensor([[True, False, True]])
    with pytest.raises(ValueError, match="padding at the end"):
        real_lengths(mask)


def test_reference_rule_cuts_nothing_for_T_at_least_3():
    """Reference code (docs/reference-differences.md, row 1): c = int(T * 0.9) indexes T // 2 + 1
    bins, so for T >= 3 no bin is removed
    and the reference's high band is float32 rounding noise (~1e-7 of the norm, ~1e-14 of the
    energy), whereas mser's rule at the same ratio leaves a real high band."""
    assert reference_bins_removed(2) == 1
    assert all(reference_bins_removed(t) == 0 for t in range(3, 200))
    x, mask = _batch([63] * 4, L=63, D=16)
    low, high = reference_cutoff_split(x, 0.9)
    norm_ratio = float(high.norm() / x.norm())
    assert norm_ratio < 1e-6
    assert float(high.pow(2).sum() / x.pow(2).sum()) < 1e-11
    ours = dft_split(x, mask, 0.9)[1]
    assert float(ours.pow(2).sum() / x.pow(2).sum()) > 0.02         # white noise: ~(32-29)/63 of energy
