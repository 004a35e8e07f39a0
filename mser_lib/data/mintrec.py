"""MIntRec (multimodal intent recognition; Zhang et al., ACM MM 2022) in the feature release of thuiar/MIntRec.

Atsuko's Table 3 reports it: 2224 utterances of the TV series *Superstore*, 20 intent classes, text, video
and audio. The folder a user points at is the release's ``MIntRec`` folder, as thuiar/MIntRec's loader reads
it (``data/base.py``, ``data/video_pre.py``, ``data/audio_pre.py``)::

    MIntRec/
      train.tsv  dev.tsv  test.tsv       tab-separated, header ``season episode clip text label``
      video_data/video_feats.pkl         dict "S05_E16_329" -> list of (1, 256) arrays, one per keyframe with
                                         a detected speaker (Faster R-CNN region features); or a (T, 256) array
      audio_data/audio_feats.pkl         dict "S05_E16_329" -> (T, 768) array (wav2vec 2.0 last hidden state)
      text_data/text_feats.pkl           optional, not in the release: dict key -> (T, d) text features

The utterance key is ``season_episode_clip`` (``base.py``: ``'_'.join([line[0], line[1], line[2]])``). Labels
are the 20 intents of :data:`INTENTS`, indexed in the release code's order (``data/__init__.py``; note the
spelling "Apologise"); an unknown label is refused.

**Text.** The release has raw text only: MIntRec's models fine-tune BERT on it. mser does not fine-tune BERT
(Atsuko and EMOE here read given text features), and nothing downloads weights at run time, so the text
modality is either

* ``text_features="hashed"`` (the default): each word of the lower-cased utterance becomes a signed one-hot
  vector of width ``text_dim`` at a bucket chosen by a fixed hash of the word (the hashing trick; no
  vocabulary, no training). A bag-of-words stand-in, far weaker than BERT: numbers measured on it are not
  comparable with the paper's rows, and the table says so (``info.source["text_features"]``); or
* ``text_features="file"``: ``text_data/text_feats.pkl``, features the user extracted (e.g. BERT's last
  layer), a dict from the utterance key to a ``(T, d)`` array.

Sequences longer than MIntRec's maxima (:data:`MAX_LENGTHS`: text 30, video 230, audio 480) are cut at the
maximum (the release code's truncation line indexes instead of slicing and never runs on the release); the
rest is zero-padded at the end with masks marking the real steps. Pickles are read with the restricted
unpickler (:func:`~mser_lib.data.safe_pickle.safe_load`): an audio pickle that holds torch tensors (how the
release's extraction script stores them) is refused with the conversion to do once (docs/data-formats.md).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from pathlib import Path

import numpy as np

from .batch import DatasetInfo, MultimodalDataset, SplitData
from .safe_pickle import UnsafePickleError, safe_load
from .validate import DataFormatError, data_fingerprint, standardize_splits, warn_all_zero_modalities

log = logging.getLogger("mser_lib.data")

#: The 20 intents in the order of thuiar/MIntRec's ``data/__init__.py`` (index = class id).
INTENTS: tuple[str, ...] = (
    "Complain", "Praise", "Apologise", "Thank", "Criticize", "Agree", "Taunt", "Flaunt", "Joke", "Oppose",
    "Comfort", "Care", "Inform", "Advise", "Arrange", "Introduce", "Leave", "Prevent", "Greet", "Ask for help")
#: MIntRec's maximum sequence lengths (``data/__init__.py``: text 30 tokens, video 230 frames, audio 480 frames).
MAX_LENGTHS: dict[str, int] = {"text": 30, "vision": 230, "audio": 480}
SPLIT_FILES: dict[str, str] = {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"}
HEADER: tuple[str, ...] = ("season", "episode", "clip", "text", "label")
FEATURE_FILES: dict[str, str] = {"vision": "video_data/video_feats.pkl", "audio": "audio_data/audio_feats.pkl",
                                 "text": "text_data/text_feats.pkl"}
_WORD = re.compile(r"[a-z0-9']+")


def read_split_file(path: Path) -> list[tuple[str, str, int]]:
    """The rows of one split file as ``(key, text, class id)``; refuses a wrong header, a short row, an empty
    key part, an unknown label or a key given twice, naming the file, the line and the field."""
    if not path.is_file():
        raise DataFormatError(path, "file", f"the split file {path.name} of the MIntRec release", "no such file")
    rows, seen = [], {}
    with open(path, encoding="utf-8", newline="") as fh:
        for i, line in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if i == 1:
                if tuple(c.strip().lower() for c in line) != HEADER:
                    raise DataFormatError(path, "header (line 1)", "the columns " + " / ".join(HEADER),
                                          repr(line)[:200])
                continue
            if not line or all(not c.strip() for c in line):
                continue
            if len(line) != len(HEADER):
                raise DataFormatError(path, f"line {i}", f"{len(HEADER)} tab-separated columns",
                                      f"{len(line)}: {repr(line)[:200]}")
            season, episode, clip, text, label = (c.strip() for c in line)
            if not (season and episode and clip):
                raise DataFormatError(path, f"line {i}: season/episode/clip", "three non-empty key parts",
                                      repr(line[:3]))
            if label not in INTENTS:
                raise DataFormatError(path, f"line {i}: label", "one of the 20 MIntRec intents ("
                                      + ", ".join(INTENTS) + ")", repr(label)[:100])
            key = f"{season}_{episode}_{clip}"
            if key in seen:
                raise DataFormatError(path, f"line {i}: season/episode/clip", "each utterance once",
                                      f"{key!r} also on line {seen[key]}")
            seen[key] = i
            rows.append((key, text, INTENTS.index(label)))
    if not rows:
        raise DataFormatError(path, "rows", "at least one utterance after the header", "none")
    return rows


def hashed_words(text: str, dim: int) -> np.ndarray:
    """``(T, dim)`` float32: one signed one-hot row per word of ``text`` (lower-cased ``[a-z0-9']+`` runs), at
    the bucket and with the sign a fixed hash (BLAKE2b) of the word gives; ``(0, dim)`` for no word."""
    words = _WORD.findall(text.lower())
    out = np.zeros((len(words), dim), dtype=np.float32)
    for t, w in enumerate(words):
        h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
        out[t, (h >> 1) % dim] = 1.0 if h & 1 else -1.0
    return out


def _read_pickle(path: Path, modality: str) -> dict:
    if not path.is_file():
        raise DataFormatError(path, "file", f"the {modality} feature pickle of the MIntRec release", "no such file")
    try:
        obj = safe_load(path)
    except UnsafePickleError as exc:
        if exc.global_name.startswith("torch"):
            raise DataFormatError(path, "values", "numpy arrays (mser reads pickles with a restricted unpickler)",
                                  f"torch tensors ({exc.global_name}); convert the file once as "
                                  "docs/data-formats.md (MIntRec) shows") from exc
        raise
    if not isinstance(obj, dict):
        raise DataFormatError(path, "<top level>", "a dict utterance key -> features", type(obj).__name__)
    return obj


def _sequence(value, path: Path, key: str, modality: str) -> np.ndarray:
    """One utterance's features as a ``(T, d)`` float32 array (a list of ``(1, d)`` keyframe arrays is stacked)."""
    try:
        if isinstance(value, (list, tuple)):
            arr = (np.concatenate([np.asarray(v, dtype=np.float32).reshape(1, -1) for v in value])
                   if value else np.zeros((0, 0), np.float32))
        else:
            arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(path, f"[{key!r}]", f"numeric {modality} features", f"{type(value).__name__} "
                              f"({exc})") from exc
    if arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 2:
        raise DataFormatError(path, f"[{key!r}]", f"a (T, d) {modality} sequence", f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataFormatError(path, f"[{key!r}]", "finite values (no NaN or inf)",
                              f"{int((~np.isfinite(arr)).sum())} non-finite")
    return arr


def load_mintrec(data_dir: str | Path, text_features: str = "hashed", text_dim: int = 256,
                 max_lengths: dict[str, int] | None = None, standardize: bool = False) -> MultimodalDataset:
    """Load the MIntRec release into a sequence-layout classification :class:`MultimodalDataset`.

    Args:
        data_dir: the release's ``MIntRec`` folder (see the module docstring).
        text_features: ``"hashed"`` (hashed word indicators from the raw text, the default) or ``"file"``
            (``text_data/text_feats.pkl``).
        text_dim: width of the hashed word vectors.
        max_lengths: ``{"text": .., "audio": .., "vision": ..}`` overriding :data:`MAX_LENGTHS`.
        standardize: z-score every feature with the train split's statistics (off: the release's features
            are used as MIntRec's code uses them).

    Returns:
        train (``train.tsv``), valid (``dev.tsv``), test (``test.tsv``) with text ``(N, L_t, d_t)``, audio
        ``(N, L_a, 768)``, vision ``(N, L_v, 256)`` float32, masks ``(N, L_m)`` bool, labels ``(N,)`` int64 class
        ids of :data:`INTENTS`, ids ``(N,)`` the utterance keys.

    Raises:
        DataFormatError: a missing file, a wrong header or row, an unknown label, a key in two splits, a key
            missing from a feature pickle, a non-numeric or non-finite feature, widths that differ.
    """
    root = Path(data_dir)
    if text_features not in ("hashed", "file"):
        raise ValueError(f"text_features must be 'hashed' or 'file', got {text_features!r}")
    if isinstance(text_dim, bool) or not isinstance(text_dim, int) or text_dim < 2:
        raise ValueError(f"text_dim must be an integer >= 2, got {text_dim!r}")
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be true or false, got {standardize!r}")
    limits = dict(MAX_LENGTHS)
    for m, v in (max_lengths or {}).items():
        if m not in limits or isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"max_lengths maps text/audio/vision to integers >= 1, got {max_lengths!r}")
        limits[m] = v
    if not root.is_dir():
        raise DataFormatError(root, "data_dir", "the MIntRec folder (train.tsv, dev.tsv, test.tsv, video_data/, "
                              "audio_data/)", "not a folder")
    rows = {s: read_split_file(root / f) for s, f in SPLIT_FILES.items()}
    owner: dict[str, str] = {}
    for s, rr in rows.items():
        for key, _, _ in rr:
            if key in owner:
                raise DataFormatError(root / SPLIT_FILES[s], "season/episode/clip", "disjoint splits",
                                      f"{key!r} also in {SPLIT_FILES[owner[key]]}")
            owner[key] = s
    read = [root / f for f in SPLIT_FILES.values()]
    modalities = ["vision", "audio"] + (["text"] if text_features == "file" else [])
    feats: dict[str, dict[str, np.ndarray]] = {}
    for m in modalities:
        path = root / FEATURE_FILES[m]
        table = _read_pickle(path, m)
        feats[m] = {}
        width = None
        for s, rr in rows.items():
            for key, _, _ in rr:
                if key not in table:
                    raise DataFormatError(path, f"[{key!r}]", f"features for every utterance of the splits "
                                          f"({key!r} is in {SPLIT_FILES[s]})", "no such key")
                arr = _sequence(table[key], path, key, m)[: limits[m]]
                if arr.shape[0] and width is not None and arr.shape[1] != width:
                    raise DataFormatError(path, f"[{key!r}]", f"feature width {width} (as the keys before it)",
                                          f"width {arr.shape[1]}")
                width = width if not arr.shape[0] else arr.shape[1]
                feats[m][key] = arr
        if width is None:
            raise DataFormatError(path, "values", f"at least one utterance with {m} frames", "none")
        for key, arr in feats[m].items():
            if not arr.shape[0]:
                feats[m][key] = np.zeros((0, width), np.float32)
        del table
        read.append(path)
    if text_features == "hashed":
        feats["text"] = {key: hashed_words(text, text_dim)[: limits["text"]]
                         for rr in rows.values() for key, text, _ in rr}
    dims = {m: int(next(iter(feats[m].values())).shape[1]) for m in ("text", "audio", "vision")}
    splits = {s: _assemble(rr, feats, dims) for s, rr in rows.items()}
    settings = {"format": "mintrec", "text_features": text_features, "text_dim": text_dim, "max_lengths": limits,
                "standardize": standardize}
    info = DatasetInfo(
        name="mintrec", layout="sequence", task="classification", metric_family="classification", dims=dims,
        num_classes=len(INTENTS), label_range=None,
        source={"format": "mintrec", "root": str(root), "classes": list(INTENTS), "split": "train/dev/test.tsv",
                "text_features": ("hashed word indicators from the raw text (not BERT)" if text_features == "hashed"
                                  else FEATURE_FILES["text"]),
                "standardize": False, "fingerprint": data_fingerprint(read, settings, root)})
    warn_all_zero_modalities(splits, root)
    log.info("loaded mintrec from %s: %s", root, {s: len(sp) for s, sp in splits.items()})
    ds = MultimodalDataset(info=info, **splits)
    return standardize_splits(ds, root) if standardize else ds


def _assemble(rows: list[tuple[str, str, int]], feats: dict, dims: dict[str, int]) -> SplitData:
    """Pad one split's sequences at the end; the masks mark the real steps."""
    n = len(rows)
    arrays = {}
    for m in ("text", "audio", "vision"):
        seqs = [feats[m][key] for key, _, _ in rows]
        length = max(1, max(s.shape[0] for s in seqs))
        x = np.zeros((n, length, dims[m]), dtype=np.float32)
        mask = np.zeros((n, length), dtype=bool)
        for i, s in enumerate(seqs):
            x[i, : s.shape[0]], mask[i, : s.shape[0]] = s, True
        arrays[m], arrays[f"{m}_mask"] = x, mask
    return SplitData(**arrays, labels=np.array([c for _, _, c in rows], dtype=np.int64),
                     label_mask=np.ones(n, dtype=bool), ids=np.array([k for k, _, _ in rows]))
