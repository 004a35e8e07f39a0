"""TFN: Tensor Fusion Network (Zadeh, Chen, Poria, Cambria, Morency, EMNLP 2017), a baseline of Atsuko's
Table 1, as thuiar/MMSA trains it (``models/singleTask/TFN.py``, ``subNets/FeatureNets.py``, the ``tfn``
entry of ``config/config_regression.json``).

The paper's three parts:

* **Modality embedding subnetworks.** Spoken language: an LSTM over the words, its last hidden state
  through dropout and a linear layer, ``z_t`` (``text_out`` units). Acoustic and visual: the features
  averaged over time, then batch norm, dropout and three ReLU layers, ``z_a``, ``z_v``.
* **Tensor Fusion Layer.** Each embedding gets a constant 1 appended and the three are multiplied out:

      z^m = [1; z_a] (x) [1; z_v] (x) [1; z_t]        (|z_a|+1) x (|z_v|+1) x (|z_t|+1) entries

  The appended 1 keeps every unimodal and bimodal term inside the trimodal tensor: the entries with two
  of the three 1s are ``z_a``, ``z_v`` and ``z_t`` themselves, those with one 1 the bimodal products. The
  layer has no parameters.
* **Sentiment inference subnetwork.** Dropout, then two ReLU layers of ``post_fusion_dim`` units and a
  linear output. For regression the output passes a sigmoid scaled to the label range (MMSA: to (-3, 3)
  on every dataset; here to the dataset's ``label_range``, the same on MOSI/MOSEI).

Shapes. Sequence layout (one sample per utterance): text ``(B, L_t, d_t)`` runs through the LSTM over
its real length; audio and vision ``(B, L, d)`` are averaged over their real steps (MMSA's unaligned
features averaged when ``need_normalized``). Position layout (mosi-bclstm: a sample is a video, each
position an utterance with one vector per modality): every real utterance is one TFN sample, its text a
sequence of length 1; the predictions are put back at their positions, ``(B, P)``.

Where mser differs from MMSA (``docs/baselines.md``): MMSA's optimiser leaves out the first two parameters
of the model (``list(model.parameters())[2:]``: the audio batch norm's weight and bias, which then never
train); here every parameter trains. ``modalities`` (a subset of ``"tav"``) drops modalities from the
product, for the unimodal and bimodal rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .. import checks
from ..data.batch import MODALITIES, Batch, DatasetInfo, masked_mean
from .base import Dropout, ModelOutput
from .registry import ModelSpec, Param, register


class SubNet(nn.Module):
    """Acoustic / visual embedding subnetwork: ``BatchNorm -> Dropout -> 3 x (Linear, ReLU)``.
    ``(N, d_in) -> (N, hidden)``. A batch of one sample in training uses the running statistics (batch norm
    cannot estimate a variance from one value)."""

    def __init__(self, d_in: int, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(d_in)
        self.drop = Dropout(dropout)
        self.layers = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            x = nn.functional.batch_norm(x, self.norm.running_mean, self.norm.running_var, self.norm.weight,
                                         self.norm.bias, training=False, eps=self.norm.eps)
        else:
            x = self.norm(x)
        return self.layers(self.drop(x))


class TextSubNet(nn.Module):
    """Spoken-language embedding subnetwork: a one-layer LSTM, its last hidden state, dropout, a linear
    layer. ``(N, L, d_in)`` with real lengths ``(N,)`` -> ``(N, out)``."""

    def __init__(self, d_in: int, hidden: int, out: int, dropout: float):
        super().__init__()
        self.rnn = nn.LSTM(d_in, hidden, batch_first=True)
        self.drop = Dropout(dropout)
        self.linear = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.rnn(packed)
        return self.linear(self.drop(h[-1]))


@dataclass
class TFNConfig:
    """MMSA's MOSI values as defaults (``hidden_dims`` [text, audio, vision] = [128, 32, 128])."""

    text_hidden: int = 128
    audio_hidden: int = 32
    vision_hidden: int = 128
    text_out: int = 32
    post_fusion_dim: int = 64
    text_dropout: float = 0.3
    audio_dropout: float = 0.3
    vision_dropout: float = 0.3
    post_fusion_dropout: float = 0.5
    modalities: str = "tav"

    def __post_init__(self) -> None:
        checks.check_types(self)
        for name in ("text_hidden", "audio_hidden", "vision_hidden", "text_out", "post_fusion_dim"):
            checks.integer(self, name, 1)
        checks.dropouts(self, "text_dropout", "audio_dropout", "vision_dropout", "post_fusion_dropout")
        checks.modalities(self)


class Embeddings(nn.Module):
    """The three embedding subnetworks of TFN (and LMF): ``z_m`` per selected modality, ``(N, h_m)``, with
    ``N`` samples (sequence layout) or real utterances (position layout). ``widths[m]`` is ``h_m``."""

    def __init__(self, info: DatasetInfo, config, text_out: int):
        super().__init__()
        self.modalities = [m for m in MODALITIES if m[0] in config.modalities]
        self.nets = nn.ModuleDict()
        self.widths = {}
        for m in self.modalities:
            if m == "text":
                self.nets[m] = TextSubNet(info.dims[m], config.text_hidden, text_out, config.text_dropout)
                self.widths[m] = text_out
            else:
                hidden = getattr(config, f"{m}_hidden")
                self.nets[m] = SubNet(info.dims[m], hidden, getattr(config, f"{m}_dropout"))
                self.widths[m] = hidden

    def forward(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Returns ``({m: z_m (N, h_m)}, where)``: ``where`` is the position layout's label mask ``(B, P)``
        that put the N utterances in order, ``None`` for the sequence layout."""
        out = {}
        if batch.layout == "position":
            where = batch.label_mask
            for m in self.modalities:
                x = batch.features(m)[:, :where.shape[1]][where]                     # (N, d_m)
                if m == "text":
                    out[m] = self.nets[m](x[:, None], torch.ones(len(x), dtype=torch.long))
                else:
                    out[m] = self.nets[m](x)
            return out, where
        for m in self.modalities:
            if m == "text":
                out[m] = self.nets[m](batch.features(m), batch.mask(m).sum(1))
            else:
                out[m] = self.nets[m](masked_mean(batch.features(m), batch.mask(m)))
        return out, None


def with_one(z: torch.Tensor) -> torch.Tensor:
    """``[1; z]``: the constant 1 that TFN (and LMF) prepend, ``(N, h) -> (N, h + 1)``."""
    return torch.cat([z.new_ones(z.shape[0], 1), z], -1)


def tensor_fusion(zs: list[torch.Tensor]) -> torch.Tensor:
    """The Tensor Fusion Layer: the outer product of ``[1; z_m]`` over the modalities, flattened.
    ``[(N, h_m)] -> (N, prod_m (h_m + 1))``, in the order of ``zs`` (the first modality varies slowest)."""
    fused = with_one(zs[0])
    for z in zs[1:]:
        fused = (fused[:, :, None] * with_one(z)[:, None, :]).flatten(1)
    return fused


def _output(out: torch.Tensor, info: DatasetInfo, where: torch.Tensor | None, squash: bool) -> torch.Tensor:
    """``(N, out)`` -> the prediction: ``(B,)`` / ``(B, C)``, or ``(B, P)`` / ``(B, P, C)`` with the utterances
    put back at their positions; regression squashed to the label range by a sigmoid when ``squash``."""
    if info.task == "regression":
        out = out.squeeze(-1)
        if squash:
            lo, hi = info.label_range or (-3.0, 3.0)
            out = torch.sigmoid(out) * (hi - lo) + lo
    if where is None:
        return out
    full = out.new_zeros(where.shape + out.shape[1:])
    full[where] = out
    return full


def utterance_vectors(batch: Batch, encoders) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """One vector per modality for each sample (sequence layout) or each labelled utterance (position layout), the
    input of MISA, Self-MM and MMIM: text as given (its mean over real steps in the sequence layout), audio and vision
    through ``encoders[m](x (N, L, d_m), lengths (N,))`` (length-1 sequences in the position layout). Returns
    ``({m: (N, k_m)}, where)``, ``where`` the label mask ``(B, P)`` that orders the rows in the position layout
    (:func:`_output` puts them back), else ``None``."""
    if batch.layout == "position":
        where = batch.label_mask
        xs = {m: batch.features(m)[:, :where.shape[1]][where] for m in MODALITIES}          # (N, d_m)
        ones = torch.ones(len(xs["text"]), dtype=torch.long)
        return {"text": xs["text"], **{m: encoders[m](xs[m][:, None], ones) for m in ("audio", "vision")}}, where
    u = {"text": masked_mean(batch.features("text"), batch.mask("text"))}
    for m in ("audio", "vision"):
        u[m] = encoders[m](batch.features(m), batch.mask(m).sum(1))
    return u, None


class TFN(nn.Module):
    """Tensor Fusion Network. ``forward(batch)``: prediction ``(B,)`` (sequence layout) or ``(B, P)``
    (position layout); logits with a trailing class axis for classification."""

    def __init__(self, info: DatasetInfo, config: TFNConfig):
        super().__init__()
        self.info, self.config = info, config
        self.embed = Embeddings(info, config, config.text_out)
        size = 1
        for m in self.embed.modalities:
            size *= self.embed.widths[m] + 1
        # MMSA's order of the product: audio, vision, text
        self.order = [m for m in ("audio", "vision", "text") if m in self.embed.modalities]
        out_dim = info.num_classes if info.task == "classification" else 1
        self.inference = nn.Sequential(Dropout(config.post_fusion_dropout), nn.Linear(size, config.post_fusion_dim),
                                       nn.ReLU(), nn.Linear(config.post_fusion_dim, config.post_fusion_dim),
                                       nn.ReLU(), nn.Linear(config.post_fusion_dim, out_dim))

    def forward(self, batch: Batch) -> ModelOutput:
        z, where = self.embed(batch)
        fused = tensor_fusion([z[m] for m in self.order])
        return ModelOutput(prediction=_output(self.inference(fused), self.info, where, squash=True))


def _paper(info: DatasetInfo) -> dict:
    """MMSA's ``config_regression.json`` for the dataset (MOSI's for mosi-bclstm and the built-in data)."""
    if info.name.startswith("mosei"):
        return {"text_hidden": 128, "audio_hidden": 16, "vision_hidden": 128, "text_out": 128,
                "post_fusion_dim": 16, "text_dropout": 0.4, "audio_dropout": 0.4, "vision_dropout": 0.4,
                "post_fusion_dropout": 0.4}
    if info.name.startswith("sims"):
        return {"text_out": 256 if info.name == "sims" else 128, "post_fusion_dim": 32,
                **({"text_dropout": 0.4, "audio_dropout": 0.4, "vision_dropout": 0.4, "post_fusion_dropout": 0.4}
                   if info.name == "sims" else {})}
    return {}


def _quick(info: DatasetInfo) -> dict:
    return {"text_hidden": 32, "audio_hidden": 8, "vision_hidden": 16, "text_out": 8, "post_fusion_dim": 32}


register(ModelSpec("tfn", TFN, TFNConfig, {"quick": _quick, "paper": _paper},
                   "Tensor Fusion Network (Zadeh et al., 2017), as thuiar/MMSA trains it", role="baseline",
                   label="TFN", color="#8c564b",
                   search_space={"post_fusion_dim": Param("choice", choices=(16, 32, 64, 128)),
                                 "post_fusion_dropout": Param("float", 0.0, 0.5)}))

__all__ = ["TFN", "TFNConfig", "SubNet", "TextSubNet", "Embeddings", "tensor_fusion", "with_one"]
