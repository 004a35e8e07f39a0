"""MISA: Modality-Invariant and -Specific Representations (Hazarika, Zimmermann, Poria, ACM MM 2020), a baseline
of Atsuko's Table 1 and Table 3, read against the paper and against thuiar/MMSA's copy of the authors' code
(``models/singleTask/MISA.py``, ``trains/singleTask/MISA.py``, the ``misa`` entry of
``config/config_regression.json``).

The paper's parts (its section 3), for one utterance, modality ``m`` in (t, a, v)::

    u_t   = mean of the text features over the real steps                      (d_t,)   3.2 (BERT's mean)
    u_m   = sLSTM_m(x_m): [h_1 ; h_2] of two bidirectional LSTMs with a        (4 d_m,)  3.2, m = a, v
            LayerNorm between them, final states of both directions
    u_m   = LayerNorm(ReLU(W_m u_m))                                            (d_h,)   projection, 3.3
    h_c^m = sigmoid(W_c u_m)          one shared encoder E_c for every modality  (d_h,)   invariant, 3.3
    h_p^m = sigmoid(W_p^m u_m)        a private encoder E_p^m per modality       (d_h,)   specific, 3.3
    h     = Transformer([h_p^t, h_p^v, h_p^a, h_c^t, h_c^v, h_c^a])            (6, d_h)  fusion, 3.4
    y^    = W_2 ReLU(drop(W_1 [h_1; ..; h_6]))                                             prediction, 3.4

    L = L_task + alpha L_sim + beta L_diff + gamma L_recon                                         3.5
    L_sim   = 1/3 sum_{pairs m1, m2} CMD_5(H_c^m1, H_c^m2)        central moment discrepancy, order 5
    L_diff  = sum_m ||H_c^m' H_p^m||^2 + sum_{m1 != m2} ||H_p^m1' H_p^m2||^2   soft orthogonality
    L_recon = 1/3 sum_m ||u_m - D_m(h_c^m + h_p^m)||^2 / d_h                    reconstruction

``H`` are the batch matrices (rows = utterances). The shared and private spaces with these three losses are
what makes MISA; ``tests/test_misa.py`` checks CMD against its definition written out, the difference loss
against the normalised cross-correlation, and that the three losses reach the encoders they constrain.

Shapes. Sequence layout: ``x_m`` ``(B, L_m, d_m)`` with real lengths from the masks; prediction ``(B,)``.
Position layout (mosi-bclstm: a sample is a video, each position an utterance with one vector per
modality): every real utterance is one MISA sample (MISA reads one utterance at a time), its audio and
vision sequences of length 1; the predictions go back to their positions, ``(B, P)``. The batch losses
(CMD, difference) are over the batch's utterances.

Where mser differs from the code (``docs/baselines.md``, "MISA"): the text is the dataset's given text
features averaged over their real steps (MMSA averages fine-tuned BERT outputs the same way); each
modality's LSTM runs over its own real length (MMSA packs audio and vision with the text's lengths); the
domain-adversarial alternative to CMD (``use_cmd_sim: false``) and the shared-private discriminator, which
MMSA computes but never puts in the loss, are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .. import checks
from ..data.batch import MODALITIES, Batch, DatasetInfo
from .base import Dropout, ModelOutput
from .registry import ModelSpec, Param, register
from .tfn import _output, utterance_vectors

#: the order of the six vectors the fusion transformer reads (MMSA's)
FUSION_ORDER = ("private text", "private vision", "private audio", "shared text", "shared vision",
                "shared audio")


@dataclass
class MISAConfig:
    """MMSA's MOSI values as defaults (``hidden_size`` 128, CMD as the similarity loss)."""

    hidden: int = 128
    dropout: float = 0.2
    sim_weight: float = 0.3
    diff_weight: float = 0.1
    recon_weight: float = 1.0
    cmd_moments: int = 5
    fusion_heads: int = 2
    fusion_ffn: int = 2048
    fusion_dropout: float = 0.1

    def __post_init__(self) -> None:
        checks.check_types(self)
        for name in ("hidden", "cmd_moments", "fusion_heads", "fusion_ffn"):
            checks.integer(self, name, 1)
        if self.hidden % self.fusion_heads:
            raise checks.ConfigError(type(self).__name__, "hidden", self.hidden,
                                     f"a multiple of fusion_heads ({self.fusion_heads})")
        checks.dropouts(self, "dropout", "fusion_dropout")
        checks.weights(self, "sim_weight", "diff_weight", "recon_weight")


def cmd(x1: torch.Tensor, x2: torch.Tensor, moments: int) -> torch.Tensor:
    """Central moment discrepancy (Zellinger et al., 2017) without the range scaling, as MISA uses it:
    ``||E x1 - E x2|| + sum_{k=2..K} ||E (x1 - E x1)^k - E (x2 - E x2)^k||``. ``(N, d), (N, d) -> ()``."""
    m1, m2 = x1.mean(0), x2.mean(0)
    s1, s2 = x1 - m1, x2 - m2
    total = _norm(m1 - m2)
    for k in range(2, moments + 1):
        total = total + _norm(s1.pow(k).mean(0) - s2.pow(k).mean(0))
    return total


def _norm(d: torch.Tensor) -> torch.Tensor:
    """``||d||`` as ``sqrt(sum(d^2))``, whose gradient is 0 instead of NaN where ``d`` is exactly 0 (two equal
    moments, e.g. two codes a ReLU has silenced: the square root's derivative is infinite there). Elsewhere the
    value and the gradient are those of ``d.pow(2).sum().sqrt()``, bit for bit."""
    sq = d.pow(2).sum()
    return torch.where(sq > 0, sq.clamp_min(torch.finfo(d.dtype).tiny).sqrt(), torch.zeros_like(sq))


def diff_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Soft orthogonality of two batch matrices: the mean squared entry of ``A' B`` after centring each
    column over the batch and scaling each row to unit length (its norm held constant, as the code).
    ``(N, d), (N, d) -> ()``."""
    a = a - a.mean(0, keepdim=True)
    b = b - b.mean(0, keepdim=True)
    a = a / (a.norm(dim=1, keepdim=True).detach() + 1e-6)
    b = b / (b.norm(dim=1, keepdim=True).detach() + 1e-6)
    return (a.T @ b).pow(2).mean()


class StackedLSTM(nn.Module):
    """MISA's sLSTM: a bidirectional LSTM, LayerNorm over its outputs, a second bidirectional LSTM;
    the final states of both directions of both layers, ``(N, L, d) -> (N, 4 d)`` (hidden size = ``d``)."""

    def __init__(self, d: int):
        super().__init__()
        self.rnn1 = nn.LSTM(d, d, bidirectional=True, batch_first=True)
        self.norm = nn.LayerNorm(2 * d)
        self.rnn2 = nn.LSTM(2 * d, d, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.clamp_min(1).cpu()
        out1, (h1, _) = self.rnn1(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        out1, _ = pad_packed_sequence(out1, batch_first=True)
        packed = pack_padded_sequence(self.norm(out1), lengths, batch_first=True, enforce_sorted=False)
        _, (h2, _) = self.rnn2(packed)
        return torch.cat([h1, h2], 0).transpose(0, 1).reshape(x.shape[0], -1)


def _projection(d_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.LayerNorm(hidden))


class MISA(nn.Module):
    """MISA. ``forward(batch)``: prediction ``(B,)`` (sequence layout) or ``(B, P)`` (position layout), logits
    with a trailing class axis for classification; ``aux_losses`` ``sim``, ``diff``, ``recon`` already
    weighted; ``diagnostics`` the six representations of the batch."""

    def __init__(self, info: DatasetInfo, config: MISAConfig):
        super().__init__()
        self.info, self.config = info, config
        h = config.hidden
        self.encoders = nn.ModuleDict({m: StackedLSTM(info.dims[m]) for m in ("audio", "vision")})
        self.project = nn.ModuleDict({"text": _projection(info.dims["text"], h),
                                      **{m: _projection(4 * info.dims[m], h) for m in ("audio", "vision")}})
        self.private = nn.ModuleDict({m: nn.Sequential(nn.Linear(h, h), nn.Sigmoid()) for m in MODALITIES})
        self.shared = nn.Sequential(nn.Linear(h, h), nn.Sigmoid())
        self.recon = nn.ModuleDict({m: nn.Linear(h, h) for m in MODALITIES})
        self.fusion = nn.TransformerEncoderLayer(h, config.fusion_heads, config.fusion_ffn, config.fusion_dropout,
                                                 batch_first=True)
        out_dim = info.num_classes if info.task == "classification" else 1
        self.predict = nn.Sequential(nn.Linear(6 * h, 3 * h), Dropout(config.dropout), nn.ReLU(),
                                     nn.Linear(3 * h, out_dim))

    def utterances(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """``u_m`` before the projection, one row per sample (sequence layout) or per real utterance
        (position layout, with the label mask ``(B, P)`` that orders them; ``None`` otherwise)."""
        return utterance_vectors(batch, self.encoders)

    def forward(self, batch: Batch) -> ModelOutput:
        cfg = self.config
        u, where = self.utterances(batch)
        proj = {m: self.project[m](u[m]) for m in MODALITIES}                           # (N, h)
        private = {m: self.private[m](proj[m]) for m in MODALITIES}
        shared = {m: self.shared(proj[m]) for m in MODALITIES}
        tokens = torch.stack([private["text"], private["vision"], private["audio"],
                              shared["text"], shared["vision"], shared["audio"]], 1)     # (N, 6, h)
        fused = self.fusion(tokens).flatten(1)                                          # (N, 6h)
        pred = _output(self.predict(fused), self.info, where, squash=False)
        aux = {}
        if self.training:
            pairs = (("text", "vision"), ("text", "audio"), ("audio", "vision"))
            sim = sum(cmd(shared[a], shared[b], cfg.cmd_moments) for a, b in pairs) / 3.0
            diff = (sum(diff_loss(private[m], shared[m]) for m in MODALITIES)
                    + diff_loss(private["audio"], private["text"]) + diff_loss(private["audio"], private["vision"])
                    + diff_loss(private["text"], private["vision"]))
            recon = sum((self.recon[m](private[m] + shared[m]) - proj[m]).pow(2).mean() for m in MODALITIES) / 3.0
            aux = {"sim": cfg.sim_weight * sim, "diff": cfg.diff_weight * diff, "recon": cfg.recon_weight * recon}
        return ModelOutput(prediction=pred, aux_losses=aux,
                           diagnostics={"representations": tokens.detach()})


def _paper(info: DatasetInfo) -> dict:
    """MMSA's ``config_regression.json`` for the dataset (MOSI's for mosi-bclstm and the built-in data)."""
    if info.name.startswith("mosei"):
        return {"dropout": 0.5, "diff_weight": 0.3, "sim_weight": 0.8}
    if info.name == "sims":
        return {"dropout": 0.0, "diff_weight": 0.3, "sim_weight": 1.0, "recon_weight": 0.8}
    if info.name == "simsv2":
        return {"hidden": 64, "dropout": 0.5, "diff_weight": 0.5, "sim_weight": 1.0, "recon_weight": 0.5}
    return {}


def _quick(info: DatasetInfo) -> dict:
    return {"hidden": 16, "fusion_ffn": 64}


register(ModelSpec("misa", MISA, MISAConfig, {"quick": _quick, "paper": _paper},
                   "MISA (Hazarika et al., 2020), read against MMSA's copy of the authors' code", role="baseline",
                   label="MISA", color="#bcbd22",
                   search_space={"diff_weight": Param("float", 0.0, 0.5), "sim_weight": Param("float", 0.0, 1.0)}))

__all__ = ["MISA", "MISAConfig", "StackedLSTM", "cmd", "diff_loss", "FUSION_ORDER"]
