"""Many runs at once: :func:`run_grid` and its executors.

``run_grid`` takes a list of runs (each a dict of :func:`mser_lib.experiments.run_one` arguments), trains
each distinct one once (a run listed twice, by two grids, is trained once) and returns their records in the
order given. Three executors:

* ``"inline"``: one after the other in this process, with a progress bar;
* ``"process"``: a local pool of one-thread workers, the longest runs first (:func:`expected_cost`), a
  status line naming what each worker trains (model, seed, stage, epoch of total, its selection metric,
  from the ``status.json`` each run rewrites after every epoch) and an estimate of the time left; Ctrl-C or
  SIGTERM stops the workers within seconds (:class:`GridInterrupted`);
* ``"ray"``: one Ray task per run that is not cached, local or on a cluster (Ray is the optional extra
  ``mser_lib[ray]``). The tasks train and write their checkpoints and ``record.json``; only the driver
  (the process that called ``run_grid``) writes ``runs.jsonl``.

Caching, resuming and the records themselves are :mod:`mser_lib.experiments`'s: every executor ends in
:func:`~mser_lib.experiments.run_one`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch
from tqdm.auto import tqdm

from .experiments import (
    DEFAULT_RESULTS,
    STATUS_NAME,
    committed_record,
    config_hash,
    find_record,
    get_dataset,
    load_profile,
    resolve_run,
    run_dir,
    run_one,
    runs_path,
    settle_record,
    upsert_record,
)
from .train import resolve_device
from .train.io import atomic_write_json


def _has_status(job: dict, chash: str) -> bool:
    """Whether the run of ``job`` has written its status file (it is training, or was)."""
    return (run_dir(job["results_dir"], job.get("profile", "quick"), job.get("dataset", "synthetic"), chash)
            / STATUS_NAME).exists()


def _shown_runs(jobs: list[dict], hashes: list[str] | dict[int, str], running: list[int], order: list[int],
                workers: int) -> list[int]:
    """The ``workers`` runs the status line names. A process pool marks one call more than it has workers as
    running before a worker takes it, so the runs that have written their status file come first (they are
    the ones training), then the others in submission order."""
    rank = {n: k for k, n in enumerate(order)}
    return sorted(running, key=lambda n: (not _has_status(jobs[n], hashes[n]), rank.get(n, 0)))[:workers]


def _status_line(jobs: list[dict], hashes: list[str] | dict[int, str], running: list[int]) -> str:
    """One line with what each running job is doing, from its status file."""
    parts = []
    for n in running:
        job = jobs[n]
        path = run_dir(job["results_dir"], job.get("profile", "quick"), job.get("dataset", "synthetic"),
                       hashes[n]) / STATUS_NAME
        try:
            st = json.loads(path.read_text())
        except (OSError, ValueError):
            parts.append(f"{job.get('tag') or job['model']} s{job.get('seed', 0)}: starting")
            continue
        value = st.get("value")
        shown = f" {st['metric']} {value:.3f}" if isinstance(value, (int, float)) else ""
        parts.append(f"{st.get('tag') or st['model']} s{st['seed']}: {st['stage']} {st['epoch']}/{st['epochs']}{shown}")
    return " | ".join(parts)


class GridInterrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped a grid: its workers are stopped, the finished runs are recorded."""

    def __init__(self, finished: int, total: int):
        self.finished, self.total = finished, total
        super().__init__(f"interrupted: {finished} of {total} runs finished and recorded; an unfinished run keeps "
                         "its last epoch's checkpoint (last.pt); run the same command again to resume")


#: Seconds that stopping an interrupted pool may take before the process exits anyway (:func:`_pool_grid`).
STOP_TIMEOUT_S = 5.0


def _exit_now(message: str) -> None:
    """The last resort of an interrupted grid whose pool did not stop in time: say what was kept, exit 130."""
    print(f"\nmser: {message}", file=sys.stderr, flush=True)
    os._exit(130)


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them (a terminal sends it to the whole group),
    and die on SIGTERM (the parent's handler, inherited by the fork, would keep them alive)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):   # and die with the parent, however it ends (no orphan holds its pipes)
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)    # PR_SET_PDEATHSIG
        except OSError:
            pass


def _pool_grid(jobs: list[dict], order: list[int], workers: int, progress: bool, costs: list[float],
               hashes: list[str]) -> list[dict]:
    """The process-pool executor of :func:`run_grid`: one-thread workers, the longest runs first, a line
    showing each running run (model, seed, stage, epoch of total, its selection metric) and an estimate of
    the time left from ``costs`` and ``hashes`` (:func:`_job_costs`); Ctrl-C or SIGTERM stops the workers within
    seconds (:class:`GridInterrupted`)."""
    done: list = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc="runs", disable=not progress)
    line = tqdm(total=0, position=1, bar_format="{desc}", disable=not progress, leave=False)
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
    previous = signal.getsignal(signal.SIGTERM)

    def _term(signum, frame):
        raise KeyboardInterrupt

    in_main = True
    try:
        signal.signal(signal.SIGTERM, _term)
    except ValueError:          # not the main thread: leave SIGTERM as it is
        in_main = False
    finished: list[tuple[float, float]] = []    # (expected, taken) seconds of each run trained so far
    started = time.perf_counter()
    try:
        # runs that will not train (a record they reuse: cost 0) are looked up here, so that the bar counts them at
        # once and no worker waits behind them
        for n in order:
            if costs[n] == 0:
                done[n] = run_one(**jobs[n])
                bar.update(1)
        futures = {pool.submit(_worker, jobs[n]): n for n in order if done[n] is None}   # longest first
        pending = set(futures)
        while pending:
            over, pending = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
            for fut in over:
                n = futures[fut]
                done[n] = fut.result()
                if costs[n] > 0:        # a reused run returns at once: its record's time says nothing of this grid
                    finished.append((costs[n], float(done[n].get("wall_time_s") or 0.0)))
                bar.update(1)
            if progress:
                running = _shown_runs(jobs, hashes, [futures[f] for f in pending if f.running()], order, workers)
                line.set_description_str(_status_line(jobs, hashes, running))
                left = [futures[f] for f in pending]
                minutes = _minutes_left([costs[n] for n in left], finished, workers)
                if left and minutes is not None:
                    bar.set_postfix_str(f"about {minutes:.0f} min left" if minutes >= 1 else "under a minute left")
    except KeyboardInterrupt:
        stopped = GridInterrupted(sum(d is not None for d in done), len(jobs))
        # a watchdog: the signal can land while the pool holds one of its locks or a worker is starting, and
        # stopping it then can wait forever (seen once, on a loaded machine); every record is already written
        watchdog = threading.Timer(STOP_TIMEOUT_S, _exit_now, [str(stopped)])
        watchdog.daemon = True
        watchdog.start()
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
        line.close()
        watchdog.cancel()
        raise stopped from None
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    pool.shutdown(wait=True)
    bar.close()
    line.close()
    if progress:
        print(f"   {len(jobs)} runs in {time.perf_counter() - started:.0f} s", flush=True)
    return done


def _minutes_left(expected: list[float], finished: list[tuple[float, float]], workers: int) -> float | None:
    """The grid's time left in minutes: the ``expected`` seconds of the runs not finished (infinity: unknown), scaled
    by how long the runs trained so far took against their expectation (``finished``: ``(expected, taken)`` pairs;
    a probe's estimate is an upper bound, and the machine's load moves every run), over ``workers``. An unknown run
    counts as the mean time taken so far; None while nothing tells (an unknown run and no run finished)."""
    known = [(e, t) for e, t in finished if e != float("inf") and e > 0]
    ratio = sum(t for _, t in known) / sum(e for e, _ in known) if known else 1.0
    mean = sum(t for _, t in finished) / len(finished) if finished else None
    est = [e * ratio if e != float("inf") else mean for e in expected]
    if any(e is None for e in est):
        return None
    return sum(est) / max(1, workers) / 60.0


def _run_kwargs(spec: dict, common: dict) -> dict:
    return {**common, **spec}


def _worker(kwargs: dict) -> dict:
    torch.set_num_threads(1)
    return run_one(**kwargs)


def _job_run(job: dict) -> dict:
    """The resolved run (:func:`resolve_run`) of a grid job, a dict of :func:`run_one` arguments, with
    :func:`run_one`'s defaults."""
    dataset, profile = job.get("dataset", "synthetic"), job.get("profile", "quick")
    ds = get_dataset(dataset, job.get("data_dir"), profile, job.get("data_kwargs"))
    return resolve_run(job["model"], dataset, job.get("seed", 0), profile, job.get("overrides"), job.get("train"),
                       job.get("data_kwargs"), job.get("eval_missing"), job.get("device"), info=ds.info)


def expected_cost(job: dict, run: dict | None = None) -> float:
    """A run's expected training time, for scheduling and the grid's estimate: 0 when the run will not train
    (a record it reuses exists: :func:`find_record` with the job's ``reuse``, unless ``force``), else its
    committed record's wall time when ``runs.jsonl`` has one, else infinity (unknown runs first). ``run``: the
    job's resolved run when the caller has it (:func:`_job_run`)."""
    try:
        results_dir, run = job.get("results_dir", DEFAULT_RESULTS), run or _job_run(job)
        if not job.get("force") and find_record(results_dir, run, job.get("reuse", "local")) is not None:
            return 0.0
        rec = committed_record(results_dir, run)
    except Exception:   # an estimate only: a bad job fails later, with its own error
        return float("inf")
    return float(rec["wall_time_s"]) if rec and rec.get("wall_time_s") is not None else float("inf")


def _job_costs(jobs: list[dict], known: dict | None) -> tuple[list[float], list[str]]:
    """Each job's expected seconds (``known[config hash]`` where given, else :func:`expected_cost`) and config hash,
    each job's run resolved once. A job that does not resolve gets infinity and ``"unknown"`` (an estimate and a
    status line only: it fails in its worker, with its own error)."""
    costs, hashes = [], []
    for job in jobs:
        try:
            run = _job_run(job)
            h = config_hash(run)
        except Exception:
            costs.append(float("inf"))
            hashes.append("unknown")
            continue
        costs.append(float(known[h]) if known and h in known else expected_cost(job, run))
        hashes.append(h)
    return costs, hashes


RAY_EXTRA_HINT = ('executor="ray" needs Ray, the optional extra mser_lib[ray]: pip install -e ".[ray]" '
                  '(or pip install "ray>=2.9")')


def _import_ray():
    """``ray``, imported only when a grid asks for it (importing mser_lib never imports Ray)."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(RAY_EXTRA_HINT) from e
    return ray


def ray_resources(job: dict, run: dict | None = None) -> dict:
    """The Ray request of one grid job: ``num_cpus`` = its profile's ``threads`` (1 when unset) and
    ``num_gpus`` = 1 when its device resolves to CUDA. ``"auto"`` resolves on the driver: on a cluster
    whose head has no GPU, name the device (``device="cuda"``, ``DEVICE=cuda``). ``run``: the job's
    resolved run when the caller has it (:func:`_job_run`)."""
    threads = load_profile(job.get("profile", "quick")).get("threads") or 1
    on_cuda = resolve_device((run or _job_run(job))["train"]["device"]).type == "cuda"
    return {"num_cpus": int(threads), "num_gpus": 1 if on_cuda else 0}


def _ray_task(job: dict) -> dict:
    """One run as a Ray task: trains (checkpoints and ``record.json`` in the run's own folder) and
    returns the record; ``runs.jsonl`` is left to the driver."""
    return run_one(**{**job, "record": False})


def check_task_record(rec: dict, expected_hash: str) -> dict:
    """A record a Ray task returned, refused unless it is the run the driver resolved: a worker that
    imported another mser revision, or loaded other data, would resolve another config and record the
    run under another hash, which the driver's cache would never find."""
    if rec.get("config_hash") != expected_hash:
        raise RuntimeError(f"a Ray task recorded run {rec.get('config_hash')} where the driver resolved "
                           f"{expected_hash}: the worker resolved another config (another mser revision or other "
                           "data on that node?). Run the same mser revision and data on every node; the record "
                           "was not added to runs.jsonl")
    return rec


def _ray_grid(jobs: list[dict], order: list[int], progress: bool, ray_address: str | None) -> list[dict]:
    """The Ray executor of :func:`run_grid` (see there): cache look-ups and ``runs.jsonl`` in this
    process, one Ray task per run that is not cached."""
    ray = _import_ray()
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address)
        else:   # a fresh local Ray, never a stale one found in /tmp/ray
            ray.init(address="local", include_dashboard=False)
    try:
        task = ray.remote(_ray_task)
        done: list = [None] * len(jobs)
        pending = {}
        for n in order:                                   # submitted longest first
            job = jobs[n]
            run = _job_run(job)
            rec = None if job.get("force") else find_record(job["results_dir"], run, job.get("reuse", "local"))
            if rec is not None:
                done[n] = rec
                # A run finished by an earlier grid whose driver stopped before recording it: add it
                # (only when runs.jsonl has no record of its hash; an existing record is left alone).
                if committed_record(job["results_dir"], run) is None:
                    upsert_record(runs_path(job["results_dir"], run["profile"], run["dataset"]), rec)
                continue
            opts = ray_resources(job, run)
            h = config_hash(run)
            name = f"mser {job['model']} seed {job.get('seed', 0)} {h}"
            pending[task.options(name=name, **opts).remote(job)] = (n, h)
        errors = []
        with tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc="runs", disable=not progress) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    n, h = pending.pop(ref)
                    try:
                        rec = check_task_record(ray.get(ref), h)
                    except Exception as e:                # let the other runs finish and be recorded
                        errors.append((jobs[n], e))
                        continue
                    rec = settle_record(jobs[n]["results_dir"], rec)
                    atomic_write_json(run_dir(jobs[n]["results_dir"], rec["profile"], rec["dataset"],
                                              rec["config_hash"]) / "record.json", rec)
                    done[n] = rec
                    bar.update()
        if errors:
            job, err = errors[0]
            raise RuntimeError(f"{len(errors)} of {len(jobs)} Ray runs failed; the first: {job['model']} "
                               f"seed {job.get('seed', 0)} overrides {job.get('overrides')}: {err}") from err
        return done
    finally:
        if started:
            ray.shutdown()


EXECUTORS = ("inline", "process", "ray")


def run_grid(runs: list[dict], results_dir=DEFAULT_RESULTS, executor: str = "inline", workers: int = 2,
             progress: bool = True, ray_address: str | None = None, costs: dict | None = None,
             **common) -> list[dict]:
    """Run every run of ``runs`` (each a dict of :func:`run_one` arguments), cached and resumable.

    Args:
        runs: e.g. ``[{"model": "femf", "seed": 0, "overrides": {"use_fae": False}}, ...]``.
        results_dir: where records and checkpoints go.
        executor: ``"inline"`` (in this process), ``"process"`` (a pool of ``workers``) or ``"ray"``
            (one Ray task per run; see below). The pool and Ray start the longest runs first, by
            :func:`expected_cost`, so that the workers finish together.
        ray_address: the Ray cluster to use (e.g. ``"ray://head:10001"``, ``"auto"``); default
            ``$RAY_ADDRESS``, else a local Ray started for this grid (all cores) and shut down after it.
            When Ray is already initialised in this process, that connection is used as it is (so
            ``ray.init(..., runtime_env=...)`` before the grid sets up the workers' environment).
        costs: expected seconds by config hash (:class:`mser_lib.estimate.GridCost`'s ``seconds``, which the
            pipeline has already probed), for the order and the estimate; a run it lacks gets
            :func:`expected_cost` (its committed record's time, else unknown).
        **common: arguments shared by every run (``dataset``, ``profile``, ``data_dir``, ``reuse`` ...).

    The Ray executor (the optional extra ``pip install -e ".[ray]"``):

    * This process (the driver) looks every run up in the cache exactly as :func:`run_one` does
      (:func:`find_record`, under ``reuse``; ``force`` skips it): cached runs start no task.
    * Each other run is one task requesting :func:`ray_resources` (``num_cpus`` = the profile's
      threads, ``num_gpus=1`` on CUDA). The task calls :func:`run_one` with ``record=False``: it
      trains, resumes from ``last.pt``, and writes checkpoints and ``record.json`` in the run's own
      folder under ``results_dir``.
    * The driver alone writes ``runs.jsonl``: it upserts each record as its task returns
      (:func:`upsert_record`: whole lines, one writer). A failed task does not stop the others; the
      grid raises once every task has ended, with everything that finished recorded.
    * On a cluster, every node needs the same mser revision and data at the same paths as the driver,
      and ``results_dir`` (an absolute path) on a filesystem shared by all nodes. **Without a shared
      filesystem** the records still reach the driver's ``runs.jsonl``, but checkpoints and
      ``record.json`` stay on the worker that trained the run: the driver's machine does not count the
      run as finished (``reuse="local"``), so a later grid or notebook here retrains it, and steps that
      need a checkpoint retrain it too.

    Returns:
        The records, in the order of ``runs`` (a run listed twice is trained once and its record
        returned twice).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    all_jobs = [_run_kwargs(r, {"results_dir": results_dir, "progress": False, **common}) for r in runs]
    # Identical runs listed twice (grids share runs; ``tag`` is only a label) are trained once, so that
    # two pool workers never train the same config hash at the same time.
    # (empty overrides and no overrides are the same run)
    keys = [json.dumps({k: v for k, v in j.items() if k != "tag" and not (v is None or v == {} or v == [])},
                       sort_keys=True, default=str) for j in all_jobs]
    first = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    jobs = [all_jobs[i] for i in sorted(set(first.values()))]
    index = {keys[i]: n for n, i in enumerate(sorted(set(first.values())))}
    if executor == "inline":
        done = []
        bar = tqdm(jobs, desc="runs", disable=not progress)
        for job in bar:
            bar.set_postfix(model=job["model"], seed=job.get("seed", 0))
            done.append(run_one(**job))
    elif executor == "ray":
        _import_ray()                                     # fail before any work when the extra is missing
        costs, _ = _job_costs(jobs, costs)
        done = _ray_grid(jobs, sorted(range(len(jobs)), key=lambda n: -costs[n]), progress, ray_address)
    else:
        costs, hashes = _job_costs(jobs, costs)
        done = _pool_grid(jobs, sorted(range(len(jobs)), key=lambda n: -costs[n]), workers, progress, costs, hashes)
    return [done[index[k]] for k in keys]

