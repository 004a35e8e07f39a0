"""A fair hyperparameter search on the clean (cross-fitted) selection folds.

Every model, baselines included, gets the same search: the same trainer part of the space, one
capacity and one regularisation field of its own (:data:`SPACES`), the same number of trials, on one
seed, under the dataset's cross-fitted selection (``selection: crossfit``, :mod:`mser_lib.train.crossfit`).

How the selection stays clean:

* **Trials do not depend on the data.** Trial ``n`` draws its settings with Optuna's
  :class:`~optuna.samplers.RandomSampler`, seeded by ``(sampler_seed, n)`` alone
  (:func:`trial_params`). So every fold sees the same trials, whatever any fold's scores were. (A
  model-based sampler such as TPE would steer later trials by the scores of every fold together.)
* **Each fold chooses on its own videos.** A trial is one run (:func:`mser_lib.experiments.run_one`,
  a cached, resumable record) and one training run serves every fold: fold ``f`` scores the trial
  by ``record["protocols"]["crossfit"]["folds"][f]["best_value"]``, its selection metric at the epoch
  that fold chose on its own test videos. Fold ``f`` chooses the trial with its best value
  (:func:`choose_per_fold`).
* **A fold's choice scores only the other folds.** In the final runs (:func:`final_runs`), the
  settings fold ``f`` chose are trained over the seeds, and their checkpoint ``best_fold{f}`` (the
  epoch fold ``f`` chose) predicts the test split; each position of fold ``j`` is scored by the
  mean of the other folds' models (:func:`pooled_predictions`; ``k = 2``: fold 1's videos by fold
  0's settings and epoch, and vice versa). No video is scored by settings or an epoch chosen on it.

The study lives in SQLite, ``<results>/<profile>/<dataset>/search/<label>.db`` (Optuna storage). A
trial is added to it only once its run has finished, so an interrupted search leaves no half trial:
calling :func:`run_search` again with the same or more trials trains only the missing ones (the
runs themselves are cached by config hash and resume from their last checkpoint).

One search at a time per study: :func:`run_search` holds an exclusive lock on ``<label>.db.lock`` beside
the study (:class:`StudyLock`, ``flock``, released when the process ends, however it ends), so a second
search of the same study stops at once (:class:`StudyBusy`) instead of adding trials numbered by the
other one's. A resumed study is checked trial by trial before anything is added (:func:`check_trials`):
each trial's settings must be the ones its number draws, and its fold values, chosen epochs and cost
the ones its run's record holds (``runs.jsonl``, else this machine's ``record.json``); a study edited
by hand or mixed by an older version stops with one line (:class:`StudyMismatch`).

Cost: each trial's ``wall_time_s`` (training time from its record) is kept in the study; the
search's cost is their sum (:attr:`SearchResult.cost_s`). A run resumed after an interruption
records only the time of its last session.

Optuna is an optional dependency (``pip install mser_lib[search]``); it is imported on use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data.validate import DataFormatError
from .experiments import DEFAULT_RESULTS, config_hash, get_dataset, profile_seeds, resolve_run, run_one
from .metrics import LOWER_IS_BETTER, compute_metrics, default_selection_metric, is_better
from .models.registry import MODELS, Param, _load_all
from .train import TrainConfig
from .train.io import ExclusiveLock, read_jsonl

# ----------------------------------------------------------------------------- the search spaces


#: The trainer part, the same for every model.
TRAIN_SPACE: dict[str, Param] = {
    "lr": Param("log_float", 1e-4, 3e-3),
    "weight_decay": Param("choice", choices=(0.0, 1e-4, 1e-3)),
}

def model_spaces() -> dict[str, dict[str, Param]]:
    """The model part of each registered model's search space (its registration's ``search_space``: one
    capacity and one regularisation field of its config dataclass); models without one are not searched."""
    _load_all()
    return {name: dict(spec.search_space) for name, spec in MODELS.items() if spec.search_space}


def search_space(model: str) -> dict[str, tuple[str, Param]]:
    """``{name: (part, Param)}`` for ``model``, ``part`` being ``"train"`` (trainer setting) or
    ``"model"`` (model config field); trainer settings first (the order the sampler draws them in)."""
    spaces = model_spaces()
    if model not in spaces:
        raise KeyError(f"no search space for model {model!r}; spaces: {sorted(spaces)}")
    clash = set(TRAIN_SPACE) & set(spaces[model])
    if clash:
        raise ValueError(f"search space of {model!r}: {sorted(clash)} named in both parts")
    return {**{k: ("train", p) for k, p in TRAIN_SPACE.items()},
            **{k: ("model", p) for k, p in spaces[model].items()}}


def _distributions(model: str) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out = {}
    for name, (_, p) in search_space(model).items():
        if p.kind == "choice":
            out[name] = CategoricalDistribution(list(p.choices))
        elif p.kind in ("float", "log_float"):
            out[name] = FloatDistribution(p.low, p.high, log=p.kind == "log_float")
        else:
            raise ValueError(f"unknown Param kind {p.kind!r}")
    return out


def split_params(model: str, params: dict) -> tuple[dict, dict]:
    """A trial's ``params`` as ``(model overrides, trainer settings)``."""
    space = search_space(model)
    overrides = {k: v for k, v in params.items() if space[k][0] == "model"}
    train = {k: v for k, v in params.items() if space[k][0] == "train"}
    return overrides, train


def trial_seed(sampler_seed: int, number: int) -> int:
    """The RandomSampler seed of trial ``number``: a function of ``(sampler_seed, number)`` only."""
    return int(np.random.SeedSequence([int(sampler_seed), int(number)]).generate_state(1)[0])


def trial_params(model: str, number: int, sampler_seed: int = 0) -> dict:
    """The settings of trial ``number``, drawn by Optuna's RandomSampler seeded with
    :func:`trial_seed` (in a throwaway in-memory study). They depend on nothing else: not on the data,
    not on earlier trials' scores, not on how many trials an earlier call ran (a resumed search draws
    what a fresh one would)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=trial_seed(sampler_seed, number)))
    return dict(scratch.ask(_distributions(model)).params)


# ----------------------------------------------------------------------------- the search


def study_path(results_dir, profile: str, dataset: str, label: str) -> Path:
    """``<results>/<profile>/<dataset>/search/<label>.db``."""
    return Path(results_dir) / profile / dataset / "search" / f"{label}.db"


class StudyBusy(OSError):
    """Another process holds a search of the same study (:class:`StudyLock`)."""


class StudyLock(ExclusiveLock):
    """An exclusive lock on ``<label>.db.lock`` beside the study ``path`` for the whole of a search: a second
    search of the same study (another terminal, a job sharing the workspace) stops at once with one line
    instead of adding trials in between the first one's (trial ``n`` would then hold another number's
    settings, and each search would choose among a mix). :class:`mser_lib.train.io.ExclusiveLock`: no link
    followed, released with the process, so a search that died leaves nothing to delete."""

    def __init__(self, path):
        self.study = Path(path)
        lock = self.study.with_name(self.study.name + ".lock")
        super().__init__(lock, lambda: StudyBusy(
            f"{self.study}: another search holds this study (lock {lock.name}); wait for it to end, or give this "
            "search another label (two at once would mix their trials)"))


class StudyMismatch(DataFormatError):
    """A stored trial of a study is not what its number draws or what its run recorded (a study edited by
    hand, or mixed by two searches at once before :class:`StudyLock`). One line: the study file, the
    trial, the field, what was expected and what was found."""

    def __init__(self, file, trial: int, field: str, expected: str, found: str) -> None:
        self.file, self.trial, self.field, self.expected, self.found = str(file), int(trial), field, expected, found
        ValueError.__init__(self, f"{file}: trial {trial}: field {field!r}: expected {expected}, found {found} "
                                  "(the study does not match its seed and runs: delete the file to search again)")

    def __reduce__(self):
        return type(self), (self.file, self.trial, self.field, self.expected, self.found)


def _outcome(rec: dict) -> tuple[list[float | None], dict]:
    """A trial's fold values and stored attributes, derived from its run's record: fold ``f``'s value is
    ``record["protocols"]["crossfit"]["folds"][f]["best_value"]`` (``None`` when not finite)."""
    folds = rec["protocols"]["crossfit"]["folds"]
    fold_values = [None if f["best_value"] is None or not math.isfinite(f["best_value"])
                   else float(f["best_value"]) for f in folds]
    attrs = {"config_hash": rec["config_hash"], "wall_time_s": rec["wall_time_s"], "fold_values": fold_values,
             "fold_best_epochs": [f["best_epoch"] for f in folds], "epochs_run": rec["epochs_run"],
             "last_epoch": len(rec["history"]) - 1}
    return fold_values, attrs


def _shown(v) -> str:
    text = json.dumps(v, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def check_trials(path, trials, model: str, sampler_seed: int, run_of, results_dir) -> None:
    """Check a resumed study's stored ``trials`` (Optuna ``FrozenTrial``) before anything is added to it.

    Trial ``n`` must hold the settings and sampler seed that ``n`` draws (:func:`trial_params`,
    :func:`trial_seed`), the config hash of the run with those settings (``run_of(params)``, a resolved
    run), and the fold values, chosen epochs, epoch counts and wall time that run's record holds
    (``runs.jsonl``; this machine's ``record.json`` if ``runs.jsonl`` has none); its state and Optuna values
    follow from the fold values. A diverged trial (``error``, no hash) must have no record. The first
    difference raises :class:`StudyMismatch`."""
    from .experiments import run_dir, runs_path

    committed: dict[str, dict] | None = None

    def record_of(run: dict) -> tuple[dict | None, str]:
        nonlocal committed
        if committed is None:
            committed = {}
            for r in read_jsonl(runs_path(results_dir, run["profile"], run["dataset"])):
                committed[r.get("config_hash")] = r        # the last one, if a hash appears twice
        h = config_hash(run)
        if h in committed:
            return committed[h], "runs.jsonl"
        local = run_dir(results_dir, run["profile"], run["dataset"], h) / "record.json"
        if local.exists():
            return json.loads(local.read_text()), f"checkpoints/{h}/record.json"
        return None, "runs.jsonl"

    def expect(number, name, expected, found, why=""):
        if json.dumps(expected, sort_keys=True, default=str) != json.dumps(found, sort_keys=True, default=str):
            raise StudyMismatch(path, number, name, _shown(expected) + why, _shown(found))

    for t in trials:
        n, attrs = t.number, t.user_attrs
        params = trial_params(model, n, sampler_seed)
        expect(n, "params", params, dict(t.params), f" (the settings trial {n} draws)")
        expect(n, "trial_seed", trial_seed(sampler_seed, n), attrs.get("trial_seed"))
        run = run_of(params)
        h = config_hash(run)
        rec, where = record_of(run)
        if "error" in attrs and "config_hash" not in attrs:            # diverged: no record, never chosen
            if rec is not None:
                raise StudyMismatch(path, n, "error", f"no record of run {h} (a diverged run leaves none)",
                                    f"one in {where}")
            expect(n, "state", "FAIL", t.state.name)
            expect(n, "fold_values", None, attrs.get("fold_values"))
            expect(n, "values", None, t.values)
            continue
        expect(n, "config_hash", h, attrs.get("config_hash"), " (the run with its settings)")
        if rec is None:
            raise StudyMismatch(path, n, "fold_values", f"a record of run {h} in {where} to check them against",
                                "none")
        fold_values, derived = _outcome(rec)
        for key, value in derived.items():
            expect(n, key, value, attrs.get(key), f" (from run {h} in {where})")
        complete = all(v is not None for v in fold_values)
        expect(n, "state", "COMPLETE" if complete else "FAIL", t.state.name)
        expect(n, "values", fold_values if complete else None, t.values, f" (from run {h} in {where})")


def choose_per_fold(fold_values: list[list[float | None] | None], metric: str) -> list[int | None]:
    """For each fold ``f``, the index of the trial with the best ``fold_values[t][f]`` on ``metric``
    (the first one on ties; ``None``/NaN never wins; a trial of ``None`` (failed) is skipped).
    Fold ``f``'s choice reads column ``f`` only. ``None`` for a fold no trial scored."""
    k = max((len(v) for v in fold_values if v is not None), default=0)
    out: list[int | None] = []
    for f in range(k):
        best, idx = None, None
        for t, vals in enumerate(fold_values):
            if vals is None:
                continue
            v = vals[f]
            v = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
            if is_better(metric, v, best):
                best, idx = v, t
        out.append(idx)
    return out


@dataclass
class SearchResult:
    """A search's trials and each fold's choice (:func:`run_search`)."""

    model: str
    label: str
    dataset: str
    profile: str
    seed: int
    sampler_seed: int
    k: int
    metric: str
    path: Path
    trials: list[dict]                 # number, params, state, fold_values, config_hash, wall_time_s, ...
    choices: list[int | None]          # per fold: index into ``trials``
    base_overrides: dict = field(default_factory=dict)
    base_train: dict = field(default_factory=dict)
    data_dir: str | None = None
    data_kwargs: dict = field(default_factory=dict)

    @property
    def cost_s(self) -> float:
        """Sum of the trials' training wall times (seconds, from their records)."""
        return float(sum(t.get("wall_time_s") or 0.0 for t in self.trials))

    def chosen(self, fold: int) -> dict:
        """The trial fold ``fold`` chose."""
        idx = self.choices[fold]
        if idx is None:
            raise RuntimeError(f"fold {fold} chose no trial (every trial failed or scored NaN)")
        return self.trials[idx]

    def run_args(self, fold: int) -> tuple[dict, dict]:
        """``(overrides, train)`` of the run with the settings fold ``fold`` chose."""
        ov, tr = split_params(self.model, self.chosen(fold)["params"])
        return {**self.base_overrides, **ov}, {**self.base_train, **tr}


def _fingerprint(model, dataset, profile, seed, sampler_seed, overrides, train, data_kwargs, info) -> dict:
    run = resolve_run(model, dataset, seed, profile, overrides, train, data_kwargs, info=info)
    space = {k: [part, p.kind, p.low, p.high, list(p.choices)] for k, (part, p) in search_space(model).items()}
    return {"model": model, "dataset": dataset, "profile": profile, "seed": int(seed),
            "sampler_seed": int(sampler_seed), "space": space, "base_config_hash": config_hash(run)}, run


def run_search(model: str, dataset: str, profile: str = "quick", n_trials: int = 20, seed: int = 0,
               sampler_seed: int = 0, data_dir=None, data_kwargs: dict | None = None,
               results_dir=DEFAULT_RESULTS, overrides: dict | None = None, train: dict | None = None,
               ds=None, label: str | None = None, progress: bool = True) -> SearchResult:
    """Run (or resume) the search of ``model``: ``n_trials`` trials on ``seed`` (see the module docstring).

    Args:
        model: a registered model with a search space (:func:`model_spaces`).
        n_trials: the study's trial count after this call; trials already in the study are kept, the
            missing ones are trained (a smaller count than the study holds uses its first ``n_trials``).
        seed: the training seed of every trial.
        sampler_seed: seeds the trials' settings (:func:`trial_params`).
        overrides, train: fixed model fields and trainer settings under the searched ones (e.g. a
            shorter schedule); the searched ones win.
        ds: an already loaded dataset (else ``dataset`` is loaded).
        label: the study's name and file name (default ``model``).

    The run must use cross-fitted selection (``selection: crossfit``, set by the profile for
    ``mosi-bclstm`` or by ``train``). A study made with other settings (space, seeds, base config)
    is refused rather than mixed. The study is locked for the whole call (:class:`StudyLock`: a second
    search of it raises :class:`StudyBusy`), and a resumed study's trials are checked against their seed
    and their runs' records before any is added (:func:`check_trials`: :class:`StudyMismatch`).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from tqdm.auto import tqdm

    label = label or model
    overrides, train, data_kwargs = dict(overrides or {}), dict(train or {}), dict(data_kwargs or {})
    if ds is None:
        ds = get_dataset(dataset, data_dir, profile, data_kwargs)
    fp, base = _fingerprint(model, dataset, profile, seed, sampler_seed, overrides, train, data_kwargs, ds.info)
    k, metric, direction = _selection(model, dataset, profile, base, ds.info)

    path = study_path(results_dir, profile, dataset, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    with StudyLock(path):                            # one search per study at a time; released however it ends
        study = _open_study(path, label, direction, k, fp, metric)
        dists = _distributions(model)

        def run_of(params: dict) -> dict:
            ov, tr = split_params(model, params)
            return resolve_run(model, dataset, seed, profile, {**overrides, **ov}, {**train, **tr}, data_kwargs,
                               info=ds.info)

        def train_with(ov: dict, tr: dict) -> dict:
            return run_one(model, dataset, seed, profile, {**overrides, **ov}, {**train, **tr}, data_dir,
                           data_kwargs, results_dir=results_dir, progress=False, tag=f"search:{label}", ds=ds)

        have = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        check_trials(path, have, model, sampler_seed, run_of, results_dir)   # what it holds is what it drew and ran

        for number in tqdm(range(len(have), n_trials), desc=f"search {label}", disable=not progress):
            study.add_trial(_trial(model, number, sampler_seed, dists, train_with))

        frozen = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)[:n_trials]
    trials = _trial_rows(frozen)
    choices = choose_per_fold([t["fold_values"] for t in trials], metric)
    return SearchResult(model=model, label=label, dataset=dataset, profile=profile, seed=int(seed),
                        sampler_seed=int(sampler_seed), k=k, metric=metric, path=path, trials=trials,
                        choices=choices, base_overrides=overrides, base_train=train,
                        data_dir=None if data_dir is None else str(data_dir), data_kwargs=data_kwargs)


def _selection(model: str, dataset: str, profile: str, base: dict, info) -> tuple[int, str, str]:
    """``(k, metric, direction)`` of the search from the base run ``base``'s train settings: its cross-fit
    fold count, selection metric (the metric family's default when unset) and ``"minimize"``/``"maximize"``.

    Raises:
        ValueError: the run does not select with ``selection: crossfit``.
    """
    tcfg = TrainConfig(**base["train"])
    if tcfg.selection != "crossfit":
        raise ValueError(f"the search selects on the cross-fitted test folds, but {model} on {dataset} "
                         f"(profile {profile}) uses selection={tcfg.selection!r}; pass train={{'selection': "
                         "'crossfit'}} or use a profile that sets it")
    k = int(tcfg.crossfit_folds)
    metric = tcfg.select_metric or default_selection_metric(info.metric_family)
    direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    return k, metric, direction


def _open_study(path: Path, label: str, direction: str, k: int, fp: dict, metric: str):
    """Create or load the Optuna study ``label`` in the SQLite file ``path`` (``k`` objectives, all
    ``direction``); a new one is given ``fp``, ``k`` and ``metric`` as user attributes.

    Raises:
        ValueError: the file holds a study whose saved fingerprint differs from ``fp``.
    """
    import optuna

    study = optuna.create_study(storage=f"sqlite:///{path.resolve()}", study_name=label,
                                directions=[direction] * k, load_if_exists=True)
    saved = study.user_attrs.get("fingerprint")
    if saved is None:
        study.set_user_attr("fingerprint", fp)
        study.set_user_attr("k", k)
        study.set_user_attr("metric", metric)
    elif json.dumps(saved, sort_keys=True) != json.dumps(fp, sort_keys=True):
        raise ValueError(f"{path} holds a search with other settings:\n  saved {saved}\n  now   {fp}\n"
                         "delete the file or pass another label")
    return study


def _trial(model: str, number: int, sampler_seed: int, dists: dict, train_with):
    """Trial ``number``: draw its settings (:func:`trial_params`), train them with ``train_with(overrides,
    train)`` and return the finished Optuna trial (COMPLETE with its k fold values, or FAIL: a diverged run,
    whose ``FloatingPointError`` is kept in ``error``, or a fold value that is ``None``)."""
    import optuna

    params = trial_params(model, number, sampler_seed)
    ov, tr = split_params(model, params)
    attrs: dict = {"trial_seed": trial_seed(sampler_seed, number)}
    state, values = optuna.trial.TrialState.COMPLETE, None
    try:
        rec = train_with(ov, tr)
    except FloatingPointError as exc:        # diverged (non-finite loss): a failed trial, never chosen
        state, attrs["error"] = optuna.trial.TrialState.FAIL, str(exc)
    else:
        fold_values, derived = _outcome(rec)
        attrs.update(derived)
        if any(v is None for v in fold_values):
            state = optuna.trial.TrialState.FAIL
        else:
            values = fold_values
    return optuna.trial.create_trial(params=params, distributions=dists, values=values, state=state,
                                     user_attrs=attrs)


def _trial_rows(frozen: list) -> list[dict]:
    """One dict per Optuna trial of ``frozen``: number, params, state name and the stored attributes."""
    return [{"number": t.number, "params": dict(t.params), "state": t.state.name,
             **{key: t.user_attrs.get(key) for key in ("config_hash", "wall_time_s", "fold_values",
                                                       "fold_best_epochs", "epochs_run", "last_epoch",
                                                       "error", "trial_seed")}}
            for t in frozen]


# ----------------------------------------------------------------------------- the final runs


def final_runs(result: SearchResult, seeds: list[int] | None = None, results_dir=DEFAULT_RESULTS, ds=None,
               progress: bool = False) -> dict[int, list[dict]]:
    """Train the settings each fold chose over ``seeds`` (default: the profile's seeds for the
    dataset, 5 for ``mosi-bclstm`` quick). Returns ``{seed: [record of fold 0's settings, ...,
    record of fold k-1's settings]}`` (the same record twice when two folds chose the same trial; the
    search seed's runs are the trials' cached records)."""
    seeds = profile_seeds(result.profile, result.dataset) if seeds is None else [int(s) for s in seeds]
    out = {}
    for s in seeds:
        recs = []
        for f in range(result.k):
            ov, tr = result.run_args(f)
            recs.append(run_one(result.model, result.dataset, s, result.profile, ov, tr, result.data_dir,
                                result.data_kwargs, results_dir=results_dir, progress=progress,
                                tag=f"search-final:{result.label}", ds=ds))
        out[s] = recs
    return out


def fold_predictions(fold_records: list[dict], ds, results_dir) -> tuple[np.ndarray, list[np.ndarray], np.ndarray,
                                                                          np.ndarray]:
    """The test predictions of each fold's choice: ``fold_records[f]`` is the run with the settings fold
    ``f`` chose, and its checkpoint ``best_fold{f}`` (the epoch fold ``f`` chose) predicts every test
    position.

    Returns ``(y, preds, ids, fold_of)`` over the labelled test positions (in
    :func:`mser_lib.train.predict` order): labels, ``preds[f]`` of fold ``f``'s choice, sample (video)
    ids and each position's fold.
    """
    import torch

    from .runs import _final_stage, _ready, model_from_record
    from .train import predict
    from .train.crossfit import assign_folds, position_folds

    k = len(fold_records)
    trains = [r["config"]["train"] for r in fold_records]
    if any(t.get("selection") != "crossfit" for t in trains):
        raise ValueError("fold_predictions needs runs trained with selection='crossfit'")
    if {int(t.get("crossfit_folds", 2)) for t in trains} != {k}:
        raise ValueError(f"{k} fold records, but the runs were cross-fitted with "
                         f"{sorted({t.get('crossfit_folds', 2) for t in trains})} folds")
    fold_seeds = {int(t.get("crossfit_seed", 0)) for t in trains}
    if len(fold_seeds) != 1:
        raise ValueError(f"the runs' folds differ (crossfit_seed {sorted(fold_seeds)})")
    y0 = ids0 = None
    preds = []
    for f, rec in enumerate(fold_records):
        net = _ready(model_from_record(rec, ds, results_dir, _final_stage(rec), kind=f"best_fold{f}"))
        with torch.no_grad():
            y, p, ids, _ = predict(net, ds.test, ds.info, 256, "cpu", None, rec["seed"])
        ids = np.asarray(ids).astype(str)
        if y0 is None:
            y0, ids0 = y, ids
        elif not (np.array_equal(ids, ids0) and np.array_equal(y, y0)):
            raise RuntimeError("the folds' models predicted different test positions")
        preds.append(p)
    fold_of = position_folds(ds.test, assign_folds(ds.test, k, fold_seeds.pop()), ids0)
    return y0, preds, ids0, fold_of


def score_pooled(y: np.ndarray, preds: list[np.ndarray], fold_of: np.ndarray, family: str) -> dict:
    """Test metrics (docs/metrics.md) of the pooled predictions: each position of fold ``j`` predicted by the
    mean of ``preds[f]`` over the folds ``f != j`` (:func:`mser_lib.train.crossfit.pool_predictions`)."""
    from .train.crossfit import pool_predictions

    return compute_metrics(y, pool_predictions(preds, fold_of), family)


def pooled_predictions(fold_records: list[dict], ds, results_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, pooled p, ids)`` of :func:`fold_predictions`: each position of fold ``j`` scored by the
    other folds' choices (``k = 2``: fold 1's videos by fold 0's settings and epoch, and vice versa)."""
    from .train.crossfit import pool_predictions

    y, preds, ids, fold_of = fold_predictions(fold_records, ds, results_dir)
    return y, pool_predictions(preds, fold_of), ids


def pooled_metrics(fold_records: list[dict], ds, results_dir) -> dict:
    """Test metrics (docs/metrics.md) over the pooled predictions of the folds' choices (:func:`score_pooled`)."""
    y, preds, _, fold_of = fold_predictions(fold_records, ds, results_dir)
    return score_pooled(y, preds, fold_of, ds.info.metric_family)


def final_metrics(result: SearchResult, finals: dict[int, list[dict]], results_dir=DEFAULT_RESULTS,
                  ds=None) -> dict[int, dict]:
    """``{seed: pooled test metrics}`` of :func:`final_runs`' records."""
    if ds is None:
        ds = get_dataset(result.dataset, result.data_dir, result.profile, result.data_kwargs)
    return {s: pooled_metrics(recs, ds, results_dir) for s, recs in finals.items()}


# ----------------------------------------------------------------------------- the report table


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if v != 0 else "0"
    return str(v)


def settings_text(result: SearchResult, fold: int) -> str:
    """``"lr=0.00031, weight_decay=0.0001, hidden=64, dropout=0.21 (trial 7, fold mae 0.912)"``."""
    t = result.chosen(fold)
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items())
    return f"{params} (trial {t['number']}, fold {result.metric} {t['fold_values'][fold]:.3f})"


def search_table(entries: list[tuple[SearchResult, dict[int, list[dict]] | None, dict[int, dict] | None]]
                 ) -> pd.DataFrame:
    """One row per searched model: trials run (and failed), the settings each fold chose, the search's
    cost (sum of the trials' training wall times), the final runs' cost (runs that are not already
    trials: the search seed's final runs are trials), how many final (seed, fold) choices fell on
    their run's last epoch (still improving), and the pooled test metrics, mean ± std over the seeds.

    ``entries``: ``(SearchResult, final_runs(...) or None, final_metrics(...) or None)`` per model.
    """
    from .report.tables import aggregate, wide_table

    rows, metric_rows = {}, []
    for res, finals, metrics in entries:
        failed = sum(t["state"] != "COMPLETE" for t in res.trials)
        row = {"trials": f"{len(res.trials)}" + (f" ({failed} failed)" if failed else ""),
               "search seed": res.seed}
        for f in range(res.k):
            row[f"settings chosen on fold {f}"] = settings_text(res, f) if res.choices[f] is not None else "none"
        row["search cost (s)"] = round(res.cost_s, 1)
        if finals:
            trial_hashes = {t["config_hash"] for t in res.trials}
            extra = {r["config_hash"]: r for recs in finals.values() for r in recs
                     if r["config_hash"] not in trial_hashes}
            row["final runs cost (s)"] = round(sum(r.get("wall_time_s") or 0.0 for r in extra.values()), 1)
            last = sum(r["protocols"]["crossfit"]["folds"][f]["best_epoch"] == len(r["history"]) - 1
                       for recs in finals.values() for f, r in enumerate(recs))
            row["fold epoch = last"] = f"{last}/{sum(len(recs) for recs in finals.values())}"
        rows[res.label] = row
        for s, m in (metrics or {}).items():
            metric_rows.append({"model": res.label, "seed": s, "test": m, "dataset": res.dataset,
                                "profile": res.profile})
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "model"
    if metric_rows:
        wide = wide_table(aggregate(metric_rows, by=("model",)), by=("model",))
        wide.index = wide.index.get_level_values(0)
        df = df.join(wide, how="left")
    return df


__all__ = ["Param", "TRAIN_SPACE", "model_spaces", "search_space", "split_params", "trial_seed", "trial_params",
           "study_path", "StudyBusy", "StudyLock", "StudyMismatch", "check_trials", "choose_per_fold", "SearchResult",
           "run_search", "final_runs", "fold_predictions",
           "score_pooled", "pooled_predictions", "pooled_metrics", "final_metrics", "settings_text", "search_table"]
