"""Tiny hand-made datasets for tests (no files, milliseconds)."""

import numpy as np
import torch

from mser_lib.data import DatasetInfo, MultimodalDataset, SplitData
from mser_lib.data.batch import collate


def tiny_split(n=6, lengths=None, dims=(4, 3, 2), layout="sequence", seed=0, task="regression",
               num_classes=None):
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths if lengths is not None else rng.integers(1, 7, size=n))
    n, L = len(lengths), int(lengths.max())
    mask = np.arange(L)[None] < lengths[:, None]
    feats = {}
    for m, d in zip(("text", "audio", "vision"), dims):
        x = rng.standard_normal((n, L, d)).astype(np.float32)
        x[~mask] = 0
        feats[m], feats[f"{m}_mask"] = x, mask.copy()
    if layout == "position":
        labels = rng.uniform(-3, 3, size=(n, L)).astype(np.float32)
        labels[~mask] = 0
        label_mask = mask.copy()
    else:
        labels = rng.uniform(-3, 3, size=n).astype(np.float32)
        label_mask = np.ones(n, dtype=bool)
    if task == "classification":
        labels = rng.integers(0, num_classes, size=labels.shape).astype(np.int64)
    return SplitData(**feats, labels=labels, label_mask=label_mask,
                     ids=np.array([f"s{i}" for i in range(n)]))


def tiny_dataset(layout="sequence", dims=(4, 3, 2), n=(12, 6, 6)):
    info = DatasetInfo("tiny", layout, "regression", "mosi", dict(zip(("text", "audio", "vision"), dims)))
    return MultimodalDataset(info, *(tiny_split(k, dims=dims, layout=layout, seed=i) for i, k in enumerate(n)))


def split_batch(ds, split="train", index=None):
    """One :class:`~mser_lib.data.batch.Batch` of a dataset's split: every sample, or those of ``index``."""
    data = getattr(ds, split)
    return collate(data, np.arange(len(data.labels)) if index is None else np.asarray(index), ds.info.layout)


def as_double(batch):
    """The batch with its floating tensors in float64 (for comparisons with formulas written out)."""
    return type(batch)(**{k: (v.double() if torch.is_tensor(v) and torch.is_floating_point(v) else v)
                          for k, v in vars(batch).items()})


def check_layout_and_padding(model, ds) -> None:
    """A float64 model in eval mode on the whole train split: one prediction per sample (position layout: per
    position, 0 at padded positions), all finite, and sample 1 alone (so with less padding, or none) predicted
    as within the batch."""
    batch = as_double(split_batch(ds))
    pred = model(batch).prediction
    assert pred.shape == batch.labels.shape
    assert torch.isfinite(pred).all()
    if ds.info.layout == "position":
        assert torch.all(pred[~batch.label_mask] == 0)
    one = as_double(split_batch(ds, index=[1]))
    n = 1 if ds.info.layout == "sequence" else int(one.label_mask[0].sum())
    torch.testing.assert_close(model(one).prediction.reshape(-1)[:n], pred[1].reshape(-1)[:n], rtol=1e-10,
                               atol=1e-12)
