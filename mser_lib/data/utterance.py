"""Utterance-feature format of MoMKE / GCNet / the FEMF reference code (docs/data-formats.md), position layout.

Directory a user points at (``root``)::

    root/
      CMUMOSI_features_raw_2way.pkl          (CMUMOSEI_features_raw_2way.pkl for MOSEI)
      features/
        wav2vec-large-c-UTT/<utterance_id>.npy   audio, one 1-D vector per utterance (512-d)
        deberta-large-4-UTT/<utterance_id>.npy   text (1024-d)
        manet_UTT/<utterance_id>.npy             vision (1024-d; some vectors shorter)

The label pickle (latin1, read with :func:`~mser_lib.data.safe_pickle.safe_load`) is a 7-tuple
``(videoIDs, videoLabels, videoSpeakers, videoSentences, trainVids, valVids, testVids)`` of dicts
video id -> per-utterance lists, and the three fold sets.

One sample is one video; its positions are the video's utterances in the order of ``videoIDs``, each
with its own continuous label in [-3, 3]. Videos are sorted by id inside each split (as the
reference code does). A vector shorter than the widest of its modality is zero-padded at the end and
the count is logged on ``logging.getLogger("mser_lib.data")``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .batch import MODALITIES, DatasetInfo, MultimodalDataset, SplitData
from .safe_pickle import safe_load
from .validate import (
    DataFormatError,
    check_label_range,
    check_real_dtype,
    data_fingerprint,
    inside,
    standardize_splits,
    warn_all_zero_modalities,
)

log = logging.getLogger("mser_lib.data")

#: FEMF's feature folders, per modality.
DEFAULT_FEATURES: dict[str, str] = {
    "text": "deberta-large-4-UTT",
    "audio": "wav2vec-large-c-UTT",
    "vision": "manet_UTT",
}
LABEL_PICKLES = {"mosi": "CMUMOSI_features_raw_2way.pkl", "mosei": "CMUMOSEI_features_raw_2way.pkl"}
TUPLE_FIELDS = ("videoIDs", "videoLabels", "videoSpeakers", "videoSentences", "trainVids", "valVids",
                "testVids")


def read_label_pickle(file: str | Path) -> dict:
    """Read and check the 7-tuple label pickle; returns a dict keyed by :data:`TUPLE_FIELDS`.

    Checks: a 7-tuple; dicts for the first four fields; every fold video has ids and labels; one
    label per utterance; labels finite numbers. Label range is checked by the callers.
    """
    file = Path(file)
    obj = safe_load(file, encoding="latin1")
    if not isinstance(obj, (tuple, list)) or len(obj) != 7:
        size = len(obj) if hasattr(obj, "__len__") else "?"
        raise DataFormatError(file, "<top level>", "a 7-tuple (" + ", ".join(TUPLE_FIELDS) + ")",
                              f"{type(obj).__name__} of length {size}")
    out = dict(zip(TUPLE_FIELDS, obj))
    for k in TUPLE_FIELDS[:2]:
        if not isinstance(out[k], dict):
            raise DataFormatError(file, k, "a dict video id -> list", type(out[k]).__name__)
    for k in TUPLE_FIELDS[4:]:
        try:
            out[k] = sorted(str(v) for v in out[k])
        except TypeError as exc:
            raise DataFormatError(file, k, "a collection of video ids", type(out[k]).__name__) from exc
    labels: dict[str, np.ndarray] = {}
    ids: dict[str, list[str]] = {}
    for fold in TUPLE_FIELDS[4:]:
        for vid in out[fold]:
            if vid not in out["videoIDs"]:
                raise DataFormatError(file, fold, f"every video of {fold} in videoIDs", f"{vid!r} missing")
            if vid not in out["videoLabels"]:
                raise DataFormatError(file, "videoLabels", f"labels for video {vid!r} (listed in {fold})",
                                      "no entry")
            try:
                uids = [str(u) for u in out["videoIDs"][vid]]
            except TypeError as exc:
                raise DataFormatError(file, f"videoIDs[{vid!r}]", "a list of utterance ids",
                                      type(out["videoIDs"][vid]).__name__) from exc
            if not uids:
                raise DataFormatError(file, f"videoIDs[{vid!r}]", f"at least one utterance (the video is in {fold})",
                                      "an empty list")
            for u in uids:   # each id names a file <features folder>/<id>.npy: it must stay inside
                inside(file.parent, f"{u}.npy", file=file, field=f"videoIDs[{vid!r}]")
            try:
                lab = np.asarray(out["videoLabels"][vid], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise DataFormatError(file, f"videoLabels[{vid!r}]", "a list of numbers",
                                      f"{type(out['videoLabels'][vid]).__name__} ({exc})") from exc
            if lab.shape[0] != len(uids):
                raise DataFormatError(file, f"videoLabels[{vid!r}]",
                                      f"one label per utterance ({len(uids)} in videoIDs)", f"{lab.shape[0]}")
            if not np.isfinite(lab).all():
                raise DataFormatError(file, f"videoLabels[{vid!r}]", "finite values (no NaN or inf)",
                                      f"{int((~np.isfinite(lab)).sum())} non-finite")
            labels[vid], ids[vid] = lab, uids
    out["labels"], out["uids"] = labels, ids
    seen: dict[str, str] = {}
    for fold in TUPLE_FIELDS[4:]:
        for vid in out[fold]:
            if vid in seen:
                raise DataFormatError(file, fold, "disjoint folds", f"video {vid!r} also in {seen[vid]}")
            seen[vid] = fold
    return out


def load_utterance_features(root: str | Path, dataset: str = "mosi",
                            feature_names: dict[str, str] | None = None, *,
                            label_file: str | Path | None = None,
                            average_frames: bool = False, standardize: bool = False) -> MultimodalDataset:
    """Load the utterance-feature format into a position-layout :class:`MultimodalDataset`.

    Args:
        root: folder holding the label pickle and ``features/``.
        dataset: ``"mosi"`` or ``"mosei"`` (picks the label pickle's name).
        feature_names: ``{"text": ..., "audio": ..., "vision": ...}`` feature folder per modality;
            missing keys take :data:`DEFAULT_FEATURES` (FEMF's).
        label_file: override the label pickle path.
        average_frames: a ``(T, D)`` feature file is averaged over ``T`` (what MoMKE/GCNet do);
            by default anything but a ``(D,)`` vector (or ``(1, D)``) is refused.
        standardize: z-score every feature with the train split's statistics, computed in float64
            (:func:`mser_lib.data.validate.standardize_splits`). ``load_dataset("mosi-utt", ...)``
            turns it on unless told otherwise: raw features from different extractors differ in
            scale by orders of magnitude (bc-LSTM audio carries pitch in Hz).

    Returns:
        splits (train = trainVids, valid = valVids, test = testVids) with features (N, L, d_m) float32,
        masks (N, L) bool shared by all modalities, labels (N, L) float32, label_mask (N, L), ids (N,)
        the video ids; L is the split's largest number of utterances per video.

    Raises:
        DataFormatError: missing ``.npy`` file, wrong ndim, NaN/inf, labels out of [-3, 3], malformed
            label pickle; the message names the file and the field.
    """
    if dataset not in LABEL_PICKLES:
        raise ValueError(f"dataset must be one of {sorted(LABEL_PICKLES)}, got {dataset!r}")
    root = Path(root)
    names = _feature_folders(feature_names, label_file, average_frames, standardize)
    label_file = Path(label_file) if label_file is not None else root / LABEL_PICKLES[dataset]
    meta = _read_folds(label_file)
    all_uids = [u for fold in TUPLE_FIELDS[4:] for vid in meta[fold] for u in meta["uids"][vid]]
    vectors, dims, read = _read_features(root, names, all_uids, label_file, average_frames)

    splits = {}
    for s, fold in zip(("train", "valid", "test"), TUPLE_FIELDS[4:]):
        vids = meta[fold]
        splits[s] = assemble_positions(
            vids, [meta["uids"][v] for v in vids], [meta["labels"][v] for v in vids],
            {m: (lambda uids, m=m: [vectors[m][u] for u in uids]) for m in MODALITIES}, dims)
    info = DatasetInfo(
        name=f"{dataset}-utt", layout="position", task="regression", metric_family="mosi", dims=dims,
        label_range=(-3.0, 3.0),
        source={"format": "utterance", "root": str(root), "label_file": str(label_file),
                "features": names, "split": "label pickle trainVids/valVids/testVids", "standardize": False,
                "fingerprint": data_fingerprint(read, {"format": "utterance", "dataset": dataset, "features": names,
                                                       "average_frames": average_frames,
                                                       "standardize": standardize}, root)},
    )
    warn_all_zero_modalities(splits, root / "features")
    ds = MultimodalDataset(info=info, **splits)
    return standardize_splits(ds, root / "features") if standardize else ds


def _feature_folders(feature_names, label_file, average_frames, standardize) -> dict[str, str]:
    """Check ``label_file``, ``average_frames``, ``standardize`` and ``feature_names`` (ValueError, in that
    order) and return ``{modality: feature folder name}``: :data:`DEFAULT_FEATURES` updated by ``feature_names``."""
    if label_file is not None and not isinstance(label_file, (str, Path)):
        raise ValueError(f"label_file must be a path, got {label_file!r}")
    if not isinstance(average_frames, bool):
        raise ValueError(f"average_frames must be true or false, got {average_frames!r}")
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be true or false, got {standardize!r}")
    if feature_names is not None and not (isinstance(feature_names, dict)
                                          and all(isinstance(v, str) and v for v in feature_names.values())):
        raise ValueError(f"feature_names must map modalities to folder names, e.g. {{vision: my_faces}}, "
                         f"got {feature_names!r}")
    names = dict(DEFAULT_FEATURES)
    if feature_names:
        unknown = set(feature_names) - set(MODALITIES)
        if unknown:
            raise ValueError(f"feature_names keys must be among {MODALITIES}, got {sorted(unknown)}")
        names.update(feature_names)
    return names


def _read_folds(label_file: Path) -> dict:
    """The label pickle :func:`read_label_pickle` reads, checked: labels in [-3, 3], every fold (trainVids,
    valVids, testVids) with at least one video, no utterance id in videos of two folds (DataFormatError)."""
    meta = read_label_pickle(label_file)
    for vid, lab in meta["labels"].items():
        check_label_range(lab, -3.0, 3.0, label_file, f"videoLabels[{vid!r}]")

    for fold in TUPLE_FIELDS[4:]:
        if not meta[fold]:
            raise DataFormatError(label_file, fold, "at least one video (an empty split cannot be trained, "
                                  "selected on or scored)", "none")
    fold_of: dict[str, str] = {}
    for fold in TUPLE_FIELDS[4:]:             # an utterance listed in videos of two folds leaks its label
        for vid in meta[fold]:
            for u in meta["uids"][vid]:
                if fold_of.setdefault(u, fold) != fold:
                    raise DataFormatError(label_file, f"videoIDs[{vid!r}]", "utterance ids not listed in a video of "
                                          "another fold", f"{u!r} also in a video of {fold_of[u]}")
    return meta


def _read_features(root: Path, names: dict[str, str], all_uids: list[str], label_file: Path,
                   average_frames: bool) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int], list[Path]]:
    """Read ``root/features/<names[m]>/<uid>.npy`` for every modality m and utterance id.

    Returns:
        ``{m: {uid: (d,) vector}}``, ``{m: width}`` (the longest vector; shorter ones are logged and
        zero-padded later), and the files read (``label_file`` first) for the fingerprint.
    """
    vectors: dict[str, dict[str, np.ndarray]] = {}
    dims: dict[str, int] = {}
    read = [label_file]
    for m in MODALITIES:
        folder = root / "features" / names[m]
        if not folder.is_dir():
            raise DataFormatError(folder, f"{m} features", f"a folder of <utterance>.npy files ({names[m]})",
                                  "no such folder")
        paths = {u: inside(folder, f"{u}.npy", file=label_file, field="videoIDs") for u in all_uids}
        vecs = {u: _read_vector(path, m, average_frames) for u, path in paths.items()}
        read.extend(paths.values())
        width = max(v.shape[0] for v in vecs.values())
        short = sum(v.shape[0] < width for v in vecs.values())
        if short:
            log.warning("%s: %d of %d %s vectors shorter than %d, zero-padded at the end",
                        folder, short, len(vecs), m, width)
        vectors[m], dims[m] = vecs, width
    return vectors, dims, read


def _read_vector(path: Path, modality: str, average_frames: bool) -> np.ndarray:
    field = f"{modality} feature"
    if not path.is_file():
        raise DataFormatError(path, field, "a .npy file for this utterance", "no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataFormatError(path, field, "a numeric .npy array", f"unreadable ({exc})") from exc
    if not isinstance(arr, np.ndarray):              # np.load opens an .npz archive whatever the name
        kind = "an .npz archive (np.savez)" if isinstance(arr, np.lib.npyio.NpzFile) else type(arr).__name__
        names = list(getattr(arr, "files", []))[:5]
        if hasattr(arr, "close"):
            arr.close()
        raise DataFormatError(path, field, "a .npy array (np.save)", f"{kind} under a .npy name"
                              + (f", holding {names}" if names else ""))
    check_real_dtype(arr, path, field)
    raw_shape = arr.shape
    arr = arr.squeeze()
    if arr.ndim == 2 and average_frames:
        arr = arr.mean(axis=0)
    if arr.ndim != 1 or arr.shape[0] == 0:
        hint = "" if average_frames else " (average_frames=True averages (T, D) over T as MoMKE does)"
        raise DataFormatError(path, field, f"a 1-D vector (D,){hint}", f"shape {raw_shape}")
    raw = arr
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        over = ~np.isfinite(arr) & np.isfinite(raw)
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise DataFormatError(path, field, f"values within float32 range (|x| <= {np.finfo(np.float32).max:.4g})",
                                  f"{int(over.sum())} values that overflow, first at index {i} ({raw[i]})")
        raise DataFormatError(path, field, "finite values (no NaN or inf)",
                              f"{int((~np.isfinite(arr)).sum())} non-finite values")
    return arr


def assemble_positions(vids: list[str], uids: list[list[str]], labels: list[np.ndarray],
                       getters: dict, dims: dict[str, int]) -> SplitData:
    """Pad per-video utterance lists into a position-layout :class:`SplitData`.

    Args:
        vids: (N,) video ids, one sample each.
        uids: per video, its utterance ids in position order.
        labels: per video, (n_v,) continuous labels.
        getters: modality -> function(list of utterance ids) -> list of 1-D vectors (any width <= d_m).
        dims: modality -> padded width d_m.

    Returns:
        SplitData with features (N, L, d_m), masks (N, L) equal to label_mask, labels (N, L).
    """
    n = len(vids)
    length = max((len(u) for u in uids), default=1)
    feats = {m: np.zeros((n, length, dims[m]), dtype=np.float32) for m in MODALITIES}
    lab = np.zeros((n, length), dtype=np.float32)
    mask = np.zeros((n, length), dtype=bool)
    for i, (u, y) in enumerate(zip(uids, labels)):
        k = len(u)
        lab[i, :k] = y
        mask[i, :k] = True
        for m in MODALITIES:
            for j, v in enumerate(getters[m](u)):
                feats[m][i, j, : v.shape[0]] = v
    return SplitData(text=feats["text"], audio=feats["audio"], vision=feats["vision"],
                     text_mask=mask.copy(), audio_mask=mask.copy(), vision_mask=mask.copy(),
                     labels=lab, label_mask=mask, ids=np.array(vids, dtype=str))
