"""Property-based fuzz of the loaders (issue 12): for any content of a feature file or a csv cell, a
``DataFormatError`` naming the file, or a valid dataset (finite float32 features) -- nothing else."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_loaders import make_bclstm_tree, make_utt_tree

from mser_lib.data.bclstm import load_mosi_bclstm
from mser_lib.data.utterance import load_utterance_features
from mser_lib.data.validate import DataFormatError

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _valid(ds) -> None:
    for s in ("train", "valid", "test"):
        sp = ds.split(s)
        assert len(sp) > 0
        for m in ("text", "audio", "vision"):
            x = sp.features(m)
            assert x.dtype == np.float32
            assert x.shape[-1] > 0
            assert np.isfinite(x).all()


@pytest.fixture(scope="module")
def utt_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("utt-fuzz-")
    make_utt_tree(root)
    return root


_DTYPES = st.sampled_from(["<f2", "<f4", "<f8", "<i1", "<i8", "<u4", "|b1", "<c8", "<c16", ">f8", "<U3"])
_VALUES = st.sampled_from([0.0, 1.0, -2.5, 1e20, 1e39, -1e39, np.nan, np.inf, -np.inf, 1e-45, 3.4e38])


@FUZZ
@given(dtype=_DTYPES, shape=st.lists(st.integers(0, 4), min_size=0, max_size=3), fill=_VALUES,
       poke=st.lists(st.tuples(st.integers(0, 63), _VALUES), max_size=3),
       container=st.sampled_from(["npy", "npz", "bytes"]))
def test_fuzz_utterance_feature_file(utt_template, dtype, shape, fill, poke, container):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        shutil.copytree(utt_template, root)
        path = root / "features" / "wav2vec-large-c-UTT" / "v3_2.npy"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = np.full(shape, fill, dtype=np.float64)
            flat = base.reshape(-1)
            for i, v in poke:
                if flat.size:
                    flat[i % flat.size] = v
            arr = base.astype(dtype) if dtype != "<U3" else np.full(shape, "ab", dtype=dtype)
        if container == "npy":
            np.save(path, arr)
        elif container == "npz":
            with open(path, "wb") as fh:
                np.savez(fh, x=arr)
        else:
            path.write_bytes(arr.tobytes()[:50])
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                ds = load_utterance_features(root)
            except DataFormatError as exc:
                assert "v3_2.npy" in str(exc)
                return
        _valid(ds)


@pytest.fixture(scope="module")
def bclstm_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("bclstm-fuzz-")
    make_bclstm_tree(root)
    return root


_CELLS = st.sampled_from(["1e39", "-1e39", "1e20", "-1e20", "3e38", "nan", "inf", "-inf", "abc", "", "1+2j",
                          "0x10", "1e-50", "99999999999999999999999", '"3"', "0", "-0.5"])


@FUZZ
@given(file=st.sampled_from(["audio_train0.csv", "audio_test0.csv", "video_train0.csv", "text_train0.csv",
                             "text_train.csv"]),
       row=st.integers(0, 6), col=st.integers(0, 100), cell=_CELLS, standardize=st.booleans())
def test_fuzz_bclstm_csv_cell(bclstm_template, file, row, col, cell, standardize):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        shutil.copytree(bclstm_template, root)
        path = root / file
        lines = path.read_text().splitlines()
        cells = lines[row % len(lines)].split(",")
        cells[col % len(cells)] = cell
        lines[row % len(lines)] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                ds = load_mosi_bclstm(root, standardize=standardize)
            except DataFormatError as exc:
                assert str(root) in str(exc)
                return
        _valid(ds)
