"""Real CMU-MOSI utterance features of bc-LSTM (docs/data-formats.md): ``mosi-bclstm``, position layout.

Files (``data_dir``; provenance and checks in that folder's README, pinned by ``SHA256SUMS``):

* ``transcripts.csv``: 2199 rows ``utterance id (<video>_<n>), transcript, video number, 0/1``.
* ``text_train.csv`` / ``text_test.csv``: col 0 = 0-based row of ``transcripts.csv``, then 100 text
  features; ``text_*0.csv`` (100 text), ``audio_*0.csv`` (73 openSMILE), ``video_*0.csv``
  (100 3D-CNN) hold the same rows in the same order, each followed by a 0/1 label.
* ``CMUMOSI_features_raw_2way.pkl``: latin1 7-tuple whose ``videoLabels`` give the continuous
  labels in [-3, 3], and whose ``trainVids/valVids/testVids`` are the standard folds.
* ``standard_folds.json`` (optional, same folds as the pickle).

Samples: one video = one sample; positions = its utterances ordered by their number ``n``.

Splits. The text-CNN and 3D-CNN features were trained with supervision on the bc-LSTM train split
(62 videos), which holds 24 of the 31 standard-fold test videos. So the default split is the bc-LSTM
one: test = its 31 test videos, and a fixed, seeded ``valid_fraction`` of its 62 train videos becomes
validation. The carve-out depends only on ``split_seed`` (default 0), never on the training seed, so
every training seed sees the same split. ``split="standard"`` uses the standard folds and raises a
:class:`LeakageWarning`.

:func:`download_mosi_bclstm` fetches the same files from the public repositories at pinned commits
(or copies them from a local ``mirror``), checking each against :data:`SHA256SUMS`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .batch import DatasetInfo, MultimodalDataset
from .utterance import assemble_positions, read_label_pickle
from .validate import DataFormatError, check_label_range, data_fingerprint, standardize_splits, warn_all_zero_modalities

log = logging.getLogger("mser_lib.data")

LABEL_PICKLE = "CMUMOSI_features_raw_2way.pkl"
DIMS = {"text": 100, "audio": 73, "vision": 100}
_MOD_FILE = {"text": "text", "audio": "audio", "vision": "video"}

#: Content of the data folder's ``SHA256SUMS``.
SHA256SUMS_TEXT = """\
931ee50f3a77b2eb18786840a880a439f3ae6542bf2dfb5e14ecc9690702af84  CMUMOSI_features_raw_2way.pkl
ddd17eeefd3d951d51d4e2ef8a0d132652d8161e1886f71eb7262b7a14bffff6  audio_test0.csv
5435398a54664e7b00304587dc59ae84a438852be033c2a2fba779588624a2a1  audio_train0.csv
ca4fcdbb91353aa90289da64796713362b040507b8845155c091b45cf2641265  standard_folds.json
f3b735070bf07ceff7a6ef6c8f4c32757e988de484e35bd6d38b2aecef851a59  text_test.csv
a343e22272919d1384c2075dbcdd5fef5aa9f9366b0552a83f7c3147b64b047a  text_test0.csv
73770b6302ad0f7a51f4eddcae6788efde4d0b6802e09f78249d5b538d1c1d67  text_train.csv
cc327045db6cc361a08b4037b97bb24de4ddb5efb381468c4835cc4a60674668  text_train0.csv
e7689e6d70720addd2a6b316419d245a68839c32b014ff426c406063ee777466  transcripts.csv
cab836253d81100f59d533fa2ff65cd53c486be3ec9fd82203c5e25a7a77265f  video_test0.csv
b6efc0413132d627efd06f67f1706830e775e90af9a75696f535c48dbc73f12f  video_train0.csv
"""
SHA256SUMS: dict[str, str] = {
    line.split()[1]: line.split()[0] for line in SHA256SUMS_TEXT.splitlines() if line.strip()
}

_BCLSTM = ("https://raw.githubusercontent.com/declare-lab/multimodal-deep-learning/"
           "111b401d867c14a1dcd930fd2b2ab58a5eca3f70/bc-LSTM/data/")
_MOMKE = ("https://raw.githubusercontent.com/wxxv/MoMKE/"
          "2dceb57f9e6f4bc84c2fc8f4eb7c761ea64c9efc/dataset/CMUMOSI/")
#: Where each file comes from (repository @ pinned commit). ``standard_folds.json`` has no URL: it
#: restates the CMU SDK folds, which the pickle also holds, and the loader falls back to the pickle.
SOURCE_URLS: dict[str, str] = {
    "text_train.csv": _BCLSTM + "text_train.csv",
    "text_test.csv": _BCLSTM + "text_test.csv",
    "transcripts.csv": _BCLSTM + "transcripts.csv",
    "text_train0.csv": _BCLSTM + "text/text_train0.csv",
    "text_test0.csv": _BCLSTM + "text/text_test0.csv",
    "audio_train0.csv": _BCLSTM + "audio/audio_train0.csv",
    "audio_test0.csv": _BCLSTM + "audio/audio_test0.csv",
    "video_train0.csv": _BCLSTM + "video/video_train0.csv",
    "video_test0.csv": _BCLSTM + "video/video_test0.csv",
    LABEL_PICKLE: _MOMKE + LABEL_PICKLE,
}

LEAKAGE_MESSAGE = (
    "mosi-bclstm with split='standard' LEAKS TEST LABELS: the text-CNN and 3D-CNN features were learned "
    "with supervision on the bc-LSTM train split (62 videos), which holds 24 of the 31 standard-fold test "
    "videos. Measured on these files: ridge regression on the text features scores 92.6% neg/non-neg "
    "Acc-2 (corr 0.80) on the standard test fold but 75.7% (corr 0.60) on the bc-LSTM test split; "
    "t+a+v 92.4% versus 76.7%. Scores on this split are not comparable to anything; use the default "
    "split='bclstm'."
)


class LeakageWarning(UserWarning):
    """The requested split lets features trained on test labels into the evaluation."""


class ChecksumError(DataFormatError):
    """A fetched or mirrored file does not match its pinned SHA-256."""


def load_mosi_bclstm(data_dir: str | Path, split: str = "bclstm", valid_fraction: float = 0.1,
                     seed: int | None = None, *, split_seed: int = 0,
                     standardize: bool = False) -> MultimodalDataset:
    """Load ``mosi-bclstm`` as a position-layout :class:`MultimodalDataset`.

    Args:
        data_dir: the folder with the files listed in the module docstring.
        split: ``"bclstm"`` (default; train/valid from the 62 bc-LSTM train videos, test = its 31
            test videos) or ``"standard"`` (CMU SDK folds 52/10/31; warns with :class:`LeakageWarning`).
        valid_fraction: share of the 62 train videos moved to valid (rounded, at least one video);
            bc-LSTM split only.
        seed: the training seed; accepted for the registry's interface and deliberately unused, so
            every training seed shares one split.
        split_seed: seed of the validation carve-out (bc-LSTM split).
        standardize: z-score every feature with the mean/std of the train split's real utterances,
            computed in float64 (:func:`mser_lib.data.validate.standardize_splits`, as every loader does;
            audio col 0 is pitch in Hz, so raw scales differ by orders of magnitude).

    Returns:
        splits with text (N, L, 100), audio (N, L, 73), vision (N, L, 100) float32, masks (N, L)
        bool (all modalities share the utterance axis), labels (N, L) float32 in [-3, 3],
        label_mask (N, L), ids (N,) video ids; L = the split's most utterances per video (<= 63).

    Raises:
        DataFormatError: a file is missing or malformed, rows do not line up across files, or a
            csv 0/1 label disagrees with ``continuous label >= 0``.
    """
    del seed  # the split must not depend on the training seed
    data_dir = Path(data_dir)
    _check_args(split, valid_fraction, standardize, split_seed)

    rows = _read_rows(data_dir)  # uid -> (csv part, features per modality)
    meta, y = _continuous_labels(rows, data_dir)
    by_video, part_of_video = _group_by_video(rows, data_dir)

    bc_train = sorted(v for v, p in part_of_video.items() if p == "train")
    bc_test = sorted(v for v, p in part_of_video.items() if p == "test")
    if split == "bclstm":
        folds, split_note = _bclstm_folds(bc_train, bc_test, valid_fraction, split_seed)
    else:
        folds = _standard_folds(data_dir, meta)
        warnings.warn(LeakageWarning(LEAKAGE_MESSAGE), stacklevel=2)
        split_note = "standard CMU-MOSI folds (LEAKY with these features)"
        absent = [v for f in folds.values() for v in f if v not in by_video]
        if absent:
            raise DataFormatError(data_dir / "transcripts.csv", "utterance id", "rows for every fold video",
                                  f"{len(absent)} videos without rows, e.g. {absent[0]!r}")
    _check_folds_not_empty(folds, split, data_dir)

    splits = {}
    for s in ("train", "valid", "test"):
        vids = folds[s]
        idx = [by_video[v] for v in vids]
        splits[s] = assemble_positions(
            vids, [[rows["uid"][i] for i in ix] for ix in idx], [y[ix] for ix in idx],
            _row_getters(rows["features"], rows["index"]), DIMS)
    info = _dataset_info(data_dir, split, split_seed, valid_fraction, standardize, split_note, folds)
    warn_all_zero_modalities(splits, data_dir)
    ds = MultimodalDataset(info=info, **splits)
    return standardize_splits(ds, data_dir) if standardize else ds


def _check_args(split, valid_fraction, standardize, split_seed) -> None:
    """Refuse a bad ``split``, ``valid_fraction``, ``standardize`` or ``split_seed`` (ValueError), in that order."""
    if split not in ("bclstm", "standard"):
        raise ValueError(f"split must be 'bclstm' or 'standard', got {split!r}")
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) \
            or not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be a number in (0, 1), got {valid_fraction!r}")
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be true or false, got {standardize!r}")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise ValueError(f"split_seed must be an integer >= 0, got {split_seed!r}")


def _continuous_labels(rows: dict, data_dir: Path) -> tuple[dict, np.ndarray]:
    """The label pickle (its ``meta``) and the continuous label of every csv row, (R,) float64 in row order.

    Checks the pickle's labels lie in [-3, 3], that every csv row has one, and that every csv's 0/1
    label equals ``continuous label >= 0`` (DataFormatError naming the file otherwise).
    """
    meta = read_label_pickle(data_dir / LABEL_PICKLE)
    cont = {}
    for vid, uids in meta["uids"].items():
        for u, y in zip(uids, meta["labels"][vid]):
            cont[u] = float(y)
    for vid, lab in meta["labels"].items():
        check_label_range(lab, -3.0, 3.0, data_dir / LABEL_PICKLE, f"videoLabels[{vid!r}]")

    # continuous labels for every csv row, checked against the 0/1 labels of every csv
    missing = [u for u in rows["uid"] if u not in cont]
    if missing:
        raise DataFormatError(data_dir / LABEL_PICKLE, "videoIDs", "every utterance of transcripts.csv",
                              f"{len(missing)} missing, e.g. {missing[0]!r}")
    y = np.array([cont[u] for u in rows["uid"]], dtype=np.float64)
    expected = (y >= 0).astype(np.int64)
    for name, (start, binary) in rows["binary"].items():
        bad = np.flatnonzero(binary != expected[start:start + len(binary)])
        if bad.size:
            b = int(bad[0])
            i = start + b
            raise DataFormatError(data_dir / name, "label (last column)",
                                  "the 0/1 label to equal (continuous label >= 0) from "
                                  f"{LABEL_PICKLE}", f"{bad.size} disagreements, first {rows['uid'][i]!r}: "
                                  f"{binary[b]} vs continuous {y[i]:g}")
    return meta, y


def _group_by_video(rows: dict, data_dir: Path) -> tuple[dict[str, list[int]], dict[str, str]]:
    """``{video: its csv row indices ordered by utterance number}`` and ``{video: "train" or "test"}``.

    Refuses a video with utterances in both the train and the test csv (DataFormatError).
    """
    by_video: dict[str, list[int]] = {}
    part_of_video: dict[str, str] = {}
    for i, (u, part) in enumerate(zip(rows["uid"], rows["part"])):
        vid, n = _split_uid(u, data_dir / "transcripts.csv")
        by_video.setdefault(vid, []).append(i)
        if part_of_video.setdefault(vid, part) != part:
            raise DataFormatError(data_dir / f"text_{part}.csv", "col 0 (transcripts row)",
                                  "all utterances of a video in one of train/test", f"video {vid!r} in both")
    for vid in by_video:
        by_video[vid].sort(key=lambda i: _split_uid(rows["uid"][i], "")[1])
    return by_video, part_of_video


def _bclstm_folds(bc_train: list[str], bc_test: list[str], valid_fraction: float,
                  split_seed: int) -> tuple[dict[str, list[str]], str]:
    """The bc-LSTM split's ``{train, valid, test: sorted video ids}`` and its note: test = ``bc_test``,
    valid = a ``valid_fraction`` of ``bc_train`` drawn by ``np.random.default_rng(split_seed)``."""
    rng = np.random.default_rng(split_seed)
    n_valid = max(1, int(round(valid_fraction * len(bc_train))))
    valid = sorted(bc_train[i] for i in rng.permutation(len(bc_train))[:n_valid])
    folds = {"train": sorted(set(bc_train) - set(valid)), "valid": valid, "test": bc_test}
    split_note = (f"bc-LSTM split: test = its {len(bc_test)} test videos; valid = {n_valid} of its "
                  f"{len(bc_train)} train videos drawn with split_seed={split_seed}")
    return folds, split_note


def _check_folds_not_empty(folds: dict[str, list[str]], split: str, data_dir: Path) -> None:
    """Refuse a fold without videos (DataFormatError naming the file the fold comes from)."""
    for s, vids in folds.items():
        if not vids:
            if split == "bclstm":
                where = (data_dir / f"text_{'test' if s == 'test' else 'train'}.csv", "rows")
            elif (data_dir / "standard_folds.json").is_file():
                where = (data_dir / "standard_folds.json", s)
            else:
                where = (data_dir / LABEL_PICKLE, {"train": "trainVids", "valid": "valVids", "test": "testVids"}[s])
            raise DataFormatError(where[0], where[1], f"at least one video in the {s} split", "none")


def _dataset_info(data_dir: Path, split: str, split_seed: int, valid_fraction: float, standardize: bool,
                  split_note: str, folds: dict[str, list[str]]) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``mosi-bclstm``: its settings, the files read and their fingerprint."""
    settings = {"format": "mosi-bclstm", "split": split, "split_seed": split_seed if split == "bclstm" else None,
                "valid_fraction": valid_fraction, "standardize": standardize}
    read = [data_dir / n for n in ("transcripts.csv", LABEL_PICKLE, "standard_folds.json") if (data_dir / n).is_file()]
    read += [data_dir / f"text_{p}.csv" for p in ("train", "test")]
    read += [data_dir / f"{_MOD_FILE[m]}_{p}0.csv" for m in DIMS for p in ("train", "test")]
    return DatasetInfo(
        name="mosi-bclstm", layout="position", task="regression", metric_family="mosi", dims=dict(DIMS),
        label_range=(-3.0, 3.0),
        source={**settings, "data_dir": str(data_dir), "note": split_note,
                "fingerprint": data_fingerprint(read, settings, data_dir),
                "videos": {s: list(folds[s]) for s in folds}},
    )


def _row_getters(feats: dict[str, np.ndarray], index: dict[str, int]) -> dict:
    return {m: (lambda uids, x=x: [x[index[u]] for u in uids]) for m, x in feats.items()}


def _split_uid(uid: str, file) -> tuple[str, int]:
    vid, _, n = uid.rpartition("_")
    if not vid or not n.isdigit():
        raise DataFormatError(file, "utterance id", "'<video>_<n>' with an integer n", repr(uid))
    return vid, int(n)


def _read_csv(path: Path, ncols: int | None = None) -> np.ndarray:
    if not path.is_file():
        raise DataFormatError(path, "<file>", "this file (see the data folder's README)", "no such file")
    try:
        arr = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(path, "<csv>", "a numeric csv without header", str(exc)[:200]) from exc
    if ncols is not None and arr.shape[1] != ncols:
        raise DataFormatError(path, "columns", f"{ncols} columns", f"{arr.shape[1]}")
    if not np.isfinite(arr).all():
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise DataFormatError(path, f"row {r} col {c}", "finite values (no NaN or inf)", f"{arr[r, c]}")
    return arr


def _read_rows(data_dir: Path) -> dict:
    """Read and cross-check the csv files; returns uids, part, features per modality and 0/1 labels."""
    tpath = data_dir / "transcripts.csv"
    if not tpath.is_file():
        raise DataFormatError(tpath, "<file>", "this file (see the data folder's README)", "no such file")
    try:
        tr = pd.read_csv(tpath, header=None, dtype={0: str, 1: str}, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:   # EmptyDataError is a ValueError
        raise DataFormatError(tpath, "<csv>", "a csv without header: id, transcript, video number, 0/1 label",
                              f"a parse error: {' '.join(str(exc).split())[:200]}") from None
    if tr.shape[1] != 4:
        raise DataFormatError(tpath, "columns", "4 columns (id, transcript, video number, 0/1 label)",
                              f"{tr.shape[1]}")
    lab01 = pd.to_numeric(tr[3], errors="coerce").to_numpy()
    bad01 = ~np.isin(lab01, (0.0, 1.0))
    if bad01.any():
        r = int(np.flatnonzero(bad01)[0])
        raise DataFormatError(tpath, f"row {r} col 3 (0/1 label)", "0 or 1", repr(tr[3].iloc[r])[:60])
    t_uid = tr[0].astype(str).to_numpy()
    if len(set(t_uid)) != len(t_uid):
        raise DataFormatError(tpath, "col 0 (utterance id)", "unique ids", "duplicates")
    uids, parts = [], []
    feats: dict[str, list[np.ndarray]] = {m: [] for m in DIMS}
    bins: dict[str, tuple[int, np.ndarray]] = {}  # file -> (first row in the concatenation, labels)
    for part in ("train", "test"):
        ref = _read_csv(data_dir / f"text_{part}.csv", 1 + DIMS["text"])
        rowidx = ref[:, 0]
        if not np.all(rowidx == np.round(rowidx)) or rowidx.min() < 0 or rowidx.max() >= len(t_uid):
            raise DataFormatError(data_dir / f"text_{part}.csv", "col 0 (transcripts row)",
                                  f"integer rows in [0, {len(t_uid) - 1}]",
                                  f"range [{rowidx.min():g}, {rowidx.max():g}]")
        rowidx = rowidx.astype(np.int64)
        n = len(rowidx)
        for m in DIMS:
            name = f"{_MOD_FILE[m]}_{part}0.csv"
            arr = _read_csv(data_dir / name, DIMS[m] + 1)
            if arr.shape[0] != n:
                raise DataFormatError(data_dir / name, "rows", f"{n} rows (as text_{part}.csv)",
                                      f"{arr.shape[0]}")
            x32 = arr[:, :-1].astype(np.float32)
            if not np.isfinite(x32).all():   # finite in float64, beyond float32's range once cast
                r, c = np.argwhere(~np.isfinite(x32))[0]
                raise DataFormatError(data_dir / name, f"row {r} col {c} ({m} feature {c})",
                                      f"values within float32 range (|x| <= {np.finfo(np.float32).max:.4g})",
                                      f"{arr[r, c]:g}")
            feats[m].append(x32)
            bins[name] = (len(uids), arr[:, -1])
            bin_ok = np.isin(arr[:, -1], (0.0, 1.0))
            if not bin_ok.all():
                raise DataFormatError(data_dir / name, "label (last column)", "0 or 1",
                                      f"{arr[~bin_ok, -1][0]}")
        # the text features of text_<part>.csv and text_<part>0.csv must be the same rows
        if not np.allclose(ref[:, 1:], feats["text"][-1], atol=1e-5):
            raise DataFormatError(data_dir / f"text_{part}0.csv", "text features",
                                  f"the same rows as text_{part}.csv (cols 1..100)", "different values")
        uids.extend(t_uid[rowidx])
        parts.extend([part] * n)
    if len(set(uids)) != len(uids):
        raise DataFormatError(data_dir / "text_train.csv", "col 0 (transcripts row)",
                              "each transcripts row at most once across train and test", "duplicates")
    pos = {u: i for i, u in enumerate(t_uid)}
    binary = {name: (start, v.astype(np.int64)) for name, (start, v) in bins.items()}
    binary["transcripts.csv"] = (0, tr[3].to_numpy()[[pos[u] for u in uids]].astype(np.int64))
    features = {m: np.concatenate(v) for m, v in feats.items()}
    return {"uid": uids, "part": parts, "features": features, "binary": binary,
            "index": {u: i for i, u in enumerate(uids)}}


def _standard_folds(data_dir: Path, meta: dict) -> dict[str, list[str]]:
    path = data_dir / "standard_folds.json"
    if path.is_file():
        try:
            folds = json.loads(path.read_text())
            out = {s: sorted(str(v) for v in folds[s]) for s in ("train", "valid", "test")}
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFormatError(path, "train/valid/test", "lists of video ids", repr(exc)) from exc
        from_pickle = {"train": meta["trainVids"], "valid": meta["valVids"], "test": meta["testVids"]}
        if out != from_pickle:
            log.warning("%s differs from the folds of %s; using the json", path, LABEL_PICKLE)
        return out
    return {"train": meta["trainVids"], "valid": meta["valVids"], "test": meta["testVids"]}


# ---------------------------------------------------------------------------------------------------
# download


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_mosi_bclstm(cache_dir: str | Path, mirror: str | Path | None = None, *,
                         timeout: float = 60.0, retries: int = 2) -> Path:
    """Fetch the ``mosi-bclstm`` files into ``cache_dir``, each verified against :data:`SHA256SUMS`.

    Args:
        cache_dir: destination folder (created). Files already there with the right checksum are kept.
        mirror: a local folder holding the same file names; copied from instead of the network.
        timeout: per-request network timeout in seconds.
        retries: extra network attempts per file.

    Returns:
        ``cache_dir``, ready for :func:`load_mosi_bclstm` (``standard_folds.json`` is not fetched;
        the loader reads the standard folds from the pickle).

    Raises:
        ChecksumError: a fetched/mirrored file does not match; nothing is left in ``cache_dir`` for it.
        DataFormatError: a file is absent from the mirror.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    for name, url in SOURCE_URLS.items():
        dest = cache / name
        want = SHA256SUMS[name]
        if dest.is_file() and sha256_file(dest) == want:
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache)
        os.close(fd)
        tmp = Path(tmp)
        try:
            if mirror is not None:
                src = Path(mirror) / name
                if not src.is_file():
                    raise DataFormatError(src, "<file>", f"{name} in the mirror folder", "no such file")
                shutil.copyfile(src, tmp)
                origin = str(src)
            else:
                _fetch(url, tmp, timeout, retries)
                origin = url
            got = sha256_file(tmp)
            if got != want:
                raise ChecksumError(origin, "sha256", want, got)
            os.replace(tmp, dest)
            log.info("fetched %s from %s", name, origin)
        finally:
            if tmp.exists():
                tmp.unlink()
    return cache


def _fetch(url: str, dest: Path, timeout: float, retries: int) -> None:
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
            return
        except OSError:
            if attempt == retries:
                raise
            time.sleep(2.0 * (attempt + 1))


def default_data_dir() -> Path | None:
    """``../shared/data/mosi-bclstm`` next to the repository, if it exists (else ``None``)."""
    p = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mosi-bclstm"
    return p if p.is_dir() else None
