"""The classification variant of the built-in benchmark (MIntRec's stand-in): its story holds, and every model
that takes classification learns it, above the majority class; the others refuse it by name."""

import numpy as np
import pytest
import torch

from mser_lib.data import dataset_names, is_builtin, load_dataset
from mser_lib.data.synthetic import make_synthetic_intent
from mser_lib.experiments import resolve_run
from mser_lib.metrics import classification_metrics
from mser_lib.models import build_model
from mser_lib.models.registry import compared_models, model_names, model_spec
from mser_lib.train import TrainConfig, fit_model

REGRESSION_ONLY = sorted(m for m in model_names() if "classification" not in model_spec(m).tasks)


def test_the_registry_says_which_models_are_regression_only_and_the_grids_follow_it():
    from mser_lib import grids

    # Self-MM's unimodal labels, MMIM's entropy split, DMD's margin loss and mser's MoMKE head read a score
    assert REGRESSION_ONLY == ["dmd", "mmim", "momke", "selfmm"]
    assert set(compared_models("classification")) == set(compared_models()) - set(REGRESSION_ONLY)
    models = {r["model"] for r in grids.main_grid("quick", "synthetic-intent", [0])}
    assert models == set(compared_models("classification"))
    assert {r["model"] for r in grids.robustness("quick", [0], "synthetic-intent")} == models
    assert set(REGRESSION_ONLY) <= {r["model"] for r in grids.main_grid("quick", "synthetic", [0])}


def test_imbalanced_classes_in_pairs_as_documented():
    ds, lat = make_synthetic_intent("quick", seed=0, return_latents=True)
    info = ds.info
    assert (info.task, info.metric_family, info.num_classes, info.layout) == (
        "classification", "classification", 6, "sequence")
    counts = np.bincount(ds.train.labels, minlength=6)
    assert (np.diff(counts) < 0).all()                      # priors fall with the class index
    assert 3.0 < counts[0] / counts[-1] < 6.0               # about MIntRec's imbalance (5.6)
    # text tells the pair (c // 2), audio/vision latents the member (c % 2)
    c = lat["train"]["class"]
    u, w_a = lat["train"]["u"], lat["train"]["w_a"]
    pair_means = [u[c // 2 == g].mean() for g in range(3)]
    assert pair_means[0] < pair_means[1] < pair_means[2]
    assert w_a[c % 2 == 0].mean() < 0 < w_a[c % 2 == 1].mean()
    assert is_builtin("synthetic-intent")
    assert "synthetic-intent" in dataset_names()
    assert load_dataset("synthetic-intent", profile="smoke").info.num_classes == 6


def test_the_same_seed_gives_the_same_data_and_knobs_change_the_fingerprint():
    a, b = make_synthetic_intent("smoke", seed=3), make_synthetic_intent("smoke", seed=3)
    np.testing.assert_array_equal(a.train.audio, b.train.audio)
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    assert make_synthetic_intent("smoke", seed=3, n_classes=4).info.source["fingerprint"] != \
        a.info.source["fingerprint"]
    with pytest.raises(ValueError, match="n_classes"):
        make_synthetic_intent("smoke", n_classes=1)


def test_a_text_only_probe_cannot_tell_the_members_of_a_pair_apart():
    """The pooled text of the test split predicts the pair well and the member no better than the pair's prior:
    the rest of the label is in audio and vision only."""
    from sklearn.linear_model import LogisticRegression

    ds = make_synthetic_intent("quick", seed=0)

    def pooled(split):
        m = split.text_mask[..., None]
        return (split.text * m).sum(1) / m.sum(1)

    y_tr, y_te = ds.train.labels, ds.test.labels
    pair = LogisticRegression(max_iter=2000).fit(pooled(ds.train), y_tr // 2).score(pooled(ds.test), y_te // 2)
    full = LogisticRegression(max_iter=2000).fit(pooled(ds.train), y_tr).score(pooled(ds.test), y_te)
    assert pair > 0.85
    assert full < pair - 0.2


@pytest.mark.parametrize("name", [m for m in model_names() if m not in REGRESSION_ONLY])
def test_every_classification_model_beats_the_majority_class(name):
    ds = make_synthetic_intent("smoke", seed=0, n_train=600)
    run = resolve_run(name, "synthetic-intent", 0, "quick", train={"epochs": 10, "patience": 10})
    assert run["train"]["select_metric"] == "f1_macro"
    cfg = TrainConfig(**{**run["train"], "progress": False})
    torch.manual_seed(0)
    res = fit_model(build_model(name, ds.info, "quick"), ds, cfg, seed=0)
    majority = classification_metrics(ds.test.labels, np.full_like(ds.test.labels, np.bincount(
        ds.train.labels).argmax()))
    # LMF, the weakest here, clears the majority's accuracy by 0.04 at this size; most models by 0.2 or more
    assert res.test_metrics["acc"] > majority["acc"] + 0.03, (res.test_metrics, majority)
    assert res.test_metrics["f1_macro"] > majority["f1_macro"] + 0.1


@pytest.mark.parametrize("name", REGRESSION_ONLY)
def test_regression_only_models_refuse_it_by_name(name):
    ds = make_synthetic_intent("smoke", seed=0)
    with pytest.raises(ValueError, match="synthetic-intent"):
        build_model(name, ds.info, "quick")


def test_atsuko_table3_layout_sets_reported_rows_beside_ours_with_the_protocol():
    from mser_lib.report import paper_rows as pr

    info = make_synthetic_intent("smoke").info
    rng = np.random.default_rng(0)
    recs = [{"model": m, "seed": s, "dataset": info.name, "profile": "smoke", "tag": None, "overrides": {},
             "select_metric": "f1_macro",
             "test": {k: float(rng.uniform(0.3, 0.9)) for k in pr.SPEC2_COLUMNS["classification"]}}
            for m in ("atsuko", "emoe") for s in (0, 1, 2)]
    t = pr.atsuko_table3_layout(recs, info, "smoke").reset_index()
    rep, ours = t[t["source"].str.startswith("reported")], t[t["source"].str.startswith("measured")]
    assert rep["model"].tolist() == ["MAG-BERT", "MulT", "MISA", "EMOE", "Atsuko"]
    assert rep.set_index("model").loc["Atsuko", "Acc"] == "74.16"        # as printed, never recomputed
    assert "fine-tunes no BERT" in rep.set_index("model").loc["MAG-BERT", "note"]
    assert ours["model"].tolist() == ["atsuko", "emoe"]
    vals = [r["test"]["f1_macro"] for r in recs if r["model"] == "emoe"]
    assert ours.set_index("model").loc["emoe", "F1"] == f"{100 * np.mean(vals):.2f}"
    assert set(ours["seeds"]) == {"0,1,2"}
    assert set(ours["selection"]) == {"validation F1 (macro)"}
    assert ours["features"].str.contains("MIntRec's stand-in").all()


def test_the_pipeline_runs_the_notebooks_that_apply_to_classification_and_says_which_it_leaves_out():
    from mser_lib.notebook import REGRESSION_NOTEBOOKS
    from mser_lib.pipeline import notebook_paths, notebook_runs

    every = [nb.name[:2] for nb in notebook_paths()]
    assert [nb.name[:2] for nb in notebook_paths(None, "synthetic")] == every
    kept = [nb.name[:2] for nb in notebook_paths(None, "synthetic-intent")]
    assert kept == [k for k in every if k not in REGRESSION_NOTEBOOKS]
    assert {"00", "01", "03"} <= set(kept)
    assert [nb.name[:2] for nb in notebook_paths(None, "mintrec")] == kept
    # only the runs of the notebooks that run: the main comparison of 03, without the regression-only models
    runs = notebook_runs(None, "quick", "synthetic-intent", [0])
    assert {r["model"] for r in runs} == set(compared_models("classification"))


def test_a_regression_notebook_given_classification_data_says_it_does_not_apply(tmp_path):
    import pytest

    from mser_lib.notebook import REGRESSION_NOTEBOOKS, NotApplicable, notebook_setup
    from mser_lib.pipeline import notebook_paths

    # every notebook the pipeline leaves out on classification data stops in its own setup cell too
    for nb in notebook_paths():
        key = nb.name[:2]
        if key in REGRESSION_NOTEBOOKS:
            assert f'notebook="{key}"' in nb.with_suffix(".py").read_text(), nb.name
    with pytest.raises(NotApplicable, match=r"notebook 04 does not apply to 'synthetic-intent'.*00, 01, 03"):
        notebook_setup("smoke", "synthetic-intent", results_dir=tmp_path, notebook="04")
    assert not (tmp_path / "smoke").exists()      # nothing written before the refusal
    # the notebooks that apply, and regression data, pass
    ctx = notebook_setup("smoke", "synthetic-intent", results_dir=tmp_path, notebook="03")
    assert ctx.dataset == "synthetic-intent"
    assert notebook_setup("smoke", "synthetic", results_dir=tmp_path, notebook="04").dataset == "synthetic"
