"""Seeds, determinism and the device."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic`` ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def usable_device(device: str | torch.device = "auto") -> torch.device:
    """:func:`resolve_device`, refused with a ``ValueError`` when this machine lacks it (a named ``cuda`` on
    a machine without CUDA), where the tensors are about to move there. (Resolving alone stays possible
    anywhere: a Ray driver without a GPU resolves ``cuda`` for its workers.)"""
    dev = resolve_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: CUDA is not available on this machine (use auto or cpu)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise ValueError(f"device {str(device)!r}: Apple MPS is not available on this machine (use auto or cpu)")
    return dev


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as tensors, lists and numbers only, so that a
    checkpoint holding them loads with ``torch.load(weights_only=True)``."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss},
        "numpy": {"bit_generator": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned (also the tuple form older checkpoints stored). The torch
    states must be CPU byte tensors: a checkpoint loaded with ``map_location="cuda"`` has moved them to
    the GPU, so they are brought back first."""
    py = state["python"]
    if isinstance(py, dict):
        py = (py["version"], tuple(int(x) for x in py["internal"]), py["gauss_next"])
    random.setstate(py)
    npst = state["numpy"]
    if isinstance(npst, dict):
        keys = np.asarray(npst["keys"].cpu().numpy() if torch.is_tensor(npst["keys"]) else npst["keys"])
        npst = (npst["bit_generator"], keys.astype(np.uint32), npst["pos"], npst["has_gauss"],
                npst["cached_gaussian"])
    np.random.set_state(npst)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
