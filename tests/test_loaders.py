"""Real-data loaders: MMSA pickles, utterance features, mosi-bclstm (docs/data-formats.md).

Fixtures are built in ``tmp_path`` with the exact keys, dtypes and shapes of docs/data-formats.md. The tests on
the real ``mosi-bclstm`` files skip cleanly when ``../shared`` is absent. Nothing touches the network.
"""

from __future__ import annotations

import logging
import os
import pickle
import pickletools
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from mser_lib.data.batch import MODALITIES
from mser_lib.data.bclstm import (
    SHA256SUMS,
    SOURCE_URLS,
    ChecksumError,
    LeakageWarning,
    download_mosi_bclstm,
    load_mosi_bclstm,
    sha256_file,
)
from mser_lib.data.loaders_registry import DATASETS
from mser_lib.data.mmsa import load_mmsa
from mser_lib.data.safe_pickle import UnsafePickleError, safe_load
from mser_lib.data.utterance import DEFAULT_FEATURES, load_utterance_features
from mser_lib.data.validate import DataFormatError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BCLSTM_DIR = SHARED / "data" / "mosi-bclstm"
needs_shared = pytest.mark.skipif(not (BCLSTM_DIR / "transcripts.csv").is_file(),
                                  reason="../shared/data/mosi-bclstm not present")

# ------------------------------------------------------------------------------------------------
# fixture helpers (MMSA pickles)

MMSA_SHAPES = {  # (dataset, aligned) -> (L_text, (La, da), (Lv, dv))
    ("mosi", True): (50, (50, 5), (50, 20)),
    ("mosi", False): (50, (375, 5), (500, 20)),
    ("sims", False): (39, (400, 33), (55, 709)),
}
SPLIT_N = {"train": 5, "valid": 2, "test": 3}


def make_mmsa_split(rng, n: int, dataset: str, aligned: bool, split: str = "train") -> dict:
    """One split of an MMSA pickle with its keys, dtypes and shapes (N = n); ids unique across splits."""
    lt, (la, da), (lv, dv) = MMSA_SHAPES[(dataset, aligned)]
    tlen = rng.integers(3, lt + 1, size=n)
    attn = (np.arange(lt)[None] < tlen[:, None]).astype(np.float32)
    text = (rng.normal(size=(n, lt, 768)) * attn[..., None]).astype(np.float32)
    ids = rng.integers(0, 10_000, size=(n, lt)).astype(np.float32) * attn
    text_bert = np.stack([ids, attn, np.zeros_like(attn)], axis=1).astype(np.float32)  # (N, 3, L)
    audio = rng.normal(size=(n, la, da)).astype(np.float32)
    vision = rng.normal(size=(n, lv, dv)).astype(np.float32)
    high = 3.0 if dataset in ("mosi", "mosei") else 1.0
    labels = rng.uniform(-high, high, size=n).astype(np.float32)
    d = {
        "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
        "id": np.array([f"{split}vid{i // 2}$_${i % 2}" for i in range(n)], dtype=object),
        "text": text,
        "text_bert": text_bert,
        "audio": audio,
        "vision": vision,
        "regression_labels": labels,
        "classification_labels": np.sign(labels).astype(np.float32),
        "annotations": np.array(["Positive" if y >= 0 else "Negative" for y in labels], dtype=object),
    }
    if not aligned:
        alen = rng.integers(1, la + 1, size=n)
        vlen = rng.integers(1, lv + 1, size=n)
        d["audio"] *= (np.arange(la)[None] < alen[:, None])[..., None]
        d["vision"] *= (np.arange(lv)[None] < vlen[:, None])[..., None]
        d["audio_lengths"] = alen.astype(np.int64)
        d["vision_lengths"] = vlen.tolist()  # MMSA stores these as lists or arrays
    else:
        d["audio"] *= attn[..., None]
        d["vision"] *= attn[..., None]
    if dataset == "sims":
        for k in "TAV":
            d[f"regression_labels_{k}"] = rng.uniform(-1, 1, size=n).astype(np.float32)
    return d


def make_mmsa(dataset: str = "mosi", aligned: bool = True, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {s: make_mmsa_split(rng, n, dataset, aligned, s) for s, n in SPLIT_N.items()}


def write_pickle(obj, path: Path, protocol: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


def assert_error(exc_info, *parts: str) -> None:
    msg = str(exc_info.value)
    for p in parts:
        assert p in msg, f"{p!r} not in error message: {msg}"


# ------------------------------------------------------------------------------------------------
# safe_pickle


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_safe_load_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    path = write_pickle({"train": {"text": np.zeros(3), "x": _Evil(marker)}}, tmp_path / "evil.pkl")
    with pytest.raises(UnsafePickleError) as ei:
        safe_load(path)
    assert_error(ei, "evil.pkl", "system", "pickle global", "numpy array reconstruction")
    assert isinstance(ei.value, DataFormatError)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_safe_load_roundtrips_numpy_and_containers(tmp_path, protocol):
    from collections import OrderedDict

    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.float64(1.5), (1, "x")],
           "c": {1, 2}, "d": frozenset({3}), "e": b"\x00\xff", "f": OrderedDict(k=1.0),
           "g": np.array(["u1", "u2"], dtype=object), "h": np.ones((3, 4))[:, ::2], "i": 2 + 1j}
    got = safe_load(write_pickle(obj, tmp_path / "ok.pkl", protocol))
    for k in ("a", "g", "h"):
        np.testing.assert_array_equal(got[k], obj[k])
    assert got["b"] == obj["b"]
    assert got["c"] == obj["c"]
    assert got["e"] == obj["e"]
    assert got["i"] == obj["i"]
    assert got["f"] == obj["f"]
    assert got["d"] == obj["d"]


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as py2 ``str`` opcodes (SHORT_BINSTRING / BINSTRING), as Python 2 pickles do."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def test_safe_load_py2_latin1_pickle(tmp_path):
    arr = np.linspace(-1, 1, 300).astype(np.float32)  # 1200 bytes of data, non-ASCII bytes inside
    path = tmp_path / "py2.pkl"
    with open(path, "wb") as fh:
        _Py2Pickler(fh, protocol=2, fix_imports=True).dump(({"v": [arr]}, {"v": [0.5]}, {"v"}))
    ops = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
    assert ops & {"BINSTRING", "SHORT_BINSTRING"}  # py2 str opcodes, decoded with latin1
    got = safe_load(path, encoding="latin1")
    np.testing.assert_array_equal(got[0]["v"][0], arr)
    assert got[2] == {"v"}


def test_safe_load_garbage_and_missing(tmp_path):
    bad = tmp_path / "garbage.pkl"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(DataFormatError) as ei:
        safe_load(bad)
    assert_error(ei, "garbage.pkl")
    with pytest.raises(DataFormatError) as ei:
        safe_load(tmp_path / "absent.pkl")
    assert_error(ei, "absent.pkl", "no such file")


# ------------------------------------------------------------------------------------------------
# MMSA pickles


def test_mmsa_aligned_mosi(tmp_path):
    raw = make_mmsa("mosi", aligned=True)
    path = write_pickle(raw, tmp_path / "aligned_50.pkl")
    ds = load_mmsa(path, "mosi")
    assert ds.info.layout == "sequence"
    assert ds.info.metric_family == "mosi"
    assert ds.info.dims == {"text": 768, "audio": 5, "vision": 20}
    assert ds.info.label_range == (-3.0, 3.0)
    assert ds.info.source["aligned"] is True
    for s, n in SPLIT_N.items():
        sp = ds.split(s)
        assert len(sp) == n
        assert sp.text.shape == (n, 50, 768)
        assert sp.audio.shape == (n, 50, 5)
        assert sp.vision.shape == (n, 50, 20)
        for m in MODALITIES:
            assert sp.features(m).dtype == np.float32
            assert sp.mask(m).dtype == bool
        want = raw[s]["text_bert"][:, 1, :] > 0
        np.testing.assert_array_equal(sp.text_mask, want)
        np.testing.assert_array_equal(sp.audio_mask, want)
        np.testing.assert_array_equal(sp.vision_mask, want)
        np.testing.assert_allclose(sp.labels, raw[s]["regression_labels"])
        assert sp.labels.shape == (n,)
        assert sp.label_mask.all()
        assert list(sp.ids) == list(raw[s]["id"])


def test_mmsa_unaligned_from_root_and_text_mask_without_text_bert(tmp_path):
    raw = make_mmsa("mosi", aligned=False, seed=1)
    del raw["test"]["text_bert"]
    write_pickle(raw, tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl")
    ds = load_mmsa(tmp_path, "mosi")  # the MMSA root: resolved to MOSI/Processed/unaligned_50.pkl
    assert ds.info.source["aligned"] is False
    for s in SPLIT_N:
        sp, r = ds.split(s), raw[s]
        assert sp.audio.shape[1:] == (375, 5)
        assert sp.vision.shape[1:] == (500, 20)
        np.testing.assert_array_equal(sp.lengths("audio"), r["audio_lengths"])
        np.testing.assert_array_equal(sp.lengths("vision"), r["vision_lengths"])
        # masks are prefixes (padding at the end)
        assert not np.any(sp.audio_mask[:, 1:] & ~sp.audio_mask[:, :-1])
        if "text_bert" not in r:  # nonzero rows of text
            np.testing.assert_array_equal(sp.text_mask, np.abs(r["text"]).sum(-1) > 0)
    # the explicit file and the dataset folder resolve to the same data
    ds2 = load_mmsa(tmp_path / "MOSI", "mosi", aligned=False)
    np.testing.assert_array_equal(ds2.train.audio, ds.train.audio)


def test_mmsa_sims_unaligned(tmp_path):
    raw = make_mmsa("sims", aligned=False, seed=2)
    write_pickle(raw, tmp_path / "SIMS" / "Processed" / "unaligned_39.pkl")
    ds = load_mmsa(tmp_path, "sims")
    assert ds.info.metric_family == "sims"
    assert ds.info.label_range == (-1.0, 1.0)
    assert ds.info.dims == {"text": 768, "audio": 33, "vision": 709}
    assert ds.test.text.shape == (3, 39, 768)
    assert ds.test.vision.shape == (3, 55, 709)
    np.testing.assert_array_equal(ds.valid.lengths("vision"), raw["valid"]["vision_lengths"])
    with pytest.raises(DataFormatError) as ei:
        load_mmsa(tmp_path, "sims", aligned=True)  # SIMS has no aligned file
    assert_error(ei, "aligned")


def test_mmsa_neg_inf_audio_becomes_zero(tmp_path):
    raw = make_mmsa("mosi", aligned=True)
    raw["train"]["audio"][0, 0, :2] = -np.inf
    ds = load_mmsa(write_pickle(raw, tmp_path / "aligned_50.pkl"), "mosi")
    assert np.all(ds.train.audio[0, 0, :2] == 0.0)
    assert np.isfinite(ds.train.audio).all()
    np.testing.assert_array_equal(ds.train.audio[0, 0, 2:], raw["train"]["audio"][0, 0, 2:])


def test_mmsa_checks_and_masks_run_in_chunks_with_the_same_result(tmp_path, monkeypatch):
    """The finiteness check, the text mask and the -inf repair run over row chunks (of one sample here): the same
    masks and values as over the whole array, -inf found in every chunk."""
    from mser_lib.data import validate

    raw = make_mmsa("mosi", aligned=False, seed=4)
    for s in raw:
        del raw[s]["text_bert"]
    raw["train"]["audio"][0, 0, 0] = -np.inf
    raw["train"]["audio"][4, 1, 2] = -np.inf
    path = write_pickle(raw, tmp_path / "unaligned_50.pkl")
    whole = load_mmsa(path, "mosi")
    monkeypatch.setattr(validate, "CHUNK_BYTES", 1)
    chunked = load_mmsa(path, "mosi")
    for s in SPLIT_N:
        for m in MODALITIES:
            np.testing.assert_array_equal(chunked.split(s).features(m), whole.split(s).features(m))
            np.testing.assert_array_equal(chunked.split(s).mask(m), whole.split(s).mask(m))
        np.testing.assert_array_equal(chunked.split(s).text_mask, np.abs(raw[s]["text"]).sum(-1) > 0)
    assert chunked.train.audio[0, 0, 0] == 0.0
    assert chunked.train.audio[4, 1, 2] == 0.0
    raw["valid"]["text"][1, 2, 3] = np.nan
    with pytest.raises(DataFormatError) as ei:
        load_mmsa(write_pickle(raw, tmp_path / "nan" / "unaligned_50.pkl"), "mosi")
    assert_error(ei, "valid/text", "non-finite")


def test_mmsa_loading_needs_little_more_memory_than_the_file(tmp_path, monkeypatch):
    """Issue 24: the text mask of a file without text_bert took a whole float copy of the text features
    (|text|), and the checks a bool copy of each array. Now every check runs over chunks: loading allocates at
    most the file's size and a little more (tracemalloc counts numpy's allocations)."""
    import tracemalloc

    from mser_lib.data import validate

    rng = np.random.default_rng(5)
    raw = {s: make_mmsa_split(rng, n, "mosi", False, s) for s, n in {"train": 120, "valid": 20, "test": 40}.items()}
    for s in raw:
        del raw[s]["text_bert"]
    path = write_pickle(raw, tmp_path / "unaligned_50.pkl")
    monkeypatch.setattr(validate, "CHUNK_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        ds = load_mmsa(path, "mosi")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert peak < 1.15 * size, (peak / size)
    assert ds.train.text.shape == (120, 50, 768)


def _corrupt(raw, what):
    if what == "missing_key":
        del raw["valid"]["audio"]
        return ("valid/audio", "present")
    if what == "missing_split":
        del raw["test"]
        return ("test", "present")
    if what == "wrong_shape":
        raw["train"]["vision"] = raw["train"]["vision"][:, :, 0]
        return ("train/vision", "3-D array")
    if what == "n_mismatch":
        raw["valid"]["audio"] = raw["valid"]["audio"][:1]
        return ("valid/audio", "N=2")
    if what == "nan_features":
        raw["test"]["vision"][1, 3, 2] = np.nan
        return ("test/vision", "finite values")
    if what == "posinf_audio":
        raw["test"]["audio"][1, 3, 2] = np.inf
        return ("test/audio", "finite values")
    if what == "label_range":
        raw["train"]["regression_labels"][2] = 3.5
        return ("train/regression_labels", "labels in [-3.0, 3.0]")
    if what == "label_shape":
        raw["train"]["regression_labels"] = raw["train"]["regression_labels"][:, None]
        return ("train/regression_labels", "shape")
    if what == "text_dtype":
        raw["train"]["text"] = raw["train"]["text"].astype(str)
        return ("train/text", "numbers")
    if what == "length_too_long":
        raw["valid"]["audio_lengths"][0] = 376
        return ("valid/audio_lengths", "within the padded length [0, 375]")
    if what == "aligned_length":
        raw["train"]["audio"] = raw["train"]["audio"][:, :40]
        return ("train/audio", "aligned features of length 50")
    # issue 12: empty splits, zero lengths and widths, complex values, float32 overflow
    if what == "empty_split":
        raw["valid"] = {k: v[:0] if isinstance(v, np.ndarray) else v[:0] for k, v in raw["valid"].items()}
        return ("valid/text", "at least one sample")
    if what == "zero_width":
        raw["train"]["audio"] = raw["train"]["audio"][:, :, :0]
        return ("train/audio", "feature width 0")
    if what == "zero_length_axis":
        raw["test"]["vision"] = raw["test"]["vision"][:, :0]
        raw["test"]["vision_lengths"] = [0] * len(raw["test"]["vision_lengths"])
        return ("test/vision", "sequence length 0")
    if what == "all_modalities_empty":
        raw["train"]["text_bert"][1, 1, :] = 0.0
        raw["train"]["audio_lengths"][1] = 0
        raw["train"]["vision_lengths"][1] = 0
        return ("train/text_bert", "samples of length 0 in all three, first 'trainvid0$_$1'")
    if what == "complex_text":
        raw["train"]["text"] = raw["train"]["text"] + 1j
        return ("train/text", "real numbers", "complex values", "imaginary part")
    if what == "overflow_vision":
        raw["test"]["vision"] = raw["test"]["vision"].astype(np.float64)
        raw["test"]["vision"][0, 0, 1] = 1e39
        return ("test/vision", "float32 range", "1e+39")
    if what == "neg_overflow_audio":   # -1e39 is not MMSA's -inf padding: refused, not zeroed
        raw["test"]["audio"] = raw["test"]["audio"].astype(np.float64)
        raw["test"]["audio"][0, 0, 1] = -1e39
        return ("test/audio", "float32 range", "-1e+39")
    raise AssertionError(what)


UNALIGNED_CASES = ("length_too_long", "zero_length_axis", "all_modalities_empty")


@pytest.mark.parametrize("what", ["missing_key", "missing_split", "wrong_shape", "n_mismatch", "nan_features",
                                  "posinf_audio", "label_range", "label_shape", "text_dtype",
                                  "length_too_long", "aligned_length", "empty_split", "zero_width",
                                  "zero_length_axis", "all_modalities_empty", "complex_text", "overflow_vision",
                                  "neg_overflow_audio"])
def test_mmsa_bad_input_names_file_field_expectation(tmp_path, what):
    aligned = what not in UNALIGNED_CASES
    raw = make_mmsa("mosi", aligned=aligned)
    field, *expectation = _corrupt(raw, what)
    path = write_pickle(raw, tmp_path / f"bad_{what}.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)   # never a silent cast of complex values
        with pytest.raises(DataFormatError) as ei:
            load_mmsa(path, "mosi", aligned=aligned)
    assert_error(ei, f"bad_{what}.pkl", field, *expectation)


def test_mmsa_sims_label_out_of_range(tmp_path):
    raw = make_mmsa("sims", aligned=False)
    raw["valid"]["regression_labels"][0] = 1.5  # fine for MOSI, not for SIMS
    path = write_pickle(raw, tmp_path / "unaligned_39.pkl")
    with pytest.raises(DataFormatError) as ei:
        load_mmsa(path, "sims")
    assert_error(ei, "unaligned_39.pkl", "valid/regression_labels", "[-1.0, 1.0]")


def test_mmsa_malicious_pickle(tmp_path):
    raw = make_mmsa("mosi", aligned=True)
    marker = tmp_path / "pwned"
    raw["train"]["annotations"] = _Evil(marker)
    path = write_pickle(raw, tmp_path / "aligned_50.pkl")
    with pytest.raises(UnsafePickleError) as ei:
        load_mmsa(path, "mosi")
    assert_error(ei, "aligned_50.pkl", "system")
    assert not marker.exists()


def test_mmsa_missing_file(tmp_path):
    with pytest.raises(DataFormatError) as ei:
        load_mmsa(tmp_path, "mosei")
    assert_error(ei, "MOSEI", "unaligned_50.pkl", "none of them exists")


# ------------------------------------------------------------------------------------------------
# utterance features

UTT_DIMS = {"text": 12, "audio": 8, "vision": 10}


def make_utt_tree(root: Path, seed: int = 0, short: str | None = "v2_2") -> dict:
    """A tiny utterance-feature tree: label pickle + features/<name>/<utt>.npy; ``short`` gets a 7-d vision vector."""
    rng = np.random.default_rng(seed)
    video_ids = {
        "v1": ["v1_3", "v1_1", "v1_2"],  # deliberately not sorted: the order of videoIDs is kept
        "v2": ["v2_1", "v2_2"],
        "v3": ["v3_1", "v3_2", "v3_3", "v3_4"],
        "v4": ["v4_1"],
        "v5": ["v5_2", "v5_1"],
    }
    labels = {v: [float(x) for x in np.round(rng.uniform(-3, 3, size=len(u)), 1)]
              for v, u in video_ids.items()}
    labels["v3"][0] = 3.0  # boundaries are legal
    labels["v3"][1] = -3.0
    speakers = {v: [""] * len(u) for v, u in video_ids.items()}
    sentences = {v: np.array([f"words {x}" for x in u]) for v, u in video_ids.items()}
    tup = (video_ids, labels, speakers, sentences, {"v3", "v1"}, {"v4"}, {"v5", "v2"})
    write_pickle(list(tup), root / "CMUMOSI_features_raw_2way.pkl", protocol=2)
    feats = {}
    for m, name in DEFAULT_FEATURES.items():
        folder = root / "features" / name
        folder.mkdir(parents=True)
        for u in (x for us in video_ids.values() for x in us):
            d = UTT_DIMS[m] - 3 if (m == "vision" and u == short) else UTT_DIMS[m]
            vec = rng.normal(size=d).astype(np.float32)
            if m == "audio" and u == "v1_1":
                vec = vec[None, :]  # (1, D) files are accepted (squeezed)
            np.save(folder / f"{u}.npy", vec)
            feats[(m, u)] = vec.reshape(-1)
    return {"ids": video_ids, "labels": labels, "feats": feats}


def test_utterance_loads_position_layout(tmp_path, caplog):
    tree = make_utt_tree(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mser_lib.data"):
        ds = load_utterance_features(tmp_path, "mosi")
    assert any("1 of 12 vision vectors shorter than 10" in r.getMessage() for r in caplog.records)
    assert ds.info.layout == "position"
    assert ds.info.metric_family == "mosi"
    assert ds.info.dims == UTT_DIMS
    assert list(ds.train.ids) == ["v1", "v3"]
    assert list(ds.valid.ids) == ["v4"]
    assert list(ds.test.ids) == ["v2", "v5"]
    tr = ds.train
    assert tr.labels.shape == (2, 4)
    assert tr.text.shape == (2, 4, 12)
    assert tr.vision.shape == (2, 4, 10)
    np.testing.assert_array_equal(tr.label_mask, [[1, 1, 1, 0], [1, 1, 1, 1]])
    for m in MODALITIES:
        np.testing.assert_array_equal(tr.mask(m), tr.label_mask)
    np.testing.assert_allclose(tr.labels[0, :3], tree["labels"]["v1"])
    assert tr.labels[0, 3] == 0.0
    # position j of v1 is videoIDs["v1"][j] = "v1_3", "v1_1", "v1_2"
    for j, u in enumerate(tree["ids"]["v1"]):
        np.testing.assert_allclose(tr.audio[0, j], tree["feats"][("audio", u)])
    # the shorter vision vector is zero-padded
    te = ds.test
    np.testing.assert_allclose(te.vision[0, 1, :7], tree["feats"][("vision", "v2_2")])
    assert np.all(te.vision[0, 1, 7:] == 0)


def test_utterance_configurable_feature_names(tmp_path):
    make_utt_tree(tmp_path)
    shutil.copytree(tmp_path / "features" / "manet_UTT", tmp_path / "features" / "my_faces")
    ds = load_utterance_features(tmp_path, feature_names={"vision": "my_faces"})
    assert ds.info.source["features"] == {**DEFAULT_FEATURES, "vision": "my_faces"}
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path, feature_names={"text": "absent-UTT"})
    assert_error(ei, "absent-UTT", "text features")


def test_utterance_bad_inputs(tmp_path):
    make_utt_tree(tmp_path)
    vis = tmp_path / "features" / "manet_UTT"
    # missing .npy
    (vis / "v3_2.npy").rename(tmp_path / "moved.npy")
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "v3_2.npy", "vision feature", "no such file")
    # NaN
    np.save(vis / "v3_2.npy", np.array([0.0, np.nan] + [1.0] * 8, dtype=np.float32))
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "v3_2.npy", "vision feature", "finite values")
    # wrong ndim; MoMKE-style averaging is opt-in
    frames = np.ones((3, 10), dtype=np.float32) * np.arange(3)[:, None]
    np.save(vis / "v3_2.npy", frames)
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "v3_2.npy", "vision feature", "1-D vector", "(3, 10)")
    ds = load_utterance_features(tmp_path, average_frames=True)
    np.testing.assert_allclose(ds.train.vision[1, 1], np.ones(10))


def test_utterance_label_pickle_checks(tmp_path):
    make_utt_tree(tmp_path)
    pkl = tmp_path / "CMUMOSI_features_raw_2way.pkl"
    tup = safe_load(pkl, encoding="latin1")
    tup[1]["v2"][0] = 3.4
    write_pickle(tup, pkl, protocol=2)
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "CMUMOSI_features_raw_2way.pkl", "videoLabels['v2']", "[-3.0, 3.0]")
    tup[1]["v2"] = [0.1]  # one label for two utterances
    write_pickle(tup, pkl, protocol=2)
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "CMUMOSI_features_raw_2way.pkl", "videoLabels['v2']", "one label per utterance")
    write_pickle(tup[:6], pkl, protocol=2)
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "CMUMOSI_features_raw_2way.pkl", "7-tuple")
    tup[0]["v2"] = _Evil(tmp_path / "pwned")
    write_pickle(tup, pkl, protocol=2)
    with pytest.raises(UnsafePickleError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "CMUMOSI_features_raw_2way.pkl", "system")
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------------------------------
# mosi-bclstm on the real shared files


@pytest.fixture(scope="module")
def bclstm():
    if not (BCLSTM_DIR / "transcripts.csv").is_file():
        pytest.skip("../shared/data/mosi-bclstm not present")
    return load_mosi_bclstm(BCLSTM_DIR)


@needs_shared
def test_bclstm_split_sizes_and_layout(bclstm):
    ds = bclstm
    assert ds.info.layout == "position"
    assert ds.info.dims == {"text": 100, "audio": 73, "vision": 100}
    n = {s: len(ds.split(s)) for s in ("train", "valid", "test")}
    assert n["train"] + n["valid"] == 62
    assert n["test"] == 31
    assert n["valid"] == 6  # round(10% of 62)
    utt = {s: int(ds.split(s).label_mask.sum()) for s in ("train", "valid", "test")}
    assert sum(utt.values()) == 2199
    assert utt["train"] + utt["valid"] == 1447
    assert utt["test"] == 752
    ids = [set(ds.split(s).ids) for s in ("train", "valid", "test")]
    assert not (ids[0] & ids[1])
    assert not (ids[0] & ids[2])
    assert not (ids[1] & ids[2])
    for s in ("train", "valid", "test"):
        sp = ds.split(s)
        for m in MODALITIES:
            np.testing.assert_array_equal(sp.mask(m), sp.label_mask)
            assert np.all(sp.features(m)[~sp.label_mask] == 0)
        lab = sp.labels[sp.label_mask]
        assert lab.min() >= -3
        assert lab.max() <= 3
        assert sp.lengths().min() >= 9
        assert sp.lengths().max() <= 63


@needs_shared
def test_bclstm_positions_follow_utterance_number(bclstm):
    tup = safe_load(BCLSTM_DIR / "CMUMOSI_features_raw_2way.pkl", encoding="latin1")
    sp = bclstm.test
    for i, vid in enumerate(sp.ids[:5]):
        pairs = sorted(zip(tup[0][vid], tup[1][vid]), key=lambda p: int(p[0].rsplit("_", 1)[1]))
        k = len(pairs)
        np.testing.assert_allclose(sp.labels[i, :k], [float(y) for _, y in pairs], atol=1e-6)
        assert not sp.label_mask[i, k:].any()


@needs_shared
def test_bclstm_valid_identical_across_training_seeds():
    entry = DATASETS["mosi-bclstm"]
    valids = [tuple(entry["loader"](BCLSTM_DIR, seed=s).valid.ids) for s in (0, 1, 2)]
    assert valids[0] == valids[1] == valids[2]
    other = load_mosi_bclstm(BCLSTM_DIR, split_seed=1)
    assert len(other.valid) == 6
    assert tuple(other.valid.ids) != valids[0]


@needs_shared
def test_bclstm_standard_split_warns():
    with pytest.warns(LeakageWarning, match="92.6%"):
        ds = load_mosi_bclstm(BCLSTM_DIR, split="standard")
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [52, 10, 31]
    assert [int(ds.split(s).label_mask.sum()) for s in ("train", "valid", "test")] == [1284, 229, 686]


@needs_shared
def test_bclstm_download_from_mirror(tmp_path, bclstm):
    cache = download_mosi_bclstm(tmp_path / "cache", mirror=BCLSTM_DIR)
    assert sorted(p.name for p in cache.iterdir()) == sorted(SOURCE_URLS)
    for name in SOURCE_URLS:
        assert sha256_file(cache / name) == SHA256SUMS[name]
    # present and verified files are kept: no mirror and no network needed the second time
    assert download_mosi_bclstm(cache, mirror=None) == cache
    ds = load_mosi_bclstm(cache)
    np.testing.assert_array_equal(ds.valid.ids, bclstm.valid.ids)
    np.testing.assert_array_equal(ds.test.audio, bclstm.test.audio)
    with pytest.warns(LeakageWarning):  # no standard_folds.json: folds come from the pickle
        std = load_mosi_bclstm(cache, split="standard")
    assert [len(std.split(s)) for s in ("train", "valid", "test")] == [52, 10, 31]


@needs_shared
def test_bclstm_download_refuses_corrupted_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in SOURCE_URLS:
        (mirror / name).symlink_to(BCLSTM_DIR / name)
    (mirror / "video_test0.csv").unlink()
    data = bytearray((BCLSTM_DIR / "video_test0.csv").read_bytes())
    data[10] = ord("9") if data[10] != ord("9") else ord("8")
    (mirror / "video_test0.csv").write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as ei:
        download_mosi_bclstm(cache, mirror=mirror)
    assert_error(ei, "video_test0.csv", "sha256", SHA256SUMS["video_test0.csv"])
    assert not (cache / "video_test0.csv").exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def copy_shared(dst: Path) -> Path:
    """A writable copy of the shared mosi-bclstm folder."""
    dst.mkdir()
    for p in BCLSTM_DIR.iterdir():
        shutil.copyfile(p, dst / p.name)
    return dst


@needs_shared
def test_bclstm_label_disagreement_is_refused(tmp_path):
    data = copy_shared(tmp_path / "data")
    path = data / "audio_test0.csv"
    lines = path.read_text().splitlines()
    head, last = lines[3].rsplit(",", 1)
    lines[3] = head + "," + ('"0"' if "1" in last else '"1"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as ei:
        load_mosi_bclstm(data)
    assert_error(ei, "audio_test0.csv", "label (last column)", "continuous label >= 0")


@needs_shared
def test_bclstm_missing_file(tmp_path):
    data = copy_shared(tmp_path / "data")
    (data / "text_test.csv").unlink()
    with pytest.raises(DataFormatError) as ei:
        load_mosi_bclstm(data)
    assert_error(ei, "text_test.csv", "no such file")


@needs_shared
def test_bclstm_ridge_sanity(bclstm):
    """README: ridge on concatenated t+a+v, bc-LSTM split, about 76.7% neg/non-neg Acc-2."""
    from scipy.linalg import LinAlgWarning
    from sklearn.linear_model import Ridge

    def flat(sp):
        m = sp.label_mask
        return np.concatenate([sp.text[m], sp.audio[m], sp.vision[m]], 1).astype(np.float64), sp.labels[m]

    xa, ya = flat(bclstm.train)
    xv, yv = flat(bclstm.valid)
    xt, yt = flat(bclstm.test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)
        pred = Ridge(alpha=1.0).fit(np.concatenate([xa, xv]), np.concatenate([ya, yv])).predict(xt)
    acc2 = float(np.mean((pred >= 0) == (yt >= 0)))
    assert 0.72 <= acc2 <= 0.81, acc2


@needs_shared
def test_bclstm_loads_fast():
    import time

    t0 = time.process_time()                    # CPU seconds: other work on the machine must not count
    load_mosi_bclstm(BCLSTM_DIR)
    assert time.process_time() - t0 < 2.0


@needs_shared
def test_bclstm_standardize_uses_train_stats():
    ds = load_mosi_bclstm(BCLSTM_DIR, standardize=True)
    x = ds.train.audio[ds.train.label_mask]
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)
    assert abs(float(ds.test.audio[ds.test.label_mask].mean())) < 1.0


# ------------------------------------------------------------------------------------------------
# issue 12: edge cases of the utterance format, each a DataFormatError naming the file and the field


@pytest.mark.parametrize("what", ["complex", "npz", "zero_width", "overflow", "zero_width_frames"])
def test_utterance_feature_file_edge_cases(tmp_path, what):
    make_utt_tree(tmp_path)
    path = tmp_path / "features" / "wav2vec-large-c-UTT" / "v3_2.npy"
    if what == "complex":
        np.save(path, np.ones(8, dtype=np.complex64))
        parts = ("complex values", "real numbers")
    elif what == "npz":
        with open(path, "wb") as fh:                      # np.savez under the .npy name
            np.savez(fh, audio=np.ones(8, dtype=np.float32))
        parts = ("a .npy array (np.save)", ".npz archive", "['audio']")
    elif what == "zero_width":
        np.save(path, np.zeros(0, dtype=np.float32))
        parts = ("1-D vector", "shape (0,)")
    elif what == "zero_width_frames":
        np.save(path, np.zeros((1, 0), dtype=np.float32))
        parts = ("1-D vector", "shape (1, 0)")
    else:
        vec = np.ones(8)
        vec[3] = 1e39                                     # finite in float64, inf in float32
        np.save(path, vec)
        parts = ("float32 range", "index 3", "1e+39")
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        with pytest.raises(DataFormatError) as ei:
            load_utterance_features(tmp_path)
    assert_error(ei, "v3_2.npy", "audio feature", *parts)


def test_utterance_empty_split_and_zero_length_video(tmp_path):
    make_utt_tree(tmp_path)
    pkl = tmp_path / "CMUMOSI_features_raw_2way.pkl"
    tup = safe_load(pkl, encoding="latin1")
    empty_valid = list(tup)
    empty_valid[5] = set()
    write_pickle(empty_valid, pkl, protocol=2)
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "CMUMOSI_features_raw_2way.pkl", "valVids", "at least one video", "none")
    no_utts = list(tup)
    no_utts[0] = {**tup[0], "v4": []}
    no_utts[1] = {**tup[1], "v4": []}
    write_pickle(no_utts, pkl, protocol=2)
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "CMUMOSI_features_raw_2way.pkl", "videoIDs['v4']", "at least one utterance", "empty list")


def test_check_array_refuses_complex_and_names_overflow():
    from mser_lib.data.validate import check_array

    with pytest.raises(DataFormatError) as ei:
        check_array(np.array([1 + 2j, 3]), "f.pkl", "train/x")
    assert_error(ei, "f.pkl", "train/x", "complex values")
    with pytest.raises(DataFormatError) as ei:
        check_array(np.array([1.0, 1e39]), "f.pkl", "train/x", finite=False)   # also when inf is allowed
    assert_error(ei, "f.pkl", "train/x", "float32 range", "1 values that overflow", "(1,)")
    np.testing.assert_array_equal(check_array(np.array([1.0, -np.inf]), "f", "x", finite=False), [1.0, -np.inf])


# ------------------------------------------------------------------------------------------------
# issue 12: mosi-bclstm edge cases on a tiny hand-made folder (no ../shared needed)

TINY_VIDEOS = {"tr1": 3, "tr2": 2, "tr3": 2, "te1": 2, "te2": 3}     # video -> utterances


def make_bclstm_tree(root: Path, seed: int = 0, videos: dict | None = None) -> dict:
    """The mosi-bclstm files for five videos (tr* in the bc-LSTM train part, te* in its test part): transcripts,
    text/audio/video csvs with the real column counts, and the 7-tuple label pickle."""
    from mser_lib.data.bclstm import DIMS, LABEL_PICKLE

    rng = np.random.default_rng(seed)
    videos = videos or TINY_VIDEOS
    root.mkdir(parents=True, exist_ok=True)
    uids = [f"{v}_{n}" for v, k in videos.items() for n in range(1, k + 1)]
    labels = {u: float(np.round(rng.uniform(-3, 3), 2)) for u in uids}
    with open(root / "transcripts.csv", "w") as fh:
        for u in uids:
            fh.write(f'{u},"words of {u}",{u.split("_")[0][-1]},{int(labels[u] >= 0)}\n')
    feats = {m: {u: rng.normal(size=d) * (100.0 if m == "audio" else 1.0) for u in uids} for m, d in DIMS.items()}
    files = {"text": "text", "audio": "audio", "vision": "video"}
    for part in ("train", "test"):
        rows = [i for i, u in enumerate(uids) if u.startswith(part[:2])]
        with open(root / f"text_{part}.csv", "w") as fh:
            for i in rows:
                fh.write(",".join([str(i)] + [repr(float(x)) for x in feats["text"][uids[i]]]) + "\n")
        for m, name in files.items():
            with open(root / f"{name}_{part}0.csv", "w") as fh:
                for i in rows:
                    u = uids[i]
                    fh.write(",".join([repr(float(x)) for x in feats[m][u]] + [str(int(labels[u] >= 0))]) + "\n")
    vids = list(videos)
    ids = {v: [u for u in uids if u.startswith(v + "_")] for v in vids}
    train = sorted(v for v in vids if v.startswith("tr"))
    tup = (ids, {v: [labels[u] for u in ids[v]] for v in vids}, {v: [""] * len(ids[v]) for v in vids},
           {v: [""] * len(ids[v]) for v in vids}, set(train[:-1] or train), set(train[-1:]) - set(train[:-1] or train),
           {v for v in vids if v.startswith("te")})
    write_pickle(list(tup), root / LABEL_PICKLE, protocol=2)
    return {"uids": uids, "labels": labels}


def _set_cell(path: Path, row: int, col: int, value: str) -> None:
    lines = path.read_text().splitlines()
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def test_tiny_bclstm_tree_loads(tmp_path):
    make_bclstm_tree(tmp_path)
    for std in (False, True):
        ds = load_mosi_bclstm(tmp_path, standardize=std)
        assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [2, 1, 2]
        assert ds.train.audio.dtype == np.float32
        assert np.isfinite(ds.train.audio).all()


def test_bclstm_float32_overflow_is_refused_naming_the_column(tmp_path):
    make_bclstm_tree(tmp_path)
    _set_cell(tmp_path / "audio_test0.csv", 1, 5, "1e39")         # finite in float64, inf in float32
    for std in (False, True):
        with pytest.raises(DataFormatError) as ei:
            load_mosi_bclstm(tmp_path, standardize=std)
        assert_error(ei, "audio_test0.csv", "row 1 col 5", "audio feature 5", "float32 range", "1e+39")


def test_bclstm_large_cell_is_standardised_in_float64_not_zeroed(tmp_path):
    """One cell of 1e20: its float32 standard deviation overflowed, which once zeroed the column in every
    split. The statistics are float64 now: the column keeps its information (the 1e20 cell is its largest
    value, the others equal and below it); without standardisation the value is kept as is."""
    make_bclstm_tree(tmp_path)
    _set_cell(tmp_path / "audio_train0.csv", 0, 7, "1e20")         # tr1_1: a train-split utterance
    ds = load_mosi_bclstm(tmp_path, standardize=True)
    col = ds.train.audio[..., 7][ds.train.audio_mask]
    assert np.isfinite(col).all()
    assert col.std() > 0.5
    assert ds.train.audio[0, 0, 7] == col.max() > 0 > np.delete(col, np.argmax(col)).max()
    assert ds.info.source["standardize"] is True
    raw = load_mosi_bclstm(tmp_path, standardize=False)
    assert raw.train.audio[0, 0, 7] == np.float32(1e20)


@pytest.mark.parametrize("what", ["ragged", "binary", "empty", "label"])
def test_bclstm_transcript_parse_errors(tmp_path, what):
    make_bclstm_tree(tmp_path)
    path = tmp_path / "transcripts.csv"
    lines = path.read_text().splitlines()
    if what == "ragged":
        lines[2] += ",extra,fields"
        path.write_text("\n".join(lines) + "\n")
        parts = ("<csv>", "parse error", "Expected 4 fields")
    elif what == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage\x80\x81,\x00\n" * 3)
        parts = ("<csv>", "parse error")
    elif what == "empty":
        path.write_text("")
        parts = ("<csv>", "parse error", "No columns")
    else:
        lines[3] = lines[3].rsplit(",", 1)[0] + ",maybe"
        path.write_text("\n".join(lines) + "\n")
        parts = ("row 3 col 3 (0/1 label)", "0 or 1", "'maybe'")
    with pytest.raises(DataFormatError) as ei:
        load_mosi_bclstm(tmp_path)
    assert_error(ei, "transcripts.csv", *parts)


def test_bclstm_empty_splits(tmp_path):
    import json

    make_bclstm_tree(tmp_path)

    # standard folds (standard_folds.json wins over the pickle's) without validation videos
    (tmp_path / "standard_folds.json").write_text(json.dumps({"train": ["tr1", "tr2", "tr3"], "valid": [],
                                                              "test": ["te1", "te2"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        with pytest.raises(DataFormatError) as ei:
            load_mosi_bclstm(tmp_path, split="standard")
    assert_error(ei, "standard_folds.json", "'valid'", "at least one video in the valid split")
    # the bc-LSTM split with a single train video: validation takes it, nothing is left to train on
    make_bclstm_tree(tmp_path / "one", videos={"tr1": 2, "te1": 2, "te2": 1})
    with pytest.raises(DataFormatError) as ei:
        load_mosi_bclstm(tmp_path / "one")
    assert_error(ei, "text_train.csv", "rows", "at least one video in the train split")
    # an empty csv part (no test rows) names the csv
    make_bclstm_tree(tmp_path / "b")
    (tmp_path / "b" / "text_test.csv").write_text("")
    with pytest.raises(DataFormatError) as ei:
        load_mosi_bclstm(tmp_path / "b")
    assert_error(ei, "text_test.csv", "<csv>")


# ------------------------------------------------------------------------------------------------
# standardisation (every loader can z-score with train statistics, computed in float64)

def _assert_standardized(raw_ds, ds):
    for m in MODALITIES:
        tr = ds.train.features(m)[ds.train.mask(m)].astype(np.float64)
        raw = raw_ds.train.features(m)[raw_ds.train.mask(m)].astype(np.float64)
        sd = raw.std(0)
        live = sd > 1e-8
        np.testing.assert_allclose(tr.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(tr.std(0)[live], 1.0, rtol=1e-4)
        for s in ("train", "valid", "test"):           # padding stays zero, real positions are z-scored
            a, b, mask = raw_ds.split(s).features(m), ds.split(s).features(m), ds.split(s).mask(m)
            assert not b[~mask].any()
            np.testing.assert_allclose(b[mask], ((a[mask] - raw.mean(0)) / np.where(live, sd, 1.0)), rtol=1e-5,
                                       atol=1e-5)
            assert b.dtype == np.float32
    assert ds.info.source["standardize"] is True
    assert raw_ds.info.source["standardize"] is False


def test_utterance_standardize_uses_train_statistics_and_is_the_registry_default(tmp_path):
    from mser_lib.data import load_dataset

    make_utt_tree(tmp_path, short=None)
    raw = load_utterance_features(tmp_path, "mosi")
    _assert_standardized(raw, load_utterance_features(tmp_path, "mosi", standardize=True))
    assert load_dataset("mosi-utt", tmp_path).info.source["standardize"] is True
    assert load_dataset("mosi-utt", tmp_path, standardize=False).info.source["standardize"] is False
    with pytest.raises(ValueError, match="standardize must be true or false"):
        load_utterance_features(tmp_path, "mosi", standardize="yes")


def test_mmsa_standardize_uses_train_statistics(tmp_path):
    path = write_pickle(make_mmsa("mosi", aligned=True), tmp_path / "aligned_50.pkl")
    _assert_standardized(load_mmsa(path, "mosi"), load_mmsa(path, "mosi", standardize=True))


def test_standardize_refuses_an_overflow(tmp_path):
    """A test value far outside a column's small train spread would become inf in float32: refused,
    naming the folder and the feature."""
    tree = make_utt_tree(tmp_path, short=None)
    folder = tmp_path / "features" / DEFAULT_FEATURES["audio"]
    rng = np.random.default_rng(0)
    for u in (x for v in ("v1", "v3") for x in tree["ids"][v]):        # train videos: column 0 ~ 1e-3 spread
        vec = np.load(folder / f"{u}.npy").reshape(-1)
        vec[0] = np.float32(rng.uniform(0, 1e-3))
        np.save(folder / f"{u}.npy", vec)
    vec = np.load(folder / "v2_1.npy")
    vec[0] = 3e38                                                       # finite in float32
    np.save(folder / "v2_1.npy", vec)
    assert np.isfinite(load_utterance_features(tmp_path, "mosi").test.audio).all()
    with pytest.raises(DataFormatError) as e:
        load_utterance_features(tmp_path, "mosi", standardize=True)
    assert_error(e, "audio feature 0", "float32 range")


def test_mmsa_refuses_a_sample_in_two_splits(tmp_path):
    """Issue 24, item 11: test ids equal to train ids, or a test split copied from train under new ids."""
    import pickle

    from mser_lib.data.mmsa import load_mmsa
    from mser_lib.data.validate import DataFormatError

    rng = np.random.default_rng(0)
    raw = {s: make_mmsa_split(rng, n, "mosi", True, s) for s, n in SPLIT_N.items()}
    same_ids = {**raw, "test": {**raw["test"], "id": raw["train"]["id"][: SPLIT_N["test"]].copy()}}
    copied = {**raw, "test": {k: (v[: SPLIT_N["test"]].copy() if k != "id" else
                                  np.array([f"new{i}" for i in range(SPLIT_N["test"])], dtype=object))
                              for k, v in raw["train"].items()}}
    for name, data, found in (("ids", same_ids, "also in train"), ("copy", copied, "exactly the features of")):
        f = tmp_path / f"{name}.pkl"
        f.write_bytes(pickle.dumps(data))
        with pytest.raises(DataFormatError, match=found) as err:
            load_mmsa(f, "mosi", aligned=True)
        assert str(f) in str(err.value)
        assert "test/id" in str(err.value)


def test_utterance_refuses_an_utterance_listed_in_two_folds(tmp_path):
    """Issue 24, item 11: an utterance id listed in a train video and in a test video."""
    make_utt_tree(tmp_path)
    pkl = tmp_path / "CMUMOSI_features_raw_2way.pkl"
    tup = safe_load(pkl, encoding="latin1")
    tup[0]["v5"] = ["v5_2", "v3_1"]                   # v5 is a test video, v3_1 an utterance of train video v3
    write_pickle(tup, pkl, protocol=2)
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert_error(ei, "CMUMOSI_features_raw_2way.pkl", "videoIDs['v5']", "'v3_1' also in a video of trainVids")
