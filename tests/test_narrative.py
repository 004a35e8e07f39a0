"""mser_lib.report.narrative: the "What we see" sentences, on hand-made tables."""

import math

import pandas as pd
import pytest

from mser_lib.report import narrative as nv


def _frame(values: dict, col: str = "label") -> pd.DataFrame:
    """``{(label, metric): [per-seed values]}`` -> long frame."""
    rows = [{col: lab, "seed": s, "metric": m, "value": v}
            for (lab, m), vals in values.items() for s, v in enumerate(vals)]
    return pd.DataFrame(rows)


CLEAR = _frame({("femf", "mae"): [0.60, 0.61, 0.62], ("baseline (modalities=tav)", "mae"): [0.66, 0.66, 0.67],
                ("femf", "acc2_non0"): [0.88, 0.89, 0.87],
                ("baseline (modalities=tav)", "acc2_non0"): [0.83, 0.84, 0.83]})
NOISY = _frame({("atsuko", "mae"): [0.60, 0.90, 0.70], ("emoe", "mae"): [0.65, 0.85, 0.72]}, col="row")


def test_summarize_mean_and_seed_std():
    s = nv.summarize(CLEAR, "femf", "mae")
    assert s.n == 3 and s.mean == pytest.approx(0.61) and s.std == pytest.approx(0.01)
    one = nv.summarize(_frame({("x", "mae"): [0.5]}), "x", "mae")
    assert one.n == 1 and math.isnan(one.std)
    with pytest.raises(KeyError):
        nv.summarize(CLEAR, "nobody", "mae")


def test_compare_sentence_beyond_and_within_spread():
    s = nv.compare_sentence(CLEAR, "femf", "baseline (modalities=tav)", "mae")
    assert s == ("FEMF's MAE (0.610 ± 0.010) is lower (better) than the T+A+V baseline's (0.663 ± 0.006), "
                 "by more than the seed spread.")
    s = nv.compare_sentence(NOISY, "atsuko", "emoe", "mae")
    assert "lower (better)" in s and "less than the seed spread" in s
    s = nv.compare_sentence(CLEAR, "baseline (modalities=tav)", "femf", "acc2_non0")
    assert s.startswith("The T+A+V baseline's Acc-2 (neg/pos) (83.3 ± 0.6) is lower (worse) than FEMF's (88.0 ± 1.0)")


def test_higher_is_better_for_accuracy_and_lower_for_mae():
    assert nv.better("acc7", 0.5, 0.4) and not nv.better("mae", 0.5, 0.4) and nv.better("mae", 0.4, 0.5)
    assert "higher (better)" in nv.compare_sentence(CLEAR, "femf", "baseline (modalities=tav)", "acc2_non0")


def test_single_seed_has_no_spread():
    f = _frame({("a", "mae"): [0.5], ("b", "mae"): [0.6]})
    assert nv.beyond_spread(nv.summarize(f, "a", "mae"), nv.summarize(f, "b", "mae")) is None
    assert "single seed" in nv.compare_sentence(f, "a", "b", "mae")


def test_best_sentence_and_ranking():
    assert [lab for lab, _ in nv.ranking(CLEAR, ["baseline (modalities=tav)", "femf"], "mae")] == \
        ["femf", "baseline (modalities=tav)"]
    assert nv.best_sentence(CLEAR, ["femf", "baseline (modalities=tav)"], "mae").startswith("The best MAE is FEMF's")
    assert "within the seed spread" in nv.best_sentence(NOISY, ["atsuko", "emoe"], "mae")


def test_paper_sentence_agrees_contradicts_or_cannot_tell():
    assert "our runs agree" in nv.paper_sentence(CLEAR, "femf", "baseline (modalities=tav)", "mae", "FEMF Table 1")
    s = nv.paper_sentence(CLEAR, "baseline (modalities=tav)", "femf", "mae", "A paper")
    assert s.startswith("This contradicts A paper") and "by more than the seed spread" in s
    assert "do not confirm it" in nv.paper_sentence(NOISY, "atsuko", "emoe", "mae", "Atsuko Table 1")
    assert "other way" in nv.paper_sentence(NOISY, "emoe", "atsuko", "mae", "Atsuko Table 1")


def test_beats_all_sentence():
    f = _frame({("t", "mae"): [0.50, 0.51], ("x", "mae"): [0.60, 0.61], ("y", "mae"): [0.505, 0.70]})
    s = nv.beats_all_sentence(f, "t", ["t", "x", "y"], "mae", names={"t": "text only"})
    assert s.startswith("Text only has a better MAE") and "over x" in s
    assert nv.beats_all_sentence(f, "x", ["t", "x", "y"], "mae") is None


def test_degradation_sentence_names_the_faster():
    rows = [{"label": lab, "seed": 0, "rate": r, "metric": "f1_non0", "value": v}
            for lab, vals in {"femf": (0.90, 0.70), "baseline": (0.85, 0.80)}.items() for r, v in zip((0.0, 0.4), vals)]
    s = nv.degradation_sentence(pd.DataFrame(rows), "femf", "baseline", "f1_non0", 0.4)
    assert s == ("From no missing data to 40% missing, FEMF loses 20.0 points of F1 (neg/pos) and the baseline "
                 "5.0 points: FEMF degrades faster.")


def test_claims_sentence_counts_verdicts():
    claims = pd.DataFrame({"agrees with paper": ["yes", "no", "undecided", "undecided"],
                           "resolved": ["yes", "yes", "no", "not enough seeds"]})
    assert nv.claims_sentence(claims) == ("Of 4 claims, our runs resolve 2: 1 agree with the paper and 1 contradict "
                                          "it; 2 stay undecided (1 of them because they have fewer than 3 seeds).")


def test_what_we_see_differs_for_builtin_and_real_data():
    a = nv.what_we_see(["One.", None, "Two."], "synthetic")
    b = nv.what_we_see(["One.", "Two."], "mosi-bclstm")
    assert a.startswith("**What we see** (built-in") and "- One.\n- Two." in a
    assert "mosi-bclstm: real data" in b and a != b
    assert nv.is_builtin("synthetic") and not nv.is_builtin("mosi")
