"""FEMF (paper 000): batched experts, stages, router, switches, losses, layouts, missing modalities."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mser_lib.data import DatasetInfo, collate
from mser_lib.models.base import count_parameters, task_loss
from mser_lib.models.femf import FEMF, REFERENCE_LOSS_WEIGHTS, FEMFConfig, parse_order
from mser_lib.models.packing import Segment, StackedExperts
from mser_lib.models.registry import build_config, build_model

from helpers import tiny_split

DIMS = (6, 5, 4)
SMALL = dict(hidden=16, heads=2, expert_depth=1, interaction_layers=1, fusion_hidden=8, dropout=0.0,
             cutoff_ratio=0.6, alpha=0.3)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one intra-op thread avoids thread-pool overhead on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _info(layout="sequence", task="regression", num_classes=None, name="tiny"):
    return DatasetInfo(name, layout, task, "mosi" if task == "regression" else "classification",
                       dict(zip(("text", "audio", "vision"), DIMS)), num_classes=num_classes)


def _batch(layout="sequence", n=8, lengths=None, present=None, seed=0, task="regression", num_classes=None):
    lengths = lengths if lengths is not None else [3, 9, 1, 12, 5, 7, 2, 12][:n]
    split = tiny_split(len(lengths), lengths=lengths, dims=DIMS, layout=layout, seed=seed, task=task,
                       num_classes=num_classes)
    return collate(split, np.arange(len(lengths)), layout, present)


def _model(layout="sequence", seed=0, **kw):
    torch.manual_seed(seed)
    task = kw.pop("task", "regression")
    num_classes = kw.pop("num_classes", None)
    return FEMF(_info(layout, task, num_classes), FEMFConfig(**{**SMALL, **kw}))


# ------------------------------------------------------------------------------------------------
# batched experts == one transformer per (expert, sequence)
# ------------------------------------------------------------------------------------------------

def _naive_expert(ex, g, x):
    """Post-LN transformer encoder of expert ``g`` on one sequence ``x`` (T, H), written plainly."""
    H, nh = ex.H, ex.heads
    for q in range(ex.depth):
        qkv = x @ ex.wqkv[q, g] + ex.bqkv[q, g]
        T = x.shape[0]
        qq, kk, vv = qkv.view(T, 3, nh, H // nh).permute(1, 2, 0, 3)
        a = ((qq @ kk.transpose(-1, -2)) / math.sqrt(H // nh)).softmax(-1) @ vv
        a = a.transpose(0, 1).reshape(T, H) @ ex.wo[q, g] + ex.bo[q, g]
        x = F.layer_norm(x + a, (H,)) * ex.ln1_w[q, g] + ex.ln1_b[q, g]
        f = F.relu(x @ ex.w1[q, g] + ex.b1[q, g]) @ ex.w2[q, g] + ex.b2[q, g]
        x = F.layer_norm(x + f, (H,)) * ex.ln2_w[q, g] + ex.ln2_b[q, g]
    return x


def test_stacked_experts_equal_per_sequence_transformers():
    torch.manual_seed(0)
    M, H = 3, 8
    ex = StackedExperts(M, H, 2, 2, 12, 1).eval()
    with torch.no_grad():
        for p in ex.parameters():
            p.add_(0.1 * torch.randn_like(p))
    B = 14
    lens = torch.randint(0, 21, (B,))
    lens[0], lens[1] = 20, 0                      # > MAX_BUCKETS distinct lengths -> padded buckets too
    mask = torch.arange(20)[None] < lens[:, None]
    s = Segment(0, mask, 0)
    grid = torch.randn(B, 20, H)
    tok = s.gather(grid)
    nb = len(s.buckets)
    assert any(b.gather is not None for b in s.buckets)
    with torch.no_grad():
        for gs, lo, hi in [(slice(0, 6), 0, nb), (slice(0, 6, 3), 0, nb), (slice(4, 5), 1, nb - 1)]:
            a, e = s.buckets[lo].a, s.buckets[hi - 1].e
            gids = list(range(gs.start, gs.stop, gs.step or 1))
            y = ex.run(tok[a:e].expand(len(gids), -1, -1).contiguous(), s, gs, lo, hi, 0.0)
            for r, g in enumerate(gids):
                full = torch.zeros(s.n, H)
                full[a:e] = y[r]
                out = s.scatter(full)
                done = set(s.sample[a:e].tolist())
                for b in done:
                    T = int(lens[b])
                    assert torch.allclose(_naive_expert(ex, g, grid[b, :T]), out[b, :T], atol=1e-5)


def test_chunking_does_not_change_outputs():
    b = _batch("position")
    big = _model("position", expert_depth=2)
    small = _model("position", expert_depth=2, expert_chunk_mb=1e-4)   # one expert / bucket at a time
    small.load_state_dict(big.state_dict())
    for stage in ("experts", "full"):
        big.set_stage(stage)
        small.set_stage(stage)
        assert torch.allclose(big(b).prediction, small(b).prediction, atol=1e-5)


def test_cpu_chunks_hold_a_multiple_of_the_intra_op_threads():
    """A CPU batched matmul splits its batch of experts over the threads: 3 experts on 2 threads idle one."""
    ex = StackedExperts(3, 8, 2, 1, 8, 1)
    s = Segment(0, torch.ones(4, 10, dtype=torch.bool), 0)             # 40 tokens, one bucket
    three = 3 * s.n * max(3 * ex.H, ex.ffn) * 4 / 2 ** 20              # budget (MiB) of exactly 3 experts
    six = 2 * three                                                    # all 6 experts fit
    before = torch.get_num_threads()
    try:
        sizes = {}
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            sizes[threads] = [[len(range(g.start, g.stop, g.step)) for g, _, _ in ex.chunks(s, list(range(6)), mb)]
                              for mb in (three, six)]
    finally:
        torch.set_num_threads(before)
    assert sizes == {1: [[3, 3], [6]], 2: [[2, 2, 2], [6]], 4: [[3, 3], [6]]}   # all at once whenever they fit
    assert all(lo == 0 and hi == len(s.buckets) for _, lo, hi in ex.chunks(s, list(range(6)), three))


# ------------------------------------------------------------------------------------------------
# layouts, shapes, masking
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_output_shapes(layout):
    b = _batch(layout)
    B, L = len(b), b.text.shape[1]
    for stage in ("experts", "full"):
        model = _model(layout)
        model.set_stage(stage)
        out = model(b)
        want = (B,) if layout == "sequence" else (B, L)
        assert out.prediction.shape == want
        assert torch.isfinite(out.prediction).all()
    cls = _model(layout, task="classification", num_classes=3)
    bc = _batch(layout, task="classification", num_classes=3)
    out = cls(bc)
    assert out.prediction.shape == ((B, 3) if layout == "sequence" else (B, L, 3))
    total, parts = cls.loss(out, bc)
    assert torch.isfinite(total)
    d = out.diagnostics
    assert d["router_low"].shape == (B, 3, 3)
    assert d["band_energy"].shape == (B, 3, 2)
    assert d["fusion_weights"].shape[-1] == 4


def test_sequence_layout_with_different_modality_lengths():
    split = tiny_split(6, lengths=[4, 8, 2, 8, 5, 1], dims=DIMS)
    audio_len = np.array([9, 16, 3, 1, 12, 7])                       # audio has its own, longer frames
    split.audio_mask = np.arange(16)[None] < audio_len[:, None]
    split.audio = np.random.default_rng(0).standard_normal((6, 16, DIMS[1])).astype(np.float32)
    split.audio[~split.audio_mask] = 0
    b = collate(split, np.arange(6), "sequence")
    assert b.audio.shape[1] != b.text.shape[1]
    model = _model("sequence")
    out = model(b)
    assert out.prediction.shape == (6,)
    assert torch.isfinite(out.prediction).all()


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_padding_values_change_nothing(layout):
    """Padding never enters the spectrum, attention (key masks), pooling or any loss term."""
    b = _batch(layout)
    model = _model(layout, freeze_experts=False).eval()
    ref = model(b)
    for m in ("text", "audio", "vision"):
        x = b.features(m)
        x[~b.mask(m)] = 100.0
    out = model(b)
    lm = b.label_mask
    assert torch.allclose(ref.prediction[lm], out.prediction[lm], atol=1e-5)
    if layout == "position":
        assert out.prediction[~lm].abs().max() == 0
    assert set(ref.aux_losses) == {"sim", "orth", "rec", "cyc", "align", "train"}
    for k, v in ref.aux_losses.items():
        assert torch.allclose(v, out.aux_losses[k], atol=1e-5), k


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_missing_modality_rows_are_finite(layout):
    present = np.ones((8, 3), dtype=bool)
    present[0, 1] = False                      # no audio
    present[1, 0] = False                      # no text
    present[2, 1:] = False                     # text only
    present[3, :2] = False                     # vision only
    b = _batch(layout, present=present)
    for stage in ("experts", "full"):
        model = _model(layout, return_attention=True)
        model.set_stage(stage)
        model.train()
        out = model(b)
        total, parts = model.loss(out, b)
        assert torch.isfinite(out.prediction).all()
        assert torch.isfinite(total)
        total.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        for v in out.diagnostics.values():
            assert torch.isfinite(v).all()
    fw = out.diagnostics["fusion_weights"]                           # modalities then joint
    if layout == "sequence":
        assert fw[0, 1] == 0
        assert fw[1, 0] == 0
        assert (fw[2, 1:3] == 0).all()


# ------------------------------------------------------------------------------------------------
# stages, freezing, router
# ------------------------------------------------------------------------------------------------

def test_stages_and_frozen_experts_receive_no_gradient():
    b = _batch("position")
    model = _model("position", expert_grad_to_inputs=False)        # the speed option: no autograd
    assert model.stages() == ["experts", "full"]
    model.set_stage("experts")
    out = model(b)
    total, parts = model.loss(out, b)
    assert "train" in parts
    assert "task" not in parts
    total.backward()
    assert model.experts.wqkv.grad is not None
    assert model.experts.wqkv.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    model.set_stage("full")
    assert model.experts_frozen
    assert not any(p.requires_grad for p in model.experts.parameters())
    out = model(b)
    total, parts = model.loss(out, b)
    assert "task" in parts
    assert "train" not in parts
    total.backward()
    assert all(p.grad is None for p in model.experts.parameters())
    assert model.routers.w1.grad is not None
    assert model.proj["text"].weight.grad is not None

    unfrozen = _model("position", freeze_experts=False)
    unfrozen.set_stage("experts")
    unfrozen.set_stage("full")
    total, parts = unfrozen.loss(unfrozen(b), b)
    total.backward()
    assert "train" in parts
    assert unfrozen.experts.wqkv.grad.abs().sum() > 0

    through = _model("position", expert_grad_to_inputs=True)
    through.set_stage("full")
    total, parts = through.loss(through(b), b)
    total.backward()
    assert all(p.grad is None for p in through.experts.parameters())
    assert "train" in parts
    assert FEMFConfig().expert_grad_to_inputs                      # the default is the paper's


def _task_grads(model, b):
    """Stage 2: gradients of the task loss alone (eq. 26) w.r.t. every parameter, by name."""
    model.set_stage("experts")
    model.set_stage("full")
    model.zero_grad(set_to_none=True)
    out = model(b)
    task_loss(out.prediction, b, "regression", kind=model.config.task_loss_kind).backward()
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("layout", ["position", "sequence"])
def test_paper_preset_stage2_task_loss_reaches_encoders_through_frozen_experts(layout):
    """The paper freezes the experts' parameters, not the gradient path: with the paper preset the
    task loss of stage 2 reaches the input projections and private encoders *through* the experts,
    and the expert parameters get no gradient."""
    info = _info(layout, name="mosi")
    cfg = build_config("femf", info, "paper", dropout=0.0)
    assert cfg.freeze_experts
    assert cfg.expert_grad_to_inputs
    b = _batch(layout)
    torch.manual_seed(0)
    paper = FEMF(info, cfg)
    g = _task_grads(paper, b)
    assert paper.experts_frozen
    assert all(g[n] is None for n, _ in paper.named_parameters() if n.startswith("experts."))
    for m in paper.mods:
        for name in (f"private_enc.{m}.weight", f"proj.{m}.weight"):
            assert g[name] is not None, name
            assert float(g[name].abs().sum()) > 0, name
    # the speed option (no autograd through the experts) with the same weights: the encoders then get
    # the task loss only through the routers' inputs, so their gradient differs
    fast = FEMF(info, build_config("femf", info, "paper", dropout=0.0, expert_grad_to_inputs=False))
    fast.load_state_dict(paper.state_dict())
    gf = _task_grads(fast, b)
    for m in paper.mods:
        a, c = g[f"private_enc.{m}.weight"], gf[f"private_enc.{m}.weight"]
        assert float((a - c).norm()) > 1e-3 * float(a.norm()), m


def test_router_and_fusion_weights_sum_to_one():
    for layout in ("sequence", "position"):
        b = _batch(layout)
        out = _model(layout)(b)
        for band in ("router_low", "router_high"):
            w = out.diagnostics[band]                                 # (B, M, M): sample, modality, expert
            assert torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)), atol=1e-5)
            assert (w >= 0).all()
        fw = out.diagnostics["fusion_weights"]
        if layout == "position":
            fw = fw[b.label_mask]
        assert torch.allclose(fw.sum(-1), torch.ones(fw.shape[:-1]), atol=1e-5)
    model = _model()
    r = model.routers(torch.randn(2, 7, 32), 1, 0.0)
    assert torch.allclose(r.sum(-1), torch.ones(2, 7), atol=1e-6)


def test_attention_maps_are_row_stochastic_on_real_keys():
    b = _batch("position")
    model = _model("position", return_attention=True)
    out = model(b)
    mask = b.label_mask
    for band in ("low", "high"):
        for m in ("text", "audio", "vision"):
            a = out.diagnostics[f"attn_{band}_{m}"]
            assert a.shape == (len(b), mask.shape[1], mask.shape[1])
            rows = a.sum(-1)
            assert torch.allclose(rows[mask], torch.ones(int(mask.sum())), atol=1e-5)
            assert a[~mask].abs().sum() == 0
    assert "attn_low_text" not in _model("position")(b).diagnostics  # off by default


# ------------------------------------------------------------------------------------------------
# switches (Tables 2-4): a switch removes its parameters and its loss term
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("switch, gone_modules, gone_losses", [
    ("use_dtm", ["shared_enc", "private_enc", "decoders", "shared_head"],
     ["sim", "orth", "rec", "cyc", "align"]),
    ("use_fae", ["experts", "routers"], ["train"]),
    ("use_mim", ["interaction"], []),
    ("use_hpm", ["hpm_ffn", "hpm_head", "fusion_mlp"], []),
    ("use_l_align", ["shared_head"], ["align"]),
    ("use_l_rec", [], ["rec"]),
    ("use_l_cyc", [], ["cyc"]),
    ("use_l_orth", [], ["orth"]),
    ("use_l_sim", [], ["sim"]),
])
def test_each_switch_removes_its_parameters_and_loss(switch, gone_modules, gone_losses):
    b = _batch("sequence")
    full = _model(freeze_experts=False)
    off = _model(**{switch: False}, freeze_experts=False)
    for name in gone_modules:
        assert getattr(full, name) is not None
        assert getattr(off, name) is None
    if gone_modules or switch == "use_l_rec":
        assert count_parameters(off) < count_parameters(full)
    if switch == "use_l_rec":                                       # text decoder only served L_rec
        assert "text" in full.decoders
        assert "text" not in off.decoders
    parts_full = full.loss(full(b), b)[1]
    parts_off = off.loss(off(b), b)[1]
    for loss in gone_losses:
        assert loss in parts_full
        assert loss not in parts_off
    assert set(parts_off) == set(parts_full) - set(gone_losses)
    if switch == "use_fae":
        assert off.stages() == ["full"]
        with pytest.raises(ValueError):
            off.set_stage("experts")
    assert torch.isfinite(off(b).prediction).all()


def test_rec_and_cyc_off_remove_the_decoders():
    model = _model(use_l_rec=False, use_l_cyc=False)
    assert model.decoders is None


@pytest.mark.parametrize("mods", ["t", "a", "ta", "av", "tv"])
def test_modality_subsets(mods):
    b = _batch("position")
    model = _model("position", modalities=mods)
    assert model.mods == [m for m in ("text", "audio", "vision") if m[0] in mods]
    assert count_parameters(model) < count_parameters(_model("position"))
    assert model.experts.G == 2 * len(mods)
    for stage in ("experts", "full"):
        model.set_stage(stage)
        out = model(b)
        assert torch.isfinite(out.prediction).all()
        assert torch.isfinite(model.loss(out, b)[0])
    if len(mods) == 1:
        assert model.interaction is None
        assert "sim" not in model.loss(model(b), b)[1]


def test_interaction_order_parsing():
    mods = ["text", "audio", "vision"]
    assert parse_order("t:av,a:tv,v:ta", mods) == {"text": ["audio", "vision"], "audio": ["text", "vision"],
                                                    "vision": ["text", "audio"]}
    assert parse_order("t:av,a:tv,v:ta", ["text", "vision"]) == {"text": ["vision"], "vision": ["text"]}
    with pytest.raises(ValueError):
        parse_order("t:aa", mods)
    model = _model(interaction_order="t:va,a:vt,v:at")
    assert model.interaction[0]["text"].keys == ["vision", "audio"]


# ------------------------------------------------------------------------------------------------
# losses (eq. 2-6, 10/27, 25, 26, 7, 28)
# ------------------------------------------------------------------------------------------------

def _term(model, b, name):
    out = model(b)
    if name == "total":
        return model.loss(out, b)[0]
    if name == "task":
        return task_loss(out.prediction, b, "regression", kind="mse")
    if name == "dis":
        return sum(out.aux_losses[k] for k in ("sim", "orth", "rec", "cyc"))
    return out.aux_losses[name]


@pytest.mark.parametrize("name", ["task", "train", "align", "sim", "orth", "rec", "cyc", "dis", "total"])
def test_each_loss_term_is_finite_and_decreases_when_optimised_alone(name):
    b = _batch("sequence", seed=3)
    model = _model(freeze_experts=False, seed=1)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    values = []
    for _ in range(12):
        v = _term(model, b, name)
        assert torch.isfinite(v)
        values.append(float(v.detach()))
        opt.zero_grad()
        v.backward()
        opt.step()
    assert values[-1] < values[0] * 0.95, values


def test_orthogonality_loss_is_bounded_and_zero_iff_orthogonal():
    model = _model()
    b = _batch("sequence")
    orth = model(b).aux_losses["orth"]
    assert 0.0 <= float(orth.detach()) <= 1.0
    # zero when shared and private codes are orthogonal: make E^s and E^u map onto disjoint coordinates
    with torch.no_grad():
        model.shared_enc.weight.zero_()
        model.shared_enc.bias.zero_()
        model.shared_enc.weight[:8] = torch.randn(8, 16)
        for m in model.mods:
            model.private_enc[m].weight.zero_()
            model.private_enc[m].bias.zero_()
            model.private_enc[m].weight[8:] = torch.randn(8, 16)
    assert float(model(b).aux_losses["orth"].detach()) < 1e-10


def test_loss_weights_scale_terms_and_reference_preset():
    b = _batch("sequence")
    base = _model()
    raw = base(b).diagnostics
    heavy = _model(w_rec=3.0, w_sim=0.5)
    aux = heavy(b).aux_losses
    assert torch.allclose(aux["rec"], 3.0 * raw["loss_rec"], atol=1e-6)
    assert torch.allclose(aux["sim"], 0.5 * raw["loss_sim"], atol=1e-6)
    cfg = build_config("femf", _info(name="mosi-bclstm"), "reference_weights")
    for k, v in REFERENCE_LOSS_WEIGHTS.items():
        assert getattr(cfg, k) == v
    assert FEMFConfig().w_rec == FEMFConfig().w_align == 1.0           # paper: all 1


def test_presets():
    mosi = build_config("femf", _info(name="mosi-bclstm"), "paper")
    mosei = build_config("femf", _info(name="mosei"), "paper")
    assert (mosi.hidden, mosi.heads, mosi.expert_depth) == (256, 2, 4)
    assert (mosi.alpha, mosi.interaction_layers, mosi.cutoff_ratio) == (0.3, 1, 0.6)
    assert (mosei.alpha, mosei.interaction_layers, mosei.cutoff_ratio) == (0.7, 2, 0.4)
    quick = build_model("femf", _info(), "quick")
    assert count_parameters(quick) < 500_000


def test_profile_trainer_settings_for_femf():
    """Trainer settings come from the YAML profiles only (mser_lib/configs), as resolve_run merges them."""
    from mser_lib.experiments import resolve_run
    from mser_lib.train import TrainConfig

    def tr(ds, profile="paper"):
        return resolve_run("femf", ds, profile=profile)["train"]

    for profile in ("smoke", "quick", "paper"):
        for ds in ("synthetic", "mosi", "mosei", "mosi-bclstm", "mosi-utt", "mosei-utt"):
            TrainConfig(**tr(ds, profile))                          # every key is a TrainConfig field
    # FEMF Sec. 4.3 and the reference code: Adam 1e-4, weight decay 1e-4, batch 64, half the epochs each
    mosi = tr("mosi")
    assert (mosi["lr"], mosi["weight_decay"], mosi["batch_size"]) == (1e-4, 1e-4, 64)
    assert mosi["stage_epochs"] == {"experts": 150, "full": 150}
    assert tr("mosei")["stage_epochs"] == tr("mosei-utt")["stage_epochs"] == {"experts": 50, "full": 50}
    assert "loss_kind" not in mosi                                  # FEMF's task loss is its own (eq. 26)
    # mosi-bclstm (position layout, 56 training videos): the dataset's batch of videos wins over the
    # model's 64, so an epoch has several optimiser steps
    bcl = tr("mosi-bclstm")
    assert bcl["batch_size"] == 8
    assert bcl.get("grad_accum", 1) == 1
    assert math.ceil(56 / bcl["batch_size"]) // bcl.get("grad_accum", 1) >= 5
    assert tr("synthetic", "quick")["stage_epochs"] == {"experts": 10, "full": 25}


# ------------------------------------------------------------------------------------------------
# learning: FEMF beats the text-only baseline on the built-in benchmark
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_femf_learns_synthetic_benchmark_beyond_text_only(tmp_path):
    from mser_lib.experiments import run_one
    common = dict(dataset="synthetic", seed=0, profile="smoke", results_dir=tmp_path, progress=False)
    text = run_one("baseline", overrides={"modalities": "t"}, train={"epochs": 20, "patience": 20}, **common)
    femf = run_one("femf", train={"epochs": 12, "patience": 12, "stage_epochs": {"experts": 4, "full": 12}},
                   **common)
    assert femf["test"]["corr"] > text["test"]["corr"] + 0.04, (femf["test"], text["test"])


def test_reconstruction_losses_do_not_depend_on_a_features_unit():
    """L_rec and L_cyc reconstruct standardised inputs (train-split statistics, :meth:`FEMF.prepare`): on a copy
    whose audio is in other units (x * 1000 + 200, as pitch in Hz next to unit-scale features) and whose input
    projection absorbs the change, every loss term equals the original's. Raw targets would scale L_rec by 1e6."""
    from dataclasses import replace

    from mser_lib.data import MultimodalDataset

    info = _info("position")
    ds = MultimodalDataset(info, *(tiny_split(k, dims=DIMS, layout="position", seed=i)
                                   for i, k in enumerate((8, 4, 4))))
    scale, shift = 1000.0, 200.0
    moved = replace(ds, train=replace(ds.train, audio=np.where(ds.train.audio_mask[..., None],
                                                               ds.train.audio * scale + shift, 0.0).astype(np.float32)))
    a, b = _model("position", seed=4), _model("position", seed=4)
    a.prepare(ds), b.prepare(moved)
    assert torch.allclose(b.rec_mean_audio, a.rec_mean_audio * scale + shift, rtol=1e-4)
    assert torch.allclose(b.rec_std_audio, a.rec_std_audio * scale, rtol=1e-4)
    x = ds.train.audio[ds.train.audio_mask].astype(np.float64)
    assert np.allclose(a.rec_mean_audio.numpy(), x.mean(0))
    assert np.allclose(a.rec_std_audio.numpy(), x.std(0))
    with torch.no_grad():                     # P_b(x * scale + shift) == P_a(x)
        b.proj["audio"].weight.copy_(a.proj["audio"].weight / scale)
        b.proj["audio"].bias.copy_(a.proj["audio"].bias - b.proj["audio"].weight.sum(1) * shift)
    a.eval(), b.eval()
    batch_a = collate(ds.train, np.arange(8), "position")
    batch_b = collate(moved.train, np.arange(8), "position")
    da, db = a(batch_a).diagnostics, b(batch_b).diagnostics
    for term in ("loss_rec", "loss_cyc", "loss_sim", "loss_orth"):
        assert torch.allclose(da[term], db[term], rtol=2e-3, atol=1e-5), (term, da[term], db[term])
    # features a loader standardised are used as they are: no statistics, nothing to fit
    std_info = replace(info, source={"standardize": True})
    plain = FEMF(std_info, FEMFConfig(**SMALL))
    assert not plain.rec_standardize
    assert not any(k.startswith("rec_") for k in plain.state_dict())
    assert plain.prepare(ds) == {}


def test_training_without_prepare_warns_and_old_checkpoints_fail_clearly():
    """On features no loader standardised, FEMF needs the train statistics (fit_model calls prepare): training
    without them warns once; a checkpoint without them (an older mser's) is refused with what to do."""
    model = _model("sequence")
    model.train()
    b = _batch("sequence")
    with pytest.warns(UserWarning, match="prepare"):
        model(b)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("rec_")}
    with pytest.raises(RuntimeError, match="older mser"):
        _model("sequence").load_state_dict(state)
    fresh = _model("sequence")
    fresh.load_state_dict(model.state_dict())            # a checkpoint with them: no warning afterwards
    fresh.train()
    import warnings as w
    with w.catch_warnings():
        w.simplefilter("error")
        fresh(b)


# ------------------------------------------------------------------------------------------------
# switches for the papers' silences and the reference code's behaviours (the deviation ledger)
# ------------------------------------------------------------------------------------------------

def _grad_of(model, batch, term, params):
    model.zero_grad()
    out = model(batch)
    out.aux_losses[term].backward()
    return [p.grad for p in params]


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_l_align_moves_the_shared_head_not_the_prediction_unless_asked(layout):
    b = _batch(layout)
    for detach in (True, False):
        model = _model(layout, align_detach_prediction=detach)
        model.set_stage("full")
        heads = list(model.hpm_head.parameters()) + list(model.fusion_mlp.parameters())
        grads = _grad_of(model, b, "align", heads)
        moved = any(g is not None and bool(g.abs().sum() > 0) for g in grads)
        assert moved is (not detach)
        assert model.shared_head.weight.grad is not None
        assert bool(model.shared_head.weight.grad.abs().sum() > 0)


def test_frozen_experts_keep_their_dropout_in_stage_2(monkeypatch):
    seen = []
    real_run = StackedExperts.run

    def spy(self, x, s, groups, b_lo, b_hi, dropout, maps=None):
        seen.append(dropout)
        return real_run(self, x, s, groups, b_lo, b_hi, dropout, maps)

    monkeypatch.setattr(StackedExperts, "run", spy)
    b = _batch()
    for keep, expected in ((True, 0.3), (False, 0.0)):
        model = _model(dropout=0.3, frozen_expert_dropout=keep)
        model.set_stage("full")
        model.train()
        seen.clear()
        model(b)
        assert seen
        assert set(seen) == {expected}
        model.eval()
        seen.clear()
        model(b)
        assert set(seen) == {0.0}


def test_stage_2_keeps_l_train_unless_switched_off():
    b = _batch()
    for keep in (True, False):
        model = _model(train_in_full_stage=keep)
        model.set_stage("full")
        assert ("train" in model(b).aux_losses) is keep


def test_per_modality_expert_heads_fit_the_sum_of_both_bands():
    b = _batch("position")
    model = _model("position", expert_heads="per_modality")
    assert model.experts.head_w.shape[0] == 3                  # one head per modality
    model.set_stage("experts")
    model.eval()
    out = model(b)
    e = out.diagnostics["expert_predictions"]                 # (B, L, M, 2)
    lm = b.label_mask.bool()
    expected = sum(((e[..., j, 0] + e[..., j, 1]) - b.labels)[lm & b.mask(m).bool()].pow(2).mean()
                   for j, m in enumerate(("text", "audio", "vision")))
    torch.testing.assert_close(out.aux_losses["train"], expected, rtol=1e-5, atol=1e-6)


def test_reference_preset_turns_on_every_reference_behaviour():
    info = _info("position", name="mosi-bclstm")
    cfg = build_config("femf", info, "reference", hidden=16, expert_depth=1, expert_ffn=16, interaction_ffn=16)
    model = FEMF(info, cfg)
    assert not hasattr(model.experts, "wo")
    assert not hasattr(model.experts, "ln1_w")
    assert model.routers.w1.shape[0] == 3                      # one router per modality for both bands
    assert model.experts.head_w.shape[0] == 3                  # one expert head per modality
    assert model.shared_head is None
    assert model.hpm_ref is not None
    assert model.joint_head is None
    assert list(model.decoders) == ["shared"]                  # one decoder for every modality ...
    assert model.decoders["shared"][-1].out_features == 16     # ... reconstructing the projected features
    assert model.shared_enc.out_features == 8                  # half-width codes, lifted back to the width
    assert model.code_up is not None
    assert model.proj["vision"].in_features == DIMS[2]          # vision padded to 1024 in the projection's start
    assert float(model.proj["vision"].weight.detach().abs().max()) <= 1 / math.sqrt(1024)
    b = _batch("position")
    model.set_stage("experts")
    out = model(b)
    assert set(out.aux_losses) == {"train"}                    # no L_dis in stage 1
    model.set_stage("full")
    assert not model.experts_frozen
    model.train()
    out = model(b)
    assert "train" not in out.aux_losses
    assert "fusion_weights" not in out.diagnostics
    total, _ = model.loss(out, b)
    total.backward()
    assert model.experts.wqkv.grad is not None                 # the experts keep training in stage 2
    energy = out.diagnostics["band_energy"]                    # c = int(0.9 T) keeps every rfft bin
    assert float(energy[..., 1].sum() / energy.sum()) < 1e-10
    assert cfg.attention_key_mask is False                      # cross-attention over padded utterances
    assert cfg.expert_init == "torch"
    assert float(model.experts.bqkv.abs().max()) > 0           # nn.Linear's start: biases drawn, not zeros


def test_reference_expert_block_is_the_reference_attention_block():
    torch.manual_seed(0)
    ex = StackedExperts(1, 8, 2, 2, 8, 1, block="reference").eval()
    x = torch.randn(1, 5, 8)
    mask = torch.ones(1, 5, dtype=torch.bool)
    s = Segment(0, mask, 0)
    got = ex.run(s.gather(x)[None], s, slice(0, 1), 0, len(s.buckets), 0.0)[0]
    h = x[0]
    for q in range(2):
        qkv = h @ ex.wqkv[q, 0] + ex.bqkv[q, 0]
        qq, kk, vv = qkv.view(5, 3, 2, 4).permute(1, 2, 0, 3)
        a = ((qq @ kk.transpose(-1, -2)) / 2.0).softmax(-1) @ vv
        a = a.transpose(0, 1).reshape(5, 8)
        h = h + a + (F.gelu(a @ ex.w1[q, 0] + ex.b1[q, 0]) @ ex.w2[q, 0] + ex.b2[q, 0])
    torch.testing.assert_close(got, s.gather(h[None]), rtol=1e-5, atol=1e-6)


def _reference_cross_attention(step, q_grid, k_grid, heads):
    """The reference's cross-attention (FEMF/MultiAttn.py after model_expert_softmoe.py zeroes the padding),
    written out per sample: every position of the padded grid is a key, padded ones projected from zeros."""
    out = []
    for qb, kb in zip(q_grid, k_grid):
        L, H = kb.shape
        d = H // heads
        Q = step.q(qb).view(-1, heads, d).transpose(0, 1)
        K, V = step.kv(kb).view(L, 2, heads, d).unbind(1)
        w = torch.softmax(Q @ K.transpose(0, 1).transpose(-1, -2) / math.sqrt(d), dim=-1)
        a = (w @ V.transpose(0, 1)).transpose(0, 1).reshape(-1, H)
        out.append(step.ln(qb + step.o(a)))
    return torch.stack(out)


def test_cross_attention_over_padded_keys_equals_the_reference_and_depends_on_the_padding():
    from mser_lib.models.femf import CrossStep

    torch.manual_seed(0)
    H, heads = 8, 2
    qmask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    kmask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    qs, ks = Segment(0, qmask, 0), Segment(1, kmask, 0)
    q_tok, k_tok = torch.randn(qs.n, H), torch.randn(ks.n, H)
    step = CrossStep(H, heads, dropout=0.0, key_mask=False).eval()
    with torch.no_grad():
        out = step(q_tok, qs, k_tok, ks)
        ref = _reference_cross_attention(step, qs.scatter(q_tok), ks.scatter(k_tok), heads)
        assert torch.allclose(qs.gather(ref), out, atol=1e-5)
        # mser's default masks the padded keys: another result wherever a sample has padding among its keys
        masked = CrossStep(H, heads, dropout=0.0).eval()
        masked.load_state_dict(step.state_dict())
        differs = (masked(q_tok, qs, k_tok, ks) - out).abs().amax(-1) > 1e-4
        padded_keys = ~kmask.all(1)
        assert torch.equal(differs, padded_keys.index_select(0, qs.sample))
        # one more padded key position (a longer video elsewhere in the batch) moves the reference's output only
        kmask2 = torch.cat([kmask, torch.zeros(3, 1, dtype=torch.bool)], 1)
        ks2 = Segment(1, kmask2, 0)
        assert not torch.allclose(step(q_tok, qs, k_tok, ks2), out, atol=1e-4)
        assert torch.allclose(masked(q_tok, qs, k_tok, ks2), masked(q_tok, qs, k_tok, ks), atol=1e-6)


def test_attention_key_mask_is_a_hash_neutral_switch():
    from mser_lib.experiments import config_hash, resolve_run

    info = _info("position", name="mosi-bclstm")
    default = build_config("femf", info, "paper")
    assert default.attention_key_mask
    run = resolve_run("femf", "mosi-bclstm", 0, "claims", info=info)
    assert "attention_key_mask" not in run["model_config"]          # at its default: not in the hash
    flipped = resolve_run("femf", "mosi-bclstm", 0, "claims", {"attention_key_mask": False}, info=info)
    assert flipped["model_config"]["attention_key_mask"] is False
    assert config_hash(flipped) != config_hash(run)
    # built from the saved config, a record from before the switch gets the default (keys masked)
    model = build_model("femf", info, "paper", attention_key_mask=False, hidden=16, expert_ffn=16)
    assert all(not s.key_mask for br in model.interaction for b in br.values() for s in b.steps)


def test_expert_init_torch_follows_nn_linear_default():
    """``expert_init="torch"``: every stacked expert and router weight and bias uniform in +-1/sqrt(fan_in) (the
    reference's nn.Linear default); the default ("xavier", zero biases) is hash-neutral: a run's config hash does
    not change with the field's existence."""
    from mser_lib.experiments import get_dataset
    from mser_lib.models.registry import hashed_config

    info = get_dataset("synthetic", None, "smoke").info
    model = build_model("femf", info, preset="quick", expert_init="torch")
    for mod in (model.experts, model.routers):
        for name, p in mod.named_parameters(recurse=False):
            if name.startswith("ln"):
                continue
            weight = name if name in ("head_w",) or name.startswith("w") else (
                "head_w" if name == "head_b" else "w" + name[1:])        # a bias: its weight's fan-in
            fan_in = mod.get_parameter(weight).shape[-2]
            bound = 1.0 / math.sqrt(fan_in)
            assert p.abs().max() <= bound, name
            assert p.abs().max() > 0.8 * bound, name       # drawn over the whole range, biases included
    xavier = build_model("femf", info, preset="quick")
    assert all(float(xavier.experts.get_parameter(n).abs().max()) == 0 for n in ("bqkv", "b1", "b2"))
    assert "expert_init" not in hashed_config(build_config("femf", info, "quick"))
    assert hashed_config(build_config("femf", info, "quick", expert_init="torch"))["expert_init"] == "torch"


def test_reference_disentanglement_module():
    """``dis_module="reference"``: the reference's DisentangleModule and proj_distangle: shared and private codes
    half the model width, one decoder for every modality reconstructing the projected features, one linear map
    lifting each private code back to the model width before the DFT split (the experts read only what it lets
    through), hash-neutral at its default, and refused without ``rec_target="projected"``."""
    from mser_lib.checks import ConfigError
    from mser_lib.models.registry import hashed_config

    info = _info("position")
    model = FEMF(info, FEMFConfig(hidden=16, expert_depth=1, dis_module="reference", rec_target="projected"))
    assert model.shared_enc.out_features == 8
    assert {m: e.out_features for m, e in model.private_enc.items()} == {m: 8 for m in model.mods}
    assert list(model.decoders) == ["shared"]
    assert model.decoders["shared"][0].in_features == 16
    assert (model.code_up.in_features, model.code_up.out_features) == (8, 16)
    b = _batch("position")
    model.eval()
    with torch.no_grad():
        model.code_up.weight.zero_()
        model.code_up.bias.zero_()
        out = model(b)
    energy = out.diagnostics["band_energy"]                  # the experts' inputs are the lifted codes: all zero
    assert float(energy.abs().max()) == 0.0
    assert set(out.aux_losses) >= {"rec", "cyc", "orth", "sim", "align"}
    with pytest.raises(ConfigError, match="dis_module='reference'.*rec_target='projected'"):
        FEMFConfig(dis_module="reference")
    assert "dis_module" not in hashed_config(build_config("femf", info, "quick"))


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_pad_vision_to_is_the_reference_loaders_zero_padding(layout):
    """``pad_vision_to=W`` is the reference's loader (vision zero-padded to W columns before nn.Linear(W, H)) done
    in the model: the same seed gives the same parameters (the vision projection keeps the real columns of the
    padded layer's weights) and the same forward and losses as the default model on zero-padded features; a
    vision wider than W is refused; hash-neutral at its default."""
    import dataclasses

    from mser_lib.checks import ConfigError
    from mser_lib.models.registry import hashed_config

    W, cfg = 32, dict(SMALL, rec_target="projected")
    info = _info(layout)
    padded_info = dataclasses.replace(info, dims={**info.dims, "vision": W})
    torch.manual_seed(3)
    switched = FEMF(info, FEMFConfig(**cfg, pad_vision_to=W))
    torch.manual_seed(3)
    plain = FEMF(padded_info, FEMFConfig(**cfg))
    a, b = dict(switched.named_parameters()), dict(plain.named_parameters())
    assert a.keys() == b.keys()
    for name in a:
        want = b[name][:, : DIMS[2]] if name == "proj.vision.weight" else b[name]
        assert torch.equal(a[name], want), name
    assert float(b["proj.vision.weight"].detach().abs().max()) <= 1 / math.sqrt(W)
    batch = _batch(layout)
    v = batch.vision
    batch_padded = dataclasses.replace(batch, vision=torch.cat([v, v.new_zeros(*v.shape[:2], W - v.shape[2])], -1))
    for model in (switched, plain):
        model.eval()
    with torch.no_grad():
        out, ref = switched(batch), plain(batch_padded)
    torch.testing.assert_close(out.prediction, ref.prediction, rtol=1e-5, atol=1e-6)
    assert out.aux_losses.keys() == ref.aux_losses.keys()
    for k in out.aux_losses:
        torch.testing.assert_close(out.aux_losses[k], ref.aux_losses[k], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="pad_vision_to.*at least the vision width 4"):
        FEMF(info, FEMFConfig(**cfg, pad_vision_to=3))
    assert "pad_vision_to" not in hashed_config(build_config("femf", info, "quick"))


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_predictions_only_skips_the_losses_and_changes_no_prediction(layout):
    """``predict`` runs FEMF with ``predictions_only`` (no decoders, L_cyc, L_align or stage-2 eq. 10 heads): the
    predictions are bit for bit those of the full forward, no loss term is computed, and the flag is restored;
    asked for diagnostics, ``predict`` computes everything."""
    from mser_lib.models.base import predictions_only
    from mser_lib.train.trainer import predict

    info = _info(layout)
    model = build_model("femf", info, preset="paper", hidden=16, expert_depth=1, expert_ffn=16, interaction_ffn=16)
    model.eval()
    b = _batch(layout)
    with torch.no_grad():
        full = model(b)
        with predictions_only(model):
            short = model(b)
    assert model.predictions_only is False
    assert torch.equal(short.prediction, full.prediction)
    assert set(full.aux_losses) == {"sim", "orth", "rec", "cyc", "align", "train"}
    assert short.aux_losses == {}
    split = tiny_split(12, dims=DIMS, layout=layout)
    _, p1, _, d1 = predict(model, split, info, batch_size=5, device="cpu")
    _, p2, _, d2 = predict(model, split, info, batch_size=5, device="cpu", collect_diagnostics=True)
    np.testing.assert_array_equal(p1, p2)
    assert d1 == []
    assert all("loss_rec" in d for d in d2)
