"""Runs as records: resolve a run's config, train it once, cache it by config hash, resume it.

A *run* is (model, variant overrides, dataset, seed, profile, missing-modality evaluation).
``run_one`` resolves it into a full config (profile YAML in ``mser_lib/configs`` + model preset +
overrides), hashes that config, and

* returns the recorded result if ``runs.jsonl`` already holds that hash (unless ``force``);
* otherwise trains with :func:`mser_lib.train.fit_model`, checkpointing into
  ``<results>/<profile>/<dataset>/checkpoints/<hash>/`` so that an interrupted run resumes, and
  appends one record to ``<results>/<profile>/<dataset>/runs.jsonl``.

A record holds: the config and its hash, seed, git revision, library versions, device, wall time,
the epoch chosen on VALID, valid and test metrics (and test metrics under each requested
missing-modality condition), the parameter count and a compact training history. Tables and
figures are built from these records only.

``run_grid`` runs a list of runs with a progress bar, in-process by default or on a process pool.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from . import __version__
from .data import MissingModality, MultimodalDataset, load_dataset
from .models import build_model, count_parameters
from .models.registry import build_config
from .train import TrainConfig, append_jsonl, evaluate, fit_model, read_jsonl, resolve_device, set_seed

DEFAULT_RESULTS = Path("results")
_DATA_CACHE: dict = {}


def load_profile(name: str) -> dict:
    """The profile YAML ``mser_lib/configs/<name>.yaml`` as a dict (``smoke``, ``quick``, ``paper``)."""
    path = resources.files("mser_lib.configs") / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name[:-5] for p in resources.files("mser_lib.configs").iterdir()
                       if p.name.endswith(".yaml"))
        raise KeyError(f"unknown profile {name!r}; known: {known}")
    return yaml.safe_load(path.read_text())


def get_dataset(name: str, data_dir=None, profile: str = "quick", data_kwargs: dict | None = None,
                ) -> MultimodalDataset:
    """Load (and memoise in-process) a dataset for ``profile``."""
    prof = load_profile(profile)
    kw = dict(data_kwargs or {})
    key = (name, str(data_dir), profile, json.dumps(kw, sort_keys=True))
    if key not in _DATA_CACHE:
        if name == "synthetic":
            _DATA_CACHE[key] = load_dataset("synthetic", profile=prof.get("synthetic_profile", profile), **kw)
        else:
            _DATA_CACHE[key] = load_dataset(name, data_dir=data_dir, **kw)
    return _DATA_CACHE[key]


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in (b or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_run(model: str, dataset: str = "synthetic", seed: int = 0, profile: str = "quick",
                overrides: dict | None = None, train: dict | None = None, data_kwargs: dict | None = None,
                eval_missing: list | None = None, device: str | None = None, info=None) -> dict:
    """The full, hashable description of one run.

    Args:
        model: registry name (``femf``, ``atsuko``, ``emoe``, ``baseline``, ...).
        dataset: dataset name (see :func:`mser_lib.data.dataset_names`).
        seed: training seed.
        profile: ``smoke``, ``quick`` or ``paper``.
        overrides: model config fields (variants/ablations), e.g. ``{"use_fae": False}``.
        train: trainer fields overriding the profile's.
        data_kwargs: loader arguments (e.g. ``{"split": "standard"}``).
        eval_missing: extra test evaluations, e.g. ``[{"rate": 0.2}, {"condition": "ta"}]``.
        device: overrides the profile's device.
        info: the dataset's :class:`DatasetInfo` (to resolve the model preset).

    Trainer settings are merged in this order, each later source winning over the earlier ones:

    1. the profile's ``train`` (shared defaults);
    2. the profile's ``models.<model>.train`` (what the model's paper says);
    3. the profile's ``datasets.<dataset>.train``: settings that depend on the dataset's size and
       layout (batch size, gradient accumulation, epochs, patience) win over a model's;
    4. the profile's ``datasets.<dataset>.models.<model>.train`` (one model on one dataset);
    5. the ``train`` argument.

    Model fields: the model's preset (the profile's ``model_preset``), then ``overrides``.
    """
    prof = load_profile(profile)
    ds_sec = prof.get("datasets", {}).get(dataset, {})
    tcfg = dict(prof.get("train", {}))
    tcfg = _merge(tcfg, prof.get("models", {}).get(model, {}).get("train", {}))
    tcfg = _merge(tcfg, ds_sec.get("train", {}))
    tcfg = _merge(tcfg, ds_sec.get("models", {}).get(model, {}).get("train", {}))
    tcfg = _merge(tcfg, train or {})
    tcfg["device"] = device or prof.get("device", "auto")
    valid_train = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(tcfg) - valid_train)
    if unknown:
        raise KeyError(f"unknown trainer setting(s) {unknown}; known: {sorted(valid_train)}")
    preset = prof.get("model_preset", profile)
    model_cfg = None
    if info is not None:
        model_cfg = asdict(build_config(model, info, preset, **(overrides or {})))
    return {
        "model": model, "dataset": dataset, "seed": int(seed), "profile": profile, "model_preset": preset,
        "overrides": dict(overrides or {}), "model_config": model_cfg, "train": tcfg,
        "data_kwargs": dict(data_kwargs or {}), "eval_missing": list(eval_missing or []),
        "synthetic_profile": prof.get("synthetic_profile") if dataset == "synthetic" else None,
    }


_HASH_EXCLUDE = {"device", "progress"}


def config_hash(run: dict) -> str:
    """A short stable hash of everything that changes a run's result (not device or progress bars)."""
    clean = copy.deepcopy(run)
    clean["train"] = {k: v for k, v in clean["train"].items() if k not in _HASH_EXCLUDE}
    blob = json.dumps(clean, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_revision() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    import sklearn
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "sklearn": sklearn.__version__, "mser_lib": __version__, "platform": platform.platform()}


def runs_path(results_dir, profile: str, dataset: str) -> Path:
    return Path(results_dir) / profile / dataset / "runs.jsonl"


def find_record(results_dir, run: dict) -> dict | None:
    h = config_hash(run)
    for rec in reversed(read_jsonl(runs_path(results_dir, run["profile"], run["dataset"]))):
        if rec.get("config_hash") == h:
            return rec
    return None


def run_one(model: str, dataset: str = "synthetic", seed: int = 0, profile: str = "quick",
            overrides: dict | None = None, train: dict | None = None, data_dir=None,
            data_kwargs: dict | None = None, eval_missing: list | None = None,
            results_dir=DEFAULT_RESULTS, force: bool = False, device: str | None = None,
            progress: bool = True, keep_checkpoint: bool = True, tag: str | None = None) -> dict:
    """Train and evaluate one run, or return its cached record. See the module docstring.

    Returns:
        The record (a dict; ``record["test"]`` holds the SPEC 2 metrics on the test split at the
        epoch chosen on VALID).
    """
    threads = load_profile(profile).get("threads")
    if threads:  # small CPU models run faster on one thread than on two contending ones
        torch.set_num_threads(int(threads))
    ds = get_dataset(dataset, data_dir, profile, data_kwargs)
    run = resolve_run(model, dataset, seed, profile, overrides, train, data_kwargs, eval_missing, device,
                      info=ds.info)
    h = config_hash(run)
    if not force:
        cached = find_record(results_dir, run)
        if cached is not None:
            return cached
    run_dir = Path(results_dir) / profile / dataset / "checkpoints" / h
    if force and run_dir.exists():
        for f in sorted(run_dir.rglob("*.pt")):
            f.unlink()
    tcfg = TrainConfig(**{**run["train"], "progress": progress})
    set_seed(seed, tcfg.deterministic)        # initial weights follow the seed
    net = build_model(model, ds.info, run["model_preset"], **run["overrides"])
    n_params = count_parameters(net)
    started = time.perf_counter()
    result = fit_model(net, ds, tcfg, seed=seed, run_dir=run_dir)
    missing_metrics = {}
    for spec in run["eval_missing"]:
        mm = MissingModality(**spec)
        missing_metrics[mm.name] = evaluate(net, ds.test, ds.info, tcfg, missing=mm, seed=seed)[0]
    record = {
        "config_hash": h, "tag": tag, "model": model, "dataset": dataset, "seed": seed, "profile": profile,
        "overrides": run["overrides"], "config": run, "git_revision": git_revision(), "versions": versions(),
        "device": str(resolve_device(tcfg.device)), "n_params": n_params,
        "wall_time_s": round(time.perf_counter() - started, 3), "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run, "select_metric": result.select_metric,
        "resumed_from_epoch": result.resumed_from_epoch,
        "valid": result.valid_metrics, "test": result.test_metrics, "test_missing": missing_metrics,
        "history": [{k: v for k, v in row.items() if k in ("epoch", "train_total", "valid_loss",
                                                            f"valid_{result.select_metric}")}
                    for row in result.history],
        "stages": [{"stage": s["stage"], "best_epoch": s["best_epoch"], "epochs_run": s["epochs_run"],
                    "valid": s["valid_metrics"]} for s in result.stages],
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    append_jsonl(runs_path(results_dir, profile, dataset), record)
    if not keep_checkpoint:
        for f in sorted(run_dir.rglob("*.pt")):
            f.unlink()
    return record


def _run_kwargs(spec: dict, common: dict) -> dict:
    return {**common, **spec}


def _worker(kwargs: dict) -> dict:
    torch.set_num_threads(1)
    return run_one(**kwargs)


def run_grid(runs: list[dict], results_dir=DEFAULT_RESULTS, executor: str = "inline", workers: int = 2,
             progress: bool = True, **common) -> list[dict]:
    """Run every run of ``runs`` (each a dict of :func:`run_one` arguments), cached and resumable.

    Args:
        runs: e.g. ``[{"model": "femf", "seed": 0, "overrides": {"use_fae": False}}, ...]``.
        results_dir: where records and checkpoints go.
        executor: ``"inline"`` (in this process) or ``"process"`` (a pool of ``workers``).
        **common: arguments shared by every run (``dataset``, ``profile``, ``data_dir`` ...).

    Returns:
        The records, in the order of ``runs`` (a run listed twice is trained once and its record
        returned twice).
    """
    if executor not in ("inline", "process"):
        raise ValueError(f"executor must be 'inline' or 'process', got {executor!r}")
    all_jobs = [_run_kwargs(r, {"results_dir": results_dir, "progress": False, **common}) for r in runs]
    # Identical runs listed twice (grids share runs; ``tag`` is only a label) are trained once, so that
    # two pool workers never train the same config hash at the same time.
    keys = [json.dumps({k: v for k, v in j.items() if k != "tag"}, sort_keys=True, default=str)
            for j in all_jobs]
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
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(tqdm(pool.map(_worker, jobs), total=len(jobs), desc="runs", disable=not progress))
    return [done[index[k]] for k in keys]
