import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))   # tests/helpers.py
# one thread per pytest-xdist worker (make test runs one worker per core), else at most two
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


@pytest.fixture
def counted(monkeypatch):
    """The config hashes trained (run_one calls experiments.train_run for a run it has no record of)."""
    from mser_lib import experiments

    trained = []
    real = experiments.train_run

    def counting(run, *args, **kwargs):
        trained.append(experiments.config_hash(run))
        return real(run, *args, **kwargs)

    monkeypatch.setattr(experiments, "train_run", counting)
    return trained
