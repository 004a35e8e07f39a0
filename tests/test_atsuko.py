"""Atsuko (paper 001) and EMOE: switches, spectral bands, MCM gradients, layouts, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mser_lib.data.batch import DatasetInfo, MultimodalDataset, SplitData, collate, iterate_batches
from mser_lib.experiments import resolve_run
from mser_lib.models.atsuko import TABLE4_ROWS, Atsuko
from mser_lib.models.base import task_loss
from mser_lib.models.registry import build_config, build_model

DIMS = {"text": 6, "audio": 4, "vision": 5}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one intra-op thread is faster (and kinder to a shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
TINY = dict(d_model=16, num_heads=2, num_layers=1, ffn_mult=2, spectrum_bins=32)


def _split(n, L, seed, layout="sequence", task="regression", num_classes=None, min_len=3):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, L + 1, size=n)
    real = np.arange(L)[None, :] < lengths[:, None]
    arrays = {}
    for m, d in DIMS.items():
        x = rng.standard_normal((n, L, d)).astype(np.float32)
        x[..., 0] += np.cumsum(rng.standard_normal((n, L)), 1).astype(np.float32) * 0.3  # low-freq drift
        arrays[m] = np.where(real[..., None], x, 0).astype(np.float32)
        arrays[f"{m}_mask"] = real.copy()
    if layout == "sequence":
        score = (arrays["text"][..., 1] * real).sum(1) / lengths
        if task == "classification":
            labels = np.digitize(score, np.quantile(score, np.linspace(0, 1, num_classes + 1)[1:-1]))
            labels = labels.astype(np.int64)
        else:
            labels = np.clip(score * 3, -3, 3).astype(np.float32)
        label_mask = np.ones(n, dtype=bool)
    else:
        labels = np.clip(arrays["text"][..., 1] * 2, -3, 3).astype(np.float32) * real
        label_mask = real.copy()
    return SplitData(**arrays, labels=labels, label_mask=label_mask,
                     ids=np.array([f"s{seed}-{i}" for i in range(n)]))


def _dataset(layout="sequence", task="regression", num_classes=None, n=48, L=14):
    info = DatasetInfo(name="toy", layout=layout, task=task,
                       metric_family="classification" if task == "classification" else "mosi",
                       dims=dict(DIMS), num_classes=num_classes)
    return MultimodalDataset(info, *(_split(n, L, s, layout, task, num_classes) for s in (0, 1, 2)))


def _model(ds, name="atsuko", **kw):
    torch.manual_seed(0)
    return build_model(name, ds.info, "quick", **{**TINY, **kw})


def _batch(ds, n=12, split="train", present=None):
    return collate(ds.split(split), np.arange(n), ds.info.layout, present)


def _total(model, out, batch):
    return task_loss(out.prediction, batch, model.info.task) + sum(out.aux_losses.values())


# --------------------------------------------------------------------------------------------------
def test_forward_shapes_and_diagnostics_sequence_regression():
    ds = _dataset()
    model = _model(ds, diag_components=True)
    cuts = model.prepare(ds)["band_cuts"]
    assert np.array(cuts).shape == (3, 2)
    b = _batch(ds)
    model.eval()
    out = model(b)
    assert out.prediction.shape == (12,)
    d = out.diagnostics
    assert d["modality_weights"].shape == (12, 3)
    assert torch.allclose(d["modality_weights"].sum(-1), torch.ones(12), atol=1e-5)
    assert d["band_weights"].shape == (12, 3, 3)
    assert d["band_energy"].shape == (12, 3, 3)
    assert d["comp_target"].shape == (12, 3)
    assert d["bimodal_pred"].shape == (12, 3)
    L = max(b.text.shape[1], b.audio.shape[1], b.vision.shape[1])
    assert d["band_components"].shape == (12, 3, 3, L, 16)
    assert set(out.aux_losses) == {"unimodal", "bimodal", "routing", "entropy_modality", "entropy_band",
                                   "distill"}
    assert all(torch.isfinite(v) for v in out.aux_losses.values())
    view = model.spectral_view(b)
    comps = view["text"]["components"]
    assert torch.allclose(comps.sum(1), view["text"]["features"], atol=1e-4)   # bands sum to X_m


def test_band_masking_only_in_training():
    ds = _dataset()
    model = _model(ds, band_mask_rate=0.5)
    model.prepare(ds)
    b = _batch(ds)
    model.eval()
    o1, o2 = model(b), model(b)
    assert torch.equal(o1.prediction, o2.prediction)
    assert torch.equal(o1.diagnostics["band_weights_used"], o1.diagnostics["band_weights"])
    model.train()
    torch.manual_seed(1)
    used = model(b).diagnostics["band_weights_used"]
    dropped = used == 0
    assert 0.3 < dropped.float().mean() < 0.7                        # Bernoulli(0.5) on the weights
    model.config.band_mask_rate = 0.0
    o = model(b)
    assert torch.equal(o.diagnostics["band_weights_used"], o.diagnostics["band_weights"])


def test_routing_loss_stop_gradient_into_bimodal_branches():
    ds = _dataset()
    model = _model(ds)
    model.prepare(ds)
    model.train()
    out = model(_batch(ds))
    assert out.diagnostics["comp_target"].grad_fn is None
    model.zero_grad(set_to_none=True)
    out.aux_losses["routing"].backward()
    for name, p in model.bi_heads.named_parameters():
        assert p.grad is None or float(p.grad.abs().max()) == 0.0, name
    assert model.router.fc2.weight.grad is not None
    assert float(model.router.fc2.weight.grad.abs().max()) > 0
    # ... while the bimodal loss itself does train the branches and the shared encoders
    model.zero_grad(set_to_none=True)
    model(_batch(ds)).aux_losses["bimodal"].backward()
    assert float(model.bi_heads["text"].out.weight.grad.abs().max()) > 0
    assert model.encoders["audio"].norm.weight.grad is not None


def _param_shapes(model):
    return {k: tuple(v.shape) for k, v in model.named_parameters()}


def test_table4_switches_change_exactly_their_parts():
    ds = _dataset()
    sets = {row: _param_shapes(_model(ds, **over)) for row, over in TABLE4_ROWS.items()}
    base = sets["neither"]
    sbn_only = set(sets["sbn"]) - set(base)
    mcm_only = set(sets["mcm"]) - set(base)
    assert sbn_only
    assert all(k.startswith("band_routers.") for k in sbn_only)
    assert mcm_only
    assert all(k.startswith("bi_heads.") for k in mcm_only)
    assert set(base) <= set(sets["sbn"])
    assert set(base) <= set(sets["mcm"])
    assert set(sets["both"]) == set(base) | sbn_only | mcm_only
    for row in TABLE4_ROWS:
        assert all(sets[row][k] == base[k] for k in base)
    # "emoe" is the same network as the "neither" row, with EMOE's loss weights
    emoe = _model(ds, "emoe")
    assert _param_shapes(emoe) == base
    assert not hasattr(emoe, "band_cuts")
    cfg_e, cfg_a = build_config("emoe", ds.info, "quick"), build_config("atsuko", ds.info, "quick")
    assert (cfg_e.use_sbn, cfg_e.use_mcm, cfg_a.use_sbn, cfg_a.use_mcm) == (False, False, True, True)
    assert (cfg_a.entropy_weight, cfg_a.route_weight, cfg_a.distill_weight) == (1.0, 0.1, 0.1)
    out = emoe(_batch(ds))
    assert "emoe_target" in out.diagnostics
    assert "bimodal" not in out.aux_losses


def test_checkpoint_carries_band_boundaries():
    ds = _dataset()
    model = _model(ds)
    fitted = torch.tensor(model.prepare(ds)["band_cuts"], dtype=torch.float32)
    assert not torch.allclose(fitted, torch.tensor([[1 / 3, 2 / 3]] * 3))    # not the placeholder
    state = model.state_dict()
    assert torch.equal(state["band_cuts"], fitted)
    assert bool(state["band_fitted"])
    fresh = _model(ds)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.band_cuts, fitted)
    assert bool(fresh.band_fitted)
    model.eval()
    fresh.eval()
    b = _batch(ds)
    assert torch.allclose(model(b).prediction, fresh(b).prediction, atol=1e-6)


def test_padded_sample_gives_the_same_output_as_alone():
    ds = _dataset()
    model = _model(ds)
    model.prepare(ds)
    model.eval()
    split = ds.train
    i = int(np.argmin(split.lengths("text")))
    others = [j for j in range(12) if j != i]
    together = collate(split, np.array([i] + others), "sequence")
    alone = collate(split, np.array([i]), "sequence")
    assert together.text.shape[1] > alone.text.shape[1]
    a, t = model(alone), model(together)
    assert torch.allclose(a.prediction[0], t.prediction[0], atol=1e-5)
    assert torch.allclose(a.diagnostics["band_weights"][0], t.diagnostics["band_weights"][0], atol=1e-5)


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_missing_modality_rows_are_finite(layout):
    ds = _dataset(layout=layout)
    for path in ("pre", "post"):
        model = _model(ds, router_path=path)
        model.prepare(ds)
        present = np.ones((12, 3), dtype=bool)
        present[0] = [True, False, False]
        present[1] = [False, True, False]
        present[2] = [False, False, True]
        present[3] = [True, True, False]
        b = _batch(ds, present=present)
        model.train()
        out = model(b)
        assert torch.isfinite(out.prediction).all()
        loss = _total(model, out, b)
        assert torch.isfinite(loss)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        w = out.diagnostics["modality_weights"]
        if layout == "sequence":
            assert float(w[0, 1:].max()) < 1e-6
            assert float(w[2, :2].max()) < 1e-6
            assert float(out.diagnostics["comp_target"][1, 0]) < 1e-6
        else:
            assert w.shape == (12, b.text.shape[1], 3)
            assert out.prediction.shape == b.labels.shape


def test_position_layout_is_non_causal_per_position():
    ds = _dataset(layout="position")
    model = _model(ds)
    assert not model.encoders["text"].causal
    model.prepare(ds)
    model.eval()
    b = _batch(ds)
    out = model(b)
    assert out.prediction.shape == b.labels.shape
    # a later utterance changes the prediction at an earlier one (context in both directions)
    b2 = _batch(ds)
    b2.text[0, 2:] += 3.0
    assert not torch.allclose(model(b2).prediction[0, 0], out.prediction[0, 0])


@pytest.mark.slow
def test_classification_20_classes_end_to_end():
    ds = _dataset(task="classification", num_classes=20, n=160, L=8)
    model = _model(ds, d_model=32, num_heads=4, out_dropout=0.0, text_dropout=0.0, band_mask_rate=0.0)
    model.prepare(ds)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for epoch in range(8):
        model.train()
        for b in iterate_batches(ds.train, "sequence", 25, shuffle=True, seed=epoch):
            out = model(b)
            assert out.prediction.shape == (len(b), 20)
            loss = _total(model, out, b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(task_loss(out.prediction.detach(), b, "classification")))
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - 0.3
    model.eval()
    b = collate(ds.train, np.arange(160), "sequence")
    acc = float((model(b).prediction.argmax(-1) == b.labels).float().mean())
    assert acc > 0.12                                     # chance is 0.05


def test_profile_trainer_settings_resolve_for_atsuko_and_emoe():
    """The YAML profiles (mser_lib/configs) are the one place that sets the trainer: what resolve_run
    gives is what run_one trains with."""
    from mser_lib.train import TrainConfig
    for profile in ("smoke", "quick", "paper"):
        for ds in ("synthetic", "mosi", "mosei", "mosi-bclstm", "mosi-utt", "mosei-utt"):
            for model in ("atsuko", "emoe"):
                TrainConfig(**resolve_run(model, ds, profile=profile)["train"])   # all TrainConfig fields
    for model in ("atsuko", "emoe"):
        # EMOE's schedule (docs/emoe.md): Adam 1e-4, no weight decay, plateau 0.5/5, early stop 10, 16 x 10
        paper = resolve_run(model, "mosi", profile="paper")["train"]
        assert (paper["lr"], paper["weight_decay"], paper["batch_size"], paper["grad_accum"],
                paper["patience"], paper["plateau"], paper["select_metric"]) == (1e-4, 0.0, 16, 10, 10, True, "loss")
        # position layout: the dataset's batch of videos and no accumulation win over the model's
        bcl = resolve_run(model, "mosi-bclstm", profile="paper")["train"]
        assert bcl["batch_size"] == 8
        assert bcl["grad_accum"] == 1
        assert bcl["lr"] == 1e-4
        for ds in ("mosi-utt", "mosei-utt"):
            assert resolve_run(model, ds, profile="paper")["train"]["grad_accum"] == 1


# EMOE's config/config.json (fuyyyyy/EMOE), emoe.datasetParams, by the names used there
EMOE_CONFIG = {
    "mosi": {"attn_dropout_a": 0.2, "attn_dropout_v": 0.0, "relu_dropout": 0.0, "embed_dropout": 0.2,
             "res_dropout": 0.0, "dst_feature_dim_nheads": [256, 8], "nlevels": 4, "conv1d_kernel_size_l": 5,
             "conv1d_kernel_size_a": 5, "conv1d_kernel_size_v": 5, "text_dropout": 0.5, "attn_dropout": 0.3,
             "output_dropout": 0.5},
    "mosei": {"attn_dropout_a": 0.0, "attn_dropout_v": 0.0, "relu_dropout": 0.0, "embed_dropout": 0.0,
              "res_dropout": 0.0, "dst_feature_dim_nheads": [256, 8], "nlevels": 4, "conv1d_kernel_size_l": 5,
              "conv1d_kernel_size_a": 1, "conv1d_kernel_size_v": 3, "text_dropout": 0.3, "attn_dropout": 0.4,
              "output_dropout": 0.5},
}


@pytest.mark.parametrize("model_name", ["atsuko", "emoe"])
@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_paper_preset_carries_emoe_config_per_dataset(model_name, dataset):
    info = DatasetInfo(name=dataset, layout="position", task="regression", metric_family="mosi",
                       dims={"text": 768, "audio": 5, "vision": 20})
    cfg = build_config(model_name, info, "paper")
    e = EMOE_CONFIG[dataset]
    assert (cfg.d_model, cfg.num_heads) == tuple(e["dst_feature_dim_nheads"])
    assert cfg.num_layers == e["nlevels"]
    assert cfg.kernel_sizes == (e["conv1d_kernel_size_l"], e["conv1d_kernel_size_a"], e["conv1d_kernel_size_v"])
    for ours, theirs in (("text_dropout", "text_dropout"), ("attn_dropout", "attn_dropout"),
                         ("attn_dropout_a", "attn_dropout_a"), ("attn_dropout_v", "attn_dropout_v"),
                         ("relu_dropout", "relu_dropout"), ("res_dropout", "res_dropout"),
                         ("embed_dropout", "embed_dropout"), ("out_dropout", "output_dropout")):
        assert getattr(cfg, ours) == e[theirs], ours
    # EMOE drops the text input only (its attn_dropout_a is the audio encoder's attention dropout)
    assert cfg.audio_dropout == 0.0
    assert cfg.vision_dropout == 0.0
    model = Atsuko(info, cfg)
    attn = [model.encoders[m].layers[0].attn_dropout for m in ("text", "audio", "vision")]
    assert attn == [e["attn_dropout"], e["attn_dropout_a"], e["attn_dropout_v"]]


def test_emoe_router_reads_the_raw_inputs():
    pos = _dataset(layout="position")
    model = build_model("emoe", pos.info, "paper", **TINY)
    assert model.router.fc1.in_features == sum(DIMS.values())            # one utterance's raw features
    assert model.router.fc1.out_features == max(8, sum(DIMS.values()) // 8)   # EMOE: int(dim / 8)
    seq = _dataset(n=8, L=9)
    L = seq.info.source["max_lengths"]["text"]
    model = build_model("emoe", seq.info, "paper", **TINY)
    assert model.router.fc1.in_features == L * sum(DIMS.values())
    assert build_model("atsuko", seq.info, "paper", **TINY).router.fc1.in_features == 3 * TINY["d_model"]


def test_raw_router_on_sequences_aligns_other_lengths_over_time():
    ds = _dataset(n=8, L=9)
    ds.info.source["max_lengths"] = {"text": 9, "audio": 12, "vision": 15}
    model = build_model("emoe", ds.info, "paper", **TINY)
    assert set(model.align) == {"audio", "vision"}
    assert (model.align["audio"].in_features, model.align["audio"].out_features) == (12, 9)
    model.eval()
    b = _batch(ds, 4)
    z = model._raw_router_input(b)
    assert z.shape == (4, 1, 9 * sum(DIMS.values()))


def test_raw_router_keeps_a_padded_sample_equal_to_itself_alone():
    ds = _dataset()
    model = build_model("emoe", ds.info, "paper", **TINY)
    model.eval()
    split = ds.train
    i = int(np.argmin(split.lengths("text")))
    together = collate(split, np.array([i] + [j for j in range(12) if j != i]), "sequence")
    alone = collate(split, np.array([i]), "sequence")
    assert torch.allclose(model(alone).prediction[0], model(together).prediction[0], atol=1e-5)


def test_last_padded_summary_is_emoes_out_minus_one():
    ds = _dataset()
    b = _batch(ds)
    assert not bool(b.mask("text").all())
    real = _model(ds, use_sbn=False).eval()
    padded = _model(ds, use_sbn=False, summary="last_padded").eval()
    padded.load_state_dict(real.state_dict())
    assert not torch.allclose(real(b).prediction, padded(b).prediction)
    full = _batch(ds, 1)
    full_len = int(full.mask("text").sum())
    assert full.text.shape[1] == full_len                                 # one sample: no padding
    assert torch.allclose(real(full).prediction, padded(full).prediction)


def test_entropy_terms_follow_eq_11():
    ds = _dataset()
    model = _model(ds, entropy_weight=0.5, band_entropy_weight=0.25)
    model.prepare(ds)
    model.eval()
    b = _batch(ds)
    out = model(b)
    w = out.diagnostics["modality_weights"].double()
    expected = 0.5 * (3 * (w * w.log()).sum(-1)).mean()
    torch.testing.assert_close(out.aux_losses["entropy_modality"].double(), expected, rtol=1e-4, atol=1e-6)
    bw = out.diagnostics["band_weights"].double()                          # (B, 3, K)
    K = bw.shape[-1]
    expected_band = 0.25 * (K * (bw * bw.log()).sum(-1)).mean(0).sum()     # summed over the modalities
    torch.testing.assert_close(out.aux_losses["entropy_band"].double(), expected_band, rtol=1e-4, atol=1e-6)


def test_emoe_distillation_compares_two_softmaxes():
    ds = _dataset()
    model = _model(ds, "emoe", distill_weight=1.0)
    model.eval()
    b = _batch(ds)
    captured = {}
    model.fusion_head.register_forward_hook(lambda mod, inp, out: captured.__setitem__("f", out[1]))
    refined = []
    for m in ("text", "audio", "vision"):
        model.uni_heads[m].register_forward_hook(lambda mod, inp, out: refined.append(out[1]))
    out = model(b)
    w = out.diagnostics["modality_weights"]
    teacher = (w[..., None] * torch.stack(refined, -2)[:, 0]).sum(-2)
    f = captured["f"][:, 0]
    expected = (f.softmax(-1) - teacher.softmax(-1)).pow(2).mean(-1).mean()
    torch.testing.assert_close(out.aux_losses["distill"], expected, rtol=1e-5, atol=1e-7)


def test_heads_have_no_dropout_before_the_output_layer():
    from mser_lib.models.atsuko import ResidualHead

    torch.manual_seed(0)
    head = ResidualHead(8, 8, 1, dropout=0.9).train()
    with torch.no_grad():
        head.fc2.weight.zero_()
        head.fc2.bias.zero_()                         # the residual branch contributes nothing
    x = torch.randn(64, 8)
    y, r = head(x)
    torch.testing.assert_close(r, x)
    torch.testing.assert_close(y, head.out(x))        # no dropout between the residual and the output


@pytest.mark.slow
def test_atsuko_and_emoe_learn_the_builtin_benchmark():
    """Quick presets, same seed and schedule: test Corr clearly above the text-only baseline."""
    synthetic = pytest.importorskip("mser_lib.data.synthetic")
    train = pytest.importorskip("mser_lib.train")
    ds = synthetic.make_synthetic("quick", seed=0)
    corr = {}
    for name, kw in (("text", {"modalities": "t"}), ("emoe", {}), ("atsuko", {})):
        # the quick profile's trainer settings as the pipeline resolves them, shortened for the test:
        # 12 epochs at lr 3e-3 (the profile's 1e-3 needs about twice the epochs for the same Corr; at 8 epochs
        # Atsuko's seed-0 run had only just reached the text baseline)
        settings = resolve_run("baseline" if name == "text" else name, "synthetic", profile="quick")["train"]
        cfg = train.TrainConfig(**{**settings, "epochs": 12, "lr": 3e-3, "patience": None, "progress": False,
                                   "device": "cpu"})
        torch.manual_seed(0)
        model = build_model("baseline" if name == "text" else name, ds.info, "quick", **kw)
        res = train.fit_model(model, ds, cfg, seed=0)
        corr[name] = res.test_metrics["corr"]
    assert corr["emoe"] > corr["text"] + 0.03, corr
    assert corr["atsuko"] > corr["text"] + 0.03, corr


def test_boundaries_come_from_the_training_split():
    ds = _dataset()
    model = _model(ds)
    from_prepare = torch.tensor(model.prepare(ds)["band_cuts"])
    batches = list(iterate_batches(ds.train, "sequence", 16))
    assert torch.equal(model.fit_band_boundaries(iter(batches)), from_prepare)   # an iterator works too
    spectrum = model.band_spectrum.clone()
    assert spectrum.shape == (3, 32)
    assert bool((spectrum >= 0).all())
    assert float(spectrum.sum()) > 0
    # the valid split (another draw) would give other spectra: prepare did not look at it
    model.fit_band_boundaries(ds.valid)
    assert not torch.allclose(model.band_spectrum, spectrum)
