"""The experiment grids of notebooks 04-06, sized per profile.

Each function returns a list of run specifications, dicts of :func:`mser_lib.experiments.run_one`
arguments (``model``, ``seed``, ``overrides``, ``train``, ``tag``), ready for
:func:`mser_lib.executors.run_grid`. Runs are cached by config hash, so a run that two grids share
(FEMF's full model in Table 2, Table 4's T+A+V row and the default point of every sensitivity
sweep) is trained once; ``tag`` is only a label (it is not hashed: read labels from the spec, never
from a cached record).

Sizes:

* ``smoke``: a few variants, the smoke profile's seeds and schedule; shows that everything runs.
* ``quick``: every variant of the papers' ablation tables with the first seed of the profile
  and a shortened schedule (:data:`ABLATION_TRAIN`); sensitivity and order sweeps at two or three
  points around the paper's default with the first seed only (their comparisons rest on the
  bootstrap over test samples). Sized so that notebooks 04-06 fit about 10 minutes on a 2-core CPU
  once notebook 03 has trained the main comparison.
* ``claims``: quick's variants and sweep points, but every seed of the profile (5) and the profile's
  full schedule, the same as the main runs: the grids behind claims that must survive training noise.
* ``paper``: the papers' grids (every variant, every sweep point of their figures, the profile's
  seeds) with the profile's full schedule.

A sensitivity sweep's label is what runs: pass the dataset, and the point equal to the model preset's
value for it (:func:`sweep_defaults`) is the full model's run; every other point overrides its
parameter.

The robustness study (FEMF Fig. 6) re-uses the main comparison of notebook 03
(:func:`main_grid`): its models are trained on complete data and evaluated with
modalities dropped at test time, so it costs no training when notebook 03 has run.
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import dataset_task
from .data.batch import DatasetInfo
from .models.femf import PAPER_ORDER, REFERENCE_BEHAVIOUR, REFERENCE_LOSS_WEIGHTS, REFERENCE_ORDER

PROFILES = ("smoke", "quick", "claims", "paper")
# which list of sweep points each profile uses
SWEEP_POINTS = {"smoke": "smoke", "quick": "quick", "claims": "quick", "paper": "paper"}

# Trainer overrides of the ablation / sensitivity runs (None: the profile's own schedule).
ABLATION_TRAIN: dict[str, dict | None] = {
    "smoke": None,
    "quick": {"epochs": 4, "patience": 4, "stage_epochs": {"experts": 2, "full": 4}},
    "claims": None,
    "paper": None,
}

# FEMF Tables 2-3: (label, overrides); the first row is the full model.
FEMF_COMPONENTS: list[tuple[str, dict]] = [
    ("FEMF (full)", {}),
    ("w/o DTM", {"use_dtm": False}),
    ("w/o FAE", {"use_fae": False}),
    ("w/o MIM", {"use_mim": False}),
    ("w/o HPM", {"use_hpm": False}),
    ("w/o L_align", {"use_l_align": False}),
    ("w/o L_rec", {"use_l_rec": False}),
    ("w/o L_cyc", {"use_l_cyc": False}),
    ("w/o L_orth", {"use_l_orth": False}),
    ("w/o L_sim", {"use_l_sim": False}),
]
SMOKE_COMPONENTS = ("FEMF (full)", "w/o FAE", "w/o MIM")

# FEMF Table 4: trained on a subset of the modalities (the model is built without the others).
FEMF_MODALITIES = ["t", "a", "v", "ta", "tv", "av", "tav"]
MODALITY_LABELS = {"t": "T", "a": "A", "v": "V", "ta": "T+A", "tv": "T+V", "av": "A+V", "tav": "T+A+V"}
SMOKE_MODALITIES = ("t", "tav")

# Atsuko Table 4 (SBN x MCM); labels as the table's check marks.
ATSUKO_ROWS = [("neither", "-, -"), ("sbn", "SBN"), ("mcm", "MCM"), ("both", "SBN + MCM (Atsuko)")]

# Sensitivity sweeps: parameter -> {profile: values}. The default point of a sweep is the model preset's
# value for the dataset (:func:`sweep_defaults`; FEMF's paper preset differs between MOSI and MOSEI).
FEMF_SWEEPS: dict[str, dict[str, list]] = {
    "interaction_layers": {"smoke": [1, 2], "quick": [1, 2], "paper": [1, 2, 3, 4]},
    "alpha": {"smoke": [0.1, 0.3], "quick": [0.1, 0.3, 0.9], "paper": [0.1, 0.3, 0.5, 0.7, 0.9]},
    "cutoff_ratio": {"smoke": [0.6, 0.8], "quick": [0.4, 0.6, 0.8], "paper": [0.2, 0.4, 0.6, 0.8]},
}
ATSUKO_SWEEPS: dict[str, dict[str, list]] = {
    "entropy_weight": {"smoke": [0.1, 1.0], "quick": [0.1, 1.0], "paper": [0.1, 0.25, 0.5, 0.75, 1.0]},
    "band_mask_rate": {"smoke": [0.1], "quick": [0.1, 0.4], "paper": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]},
    "route_weight": {"smoke": [0.1], "quick": [0.1, 1.0], "paper": [0.01, 0.05, 0.1, 0.5, 1.0]},
    "distill_weight": {"smoke": [0.1], "quick": [0.1, 1.0], "paper": [0.01, 0.05, 0.1, 0.5, 1.0]},
}

# FEMF Fig. 5: each query branch with its two key orders; the paper's order first.
FEMF_ORDERS = [
    ("paper (T:A>V, A:T>V, V:T>A)", PAPER_ORDER),
    ("T:V>A", "t:va,a:tv,v:ta"),
    ("A:V>T", "t:av,a:vt,v:ta"),
    ("V:A>T", "t:av,a:tv,v:at"),
]
SMOKE_ORDERS = 2

# The deviation ledger: every place where mser departs from a paper, every choice where a paper is
# silent, and every behaviour where a public reference code departs from its paper, as a switch flipped
# on the model's default run (the paper preset on real data). Each row is measured as a paired
# difference over seeds against the model's default run (notebook 04, tables/deviations.*).
@dataclass(frozen=True)
class Deviation:
    """One row of the ledger: ``model`` run with ``overrides`` (model fields) and ``train`` (trainer
    settings) against the same model's default run. ``source``: whose behaviour the flipped run has
    ("reference code", "EMOE's code", "mser's earlier choice", "mser's speed option"); ``default``: what
    the default run does and why; ``layouts``: the sample layouts where the switch changes anything."""

    label: str
    model: str
    overrides: dict
    source: str
    default: str
    train: dict | None = None
    layouts: tuple[str, ...] = ("sequence", "position")


DEVIATIONS: list[Deviation] = [
    # --- FEMF: where the paper is silent or was read differently
    Deviation("FEMF: L_align also pulls the prediction", "femf", {"align_detach_prediction": False},
              "mser's earlier choice", "eq. 25 aligns the shared representation with a detached prediction "
              "(the paper's wording; the reference detaches it too)"),
    Deviation("FEMF: frozen experts without dropout", "femf", {"frozen_expert_dropout": False},
              "mser's earlier choice", "frozen experts keep their dropout in stage 2 (paper silent; the "
              "reference keeps it)"),
    Deviation("FEMF: no L_train in stage 2", "femf", {"train_in_full_stage": False}, "reference code",
              "eq. 28 keeps L_train in stage 2, through the frozen experts"),
    Deviation("FEMF: no gradient through the frozen experts", "femf", {"expert_grad_to_inputs": False},
              "mser's speed option", "the paper freezes the experts' parameters, not the gradient path"),
    Deviation("FEMF: gradient clipping at 1.0", "femf", {}, "mser's earlier choice",
              "no clipping: neither paper nor reference clips", train={"clip_grad": 1.0}),
    # --- FEMF: the reference code's behaviours, one at a time
    Deviation("FEMF: the reference's loss weights", "femf", dict(REFERENCE_LOSS_WEIGHTS), "reference code",
              "eq. 28: every weight 1"),
    Deviation("FEMF: experts not frozen in stage 2", "femf", {"freeze_experts": False}, "reference code",
              "Sec. 3.3: the experts are frozen after stage 1"),
    Deviation("FEMF: the reference's cut-off rule (c = 0.9, nothing cut)", "femf",
              {"cutoff_rule": "reference", "cutoff_ratio": 0.9}, "reference code",
              "eq. 8 with c as a fraction of the rfft bins (0.6 on MOSI)"),
    Deviation("FEMF: the reference's prediction module", "femf", {"hpm_kind": "reference"}, "reference code",
              "eq. 20-23: weighted per-modality and joint heads"),
    Deviation("FEMF: one router for both bands", "femf", {"router_per_band": False}, "reference code",
              "eq. 12-13: a router per band and modality"),
    Deviation("FEMF: the reference's expert blocks", "femf", {"expert_block": "reference"}, "reference code",
              "eq. 9: transformer blocks with output projection and LayerNorm"),
    Deviation("FEMF: one expert head per modality (stage 1 fits the band sum)", "femf",
              {"expert_heads": "per_modality"}, "reference code", "eq. 9-10: a head and a loss per expert"),
    Deviation("FEMF: detached L_rec and L_cyc targets", "femf", {"detach_dis_targets": True}, "reference code",
              "eq. 5-6 as written: gradients reach both sides"),
    Deviation("FEMF: the reference's interaction order", "femf", {"interaction_order": REFERENCE_ORDER},
              "reference code", "Sec. 4.8's best order (text a->v, audio t->v, vision t->a)"),
    Deviation("FEMF: cross-attention over padded utterances", "femf", {"attention_key_mask": False},
              "reference code", "eq. 16-17 attend over a modality's sequence: padded keys are masked"),
    Deviation("FEMF: nn.Linear's default start of experts and routers", "femf", {"expert_init": "torch"},
              "reference code", "the papers are silent: Xavier-uniform weights and zero biases"),
    Deviation("FEMF: the reference's disentanglement module", "femf",
              {"dis_module": "reference", "rec_target": "projected"}, "reference code",
              "eq. 1-4: codes as wide as the model, a decoder per modality reconstructing its input"),
    Deviation("FEMF: vision zero-padded to 1024 columns (the reference's loader)", "femf", {"pad_vision_to": 1024},
              "reference code", "the features at their own width: the vision projection starts as nn.Linear(d_v, H)"),
    Deviation("FEMF: every reference behaviour (preset 'reference')", "femf", dict(REFERENCE_BEHAVIOUR),
              "reference code", "the paper preset"),
    # --- Atsuko and EMOE
    Deviation("Atsuko: router on the raw inputs (EMOE's)", "atsuko", {"router_input": "raw"}, "EMOE's code",
              "Sec. 3.1: the modality router follows the band enhancement (pooled X~)"),
    Deviation("Atsuko: exact band rule (bands may be empty)", "atsuko", {"band_rule": "exact"},
              "mser's earlier choice", "every band of a sequence of at least K steps keeps a coefficient"),
    Deviation("Atsuko: summary at the last padded step (EMOE's)", "atsuko", {"summary": "last_padded"},
              "EMOE's code", "the last real step", layouts=("sequence",)),
    Deviation("Atsuko: gradient clipping at 1.0", "atsuko", {}, "mser's earlier choice",
              "no clipping: EMOE never reads its grad_clip", train={"clip_grad": 1.0}),
    Deviation("EMOE: router on pooled features", "emoe", {"router_input": "pooled"}, "mser's earlier choice",
              "EMOE's router reads the raw inputs"),
    Deviation("EMOE: gradient clipping at 1.0", "emoe", {}, "mser's earlier choice",
              "no clipping: EMOE never reads its grad_clip", train={"clip_grad": 1.0}),
]
#: The label of each model's default run in the ledger grid.
LEDGER_BASE = {"femf": "FEMF (default)", "atsuko": "Atsuko (default)", "emoe": "EMOE (default)"}
SMOKE_DEVIATIONS = 2
#: The rows the quick profile trains on the built-in benchmark: none, so that make reproduce stays within its 15
#: minutes (a fresh clone's took 915 s with each model's reference-code preset, 6 runs); every row runs on real
#: data, at smoke (the first rows), claims and paper.
BUILTIN_QUICK_DEVIATIONS: tuple[str, ...] = ()

# FEMF Fig. 6 / robustness: missing rates and the models compared.
MISSING_RATES = [0.0, 0.1, 0.2, 0.3, 0.4]


def _check(profile: str) -> str:
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; grids exist for {PROFILES}")
    return profile


def ablation_seeds(profile: str, seeds: list[int]) -> list[int]:
    """Seeds of the ablation grids: all at smoke, claims and paper, the first one at quick.

    A verdict needs 3 seeds (:func:`mser_lib.report.stats.verdict`), so quick's ablations show effects, never
    claims; a second seed there would buy a spread and no verdict for 15 % of ``make reproduce``'s training."""
    _check(profile)
    seeds = list(seeds)
    return seeds[:1] if profile == "quick" else seeds


def sweep_seeds(profile: str, seeds: list[int]) -> list[int]:
    """Seeds of the sensitivity and order sweeps: all at claims and paper, the first one at smoke and quick."""
    _check(profile)
    seeds = list(seeds)
    return seeds if profile in ("claims", "paper") else seeds[:1]


def _spec(model: str, seed: int, overrides: dict, profile: str, tag: str) -> dict:
    spec = {"model": model, "seed": int(seed), "overrides": dict(overrides), "tag": tag}
    if ABLATION_TRAIN[profile]:
        spec["train"] = dict(ABLATION_TRAIN[profile])
    return spec


def femf_components(profile: str, seeds: list[int]) -> list[dict]:
    """FEMF Tables 2-3: the full model and each module / auxiliary loss removed."""
    rows = [r for r in FEMF_COMPONENTS if _check(profile) != "smoke" or r[0] in SMOKE_COMPONENTS]
    return [_spec("femf", s, ov, profile, label)
            for s in ablation_seeds(profile, seeds) for label, ov in rows]


def femf_modalities(profile: str, seeds: list[int]) -> list[dict]:
    """FEMF Table 4: FEMF trained and tested on each modality subset."""
    mods = [m for m in FEMF_MODALITIES if _check(profile) != "smoke" or m in SMOKE_MODALITIES]
    return [_spec("femf", s, {} if m == "tav" else {"modalities": m}, profile, MODALITY_LABELS[m])
            for s in ablation_seeds(profile, seeds) for m in mods]


def atsuko_table4(profile: str, seeds: list[int]) -> list[dict]:
    """Atsuko Table 4: SBN and MCM switched on and off (``both`` is Atsuko)."""
    from .models.atsuko import TABLE4_ROWS

    _check(profile)
    return [_spec("atsuko", s, {} if key == "both" else TABLE4_ROWS[key], profile, label)
            for s in ablation_seeds(profile, seeds) for key, label in ATSUKO_ROWS]


def _dataset_info(dataset: str | DatasetInfo) -> DatasetInfo:
    """``dataset`` as a :class:`DatasetInfo`; a name gives a stand-in with that name (the presets read
    only ``info.name`` for the swept fields)."""
    if isinstance(dataset, DatasetInfo):
        return dataset
    return DatasetInfo(str(dataset), "sequence", "regression", "mosi", {"text": 1, "audio": 1, "vision": 1})


def sweep_defaults(model: str, profile: str, dataset: str | DatasetInfo) -> dict:
    """The value each swept parameter of ``model`` (``femf`` or ``atsuko``) has in a run without
    overrides: the profile's model preset for ``dataset`` (a name or the dataset's ``DatasetInfo``).
    E.g. FEMF's paper preset: alpha 0.3 on MOSI-like data, 0.7 on MOSEI."""
    from .experiments import model_preset
    from .models.registry import build_config

    sweeps = {"femf": FEMF_SWEEPS, "atsuko": ATSUKO_SWEEPS}[model]
    info = _dataset_info(dataset)
    cfg = build_config(model, info, model_preset(_check(profile), info.name))
    return {param: getattr(cfg, param) for param in sweeps}


def _sweep(model: str, sweeps: dict, profile: str, seeds: list[int], dataset) -> list[dict]:
    """One spec per (seed, parameter, value), labelled ``param=value``. The label is what runs: the
    override is left out only where the value is the preset's own for ``dataset`` (so the default point
    shares its run with the full model); without a ``dataset`` every point passes its override."""
    default = sweep_defaults(model, profile, dataset) if dataset is not None else {}
    out = []
    for s in sweep_seeds(profile, seeds):
        for param, per in sweeps.items():
            for v in per[SWEEP_POINTS[profile]]:
                ov = {} if param in default and v == default[param] else {param: v}
                out.append(_spec(model, s, ov, profile, f"{param}={v}"))
    return out


def femf_sensitivity(profile: str, seeds: list[int], dataset: str | DatasetInfo | None = None) -> list[dict]:
    """FEMF Fig. 4: interaction layers, alpha (eq. 15), cut-off ratio c (eq. 8); one at a time, around
    the preset's values for ``dataset`` (see :func:`_sweep`)."""
    return _sweep("femf", FEMF_SWEEPS, _check(profile), seeds, dataset)


def atsuko_sensitivity(profile: str, seeds: list[int], dataset: str | DatasetInfo | None = None) -> list[dict]:
    """Atsuko Fig. 3: entropy weight, band mask rate, routing weight, distillation weight."""
    return _sweep("atsuko", ATSUKO_SWEEPS, _check(profile), seeds, dataset)


def femf_orders(profile: str, seeds: list[int]) -> list[dict]:
    """FEMF Fig. 5: the paper's interaction order and, per query branch, the other key order."""
    orders = FEMF_ORDERS[:SMOKE_ORDERS] if _check(profile) == "smoke" else FEMF_ORDERS
    return [_spec("femf", s, {} if o == PAPER_ORDER else {"interaction_order": o}, profile, label)
            for s in sweep_seeds(profile, seeds) for label, o in orders]


def deviations(profile: str, seeds: list[int], layout: str | None = None, dataset: str | None = None) -> list[dict]:
    """The deviation ledger (:data:`DEVIATIONS`): each model's default run and every switch flipped on it,
    with the sweeps' seeds (all at claims and paper, the first at smoke and quick) and the ablation
    schedule of ``profile``; ``layout`` drops the rows that change nothing there (e.g. the sequence
    summary on position data). At smoke the first rows only; at quick on the built-in benchmark
    (``dataset="synthetic"``) the rows of :data:`BUILTIN_QUICK_DEVIATIONS`."""
    rows = [d for d in DEVIATIONS if layout is None or layout in d.layouts]
    if _check(profile) == "smoke":
        rows = rows[:SMOKE_DEVIATIONS]
    elif profile == "quick" and dataset == "synthetic":
        rows = [d for d in rows if d.label in BUILTIN_QUICK_DEVIATIONS]
    out = []
    for s in sweep_seeds(profile, seeds):
        for model in dict.fromkeys(d.model for d in rows):
            out.append(_spec(model, s, {}, profile, LEDGER_BASE[model]))
        for d in rows:
            spec = _spec(d.model, s, d.overrides, profile, d.label)
            if d.train:
                spec["train"] = {**spec.get("train", {}), **d.train}
            out.append(spec)
    return out


def main_grid(profile: str, dataset: str, seeds: list[int]) -> list[dict]:
    """The main comparison: every registered method (FEMF, Atsuko, EMOE), then every baseline with each of
    its ``main_variants`` (the baseline on all three modalities and on each alone), for every seed (a model
    whose profile section sets ``n_seeds``: its first ones, :func:`~mser_lib.experiments.model_seeds`). The
    same models for every profile and dataset; seeds vary."""
    from .experiments import model_seeds
    from .models.registry import compared_models, model_spec

    trained = {name: model_seeds(profile, dataset, name, seeds) for name in compared_models(dataset_task(dataset))}
    runs = []
    for seed in seeds:
        for name, its_seeds in trained.items():
            if seed not in its_seeds:
                continue
            for overrides in model_spec(name).main_variants:
                runs.append({"model": name, "seed": seed, **({"overrides": dict(overrides)} if overrides else {})})
    return runs


def robustness(profile: str, seeds: list[int], dataset: str | DatasetInfo | None = None) -> list[dict]:
    """The runs of the robustness study: each method and baseline of the main comparison in its first main
    variant (the baseline on all three modalities), as notebook 03 trains them, with the seeds it has there
    (:func:`mser_lib.experiments.model_seeds` on ``dataset``)."""
    from .experiments import model_seeds
    from .models.registry import compared_models, model_spec

    _check(profile)
    name = dataset.name if isinstance(dataset, DatasetInfo) else dataset
    trained = {m: model_seeds(profile, name, m, seeds) for m in compared_models(dataset_task(name))}
    return [{"model": m, "seed": int(s), "overrides": dict(model_spec(m).main_variants[0]), "tag": m}
            for s in seeds for m, its_seeds in trained.items() if s in its_seeds]


GRIDS = {"femf_components": femf_components, "femf_modalities": femf_modalities,
         "atsuko_table4": atsuko_table4, "femf_sensitivity": femf_sensitivity,
         "atsuko_sensitivity": atsuko_sensitivity, "femf_orders": femf_orders, "robustness": robustness,
         "deviations": deviations}
NOTEBOOK_GRIDS = {"04": ("femf_components", "femf_modalities", "atsuko_table4", "deviations"),
                  "05": ("robustness", "femf_sensitivity", "atsuko_sensitivity", "femf_orders"),
                  "06": ("robustness", "atsuko_table4")}


def notebook_grid(notebook: str, profile: str, seeds: list[int], dataset: str | DatasetInfo | None = None
                  ) -> list[dict]:
    """Every run a notebook needs (``"04"``, ``"05"``, ``"06"``), duplicates kept (run_grid caches);
    ``dataset`` places the sensitivity sweeps' default points (see :func:`femf_sensitivity`)."""
    out = []
    for name in NOTEBOOK_GRIDS[notebook]:
        if name in ("femf_sensitivity", "atsuko_sensitivity", "robustness"):
            out += GRIDS[name](profile, seeds, dataset)
        elif name == "deviations":
            out += deviations(profile, seeds, _dataset_layout(dataset),
                              dataset.name if isinstance(dataset, DatasetInfo) else dataset)
        else:
            out += GRIDS[name](profile, seeds)
    return out


def _dataset_layout(dataset: str | DatasetInfo | None) -> str | None:
    if dataset is None:
        return None
    if isinstance(dataset, DatasetInfo):
        return dataset.layout
    from .data import dataset_layout

    return dataset_layout(dataset)


def unique_runs(specs: list[dict]) -> int:
    """How many distinct trainings ``specs`` holds (same model, seed, overrides and trainer overrides)."""
    import json

    return len({json.dumps({k: v for k, v in s.items() if k != "tag"}, sort_keys=True) for s in specs})


__all__ = ["ABLATION_TRAIN", "FEMF_COMPONENTS", "FEMF_MODALITIES", "MODALITY_LABELS", "ATSUKO_ROWS",
           "FEMF_SWEEPS", "ATSUKO_SWEEPS", "sweep_defaults", "FEMF_ORDERS", "MISSING_RATES",
           "ablation_seeds", "sweep_seeds", "femf_components", "femf_modalities", "atsuko_table4",
           "femf_sensitivity", "Deviation", "DEVIATIONS", "LEDGER_BASE", "deviations",
           "atsuko_sensitivity", "femf_orders", "robustness", "GRIDS", "NOTEBOOK_GRIDS", "notebook_grid",
           "unique_runs"]
