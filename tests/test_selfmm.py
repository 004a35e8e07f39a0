"""Self-MM (FEMF's and Atsuko's Table 1 baseline): the unimodal label generation from class centres against its
equations written out, centres without zero labels, the momentum over epochs, no unimodal gradient in the first
epoch, the optimiser's groups, a resumed run carrying the memory, both layouts, and learning on the built-in
data."""

import dataclasses

import numpy as np
import pytest
import torch

from mser_lib.checks import ConfigError
from mser_lib.data.batch import DatasetInfo
from mser_lib.models import build_model
from mser_lib.models.registry import build_config
from mser_lib.models.selfmm import TASKS, SelfMMConfig, generated_labels

from helpers import split_batch, tiny_dataset


def test_generated_labels_follow_the_relative_distances_to_the_class_centres():
    """a = (D_n - D_p) / D_p per task; y_s = (y_m a_s / a_m + y_m + a_s - a_m) / 2, clipped to [-H, H]."""
    g = torch.Generator().manual_seed(0)
    f = {t: torch.randn(6, 3, generator=g, dtype=torch.float64) for t in TASKS}
    centres = {t: (torch.randn(3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64))
               for t in TASKS}
    y_m = torch.tensor([2.0, -1.0, 0.5, 0.0, -2.5, 1.2], dtype=torch.float64)
    got = generated_labels(f, centres, y_m, bound=3.0)
    for i in range(6):
        def a(t, i=i):
            d_p = np.linalg.norm(f[t][i] - centres[t][0])
            d_n = np.linalg.norm(f[t][i] - centres[t][1])
            return (d_n - d_p) / (d_p + 1e-8)
        for s in ("text", "audio", "vision"):
            want = 0.5 * y_m[i].item() * a(s) / (a("fusion") + 1e-8) + 0.5 * (y_m[i].item() + a(s) - a("fusion"))
            assert got[s][i].item() == pytest.approx(float(np.clip(want, -3, 3)), rel=1e-9)
    # a feature at the positive centre of every task pushes nothing: y_s = y_m when a_s = a_m
    same = {t: centres["fusion"][0].expand(2, 3) for t in TASKS}
    one = generated_labels(same, {t: centres["fusion"] for t in TASKS}, torch.tensor([1.5, -0.5], dtype=torch.float64),
                           3.0)
    torch.testing.assert_close(one["text"], torch.tensor([1.5, -0.5], dtype=torch.float64))


def _model(layout="sequence", n=(12, 2, 2)):
    ds = tiny_dataset(layout, dims=(5, 4, 3), n=n)
    torch.manual_seed(0)
    model = build_model("selfmm", ds.info, "quick")
    model.prepare(ds)
    return ds, model.train()


def test_the_first_epoch_trains_no_unimodal_head_and_keeps_the_labels():
    ds, model = _model()
    y = torch.as_tensor(ds.train.labels)
    out = model(split_batch(ds))
    assert out.aux_losses["unimodal"].item() == 0.0          # w_s = tanh(|y_s - y_m|) = 0 while y_s = y_m
    for k in range(len(TASKS)):
        torch.testing.assert_close(model.labels[k], y)
    assert bool(model.filled.all())
    assert int(model.seen.max()) == 1


def test_the_second_epoch_moves_the_labels_with_momentum_from_the_centres():
    ds, model = _model()
    batch = split_batch(ds)
    model(batch)                                               # epoch 1: memory filled, labels unchanged
    before = model.labels.clone()
    centres = model.centres()
    y = torch.as_tensor(ds.train.labels)
    for k, t in enumerate(TASKS):
        lab = before[k]
        feats = getattr(model, f"features_{t}")
        torch.testing.assert_close(centres[t][0], feats[lab > 0].mean(0))     # zero labels in neither class
        torch.testing.assert_close(centres[t][1], feats[lab < 0].mean(0))
    torch.manual_seed(5)
    out = model(batch)                                         # epoch 2 (n = 2): y = 1/3 old + 2/3 new
    assert out.aux_losses["unimodal"].item() == 0.0            # the loss reads the labels before the update
    feats = {t: getattr(model, f"features_{t}") for t in TASKS}    # this batch's features (stored after)
    new = generated_labels(feats, centres, y, model.config.label_bound)
    for k, t in enumerate(TASKS[1:], start=1):
        torch.testing.assert_close(model.labels[k], before[k] / 3 + 2 / 3 * new[t])
    torch.testing.assert_close(model.labels[0], y)             # the multimodal labels never change
    out = model(batch)                                         # epoch 3: the unimodal heads now learn
    assert out.aux_losses["unimodal"].item() > 0
    assert int(model.seen.max()) == 3


def test_evaluation_and_foreign_samples_leave_the_memory_alone():
    ds, model = _model()
    model(split_batch(ds))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    model(split_batch(ds))
    model.train()
    foreign = dataclasses.replace(split_batch(ds, "valid"), ids=[f"elsewhere {i}" for i in range(2)])
    assert model(foreign).aux_losses == {}                      # not a training sample: no memory, no aux loss
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_a_checkpoint_carries_the_memory_into_a_fresh_model():
    ds, model = _model()
    model(split_batch(ds))
    model(split_batch(ds))
    fresh = build_model("selfmm", ds.info, "quick")
    fresh.load_state_dict(model.state_dict())                   # sized from the checkpoint, prepared or not
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_position_layout_has_one_slot_per_utterance():
    ds, model = _model("position", n=(6, 2, 2))
    batch = split_batch(ds)
    out = model(batch)
    assert out.prediction.shape == batch.labels.shape
    assert int(model.filled.sum()) == int(batch.label_mask.sum())
    assert torch.equal(model.filled[:, :batch.label_mask.shape[1]], batch.label_mask)


def test_the_lstm_subnets_train_at_their_own_rate():
    ds, model = _model()
    groups = model.param_groups(1e-3, 1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 5e-3]
    sub = {id(p) for p in list(model.audio.parameters()) + list(model.vision.parameters())}
    assert {id(p) for p in groups[1]["params"]} == sub
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))


def test_paper_preset_is_mmsa_config_per_dataset():
    dims = {"text": 4, "audio": 3, "vision": 2}
    mosi = build_config("selfmm", DatasetInfo("mosi-bclstm", "position", "regression", "mosi", dims), "paper")
    assert (mosi.audio_lstm, mosi.vision_lstm, mosi.audio_out, mosi.vision_out) == (16, 32, 16, 32)
    assert (mosi.fusion_dim, mosi.text_dim, mosi.audio_dim, mosi.vision_dim) == (128, 32, 16, 32)
    assert (mosi.fusion_dropout, mosi.text_dropout, mosi.audio_dropout, mosi.vision_dropout) == (0.0, 0.1, 0.1, 0.0)
    assert (mosi.label_bound, mosi.subnet_lr_scale) == (3.0, 5.0)
    sims = build_config("selfmm", DatasetInfo("sims", "sequence", "regression", "sims", dims), "paper")
    assert (sims.label_bound, sims.vision_lstm, sims.text_dim) == (1.0, 64, 64)


def test_bad_settings_and_classification_are_refused():
    with pytest.raises(ConfigError, match="label_bound"):
        SelfMMConfig(label_bound=0.0)
    info = DatasetInfo("intent", "sequence", "classification", "intent", {"text": 4, "audio": 3, "vision": 2},
                       num_classes=3)
    with pytest.raises(ValueError, match="regression"):
        build_model("selfmm", info, "quick")
