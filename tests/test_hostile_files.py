"""Damaged files mser wrote itself, and odd data it reads (issue 24, items 8 and 12).

* A truncated ``checkpoints/<hash>/record.json`` fails with one line naming the file, what was expected and what
  was found, and it fails a grid before any training (the reproduction report reads every ``record.json`` after
  the training); a truncated ``best.pt`` / ``last.pt`` fails the same way.
* An atomic write killed by SIGTERM leaves a temporary file; nothing reads it, and the next successful write of
  the same target removes it, leaving every other file alone. An exception inside a write (Ctrl-C, SystemExit)
  leaves none.
* A modality whose features are all zero in a split loads with one warning naming the file, the split and the
  modality.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_loaders import make_mmsa, write_pickle

from mser_lib import cli, executors, experiments
from mser_lib.data.mmsa import load_mmsa
from mser_lib.data.validate import AllZeroModalityWarning, DataFormatError
from mser_lib.train import io

ROOT = Path(__file__).resolve().parents[1]
RUN = {"model": "baseline", "seed": 0, "profile": "smoke", "dataset": "synthetic"}


def _one_line(exc: BaseException, *parts: str) -> str:
    """The line ``mser`` prints for ``exc`` (``mser: error: ...``), checked to be one line holding ``parts``."""
    assert isinstance(exc, cli.USER_ERRORS)
    msg = cli._message(exc)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    return msg


def _resolved_run() -> dict:
    ds = experiments.get_dataset("synthetic", None, "smoke")
    return experiments.resolve_run(RUN["model"], RUN["dataset"], RUN["seed"], RUN["profile"], info=ds.info)


# ------------------------------------------------------------------------------------------------
# item 8: truncated record.json, best.pt, last.pt


def test_truncated_record_json_names_the_file(tmp_path):
    run = _resolved_run()
    h = experiments.config_hash(run)
    path = experiments.run_dir(tmp_path, "smoke", "synthetic", h) / "record.json"
    path.parent.mkdir(parents=True)
    whole = json.dumps({"config_hash": h, "model": "baseline", "test": {"mae": 1.0}}, indent=2)
    for content, found in ((whole[: len(whole) // 2], "not JSON"), ("", "an empty file"), ("[1, 2]", "a JSON list"),
                           (json.dumps({"config_hash": "0" * 16}), "'0000000000000000'")):
        path.write_text(content)
        with pytest.raises(DataFormatError) as err:
            experiments.find_record(tmp_path, run)
        _one_line(err.value, str(path), "expected", found)
    path.write_text(whole)                                   # a sound one is read as it is
    assert experiments.find_record(tmp_path, run)["config_hash"] == h


def test_a_damaged_record_json_stops_the_grid_before_any_training(tmp_path, monkeypatch):
    """The reproduction report reads every ``checkpoints/*/record.json`` after all the training; a damaged one
    (here of a run the grid does not even train) fails the grid at its first cache look-up instead."""
    other = tmp_path / "smoke" / "synthetic" / "checkpoints" / ("ab" * 8) / "record.json"
    other.parent.mkdir(parents=True)
    other.write_text('{"config_hash": "abababababababab", "test": {"ma')

    def no_training(*a, **k):
        raise AssertionError("trained before the damaged record.json was refused")

    monkeypatch.setattr(experiments, "fit_model", no_training)
    for force in (False, True):
        with pytest.raises(DataFormatError) as err:
            executors.run_grid([{"model": "baseline", "seed": 0}], results_dir=tmp_path, dataset="synthetic",
                                 profile="smoke", progress=False, force=force)
        _one_line(err.value, str(other), "expected a run's record", "not JSON")


@pytest.mark.parametrize("name", ["best.pt", "last.pt"])
def test_truncated_checkpoint_names_the_file(tmp_path, name):
    """Already one line on the code this file came with; kept as a guard."""
    path = tmp_path / "main" / name
    io.atomic_torch_save({"model": {"w": torch.zeros(64)}, "history": []}, path)
    whole = path.read_bytes()
    for size in (0, 10, len(whole) // 2, len(whole) - 3):
        path.write_bytes(whole[:size])
        with pytest.raises(DataFormatError) as err:
            io.load_checkpoint(path)
        _one_line(err.value, str(path), "expected a checkpoint", "found")


# ------------------------------------------------------------------------------------------------
# item 12: temporary files of atomic writes

KILLED_WRITER = """
import os, signal, sys
from mser_lib.train import io
def killed(fd):                       # SIGTERM between writing the temporary file and replacing the target
    os.kill(os.getpid(), signal.SIGTERM)
os.fsync = killed
io.atomic_write_json(sys.argv[1], {"config_hash": "x"})
"""


def _temps(folder: Path, name: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


def test_temp_file_of_a_writer_killed_by_sigterm_is_removed_by_the_next_write(tmp_path):
    folder = tmp_path / "checkpoints" / ("cd" * 8)
    target = folder / "record.json"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], cwd=ROOT, capture_output=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGTERM, proc.stderr.decode()[-2000:]
    left = _temps(folder, "record.json")
    assert len(left) == 1
    assert not target.exists()
    # nothing reads it: not a record, not a checkpoint
    assert list(folder.parent.glob("*/record.json")) == []
    assert list(folder.rglob("*.pt")) == []

    io.atomic_write_json(target, {"config_hash": "cd" * 8})
    assert json.loads(target.read_text()) == {"config_hash": "cd" * 8}
    assert _temps(folder, "record.json") == []


def test_removing_stale_temp_files_leaves_every_other_file_alone(tmp_path):
    folder = tmp_path
    target = folder / "record.json"
    old = time.time() - 10 * io.STALE_TEMP_AGE_S
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    dead_pid = int(dead.stdout)                                                 # a process of this host, ended
    stale = [folder / f".record.json.{io._HOST}-{dead_pid}-abcdefgh.tmp",       # a dead writer of this host
             folder / ".record.json.zyxwvuts.tmp"]                              # an old one without a pid
    keep = {
        folder / "notes.txt": b"mine",                                          # not a temporary file
        folder / ".other.json.abcdefgh.tmp": b"another target's",              # another target (old)
        folder / f".record.json.x.{io._HOST}-{dead_pid}-abcdefgh.tmp": b"",    # the target 'record.json.x'
        folder / ".record.json.abcdefgh.tmp": b"young, no pid",                # a writer of unknown liveness
        folder / f".record.json.{io._HOST}-{os.getppid()}-abcdefgh.tmp": b"",  # a live writer of this host
        folder / f".record.json.{io._HOST}-{os.getpid()}-abcdefgh.tmp": b"",   # this process (another thread)
        folder / f".record.json.{'0' * 8}-{dead_pid}-abcdefgh.tmp": b"",       # another host's writer (young)
    }
    for p in stale:
        p.write_bytes(b"{")
    os.utime(stale[1], (old, old))
    for p, data in keep.items():
        p.write_bytes(data)
    os.utime(folder / ".other.json.abcdefgh.tmp", (old, old))
    link = folder / ".record.json.linkxxxx.tmp"                                # a link: never removed
    link.symlink_to(folder / "notes.txt")
    os.utime(link, (old, old), follow_symlinks=False)

    io.atomic_write_json(target, {"config_hash": "x"})
    assert not any(p.exists() for p in stale)
    for p, data in keep.items():
        assert p.read_bytes() == data, p
    assert link.is_symlink()
    assert sorted(_temps(folder, "record.json")) == sorted(
        [p for p in keep if p.name.startswith(".record.json.")] + [link])


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, OSError])
def test_an_exception_inside_an_atomic_write_leaves_no_temp_file(tmp_path, monkeypatch, exc):
    """Already so on the code this file came with; kept as a guard."""
    target = tmp_path / "last.pt"
    target.write_bytes(b"before")

    def fail(fd):
        raise exc()

    monkeypatch.setattr(io.os, "fsync", fail)
    with pytest.raises(exc):
        io.atomic_torch_save({"w": torch.zeros(3)}, target)
    assert target.read_bytes() == b"before"
    assert _temps(tmp_path, "last.pt") == []


# ------------------------------------------------------------------------------------------------
# item 12: an all-zero modality


def test_all_zero_modality_loads_with_one_warning_naming_file_split_modality(tmp_path):
    data = make_mmsa("mosi", aligned=True)
    data["train"]["audio"] = np.zeros_like(data["train"]["audio"])
    for s in ("train", "valid", "test"):
        data[s]["vision"] = np.zeros_like(data[s]["vision"])
    path = write_pickle(data, tmp_path / "aligned_50.pkl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_mmsa(path, "mosi")
    zero = [w for w in caught if issubclass(w.category, AllZeroModalityWarning)]
    assert len(zero) == 1
    assert issubclass(AllZeroModalityWarning, UserWarning)
    msg = str(zero[0].message)
    assert str(path) in msg
    assert "\n" not in msg
    assert "modality 'audio' in split(s) 'train';" in msg
    assert "modality 'vision' in split(s) 'train', 'valid', 'test'" in msg
    assert not ds.train.audio.any()
    assert ds.test.audio.any()

    sound = write_pickle(make_mmsa("mosi", aligned=True), tmp_path / "sound" / "aligned_50.pkl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_mmsa(sound, "mosi")
    assert not [w for w in caught if issubclass(w.category, AllZeroModalityWarning)]


def _zero_warnings(load) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load()
    return [str(w.message) for w in caught if issubclass(w.category, AllZeroModalityWarning)]


def test_all_zero_modality_warns_in_the_bclstm_and_utterance_loaders_too(tmp_path):
    from test_loaders import DEFAULT_FEATURES, make_bclstm_tree, make_utt_tree

    from mser_lib.data.bclstm import load_mosi_bclstm
    from mser_lib.data.utterance import load_utterance_features

    make_bclstm_tree(tmp_path / "bclstm")
    assert _zero_warnings(lambda: load_mosi_bclstm(tmp_path / "bclstm", standardize=False)) == []
    for part in ("train", "test"):                        # every audio value 0, the label column kept
        path = tmp_path / "bclstm" / f"audio_{part}0.csv"
        rows = [line.split(",") for line in path.read_text().splitlines()]
        path.write_text("".join(",".join(["0.0"] * (len(r) - 1) + r[-1:]) + "\n" for r in rows))
    msg = _zero_warnings(lambda: load_mosi_bclstm(tmp_path / "bclstm", standardize=False))
    assert len(msg) == 1
    assert "modality 'audio' in split(s) 'train', 'valid', 'test'" in msg[0]
    assert str(tmp_path / "bclstm") in msg[0]

    make_utt_tree(tmp_path / "utt")
    for f in (tmp_path / "utt" / "features" / DEFAULT_FEATURES["vision"]).glob("*.npy"):
        np.save(f, np.zeros_like(np.load(f)))
    msg = _zero_warnings(lambda: load_utterance_features(tmp_path / "utt"))
    assert len(msg) == 1
    assert "modality 'vision'" in msg[0]
    assert "'audio'" not in msg[0]
