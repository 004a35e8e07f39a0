"""Input checks that fail with a message naming the file, the field and what was expected."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np


class DataFormatError(ValueError):
    """A data file does not hold what its format promises.

    The message always names the file, the field, what was expected and what was found.
    """

    def __init__(self, file: str | Path, field: str, expected: str, found: str) -> None:
        self.file, self.field, self.expected, self.found = str(file), field, expected, found
        super().__init__(f"{file}: field {field!r}: expected {expected}, found {found}")

    def __reduce__(self):
        # rebuilt from the same four arguments, so the error crosses a process boundary (a grid worker) as itself
        return type(self), (self.file, self.field, self.expected, self.found)


def inside(folder: str | Path, *parts, file: str | Path | None = None, field: str = "path") -> Path:
    """``folder/parts...``, refused unless every part stays inside the folder before it.

    The check is on the names (no absolute part, no NUL, no part that climbs out with ``..`` after
    normalisation), so symlinks a user placed inside the folder keep working.

    Raises:
        DataFormatError: naming ``file`` (default: the folder) and ``field``.
    """
    names = [str(p) for p in parts]
    rels = [os.path.normpath(n) for n in names]
    if not names or any(os.path.isabs(n) or "\0" in n or r == ".." or r.startswith(".." + os.sep)
                        for n, r in zip(names, rels)):
        raise DataFormatError(file if file is not None else folder, field, f"a name that stays inside {folder}",
                              repr("/".join(names))[:200])
    return Path(folder).joinpath(*names)


def data_fingerprint(files, settings: dict, root: str | Path | None = None) -> str:
    """What tells one dataset from another in a run's identity: 16 hex characters of a SHA-256 over
    the *content* of every file a loader read (with its name relative to ``root``, so the same files in
    another folder give the same fingerprint) and the loader ``settings`` that shape the arrays
    (split rule, standardisation, generator knobs; no paths).

    :func:`mser_lib.experiments.resolve_run` puts it into every run (``run["data_fingerprint"]``), so the
    config hash, the run cache and ``runs.jsonl`` never mix runs on different data.
    """
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted({Path(f) for f in files}):
        name = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else path.name
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        h.update(f"\0{name}\0{digest.hexdigest()}".encode())
    return h.hexdigest()[:16]


def require_keys(mapping: dict, keys, file, where: str = "") -> None:
    """Raise :class:`DataFormatError` for the first key of ``keys`` missing from ``mapping``."""
    if not isinstance(mapping, dict):
        raise DataFormatError(file, where or "<top level>", "a dict", type(mapping).__name__)
    for k in keys:
        if k not in mapping:
            present = ", ".join(sorted(map(str, mapping)))[:200]
            raise DataFormatError(file, f"{where}{k}", "this key to be present",
                                  f"it missing (keys present: {present})")


def check_array(value, file, field: str, *, ndim: int | None = None, shape: tuple | None = None,
                numeric: bool = True, finite: bool = True, dtype=np.float32) -> np.ndarray:
    """Convert ``value`` to an array and check it.

    Args:
        value: the object read from the file.
        file, field: where it came from, for the message.
        ndim: required number of dimensions.
        shape: required shape; ``None`` entries match any size.
        numeric: the values must be numbers (then cast to ``dtype``).
        finite: NaN and inf are refused.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise DataFormatError(file, field, "an array", f"{type(value).__name__} ({exc})") from exc
    if ndim is not None and arr.ndim != ndim:
        raise DataFormatError(file, field, f"{ndim} dimensions" + (f" {_fmt(shape)}" if shape else ""),
                              f"shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            raise DataFormatError(file, field, f"shape {_fmt(shape)}", f"shape {arr.shape}")
    if numeric:
        check_real_dtype(arr, file, field)
        raw = arr
        arr = arr.astype(dtype, copy=False)
        if np.issubdtype(arr.dtype, np.floating) and not all_rows(arr, lambda part: np.isfinite(part).all()):
            nonfinite = ~np.isfinite(arr)
            over = nonfinite & np.isfinite(raw)   # finite as stored, beyond the range of ``dtype`` once cast
            if over.any():
                bad = tuple(int(i) for i in np.argwhere(over)[0])
                raise DataFormatError(file, field, f"values within {np.dtype(dtype).name} range "
                                      f"(|x| <= {np.finfo(dtype).max:.4g})",
                                      f"{int(over.sum())} values that overflow, first at index {bad} ({raw[bad]})")
            if finite:
                bad = tuple(int(i) for i in np.argwhere(nonfinite)[0])
                raise DataFormatError(file, field, "finite values (no NaN or inf)",
                                      f"{int(nonfinite.sum())} non-finite values, first at index {bad} ({arr[bad]})")
    return arr


#: the memory a check over an array may take beside it: a whole-array temporary of a (100 000, 50, 768) text
#: array (15 GB as float32) would be another quarter (bool) or whole (float) copy of it
CHUNK_BYTES = 1 << 24


def row_chunks(arr: np.ndarray, chunk_bytes: int | None = None):
    """Slices of ``arr`` along its first axis of about ``chunk_bytes`` (default :data:`CHUNK_BYTES`) each, at least
    one row, in order."""
    rows = max(1, (chunk_bytes or CHUNK_BYTES) // max(1, arr[:1].nbytes))
    for start in range(0, len(arr), rows):
        yield arr[start:start + rows]


def all_rows(arr: np.ndarray, test) -> bool:
    """``test(chunk)`` is true for every chunk of :func:`row_chunks` (a 0-d array is one chunk)."""
    if arr.ndim == 0:
        return bool(test(arr))
    return all(bool(test(part)) for part in row_chunks(arr))


def check_real_dtype(arr: np.ndarray, file, field: str) -> None:
    """Refuse anything but real numbers (bool, integers, floats): strings, objects, and complex values, whose
    imaginary part a cast to float would drop."""
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataFormatError(file, field, "real numbers", f"complex values (dtype {arr.dtype}); the imaginary "
                              "part would be dropped")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataFormatError(file, field, "numbers", f"dtype {arr.dtype}")


def check_disjoint_splits(splits: dict, file, what: str = "id") -> None:
    """No sample may be in two splits: refused when a sample id appears in two of ``splits`` (name ->
    :class:`~mser_lib.data.batch.SplitData`), or when a sample of one split has exactly the features of a sample
    of another (a test split copied from train under new ids). The error names the file, both splits and the
    first such sample."""
    import hashlib

    seen_id: dict[str, str] = {}
    seen_content: dict[bytes, tuple[str, str]] = {}
    for name, sp in splits.items():
        for i, sid in enumerate(np.asarray(sp.ids).astype(str)):
            if sid in seen_id and seen_id[sid] != name:
                raise DataFormatError(file, f"{name}/{what}", "ids not used by another split (a sample in two splits "
                                      "leaks its label into the scores)", f"{sid!r} also in {seen_id[sid]}")
            seen_id.setdefault(sid, name)
            h = hashlib.blake2b(digest_size=16)
            for m in ("text", "audio", "vision"):
                x = sp.features(m)[i][sp.mask(m)[i]]
                h.update(np.ascontiguousarray(x).tobytes())
                h.update(b"|")
            key = h.digest()
            if key in seen_content and seen_content[key][0] != name:
                other, oid = seen_content[key]
                raise DataFormatError(file, f"{name}/{what}", "samples that differ from every sample of the other "
                                      "splits", f"{sid!r} has exactly the features of {oid!r} in {other}")
            seen_content.setdefault(key, (name, sid))


class AllZeroModalityWarning(UserWarning):
    """Every feature value of a modality is 0 in a split: the data loads, but a model gets no signal from
    that modality there (a failed feature extraction, a wrong key, a file of placeholders)."""


def warn_all_zero_modalities(splits: dict, file, modalities=("text", "audio", "vision")) -> list[tuple[str, str]]:
    """One :class:`AllZeroModalityWarning` naming ``file`` and every (split, modality) of ``splits`` (name ->
    :class:`~mser_lib.data.batch.SplitData`) whose features are all 0; nothing when there is none. The data
    is not changed or refused. Returns the ``(split, modality)`` pairs found."""
    zero = [(s, m) for s, sp in splits.items() for m in modalities if not np.any(sp.features(m))]
    if zero:
        parts = "; ".join(f"modality {m!r} in split(s) " + ", ".join(repr(s) for s, mm in zero if mm == m)
                          for m in dict.fromkeys(m for _, m in zero))
        warnings.warn(f"{file}: every feature value is 0 for {parts}: loaded as it is, but a model gets no signal "
                      "from an all-zero modality (a failed feature extraction, or a wrong key?)",
                      AllZeroModalityWarning, stacklevel=3)
    return zero


def check_label_range(labels: np.ndarray, low: float, high: float, file, field: str,
                      mask: np.ndarray | None = None) -> None:
    """Refuse labels outside [low, high] (only where ``mask`` is True, if given)."""
    vals = labels if mask is None else labels[mask]
    if vals.size and (vals.min() < low or vals.max() > high):
        i = int(np.argmax((vals < low) | (vals > high)))
        raise DataFormatError(file, field, f"labels in [{low}, {high}]",
                              f"{vals.ravel()[i]} (min {vals.min()}, max {vals.max()})")


def _fmt(shape) -> str:
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"


#: Feature columns whose root mean square over the train split falls outside this range get a warning.
SCALE_RANGE = (1e-3, 1e2)


def scale_warnings(ds, scale_range: tuple[float, float] = SCALE_RANGE) -> list[str]:
    """One sentence per modality with feature columns whose scale is extreme: the root mean square over
    the train split's real positions outside ``scale_range`` (constant-zero columns are not counted).
    Such columns dominate (or vanish in) a model's first layer. Empty for standardised data."""
    from .batch import MODALITIES

    low, high = scale_range
    out = []
    for m in MODALITIES:
        x = ds.train.features(m)[ds.train.mask(m)].astype(np.float64)
        if x.size == 0:
            continue
        rms = np.sqrt((x ** 2).mean(0))
        bad = np.flatnonzero(((rms > high) | (rms < low)) & (rms > 0))
        if bad.size:
            worst = int(bad[np.argmax(np.abs(np.log10(rms[bad])))])
            out.append(f"{ds.info.name}: {bad.size} of {rms.size} {m} feature columns have an extreme scale (root mean "
                       f"square outside [{low:g}, {high:g}] on the train split; column {worst}: {rms[worst]:.3g})")
    return out


def feature_statistics(split, modality: str, min_std: float = 1e-8) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-feature mean and standard deviation ``(d_m,)`` of ``modality`` over the real positions of ``split``,
    computed in float64; a standard deviation at or below ``min_std`` is replaced by 1 (the column is then
    only centred). ``None`` when the split has no real position. The one definition of the statistics that
    :func:`standardize_splits` and FEMF's reconstruction targets use."""
    x = split.features(modality)[split.mask(modality)].astype(np.float64)      # (N_real, d_m)
    if x.shape[0] == 0:
        return None
    sd = x.std(0)
    return x.mean(0), np.where(sd > min_std, sd, 1.0)


def standardize_splits(ds, file, *, min_std: float = 1e-8):
    """z-score every feature column with the mean and standard deviation of the train split's real
    positions, computed in float64, applied to the real positions of every split (padding stays 0).

    Args:
        ds: a :class:`~mser_lib.data.batch.MultimodalDataset` (features ``(N, L, d_m)`` float32).
        file: the file or folder to name in an error.
        min_std: columns with a smaller train standard deviation are only centred.

    Returns:
        A new dataset whose ``info.source["standardize"]`` is True.

    Raises:
        DataFormatError: a modality with no real train position, or standardised values outside the
            float32 range (a column whose train statistics are tiny next to its other values).
    """
    from dataclasses import replace

    from .batch import MODALITIES

    stats = {}
    for m in MODALITIES:
        stats[m] = feature_statistics(ds.train, m, min_std)
        if stats[m] is None:
            raise DataFormatError(file, f"{m} features", "real positions in the train split to standardise "
                                  "with", "none")

    def scaled(split):
        arrays = {}
        for m in MODALITIES:
            x, mask = split.features(m), split.mask(m)
            mu, sd = stats[m]
            z = np.where(mask[..., None], (x.astype(np.float64) - mu) / sd, 0.0)
            if np.abs(z).max(initial=0.0) > np.finfo(np.float32).max:
                c = int(np.argwhere(np.abs(z) > np.finfo(np.float32).max)[0][-1])
                raise DataFormatError(file, f"{m} feature {c}", "standardised values within float32 range",
                                      "an overflow (inf)")
            arrays[m] = z.astype(np.float32)
        return replace(split, **arrays)

    info = replace(ds.info, source={**(ds.info.source or {}), "standardize": True})
    return replace(ds, info=info, train=scaled(ds.train), valid=scaled(ds.valid), test=scaled(ds.test))
