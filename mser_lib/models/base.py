"""The one model interface, and small layers shared by every model.

Every model is an ``nn.Module`` built as ``Model(info, config)`` from a
:class:`~mser_lib.data.batch.DatasetInfo` and its config dataclass, with
``forward(batch) -> ModelOutput``:

* ``prediction``: regression ``(B,)`` for the sequence layout or ``(B, L)`` for the position layout;
  classification logits ``(B, C)`` or ``(B, L, C)``.
* ``aux_losses``: auxiliary loss terms, already multiplied by their weights; the trainer adds their
  sum to the task loss. Empty at evaluation time is fine.
* ``diagnostics``: tensors for figures (router weights, band energies, attention maps), detached.

A model may also define ``loss(output, batch) -> (total, parts)`` to replace the default
(task loss + sum of aux losses), and ``stages() -> list[str]`` with ``set_stage(name)`` when it is
trained in several stages (FEMF); the runner then fits the stages in order, each selected on VALID. A model
whose every epoch makes several passes over the training split, each stepping its own parameters (MMIM: its
mutual-information estimators, then the rest), defines ``train_passes() -> [(name, fraction), ...]``,
``set_pass(name)`` and ``pass_parameters(name) -> set of parameter ids`` (``mser_lib.train.trainer.train_passes``).
A model with a ``predictions_only`` attribute skips, while it is True and the model is in eval mode, the work that
only its aux losses and their diagnostics need (FEMF: the decoders, L_cyc's re-encoding, L_align, eq. 10's heads
in stage 2); :func:`mser_lib.train.trainer.predict` sets it (:func:`predictions_only`) unless asked for the
diagnostics. The predictions do not change.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch


@dataclass
class ModelOutput:
    prediction: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


@contextlib.contextmanager
def predictions_only(model: nn.Module, on: bool = True):
    """Within it, ``model.predictions_only`` is ``on`` when the model has that attribute (see the module's
    docstring); restored afterwards."""
    if not hasattr(model, "predictions_only"):
        yield
        return
    before = model.predictions_only
    model.predictions_only = on
    try:
        yield
    finally:
        model.predictions_only = before


def task_loss(prediction: torch.Tensor, batch: Batch, task: str, kind: str = "l1",
              reduction: str = "mean") -> torch.Tensor:
    """The supervised loss over labelled positions only.

    Args:
        prediction: ``(B,)``/``(B, L)`` regression or ``(B, C)``/``(B, L, C)`` logits.
        batch: supplies ``labels`` and ``label_mask``.
        task: ``"regression"`` or ``"classification"``.
        kind: ``"l1"`` (MMSA's default) or ``"mse"`` for regression.
        reduction: ``"mean"`` over labelled positions, or ``"none"`` for a per-sample loss ``(B,)``
            (position layout: the mean over each sample's labelled positions).
    """
    mask = batch.label_mask
    if task == "classification":
        per = F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]),
                              batch.labels.reshape(-1).long().clamp_min(0),
                              reduction="none").view(mask.shape)
    else:
        diff = prediction - batch.labels.to(prediction.dtype)
        per = diff.abs() if kind == "l1" else diff.pow(2)
    per = per * mask.to(per.dtype)
    if reduction == "none":
        if per.dim() == 1:
            return per
        return per.sum(1) / mask.sum(1).clamp_min(1).to(per.dtype)
    return per.sum() / mask.sum().clamp_min(1).to(per.dtype)


def task_and_aux_losses(output: ModelOutput, batch: Batch, task: str, kind: str = "l1",
                        with_task: bool = True, task_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """The default loss: ``task_weight`` times :func:`task_loss` of the prediction (unless ``with_task`` is
    false) plus the sum of ``output.aux_losses``; returns ``(total, parts)`` with the detached terms (``task``
    first, unweighted). The trainer uses it for a model without its own ``loss``; a model that pins the task
    loss's kind or weight calls it from its ``loss``. With no term at all the total is a zero that keeps the
    prediction's graph."""
    total, parts = None, {}
    if with_task:
        task_value = task_loss(output.prediction, batch, task, kind)
        parts["task"] = task_value.detach()
        total = task_value if task_weight == 1.0 else task_weight * task_value
    for name, value in output.aux_losses.items():
        total = value if total is None else total + value
        parts[name] = value.detach()
    if total is None:
        total = output.prediction.sum() * 0.0
    return total, parts


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout: each entry zeroed with probability ``p``, the others scaled by ``1 / (1 - p)``;
    ``x`` itself in eval mode or at ``p = 0`` (``F.dropout`` still draws a mask there).

    The same distribution as ``F.dropout``, drawn differently: the mask is float32 uniform noise compared with
    ``p``. On a CPU ``F.dropout``'s Bernoulli draw is serial and about four times slower than ``torch.rand``
    (a paper-size FEMF step on mosi-bclstm spent 18 % of its time in it in stage 1, 28 % in stage 2;
    ``docs/speed.md``).

    In float32 the mask is built in place in the noise's own buffer (``1 / (1 - p)`` where kept, 0 elsewhere) and
    multiplies ``x`` once: bit for bit ``x * (noise >= p) * (1 / (1 - p))`` forward and backward (the factors are
    0, 1 and one float32 scale), with one elementwise pass fewer each way and no boolean mask to convert. Other
    dtypes keep that formula as written (a float64 ``x`` is scaled by the unrounded ``1 / (1 - p)``)."""
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, device=x.device).ge_(p)            # float32 1.0 / 0.0: the test `noise >= p`
    if x.dtype == torch.float32:
        return x * keep.mul_(1.0 / (1.0 - p))
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


class Dropout(nn.Module):
    """:func:`dropout` as a module (for ``nn.Sequential``)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def masked_avg(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the entries where ``mask`` is True (shapes broadcastable); 0 when none are."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
