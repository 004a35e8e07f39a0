"""Self-MM: self-supervised multi-task learning with unimodal labels generated from class centres (Yu, Xu,
Yuan, Wu, AAAI 2021), a baseline of FEMF's Table 1 and Atsuko's Tables 1-2, read against the paper and against
thuiar/MMSA's code by the same group (``models/multiTask/SELF_MM.py``, ``trains/multiTask/SELF_MM.py``, the
``self_mm`` entry of ``config/config_regression.json``).

The network (section 3.2), for one utterance::

    F_t   = mean of the text features over the real steps                       (d_t,)  (BERT's [CLS])
    F_a   = W_a drop(LSTM_a(x_a)[last]),  F_v likewise                           (d_a,), (d_v,)
    F*_f  = ReLU(W_f1 drop([F_t; F_a; F_v]))     F*_s = ReLU(W_s1 drop(F_s))   s in {t, a, v}
    y^_f  = W_f3 ReLU(W_f2 F*_f)                 y^_s = W_s3 ReLU(W_s2 F*_s)   one head per task

The Unimodal Label Generation Module (ULGM, section 3.3), run on the training set during training, with
a memory of every training utterance's latest features ``F*`` and generated labels ``y_s`` (all = ``y_m`` at
the start)::

    C^p_k = mean of F*_k over the memory's utterances with label y_k > 0,  C^n_k over y_k < 0   (class centres)
    D^p_k = ||F*_k - C^p_k||,  D^n_k = ||F*_k - C^n_k||;   a_k = (D^n_k - D^p_k) / (D^p_k + eps)   k in {m, s}
    y_s   = y_m a_s / (2 a_m) + (y_m + a_s - a_m) / 2, clipped to [-H, H]
    y_s^(i) = (i - 1)/(i + 1) y_s^(i-1) + 2/(i + 1) y_s        momentum over the epochs i >= 2

``m`` is the multimodal (fusion) task. The loss (section 3.4) is ``|y^_f - y_m| + sum_s w_s |y^_s - y_s|`` with
``w_s = tanh(|y_s - y_m|)``: a unimodal head learns only where its generated label differs from the
multimodal one. The trainer adds the first term (its L1 task loss); ``aux_losses`` holds the second.
``tests/test_selfmm.py`` checks the label rule against the equations written out, that the centres exclude
zero labels, the momentum over epochs, that the first epoch leaves the unimodal heads without gradient, and
that a resumed run carries the memory.

The epoch ``i`` of the momentum is counted per utterance: how often the model has trained on it (each training
utterance is seen once per epoch), so the model needs no word from the trainer. The memories are buffers
(sized by :meth:`SelfMM.prepare` from the training split): a checkpoint carries them, so a resumed run goes on
with the labels it had.

Shapes. Sequence layout: ``x_m`` ``(B, L_m, d_m)``; prediction ``(B,)``. Position layout (mosi-bclstm: a
sample is a video, each position an utterance with one vector per modality): every real utterance is one
Self-MM sample with audio and vision sequences of length 1, and one memory slot per (video, position).

Where mser differs from the code (``docs/baselines.md``, "Self-MM"): the text is the dataset's given text
features averaged over their real steps instead of a fine-tuned BERT's [CLS] output; MMSA's four learning
rates and weight decays are two here (the audio and vision LSTM subnets train at ``subnet_lr_scale`` times the
trainer's rate, everything else at it, one weight decay), as MMSA's MOSI values have them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .. import checks
from ..data.batch import Batch, DatasetInfo, MultimodalDataset
from .base import ModelOutput, dropout
from .registry import ModelSpec, Param, register
from .tfn import _output, utterance_vectors

#: the tasks: the fusion (multimodal) task and one per modality
TASKS = ("fusion", "text", "audio", "vision")
EPS = 1e-8


@dataclass
class SelfMMConfig:
    """MMSA's MOSI values as defaults."""

    audio_lstm: int = 16
    vision_lstm: int = 32
    audio_out: int = 16
    vision_out: int = 32
    fusion_dim: int = 128
    text_dim: int = 32
    audio_dim: int = 16
    vision_dim: int = 32
    fusion_dropout: float = 0.0
    text_dropout: float = 0.1
    audio_dropout: float = 0.1
    vision_dropout: float = 0.0
    label_bound: float = 3.0                 # H: generated labels are clipped to [-H, H]
    subnet_lr_scale: float = 5.0             # audio / vision LSTM subnets: 5e-3 against 1e-3 (MMSA, MOSI)

    def __post_init__(self) -> None:
        checks.check_types(self)
        for name in ("audio_lstm", "vision_lstm", "audio_out", "vision_out", "fusion_dim", "text_dim",
                     "audio_dim", "vision_dim"):
            checks.integer(self, name, 1)
        checks.dropouts(self, "fusion_dropout", "text_dropout", "audio_dropout", "vision_dropout")
        checks.real(self, "label_bound", 0.0, low_open=True)
        checks.real(self, "subnet_lr_scale", 0.0, low_open=True)


class SequenceNet(nn.Module):
    """Self-MM's audio / vision subnet: an LSTM, its last hidden state, a linear layer (MMSA's dropout on it is
    the LSTM's dropout, 0). ``(N, L, d) -> (N, out)``."""

    def __init__(self, d_in: int, hidden: int, out: int):
        super().__init__()
        self.rnn = nn.LSTM(d_in, hidden, batch_first=True)
        self.linear = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.rnn(packed)
        return self.linear(h[-1])


def generated_labels(f: dict[str, torch.Tensor], centres: dict[str, tuple[torch.Tensor, torch.Tensor]],
                     y_m: torch.Tensor, bound: float) -> dict[str, torch.Tensor]:
    """The ULGM's rule: the unimodal labels of a batch from its features ``f[task]`` ``(N, d_task)``, the class centres
    ``(positive, negative)`` of each task, and the multimodal labels ``y_m`` ``(N,)``."""
    def offset(task):
        pos, neg = centres[task]
        d_p = (f[task] - pos).norm(dim=-1)
        d_n = (f[task] - neg).norm(dim=-1)
        return (d_n - d_p) / (d_p + EPS)

    a_m = offset("fusion")
    out = {}
    for s in TASKS[1:]:
        a_s = offset(s)
        y_s = 0.5 * (a_s / (a_m + EPS)) * y_m + 0.5 * (y_m + a_s - a_m)
        out[s] = y_s.clamp(-bound, bound)
    return out


class SelfMM(nn.Module):
    """Self-MM. ``forward(batch)``: the fusion prediction ``(B,)`` / ``(B, P)``; ``aux_losses["unimodal"]`` the
    weighted unimodal L1 (training only); ``diagnostics`` the unimodal predictions."""

    def __init__(self, info: DatasetInfo, config: SelfMMConfig):
        super().__init__()
        if info.task != "regression":
            raise ValueError(f"Self-MM generates unimodal labels for regression (the sign of the label picks "
                             f"the class centre); {info.name!r} is a {info.task} dataset")
        self.info, self.config = info, config
        c = config
        self.audio = SequenceNet(info.dims["audio"], c.audio_lstm, c.audio_out)
        self.vision = SequenceNet(info.dims["vision"], c.vision_lstm, c.vision_out)
        widths = {"fusion": info.dims["text"] + c.audio_out + c.vision_out, "text": info.dims["text"],
                  "audio": c.audio_out, "vision": c.vision_out}
        dims = {"fusion": c.fusion_dim, "text": c.text_dim, "audio": c.audio_dim, "vision": c.vision_dim}
        self.drops = {"fusion": c.fusion_dropout, "text": c.text_dropout, "audio": c.audio_dropout,
                      "vision": c.vision_dropout}
        self.first = nn.ModuleDict({t: nn.Linear(widths[t], dims[t]) for t in TASKS})
        self.heads = nn.ModuleDict({t: nn.Sequential(nn.Linear(dims[t], dims[t]), nn.ReLU(), nn.Linear(dims[t], 1))
                                    for t in TASKS})
        self.dims = dims
        self._memory_shape((0,))

    # ------------------------------------------------------------------ the ULGM memory
    def _memory_shape(self, shape: tuple[int, ...]) -> None:
        """(Re)allocate the memories for ``shape`` training slots: labels, features, times seen."""
        self.register_buffer("labels", torch.zeros(len(TASKS), *shape))
        for t in TASKS:
            self.register_buffer(f"features_{t}", torch.zeros(*shape, self.dims[t]))
        self.register_buffer("seen", torch.zeros(*shape, dtype=torch.long))
        self.register_buffer("filled", torch.zeros(*shape, dtype=torch.bool))
        self._slot = {}

    def prepare(self, dataset: MultimodalDataset) -> dict:
        """Called by the trainer before training: one memory slot per training utterance, every label set to the
        multimodal label (the start of the ULGM)."""
        train = dataset.train
        labels = torch.as_tensor(np.asarray(train.labels, dtype=np.float32))
        self._memory_shape(tuple(labels.shape))
        self.labels[:] = labels.to(self.labels.dtype)
        self._slot = {str(i): n for n, i in enumerate(train.ids)}
        return {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the memories are as large as the training set that was trained on: take the checkpoint's sizes
        for name in ["labels", "seen", "filled"] + [f"features_{t}" for t in TASKS]:
            key = prefix + name
            if key in state_dict and state_dict[key].shape != getattr(self, name).shape:
                self.register_buffer(name, torch.zeros_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def centres(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each task's positive and negative class centre over the memory's filled slots, with the
        generated labels of that task (zero labels in neither class, MMSA's ``excludeZero``)."""
        out = {}
        for k, t in enumerate(TASKS):
            feats, lab, filled = getattr(self, f"features_{t}"), self.labels[k], self.filled
            pos, neg = filled & (lab > 0), filled & (lab < 0)
            out[t] = (feats[pos].mean(0), feats[neg].mean(0))
        return out

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """The optimiser's groups: the audio and vision subnets at ``subnet_lr_scale`` times ``lr``."""
        sub = [p for p in list(self.audio.parameters()) + list(self.vision.parameters()) if p.requires_grad]
        ids = {id(p) for p in sub}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest, "lr": lr, "weight_decay": weight_decay},
                {"params": sub, "lr": lr * self.config.subnet_lr_scale, "weight_decay": weight_decay}]

    # ------------------------------------------------------------------ forward
    def _inputs(self, batch: Batch):
        """``(F_t, F_a, F_v)`` with one row per sample or real utterance, the label mask that orders them in the
        position layout (else ``None``), and each row's memory slot index (``None`` outside training data)."""
        u, where = utterance_vectors(batch, {"audio": self.audio, "vision": self.vision})
        return (u["text"], u["audio"], u["vision"]), where

    def _slots(self, batch: Batch, where: torch.Tensor | None) -> torch.Tensor | None:
        """Memory indices of the batch's rows (flat over the memory), or ``None`` when a sample is not in the
        memory (not a training sample of the prepared dataset)."""
        rows = [self._slot.get(str(i)) for i in batch.ids]
        if not self._slot or any(r is None for r in rows):
            return None
        rows_t = torch.tensor(rows, dtype=torch.long)
        if where is None:
            return rows_t
        P = self.seen.shape[1]
        pos = torch.arange(where.shape[1])
        flat = rows_t[:, None] * P + pos[None, :]
        return flat[where.cpu()]

    def forward(self, batch: Batch) -> ModelOutput:
        (f_t, f_a, f_v), where = self._inputs(batch)
        x = {"fusion": torch.cat([f_t, f_a, f_v], -1), "text": f_t, "audio": f_a, "vision": f_v}
        hidden = {t: torch.relu(self.first[t](dropout(x[t], self.drops[t], self.training))) for t in TASKS}
        pred = {t: self.heads[t](hidden[t]).squeeze(-1) for t in TASKS}
        out = ModelOutput(prediction=_output(pred["fusion"][:, None], self.info, where, squash=False),
                          diagnostics={f"prediction_{t}": _output(pred[t][:, None].detach(), self.info, where,
                                                                    squash=False) for t in TASKS[1:]})
        slots = self._slots(batch, where) if self.training else None
        if slots is None:
            return out
        with torch.no_grad():
            labels = self.labels.flatten(1)[:, slots]                           # (4, N): y_m, y_t, y_a, y_v
        y_m = labels[0]
        unimodal = 0.0
        for k, t in enumerate(TASKS[1:], start=1):
            w = torch.tanh((labels[k] - y_m).abs())
            unimodal = unimodal + (w * (pred[t] - labels[k]).abs()).mean()
        out.aux_losses["unimodal"] = unimodal
        self._update_memory(slots, {t: h.detach() for t, h in hidden.items()}, y_m)
        return out

    @torch.no_grad()
    def _update_memory(self, slots: torch.Tensor, f: dict[str, torch.Tensor], y_m: torch.Tensor) -> None:
        """After the batch's loss: new labels from the centres (from the second time a slot is seen), then
        the slots' features (the next batch's centres read them), as MMSA's trainer orders them."""
        seen = self.seen.view(-1)
        seen[slots] += 1
        n = seen[slots].to(y_m.dtype)
        later = n > 1
        if bool(later.any()) and bool(self.filled.any()):
            new = generated_labels(f, self.centres(), y_m, self.config.label_bound)
            flat = self.labels.view(len(TASKS), -1)
            for k, t in enumerate(TASKS[1:], start=1):
                old = flat[k, slots]
                mixed = (n - 1) / (n + 1) * old + 2 / (n + 1) * new[t]
                flat[k, slots] = torch.where(later, mixed, old)
        for t in TASKS:
            getattr(self, f"features_{t}").view(-1, self.dims[t])[slots] = f[t]
        self.filled.view(-1)[slots] = True


def _paper(info: DatasetInfo) -> dict:
    """MMSA's ``config_regression.json`` for the dataset (MOSI's for mosi-bclstm and the built-in data)."""
    if info.name.startswith("mosei"):
        return {"fusion_dropout": 0.1, "text_dropout": 0.0, "audio_dropout": 0.0}
    if info.name.startswith("sims"):
        return {"vision_lstm": 64, "text_dim": 64, **({"label_bound": 1.0} if info.name == "sims" else
                                                      {"audio_dim": 32, "text_dropout": 0.0})}
    return {}


def _quick(info: DatasetInfo) -> dict:
    return {"audio_lstm": 8, "vision_lstm": 8, "audio_out": 8, "vision_out": 8, "fusion_dim": 32, "text_dim": 16,
            "audio_dim": 8, "vision_dim": 8}


register(ModelSpec("selfmm", SelfMM, SelfMMConfig, {"quick": _quick, "paper": _paper},
                   "Self-MM (Yu et al., 2021), read against MMSA's code by its authors", role="baseline",
                   tasks=("regression",),
                   label="Self-MM", color="#9edae5",
                   search_space={"fusion_dim": Param("choice", choices=(64, 128, 256)),
                                 "fusion_dropout": Param("float", 0.0, 0.5)}))

__all__ = ["SelfMM", "SelfMMConfig", "SequenceNet", "generated_labels", "TASKS"]
