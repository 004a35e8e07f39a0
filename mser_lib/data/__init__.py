"""One data path: every source yields a :class:`MultimodalDataset` whose splits batch into :class:`Batch`.

Sources (docs/data-formats.md gives the directory layout each one expects):

==================  ==========================================================================
``synthetic``       the built-in benchmark (:mod:`.synthetic`), the default; nothing to download
``synthetic-intent`` its classification variant (imbalanced intent-like classes), MIntRec's stand-in
``mosi-bclstm``     real CMU-MOSI utterance features of bc-LSTM (:mod:`.bclstm`), position layout
``mosi``/``mosei``  MMSA pickles (:mod:`.mmsa`), sequence layout
``sims``/``simsv2`` MMSA pickles, labels in [-1, 1]
``mosi-utt`` ...    utterance-feature format of MoMKE/GCNet/FEMF (:mod:`.utterance`), position layout
``mintrec``         MIntRec intent recognition, 20 classes (:mod:`.mintrec`), sequence layout
==================  ==========================================================================
"""

from __future__ import annotations

from pathlib import Path

from .batch import (
    MODALITIES,
    Batch,
    DatasetInfo,
    MultimodalDataset,
    SplitData,
    collate,
    iterate_batches,
    masked_mean,
)
from .missing import CONDITIONS, MissingModality
from .synthetic import SyntheticConfig, make_synthetic, make_synthetic_intent, synthetic_config
from .validate import DataFormatError

__all__ = [
    "MODALITIES", "Batch", "DatasetInfo", "MultimodalDataset", "SplitData", "collate",
    "iterate_batches", "masked_mean", "MissingModality", "CONDITIONS", "make_synthetic",
    "SyntheticConfig", "synthetic_config", "DataFormatError", "load_dataset", "dataset_names",
    "dataset_layout", "dataset_task", "BUILTIN", "is_builtin", "make_synthetic_intent",
]

#: The built-in benchmarks (generated, nothing to download, sequence layout): name -> ``generator(profile=,
#: seed=, **knobs)``, its task and a one-line description.
BUILTIN: dict[str, dict] = {
    "synthetic": {"generator": make_synthetic, "task": "regression",
                  "description": "built-in synthetic benchmark (sequence layout, labels in [-3, 3])"},
    "synthetic-intent": {"generator": make_synthetic_intent, "task": "classification",
                         "description": "its classification variant: imbalanced intent-like classes (MIntRec's "
                                        "stand-in)"},
}


def is_builtin(name) -> bool:
    """True for a built-in benchmark's name (or a ``DatasetInfo`` of one)."""
    return str(getattr(name, "name", name)) in BUILTIN


def _real_loaders() -> dict:
    try:
        from .loaders_registry import DATASETS
    except ModuleNotFoundError as exc:  # pragma: no cover - only while loaders are being written
        if exc.name != "mser_lib.data.loaders_registry":
            raise
        return {}
    return DATASETS


def dataset_names() -> dict[str, str]:
    """Name -> one-line description of every dataset ``load_dataset`` knows."""
    out = {name: entry["description"] for name, entry in BUILTIN.items()}
    for name, entry in _real_loaders().items():
        out[name] = entry["description"] if isinstance(entry, dict) else getattr(entry, "__doc__", "")
    return out


def dataset_layout(name: str) -> str | None:
    """``"sequence"`` or ``"position"``: the layout dataset ``name`` loads into (``None`` when unknown),
    known without reading any data (the profiles' ``layouts`` sections follow it)."""
    if name in BUILTIN:
        return "sequence"
    entry = _real_loaders().get(name)
    return entry.get("layout") if isinstance(entry, dict) else None


def dataset_task(name: str) -> str:
    """``"regression"`` or ``"classification"``: the task of dataset ``name``, known without reading any data
    (the grids leave out the models not built for it)."""
    if name in BUILTIN:
        return BUILTIN[name]["task"]
    entry = _real_loaders().get(name)
    return entry.get("task", "regression") if isinstance(entry, dict) else "regression"


def load_dataset(name: str = "synthetic", data_dir: str | Path | None = None, profile: str = "quick",
                 seed: int = 0, **kwargs) -> MultimodalDataset:
    """Load a dataset by name.

    Args:
        name: see :func:`dataset_names`.
        data_dir: folder (or file) holding the user's data; unused for the built-in benchmarks.
        profile: size profile of a built-in benchmark (``smoke``, ``quick``, ``paper``).
        seed: generator seed of a built-in benchmark (fixed per dataset, not per training run).
        **kwargs: passed to the loader (e.g. ``split="standard"`` for mosi-bclstm).
    """
    if name in BUILTIN:
        return BUILTIN[name]["generator"](profile=profile, seed=seed, **kwargs)
    loaders = _real_loaders()
    if name not in loaders:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(dataset_names()))}")
    if data_dir is None:
        raise ValueError(f"dataset {name!r} needs data_dir (the folder holding its files; see docs/data-formats.md)")
    if not Path(data_dir).exists():
        raise DataFormatError(data_dir, "data_dir",
                              f"the folder (or file) holding the {name!r} data (see docs/data-formats.md)",
                              "no such file or folder")
    entry = loaders[name]
    from .loaders_registry import loader_arguments

    accepted = loader_arguments(name)
    if accepted is not None and set(kwargs) - set(accepted):
        raise KeyError(f"dataset {name!r} has no loader argument(s) {sorted(set(kwargs) - set(accepted))}; "
                       f"it takes: {', '.join(accepted) or 'none'}")
    loader = entry["loader"] if isinstance(entry, dict) else entry
    return loader(Path(data_dir), seed=seed, **kwargs)
