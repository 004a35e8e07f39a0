"""Grids of notebooks 04-06 (sizes, shared runs) and the statistics that say what our runs resolve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mser_lib import grids
from mser_lib.experiments import config_hash, get_dataset, resolve_run
from mser_lib.metrics import compute_metrics
from mser_lib.report import ablations, stats


# ------------------------------------------------------------------------------------- stats
def test_fast_metrics_match_the_library_definitions():
    rng = np.random.default_rng(0)
    y = np.round(rng.uniform(-3, 3, 200) * 3) / 3
    y[:7] = 0.0
    p = y + rng.normal(0, 1.0, 200)
    ref = compute_metrics(y, p, "mosi")
    for name, f in stats.FAST_METRICS.items():
        assert f(y, p) == pytest.approx(ref[name], abs=1e-12), name


def test_paired_seed_test_known_values():
    r = stats.paired_seed_test([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
    d = np.array([1.0, 1.5, 2.0])
    assert r["n"] == 3 and r["mean_diff"] == pytest.approx(1.5)
    assert r["sd_diff"] == pytest.approx(d.std(ddof=1))
    assert r["p_sign_flip"] == pytest.approx(0.25)          # 2 of 8 sign patterns are as extreme
    assert r["same_sign"] and r["ci_lo"] < 1.5 < r["ci_hi"] and r["p_t"] < 0.05
    one = stats.paired_seed_test([1.0], [0.0])
    assert one["n"] == 1 and math.isnan(one["p_t"]) and math.isnan(one["ci_lo"])
    mixed = stats.paired_seed_test([1.0, -1.0, 0.5], [0.0, 0.0, 0.0])
    assert not mixed["same_sign"]
    with pytest.raises(ValueError):
        stats.paired_seed_test([1.0, 2.0], [1.0])


def test_bootstrap_ci_covers_the_truth_and_is_deterministic():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, 400)
    a = stats.bootstrap_ci(lambda i: float(x[i].mean()), len(x), n_boot=500, seed=3)
    b = stats.bootstrap_ci(lambda i: float(x[i].mean()), len(x), n_boot=500, seed=3)
    assert a == b
    assert a["lo"] < 2.0 < a["hi"] and a["hi"] - a["lo"] < 0.4
    assert a["se"] == pytest.approx(1 / math.sqrt(400), rel=0.25)


def test_compare_resolves_a_real_difference_and_not_noise():
    rng = np.random.default_rng(2)
    y = rng.uniform(-3, 3, 300)
    good = [y + rng.normal(0, 0.3, 300) for _ in range(3)]
    bad = [y + rng.normal(0, 1.5, 300) for _ in range(3)]
    twin = [y + rng.normal(0, 0.3, 300) for _ in range(3)]
    va = [stats.metric_fn("mae")(y, p) for p in good]
    vb = [stats.metric_fn("mae")(y, p) for p in bad]
    r = stats.compare(va, vb, "mae", y, good, bad, n_boot=300, expect=+1)
    assert r["resolved"] and r["direction"] == 1 and r["agrees"] and r["boot_hi"] < 0
    vt = [stats.metric_fn("mae")(y, p) for p in twin]
    r2 = stats.compare(va, vt, "mae", y, good, twin, n_boot=300, expect=+1)
    assert not r2["resolved"] and r2["direction"] == 0 and r2["agrees"] is False
    # without predictions only the seed-level test decides (needs 3 seeds)
    r3 = stats.compare(va[:2], vb[:2], "mae")
    assert not r3["resolved"]


# ------------------------------------------------------------------------------------- grids
def test_grid_sizes_per_profile():
    seeds = [0, 1, 2]
    comp = {p: grids.femf_components(p, seeds) for p in grids.PROFILES}
    assert len(comp["paper"]) == 10 * 3 and len(comp["quick"]) == 10 * 2
    assert len(comp["smoke"]) == len(grids.SMOKE_COMPONENTS) * 3
    assert len(grids.femf_modalities("quick", seeds)) == 7 * 2
    assert len(grids.atsuko_table4("paper", seeds)) == 4 * 3
    assert {s["seed"] for s in grids.femf_orders("quick", seeds)} == {0}
    assert {s["seed"] for s in grids.femf_orders("paper", seeds)} == {0, 1, 2}
    # quick schedules are shortened, paper ones are the profile's
    assert all("train" in s for s in comp["quick"]) and all("train" not in s for s in comp["paper"])
    # sweeps hold the paper's ranges at paper size; the default point (no override) is the preset's
    # value for the dataset: alpha 0.3 on MOSI, 0.7 on MOSEI (FEMF Fig. 4)
    sens = grids.femf_sensitivity("paper", [0], "mosi")
    alphas = sorted(float(s["tag"].split("=")[1]) for s in sens if s["tag"].startswith("alpha"))
    assert alphas == [0.1, 0.3, 0.5, 0.7, 0.9]
    by_tag = {s["tag"]: s["overrides"] for s in sens}
    assert by_tag["alpha=0.3"] == {} and by_tag["alpha=0.7"] == {"alpha": 0.7}
    mosei = {s["tag"]: s["overrides"] for s in grids.femf_sensitivity("paper", [0], "mosei")}
    assert mosei["alpha=0.7"] == mosei["interaction_layers=2"] == mosei["cutoff_ratio=0.4"] == {}
    assert mosei["alpha=0.3"] == {"alpha": 0.3} and mosei["interaction_layers=1"] == {"interaction_layers": 1}
    # without a dataset every point passes its override explicitly
    assert all(s["overrides"] for s in grids.femf_sensitivity("paper", [0]))
    with pytest.raises(KeyError):
        grids.femf_components("huge", seeds)


@pytest.mark.parametrize("profile", grids.PROFILES)
@pytest.mark.parametrize("dataset", ["synthetic", "mosi", "mosei", "mosei-utt", "mosi-bclstm", None])
@pytest.mark.parametrize("model", ["femf", "atsuko"])
def test_sweep_labels_are_what_runs(profile, dataset, model):
    """Every sweep point's label ``param=value`` is the value the run is built with, on every dataset
    (on MOSEI FEMF's paper preset has alpha 0.7, 2 layers, c 0.4: ``alpha=0.3`` must override it)."""
    from mser_lib.experiments import load_profile
    from mser_lib.models.registry import build_config

    info = grids._dataset_info(dataset or "mosei")
    preset = load_profile(profile)["model_preset"]
    sweep = grids.femf_sensitivity if model == "femf" else grids.atsuko_sensitivity
    specs = sweep(profile, [0], dataset)
    assert specs
    for spec in specs:
        param, value = spec["tag"].split("=")
        cfg = build_config(model, info, preset, **spec["overrides"])
        assert str(getattr(cfg, param)) == value, (spec, getattr(cfg, param))


def test_notebook_grids_share_runs_and_quick_stays_small():
    seeds = [0, 1, 2]
    for nb in ("04", "05", "06"):
        specs = grids.notebook_grid(nb, "quick", seeds, "synthetic")
        assert grids.unique_runs(specs) < len(specs) or nb == "06"
    all_quick = [s for nb in ("04", "05") for s in grids.notebook_grid(nb, "quick", seeds, "synthetic")]
    trained = [s for s in all_quick if "train" in s]
    # FEMF full model = T+A+V row = each sweep default: one training per seed
    assert grids.unique_runs(trained) <= 52


def test_shared_specs_have_the_same_config_hash_and_robustness_reuses_notebook_03():
    from mser_lib.pipeline import main_grid

    ds = get_dataset("synthetic", None, "smoke")

    def h(spec):
        return config_hash(resolve_run(spec["model"], "synthetic", spec["seed"], "smoke",
                                       spec.get("overrides"), spec.get("train"), info=ds.info))

    comp = {s["tag"]: h(s) for s in grids.femf_components("quick", [0])}
    mods = {s["tag"]: h(s) for s in grids.femf_modalities("quick", [0])}
    sens = {s["tag"]: h(s) for s in grids.femf_sensitivity("quick", [0], ds.info)}
    assert comp["FEMF (full)"] == mods["T+A+V"] == sens["alpha=0.3"] == sens["cutoff_ratio=0.6"]
    assert comp["w/o FAE"] != comp["FEMF (full)"] and sens["alpha=0.1"] != sens["alpha=0.3"]
    main = {h(g) for g in main_grid("smoke", "synthetic", [0, 1])}
    assert {h(s) for s in grids.robustness("smoke", [0, 1])} <= main


def test_reported_rows_are_transcribed():
    comp = ablations.reported_femf_components()
    assert len(comp) == 20 and set(comp["dataset"]) == {"CMU-MOSI", "CMU-MOSEI"}
    full = comp[(comp["dataset"] == "CMU-MOSI") & (comp["variant"] == "FEMF (full)")].iloc[0]
    assert (full["mae"], full["acc2_non0"], full["f1_has0"]) == (0.758, 88.37, 85.32)
    assert set(comp["variant"]) == {lab for lab, _ in grids.FEMF_COMPONENTS}
    mods = ablations.reported_femf_modalities()
    assert set(mods["variant"]) == set(grids.MODALITY_LABELS.values())
    ats = ablations.reported_atsuko_table4()
    assert set(ats["variant"]) == {lab for _, lab in grids.ATSUKO_ROWS}
    assert ats[(ats["dataset"] == "CMU-MOSEI") & (ats["variant"] == "MCM")]["mae"].item() == 0.535


def test_predictions_from_checkpoint_reproduce_the_record(tmp_path):
    """A recorded run's predictions, recomputed from its checkpoint, give its recorded test metrics;
    dropping modalities changes them."""
    from mser_lib.data import MissingModality
    from mser_lib.experiments import run_one

    rec = run_one("baseline", "synthetic", 0, "smoke", overrides={"modalities": "tav"},
                  train={"epochs": 1}, results_dir=tmp_path, progress=False)
    ds = get_dataset("synthetic", None, "smoke")
    y, p = ablations.run_predictions(rec, ds, tmp_path, cache_dir=tmp_path / "pred")
    assert stats.metric_fn("mae")(y, p) == pytest.approx(rec["test"]["mae"], rel=1e-5)
    assert (tmp_path / "pred" / f"{rec['config_hash']}_full.npz").exists()
    y2, p2 = ablations.run_predictions(rec, ds, tmp_path, MissingModality(rate=0.4))
    assert np.array_equal(y, y2) and not np.allclose(p, p2)


def test_run_grid_trains_a_shared_run_once(monkeypatch):
    from mser_lib import experiments

    calls = []

    def fake(**kw):
        calls.append(kw)
        return {"model": kw["model"], "seed": kw["seed"], "n": len(calls)}

    monkeypatch.setattr(experiments, "run_one", fake)
    specs = [{"model": "femf", "seed": 0, "tag": "full"}, {"model": "femf", "seed": 1},
             {"model": "femf", "seed": 0, "tag": "T+A+V"}]
    out = experiments.run_grid(specs, results_dir="unused", progress=False, dataset="synthetic")
    assert len(calls) == 2 and [r["seed"] for r in out] == [0, 1, 0] and out[0] is out[2]
    with pytest.raises(ValueError):
        experiments.run_grid(specs, executor="threads")


def test_ablation_figures_draw_from_tables(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from mser_lib.report import ablation_figures as af
    from mser_lib.report.figures import save_figure

    rng = np.random.default_rng(0)
    frame = pd.DataFrame([{"label": lab, "seed": s, "metric": m, "value": float(rng.normal())}
                          for lab in ("full", "w/o X", "alpha=0.1", "alpha=0.3") for s in (0, 1)
                          for m in ("mae", "corr")])
    curves = pd.DataFrame([{"label": mod, "seed": s, "rate": r, "metric": m, "value": float(rng.normal())}
                           for mod in ("femf", "baseline") for s in (0, 1) for r in (0.0, 0.2, 0.4)
                           for m in ("f1_non0", "corr")])
    weights = pd.DataFrame([{"rate": r, "key": "w", "index": i, "value": 1 / 3}
                            for r in (0.0, 0.4) for i in range(3)])
    figs = [af.variant_points(frame, ["mae", "corr"], ["full", "w/o X"], reference="full"),
            af.missing_curves(curves),
            af.sensitivity(frame, ["alpha"], "mae", {"alpha": 0.3}),
            af.weight_lines(weights, ["text", "audio", "vision"], "w"),
            af.modality_weight_bars({"a": rng.dirichlet(np.ones(3), 10)}, rng.normal(size=10), "t"),
            af.attention_maps({"attn_low_text": np.eye(5), "attn_high_text": np.ones((5, 5)) / 5}, "t"),
            af.band_energy_bars(pd.DataFrame({"modality": ["text", "text"], "band": ["low", "high"],
                                              "share": [0.7, 0.3]}), "t"),
            af.tsne_panels({"a": (rng.normal(size=(40, 4)), rng.normal(size=40))}, "t")]
    for i, fig in enumerate(figs):
        assert fig.axes, i
        paths = save_figure(fig, tmp_path, f"f{i}")
        assert all(p.stat().st_size > 0 for p in paths)
        plt.close(fig)
