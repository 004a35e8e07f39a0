"""One trainer for every model: select on VALID, score TEST once, resume after a crash.

``fit`` trains one stage of one model:

* Adam or AdamW, optional ReduceLROnPlateau on the validation selection metric, gradient clipping,
  gradient accumulation, AMP (bfloat16 autocast) on CUDA.
* After every epoch the model is scored on the validation split; the checkpoint kept is the best on
  the selection metric (``TrainConfig.select_metric``, default MAE for regression, weighted F1 for
  classification), early stopping after ``patience`` epochs without improvement.
* The test split is scored once, with the best-on-valid weights, at the end (``score_test``).
* With a ``run_dir`` a checkpoint (``last.pt``: model, optimiser, scheduler, RNG states, history)
  is written atomically after every epoch, and ``best.pt`` whenever the selection metric improves.
  A killed run started again with the same arguments resumes from ``last.pt`` and ends with the
  same metrics as an uninterrupted one: the batch order of epoch ``e`` is a pure function of
  ``(seed, e)`` and the RNG states are restored.

``fit_model`` runs every stage a model declares (``model.stages()``), each selected on VALID.

``TrainConfig.selection = "crossfit"`` replaces VALID by cross-fitted selection on test folds
(:mod:`mser_lib.train.crossfit`; the clean protocol for ``mosi-bclstm``, whose validation videos the
feature extractors were trained on). The same run then also reports the two other protocols in
``FitResult.protocols``: ``valid`` (the test metrics at the epoch chosen on VALID, the leaky
protocol) and ``test_oracle`` (the test metrics at the epoch with the best test Acc-2, what code that
monitors the test set reports; optimistic, never a headline).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import checks
from ..data.batch import MultimodalDataset, SplitData, iterate_batches
from ..data.missing import MissingModality
from ..metrics import METRIC_NAMES, compute_metrics, default_selection_metric, is_better
from ..models.base import predictions_only, task_and_aux_losses
from .crossfit import CrossFitSelector, assign_folds, position_folds, prediction_order
from .io import atomic_torch_save, load_checkpoint
from .seeding import rng_state, set_rng_state, set_seed, usable_device

#: What ``TrainConfig.select_metric`` may name: a metric of docs/metrics.md or the task loss.
SELECT_METRICS = (*METRIC_NAMES, "loss")


@dataclass
class TrainConfig:
    """Trainer settings; profiles and model presets fill them in (see ``mser_lib/configs``)."""

    epochs: int = 30
    batch_size: int = 32
    eval_batch_size: int = 128
    optimizer: str = "adam"              # "adam" | "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip_grad: float | None = 1.0        # max gradient norm; None = off
    grad_accum: int = 1                  # optimiser step every this many batches
    plateau: bool = False                # ReduceLROnPlateau on the selection metric
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    patience: int | None = 10            # early stopping; None = train all epochs
    select_metric: str | None = None     # None = per metric family (MAE / weighted F1); "loss" allowed
    # regression task loss of models without their own ``loss`` (None = "l1", MMSA's) | "l1" | "mse";
    # a model with its own loss (FEMF: its field ``task_loss_kind``) rejects a value set here
    loss_kind: str | None = None
    device: str = "auto"
    amp: bool = False                    # bfloat16 autocast, CUDA only
    deterministic: bool = True
    bucket: bool = True                  # batch samples of similar length together
    stage_epochs: dict = field(default_factory=dict)   # per-stage epoch counts for multi-stage models
    # A multi-stage model's optimiser: True, a fresh one per stage; False, one for every stage, its moments and step
    # counts carried over (the FEMF reference builds one Adam for all 300 epochs). Unset in every profile, so it
    # adds nothing to the config hash of a run that keeps the default.
    optimizer_per_stage: bool = True
    # Adam's update as one fused kernel per tensor on the CPU too (on CUDA it always is). It pays where one tensor is
    # large: EMOE's paper step, whose router weight holds 197 M parameters, took 3.73 s against foreach's 5.33 s
    # (benchmarks/results/reference_bench_t1.md); but its float rounding differs from foreach's, so it is opt-in:
    # the committed records were trained with foreach and reproduce bit for bit only so. Unset in every profile.
    fused_optimizer: bool = False
    train_missing_rate: float = 0.0      # random modality dropout during training (augmentation)
    selection: str = "valid"             # "valid" | "crossfit" (select on test folds; train/crossfit.py)
    crossfit_folds: int = 2              # folds of the test samples (videos) for "crossfit"
    crossfit_seed: int = 0               # fixed: the folds do not change with the training seed
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Type and range checks of every field (:class:`~mser_lib.checks.ConfigError` naming the field,
        the value and the allowed range). Run on construction and again by :func:`fit`."""
        checks.check_types(self)
        checks.integer(self, "epochs", 1)
        checks.integer(self, "batch_size", 1)
        checks.integer(self, "eval_batch_size", 1)
        checks.choice(self, "optimizer", ("adam", "adamw"))
        checks.real(self, "lr", 0.0, low_open=True)
        checks.real(self, "weight_decay", 0.0)
        checks.real(self, "clip_grad", 0.0, low_open=True, optional=True, none_means="no clipping")
        checks.integer(self, "grad_accum", 1)
        checks.real(self, "plateau_factor", 0.0, 1.0, low_open=True, high_open=True)
        checks.integer(self, "plateau_patience", 0)
        checks.integer(self, "patience", 1, optional=True, none_means="no early stopping")
        checks.choice(self, "select_metric", SELECT_METRICS, optional=True)
        checks.choice(self, "loss_kind", ("l1", "mse"), optional=True)
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise checks.ConfigError("TrainConfig", "device", self.device,
                                         "auto, cpu, cuda, cuda:<n> or mps") from None
        for stage, n in self.stage_epochs.items():
            if not isinstance(stage, str) or not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
                raise checks.ConfigError("TrainConfig", "stage_epochs", self.stage_epochs,
                                         f"stage name -> epochs, an integer >= 1 (found {stage!r}: {n!r}), "
                                         "e.g. {experts: 10, full: 25}")
        checks.real(self, "train_missing_rate", 0.0, 1.0, high_open=True)
        checks.choice(self, "selection", ("valid", "crossfit"))
        checks.integer(self, "crossfit_folds", 2)
        checks.integer(self, "crossfit_seed", 0)


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    valid_metrics: dict
    test_metrics: dict | None
    history: list[dict]
    wall_time_s: float
    select_metric: str
    resumed_from_epoch: int | None = None
    stages: list[dict] = field(default_factory=list)
    best_is_last: bool = False           # the chosen epoch is the last one run: still improving
    protocols: dict | None = None        # crossfit only: the same run under each selection protocol
    degenerate: bool | None = None       # final stage: no better than the trivial predictor (learned nothing)
    earlier_s: float = 0.0               # seconds trained in earlier sittings (a resumed run), not in wall_time_s


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


def _task_kind(cfg: TrainConfig) -> str:
    return cfg.loss_kind or "l1"


def check_loss_kind(model, cfg: TrainConfig) -> None:
    """A model with its own ``loss`` (FEMF) does not read ``TrainConfig.loss_kind``: setting it is an error
    rather than a setting silently ignored."""
    if cfg.loss_kind is not None and hasattr(model, "loss"):
        field = " (its model field task_loss_kind, e.g. --set task_loss_kind=l1)" \
            if hasattr(getattr(model, "config", None), "task_loss_kind") else ""
        raise ValueError(f"TrainConfig.loss_kind={cfg.loss_kind!r} is not used by {type(model).__name__}, which "
                         f"computes its own loss{field}; leave loss_kind unset (None) for this model")


def compute_loss(model, output, batch, task: str, loss_kind: str | None):
    """The model's own ``loss`` when it has one, else task loss + sum of auxiliary losses."""
    if hasattr(model, "loss"):
        return model.loss(output, batch)
    return task_and_aux_losses(output, batch, task, loss_kind or "l1")


@torch.no_grad()
def predict(model, split: SplitData, info, batch_size: int = 128, device="auto",
            missing: MissingModality | None = None, seed: int = 0, amp: bool = False,
            collect_diagnostics: bool = False):
    """Run ``model`` over ``split`` in eval mode.

    Returns:
        ``(y_true, y_pred, ids, diagnostics)``: 1-D arrays over labelled positions (for
        classification ``y_pred`` holds logits ``(n, C)``), the sample id of each position, and
        (if asked) a list of per-batch diagnostics dicts.
    """
    device = usable_device(device)
    model.eval()
    ys, ps, ids, diags = [], [], [], []
    for batch in iterate_batches(split, info.layout, batch_size, shuffle=False, seed=seed,
                                 missing=missing, device=device):
        with _autocast(device, amp), predictions_only(model, not collect_diagnostics):
            out = model(batch)
        pred = out.prediction.float()
        mask = batch.label_mask
        if info.task == "classification":
            ps.append(pred[mask].cpu().numpy())
        else:
            ps.append(pred[mask].cpu().numpy().reshape(-1))
        ys.append(batch.labels[mask].cpu().numpy().reshape(-1))
        id_arr = np.asarray(batch.ids)
        if mask.dim() == 2:
            id_arr = np.repeat(id_arr[:, None], mask.shape[1], 1)[mask.cpu().numpy()]
        ids.append(id_arr)
        if collect_diagnostics:
            diags.append({k: v.detach().cpu() for k, v in out.diagnostics.items()})
    return np.concatenate(ys), np.concatenate(ps), np.concatenate(ids), diags


def evaluate(model, split: SplitData, info, cfg: TrainConfig | None = None,
             missing: MissingModality | None = None, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Metrics of ``model`` on ``split`` (docs/metrics.md) plus the task loss as ``loss``.

    Returns:
        ``(metrics, predictions)``; predictions over labelled positions.
    """
    cfg = cfg or TrainConfig()
    y, p, _, _ = predict(model, split, info, cfg.eval_batch_size, cfg.device, missing, seed, cfg.amp)
    return _metrics(y, p, info, cfg), p


def _make_optimizer(params, cfg: TrainConfig, model=None):
    """Adam or AdamW over ``params`` at ``cfg``'s rate and weight decay; a model with ``param_groups(lr,
    weight_decay)`` (Self-MM: its LSTM subnets at their own rate) gives its groups of trainable parameters."""
    # CPU: foreach, one kernel per update step over all parameters instead of a Python loop over them (the
    # CPU default is the loop; on the quick models it was about 2/3 of the optimiser's time), or fused where
    # ``cfg.fused_optimizer`` asks. CUDA: fused, a few kernels for the whole update and no per-parameter step
    # counters read back on the host.
    params = list(params)
    fused = cfg.fused_optimizer or (params and all(p.is_cuda for p in params))
    fast = {"fused": True} if fused else {"foreach": True}
    if model is not None and hasattr(model, "param_groups"):
        params = [g for g in model.param_groups(cfg.lr, cfg.weight_decay) if g["params"]]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)
    raise ValueError(f"optimizer must be 'adam' or 'adamw', got {cfg.optimizer!r}")


def _cpu_state(model) -> dict:
    """A detached CPU copy of ``model``'s state dict (what ``best.pt`` and the in-memory best hold)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train_epoch(model, optimizer, params, split: SplitData, info, cfg: TrainConfig, seed: int, epoch: int,
                device, missing: MissingModality | None = None, *, order: int = 0, only: set[int] | None = None,
                fraction: float = 1.0) -> tuple[dict[str, float], int]:
    """One pass over ``split`` in the epoch's shuffled batch order (seeded by ``seed``, ``epoch`` and the pass's
    ``order``): forward, loss, backward, an optimiser step every ``cfg.grad_accum`` batches (and one for a
    remainder) that moves only the parameters whose ``id`` is in ``only`` (all when ``None``), over the first
    ``fraction`` of the batches. Returns the summed loss parts and the number of batches."""
    model.train()
    sums, n_batches = {}, 0
    optimizer.zero_grad(set_to_none=True)
    batches = iterate_batches(split, info.layout, cfg.batch_size, shuffle=True,
                              seed=seed * 100_003 + epoch + 7_919 * order, bucket=cfg.bucket, missing=missing,
                              device=device)
    if fraction < 1.0:                  # the batches i with i / n < fraction (MMIM's half pass on MOSEI)
        batches = list(batches)
        batches = batches[:math.ceil(fraction * len(batches))]
    for i, batch in enumerate(batches):
        with _autocast(device, cfg.amp):
            out = model(batch)
            loss, parts = compute_loss(model, out, batch, info.task, cfg.loss_kind)
        values = _read_back(loss, parts)           # one wait for the device per batch, not one per part
        if not math.isfinite(values["total"]):
            raise FloatingPointError(f"non-finite training loss at epoch {epoch}, batch {i}: {parts}")
        (loss / cfg.grad_accum).backward()
        if (i + 1) % cfg.grad_accum == 0:
            _step(optimizer, params, cfg, only)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        n_batches += 1
    if n_batches % cfg.grad_accum:
        _step(optimizer, params, cfg, only)
    return sums, n_batches


def train_passes(model, optimizer, params, split: SplitData, info, cfg: TrainConfig, seed: int, epoch: int,
                 device, missing: MissingModality | None = None) -> dict[str, float]:
    """An epoch of training; returns its mean loss parts. One :func:`train_epoch`, or, for a model with
    ``train_passes() -> [(name, fraction), ...]`` (MMIM: its mutual-information estimators, then the rest), one
    per pass in order, each after ``model.set_pass(name)``, stepping only ``model.pass_parameters(name)``; the
    last pass's parts keep their names, earlier passes' are prefixed with the pass name."""
    passes = model.train_passes() if hasattr(model, "train_passes") else [(None, 1.0)]
    means = {}
    for k, (name, fraction) in enumerate(passes):
        only = None
        if name is not None:
            model.set_pass(name)
            only = model.pass_parameters(name)
        sums, n = train_epoch(model, optimizer, params, split, info, cfg, seed, epoch, device, missing, order=k,
                              only=only, fraction=fraction)
        prefix = "" if k == len(passes) - 1 else f"{name}_"
        means.update({prefix + key: v / max(n, 1) for key, v in sums.items()})
    return means


class Checkpoints:
    """What a run keeps on disk (nothing when ``run_dir`` is None): ``last.pt`` (everything a resume needs),
    ``best.pt`` (the chosen weights: VALID's pick, fold 1's pick under cross-fitting, or an intermediate
    stage's last epoch) and ``best_fold<f>.pt`` (each fold's pick)."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir) if run_dir is not None else None

    def resume(self, model, optimizer, scheduler, selector, device) -> dict | None:
        """Restore model, optimiser, scheduler, cross-fit selector and RNG from ``last.pt``; return its
        ``history``, ``best_value``, ``best_epoch``, ``test_history``, ``start_epoch`` and ``best_state``
        (None when there is nothing to resume). A ``last.pt`` whose chosen epoch's ``best.pt`` is gone is
        refused: the run would end on its last weights while recording the chosen epoch's number."""
        if self.dir is None or not (self.dir / "last.pt").exists():
            return None
        ck = load_checkpoint(self.dir / "last.pt", device)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scheduler is not None and ck.get("scheduler") is not None:
            scheduler.load_state_dict(ck["scheduler"])
        state = {"history": ck["history"], "best_value": ck["best_value"], "best_epoch": ck["best_epoch"],
                 "test_history": [], "start_epoch": ck["epoch"] + 1, "best_state": None,
                 "elapsed_s": float(ck.get("elapsed_s", 0.0))}   # older checkpoints did not keep it
        if selector is not None:
            selector.load_state_dict(ck["crossfit"])
            state["test_history"] = ck["test_history"]
        set_rng_state(ck["rng"])
        if (self.dir / "best.pt").exists():
            state["best_state"] = load_checkpoint(self.dir / "best.pt", "cpu")["model"]
        elif state["best_epoch"] >= 0:
            raise FileNotFoundError(f"{self.dir / 'best.pt'}: missing, but {self.dir / 'last.pt'} says epoch "
                                    f"{state['best_epoch']} was chosen; its weights are gone, so the run cannot be "
                                    f"resumed as recorded: delete {self.dir} (or train with --force) to retrain it")
        return state

    def save(self, name: str, payload: dict) -> None:
        """``payload`` to ``<run_dir>/<name>`` (atomically); nothing without a run folder."""
        if self.dir is not None:
            atomic_torch_save(payload, self.dir / name)


class _Selection:
    """Which epoch a stage hands on, decided after every epoch. Holds what ``last.pt`` records of it
    (``best_value``, ``best_epoch``, ``test_history``, the cross-fit selector) and the chosen weights.

    Three kinds (:func:`_selection`): :class:`_ValidSelection` (VALID's best epoch, early stopping),
    :class:`_CrossfitSelection` (each test fold's pick, a final stage under ``selection="crossfit"``) and this
    base class itself, which selects nothing and hands on the last epoch (an intermediate cross-fitted stage)."""

    selects = False
    crossfit: CrossFitSelector | None = None

    def __init__(self, metric: str, ckpt: Checkpoints):
        self.metric, self.ckpt = metric, ckpt
        self.best_value, self.best_epoch, self.best_state = None, -1, None
        self.test_history: list[dict] = []
        self.stale = 0

    def restore(self, resumed: dict | None) -> tuple[list[dict], int]:
        """Take over a resumed run's state; returns its history and the first epoch to train."""
        if not resumed:
            return [], 0
        self.best_value, self.best_epoch = resumed["best_value"], resumed["best_epoch"]
        self.test_history, self.best_state = resumed["test_history"], resumed["best_state"]
        history = resumed["history"]
        self.stale = _epochs_since_best(history, self.best_epoch) if history else 0
        return history, resumed["start_epoch"]

    def stop(self) -> bool:
        """Stop before the next epoch?"""
        return False

    def step(self, epoch: int, model, value: float) -> bool:
        """After epoch ``epoch`` (VALID's selection metric ``value``): whether it was chosen (by any fold)."""
        self.stale += 1
        return False

    def finish(self, model, history: list[dict], desc: str) -> tuple[bool, dict | None, dict | None]:
        """After the last epoch: ``(best_is_last, test metrics or None, protocols or None)``; ``best.pt`` holds
        the last weights (what the next stage starts from)."""
        if history:
            self.best_epoch = len(history) - 1
            self.ckpt.save("best.pt", {"model": _cpu_state(model), "epoch": self.best_epoch, "selected": False})
        return False, None, None


class _ValidSelection(_Selection):
    """VALID's best epoch, training stopped after ``patience`` epochs without improvement."""

    selects = True

    def __init__(self, metric: str, ckpt: Checkpoints, patience: int | None):
        super().__init__(metric, ckpt)
        self.patience = patience

    def stop(self) -> bool:
        return self.patience is not None and self.stale >= self.patience

    def step(self, epoch: int, model, value: float) -> bool:
        if not is_better(self.metric, value, self.best_value):
            self.stale += 1
            return False
        self.best_value, self.best_epoch, self.stale = value, epoch, 0
        self.best_state = _cpu_state(model)
        self.ckpt.save("best.pt", {"model": self.best_state, "epoch": epoch, "value": value})
        return True

    def finish(self, model, history: list[dict], desc: str) -> tuple[bool, dict | None, dict | None]:
        if self.best_epoch < 0:
            raise RuntimeError(f"{desc}: no epoch was selected on VALID (epochs run: {len(history)}; epochs=0, "
                               f"patience=0 or a selection metric '{self.metric}' that is never finite); nothing "
                               "to record")
        return self.best_epoch == len(history) - 1, None, None


class _CrossfitSelection(_Selection):
    """Each test fold's epoch chosen on the other folds (:class:`~mser_lib.train.crossfit.CrossFitSelector`):
    the test split is predicted after every epoch; ``best_fold<f>.pt`` holds each fold's pick and ``best.pt``
    fold 1's (what analyses load by default)."""

    selects = True

    def __init__(self, metric: str, ckpt: Checkpoints, dataset: MultimodalDataset, cfg: TrainConfig, seed: int):
        super().__init__(metric, ckpt)
        self.dataset, self.cfg, self.seed = dataset, cfg, seed
        folds = assign_folds(dataset.test, cfg.crossfit_folds, cfg.crossfit_seed)
        self.y_test, self.ids_test = prediction_order(dataset.test, cfg.eval_batch_size)
        self.crossfit = CrossFitSelector(position_folds(dataset.test, folds, self.ids_test), cfg.crossfit_folds,
                                         metric, dataset.info.metric_family, cfg.patience)

    def stop(self) -> bool:
        return self.crossfit.done

    def step(self, epoch: int, model, value: float) -> bool:
        self.stale += 1
        cfg = self.cfg
        _, p_t, ids_t, _ = predict(model, self.dataset.test, self.dataset.info, cfg.eval_batch_size, cfg.device,
                                   None, self.seed, cfg.amp)
        if not np.array_equal(ids_t, self.ids_test):
            raise RuntimeError("test predictions came in an unexpected order; cross-fitting needs prediction_order")
        fold_improved = self.crossfit.update(epoch, self.y_test, p_t)
        self.test_history.append(_metrics(self.y_test, p_t, self.dataset.info, cfg))
        for f, better in enumerate(fold_improved):
            if not better:
                continue
            state = _cpu_state(model)
            self.ckpt.save(f"best_fold{f}.pt", {"model": state, "epoch": epoch, "fold": f})
            if f == 0:
                self.best_state, self.best_epoch = state, epoch
                self.ckpt.save("best.pt", {"model": state, "epoch": epoch, "fold": 0})
        return any(fold_improved)

    def finish(self, model, history: list[dict], desc: str) -> tuple[bool, dict | None, dict | None]:
        test, protocols = _crossfit_protocols(self.crossfit, history, self.test_history, self.y_test,
                                              self.dataset.info, self.cfg, self.metric)
        self.best_epoch = max(self.crossfit.best_epoch)
        return len(history) - 1 in self.crossfit.best_epoch, test, protocols


def _resume_state(model, optimizer, scheduler, sel: _Selection, epoch: int, history: list[dict],
                  elapsed_s: float) -> dict:
    """What ``last.pt`` holds after epoch ``epoch``: everything :meth:`Checkpoints.resume` restores, and the
    seconds trained so far over every sitting (``elapsed_s``), so that a resumed run's record states its whole
    training time."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler else None,
            "epoch": epoch, "history": history, "best_value": sel.best_value,
            "best_epoch": sel.best_epoch, "rng": rng_state(),
            "crossfit": sel.crossfit.state_dict() if sel.crossfit is not None else None,
            "test_history": sel.test_history, "elapsed_s": elapsed_s}


def _selection(cfg: TrainConfig, dataset: MultimodalDataset, metric: str, score_test: bool, ckpt: Checkpoints,
               seed: int) -> _Selection:
    """The stage's selection: VALID's (``selection="valid"``), the test folds' (a final cross-fitted stage), or
    none (an intermediate cross-fitted stage: it hands on its last epoch)."""
    if cfg.selection not in ("valid", "crossfit"):
        raise ValueError(f"TrainConfig.selection must be 'valid' or 'crossfit', got {cfg.selection!r}")
    if cfg.selection == "valid":
        return _ValidSelection(metric, ckpt, cfg.patience)
    if score_test:
        return _CrossfitSelection(metric, ckpt, dataset, cfg, seed)
    return _Selection(metric, ckpt)


def fit(model, dataset: MultimodalDataset, cfg: TrainConfig, seed: int = 0, run_dir: str | Path | None = None,
        score_test: bool = True, epochs: int | None = None, desc: str = "train",
        callbacks: list[Callable[[int, dict], None]] | None = None, optimizer=None) -> FitResult:
    """Train ``model`` on ``dataset.train``, select on ``dataset.valid``, score ``dataset.test`` once.

    Each epoch: :func:`train_passes`, the VALID metrics, the selection (:class:`_Selection`: VALID's best epoch
    with early stopping; under ``selection="crossfit"`` each test fold's pick; an intermediate cross-fitted stage
    selects nothing and hands on its last epoch), the scheduler, and :class:`Checkpoints` (``last.pt`` every
    epoch, so an interrupted run resumes bit-identical).

    Args:
        model: an ``nn.Module`` following :mod:`mser_lib.models.base`.
        dataset: the three splits and their :class:`DatasetInfo`.
        cfg: trainer settings.
        seed: seeds initial RNG state and the per-epoch batch order.
        run_dir: where ``last.pt`` / ``best.pt`` go; ``None`` keeps everything in memory.
        score_test: score the test split at the end (off for intermediate stages).
        epochs: override ``cfg.epochs`` (used for stages).
        callbacks: called as ``cb(epoch, history_row)`` after each epoch's checkpoint is written.
        optimizer: one to continue (:func:`fit_model` with ``optimizer_per_stage=False``); default a new one.
    """
    start = time.perf_counter()
    cfg.validate()                    # also catches fields changed after construction
    check_loss_kind(model, cfg)
    info = dataset.info
    device = usable_device(cfg.device)
    set_seed(seed, cfg.deterministic)
    n_epochs = cfg.epochs if epochs is None else epochs
    metric = cfg.select_metric or default_selection_metric(info.metric_family)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters in this stage")
    if optimizer is None:
        optimizer = _make_optimizer(params, cfg, model)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min" if metric in ("mae", "loss") else "max", factor=cfg.plateau_factor,
        patience=cfg.plateau_patience) if cfg.plateau else None)
    ckpt = Checkpoints(run_dir)
    sel = _selection(cfg, dataset, metric, score_test, ckpt, seed)
    resumed = ckpt.resume(model, optimizer, scheduler, sel.crossfit, device)
    history, start_epoch = sel.restore(resumed)
    earlier = resumed["elapsed_s"] if resumed else 0.0

    bar = tqdm(range(start_epoch, n_epochs), desc=desc, disable=not cfg.progress, leave=False,
               initial=start_epoch, total=n_epochs)
    missing = MissingModality(rate=cfg.train_missing_rate) if cfg.train_missing_rate > 0 else None
    for epoch in bar:
        if sel.stop():
            break
        means = train_passes(model, optimizer, params, dataset.train, info, cfg, seed, epoch, device, missing)
        valid, _ = evaluate(model, dataset.valid, info, cfg)
        value = valid[metric]
        improved = sel.step(epoch, model, value)
        if scheduler is not None and not (isinstance(value, float) and math.isnan(value)):
            scheduler.step(value)
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
               **{f"train_{k}": v for k, v in means.items()},
               **{f"valid_{k}": v for k, v in valid.items()}, "best": improved}
        history.append(row)
        bar.set_postfix({"train": f"{row['train_total']:.3f}", metric: f"{value:.3f}"})
        ckpt.save("last.pt", _resume_state(model, optimizer, scheduler, sel, epoch, history,
                                           earlier + time.perf_counter() - start))
        for cb in callbacks or ():
            cb(epoch, row)
    bar.close()

    best_is_last, test, protocols = sel.finish(model, history, desc)
    if sel.best_state is not None:
        model.load_state_dict(sel.best_state)
    valid, _ = evaluate(model, dataset.valid, info, cfg)
    if sel.crossfit is None:
        test = evaluate(model, dataset.test, info, cfg)[0] if score_test else None
    degenerate = None
    if score_test:   # did the selected model beat the trivial predictor on the split it was selected on?
        split, chosen = ("test", test) if sel.crossfit is not None else ("valid", valid)
        degenerate = learned_nothing(chosen, trivial_metrics(dataset, split), info.task)
    return FitResult(best_epoch=sel.best_epoch, epochs_run=len(history), valid_metrics=valid,
                     test_metrics=test, history=history, wall_time_s=time.perf_counter() - start,
                     select_metric=metric, resumed_from_epoch=start_epoch if resumed else None,
                     best_is_last=best_is_last, protocols=protocols, degenerate=degenerate, earlier_s=earlier)


def _crossfit_protocols(selector, history: list[dict], test_history: list[dict], y_test, info, cfg: TrainConfig,
                        metric: str) -> tuple[dict, dict]:
    """The test metrics of cross-fitted selection (each fold scored by the other fold's pick, pooled) and the
    three protocols recorded beside them: ``crossfit``, ``valid`` (the epoch VALID would choose, scored on the
    whole test split) and ``test_oracle`` (the epoch with the best test score: what selecting on test reports)."""
    if any(e < 0 for e in selector.best_epoch):
        raise RuntimeError("cross-fitted selection chose no epoch (epochs=0 or a metric that is never finite)")
    test = _metrics(y_test, selector.pooled(), info, cfg)
    valid_pick = _best_epoch(history, f"valid_{metric}", metric)
    oracle_metric = "acc2_has0" if "acc2_has0" in test_history[0] else metric
    oracle_pick = _best_epoch([{"epoch": e, **m} for e, m in enumerate(test_history)], oracle_metric, oracle_metric)
    return test, {
        "crossfit": {"metrics": test, "folds": selector.summary(), "k": cfg.crossfit_folds,
                     "fold_seed": cfg.crossfit_seed},
        "valid": {"epoch": valid_pick, "metrics": test_history[valid_pick]},
        "test_oracle": {"epoch": oracle_pick, "chosen_by": oracle_metric, "metrics": test_history[oracle_pick]}}


def trivial_metrics(dataset: MultimodalDataset, split: str) -> dict:
    """Metrics on ``split`` of the trivial predictor: the mean training label (regression) or the majority
    training class (classification)."""
    info = dataset.info
    tr, sp = dataset.train, dataset.split(split)
    y_tr = np.asarray(tr.labels)[np.asarray(tr.label_mask, dtype=bool)]
    y = np.asarray(sp.labels)[np.asarray(sp.label_mask, dtype=bool)]
    if info.task == "classification":
        logits = np.zeros((len(y), info.num_classes))
        logits[:, np.bincount(y_tr.astype(int), minlength=info.num_classes).argmax()] = 1.0
        return compute_metrics(y, logits, "classification")
    p = np.full(len(y), float(y_tr.mean()))
    return {**compute_metrics(y, p, info.metric_family), "loss": float(np.abs(p - y).mean())}


def learned_nothing(model_metrics: dict, trivial: dict, task: str) -> bool:
    """True when the model does no better than the trivial predictor: MAE not below the mean predictor's
    (regression), accuracy not above the majority class's (classification), or a non-finite value."""
    key = "acc" if task == "classification" else "mae"
    m, t = model_metrics.get(key), trivial.get(key)
    if m is None or m != m:
        return True
    return bool(m <= t) if key == "acc" else bool(m >= t)


def _metrics(y: np.ndarray, p: np.ndarray, info, cfg: TrainConfig) -> dict:
    """The metrics of docs/metrics.md plus the task loss as ``loss`` (as :func:`evaluate`)."""
    if info.task == "classification":
        metrics = compute_metrics(y, p, "classification")
        logp = p - np.logaddexp.reduce(p, axis=1, keepdims=True)
        metrics["loss"] = float(-logp[np.arange(len(y)), y.astype(int)].mean())
    else:
        metrics = compute_metrics(y, p, info.metric_family)
        d = p - y
        metrics["loss"] = float(np.abs(d).mean() if _task_kind(cfg) == "l1" else (d * d).mean())
    return metrics


def _best_epoch(rows: list[dict], key: str, metric: str) -> int:
    """Index of the row with the best ``key`` (first one on ties)."""
    best, idx = None, 0
    for i, r in enumerate(rows):
        if is_better(metric, r.get(key), best):
            best, idx = r.get(key), i
    return idx


def _read_back(loss: torch.Tensor, parts: dict) -> dict[str, float]:
    """``{part: float, ..., "total": float}`` of a batch's loss parts and total, read from the device in one
    transfer (float64, so each value is what ``float(v)`` gives)."""
    names = [*parts, "total"]
    vals = torch.stack([torch.as_tensor(v).detach().reshape(()).to(loss.device, torch.float64)
                        for v in [*parts.values(), loss]]).tolist()
    return dict(zip(names, vals))


def _step(optimizer, params, cfg: TrainConfig, only: set[int] | None = None) -> None:
    """Clip the gradients' norm (over every parameter, as the reference codes do), drop the gradients of the
    parameters not in ``only`` (Adam then leaves them and their moments alone), step."""
    if cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad, foreach=True)
    if only is not None:
        for p in params:
            if id(p) not in only:
                p.grad = None
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _epochs_since_best(history: list[dict], best_epoch: int) -> int:
    return sum(1 for row in history if row["epoch"] > best_epoch)


def fit_model(model, dataset: MultimodalDataset, cfg: TrainConfig, seed: int = 0,
              run_dir: str | Path | None = None, callbacks=None) -> FitResult:
    """Fit every stage of ``model`` in order (``model.stages()``, default one stage).

    Each stage is selected on VALID and starts from the best weights of the previous one, with a fresh optimiser
    unless ``cfg.optimizer_per_stage`` is False (then one for all stages, its state carried over); the test
    split is scored once, after the last stage. A model with ``prepare(dataset)`` (e.g. Atsuko's
    equal-energy band boundaries from the training split) is prepared first.
    """
    if hasattr(model, "prepare"):
        model.prepare(dataset)
    stages = list(model.stages()) if hasattr(model, "stages") else [None]
    shared = None
    if not cfg.optimizer_per_stage and len(stages) > 1:
        # over every parameter: Adam skips those without a gradient, so a stage's frozen or unused ones keep
        # their state untouched until a later stage trains them
        model.to(usable_device(cfg.device))
        shared = _make_optimizer(model.parameters(), cfg, model)
    results, total, earlier = [], 0.0, 0.0
    for k, stage in enumerate(stages):
        if stage is not None:
            model.set_stage(stage)
        sub = None if run_dir is None else (Path(run_dir) / (stage or "main"))
        epochs = cfg.stage_epochs.get(stage, cfg.epochs) if stage is not None else cfg.epochs
        res = fit(model, dataset, cfg, seed=seed, run_dir=sub, score_test=k == len(stages) - 1,
                  epochs=epochs, desc=f"{stage or 'train'}", callbacks=callbacks, optimizer=shared)
        total += res.wall_time_s
        earlier += res.earlier_s
        results.append({"stage": stage, **{k2: v for k2, v in asdict(res).items() if k2 != "stages"}})
    final = results[-1]
    return FitResult(best_epoch=final["best_epoch"], epochs_run=sum(r["epochs_run"] for r in results),
                     valid_metrics=final["valid_metrics"], test_metrics=final["test_metrics"],
                     history=final["history"], wall_time_s=total, select_metric=final["select_metric"],
                     resumed_from_epoch=final["resumed_from_epoch"], stages=results,
                     best_is_last=final["best_is_last"], protocols=final["protocols"],
                     degenerate=final["degenerate"], earlier_s=earlier)
