"""Baselines: a late-fusion MLP (sequence layout) and a bc-LSTM-like bidirectional GRU (position layout).

Both take ``modalities``, a subset of ``"tav"``, for the unimodal variants (text-only, audio-only,
vision-only) and the bimodal ones. ``"baseline"`` picks the right one for the dataset's layout.

Late-fusion MLP (per sample, sequence layout)::

    h_m = MLP_m( mean_{real t} ReLU(W_m x_m(t)) )       for each modality m
    y   = head( [h_t ; h_a ; h_v] )

bc-LSTM-like BiGRU (per position, position layout; Poria et al., ACL 2017 with GRUs)::

    c_m = BiGRU_m( Dropout(ReLU(W_m x_m)) )             unimodal context over utterances
    y_i = head( BiGRU_f( [c_t ; c_a ; c_v] )_i )         fused context, one output per utterance
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .. import checks
from ..data.batch import MODALITIES, MODALITY_LETTERS, Batch, DatasetInfo, masked_mean
from .base import ModelOutput
from .registry import ModelSpec, Param, register


def _selected(modalities: str) -> list[str]:
    bad = set(modalities) - set("tav")
    if not modalities or bad:
        raise ValueError(f"modalities must be a non-empty subset of 'tav', got {modalities!r}")
    return [m for m in MODALITIES if m[0] in modalities]


def _out_dim(info: DatasetInfo) -> int:
    return info.num_classes if info.task == "classification" else 1


def _check_config(config) -> None:
    """The baselines' shared fields: ``hidden`` >= 1, ``dropout`` in [0, 1), ``modalities`` a subset of tav."""
    checks.check_types(config)
    checks.integer(config, "hidden", 1)
    checks.dropouts(config, "dropout")
    checks.modalities(config)


@dataclass
class LateFusionConfig:
    hidden: int = 64
    dropout: float = 0.2
    modalities: str = "tav"

    def __post_init__(self) -> None:
        _check_config(self)


class LateFusionMLP(nn.Module):
    """Late-fusion MLP for the sequence layout. Output ``(B,)`` (or ``(B, C)`` logits)."""

    def __init__(self, info: DatasetInfo, config: LateFusionConfig):
        super().__init__()
        self.info, self.config = info, config
        self.modalities = _selected(config.modalities)
        h = config.hidden
        self.frame = nn.ModuleDict({m: nn.Linear(info.dims[m], h) for m in self.modalities})
        self.unimodal = nn.ModuleDict({
            m: nn.Sequential(nn.LayerNorm(h), nn.Linear(h, h), nn.ReLU(), nn.Dropout(config.dropout))
            for m in self.modalities})
        self.head = nn.Sequential(nn.Linear(h * len(self.modalities), h), nn.ReLU(),
                                  nn.Dropout(config.dropout), nn.Linear(h, _out_dim(info)))

    def forward(self, batch: Batch) -> ModelOutput:
        feats = []
        for m in self.modalities:
            x = torch.relu(self.frame[m](batch.features(m)))          # (B, L_m, h)
            feats.append(self.unimodal[m](masked_mean(x, batch.mask(m))))
        out = self.head(torch.cat(feats, -1))
        if batch.layout == "position":
            raise ValueError("late_fusion_mlp is for the sequence layout; use 'bigru' for position data")
        pred = out if self.info.task == "classification" else out.squeeze(-1)
        return ModelOutput(prediction=pred)


@dataclass
class BiGRUConfig:
    hidden: int = 64
    dropout: float = 0.3
    modalities: str = "tav"

    def __post_init__(self) -> None:
        _check_config(self)


class BiGRU(nn.Module):
    """bc-LSTM-like model for the position layout. Output ``(B, L)`` (or ``(B, L, C)`` logits).

    Works on the sequence layout too: the fused context is pooled over real positions.
    """

    def __init__(self, info: DatasetInfo, config: BiGRUConfig):
        super().__init__()
        self.info, self.config = info, config
        self.modalities = _selected(config.modalities)
        h = config.hidden
        if h < 2 or h % 2:   # each direction of the GRUs gets h // 2 units
            raise checks.ConfigError(type(config).__name__, "hidden", h, "an even integer >= 2 for the "
                                     "bidirectional GRU (position layout)")
        self.proj = nn.ModuleDict({m: nn.Linear(info.dims[m], h) for m in self.modalities})
        self.context = nn.ModuleDict({m: nn.GRU(h, h // 2, batch_first=True, bidirectional=True)
                                      for m in self.modalities})
        self.fusion = nn.GRU(h * len(self.modalities), h // 2, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Dropout(config.dropout),
                                  nn.Linear(h, _out_dim(info)))

    @staticmethod
    def _run(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out

    def forward(self, batch: Batch) -> ModelOutput:
        if batch.layout == "position":
            pos_mask = batch.label_mask
        else:  # sequence layout: a common time axis is needed; use text's
            pos_mask = batch.mask(self.modalities[0]) | batch.mask("text")
        lengths = pos_mask.sum(1)
        L = pos_mask.shape[1]
        ctx = []
        for m in self.modalities:
            x = batch.features(m)[:, :L]
            if x.shape[1] < L:
                x = nn.functional.pad(x, (0, 0, 0, L - x.shape[1]))
            x = self.drop(torch.relu(self.proj[m](x)))
            ctx.append(self._run(self.context[m], x, lengths))
        fused = self.drop(self._run(self.fusion, torch.cat(ctx, -1), lengths))
        out = self.head(fused)                                          # (B, L, out)
        if batch.layout == "sequence":
            out = masked_mean(out, pos_mask)
        pred = out if self.info.task == "classification" else out.squeeze(-1)
        return ModelOutput(prediction=pred)


class Baseline(nn.Module):
    """Dispatch on the layout: :class:`LateFusionMLP` for sequences, :class:`BiGRU` for positions."""

    def __init__(self, info: DatasetInfo, config: BiGRUConfig):
        super().__init__()
        if info.layout == "position":
            self.net = BiGRU(info, config)
        else:
            self.net = LateFusionMLP(info, LateFusionConfig(config.hidden, config.dropout, config.modalities))
        self.info, self.config = info, config

    def forward(self, batch: Batch) -> ModelOutput:
        return self.net(batch)


def _quick(info: DatasetInfo) -> dict:
    return {"hidden": 64}


def _paper(info: DatasetInfo) -> dict:
    return {"hidden": 128 if info.layout == "position" else 256}


register(ModelSpec("late_fusion_mlp", LateFusionMLP, LateFusionConfig, {"quick": _quick, "paper": _paper},
                   "late-fusion MLP over mean-pooled frame features (sequence layout)", role="part"))
register(ModelSpec("bigru", BiGRU, BiGRUConfig, {"quick": _quick, "paper": _paper},
                   "bc-LSTM-like bidirectional GRU over utterances (position layout)", role="part"))
register(ModelSpec("baseline", Baseline, BiGRUConfig, {"quick": _quick, "paper": _paper},
                   "late_fusion_mlp for sequence data, bigru for position data", role="baseline",
                   label="baseline", color="#7f7f7f",
                   search_space={"hidden": Param("choice", choices=(32, 64, 128)), "dropout": Param("float", 0.0, 0.5)},
                   # all three modalities, and each alone: how much each modality carries
                   main_variants=({"modalities": "tav"}, {"modalities": "t"}, {"modalities": "a"},
                                  {"modalities": "v"})))

__all__ = ["LateFusionMLP", "BiGRU", "Baseline", "LateFusionConfig", "BiGRUConfig", "MODALITY_LETTERS"]
