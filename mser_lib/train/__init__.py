"""Training: one trainer for every model (:mod:`.trainer`), atomic I/O (:mod:`.io`), seeding."""

from .io import (
    append_jsonl,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    check_config_hash,
    inside,
    load_checkpoint,
    read_jsonl,
)
from .seeding import resolve_device, set_seed
from .trainer import FitResult, TrainConfig, evaluate, fit, fit_model, predict

__all__ = ["TrainConfig", "FitResult", "fit", "fit_model", "evaluate", "predict", "set_seed",
           "resolve_device", "append_jsonl", "atomic_torch_save", "atomic_write_json",
           "atomic_write_text", "read_jsonl", "load_checkpoint", "check_config_hash", "inside"]
