"""Runs as records: resolve a run's config, train it once, cache it by config hash, resume it.

A *run* is (model, variant overrides, dataset, seed, profile, missing-modality evaluation), on data
identified by its loader arguments and fingerprint (the content of the files read and the loader's
settings, :func:`mser_lib.data.validate.data_fingerprint`). ``run_one`` resolves it into a full config
(profile YAML in ``mser_lib/configs`` + model preset + overrides + the data's fingerprint) and hashes
that config. Two stores hold what a run produced:

* ``<results>/<profile>/<dataset>/runs.jsonl``: one record per config hash. It is committed: the
  project's reference results, from which tables and figures are built.
* ``<results>/<profile>/<dataset>/checkpoints/<hash>/``: what *this machine* trained (not committed):
  per-stage ``last.pt``/``best.pt`` (an interrupted run resumes from ``last.pt``) and, once the run
  has finished, ``record.json``, its record as trained here.

Which work is reused (``reuse``):

* ``"local"`` (default, what ``make reproduce`` does): only runs this machine has finished
  (``record.json`` beside their checkpoints). A record that is only in ``runs.jsonl`` (a fresh clone)
  is retrained, so every later step finds the checkpoints it needs.
* ``"records"`` (``make tables``): a record in ``runs.jsonl`` is reused without checkpoints; steps that
  need a checkpoint retrain that one run (:func:`ensure_trained`).

A finished run writes ``record.json`` and *upserts* its record into ``runs.jsonl``
(:func:`upsert_record`): a new hash is appended; a hash already recorded with the same results
(:func:`same_results`: metrics, chosen epochs, histories) is left as it is, provenance included,
so a run that reproduces changes no committed file; different results replace the old record.

A record holds: the config and its hash, seed, git revision, library versions, device, wall time,
the epoch chosen on VALID, valid and test metrics (and test metrics under each requested
missing-modality condition), the parameter count and a compact training history. Tables and
figures are built from these records only.

Many runs at once (in this process, on a process pool, or as Ray tasks) are
:func:`mser_lib.executors.run_grid`'s.
"""

from __future__ import annotations

import copy
import fcntl
import functools
import hashlib
import json
import numbers
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import fields
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml

from . import __version__
from .checks import MAX_SEED, ConfigError
from .data import MissingModality, MultimodalDataset, dataset_layout, is_builtin, load_dataset
from .models import build_model, count_parameters
from .models.registry import build_config, hashed_config
from .train import TrainConfig, append_jsonl, evaluate, fit_model, read_jsonl, resolve_device, set_seed
from .train.io import (
    LinkRefused,
    _jsonable,
    atomic_write_json,
    check_records,
    read_record,
    refuse_links,
    write_jsonl,
)

DEFAULT_RESULTS = Path("results")
_DATA_CACHE: dict = {}
_PROFILE_TEXT: dict[str, dict] = {}       # a profile file's text -> its parsed YAML (parsing is 40 ms a time)


def load_profile(name: str, _seen: tuple = ()) -> dict:
    """The profile YAML ``mser_lib/configs/<name>.yaml`` as a dict (``smoke``, ``quick``, ``claims``,
    ``paper``). A profile with ``extends: <parent>`` is its parent's dict with its own keys merged in
    (nested dicts key by key, anything else replaced)."""
    path = resources.files("mser_lib.configs") / f"{name}.yaml"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name) or not path.is_file():
        known = sorted(p.name[:-5] for p in resources.files("mser_lib.configs").iterdir()
                       if p.name.endswith(".yaml"))
        raise KeyError(f"unknown profile {name!r}; known: {known}")
    text = path.read_text()
    if text not in _PROFILE_TEXT:           # keyed by the text, so an edited profile is read again
        _PROFILE_TEXT[text] = yaml.safe_load(text)
    prof = copy.deepcopy(_PROFILE_TEXT[text])
    parent = prof.pop("extends", None)
    if parent is None:
        return prof
    if parent in _seen or parent == name:
        raise KeyError(f"profile {name!r}: 'extends' makes a cycle ({' -> '.join((*_seen, name, parent))})")
    return _merge(load_profile(parent, (*_seen, name)), prof)


def model_preset(profile: str, dataset: str | None = None) -> str:
    """The model preset of ``profile`` for ``dataset``: its ``datasets.<dataset>.model_preset``, else the
    profile's ``model_preset``, else the profile's name (e.g. real data runs the ``paper`` preset under the
    ``quick`` profile, whose miniatures are for the built-in benchmark)."""
    prof = load_profile(profile)
    return prof.get("datasets", {}).get(dataset or "", {}).get("model_preset", prof.get("model_preset", profile))


def profile_seeds(profile: str, dataset: str | None = None) -> list[int]:
    """The seeds of ``profile``, or of its ``datasets.<dataset>`` section when that sets its own."""
    prof = load_profile(profile)
    ds_sec = prof.get("datasets", {}).get(dataset or "", {})
    return [int(s) for s in ds_sec.get("seeds", prof["seeds"])]


def model_seeds(profile: str, dataset: str | None, model: str, seeds: list[int]) -> list[int]:
    """The seeds of ``model``'s runs in the main comparison and the robustness study: ``seeds``, or their first
    ``n_seeds`` when the profile sets ``n_seeds`` for the model (``datasets.<dataset>.models.<model>.n_seeds``,
    else ``models.<model>.n_seeds``; the dataset's section wins, as for trainer settings; ``null``: every
    seed, e.g. in a profile that extends one which limits them)."""
    prof = load_profile(profile)
    sections = {f"datasets.{dataset}.models.{model}":
                prof.get("datasets", {}).get(dataset or "", {}).get("models", {}).get(model, {}),
                f"models.{model}": prof.get("models", {}).get(model, {})}
    for where, sec in sections.items():
        if "n_seeds" in sec:
            n = sec["n_seeds"]
            if n is None:
                return list(seeds)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"mser_lib/configs/{profile}.yaml: {where}", "n_seeds", n, "an integer >= 1")
            return list(seeds)[:n]
    return list(seeds)


def get_dataset(name: str, data_dir=None, profile: str = "quick", data_kwargs: dict | None = None,
                ) -> MultimodalDataset:
    """Load (and memoise in-process) a dataset for ``profile``."""
    prof = load_profile(profile)
    kw = dict(data_kwargs or {})
    key = (name, str(data_dir), profile, json.dumps(kw, sort_keys=True))
    if key not in _DATA_CACHE:
        if is_builtin(name):
            _DATA_CACHE[key] = load_dataset(name, profile=prof.get("synthetic_profile", profile), **kw)
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
        info: the dataset's :class:`DatasetInfo` (to resolve the model preset); its
            ``source["fingerprint"]`` (the content of the files read and the loader settings,
            :func:`mser_lib.data.validate.data_fingerprint`) becomes ``run["data_fingerprint"]``, so runs
            on different data never share a config hash.

    Trainer settings are merged in this order, each later source winning over the earlier ones:

    1. the profile's ``train`` (shared defaults);
    2. the profile's ``models.<model>.train`` (what the model's paper says);
    3. the profile's ``layouts.<layout>.train``, then ``layouts.<layout>.models.<model>.train``:
       settings that follow what a sample is (``position``: a whole video, so a batch counts
       videos; ``sequence``: one utterance), whatever the dataset is called; the layout is
       ``info.layout``, else :func:`mser_lib.data.dataset_layout`;
    4. the profile's ``datasets.<dataset>.train``, then ``datasets.<dataset>.models.<model>.train``:
       one dataset's own settings (its seeds, its selection protocol);
    5. the ``train`` argument. An ``epochs`` there without ``stage_epochs`` sets every stage of a staged
       model (FEMF's experts and full stages) to that many epochs: per-stage counts from the profile would
       otherwise win over it.

    Model fields: the model's preset (:func:`model_preset`: the dataset section's ``model_preset``, else
    the profile's), then ``overrides``.
    """
    prof = load_profile(profile)
    layout = info.layout if info is not None else dataset_layout(dataset)
    lay_sec = prof.get("layouts", {}).get(layout, {}) if layout else {}
    ds_sec = prof.get("datasets", {}).get(dataset, {})
    tcfg = dict(prof.get("train", {}))
    tcfg = _merge(tcfg, prof.get("models", {}).get(model, {}).get("train", {}))
    tcfg = _merge(tcfg, lay_sec.get("train", {}))
    tcfg = _merge(tcfg, lay_sec.get("models", {}).get(model, {}).get("train", {}))
    tcfg = _merge(tcfg, ds_sec.get("train", {}))
    tcfg = _merge(tcfg, ds_sec.get("models", {}).get(model, {}).get("train", {}))
    if train and "epochs" in train and "stage_epochs" not in train and tcfg.get("stage_epochs"):
        # the caller's epoch count is meant for every stage: a profile's per-stage counts would win over it
        tcfg["stage_epochs"] = {stage: train["epochs"] for stage in tcfg["stage_epochs"]}
    tcfg = _merge(tcfg, train or {})
    tcfg["device"] = device or prof.get("device", "auto")
    valid_train = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(tcfg) - valid_train)
    if unknown:
        raise KeyError(f"unknown trainer setting(s) {unknown}; known: {sorted(valid_train)}")
    TrainConfig(**tcfg)          # range checks now, before a cached record is looked up (nothing is changed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ConfigError("run", "seed", seed, f"an integer in [0, {MAX_SEED}]")
    preset = model_preset(profile, dataset)
    model_cfg = None
    if info is not None:
        model_cfg = hashed_config(build_config(model, info, preset, **(overrides or {})))
    return {
        "model": model, "dataset": dataset, "seed": int(seed), "profile": profile, "model_preset": preset,
        "overrides": dict(overrides or {}), "model_config": model_cfg, "train": tcfg,
        "data_kwargs": dict(data_kwargs or {}),
        "data_fingerprint": (info.source or {}).get("fingerprint") if info is not None else None,
        "eval_missing": list(eval_missing or []),
        "synthetic_profile": prof.get("synthetic_profile") if is_builtin(dataset) else None,
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


@functools.cache
def cpu_description() -> str:
    """The CPU a run trains on, as far as it moves the numbers: its model name and the vector instruction set
    torch's kernels use here, e.g. ``"AMD EPYC, torch kernels AVX512"``. Two machines that differ in either
    run other math kernels, which reorder floating-point sums: their runs are not bit-identical
    (docs/reproduction.md)."""
    name = ""
    try:
        with open("/proc/cpuinfo") as fh:
            name = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    name = " ".join((name or platform.processor() or platform.machine() or "unknown CPU").split())
    return f"{name}, torch kernels {torch.backends.cpu.get_cpu_capability()}"


def versions() -> dict:
    import sklearn
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "sklearn": sklearn.__version__, "mser_lib": __version__, "platform": platform.platform(),
            "cpu": cpu_description()}


def runs_path(results_dir, profile: str, dataset: str) -> Path:
    return Path(results_dir) / profile / dataset / "runs.jsonl"


def predictions_dir(results_dir, profile: str, dataset: str) -> Path:
    """Where each run's test predictions are cached (``<hash>_full.npz``, ``<hash>_<missing>.npz``):
    :func:`mser_lib.runs.run_predictions`."""
    return Path(results_dir) / profile / dataset / "predictions"


def run_dir(results_dir, profile: str, dataset: str, h: str) -> Path:
    """``<results>/<profile>/<dataset>/checkpoints/<hash>``: this machine's artefacts of one run."""
    return Path(results_dir) / profile / dataset / "checkpoints" / h


REUSE_MODES = ("local", "records")
# What a run produced (compared by :func:`same_results`); everything else in a record is provenance
# (when, where, how long, which code revision).
RESULT_FIELDS = ("n_params", "best_epoch", "epochs_run", "select_metric", "valid", "test", "test_missing",
                 "history", "stages", "best_is_last", "protocols", "degenerate")


def same_results(a: dict, b: dict) -> bool:
    """True when two records of a run hold exactly the same results (:data:`RESULT_FIELDS`)."""
    return all(json.dumps(a.get(k), sort_keys=True, default=str) == json.dumps(b.get(k), sort_keys=True, default=str)
               for k in RESULT_FIELDS)


def local_record(results_dir, run: dict) -> dict | None:
    """The record of ``run`` as this machine trained it (``record.json`` beside its checkpoints).

    Every other ``record.json`` of the same ``checkpoints`` folder is checked too (once per change,
    :func:`mser_lib.train.io.check_records`): the reproduction report reads them all after the training, so a
    damaged one stops a grid here, before any training, with one line naming it (a ``DataFormatError``)."""
    path = run_dir(results_dir, run["profile"], run["dataset"], config_hash(run)) / "record.json"
    check_records(path.parent.parent)
    try:
        return read_record(path)
    except FileNotFoundError:
        return None


def committed_record(results_dir, run: dict) -> dict | None:
    """The record of ``run`` in ``runs.jsonl`` (the last one, if a hash appears twice)."""
    h = config_hash(run)
    for rec in reversed(read_jsonl(runs_path(results_dir, run["profile"], run["dataset"]))):
        if rec.get("config_hash") == h:
            return rec
    return None


def find_record(results_dir, run: dict, reuse: str = "local") -> dict | None:
    """The record to reuse for ``run`` under ``reuse`` (see the module docstring), else ``None``."""
    if reuse not in REUSE_MODES:
        raise ValueError(f"reuse must be one of {REUSE_MODES}, got {reuse!r}")
    rec = local_record(results_dir, run)
    if rec is None and reuse == "records":
        rec = committed_record(results_dir, run)
    return rec


def upsert_record(path, record: dict) -> str:
    """Put ``record`` into the JSONL file ``path``, keyed by ``config_hash``.

    Returns ``"new"`` (appended), ``"same"`` (a record with the same results was there: the file is
    left untouched) or ``"replaced"`` (every earlier record of the hash replaced by this one, in place
    of the first). Read-modify-write under an exclusive lock, so pool workers never lose a record.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    for p in (path, lock_path):
        if p.is_symlink():
            raise LinkRefused(p)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)   # never truncated, never followed
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _upsert_locked(path, record)
    finally:
        os.close(lock)


def _upsert_locked(path: Path, record: dict) -> str:
    """:func:`upsert_record`'s read-modify-write, under its lock."""
    old = read_jsonl(path)
    same_hash = [i for i, r in enumerate(old) if r.get("config_hash") == record["config_hash"]]
    if not same_hash:
        append_jsonl(path, record)
        return "new"
    if len(same_hash) == 1 and same_results(old[same_hash[0]], record):
        return "same"
    out = [record if i == same_hash[0] else r for i, r in enumerate(old) if i == same_hash[0] or i not in same_hash]
    write_jsonl(path, out)
    return "replaced"


def run_one(model: str, dataset: str = "synthetic", seed: int = 0, profile: str = "quick",
            overrides: dict | None = None, train: dict | None = None, data_dir=None,
            data_kwargs: dict | None = None, eval_missing: list | None = None,
            results_dir=DEFAULT_RESULTS, force: bool = False, device: str | None = None,
            progress: bool = True, tag: str | None = None, reuse: str = "local", record: bool = True,
            ds: MultimodalDataset | None = None) -> dict:
    """Train and evaluate one run, or return its cached record. See the module docstring.

    Args:
        reuse: ``"local"`` (runs this machine finished) or ``"records"`` (also ``runs.jsonl``).
        force: retrain even when a record exists.
        record: upsert a newly trained run's record into ``runs.jsonl`` (``False``: the caller does,
            as the Ray driver of :func:`run_grid`; ``record.json`` is written either way).
        ds: an already loaded dataset to use instead of loading ``dataset`` (tests, searches). The
            config hash holds its ``info.source["fingerprint"]`` (:func:`mser_lib.data.validate.data_fingerprint`)
            beside the name ``dataset``; a dataset derived in memory (``dataclasses.replace``) keeps its
            source's fingerprint unless you set another.

    Returns:
        The record (a dict; ``record["test"]`` holds the metrics of docs/metrics.md on the test split at the
        epoch chosen on VALID).
    """
    threads = load_profile(profile).get("threads")
    if threads:  # small CPU models run faster on one thread than on two contending ones
        torch.set_num_threads(int(threads))
    if ds is None:
        ds = get_dataset(dataset, data_dir, profile, data_kwargs)
    run = resolve_run(model, dataset, seed, profile, overrides, train, data_kwargs, eval_missing, device,
                      info=ds.info)
    if not force:
        cached = find_record(results_dir, run, reuse)
        if cached is not None:
            return cached
    return train_run(run, ds, results_dir, progress=progress, tag=tag, fresh=force, record=record)


def train_run(run: dict, ds: MultimodalDataset, results_dir=DEFAULT_RESULTS, progress: bool = False,
              tag: str | None = None, fresh: bool = False, record: bool = True) -> dict:
    """Train the resolved run ``run`` (from :func:`resolve_run`) on ``ds``; resume from ``last.pt`` unless
    ``fresh``. Writes ``record.json`` beside the checkpoints, upserts ``runs.jsonl`` (unless ``record`` is
    false: then the caller must) and replaces the run's cached test predictions with its new ones
    (:func:`predictions_dir`). Returns the record."""
    h = config_hash(run)
    profile, dataset, seed, model = run["profile"], run["dataset"], run["seed"], run["model"]
    rdir = refuse_links(run_dir(results_dir, profile, dataset, h), results_dir)   # deletes only inside it
    stale = list(rdir.rglob("*.pt")) if fresh else []
    stale += [rdir / "record.json"]
    preds = refuse_links(predictions_dir(results_dir, profile, dataset), results_dir)   # deletes and writes there
    stale += list(preds.glob(f"{h}_*.npz"))
    for f in stale:
        if f.exists():
            f.unlink()
    check_records(rdir.parent)   # another run's damaged record.json fails now, not in the report after the training
    tcfg = TrainConfig(**{**run["train"], "progress": progress})
    set_seed(seed, tcfg.deterministic)        # initial weights follow the seed
    net = build_model(model, ds.info, run["model_preset"], **run["overrides"])
    n_params = count_parameters(net)
    started = time.perf_counter()
    status = _StatusWriter(rdir / STATUS_NAME, net, tcfg, model, seed, tag)
    with torch.enable_grad():      # also when an analysis running under no_grad retrains (ensure_trained)
        result = fit_model(net, ds, tcfg, seed=seed, run_dir=rdir, callbacks=[status])
    (rdir / STATUS_NAME).unlink(missing_ok=True)
    missing_metrics = {}
    if run["eval_missing"] and tcfg.selection == "crossfit":
        raise ValueError("eval_missing with cross-fitted selection: use runs.run_predictions, "
                         "which pools the folds' models")
    for spec in run["eval_missing"]:
        mm = MissingModality(**spec)
        missing_metrics[mm.name] = evaluate(net, ds.test, ds.info, tcfg, missing=mm, seed=seed)[0]
    rec = {
        "config_hash": h, "tag": tag, "model": model, "dataset": dataset, "seed": seed, "profile": profile,
        "overrides": run["overrides"], "config": run, "git_revision": git_revision(), "versions": versions(),
        "device": str(resolve_device(tcfg.device)), "n_params": n_params,
        # every sitting's training: a resumed run adds what its checkpoint says the earlier ones took
        "wall_time_s": round(time.perf_counter() - started + result.earlier_s, 3), "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run, "select_metric": result.select_metric,
        "resumed_from_epoch": result.resumed_from_epoch, "best_is_last": result.best_is_last,
        "degenerate": result.degenerate,
        "selection": tcfg.selection, "protocols": result.protocols,
        "valid": result.valid_metrics, "test": result.test_metrics, "test_missing": missing_metrics,
        "history": [{k: v for k, v in row.items() if k in ("epoch", "train_total", "valid_loss",
                                                            f"valid_{result.select_metric}")}
                    for row in result.history],
        "stages": [{"stage": s["stage"], "best_epoch": s["best_epoch"], "epochs_run": s["epochs_run"],
                    "best_is_last": s["best_is_last"], "valid": s["valid_metrics"]} for s in result.stages],
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if result.degenerate:
        split = "test folds (cross-fitted)" if tcfg.selection == "crossfit" else "validation split"
        print(f"\nWARNING: run {h} ({model}, seed {seed}) LEARNED NOTHING: on the {split} its selected model does no "
              "better than predicting the training mean / majority class. It is recorded as degenerate and left "
              "out of the tables (tables.aggregate(include_degenerate=True) shows it).\n", file=sys.stderr,
              flush=True)
    # JSON round trip, so that the record compares equal to its copy read back from runs.jsonl
    rec = json.loads(json.dumps(rec, sort_keys=True, default=_jsonable))
    if record:
        rec = settle_record(results_dir, rec)
    atomic_write_json(rdir / "record.json", rec)
    # the test predictions, written as the run ends: the analyses' bootstraps read them (committed for real
    # data), so that they need no checkpoint in another checkout
    from .runs import run_predictions

    run_predictions(rec, ds, results_dir, cache_dir=refuse_links(preds, results_dir), retrain=False)
    return rec


#: A training run's progress file beside its checkpoints, rewritten after every epoch (what a grid shows).
STATUS_NAME = "status.json"


class _StatusWriter:
    """A ``fit`` callback: after every epoch, ``{model, seed, tag, stage, epoch, epochs, metric, value}`` to
    ``path`` (read by :func:`run_grid` to show what each worker is doing)."""

    def __init__(self, path: Path, net, cfg: TrainConfig, model: str, seed: int, tag: str | None):
        self.path, self.net, self.cfg = path, net, cfg
        self.base = {"model": model, "seed": int(seed), "tag": tag}

    def __call__(self, epoch: int, row: dict) -> None:
        stage = getattr(self.net, "stage", None)
        total = self.cfg.stage_epochs.get(stage, self.cfg.epochs) if stage else self.cfg.epochs
        metric = next((k[len("valid_"):] for k in row if k.startswith("valid_") and k != "valid_loss"), "loss")
        status = {**self.base, "stage": stage or "train", "epoch": epoch + 1, "epochs": int(total),
                  "metric": metric, "value": row.get(f"valid_{metric}")}
        atomic_write_json(self.path, json.loads(json.dumps(status, default=_jsonable)))


PROVENANCE_FIELDS = ("wall_time_s", "finished_at", "git_revision", "versions", "device", "resumed_from_epoch")


def settle_record(results_dir, rec: dict) -> dict:
    """Upsert a freshly trained run's record into ``runs.jsonl`` and return the record to use from now on.

    When the committed record has the same results, that record stays the one of record (its provenance
    included), so tables built from the returned record are byte-identical to the committed ones; this
    machine's run is kept beside it under ``this_machine`` (wall time, date, revision, versions)."""
    if upsert_record(runs_path(results_dir, rec["profile"], rec["dataset"]), rec) != "same":
        return rec
    stored = committed_record(results_dir, rec["config"])
    return {**stored, "this_machine": {k: rec.get(k) for k in PROVENANCE_FIELDS}}


def ensure_trained(record: dict, ds: MultimodalDataset, results_dir) -> dict:
    """Make sure this machine holds the artefacts (checkpoints, full histories) of a recorded run:
    a record reused from ``runs.jsonl`` without them (``reuse="records"``, a fresh clone) is retrained
    from its saved config. Returns the local record."""
    run = record["config"]
    local = local_record(results_dir, run)
    if local is not None:
        return local
    if config_hash(run) != record["config_hash"]:
        raise ValueError(f"record {record['config_hash']}: its saved config hashes to {config_hash(run)}; "
                         "it was written by another version of mser and cannot be retrained as recorded")
    if run.get("data_kwargs"):
        raise ValueError(f"record {record['config_hash']} used loader arguments {run['data_kwargs']}; "
                         "retrain it with run_one and the same data_kwargs")
    have = (ds.info.source or {}).get("fingerprint")
    if run.get("data_fingerprint") != have:
        raise ValueError(f"record {record['config_hash']} was trained on data with fingerprint "
                         f"{run.get('data_fingerprint')}, but the data given has {have}: other files or loader "
                         "settings; it cannot be retrained as recorded")
    print(f"run {record['config_hash']} ({record['model']}, seed {record['seed']}) has no checkpoint on this "
          "machine: retraining it", flush=True)
    return train_run(run, ds, results_dir, tag=record.get("tag"))
