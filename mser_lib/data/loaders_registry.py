"""Name -> loader of the real-data sources, merged into :func:`mser_lib.data.load_dataset`.

Each entry is ``{"loader": fn, "description": str}`` with ``fn(data_dir, seed, **kw) ->
MultimodalDataset``. ``seed`` is the training seed: no real-data split depends on it (mosi-bclstm's
validation carve-out has its own ``split_seed``), so every training seed sees the same split.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from .batch import MultimodalDataset


def _mosi_bclstm(data_dir: str | Path, seed: int = 0, **kw) -> MultimodalDataset:
    from .bclstm import load_mosi_bclstm

    # z-score every feature with TRAIN statistics by default: audio column 0 is pitch in Hz (~200),
    # which would otherwise dominate every model's first layer. standardize=False gives raw features.
    kw.setdefault("standardize", True)
    return load_mosi_bclstm(data_dir, seed=seed, **kw)


def _mmsa(dataset: str):
    def load(data_dir: str | Path, seed: int = 0, **kw) -> MultimodalDataset:
        from .mmsa import load_mmsa

        return load_mmsa(data_dir, dataset=dataset, **kw)

    load.__name__ = f"load_{dataset}"
    return load


def _utt(dataset: str):
    def load(data_dir: str | Path, seed: int = 0, **kw) -> MultimodalDataset:
        from .utterance import load_utterance_features

        kw.setdefault("standardize", True)          # as mosi-bclstm: raw extractor scales differ widely
        return load_utterance_features(data_dir, dataset=dataset, **kw)

    load.__name__ = f"load_{dataset}_utt"
    return load


def _mintrec(data_dir: str | Path, seed: int = 0, **kw) -> MultimodalDataset:
    from .mintrec import load_mintrec

    return load_mintrec(data_dir, **kw)


_BCLSTM = "mser_lib.data.bclstm:load_mosi_bclstm"
_MMSA = "mser_lib.data.mmsa:load_mmsa"
_UTT = "mser_lib.data.utterance:load_utterance_features"
_MINTREC = "mser_lib.data.mintrec:load_mintrec"

# Each entry: "loader", "description", "layout" (``sequence`` or ``position``: what a sample is; the
# profiles' ``layouts.<layout>`` trainer settings follow it), "task" when it is not regression, and "target",
# the function whose keyword arguments the loader passes on (the user's loader arguments, ``--data-set``, are
# checked against it).
DATASETS: dict[str, dict] = {
    "mosi-bclstm": {"layout": "position", "loader": _mosi_bclstm, "target": _BCLSTM, "description":
                    "real CMU-MOSI bc-LSTM utterance feats (t100/a73/v100), position layout, bc-LSTM split"},
    "mosi": {"layout": "sequence", "loader": _mmsa("mosi"), "target": _MMSA, "description":
             "MMSA CMU-MOSI pickle (aligned_50/unaligned_50.pkl), sequence layout, labels [-3, 3]"},
    "mosei": {"layout": "sequence", "loader": _mmsa("mosei"), "target": _MMSA, "description":
              "MMSA CMU-MOSEI pickle (aligned_50/unaligned_50.pkl), sequence layout, labels [-3, 3]"},
    "sims": {"layout": "sequence", "loader": _mmsa("sims"), "target": _MMSA, "description":
             "MMSA CH-SIMS pickle (unaligned_39.pkl), sequence layout, labels [-1, 1]"},
    "simsv2": {"layout": "sequence", "loader": _mmsa("simsv2"), "target": _MMSA, "description":
               "MMSA CH-SIMS v2 pickle (unaligned.pkl), sequence layout, labels [-1, 1]"},
    "mosi-utt": {"layout": "position", "loader": _utt("mosi"), "target": _UTT, "description":
                 "CMU-MOSI utterance features (MoMKE/GCNet/FEMF format), position layout"},
    "mosei-utt": {"layout": "position", "loader": _utt("mosei"), "target": _UTT, "description":
                  "CMU-MOSEI utterance features (MoMKE/GCNet/FEMF format), position layout"},
    "mintrec": {"layout": "sequence", "task": "classification", "loader": _mintrec, "target": _MINTREC, "description":
                "MIntRec intent recognition (thuiar/MIntRec release: tsv splits, video/audio pickles), 20 classes"},
}


#: Parameters every loader fills in itself (not loader arguments a user gives).
_BOUND = {"data_dir", "root", "path", "seed", "dataset"}


def loader_arguments(name: str) -> list[str] | None:
    """The loader arguments (``--data-set`` keys) dataset ``name`` accepts; ``None`` when unknown."""
    entry = DATASETS.get(name)
    target = entry.get("target") if isinstance(entry, dict) else None
    if target is None:
        return None
    module, _, fn = target.partition(":")
    params = inspect.signature(getattr(importlib.import_module(module), fn)).parameters
    return sorted(k for k, p in params.items() if k not in _BOUND and p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                                                  p.KEYWORD_ONLY))
