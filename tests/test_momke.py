"""MoMKE (FEMF's Table 1 baseline, on FEMF's features in that paper): an expert layer against its formula written
out per sample (float64), the two stages (unimodal experts, then every expert on every modality mixed by each
modality's router), padding, both layouts, the paper preset and refusals. Learning on the built-in data:
tests/test_baselines_learn.py."""

import pytest
import torch

from mser_lib.checks import ConfigError
from mser_lib.data.batch import DatasetInfo
from mser_lib.models import build_model
from mser_lib.models.momke import MODS, MoMKEConfig
from mser_lib.models.registry import build_config

from helpers import as_double, check_layout_and_padding, split_batch, tiny_dataset


def _model(layout="position", n=(8, 2, 2)):
    ds = tiny_dataset(layout, dims=(5, 4, 3), n=n)
    torch.manual_seed(0)
    return ds, build_model("momke", ds.info, "quick", depth=2).double()


def test_an_expert_layer_is_its_formula_written_out_per_sample():
    """s = softmax(q k^T / sqrt(d_h)) v over the real keys, per head, no output projection; out = s + MLP(s)."""
    _, model = _model()
    layer = model.experts["text"].layers[0].eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 16, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    got = layer(x, mask)
    H, dh = layer.heads, 16 // layer.heads
    for b in range(2):
        n = int(mask[b].sum())
        heads = []
        for h in range(H):
            cols = slice(h * dh, (h + 1) * dh)
            q, k, v = (f(x[b, :n])[:, cols] for f in (layer.q, layer.k, layer.v))
            heads.append(torch.softmax(q @ k.T / dh ** 0.5, dim=-1) @ v)
        s = torch.cat(heads, dim=-1)
        want = s + layer.mlp.fc2(torch.nn.functional.gelu(layer.mlp.fc1(s)))
        torch.testing.assert_close(got[b, :n], want, rtol=1e-10, atol=1e-12)


def test_stage_one_trains_each_modality_expert_on_its_own_loss():
    ds, model = _model()
    model.set_stage("experts")
    model.train()
    batch = as_double(split_batch(ds))
    out = model(batch)
    assert set(out.aux_losses) == set(MODS)
    total, parts = model.loss(out, batch)
    total.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert not any(n.startswith(("routers.", "fuse.", "head.")) for n in grads)
    assert all(any(n.startswith(f"experts.{m}.") for n in grads) for m in MODS)
    # the text loss reaches only the text expert and head
    model.zero_grad()
    model(batch).aux_losses["text"].backward()
    reached = {n.split(".")[0] + "." + n.split(".")[1] for n, p in model.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == {"proj.text", "experts.text", "unimodal.text"}


def test_stage_two_mixes_every_expert_on_every_modality_by_the_routers_weights():
    ds, model = _model()
    model.set_stage("full")
    model.eval()
    batch = as_double(split_batch(ds))
    out = model(batch)
    inputs, _ = model._inputs(batch)
    for m in MODS:
        x, mask = inputs[m]
        p = model.proj[m](x)
        w = torch.softmax(model.routers[m](p), dim=-1)
        torch.testing.assert_close(out.diagnostics[f"router_{m}"], w)
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w[..., 0]))
    # every expert reaches the prediction through every modality
    model.train()
    torch.manual_seed(0)
    model(batch).prediction.sum().backward()
    for e in MODS:
        assert model.experts[e].layers[0].q.weight.grad.abs().sum() > 0
    assert model.unimodal["text"].weight.grad is None


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_layouts_and_padding(layout):
    ds, model = _model(layout, n=(8, 2, 2))
    for stage in ("experts", "full"):
        model.set_stage(stage)
        check_layout_and_padding(model.eval(), ds)


def test_paper_preset_is_the_authors_run():
    """run_MoMKE_cmumosi.sh / run_MoMKE_cmumosei.sh: hidden 256, depth 4, 2 heads, dropout 0.5, no attention
    dropout, MLP ratio 1 (utils.build_model)."""
    dims = {"text": 4, "audio": 3, "vision": 2}
    for name in ("mosi-bclstm", "mosei"):
        c = build_config("momke", DatasetInfo(name, "position", "regression", "mosi", dims), "paper")
        assert (c.hidden, c.depth, c.heads, c.dropout, c.attn_dropout, c.mlp_ratio) == (256, 4, 2, 0.5, 0.0, 1.0)


def test_bad_settings_and_classification_are_refused():
    with pytest.raises(ValueError, match="heads"):
        MoMKEConfig(hidden=10, heads=4)
    with pytest.raises(ConfigError, match="dropout"):
        MoMKEConfig(dropout=1.0)
    info = DatasetInfo("intent", "sequence", "classification", "intent", {"text": 4, "audio": 3, "vision": 2},
                       num_classes=3)
    with pytest.raises(ValueError, match="regression"):
        build_model("momke", info, "quick")
    _, model = _model()
    with pytest.raises(ValueError, match="stages"):
        model.set_stage("first")


def test_a_recorded_run_loads_the_weights_of_its_last_stage():
    """The analyses load a run's model from its last stage's checkpoints, whichever model trained in stages (they
    once assumed that only FEMF did, and a MoMKE run had 'no main/best.pt')."""
    from mser_lib.runs import _final_stage

    stages = [{"stage": "experts"}, {"stage": "full"}]
    assert _final_stage({"model": "momke", "stages": stages}) == "full"
    assert _final_stage({"model": "femf", "stages": [{"stage": "full"}]}) == "full"      # FEMF without experts
    assert _final_stage({"model": "tfn", "stages": [{"stage": None}]}) is None
    assert _final_stage({"model": "tfn"}) is None
