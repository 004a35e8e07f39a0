"""mser_lib.report.narrative: the "What we see" sentences, on hand-made tables."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

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
    assert s.n == 3
    assert s.mean == pytest.approx(0.61)
    assert s.std == pytest.approx(0.01)
    one = nv.summarize(_frame({("x", "mae"): [0.5]}), "x", "mae")
    assert one.n == 1
    assert math.isnan(one.std)
    with pytest.raises(KeyError):
        nv.summarize(CLEAR, "nobody", "mae")


def test_compare_sentence_beyond_and_within_spread():
    s = nv.compare_sentence(CLEAR, "femf", "baseline (modalities=tav)", "mae")
    assert s == ("FEMF's MAE (0.610 ± 0.010) is lower (better) than the T+A+V baseline's (0.663 ± 0.006), "
                 "by more than the seed spread.")
    s = nv.compare_sentence(NOISY, "atsuko", "emoe", "mae")
    assert "lower (better)" in s
    assert "less than the seed spread" in s
    s = nv.compare_sentence(CLEAR, "baseline (modalities=tav)", "femf", "acc2_non0")
    assert s.startswith("The T+A+V baseline's Acc-2 (neg/pos) (83.3 ± 0.6) is lower (worse) than FEMF's (88.0 ± 1.0)")


def test_higher_is_better_for_accuracy_and_lower_for_mae():
    assert nv.better("acc7", 0.5, 0.4)
    assert not nv.better("mae", 0.5, 0.4)
    assert nv.better("mae", 0.4, 0.5)
    assert "higher (better)" in nv.compare_sentence(CLEAR, "femf", "baseline (modalities=tav)", "acc2_non0")


def test_single_seed_has_no_spread():
    f = _frame({("a", "mae"): [0.5], ("b", "mae"): [0.6]})
    assert nv.beyond_spread(nv.summarize(f, "a", "mae"), nv.summarize(f, "b", "mae")) is None
    assert "single seed" in nv.compare_sentence(f, "a", "b", "mae")
    # the runner-up from one seed is neither ahead nor "within the seed spread" of the best: there is no spread
    g = _frame({("femf", "mae"): [0.53, 0.50, 0.56], ("dmd", "mae"): [0.58]})
    s = nv.best_sentence(g, ["femf", "dmd"], "mae")
    assert s.startswith("The best MAE is FEMF's")
    assert "ahead of DMD (0.580)" in s
    assert "single seed" in s
    assert "within the seed spread" not in s
    assert "by more than" not in s


def test_a_gap_that_only_hidden_digits_show_is_a_tie_or_within_the_spread():
    """0.7214 and 0.7206 print as 0.721: the sentences say so instead of "higher"; a gap beyond the spread only in
    the fourth decimal is within it."""
    f = _frame({("a", "mae"): [0.7214, 0.7414, 0.7014], ("b", "mae"): [0.7206, 0.7406, 0.7006]})
    s = nv.compare_sentence(f, "a", "b", "mae")
    assert "equals" in s
    assert "higher" not in s
    assert "lower" not in s
    assert "equal to" in nv.best_sentence(f, ["a", "b"], "mae")
    assert "equal at the precision shown" in nv.paper_sentence(f, "b", "a", "mae", "A paper")
    d = 0.0357 / 2 ** 0.5                      # two seeds at mean 0.9908 with std 0.0357: gap 0.0358
    g = _frame({("a", "mae"): [0.955, 0.955], ("b", "mae"): [0.9908 - d, 0.9908 + d]})
    sa, sb = nv.summarize(g, "a", "mae"), nv.summarize(g, "b", "mae")
    assert nv.beyond_spread(sa, sb) is True
    assert nv.beyond_spread(sa, sb, "mae") is False


def test_single_seed_rows_are_never_judged_against_a_spread():
    f = _frame({("femf", "mae"): [0.50, 0.52, 0.51], ("dmd", "mae"): [0.60], ("emoe", "mae"): [0.90, 0.92]})
    s = nv.paper_sentence(f, "femf", "dmd", "mae", "A paper")
    assert "single seed" in s
    assert "spread (" not in s
    assert "within" not in s
    s = nv.beats_all_sentence(f, "femf", ["dmd", "emoe"], "mae")
    assert "DMD: a single seed" in s
    assert "each gap by more than the seed spread" in s


def test_best_sentence_and_ranking():
    assert [lab for lab, _ in nv.ranking(CLEAR, ["baseline (modalities=tav)", "femf"], "mae")] == \
        ["femf", "baseline (modalities=tav)"]
    assert nv.best_sentence(CLEAR, ["femf", "baseline (modalities=tav)"], "mae").startswith("The best MAE is FEMF's")
    assert "within the seed spread" in nv.best_sentence(NOISY, ["atsuko", "emoe"], "mae")


def test_best_sentence_checks_every_row_not_only_the_runner_up():
    """0.840 +- 0.006 leads the runner-up 0.851 +- 0.006 beyond the spread, but a third row at 0.855 +- 0.016 is
    within its own wider spread: the sentence names it instead of calling the lead clear."""
    f = _frame({("b", "mae"): [0.834, 0.840, 0.846], ("t", "mae"): [0.845, 0.851, 0.857],
                ("d", "mae"): [0.839, 0.855, 0.871]})
    s = nv.best_sentence(f, ["b", "t", "d"], "mae", among="the three rows")
    assert s.startswith("The best MAE of the three rows is b's (0.840 ± 0.006), ahead of t (0.851 ± 0.006) by")
    assert s.endswith("; but d (0.855 ± 0.016: the gap 0.015 is within its seed sd 0.016) is not beyond the seed "
                      "spread of it.")
    clear = _frame({("b", "mae"): [0.834, 0.840, 0.846], ("t", "mae"): [0.845, 0.851, 0.857],
                    ("d", "mae"): [0.895, 0.900, 0.905]})
    assert nv.best_sentence(clear, ["b", "t", "d"], "mae").endswith("by more than the seed spread.")


def test_single_seed_gaps_are_read_by_their_bootstrap_and_missing_rows_are_named():
    """A single seed has no spread: the paired bootstrap over test samples says whether the gap is a tie (its
    interval covers 0), in both orders the pair may have been tested; a row with 2 seeds says so; rows left out
    (their runs learned nothing) are named, and a lone survivor ranks nothing."""
    f = _frame({("T+A", "mae"): [1.058], ("T+A+V", "mae"): [1.077], ("T", "mae"): [1.178]})
    tests = [{"a": "T+A+V", "b": "T+A", "metric": "mae", "boot_lo": -0.0104, "boot_hi": 0.0522}]
    assert nv.boot_interval(tests, "T+A", "T+A+V", "mae") == (-0.0522, 0.0104)          # flipped
    assert nv.boot_interval(tests, "T+A", "T+A+V", "corr") is None
    s = nv.best_sentence(f, ["T+A", "T+A+V", "T"], "mae", tests=tests)
    assert s.endswith("both have a single seed: a tie by the bootstrap over test samples (the gap's interval, "
                      "[-0.052, 0.010], covers 0).")
    assert "no spread to judge" in nv.best_sentence(f, ["T+A", "T+A+V"], "mae")           # no test: nothing read
    wide = [{"a": "T+A+V", "b": "T+A", "metric": "mae", "boot_lo": 0.004, "boot_hi": 0.035}]
    assert "beyond the test-sample noise (bootstrap interval [-0.035, -0.004])" in \
        nv.compare_sentence(f, "T+A", "T+A+V", "mae", tests=wide)
    assert "a tie" in nv.compare_sentence(f, "T+A", "T+A+V", "mae", tests=tests)
    lone = nv.best_sentence(f, ["T", "A", "V"], "mae", names={"A": "the A-only FEMF", "V": "the V-only FEMF"})
    assert lone == ("The best MAE is T's (1.178), the only one with a result: the A-only FEMF, the V-only FEMF have "
                    "none here (runs that learned nothing are left out), so this ranks nothing.")
    two = _frame({("t", "mae"): [1.00, 1.03, 1.04], ("a", "mae"): [1.28, 1.29]})
    assert "ahead of a (1.285 ± 0.007, 2 seeds) by more than the seed spread" in \
        nv.best_sentence(two, ["t", "a", "v"], "mae")
    assert "(v: no result here" in nv.best_sentence(two, ["t", "a", "v"], "mae")


def test_paper_sentence_agrees_contradicts_or_cannot_tell():
    s = nv.paper_sentence(CLEAR, "femf", "baseline (modalities=tav)", "mae", "FEMF Table 1")
    assert "point the same way, by more than the seed spread" in s
    assert "claims test" in s
    assert "agree" not in s                      # agreeing is the claims test's verdict, not a gap in means
    s = nv.paper_sentence(CLEAR, "baseline (modalities=tav)", "femf", "mae", "A paper")
    assert "point the other way, by more than the seed spread" in s
    assert "contradict" not in s
    assert "do not confirm it" in nv.paper_sentence(NOISY, "atsuko", "emoe", "mae", "Atsuko Table 1")
    assert "other way" in nv.paper_sentence(NOISY, "emoe", "atsuko", "mae", "Atsuko Table 1")


def test_beats_all_sentence():
    f = _frame({("t", "mae"): [0.50, 0.51], ("x", "mae"): [0.60, 0.61], ("y", "mae"): [0.505, 0.70]})
    s = nv.beats_all_sentence(f, "t", ["t", "x", "y"], "mae", names={"t": "text only"})
    assert s.startswith("Text only has a better MAE")
    assert "over x" in s
    assert nv.beats_all_sentence(f, "x", ["t", "x", "y"], "mae") is None


def test_degradation_sentence_gives_the_losses_and_leaves_the_verdict_to_the_test():
    """The seed means alone (here one seed) never say which degrades faster: the degradation test does."""
    rows = [{"label": lab, "seed": 0, "rate": r, "metric": "f1_non0", "value": v}
            for lab, vals in {"femf": (0.90, 0.70), "baseline": (0.85, 0.80)}.items() for r, v in zip((0.0, 0.4), vals)]
    rows += [{"label": "dmd", "seed": s, "rate": r, "metric": "f1_non0", "value": v}
             for s in (0, 1) for r, v in zip((0.0, 0.4), (0.80, 0.75 - 0.1 * s))]
    s = nv.degradation_sentence(pd.DataFrame(rows), "femf", ["baseline", "dmd"], "f1_non0", 0.4)
    assert s == ("From no missing data to 40% missing, FEMF loses 20.0 points (1 seed) of F1 (neg/pos); beside it: "
                 "the baseline 5.0 points (1 seed); DMD 10.0 points (2 seeds). Which of two drops is larger than "
                 "noise is the degradation test's to say.")
    assert "faster" not in s


def test_claims_sentence_counts_verdicts():
    claims = pd.DataFrame({"agrees with paper": ["yes", "no", "undecided", "undecided"],
                           "resolved": ["yes", "yes", "no", "not enough seeds"]})
    assert nv.claims_sentence(claims) == ("Of 4 claims, our runs resolve 2: 1 agree with the paper and 1 contradict "
                                          "it; 2 stay undecided (1 of them because they have fewer than 3 seeds; 1 "
                                          "without an interval in this table).")
    claims["claim"] = ["Text beats audio (MAE)", "FEMF beats MulT (MAE)", "x", "y"]
    assert nv.claims_sentence(claims).endswith("this table). Agreeing: Text beats audio (MAE). Contradicting: FEMF "
                                               "beats MulT (MAE).")
    assert nv.claims_sentence(claims.set_index("claim")) == nv.claims_sentence(claims)


def test_claims_sentence_names_seeds_schedule_and_sorts_the_undecided_by_their_intervals():
    """An undecided claim whose seed test and bootstrap both exclude 0 is a lead (only the rule stops it), named;
    one where they disagree is named as split; one where both cover 0 is a tie. The seeds and schedule are named."""
    rows = [("A beats B", "0.001", "yes"), ("C beats D", "0.30", "yes"), ("E beats F", "0.40", "no")]
    claims = pd.DataFrame([{"claim": c, "seeds": 5, "schedule": "A: 20 + 60 epochs; B: 20 + 60 epochs",
                            "p (paired t)": p, "CI excludes 0": ex, "resolved": "no", "agrees with paper": "undecided"}
                           for c, p, ex in rows]).set_index("claim")
    s = nv.claims_sentence(claims)
    assert s.startswith("Of 3 claims (5 seeds; 20 + 60 epochs), our runs resolve 0")
    assert "1 with every interval excluding 0 on the same side but not resolved under the rule" in s
    assert "(A beats B): a lead, not a finding" in s
    assert "1 whose intervals disagree, one excluding 0 and the other covering it or excluding it on the other side " \
           "(C beats D)" in s
    assert "1 whose intervals all cover 0: a tie" in s
    assert "E beats F" not in s
    unnamed = claims.reset_index(drop=True)
    assert "(row 1)" in nv.claims_sentence(unnamed)
    assert "(0)" not in nv.claims_sentence(unnamed)


def test_interval_sides_reads_every_table_layout_as_the_verdict_does():
    assert nv.interval_sides({"seed CI": "[-0.093, -0.036]", "bootstrap CI": "[-0.092, 0.001]"}) == (-1, 0)
    assert nv.interval_sides({"seed 95% CI": "[-0.1, 0.2]", "bootstrap 95% CI": "[1.61, 11.63] pp"}) == (0, 1)
    assert nv.interval_sides({"p (paired t)": "0.01", "CI excludes 0": "no", "e": -0.2}, effect="e") == (-1, 0)
    assert nv.interval_sides({"seed CI": "", "bootstrap CI": "[nan, nan]"}) == (None, None)
    assert nv.interval_sides({"seed CI": "[-, -]", "bootstrap CI": "[e, 1]"}) == (None, None)     # never raises
    # a claims table shows no seed interval: a p below 0.05 takes the bootstrap interval's side, not a guess
    assert nv.interval_sides({"p (paired t)": 0.003, "CI excludes 0": "yes",
                              "bootstrap 95% CI": "[-0.0924, -0.0351]"}) == (-1, -1)
    # the p-value and the yes/no column decide, as in the verdict; the rounded text only gives the side
    assert nv.interval_sides({"p (paired t)": 0.049, "seed CI": "[0.0000, 0.0100]",
                              "CI excludes 0": "yes", "bootstrap CI": "[0.0000, 0.0090]"}) == (1, 1)


def test_undecided_parts_sorts_leads_splits_and_ties_and_never_calls_opposite_intervals_a_lead():
    rows = pd.DataFrame([
        {"row": "lead", "e": -0.06, "seeds": 5, "seed CI": "[-0.09, -0.03]", "bootstrap CI": "[-0.09, -0.03]"},
        {"row": "opposite", "e": 0.02, "seeds": 5, "seed CI": "[0.01, 0.03]", "bootstrap CI": "[-0.3, -0.1]"},
        {"row": "half", "e": 0.01, "seeds": 5, "seed CI": "[-0.01, 0.03]", "bootstrap CI": "[0.002, 0.02]"},
        {"row": "tie", "e": 0.0, "seeds": 5, "seed CI": "[-0.01, 0.01]", "bootstrap CI": "[-0.01, 0.01]"},
        {"row": "seed-only tie", "e": 0.0, "seeds": 5, "seed CI": "[-0.01, 0.01]", "bootstrap CI": ""},
        {"row": "bare", "e": 0.0, "seeds": 5, "seed CI": "", "bootstrap CI": ""},
    ])
    lead, split, tie, bare = nv.undecided_parts(rows, 12, name="row", effect="e")
    assert lead.startswith("1 with every interval excluding 0 on the same side but not resolved under the rule "
                           "(Holm's adjustment over the 12 comparisons tested together")
    assert "(lead (-0.060))" in lead
    assert split.startswith("2 whose intervals disagree")
    assert "opposite (+0.020); half (+0.010)" in split
    assert tie == ("2 whose intervals all cover 0: a tie within what the seeds (and, where the row has a bootstrap, "
                   "the test samples) can tell")
    assert bare == "1 without an interval in this table"
    # a "claims in family" column gives the family size
    (only,) = nv.undecided_parts(rows.iloc[:1].assign(**{"claims in family": 30}), 12, name="row", effect="e")
    assert "over the 30 comparisons" in only
    # rows of several notebooks' tables (notebook 06's claims_all): no single family size is claimed
    mixed = rows.iloc[:1].assign(**{"claims in family": 30, "direction as paper": "no"})
    (lead2,) = nv.undecided_parts(pd.concat([mixed, mixed.assign(row="lead2", **{"claims in family": 20})]), 12,
                                  name="row", effect="e")
    assert "Holm's adjustment within each claim's own notebook table" in lead2
    assert "lead (-0.060) (pointing against the paper)" in lead2


def test_seeds_schedule_reads_csv_columns():
    t = pd.DataFrame({"seeds": [5.0, 3.0, float("nan")], "schedule": ["A: 60 epochs; B: 20 epochs", None, "60 epochs"]})
    assert nv.seeds_schedule(t) == "3 or 5 seeds; 20 epochs; 60 epochs"
    assert nv.seeds_schedule(pd.DataFrame({"x": [1]})) == ""


def test_what_we_see_differs_for_builtin_and_real_data():
    a = nv.what_we_see(["One.", None, "Two."], "synthetic")
    b = nv.what_we_see(["One.", "Two."], "mosi-bclstm")
    assert a.startswith("**What we see** (built-in")
    assert "- One.\n- Two." in a
    assert "mosi-bclstm: real data" in b
    assert a != b
    assert nv.is_builtin("synthetic")
    assert not nv.is_builtin("mosi")


# --- notebooks 00-02 and 06 -------------------------------------------------------------------------

def test_cycles_to_nu_matches_the_path_graph_eigenvectors():
    import torch

    from mser_lib.spectral import graph
    T = 64
    _, U = graph.path_graph_eigh(T)
    for k in (8, 20, 40):        # eigenvector k peaks at k / (2 (T - 1)) cycles per step = nu / 2
        spec = torch.fft.rfft(U[:, k], n=8 * T).abs()
        f = float(torch.argmax(spec)) / (8 * T)
        assert nv.cycles_to_nu((f, f))[0] == pytest.approx(k / (T - 1), abs=0.02)
    assert nv.cycles_to_nu((0.30, 0.45)) == pytest.approx((0.6, 0.9))


def test_probe_sentences_threshold():
    s = nv.probe_sentences({"band-limited": 0.68, "frequency-blind": 0.06, "text, raw": 0.89})
    assert "readable only by frequency (gap 0.62, above the 0.2 threshold)" in s[0]
    assert "0.89" in s[1]
    s = nv.probe_sentences({"band-limited": 0.30, "frequency-blind": 0.25})
    assert len(s) == 1
    assert "below the 0.2 threshold" in s[0]


def test_leakage_sentence_names_only_gaps_above_threshold():
    leak = pd.DataFrame({"split": ["bclstm", "bclstm", "standard", "standard"], "modalities": ["t", "a"] * 2,
                         "acc2_has0": [0.751, 0.577, 0.929, 0.517]})
    s = nv.leakage_sentence(leak)
    assert "for T (T 92.9% against 75.1%" in s
    assert " A " not in s
    assert nv.leakage_sentence(leak.assign(acc2_has0=0.7)).startswith("No feature set")


def test_summary_sentence():
    summ = pd.DataFrame({"split": ["train", "test"], "samples": [1200, 500], "label mean": [0.047, 0.1],
                         "label std": [1.507, 1.5], "zero labels (%)": [5.2, 5.6]})
    assert nv.summary_sentence(summ, "synthetic") == (
        "synthetic: 1200 train samples and 500 test samples; training labels have mean +0.05 and std 1.51, "
        "5.2% of them exactly 0 (which the two Acc-2 variants treat differently).")
    videos = summ.assign(**{"labelled positions": [1200, 752]}, samples=[56, 31])
    assert nv.summary_sentence(videos, "x").startswith("x: 56 train samples (1200 labelled positions) and 31 test "
                                                       "samples (752 labelled positions);")


def test_femf_cut_sentence_sides():
    s = nv.femf_cut_sentence(0.6, {"text": (0.0, 0.04), "audio": (0.30, 0.45), "vision": (0.25, 0.35)})
    assert "near 0.30 cycles per step" in s
    assert "text (0.00-0.04) in the low band" in s
    assert "audio (0.30-0.45) in the high band" in s
    assert "vision (0.25-0.35) straddling the cut" in s


def test_high_share_sentence():
    share = pd.DataFrame({"c": [0.6, 0.6, 0.5], "modality": ["text", "audio", "text"], "high_share": [0.3, 0.2, 0.4]})
    assert nv.high_share_sentence(share, 0.6).endswith("text 30%, audio 20%.")
    assert "no row" in nv.high_share_sentence(share, 0.9)


def test_band_roles_dc_nuisance_evidence():
    # built-in audio: cuts at one coefficient and inside the nuisance band, evidence high
    roles = nv.band_roles([1 / 63, 0.062], (0.6, 0.9), (0.0, 0.08), dc_width=1 / 63)
    assert [r["role"] for r in roles] == ["dc", "nuisance", "evidence"]
    assert [r["role"] for r in nv.band_roles([0.3, 0.65], (0.0, 0.08), None, 1 / 63)] == \
        ["evidence", "noise", "noise"]
    s = nv.band_allocation_sentence("audio", [1 / 63, 0.062], (0.6, 0.9), (0.0, 0.08), 1 / 63, who="Atsuko's")
    assert s.startswith("Audio (evidence at ν 0.60-0.90): 2 of Atsuko's 3 equal-energy bands (cut on the training "
                        "split at initialisation) hold none")
    assert "band 1 (ν 0.000-0.016) is the ν = 0 coefficient alone" in s
    assert "lies in the nuisance band" in s
    assert s.endswith("the evidence sits in band 3 (ν 0.062-1.000).")
    s = nv.band_allocation_sentence("vision", [0.3, 0.4], (0.2, 0.9), None, 1 / 63)
    assert "every one of the 3" in s


def test_dc_share_sentence():
    s = nv.dc_share_sentence({"audio": [6.0, 2.0, 2.0], "text": [1.0, 1.0, 1.0]}, 3)
    assert "holds more than 1/K = 0.33 of the energy of audio (audio 0.60)" in s
    assert nv.dc_share_sentence({"text": [1.0, 1.0, 1.0]}, 3).startswith("No modality")


def test_expert_band_sentences():
    corr = pd.Series({("audio", "high"): 0.39, ("audio", "low"): 0.05, ("text", "high"): 0.0,
                      ("text", "low"): 0.71, ("vision", "high"): 0.25, ("vision", "low"): 0.28})
    s = nv.expert_band_sentences(corr, {"audio": "high", "text": "high", "vision": "low"})
    assert s[0].endswith("the high band wins by 0.34, where the evidence was planted.")
    assert s[1].endswith("although the evidence was planted in the high band.")
    assert "neither band wins (the evidence was planted in the low band)" in s[2]
    assert nv.expert_band_sentences(corr)[0].endswith("wins by 0.34.")


def test_stage_gain_sentence():
    assert nv.stage_gain_sentence(1.06, 0.62).endswith("(stage 1): better, from a single seed: no spread to judge "
                                                       "the gap by.")
    assert nv.stage_gain_sentence([0.50, 0.51, 0.49], [0.62, 0.63, 0.61]).endswith("worse, by more than the spread "
                                                                                   "of the per-seed gaps.")
    # means equal at the precision shown, whatever the spread
    s = nv.stage_gain_sentence([0.70, 0.77, 0.84], [0.71, 0.78, 0.82])
    assert s == ("Mean over 3 seeds, the full model (stage 2) reaches valid MAE 0.770 ± 0.056 against 0.770 ± 0.070 "
                 "for the mean of the six experts (stage 1): the same at the precision shown.")
    # paired: better by 0.08 on every seed is clear although each stage's spread (0.1) is wider than the gap
    assert nv.stage_gain_sentence([0.70, 0.80, 0.90], [0.62, 0.72, 0.82]).endswith(
        "better, by more than the spread of the per-seed gaps.")
    s = nv.stage_gain_sentence([0.70, 0.75, 0.82], [0.74, 0.70, 0.85])
    assert s.endswith("worse in the mean, but by less than the spread of the per-seed gaps: these seeds do not tell "
                      "the stages apart.")
    # a seed without both values is left out and said, never turned into "nan"
    s = nv.stage_gain_sentence([0.70, float("nan"), 0.90], [0.62, 0.72, 0.82])
    assert "nan" not in s
    assert "(1 without both stages left out)" in s


def test_attention_locality_uniform_and_diagonal():
    n = 10
    uni = np.full((n, n), 1 / n)
    mass, ref = nv.attention_locality(uni, 1)
    assert mass == pytest.approx(ref)
    assert ref == pytest.approx(28 / 100)
    mass, _ = nv.attention_locality(np.eye(n), 1)
    assert mass == pytest.approx(1.0)
    maps = {"attn_low_text": uni, "attn_high_text": uni, "attn_low_audio": uni, "attn_high_audio": np.eye(n)}
    t = nv.locality_table(maps)
    assert set(t["width"]) == {1}
    assert t["ratio"].iloc[0] == pytest.approx(1.0)
    s = nv.attention_sentences(t)
    assert s[0].startswith("In these maps, 1 of 4 maps put at least 1.5x")
    assert "audio high" in s[0]
    assert "only for audio" in s[1]
    s = nv.attention_sentences(nv.locality_table({k: uni for k in maps}), source="one sample of seed 0's model")
    assert s[0].startswith("In one sample of seed 0's model, FEMF's expert attention is about as local as uniform")
    assert s[1].startswith("No modality's high-band map")
    assert "contradict" not in s[1]


def test_band_weights_sentence():
    w = pd.DataFrame([[0.34, 0.33, 0.33], [0.30, 0.36, 0.34]], index=["text", "audio"],
                     columns=["band 1", "band 2", "band 3"])
    s = nv.band_weights_sentence(w)
    assert s.startswith("Atsuko's mean band weights are nearly uniform: every one is within 0.05 of 1/B = 0.333")
    assert "largest gap 0.033, audio band 1" in s
    s = nv.band_weights_sentence(w.assign(**{"band 1": [0.6, 0.3]}))
    assert "move away from uniform (1/B = 0.333) by more than 0.05 for text: text favours band 1 (0.600)" in s
    assert s.endswith("; audio stays within 0.05 of uniform.")


def test_separability_sentence():
    r2 = {"-, -": 0.50, "SBN": 0.52, "MCM": 0.49, "SBN + MCM (Atsuko)": 0.53}
    s = nv.separability_sentence(r2, "-, -", "SBN + MCM (Atsuko)")
    assert s.startswith("Ridge R² of the label on the fused features (5-fold, test split): -, - 0.50, SBN 0.52")
    assert "changes it by +0.03 (margin 0.05): the fused features are not more separable" in s
    s = nv.separability_sentence({**r2, "SBN + MCM (Atsuko)": 0.70}, "-, -", "SBN + MCM (Atsuko)")
    assert "more linearly readable than without (+0.20, margin 0.05), in the direction of Atsuko's Fig. 4" in s
    # R² 0.5012 against 0.5004 print as 0.50 and 0.50: the gap is the printed one, "+0.00", never "-0.00"
    s = nv.separability_sentence({"-, -": 0.5012, "SBN + MCM (Atsuko)": 0.5004}, "-, -", "SBN + MCM (Atsuko)")
    assert "changes it by +0.00 (margin" in s


def test_mcm_weight_sentence():
    without = pd.Series({"text": 0.40, "audio": 0.30, "vision": 0.30})
    assert "MCM moves weight away from text (-0.100" in nv.mcm_weight_sentence(without - [0.1, -0.05, -0.05], without)
    assert "the opposite of Atsuko's Fig. 5" in nv.mcm_weight_sentence(without + [0.1, -0.05, -0.05], without)
    assert "MCM hardly moves it (+0.010" in nv.mcm_weight_sentence(without + [0.01, 0, -0.01], without)
    s = nv.mcm_weight_sentence(without + [0.1, -0.05, -0.05], without, source="10 test samples, seed 0's models")
    assert s.startswith("With MCM, text's mean modality weight (10 test samples, seed 0's models) is ")


def test_missing_weights_sentence_measures_the_moves_against_masking_alone():
    """Weights that only follow the mask (the joint head never masked) re-weight nothing; a joint head 0.1 above
    what masking gives is named, with its size."""
    from mser_lib.report.ablations import masking_alone

    w0 = np.array([0.40, 0.30, 0.30])
    masked = masking_alone(w0, 0.4, never_masked=(2,))
    t = pd.DataFrame([w0, masked], columns=["text", "audio", "joint"], index=[0.0, 0.4])
    s = nv.missing_weights_sentence(t, "FEMF", never_masked=(2,))
    assert s.startswith("FEMF's mean weights from 0% to 40% missing: text 0.400 -> ")
    assert f"joint 0.300 -> {masked[2]:.3f} (masking alone: {masked[2]:.3f})" in s
    assert "the mask's, not" in s
    moved = t.copy()
    moved.loc[0.4] = masked + np.array([-0.05, -0.05, 0.10])
    assert nv.missing_weights_sentence(moved, "FEMF", never_masked=(2,)).endswith(
        "beyond masking alone, by more than 0.05, at 1 of the 1 missing rates (40%): joint gains up to 0.100 (at 40%).")
    # every rate is checked, not only the last: weights back on the mask's line at 40% but off it at 20%
    mid = masking_alone(w0, 0.2, never_masked=(2,))
    three = pd.DataFrame([w0, mid + np.array([0.08, -0.04, -0.04]), masked], columns=["text", "audio", "joint"],
                         index=[0.0, 0.2, 0.4])
    s3 = nv.missing_weights_sentence(three, "FEMF", never_masked=(2,))
    assert "at no rate" not in s3
    assert s3.endswith("at 1 of the 2 missing rates (20%): text gains up to 0.080 (at 20%).")
    # read as if the joint head were masked, the same weights look re-weighted
    assert "the mask's, not" not in nv.missing_weights_sentence(t, "FEMF")


def test_energy_sentence():
    e = pd.DataFrame({"model": ["femf"] * 4, "modality": ["text", "text", "audio", "audio"],
                      "band": ["low", "high", "low", "high"], "share": [0.6, 0.4, 0.2, 0.8]})
    s = nv.energy_sentence(e)
    assert s.startswith("The band with the largest share of each modality's energy: femf text: low (60%); "
                        "femf audio: high (80%).")
    assert "notebook 01" in s
    # real data has no planted evidence bands to compare with
    assert nv.energy_sentence(e, planted=False).endswith("Energy is not evidence: compare with the band weights above.")


def test_ledger_sentence_names_only_resolved_rows_and_counts_the_rest():
    from mser_lib.report.narrative import ledger_sentence

    led = pd.DataFrame([
        {"deviation": "A", "seeds": 5, "MAE: flipped - default": 0.05, "resolved": "yes"},
        {"deviation": "B", "seeds": 5, "MAE: flipped - default": -0.03, "resolved": "yes"},
        {"deviation": "C", "seeds": 5, "MAE: flipped - default": 0.2, "resolved": "no"},
    ])
    s = ledger_sentence(led)
    assert "resolve 2 on MAE" in s
    assert "cost accuracy: A" in s
    assert "improve on the default: B" in s
    assert "C" not in s.replace("MAE", "")                   # unresolved rows are not named
    assert "5 seeds" in s
    one = pd.DataFrame([{"deviation": "A", "seeds": 1, "MAE: flipped - default": 0.5, "resolved": "not enough seeds"}])
    s1 = ledger_sentence(one)
    assert "resolve 0" in s1
    assert "fewer than 3 seeds" in s1
    assert "cost accuracy" not in s1
    # an undecided row is a tie only when its intervals cover 0; one whose interval excludes 0 before Holm is named
    # as a lead, with its gap; rows without a bootstrap are counted
    led2 = pd.DataFrame([
        {"deviation": "D", "seeds": 5, "MAE: flipped - default": 0.059, "resolved": "no",
         "seed 95% CI": "[0.0270, 0.0910]", "bootstrap 95% CI": "[0.0290, 0.0900]"},
        {"deviation": "E", "seeds": 5, "MAE: flipped - default": 0.012, "resolved": "no",
         "seed 95% CI": "[-0.0254, 0.0495]", "bootstrap 95% CI": ""},
        {"deviation": "F", "seeds": 5, "MAE: flipped - default": -0.01, "resolved": "no",
         "seed 95% CI": "[-0.0400, 0.0200]", "bootstrap 95% CI": "[-0.0300, -0.0010]"},
    ]).assign(**{"claims in family": 21})        # the ledger's Holm family, as deviation_ledger writes it
    s2 = ledger_sentence(led2)
    assert "resolve 0 on MAE" in s2
    assert "Holm's adjustment over the 21 comparisons tested together" in s2
    assert "1 with every interval excluding 0 on the same side but not resolved under the rule (Holm's adjustment" in s2
    assert "(D (+0.059)): a lead, not a finding" in s2
    assert "1 whose intervals disagree" in s2
    assert "(F (-0.010))" in s2
    short = ledger_sentence(led2, brief=True)                  # the README's form: splits counted, not named
    assert "F (" not in short
    assert "1 whose intervals disagree, one excluding 0 and the other covering it or excluding it on the other " \
           "side: the seeds" in short
    assert "(D (+0.059)): a lead" in short
    assert "1 whose intervals all cover 0" in s2
    assert "E" not in s2.replace("MAE", "")
    assert "1 of the 3 rows are paired over seeds only" in s2
    same = led.assign(**{"identical to the default": [False, False, True]})
    assert "changed no test score of this profile's default runs at all" in ledger_sentence(same)
    assert ledger_sentence(same).endswith(": C.")
    # a switch that changed nothing has intervals [0, 0]: it is named at the end, not counted as a tie
    nothing = pd.DataFrame([
        {"deviation": "E", "seeds": 5, "MAE: flipped - default": 0.012, "resolved": "no",
         "seed 95% CI": "[-0.03, 0.05]", "bootstrap 95% CI": "[-0.02, 0.04]", "identical to the default": False},
        {"deviation": "Z", "seeds": 5, "MAE: flipped - default": 0.0, "resolved": "no", "seed 95% CI": "[0.0, 0.0]",
         "bootstrap 95% CI": "[0.0, 0.0]", "identical to the default": True},
    ]).assign(**{"claims in family": 1})
    s3 = ledger_sentence(nothing)
    assert "The other 1 stay undecided: 1 whose intervals all cover 0" in s3
    assert s3.endswith("This switch changed no test score of this profile's default runs at all, so there is no gap "
                       "to test (its models already behave that way, or the switch never acts in them): Z.")


def test_deviation_ledger_pairs_each_switch_with_its_models_default():
    from mser_lib import grids
    from mser_lib.report.ablations import deviation_ledger, grid_frame

    specs = grids.deviations("claims", [0, 1, 2], "position")
    rng = np.random.default_rng(0)
    records = []
    for sp in specs:
        worse = 0.1 if sp["tag"] == "FEMF: gradient clipping at 1.0" else 0.0
        mae = 0.9 + worse + 0.001 * sp["seed"] + rng.normal(0, 1e-4)
        same = sp["tag"] == "EMOE: gradient clipping at 1.0"     # as if the profile's default already clipped
        h = f"{len(records):016x}" if not same else f"e{sp['seed']:015x}"
        if sp["tag"] == "EMOE (default)":
            h = f"e{sp['seed']:015x}"
        records.append({"model": sp["model"], "seed": sp["seed"], "config_hash": h,
                        "test": {"mae": mae, "acc2_has0": 0.8 - worse, "corr": 0.6}})
    frame = grid_frame(specs, records)
    led = deviation_ledger(frame, specs, records).set_index("deviation")
    assert "Atsuko: summary at the last padded step (EMOE's)" not in led.index     # sequence only
    row = led.loc["FEMF: gradient clipping at 1.0"]
    assert row["seeds"] == 3
    assert abs(row["MAE: flipped - default"] - 0.1) < 1e-3
    assert row["Acc-2 (neg/non-neg), points"] == -10.0
    assert row["switch"] == "train clip_grad=1.0"
    assert row["resolved"] == "no"                      # no bootstrap over test videos without predictions
    # the Holm family: every row with at least 3 seeds and a finite p-value, the same number on every row
    tested = int(sum(n >= 3 and np.isfinite(float(p)) for n, p in zip(led["seeds"], led["p (paired t)"])))
    assert set(led["claims in family"]) == {tested}
    assert tested >= len(led) - 1
    assert led.loc["FEMF: every reference behaviour (preset 'reference')", "switch"].startswith("preset 'reference'")
    assert "EMOE: gradient clipping at 1.0" not in led.index       # the same run as EMOE's default: nothing to measure


def test_synthesis_names_resolved_claims_per_group_and_protocol_shifts_in_seed_spreads():
    from mser_lib.report.narrative import protocol_sentences, synthesis_sentences

    claims = pd.DataFrame([
        {"claim": "Removing MIM hurts FEMF (MAE)", "seeds": "5", "schedule": "60 epochs", "resolved": "no",
         "agrees with paper": "undecided"},
        {"claim": "T beats A (FEMF, MAE)", "seeds": "5", "schedule": "A: 60 epochs; B: 60 epochs", "resolved": "yes",
         "agrees with paper": "yes"},
        {"claim": "Atsuko: SBN beats -, -", "seeds": "5", "schedule": "60 epochs", "resolved": "yes",
         "agrees with paper": "no"},
    ])
    s = synthesis_sentences(claims)
    assert len(s) == 3
    assert s[0].startswith("FEMF Tables 2-3")
    assert "none is resolved: 1 without an interval in this table" in s[0]
    assert "cannot tell" not in " ".join(s)
    assert "1 resolved as the paper says (T beats A (FEMF, MAE))" in s[1]
    assert "(5 seeds; 60 epochs)" in s[1]
    assert "1 resolved against it (Atsuko: SBN beats -, -)" in s[2]
    prot = pd.DataFrame([
        {"model": "femf", "protocol": "clean: cross-fitted on test folds (ours)", "Acc-2 (neg/non-neg)": "76.0 ± 2.0"},
        {"model": "femf", "protocol": "leaky validation (videos the features were trained on)",
         "Acc-2 (neg/non-neg)": "77.0 ± 1.0"},
        {"model": "femf", "protocol": "optimistic: the test epoch and seed with the best test Acc-2",
         "Acc-2 (neg/non-neg)": "80.0"},
    ])
    (p,) = protocol_sentences(prot)
    assert "leaky validation +1.0 points (+0.5 seed sd)" in p
    assert "the test epoch and seed with the best test Acc-2 +4.0 points (+2.0 seed sd)" in p
    assert p.startswith("FEMF: ")
    two = pd.concat([prot, prot.assign(model="emoe", **{"Acc-2 (neg/non-neg)": ["76.0 ± 1.0", "73.0 ± 1.0", "77.0"]})])
    leaky, best = nv.protocol_summary(two)
    assert leaky == ("Leaky validation moves the 2 models' Acc-2 (neg/non-neg) by -3.0 to +0.5 seed sd of the clean "
                     "protocol (median -1.2): 0 up and 1 down by more than one seed sd.")
    assert best.startswith("The test epoch and seed with the best test Acc-2 moves the 2 models'")
    assert "1 up and 0 down" in best
    # a model whose clean row has 2 seeds: its move in seed sds rests on a rough unit, and the sentence says whose
    seeded = two.assign(seeds=["0,1,2", "0,1,2", "best of 0,1,2", "2,3", "2,3", "best of 2,3"])
    leaky, _ = nv.protocol_summary(seeded)
    assert leaky.endswith("EMOE (-3.0: 2 seeds) has fewer than 3 seeds here, so its seed sd is a rough unit.")


def test_figure_captions_count_what_is_drawn():
    res = [{"seeds": [0, 1, 2], "boot_excludes": True}, {"seeds": [0], "boot_excludes": False}]
    s = nv.forest_caption(res, "Table 1 claims")
    assert s.startswith("Table 1 claims: 2 paired comparisons (1-3 seeds each)")
    assert "1 of 2 thin bars exclude 0" in s
    f = pd.DataFrame({"row": ["a", "a", "a", "b"], "seed": [0, 1, 2, 0]})
    assert nv.points_caption(f, "Runs").startswith("Runs: 2 rows, 1-3 seeds each;")
    assert nv.seed_counts([1, 1]) == "1 seed"
    assert nv.seed_counts([3]) == "3 seeds"


def test_late_collapse_counts_runs_that_beat_the_trivial_predictor_and_end_worse_than_it():
    """A FEMF run at the paper's configuration beat the mean predictor on VALID at epoch 4 and ended worse than it
    (claims profile, mosi-bclstm): counted; a run that never beat it (degenerate, another flag) and one that ends
    better are not."""
    from mser_lib.report.analysis import late_collapse

    def rec(tag, maes, seed=0):
        return {"model": "femf", "tag": tag, "seed": seed,
                "history": [{"epoch": e, "valid_mae": v} for e, v in enumerate(maes)]}

    records = [rec("a", [1.2, 0.7, 0.9, 1.5]), rec("a", [1.1, 0.8, 1.45], seed=1), rec("a", [1.3, 0.7, 0.9], seed=2),
               rec("b", [1.5, 1.45, 1.6]), rec("c", [0.9, 0.8])]
    frame = late_collapse(records, {"mae": 1.4}, "regression", label=lambda r: r["tag"]).set_index("row")
    assert frame.loc["a", "runs"] == 3
    assert frame.loc["a", "collapsed"] == 2
    assert frame.loc["a", "best epoch"] == 1
    assert frame.loc["a", "best"] == pytest.approx(0.75)
    assert frame.loc["a", "last"] == pytest.approx(1.475)
    assert frame.loc["b", "collapsed"] == 0          # never beat the trivial predictor: not a late collapse
    assert frame.loc["c", "collapsed"] == 0
    s = nv.collapse_sentence(frame.reset_index())
    assert s.startswith("2 of the 5 runs beat the trivial predictor's validation MAE (1.400)")
    assert "a 2 of 3 (best 0.750 at epoch 1, last 1.475)" in s
    assert "b " not in s.split("(medians):")[1]
    many = late_collapse(records[:3] + [rec("d", [1.0, 1.5])], {"mae": 1.4}, "regression", label=lambda r: r["tag"])
    assert nv.collapse_sentence(many.iloc[::-1]).startswith(
        "3 of the 4 runs beat the trivial predictor's validation MAE (1.400) and then ended their final stage worse "
        "than it, in every one of the 2 rows (table above). On the validation split")
    most = late_collapse(records[:3] + [rec("d", [1.0, 1.5]), rec("c", [0.9, 0.8])], {"mae": 1.4}, "regression",
                         label=lambda r: r["tag"])
    assert ", in 2 of the 3 rows (table above); none of the runs of c did." in nv.collapse_sentence(most)
    calm = late_collapse([rec("c", [0.9, 0.8])], {"mae": 1.4}, "regression", label=lambda r: r["tag"])
    assert nv.collapse_sentence(calm) == ("No run of the 1 ends its final stage with a validation MAE worse than the "
                                          "trivial predictor's (1.400).")
    acc = late_collapse([{"model": "x", "tag": "k", "seed": 0,
                          "history": [{"epoch": 0, "valid_acc": 0.6}, {"epoch": 1, "valid_acc": 0.3}]}],
                        {"acc": 0.4}, "classification", label=lambda r: r["tag"])
    assert acc["collapsed"].tolist() == [1]        # classification: accuracy, higher is better


def test_dropout_shift_scores_both_modes_and_the_sentence_names_a_shift_by_its_rule():
    """analysis.dropout_shift on a stub whose prediction is 0 in eval mode and 1 in train mode: the MAEs are those
    of the two constants, the model ends in eval mode; the sentence calls a variance shift only past SHIFT_RATIO."""
    from types import SimpleNamespace

    from mser_lib.data import make_synthetic
    from mser_lib.report.analysis import dropout_shift

    ds = make_synthetic("smoke", seed=0)

    class Stub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, batch):
            return SimpleNamespace(prediction=torch.zeros_like(batch.labels) + (1.0 if self.training else 0.0))

    stub = Stub()
    frame = dropout_shift(stub, ds.valid, ds.info, passes=2)
    y = ds.valid.labels[ds.valid.label_mask.astype(bool)]
    assert frame["MAE"].tolist() == pytest.approx([np.abs(y).mean(), np.abs(1 - y).mean()], rel=1e-5)
    assert frame["prediction sd"].tolist() == [0.0, 0.0]
    assert frame["mode"].tolist() == ["dropout off (eval)", "dropout on (mean of 2)"]
    assert not stub.training
    shifted = pd.DataFrame([{"mode": "dropout off (eval)", "MAE": 1.44, "prediction sd": 2.66, "label sd": 1.5},
                            {"mode": "dropout on (mean of 3)", "MAE": 0.64, "prediction sd": 1.29, "label sd": 1.5}])
    s = nv.dropout_sentence(shifted, "FEMF, seed 0, last epoch")
    assert "MAE 1.440 and predictions spread with sd 2.66; with dropout on (mean of 3), MAE 0.640" in s
    assert "spread 2.1 times as wide" in s
    assert "consistent with a variance shift" in s          # a reading of one model, never a diagnosis
    calm = shifted.assign(**{"prediction sd": [1.3, 1.2]})
    assert "no variance shift by this rule" in nv.dropout_sentence(calm, "x")


def test_claim_verdict_states_each_kind_of_verdict_with_holm_seeds_and_schedule():
    """The row of notebook 03's claims table behind 'Atsuko beats EMOE (MAE)': seed test p 0.064 (covers 0),
    bootstrap [-0.061, -0.007] (excludes 0), Holm p 0.635 over 20: a split, stated with its numbers."""
    base = {"seeds": 5, "schedule": "60 epochs, patience 15", "claims in family": 20}
    claims = pd.DataFrame([
        {**base, "claim": "split", "p (paired t)": 0.06354, "bootstrap 95% CI": "[-0.0613, -0.0065]",
         "CI excludes 0": "yes", "p adjusted (Holm)": 0.6354, "direction as paper": "yes", "resolved": "no",
         "agrees with paper": "undecided"},
        {**base, "claim": "won", "p (paired t)": 0.001, "CI excludes 0": "yes", "p adjusted (Holm)": 0.02,
         "direction as paper": "no", "resolved": "yes", "agrees with paper": "no"},
        {**base, "claim": "tie", "p (paired t)": 0.5, "CI excludes 0": "no", "p adjusted (Holm)": 1.0,
         "direction as paper": "no", "resolved": "no", "agrees with paper": "undecided"},
        {**base, "claim": "few", "seeds": 2, "resolved": nv.NOT_ENOUGH_SEEDS, "agrees with paper": "undecided"},
    ])
    assert nv.claim_verdict(claims, "split") == (
        "undecided: a split, the seed interval and the bootstrap over test samples disagree (Holm-adjusted p 0.635 "
        "over 20 claims; 5 seeds; 60 epochs, patience 15)")
    assert nv.claim_verdict(claims, "won").startswith("resolved against the paper (Holm-adjusted p 0.02 over 20")
    assert nv.claim_verdict(claims, "tie").startswith("undecided: a tie, every interval covers 0, pointing against")
    assert nv.claim_verdict(claims, "few") == "undecided: fewer than 3 seeds (2 seeds; 60 epochs, patience 15)"
    assert nv.claim_verdict(claims.set_index("claim"), "split") == nv.claim_verdict(claims, "split")
    assert nv.claim_verdict(claims, "nobody") is None
    # the paper sentence then says the verdict instead of deferring to the test
    s = nv.paper_sentence(NOISY, "atsuko", "emoe", "mae", "Atsuko Table 1", verdict=nv.claim_verdict(claims, "split"))
    assert "whether that is resolved" not in s
    assert "the claims test says: undecided: a split" in s


def test_what_we_see_names_the_seeds_and_schedules_of_its_records():
    recs = [{"model": m, "seed": s, "config": {"train": {"epochs": 60, "patience": 15}}} for m in ("atsuko", "emoe")
            for s in range(5)]
    recs += [{"model": "femf", "seed": s, "stages": [{"stage": "experts"}, {"stage": "full"}],
              "config": {"train": {"stage_epochs": {"experts": 20, "full": 60}, "patience": 15}}} for s in range(3)]
    recs.append({"model": "femf", "seed": 9, "degenerate": True, "config": {"train": {"epochs": 1}}})
    behind = nv.records_behind(recs)
    assert behind == "3 or 5 seeds; 60 epochs, patience 15; experts 20 + full 60 epochs, patience 15"
    head = nv.what_we_see(["One."], "mosi-bclstm", behind=behind).splitlines()[0]
    assert head == f"**What we see** (mosi-bclstm: real data; {behind})"
    assert nv.what_we_see(["One."], "mosi-bclstm").splitlines()[0] == "**What we see** (mosi-bclstm: real data)"


def test_every_claim_of_the_notebooks_belongs_to_exactly_one_group():
    """The synthesis reads the claims group by group: a claim in two groups would be counted twice. The names are
    those notebooks 03-05 write."""
    names = ["Table 1: FEMF beats MulT (MAE)", "Removing MIM hurts FEMF (MAE)", "T+A+V beats T (FEMF, MAE)",
             "Atsuko: SBN beats -, - (Acc-2 (neg/pos))", "FEMF alpha=0.3 beats alpha=0.1 (MAE)",
             "FEMF paper order beats T:V>A (MAE)", "Atsuko entropy_weight=1.0 beats entropy_weight=0.1 (Acc-7)",
             "FEMF degrades slower than the baseline at 40% missing (F1)",
             "FEMF degrades slower than MulT at 40% missing (Corr)"]
    for n in names:
        assert sum(member(n) for _, member in nv.CLAIM_GROUPS) == 1, n
