"""The field's metric definitions (MMSA; docs/metrics.md), used by both papers' tables.

Three families, chosen by ``DatasetInfo.metric_family``:

``"mosi"`` (MOSI, MOSEI; y and p in [-3, 3])
    ``mae`` mean |p - y| and ``corr`` Pearson r, both on UNCLIPPED values;
    ``acc7`` / ``acc5`` / ``acc3``: clip both to [-3, 3] / [-2, 2] / [-1, 1], round half to even
    (``numpy.round``), compare;
    ``acc2_has0`` / ``f1_has0`` ("neg/non-neg"): (y >= 0) vs (p >= 0) over all samples;
    ``acc2_non0`` / ``f1_non0`` ("neg/pos"): drop samples with y == 0, then (y > 0) vs (p > 0).
    F1 is scikit-learn's ``average="weighted"``.
``"sims"`` (SIMS, SIMS v2; y and p in [-1, 1])
    clip both to [-1, 1] first (MAE and Corr on the clipped values); bins are ``(lo, hi]`` with
    edges acc2 [-1.01, 0, 1.01], acc3 [-1.01, -0.1, 0.1, 1.01],
    acc5 [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]; ``f1`` weighted on the 2-class bins.
``"classification"`` (MIntRec-style)
    ``acc``, ``f1_macro``, ``f1_weighted``, ``precision_macro``, ``recall_macro``.

Position-level data: pass only the real (labelled) positions, e.g. ``labels[label_mask]``.

Pearson r of a constant vector is undefined: ``corr`` is then ``nan`` (not 0 and not an exception);
tables show it as such and model selection treats ``nan`` as the worst value.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

# Higher is better for every metric except these.
LOWER_IS_BETTER = {"mae", "loss"}


def in_percent(metric: str) -> bool:
    """Whether tables, sentences and figures print ``metric`` in percent: accuracies and F1 are, MAE, Corr and a
    loss are not."""
    return metric not in ("mae", "corr", "loss")

SIMS_EDGES = {
    "acc2": [-1.01, 0.0, 1.01],
    "acc3": [-1.01, -0.1, 0.1, 1.01],
    "acc5": [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01],
}

# Column order and printable names for tables.
METRIC_NAMES = {
    "acc2_has0": "Acc-2 (neg/non-neg)",
    "f1_has0": "F1 (neg/non-neg)",
    "acc2_non0": "Acc-2 (neg/pos)",
    "f1_non0": "F1 (neg/pos)",
    "acc7": "Acc-7",
    "acc5": "Acc-5",
    "acc3": "Acc-3",
    "acc2": "Acc-2",
    "f1": "F1",
    "mae": "MAE",
    "corr": "Corr",
    "acc": "Acc",
    "f1_macro": "F1 (macro)",
    "f1_weighted": "F1 (weighted)",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
}


def pearson(y: np.ndarray, p: np.ndarray) -> float:
    """Pearson correlation; ``nan`` when either vector is constant or has fewer than 2 values."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.size < 2:
        return math.nan
    yc, pc = y - y.mean(), p - p.mean()
    denom = math.sqrt(float((yc * yc).sum()) * float((pc * pc).sum()))
    if denom == 0.0:
        return math.nan
    return float(np.clip((yc * pc).sum() / denom, -1.0, 1.0))


def _check(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in size: {y.shape} vs {p.shape}")
    if y.size == 0:
        raise ValueError("no samples to score")
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise ValueError("metrics need finite labels and predictions (found NaN or inf)")
    return y, p


def mosi_metrics(y_true, y_pred) -> dict[str, float]:
    """MOSI/MOSEI metrics (see the module docstring). Inputs: 1-D arrays of the same size."""
    y, p = _check(y_true, y_pred)
    out = {"mae": float(np.abs(p - y).mean()), "corr": pearson(y, p)}
    for name, bound in (("acc7", 3.0), ("acc5", 2.0), ("acc3", 1.0)):
        out[name] = float((np.round(np.clip(p, -bound, bound)) == np.round(np.clip(y, -bound, bound))).mean())
    yb, pb = y >= 0, p >= 0
    out["acc2_has0"] = float(accuracy_score(yb, pb))
    out["f1_has0"] = float(f1_score(yb, pb, average="weighted", zero_division=0))
    keep = y != 0
    if keep.any():
        yb, pb = y[keep] > 0, p[keep] > 0
        out["acc2_non0"] = float(accuracy_score(yb, pb))
        out["f1_non0"] = float(f1_score(yb, pb, average="weighted", zero_division=0))
    else:
        out["acc2_non0"] = out["f1_non0"] = math.nan
    return out


def _bins(x: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin index with intervals (lo, hi] as MMSA does; values outside all bins get -1."""
    out = np.full(x.shape, -1, dtype=np.int64)
    for i in range(len(edges) - 1):
        out[(x > edges[i]) & (x <= edges[i + 1])] = i
    return out


def sims_metrics(y_true, y_pred) -> dict[str, float]:
    """SIMS / SIMS v2 metrics (see the module docstring). Inputs: 1-D arrays of the same size."""
    y, p = _check(y_true, y_pred)
    y, p = np.clip(y, -1.0, 1.0), np.clip(p, -1.0, 1.0)
    out = {"mae": float(np.abs(p - y).mean()), "corr": pearson(y, p)}
    for name, edges in SIMS_EDGES.items():
        out[name] = float((_bins(p, edges) == _bins(y, edges)).mean())
    yb, pb = _bins(y, SIMS_EDGES["acc2"]), _bins(p, SIMS_EDGES["acc2"])
    out["f1"] = float(f1_score(yb, pb, average="weighted", zero_division=0))
    return out


def classification_metrics(y_true, y_pred) -> dict[str, float]:
    """Accuracy, macro/weighted F1, macro precision and recall.

    ``y_pred`` is either class indices (N,) or scores/logits (N, C) (argmax taken).
    """
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred)
    if p.ndim == 2:
        p = p.argmax(1)
    p = p.reshape(-1).astype(np.int64)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need equal, non-empty label and prediction vectors, got {y.shape} vs {p.shape}")
    return {
        "acc": float(accuracy_score(y, p)),
        "f1_macro": float(f1_score(y, p, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(y, p, average="weighted", zero_division=0)),
        "precision_macro": float(precision_score(y, p, average="macro", zero_division=0)),
        "recall_macro": float(recall_score(y, p, average="macro", zero_division=0)),
    }


def compute_metrics(y_true, y_pred, family: str) -> dict[str, float]:
    """Dispatch on the metric family: ``"mosi"``, ``"sims"`` or ``"classification"``."""
    if family == "mosi":
        return mosi_metrics(y_true, y_pred)
    if family == "sims":
        return sims_metrics(y_true, y_pred)
    if family == "classification":
        return classification_metrics(y_true, y_pred)
    raise ValueError(f"unknown metric family {family!r}; expected 'mosi', 'sims' or 'classification'")


def is_better(metric: str, new: float, old: float | None) -> bool:
    """Whether ``new`` improves on ``old`` for ``metric`` (``nan`` never improves; None always loses)."""
    if new is None or (isinstance(new, float) and math.isnan(new)):
        return False
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return True
    return new < old if metric in LOWER_IS_BETTER else new > old


def default_selection_metric(family: str) -> str:
    """The validation metric used to pick the checkpoint unless a config says otherwise."""
    return {"mosi": "mae", "sims": "mae", "classification": "f1_weighted"}[family]
