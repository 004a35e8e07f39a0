"""Hostile files (issue 12, security): forged numpy dtypes, pickle bombs, code in checkpoints, path
traversal through record fields and utterance ids, torn JSONL lines.

Payloads that crashed the interpreter before the fix (SIGSEGV) are loaded in a subprocess, so a
regression fails the test instead of killing pytest.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mser_lib.data import safe_pickle
from mser_lib.data.safe_pickle import safe_load, safe_loads
from mser_lib.data.validate import DataFormatError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer

ROOT = Path(__file__).resolve().parents[1]


class R:
    """Pickles as ``f(*args)`` followed by BUILD(``state``): any call a hostile file can ask for."""

    def __init__(self, f, args, state=None) -> None:
        self.f, self.args, self.state = f, args, state

    def __reduce__(self):
        return (self.f, self.args) if self.state is None else (self.f, self.args, self.state)


def array_of(dtype, shape, data):
    """An ndarray pickled the way numpy does it (``_reconstruct`` + BUILD), with any state."""
    return R(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def dtype_of(code, state, copy=True):
    """A dtype pickled the way numpy does it (``numpy.dtype(code)`` + BUILD), with any state."""
    return R(np.dtype, (code, False, copy), state)


def run_isolated(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (this checkout first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def dump(obj, path: Path, protocol: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


# ------------------------------------------------------------------------------------------------
# forged dtypes (SIGSEGV before the fix)

OBJECT_FIELD = dtype_of("V8", (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))
OBJECT_NO_FLAGS = dtype_of("O8", (3, "|", None, None, None, -1, -1, 0))
OBJECT_FIELD_IN_STATE_OF_F8 = dtype_of("f8", (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))

FORGED = {
    "struct-object-field": array_of(OBJECT_FIELD, (2,), b"\x41" * 16),
    "object-flags-cleared": array_of(OBJECT_NO_FLAGS, (2,), b"\x41" * 16),
    "fields-on-plain-dtype": array_of(OBJECT_FIELD_IN_STATE_OF_F8, (2,), b"\x41" * 16),
    "object-scalar-over-bytes": R(scalar, (OBJECT_NO_FLAGS, b"\x41" * 8)),
    "frombuffer-object": R(_frombuffer, (b"\x41" * 16, OBJECT_NO_FLAGS, (2,), "C")),
    "unicode-elsize-grown": array_of(dtype_of("U1", (3, "<", None, None, None, 4096, 4, 8)), (1,), b"A" * 4),
}


def _mmsa_with_forged_ids(n=3) -> dict:
    split = {"id": array_of(OBJECT_NO_FLAGS, (n,), b"\x41" * 8 * n),
             "text": np.ones((n, 4, 768), np.float32), "audio": np.ones((n, 4, 5), np.float32),
             "vision": np.ones((n, 4, 20), np.float32), "regression_labels": np.zeros(n, np.float32)}
    return {s: split for s in ("train", "valid", "test")}


def test_forged_dtypes_do_not_crash_the_interpreter(tmp_path):
    """Before the fix each of these was a SIGSEGV, while loading or once the ids were turned into
    strings: one subprocess loads them all (then the MMSA and label-pickle loaders), touching every
    element, and each must give a DataFormatError naming its file."""
    paths = [dump({"id": FORGED[name]}, tmp_path / f"{name}-p{proto}.pkl", proto)
             for name in sorted(FORGED) for proto in (2, 4)]
    mmsa = dump(_mmsa_with_forged_ids(), tmp_path / "mmsa" / "aligned_50.pkl", 4)
    root = tmp_path / "utt"
    labels = ({"v1": array_of(OBJECT_FIELD, (1,), b"\x41" * 8)}, {"v1": [0.5]}, {"v1": [""]}, {"v1": [""]},
              {"v1"}, set(), set())
    dump(list(labels), root / "CMUMOSI_features_raw_2way.pkl", 2)
    cases = [("safe_load", p) for p in paths] + [("load_mmsa", mmsa), ("load_utterance_features", root)]
    res = run_isolated(f"""
        import numpy as np
        from mser_lib.data.validate import DataFormatError
        from mser_lib.data.safe_pickle import safe_load
        from mser_lib.data.mmsa import load_mmsa
        from mser_lib.data.utterance import load_utterance_features

        def touch(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    touch(k); touch(v)
            elif isinstance(x, (list, tuple, set, frozenset)):
                for v in x:
                    touch(v)
            elif isinstance(x, np.ndarray):
                [str(v) for v in x.ravel()]
            else:
                str(x)

        for loader, path in {[(f, str(p)) for f, p in cases]!r}:
            print("CASE", path, flush=True)
            try:
                touch(globals()[loader](path))
                print("LOADED", flush=True)
            except DataFormatError as exc:
                print("DataFormatError", exc, flush=True)
    """)
    assert res.returncode == 0, f"interpreter died (rc {res.returncode}) at: {res.stdout[-500:]} {res.stderr[-1000:]}"
    outcomes = [line for line in res.stdout.splitlines() if not line.startswith("CASE")]
    assert len(outcomes) == len(cases)
    for (_, path), line in zip(cases, outcomes):
        assert line.startswith("DataFormatError"), (path, line)
        assert Path(path).name in line, (path, line)


def test_dtype_build_never_mutates_numpys_shared_dtypes():
    f8 = np.dtype("f8")
    before = (f8.byteorder, f8.flags, np.array([1.0]).tobytes())
    # copy=False would hand back numpy's builtin float64; BUILD would then make it big-endian
    got = safe_loads(pickle.dumps([R(np.dtype, ("f8", False, False), (3, ">", None, None, None, -1, -1, 0))], 2))
    assert got[0] is not f8
    assert got[0] == np.dtype(">f8")
    assert (np.dtype("f8").byteorder, np.dtype("f8").flags, np.array([1.0]).tobytes()) == before


GLOBAL_CODECS = b"c_codecs\nencode\n"


def test_build_cannot_mutate_admitted_functions():
    encode = safe_pickle.ALLOWED_GLOBALS[("_codecs", "encode")]
    defaults = encode.__defaults__
    state = pickle.dumps((None, {"__defaults__": ("utf-16", "strict")}), 2)[2:-1]
    payload = b"\x80\x02" + GLOBAL_CODECS + state + b"b."
    with pytest.raises(DataFormatError, match="BUILD"):
        safe_loads(payload, "encode.pkl")
    assert encode.__defaults__ == defaults
    # nor the admitted classes, nor a second BUILD on an array already built
    for glob in (b"cbuiltins\ndict\n", b"ccollections\nOrderedDict\n", b"cnumpy\ndtype\n"):
        with pytest.raises(DataFormatError, match="BUILD"):
            safe_loads(b"\x80\x02" + glob + pickle.dumps((None, {"x": 1}), 2)[2:-1] + b"b.")
    twice = pickle.dumps(array_of(np.dtype("f8"), (1,), b"\0" * 8), 2)[:-1]
    state = pickle.dumps((1, (2,), np.dtype("f8"), False, b"\0" * 16), 2)[2:-1]
    with pytest.raises(DataFormatError, match="BUILD"):
        safe_loads(twice + state + b"b.")


def test_ndarray_is_never_called():
    """``numpy.ndarray(shape, dtype, buffer, offset, strides)`` makes zero-stride arrays of any size."""
    zero_stride = R(np.ndarray, ((10**12,), np.dtype("f8"), b"\0" * 8, 0, (0,)))
    for proto in (0, 2, 4):
        with pytest.raises(DataFormatError, match="numpy.ndarray"):
            safe_loads(pickle.dumps(zero_stride, proto))
    inst = b"((I1000000000000\ntinumpy\nndarray\n."       # INST opcode, protocol 0
    with pytest.raises(DataFormatError, match="numpy.ndarray"):
        safe_loads(inst)
    newobj = b"\x80\x02cnumpy\nndarray\n(K\x00\x85t\x81."  # NEWOBJ
    with pytest.raises(DataFormatError, match="NEWOBJ"):
        safe_loads(newobj)


# ------------------------------------------------------------------------------------------------
# pickle bombs: a DataFormatError, fast, from a file of a few hundred bytes


def _nested(levels: int, fan: int = 10, close: bytes = b"l") -> bytes:
    """Billion laughs: level k is ``fan`` references to level k-1 (lists with ``l``, tuples with ``t``)."""
    out = b"\x80\x02" + (b"]" if close == b"l" else b")") + b"q\x00"
    for k in range(levels):
        out += b"(" + b"h" + bytes([k]) * 1 + (b"h" + bytes([k])) * (fan - 1) + close + b"q" + bytes([k + 1])
    return out


def _bombs() -> dict[str, bytes]:
    laughs = _nested(9)
    big_list = b"\x80\x02cbuiltins\nlist\nq\x00]q\x01(" + b"K\x01" * 1000 + b"e]q\x02"
    copies = big_list + b"(" + b"h\x00h\x01\x85R" * 20000 + b"e."
    return {
        "bytearray8-2**62": b"\x80\x05\x96" + struct.pack("<Q", 2**62) + b".",
        "binbytes8-2**62": b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b".",
        "binunicode8-2**62": b"\x80\x04\x8d" + struct.pack("<Q", 2**62) + b".",
        "frame-2**60": b"\x80\x04\x95" + struct.pack("<Q", 2**60) + b"N.",
        "long4-2**31": b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + b".",
        "bytearray(10**12)": pickle.dumps(R(bytearray, (10**12,)), 2),
        "bytes(10**12)": pickle.dumps(R(bytes, (10**12,)), 2),
        "ndarray-10**12-zero-stride": pickle.dumps(R(np.ndarray, ((10**12,), np.dtype("f8"), b"\0" * 8, 0, (0,))), 2),
        "reconstruct-shape-10**12": pickle.dumps(array_of(np.dtype("f8"), (10**12,), b"\0" * 8), 2),
        "reconstruct-zero-itemsize-10**15": pickle.dumps(array_of(np.dtype("S0"), (10**15,), b""), 2),
        "frombuffer-shape-10**12": pickle.dumps(R(_frombuffer, (b"\0" * 8, np.dtype("f8"), (10**12,), "C")), 2),
        "frombuffer-zero-itemsize": pickle.dumps(R(_frombuffer, (b"", np.dtype("S0"), (10**15,), "C")), 2),
        "unicode-elsize-2**40": pickle.dumps(dtype_of("U1", (3, "<", None, None, None, 2**40, 4, 8)), 2),
        "billion-laughs-list": laughs + b".",
        "billion-laughs-tuple-as-dict-key": _nested(9, close=b"t") + b"}q\x0bh\x09N" + b"s.",
        "billion-laughs-tuple-in-set": _nested(9, close=b"t") + b"\x8f(h\x09\x90.",
        "list-copies-20000x1000": copies,
        "deep-nesting-100000": b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".",
        "self-cycle": b"\x80\x02]q\x00h\x00a.",
        "long-binput-2**32-1": b"\x80\x02Nr\xff\xff\xff\xff.",
    }


BOMBS = _bombs()


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_pickle_bomb_gives_data_format_error_fast(name):
    # CPU seconds of this process, not wall time: a bomb costs minutes and gigabytes, and other work on a shared
    # machine must not fail the bound
    start = time.process_time()
    try:
        got = safe_loads(BOMBS[name], f"{name}.pkl")
    except DataFormatError as exc:
        assert f"{name}.pkl" in str(exc)
    else:
        assert name == "long-binput-2**32-1"
        assert got is None
    assert time.process_time() - start < 2.0


def test_billion_laughs_label_pickle_does_not_hang_the_utterance_loader(tmp_path):
    from mser_lib.data.utterance import load_utterance_features

    laughs = []                                    # 10**9 references to one list, ~200 bytes pickled
    for _ in range(9):
        laughs = [laughs] * 10
    labels = ({"v1": laughs}, {"v1": [0.5]}, {"v1": [""]}, {"v1": [""]}, {"v1"}, set(), set())
    path = dump(list(labels), tmp_path / "CMUMOSI_features_raw_2way.pkl", 2)
    assert len(path.read_bytes()) < 500
    start = time.process_time()                 # CPU seconds: other work on the machine must not count
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(tmp_path)
    assert "CMUMOSI_features_raw_2way.pkl" in str(ei.value)
    assert "billion laughs" in str(ei.value)
    assert time.process_time() - start < 2.0


def test_legit_pickles_still_load_within_budget(tmp_path):
    """The caps are relative to the file size: real-shaped data is far below them."""
    from collections import OrderedDict, defaultdict

    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.array(["u1", "u2"], dtype=object),
           "s": np.array(["ab", "c"]), "be": np.array([1, 2], dtype=">i4"), "f": np.ones((3, 4))[:, ::2],
           "F": np.asfortranarray(np.ones((2, 3))), "sc": np.float32(2.5), "o": OrderedDict(k=(1, 2)),
           "dd": defaultdict(list, {"x": [1]}), "nested": [[[{"k": frozenset({(1, 2)})}]]],
           "b": bytearray(b"\x00\x01"), "c": 1 + 2j, "n": None, "big": 2**100}
    for proto in range(6):
        got = safe_load(dump(obj, tmp_path / f"ok{proto}.pkl", proto))
        for k in ("a", "ids", "s", "be", "f", "F"):
            np.testing.assert_array_equal(got[k], obj[k])
            assert got[k].dtype.newbyteorder("<") == obj[k].dtype.newbyteorder("<")  # numpy swaps py2-style
        assert {k: got[k] for k in ("sc", "o", "dd", "nested", "b", "c", "n", "big")} == \
            {k: obj[k] for k in ("sc", "o", "dd", "nested", "b", "c", "n", "big")}
    shared_ok = [np.zeros(100)] * 3                     # a little sharing is fine
    assert len(safe_loads(pickle.dumps(shared_ok, 4))) == 3


# ------------------------------------------------------------------------------------------------
# property-based fuzz: "a DataFormatError or a valid result, nothing else"

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SEED_PICKLES = [
    pickle.dumps(obj, proto)
    for proto in (0, 2, 4, 5)
    for obj in (
        {"train": {"id": np.array(["a$_$0", "b$_$1"], dtype=object), "text": np.ones((2, 3, 4), np.float32),
                   "regression_labels": np.array([0.5, -1.0], np.float32), "audio_lengths": [1, 2]}},
        ({"v1": ["v1_1", "v1_2"]}, {"v1": [0.5, -1.0]}, {"v1": ["", ""]}, {"v1": np.array(["x", "y"])},
         {"v1"}, set(), frozenset()),
        [np.float64(1.5), (1, "x"), {1, 2}, b"\x00\xff", bytearray(b"ab"), 2 + 1j, np.arange(4, dtype=">i2")],
    )
]
_OPCODES = sorted({bytes([op.code.encode("latin1")[0]]) for op in __import__("pickletools").opcodes})


def _valid_result(x, depth=0) -> None:
    """What safe_loads returned is plain data we can walk, print and convert."""
    assert depth <= safe_pickle.MAX_DEPTH + 1
    if isinstance(x, dict):
        for k, v in x.items():
            _valid_result(k, depth + 1)
            _valid_result(v, depth + 1)
    elif isinstance(x, (list, tuple, set, frozenset)):
        for v in x:
            _valid_result(v, depth + 1)
    elif isinstance(x, np.ndarray):
        assert x.dtype.kind in "biufcSUO"
        assert x.dtype.fields is None
        for v in x.ravel()[:1000]:
            _valid_result(v, depth + 1)
        repr(x)
    else:
        assert isinstance(x, (type(None), bool, int, float, complex, str, bytes, bytearray, np.generic,
                              np.dtype)), type(x)
        repr(x)


def _check_fuzz_case(data: bytes) -> None:
    try:
        got = safe_loads(data, "fuzz.pkl")
    except DataFormatError as exc:
        assert "fuzz.pkl" in str(exc)
        return
    _valid_result(got)


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(_SEED_PICKLES), st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["flip", "del",
       "ins", "op"]), st.binary(min_size=1, max_size=9)), max_size=6))
@pytest.mark.slow
def test_fuzz_mutated_pickles(seed, edits):
    data = bytearray(seed)
    for pos, kind, blob in edits:
        i = pos % (len(data) + 1)
        if kind == "flip" and i < len(data):
            data[i] ^= blob[0] or 1
        elif kind == "del":
            del data[i:i + len(blob)]
        elif kind == "ins":
            data[i:i] = blob
        else:
            data[i:i] = _OPCODES[blob[0] % len(_OPCODES)] + blob[1:]
    _check_fuzz_case(bytes(data))


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(st.sampled_from(_OPCODES), st.binary(max_size=9),
                          st.sampled_from([b"cnumpy\ndtype\n", b"cnumpy\nndarray\n", b"cbuiltins\nbytearray\n",
                                           b"cnumpy._core.multiarray\n_reconstruct\n", b"ccollections\ndefaultdict\n",
                                           b"cnumpy._core.multiarray\nscalar\n", b"X\x02\x00\x00\x00O8",
                                           b"cnumpy._core.numeric\n_frombuffer\n", b"J\xff\xff\xff\x7f",
                                           b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"])),
                max_size=40))
def test_fuzz_opcode_soup(parts):
    _check_fuzz_case(b"\x80\x02" + b"".join(parts) + b".")


# ------------------------------------------------------------------------------------------------
# checkpoints: weights_only=True everywhere, a planted checkpoint never runs its code


class _Plant:
    """Unpickling this runs ``touch <marker>`` (what a planted last.pt would do, with any command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _planted_checkpoint(path: Path, marker: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "epoch": 0, "history": [], "best_value": None, "best_epoch": -1,
                "rng": {}, "payload": _Plant(marker)}, path)
    return path


def test_load_checkpoint_refuses_code(tmp_path):
    from mser_lib.train import load_checkpoint

    marker = tmp_path / "pwned"
    ck = _planted_checkpoint(tmp_path / "x.pt", marker)
    with pytest.raises(DataFormatError) as ei:
        load_checkpoint(ck)
    assert "x.pt" in str(ei.value)
    assert "weights_only" in str(ei.value)
    assert not marker.exists()


def test_planted_checkpoint_never_runs_code_on_resume_or_in_the_analysis(tmp_path):
    from mser_lib.models import build_model
    from mser_lib.runs import model_from_record, stage_history
    from mser_lib.train import TrainConfig, fit

    from helpers import tiny_dataset

    marker = tmp_path / "pwned"
    # resume: a last.pt planted in a run folder
    ds = tiny_dataset()
    run_dir = tmp_path / "run"
    _planted_checkpoint(run_dir / "last.pt", marker)
    with pytest.raises(DataFormatError, match="last.pt"):
        fit(build_model("baseline", ds.info, "quick"), ds, TrainConfig(epochs=1, progress=False), run_dir=run_dir)

    # the notebooks' analysis: best.pt / last.pt of a recorded run
    record = {"profile": "quick", "dataset": "tiny", "config_hash": "0123456789abcdef", "seed": 0,
              "config": {"model": "baseline", "model_preset": "quick", "overrides": {}}}
    stage_dir = tmp_path / "res" / "quick" / "tiny" / "checkpoints" / "0123456789abcdef" / "main"
    _planted_checkpoint(stage_dir / "best.pt", marker)
    _planted_checkpoint(stage_dir / "last.pt", marker)
    with pytest.raises(DataFormatError, match="best.pt"):
        model_from_record(record, ds, tmp_path / "res")
    with pytest.raises(DataFormatError, match="last.pt"):
        stage_history(tmp_path / "res", record, None)
    assert not marker.exists()


def test_every_checkpoint_load_goes_through_load_checkpoint():
    """``torch.load`` appears once in mser_lib and the notebook sources: in load_checkpoint, weights_only=True."""
    hits = []
    for path in sorted((ROOT / "mser_lib").rglob("*.py")) + sorted((ROOT / "notebooks").glob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(?<!`)torch\.load\(", line) and not line.lstrip().startswith("#"):   # not ``docs``
                hits.append((path.relative_to(ROOT).as_posix(), i, line.strip()))
    assert [(p, line) for p, _, line in hits] == [
        ("mser_lib/train/io.py", "return torch.load(path, map_location=map_location, weights_only=True)")], hits


def test_checkpoints_hold_only_weights_only_types_and_rng_round_trips(tmp_path):
    import random

    import torch

    from mser_lib.train import load_checkpoint
    from mser_lib.train.io import atomic_torch_save
    from mser_lib.train.seeding import rng_state, set_rng_state, set_seed

    set_seed(7)
    random.random(), np.random.normal(), torch.rand(1)   # advance (and set numpy's cached gaussian)
    atomic_torch_save({"rng": rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.normal(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    set_seed(99)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])            # weights_only=True
    assert (random.random(), np.random.normal(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected
    # checkpoints written before this change (numpy state as an ndarray) are refused, with a hint
    torch.save({"rng": {"numpy": np.random.get_state()}}, tmp_path / "old.pt")
    with pytest.raises(DataFormatError, match="old.pt.*(delete|retrain)"):
        load_checkpoint(tmp_path / "old.pt")


# ------------------------------------------------------------------------------------------------
# paths built from records and ids stay inside their folder

BAD_NAMES = ["../../..", "../x", "/etc", "a/../../b", "x\0y"]


@pytest.mark.parametrize("bad", BAD_NAMES + ["0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", 12])
def test_config_hash_from_a_record_is_checked(tmp_path, bad):
    from mser_lib.runs import checkpoint_dir, run_predictions, stage_checkpoint

    record = {"profile": "quick", "dataset": "synthetic", "config_hash": bad, "seed": 0}
    with pytest.raises(DataFormatError, match="config_hash"):
        checkpoint_dir(tmp_path, record)
    with pytest.raises(DataFormatError, match="config_hash"):
        stage_checkpoint(tmp_path, record, None)
    with pytest.raises(DataFormatError, match="config_hash"):
        run_predictions(record, None, tmp_path, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_record_profile_dataset_and_seed_cannot_leave_the_results_folder(tmp_path, bad):
    from mser_lib.report.analysis import cached_expert_curves
    from mser_lib.runs import checkpoint_dir

    good = {"profile": "quick", "dataset": "synthetic", "config_hash": "0123456789abcdef", "seed": 0}
    assert checkpoint_dir(tmp_path, good) == tmp_path / "quick" / "synthetic" / "checkpoints" / "0123456789abcdef"
    for key in ("profile", "dataset"):
        with pytest.raises(DataFormatError, match="runs.jsonl record"):
            checkpoint_dir(tmp_path, {**good, key: bad})
    with pytest.raises(DataFormatError, match="seed"):
        cached_expert_curves({**good, "seed": "0/../../../escaped"}, None, tmp_path / "tables")


def test_inside_helper():
    from mser_lib.data.validate import inside

    assert inside("/data/f", "a.npy") == Path("/data/f/a.npy")
    assert inside("/data/f", "sub/a.npy", "..b.npy") == Path("/data/f/sub/a.npy/..b.npy")
    for bad in ("../a.npy", "/abs.npy", "a/../../b.npy", "a\0.npy", ".."):
        with pytest.raises(DataFormatError) as ei:
            inside("/data/f", bad, file="labels.pkl", field="videoIDs['v1']")
        assert "labels.pkl" in str(ei.value)
        assert "videoIDs['v1']" in str(ei.value)


@pytest.mark.parametrize("uid", ["../../../secret", "/SECRET_DIR/secret", "v1_1/../../../../secret"])
def test_utterance_ids_cannot_read_files_outside_the_features_folder(tmp_path, uid):
    from test_loaders import make_utt_tree

    from mser_lib.data.utterance import load_utterance_features

    root = tmp_path / "data"
    make_utt_tree(root)
    secret = tmp_path / "secret.npy"                     # a file outside the data folder, loadable
    np.save(secret, np.ones(12, np.float32))
    uid = uid.replace("/SECRET_DIR", str(tmp_path))
    pkl = root / "CMUMOSI_features_raw_2way.pkl"
    tup = safe_load(pkl, encoding="latin1")
    tup[0]["v1"][0] = uid
    dump(tup, pkl, 2)
    with pytest.raises(DataFormatError) as ei:
        load_utterance_features(root)
    assert "CMUMOSI_features_raw_2way.pkl" in str(ei.value)
    assert "videoIDs['v1']" in str(ei.value)
    assert repr(uid + ".npy")[1:-1] in str(ei.value)


# ------------------------------------------------------------------------------------------------
# runs.jsonl: whole lines, reported skips


def test_append_after_a_torn_line_keeps_the_next_record(tmp_path):
    from mser_lib.train import append_jsonl, read_jsonl
    from mser_lib.train.io import SkippedLinesWarning

    path = tmp_path / "runs.jsonl"
    append_jsonl(path, {"k": 1})
    with open(path, "a") as f:
        f.write('{"k": 2, "trunc')                    # a writer killed mid-line
    append_jsonl(path, {"k": 3})
    with pytest.warns(SkippedLinesWarning, match=r"runs\.jsonl.*1 unreadable.*line 2\b"):
        assert read_jsonl(path) == [{"k": 1}, {"k": 3}]
    assert path.read_bytes().endswith(b'{"k": 3}\n')


def test_non_utf8_and_corrupt_lines_are_skipped_and_reported(tmp_path):
    from mser_lib.train import append_jsonl, read_jsonl
    from mser_lib.train.io import SkippedLinesWarning

    path = tmp_path / "runs.jsonl"
    append_jsonl(path, {"k": 1})
    with open(path, "ab") as f:
        f.write(b'{"k": "\xff\xfe"}\n[1, 2]\n\n' + b"[" * 100_000 + b"\n")
    append_jsonl(path, {"k": 5})
    with pytest.warns(SkippedLinesWarning) as rec:
        assert read_jsonl(path) == [{"k": 1}, {"k": 5}]
    msg = str(rec[0].message)
    assert "runs.jsonl" in msg
    assert "3 unreadable" in msg
    assert "line 2, 3, 5" in msg


def test_short_writes_are_completed(tmp_path, monkeypatch):
    import mser_lib.train.io as io_mod
    from mser_lib.train import append_jsonl, read_jsonl

    real_write = os.write
    calls = []

    def short_write(fd, data):
        calls.append(len(data))
        return real_write(fd, data[: max(1, len(data) // 2)])   # the kernel may write less

    monkeypatch.setattr(io_mod.os, "write", short_write)
    path = tmp_path / "runs.jsonl"
    append_jsonl(path, {"k": 1, "pad": "x" * 100})
    append_jsonl(path, {"k": 2})
    monkeypatch.undo()
    assert len(calls) > 2
    assert read_jsonl(path) == [{"k": 1, "pad": "x" * 100}, {"k": 2}]


# ------------------------------------------------------------------ links planted in a results folder
def test_planted_links_in_a_results_folder_are_refused(tmp_path):
    """Issue 24, item 2: a symlinked runs.jsonl.lock was truncated, a symlinked runs.jsonl appended to, a
    symlinked checkpoints/<hash> emptied of its *.pt by --force, a dangling reference snapshot followed."""
    from mser_lib import reproduction
    from mser_lib.experiments import run_one, upsert_record
    from mser_lib.train.io import LinkRefused

    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.txt"
    victim.write_text("keep me\n")
    res = tmp_path / "res" / "smoke" / "synthetic"
    res.mkdir(parents=True)
    record = {"config_hash": "0" * 16, "test": {"mae": 1.0}}
    (res / "runs.jsonl.lock").symlink_to(victim)
    with pytest.raises(LinkRefused, match="runs.jsonl.lock"):
        upsert_record(res / "runs.jsonl", record)
    (res / "runs.jsonl.lock").unlink()
    (res / "runs.jsonl").symlink_to(victim)
    with pytest.raises(LinkRefused, match="runs.jsonl"):
        upsert_record(res / "runs.jsonl", record)
    (res / "runs.jsonl").unlink()
    assert victim.read_text() == "keep me\n"
    # a checkpoint folder linked elsewhere: training (with force) neither writes there nor deletes there
    rec = run_one("baseline", dataset="synthetic", seed=0, profile="smoke", results_dir=tmp_path / "res",
                  train={"epochs": 1}, progress=False)
    ck = res / "checkpoints" / rec["config_hash"]
    import shutil

    shutil.rmtree(ck)
    (outside / "weights.pt").write_bytes(b"not mine")
    ck.symlink_to(outside, target_is_directory=True)
    with pytest.raises(LinkRefused):
        run_one("baseline", dataset="synthetic", seed=0, profile="smoke", results_dir=tmp_path / "res",
                train={"epochs": 1}, progress=False, force=True)
    assert (outside / "weights.pt").read_bytes() == b"not mine"
    ck.unlink()
    # a predictions folder linked elsewhere: a run's stale predictions are deleted there and new ones written, so
    # training refuses before either
    preds = res / "predictions"
    shutil.rmtree(preds)
    (outside / f"{rec['config_hash']}_full.npz").write_bytes(b"not mine either")
    preds.symlink_to(outside, target_is_directory=True)
    with pytest.raises(LinkRefused, match="predictions"):
        run_one("baseline", dataset="synthetic", seed=0, profile="smoke", results_dir=tmp_path / "res",
                train={"epochs": 1}, progress=False, force=True)
    assert (outside / f"{rec['config_hash']}_full.npz").read_bytes() == b"not mine either"
    preds.unlink()
    # a dangling link where the reproduction snapshot goes
    ref = res / "checkpoints" / reproduction.REFERENCE_NAME
    ref.symlink_to(outside / "created-by-mser.jsonl")
    with pytest.raises(LinkRefused):
        reproduction.snapshot_reference(tmp_path / "res", "smoke", "synthetic")
    assert not (outside / "created-by-mser.jsonl").exists()
