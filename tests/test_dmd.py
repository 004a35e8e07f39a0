"""DMD (Atsuko's Table 1 baseline): its margin loss and graph distillation against the authors' loops written out
plainly (float64), the decoupling terms, padding and both layouts, the paper preset and refusals. Learning on the
built-in data: tests/test_baselines_learn.py."""

import pytest
import torch
import torch.nn.functional as F

from mser_lib.checks import ConfigError
from mser_lib.data.batch import DatasetInfo
from mser_lib.models import build_model
from mser_lib.models.dmd import EDGES, DMDConfig, GraphDistillation, margin_loss
from mser_lib.models.registry import build_config

from helpers import as_double, check_layout_and_padding, split_batch, tiny_dataset


def _model(layout="sequence", n=(8, 2, 2)):
    ds = tiny_dataset(layout, dims=(5, 4, 3), n=n)
    torch.manual_seed(0)
    return ds, build_model("dmd", ds.info, "quick").double()


def _hinge_as_the_code_loops(ids, feats):
    """mdswyz/DMD HingeLoss.forward, one anchor at a time (its cosine with the 1e-8 under the square root)."""
    B = len(feats)
    norm = (feats.pow(2).sum(1) + 1e-8).sqrt()
    cos = (feats @ feats.T) / (norm[:, None] * norm[None, :])
    loss, count = 0.0, 0
    for i in range(B):
        others = [k for k in range(B) if k != i]
        sim = [k for k in others if ids[k] == ids[i]]
        dif = [k for k in others if ids[k] != ids[i]]
        if not sim or not dif:
            continue
        terms = [max(0.0, 0.15 * abs(float(ids[i] - ids[n])) - float(cos[i, k]) + float(cos[i, n]))
                 for k in sim for n in dif]
        loss += sum(terms) / len(terms)
        count += 1
    return loss / max(count, 1)


def test_margin_loss_is_the_codes_hinge_loss():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(12, 6, generator=g, dtype=torch.float64)
    ids = torch.tensor([0.4, 0.4, 0.4, -1.2, -1.2, -1.2, 2.0, 2.0, 2.0, 0.4, 0.4, 0.4], dtype=torch.float64)
    want = _hinge_as_the_code_loops(ids, feats)
    for chunk in (1, 50, 1 << 22):                   # the chunking of the pairs changes nothing
        torch.testing.assert_close(margin_loss(feats, ids, 0.15, chunk), torch.tensor(want, dtype=torch.float64))
    # no anchor with both a same-label and an other-label row: 0, not a division by zero
    assert float(margin_loss(feats[:3], ids[:3])) == 0.0


def test_graph_distillation_is_the_codes_kernel_loop():
    """edges: per sample a softmax over the six edges of W_e[z_j; z_i] / 8; the loss sums, over the edges (j <- i),
    mean_n (e + prior) |y_j - y_i| and, for the heterogeneous graph, 10 mean_n (e + prior) * mean max(0, cos)."""
    cfg = DMDConfig()
    torch.manual_seed(0)
    graph = GraphDistillation(4, 3, (0.0, 0.0, 1.0, 0.0, 1.0, 1.0), cfg, repr_kind="min_cosine").double()
    logits = torch.randn(3, 5, dtype=torch.float64)
    reprs = torch.randn(3, 5, 4, dtype=torch.float64)
    edges = graph.edges(logits, reprs)
    assert edges.shape == (6, 5)
    torch.testing.assert_close(edges.sum(0), torch.ones(5, dtype=torch.float64))
    z = [torch.cat([graph.w_logit(logits[m][:, None]), graph.w_repr(reprs[m])], 1) for m in range(3)]
    raw = torch.cat([graph.w_edge(torch.cat([z[j], z[i]], 1)) for j, i in EDGES], 1)
    torch.testing.assert_close(edges, torch.softmax(raw / 8, 1).T)
    prior = torch.softmax(torch.tensor([0, 0, 1, 0, 1, 1], dtype=torch.float64) / 0.25, 0)
    reg, logit, rep = graph.loss(logits, reprs, edges)
    torch.testing.assert_close(reg, 10 * (edges.mean(1) - prior).pow(2).sum())
    want_logit = want_rep = 0.0
    for x, (j, i) in enumerate(EDGES):
        w = edges[x] + prior[x]
        want_logit = want_logit + ((logits[j] - logits[i]).abs() * w).mean()
        cos = F.relu(F.cosine_similarity(reprs[j], reprs[i], dim=1, eps=1e-12)).mean()
        want_rep = want_rep + 10 * cos * w.mean()
    torch.testing.assert_close(logit, want_logit)
    torch.testing.assert_close(rep, want_rep)
    # the teacher is detached: the gradient of the logit term is the students' side only,
    # d/dy_m = sum over edges (m <- i) of (e + prior) sign(y_m - y_i) / N
    logits.requires_grad_(True)
    _, logit, _ = graph.loss(logits, reprs, edges.detach())
    logit.backward()
    want = torch.zeros_like(logits)
    for x, (j, i) in enumerate(EDGES):
        want[j] += (edges[x] + prior[x]).detach() * torch.sign(logits[j] - logits[i]).detach() / logits.shape[1]
    torch.testing.assert_close(logits.grad, want)


def test_every_part_gets_a_gradient_and_the_loss_holds_the_codes_terms():
    ds, model = _model()
    model.train()
    batch = as_double(split_batch(ds))
    out = model(batch)
    assert set(out.aux_losses) == {"heads", "graph_distillation", "decouple", "margin_ort"}
    total, parts = model.loss(out, batch)
    torch.testing.assert_close(total, sum(parts.values()))
    total.backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []
    # evaluation: the prediction only
    assert model.eval()(batch).aux_losses == {}


def test_loss_terms_read_real_steps_only():
    """The same batch with every sequence padded by 3 more steps gives the same prediction and loss terms (dropout
    off): the codes are zero on padding, L_rec, L_cyc, L_ort and the pooled vectors average over real steps, and
    no attention reads a padded step."""
    import dataclasses

    import torch.nn.functional as F

    ds = tiny_dataset("sequence", dims=(5, 4, 3), n=(8, 2, 2))
    torch.manual_seed(0)
    off = {k: 0.0 for k in ("text_dropout", "attn_dropout", "attn_dropout_audio", "embed_dropout", "output_dropout")}
    model = build_model("dmd", ds.info, "quick", **off).double().train()
    batch = as_double(split_batch(ds))
    pad = {}
    for m in ("text", "audio", "vision"):
        pad[m] = F.pad(getattr(batch, m), (0, 0, 0, 3))
        pad[f"{m}_mask"] = F.pad(getattr(batch, f"{m}_mask"), (0, 3), value=False)
    longer = dataclasses.replace(batch, **pad)
    a, c = model(batch), model(longer)
    torch.testing.assert_close(a.prediction, c.prediction, rtol=1e-10, atol=1e-12)
    for k in a.aux_losses:
        torch.testing.assert_close(a.aux_losses[k], c.aux_losses[k], rtol=1e-10, atol=1e-12)


def test_private_and_shared_codes_are_zero_on_padding_and_l_ort_reads_real_steps():
    """Changing a padded step's features changes no loss term (the convolutions and the encoders see zeros)."""
    ds, model = _model()
    model.train()
    batch = as_double(split_batch(ds))
    lengths = batch.mask("audio").sum(1)
    b = int(torch.argmin(lengths))
    assert lengths[b] < batch.mask("audio").shape[1]
    noisy = as_double(split_batch(ds))
    noisy.audio[b, int(lengths[b]):] = 7.0
    torch.manual_seed(3)
    a = model(batch)
    torch.manual_seed(3)
    c = model(noisy)
    for k in a.aux_losses:
        torch.testing.assert_close(a.aux_losses[k], c.aux_losses[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_layouts_and_padding(layout):
    ds, model = _model(layout)
    check_layout_and_padding(model.eval(), ds)


def test_paper_preset_is_the_codes_config():
    """mdswyz/DMD config/config.json (MOSI, and MOSEI) and run.py (graph sizes 64 / 32)."""
    dims = {"text": 4, "audio": 3, "vision": 2}
    mosi = build_config("dmd", DatasetInfo("mosi-bclstm", "position", "regression", "mosi", dims), "paper")
    assert (mosi.d_model, mosi.num_heads, mosi.num_layers, mosi.memory_layers) == (50, 10, 4, 4)
    assert (mosi.text_dropout, mosi.attn_dropout, mosi.attn_dropout_audio, mosi.attn_dropout_vision) == (
        0.5, 0.3, 0.2, 0.0)
    assert (mosi.embed_dropout, mosi.output_dropout, mosi.gd_size_homo, mosi.gd_size_hetero) == (0.2, 0.5, 64, 32)
    mosei = build_config("dmd", DatasetInfo("mosei", "sequence", "regression", "mosi", dims), "paper")
    assert (mosei.d_model, mosei.num_heads, mosei.conv_kernel_audio, mosei.conv_kernel_vision) == (30, 6, 1, 3)
    assert (mosei.text_dropout, mosei.attn_dropout, mosei.embed_dropout) == (0.3, 0.4, 0.0)


def test_bad_settings_and_classification_are_refused():
    with pytest.raises(ConfigError, match="d_model"):
        DMDConfig(d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match="conv_kernel_text"):
        DMDConfig(conv_kernel_text=2)
    with pytest.raises(ConfigError, match="gd_temperature"):
        DMDConfig(gd_temperature=0.0)
    info = DatasetInfo("intent", "sequence", "classification", "intent", {"text": 4, "audio": 3, "vision": 2},
                       num_classes=3)
    with pytest.raises(ValueError, match="regression"):
        build_model("dmd", info, "quick")
