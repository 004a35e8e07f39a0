"""mser_lib.report.analysis: recorded runs are rebuilt from the config they saved."""

import pytest
import torch

from mser_lib import runs
from mser_lib.experiments import config_hash, get_dataset, resolve_run
from mser_lib.models import build_model, count_parameters


@pytest.mark.parametrize("model", ["femf", "atsuko"])
def test_model_from_record_uses_the_saved_config_not_todays_preset(tmp_path, model):
    ds = get_dataset("synthetic", None, "smoke")
    run = resolve_run(model, "synthetic", 0, "smoke", info=ds.info)
    today = run["model_config"]
    # a record written when the preset had other values (as if the preset changed since)
    saved = dict(today)
    if model == "femf":
        saved.update(hidden=24, alpha=0.9, cutoff_ratio=0.4, interaction_layers=2)
    else:
        saved.update(d_model=16, num_layers=1, entropy_weight=0.25, kernel_sizes=[1, 3, 3])   # JSON: a list
    run = {**run, "model_config": saved}
    record = {"config": run, "config_hash": config_hash(run), "profile": "smoke", "dataset": "synthetic",
              "seed": 0}
    net = runs.model_from_record(record, ds)
    for k, v in saved.items():
        got = getattr(net.config, k)
        assert (list(got) if isinstance(got, tuple) else got) == v, k
    assert count_parameters(net) != count_parameters(build_model(model, ds.info, "quick"))
    # its checkpoint (trained with the saved config) loads; today's preset could not hold it
    stage = net.stages()[-1] if hasattr(net, "stages") else None
    path = runs.checkpoint_dir(tmp_path, record) / (stage or "main") / "best.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": net.state_dict()}, path)
    loaded = runs.model_from_record(record, ds, tmp_path, stage)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
    with pytest.raises(RuntimeError):
        build_model(model, ds.info, "quick").load_state_dict(torch.load(path, weights_only=False)["model"])
    # a record without a saved model config falls back to the preset and overrides
    old = runs.model_from_record({**record, "config": {**run, "model_config": None}}, ds)
    assert count_parameters(old) == count_parameters(build_model(model, ds.info, "quick"))



def test_split_main_table_gives_narrow_measured_and_reported_views():
    import pandas as pd

    from mser_lib.report.paper_rows import split_main_table

    table = pd.DataFrame({
        "source": ["reported: FEMF Table 1", "measured (mser)", "measured (mser)"],
        "model": ["FEMF", "femf", "baseline"], "dataset": ["CMU-MOSI", "synthetic", "synthetic"],
        "setting": ["utterance-level", "profile quick", "profile quick"],
        "features": ["DeBERTa", "built-in", "built-in"], "seeds": ["as reported", "0,1", "0,1"],
        "MAE": ["0.758", "0.6 ± 0.1", "0.7 ± 0.1"], "Acc-7": ["", "40 ± 1", "41 ± 1"],
        "Acc-2 (protocol not stated)": ["", "", ""]}).set_index(["source", "model"])
    measured, reported, features = split_main_table(table)
    assert list(measured.index) == ["femf", "baseline"]
    assert list(measured.columns) == ["seeds", "MAE", "Acc-7"]
    assert features == "built-in"
    assert list(reported.index) == [("reported: FEMF Table 1", "FEMF")]
    assert "Acc-7" not in reported.columns
    assert "seeds" not in reported.columns
    assert "features" in reported.columns


def _claims_like(n_rows: int):
    import pandas as pd

    return pd.DataFrame({"claim": [f"claim {i}" for i in range(n_rows)],
                         "paper says": [f"p{i}" for i in range(n_rows)], "we measure": [f"{i}" for i in range(n_rows)],
                         "bootstrap 95% CI": [f"[0, {i}]" for i in range(n_rows)], "seeds": [2] * n_rows,
                         "schedule": ["60 epochs"] * n_rows, "p (paired t)": [0.5] * n_rows,
                         "p adjusted (Holm)": [0.9] * n_rows, "claims in family": [n_rows] * n_rows,
                         "resolved": ["no"] * (n_rows - 1) + ["yes"],
                         "agrees with paper": ["undecided"] * (n_rows - 1) + ["yes"]}).set_index("claim")


def test_inline_table_keeps_eight_columns_folds_constants_and_names_what_it_left_out():
    from mser_lib.report.ablations import BRIEF_CLAIM_COLUMNS, resolved_first
    from mser_lib.report.tables import INLINE_COLUMNS, inline_table

    claims = _claims_like(20)
    md = inline_table(resolved_first(claims), BRIEF_CLAIM_COLUMNS, rows=15, full="tables/claims.md")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert all(line.count("|") - 1 <= INLINE_COLUMNS for line in rows)
    assert len(rows) == 1 + 15                               # header and 15 rows
    assert rows[1].startswith("| claim 19 |")                # the resolved claim comes first
    assert "all rows: seeds 2, schedule 60 epochs" in md     # constant columns said once, not dropped
    assert "15 of 20 rows" in md
    assert "`tables/claims.md`" in md
    assert "p (paired t)" in md.split("shown:")[1]           # what is not shown is named
    head = rows[0].split("|")[1:-1]
    assert [h.strip() for h in head] == ["claim", "paper says", "we measure", "bootstrap 95% CI", "resolved",
                                         "agrees with paper"]


def test_resolved_first_then_rows_with_seeds_for_a_verdict_then_the_rest():
    """An inline view shows the first rows: the resolved ones, then the undecided ones that had enough seeds (the
    ones its sentences discuss), then those with too few seeds; each group keeps its order."""
    import pandas as pd

    from mser_lib.report.ablations import resolved_first
    from mser_lib.report.stats import NOT_ENOUGH_SEEDS

    t = pd.DataFrame({"resolved": [NOT_ENOUGH_SEEDS, "no", NOT_ENOUGH_SEEDS, "yes", "no"]},
                     index=["a", "b", "c", "d", "e"])
    assert list(resolved_first(t).index) == ["d", "b", "e", "a", "c"]


def test_inline_table_names_columns_empty_on_every_row_instead_of_printing_blanks():
    """One seed: the seed interval and the p-value are empty on every row; the note once printed 'all rows: seed CI
    , p adjusted (Holm) , resolved not enough seeds'."""
    import pandas as pd

    from mser_lib.report.tables import inline_table

    df = pd.DataFrame({"A": ["x", "y"], "mean A-B": [0.1, -0.2], "seed CI": ["", ""],
                       "p adjusted (Holm)": [float("nan")] * 2, "seeds": [1, 1]}).set_index("A")
    md = inline_table(df)
    assert "*all rows: seeds 1*" in md
    assert "*empty on every row: seed CI, p adjusted (Holm)*" in md
    assert "seed CI ," not in md
    na = df.assign(ci=pd.array([pd.NA, pd.NA], dtype="Float64"))          # a nullable column: <NA>, not "nan"
    assert "*empty on every row: seed CI, p adjusted (Holm), ci*" in inline_table(na)


def test_inline_table_of_a_narrow_table_is_the_table():
    import pandas as pd

    from mser_lib.report.tables import inline_table, to_markdown

    df = pd.DataFrame({"model": ["a", "b"], "MAE": [0.7, 0.8], "seeds": [2, 3]}).set_index("model")
    assert inline_table(df) == to_markdown(df)
    with pytest.raises(KeyError, match="no column 'Corr'"):
        inline_table(df, ["Corr"])


def test_beside_reported_puts_the_papers_value_next_to_ours():
    import pandas as pd

    from mser_lib.report import ablations as ab

    frame = pd.DataFrame({"label": ["full", "full", "w/o X", "w/o X"], "seed": [0, 1, 0, 1], "metric": "mae",
                          "value": [0.7, 0.8, 0.9, 1.0]})
    rep = pd.DataFrame({"source": "reported", "table": "T2", "dataset": ["CMU-MOSI", "CMU-MOSI", "CMU-MOSEI"],
                        "variant": ["full", "w/o X", "full"], "mae": [0.758, 0.772, 0.553]})
    table = pd.concat([ab.reported_as_rows(rep, "CMU-MOSI", ["mae"]), ab.reported_as_rows(rep, "CMU-MOSEI", ["mae"]),
                       ab.summary_table(frame, ["mae"])])
    out = ab.beside_reported(table, ["MAE", "seeds"], "MAE")
    assert list(out.index) == ["full", "w/o X"]
    assert out.loc["full", "MAE"] == "0.750 ± 0.071"
    assert out.loc["full", "paper MAE (CMU-MOSI)"] == "0.758"
    assert out.loc["w/o X", "paper MAE (CMU-MOSI)"] == "0.772"
    assert out.loc["full", "paper MAE (CMU-MOSEI)"] == "0.553"
    assert out.loc["w/o X", "paper MAE (CMU-MOSEI)"] == ""


def test_table1_claims_pair_each_method_with_the_rows_of_its_own_table_that_mser_runs():
    from mser_lib.report.paper_rows import table1_claims

    claims = table1_claims(["atsuko", "tfn", "femf", "baseline"])
    assert [c["claim"] for c in claims] == ["Table 1: Atsuko beats TFN (MAE)", "Table 1: Atsuko beats TFN (Acc-7)"]
    assert claims[0]["a"] == "atsuko"
    assert claims[0]["b"] == "tfn"
    assert claims[0]["metric"] == "mae"
    assert "CMU-MOSI aligned 0.696 vs 0.953" in claims[0]["says"]        # Atsuko Table 1 as printed
    assert table1_claims(["tfn", "lmf", "emoe"]) == []                    # no method, no claim
    assert table1_claims(["femf", "tfn"]) == []                           # TFN is not a row of FEMF's Table 1
    # only where the paper's own numbers put its method ahead: FEMF's Table 1 prints its MAE behind Self-MM's
    # (0.758 vs 0.713 on MOSI, 0.553 vs 0.539 on MOSEI) and its Corr ahead (0.828 vs 0.798, 0.831 vs 0.753)
    femf = table1_claims(["femf", "selfmm"])
    assert [c["claim"] for c in femf] == ["Table 1: FEMF beats Self-MM (Corr)"]
    assert femf[0]["says"] == "FEMF Table 1: CMU-MOSI 0.828 vs 0.798; CMU-MOSEI 0.831 vs 0.753"
    # a tie in one printed setting is still a claim (Atsuko and EMOE: MOSEI unaligned MAE 0.530 vs 0.530)
    assert "Table 1: Atsuko beats EMOE (MAE)" in [c["claim"] for c in table1_claims(["atsuko", "emoe"])]


def test_forest_draws_one_row_per_comparison_in_one_panel_per_metric():
    import matplotlib

    matplotlib.use("Agg")
    from mser_lib.report.ablation_figures import forest

    res = [{"a": "A", "b": b, "metric": m, "mean_diff": 0.01, "ci_lo": -0.02, "ci_hi": 0.04, "boot_lo": 0.0,
            "boot_hi": 0.02} for b in ("B", "C") for m in ("mae", "acc7")]
    fig = forest(res, "t")
    assert len(fig.axes) == 2
    mae, acc = fig.axes
    assert [t.get_text() for t in mae.get_yticklabels()] == ["A − B", "A − C"]
    assert "negative: A better" in mae.get_xlabel()
    assert "(pp)" in acc.get_xlabel()
    assert max(abs(x) for line in acc.lines for x in line.get_xdata()) == pytest.approx(4.0)   # points, not fractions


def test_masking_alone_is_the_expected_renormalised_weight_under_independent_drops():
    import numpy as np

    from mser_lib.data.missing import MissingModality
    from mser_lib.report.ablations import masking_alone

    w = np.array([0.6, 0.3, 0.1])
    assert masking_alone(w, 0.0) == pytest.approx(w)
    assert masking_alone(w, 0.3).sum() == pytest.approx(1.0)
    present = MissingModality(rate=0.3).presence(200_000, seed=0)          # the library's own drops
    kept = np.where(present, w, 0.0)
    mc = (kept / kept.sum(1, keepdims=True)).mean(0)
    assert masking_alone(w, 0.3) == pytest.approx(mc, abs=3e-3)
    # FEMF's joint head (index 3) is never masked: the drops are over the three modalities only
    w4 = np.array([0.3, 0.2, 0.1, 0.4])
    kept4 = np.concatenate([np.where(present, w4[:3], 0.0), np.full((len(present), 1), w4[3])], 1)
    mc4 = (kept4 / kept4.sum(1, keepdims=True)).mean(0)
    assert masking_alone(w4, 0.3, never_masked=(3,)) == pytest.approx(mc4, abs=3e-3)
    assert masking_alone(w4, 0.3, never_masked=(3,))[3] > masking_alone(w4, 0.3)[3]


def test_learned_nothing_runs_stay_out_of_the_per_seed_frame_as_out_of_the_tables():
    """A degenerate run is left out of records_long (sentences, the per-seed figure) as of every table."""
    from mser_lib.report import analysis

    good = {"model": "femf", "seed": 0, "overrides": {}, "test": {"mae": 0.5}}
    bad = {"model": "femf", "seed": 1, "overrides": {}, "test": {"mae": 1.4}, "degenerate": True}
    long = analysis.records_long([good, bad])
    assert list(long["seed"]) == [0]
    assert list(long["value"]) == [0.5]
    assert sorted(analysis.records_long([good, bad], include_degenerate=True)["seed"]) == [0, 1]


def test_spectrum_figure_marks_the_equal_energy_levels_on_the_cumulative_axis():
    """With B bands the cumulative-energy axis carries the B-1 levels k/B that equal-energy cuts aim at."""
    import matplotlib.pyplot as plt
    import numpy as np

    from mser_lib.report.figures import spectrum_with_boundaries

    fig = spectrum_with_boundaries({"audio": np.array([4.0, 2.0, 1.0, 1.0])}, {"audio": [0.2, 0.6]})
    cumulative = fig.axes[1]
    levels = sorted(float(line.get_ydata()[0]) for line in cumulative.lines if line.get_linestyle() == "--")
    assert levels == pytest.approx([1 / 3, 2 / 3])
    plt.close(fig)


def test_inline_table_folds_an_index_level_that_is_the_same_on_every_row():
    """A paper table's constant ``source`` and ``dataset`` index levels are said once under the table; the first
    index level always stays a column."""
    import pandas as pd

    from mser_lib.report.tables import inline_table

    df = pd.DataFrame({"model": ["a", "b"], "source": ["FEMF Table 1"] * 2, "dataset": ["CMU-MOSI"] * 2,
                       "MAE": [0.7, 0.8]}).set_index(["model", "source", "dataset"])
    md = inline_table(df)
    head = [h.strip() for h in md.splitlines()[0].split("|")[1:-1]]
    assert head == ["model", "MAE"]
    assert "all rows: source FEMF Table 1, dataset CMU-MOSI" in md
    one = inline_table(df.iloc[:1])                 # a single row: nothing is constant "across rows"
    assert "source" in one.splitlines()[0]
