"""The one list of models: name -> (model class, config class, presets, and what the rest of mser needs).

Each model module registers itself here (:func:`register`); the pipeline, the grids, the search, the tables,
the figures and the notebooks read models from this registry, so a new model is its file and its
registration (README, "Extending mser").

A preset is a function ``preset(info) -> dict`` of config overrides for ``"quick"`` or ``"paper"``
(and optionally ``"smoke"``); keyword overrides win over the preset.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..data.batch import DatasetInfo

#: The modules that register models, imported on first use of the registry; their order is the order of
#: :func:`model_names` (the papers' methods first, as their tables list them).
_MODULES = ("mser_lib.models.femf", "mser_lib.models.atsuko", "mser_lib.models.baselines",
            "mser_lib.models.tfn", "mser_lib.models.lmf", "mser_lib.models.mult",
            "mser_lib.models.misa", "mser_lib.models.selfmm", "mser_lib.models.mmim",
            "mser_lib.models.momke", "mser_lib.models.dmd")

#: What a model is for in the pipeline: ``"method"`` (a paper's model: the main comparison, robustness,
#: the paper's table rows), ``"baseline"`` (trained beside the methods in the main comparison, with each of
#: its ``main_variants``), ``"part"`` (a building block other models use; not trained by the grids).
ROLES = ("method", "baseline", "part")


@dataclass(frozen=True)
class Param:
    """One dimension of a search space (:mod:`mser_lib.search`): ``kind`` is ``"log_float"`` or ``"float"``
    (``low``..``high``) or ``"choice"`` (one of ``choices``)."""

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()


@dataclass
class ModelSpec:
    """A registered model.

    Attributes:
        name: registry name (``--model``).
        model_cls, config_cls: ``model_cls(info, config_cls(...))`` builds it.
        presets: ``{"quick": preset, "paper": preset, ...}``.
        description: one line for ``python -m mser_lib datasets`` and the docs.
        role: one of :data:`ROLES`.
        label: the name tables and figures print.
        color: its colour in figures (matplotlib colour string).
        search_space: the model part of the fair random search (config field -> :class:`Param`), or empty
            for a model the search leaves out.
        main_variants: config overrides of the runs the main comparison trains for it (one run per entry
            and seed), e.g. the baseline on all three modalities and on each alone.
        tasks: the tasks it is built for (``"regression"``, ``"classification"``); its constructor refuses
            the others, and the grids leave it out of a dataset of another task.
    """

    name: str
    model_cls: type
    config_cls: type
    presets: dict[str, Callable[[DatasetInfo], dict]]
    description: str = ""
    role: str = "method"
    label: str = ""
    color: str = "#333333"
    search_space: dict[str, Param] = field(default_factory=dict)
    main_variants: tuple[dict, ...] = ({},)
    tasks: tuple[str, ...] = ("regression", "classification")

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"model {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if not self.tasks or set(self.tasks) - {"regression", "classification"}:
            raise ValueError(f"model {self.name!r}: tasks must name 'regression' and/or 'classification', "
                             f"got {self.tasks!r}")
        self.label = self.label or self.name


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(mod)


def model_names(role: str | None = None) -> list[str]:
    """Registered model names: modules in the order of ``_MODULES``, each module's models in the order it
    registers them (FEMF, Atsuko, EMOE, then the baselines); only those of ``role`` when given."""
    _load_all()
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    names = list(MODELS)           # registration order within a module, modules in the order of _MODULES
    rank = {m: i for i, m in enumerate(_MODULES)}
    names.sort(key=lambda n: rank.get(MODELS[n].model_cls.__module__, len(rank)))
    return [n for n in names if role is None or MODELS[n].role == role]


def model_spec(name: str) -> ModelSpec:
    """The registration of ``name`` (KeyError naming the known models)."""
    _load_all()
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def compared_models(task: str | None = None) -> list[str]:
    """The models of the main comparison and the robustness study: the methods, then the baselines; only those
    built for ``task`` when given."""
    names = model_names("method") + model_names("baseline")
    return [n for n in names if task is None or task in MODELS[n].tasks]


def model_colors() -> dict[str, str]:
    """Each model's figure colour, by name."""
    _load_all()
    return {n: s.color for n, s in MODELS.items()}


#: Field metadata of a switch added after records were made: ``field(default=..., metadata=HASH_NEUTRAL)``.
#: At its default the field is left out of a run's ``model_config`` and so of its config hash
#: (:func:`hashed_config`), so that the records made before it keep their hashes and stay comparable. Only for a
#: default that computes exactly what the code did before the field existed (the built-in records' bit-identical
#: reproduction checks it for FEMF's ``attention_key_mask``; no test checks every such field by itself).
HASH_NEUTRAL = {"hash_neutral": True}


def hashed_config(cfg) -> dict:
    """``dataclasses.asdict(cfg)`` without the :data:`HASH_NEUTRAL` fields that are at their default: the model
    settings a run's config hash covers."""
    out = dataclasses.asdict(cfg)
    for f in dataclasses.fields(cfg):
        if f.metadata.get("hash_neutral") and out[f.name] == f.default:
            del out[f.name]
    return out


def build_config(name: str, info: DatasetInfo, preset: str = "quick", **overrides):
    """The config dataclass for ``name``: defaults, then the preset, then ``overrides``."""
    spec = model_spec(name)
    values = {}
    if preset in spec.presets:
        values.update(spec.presets[preset](info))
    elif preset not in ("default", None):
        fallback = "quick" if preset == "smoke" else None
        if fallback in spec.presets:
            values.update(spec.presets[fallback](info))
        else:
            raise KeyError(f"model {name!r} has no preset {preset!r}; it has {sorted(spec.presets)}")
    values.update(overrides)
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise KeyError(f"{spec.config_cls.__name__} has no field(s) {unknown}; fields: {sorted(names)}")
    return spec.config_cls(**values)


def build_model(name: str, info: DatasetInfo, preset: str = "quick", **overrides):
    """Instantiate model ``name`` for a dataset described by ``info``."""
    config = build_config(name, info, preset, **overrides)
    return model_spec(name).model_cls(info, config)


def config_from_dict(name: str, values: dict):
    """The config dataclass of ``name`` from saved field values (``dataclasses.asdict`` of a config, e.g. a
    record's ``config["model_config"]``), without today's presets. Fields missing from ``values`` (added
    after it was saved) take the dataclass defaults; a saved field the class no longer has is an error.
    """
    spec = model_spec(name)
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise KeyError(f"saved {spec.config_cls.__name__} has field(s) {unknown} that the class no longer has")
    return spec.config_cls(**values)

