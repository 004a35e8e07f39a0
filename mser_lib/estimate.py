"""What a grid will cost before it starts, on this machine, for data no record has timed.

A grid's runs are timed by their committed records when there are some (:func:`mser_lib.executors.expected_cost`);
on new data (a user's MMSA pickle, say) there are none, and a reproduce could train for hours before its first
run finishes and the first estimate appears. :func:`probe` measures one model on the data instead: a few
training batches of each stage and an evaluation pass over a few batches, on one thread (the grid's workers
train on one each), then :func:`run_seconds` scales them to a run's full schedule:

    seconds = prepare + sum over stages of  epochs x (train per sample x n_train
                                                       + evaluation per sample x n_scored + checkpoint)

where ``n_scored`` is the validation split, plus the test split under cross-fitted selection (it predicts the
test split after every epoch). The result is an upper bound: early stopping ends most runs sooner (on the
built-in benchmark, ``benchmarks/mmsa_full_size.py`` sets the estimates beside the recorded times).
:func:`grid_seconds` schedules the runs longest first on the workers, as the process pool does.
"""

from __future__ import annotations

import dataclasses
import io
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import MultimodalDataset
from .models import build_model
from .train import TrainConfig, set_seed
from .train.seeding import usable_device
from .train.trainer import _make_optimizer, predict, train_passes

#: Training batches timed per stage (after one untimed warm-up batch).
PROBE_BATCHES = 3


@dataclasses.dataclass
class Probe:
    """One model's measured costs on one dataset (seconds, one thread).

    ``prepare_per_sample``: the model's ``prepare`` (Atsuko's band fitting) per training sample;
    ``stages``: ``{stage: (train seconds per sample, evaluation seconds per sample, checkpoint seconds)}``,
    stage ``None`` for a model trained in one stage."""

    model: str
    prepare_per_sample: float
    stages: dict


def _subset(split, n: int, seed: int):
    idx = np.random.default_rng(seed).permutation(len(split))[:max(1, min(n, len(split)))]
    return split.subset(np.sort(idx))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def probe(run: dict, ds: MultimodalDataset, batches: int = PROBE_BATCHES) -> Probe:
    """Time the resolved run ``run`` (:func:`mser_lib.experiments.resolve_run`) on ``ds``: for each stage one
    untimed warm-up batch, then ``batches`` training batches (forward, loss, backward, step), an evaluation
    pass over as many validation samples, and one checkpoint written to memory, on the run's device (on a CPU
    with one thread, as a grid's workers train; the caller's thread count is restored). Nothing is written to
    disk."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig(**{**run["train"], "progress": False})
        device = usable_device(cfg.device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        set_seed(run["seed"], cfg.deterministic)
        net = build_model(run["model"], ds.info, run["model_preset"], **run["overrides"]).to(device)
        n = cfg.batch_size * batches
        train, warm = _subset(ds.train, n, 1), _subset(ds.train, cfg.batch_size, 2)
        valid = _subset(ds.valid, max(n, 1), 3)
        prepare = 0.0
        if hasattr(net, "prepare"):
            small = dataclasses.replace(ds, train=train)
            prepare = _timed(lambda: net.prepare(small)) / len(train)
        stages = {}
        for stage in (list(net.stages()) if hasattr(net, "stages") else [None]):
            if stage is not None:
                net.set_stage(stage)
            params = [p for p in net.parameters() if p.requires_grad]
            opt = _make_optimizer(params, cfg, net)
            with torch.enable_grad():
                train_passes(net, opt, params, warm, ds.info, cfg, 0, 0, device)       # warm-up, untimed
                sync()
                t0 = time.perf_counter()
                train_passes(net, opt, params, train, ds.info, cfg, 0, 1, device)
                sync()
            t1 = time.perf_counter()
            predict(net, valid, ds.info, cfg.eval_batch_size, device, amp=cfg.amp)
            sync()
            t2 = time.perf_counter()
            torch.save({"model": net.state_dict(), "optimizer": opt.state_dict()}, io.BytesIO())
            t_train, t_eval, t_ckpt = t1 - t0, t2 - t1, time.perf_counter() - t2
            stages[stage] = (t_train / len(train), t_eval / len(valid), t_ckpt)
        return Probe(run["model"], prepare, stages)
    finally:
        torch.set_num_threads(threads)


def run_seconds(run: dict, ds: MultimodalDataset, p: Probe) -> float:
    """The wall time of ``run`` on ``ds`` at its full schedule (every epoch of every stage, no early stop), from
    the probe ``p`` of its model (the probe's per-sample costs; a run's own overrides are not re-measured)."""
    train = run["train"]
    epochs, stage_epochs = int(train.get("epochs") or 0), train.get("stage_epochs") or {}
    scored = len(ds.valid) + (len(ds.test) if train.get("selection") == "crossfit" else 0)
    total = p.prepare_per_sample * len(ds.train)
    for stage, (per_train, per_eval, ckpt) in p.stages.items():
        n_ep = int(stage_epochs.get(stage, epochs)) if stage is not None else epochs
        total += n_ep * (per_train * len(ds.train) + per_eval * scored + ckpt)
    return total + per_eval * len(ds.test)          # the final test scoring


def grid_seconds(costs: list[float], workers: int) -> float:
    """The wall time of runs with these ``costs`` on ``workers`` workers, longest first (each run to the worker
    that frees first), as :func:`mser_lib.executors.run_grid`'s process pool schedules them."""
    free = [0.0] * max(1, int(workers))
    for c in sorted(costs, reverse=True):
        k = min(range(len(free)), key=free.__getitem__)
        free[k] += c
    return max(free)


def hours(seconds: float) -> str:
    """``"about 3.2 h"``, ``"about 41 min"`` or ``"under a minute"``."""
    if seconds >= 5400:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 60:.0f} min" if seconds >= 60 else "under a minute"


@dataclasses.dataclass
class GridCost:
    """The expected training time of each distinct run of a grid (``{config hash: seconds}``, 0 for a run this
    machine has finished) and where the times came from: ``recorded`` runs timed by their committed records,
    ``probed`` runs estimated from probes of ``models`` models that took ``probe_s`` seconds."""

    seconds: dict
    seeds: dict
    recorded: int = 0
    probed: int = 0
    models: int = 0
    probe_s: float = 0.0

    def wall(self, workers: int, seeds: set | None = None, runs: set | None = None) -> float:
        """The grid's wall time on ``workers`` workers; with ``seeds`` or ``runs`` (config hashes), of those runs
        only."""
        return grid_seconds([c for h, c in self.seconds.items()
                             if (seeds is None or self.seeds[h] in seeds) and (runs is None or h in runs)], workers)


def grid_cost(jobs: list[dict], ds: MultimodalDataset, progress: bool = True) -> GridCost:
    """The expected cost of each distinct run of ``jobs`` (:func:`mser_lib.executors.run_grid`'s job dicts, with
    ``results_dir``, ``dataset``, ``profile``...): :func:`mser_lib.executors.expected_cost` where a record
    times it, else :func:`run_seconds` from a :func:`probe` on ``ds`` of the first run of its model (one probe per
    model, model preset and batch size: the seeds, the schedules and the variants share it, so a variant that
    drops a modality or a part is estimated at its full model's cost, another reason for an upper bound)."""
    from .executors import _job_run, expected_cost
    from .experiments import config_hash

    out = GridCost({}, {})
    probes: dict[str, Probe] = {}
    todo = []
    for job in jobs:
        run = _job_run(job)
        h = config_hash(run)
        if h in out.seconds:
            continue
        out.seeds[h] = run["seed"]
        c = expected_cost(job, run)
        out.seconds[h] = c
        if c == float("inf"):
            todo.append((h, run))
        else:
            out.recorded += c > 0
    t0 = time.perf_counter()
    bar = tqdm(todo, desc="cost probes", unit="run", disable=not progress or not todo, leave=False)
    for h, run in bar:
        key = repr((run["model"], run["model_preset"], run["train"]["batch_size"]))
        if key not in probes:
            bar.set_postfix_str(f"model {len(probes) + 1}: {run['model']}")
            probes[key] = probe(run, ds)
        out.seconds[h] = run_seconds(run, ds, probes[key])
    bar.close()
    out.probed, out.models, out.probe_s = len(todo), len(probes), time.perf_counter() - t0
    return out
