"""The Ray executor of ``run_grid`` (issue 13, item 4): the same records as the inline executor, the
same cache, ``runs.jsonl`` written by the driver only; Ray stays an optional extra.

The grid tests need Ray (``pip install -e ".[ray]"``) and skip without it; they start a local Ray
with 2 CPUs."""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mser_lib import experiments, pipeline
from mser_lib.executors import run_grid
from mser_lib.experiments import local_record, runs_path, same_results

ROOT = Path(__file__).resolve().parents[1]
COMMON = {"dataset": "synthetic", "profile": "smoke", "progress": False}
SPECS = ([{"model": "baseline", "seed": s, "overrides": {"modalities": "tav"}} for s in (0, 1)]
         + [{"model": "femf", "seed": s} for s in (0, 1)])


def test_importing_mser_lib_does_not_import_ray():
    code = ("import sys, mser_lib, mser_lib.experiments, mser_lib.pipeline, mser_lib.cli; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=120)


def test_ray_executor_without_ray_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)          # `import ray` fails as when it is not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[ray\]"'):
        run_grid(SPECS, results_dir=tmp_path, executor="ray", **COMMON)
    assert not any(tmp_path.iterdir())                     # failed before any work


def test_run_one_record_false_leaves_runs_jsonl_to_the_caller(tmp_path):
    rec = experiments.run_one("baseline", seed=0, overrides={"modalities": "t"}, results_dir=tmp_path,
                              record=False, **COMMON)
    assert not runs_path(tmp_path, "smoke", "synthetic").exists()
    assert local_record(tmp_path, rec["config"]) == rec     # record.json is written


def test_train_all_passes_executor_and_address(monkeypatch, tmp_path):
    seen = {}

    def fake_grid(specs, **kw):
        seen.update(kw)
        return []

    monkeypatch.setattr(pipeline, "run_grid", fake_grid)
    args = argparse.Namespace(dataset="synthetic", data_dir="", profile="smoke", only=["03"], device="auto",
                              results_dir=str(tmp_path), force=0, executor="ray", ray_address="ray://head:10001")
    pipeline.train_all(args, [0])
    assert seen["executor"] == "ray"
    assert seen["ray_address"] == "ray://head:10001"
    seen.clear()
    args.executor, args.ray_address = None, ""              # default: the pipeline's own choice, no Ray
    pipeline.train_all(args, [0])
    assert seen["executor"] in ("inline", "process")
    assert "ray_address" not in seen


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_reproduce_passes_executor_only_when_set():
    def dry(*extra):
        out = subprocess.run(["make", "-n", "reproduce", *extra], cwd=ROOT, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k not in ("EXECUTOR", "RAY_ADDRESS")},
                             timeout=60).stdout
        return next(line for line in out.replace("\\\n", " ").splitlines() if "mser_lib.pipeline" in line)

    line = dry("EXECUTOR=ray", "RAY_ADDRESS=ray://head:10001")
    assert "--executor ray" in line
    assert '--ray-address "ray://head:10001"' in line
    assert "--executor" not in dry()
    assert "--ray-address" not in dry()


def test_ray_grid_equals_inline_and_is_cached(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    inline = run_grid(SPECS, results_dir=tmp_path / "inline", **COMMON)
    upserts = []
    real_upsert = experiments.upsert_record
    monkeypatch.setattr(experiments, "upsert_record", lambda path, rec: upserts.append(rec) or real_upsert(path, rec))
    out = tmp_path / "ray"
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        first = run_grid(SPECS, results_dir=out, executor="ray", **COMMON)
        assert len(upserts) == len(SPECS)                   # the driver recorded every run, as it arrived
        runs = runs_path(out, "smoke", "synthetic")
        before = runs.read_bytes()
        stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
        again = run_grid(SPECS, results_dir=out, executor="ray", **COMMON)
    finally:
        ray.shutdown()
    # the same runs and results as the inline executor
    assert [r["config_hash"] for r in first] == [r["config_hash"] for r in inline]
    assert all(same_results(a, b) for a, b in zip(inline, first))
    # runs.jsonl: one well-formed line per run, each the record returned; record.json written by the tasks
    lines = runs.read_text().splitlines()
    assert len(lines) == len(SPECS)
    assert runs.read_text().endswith("\n")
    by_hash = {r["config_hash"]: r for r in map(json.loads, lines)}
    assert set(by_hash) == {r["config_hash"] for r in first}
    assert all(by_hash[r["config_hash"]] == r and local_record(out, r["config"]) == r for r in first)
    inline_lines = {r["config_hash"]: r for r in map(json.loads, runs_path(tmp_path / "inline", "smoke",
                                                                           "synthetic").read_text().splitlines())}
    assert all(same_results(inline_lines[h], r) for h, r in by_hash.items())
    # the second grid trains nothing: the same records, no file written
    assert again == first
    assert len(upserts) == len(SPECS)
    assert runs.read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps


def test_a_task_record_under_another_hash_is_refused():
    """A worker that resolved another config (another mser revision or other data on its node) is an error,
    never a record under a hash the driver's cache cannot find."""
    from mser_lib.executors import check_task_record

    rec = {"config_hash": "0123456789abcdef", "model": "baseline"}
    assert check_task_record(rec, "0123456789abcdef") is rec
    with pytest.raises(RuntimeError, match="another mser revision or other data"):
        check_task_record(rec, "fedcba9876543210")
