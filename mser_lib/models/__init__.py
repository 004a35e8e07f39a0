"""Models and their registry: ``build_model(name, info, preset, **overrides)``."""

from __future__ import annotations

from .base import ModelOutput, count_parameters, task_loss
from .registry import MODELS, build_model, model_names

__all__ = ["ModelOutput", "task_loss", "count_parameters", "MODELS", "build_model", "model_names"]
