"""MoMKE: Mixture of Modality Knowledge Experts (Xu et al., "Leveraging Knowledge of Modality Experts for
Incomplete Multimodal Learning", ACM MM 2024), a baseline of FEMF's Table 1 (on FEMF's own utterance features:
FEMF's reference code is built on it), read against the authors' code (wxxv/MoMKE:
``MoMKE/model_expert_softmoe.py``, ``MoMKE/modules/Attention_softmoe.py``, ``MoMKE/train_MoMKE.py``,
``run_MoMKE_cmumosi.sh``, ``run_MoMKE_cmumosei.sh``); the paper was not at hand beyond its abstract, so this
follows the code. The abstract's names for the two stages are "unimodal expert training" (stage 1 below) and
"experts mixing training" (stage 2), and for the router a "Soft Router" that mixes "the unimodal
representations and the joint representations".

The network, per modality ``m`` in {audio, text, vision}, over the positions of a sample (the utterances of a
video in the position layout)::

    p_m   = drop(W_m x_m)                                         (B, L, D)   input projection
    E_m   = depth x [ y <- y + A(y) ],  A(y) = s + MLP(s),  s = softmax(q k^T / sqrt(d_h)) v   (no LayerNorm,
            no output projection, GELU MLP: the code's ``Attention``), keys limited to real positions

**Stage 1, unimodal training** (``stages()[0] = "experts"``): each modality through its own expert,
``u_m = E_m(p_m)``, and a head per modality; the loss is the sum of the three unimodal mean squared errors.

**Stage 2, knowledge experts with a soft router** (``"full"``): each modality's projection goes through *all
three* experts (each expert brings its modality's knowledge to the other two), and a router per modality
weighs them::

    w_m   = softmax(Router_m(p_m))                                (B, L, 3)   Router_m: GELU MLP with dropout
    z_m   = sum_e w_m[e] E_e(p_m)                                 (B, L, D)
    h     = [z_a; z_t; z_v] + drop(ReLU(W_1 [z_a; z_t; z_v]))    (B, L, 3D)
    y^    = W_o h                                                  one prediction per position

The experts keep training in stage 2 (the code has no freezing). ``tests/test_momke.py`` checks an expert
layer against its formula written out per sample (float64), that stage 1 trains the experts and unimodal heads
only while stage 2 runs every expert on every modality mixed by the routers' softmax weights, and both layouts.

Shapes. Position layout: ``x_m`` ``(B, P, d_m)`` utterance vectors, prediction ``(B, P)``. Sequence layout (the
built-in benchmark): the experts run over each modality's own steps and ``z_m`` is averaged over its real steps
before the fusion, so the prediction is ``(B,)``; the code has no sequence layout (it reads utterance features).

Where mser differs from the code (``docs/baselines.md``, "MoMKE"): stage 1 hands on one model, selected as every
stage is under the common protocol, where the code keeps each modality's expert from the epoch of its best
unimodal *test* accuracy; the incomplete-modality masks of the code's training (its subject) are not used:
FEMF's Table 1 compares complete-modality results, and the robustness study drops modalities at test time for
every model alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks
from ..data.batch import Batch, DatasetInfo, masked_mean
from .base import ModelOutput, dropout, task_loss
from .registry import ModelSpec, Param, register

#: the code's modality order (audio, text, vision)
MODS = ("audio", "text", "vision")
STAGES = ("experts", "full")


@dataclass
class MoMKEConfig:
    """The authors' CMU-MOSI run (``run_MoMKE_cmumosi.sh``) as defaults; MOSEI's is the same model."""

    hidden: int = 256              # D_e
    depth: int = 4
    heads: int = 2
    mlp_ratio: float = 1.0
    dropout: float = 0.5           # drop_rate: input projections, expert and router MLPs, the fusion's ReLU branch
    attn_dropout: float = 0.0

    def __post_init__(self) -> None:
        checks.check_types(self)
        checks.integer(self, "hidden", 1)
        checks.integer(self, "depth", 1)
        checks.integer(self, "heads", 1)
        if self.hidden % self.heads:
            raise ValueError(f"MoMKEConfig.hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        checks.real(self, "mlp_ratio", 0.0, low_open=True)
        checks.dropouts(self, "dropout", "attn_dropout")


class Mlp(nn.Module):
    """``fc2(drop(GELU(fc1(x))))`` followed by dropout, the code's ``Mlp``."""

    def __init__(self, d_in: int, hidden: int, d_out: int, p: float):
        super().__init__()
        self.fc1, self.fc2, self.p = nn.Linear(d_in, hidden), nn.Linear(hidden, d_out), p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = dropout(F.gelu(self.fc1(x)), self.p, self.training)
        return dropout(self.fc2(x), self.p, self.training)


class ExpertLayer(nn.Module):
    """One layer of an expert: ``s = softmax(q k^T / sqrt(d_h)) v`` over the real positions (no output projection),
    then ``s + MLP(s)``. ``(B, L, D), (B, L) bool -> (B, L, D)``; a sample with no real position gives 0."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, p: float, attn_p: float):
        super().__init__()
        self.heads, self.attn_p = heads, attn_p
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim, p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = (f(x).view(B, L, self.heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        scores = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)                     # (B, h, L, L)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = torch.softmax(scores, dim=-1).nan_to_num(0.0)                           # no real key: 0
        attn = dropout(attn, self.attn_p, self.training)
        s = (attn @ v).transpose(1, 2).reshape(B, L, D)
        return s + self.mlp(s)


class Expert(nn.Module):
    """A modality expert: ``depth`` residual :class:`ExpertLayer` s, ``y <- y + layer(y)``."""

    def __init__(self, c: MoMKEConfig):
        super().__init__()
        self.layers = nn.ModuleList(ExpertLayer(c.hidden, c.heads, c.mlp_ratio, c.dropout, c.attn_dropout)
                                    for _ in range(c.depth))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x, mask)
        return x


class MoMKE(nn.Module):
    """MoMKE. ``forward(batch)``: the prediction (``(B, P)`` / ``(B,)``); in stage ``"experts"`` the unimodal
    predictions feed the loss (``loss``) and their mean is the prediction; the routers and the fusion are not
    used."""

    def __init__(self, info: DatasetInfo, config: MoMKEConfig):
        super().__init__()
        if info.task != "regression":
            raise ValueError(f"mser's MoMKE is set up for sentiment regression (mean squared error, one output); "
                             f"{info.name!r} is a {info.task} dataset")
        self.info, self.config = info, config
        c, D = config, config.hidden
        self.proj = nn.ModuleDict({m: nn.Linear(info.dims[m], D) for m in MODS})
        self.experts = nn.ModuleDict({m: Expert(c) for m in MODS})
        self.unimodal = nn.ModuleDict({m: nn.Linear(D, 1) for m in MODS})
        self.routers = nn.ModuleDict({m: Mlp(D, int(D * c.mlp_ratio), len(MODS), c.dropout) for m in MODS})
        self.fuse = nn.Linear(3 * D, 3 * D)
        self.head = nn.Linear(3 * D, 1)
        self.stage = "full"

    def stages(self) -> list[str]:
        return list(STAGES)

    def set_stage(self, name: str) -> None:
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages: {list(STAGES)}")
        self.stage = name

    def _inputs(self, batch: Batch):
        """``{m: (x_m, mask_m)}`` over the sample's positions, and whether predictions are per position."""
        if batch.layout == "position":
            where = batch.label_mask
            return {m: (batch.features(m)[:, :where.shape[1]], where) for m in MODS}, True
        return {m: (batch.features(m), batch.mask(m)) for m in MODS}, False

    def forward(self, batch: Batch) -> ModelOutput:
        inputs, position = self._inputs(batch)
        drop = self.config.dropout
        p = {m: dropout(self.proj[m](x), drop, self.training) for m, (x, _) in inputs.items()}
        masks = {m: mask for m, (_, mask) in inputs.items()}
        if self.stage == "experts":
            uni = {m: self._pool(self.unimodal[m](self.experts[m](p[m], masks[m])).squeeze(-1), masks[m], position)
                   for m in MODS}
            out = ModelOutput(prediction=sum(uni.values()) / len(MODS),
                              diagnostics={f"prediction_{m}": uni[m].detach() for m in MODS})
            if self.training:
                out.aux_losses = {m: task_loss(uni[m], batch, "regression", "mse") for m in MODS}
            return out
        z, weights = {}, {}
        for m in MODS:
            w = torch.softmax(self.routers[m](p[m]), dim=-1)                           # (B, L, 3)
            outs = torch.stack([self.experts[e](p[m], masks[m]) for e in MODS], dim=-2)   # (B, L, 3, D)
            z[m] = ((w.unsqueeze(-1) * outs).sum(-2)) * masks[m].unsqueeze(-1).to(p[m].dtype)
            weights[m] = w.detach()
        if position:
            joint = torch.cat([z[m] for m in MODS], dim=-1)                            # (B, P, 3D)
        else:
            joint = torch.cat([masked_mean(z[m], masks[m]) for m in MODS], dim=-1)    # (B, 3D)
        hidden = joint + dropout(F.relu(self.fuse(joint)), drop, self.training)
        pred = self.head(hidden).squeeze(-1)
        if position:
            pred = pred * batch.label_mask.to(pred.dtype)
        return ModelOutput(prediction=pred, diagnostics={f"router_{m}": weights[m] for m in MODS})

    @staticmethod
    def _pool(pred: torch.Tensor, mask: torch.Tensor, position: bool) -> torch.Tensor:
        """Per-position predictions ``(B, L)`` as the layout's prediction: kept per position (zeros at padding),
        or averaged over the real steps (sequence layout)."""
        m = mask.to(pred.dtype)
        if position:
            return pred * m
        return (pred * m).sum(1) / m.sum(1).clamp_min(1.0)

    def loss(self, output: ModelOutput, batch: Batch):
        """Stage ``"experts"``: the sum of the three unimodal mean squared errors (the code's three backward
        passes); ``"full"``: the mean squared error of the fusion's prediction."""
        if self.stage == "experts":
            total = sum(output.aux_losses.values())
            return total, {m: v.detach() for m, v in output.aux_losses.items()}
        main = task_loss(output.prediction, batch, "regression", "mse")
        return main, {"task": main.detach()}


def _paper(info: DatasetInfo) -> dict:
    """The authors' runs: the same model on CMU-MOSI and CMU-MOSEI (hidden 256, depth 4, 2 heads, dropout 0.5)."""
    return {}


def _quick(info: DatasetInfo) -> dict:
    return {"hidden": 16, "depth": 1, "heads": 2}


register(ModelSpec("momke", MoMKE, MoMKEConfig, {"quick": _quick, "paper": _paper},
                   "MoMKE (Xu et al., 2024), read against the authors' code", role="baseline",
                   tasks=("regression",),
                   label="MoMKE",
                   color="#f7b6d2",
                   search_space={"dropout": Param("float", 0.0, 0.6), "depth": Param("choice", choices=(2, 4))}))

__all__ = ["MoMKE", "MoMKEConfig", "Expert", "ExpertLayer", "Mlp", "MODS", "STAGES"]
