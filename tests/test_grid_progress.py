"""The process-pool grid: what it shows while it runs, and Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mser_lib.executors import _status_line
from mser_lib.experiments import STATUS_NAME, config_hash, resolve_run, run_dir

ROOT = Path(__file__).resolve().parents[1]


def test_status_line_shows_each_running_run(tmp_path):
    from mser_lib.experiments import get_dataset

    info = get_dataset("synthetic", None, "smoke").info
    jobs = [{"model": "femf", "seed": 3, "tag": "w/o MIM", "profile": "smoke", "dataset": "synthetic",
             "results_dir": str(tmp_path)},
            {"model": "baseline", "seed": 0, "profile": "smoke", "dataset": "synthetic", "results_dir": str(tmp_path)}]
    hashes = {0: config_hash(resolve_run("femf", "synthetic", 3, "smoke", info=info)), 1: "0" * 16}
    d = run_dir(tmp_path, "smoke", "synthetic", hashes[0])
    d.mkdir(parents=True)
    (d / STATUS_NAME).write_text(json.dumps({"model": "femf", "seed": 3, "tag": "w/o MIM", "stage": "full",
                                             "epoch": 12, "epochs": 60, "metric": "mae", "value": 0.8114}))
    line = _status_line(jobs, hashes, [0, 1])
    assert line == "w/o MIM s3: full 12/60 mae 0.811 | baseline s0: starting"


def test_the_line_names_the_runs_training_not_the_one_queued_beside_them(tmp_path):
    """A pool of 2 workers reports 3 calls as running (one waits in its call queue): the line must name the
    2 that write status files, whatever order the pending set gives (a queued LMF showed as 'starting' for
    minutes while the TFN of that worker trained)."""
    from mser_lib.executors import _shown_runs

    jobs = [{"model": m, "seed": s, "profile": "smoke", "dataset": "synthetic", "results_dir": str(tmp_path)}
            for m, s in (("tfn", 0), ("tfn", 2), ("lmf", 3))]
    hashes = {0: "a" * 16, 1: "b" * 16, 2: "c" * 16}
    for n in (0, 1):
        d = run_dir(tmp_path, "smoke", "synthetic", hashes[n])
        d.mkdir(parents=True)
        (d / STATUS_NAME).write_text("{}")
    assert _shown_runs(jobs, hashes, [2, 1, 0], [0, 1, 2], 2) == [0, 1]
    assert _shown_runs(jobs, hashes, [2, 0], [0, 1, 2], 2) == [0, 2]      # a free worker: the queued one shows


def test_a_finished_run_leaves_no_status_file(tmp_path):
    from mser_lib.experiments import run_one

    rec = run_one("baseline", dataset="synthetic", seed=0, profile="smoke", results_dir=tmp_path,
                  train={"epochs": 1}, progress=False)
    assert not (run_dir(tmp_path, "smoke", "synthetic", rec["config_hash"]) / STATUS_NAME).exists()


def test_the_estimate_counts_no_time_for_runs_that_will_not_train(tmp_path):
    """A reproduce lists every run its notebooks need, most of them already finished: those cost nothing in the
    estimate (it said 'about 90 min left' for 10 runs of a few minutes among 117 finished ones)."""
    from mser_lib.executors import expected_cost
    from mser_lib.experiments import run_one

    job = {"model": "baseline", "seed": 0, "profile": "smoke", "dataset": "synthetic", "results_dir": str(tmp_path),
           "train": {"epochs": 1}}
    assert expected_cost(job) == float("inf")                 # never trained, no record: unknown
    run_one(**{k: v for k, v in job.items()}, progress=False)
    assert expected_cost(job) == 0.0                          # finished here: it will be reused
    assert expected_cost({**job, "force": True}) > 0          # unless forced: its record's wall time


def test_the_estimate_learns_from_the_runs_trained_so_far():
    """A probe's estimate is an upper bound: once runs finish, the time left is scaled by how long they took
    against their estimate; reused runs (cost 0) are not among them; an unknown run counts as the mean so far."""
    from mser_lib.executors import _minutes_left

    assert _minutes_left([600.0, 600.0], [], 2) == pytest.approx(10.0)              # nothing finished: as probed
    assert _minutes_left([600.0, 600.0], [(600.0, 300.0)], 2) == pytest.approx(5.0)  # runs take half their estimate
    assert _minutes_left([float("inf")], [], 1) is None                              # nothing tells yet
    assert _minutes_left([float("inf"), 120.0], [(float("inf"), 240.0)], 1) == pytest.approx(6.0)


def test_the_grid_takes_the_costs_the_pipeline_probed(tmp_path):
    """The pipeline probes unrecorded runs before the grid (its cost line): the grid orders and estimates by those
    seconds instead of calling them unknown."""
    from mser_lib.executors import _job_costs, _job_run

    jobs = [{"model": m, "seed": 0, "profile": "smoke", "dataset": "synthetic", "results_dir": str(tmp_path)}
            for m in ("baseline", "femf")]
    assert _job_costs(jobs, None)[0] == [float("inf"), float("inf")]
    hashes = [config_hash(_job_run(j)) for j in jobs]
    known = {hashes[1]: 42.0}
    assert _job_costs(jobs, known) == ([float("inf"), 42.0], hashes)


def test_the_pool_looks_reused_runs_up_itself(tmp_path, monkeypatch):
    """A run with a record it reuses is looked up by the driver: no worker waits behind it (a claims grid of 210
    runs, 145 recorded, showed 0/210 for its first hours while the long runs went first)."""
    from mser_lib import executors
    from mser_lib.experiments import run_one

    jobs = [{"model": "baseline", "seed": s, "profile": "smoke", "dataset": "synthetic", "results_dir": str(tmp_path),
             "train": {"epochs": 1}} for s in (0, 1)]
    recs = [run_one(**j, progress=False) for j in jobs]

    class NoPool:
        def __init__(self, *a, **k):
            pass

        def submit(self, *a, **k):
            raise AssertionError("a reused run went to a worker")

        def shutdown(self, *a, **k):
            pass

    monkeypatch.setattr(executors, "ProcessPoolExecutor", NoPool)
    out = executors.run_grid(jobs, results_dir=tmp_path, executor="process", workers=2, progress=False)
    assert [r["config_hash"] for r in out] == [r["config_hash"] for r in recs]


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_pipeline_stops_its_workers_and_says_how_to_resume(tmp_path, sig):
    env = {**os.environ, "MSER_WORKERS": "2", "MSER_THREADS": "1"}
    # ten seeds: a grid of minutes, so the signal always arrives while it trains (the one-seed smoke grid took
    # 10 s on an idle machine and could end before the signal)
    cmd = [sys.executable, "-m", "mser_lib.pipeline", "--profile", "smoke", "--no-notebooks", "--seeds",
           " ".join(map(str, range(10))), "--results-dir", str(tmp_path), "--executor", "process"]
    # Ctrl-C as in a terminal: a suite started as a background job of a script inherits SIGINT ignored, and a
    # Python started with it ignored never raises KeyboardInterrupt, so the child gets the default back
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    workers: set[int] = set()
    while time.time() < deadline and not workers:     # wait until the pool's workers are training
        time.sleep(0.5)
        workers = _children(proc.pid)
        if proc.poll() is not None:
            pytest.fail("the pipeline ended before it could be interrupted")
    time.sleep(2.0)
    workers |= _children(proc.pid)
    # Ctrl-C in a terminal reaches the whole process group; SIGTERM (a job scheduler) the parent only
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    sent = time.time()
    try:
        out, err = proc.communicate(timeout=60)
    finally:                                  # a pipeline that did not stop is not left behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.time() - sent < 10, "the pipeline took too long to stop"
    assert proc.returncode == 130, (out, err)
    lines = [ln for ln in err.splitlines() if ln.startswith("mser:")]
    assert len(lines) == 1
    assert "interrupted" in lines[0]
    assert "run the same command again to resume" in lines[0]
    assert "Traceback" not in err
    time.sleep(1.0)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()
             and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
    assert not alive, f"workers still running: {alive}"
