"""MISA (Atsuko's Table 1 and Table 3 baseline): CMD and the difference loss against their definitions, the
shared encoder shared by every modality, each loss reaching what it constrains, both layouts, MMSA's
configuration pinned, and learning on the built-in data."""

import itertools

import numpy as np
import pytest
import torch

from mser_lib.checks import ConfigError
from mser_lib.data.batch import DatasetInfo
from mser_lib.models import build_model
from mser_lib.models.misa import MISAConfig, cmd, diff_loss
from mser_lib.models.registry import build_config

from helpers import check_layout_and_padding, split_batch, tiny_dataset


def test_cmd_is_the_central_moment_discrepancy_written_out():
    g = torch.Generator().manual_seed(0)
    x1 = torch.rand(50, 4, generator=g, dtype=torch.float64)
    x2 = torch.rand(60, 4, generator=g, dtype=torch.float64) ** 2
    want = np.linalg.norm(x1.numpy().mean(0) - x2.numpy().mean(0))
    for k in range(2, 6):
        c1 = ((x1.numpy() - x1.numpy().mean(0)) ** k).mean(0)
        c2 = ((x2.numpy() - x2.numpy().mean(0)) ** k).mean(0)
        want += np.linalg.norm(c1 - c2)
    assert cmd(x1, x2, 5).item() == pytest.approx(want, rel=1e-12)
    assert cmd(x1, x1, 5).item() == 0.0
    # the first moment alone is the distance of the means; shifting both samples changes nothing
    assert cmd(x1 + 3.0, x2 + 3.0, 5).item() == pytest.approx(want, rel=1e-9)


def test_cmd_gradient_is_finite_where_two_moments_are_equal_and_plain_elsewhere():
    """Two codes silenced to the same constant (equal moments: the square root's derivative is infinite there)
    give a zero gradient, not NaN, which had ended a MISA run on the classification benchmark; elsewhere the
    value and gradient are the plain norm's."""
    x = torch.zeros(8, 4, requires_grad=True)
    y = torch.zeros(8, 4, requires_grad=True)
    cmd(x, y, 5).backward()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(y.grad).all()
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(16, 3, generator=g, dtype=torch.float64)
    m1, m2 = a.mean(0), b.mean(0)                                  # the expression cmd used before
    s1, s2 = a - m1, b - m2
    plain = (m1 - m2).pow(2).sum().sqrt()
    for k in (2, 3):
        plain = plain + (s1.pow(k).mean(0) - s2.pow(k).mean(0)).pow(2).sum().sqrt()
    ga = torch.autograd.grad(plain, a)[0]
    ours = cmd(a, b, 3)
    assert ours.item() == plain.item()
    assert torch.equal(torch.autograd.grad(ours, a)[0], ga)


def test_difference_loss_is_zero_for_orthogonal_spaces_and_grows_with_overlap():
    g = torch.Generator().manual_seed(0)
    # A lives on the first 20 rows, B on the last 20, each centred there: every product a_n b_n' is 0
    a, b = torch.zeros(40, 6, dtype=torch.float64), torch.zeros(40, 6, dtype=torch.float64)
    a[:20] = torch.randn(20, 6, generator=g, dtype=torch.float64)
    b[20:] = torch.randn(20, 6, generator=g, dtype=torch.float64)
    a[:20] -= a[:20].mean(0)
    b[20:] -= b[20:].mean(0)
    assert diff_loss(a, b).item() == pytest.approx(0.0, abs=1e-18)        # (centring leaves ~1e-16)
    # written out: centre columns, rows to unit length, mean of the squared cross-correlation
    x, y = torch.randn(40, 5, generator=g, dtype=torch.float64), torch.randn(40, 5, generator=g, dtype=torch.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc, yc = xc / (xc.norm(dim=1, keepdim=True) + 1e-6), yc / (yc.norm(dim=1, keepdim=True) + 1e-6)
    assert diff_loss(x, y).item() == pytest.approx(((xc.T @ yc) ** 2).mean().item(), rel=1e-12)
    assert diff_loss(x, x).item() > diff_loss(x, y).item()


def test_one_shared_encoder_and_each_loss_reaches_what_it_constrains():
    ds = tiny_dataset("sequence", dims=(5, 4, 3), n=(12, 2, 2))
    torch.manual_seed(0)
    model = build_model("misa", ds.info, "quick").train()
    out = model(split_batch(ds))
    assert set(out.aux_losses) == {"sim", "diff", "recon"}
    assert out.diagnostics["representations"].shape == (12, 6, model.config.hidden)

    def grads(loss):
        model.zero_grad()
        loss.backward(retain_graph=True)
        return {n: p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()}

    sim = grads(out.aux_losses["sim"])          # CMD between shared vectors: the shared encoder, no private one
    assert sim["shared.0.weight"]
    assert not any(sim[n] for n in sim if n.startswith(("private", "recon", "predict")))
    diff = grads(out.aux_losses["diff"])        # orthogonality: shared and every private encoder
    assert diff["shared.0.weight"]
    assert all(diff[f"private.{m}.0.weight"] for m in ("text", "audio", "vision"))
    rec = grads(out.aux_losses["recon"])        # reconstruction: the decoders
    assert all(rec[f"recon.{m}.weight"] for m in ("text", "audio", "vision"))
    model.eval()
    assert model(split_batch(ds)).aux_losses == {}


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_layouts_and_padding(layout):
    ds = tiny_dataset(layout, n=(8, 2, 2))
    torch.manual_seed(0)
    check_layout_and_padding(build_model("misa", ds.info, "quick").double().eval(), ds)


def test_paper_preset_is_mmsa_config_per_dataset():
    """thuiar/MMSA config_regression.json, entry "misa" (CMD as the similarity loss)."""
    dims = {"text": 4, "audio": 3, "vision": 2}
    mosi = build_config("misa", DatasetInfo("mosi-bclstm", "position", "regression", "mosi", dims), "paper")
    assert (mosi.hidden, mosi.dropout, mosi.sim_weight, mosi.diff_weight, mosi.recon_weight) == (
        128, 0.2, 0.3, 0.1, 1.0)
    assert (mosi.cmd_moments, mosi.fusion_heads) == (5, 2)
    mosei = build_config("misa", DatasetInfo("mosei", "sequence", "regression", "mosei", dims), "paper")
    assert (mosei.dropout, mosei.sim_weight, mosei.diff_weight, mosei.recon_weight) == (0.5, 0.8, 0.3, 1.0)


def test_bad_settings_are_refused_with_the_field():
    with pytest.raises(ConfigError, match="hidden"):
        MISAConfig(hidden=7, fusion_heads=2)
    with pytest.raises(ConfigError, match="sim_weight"):
        MISAConfig(sim_weight=-1.0)


def test_the_pairs_of_the_losses_are_the_papers():
    """L_sim over the three pairs of shared vectors; L_diff over shared-private per modality and the three
    private pairs: checked by recomputing both from the representations the model returns."""
    ds = tiny_dataset("sequence", dims=(5, 4, 3), n=(10, 2, 2))
    torch.manual_seed(0)
    model = build_model("misa", ds.info, "quick").train()
    torch.manual_seed(1)
    out = model(split_batch(ds))
    reps = out.diagnostics["representations"]
    p = {"text": reps[:, 0], "vision": reps[:, 1], "audio": reps[:, 2]}
    s = {"text": reps[:, 3], "vision": reps[:, 4], "audio": reps[:, 5]}
    cfg = model.config
    sim = sum(cmd(s[a], s[b], 5) for a, b in itertools.combinations(("text", "vision", "audio"), 2)) / 3
    diff = sum(diff_loss(p[m], s[m]) for m in p) + sum(diff_loss(p[a], p[b])
                                                      for a, b in itertools.combinations(p, 2))
    torch.testing.assert_close(out.aux_losses["sim"], cfg.sim_weight * sim)
    torch.testing.assert_close(out.aux_losses["diff"], cfg.diff_weight * diff)
