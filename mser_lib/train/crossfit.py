"""Cross-fitted selection: choose epochs on test videos that the scored utterances do not belong to.

Why: on ``mosi-bclstm`` the validation videos are carved out of the bc-LSTM training videos, on which
the feature extractors were trained with labels, so validation scores are near-perfect and selecting
on them follows memorised features. The only videos the extractors never saw are the 31 test videos.
Cross-fitting uses them without selecting on the video being scored:

1. The test samples (videos in the position layout) are split into ``k`` folds once, with a fixed
   seed, balanced in their mean label (:func:`assign_folds`).
2. One training run serves every fold. After each epoch the model predicts the whole test split;
   fold ``f`` looks only at its own positions, keeps its best epoch on the selection metric and the
   test predictions at that epoch, and stops looking after ``patience`` epochs without improvement
   (early stopping per fold; training ends when every fold has stopped). Nothing of fold ``f``
   influences what another fold selects.
3. Each test position of fold ``j`` is scored by the mean of the predictions that the other folds
   selected (``k = 2``: the one other fold) (:meth:`CrossFitSelector.pooled`). Metrics are computed
   over these pooled predictions.

So every test utterance is scored by a model (an epoch) that was selected without its video. The
training itself never sees a test label. Intermediate stages of a multi-stage model (FEMF's expert
pre-training) select nothing in this protocol: they train their full epoch budget and keep the last
weights.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.batch import SplitData, batch_order
from ..metrics import compute_metrics, is_better

PROTOCOLS = ("crossfit", "valid")


def sample_label_means(split: SplitData) -> np.ndarray:
    """Mean label of each sample over its labelled positions, shape (N,)."""
    lab = np.asarray(split.labels, dtype=np.float64)
    if lab.ndim == 1:
        return lab
    m = np.asarray(split.label_mask, dtype=bool)
    return np.where(m, lab, 0.0).sum(1) / np.maximum(m.sum(1), 1)


def assign_folds(split: SplitData, k: int = 2, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) of every sample of ``split``, shape (N,).

    Samples are sorted by mean label (ties by id) and dealt out in blocks of ``k``, each block in a
    seeded random order, so every fold spans the label range and the fold means are close.
    """
    n = len(split)
    if not 2 <= k <= n:
        raise ValueError(f"crossfit_folds must be between 2 and the number of test samples ({n}), got {k}")
    means = sample_label_means(split)
    order = np.lexsort((np.asarray(split.ids).astype(str), means))
    rng = np.random.default_rng(seed)
    folds = np.empty(n, dtype=np.int64)
    for start in range(0, n, k):
        block = order[start:start + k]
        folds[block] = rng.permutation(k)[:len(block)]
    return folds


def position_folds(split: SplitData, folds: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The fold of each predicted position, from the sample id each position carries."""
    by_id = dict(zip(np.asarray(split.ids).astype(str).tolist(), folds.tolist()))
    return np.array([by_id[i] for i in np.asarray(ids).astype(str)], dtype=np.int64)


def prediction_order(split: SplitData, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and sample ids of the labelled positions in the order :func:`mser_lib.train.predict`
    returns them (evaluation batches: no shuffle, length buckets), without running a model."""
    lengths = split.lengths("text") + split.lengths("audio") + split.lengths("vision")
    order = np.concatenate(batch_order(lengths, batch_size, False, None, True))
    lab, mask, ids = np.asarray(split.labels), np.asarray(split.label_mask, dtype=bool), np.asarray(split.ids)
    if lab.ndim == 1:
        keep = order[mask[order]]
        return lab[keep].astype(np.float64), ids[keep]
    ys = [lab[i][mask[i]] for i in order]
    return np.concatenate(ys).astype(np.float64), np.repeat(ids[order], mask[order].sum(1))


def _metric(y: np.ndarray, p: np.ndarray, family: str, metric: str) -> float:
    if metric in ("mae", "loss") and family != "classification":
        return float(np.abs(p - y).mean())
    return float(compute_metrics(y, p, family)[metric])


def pool_predictions(preds: list[np.ndarray], fold_of: np.ndarray) -> np.ndarray:
    """``preds[f]``: the test predictions of the model that fold ``f`` selected (all positions). Each
    position of fold ``j`` gets the mean of ``preds[f]`` over the folds ``f != j``."""
    out = np.zeros_like(preds[0])
    for j in range(len(preds)):
        sel = fold_of == j
        out[sel] = np.mean([preds[f][sel] for f in range(len(preds)) if f != j], axis=0)
    return out


class CrossFitSelector:
    """Per-fold selection over the epochs of one run (see the module docstring).

    Args:
        fold_of: ``(n,)`` fold of each predicted test position (in :func:`predict` order).
        k: number of folds.
        metric: selection metric (``mae``, ``loss``, ``corr``, ...); ``loss`` is the L1 error here.
        family: metric family of the dataset.
        patience: epochs without improvement after which a fold stops looking (``None``: never).
    """

    def __init__(self, fold_of: np.ndarray, k: int, metric: str, family: str, patience: int | None):
        self.fold_of, self.k, self.metric, self.family, self.patience = fold_of, k, metric, family, patience
        self.best_value: list[float | None] = [None] * k
        self.best_epoch = [-1] * k
        self.best_pred: list[np.ndarray | None] = [None] * k
        self.stale = [0] * k
        self.active = [True] * k

    @property
    def done(self) -> bool:
        return not any(self.active)

    def update(self, epoch: int, y: np.ndarray, p: np.ndarray) -> list[bool]:
        """Score epoch ``epoch``'s test predictions fold by fold; returns which folds improved."""
        improved = []
        for f in range(self.k):
            if not self.active[f]:
                improved.append(False)
                continue
            sel = self.fold_of == f
            value = _metric(y[sel], p[sel], self.family, self.metric)
            better = is_better(self.metric, value, self.best_value[f])
            if better:
                self.best_value[f], self.best_epoch[f], self.best_pred[f] = value, epoch, p.copy()
                self.stale[f] = 0
            else:
                self.stale[f] += 1
                if self.patience is not None and self.stale[f] >= self.patience:
                    self.active[f] = False
            improved.append(better)
        return improved

    def pooled(self) -> np.ndarray:
        """Each position scored by the mean of the other folds' selected predictions."""
        if any(p is None for p in self.best_pred):
            raise RuntimeError("a fold never selected an epoch (no finite selection metric)")
        return pool_predictions(self.best_pred, self.fold_of)

    def summary(self) -> list[dict]:
        return [{"fold": f, "best_epoch": self.best_epoch[f], "best_value": self.best_value[f],
                 "positions": int((self.fold_of == f).sum())} for f in range(self.k)]

    # checkpointing (tensors and plain numbers only, so checkpoints load with weights_only=True)
    def state_dict(self) -> dict:
        return {"best_value": [float("nan") if v is None else v for v in self.best_value],
                "best_epoch": list(self.best_epoch), "stale": list(self.stale), "active": list(self.active),
                "best_pred": [None if p is None else torch.as_tensor(p) for p in self.best_pred]}

    def load_state_dict(self, state: dict) -> None:
        self.best_value = [None if v != v else v for v in state["best_value"]]
        self.best_epoch, self.stale = list(state["best_epoch"]), list(state["stale"])
        self.active = list(state["active"])
        self.best_pred = [None if p is None else p.numpy() for p in state["best_pred"]]


__all__ = ["PROTOCOLS", "assign_folds", "position_folds", "prediction_order", "pool_predictions",
           "sample_label_means", "CrossFitSelector"]
