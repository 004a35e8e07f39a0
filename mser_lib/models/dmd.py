"""DMD: decoupled multimodal distillation (Li, Wang, Cui, CVPR 2023), a baseline of Atsuko's Table 1, read
against the authors' code (mdswyz/DMD: ``trains/singleTask/model/dmd.py``, ``trains/singleTask/DMD.py``,
``trains/singleTask/distillnets/``, ``trains/singleTask/HingeLoss.py``, ``run.py``, ``config/config.json``).
The paper itself was not at hand here (its abstract and the code's README were), so the parts below are named
after the code, not after the paper's equations. In the abstract's words: the private codes ``s_m`` are the
"modality-exclusive" space, the shared codes ``c_m`` the "modality-irrelevant" one, decoupled "in a
self-regression manner" (the decoders and ``L_rec``, ``L_cyc``); each of the two graphs is a "graph distillation
unit (GD-Unit)", called HomoGD and HeteroGD in the README, whose "distillation weights can be automatically
learned". The fixed edge prior below is the code's: the README shows text -> audio, text -> vision (and, in
HeteroGD, vision -> audio) as the edges that *emerge* after training, and the code adds them as a prior.

The parts, for one sample; modalities ``m`` in (l = text, v = vision, a = audio), the code's order::

    x_m     = Conv1D(drop(X_l) | X_v | X_a, k_m)                (L_m, d)   temporal convolution, no bias
    s_m     = E_m(x_m),   c_m = E_c(x_m)                        (L_m, d)   private encoders, one shared encoder
    r_m     = D_m([s_m; c_m]),   s~_m = E_m(r_m)                            decoders; the private code re-encoded
    -- homogeneous branch: the shared codes ---------------------------------------------------------------
    u_m     = ReLU(P1_m(pool(c_m)))                             (d,)       the homogeneous representation
    y_m^ho  = O_m(P2_m(drop(u_m)) + pool(c_m))                             one prediction per modality
    g_m     = SA_m(c_m)[last]                                   (d,)       a self-attention transformer each
    y_c     = O_c(residual block of [g_l; g_v; g_a])                       the shared codes' prediction
    -- heterogeneous branch: MulT's crossmodal transformers over the private codes ---------------------
    h_m     = Mem_m([CM_{s1->m}(s_m); CM_{s2->m}(s_m)])[last]   (2d,)      as in MulT (``mult.py``)
    v_m     = P2'_m(drop(ReLU(P1'_m(h_m)))) + h_m,  y_m^he = O'_m(v_m)     the heterogeneous representation
    -- fusion ---------------------------------------------------------------------------------------------
    f       = [sig(W_l h_l); sig(W_v h_v); sig(W_a h_a); sig(W_c [g_l; g_v; g_a])]         (9d,)
    y^      = O(f + P2(drop(ReLU(P1 f))))

The loss (the code's trainer, every weight from there)::

    L = |y^ - y| + sum_m |y_m^ho - y| + sum_m |y_m^he - y| + |y_c - y|                       eight L1 terms
        + 0.05 (GD_logit^ho + GD_reg^ho) + 0.05 (GD_logit^he + GD_repr^he + GD_reg^he)    graph distillation
        + 0.1 (L_cyc + L_rec + 0.1 (L_margin + L_ort))

* ``L_rec = sum_m MSE(r_m, x_m)``, ``L_cyc = sum_m MSE(s_m, s~_m)``.
* ``L_ort = sum_m mean_t max(0, cos(s_m[t], c_m[t]))``: the private and shared codes pushed apart.
* ``L_margin`` (:func:`margin_loss`): over the 3B shared vectors ``P_m(pool(c_m))`` with the sample's label as
  their identity, for every anchor, every vector with its label (itself excluded) should be closer in cosine
  than every vector with another label, by ``0.15 |y_anchor - y_other|``.
* Graph distillation (:class:`GraphDistillation`, one graph per branch): every ordered pair ``(j <- i)`` of
  modalities is an edge whose weight ``e_{j<-i}`` is learned per sample from the two modalities' predictions and
  representations (softmax over the six edges, temperature 8), plus a fixed prior that lets text teach vision and
  audio (the heterogeneous one also vision teach audio); the student ``j`` imitates the detached teacher ``i``:
  ``GD_logit = sum_edges mean_n (e + prior) |y_j - y_i|``, ``GD_reg = 10 ||mean_n e - prior||^2``; the
  heterogeneous ``GD_repr = 10 sum_edges mean_n (e + prior) * mean_n max(0, cos(v_j, v_i))``.

Shapes. Sequence layout: ``X_m`` ``(B, L_m, d_m)`` with real lengths from the masks; predictions ``(B,)``.
Position layout (mosi-bclstm: a sample is a video, each position an utterance): the convolutions and
transformers run over the utterances of the video, ``pool(c_m)`` and ``[last]`` are each utterance's own
vector, and every labelled utterance is a row of the losses; predictions ``(B, P)``.

Where mser differs from the code (``docs/baselines.md``, "DMD"):

* ``pool`` is the mean over real steps. The code flattens the padded sequence (``(L - k + 1) d`` inputs to
  every linear layer of the homogeneous branch and of ``P_m``: 2300 on aligned MOSI), which ties the model to one
  fixed sequence length; the position layout has no such length.
* As in mser's MulT: "same" convolutions with padding masked, attention that never reads a padded step, the last
  real step as the summary (the code: valid convolutions, a causal mask over the padded sequence, the last padded
  step); mser's sinusoidal positions; one embedding-dropout mask for a source's keys and values (the code embeds
  and drops them separately).
* ``L_ort`` takes the cosine over the features of each step, the reading the code's users settled on (its issues
  #5 and #6): the code passes ``(L, B, d)`` tensors to ``CosineEmbeddingLoss``, which PyTorch 1.9 (the code's)
  read as a cosine over the *batch* axis and PyTorch from 1.11 refuses.
* The code also computes cosine projections of the private codes (``proj_cosine_*``) and the homogeneous
  ``GD_repr``; its loss uses neither, so neither is built here.
* The optimiser and budget are mser's common protocol (``mser_lib/configs/quick.yaml``); the code's trainer sums
  the gradients of 10 batches per step, clips each gradient value at 0.6 and leaves its configured weight decay
  out of Adam.

Text is the dataset's given text features; the code fine-tunes BERT (``use_bert``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks
from ..data.batch import Batch, DatasetInfo, masked_mean
from .base import ModelOutput, dropout, task_and_aux_losses
from .mult import SOURCES, CrossmodalTransformer, MulTConfig, _key_mask
from .registry import ModelSpec, Param, register
from .tfn import _output

#: the code's modality order (l, v, a): the graphs' node indices
ORDER = ("text", "vision", "audio")
#: the graph's edges (student j, teacher i), in the code's order
EDGES = tuple((j, i) for j in range(3) for i in range(3) if i != j)
#: the code's edge priors before their softmax (temperature 0.25): text -> vision, text -> audio (and vision -> audio)
PRIOR_HOMO = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0)
PRIOR_HETERO = (0.0, 0.0, 1.0, 0.0, 1.0, 1.0)


@dataclass
class DMDConfig(MulTConfig):
    """MulT's settings (:class:`~mser_lib.models.mult.MulTConfig`: its defaults are MMSA's MOSI values, which are
    also the DMD code's ``config.json`` for MOSI: ``dst_feature_dim_nheads`` [50, 10], ``nlevels`` 4, the same
    dropouts and kernels) and the graphs' and losses' settings of the code's ``run.py`` and trainer. As in MulT's
    code, ``attn_dropout`` is the attention dropout of the transformers reading text and of the self-attention
    transformers, ``attn_dropout_audio`` / ``attn_dropout_vision`` that of those reading audio / vision."""

    gd_size_homo: int = 64         # gd_size_low
    gd_size_hetero: int = 32       # gd_size_high
    gd_temperature: float = 8.0    # the edges' softmax divides by it (alpha = 1/8)
    gd_reg: float = 10.0
    gd_repr_weight: float = 10.0   # w_losses[1]
    gd_weight: float = 0.05
    decouple_weight: float = 0.1   # on L_cyc + L_rec, and (times margin_ort_weight) on L_margin + L_ort
    margin_ort_weight: float = 0.1
    margin_scale: float = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("gd_size_homo", "gd_size_hetero"):
            checks.integer(self, name, 1)
        checks.real(self, "gd_temperature", 0.0, low_open=True)
        for name in ("gd_reg", "gd_repr_weight", "gd_weight", "decouple_weight", "margin_ort_weight", "margin_scale"):
            checks.real(self, name, 0.0)


def _softmax_prior(prior: tuple[float, ...]) -> torch.Tensor:
    """The code's ``softmax(prior, 0.25)`` (numpy, temperature 0.25)."""
    return torch.softmax(torch.tensor(prior, dtype=torch.float32) / 0.25, 0)


def margin_loss(feats: torch.Tensor, labels: torch.Tensor, scale: float = 0.15, chunk: int = 1 << 22) -> torch.Tensor:
    """The code's ``HingeLoss``: ``feats`` (M, d) with ``labels`` (M,) as identities. For each anchor ``i`` with at
    least one other row of its label (set S_i) and one of another (D_i)::

        loss_i = mean_{k in S_i, n in D_i} max(0, scale |y_i - y_n| - cos(i, k) + cos(i, n))

    averaged over those anchors (0 when there is none); the cosine's norms are ``sqrt(|x|^2 + 1e-8)``, as the code's.
    The work goes over the same-label pairs ``(i, k)``, a few per
    anchor (a sample's three modality vectors share its label), so it is ``O(pairs M)``, not ``O(M^3)``: on
    mosi-bclstm a batch of 8 videos holds about 600 vectors. ``chunk``: the most pair-by-row entries held at once."""
    M = len(feats)
    norm = (feats.pow(2).sum(-1) + 1e-8).sqrt().clamp_min(1e-8)
    cos = (feats @ feats.T) / (norm[:, None] * norm[None, :])                         # (M, M): the code's cosine
    y = labels.reshape(-1).to(feats.dtype)
    off = ~torch.eye(M, dtype=torch.bool, device=feats.device)
    same = (y[:, None] == y[None, :]) & off
    diff = (y[:, None] != y[None, :])
    n_s, n_d = same.sum(1), diff.sum(1)
    ok = (n_s > 0) & (n_d > 0)
    if not ok.any():
        return feats.new_zeros(())
    margin = scale * (y[:, None] - y[None, :]).abs()                                   # (M, M): anchor, other
    anchor, pos = same.nonzero(as_tuple=True)                                          # the pairs (i, k)
    sums = feats.new_zeros(M)
    step = max(1, chunk // max(M, 1))
    for lo in range(0, len(anchor), step):
        i, k = anchor[lo:lo + step], pos[lo:lo + step]
        hinge = F.relu(margin[i] + cos[i] - cos[i, k][:, None]) * diff[i].to(feats.dtype)   # (pairs, M)
        sums = sums.index_add(0, i, hinge.sum(1))
    per = sums / (n_s * n_d).clamp_min(1).to(feats.dtype)
    return per[ok].sum() / int(ok.sum())


class GraphDistillation(nn.Module):
    """One distillation graph over the three modalities (the code's ``DistillationKernel``).

    ``edges(logits (3, N), reprs (3, N, h))`` -> ``(6, N)``: per sample, a softmax over the six edges of
    ``W_e [z_j; z_i] / temperature`` with ``z = [W_logit y; W_repr r]``. ``loss`` -> ``(reg, logit, repr)``;
    ``repr`` is the heterogeneous graph's cosine term (``None`` for ``repr_kind=None``)."""

    def __init__(self, hidden: int, gd_size: int, prior: tuple[float, ...], cfg: DMDConfig,
                 repr_kind: str | None):
        super().__init__()
        self.w_logit = nn.Linear(1, gd_size)
        self.w_repr = nn.Linear(hidden, gd_size)
        self.w_edge = nn.Linear(4 * gd_size, 1)
        self.register_buffer("prior", _softmax_prior(prior), persistent=False)
        self.cfg, self.repr_kind = cfg, repr_kind

    def edges(self, logits: torch.Tensor, reprs: torch.Tensor) -> torch.Tensor:
        z = torch.cat([self.w_logit(logits[..., None]), self.w_repr(reprs)], -1)        # (3, N, 2g)
        e = torch.cat([self.w_edge(torch.cat([z[j], z[i]], -1)) for j, i in EDGES], -1)  # (N, 6)
        return torch.softmax(e / self.cfg.gd_temperature, -1).T                       # (6, N)

    def loss(self, logits: torch.Tensor, reprs: torch.Tensor, edges: torch.Tensor):
        c = self.cfg
        reg = (edges.mean(1) - self.prior).pow(2).sum() * c.gd_reg
        logit = reprs.new_zeros(())
        rep = reprs.new_zeros(()) if self.repr_kind else None
        for x, (j, i) in enumerate(EDGES):
            w = edges[x] + self.prior[x]                                                # (N,)
            logit = logit + ((logits[j] - logits[i].detach()).abs() * w).mean()
            if self.repr_kind == "min_cosine":
                cos = F.cosine_embedding_loss(reprs[j], reprs[i].detach(),
                                              reprs.new_full((reprs.shape[1],), -1.0))
                rep = rep + c.gd_repr_weight * (cos * w).mean()
        return reg, logit, rep


class DMD(nn.Module):
    """DMD. ``forward(batch)``: the prediction ``(B,)`` / ``(B, P)``; in training also the loss terms above
    (``aux_losses``: the seven other heads' L1, both graphs, the decoupling terms)."""

    def __init__(self, info: DatasetInfo, config: DMDConfig):
        super().__init__()
        if info.task != "regression":
            raise ValueError(f"DMD's margin loss compares sentiment scores (regression); {info.name!r} is a "
                             f"{info.task} dataset")
        self.info, self.config = info, config
        c, d = config, config.d_model
        attn = {"text": c.attn_dropout, "audio": c.attn_dropout_audio, "vision": c.attn_dropout_vision}
        self.convs = nn.ModuleDict({m: nn.Conv1d(info.dims[m], d, getattr(c, f"conv_kernel_{m}"),
                                                 padding=getattr(c, f"conv_kernel_{m}") // 2, bias=False)
                                    for m in ORDER})
        self.private = nn.ModuleDict({m: nn.Linear(d, d, bias=False) for m in ORDER})
        self.shared = nn.Linear(d, d, bias=False)
        self.decoders = nn.ModuleDict({m: nn.Linear(2 * d, d, bias=False) for m in ORDER})
        self.align = nn.ModuleDict({m: nn.Linear(d, d) for m in ORDER})
        self.homo = nn.ModuleDict({m: _Residual(d, d, c.output_dropout, relu_repr=True) for m in ORDER})
        self.self_attn = nn.ModuleDict({m: CrossmodalTransformer(d, c.num_heads, c.num_layers, attn[m], c)
                                        for m in ORDER})
        self.shared_head = _Residual(3 * d, 3 * d, c.output_dropout)
        # MulT's crossmodal transformer CM_{s -> t} reads the source s with s's attention dropout (the code's
        # get_network('la') for "l with a" takes attn_dropout_a)
        self.cross = nn.ModuleDict({f"{s}_to_{t}": CrossmodalTransformer(d, c.num_heads, c.num_layers, attn[s], c)
                                    for t in ORDER for s in SOURCES[t]})
        self.memory = nn.ModuleDict({t: CrossmodalTransformer(2 * d, c.num_heads, c.memory_layers, c.attn_dropout, c)
                                     for t in ORDER})
        self.hetero = nn.ModuleDict({m: _Residual(2 * d, 2 * d, c.output_dropout) for m in ORDER})
        self.gates = nn.ModuleDict({m: nn.Linear(2 * d, 2 * d) for m in ORDER})
        self.gate_shared = nn.Linear(3 * d, 3 * d)
        self.fusion = _Residual(9 * d, 9 * d, c.output_dropout)
        self.graph_homo = GraphDistillation(d, c.gd_size_homo, PRIOR_HOMO, c, repr_kind=None)
        self.graph_hetero = GraphDistillation(2 * d, c.gd_size_hetero, PRIOR_HETERO, c, repr_kind="min_cosine")

    def _rows(self, x: torch.Tensor, where: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """Per-sample vectors of a stream ``x`` (B, L, k): the mean over real steps (sequence layout), or each
        labelled utterance's own vector (position layout), ``(N, k)``."""
        if where is None:
            return masked_mean(x, mask)
        return x[:, :where.shape[1]][where]

    def _last(self, x: torch.Tensor, where: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """The last real step (sequence layout) or each labelled utterance (position layout), ``(N, k)``."""
        if where is None:
            rows = torch.arange(len(x), device=x.device)
            return x[rows, (mask.sum(1) - 1).clamp_min(0)]
        return x[:, :where.shape[1]][where]

    def forward(self, batch: Batch) -> ModelOutput:
        c, training = self.config, self.training
        where = batch.label_mask if batch.layout == "position" else None
        masks = {m: batch.mask(m) for m in ORDER}
        keep = {m: masks[m][..., None].to(batch.features(m).dtype) for m in ORDER}
        x, s, sh = {}, {}, {}
        for m in ORDER:
            feats = batch.features(m)
            if m == "text":
                feats = dropout(feats, c.text_dropout, training)
            x[m] = self.convs[m]((feats * keep[m]).transpose(1, 2)).transpose(1, 2) * keep[m]   # (B, L_m, d)
            s[m], sh[m] = self.private[m](x[m]), self.shared(x[m])              # zero on padded steps (no bias)
        keys = {m: _key_mask(masks[m]) for m in ORDER}
        # homogeneous branch
        pooled = {m: self._rows(sh[m], where, masks[m]) for m in ORDER}                  # (N, d)
        homo = {m: self.homo[m](pooled[m]) for m in ORDER}                                      # (y, u)
        g = torch.cat([self._last(self.self_attn[m](sh[m], keys[m]), where, masks[m]) for m in ORDER], -1)
        y_shared, _ = self.shared_head(g)
        # heterogeneous branch
        h = {}
        for t in ORDER:
            z = torch.cat([self.cross[f"{src}_to_{t}"](s[t], keys[src], s[src]) for src in SOURCES[t]], -1)
            h[t] = self._last(self.memory[t](z, keys[t]) * keep[t], where, masks[t])      # (N, 2d)
        hetero = {m: self.hetero[m](h[m]) for m in ORDER}                                       # (y, v)
        f = torch.cat([torch.sigmoid(self.gates[m](h[m])) for m in ORDER] + [torch.sigmoid(self.gate_shared(g))], -1)
        y, _ = self.fusion(f)
        out = ModelOutput(prediction=_output(y[:, None], self.info, where, squash=False))
        if not training:
            return out
        labels = batch.labels[where] if where is not None else batch.labels
        labels = labels.reshape(-1).to(y.dtype)
        heads = [homo[m][0] for m in ORDER] + [hetero[m][0] for m in ORDER] + [y_shared]
        out.aux_losses["heads"] = sum((p - labels).abs().mean() for p in heads)
        gd = 0.0
        for graph, parts, with_repr in ((self.graph_homo, homo, False), (self.graph_hetero, hetero, True)):
            logits = torch.stack([parts[m][0] for m in ORDER])                                  # (3, N)
            reprs = torch.stack([parts[m][1] for m in ORDER])                                   # (3, N, k)
            reg, logit, rep = graph.loss(logits, reprs, graph.edges(logits, reprs))
            gd = gd + logit + reg + (rep if with_repr else 0.0)
        out.aux_losses["graph_distillation"] = c.gd_weight * gd
        rec = cyc = ort = 0.0
        for m in ORDER:
            recon = self.decoders[m](torch.cat([s[m], sh[m]], -1))
            rec = rec + _masked_mse(recon, x[m], masks[m])
            cyc = cyc + _masked_mse(s[m], self.private[m](recon), masks[m])
            cos = F.relu(F.cosine_similarity(s[m], sh[m], dim=-1, eps=1e-8))                    # (B, L_m)
            ort = ort + (cos * masks[m]).sum() / masks[m].sum().clamp_min(1)
        feats = torch.stack([self.align[m](pooled[m]) for m in ORDER], 1).reshape(-1, c.d_model)  # l, v, a per row
        margin = margin_loss(feats, labels.repeat_interleave(3), c.margin_scale)
        out.aux_losses["decouple"] = c.decouple_weight * (cyc + rec)
        out.aux_losses["margin_ort"] = c.decouple_weight * c.margin_ort_weight * (margin + ort)
        return out

    def loss(self, output: ModelOutput, batch: Batch):
        """The L1 task loss of the fused prediction (the code's, whatever ``TrainConfig.loss_kind`` says) plus the
        terms in ``aux_losses``, and the parts."""
        return task_and_aux_losses(output, batch, self.info.task, "l1")


class _Residual(nn.Module):
    """The code's prediction block: ``r = ReLU(P1 x)``, ``v = P2(drop(r)) + x``, ``y = O(v)``. Returns ``(y (N,),
    v)``, or ``(y, r)`` with ``relu_repr`` (the homogeneous branch hands its ReLU'd ``r`` to the graph: the code's
    in-place ReLU)."""

    def __init__(self, d_in: int, d_hidden: int, p: float, relu_repr: bool = False):
        super().__init__()
        self.p1, self.p2, self.out = nn.Linear(d_in, d_hidden), nn.Linear(d_hidden, d_in), nn.Linear(d_in, 1)
        self.p, self.relu_repr = p, relu_repr

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = F.relu(self.p1(x))
        v = self.p2(dropout(r, self.p, self.training)) + x
        return self.out(v).squeeze(-1), (r if self.relu_repr else v)


def _masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over the real steps of ``(B, L, d)`` tensors (the code's mean over every element of
    its padded, all-real sequences)."""
    m = mask[..., None].to(a.dtype)
    return ((a - b).pow(2) * m).sum() / (m.sum() * a.shape[-1]).clamp_min(1)


def _paper(info: DatasetInfo) -> dict:
    """The code's ``config.json``: MOSI's values (the defaults) and MOSEI's; it has no other dataset."""
    if info.name.startswith("mosei"):
        return {"d_model": 30, "num_heads": 6, "conv_kernel_audio": 1, "conv_kernel_vision": 3,
                "text_dropout": 0.3, "attn_dropout": 0.4, "attn_dropout_audio": 0.0, "embed_dropout": 0.0}
    return {}


def _quick(info: DatasetInfo) -> dict:
    """A small stand-in for the built-in benchmark (no attention dropout, as MulT's quick model)."""
    return {"d_model": 16, "num_heads": 2, "num_layers": 1, "memory_layers": 1, "conv_kernel_text": 3,
            "conv_kernel_audio": 3, "conv_kernel_vision": 3, "attn_dropout": 0.0, "attn_dropout_audio": 0.0,
            "gd_size_homo": 16, "gd_size_hetero": 8}


register(ModelSpec("dmd", DMD, DMDConfig, {"quick": _quick, "paper": _paper},
                   "DMD (Li et al., 2023), read against the authors' code", role="baseline",
                   tasks=("regression",),
                   label="DMD",
                   color="#2ca02c",
                   # not the depth: the code ties the later transformers' depth to it (max(nlevels, 3))
                   search_space={"output_dropout": Param("float", 0.0, 0.5),
                                 "text_dropout": Param("float", 0.0, 0.5)}))

__all__ = ["DMD", "DMDConfig", "GraphDistillation", "margin_loss", "EDGES", "ORDER"]
