"""Cross-fitted selection on test folds: no model selects on a video it scores."""

import numpy as np
import pytest

from mser_lib.metrics import compute_metrics
from mser_lib.models import build_model
from mser_lib.train import TrainConfig, fit_model, set_seed
from mser_lib.train.crossfit import CrossFitSelector, assign_folds, pool_predictions, position_folds, prediction_order
from mser_lib.train.trainer import predict

from helpers import tiny_dataset, tiny_split


def test_folds_are_balanced_fixed_and_cover_every_video():
    split = tiny_split(31, layout="position", seed=4)
    folds = assign_folds(split, k=2, seed=0)
    assert np.array_equal(folds, assign_folds(split, k=2, seed=0))           # fixed
    assert sorted(np.bincount(folds)) == [15, 16]
    means = np.array([split.labels[i][split.label_mask[i]].mean() for i in range(31)])
    gap = abs(means[folds == 0].mean() - means[folds == 1].mean())
    rng = np.random.default_rng(0)
    random_gaps = [abs(np.diff([means[p == f].mean() for f in (0, 1)])[0])
                   for p in (rng.permutation(folds) for _ in range(200))]
    assert gap <= np.quantile(random_gaps, 0.25)                             # better than a random split
    with pytest.raises(ValueError):
        assign_folds(split, k=1)


def _epochs(n_pos, n_epochs, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=n_pos) for _ in range(n_epochs)]


def test_a_fold_never_selects_on_the_videos_it_scores():
    """Change everything about fold 1's positions (labels and predictions): the epoch fold 0 selects,
    and the pooled predictions on fold 1's positions (made by fold 0's choice), do not move."""
    fold_of = np.repeat([0, 1], 20)
    y = np.random.default_rng(1).normal(size=40)
    preds = _epochs(40, 8, 2)

    def run(y, preds):
        sel = CrossFitSelector(fold_of, 2, "mae", "mosi", patience=3)
        for e, p in enumerate(preds):
            if sel.done:
                break
            sel.update(e, y, p)
        return sel

    a = run(y, preds)
    y2 = y.copy()
    y2[fold_of == 1] = -y2[fold_of == 1] + 5                                  # other labels for fold 1
    preds2 = [p.copy() for p in preds]
    for p in preds2:
        p[fold_of == 1] += 10                                                 # and other predictions
    b = run(y2, preds2)
    assert a.best_epoch[0] == b.best_epoch[0]
    assert np.array_equal(a.pooled()[fold_of == 1], (preds[a.best_epoch[0]])[fold_of == 1])
    # fold 1's positions are scored by fold 0's choice, fold 0's positions by fold 1's
    assert np.array_equal(a.pooled()[fold_of == 0], preds[a.best_epoch[1]][fold_of == 0])


def test_pooling_with_three_folds_averages_the_other_folds():
    fold_of = np.array([0, 1, 2, 0])
    preds = [np.full(4, 1.0), np.full(4, 2.0), np.full(4, 4.0)]
    assert pool_predictions(preds, fold_of).tolist() == [3.0, 2.5, 1.5, 3.0]


def test_prediction_order_matches_predict():
    ds = tiny_dataset("position", n=(8, 4, 7))
    set_seed(0)
    net = build_model("baseline", ds.info, "quick")
    y, _, ids, _ = predict(net, ds.test, ds.info, batch_size=3)
    y2, ids2 = prediction_order(ds.test, 3)
    assert np.array_equal(ids, ids2)
    assert np.allclose(y, y2)


@pytest.fixture(scope="module")
def crossfit_run(tmp_path_factory):
    ds = tiny_dataset("position", n=(16, 4, 10))
    cfg = TrainConfig(epochs=6, batch_size=4, lr=3e-3, patience=2, progress=False, selection="crossfit")
    set_seed(0)
    net = build_model("baseline", ds.info, "quick")
    run_dir = tmp_path_factory.mktemp("cf")
    return ds, cfg, fit_model(net, ds, cfg, seed=0, run_dir=run_dir), run_dir


def test_crossfit_run_reports_three_protocols(crossfit_run):
    ds, cfg, res, run_dir = crossfit_run
    prot = res.protocols
    assert set(prot) == {"crossfit", "valid", "test_oracle"}
    assert res.test_metrics == prot["crossfit"]["metrics"]
    folds = prot["crossfit"]["folds"]
    assert [f["fold"] for f in folds] == [0, 1]
    assert all(0 <= f["best_epoch"] < res.epochs_run for f in folds)
    for f in (0, 1):
        assert (run_dir / "main" / f"best_fold{f}.pt").exists()
    # the oracle view picks the epoch with the best test Acc-2: nothing selected on VALID beats it
    assert prot["test_oracle"]["metrics"]["acc2_has0"] >= prot["valid"]["metrics"]["acc2_has0"]


def test_crossfit_pooled_metrics_recomputed_from_the_fold_checkpoints(crossfit_run):
    import torch

    ds, cfg, res, run_dir = crossfit_run
    preds = []
    for f in (0, 1):
        set_seed(0)
        net = build_model("baseline", ds.info, "quick")
        net.load_state_dict(torch.load(run_dir / "main" / f"best_fold{f}.pt", weights_only=False)["model"])
        y, p, ids, _ = predict(net, ds.test, ds.info, cfg.eval_batch_size)
        preds.append(p)
    pooled = pool_predictions(preds, position_folds(ds.test, assign_folds(ds.test, 2, 0), ids))
    assert compute_metrics(y, pooled, "mosi")["mae"] == pytest.approx(res.test_metrics["mae"], abs=1e-6)


def test_crossfit_resume_is_identical(tmp_path):
    ds = tiny_dataset("position", n=(16, 4, 10))
    cfg = TrainConfig(epochs=6, batch_size=4, lr=3e-3, patience=None, progress=False, selection="crossfit")

    def model():
        set_seed(0)
        return build_model("baseline", ds.info, "quick")

    full = fit_model(model(), ds, cfg, seed=0, run_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def kill(epoch, row):
        if epoch == 3:
            raise Stop

    with pytest.raises(Stop):
        fit_model(model(), ds, cfg, seed=0, run_dir=tmp_path / "b", callbacks=[kill])
    resumed = fit_model(model(), ds, cfg, seed=0, run_dir=tmp_path / "b")
    assert resumed.resumed_from_epoch == 4
    assert resumed.test_metrics == full.test_metrics
    assert resumed.protocols == full.protocols


def test_intermediate_stage_hands_on_its_last_weights(tmp_path):
    """FEMF's expert stage selects nothing under cross-fitting: it trains its budget, keeps the last
    weights, records that epoch and writes them as best.pt (what notebook 02 reads)."""
    import torch

    ds = tiny_dataset("position", n=(16, 4, 10))
    cfg = TrainConfig(epochs=3, batch_size=4, lr=3e-3, patience=1, progress=False, selection="crossfit",
                      stage_epochs={"experts": 3, "full": 2})
    set_seed(0)
    net = build_model("femf", ds.info, "quick")
    res = fit_model(net, ds, cfg, seed=0, run_dir=tmp_path)
    experts = res.stages[0]
    assert experts["stage"] == "experts"
    assert experts["epochs_run"] == 3
    assert experts["best_epoch"] == 2
    assert torch.load(tmp_path / "experts" / "best.pt", weights_only=True)["epoch"] == 2
