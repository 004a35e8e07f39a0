"""TFN and LMF (Atsuko's Table 1 baselines): the tensor fusion with its appended 1, LMF's low-rank factors
equal to the full TFN weight they stand for, both layouts, and learning on the built-in data."""

import numpy as np
import pytest
import torch

from mser_lib.checks import ConfigError
from mser_lib.data import Batch
from mser_lib.models import build_model
from mser_lib.models.lmf import LMFConfig, full_weight
from mser_lib.models.tfn import TFNConfig, tensor_fusion

from helpers import split_batch, tiny_dataset


def test_tensor_fusion_is_the_outer_product_with_an_appended_one():
    g = torch.Generator().manual_seed(0)
    za, zv, zt = (torch.randn(5, k, generator=g, dtype=torch.float64) for k in (2, 3, 4))
    fused = tensor_fusion([za, zv, zt]).view(5, 3, 4, 5)
    one = torch.ones(5, 1, dtype=torch.float64)
    ref = torch.einsum("ni,nj,nk->nijk", torch.cat([one, za], 1), torch.cat([one, zv], 1), torch.cat([one, zt], 1))
    assert torch.equal(fused, ref)
    # the 1 keeps the unimodal and bimodal terms inside the trimodal tensor
    assert torch.equal(fused[:, 0, 0, 0], one[:, 0])
    assert torch.equal(fused[:, 1:, 0, 0], za)
    assert torch.equal(fused[:, 0, 1:, 0], zv)
    assert torch.equal(fused[:, 0, 0, 1:], zt)
    assert torch.equal(fused[:, 1:, 1:, 0], za[:, :, None] * zv[:, None, :])


def test_lmf_equals_the_full_tfn_weight_its_factors_stand_for():
    ds = tiny_dataset("sequence", dims=(5, 4, 3))
    torch.manual_seed(0)
    model = build_model("lmf", ds.info, "quick", text_hidden=6, audio_hidden=3, vision_hidden=2, rank=4).double()
    model.eval()
    batch = split_batch(ds)
    batch = Batch(**{k: (v.double() if torch.is_tensor(v) and torch.is_floating_point(v) else v)
                     for k, v in vars(batch).items()})
    z, _ = model.embed(batch)
    order = list(model.factors)
    W = full_weight(model, order)                                   # (prod (h_m + 1), 1)
    assert W.shape == (np.prod([z[m].shape[1] + 1 for m in order]), 1)
    h_full = tensor_fusion([z[m] for m in order]) @ W + model.fusion_bias
    torch.testing.assert_close(model(batch).prediction, h_full.squeeze(-1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["tfn", "lmf"])
def test_position_layout_scores_each_utterance_alone(name):
    """mosi-bclstm's layout: each real utterance is one sample, its prediction back at its position, padding 0;
    the same utterance in another video (another batch) gets the same prediction."""
    ds = tiny_dataset("position")
    torch.manual_seed(0)
    model = build_model(name, ds.info, "quick").eval()
    batch = split_batch(ds)
    pred = model(batch).prediction
    assert pred.shape == batch.labels.shape
    assert torch.all(pred[~batch.label_mask] == 0)
    one = split_batch(ds, index=[2])
    torch.testing.assert_close(model(one).prediction[0, :one.label_mask[0].sum()],
                               pred[2, :one.label_mask[0].sum()])


@pytest.mark.parametrize("name", ["tfn", "lmf"])
def test_sequence_layout_shapes_range_and_modality_subsets(name):
    ds = tiny_dataset("sequence")
    torch.manual_seed(0)
    for mods in ("tav", "ta", "v"):
        model = build_model(name, ds.info, "quick", modalities=mods)
        out = model(split_batch(ds)).prediction
        assert out.shape == (len(ds.train.labels),)
        assert torch.isfinite(out).all()
        if name == "tfn":          # TFN's sigmoid keeps a regression inside the label range
            assert out.min() > -3
            assert out.max() < 3
    out.sum().backward()           # a one-modality model still has a gradient path


def test_bad_settings_are_refused_with_the_field():
    with pytest.raises(ConfigError, match="rank"):
        LMFConfig(rank=0)
    with pytest.raises(ConfigError, match="post_fusion_dropout"):
        TFNConfig(post_fusion_dropout=1.0)
    with pytest.raises(ConfigError, match="modalities"):
        TFNConfig(modalities="tx")
