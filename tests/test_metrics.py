"""The metric definitions of docs/metrics.md on hand-made cases."""

import math

import numpy as np
import pytest

from mser_lib.metrics import (
    classification_metrics,
    compute_metrics,
    is_better,
    mosi_metrics,
    pearson,
    sims_metrics,
)


def test_round_half_to_even_in_acc7():
    # numpy rounds .5 to the even neighbour: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0
    y = np.array([0.5, 1.5, 2.5, -0.5])
    assert mosi_metrics(y, np.array([0.4, 1.6, 2.4, -0.4]))["acc7"] == 1.0
    # 0.5 rounds to 0, 0.6 to 1: a miss even though they are 0.1 apart
    assert mosi_metrics(np.array([0.5, 1.0]), np.array([0.6, 1.0]))["acc7"] == 0.5


def test_acc5_and_acc3_clip_before_rounding():
    y = np.array([3.0, -3.0, 2.0])
    p = np.array([2.2, -2.6, 1.0])
    m = mosi_metrics(y, p)
    assert m["acc5"] == pytest.approx(2 / 3)   # 2 vs 2, -2 vs -2 (clipped to [-2, 2]), 2 vs 1
    assert m["acc3"] == 1.0                    # everything clips to +-1
    assert m["acc7"] == pytest.approx(1 / 3)   # 3 vs 2, -3 vs -3, 2 vs 1


def test_zero_labels_in_both_acc2_variants():
    y = np.array([0.0, 1.0, -1.0, 0.0])
    p = np.array([0.5, 1.0, -1.0, -0.5])
    m = mosi_metrics(y, p)
    assert m["acc2_has0"] == 0.75          # (y >= 0) vs (p >= 0) over all four
    assert m["acc2_non0"] == 1.0           # zeros dropped, then (y > 0) vs (p > 0)
    # weighted F1 of [T,T,F,T] vs [T,T,F,F]: (0.8 * 3 + (2/3) * 1) / 4
    assert m["f1_has0"] == pytest.approx((0.8 * 3 + 2 / 3) / 4)


def test_all_zero_labels_give_nan_not_crash():
    m = mosi_metrics(np.zeros(4), np.array([0.1, -0.2, 0.3, 0.0]))
    assert math.isnan(m["acc2_non0"])
    assert math.isnan(m["f1_non0"])


def test_mae_and_corr_on_unclipped_values_for_mosi():
    m = mosi_metrics(np.array([3.0, -3.0]), np.array([5.0, -5.0]))
    assert m["mae"] == 2.0
    assert m["corr"] == pytest.approx(1.0)


def test_constant_predictor_corr_is_nan_and_honest():
    y = np.array([-2.0, -1.0, 1.0, 2.0])
    m = mosi_metrics(y, np.zeros(4))
    assert math.isnan(m["corr"])
    assert m["mae"] == 1.5
    assert m["acc2_has0"] == 0.5
    assert math.isnan(pearson(np.ones(3), np.arange(3.0)))
    # nan never wins model selection
    assert not is_better("corr", float("nan"), 0.1)
    assert is_better("corr", 0.1, float("nan"))
    assert is_better("mae", 0.5, 0.6)
    assert not is_better("mae", 0.7, 0.6)


def test_sims_bin_edges_are_left_open_right_closed():
    # 0 lies in (-1.01, 0] (negative bin); 0.05 in (0, 1.01]
    m = sims_metrics(np.array([0.0]), np.array([0.05]))
    assert m["acc2"] == 0.0
    # 0.1 lies in (-0.1, 0.1] (neutral); 0.1000001 in (0.1, 1.01]
    assert sims_metrics(np.array([0.1]), np.array([0.1000001]))["acc3"] == 0.0
    assert sims_metrics(np.array([0.1]), np.array([-0.0999]))["acc3"] == 1.0
    # acc5 edges at -0.7 and 0.7
    assert sims_metrics(np.array([0.7]), np.array([0.70001]))["acc5"] == 0.0
    assert sims_metrics(np.array([-0.7]), np.array([-0.9]))["acc5"] == 1.0


def test_sims_clips_before_mae():
    m = sims_metrics(np.array([1.0, -1.0]), np.array([1.5, -3.0]))
    assert m["mae"] == 0.0
    assert m["acc5"] == 1.0


def test_classification_metrics_hand_case():
    y = np.array([0, 0, 1, 2])
    p = np.array([0, 1, 1, 2])
    m = classification_metrics(y, p)
    assert m["acc"] == 0.75
    # per-class F1: c0 = 2/3, c1 = 2/3, c2 = 1
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["f1_weighted"] == pytest.approx((2 / 3 * 2 + 2 / 3 + 1) / 4)
    logits = np.eye(3)[p] * 5.0
    assert classification_metrics(y, logits) == m


def test_dispatch_and_input_checks():
    assert set(compute_metrics([1.0, -1.0], [0.5, -0.5], "sims")) >= {"acc2", "acc3", "acc5", "f1"}
    with pytest.raises(ValueError, match="unknown metric family"):
        compute_metrics([1.0], [1.0], "nope")
    with pytest.raises(ValueError, match="finite"):
        mosi_metrics([1.0, 2.0], [np.nan, 1.0])
    with pytest.raises(ValueError, match="differ in size"):
        mosi_metrics([1.0, 2.0], [1.0])
