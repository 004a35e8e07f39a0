"""Which differences between two variants our runs can resolve: paired tests over seeds, bootstrap intervals.

Two sources of noise separate a measured difference from the truth, and we report both:

* **training noise** (initial weights, batch order): the same variant trained with ``n`` seeds. Two
  variants trained with the *same* seeds are paired by seed, and :func:`paired_seed_test` gives the
  mean of the per-seed differences ``d_s = m_A(s) - m_B(s)``, a t interval
  ``mean(d) +- t_{n-1, 0.975} sd(d) / sqrt(n)``, the paired t-test p-value and the exact sign-flip
  (permutation) p-value over the ``2^n`` sign patterns. With 2 or 3 seeds these are weak: the
  smallest attainable sign-flip p-value is ``2 / 2^n`` (0.5 for 2 seeds, 0.25 for 3).
* **test-set noise** (which utterances happen to be in the test split): :func:`bootstrap_ci`
  resamples test samples with replacement (the same indices for both variants: paired) and gives a
  percentile interval of any statistic, e.g. the difference of the seed-averaged metrics.

:func:`compare` combines them: a difference counts as *resolved* when the bootstrap interval over
test samples excludes 0 **and** every seed agrees on the sign (with >= 3 seeds, also paired-t p < 0.05).
This is a deliberately strict rule; "not resolved" means our runs cannot tell, not that there is no
effect.

The metric functions here (:data:`FAST_METRICS`) are numpy re-implementations of the SPEC 2 / MMSA
definitions in :mod:`mser_lib.metrics` (checked against them in ``tests/test_grids_stats.py``), fast
enough to be evaluated a thousand times per comparison.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

from ..metrics import LOWER_IS_BETTER


# ---------------------------------------------------------------------------------- fast metrics
def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.abs(p - y).mean())


def _corr(y: np.ndarray, p: np.ndarray) -> float:
    yc, pc = y - y.mean(), p - p.mean()
    den = math.sqrt(float((yc * yc).sum()) * float((pc * pc).sum()))
    return float((yc * pc).sum() / den) if den > 0 else math.nan


def _weighted_f1(t: np.ndarray, q: np.ndarray) -> float:
    """scikit-learn's ``f1_score(average="weighted")`` for two boolean label vectors."""
    n = len(t)
    if n == 0:
        return math.nan
    out = 0.0
    for cls in (True, False):
        tc, qc = t == cls, q == cls
        support = int(tc.sum())
        if support == 0:
            continue
        tp = int((tc & qc).sum())
        prec_den, rec_den = int(qc.sum()), support
        prec = tp / prec_den if prec_den else 0.0
        rec = tp / rec_den
        f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        out += f1 * support / n
    return float(out)


def _acc2_has0(y, p):
    return float(((y >= 0) == (p >= 0)).mean())


def _f1_has0(y, p):
    return _weighted_f1(y >= 0, p >= 0)


def _acc2_non0(y, p):
    keep = y != 0
    return float(((y[keep] > 0) == (p[keep] > 0)).mean()) if keep.any() else math.nan


def _f1_non0(y, p):
    keep = y != 0
    return _weighted_f1(y[keep] > 0, p[keep] > 0)


def _acc_k(lim: float):
    def f(y, p):
        return float((np.round(np.clip(y, -lim, lim)) == np.round(np.clip(p, -lim, lim))).mean())
    return f


FAST_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mae": _mae, "corr": _corr, "acc2_has0": _acc2_has0, "f1_has0": _f1_has0, "acc2_non0": _acc2_non0,
    "f1_non0": _f1_non0, "acc7": _acc_k(3.0), "acc5": _acc_k(2.0), "acc3": _acc_k(1.0),
}


def metric_fn(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The fast version of a ``"mosi"``-family metric (y, p 1-D arrays over labelled positions)."""
    if name not in FAST_METRICS:
        raise KeyError(f"no fast version of metric {name!r}; known: {sorted(FAST_METRICS)}")
    return FAST_METRICS[name]


def better_sign(metric: str) -> int:
    """+1 if higher is better for ``metric``, -1 if lower is (MAE, loss)."""
    return -1 if metric in LOWER_IS_BETTER else 1


# ------------------------------------------------------------------------------ paired over seeds
def paired_seed_test(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """Paired comparison of two variants trained with the same seeds (``a[i]``, ``b[i]``: seed i).

    Returns a dict: ``n``, ``mean_diff`` (mean of a - b), ``sd_diff`` (ddof=1), ``ci_lo``/``ci_hi``
    (t interval at ``level``), ``t``, ``p_t`` (two-sided paired t-test), ``p_sign_flip`` (exact
    two-sided permutation test over sign flips of the differences), ``same_sign`` (every
    difference strictly has the sign of the mean). Undefined entries are ``nan`` (n < 2, or zero
    variance for the t statistics).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D arrays of equal length (one value per seed), got {a.shape}, "
                         f"{b.shape}")
    ok = ~(np.isnan(a) | np.isnan(b))
    d = (a - b)[ok]
    n = int(len(d))
    out = {"n": n, "mean_diff": float(d.mean()) if n else math.nan, "sd_diff": math.nan, "ci_lo": math.nan,
           "ci_hi": math.nan, "t": math.nan, "p_t": math.nan, "p_sign_flip": math.nan,
           "same_sign": bool(n > 0 and (np.all(d > 0) or np.all(d < 0)))}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["sd_diff"] = sd
    half = sps.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    out["ci_lo"], out["ci_hi"] = out["mean_diff"] - half, out["mean_diff"] + half
    if sd > 0:
        out["t"] = out["mean_diff"] / (sd / math.sqrt(n))
        out["p_t"] = float(2 * sps.t.sf(abs(out["t"]), n - 1))
    # exact sign-flip test: the share of sign patterns whose |mean| is at least the observed one
    obs = abs(d.mean())
    if n <= 16:
        flips = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        means = np.abs((flips * d).mean(1))
        out["p_sign_flip"] = float((means >= obs - 1e-12).mean())
    return out


# ----------------------------------------------------------------------------------- bootstrap
def bootstrap_ci(stat: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict:
    """Percentile bootstrap of ``stat(idx)`` over ``n`` samples resampled with replacement.

    ``stat`` receives an index array (length ``n``) into the samples and returns a float; for a
    paired comparison it evaluates both variants on the same indices. Returns ``estimate``
    (``stat(arange(n))``), ``lo``, ``hi``, ``se`` (sd of the replicates) and ``n_boot`` (finite
    replicates used). Deterministic in ``seed``.
    """
    if n < 1:
        raise ValueError("need at least one sample")
    rng = np.random.default_rng(seed)
    est = float(stat(np.arange(n)))
    reps = np.array([stat(rng.integers(0, n, size=n)) for _ in range(n_boot)], dtype=float)
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return {"estimate": est, "lo": math.nan, "hi": math.nan, "se": math.nan, "n_boot": 0}
    q = (1 - level) / 2
    return {"estimate": est, "lo": float(np.quantile(reps, q)), "hi": float(np.quantile(reps, 1 - q)),
            "se": float(reps.std(ddof=1)) if len(reps) > 1 else math.nan, "n_boot": int(len(reps))}


def seed_mean_metric(y: np.ndarray, preds: Sequence[np.ndarray], metric: str, idx: np.ndarray) -> float:
    """The metric of each seed's predictions on samples ``idx``, averaged over seeds."""
    f = metric_fn(metric)
    return float(np.mean([f(y[idx], p[idx]) for p in preds]))


def paired_bootstrap_diff(y: np.ndarray, preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray],
                          metric: str, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Bootstrap interval of ``metric(A) - metric(B)``, each averaged over its seeds' predictions,
    resampling the test samples (the same resample for A and B)."""
    y = np.asarray(y, dtype=float)
    pa = [np.asarray(p, dtype=float) for p in preds_a]
    pb = [np.asarray(p, dtype=float) for p in preds_b]
    if any(len(p) != len(y) for p in (*pa, *pb)):
        raise ValueError("every prediction array must have one value per test sample")
    return bootstrap_ci(lambda i: seed_mean_metric(y, pa, metric, i) - seed_mean_metric(y, pb, metric, i),
                        len(y), n_boot, level, seed)


def compare(values_a: Sequence[float], values_b: Sequence[float], metric: str,
            y: np.ndarray | None = None, preds_a: Sequence[np.ndarray] | None = None,
            preds_b: Sequence[np.ndarray] | None = None, n_boot: int = 1000, seed: int = 0,
            expect: int | None = None) -> dict:
    """Compare variant A with variant B on ``metric``: paired over seeds, plus (when test predictions
    are given) a paired bootstrap over test samples.

    Args:
        values_a, values_b: the recorded test metric per seed (same seed order).
        expect: +1 if the claim is "A is better than B", -1 if "A is worse", ``None`` for no
            direction. "Better" follows the metric (lower MAE is better).

    Returns:
        the :func:`paired_seed_test` fields, ``boot_lo``/``boot_hi`` (``nan`` without predictions),
        ``resolved`` (see the module docstring), ``direction`` (+1 A better, -1 A worse, 0 unresolved)
        and ``agrees`` (resolved in the ``expect`` direction; ``None`` without ``expect``).
    """
    res = paired_seed_test(values_a, values_b)
    res["boot_lo"] = res["boot_hi"] = math.nan
    if y is not None and preds_a is not None and preds_b is not None:
        b = paired_bootstrap_diff(y, preds_a, preds_b, metric, n_boot=n_boot, seed=seed)
        res["boot_lo"], res["boot_hi"] = b["lo"], b["hi"]
    boot_excludes = (not math.isnan(res["boot_lo"])) and (res["boot_lo"] > 0 or res["boot_hi"] < 0)
    seeds_ok = res["same_sign"] and (res["n"] < 3 or (not math.isnan(res["p_t"]) and res["p_t"] < 0.05))
    if math.isnan(res["boot_lo"]):        # no predictions: the seed-level test alone
        resolved = res["n"] >= 3 and seeds_ok and not math.isnan(res["ci_lo"]) and (
            res["ci_lo"] > 0 or res["ci_hi"] < 0)
    else:
        resolved = boot_excludes and seeds_ok
    res["resolved"] = bool(resolved)
    sign = better_sign(metric) * (1 if res["mean_diff"] > 0 else -1)
    res["direction"] = int(sign) if resolved else 0
    res["agrees"] = None if expect is None else bool(resolved and sign == expect)
    return res


__all__ = ["FAST_METRICS", "metric_fn", "better_sign", "paired_seed_test", "bootstrap_ci",
           "seed_mean_metric", "paired_bootstrap_diff", "compare"]
