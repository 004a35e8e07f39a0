"""Whole-model checks: the packed, bucketed, stacked FEMF forward equals FEMF written per sample.

``plain_femf`` below is the paper's FEMF (stage 2, eval mode) for one batch, written as a loop over
samples with plain tensor operations: each modality's real tokens only, one transformer per (expert,
sequence), one router call per token, the DFT split with ``torch.fft`` per sequence, cross-attention over
the other modality's real tokens of the same sample. It reads the model's parameters and nothing else of
``mser_lib.models.packing``. The check runs in float64 on both layouts with unequal lengths (in the
sequence layout every modality has its own), for the prediction and every loss term.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mser_lib.data import DatasetInfo, SplitData, collate
from mser_lib.models.femf import FEMF, FEMFConfig
from mser_lib.spectral.dft import cutoff_bins

MODS = ("text", "audio", "vision")
DIMS = {"text": 5, "audio": 4, "vision": 3}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _split(layout: str, lengths: dict[str, list[int]], seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    n = len(lengths["text"])
    L = max(max(v) for v in lengths.values())
    arrays = {}
    for m in MODS:
        lm = np.asarray(lengths[m])
        mask = np.arange(L)[None] < lm[:, None]
        x = rng.standard_normal((n, L, DIMS[m]))
        arrays[m] = np.where(mask[..., None], x, 0.0).astype(np.float32)
        arrays[f"{m}_mask"] = mask
    if layout == "position":
        labels = rng.uniform(-3, 3, size=(n, L)).astype(np.float32) * arrays["text_mask"]
        label_mask = arrays["text_mask"].copy()
    else:
        labels = rng.uniform(-3, 3, size=n).astype(np.float32)
        label_mask = np.ones(n, dtype=bool)
    return SplitData(**arrays, labels=labels, label_mask=label_mask, ids=np.array([f"s{i}" for i in range(n)]))


def _setup(layout: str, **overrides):
    if layout == "position":        # a sample is a video: every modality on the utterance axis
        lens = [5, 2, 9, 1, 7, 9]
        lengths = {m: lens for m in MODS}
    else:                           # every modality its own lengths, one sequence of length 1
        lengths = {"text": [5, 2, 9, 1, 7, 3], "audio": [8, 3, 1, 6, 7, 2], "vision": [4, 9, 2, 2, 1, 6]}
    info = DatasetInfo("toy", layout, "regression", "mosi", dict(DIMS), source={"standardize": True})
    cfg = FEMFConfig(hidden=8, heads=2, expert_depth=2, expert_ffn=12, interaction_layers=2, interaction_ffn=10,
                     router_hidden=6, fusion_hidden=5, dropout=0.3, cutoff_ratio=0.6, alpha=0.3, **overrides)
    torch.manual_seed(0)
    model = FEMF(info, cfg).double()
    with torch.no_grad():                       # biases and LayerNorms away from their initial 0 and 1
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = collate(_split(layout, lengths), np.arange(len(lengths["text"])), layout)
    for m in MODS:
        setattr(batch, m, batch.features(m).double())
    batch.labels = batch.labels.double()
    model.set_stage("full")
    model.eval()
    return model, batch


def _lin(mod, x):
    return x @ mod.weight.T + mod.bias


def _ln(x, w, b):
    return F.layer_norm(x, x.shape[-1:]) * w + b


def _mha(q, k, v, heads):
    """q (Tq, H), k/v (Tk, H): multi-head scaled dot-product attention over every key."""
    Tq, H = q.shape
    dh = H // heads
    qh, kh, vh = (t.view(-1, heads, dh).transpose(0, 1) for t in (q, k, v))
    a = ((qh @ kh.transpose(-1, -2)) / math.sqrt(dh)).softmax(-1) @ vh
    return a.transpose(0, 1).reshape(Tq, H)


def _expert(ex, g, x):
    """Expert ``g`` (eq. 9): post-LN transformer blocks on one sequence ``x`` (T, H)."""
    for q in range(ex.depth):
        qkv = x @ ex.wqkv[q, g] + ex.bqkv[q, g]
        a = _mha(*qkv.split(ex.H, -1), ex.heads) @ ex.wo[q, g] + ex.bo[q, g]
        x = _ln(x + a, ex.ln1_w[q, g], ex.ln1_b[q, g])
        f = F.relu(x @ ex.w1[q, g] + ex.b1[q, g]) @ ex.w2[q, g] + ex.b2[q, g]
        x = _ln(x + f, ex.ln2_w[q, g], ex.ln2_b[q, g])
    return x


def _lowpass(x, ratio):
    """Eq. 8 on one sequence (T, H): keep the first c rfft bins."""
    T = x.shape[0]
    spec = torch.fft.rfft(x, dim=0)
    spec[cutoff_bins(T, ratio):] = 0
    return torch.fft.irfft(spec, n=T, dim=0)


def _cos(a, b):
    return (a * b).sum(-1) / (a.norm(dim=-1).clamp_min(1e-8) * b.norm(dim=-1).clamp_min(1e-8))


def plain_femf(model, batch) -> tuple[torch.Tensor, dict]:
    """FEMF's stage-2 forward in eval mode, one sample at a time. Returns (predictions at labelled
    positions or per sample, {loss name: unweighted value})."""
    c, mods = model.config, list(model.mods)
    M, pos = len(mods), batch.layout == "position"
    ref, projected = c.dis_module == "reference", c.rec_target == "projected"
    ex, ro = model.experts, model.routers
    samples = range(len(batch))
    x = {(b, m): batch.features(m)[b][batch.mask(m)[b].bool()] for b in samples for m in mods}
    h = {k: _lin(model.proj[k[1]], v) for k, v in x.items()}
    priv = {k: _lin(model.private_enc[k[1]], v) for k, v in h.items()}
    shar = {k: _lin(model.shared_enc, v) for k, v in h.items()}
    loss = {}

    # eq. 2-6
    sims = []
    for i in range(M):
        for j in range(i + 1, M):
            a, b2 = mods[i], mods[j]
            if pos:
                sims.append(torch.cat([1 - _cos(shar[(b, a)], shar[(b, b2)]) for b in samples]).mean())
            else:
                pooled = [1 - _cos(shar[(b, a)].mean(0), shar[(b, b2)].mean(0)) for b in samples]
                sims.append(torch.stack(pooled).mean())
    loss["sim"] = torch.stack(sims).mean()
    loss["orth"] = torch.stack([torch.cat([_cos(shar[(b, m)], priv[(b, m)]).pow(2) for b in samples]).mean()
                                for m in mods]).mean()
    rec, cyc = [], []
    for m in mods:
        err_r, err_c = [], []
        for b in samples:
            t_sh = shar[(b, "text")]
            src = t_sh if (m == "text" or pos) else t_sh.mean(0).expand(len(x[(b, m)]), -1)
            dec = model.decoders["shared" if ref else m]
            xh = _lin(dec[2], F.relu(_lin(dec[0], torch.cat([src, priv[(b, m)]], -1))))
            err_r.append((xh - (h if projected else x)[(b, m)]).pow(2).mean(-1))
            if m != "text":
                again = _lin(model.private_enc[m], xh if projected else _lin(model.proj[m], xh))
                err_c.append((again - priv[(b, m)]).pow(2).mean(-1))
        rec.append(torch.cat(err_r).mean())
        if err_c:
            cyc.append(torch.cat(err_c).mean())
    loss["rec"], loss["cyc"] = torch.stack(rec).mean(), torch.stack(cyc).sum()

    # eq. 8-15: bands, experts, routers
    if ref:                                          # the reference's proj_distangle lifts the private codes
        priv = {k: _lin(model.code_up, v) for k, v in priv.items()}
    bands = {}
    for k, p in priv.items():
        low = _lowpass(p, c.cutoff_ratio)
        bands[k] = (low, p - low)
    R, own = {}, {}
    for b in samples:
        for j, m in enumerate(mods):
            out = 0
            for f in range(2):
                inp = bands[(b, m)][f]
                if pos:
                    anchor = bands[(b, "text")][f]
                else:
                    anchor = priv[(b, "text")].mean(0).expand(len(inp), -1)
                r = f * M + j
                w = (F.relu(torch.cat([inp, anchor], -1) @ ro.w1[r] + ro.b1[r]) @ ro.w2[r] + ro.b2[r]).softmax(-1)
                coef = c.alpha if f == 0 else 1 - c.alpha
                for i in range(M):
                    y = _expert(ex, f * M + i, inp)
                    out = out + coef * w[:, i:i + 1] * y
                    if i == j:
                        own[(b, m, f)] = y @ ex.head_w[f * M + i] + ex.head_b[f * M + i]
            R[(b, m)] = out
    labels = batch.labels
    train = []
    for m in mods:
        for f in range(2):
            if pos:
                errs = [(own[(b, m, f)][:, 0] - labels[b, :len(x[(b, m)])]).pow(2) for b in samples]
                train.append(torch.cat(errs).mean())
            else:
                train.append(torch.stack([(own[(b, m, f)].mean(0)[0] - labels[b]).pow(2) for b in samples]).mean())
    loss["train"] = torch.stack(train).sum()

    # eq. 16-19: queries updated layer by layer, keys always the MoE outputs R_k
    cur = dict(R)
    for layer in model.interaction:
        new = {}
        for b in samples:
            for m in mods:
                br, r = layer[m], cur[(b, m)]
                for key, step in zip(br.keys, br.steps):
                    kv = _lin(step.kv, R[(b, key)])
                    a = _lin(step.o, _mha(_lin(step.q, r), kv[:, :c.hidden], kv[:, c.hidden:], c.heads))
                    r = _ln(r + a, step.ln.weight, step.ln.bias)
                ffn = _lin(br.ffn[3], F.relu(_lin(br.ffn[0], r)))
                new[(b, m)] = _ln(r + ffn, br.ln.weight, br.ln.bias)
        cur = new

    # eq. 20-25
    preds, aligns = [], []
    for b in samples:
        feat = {m: cur[(b, m)] if pos else cur[(b, m)].mean(0, keepdim=True) for m in mods}
        joint = _lin(model.joint_head, torch.cat([feat[m] for m in mods], -1))
        ffn = {m: _lin(model.hpm_ffn[m][3], F.relu(_lin(model.hpm_ffn[m][0], feat[m]))) for m in mods}
        heads = [_lin(model.hpm_head[m], feat[m] + ffn[m]) for m in mods] + [joint]
        z = torch.stack(heads, -2)                                       # (n, M + 1, 1)
        mlp = model.fusion_mlp
        wts = _lin(mlp[2], F.relu(_lin(mlp[0], z.flatten(-2)))).softmax(-1)
        out = (wts.unsqueeze(-1) * z).sum(-2)                            # (n, 1)
        s_sum = sum(shar[(b, m)] if pos else shar[(b, m)].mean(0, keepdim=True) for m in mods)
        if ref:
            s_sum = _lin(model.code_up, s_sum)
        aligns.append((_lin(model.shared_head, s_sum) - out).pow(2).mean(-1))
        preds.append(out[:, 0])
    loss["align"] = torch.cat(aligns).mean()
    return torch.cat(preds), loss


@pytest.mark.parametrize("dis", [{}, {"dis_module": "reference", "rec_target": "projected"}],
                         ids=["paper", "reference-disentanglement"])
@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_packed_femf_equals_femf_written_per_sample(layout, dis):
    """The packed model against one sample at a time; with the reference's disentanglement module too (codes half
    as wide, one decoder for every modality, the private and summed shared codes lifted back to the model width)."""
    model, batch = _setup(layout, **dis)
    with torch.no_grad():
        out = model(batch)
        want_pred, want_loss = plain_femf(model, batch)
    got_pred = out.prediction[batch.label_mask.bool()] if layout == "position" else out.prediction
    torch.testing.assert_close(got_pred, want_pred, rtol=1e-9, atol=1e-10)
    got = {k[len("loss_"):]: v for k, v in out.diagnostics.items() if k.startswith("loss_")}
    assert set(got) == set(want_loss)
    for name, value in want_loss.items():
        torch.testing.assert_close(got[name], value, rtol=1e-9, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")


# ------------------------------------------------------------------------------------------------
# Atsuko: the batched forward (padded grids, masks, a basis per unique length) against one sample at a time
# ------------------------------------------------------------------------------------------------

def _path_basis(T: int) -> torch.Tensor:
    """Eq. 1: eigenvectors of the normalised Laplacian of the path on T nodes, low to high frequency."""
    A = torch.zeros(T, T, dtype=torch.float64)
    idx = torch.arange(T - 1)
    A[idx, idx + 1] = A[idx + 1, idx] = 1.0
    deg = A.sum(1)
    d = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
    lap = torch.diag((deg > 0).double()) - d[:, None] * A * d[None]
    return torch.linalg.eigh(lap)[1]


def _sinusoid(T, d):
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    ang = pos / torch.pow(10000.0, torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(ang), torch.cos(ang[:, : d // 2])
    return pe


def _encoder(enc, x, causal, heads):
    """Pre-LN encoder on one sequence (T, d), every step real."""
    T, d = x.shape
    h = x * enc.scale + _sinusoid(T, d)
    for lay in enc.layers:
        q, k, v = _lin(lay.qkv, F.layer_norm(h, (d,), lay.ln1.weight, lay.ln1.bias)).split(d, -1)
        dh = d // heads
        qh, kh, vh = (t.view(T, heads, dh).transpose(0, 1) for t in (q, k, v))
        s = (qh @ kh.transpose(-1, -2)) / math.sqrt(dh)
        if causal:
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        a = (s.softmax(-1) @ vh).transpose(0, 1).reshape(T, d)
        h = h + _lin(lay.proj, a)
        h = h + _lin(lay.fc2, F.relu(_lin(lay.fc1, F.layer_norm(h, (d,), lay.ln2.weight, lay.ln2.bias))))
    return F.layer_norm(h, (d,), enc.norm.weight, enc.norm.bias)


def _head(head, x):
    x = _lin(head.inp, x) if isinstance(head.inp, torch.nn.Linear) else x
    r = x + _lin(head.fc2, F.relu(_lin(head.fc1, x)))
    return _lin(head.out, r), r


def plain_atsuko(model, batch) -> tuple[torch.Tensor, dict]:
    """Atsuko's forward in eval mode, one sample at a time (regression, every modality present)."""
    from mser_lib.spectral.graph import band_index

    cfg = model.config
    seq = batch.layout == "sequence"
    K = cfg.num_bands
    preds, terms = [], {k: [] for k in ("l_uni", "l_bi", "kl", "ent_m", "ent_b", "dis")}
    for b in range(len(batch)):
        H, pooled, ent_b = [], [], []
        for j, m in enumerate(MODS):
            x = batch.features(m)[b][batch.mask(m)[b].bool()]                     # (T, d_m)
            T = x.shape[0]
            conv = model.convs[m]
            X = F.conv1d(x.T[None], conv.weight, padding=conv.kernel_size[0] // 2)
            X = F.conv1d(X, model.shared_conv.weight)[0].T                        # (T, d)
            U = _path_basis(T)
            band = band_index(T, model.band_cuts[j].tolist(), nonempty=cfg.band_rule == "nonempty")
            comps = [U[:, band == k] @ (U[:, band == k].T @ X) for k in range(K)]
            s = torch.cat([c_.mean(0) for c_ in comps])
            r = model.band_routers[m]
            logits = _lin(r.fc2, F.relu(_lin(r.fc1, s))) / cfg.band_temperature
            w = logits.softmax(-1)
            ent_b.append(K * (w * w.log()).sum())
            Xt = K * sum(w[k] * comps[k] for k in range(K))
            out = _encoder(model.encoders[m], Xt, seq, cfg.num_heads)
            H.append(out[-1:] if seq else out)                                   # (P, d)
            pooled.append(Xt.mean(0, keepdim=True) if seq else Xt)
        Hs = torch.stack(H, 1)                                                    # (P, 3, d)
        z = torch.cat(pooled, -1)
        rt = model.router
        logits = _lin(rt.fc2, F.relu(F.normalize(_lin(rt.fc1, z), dim=-1))) / cfg.router_temperature
        w = logits.softmax(-1)                                                    # (P, 3)
        y = batch.labels[b].reshape(-1)[: Hs.shape[0]]
        pred, f_ref = _head(model.fusion_head, (w[..., None] * Hs).sum(1))
        uni = [_head(model.uni_heads[m], Hs[:, j]) for j, m in enumerate(MODS)]
        others = {"text": (1, 2), "audio": (0, 2), "vision": (0, 1)}         # eq. 5: the branch without m
        bi = [_head(model.bi_heads[m], torch.cat([Hs[:, others[m][0]], Hs[:, others[m][1]]], -1))[0][:, 0]
              for m in MODS]
        l_full = (pred[:, 0] - y).abs()
        l_uni = torch.stack([(u[0][:, 0] - y).abs() for u in uni], -1)            # (P, 3)
        l_bi = torch.stack([(p - y).abs() for p in bi], -1)
        q = ((l_bi - l_full[:, None]) / cfg.comp_temperature).softmax(-1)
        teacher = (w[..., None] * torch.stack([u[1] for u in uni], 1)).sum(1)
        pt = teacher.softmax(-1)
        preds.append(pred[:, 0])
        terms["l_uni"].append(l_uni)
        terms["l_bi"].append(l_bi.mean(-1))
        terms["kl"].append((q * q.log() - q * w.log()).sum(-1))
        terms["ent_m"].append(3 * (w * w.log()).sum(-1))
        terms["ent_b"].append(torch.stack(ent_b))
        terms["dis"].append((pt * pt.log() - pt * f_ref.log_softmax(-1)).sum(-1))
    cat = {k: torch.cat(v) if k != "ent_b" else torch.stack(v) for k, v in terms.items()}
    loss = {"unimodal": cfg.uni_weight * cat["l_uni"].mean(0).mean(),
            "bimodal": cfg.bi_weight * cat["l_bi"].mean(),
            "routing": cfg.route_weight * cat["kl"].mean(),
            "entropy_modality": cfg.entropy_weight * cat["ent_m"].mean(),
            "entropy_band": cfg.entropy_weight * cat["ent_b"].mean(0).sum(),
            "distill": cfg.distill_weight * cat["dis"].mean()}
    return torch.cat(preds), loss


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_batched_atsuko_equals_atsuko_written_per_sample(layout):
    from mser_lib.models.registry import build_model

    if layout == "position":
        lengths = {m: [5, 2, 9, 1, 7, 9] for m in MODS}
    else:
        lengths = {"text": [5, 2, 9, 1, 7, 3], "audio": [8, 3, 1, 6, 7, 2], "vision": [4, 9, 2, 2, 1, 6]}
    info = DatasetInfo("toy", layout, "regression", "mosi", dict(DIMS))
    torch.manual_seed(0)
    model = build_model("atsuko", info, "paper", d_model=8, num_heads=2, num_layers=2, ffn_mult=2,
                        kernel_sizes=(3, 1, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.set_band_boundaries(torch.tensor([[0.2, 0.6], [0.004, 0.006], [0.3, 0.5]]))   # audio: DC-heavy cuts
    model.eval()
    batch = collate(_split(layout, lengths), np.arange(6), layout)
    for m in MODS:
        setattr(batch, m, batch.features(m).double())
    batch.labels = batch.labels.double()
    with torch.no_grad():
        out = model(batch)
        want_pred, want_loss = plain_atsuko(model, batch)
    got_pred = out.prediction[batch.label_mask.bool()] if layout == "position" else out.prediction
    torch.testing.assert_close(got_pred, want_pred, rtol=1e-9, atol=1e-10)
    assert set(out.aux_losses) == set(want_loss)
    for name, value in want_loss.items():
        torch.testing.assert_close(out.aux_losses[name], value, rtol=1e-9, atol=1e-10,
                                   msg=lambda msg, n=name: f"{n}: {msg}")


def test_dropout_is_inverted_dropout():
    """models.base.dropout: F.dropout's distribution (zeros with probability p, the rest scaled by 1/(1-p)),
    nothing drawn when off."""
    from mser_lib.models.base import Dropout, dropout

    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x, 0.3, True)
    kept = y != 0
    assert abs(float(kept.float().mean()) - 0.7) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)
    state = torch.get_rng_state()
    assert dropout(x, 0.3, False) is x
    assert dropout(x, 0.0, True) is x
    assert torch.equal(torch.get_rng_state(), state)                 # nothing drawn when off
    assert float(dropout(x, 1.0, True).abs().sum()) == 0.0
    assert Dropout(0.5).eval()(x) is x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dropout_is_bit_for_bit_the_written_formula(dtype):
    """The float32 fast path (mask and scale built in the noise's buffer, one multiply) gives the bits of
    ``x * (noise >= p) * (1 / (1 - p))`` forward and backward, signed zeros, inf and nan included: the committed
    records were trained with that formula."""
    from mser_lib.models.base import dropout

    ints = {torch.float32: torch.int32, torch.float64: torch.int64, torch.bfloat16: torch.int16}[dtype]
    for p in (0.1, 0.3, 0.5, 1 / 3):
        x = (torch.randn(3, 500, 16) * 10).to(dtype)
        x[0, 0, :4] = torch.tensor([0.0, -0.0, float("inf"), float("nan")]).to(dtype)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        torch.manual_seed(5)
        want = a * (torch.rand(a.shape) >= p).to(dtype) * (1.0 / (1.0 - p))
        torch.manual_seed(5)
        got = dropout(b, p, True)
        g = torch.randn_like(want)
        g.view(-1)[:5] = torch.tensor([0.0, -0.0, float("inf"), 1.0, -1.0]).to(dtype)
        want.backward(g)
        got.backward(g)
        assert torch.equal(got.detach().view(ints), want.detach().view(ints)), p
        assert torch.equal(b.grad.view(ints), a.grad.view(ints)), p
