"""MMIM (FEMF's and Atsuko's Table 1 baseline): its two mutual-information bounds against their formulas written
out (float64), the entropy estimate's memory, the two passes of an epoch each moving only its own parameters,
both layouts, the paper preset per dataset, and refusals. Learning on the built-in data:
tests/test_baselines_learn.py."""

import numpy as np
import pytest
import torch

from mser_lib.checks import ConfigError
from mser_lib.data.batch import DatasetInfo
from mser_lib.models import build_model
from mser_lib.models.mmim import MMIMConfig, cpc_loss, mixture_entropy
from mser_lib.models.registry import build_config
from mser_lib.train import TrainConfig
from mser_lib.train.trainer import _make_optimizer, train_epoch, train_passes

from helpers import check_layout_and_padding, split_batch, tiny_dataset


def _model(layout="sequence", n=(24, 4, 4), **over):
    ds = tiny_dataset(layout, dims=(5, 4, 3), n=n)
    torch.manual_seed(0)
    return ds, build_model("mmim", ds.info, "quick", **over)


def test_the_likelihood_term_is_the_gaussian_quadratic_written_out():
    """lld = mean_n sum_k -(mu_k(x_n) - y_nk)^2 / (2 exp(logvar_k(x_n))), the authors' code's form."""
    _, model = _model()
    bound = model.bounds["text_vision"].double()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 8, generator=g, dtype=torch.float64)
    mu, logvar = bound.mu(x).detach().numpy(), bound.logvar(x).detach().numpy()
    want = np.mean([sum(-(mu[n, k] - y[n, k].item()) ** 2 / (2 * np.exp(logvar[n, k])) for k in range(8))
                    for n in range(7)])
    assert bound.lld(x, y).item() == pytest.approx(want, rel=1e-12)


def test_the_mixture_entropy_is_a_quarter_of_the_two_log_determinants():
    g = torch.Generator().manual_seed(2)
    pos, neg = torch.randn(9, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    cov = [np.cov(z.numpy(), rowvar=False, bias=True) for z in (pos, neg)]
    want = 0.25 * sum(np.linalg.slogdet(c)[1] for c in cov)
    assert mixture_entropy(pos, neg).item() == pytest.approx(want, rel=1e-12)
    assert mixture_entropy(pos, neg[:3]) is None         # 3 rows in 3 dimensions: a singular covariance


def test_cpc_is_the_normalised_contrastive_score_written_out():
    g = torch.Generator().manual_seed(3)
    h, p = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    hn = h.numpy() / np.linalg.norm(h.numpy(), axis=1, keepdims=True)
    pn = p.numpy() / np.linalg.norm(p.numpy(), axis=1, keepdims=True)
    s = hn @ pn.T
    want = -np.mean([s[n, n] - np.log(np.exp(s[n]).sum()) for n in range(5)])
    assert cpc_loss(h, p).item() == pytest.approx(want, rel=1e-12)
    # predictions pointing at their own targets score better than shuffled ones
    assert cpc_loss(h, h).item() < cpc_loss(h, h[torch.tensor([1, 2, 3, 4, 0])]).item()


def test_the_entropy_term_reads_the_previous_batch_from_the_third_batch_on():
    ds, model = _model()
    model.train()
    model.set_pass("main")
    batches = [split_batch(ds, index=np.arange(8 * i, 8 * i + 8)) for i in range(3)]
    torch.manual_seed(0)
    outs = [model(b) for b in batches[:2]]
    assert all("entropy" not in o.aux_losses for o in outs)          # the code's i_batch > mem_size
    memory = {k: [(p.clone(), n.clone()) for p, n in v] for k, v in model._memory.items()}
    out = model(batches[2])
    h, _ = model._encode(batches[2])
    labels = batches[2].labels
    want = 0.0
    for key in ("text_vision", "text_audio"):
        proj = model.bounds[key].project(h[key.split("_")[1]])
        (old_pos, old_neg), = memory[key]
        want = want + mixture_entropy(torch.cat([old_pos, proj[labels > 0]]), torch.cat([old_neg, proj[labels < 0]]))
    torch.testing.assert_close(out.aux_losses["entropy"], -model.config.ba_weight * want)
    model.set_pass("main")                                              # a new pass starts with no memory
    assert "entropy" not in model(batches[2]).aux_losses


def test_each_pass_steps_only_its_own_parameters():
    ds, model = _model()
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-2, progress=False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(params, cfg, model)
    bounds = {id(p) for p in model.bounds.parameters()}
    projections = {id(p) for b in model.bounds.values() for p in b.project.parameters()}
    for name in ("mmilb", "main"):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        model.set_pass(name)
        sums, n = train_epoch(model, opt, params, ds.train, ds.info, cfg, 0, 0, "cpu",
                              only=model.pass_parameters(name))
        assert n == 3
        moved = {id(p) for k, p in model.named_parameters() if not torch.equal(p, before[k])}
        # the entropy's projections belong to the estimators but only the main pass reads them: they never
        # move, as in the authors' code
        assert moved == (bounds - projections if name == "mmilb" else {id(p) for p in params} - bounds), name
        if name == "mmilb":
            assert set(sums) == {"neg_lld", "total"}                     # no task loss in the estimators' pass
        else:
            assert {"task", "cpc", "ba", "entropy"} <= set(sums)


def test_an_epoch_makes_both_passes_and_the_mosei_one_goes_over_half_the_batches():
    ds, model = _model(mmilb_fraction=0.5)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3, progress=False)
    params = list(model.parameters())
    opt = _make_optimizer(params, cfg, model)
    seen = []
    forward = model.forward
    model.forward = lambda batch: (seen.append(model._pass), forward(batch))[1]
    means = train_passes(model, opt, params, ds.train, ds.info, cfg, 0, 0, "cpu")
    assert seen == ["mmilb"] * 2 + ["main"] * 3                          # ceil(3 / 2) batches, then all 3
    assert "mmilb_neg_lld" in means
    assert "task" in means
    assert "neg_lld" not in means


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_layouts_and_padding(layout):
    ds, model = _model(layout, n=(8, 2, 2))
    check_layout_and_padding(model.double().eval(), ds)


def test_position_layout_trains_both_passes():
    ds, model = _model("position", n=(10, 2, 2))
    model.train()
    model.set_pass("main")
    out = model(split_batch(ds))
    assert out.prediction.shape == split_batch(ds).labels.shape
    assert {"cpc", "ba"} <= set(out.aux_losses)


def test_paper_preset_is_mmsa_config_per_dataset():
    """thuiar/MMSA config_regression.json, entry "mmim" (the same for mosi, mosei and sims)."""
    dims = {"text": 4, "audio": 3, "vision": 2}
    mosi = build_config("mmim", DatasetInfo("mosi-bclstm", "position", "regression", "mosi", dims), "paper")
    assert (mosi.audio_hidden, mosi.vision_hidden, mosi.audio_out, mosi.vision_out) == (16, 16, 16, 16)
    assert (mosi.fusion_dim, mosi.fusion_dropout, mosi.cpc_weight, mosi.ba_weight) == (128, 0.1, 0.1, 0.1)
    assert (mosi.add_va, mosi.memory_batches, mosi.mmilb_fraction) == (False, 1, 1.0)
    mosei = build_config("mmim", DatasetInfo("mosei", "sequence", "regression", "mosei", dims), "paper")
    assert mosei.mmilb_fraction == 0.5


def test_bad_settings_and_classification_are_refused():
    with pytest.raises(ConfigError, match="mmilb_fraction"):
        MMIMConfig(mmilb_fraction=0.0)
    with pytest.raises(ValueError, match="audio_out"):
        MMIMConfig(audio_out=3)
    info = DatasetInfo("intent", "sequence", "classification", "intent", {"text": 4, "audio": 3, "vision": 2},
                       num_classes=3)
    with pytest.raises(ValueError, match="regression"):
        build_model("mmim", info, "quick")
    _, model = _model()
    with pytest.raises(ValueError, match="passes"):
        model.set_pass("stage0")


def test_add_va_adds_the_third_bound():
    _, model = _model(add_va=True)
    assert set(model.bounds) == {"text_vision", "text_audio", "vision_audio"}
