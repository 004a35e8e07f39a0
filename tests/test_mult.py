"""MulT (Atsuko's Table 1 and Table 3 baseline): the crossmodal attention equal to its written formula, the
six crossmodal transformers reading every real source step and no padded one, padding that changes nothing,
both layouts, MMSA's configuration pinned, and learning on the built-in data."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mser_lib.checks import ConfigError
from mser_lib.data import Batch
from mser_lib.data.batch import DatasetInfo, collate
from mser_lib.models import build_model
from mser_lib.models.mult import SOURCES, CrossmodalLayer, MulTConfig
from mser_lib.models.registry import build_config

from helpers import tiny_dataset


def _batch(ds, split="train", index=None, double=False):
    data = getattr(ds, split)
    b = collate(data, np.arange(len(data.labels)) if index is None else np.asarray(index), ds.info.layout)
    if double:
        b = Batch(**{k: (v.double() if torch.is_tensor(v) and torch.is_floating_point(v) else v)
                     for k, v in vars(b).items()})
    return b


def test_crossmodal_attention_equals_its_formula_per_sample():
    """Y_t = x_t + W_o softmax(Q K^T / sqrt(d_h)) V with Q from LN(x_t), K, V from LN(x_s) (one LayerNorm),
    then the ReLU feed-forward: written out head by head for each sample over its real source steps, in
    float64, against the batched layer on padded sources of unequal length."""
    torch.manual_seed(0)
    d, heads = 8, 2
    layer = CrossmodalLayer(d, heads, 0.0, 0.0, 0.0).double().eval()
    x = torch.randn(3, 4, d, dtype=torch.float64)
    src = torch.randn(3, 6, d, dtype=torch.float64)
    lengths = [6, 3, 1]
    mask = torch.arange(6)[None] < torch.tensor(lengths)[:, None]
    got = layer(x, src, mask)
    ln = layer.ln_attn
    Wk, Wv = layer.kv.weight[:d], layer.kv.weight[d:]
    bk, bv = layer.kv.bias[:d], layer.kv.bias[d:]
    dh = d // heads
    for i, n in enumerate(lengths):
        q = ln(x[i]) @ layer.q.weight.T + layer.q.bias                           # (L_t, d)
        s = ln(src[i, :n])
        k, v = s @ Wk.T + bk, s @ Wv.T + bv                                      # (n, d)
        heads_out = [torch.softmax(q[:, h * dh:(h + 1) * dh] @ k[:, h * dh:(h + 1) * dh].T / math.sqrt(dh), -1)
                     @ v[:, h * dh:(h + 1) * dh] for h in range(heads)]
        y = x[i] + layer.out(torch.cat(heads_out, -1))
        y = y + layer.fc2(F.relu(layer.fc1(layer.ln_ffn(y))))
        torch.testing.assert_close(got[i], y, rtol=1e-12, atol=1e-12)


def test_six_crossmodal_transformers_read_every_real_source_step_and_no_padded_one():
    ds = tiny_dataset("sequence", dims=(5, 4, 3), n=(6, 2, 2))
    torch.manual_seed(0)
    model = build_model("mult", ds.info, "quick").double().eval()
    assert sorted(model.cross) == sorted(f"{s}_to_{t}" for t in SOURCES for s in SOURCES[t])
    assert len(model.cross) == 6
    batch = _batch(ds, double=True)
    batch.audio.requires_grad_(True)
    H = model.streams(batch)
    w = torch.randn(H["text"].shape, dtype=torch.float64)      # (a plain sum would cancel in the LayerNorm)
    (H["text"] * w).sum().backward()                  # the text stream reads audio only through A -> L
    g = batch.audio.grad.abs().sum(-1)                                           # (B, L_a)
    assert torch.all(g[batch.audio_mask] > 0)
    assert torch.all(g[~batch.audio_mask] == 0)


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_padding_changes_no_prediction(layout):
    """A sample scored alone (no padding) and inside a padded batch: the same prediction."""
    ds = tiny_dataset(layout, n=(8, 2, 2))
    torch.manual_seed(0)
    model = build_model("mult", ds.info, "quick").double().eval()
    batch = _batch(ds, double=True)
    pred = model(batch).prediction
    assert pred.shape == batch.labels.shape
    assert torch.isfinite(pred).all()
    for i in range(len(batch)):
        one = model(_batch(ds, index=[i], double=True))
        if layout == "sequence":
            torch.testing.assert_close(one.prediction[0], pred[i], rtol=1e-10, atol=1e-12)
        else:
            n = int(batch.label_mask[i].sum())
            torch.testing.assert_close(one.prediction[0, :n], pred[i, :n], rtol=1e-10, atol=1e-12)


def test_a_missing_modality_gives_a_zero_stream_and_a_finite_prediction():
    ds = tiny_dataset("sequence")
    torch.manual_seed(0)
    model = build_model("mult", ds.info, "quick").eval()
    batch = collate(ds.train, np.arange(4), "sequence", present=np.array([[1, 0, 1]] * 4, dtype=bool))
    H = model.streams(batch)
    assert torch.all(H["audio"] == 0)
    assert H["text"].abs().sum() > 0
    out = model(batch).prediction
    assert out.shape == (4,)
    assert torch.isfinite(out).all()


def test_paper_preset_is_mmsa_config_per_dataset():
    """thuiar/MMSA config_regression.json, entry "mult"."""
    mosi = build_config("mult", DatasetInfo("mosi-bclstm", "position", "regression", "mosi",
                                            {"text": 4, "audio": 3, "vision": 2}), "paper")
    assert (mosi.d_model, mosi.num_heads, mosi.num_layers, mosi.memory_layers) == (50, 10, 4, 4)
    assert (mosi.conv_kernel_text, mosi.conv_kernel_audio, mosi.conv_kernel_vision) == (5, 5, 5)
    assert (mosi.text_dropout, mosi.attn_dropout, mosi.attn_dropout_audio, mosi.attn_dropout_vision) == (
        0.5, 0.3, 0.2, 0.0)
    assert (mosi.relu_dropout, mosi.res_dropout, mosi.embed_dropout, mosi.output_dropout) == (0.0, 0.0, 0.2, 0.5)
    mosei = build_config("mult", DatasetInfo("mosei", "sequence", "regression", "mosei",
                                             {"text": 4, "audio": 3, "vision": 2}), "paper")
    assert (mosei.d_model, mosei.num_heads, mosei.conv_kernel_audio, mosei.conv_kernel_vision) == (30, 6, 1, 3)
    assert (mosei.text_dropout, mosei.attn_dropout, mosei.attn_dropout_audio, mosei.embed_dropout) == (
        0.3, 0.4, 0.0, 0.0)


def test_crossmodal_attention_dropout_is_the_sources():
    """MMSA's get_network('la') (text with audio) takes attn_dropout_a: the dropout follows the modality read."""
    from mser_lib.models import build_model

    info = DatasetInfo("mosi-bclstm", "position", "regression", "mosi", {"text": 4, "audio": 3, "vision": 2})
    net = build_model("mult", info, "paper")
    want = {"text": 0.3, "audio": 0.2, "vision": 0.0}
    for name, cm in net.cross.items():
        src = name.split("_to_")[0]
        assert {layer.attn_dropout for layer in cm.layers} == {want[src]}, name
    assert all(layer.attn_dropout == 0.3 for t in net.memory.values() for layer in t.layers)


def test_bad_settings_are_refused_with_the_field():
    with pytest.raises(ConfigError, match="d_model"):
        MulTConfig(d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match="conv_kernel_audio"):
        MulTConfig(conv_kernel_audio=4)
    with pytest.raises(ConfigError, match="embed_dropout"):
        MulTConfig(embed_dropout=1.0)
