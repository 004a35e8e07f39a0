"""Run access: a recorded run's checkpoints, model, histories and test predictions.

The layer between the records (:mod:`mser_lib.experiments`) and what reads them (:mod:`mser_lib.report`, the
search, the notebooks): it finds a run's checkpoint folder, rebuilds its model from the config the record saved,
loads a stage's weights, and predicts. When this machine does not hold a run's checkpoints (a record reused from
``runs.jsonl`` in a fresh clone) it retrains the run first (:func:`mser_lib.experiments.ensure_trained`).

* :func:`checkpoint_dir`, :func:`stage_checkpoint`, :func:`stage_history`: a run's files and per-stage histories.
* :func:`model_from_record`, :func:`load_model`: a recorded run's model (a stage's ``best``/``last``/``best_fold<f>``
  weights).
* :func:`run_predictions`: its test predictions (pooled over the cross-fitting folds' models when it selected
  that way; optionally with modalities dropped), cached as ``.npz``.
* :func:`expert_predictions`, :func:`expert_metrics`, :func:`refit_experts`: FEMF's stage-1 experts scored one
  by one, and stage 1 replayed with per-expert validation metrics after every epoch.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data import MissingModality, MultimodalDataset, iterate_batches
from .metrics import compute_metrics
from .models import build_model
from .models.registry import config_from_dict, model_spec
from .train import TrainConfig, fit, predict, set_seed
from .train.crossfit import assign_folds, pool_predictions, position_folds
from .train.io import atomic_write_bytes, check_config_hash, inside, load_checkpoint

#: FEMF's two bands, in the order of its experts.
BANDS = ("low", "high")


def checkpoint_dir(results_dir, record: dict) -> Path:
    """``<results>/<profile>/<dataset>/checkpoints/<config hash>`` of a recorded run; the record's
    fields must name a folder inside ``results_dir`` and the hash must be 16 hex characters."""
    return inside(results_dir, record["profile"], record["dataset"], "checkpoints",
                  check_config_hash(record["config_hash"]), file="runs.jsonl record", field="profile/dataset")


def stage_checkpoint(results_dir, record: dict, stage: str | None, kind: str = "best",
                     ds: MultimodalDataset | None = None) -> Path | None:
    """Path of ``<stage>/<kind>.pt`` (``kind`` = ``best`` or ``last``).

    When this machine does not hold it (a record reused from ``runs.jsonl``) and ``ds`` is given, the
    run is retrained first (:func:`mser_lib.experiments.ensure_trained`); without ``ds``, ``None``."""
    p = checkpoint_dir(results_dir, record) / (stage or "main") / f"{kind}.pt"
    if not p.exists() and ds is not None:
        from .experiments import ensure_trained

        ensure_trained(record, ds, results_dir)
    return p if p.exists() else None


def stage_history(results_dir, record: dict, stage: str | None,
                  ds: MultimodalDataset | None = None) -> pd.DataFrame | None:
    """The full per-epoch history of one stage of a run (from its ``last.pt``; records keep only the
    final stage's compact history). A missing checkpoint is retrained when ``ds`` is given, else
    ``None``."""
    p = stage_checkpoint(results_dir, record, stage, "last", ds)
    if p is None:
        return None
    ck = load_checkpoint(p, "cpu")
    df = pd.DataFrame(ck["history"])
    df.insert(0, "stage", stage or "main")
    df.insert(0, "seed", record["seed"])
    return df


def _recorded_model(run: dict, ds: MultimodalDataset):
    """The model of a recorded run's config, built from the config it saved (``model_config``), so that a
    preset changed since then does not change it; records without one fall back to preset + overrides."""
    saved = run.get("model_config")
    if saved is None:
        return build_model(run["model"], ds.info, run["model_preset"], **run["overrides"])
    return model_spec(run["model"]).model_cls(ds.info, config_from_dict(run["model"], saved))


def model_from_record(record: dict, ds: MultimodalDataset, results_dir=None, stage: str | None = None,
                      kind: str = "best"):
    """Rebuild a recorded run's model from the config the record saved (``record["config"]["model_config"]``,
    not today's presets); with ``results_dir`` load that stage's ``<kind>.pt`` weights (``best``, ``last``,
    ``best_fold<f>``), retraining the run first when this machine does not hold its checkpoint.

    Returns:
        the model (eval mode).
    """
    run = record["config"]
    net = _recorded_model(run, ds)
    if results_dir is not None:
        p = stage_checkpoint(results_dir, record, stage, kind, ds)
        if p is None:
            raise FileNotFoundError(f"run {record['config_hash']} has no {stage or 'main'}/{kind}.pt after training")
        net.load_state_dict(load_checkpoint(p, "cpu")["model"])
    net.eval()
    return net


@torch.no_grad()
def expert_predictions(model, split, info, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """FEMF stage-1 expert predictions over the labelled positions of ``split``.

    Returns:
        ``(y (n,), P (n, M, 2), modalities)`` where ``P[:, i, f]`` is the prediction of the expert of
        modality ``i`` and band ``f`` (0 low, 1 high), eq. 9.
    """
    was_stage = getattr(model, "stage", None)
    model.set_stage("experts")
    model.eval()
    ys, ps = [], []
    device = next(model.parameters()).device
    for batch in iterate_batches(split, info.layout, batch_size, shuffle=False, device=device):
        out = model(batch)
        ep = out.diagnostics["expert_predictions"]              # (B, M, 2) or (B, L, M, 2)
        mask = batch.label_mask.bool()
        if ep.dim() == 4:
            ep = ep[:, : mask.shape[1]][mask]
        else:
            ep = ep[mask]
        ps.append(ep.float().cpu().numpy())
        ys.append(batch.labels[mask].float().cpu().numpy())
    if was_stage is not None and was_stage != "experts":
        model.set_stage(was_stage)
    return np.concatenate(ys), np.concatenate(ps), list(model.mods)


def expert_metrics(model, split, info, batch_size: int = 256) -> pd.DataFrame:
    """Metrics (docs/metrics.md) of every stage-1 expert on ``split``: long table ``modality, band, metric, value``."""
    y, P, mods = expert_predictions(model, split, info, batch_size)
    rows = []
    for i, m in enumerate(mods):
        for f, band in enumerate(BANDS):
            for k, v in compute_metrics(y, P[:, i, f], info.metric_family).items():
                rows.append({"modality": m, "band": band, "metric": k, "value": float(v)})
    return pd.DataFrame(rows)


def refit_experts(record: dict, ds: MultimodalDataset, per_epoch: bool = True) -> tuple:
    """Re-run FEMF stage 1 exactly as the recorded run did, scoring every expert on VALID each epoch.

    Same seed, same resolved configuration, same trainer: on the same hardware the run is replayed
    epoch for epoch (the trainer is deterministic), so its best epoch and validation metrics match the
    record's stage ``experts``. No checkpoint is written and no record is appended.

    Returns:
        ``(model with the best stage-1 weights, curves, fit result)`` where ``curves`` is a long table
        ``seed, epoch, modality, band, metric, value`` (VALID), empty when ``per_epoch`` is off.
    """
    run = record["config"]
    tcfg = TrainConfig(**{**run["train"], "progress": False})
    set_seed(record["seed"], tcfg.deterministic)
    net = _recorded_model(run, ds)
    if hasattr(net, "prepare"):
        net.prepare(ds)
    stages = net.stages()
    if stages[0] != "experts":
        raise ValueError(f"model {run['model']!r} has no stage 'experts' (stages: {stages})")
    net.set_stage("experts")
    rows: list[dict] = []

    def score(epoch: int, _row: dict) -> None:
        df = expert_metrics(net, ds.valid, ds.info, tcfg.eval_batch_size)
        df.insert(0, "epoch", epoch)
        rows.extend(df.to_dict("records"))
        net.train()

    res = fit(net, ds, tcfg, seed=record["seed"], run_dir=None, score_test=False,
              epochs=tcfg.stage_epochs.get("experts", tcfg.epochs), desc="experts",
              callbacks=[score] if per_epoch else None)
    net.eval()
    curves = pd.DataFrame(rows)
    if not curves.empty:
        curves.insert(0, "seed", record["seed"])
    return net, curves, res



def _gives_recorded_mae(record: dict, y: np.ndarray, p: np.ndarray) -> bool:
    """Whether test predictions give the record's test MAE (to 1e-5; float32 sums). Records without a test MAE
    (classification) are not checked."""
    mae = (record.get("test") or {}).get("mae")
    if mae is None or p.ndim != 1:
        return True
    return bool(abs(_mae(y, p) - float(mae)) <= 1e-5)


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    """Mean absolute error in float64 (the predictions are float32)."""
    return float(np.abs(y.astype(np.float64) - p.astype(np.float64)).mean())


def record_key(record: dict) -> str:
    """The identity of one training of a config: a hash of its recorded test metrics. A cache of predictions
    carries it, so that predictions from another training of the same config (another machine, a retrain whose
    record was not kept) are never read as this record's."""
    return hashlib.sha1(json.dumps(record.get("test") or {}, sort_keys=True).encode()).hexdigest()[:16]


class StaleCheckpoint(RuntimeError):
    """The checkpoint on this machine is not the training its record describes."""


#: (results folder, config hash, record key) of the checkpoints this process has found to be their record's
#: training, so that each is checked once, not once per missing rate.
_CHECKED: set[tuple[str, str, str]] = set()


def _model_predictions(record: dict, ds, results_dir, missing: MissingModality | None):
    """``(y, p, ids)`` of the run's checkpoint on the test split (modalities dropped by ``missing``)."""
    train = record["config"]["train"]
    if train.get("selection") == "crossfit":
        # each test position scored by the models the other folds selected (train/crossfit.py)
        k, preds = int(train.get("crossfit_folds", 2)), []
        for f in range(k):
            net = _ready(model_from_record(record, ds, results_dir, _final_stage(record), kind=f"best_fold{f}"))
            with torch.no_grad():
                y, pf, ids, _ = predict(net, ds.test, ds.info, 256, "cpu", missing, record["seed"])
            preds.append(pf)
        folds = assign_folds(ds.test, k, int(train.get("crossfit_seed", 0)))
        p = pool_predictions(preds, position_folds(ds.test, folds, ids))
    else:
        net = load_model(record, ds, results_dir)
        with torch.no_grad():
            y, p, ids, _ = predict(net, ds.test, ds.info, 256, "cpu", missing, record["seed"])
    return y, p, np.asarray(ids).astype(str)


def _ready(net):
    if hasattr(net, "stages"):
        net.set_stage(net.stages()[-1])
    return net


def _final_stage(record: dict) -> str | None:
    """The stage whose weights are the run's model: the last one its record lists (FEMF, MoMKE: ``"full"``);
    ``None`` for a model trained in one stage (its checkpoints sit in ``main/``)."""
    stages = record.get("stages") or [{}]
    return stages[-1].get("stage")


def load_model(record: dict, ds, results_dir):
    """The recorded run's model with its best weights of the final stage (eval mode; under cross-fitted
    selection, the epoch fold 1 chose). A run this machine does not hold is retrained first."""
    return _ready(model_from_record(record, ds, results_dir, _final_stage(record)))



def run_predictions(record: dict, ds, results_dir, missing: MissingModality | None = None,
                    cache_dir=None, with_ids: bool = False, retrain: bool = True):
    """Test labels and predictions of a recorded run (labelled positions), optionally with modalities
    dropped at test time (the drop pattern is seeded by the run's seed). Cached in
    ``cache_dir/<hash>_<missing>.npz`` (the real-data caches are committed beside the records, so that the
    analyses need no checkpoint). A cached file of the complete test split is used only when it gives the
    record's test MAE (regression) and, where the file names the training it came from (:func:`record_key`), only
    when that is this record's: a file left from another training of the same config is recomputed. A file with
    modalities dropped and no such name is used only beside a complete-split file that passes. Predictions are
    computed from a checkpoint only after the checkpoint reproduces the record's test MAE: one that does not
    raises :class:`StaleCheckpoint` (never a silent mix of two trainings). A run whose checkpoint this machine does
    not hold is retrained first, or, with ``retrain=False``, gives ``None``.

    Returns ``(y, p)``, or ``(y, p, ids)`` with ``with_ids`` (the sample id of each labelled
    position: the video id in the position layout). A cache file written without ids is recomputed
    when the ids are asked for."""
    name = "full" if missing is None else missing.name
    key = record_key(record)
    path = Path(cache_dir) / f"{check_config_hash(record['config_hash'])}_{name}.npz" if cache_dir else None
    z = _records_cache(record, path, key, missing) if path is not None else None
    if z is not None:
        if not with_ids:
            return z["y"], z["p"]
        if "ids" in z.files:
            return z["y"], z["p"], z["ids"]
    if stage_checkpoint(results_dir, record, _final_stage(record), "best") is None:
        if not retrain:
            return None
        from .experiments import ensure_trained

        record = ensure_trained(record, ds, results_dir)     # retrained here: its new record is the one to match
        key = record_key(record)
    checked = (str(results_dir), record["config_hash"], key)
    full = None
    if missing is None or checked not in _CHECKED:      # the checkpoint must be the record's training
        full = _model_predictions(record, ds, results_dir, None)
        if not _gives_recorded_mae(record, full[0], full[1]):
            raise StaleCheckpoint(
                f"run {record['config_hash']} ({record['model']}, seed {record['seed']}): the checkpoint under "
                f"{results_dir} gives test MAE {_mae(full[0], full[1]):.6f}, its record in runs.jsonl says "
                f"{record['test']['mae']:.6f}: the checkpoint comes from another training of this config (another "
                "machine, or a retrain whose record was not kept). Retrain the run so that record and checkpoint "
                "agree (delete its checkpoint folder and rerun the notebook, or `make reproduce FORCE=1`).")
        _CHECKED.add(checked)
    y, p, ids = full if missing is None else _model_predictions(record, ds, results_dir, missing)
    if path is not None:       # written whole or not at all, never through a link at its name
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez_compressed(buf, y=y, p=p, ids=ids, record_key=np.array(key))
        atomic_write_bytes(path, buf.getvalue())
    return (y, p, ids) if with_ids else (y, p)


def _records_cache(record: dict, path: Path, key: str, missing: MissingModality | None):
    """The cached predictions at ``path`` (loaded once) when they come from the training ``record`` describes,
    else None: the file's :func:`record_key` when it names one; else (a file written before files named theirs)
    the record's test MAE for the complete split, and for a file with modalities dropped the complete-split file
    beside it."""
    if not path.exists():
        return None
    z = np.load(path)
    if "record_key" in z.files:
        ours = str(z["record_key"]) == key and (missing is not None or _gives_recorded_mae(record, z["y"], z["p"]))
    elif missing is None:
        ours = _gives_recorded_mae(record, z["y"], z["p"])
    else:
        full = path.with_name(f"{check_config_hash(record['config_hash'])}_full.npz")
        ours = _records_cache(record, full, key, None) is not None
    return z if ours else None
