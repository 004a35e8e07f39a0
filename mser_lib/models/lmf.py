"""LMF: Low-rank Multimodal Fusion with modality-specific factors (Liu, Shen, Lakshminarasimhan, Liang,
Zadeh, Morency, ACL 2018), a baseline of Atsuko's Table 1, as thuiar/MMSA trains it
(``models/singleTask/LMF.py``, the ``lmf`` entry of ``config/config_regression.json``).

TFN (:mod:`mser_lib.models.tfn`) maps the fused tensor ``Z = [1; z_a] (x) [1; z_v] (x) [1; z_t]`` to the output
with one weight tensor ``W``: ``h = W . Z + b``, whose size is the product of the widths. LMF writes ``W`` as
a sum of ``r`` rank-one terms, each the outer product of one factor per modality,
``W = sum_{i=1..r} w_a^(i) (x) w_v^(i) (x) w_t^(i)``, and computes ``h`` without ever forming ``Z``:

    h = sum_{i=1..r} lambda_i * prod_m ( [1; z_m] . w_m^(i) ) + b

(the elementwise product over modalities of each modality's own linear map; ``lambda`` is MMSA's learned
``fusion_weights``, which the paper's plain sum over ``i`` fixes at 1). The cost is linear in the widths
instead of their product. :func:`full_weight` builds the equivalent TFN weight for the tests.

Embeddings are TFN's (:class:`mser_lib.models.tfn.Embeddings`), with MMSA's ``text_out = text_hidden // 2``.
The output is linear (no sigmoid, as in MMSA). Shapes and layouts as in :mod:`mser_lib.models.tfn`.

Where mser differs from MMSA (``docs/baselines.md``): MMSA gives the factors their own learning rate
(``factor_lr``) through parameter groups ``list(model.parameters())[:3]`` and ``[5:]``, which pick the
audio batch norm and first linear weight instead of the factors and leave parameters 3 and 4 untrained; on
MOSI ``factor_lr`` equals ``learning_rate`` (0.001), so here every parameter trains at the one learning rate.
MMSA's fourth dropout (``dropouts[3]``, "post-fusion") is configured and never applied; it has no field here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import checks
from ..data.batch import Batch, DatasetInfo
from .base import ModelOutput
from .registry import ModelSpec, Param, register
from .tfn import Embeddings, _output, with_one


@dataclass
class LMFConfig:
    """MMSA's MOSI values as defaults (``hidden_dims`` [text, audio, vision] = [128, 16, 128], rank 3)."""

    text_hidden: int = 128
    audio_hidden: int = 16
    vision_hidden: int = 128
    rank: int = 3
    text_dropout: float = 0.3
    audio_dropout: float = 0.3
    vision_dropout: float = 0.3
    modalities: str = "tav"

    def __post_init__(self) -> None:
        checks.check_types(self)
        for name in ("text_hidden", "audio_hidden", "vision_hidden", "rank"):
            checks.integer(self, name, 1)
        if self.text_hidden < 2:
            raise checks.ConfigError(type(self).__name__, "text_hidden", self.text_hidden,
                                     "an integer >= 2 (the text embedding has text_hidden // 2 units)")
        checks.dropouts(self, "text_dropout", "audio_dropout", "vision_dropout")
        checks.modalities(self)


class LMF(nn.Module):
    """Low-rank Multimodal Fusion. ``forward(batch)``: prediction ``(B,)`` or ``(B, P)`` (logits with a
    trailing class axis for classification). ``factors[m]``: ``(r, h_m + 1, out)``."""

    def __init__(self, info: DatasetInfo, config: LMFConfig):
        super().__init__()
        self.info, self.config = info, config
        self.embed = Embeddings(info, config, config.text_hidden // 2)
        out_dim = info.num_classes if info.task == "classification" else 1
        self.factors = nn.ParameterDict({m: nn.Parameter(torch.empty(config.rank, w + 1, out_dim))
                                         for m, w in self.embed.widths.items()})
        self.fusion_weights = nn.Parameter(torch.empty(1, config.rank))
        self.fusion_bias = nn.Parameter(torch.zeros(1, out_dim))
        for p in (*self.factors.values(), self.fusion_weights):
            nn.init.xavier_normal_(p)

    def forward(self, batch: Batch) -> ModelOutput:
        z, where = self.embed(batch)
        fused = None
        for m, zm in z.items():
            part = torch.matmul(with_one(zm), self.factors[m])          # (r, N, out): [1; z_m] . w_m^(i)
            fused = part if fused is None else fused * part
        out = torch.einsum("r,rno->no", self.fusion_weights[0], fused) + self.fusion_bias      # (N, out)
        return ModelOutput(prediction=_output(out, self.info, where, squash=False))


def full_weight(model: LMF, order: list[str]) -> torch.Tensor:
    """The TFN weight ``W`` that ``model``'s factors stand for: ``sum_i lambda_i (x)_m w_m^(i)``, flattened in
    :func:`mser_lib.models.tfn.tensor_fusion`'s order of ``order``. ``(prod_m (h_m + 1), out)``."""
    terms = []
    for i in range(model.config.rank):
        w = model.factors[order[0]][i]                                  # (h + 1, out)
        for m in order[1:]:
            w = (w[:, None, :] * model.factors[m][i][None, :, :]).flatten(0, 1)
        terms.append(model.fusion_weights[0, i] * w)
    return torch.stack(terms).sum(0)


def _paper(info: DatasetInfo) -> dict:
    """MMSA's ``config_regression.json`` for the dataset (MOSI's for mosi-bclstm and the built-in data)."""
    if info.name.startswith("mosei"):
        return {"rank": 4, "text_dropout": 0.2, "audio_dropout": 0.2, "vision_dropout": 0.2}
    if info.name == "sims":
        return {"text_hidden": 64, "vision_hidden": 64, "rank": 4, "text_dropout": 0.2, "audio_dropout": 0.2,
                "vision_dropout": 0.2}
    if info.name == "simsv2":
        return {"text_hidden": 64, "audio_hidden": 32, "vision_hidden": 64, "rank": 4}
    return {}


def _quick(info: DatasetInfo) -> dict:
    return {"text_hidden": 32, "audio_hidden": 8, "vision_hidden": 16}


register(ModelSpec("lmf", LMF, LMFConfig, {"quick": _quick, "paper": _paper},
                   "Low-rank Multimodal Fusion (Liu et al., 2018), as thuiar/MMSA trains it", role="baseline",
                   label="LMF", color="#e377c2",
                   search_space={"rank": Param("choice", choices=(2, 3, 4, 6)),
                                 "text_dropout": Param("float", 0.0, 0.5)}))

__all__ = ["LMF", "LMFConfig", "full_weight"]
