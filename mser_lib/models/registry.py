"""Name -> (model class, config class, presets). Each model module registers itself here.

A preset is a function ``preset(info) -> dict`` of config overrides for ``"quick"`` or ``"paper"``
(and optionally ``"smoke"``); keyword overrides win over the preset.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..data.batch import DatasetInfo

_MODULES = ("mser_lib.models.baselines", "mser_lib.models.femf", "mser_lib.models.atsuko")


@dataclass
class ModelSpec:
    name: str
    model_cls: type
    config_cls: type
    presets: dict[str, Callable[[DatasetInfo], dict]]
    description: str = ""


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def _load_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # a model module not written yet
            if exc.name != mod:
                raise


def model_names() -> list[str]:
    _load_all()
    return sorted(MODELS)


def build_config(name: str, info: DatasetInfo, preset: str = "quick", **overrides):
    """The config dataclass for ``name``: defaults, then the preset, then ``overrides``."""
    _load_all()
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    spec = MODELS[name]
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
    return MODELS[name].model_cls(info, config)


def config_from_dict(name: str, values: dict):
    """The config dataclass of ``name`` from saved field values (``dataclasses.asdict`` of a config, e.g. a
    record's ``config["model_config"]``), without today's presets. Fields missing from ``values`` (added
    after it was saved) take the dataclass defaults; a saved field the class no longer has is an error.
    """
    _load_all()
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    spec = MODELS[name]
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise KeyError(f"saved {spec.config_cls.__name__} has field(s) {unknown} that the class no longer has")
    return spec.config_cls(**values)

