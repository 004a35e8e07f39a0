"""The fair hyperparameter search (mser_lib/search.py): data-blind trials, per-fold choices that never
read the videos they score, a resumable SQLite study, pooled test metrics."""

import numpy as np
import pytest

pytest.importorskip("optuna")

from mser_lib import search  # noqa: E402
from mser_lib.data import DatasetInfo, MultimodalDataset  # noqa: E402
from mser_lib.metrics import compute_metrics  # noqa: E402
from mser_lib.models.registry import build_config  # noqa: E402

from helpers import tiny_dataset, tiny_split  # noqa: E402

# a few seconds in all: 3 epochs of the position-layout baseline on 16 tiny videos per trial
TRAIN = {"selection": "crossfit", "epochs": 3, "patience": 3, "batch_size": 4}


def _search(tmp_path, ds, n, **kw):
    return search.run_search("baseline", "tiny", profile="smoke", n_trials=n, results_dir=tmp_path, train=TRAIN,
                             ds=ds, progress=False, **kw)


def _other_dataset():
    info = DatasetInfo("tiny", "position", "regression", "mosi", {"text": 4, "audio": 3, "vision": 2})
    return MultimodalDataset(info, *(tiny_split(k, layout="position", seed=50 + i) for i, k in enumerate((16, 4, 10))))


@pytest.mark.parametrize("model", sorted(search.model_spaces()))
def test_every_space_names_real_fields_and_fits_the_heads(model):
    info = tiny_dataset("position").info
    space = search.search_space(model)
    assert [k for k, (part, _) in space.items() if part == "train"] == ["lr", "weight_decay"]
    assert len(space) == 4                                       # + one capacity, one regularisation field
    for number in range(3):
        ov, tr = search.split_params(model, search.trial_params(model, number))
        assert 1e-4 <= tr["lr"] <= 3e-3
        assert tr["weight_decay"] in (0.0, 1e-4, 1e-3)
        cfg = build_config(model, info, "quick", **ov)          # a field the config lacks raises
        heads = getattr(cfg, "heads", None) or getattr(cfg, "num_heads", None)
        if heads:                                                # attention widths split over the heads
            assert (getattr(cfg, "hidden", None) or cfg.d_model) % heads == 0


def test_trials_are_the_same_whatever_the_data(tmp_path):
    a = _search(tmp_path / "a", tiny_dataset("position", n=(16, 4, 10)), 3)
    b = _search(tmp_path / "b", _other_dataset(), 3)
    assert [t["params"] for t in a.trials] == [t["params"] for t in b.trials]
    assert [t["params"] for t in a.trials] == [search.trial_params("baseline", n) for n in range(3)]
    assert [t["fold_values"] for t in a.trials] != [t["fold_values"] for t in b.trials]    # the data did differ
    assert a.path == tmp_path / "a" / "smoke" / "tiny" / "search" / "baseline.db"
    assert a.path.exists()
    assert a.cost_s > 0
    assert all(t["config_hash"] for t in a.trials)


def test_a_folds_choice_reads_only_its_own_fold():
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.uniform(0.5, 1.5, size=(6, 2)).tolist()
        chosen = search.choose_per_fold(values, "mae")
        assert chosen == [int(np.argmin([v[0] for v in values])), int(np.argmin([v[1] for v in values]))]
        changed = [[v[0], float(rng.uniform(0, 9))] for v in values]          # other values on fold 1 only
        assert search.choose_per_fold(changed, "mae")[0] == chosen[0]
        changed = [[float(rng.uniform(0, 9)), v[1]] for v in values]          # and on fold 0 only
        assert search.choose_per_fold(changed, "mae")[1] == chosen[1]
    # higher is better for corr; NaN and failed trials (None) are never chosen; ties go to the first trial
    values = [[0.2, float("nan")], None, [0.5, 0.1], [0.5, 0.3]]
    assert search.choose_per_fold(values, "corr") == [2, 3]
    assert search.choose_per_fold(values, "mae") == [0, 2]


def test_the_study_resumes_and_trains_only_the_missing_trials(tmp_path, counted):
    ds = tiny_dataset("position", n=(16, 4, 10))
    trained = counted
    first = _search(tmp_path, ds, 3)
    assert len(trained) == 3
    second = _search(tmp_path, ds, 5)
    assert len(trained) == 5                                     # only trials 3 and 4 were trained
    assert second.trials[:3] == first.trials
    # a resumed study draws what a fresh one would (a re-created sampler would repeat trials 0-1)
    assert [t["params"] for t in second.trials] == [search.trial_params("baseline", n) for n in range(5)]
    assert len({json_key(t["params"]) for t in second.trials}) == 5
    assert _search(tmp_path, ds, 5).trials == second.trials
    assert len(trained) == 5
    assert len(_search(tmp_path, ds, 2).trials) == 2
    assert len(trained) == 5
    with pytest.raises(ValueError, match="other settings"):
        _search(tmp_path, ds, 5, sampler_seed=1)


def json_key(params):
    return tuple(sorted(params.items()))


def test_pooled_metrics_by_hand():
    # fold 1's positions are scored by fold 0's choice, fold 0's by fold 1's
    y = np.array([0.0, 1.0, 2.0, 3.0])
    fold_of = np.array([0, 0, 1, 1])
    chosen_on_fold0 = np.array([9.0, 9.0, 2.0, 2.5])
    chosen_on_fold1 = np.array([0.5, 1.0, 9.0, 9.0])
    m = search.score_pooled(y, [chosen_on_fold0, chosen_on_fold1], fold_of, "mosi")
    assert m["mae"] == pytest.approx((0.5 + 0 + 0 + 0.5) / 4)
    assert m == compute_metrics(y, np.array([0.5, 1.0, 2.0, 2.5]), "mosi")


def test_final_runs_pool_each_folds_choice_on_the_other_fold(tmp_path):
    ds = tiny_dataset("position", n=(16, 4, 10))
    res = _search(tmp_path, ds, 3)
    res.choices = [0, 1]                         # force two different settings, so that pooling shows
    finals = search.final_runs(res, seeds=[0, 1], results_dir=tmp_path, ds=ds)
    assert sorted(finals) == [0, 1]
    assert all(len(r) == 2 for r in finals.values())
    a, b = finals[0]
    assert (a["config_hash"], b["config_hash"]) == (res.trials[0]["config_hash"], res.trials[1]["config_hash"])
    # one run used for both folds reproduces the run's own cross-fitted test metrics (from training)
    same = search.pooled_metrics([a, a], ds, tmp_path)
    assert same["mae"] == pytest.approx(a["protocols"]["crossfit"]["metrics"]["mae"], abs=1e-6)
    # two runs: fold 1's positions come from run a (fold 0's checkpoint), fold 0's from run b
    y, p, ids = search.pooled_predictions([a, b], ds, tmp_path)
    _, pa, _ = search.pooled_predictions([a, a], ds, tmp_path)
    _, pb, _ = search.pooled_predictions([b, b], ds, tmp_path)
    _, _, _, fold_of = search.fold_predictions([a, b], ds, tmp_path)
    assert np.array_equal(p[fold_of == 1], pa[fold_of == 1])
    assert np.array_equal(p[fold_of == 0], pb[fold_of == 0])
    metrics = search.final_metrics(res, finals, tmp_path, ds)
    assert metrics[0] == compute_metrics(y, p, "mosi")
    table = search.search_table([(res, finals, metrics)])
    assert table.loc["baseline", "trials"] == "3"
    assert table.loc["baseline", "search cost (s)"] == round(sum(t["wall_time_s"] for t in res.trials), 1)
    assert table.loc["baseline", "final runs cost (s)"] == round(sum(r["wall_time_s"] for r in finals[1]), 1)
    assert "lr=" in table.loc["baseline", "settings chosen on fold 1"]
    assert "MAE" in table.columns


def test_a_search_needs_crossfit_selection_and_the_cli_knows_it(tmp_path):
    with pytest.raises(ValueError, match="cross-fitted"):
        search.run_search("baseline", "tiny", profile="smoke", n_trials=1, results_dir=tmp_path,
                          train={**TRAIN, "selection": "valid"}, ds=tiny_dataset("position"), progress=False)
    assert not (tmp_path / "smoke").exists()                     # refused before any study or run
    from mser_lib.cli import build_parser

    a = build_parser().parse_args(["search", "--trials", "5", "--final", "--seeds", "0", "1"])
    assert a.models == list(search.model_spaces())
    assert a.dataset == "mosi-bclstm"
    assert sorted(a.models) == ["atsuko", "baseline", "dmd", "emoe", "femf", "lmf", "misa", "mmim", "momke", "mult",
                                "selfmm", "tfn"]
    assert (a.trials, a.seed, a.sampler_seed, a.final, a.seeds) == (5, 0, 0, True, [0, 1])
