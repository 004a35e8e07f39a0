"""Tiny hand-made datasets for tests (no files, milliseconds)."""

import numpy as np

from mser_lib.data import DatasetInfo, MultimodalDataset, SplitData


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
