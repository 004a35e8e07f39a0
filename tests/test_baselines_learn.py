"""Every registered baseline learns: trained on the built-in data with its quick preset and the quick profile's
trainer settings for it (its loss, rate, clipping), 8 epochs, it beats the mean predictor on the test split. A
model registered with ``role="baseline"`` is tested here without further edits."""

import numpy as np
import pytest
import torch

from mser_lib.data.synthetic import make_synthetic
from mser_lib.experiments import resolve_run
from mser_lib.models import build_model
from mser_lib.models.registry import model_names
from mser_lib.train import TrainConfig, fit_model


@pytest.mark.parametrize("name", model_names("baseline"))
def test_beats_the_mean_predictor_on_the_built_in_data(name):
    ds = make_synthetic("smoke", seed=0)          # 240 training sequences: seconds
    run = resolve_run(name, "synthetic", 0, "quick", train={"epochs": 8, "patience": 8})
    cfg = TrainConfig(**{**run["train"], "progress": False})
    torch.manual_seed(0)                          # the initial weights do not hang on the tests run before
    res = fit_model(build_model(name, ds.info, "quick"), ds, cfg, seed=0)
    mean_mae = float(np.abs(ds.test.labels - ds.train.labels.mean()).mean())
    assert res.test_metrics["mae"] < 0.9 * mean_mae, (res.test_metrics["mae"], mean_mae)
    assert res.test_metrics["corr"] > 0.5
