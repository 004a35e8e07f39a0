"""Grids of notebooks 04-06 (sizes, shared runs) and the statistics that say what our runs resolve."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mser_lib import grids, runs
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
    assert r["n"] == 3
    assert r["mean_diff"] == pytest.approx(1.5)
    assert r["sd_diff"] == pytest.approx(d.std(ddof=1))
    assert r["p_sign_flip"] == pytest.approx(0.25)          # 2 of 8 sign patterns are as extreme
    assert r["same_sign"]
    assert r["ci_lo"] < 1.5 < r["ci_hi"]
    assert r["p_t"] < 0.05
    one = stats.paired_seed_test([1.0], [0.0])
    assert one["n"] == 1
    assert math.isnan(one["p_t"])
    assert math.isnan(one["ci_lo"])
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
    assert a["lo"] < 2.0 < a["hi"]
    assert a["hi"] - a["lo"] < 0.4
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
    assert r["resolved"]
    assert r["direction"] == 1
    assert r["agrees"]
    assert r["boot_hi"] < 0
    vt = [stats.metric_fn("mae")(y, p) for p in twin]
    r2 = stats.compare(va, vt, "mae", y, good, twin, n_boot=300, expect=+1)
    assert not r2["resolved"]
    assert r2["direction"] == 0
    assert r2["agrees"] is False
    # without predictions only the seed-level test decides (needs 3 seeds)
    r3 = stats.compare(va[:2], vb[:2], "mae")
    assert not r3["resolved"]


def test_holm_and_bh_match_hand_computed_values():
    p = [0.02, 0.5, 0.001, math.nan, 0.025]
    # sorted finite p: 0.001, 0.02, 0.025, 0.5 (m = 4; nan is not in the family)
    # Holm: 4*0.001, 3*0.02, max(0.06, 2*0.025), max(0.06, 1*0.5) = 0.004, 0.06, 0.06, 0.5
    h = stats.holm(p)
    assert h[[2, 0, 4, 1]] == pytest.approx([0.004, 0.06, 0.06, 0.5])
    assert math.isnan(h[3])
    # BH: min over j >= i of m p_(j) / j: 0.004, min(0.04, 0.0333, 0.5), 0.1/3, 0.5
    b = stats.benjamini_hochberg(p)
    assert b[[2, 0, 4, 1]] == pytest.approx([0.004, 0.1 / 3, 0.1 / 3, 0.5])
    assert math.isnan(b[3])
    assert np.array_equal(stats.adjust_p(p, "holm"), h, equal_nan=True)
    assert stats.holm([0.6, 0.7]).tolist() == [1.0, 1.0]           # 2 * 0.6 capped at 1, then monotone
    assert np.isnan(stats.holm([math.nan])).all()
    with pytest.raises(ValueError):
        stats.adjust_p(p, "bonferroni-ish")


def test_two_seeds_are_never_resolved_three_can_be():
    rng = np.random.default_rng(4)
    y = rng.uniform(-3, 3, 300)
    good = [y + rng.normal(0, 0.2, 300) for _ in range(3)]
    bad = [y + rng.normal(0, 2.0, 300) for _ in range(3)]
    va = [stats.metric_fn("mae")(y, p) for p in good]
    vb = [stats.metric_fn("mae")(y, p) for p in bad]
    two = stats.compare(va[:2], vb[:2], "mae", y, good[:2], bad[:2], n_boot=200, expect=+1)
    # a huge, consistent difference whose bootstrap interval excludes 0 by far ...
    assert two["same_sign"]
    assert two["boot_excludes"]
    assert two["n"] == 2
    # ... is still not a resolved claim with 2 seeds
    assert two["verdict"] == stats.NOT_ENOUGH_SEEDS
    assert not two["resolved"]
    assert two["agrees"] is False
    assert two["sign_agrees"] is True
    assert two["direction"] == 0
    three = stats.compare(va, vb, "mae", y, good, bad, n_boot=200, expect=+1)
    assert three["verdict"] == "yes"
    assert three["resolved"]
    assert three["p_seed"] < 0.05
    # no test predictions: no bootstrap, so no "yes" even with 3 seeds
    assert stats.compare(va, vb, "mae")["verdict"] == "no"
    # the exact sign-flip test cannot reach 0.05 with 3 seeds
    assert stats.compare(va, vb, "mae", y, good, bad, n_boot=200, seed_test="sign_flip")["verdict"] == "no"
    assert stats.verdict(2, 1e-9, True, True) == stats.NOT_ENOUGH_SEEDS
    assert stats.verdict(5, 0.01, True, True) == "yes"
    assert stats.verdict(5, 0.06, True, True) == "no"
    assert stats.verdict(5, 0.01, False, True) == "no"
    assert stats.verdict(5, 0.01, True, False) == "no"
    assert stats.verdict(5, 0.01, True, None) == "no"


def test_cluster_bootstrap_draws_whole_clusters_and_is_wider():
    rng = np.random.default_rng(5)
    n_vid, per = 20, 10
    vid_y = rng.uniform(-3, 3, n_vid)
    vid_p = vid_y + rng.normal(0, 1.0, n_vid)
    y, p = np.repeat(vid_y, per), np.repeat(vid_p, per)        # utterances identical within a video
    ids = np.repeat([f"v{i:02d}" for i in range(n_vid)], per)
    err = np.abs(p - y)
    seen = []

    def stat(i):
        seen.append(i)
        return float(err[i].mean())

    clus = stats.bootstrap_ci(stat, len(y), n_boot=400, seed=1, clusters=ids)
    naive = stats.bootstrap_ci(lambda i: float(err[i].mean()), len(y), n_boot=400, seed=1)
    assert clus["n_clusters"] == n_vid
    assert naive["n_clusters"] == n_vid * per
    # every replicate is a union of whole videos: each drawn video contributes all its utterances
    for idx in seen[1:]:
        counts = np.bincount(idx, minlength=len(y)).reshape(n_vid, per)
        assert (counts == counts[:, :1]).all()
        assert len(idx) == n_vid * per
    # 10 identical copies per video: the naive interval is about sqrt(10) too narrow
    w_c, w_n = clus["hi"] - clus["lo"], naive["hi"] - naive["lo"]
    assert w_c > 2.0 * w_n
    assert clus["se"] == pytest.approx(err[::per].std(ddof=0) / math.sqrt(n_vid), rel=0.25)
    # one sample per cluster is the plain bootstrap, replicate for replicate
    one = stats.bootstrap_ci(lambda i: float(err[i].mean()), len(y), n_boot=400, seed=1,
                             clusters=np.arange(len(y)))
    assert one == naive
    groups = stats.cluster_groups(["b", "a", "b", "c", "a"])
    assert [g.tolist() for g in groups] == [[0, 2], [1, 4], [3]]
    with pytest.raises(ValueError):
        stats.bootstrap_ci(stat, len(y), clusters=ids[:-1])


def _res(p_t, n=5, same_sign=True, boot=(-0.2, -0.05), sign_agrees=True, metric="mae"):
    """A comparison result as stats.compare / compare_labels return it (only what claim_row reads)."""
    return {"metric": metric, "mean_diff": -0.1, "n": n, "seeds": list(range(n)), "p_t": p_t,
            "same_sign": same_sign, "boot_lo": boot[0], "boot_hi": boot[1], "sign_agrees": sign_agrees,
            "schedule": "60 epochs, patience 12", "n_clusters": 31, "boot_unit": "videos"}


def test_claims_table_adjusts_p_and_recomputes_verdicts(tmp_path):
    import pandas as pd

    raw = [0.001, 0.02, 0.025, 0.5]
    rows = [ablations.claim_row(f"c{i}", "paper", _res(p)) for i, p in enumerate(raw)]
    # alone, each row is a family of one: raw p 0.02 and 0.025 resolve
    assert [r["resolved"] for r in rows] == ["yes", "yes", "yes", "no"]
    assert rows[1]["p adjusted (Holm)"] == 0.02
    assert rows[1]["claims in family"] == 1
    assert rows[0]["schedule"] == "60 epochs, patience 12"
    assert rows[0]["bootstrap over"] == "31 videos"
    rows.append(ablations.claim_row("two seeds", "paper", _res(1e-6, n=2)))
    rows.append(ablations.claim_row("mixed signs", "paper", _res(0.001, same_sign=False)))
    rows.append(ablations.claim_row("CI covers 0", "paper", _res(0.001, boot=(-0.1, 0.02))))
    rows.append(ablations.claim_row("wrong way", "paper", _res(0.001, sign_agrees=False)))
    assert rows[4]["resolved"] == "not enough seeds"
    assert rows[4]["agrees with paper"] == "undecided"
    table = ablations.adjust_claims(pd.DataFrame(rows))
    # family: the 7 rows with >= 3 seeds (the 2-seed row is left out); Holm by hand, sorted raw p:
    # 0.001 x4 -> 7*0.001 = 0.007 (each, after the running max), 0.02 -> 3*0.02 = 0.06,
    # 0.025 -> max(0.06, 2*0.025) = 0.06, 0.5 -> 0.5
    adj = table["p adjusted (Holm)"].tolist()
    assert adj[:4] == pytest.approx([0.007, 0.06, 0.06, 0.5])
    assert adj[5:] == pytest.approx([0.007] * 3)
    assert adj[4] == ""
    assert (table["claims in family"] == 7).all()
    assert table["resolved"].tolist() == ["yes", "no", "no", "no", "not enough seeds", "no", "no", "yes"]
    assert table["agrees with paper"].tolist()[0] == "yes"
    assert table["agrees with paper"].tolist()[-1] == "no"
    assert table["p (paired t)"].tolist()[:4] == raw                      # raw p kept beside the adjusted
    cols = list(table.columns)
    assert cols.index("p adjusted (Holm)") == cols.index("p (paired t)") + 1
    # BH on the same table (another column name; its own verdicts): 0.001*7/4 = 0.00175, 0.02*7/5 = 0.028,
    # 0.025*7/6 = 0.0292, 0.5
    bh = ablations.adjust_claims(table, method="bh")
    assert "p adjusted (Holm)" not in bh.columns
    assert bh["p adjusted (BH)"].tolist()[:4] == pytest.approx([0.00175, 0.028, 0.02917, 0.5], abs=1e-5)
    assert bh["resolved"].tolist()[:4] == ["yes", "yes", "yes", "no"]
    # the notebooks save the tables as CSV and notebook 06 adjusts their concatenation again
    path = tmp_path / "claims.csv"
    table.set_index("claim").to_csv(path)
    again = ablations.adjust_claims(pd.read_csv(path).set_index("claim"))
    assert again["resolved"].tolist() == table["resolved"].tolist()
    assert again["p adjusted (Holm)"].fillna("").tolist() == table["p adjusted (Holm)"].tolist()
    with pytest.raises(KeyError):
        ablations.adjust_claims(pd.DataFrame([{"claim": "old table", "resolved": "yes"}]))


def test_schedule_text_reads_the_record_config():
    femf = {"config": {"train": {"epochs": 60, "patience": 4, "stage_epochs": {"experts": 2, "full": 4}}},
            "stages": [{"stage": "experts"}, {"stage": "full"}]}
    base = {"config": {"train": {"epochs": 60, "patience": 12, "stage_epochs": {"experts": 2, "full": 4}}},
            "stages": [{"stage": None}]}
    assert ablations.schedule_text(femf) == "experts 2 + full 4 epochs, patience 4"
    assert ablations.schedule_text(base) == "60 epochs, patience 12"


def test_compare_labels_bootstraps_videos_in_the_position_layout(monkeypatch):
    """compare_labels hands the video id of each utterance to the bootstrap (position layout), and
    states seeds and schedule; in the sequence layout each sample is its own cluster."""
    from types import SimpleNamespace

    import pandas as pd

    rng = np.random.default_rng(6)
    n_vid, per, seeds = 12, 8, [0, 1, 2]
    ids = np.repeat([f"vid{i}" for i in range(n_vid)], per)
    y = rng.uniform(-3, 3, n_vid * per)
    preds = {(lab, s): y + rng.normal(0, 0.3 if lab == "A" else 1.0, len(y)) for lab in "AB" for s in seeds}
    train = {"epochs": 60, "patience": 12}
    specs = [{"tag": lab, "seed": s} for lab in "AB" for s in seeds]
    records = [{"model": "baseline", "seed": s, "config_hash": f"{lab}{s}", "tag": lab,
                "config": {"train": train}, "stages": [{"stage": None}]} for lab in "AB" for s in seeds]
    mae = stats.metric_fn("mae")
    frame = pd.DataFrame([{"label": lab, "seed": s, "metric": "mae", "value": mae(y, preds[(lab, s)])}
                          for lab in "AB" for s in seeds])
    seen = {}

    def fake_predictions(record, ds, results_dir, missing=None, cache_dir=None, with_ids=False, retrain=True):
        assert with_ids
        return y, preds[(record["tag"], record["seed"])], ids

    real_compare = stats.compare

    def spy(*args, **kw):
        seen["clusters"] = kw.get("clusters")
        return real_compare(*args, **kw)

    monkeypatch.setattr(ablations, "run_predictions", fake_predictions)
    monkeypatch.setattr(ablations.stats, "compare", spy)
    pos = SimpleNamespace(info=SimpleNamespace(layout="position"))
    r = ablations.compare_labels(frame, specs, records, "A", "B", "mae", pos, "unused", n_boot=100, expect=+1)
    assert np.array_equal(seen["clusters"], ids)
    assert r["n_clusters"] == n_vid
    assert r["boot_unit"] == "videos"
    assert r["schedule"] == "60 epochs, patience 12"
    assert r["seeds"] == seeds
    assert r["verdict"] == "yes"
    row = ablations.claim_row("A beats B", "paper", r)
    assert row["seeds"] == 3
    assert row["bootstrap over"] == f"{n_vid} videos"
    assert row["resolved"] == "yes"
    seq = SimpleNamespace(info=SimpleNamespace(layout="sequence"))
    r2 = ablations.compare_labels(frame, specs, records, "A", "B", "mae", seq, "unused", n_boot=100)
    assert seen["clusters"] is None
    assert r2["n_clusters"] == len(y)
    assert r2["boot_unit"] == "samples"
    two = ablations.compare_labels(frame[frame["seed"] < 2], specs, records, "A", "B", "mae", pos, "unused",
                                   n_boot=100, expect=+1)
    assert two["verdict"] == "not enough seeds"
    table = ablations.comparison_frame([r, two])
    assert table["resolved"].tolist() == ["yes", "not enough seeds"]
    assert "p adjusted (Holm)" in table.columns


def test_a_tests_table_given_its_family_gives_each_row_the_claims_tables_verdict():
    """Notebook 04 shows three tests tables and one claims table over the same comparisons: with the family passed,
    a row's adjusted p and verdict are the claims table's, never resolved in one and undecided in the other."""
    def res(p, n=5):
        return {"a": "A", "b": f"B{p}", "metric": "mae", "mean_diff": -0.05, "ci_lo": -0.08, "ci_hi": -0.02,
                "p_t": p, "p_sign_flip": 0.06, "boot_lo": -0.07, "boot_hi": -0.03, "boot_excludes": True,
                "same_sign": True, "seeds": list(range(n)), "n": n, "schedule": "60 epochs", "sign_agrees": True}
    family = [res(p) for p in (0.001, 0.008, 0.009, 0.02, 0.03, 0.2, 0.5, 0.7)]
    first = family[:2]
    alone = ablations.comparison_frame(first)
    assert alone["resolved"].tolist() == ["yes", "yes"]          # Holm over 2: 0.002, 0.008
    within = ablations.comparison_frame(first, family=family)
    claims = ablations.adjust_claims(pd.DataFrame([ablations.claim_row(f"c{i}", "paper", r)
                                                   for i, r in enumerate(family)]))
    assert within["resolved"].tolist() == claims["resolved"].tolist()[:2] == ["yes", "no"]   # Holm over 8: 0.008, 0.056
    assert within["p adjusted (Holm)"].tolist() == claims["p adjusted (Holm)"].tolist()[:2]
    with pytest.raises(ValueError, match="one of the family"):
        ablations.comparison_frame([res(0.001)], family=family)
    # at a rounding boundary both tables adjust the same (shown) p-values: 0.0249996 x 2 is 0.0499992 raw, 0.05
    # as the claims table holds it (4 significant digits), so neither resolves it
    edge = [res(0.0249996), res(0.4)]
    shown = ablations.comparison_frame(edge)
    held = ablations.adjust_claims(pd.DataFrame([ablations.claim_row(f"c{i}", "paper", r) for i, r in enumerate(edge)]))
    assert shown["resolved"].tolist() == held["resolved"].tolist() == ["no", "no"]
    assert shown["p adjusted (Holm)"].tolist() == held["p adjusted (Holm)"].tolist() == [0.05, 0.4]
    assert shown["claims in family"].tolist() == [2, 2]


def test_degradation_compare_uses_video_clusters_and_seed_rule():
    rng = np.random.default_rng(7)
    n_vid, per = 10, 6
    ids = np.repeat(np.arange(n_vid).astype(str), per)
    y = rng.uniform(-3, 3, n_vid * per)
    preds = {}
    for s in range(3):
        for lab, drop in (("robust", 0.1), ("fragile", 1.5)):
            p0 = y + rng.normal(0, 0.3, len(y))
            preds[(lab, s, 0.0)] = ablations.RunPredictions(y, p0, ids, "60 epochs, patience 12")
            preds[(lab, s, 0.4)] = ablations.RunPredictions(y, p0 + rng.normal(0, drop, len(y)), ids,
                                                            "60 epochs, patience 12")
    r = ablations.degradation_compare(preds, "robust", "fragile", "mae", [0, 1, 2], 0.4, n_boot=100)
    assert r["n_clusters"] == n_vid
    assert r["boot_unit"] == "videos"
    assert r["mean_diff"] > 0
    assert r["verdict"] == "yes"
    assert r["agrees"]
    assert r["schedule"] == "60 epochs, patience 12"
    r2 = ablations.degradation_compare(preds, "robust", "fragile", "mae", [0, 1], 0.4, n_boot=100)
    assert r2["verdict"] == "not enough seeds"
    assert not r2["resolved"]
    assert r2["sign_agrees"]
    assert ablations.claim_row("robust degrades slower", "paper", r2)["resolved"] == "not enough seeds"


# ------------------------------------------------------------------------------------- grids
def test_grid_sizes_per_profile():
    seeds = [0, 1, 2]
    comp = {p: grids.femf_components(p, seeds) for p in grids.PROFILES}
    assert len(comp["paper"]) == 10 * 3
    assert len(comp["quick"]) == 10 * 1
    assert len(comp["smoke"]) == len(grids.SMOKE_COMPONENTS) * 3
    assert len(grids.femf_modalities("quick", seeds)) == 7 * 1
    assert len(grids.atsuko_table4("paper", seeds)) == 4 * 3
    assert {s["seed"] for s in grids.femf_orders("quick", seeds)} == {0}
    assert {s["seed"] for s in grids.femf_orders("paper", seeds)} == {0, 1, 2}
    # quick schedules are shortened, paper ones are the profile's
    assert all("train" in s for s in comp["quick"])
    assert all("train" not in s for s in comp["paper"])
    # sweeps hold the paper's ranges at paper size; the default point (no override) is the preset's
    # value for the dataset: alpha 0.3 on MOSI, 0.7 on MOSEI (FEMF Fig. 4)
    sens = grids.femf_sensitivity("paper", [0], "mosi")
    alphas = sorted(float(s["tag"].split("=")[1]) for s in sens if s["tag"].startswith("alpha"))
    assert alphas == [0.1, 0.3, 0.5, 0.7, 0.9]
    by_tag = {s["tag"]: s["overrides"] for s in sens}
    assert by_tag["alpha=0.3"] == {}
    assert by_tag["alpha=0.7"] == {"alpha": 0.7}
    mosei = {s["tag"]: s["overrides"] for s in grids.femf_sensitivity("paper", [0], "mosei")}
    assert mosei["alpha=0.7"] == mosei["interaction_layers=2"] == mosei["cutoff_ratio=0.4"] == {}
    assert mosei["alpha=0.3"] == {"alpha": 0.3}
    assert mosei["interaction_layers=1"] == {"interaction_layers": 1}
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
    # FEMF full model = T+A+V row = each sweep default = the ledger's FEMF default: one training per seed;
    # the ledger adds one seed of each of its 21 rows and EMOE's default
    assert grids.unique_runs(trained) <= 52 + 22


def test_shared_specs_have_the_same_config_hash_and_robustness_reuses_notebook_03():
    from mser_lib.grids import main_grid

    ds = get_dataset("synthetic", None, "smoke")

    def h(spec):
        return config_hash(resolve_run(spec["model"], "synthetic", spec["seed"], "smoke",
                                       spec.get("overrides"), spec.get("train"), info=ds.info))

    comp = {s["tag"]: h(s) for s in grids.femf_components("quick", [0])}
    mods = {s["tag"]: h(s) for s in grids.femf_modalities("quick", [0])}
    sens = {s["tag"]: h(s) for s in grids.femf_sensitivity("quick", [0], ds.info)}
    assert comp["FEMF (full)"] == mods["T+A+V"] == sens["alpha=0.3"] == sens["cutoff_ratio=0.6"]
    assert comp["w/o FAE"] != comp["FEMF (full)"]
    assert sens["alpha=0.1"] != sens["alpha=0.3"]
    main = {h(g) for g in main_grid("smoke", "synthetic", [0, 1])}
    assert {h(s) for s in grids.robustness("smoke", [0, 1])} <= main


def test_reported_rows_are_transcribed():
    comp = ablations.reported_femf_components()
    assert len(comp) == 20
    assert set(comp["dataset"]) == {"CMU-MOSI", "CMU-MOSEI"}
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
    y, p = runs.run_predictions(rec, ds, tmp_path, cache_dir=tmp_path / "pred")
    assert stats.metric_fn("mae")(y, p) == pytest.approx(rec["test"]["mae"], rel=1e-5)
    assert (tmp_path / "pred" / f"{rec['config_hash']}_full.npz").exists()
    y2, p2 = runs.run_predictions(rec, ds, tmp_path, MissingModality(rate=0.4))
    assert np.array_equal(y, y2)
    assert not np.allclose(p, p2)
    y3, p3, ids = runs.run_predictions(rec, ds, tmp_path, cache_dir=tmp_path / "pred", with_ids=True)
    assert np.array_equal(p, p3)
    assert len(ids) == len(y)
    assert len(set(ids)) == len(y)
    assert "ids" in np.load(tmp_path / "pred" / f"{rec['config_hash']}_full.npz").files


def test_a_finished_run_leaves_its_test_predictions_beside_its_record(tmp_path):
    from mser_lib.experiments import predictions_dir, run_one

    rec = run_one("baseline", "synthetic", 0, "smoke", overrides={"modalities": "t"}, train={"epochs": 1},
                  results_dir=tmp_path, progress=False)
    z = np.load(predictions_dir(tmp_path, "smoke", "synthetic") / f"{rec['config_hash']}_full.npz")
    assert runs._gives_recorded_mae(rec, z["y"], z["p"])
    assert len(z["ids"]) == len(z["y"])


def test_cached_predictions_serve_without_a_checkpoint_unless_they_contradict_the_record(tmp_path):
    """The committed real-data caches: a cached file serves a run whose checkpoints are gone; a file that does not
    give the record's test MAE (another training of the same config) is not used; retrain=False never trains."""
    import shutil

    from mser_lib.experiments import run_dir, run_one

    rec = run_one("baseline", "synthetic", 0, "smoke", overrides={"modalities": "t"},
                  train={"epochs": 1}, results_dir=tmp_path / "res", progress=False)
    ds = get_dataset("synthetic", None, "smoke")
    cache = tmp_path / "pred"
    y, p = runs.run_predictions(rec, ds, tmp_path / "res", cache_dir=cache)
    shutil.rmtree(run_dir(tmp_path / "res", "smoke", "synthetic", rec["config_hash"]))   # a fresh clone: no checkpoint
    y2, p2 = runs.run_predictions(rec, ds, tmp_path / "res", cache_dir=cache, retrain=False)
    assert np.array_equal(p, p2)
    stale = cache / f"{rec['config_hash']}_full.npz"
    np.savez_compressed(stale, y=y, p=p + 0.1, ids=np.load(stale)["ids"])    # not this record's predictions
    assert runs.run_predictions(rec, ds, tmp_path / "res", cache_dir=cache, retrain=False) is None
    assert not run_dir(tmp_path / "res", "smoke", "synthetic", rec["config_hash"]).exists()   # nothing trained
    y3, p3 = runs.run_predictions(rec, ds, tmp_path / "res", cache_dir=cache)         # retrained, then recomputed
    assert stats.metric_fn("mae")(y3, p3) == pytest.approx(rec["test"]["mae"], rel=1e-5)
    assert runs._gives_recorded_mae(rec, *(np.load(stale)[k] for k in ("y", "p")))


def test_predictions_never_mix_two_trainings_of_one_config(tmp_path):
    """A record and a checkpoint (or a cached file) from different trainings of the same config hash: a checkpoint
    that does not reproduce the record raises StaleCheckpoint, naming the run; a cached file naming another training
    is not read; an older file with modalities dropped is read only beside a complete-split file that passes."""
    import shutil

    from mser_lib.data import MissingModality
    from mser_lib.experiments import run_dir, run_one

    rec = run_one("baseline", "synthetic", 0, "smoke", overrides={"modalities": "t"},
                  train={"epochs": 1}, results_dir=tmp_path / "res", progress=False)
    ds = get_dataset("synthetic", None, "smoke")
    cache = tmp_path / "pred"
    runs.run_predictions(rec, ds, tmp_path / "res", MissingModality(rate=0.4), cache_dir=cache)
    z = np.load(cache / f"{rec['config_hash']}_rate-0.4.npz")
    assert str(z["record_key"]) == runs.record_key(rec)
    other = {**rec, "test": {**rec["test"], "mae": rec["test"]["mae"] + 0.05}}   # the record of another training
    with pytest.raises(runs.StaleCheckpoint, match=f"run {rec['config_hash']} .*its record in runs.jsonl says"):
        runs.run_predictions(other, ds, tmp_path / "res", MissingModality(rate=0.4), cache_dir=cache)
    with pytest.raises(runs.StaleCheckpoint):
        runs.run_predictions(other, ds, tmp_path / "res", cache_dir=tmp_path / "pred2")
    # files written before files named their training: read beside a passing complete-split file only
    y, p, ids = runs.run_predictions(rec, ds, tmp_path / "res", cache_dir=cache, with_ids=True)
    shutil.rmtree(run_dir(tmp_path / "res", "smoke", "synthetic", rec["config_hash"]))   # no checkpoint from here on
    old = tmp_path / "old"
    old.mkdir()
    y4, p4 = (np.load(cache / f"{rec['config_hash']}_rate-0.4.npz")[k] for k in ("y", "p"))
    np.savez_compressed(old / f"{rec['config_hash']}_rate-0.4.npz", y=y4, p=p4, ids=ids)
    # no complete-split file beside it: not read (and, without a checkpoint and retrain=False, nothing computed)
    assert runs.run_predictions(rec, ds, tmp_path / "res", MissingModality(rate=0.4), cache_dir=old,
                                retrain=False) is None
    np.savez_compressed(old / f"{rec['config_hash']}_full.npz", y=y, p=p, ids=ids)
    got = runs.run_predictions(rec, ds, tmp_path / "res", MissingModality(rate=0.4), cache_dir=old, retrain=False)
    assert np.array_equal(got[1], p4)
    np.savez_compressed(old / f"{rec['config_hash']}_full.npz", y=y, p=p + 0.1, ids=ids)   # another training's
    assert runs.run_predictions(rec, ds, tmp_path / "res", MissingModality(rate=0.4), cache_dir=old,
                                retrain=False) is None


def test_run_grid_trains_a_shared_run_once(monkeypatch):
    from mser_lib import executors

    calls = []

    def fake(**kw):
        calls.append(kw)
        return {"model": kw["model"], "seed": kw["seed"], "n": len(calls)}

    monkeypatch.setattr(executors, "run_one", fake)
    specs = [{"model": "femf", "seed": 0, "tag": "full"}, {"model": "femf", "seed": 1},
             {"model": "femf", "seed": 0, "tag": "T+A+V"}]
    out = executors.run_grid(specs, results_dir="unused", progress=False, dataset="synthetic")
    assert len(calls) == 2
    assert [r["seed"] for r in out] == [0, 1, 0]
    assert out[0] is out[2]
    with pytest.raises(ValueError):
        executors.run_grid(specs, executor="threads")


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


def test_claims_profile_runs_every_grid_with_every_seed_on_the_main_schedule():
    """The claims grids: 5 seeds for every ablation and sweep, no shortened schedule, quick's points."""
    from mser_lib.experiments import profile_seeds

    seeds = profile_seeds("claims", "mosi-bclstm")
    assert seeds == [0, 1, 2, 3, 4]
    for name in ("femf_components", "femf_modalities", "atsuko_table4", "femf_orders"):
        specs = grids.GRIDS[name]("claims", seeds)
        assert {s["seed"] for s in specs} == set(seeds), name
        assert not any("train" in s for s in specs), name
    sweep = grids.femf_sensitivity("claims", seeds, "mosi-bclstm")
    assert {s["tag"] for s in sweep} == {s["tag"] for s in grids.femf_sensitivity("quick", [0], "mosi-bclstm")}


def test_table1_baselines_take_the_first_seed_on_the_built_in_data_only(monkeypatch):
    """quick trains the papers' Table 1 baselines at one seed on the built-in data; real data, the claims
    profile and every other model keep every seed; the robustness study follows the main grid."""
    from mser_lib import experiments
    from mser_lib.experiments import model_seeds
    from mser_lib.grids import main_grid
    from mser_lib.models.registry import model_names

    table1 = [m for m in model_names("baseline") if m != "baseline"]
    assert len(table1) == 8
    for m in table1:
        assert model_seeds("quick", "synthetic", m, [0, 1, 2]) == [0]
        assert model_seeds("quick", "mosi-bclstm", m, [0, 1, 2, 3, 4]) == [0, 1, 2, 3, 4]
        assert model_seeds("claims", "synthetic", m, [0, 1, 2, 3, 4]) == [0, 1, 2, 3, 4]
    for m in ("femf", "atsuko", "emoe", "baseline"):
        assert model_seeds("quick", "synthetic", m, [0, 1, 2]) == [0, 1, 2]
    grid = main_grid("quick", "synthetic", [0, 1, 2])
    by_model = {m: {g["seed"] for g in grid if g["model"] == m} for m in {g["model"] for g in grid}}
    assert by_model == {**{m: {0} for m in table1}, **{m: {0, 1, 2} for m in ("femf", "atsuko", "emoe", "baseline")}}
    assert len(grid) == 3 * (3 + 4) + 8
    assert {(s["model"], s["seed"]) for s in grids.robustness("quick", [0, 1, 2], "synthetic")} \
        == {(g["model"], g["seed"]) for g in grid}
    # a count that is not a positive integer is refused, naming the profile file and the section
    prof = experiments.load_profile("quick")
    prof["datasets"]["synthetic"]["models"]["dmd"] = {"n_seeds": 0}
    monkeypatch.setattr(experiments, "load_profile", lambda name: prof)
    with pytest.raises(experiments.ConfigError, match=r"quick\.yaml: datasets\.synthetic\.models\.dmd\.n_seeds=0"):
        model_seeds("quick", "synthetic", "dmd", [0, 1])


def test_the_quick_ledger_skips_the_built_in_data_and_real_data_gets_every_row():
    from mser_lib import grids

    builtin = {s["tag"] for s in grids.deviations("quick", [0, 1, 2], "sequence", "synthetic")}
    assert builtin == set()                     # make reproduce's budget: the ledger runs on real data
    real = {s["tag"] for s in grids.deviations("quick", [0, 1, 2], "position", "mosi-bclstm")}
    assert real == {d.label for d in grids.DEVIATIONS if "position" in d.layouts} | set(grids.LEDGER_BASE.values())
    assert len(grids.deviations("quick", [0], "sequence", "mosi")) == len(grids.DEVIATIONS) + 3


def test_fast_classification_metrics_match_the_library_definitions():
    from mser_lib.metrics import classification_metrics

    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 300)
    y[y == 5] = 4                                      # a class never true ...
    logits = rng.normal(size=(300, 6)) + 2.0 * np.eye(6)[y] * (rng.uniform(size=300) < 0.6)[:, None]
    logits[:3, 5] = 10.0                               # ... but predicted three times
    ref = classification_metrics(y, logits)
    for name, f in stats.CLASSIFICATION_FAST_METRICS.items():
        assert f(y, logits) == pytest.approx(ref[name], abs=1e-12), name
        assert stats.metric_fn(name)(y, logits.argmax(1)) == pytest.approx(ref[name], abs=1e-12), name


def test_a_recorded_model_is_rebuilt_in_a_process_that_built_no_model_before(tmp_path):
    """model_from_record loads the model registry itself (a script that only reads records and predictions, with
    no build_model call before, failed with KeyError: 'femf')."""
    import json
    import subprocess
    import sys

    from mser_lib.experiments import run_one

    rec = run_one("baseline", "synthetic", 0, "smoke", overrides={"modalities": "t"}, train={"epochs": 1},
                  results_dir=tmp_path, progress=False)
    (tmp_path / "rec.json").write_text(json.dumps(rec))
    code = ("import json, sys; from mser_lib.runs import model_from_record; "
            "from mser_lib.experiments import get_dataset; "
            "rec = json.load(open(sys.argv[1])); "
            "net = model_from_record(rec, get_dataset('synthetic', None, 'smoke')); print(type(net).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "rec.json")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_runs_that_learned_nothing_leave_the_comparisons_and_are_named():
    """A degenerate run (no better than the trivial predictor) is not a result: grid_frame leaves its seed out of
    every variant's statistics, so a variant left with 2 seeds gets no verdict, and degenerate_note names it."""
    specs = [{"model": "femf", "seed": s, "tag": tag} for tag in ("T+A+V", "A") for s in range(5)]
    records = [{"model": "femf", "seed": sp["seed"], "config_hash": f"{i:016x}", "test": {"mae": 0.9 + 0.01 * i},
                "degenerate": sp["tag"] == "A" and sp["seed"] < 3} for i, sp in enumerate(specs)]
    frame = ablations.grid_frame(specs, records)
    assert sorted(frame.loc[frame["label"] == "A", "seed"]) == [3, 4]
    assert len(ablations.grid_frame(specs, records, include_degenerate=True)) == 10
    note = ablations.degenerate_note(specs, records)
    assert note.startswith("WARNING: 3 runs learned nothing")
    assert "A: seeds 0, 1, 2" in note
    assert ablations.degenerate_note(specs[:5], records[:5]) is None
    r = ablations.compare_labels(frame, specs, records, "T+A+V", "A", "mae")
    assert r["n"] == 2
    assert ablations.claim_row("T+A+V beats A", "paper", r)["resolved"] == "not enough seeds"
