"""Sentences computed from results: the notebooks' "What we see" cells.

Every sentence here is built from numbers with explicit thresholds, so it stays true when the data,
the profile or the seeds change. The tables these functions read are long frames with one row per
(run, metric): a label column (``label`` as :func:`mser_lib.report.ablations.grid_frame` writes it,
or ``row`` as :func:`mser_lib.report.analysis.records_long` does), ``seed``, ``metric`` and
``value`` (accuracies and F1 as fractions, as the records hold them).

**The rule for "by more than the seed spread".** Two rows differ *by more than the seed spread* when
the gap between their seed means exceeds the larger of their two seed standard deviations. That is a
reading aid, not a test: the notebooks' paired tests and bootstrap intervals
(:mod:`mser_lib.report.stats`) decide what is *resolved*. With one seed there is no spread, and the
sentence says so instead of comparing.

Example::

    compare_sentence(frame, "femf", "baseline (modalities=tav)", "mae")
    # "FEMF's MAE (0.605 ± 0.003) is lower (better) than the T+A+V baseline's (0.664 ± 0.003),
    #  by more than the seed spread."
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import LOWER_IS_BETTER, METRIC_NAMES

#: Display names of the main comparison's rows (``paper_rows.row_label`` / ``grids`` tags).
NAMES = {
    "femf": "FEMF", "atsuko": "Atsuko", "emoe": "EMOE",
    "baseline (modalities=tav)": "the T+A+V baseline", "baseline": "the baseline",
    "baseline (modalities=t)": "the text-only baseline", "baseline (modalities=a)": "the audio-only baseline",
    "baseline (modalities=v)": "the vision-only baseline",
}


@dataclass(frozen=True)
class Stat:
    """Mean and seed standard deviation (``ddof=1``; ``nan`` with one seed) of one row's metric."""

    mean: float
    std: float
    n: int


def is_builtin(dataset) -> bool:
    """True for the built-in synthetic benchmark (a name or a ``DatasetInfo``)."""
    return str(getattr(dataset, "name", dataset)) == "synthetic"


def name_of(label: str, names: dict | None = None) -> str:
    return {**NAMES, **(names or {})}.get(label, label)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _poss(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _percent(metric: str) -> bool:
    return metric not in ("mae", "corr", "loss")


def fmt_value(metric: str, v: float, std: float | None = None) -> str:
    """``0.605 ± 0.003`` for MAE/Corr, ``86.9 ± 1.0`` (percent) for accuracies and F1."""
    scale, dg = (100.0, 1) if _percent(metric) else (1.0, 3)
    s = f"{v * scale:.{dg}f}"
    if std is not None and not math.isnan(std):
        s += f" ± {std * scale:.{dg}f}"
    return s


def _label_col(frame: pd.DataFrame) -> str:
    for c in ("label", "row"):
        if c in frame.columns:
            return c
    raise KeyError("the frame needs a 'label' or 'row' column")


def summarize(frame: pd.DataFrame, label: str, metric: str) -> Stat:
    """Seed mean and standard deviation of ``metric`` for the row ``label``."""
    col = _label_col(frame)
    v = frame.loc[(frame[col] == label) & (frame["metric"] == metric), "value"].to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        raise KeyError(f"no values for {label!r} / {metric!r}")
    return Stat(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


def better(metric: str, a: float, b: float) -> bool:
    """Is value ``a`` better than ``b`` on ``metric``?"""
    return a < b if metric in LOWER_IS_BETTER else a > b


def beyond_spread(a: Stat, b: Stat) -> bool | None:
    """Gap of the means larger than the larger seed std; ``None`` when either has one seed."""
    if a.n < 2 or b.n < 2:
        return None
    return abs(a.mean - b.mean) > max(a.std, b.std)


def compare_sentence(frame: pd.DataFrame, a: str, b: str, metric: str, names: dict | None = None) -> str:
    """One sentence: is ``a`` better than ``b`` on ``metric``, and by more than the seed spread?"""
    sa, sb = summarize(frame, a, metric), summarize(frame, b, metric)
    na, nb, mn = name_of(a, names), name_of(b, names), metric_name(metric)
    va, vb = fmt_value(metric, sa.mean, sa.std), fmt_value(metric, sb.mean, sb.std)
    if sa.mean == sb.mean:
        return f"{_cap(_poss(na))} {mn} ({va}) equals {_poss(nb)} ({vb})."
    word = ("lower" if sa.mean < sb.mean else "higher")
    quality = "better" if better(metric, sa.mean, sb.mean) else "worse"
    head = f"{_cap(_poss(na))} {mn} ({va}) is {word} ({quality}) than {_poss(nb)} ({vb})"
    gap = beyond_spread(sa, sb)
    if gap is None:
        return head + ", from a single seed: no spread to judge the gap by."
    if gap:
        return head + ", by more than the seed spread."
    return head + ", but by less than the seed spread: these seeds do not tell them apart."


def ranking(frame: pd.DataFrame, labels: list[str], metric: str) -> list[tuple[str, Stat]]:
    """The rows ``labels`` (those present) ordered best first on ``metric``."""
    col = _label_col(frame)
    present = [lab for lab in labels if ((frame[col] == lab) & (frame["metric"] == metric)).any()]
    stats = [(lab, summarize(frame, lab, metric)) for lab in present]
    return sorted(stats, key=lambda t: t[1].mean, reverse=metric not in LOWER_IS_BETTER)


def best_sentence(frame: pd.DataFrame, labels: list[str], metric: str, names: dict | None = None) -> str:
    """Which row is best on ``metric``, and whether its lead over the runner-up exceeds the spread."""
    ranked = ranking(frame, labels, metric)
    if not ranked:
        return f"No row has {metric_name(metric)}."
    (la, sa), mn = ranked[0], metric_name(metric)
    s = f"The best {mn} is {_poss(name_of(la, names))} ({fmt_value(metric, sa.mean, sa.std)})"
    if len(ranked) == 1:
        return s + "."
    lb, sb = ranked[1]
    gap = beyond_spread(sa, sb)
    nb = name_of(lb, names)
    if gap:
        return s + f", ahead of {nb} ({fmt_value(metric, sb.mean, sb.std)}) by more than the seed spread."
    return s + f", but {nb} ({fmt_value(metric, sb.mean, sb.std)}) is within the seed spread of it."


def paper_sentence(frame: pd.DataFrame, a: str, b: str, metric: str, source: str,
                   names: dict | None = None) -> str:
    """The paper (``source``) reports ``a`` better than ``b``: do our runs agree, contradict or not tell?"""
    sa, sb = summarize(frame, a, metric), summarize(frame, b, metric)
    na, nb, mn = name_of(a, names), name_of(b, names), metric_name(metric)
    ours = f"{fmt_value(metric, sa.mean, sa.std)} against {fmt_value(metric, sb.mean, sb.std)}"
    gap = beyond_spread(sa, sb)
    if better(metric, sa.mean, sb.mean):
        if gap:
            return f"{source} reports {na} ahead of {nb}; on {mn} our runs agree ({ours})."
        return (f"{source} reports {na} ahead of {nb}; on {mn} ours point the same way ({ours}) but within "
                "the seed spread, so they do not confirm it.")
    if gap:
        return (f"This contradicts {source}, which reports {na} ahead of {nb}: on {mn} ours put {nb} ahead "
                f"by more than the seed spread ({ours}).")
    return (f"{source} reports {na} ahead of {nb}; on {mn} ours point the other way ({ours}), within the "
            "seed spread.")


def beats_all_sentence(frame: pd.DataFrame, a: str, others: list[str], metric: str,
                       names: dict | None = None) -> str | None:
    """A sentence when ``a`` is better than every row of ``others`` on ``metric``, else ``None``."""
    sa = summarize(frame, a, metric)
    col = _label_col(frame)
    rivals = [o for o in others if o != a and ((frame[col] == o) & (frame["metric"] == metric)).any()]
    if not rivals or not all(better(metric, sa.mean, summarize(frame, o, metric).mean) for o in rivals):
        return None
    clear = [o for o in rivals if beyond_spread(sa, summarize(frame, o, metric))]
    listed = ", ".join(name_of(o, names) for o in rivals)
    s = f"{_cap(name_of(a, names))} has a better {metric_name(metric)} ({fmt_value(metric, sa.mean, sa.std)}) than " \
        f"every one of {listed}"
    if len(clear) == len(rivals):
        return s + ", each by more than the seed spread."
    if clear:
        return s + f"; by more than the seed spread over {', '.join(name_of(o, names) for o in clear)}."
    return s + ", though each gap is within the seed spread."


def degradation(curves: pd.DataFrame, label: str, metric: str, rate: float) -> float:
    """How much worse ``label`` is on ``metric`` at ``rate`` than at rate 0 (seed means; positive =
    worse). ``curves``: columns label, seed, rate, metric, value (``ablations.missing_curves``)."""
    sub = curves[(curves["label"] == label) & (curves["metric"] == metric)]
    m0 = sub[np.isclose(sub["rate"].astype(float), 0.0)]["value"].astype(float).mean()
    mr = sub[np.isclose(sub["rate"].astype(float), rate)]["value"].astype(float).mean()
    return float((mr - m0) if metric in LOWER_IS_BETTER else (m0 - mr))


def degradation_sentence(curves: pd.DataFrame, a: str, b: str, metric: str, rate: float,
                         names: dict | None = None) -> str:
    """How much ``a`` and ``b`` lose on ``metric`` from rate 0 to ``rate`` (seed means of ``curves``:
    columns label, seed, rate, metric, value), and which loses more."""
    da, db = degradation(curves, a, metric, rate), degradation(curves, b, metric, rate)
    na, nb, mn = name_of(a, names), name_of(b, names), metric_name(metric)
    unit = " points" if _percent(metric) else ""
    k = 100.0 if _percent(metric) else 1.0
    dg = 1 if _percent(metric) else 3
    s = (f"From no missing data to {rate:.0%} missing, {na} loses {da * k:.{dg}f}{unit} of {mn} and {nb} "
         f"{db * k:.{dg}f}{unit}")
    if math.isclose(da, db, abs_tol=1e-12):
        return s + ": the same."
    faster = na if da > db else nb
    return s + f": {faster} degrades faster."


def claims_sentence(claims: pd.DataFrame) -> str:
    """Count the claims table's verdicts: how many agree, contradict, or stay undecided."""
    agrees = claims["agrees with paper"].astype(str)
    n, yes, no = len(claims), int((agrees == "yes").sum()), int((agrees == "no").sum())
    few = int((claims["resolved"].astype(str) == "not enough seeds").sum())
    s = (f"Of {n} claims, our runs resolve {yes + no}: {yes} agree with the paper and {no} contradict it; "
         f"{n - yes - no} stay undecided")
    return s + (f" ({few} of them because they have fewer than 3 seeds)." if few else ".")


def what_we_see(sentences: list[str | None], dataset=None) -> str:
    """The Markdown of a "What we see" cell: the sentences (``None`` entries dropped) as bullets,
    headed by which data they describe."""
    head = "**What we see**"
    if dataset is not None:
        head += (" (built-in benchmark: the answer is planted, so these are checks of the methods)"
                 if is_builtin(dataset) else f" ({getattr(dataset, 'name', dataset)}: real data)")
    body = "\n".join(f"- {s}" for s in sentences if s)
    return f"{head}\n\n{body}" if body else head


__all__ = ["NAMES", "Stat", "is_builtin", "name_of", "metric_name", "fmt_value", "summarize", "better",
           "beyond_spread", "compare_sentence", "ranking", "best_sentence", "paper_sentence", "degradation",
           "beats_all_sentence", "degradation_sentence", "claims_sentence", "what_we_see"]
