"""MMSA pickles (docs/data-formats.md): MOSI, MOSEI, SIMS, SIMSv2, aligned and unaligned, sequence layout.

Layout of a file (``{'train', 'valid', 'test'}``, each a dict of numpy arrays, N samples):

==================== =========== ========================================================
key                  shape       use here
==================== =========== ========================================================
``id``               (N,) str    sample ids ``"video$_$clip"``
``text``             (N, L, 768) BERT features -> ``text``
``text_bert``        (N, 3, L)   row 1 = attention mask -> ``text_mask`` (optional)
``audio``            (N, La, da) -> ``audio`` (``-inf`` set to 0 as MMSA does)
``vision``           (N, Lv, dv) -> ``vision``
``audio_lengths``    (N,)        unaligned files: real frames -> ``audio_mask``
``vision_lengths``   (N,)        unaligned files: real frames -> ``vision_mask``
``regression_labels`` (N,)       labels, [-3, 3] MOSI/MOSEI, [-1, 1] SIMS/SIMSv2
==================== =========== ========================================================

Masks: ``text_mask`` from the attention mask when ``text_bert`` is present, else from the nonzero
rows of ``text``. Aligned files have no lengths; their audio and vision share the text axis, so
their masks equal ``text_mask``. Padding is at the end.

Every check failure raises :class:`~mser_lib.data.validate.DataFormatError` naming the file, the
field (``"train/audio"``) and the expectation. A modality whose features are all 0 in a split loads,
with one :class:`~mser_lib.data.validate.AllZeroModalityWarning` naming the file, the splits and the
modalities. Pickles are read with
:func:`~mser_lib.data.safe_pickle.safe_load` (numpy arrays and builtin containers only).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .batch import DatasetInfo, MultimodalDataset, SplitData
from .safe_pickle import safe_load
from .validate import (
    DataFormatError,
    all_rows,
    check_array,
    check_disjoint_splits,
    check_label_range,
    data_fingerprint,
    require_keys,
    row_chunks,
    standardize_splits,
    warn_all_zero_modalities,
)

log = logging.getLogger("mser_lib.data")

SPLITS = ("train", "valid", "test")
REQUIRED_KEYS = ("id", "text", "audio", "vision", "regression_labels")

# dataset -> (folder under the MMSA root, {aligned: file name}, metric family, label range)
MMSA_FILES: dict[str, tuple[str, dict[bool, str], str, tuple[float, float]]] = {
    "mosi": ("MOSI", {True: "aligned_50.pkl", False: "unaligned_50.pkl"}, "mosi", (-3.0, 3.0)),
    "mosei": ("MOSEI", {True: "aligned_50.pkl", False: "unaligned_50.pkl"}, "mosi", (-3.0, 3.0)),
    "sims": ("SIMS", {False: "unaligned_39.pkl"}, "sims", (-1.0, 1.0)),
    "simsv2": ("SIMSv2", {False: "unaligned.pkl"}, "sims", (-1.0, 1.0)),
}


def resolve_mmsa_file(path: str | Path, dataset: str, aligned: bool | None = None) -> Path:
    """The ``.pkl`` file for ``dataset`` given a file, a dataset folder or the MMSA root.

    Accepted: the pickle itself; ``<dataset folder>`` holding ``Processed/<file>`` (or ``<file>``);
    the MMSA root holding ``<MOSI|MOSEI|SIMS|SIMSv2>/Processed/<file>``. With ``aligned=None`` the
    unaligned file is preferred (MMSA's default), then the aligned one.
    """
    if dataset not in MMSA_FILES:
        raise ValueError(f"dataset must be one of {sorted(MMSA_FILES)}, got {dataset!r}")
    path = Path(path)
    if path.is_file():
        return path
    folder, names, _, _ = MMSA_FILES[dataset]
    if aligned is None:
        wanted = [names[k] for k in (False, True) if k in names]
    elif aligned not in names:
        raise DataFormatError(path, "aligned", f"aligned={aligned} to exist for {dataset} "
                              f"(available: {sorted(names.values())})", "no such MMSA file")
    else:
        wanted = [names[aligned]]
    tried = []
    for base in (path / folder / "Processed", path / "Processed", path / folder, path):
        for name in wanted:
            cand = base / name
            tried.append(str(cand))
            if cand.is_file():
                return cand
    raise DataFormatError(path, "<file>", f"an MMSA pickle for {dataset} (one of: {', '.join(tried)})",
                          "none of them exists")


def load_mmsa(path: str | Path, dataset: str = "mosi", aligned: bool | None = None,
              standardize: bool = False) -> MultimodalDataset:
    """Load an MMSA pickle into a sequence-layout :class:`MultimodalDataset`.

    Args:
        path: the ``.pkl`` file, or a folder resolved by :func:`resolve_mmsa_file`.
        dataset: ``"mosi"``, ``"mosei"``, ``"sims"`` or ``"simsv2"`` (label range, metric family,
            file names).
        aligned: ``True`` treats audio/vision as word-aligned with the text (their masks are the text
            mask; their length must equal the text length); ``False`` requires ``audio_lengths`` and
            ``vision_lengths``; ``None`` decides per file: unaligned if both lengths are present.
        standardize: z-score every feature with the train split's statistics over real steps,
            computed in float64 (:func:`mser_lib.data.validate.standardize_splits`); off by default
            (MMSA's features are used as the papers use them).

    Returns:
        splits with text (N, L, 768), audio (N, La, da), vision (N, Lv, dv) float32, masks (N, L_m)
        bool, labels (N,) float32, label_mask (N,) all True, ids (N,) str.

    Raises:
        DataFormatError: missing key, wrong shape or dtype, NaN/inf (other than ``-inf`` in audio),
            lengths outside the padded length, labels out of range, inconsistent widths across splits.
    """
    if aligned is not None and not isinstance(aligned, bool):
        raise ValueError(f"aligned must be true, false or null, got {aligned!r}")
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be true or false, got {standardize!r}")
    file = resolve_mmsa_file(path, dataset, aligned)
    folder, _, family, label_range = MMSA_FILES[dataset]
    data = safe_load(file, encoding="latin1")
    require_keys(data, SPLITS, file)
    splits = {}
    dims: dict[str, int] | None = None
    modes = set()
    for s in SPLITS:
        sp, is_aligned = _load_split(data[s], file, s, aligned, label_range)
        modes.add(is_aligned)
        d = {m: int(sp.features(m).shape[2]) for m in ("text", "audio", "vision")}
        if dims is None:
            dims = d
        else:
            for m in d:
                if d[m] != dims[m]:
                    raise DataFormatError(file, f"{s}/{m}", f"feature width {dims[m]} (as in train)",
                                          f"width {d[m]}")
        splits[s] = sp
    del data
    check_disjoint_splits(splits, file)
    warn_all_zero_modalities(splits, file)
    info = DatasetInfo(
        name=dataset, layout="sequence", task="regression", metric_family=family, dims=dims,
        label_range=label_range,
        source={"format": "mmsa", "file": str(file), "aligned": sorted(modes) == [True],
                "folder": folder, "standardize": False,
                "fingerprint": data_fingerprint([file], {"format": "mmsa", "dataset": dataset, "aligned": aligned,
                                                         "standardize": standardize})},
    )
    log.info("loaded %s from %s: %s", dataset, file,
             {s: len(splits[s]) for s in SPLITS})
    ds = MultimodalDataset(info=info, **splits)
    return standardize_splits(ds, file) if standardize else ds


def _load_split(d, file: Path, s: str, aligned: bool | None,
                label_range: tuple[float, float]) -> tuple[SplitData, bool]:
    require_keys(d, REQUIRED_KEYS, file, where=f"{s}/")
    has_lengths = "audio_lengths" in d and "vision_lengths" in d
    if aligned is False:
        require_keys(d, ("audio_lengths", "vision_lengths"), file, where=f"{s}/")
    is_aligned = bool(aligned) if aligned is not None else not has_lengths

    text = check_array(d["text"], file, f"{s}/text")
    if text.ndim != 3:
        raise DataFormatError(file, f"{s}/text", "a 3-D array (N, L, 768) of BERT features",
                              f"shape {text.shape}")
    n, lt, _ = text.shape
    if n == 0:
        raise DataFormatError(file, f"{s}/text", "at least one sample (an empty split cannot be trained, selected "
                              "on or scored)", f"shape {text.shape}")
    audio = _features(d["audio"], file, f"{s}/audio", n, inf_to_zero=True)
    vision = _features(d["vision"], file, f"{s}/vision", n)
    for m, arr in (("text", text), ("audio", audio), ("vision", vision)):
        if arr.shape[1] == 0 or arr.shape[2] == 0:
            what = "sequence length" if arr.shape[1] == 0 else "feature width"
            raise DataFormatError(file, f"{s}/{m}", "a sequence length and a feature width of at least 1",
                                  f"{what} 0 (shape {arr.shape})")
    labels = check_array(d["regression_labels"], file, f"{s}/regression_labels", shape=(n,))
    check_label_range(labels, *label_range, file, f"{s}/regression_labels")
    ids = _ids(d["id"], file, f"{s}/id", n)

    if "text_bert" in d:
        tb = check_array(d["text_bert"], file, f"{s}/text_bert", shape=(n, 3, lt),
                         dtype=np.float64)
        text_mask = tb[:, 1, :] > 0
    else:
        text_mask = np.concatenate([(part != 0).any(-1) for part in row_chunks(text)])

    if is_aligned:
        for m, arr in (("audio", audio), ("vision", vision)):
            if arr.shape[1] != lt:
                raise DataFormatError(file, f"{s}/{m}", f"aligned features of length {lt} (the text "
                                      "length); pass aligned=False with *_lengths for unaligned data",
                                      f"shape {arr.shape}")
        audio_mask = text_mask.copy()
        vision_mask = text_mask.copy()
    else:
        audio_mask = _lengths_mask(d["audio_lengths"], file, f"{s}/audio_lengths", n, audio.shape[1])
        vision_mask = _lengths_mask(d["vision_lengths"], file, f"{s}/vision_lengths", n, vision.shape[1])

    empty = ~(text_mask.any(1) | audio_mask.any(1) | vision_mask.any(1))
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise DataFormatError(file, f"{s}/text_bert, {s}/audio_lengths, {s}/vision_lengths",
                              "at least one real step in some modality for every sample",
                              f"{int(empty.sum())} samples of length 0 in all three, first {str(ids[i])!r} "
                              f"(sample {i})")
    split = SplitData(
        text=text, audio=audio, vision=vision, text_mask=text_mask, audio_mask=audio_mask,
        vision_mask=vision_mask, labels=labels.astype(np.float32, copy=False),
        label_mask=np.ones(n, dtype=bool), ids=ids,
    )
    return split, is_aligned


def _features(value, file: Path, field: str, n: int, inf_to_zero: bool = False) -> np.ndarray:
    """Check a (N, L, d) feature array; with ``inf_to_zero``, ``-inf`` becomes 0 (MMSA does this)."""
    arr = check_array(value, file, field, finite=False)
    if arr.ndim != 3 or arr.shape[0] != n:
        raise DataFormatError(file, field, f"a 3-D array (N={n}, L, d) (N as in text)", f"shape {arr.shape}")
    if inf_to_zero and not all_rows(arr, lambda part: not np.isneginf(part).any()):
        if not arr.flags.writeable:
            arr = arr.copy()
        count = 0
        for part in row_chunks(arr):
            neg = np.isneginf(part)
            count += int(neg.sum())
            part[neg] = 0.0
        log.info("%s: %s: set %d -inf values to 0", file, field, count)
    return check_array(arr, file, field)


def _lengths_mask(value, file: Path, field: str, n: int, padded: int) -> np.ndarray:
    """(N,) frame counts -> (N, padded) bool mask; counts must be integers in [0, padded]."""
    lengths = check_array(value, file, field, shape=(n,), dtype=np.float64)
    if not np.all(lengths == np.round(lengths)):
        raise DataFormatError(file, field, "integer frame counts", f"non-integer values, e.g. "
                              f"{lengths[lengths != np.round(lengths)][0]}")
    bad = (lengths < 0) | (lengths > padded)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(file, field, f"lengths within the padded length [0, {padded}]",
                              f"{int(bad.sum())} outside, first at sample {i}: {lengths[i]:g}")
    lengths = lengths.astype(np.int64)
    return np.arange(padded)[None, :] < lengths[:, None]


def _ids(value, file: Path, field: str, n: int) -> np.ndarray:
    arr = check_array(value, file, field, shape=(n,), numeric=False)
    return np.array([x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in arr],
                    dtype=str)
