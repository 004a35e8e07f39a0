"""Which differences between two variants our runs can resolve: paired tests over seeds, bootstrap intervals.

Two sources of noise separate a measured difference from the truth, and we report both:

* **training noise** (initial weights, batch order): the same variant trained with ``n`` seeds. Two
  variants trained with the *same* seeds are paired by seed, and :func:`paired_seed_test` gives the
  mean of the per-seed differences ``d_s = m_A(s) - m_B(s)``, a t interval
  ``mean(d) +- t_{n-1, 0.975} sd(d) / sqrt(n)``, the paired t-test p-value and the exact sign-flip
  (permutation) p-value over the ``2^n`` sign patterns. With few seeds these are weak: the smallest
  attainable sign-flip p-value is ``2 / 2^n`` (0.5 for 2 seeds, 0.25 for 3, 0.0625 for 5; below 0.05
  only from 6 seeds on), which is why the seed-level test of a verdict is the paired t-test by default.
* **test-set noise** (which test samples happen to be in the test split): :func:`bootstrap_ci`
  resamples test samples with replacement (the same indices for both variants: paired) and gives a
  percentile interval of any statistic, e.g. the difference of the seed-averaged metrics. Samples
  that are not independent are resampled as **clusters**: in the position layout (mosi-bclstm) a
  sample is a video whose utterances are the labelled positions, and the bootstrap draws whole
  videos (``clusters`` = the sample id of each position, as :func:`mser_lib.train.predict` returns
  them); in the sequence layout every sample is its own cluster.

:func:`compare` combines them into a **verdict** (:func:`verdict`):

* ``"not enough seeds"`` with fewer than :data:`MIN_SEEDS` (3) paired seeds, whatever the p-values;
* ``"yes"`` (resolved) when the seed-level p-value (paired t over seeds) is below :data:`ALPHA`
  (0.05), the bootstrap interval over test samples (clusters) excludes 0, **and** every seed's
  difference has the sign of the mean;
* ``"no"`` otherwise (also when no test predictions are available for the bootstrap).

A table of many claims controls multiplicity with :func:`adjust_p` (Holm-Bonferroni, :func:`holm`,
by default; Benjamini-Hochberg, :func:`benjamini_hochberg`, on request) and then applies the same rule
to the adjusted p-value (:func:`mser_lib.report.ablations.adjust_claims`). This is a deliberately
strict rule; "no" means our runs cannot tell, not that there is no effect. The bootstrap interval is a
plain 95% interval (not widened for multiplicity); the adjustment acts on the seed-level p-value.

The metric functions here (:data:`FAST_METRICS`) are numpy re-implementations of the docs/metrics.md / MMSA
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


def _classes(p: np.ndarray) -> np.ndarray:
    """Class ids from logits ``(n, C)`` (argmax) or ids ``(n,)``."""
    return p.argmax(-1) if p.ndim == 2 else p.astype(np.int64)


def _cls_acc(y: np.ndarray, p: np.ndarray) -> float:
    return float((_classes(p) == y).mean())


def _cls_macro(which: str):
    """scikit-learn's macro F1 / precision / recall (``zero_division=0``) over the classes present in ``y`` or
    predicted, from one confusion count."""
    def f(y: np.ndarray, p: np.ndarray) -> float:
        q, y = _classes(p), y.astype(np.int64)
        k = int(max(y.max(initial=0), q.max(initial=0))) + 1
        tp = np.bincount(y[q == y], minlength=k).astype(float)
        true, pred = np.bincount(y, minlength=k).astype(float), np.bincount(q, minlength=k).astype(float)
        seen = (true + pred) > 0
        prec = np.divide(tp, pred, out=np.zeros(k), where=pred > 0)
        rec = np.divide(tp, true, out=np.zeros(k), where=true > 0)
        if which == "precision":
            v = prec
        elif which == "recall":
            v = rec
        else:
            v = np.divide(2 * prec * rec, prec + rec, out=np.zeros(k), where=(prec + rec) > 0)
        return float(v[seen].mean())
    return f


#: The classification metrics (y class ids, p logits ``(n, C)`` or class ids), as :func:`mser_lib.metrics.
#: classification_metrics` computes them.
CLASSIFICATION_FAST_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "acc": _cls_acc, "f1_macro": _cls_macro("f1"), "precision_macro": _cls_macro("precision"),
    "recall_macro": _cls_macro("recall"),
}


def has_fast(name: str) -> bool:
    """Whether :func:`metric_fn` has a fast version of ``name``."""
    return name in FAST_METRICS or name in CLASSIFICATION_FAST_METRICS


def metric_fn(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The fast version of a metric: a ``"mosi"``-family one (y, p 1-D arrays over labelled positions) or a
    classification one (y class ids, p logits)."""
    if not has_fast(name):
        raise KeyError(f"no fast version of metric {name!r}; known: "
                       f"{sorted(FAST_METRICS) + sorted(CLASSIFICATION_FAST_METRICS)}")
    return FAST_METRICS.get(name) or CLASSIFICATION_FAST_METRICS[name]


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
def cluster_groups(clusters: Sequence | np.ndarray) -> list[np.ndarray]:
    """Indices of the members of each cluster, in order of first appearance.

    ``clusters`` holds one label per sample (e.g. the video id of each labelled utterance)."""
    labels = np.asarray(clusters)
    if labels.ndim != 1:
        raise ValueError(f"clusters must be 1-D (one label per sample), got shape {labels.shape}")
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first)                       # clusters in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    inv = rank[inv.reshape(-1)]
    sort = np.argsort(inv, kind="stable")
    bounds = np.cumsum(np.bincount(inv, minlength=len(order)))[:-1]
    return np.split(sort, bounds)


def bootstrap_ci(stat: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0, clusters: Sequence | np.ndarray | None = None) -> dict:
    """Percentile bootstrap of ``stat(idx)`` over ``n`` samples resampled with replacement.

    ``stat`` receives an index array into the samples and returns a float; for a paired comparison it
    evaluates both variants on the same indices. With ``clusters`` (one label per sample, length
    ``n``) whole clusters are drawn with replacement (as many draws as there are clusters) and
    ``idx`` is the concatenation of their members, so its length varies between replicates; without,
    every sample is its own cluster. Returns ``estimate`` (``stat(arange(n))``), ``lo``, ``hi``,
    ``se`` (sd of the replicates), ``n_boot`` (finite replicates used) and ``n_clusters``.
    Deterministic in ``seed``.
    """
    if n < 1:
        raise ValueError("need at least one sample")
    rng = np.random.default_rng(seed)
    est = float(stat(np.arange(n)))
    if clusters is None:
        n_clusters = n
        reps = np.array([stat(rng.integers(0, n, size=n)) for _ in range(n_boot)], dtype=float)
    else:
        if len(clusters) != n:
            raise ValueError(f"clusters must have one label per sample ({n}), got {len(clusters)}")
        groups = cluster_groups(clusters)
        n_clusters = len(groups)
        reps = np.array([stat(np.concatenate([groups[j] for j in rng.integers(0, n_clusters, size=n_clusters)]))
                         for _ in range(n_boot)], dtype=float)
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return {"estimate": est, "lo": math.nan, "hi": math.nan, "se": math.nan, "n_boot": 0,
                "n_clusters": n_clusters}
    q = (1 - level) / 2
    return {"estimate": est, "lo": float(np.quantile(reps, q)), "hi": float(np.quantile(reps, 1 - q)),
            "se": float(reps.std(ddof=1)) if len(reps) > 1 else math.nan, "n_boot": int(len(reps)),
            "n_clusters": n_clusters}


def seed_mean_metric(y: np.ndarray, preds: Sequence[np.ndarray], metric: str, idx: np.ndarray) -> float:
    """The metric of each seed's predictions on samples ``idx``, averaged over seeds."""
    f = metric_fn(metric)
    return float(np.mean([f(y[idx], p[idx]) for p in preds]))


def paired_bootstrap_diff(y: np.ndarray, preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray],
                          metric: str, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                          clusters: Sequence | np.ndarray | None = None) -> dict:
    """Bootstrap interval of ``metric(A) - metric(B)``, each averaged over its seeds' predictions,
    resampling the test samples (the same resample for A and B; whole ``clusters`` if given, see
    :func:`bootstrap_ci`)."""
    y = np.asarray(y, dtype=float)
    pa = [np.asarray(p, dtype=float) for p in preds_a]
    pb = [np.asarray(p, dtype=float) for p in preds_b]
    if any(len(p) != len(y) for p in (*pa, *pb)):
        raise ValueError("every prediction array must have one value per test sample")
    return bootstrap_ci(lambda i: seed_mean_metric(y, pa, metric, i) - seed_mean_metric(y, pb, metric, i),
                        len(y), n_boot, level, seed, clusters)


# ------------------------------------------------------------------------------ multiplicity
def _finite_p(pvals) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pvals, dtype=float).reshape(-1)
    ok = np.isfinite(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    return p, ok


def _step_adjust(pvals: Sequence[float], adjust: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """The skeleton of a step-wise adjustment: ``adjust(sorted_p, m)`` maps the ``m`` finite p-values,
    sorted ascending, to their adjusted values; they are returned in the input order, and ``nan`` stays
    ``nan`` and does not count in ``m``."""
    p, ok = _finite_p(pvals)
    out = np.full(p.shape, math.nan)
    m = int(ok.sum())
    if m == 0:
        return out
    pf = p[ok]
    order = np.argsort(pf, kind="stable")
    res = np.empty(m)
    res[order] = adjust(pf[order], m)
    out[ok] = res
    return out


def holm(pvals: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (controls the family-wise error rate).

    With the ``m`` finite p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of
    the i-th is ``max_{j <= i} min(1, (m - j + 1) p_(j))``. ``nan`` entries stay ``nan`` and do not
    count in ``m``. Returned in the input order.
    """
    return _step_adjust(pvals, lambda p, m: np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p)))


def benjamini_hochberg(pvals: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values; control the false discovery rate).

    With the ``m`` finite p-values sorted ascending, the adjusted value of the i-th is
    ``min_{j >= i} min(1, m p_(j) / j)``. ``nan`` entries stay ``nan`` and do not count in ``m``.
    Returned in the input order.
    """
    return _step_adjust(pvals, lambda p, m: np.minimum.accumulate(
        np.minimum(1.0, p * m / np.arange(1, m + 1))[::-1])[::-1])


ADJUSTMENTS: dict[str, tuple[str, Callable[[Sequence[float]], np.ndarray]]] = {
    "holm": ("Holm", holm), "bh": ("BH", benjamini_hochberg),
}


def adjust_p(pvals: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjusted p-values: ``method`` ``"holm"`` (Holm-Bonferroni, the default) or ``"bh"``
    (Benjamini-Hochberg). ``nan`` stays ``nan`` and is not counted in the family."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"method must be one of {sorted(ADJUSTMENTS)}, got {method!r}")
    return ADJUSTMENTS[method][1](pvals)


# ------------------------------------------------------------------------------------ verdicts
MIN_SEEDS = 3                 #: fewer paired seeds than this: "not enough seeds"
ALPHA = 0.05                  #: level of the seed-level test (applied to the adjusted p in tables)
NOT_ENOUGH_SEEDS = "not enough seeds"
VERDICTS = ("yes", "no", NOT_ENOUGH_SEEDS)


def verdict(n_seeds: int, p_seed: float, same_sign: bool, boot_excludes: bool | None,
            alpha: float = ALPHA, min_seeds: int = MIN_SEEDS) -> str:
    """``"yes"`` / ``"no"`` / ``"not enough seeds"`` (see the module docstring).

    Args:
        n_seeds: paired seeds behind the comparison.
        p_seed: the seed-level p-value (raw, or adjusted for multiplicity in a table).
        same_sign: every seed's difference has the sign of the mean difference.
        boot_excludes: the bootstrap interval over test samples excludes 0 (``None``: no bootstrap,
            which cannot resolve).
    """
    if n_seeds < min_seeds:
        return NOT_ENOUGH_SEEDS
    ok = (p_seed is not None and not math.isnan(p_seed) and p_seed < alpha and bool(same_sign)
          and bool(boot_excludes))
    return "yes" if ok else "no"


def compare(values_a: Sequence[float], values_b: Sequence[float], metric: str,
            y: np.ndarray | None = None, preds_a: Sequence[np.ndarray] | None = None,
            preds_b: Sequence[np.ndarray] | None = None, n_boot: int = 1000, seed: int = 0,
            expect: int | None = None, clusters: Sequence | np.ndarray | None = None,
            seed_test: str = "t") -> dict:
    """Compare variant A with variant B on ``metric``: paired over seeds, plus (when test predictions
    are given) a paired bootstrap over test samples, by cluster when ``clusters`` is given.

    Args:
        values_a, values_b: the recorded test metric per seed (same seed order).
        expect: +1 if the claim is "A is better than B", -1 if "A is worse", ``None`` for no
            direction. "Better" follows the metric (lower MAE is better).
        clusters: one label per test sample (position) for the cluster bootstrap, e.g. the video id
            of each utterance in the position layout; ``None``: every sample is its own cluster.
        seed_test: the seed-level p-value behind the verdict: ``"t"`` (paired t-test, default) or
            ``"sign_flip"`` (exact; cannot go below 0.05 with fewer than 6 seeds).

    Returns:
        the :func:`paired_seed_test` fields; ``boot_lo``/``boot_hi`` (``nan`` without predictions),
        ``boot_excludes`` (``None`` without predictions), ``n_clusters`` (clusters resampled, ``0``
        without predictions); ``seed_test`` and ``p_seed`` (the p-value it gives); ``verdict``
        (:func:`verdict` on the raw ``p_seed``: one comparison, no multiplicity adjustment);
        ``resolved`` (``verdict == "yes"``); ``direction`` (+1 A better, -1 A worse, 0 unresolved);
        ``sign_agrees`` (the measured mean difference points the ``expect`` way, resolved or not;
        ``None`` without ``expect``) and ``agrees`` (resolved in the ``expect`` direction; ``None``
        without ``expect``).
    """
    if seed_test not in ("t", "sign_flip"):
        raise ValueError(f"seed_test must be 't' or 'sign_flip', got {seed_test!r}")
    res = paired_seed_test(values_a, values_b)
    res["boot_lo"] = res["boot_hi"] = math.nan
    res["boot_excludes"], res["n_clusters"] = None, 0
    if y is not None and preds_a is not None and preds_b is not None:
        b = paired_bootstrap_diff(y, preds_a, preds_b, metric, n_boot=n_boot, seed=seed, clusters=clusters)
        res["boot_lo"], res["boot_hi"], res["n_clusters"] = b["lo"], b["hi"], b["n_clusters"]
        if not math.isnan(b["lo"]):
            res["boot_excludes"] = bool(b["lo"] > 0 or b["hi"] < 0)
    res["seed_test"] = seed_test
    res["p_seed"] = res["p_t"] if seed_test == "t" else res["p_sign_flip"]
    res["verdict"] = verdict(res["n"], res["p_seed"], res["same_sign"], res["boot_excludes"])
    res["resolved"] = res["verdict"] == "yes"
    sign = better_sign(metric) * (1 if res["mean_diff"] > 0 else -1)
    res["direction"] = int(sign) if res["resolved"] else 0
    res["sign_agrees"] = None if expect is None or math.isnan(res["mean_diff"]) else bool(sign == expect)
    res["agrees"] = None if expect is None else bool(res["resolved"] and sign == expect)
    return res


__all__ = ["FAST_METRICS", "CLASSIFICATION_FAST_METRICS", "has_fast",
           "metric_fn", "better_sign", "paired_seed_test", "cluster_groups", "bootstrap_ci",
           "seed_mean_metric", "paired_bootstrap_diff", "holm", "benjamini_hochberg", "adjust_p",
           "ADJUSTMENTS", "MIN_SEEDS", "ALPHA", "NOT_ENOUGH_SEEDS", "VERDICTS", "verdict", "compare"]
