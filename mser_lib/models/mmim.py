"""MMIM: MultiModal InfoMax, hierarchical mutual-information maximisation (Han, Chen, Poria, EMNLP 2021), a
baseline of FEMF's Table 1 and Atsuko's Table 1, read against the authors' code (declare-lab/Multimodal-Infomax:
``src/modules/encoders.py``, ``src/model.py``, ``src/solver.py``, its README naming the two bounds) and thuiar/MMSA's
copy of it (``models/singleTask/MMIM.py``, ``trains/singleTask/MMIM.py``, the ``mmim`` entry of
``config/config_regression.json``). The paper (arXiv 2109.00412) was not at hand beyond its abstract: where the
code and the paper differ, this follows the code.

The network, for one utterance::

    h_t = mean of the text features over the real steps                       (d_t,)   (BERT's [CLS] there)
    h_a = W_a [BiLSTM_a(x_a) last states, both directions],  h_v likewise     (d_a,), (d_v,)
    z   = tanh(W_2 tanh(W_1 drop([h_t; h_a; h_v])))                             (d_p,)   the fusion result
    y^  = W_3 z

and the two levels of mutual information (MI) it maximises beside the task:

* **Between modality pairs** (t, v) and (t, a) (and (v, a) with ``add_va``): the Barber-Agakov lower bound
  ``I(X; Y) >= H(Y) + E[log q(y | x)]``, ``q`` a Gaussian whose mean and log-variance are MLPs of ``x``
  (:class:`PairBound`). The authors' code keeps only the quadratic part of ``log q``:
  ``lld = mean_n sum_k -(mu_k(x) - y_k)^2 / (2 exp(logvar_k(x)))``. ``H(Y)`` is estimated from a two-component
  Gaussian mixture split by the sign of the sentiment label: ``H = 1/4 (log det S_pos + log det S_neg)`` over a
  tanh projection of ``y`` to ``d_y / 4`` dimensions, with covariances over the batch and a memory of the
  previous batch's projections (:func:`mixture_entropy`).
* **Between the fusion result and each input**: contrastive predictive coding (CPC), ``z`` predicting each
  ``h_m`` through a linear map, scored by cosine against every ``h_m`` of the batch:
  ``nce_m = -mean_n [s_nn - logsumexp_j s_nj]`` (:func:`cpc_loss`).

**Two-phase optimisation** (the authors' ``train(stage=0)`` then ``train(stage=1)`` every epoch): each epoch
first makes a pass over the training set that maximises ``lld`` and steps only the bounds' estimators ``q``
(the ``mmilb`` pass: on MOSEI over its first half, as the code), then the main pass, which steps everything
else on ``L1(y^, y) + alpha sum_m nce_m - beta (lld + H)`` (``H`` from the third batch of the pass on, the
code's ``i_batch > mem_size``). The entropy's projections belong to the estimators, which the main pass does
not step, and the mmilb pass does not read them: they keep their initial weights, as in the code. The trainer
runs the passes (:meth:`MMIM.train_passes`, ``mser_lib/train/trainer.py``); ``tests/test_mmim.py`` checks the
bounds against their formulas written out, that each pass moves only its own parameters, the entropy memory,
and that padding changes no prediction.

Shapes. Sequence layout: ``x_m`` ``(B, L_m, d_m)``; prediction ``(B,)``. Position layout (mosi-bclstm: a sample
is a video, each position an utterance with one vector per modality): every real utterance is one MMIM sample
with audio and vision sequences of length 1; its prediction goes back to its position.

Where mser differs from the code (``docs/baselines.md``, "MMIM"): the text is the given text features averaged
over their real steps, not a fine-tuned BERT's [CLS]; one Adam optimiser whose steps in each pass touch only
that pass's parameters (the same updates as the code's two Adam optimisers, whose rates and weight decays are
equal in every MMSA config); a class of the entropy term with fewer samples than dimensions + 1 (a singular
covariance, ``log det = -inf``) leaves ``H`` out of that batch, where the code would stop on a non-finite loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .. import checks
from ..data.batch import Batch, DatasetInfo
from .base import ModelOutput, dropout, task_and_aux_losses
from .registry import ModelSpec, Param, register
from .tfn import _output, utterance_vectors

#: the modality pairs (x, y) of the Barber-Agakov bounds: x predicts y
PAIRS = (("text", "vision"), ("text", "audio"))
PAIR_VA = ("vision", "audio")
#: the passes of an epoch, in order (the authors' stage 0 and stage 1)
PASSES = ("mmilb", "main")


@dataclass
class MMIMConfig:
    """MMSA's MOSI values as defaults (its MOSEI and SIMS entries are the same)."""

    audio_hidden: int = 16         # d_ah: audio BiLSTM hidden size per direction
    vision_hidden: int = 16        # d_vh
    audio_out: int = 16            # d_aout
    vision_out: int = 16           # d_vout
    fusion_dim: int = 128          # d_prjh
    fusion_dropout: float = 0.1    # dropout_prj
    cpc_weight: float = 0.1        # alpha
    ba_weight: float = 0.1         # beta: on lld and on H
    add_va: bool = False           # a third bound between vision and audio
    memory_batches: int = 1        # mem_size: earlier batches the entropy estimate reads
    mmilb_fraction: float = 1.0    # share of the training batches the mmilb pass goes over (MOSEI: 0.5)

    def __post_init__(self) -> None:
        checks.check_types(self)
        for name in ("audio_hidden", "vision_hidden", "audio_out", "vision_out", "fusion_dim", "memory_batches"):
            checks.integer(self, name, 1)
        for name in ("audio_out", "vision_out"):
            if getattr(self, name) < 4:
                raise ValueError(f"MMIMConfig.{name}: the entropy estimate projects it to {name} // 4 dimensions, "
                                 f"so it must be at least 4, got {getattr(self, name)}")
        checks.dropouts(self, "fusion_dropout")
        checks.real(self, "cpc_weight", 0.0)
        checks.real(self, "ba_weight", 0.0)
        checks.real(self, "mmilb_fraction", 0.0, 1.0, low_open=True)


class BiLSTMEncoder(nn.Module):
    """MMIM's audio / vision encoder: a one-layer bidirectional LSTM, the last states of both directions,
    a linear layer. ``(N, L, d) -> (N, out)``."""

    def __init__(self, d_in: int, hidden: int, out: int):
        super().__init__()
        self.rnn = nn.LSTM(d_in, hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden, out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.rnn(packed)
        return self.linear(torch.cat([h[0], h[1]], dim=-1))


class PairBound(nn.Module):
    """The Barber-Agakov bound's estimator for one pair: ``q(y | x)`` Gaussian with mean ``mu(x)`` and log-variance
    ``logvar(x)`` (two-layer ReLU MLPs), and the tanh projection of ``y`` the entropy estimate reads."""

    def __init__(self, d_x: int, d_y: int):
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(d_x, d_y), nn.ReLU(), nn.Linear(d_y, d_y))
        self.logvar = nn.Sequential(nn.Linear(d_x, d_y), nn.ReLU(), nn.Linear(d_y, d_y))
        self.project = nn.Sequential(nn.Linear(d_y, d_y // 4), nn.Tanh())

    def lld(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``mean_n sum_k -(mu_k(x_n) - y_nk)^2 / (2 exp(logvar_k(x_n)))``; ``x`` ``(N, d_x)``, ``y`` ``(N, d_y)``."""
        return (-(self.mu(x) - y).pow(2) / 2.0 / self.logvar(x).exp()).sum(-1).mean()


def mixture_entropy(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor | None:
    """``1/4 (log det S_pos + log det S_neg)``, ``S`` the (biased) covariance of each class's rows ``(n, k)``; ``None``
    when a class has fewer than ``k + 1`` rows (its covariance is singular)."""
    k = pos.shape[-1]
    if len(pos) < k + 1 or len(neg) < k + 1:
        return None

    def cov(z):
        c = z - z.mean(0)
        return c.T @ c / len(z)

    return 0.25 * (torch.logdet(cov(pos)) + torch.logdet(cov(neg)))


def cpc_loss(h: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """CPC between a modality's representations ``h`` ``(N, d)`` and their predictions from the fusion result
    ``(N, d)``: both scaled to unit length, ``-mean_n [s_nn - logsumexp_j s_nj]`` with ``s = h predicted^T``."""
    h = h / h.norm(dim=1, keepdim=True)
    predicted = predicted / predicted.norm(dim=1, keepdim=True)
    pos = (h * predicted).sum(-1)
    neg = torch.logsumexp(h @ predicted.T, dim=-1)
    return -(pos - neg).mean()


class MMIM(nn.Module):
    """MMIM. ``forward(batch)``: the prediction ``(B,)`` / ``(B, P)``; in training also the pass's loss terms
    (``loss`` adds the task loss in the main pass)."""

    def __init__(self, info: DatasetInfo, config: MMIMConfig):
        super().__init__()
        if info.task != "regression":
            raise ValueError(f"MMIM's entropy estimate splits the samples by the sign of a sentiment score "
                             f"(regression); {info.name!r} is a {info.task} dataset")
        self.info, self.config = info, config
        c = config
        self.dims = {"text": info.dims["text"], "audio": c.audio_out, "vision": c.vision_out}
        self.audio = BiLSTMEncoder(info.dims["audio"], c.audio_hidden, c.audio_out)
        self.vision = BiLSTMEncoder(info.dims["vision"], c.vision_hidden, c.vision_out)
        self.pairs = PAIRS + ((PAIR_VA,) if c.add_va else ())
        self.bounds = nn.ModuleDict({f"{x}_{y}": PairBound(self.dims[x], self.dims[y]) for x, y in self.pairs})
        width = sum(self.dims.values())
        self.fusion1 = nn.Linear(width, c.fusion_dim)
        self.fusion2 = nn.Linear(c.fusion_dim, c.fusion_dim)
        self.out = nn.Linear(c.fusion_dim, 1)
        self.cpc = nn.ModuleDict({m: nn.Linear(c.fusion_dim, d) for m, d in self.dims.items()})
        for p in self.parameters():             # the code's xavier_normal_ on every matrix
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        self._pass = "main"
        self._memory: dict[str, list] = {}
        self._batch = 0

    # ------------------------------------------------------------------ the passes (the trainer's hook)
    def train_passes(self) -> list[tuple[str, float]]:
        """The passes of every training epoch, in order, with the share of the batches each goes over."""
        return [("mmilb", self.config.mmilb_fraction), ("main", 1.0)]

    def set_pass(self, name: str) -> None:
        if name not in PASSES:
            raise ValueError(f"MMIM has passes {PASSES}, got {name!r}")
        self._pass = name
        self._memory = {pair: [] for pair in self.bounds}      # the entropy memory starts empty every pass
        self._batch = 0

    def pass_parameters(self, name: str) -> set[int]:
        """``id``s of the parameters pass ``name`` steps: the bounds' estimators, or everything else."""
        mine = {id(p) for b in self.bounds.values() for p in b.parameters()}
        if name == "mmilb":
            return mine
        return {id(p) for p in self.parameters() if id(p) not in mine}

    # ------------------------------------------------------------------ forward
    def _encode(self, batch: Batch):
        """``{m: h_m}`` with one row per sample or real utterance, and the label mask that orders the rows in the
        position layout (else ``None``)."""
        return utterance_vectors(batch, {"audio": self.audio, "vision": self.vision})

    def forward(self, batch: Batch) -> ModelOutput:
        h, where = self._encode(batch)
        training = self.training
        if training and self._pass == "mmilb":
            lld = sum(self.bounds[f"{x}_{y}"].lld(h[x], h[y]) for x, y in self.pairs)
            dummy = h["text"].new_zeros(batch.label_mask.shape)
            return ModelOutput(prediction=dummy, aux_losses={"neg_lld": -lld})
        fused = torch.cat([h["text"], h["audio"], h["vision"]], dim=-1)
        z = torch.tanh(self.fusion2(torch.tanh(self.fusion1(dropout(fused, self.config.fusion_dropout, training)))))
        out = ModelOutput(prediction=_output(self.out(z), self.info, where, squash=False))
        if not training:
            return out
        c = self.config
        labels = batch.labels[where] if where is not None else batch.labels
        lld = sum(self.bounds[f"{x}_{y}"].lld(h[x], h[y]) for x, y in self.pairs)
        nce = sum(cpc_loss(h[m], self.cpc[m](z)) for m in ("text", "vision", "audio"))
        out.aux_losses["cpc"] = c.cpc_weight * nce
        out.aux_losses["ba"] = -c.ba_weight * lld
        entropy = self._entropy(h, labels.reshape(-1))
        if entropy is not None:
            out.aux_losses["entropy"] = -c.ba_weight * entropy
        self._batch += 1
        return out

    def _entropy(self, h: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor | None:
        """The mixture entropy summed over the pairs (``None`` before the code's ``i_batch > mem_size`` or when a
        class is too small), then the batch's projections into the memory (oldest replaced)."""
        k, size = self._batch, self.config.memory_batches
        total, complete = 0.0, True
        for x, y in self.pairs:
            key = f"{x}_{y}"
            proj = self.bounds[key].project(h[y])
            pos, neg = proj[labels > 0], proj[labels < 0]
            memory = self._memory.setdefault(key, [])
            if k > size and memory:
                value = mixture_entropy(torch.cat([m[0] for m in memory] + [pos]),
                                        torch.cat([m[1] for m in memory] + [neg]))
                if value is None:
                    complete = False
                else:
                    total = total + value
            else:
                complete = False
            item = (pos.detach(), neg.detach())
            if len(memory) < size:
                memory.append(item)
            else:
                memory[k % size] = item
        return total if complete else None

    def loss(self, output: ModelOutput, batch: Batch):
        """The pass's loss and its parts: ``-lld`` in the mmilb pass; the L1 task loss plus the weighted CPC,
        ``-beta lld`` and ``-beta H`` terms in the main pass."""
        return task_and_aux_losses(output, batch, self.info.task, "l1",
                                   with_task=not (self.training and self._pass == "mmilb"))


def _paper(info: DatasetInfo) -> dict:
    """MMSA's ``config_regression.json``: the same values for MOSI, MOSEI and SIMS; on MOSEI the mmilb pass goes
    over half of the training batches (the code's ``i_batch / len(train) >= 0.5``)."""
    return {"mmilb_fraction": 0.5} if info.name.startswith("mosei") else {}


def _quick(info: DatasetInfo) -> dict:
    return {"audio_hidden": 8, "vision_hidden": 8, "audio_out": 8, "vision_out": 8, "fusion_dim": 32}


register(ModelSpec("mmim", MMIM, MMIMConfig, {"quick": _quick, "paper": _paper},
                   "MMIM (Han et al., 2021), read against the authors' code and MMSA's copy", role="baseline",
                   tasks=("regression",),
                   label="MMIM", color="#c49c94",
                   search_space={"cpc_weight": Param("float", 0.0, 0.5), "ba_weight": Param("float", 0.0, 0.5)}))

__all__ = ["MMIM", "MMIMConfig", "BiLSTMEncoder", "PairBound", "mixture_entropy", "cpc_loss", "PASSES"]
