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
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import is_builtin  # the notebooks call it as nv.is_builtin
from ..metrics import LOWER_IS_BETTER, METRIC_NAMES, in_percent
from .stats import NOT_ENOUGH_SEEDS

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


def name_of(label: str, names: dict | None = None) -> str:
    """The display name of a row: ``names``, then :data:`NAMES`, then the registered model's label (``dmd``:
    DMD), else the label itself."""
    known = {**NAMES, **(names or {})}
    if label in known:
        return known[label]
    from ..models.registry import model_spec

    try:
        return model_spec(label).label
    except KeyError:
        return label


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _poss(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _precision(metric: str) -> tuple[float, int]:
    """``(scale, decimals)`` the sentences print ``metric`` with: percent with one decimal, else three decimals."""
    return (100.0, 1) if in_percent(metric) else (1.0, 3)


def fmt_value(metric: str, v: float, std: float | None = None) -> str:
    """``0.605 ± 0.003`` for MAE/Corr, ``86.9 ± 1.0`` (percent) for accuracies and F1."""
    scale, dg = _precision(metric)
    s = f"{v * scale:.{dg}f}"
    if std is not None and not math.isnan(std):
        s += f" ± {std * scale:.{dg}f}"
    return s


def _value_seeds(metric: str, st: Stat) -> str:
    """:func:`fmt_value` of a row's mean and sd, with its seed count when it has 2 (fewer than a verdict needs;
    a single seed shows no sd and the sentences say so)."""
    return fmt_value(metric, st.mean, st.std) + (f", {st.n} seeds" if st.n == 2 else "")


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


def _shown(metric: str, v: float) -> float:
    """``v`` at the precision the sentences print it (:func:`fmt_value`)."""
    scale, dg = _precision(metric)
    return round(v * scale, dg)


def beyond_spread(a: Stat, b: Stat, metric: str | None = None) -> bool | None:
    """Gap of the means larger than the larger seed std; ``None`` when either has one seed. With ``metric``
    both are compared at the precision the sentences print (a gap that exceeds the spread only in a digit
    nobody sees is within it)."""
    if a.n < 2 or b.n < 2:
        return None
    gap, spread = abs(a.mean - b.mean), max(a.std, b.std)
    if metric is not None:
        return _shown(metric, gap) > _shown(metric, spread)
    return gap > spread


def boot_interval(tests: list[dict] | None, a: str, b: str, metric: str) -> tuple[float, float] | None:
    """The bootstrap interval over test samples of ``a`` minus ``b`` on ``metric`` from paired comparisons
    (:func:`mser_lib.report.ablations.compare_labels` results; a pair tested the other way round is flipped),
    or None when none has one."""
    for r in tests or []:
        if r.get("metric") != metric or r.get("boot_lo") is None or r.get("boot_hi") is None:
            continue
        lo, hi = float(r["boot_lo"]), float(r["boot_hi"])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        if (r.get("a"), r.get("b")) == (a, b):
            return lo, hi
        if (r.get("a"), r.get("b")) == (b, a):
            return -hi, -lo
    return None


def _single_seed(metric: str, interval: tuple[float, float] | None) -> str:
    """What a gap with a single seed on one side can say: the bootstrap over test samples when there is one
    (a tie when it covers 0), else that there is no spread to judge it by."""
    if interval is None:
        return "no spread to judge the gap by"
    lo, hi = interval
    shown = f"[{fmt_value(metric, lo)}, {fmt_value(metric, hi)}]"
    if lo <= 0 <= hi:
        return f"a tie by the bootstrap over test samples (the gap's interval, {shown}, covers 0)"
    return (f"beyond the test-sample noise (bootstrap interval {shown}) but with no seed spread to judge the "
            "training noise by")


def compare_sentence(frame: pd.DataFrame, a: str, b: str, metric: str, names: dict | None = None,
                     tests: list[dict] | None = None) -> str:
    """One sentence: is ``a`` better than ``b`` on ``metric``, and by more than the seed spread? With a single
    seed on a side, ``tests`` (paired comparisons holding the pair) give the bootstrap's reading instead."""
    sa, sb = summarize(frame, a, metric), summarize(frame, b, metric)
    na, nb, mn = name_of(a, names), name_of(b, names), metric_name(metric)
    va, vb = fmt_value(metric, sa.mean, sa.std), fmt_value(metric, sb.mean, sb.std)
    if _shown(metric, sa.mean) == _shown(metric, sb.mean):
        return f"{_cap(_poss(na))} {mn} ({va}) equals {_poss(nb)} ({vb}) at the precision shown."
    word = ("lower" if sa.mean < sb.mean else "higher")
    quality = "better" if better(metric, sa.mean, sb.mean) else "worse"
    head = f"{_cap(_poss(na))} {mn} ({va}) is {word} ({quality}) than {_poss(nb)} ({vb})"
    gap = beyond_spread(sa, sb, metric)
    if gap is None:
        return head + f", from a single seed: {_single_seed(metric, boot_interval(tests, a, b, metric))}."
    if gap:
        return head + ", by more than the seed spread."
    return head + ", but by less than the seed spread: these seeds do not tell them apart."


def ranking(frame: pd.DataFrame, labels: list[str], metric: str) -> list[tuple[str, Stat]]:
    """The rows ``labels`` (those present) ordered best first on ``metric``."""
    col = _label_col(frame)
    present = [lab for lab in labels if ((frame[col] == lab) & (frame["metric"] == metric)).any()]
    stats = [(lab, summarize(frame, lab, metric)) for lab in present]
    return sorted(stats, key=lambda t: t[1].mean, reverse=metric not in LOWER_IS_BETTER)


def best_sentence(frame: pd.DataFrame, labels: list[str], metric: str, names: dict | None = None,
                  among: str | None = None, tests: list[dict] | None = None) -> str:
    """Which row is best on ``metric``, and whether its lead over every other row exceeds the spread (the
    runner-up first; a row further down with a wider spread can be within it when the runner-up is not).
    ``among``: what the rows are when they are not all there is ("the single-modality FEMFs"). ``tests``:
    paired comparisons whose bootstrap reads a lead that a single seed leaves without a spread. A row with
    fewer than 3 seeds carries its count; rows of ``labels`` without values (left out as degenerate, or not
    run) are named."""
    ranked = ranking(frame, labels, metric)
    if not ranked:
        return f"No row has {metric_name(metric)}."
    (la, sa), mn = ranked[0], metric_name(metric)
    missing = [name_of(lab, names) for lab in labels if lab not in {r[0] for r in ranked}]
    s = f"The best {mn}{f' of {among}' if among else ''} is {_poss(name_of(la, names))} " \
        f"({_value_seeds(metric, sa)})"
    if len(ranked) == 1:
        if missing:
            return s + (f", the only one with a result: {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} "
                        "none here (runs that learned nothing are left out), so this ranks nothing.")
        return s + "."
    if missing:
        s += f" ({', '.join(missing)}: no result here, runs that learned nothing are left out)"
    lb, sb = ranked[1]
    gap = beyond_spread(sa, sb, metric)
    nb = name_of(lb, names)
    if _shown(metric, sa.mean) == _shown(metric, sb.mean):
        return s + f", equal to {_poss(nb)} ({fmt_value(metric, sb.mean, sb.std)}) at the precision shown."
    if gap is None:
        which = "both have" if sa.n < 2 and sb.n < 2 else "one of them has"
        return s + (f", ahead of {nb} ({fmt_value(metric, sb.mean, sb.std)}); {which} a single seed: "
                    f"{_single_seed(metric, boot_interval(tests, la, lb, metric))}.")
    if not gap:
        return s + f", but {nb} ({_value_seeds(metric, sb)}) is within the seed spread of it."
    s += f", ahead of {nb} ({_value_seeds(metric, sb)}) by more than the seed spread"
    close = [(lab, st) for lab, st in ranked[2:] if not beyond_spread(sa, st, metric)]
    if not close:
        return s + "."

    def why(st: Stat) -> str:                 # what keeps a row within the spread: one seed, or its own wide spread
        if st.n < 2:
            return "a single seed"
        whose = "its" if st.std >= sa.std else _poss(name_of(la, names))
        _, dg = _precision(metric)                 # the gap of the two means as printed, not of the raw ones
        return (f"the gap {abs(_shown(metric, sa.mean) - _shown(metric, st.mean)):.{dg}f} is within {whose} seed "
                f"sd {fmt_value(metric, max(st.std, sa.std))}")
    listed = ", ".join(f"{name_of(lab, names)} ({fmt_value(metric, st.mean, st.std)}: {why(st)})" for lab, st in close)
    return s + f"; but {listed} {'is' if len(close) == 1 else 'are'} not beyond the seed spread of it."


def paper_sentence(frame: pd.DataFrame, a: str, b: str, metric: str, source: str,
                   names: dict | None = None, verdict: str | None = None) -> str:
    """The paper (``source``) reports ``a`` better than ``b``: which way our seed means point, and whether by
    more than the seed spread. A reading aid: "agrees" and "contradicts" are left to the claims test (paired
    over seeds, Holm, bootstrap), which the sentence names when the gap exceeds the spread. ``verdict``: that
    test's verdict on this claim (:func:`claim_verdict`), said instead of deferring to it."""
    sa, sb = summarize(frame, a, metric), summarize(frame, b, metric)
    na, nb, mn = name_of(a, names), name_of(b, names), metric_name(metric)
    ours = f"{fmt_value(metric, sa.mean, sa.std)} against {fmt_value(metric, sb.mean, sb.std)}"
    if verdict:
        return (f"{source} reports {na} ahead of {nb}; on {mn} ours are {ours} (seed means ± sd), and the claims "
                f"test says: {verdict}.")
    gap = beyond_spread(sa, sb, metric)
    way = "the same way" if better(metric, sa.mean, sb.mean) else "the other way"
    if _shown(metric, sa.mean) == _shown(metric, sb.mean):
        return f"{source} reports {na} ahead of {nb}; on {mn} ours are equal at the precision shown ({ours})."
    if gap is None:
        return (f"{source} reports {na} ahead of {nb}; on {mn} ours point {way} ({ours}), from a single seed: no "
                "spread to judge the gap by.")
    if gap:
        return (f"{source} reports {na} ahead of {nb}; on {mn} our seed means point {way}, by more than the seed "
                f"spread ({ours}); whether that is resolved is the claims test's to say.")
    if way == "the same way":
        return (f"{source} reports {na} ahead of {nb}; on {mn} ours point the same way ({ours}) but within "
                "the seed spread, so they do not confirm it.")
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
    gaps = {o: beyond_spread(sa, summarize(frame, o, metric), metric) for o in rivals}
    clear = [o for o in rivals if gaps[o]]
    single = [o for o in rivals if gaps[o] is None]
    listed = ", ".join(name_of(o, names) for o in rivals)
    s = f"{_cap(name_of(a, names))} has a better {metric_name(metric)} ({fmt_value(metric, sa.mean, sa.std)}) than " \
        f"every one of {listed}"
    if single:
        s += (f" ({', '.join(name_of(o, names) for o in single)}: a single seed on one side, no spread to judge "
              "the gap by)")
    judged = [o for o in rivals if gaps[o] is not None]
    if not judged:
        return s + "."
    if len(clear) == len(judged):
        return s + ("; " if single else ", ") + "each gap by more than the seed spread."
    if clear:
        return s + f"; by more than the seed spread over {', '.join(name_of(o, names) for o in clear)}."
    return s + ("; " if single else ", ") + "though each gap is within the seed spread."


def degradation(curves: pd.DataFrame, label: str, metric: str, rate: float) -> float:
    """How much worse ``label`` is on ``metric`` at ``rate`` than at rate 0 (seed means; positive =
    worse). ``curves``: columns label, seed, rate, metric, value (``ablations.missing_curves``)."""
    sub = curves[(curves["label"] == label) & (curves["metric"] == metric)]
    m0 = sub[np.isclose(sub["rate"].astype(float), 0.0)]["value"].astype(float).mean()
    mr = sub[np.isclose(sub["rate"].astype(float), rate)]["value"].astype(float).mean()
    return float((mr - m0) if metric in LOWER_IS_BETTER else (m0 - mr))


def degradation_sentence(curves: pd.DataFrame, a: str, others: list[str], metric: str, rate: float,
                         names: dict | None = None) -> str:
    """How much ``a`` and each of ``others`` lose on ``metric`` from rate 0 to ``rate`` (means over each row's
    seeds in ``curves``: columns label, seed, rate, metric, value), with each row's seed count; which loses
    more is left to the degradation test."""
    unit = " points" if in_percent(metric) else ""
    k, dg = _precision(metric)

    def loss(label: str) -> str:
        n = curves.loc[curves["label"] == label, "seed"].nunique()
        return f"{degradation(curves, label, metric, rate) * k:.{dg}f}{unit} ({seed_counts([n])})"

    s = f"From no missing data to {rate:.0%} missing, {name_of(a, names)} loses {loss(a)} of {metric_name(metric)}"
    if not others:
        return s + "."
    listed = "; ".join(f"{name_of(b, names)} {loss(b)}" for b in others)
    return s + f"; beside it: {listed}. Which of two drops is larger than noise is the degradation test's to say."


def claim_counts(claims: pd.DataFrame) -> dict[str, int]:
    """The verdicts of a claims table (columns ``resolved``, ``agrees with paper``): ``claims``,
    ``resolved``, ``as_paper`` and ``against`` (resolved, agreeing with the paper or not), ``not_resolved``
    and ``too_few`` (fewer seeds than a verdict needs)."""
    res, agree = claims["resolved"].astype(str), claims["agrees with paper"].astype(str)
    yes = res == "yes"
    return {"claims": len(claims), "resolved": int(yes.sum()), "as_paper": int((yes & (agree == "yes")).sum()),
            "against": int((yes & (agree == "no")).sum()), "not_resolved": int((res == "no").sum()),
            "too_few": int((res == NOT_ENOUGH_SEEDS).sum())}


def seeds_schedule(table: pd.DataFrame) -> str:
    """``"5 seeds; 20 + 60 epochs, ..."`` (``"1 or 3 seeds; ..."`` when rows differ): the seed counts and schedules
    of a verdict table's rows (its ``seeds`` and ``schedule`` columns), as every verdict sentence names them."""
    counts = pd.to_numeric(table["seeds"], errors="coerce").dropna() if "seeds" in table.columns else []
    sched = {part.removeprefix("A: ").removeprefix("B: ")
             for x in table.get("schedule", pd.Series(dtype=str)).dropna() for part in str(x).split("; ")
             if part and part != "nan"}
    return _seeds_schedule_text(counts, sched)


def _seeds_schedule_text(counts, schedules) -> str:
    """The words of :func:`seeds_schedule`: the distinct seed counts ("2 or 5 seeds") and the schedules, sorted."""
    seeds = [str(n) for n in sorted({int(x) for x in counts})]
    sched = sorted(set(schedules))
    if not seeds and not sched:
        return ""
    n_seeds = (", ".join(seeds[:-1]) + " or " + seeds[-1] if len(seeds) > 1 else "".join(seeds)) or "?"
    return f"{n_seeds} seed{'' if n_seeds == '1' else 's'}; {'; '.join(sched) or 'schedule not recorded'}"


def records_behind(records: list[dict]) -> str:
    """``"5 seeds; 60 epochs, patience 15; experts 20 + full 60 epochs, patience 15"``: the seed counts (per
    model row) and the schedules of the runs a "What we see" cell reads, in :func:`seeds_schedule`'s words.
    Degenerate runs are left out, as the tables leave them out."""
    from .ablations import schedule_text
    from .paper_rows import row_label

    kept = [r for r in records if not r.get("degenerate")]
    seeds: dict[str, set] = {}
    for r in kept:
        seeds.setdefault(row_label(r), set()).add(r["seed"])
    return _seeds_schedule_text([len(v) for v in seeds.values()], [schedule_text(r) for r in kept])


def claim_verdict(claims: pd.DataFrame, claim: str) -> str | None:
    """The verdict of one row of a claims table (index or ``claim`` column ``claim``) in words: resolved with
    or against the paper, or undecided as :func:`undecided_parts` sorts it (a lead, a split, a tie), with the
    Holm-adjusted p, the family's size and the seeds and schedule. ``None`` when the table has no such row."""
    named = claims.set_index("claim") if "claim" in claims.columns else claims
    if claim not in named.index:
        return None
    row = named.loc[claim]
    behind = seeds_schedule(named.loc[[claim]])
    p_adj, fam = _num(row.get("p adjusted (Holm)")), _num(row.get("claims in family"))
    holm = (f"Holm-adjusted p {p_adj:.3g}" + (f" over {int(fam)} claims" if not math.isnan(fam) else "")
            if not math.isnan(p_adj) else "no adjusted p")
    res = str(row.get("resolved"))
    if res == "yes":
        way = "with the paper" if is_yes(row.get("agrees with paper")) else "against the paper"
        return f"resolved {way} ({holm}; {behind})"
    if res == NOT_ENOUGH_SEEDS:
        return f"undecided: fewer than 3 seeds ({behind})"
    kind = {"none": "no interval to judge by", "tie": "a tie, every interval covers 0",
            "lead": "a lead, every interval excludes 0 on the same side but the rule does not resolve it",
            "split": "a split, the seed interval and the bootstrap over test samples disagree"}[interval_kind(row)[0]]
    if is_yes(row.get("direction as paper")) is False:
        kind += ", pointing against the paper"
    return f"undecided: {kind} ({holm}; {behind})"


def claims_sentence(claims: pd.DataFrame) -> str:
    """Count the claims table's verdicts: how many agree, contradict, or stay undecided (the undecided sorted by
    :func:`undecided_parts`), with the seeds and schedules behind them."""
    c = claim_counts(claims)
    n, yes, no, few = c["claims"], c["as_paper"], c["against"], c["too_few"]
    behind = seeds_schedule(claims)
    s = (f"Of {n} claims{f' ({behind})' if behind else ''}, our runs resolve {yes + no}: {yes} agree with the paper "
         f"and {no} contradict it; {n - yes - no} stay undecided")
    parts = [f"{few} of them because they have fewer than 3 seeds"] if few else []
    named = claims.reset_index() if "claim" not in claims.columns and claims.index.name == "claim" else claims
    undecided = named[named["resolved"].astype(str) == "no"]
    if "claim" not in named.columns:          # nothing names the rows: count them, never list "(0)", "(1)"
        undecided = undecided.set_index(pd.Index([f"row {i + 1}" for i in range(len(undecided))]))
    parts += undecided_parts(undecided, None, name="claim" if "claim" in named.columns else None)
    s += (" (" + "; ".join(parts) + ")." if parts else ".")
    names = None                                           # the claims' names: a column, or the index
    if "claim" in claims.columns:
        names = claims["claim"]
    elif claims.index.name == "claim":
        names = claims.index.to_series(index=claims.index)
    if names is not None:                                  # the resolved claims by name
        yes_rows = claims["resolved"].astype(str) == "yes"
        for word, agree in (("Agreeing", "yes"), ("Contradicting", "no")):
            named = list(names[yes_rows & (claims["agrees with paper"].astype(str) == agree)].astype(str))
            if named:
                shown = "; ".join(named[:5]) + (f"; and {len(named) - 5} more" if len(named) > 5 else "")
                s += f" {word}: {shown}."
    return s


def ledger_sentence(ledger: pd.DataFrame, brief: bool = False) -> str:
    """The deviation ledger's verdicts (:func:`mser_lib.report.ablations.deviation_ledger`): which departures
    our runs resolve, in which direction on MAE, and how many stay undecided, with the seeds behind them.
    ``brief``: the splits are counted, not named (the README; the full table and notebook 04 name them)."""
    if ledger.empty:
        return "No ledger row has runs on this dataset yet."
    seeds = sorted({int(n) for n in ledger["seeds"]})
    seed_text = (f"{seeds[0]} seed{'' if seeds[0] == 1 else 's'}" if len(seeds) == 1
                 else f"{seeds[0]}-{seeds[-1]} seeds")
    done = ledger[ledger["resolved"] == "yes"]
    worse = [r["deviation"] for _, r in done.iterrows() if float(r["MAE: flipped - default"]) > 0]
    better = [r["deviation"] for _, r in done.iterrows() if float(r["MAE: flipped - default"]) < 0]
    few = int((ledger["resolved"] == NOT_ENOUGH_SEEDS).sum())
    s = f"Of {len(ledger)} ledger rows ({seed_text} each), our runs resolve {len(done)} on MAE"
    if worse:
        s += f"; these departures cost accuracy: {'; '.join(worse)}"
    if better:
        s += f"; these improve on the default: {'; '.join(better)}"
    # a switch that changed no test score has no gap to test: said at the end, not counted as a tie
    same_mask = (ledger["identical to the default"].astype(str) == "True" if "identical to the default" in ledger
                 else pd.Series(False, index=ledger.index))
    rest = ledger[(ledger["resolved"] != "yes") & (ledger["resolved"] != NOT_ENOUGH_SEEDS) & ~same_mask]
    n_other = len(rest) + few
    if n_other:
        s += f". The other {n_other} stay undecided"
    parts = [f"{few} with fewer than 3 seeds"] if few else []
    # the Holm family's size: the ledger's "claims in family" column, which undecided_parts reads
    parts += undecided_parts(rest, None, name="deviation", effect="MAE: flipped - default", name_splits=not brief)
    if few and rest.empty:          # every undecided row short of seeds: the sentence the quick notebooks print
        s += f" ({few} of them with fewer than 3 seeds)."
    else:
        s += (": " + "; ".join(parts) if parts else "") + "."
    if "bootstrap 95% CI" in ledger.columns:
        seed_only = int(sum(_ci(v) is None for v in ledger["bootstrap 95% CI"]))
        if seed_only:
            s += (f" {seed_only} of the {len(ledger)} rows are paired over seeds only (no bootstrap over test "
                  "videos: their predictions were not kept).")
    same = list(ledger.loc[same_mask, "deviation"])
    if same:
        s += (f" {'This switch' if len(same) == 1 else f'These {len(same)} switches'} changed no test score of "
              "this profile's default runs at all, so there is no gap to test (its models already behave that "
              f"way, or the switch never acts in them): {'; '.join(same)}.")
    return s


_INTERVAL = re.compile(r"^\s*\[\s*([^,\]]+?)\s*,\s*([^\]]+?)\s*\]")


def _ci(text) -> tuple[float, float] | None:
    """``(lo, hi)`` of a table's interval cell ``"[lo, hi]"`` (a unit after it, ``"[1.6, 11.6] pp"``, is
    allowed); None for an empty cell, one that does not parse, or one without finite bounds."""
    m = _INTERVAL.match(text) if isinstance(text, str) else None
    if m is None:
        return None
    try:
        lo, hi = float(m.group(1)), float(m.group(2))
    except ValueError:
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def is_yes(x) -> bool | None:
    """A yes/no cell of a verdict table as written or read back from CSV: ``True`` for yes/true/1, ``False`` for
    anything else, ``None`` for an empty cell (the claims tables' parser too, ``ablations.adjust_claims``)."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or str(x).strip() == "":
        return None
    return str(x).strip().lower() in ("yes", "true", "1")


def _num(x) -> float:
    v = pd.to_numeric(pd.Series([x]), errors="coerce").iloc[0]
    return float(v) if pd.notna(v) else math.nan


def _side(ci: tuple[float, float]) -> int:
    return 1 if ci[0] > 0 else -1 if ci[1] < 0 else 0


def interval_sides(row, effect: str | None = None) -> tuple[int | None, int | None]:
    """Where the row's two intervals lie, ``(seed-level, bootstrap over test samples)``: +1 above 0, -1 below,
    0 covering 0, ``None`` when the row has no such interval. Read as the verdict reads them: the seed-level
    interval excludes 0 exactly when ``p (paired t)`` is below :data:`~mser_lib.report.stats.ALPHA` (else from
    the ``seed 95% CI`` / ``seed CI`` text), the bootstrap one when ``CI excludes 0`` says so (else from the
    ``bootstrap 95% CI`` / ``bootstrap CI`` text). Where a table says only *that* an interval excludes 0, its
    side comes from the interval text when it shows one, else from the other interval's side, else from the
    sign of the row's ``effect`` column (+1 when the row has none)."""
    from .stats import ALPHA

    get = row.get if hasattr(row, "get") else (lambda k, d=None: d)
    unknown = 2                                  # excludes 0, side not shown: settled below

    def one(excludes: bool | None, texts: tuple[str, ...]) -> int | None:
        ci = next((c for c in (_ci(get(t)) for t in texts) if c is not None), None)
        if excludes is None:
            return None if ci is None else _side(ci)
        if not excludes:
            return 0
        return _side(ci) if ci is not None and _side(ci) != 0 else unknown

    p = _num(get("p (paired t)"))
    sides = [one(None if math.isnan(p) else bool(p < ALPHA), ("seed 95% CI", "seed CI")),
             one(is_yes(get("CI excludes 0")), ("bootstrap 95% CI", "bootstrap CI"))]
    known = [x for x in sides if x in (1, -1)]
    eff = _num(get(effect)) if effect else math.nan
    guess = known[0] if known else (-1 if eff < 0 else 1)    # the other interval's side, else the effect's
    seed, boot = (guess if x == unknown else x for x in sides)
    return seed, boot


def interval_kind(row, effect: str | None = None) -> tuple[str, int]:
    """How an unresolved row's intervals lie (:func:`interval_sides`), as :func:`undecided_parts` sorts them:
    ``"lead"`` (every interval excludes 0, on one side), ``"split"`` (they disagree), ``"tie"`` (every one covers
    0) or ``"none"`` (no interval); with the number of intervals the row has."""
    sides = [x for x in interval_sides(row, effect) if x is not None]
    if not sides:
        return "none", 0
    if all(x == 0 for x in sides):
        return "tie", len(sides)
    if 0 not in sides and len(set(sides)) == 1:
        return "lead", len(sides)
    return "split", len(sides)


def undecided_parts(rows: pd.DataFrame, family: int | None, name: str | None = None,
                    effect: str | None = None, name_splits: bool = True) -> list[str]:
    """The one rule by which every sentence sorts the rows a verdict table leaves unresolved (``rows``: those
    rows, with at least 3 seeds). By where their intervals lie before the multiplicity adjustment
    (:func:`interval_sides`):

    * **a lead**: every interval the row has excludes 0, on the same side, yet the row is not resolved (Holm's
      adjustment over the ``family`` comparisons tested together, a seed of the other sign, or no bootstrap):
      named, with its ``effect``;
    * **split**: one interval excludes 0 and the other covers it, or they exclude it on opposite sides (seeds
      and test samples disagree): named;
    * **a tie**: every interval covers 0, counted;
    * **no interval**: counted.

    ``name``: the column (or ``None``: the index) naming a row. ``family``: the size of the Holm family (a
    ``claims in family`` column, where the rows have one, wins; rows from several families, as notebook 06's
    ``claims_all``, are said to be adjusted within their own tables). A claims row whose mean points against the
    paper (``direction as paper`` "no") is marked so. ``name_splits=False`` counts the splits without naming them
    (the README's short form; the full table names them). Returns the clauses, for a sentence to join."""
    lead, split, bare = [], [], 0
    ties = {"both": 0, "seeds": 0}
    for idx, r in rows.iterrows():
        label = str(r[name]) if name else (" / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx))
        if effect is not None and effect in r.index and not math.isnan(_num(r[effect])):
            label += f" ({_num(r[effect]):+.3f})"
        if "direction as paper" in r.index and is_yes(r["direction as paper"]) is False:
            label += " (pointing against the paper)"             # a claims table: which way the lead points
        kind, n_sides = interval_kind(r, effect)
        if kind == "none":
            bare += 1
        elif kind == "tie":
            ties["both" if n_sides == 2 else "seeds"] += 1
        elif kind == "lead":
            lead.append(label)
        else:
            split.append(label)
    sizes = {int(v) for v in (_num(x) for x in rows.get("claims in family", pd.Series(dtype=float)))
             if not math.isnan(v)}
    if len(sizes) == 1:
        family = sizes.pop()
    out = []
    over = (" within each claim's own notebook table" if len(sizes) > 1 else
            f" over the {family} comparisons tested together" if family else "")
    if lead:
        out.append(f"{len(lead)} with every interval excluding 0 on the same side but not resolved under the rule "
                   f"(Holm's adjustment{over}, every seed the same sign, a bootstrap interval) ({'; '.join(lead)}): "
                   "a lead, not a finding")
    if split:
        named = f" ({'; '.join(split)})" if name_splits else ""
        out.append(f"{len(split)} whose intervals disagree, one excluding 0 and the other covering it or excluding it "
                   f"on the other side{named}: the seeds and the test samples tell different stories")
    n_ties = ties["both"] + ties["seeds"]
    if n_ties:
        what = ("the seeds and the test samples" if not ties["seeds"] else "the seeds" if not ties["both"] else
                "the seeds (and, where the row has a bootstrap, the test samples)")
        out.append(f"{n_ties} whose intervals all cover 0: a tie within what {what} can tell")
    if bare:
        out.append(f"{bare} without an interval in this table")
    return out


#: The claims of notebooks 03-05 by the paper's table or figure they come from: (title, test on the claim text).
CLAIM_GROUPS = (
    ("Each paper's Table 1 (its method beats the baselines mser runs)", lambda c: c.startswith("Table 1: ")),
    ("FEMF Tables 2-3 (removing a module or a loss hurts)", lambda c: c.startswith("Removing ")),
    ("FEMF Table 4 (modality subsets)", lambda c: c.endswith("(FEMF, MAE)")),
    ("Atsuko Table 4 (SBN and MCM)", lambda c: c.startswith("Atsuko: ")),
    ("FEMF Fig. 4-5 (sensitivity and interaction order)", lambda c: c.startswith("FEMF ") and "degrades" not in c),
    ("Atsuko Fig. 3 (sensitivity)", lambda c: c.startswith("Atsuko ")),
    ("FEMF Fig. 6 (missing modalities)", lambda c: "degrades slower" in c),
)


def synthesis_sentences(claims: pd.DataFrame) -> list[str]:
    """What a dataset says about each group of the papers' claims (:data:`CLAIM_GROUPS`), from the claims
    table (``claims_all``): per group how many claims the runs resolve, in which direction, with the seeds
    and schedules behind them; the resolved claims by name. Verdicts are the table's: each claim keeps the Holm
    verdict of the notebook table that tested it."""
    out = []
    claims = claims.reset_index() if "claim" not in claims.columns else claims
    for title, member in CLAIM_GROUPS:
        sub = claims[[member(str(c)) for c in claims["claim"]]]
        if sub.empty:
            continue
        c = claim_counts(sub)
        done = sub[sub["resolved"] == "yes"]
        agree = [str(x) for x in done.loc[done["agrees with paper"] == "yes", "claim"]]
        against = [str(x) for x in done.loc[done["agrees with paper"] == "no", "claim"]]
        s = f"{title}: of {c['claims']} claims ({seeds_schedule(sub) or 'seeds and schedule not recorded'})"
        if c["too_few"] == c["claims"]:
            out.append(s + ", none can be decided here: every one has fewer than 3 seeds (the claims profile "
                       "trains 5).")
            continue
        if not agree and not against:
            s += ", none is resolved"
        else:
            if agree:
                s += f", {len(agree)} resolved as the paper says ({'; '.join(agree)})"
            if against:
                s += f"{',' if agree else ''} {len(against)} resolved against it ({'; '.join(against)})"
            s += f"; {c['claims'] - len(agree) - len(against)} undecided"
        parts = [f"{c['too_few']} with fewer than 3 seeds"] if c["too_few"] else []
        parts += undecided_parts(sub[sub["resolved"] == "no"], None, name="claim")
        if parts:
            s += ": " + "; ".join(parts)
        out.append(s + ".")
    return out


PROTOCOL_NAMES = (("leaky", "leaky validation"), ("optimistic", "the test epoch and seed with the best test Acc-2"))


def _protocol_shifts(protocols: pd.DataFrame, metric: str) -> list[dict]:
    """Per model and protocol: how far the protocol moves ``metric`` from the clean one (points, and seed sds of
    the clean protocol; ``sd`` 0 leaves the latter NaN)."""
    frame = protocols.reset_index() if "model" not in protocols.columns else protocols
    out = []
    for model, sub in frame.groupby("model", sort=False):
        rows = {str(p).split()[0].rstrip(":"): str(v) for p, v in zip(sub["protocol"], sub[metric]) if str(p)}
        clean = rows.get("clean")
        if clean is None or "±" not in clean:
            continue
        mean, sd = (float(x) for x in clean.split("±"))
        seeds = next((str(v) for p, v in zip(sub["protocol"], sub.get("seeds", [""] * len(sub)))
                      if str(p).startswith("clean")), "")
        n = len([x for x in seeds.split(",") if x.strip()])
        for key, name in PROTOCOL_NAMES:
            val = rows.get(key)
            if val and val.strip():
                d = float(val.split("±")[0]) - mean
                out.append({"model": model, "clean": clean, "protocol": name, "points": d,
                            "sds": d / sd if sd > 0 else math.nan, "n": n})
    return out


def protocol_sentences(protocols: pd.DataFrame, metric: str = "Acc-2 (neg/non-neg)") -> list[str]:
    """How far the leaky and the test-selected protocols move each model's ``metric`` from the clean
    (cross-fitted) one, in units of the clean protocol's seed standard deviation (``selection_protocols``)."""
    by_model: dict[str, list[dict]] = {}
    for r in _protocol_shifts(protocols, metric):
        by_model.setdefault(r["model"], []).append(r)
    out = []
    for model, rs in by_model.items():
        parts = [f"{r['protocol']} {r['points']:+.1f} points"
                 + ("" if math.isnan(r["sds"]) else f" ({r['sds']:+.1f} seed sd)") for r in rs]
        out.append(f"{name_of(model)}: against its clean {metric} of {rs[0]['clean']}, " + ", ".join(parts) + ".")
    return out


def protocol_summary(protocols: pd.DataFrame, metric: str = "Acc-2 (neg/non-neg)") -> list[str]:
    """One sentence per protocol over all models of the selection-protocol table: the range and median of its
    move from the clean protocol in seed sds, and how many models it moves by more than one seed sd each way
    (the per-model moves: :func:`protocol_sentences`)."""
    shifts = _protocol_shifts(protocols, metric)
    out = []
    for _, name in PROTOCOL_NAMES:
        rs = [r for r in shifts if r["protocol"] == name and not math.isnan(r["sds"])]
        if not rs:
            continue
        v = np.array([r["sds"] for r in rs])
        up, down = int((v > 1).sum()), int((v < -1).sum())
        s = (f"{_cap(name)} moves the {len(rs)} models' {metric} by {v.min():+.1f} to {v.max():+.1f} seed sd "
             f"of the clean protocol (median {np.median(v):+.1f}): {up} up and {down} down by more than one seed sd.")
        few = [r for r in rs if 0 < r["n"] < 3]
        if few:       # a seed sd of two runs is a rough unit: say whose moves rest on one
            s += (" " + _cap(", ".join(f"{name_of(r['model'])} ({r['sds']:+.1f}: {seed_counts([r['n']])})"
                                       for r in few))
                  + f" {'has' if len(few) == 1 else 'have'} fewer than 3 seeds here, so "
                  f"{'its' if len(few) == 1 else 'their'} seed sd is a rough unit.")
        out.append(s)
    return out


def what_we_see(sentences: list[str | None], dataset=None, behind: str | None = None) -> str:
    """The Markdown of a "What we see" cell: the sentences (``None`` entries dropped) as bullets,
    headed by which data they describe and, with ``behind`` (:func:`records_behind`, :func:`seeds_schedule`),
    by the seeds and schedules of the runs they read."""
    head = "**What we see**"
    if dataset is not None:
        head += (" (built-in benchmark: the answer is planted, so these are checks of the methods"
                 if is_builtin(dataset) else f" ({getattr(dataset, 'name', dataset)}: real data")
        head += f"; {behind})" if behind else ")"
    elif behind:
        head += f" ({behind})"
    body = "\n".join(f"- {s}" for s in sentences if s)
    return f"{head}\n\n{body}" if body else head


# --- Notebooks 00-02 and 06: data, spectra, experts, attention and routers --------------------------


def cycles_to_nu(band: tuple[float, float]) -> tuple[float, float]:
    """A band in cycles per step (notebook 00, ``SyntheticConfig``) on Atsuko's graph-frequency axis
    ``nu = k / (T - 1)`` (notebook 01). Eigenvector ``k`` of the path graph oscillates like
    ``cos(pi k n / (T - 1))``: ``k / (2 (T - 1))`` cycles per step, so ``nu = 2 x cycles per step``."""
    return (2.0 * float(band[0]), 2.0 * float(band[1]))


def probe_sentences(r2: dict, margin: float = 0.2) -> list[str]:
    """Notebook 00's linear probes (test R² by probe name: ``band-limited``, ``frequency-blind``,
    ``text, raw``): does reading the generator's bands beat reading the raw signal by ``margin``?"""
    band, blind = float(r2["band-limited"]), float(r2["frequency-blind"])
    s = (f"A ridge probe on audio and vision band-passed to the generator's bands recovers R² = {band:.2f} of the "
         f"label's audio+vision component; the same probe on the raw signal recovers {blind:.2f}")
    if band > blind + margin:
        s += f": the evidence is readable only by frequency (gap {band - blind:.2f}, above the {margin} threshold)."
    else:
        s += f": a gap of {band - blind:.2f}, below the {margin} threshold, so frequency barely matters here."
    out = [s]
    if "text, raw" in r2:
        out.append(f"Text needs no band-pass: its raw mean and RMS give R² = {float(r2['text, raw']):.2f} of the "
                   "label's text component.")
    return out


def leakage_sentence(leak: pd.DataFrame, min_gap: float = 0.05, metric: str = "acc2_has0") -> str:
    """Notebook 00's leakage lesson: per modality set, ``metric`` on the standard folds against the
    bc-LSTM split (columns split, modalities, ``metric``); gaps above ``min_gap`` are named."""
    t = leak.set_index(["split", "modalities"])[metric].astype(float)
    mods = [m for m in dict.fromkeys(leak["modalities"]) if ("standard", m) in t and ("bclstm", m) in t]
    gaps = {m: t["standard", m] - t["bclstm", m] for m in mods}
    leaky = [m for m in mods if gaps[m] > min_gap]
    mn = metric_name(metric)
    if not leaky:
        return (f"No feature set scores more than {min_gap * 100:.0f} points higher in {mn} on the standard folds "
                "than on the bc-LSTM split: no leakage shows at this threshold.")
    parts = ", ".join(f"{m.upper()} {t['standard', m] * 100:.1f}% against {t['bclstm', m] * 100:.1f}%" for m in leaky)
    return (f"The same ridge regression scores higher {mn} on the standard folds than on the bc-LSTM split for "
            f"{', '.join(m.upper() for m in leaky)} ({parts}; threshold {min_gap * 100:.0f} points): those "
            "features were learned on labels of the standard test videos.")


def summary_sentence(summary: pd.DataFrame, name: str) -> str:
    """The dataset summary (``analysis.dataset_summary``) in one sentence: sizes and labels of train/test."""
    s = summary.set_index("split") if "split" in summary.columns else summary
    tr = s.loc["train"]
    def n(split):
        k = int(s.loc[split, "samples"])
        pos = int(s.loc[split, "labelled positions"]) if "labelled positions" in s.columns else k
        return f"{k} {split} samples" + (f" ({pos} labelled positions)" if pos != k else "")

    out = f"{name}: {n('train')}"
    if "test" in s.index:
        out += f" and {n('test')}"
    if "label mean" in s.columns:
        out += f"; training labels have mean {float(tr['label mean']):+.2f} and std {float(tr['label std']):.2f}"
    if "zero labels (%)" in s.columns:
        out += (f", {float(tr['zero labels (%)']):.1f}% of them exactly 0 (which the two Acc-2 variants treat "
                "differently)")
    return out + "."


def femf_cut_sentence(c: float, bands: dict) -> str:
    """Where FEMF's cut falls relative to planted bands (cycles per step). The low band keeps rfft
    bins ``k < c_T``, ``c_T ~ c (T/2 + 1)``: frequencies below about ``c / 2`` cycles per step."""
    cut = c / 2.0
    where = []
    for name, (lo, hi) in bands.items():
        side = "low" if hi <= cut else "high" if lo >= cut else "both"
        where.append(f"{name} ({lo:.2f}-{hi:.2f}) in the {side} band" if side != "both"
                     else f"{name} ({lo:.2f}-{hi:.2f}) straddling the cut")
    return (f"At the preset's c = {c}, FEMF's cut lies near {cut:.2f} cycles per step, which puts "
            + "; ".join(where) + ".")


def high_share_sentence(share: pd.DataFrame, c: float) -> str:
    """Energy share of FEMF's high band per modality at cut-off ``c`` (``analysis.high_band_share``:
    columns c, modality, high_share)."""
    sub = share[np.isclose(share["c"].astype(float), c)]
    if sub.empty:
        return f"The table above has no row for c = {c}."
    parts = ", ".join(f"{m} {float(v) * 100:.0f}%" for m, v in zip(sub["modality"], sub["high_share"]))
    return f"At c = {c}, FEMF's high band holds this share of each modality's energy: {parts}."


def band_roles(cuts, evidence: tuple[float, float] | None, nuisance: tuple[float, float] | None,
               dc_width: float) -> list[dict]:
    """What each band ``[lo, hi)`` of the cuts (graph frequency nu in [0, 1]) holds of a planted story:
    ``evidence`` if it overlaps the evidence band, else ``dc`` if it is the nu = 0 coefficient alone
    (``hi <= dc_width``, the smallest non-zero graph frequency ``1 / (T_max - 1)`` of the data),
    else ``nuisance`` if it overlaps the nuisance band, else ``noise``.
    Bands in nu; convert cycles per step with :func:`cycles_to_nu`."""
    edges = [0.0, *[float(c) for c in cuts], 1.0]
    eps = 1e-9

    def overlaps(lo, hi, band):
        return band is not None and max(lo, band[0]) < min(hi, band[1]) - eps

    roles = []
    for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if overlaps(lo, hi, evidence):
            role = "evidence"
        elif lo <= eps and hi <= dc_width + eps:
            role = "dc"
        elif overlaps(lo, hi, nuisance):
            role = "nuisance"
        else:
            role = "noise"
        roles.append({"band": b + 1, "lo": lo, "hi": hi, "role": role})
    return roles


_ROLE = {"dc": "is the ν = 0 coefficient alone (the per-sample offset)", "nuisance": "lies in the nuisance band",
         "noise": "holds neither evidence nor nuisance"}


def band_allocation_sentence(modality: str, cuts, evidence: tuple[float, float] | None,
                             nuisance: tuple[float, float] | None, dc_width: float, who: str = "the") -> str:
    """How many of ``who`` equal-energy bands of ``modality`` hold none of the planted evidence, and
    what they hold instead (:func:`band_roles`; all bands in nu)."""
    roles = band_roles(cuts, evidence, nuisance, dc_width)
    k = len(roles)
    ev = [r for r in roles if r["role"] == "evidence"]
    idle = [r for r in roles if r["role"] != "evidence"]

    def rng(r):
        return f"ν {r['lo']:.3f}-{r['hi']:.3f}"

    head = f"{_cap(modality)}"
    if evidence is not None:
        head += f" (evidence at ν {evidence[0]:.2f}-{evidence[1]:.2f})"
    if not idle:
        return (f"{head}: every one of {who} {k} equal-energy bands (cut on the training split at initialisation) "
                "holds part of the planted evidence.")
    what = "; ".join(f"band {r['band']} ({rng(r)}) {_ROLE[r['role']]}" for r in idle)
    s = (f"{head}: {len(idle)} of {who} {k} equal-energy bands (cut on the training split at initialisation) hold "
         f"none of the planted evidence: {what}")
    if ev:
        s += "; the evidence sits in " + ", ".join(f"band {r['band']} ({rng(r)})" for r in ev)
    return s + "."


def dc_share_sentence(spectra: dict, k: int) -> str | None:
    """Modalities whose nu = 0 coefficient alone holds more than 1/k of the mean spectral energy, so
    that no equal-energy cut can split it (``spectra``: modality -> mean energy per coefficient)."""
    shares = {m: float(np.asarray(e)[0] / max(float(np.sum(e)), 1e-300)) for m, e in spectra.items()}
    big = {m: v for m, v in shares.items() if v > 1.0 / k}
    if not big:
        return (f"No modality's ν = 0 coefficient holds more than 1/K = {1 / k:.2f} of its energy "
                f"(largest: {max(shares, key=shares.get)} {max(shares.values()):.2f}), so equal energy is reachable.")
    parts = ", ".join(f"{m} {v:.2f}" for m, v in big.items())
    return (f"The ν = 0 coefficient alone holds more than 1/K = {1 / k:.2f} of the energy of {', '.join(big)} "
            f"({parts}): no cut can split one coefficient, so equal energy is out of reach there.")


def expert_band_sentences(corr: pd.Series, expected: dict | None = None, margin: float = 0.1) -> list[str]:
    """Which band's expert of each modality correlates better with the label on VALID (``corr``:
    Series indexed by (modality, band), seed means), with a ``margin`` in Corr to call a winner; when
    ``expected`` (modality -> band where the evidence was planted) is given, whether the winner is it."""
    out = []
    for m in dict.fromkeys(corr.index.get_level_values(0)):
        lo, hi = float(corr[m, "low"]), float(corr[m, "high"])
        win = "low" if lo > hi else "high"
        gap = abs(lo - hi)
        s = f"{_cap(m)}: the low-band expert reaches Corr {lo:.2f}, the high-band one {hi:.2f}"
        if gap <= margin:
            s += f", within {margin} of each other: neither band wins"
            if expected and m in expected:
                s += f" (the evidence was planted in the {expected[m]} band)"
            out.append(s + ".")
            continue
        s += f": the {win} band wins by {gap:.2f}"
        if expected and m in expected:
            s += (", where the evidence was planted." if win == expected[m]
                  else f", although the evidence was planted in the {expected[m]} band.")
        else:
            s += "."
        out.append(s)
    return out


def stage_gain_sentence(stage1, stage2, metric: str = "mae") -> str:
    """Stage 2 (the full model, experts frozen) against stage 1 (mean of the experts) on VALID, per seed
    (``stage1``, ``stage2``: one value per seed of the same runs, or one number each). The two stages of a seed
    are one run, so the gap is judged paired: its mean against the standard deviation of the per-seed gaps, at
    the precision shown. Seeds without both values are left out (said)."""
    a, b = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (stage2, stage1))
    ok = np.isfinite(a) & np.isfinite(b)
    mn = metric_name(metric)
    if not ok.any():
        return f"No seed has a valid {mn} for both stages."
    dropped = int((~ok).sum())
    a, b = a[ok], b[ok]
    n = len(a)

    def sd(v: np.ndarray) -> float:
        return float(v.std(ddof=1)) if n > 1 else math.nan

    head = (f"Mean over {seed_counts([n])}" + (f" ({dropped} without both stages left out)" if dropped else "")
            + f", the full model (stage 2) reaches valid {mn} {fmt_value(metric, a.mean(), sd(a))} against "
            f"{fmt_value(metric, b.mean(), sd(b))} for the mean of the six experts (stage 1)")
    if _shown(metric, a.mean()) == _shown(metric, b.mean()):
        return head + ": the same at the precision shown."
    word = "better" if better(metric, a.mean(), b.mean()) else "worse"
    if n < 2:
        return head + f": {word}, from a single seed: no spread to judge the gap by."
    gap, spread = abs(a.mean() - b.mean()), sd(a - b)
    if _shown(metric, gap) > _shown(metric, spread):
        return head + f": {word}, by more than the spread of the per-seed gaps."
    return head + (f": {word} in the mean, but by less than the spread of the per-seed gaps: these seeds do not "
                   "tell the stages apart.")


def attention_locality(attn: np.ndarray, width: int) -> tuple[float, float]:
    """Attention mass within ``width`` positions of the diagonal (mean over query rows) and what
    uniform attention over the same ``L`` keys puts there: ``(mass, uniform_mass)``."""
    a = np.asarray(attn, dtype=float)
    n = a.shape[-1]
    near = np.abs(np.subtract.outer(np.arange(a.shape[0]), np.arange(n))) <= width
    mass = float((a * near).sum(1).mean())
    uniform = float(near.sum(1).mean() / n)
    return mass, uniform


def near_diagonal(attn: np.ndarray, width_frac: float = 0.1) -> tuple[int, float, float]:
    """``(width, mass, uniform_mass)``: :func:`attention_locality` at ``width = max(1, round(width_frac L))``."""
    w = max(1, int(round(width_frac * np.asarray(attn).shape[-1])))
    return (w, *attention_locality(attn, w))


def locality_table(maps: dict, width_frac: float = 0.1) -> pd.DataFrame:
    """One row per attention map (``{"attn_<band>_<modality>": (L, L)}``): the near-diagonal mass
    (within ``width = max(1, round(width_frac L))`` steps), the uniform-attention reference and their ratio."""
    rows = []
    for k, v in maps.items():
        _, band, mod = k.split("_", 2)
        n = np.asarray(v).shape[-1]
        w, mass, uni = near_diagonal(v, width_frac)
        rows.append({"modality": mod, "band": band, "L": n, "width": w, "near-diagonal mass": mass,
                     "uniform reference": uni, "ratio": mass / uni if uni > 0 else math.nan})
    return pd.DataFrame(rows)


def attention_sentences(table: pd.DataFrame, as_uniform: float = 1.5, sharper: float = 1.25,
                        source: str = "these maps") -> list[str]:
    """Is FEMF's expert attention local? A map is *about as local as uniform attention* when its
    near-diagonal mass is below ``as_uniform`` x the uniform reference; the high band is *more local*
    than the low band when its ratio exceeds the low band's by the factor ``sharper``. ``source`` names what
    the maps come from (e.g. "one test sample of seed 0's model"): a reading of it, not a test."""
    r = table["ratio"].astype(float)
    w = ", ".join(sorted({str(int(x)) for x in table["width"]}))
    near = table[r < as_uniform]
    lo_r, hi_r = float(r.min()), float(r.max())
    if len(near) == len(table):
        s1 = (f"In {source}, FEMF's expert attention is about as local as uniform attention: in all {len(table)} "
              f"maps the mass within {w} step(s) of the diagonal is {lo_r:.2f}-{hi_r:.2f}x what uniform attention "
              f"puts there (threshold {as_uniform}x).")
    else:
        loc = ", ".join(f"{m} {b} ({x:.2f}x)" for m, b, x in zip(table["modality"], table["band"], r)
                        if x >= as_uniform)
        s1 = (f"In {source}, {len(table) - len(near)} of {len(table)} maps put at least {as_uniform}x the "
              f"uniform-attention mass within {w} step(s) of the diagonal: {loc}; the others are about as local as "
              "uniform attention.")
    piv = table.pivot(index="modality", columns="band", values="ratio")
    mods = [m for m in piv.index if {"low", "high"} <= set(piv.columns)]
    yes = [m for m in mods if piv.loc[m, "high"] > sharper * piv.loc[m, "low"]]
    if len(yes) == len(mods) and mods:
        s2 = (f"As FEMF reads its Fig. 7, the high-band map is more local than the low-band map (by {sharper}x) "
              "for every modality.")
    elif yes:
        s2 = (f"FEMF reads its Fig. 7 as high-frequency experts attending to local cues and low-frequency ones to "
              f"global context; here the high-band map is more local (by {sharper}x) only for {', '.join(yes)}.")
    else:
        s2 = (f"No modality's high-band map is {sharper}x more local than its low-band map here, so {source} do "
              "not show FEMF's reading of its Fig. 7 (high-frequency experts attend to local cues, low-frequency "
              "ones to global context).")
    return [s1, s2]


def band_weights_sentence(weights: pd.DataFrame, tol: float = 0.05, what: str = "mean band weights") -> str:
    """Are Atsuko's band weights (rows: modality, columns: band) nearly uniform, i.e. every one within
    ``tol`` of 1/B?"""
    w = weights.astype(float)
    nb = w.shape[1]
    dev = (w - 1.0 / nb).abs()
    worst = dev.stack().idxmax()
    gap = float(dev.to_numpy().max())
    if gap <= tol:
        return (f"Atsuko's {what} are nearly uniform: every one is within {tol} of 1/B = {1 / nb:.3f} (largest gap "
                f"{gap:.3f}, {worst[0]} {worst[1]}). The band router hardly re-weights the bands, although Atsuko "
                "describes it as selectively attending to emotionally relevant frequencies.")
    top = w.idxmax(axis=1)
    far = [m for m in w.index if float(dev.loc[m].max()) > tol]
    parts = ", ".join(f"{m} favours {top[m]} ({float(w.loc[m, top[m]]):.3f})" for m in far)
    rest = [m for m in w.index if m not in far]
    s = (f"Atsuko's {what} move away from uniform (1/B = {1 / nb:.3f}) by more than {tol} for {', '.join(far)}: "
         f"{parts}")
    verb = "stays" if len(rest) == 1 else "stay"
    return s + (f"; {', '.join(rest)} {verb} within {tol} of uniform." if rest else ".")


def separability_sentence(r2: dict, plain: str, full: str, margin: float = 0.05, source: str = "") -> str:
    """Atsuko Fig. 4 in a number: the cross-validated ridge R² of the label on the fused features of
    each Table 4 setting (``r2``: setting -> R², in table order), and whether the full model's
    (``full``) exceeds the plain one's (``plain``) by more than ``margin``. The paper sees clusters
    become more compact as SBN and MCM are added. ``source`` names the models read (e.g. one seed's)."""
    listed = ", ".join(f"{k} {v:.2f}" for k, v in r2.items())
    gap = round(r2[full], 2) - round(r2[plain], 2) + 0.0       # the gap of the R² shown; never "-0.00"
    where = f"5-fold, test split; {source}" if source else "5-fold, test split"
    s = f"Ridge R² of the label on the fused features ({where}): {listed}. "
    if gap > margin:
        return s + (f"With SBN and MCM the label is more linearly readable than without ({gap:+.2f}, margin "
                    f"{margin}), in the direction of Atsuko's Fig. 4.")
    return s + (f"Adding SBN and MCM changes it by {gap:+.2f} (margin {margin}): the fused features are not more "
                "separable by this measure, although Atsuko's Fig. 4 shows clusters becoming more compact.")


def mcm_weight_sentence(with_mcm: pd.Series, without: pd.Series, tol: float = 0.05, what: str = "text",
                        source: str = "") -> str:
    """Atsuko Fig. 5 in a number: the mean modality weight of ``what`` with MCM against without it (the
    SBN-only row). The paper sees MCM move weight away from text. ``source`` names what the means are over
    (e.g. "10 test samples, seed 0's models"): a reading of those, not a test."""
    a, b = float(with_mcm[what]), float(without[what])
    gap = a - b
    over = f" ({source})" if source else ""
    s = f"With MCM, {what}'s mean modality weight{over} is {a:.3f}; without it (SBN only) {b:.3f}"
    if gap < -tol:
        return s + f": MCM moves weight away from {what} ({gap:+.3f}, threshold {tol}), as Atsuko's Fig. 5 says."
    if gap > tol:
        return s + (f": MCM moves weight towards {what} ({gap:+.3f}, threshold {tol}), the opposite of Atsuko's "
                    "Fig. 5.")
    return s + (f": MCM hardly moves it ({gap:+.3f}, threshold {tol}), where Atsuko's Fig. 5 sees weight move away "
                f"from {what}.")


def missing_weights_sentence(table: pd.DataFrame, model: str, tol: float = 0.05,
                             never_masked: tuple[int, ...] = ()) -> str:
    """How a router's mean weights move from no missing data to the largest missing rate (``table``:
    rows are rates, columns the weights' names, e.g. ``text``, ``audio``, ``vision``, ``joint``), measured
    against what masking alone would give (:func:`mser_lib.report.ablations.masking_alone`: the
    complete-data weights renormalised over what is present; ``never_masked``: columns no drop removes)."""
    from .ablations import masking_alone

    t = table.astype(float).sort_index()
    r0, r1 = t.index[0], t.index[-1]
    # what masking alone gives at every rate, and how far the measured weights are from it there
    alone = pd.DataFrame([masking_alone(t.loc[r0].to_numpy(), float(r), never_masked) for r in t.index],
                         index=t.index, columns=t.columns)
    beyond = t - alone
    listed = ", ".join(f"{c} {t.loc[r0, c]:.3f} -> {t.loc[r1, c]:.3f} (masking alone: {alone.loc[r1, c]:.3f})"
                       for c in t.columns)
    s = f"{model}'s mean weights from {float(r0):.0%} to {float(r1):.0%} missing: {listed}"
    big = [(r, c, float(beyond.loc[r, c])) for r in t.index for c in t.columns if abs(beyond.loc[r, c]) > tol]
    if not big:
        return s + (f"; at no rate is any more than {tol} (the tolerance) from what masking alone gives: within it, "
                    "the moves are the mask's, not the router's.")
    worst: dict[str, tuple] = {}
    for r, c, v in big:                       # each weight's largest departure, with the rate where it is
        if c not in worst or abs(v) > abs(worst[c][1]):
            worst[c] = (r, v)
    parts = ", ".join(f"{c} {'gains' if v > 0 else 'loses'} up to {abs(v):.3f} (at {float(r):.0%})"
                      for c, (r, v) in worst.items())
    rates = sorted({float(r) for r, _, _ in big})
    return s + (f"; beyond masking alone, by more than {tol}, at {len(rates)} of the {len(t) - 1} missing rates "
                f"({', '.join(f'{x:.0%}' for x in rates)}): {parts}.")


def seed_counts(counts) -> str:
    """``3 seeds`` / ``1-3 seeds`` from per-row seed counts."""
    ns = sorted({int(n) for n in counts})
    if not ns:
        return "no seeds"
    text = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    return f"{text} seed{'' if ns == [1] else 's'}"


def forest_caption(results, what: str) -> str:
    """One line under a forest plot (:func:`mser_lib.report.ablation_figures.forest`): how many paired
    comparisons, on how many seeds, how the bars read, and how many bootstrap intervals exclude 0 (before Holm:
    the verdicts are the tables')."""
    results = list(results)
    clear = sum(bool(r.get("boot_excludes")) for r in results)
    return (f"{what}: {len(results)} paired comparisons ({seed_counts(len(r.get('seeds') or []) for r in results)} "
            "each); dot = mean over seeds, thick bar = seed 95% interval, thin bar = bootstrap 95% interval over "
            f"test samples. {clear} of {len(results)} thin bars exclude 0, before Holm; the tests table holds the "
            "verdicts.")


def points_caption(frame: pd.DataFrame, what: str, row_col: str = "row") -> str:
    """One line under a per-seed figure: how many rows, on how many seeds each, and how to read it."""
    per_row = frame.groupby(row_col)["seed"].nunique()
    return (f"{what}: {len(per_row)} rows, {seed_counts(per_row)} each; each dot is one seed's test value, the bar "
            "their mean.")


def energy_sentence(energy: pd.DataFrame, planted: bool = True) -> str:
    """Which band holds most of each modality's energy, per model (``energy``: columns model, modality,
    band, share, as ``ablations.band_energy_frame``). ``planted``: the data has evidence bands to compare with
    (the built-in benchmark; a real dataset has none)."""
    parts = []
    for (model, modality), sub in energy.groupby(["model", "modality"], sort=False):
        top = sub.loc[sub["share"].astype(float).idxmax()]
        parts.append(f"{model} {modality}: {top['band']} ({float(top['share']):.0%})")
    where = "with where the evidence lies (notebook 01) and " if planted else ""
    return ("The band with the largest share of each modality's energy: " + "; ".join(parts) + ". Energy is not "
            f"evidence: compare {where}with the band weights above.")


def collapse_sentence(frame: pd.DataFrame) -> str:
    """What :func:`mser_lib.report.analysis.late_collapse` found, in one sentence: the rows whose runs ended their
    final stage worse than the trivial predictor on VALID after beating it, with how many runs, the median epoch
    of their best VALID value and their median best and last values; or that no run did."""
    if frame.empty:
        return "No record keeps a validation history to read."
    metric = metric_name(str(frame["metric"].iloc[0]))
    trivial = float(frame["trivial"].iloc[0])
    hit = frame[frame["collapsed"] > 0]
    n, k = int(frame["runs"].sum()), int(hit["collapsed"].sum())
    if not k:
        return (f"No run of the {n} ends its final stage with a validation {metric} worse than the trivial "
                f"predictor's ({trivial:.3f}).")
    head = (f"{k} of the {n} runs beat the trivial predictor's validation {metric} ({trivial:.3f}) and then ended "
            "their final stage worse than it")
    tail = (". On the validation split these models got worse with more training; each run's scores are those of "
            "the epoch its selection chose, so its last epochs do not enter them.")
    if 2 * len(hit) > len(frame):        # most rows: name the ones without, the table has the rest
        calm = [name_of(r) for r in frame.loc[frame["collapsed"] == 0, "row"]]
        if not calm:
            return head + f", in every one of the {len(frame)} rows (table above)" + tail
        return (head + f", in {len(hit)} of the {len(frame)} rows (table above); none of the runs of "
                + "; ".join(calm) + " did" + tail)
    parts = [f"{name_of(r['row'])} {int(r['collapsed'])} of {int(r['runs'])} (best {r['best']:.3f} at epoch "
             f"{r['best epoch']:.0f}, last {r['last']:.3f})" for _, r in hit.iterrows()]
    return head + " (medians): " + "; ".join(parts) + tail


#: How much wider the eval-mode predictions must spread than the train-mode ones for :func:`dropout_sentence` to
#: call it a variance shift.
SHIFT_RATIO = 1.25


def dropout_sentence(frame: pd.DataFrame, what: str) -> str:
    """One sentence on :func:`mser_lib.report.analysis.dropout_shift`'s two rows (dropout off, dropout on): both
    MAEs and spreads, and a variance shift named only when the eval-mode predictions spread more than
    :data:`SHIFT_RATIO` times as wide as the train-mode ones."""
    off, on = frame.iloc[0], frame.iloc[1]
    ratio = off["prediction sd"] / on["prediction sd"] if on["prediction sd"] > 0 else math.inf
    s = (f"{what}: with dropout off, as every score is computed, MAE {off['MAE']:.3f} and predictions spread with sd "
         f"{off['prediction sd']:.2f}; with {on['mode']}, MAE {on['MAE']:.3f} "
         f"and sd {on['prediction sd']:.2f} (the labels' sd: {off['label sd']:.2f}). ")
    if ratio > SHIFT_RATIO:
        return s + (f"The clean predictions spread {ratio:.1f} times as wide as the noised ones, consistent with a "
                    "variance shift (a scale learned on dropout-noised features that clean features do not have); "
                    "a reading of one model at one epoch, and a mean of several noised passes is itself narrower "
                    "than one pass.")
    return s + f"The two spreads are within a factor {SHIFT_RATIO} of each other: no variance shift by this rule."


__all__ = ["NAMES", "Stat", "is_builtin", "name_of", "metric_name", "fmt_value", "summarize", "better",
           "beyond_spread", "compare_sentence", "ranking", "best_sentence", "paper_sentence", "degradation",
           "beats_all_sentence", "degradation_sentence", "forest_caption", "points_caption", "seed_counts",
           "claim_counts", "claims_sentence", "seeds_schedule", "undecided_parts", "interval_sides", "interval_kind",
           "is_yes", "claim_verdict", "records_behind",
           "protocol_summary", "what_we_see",
           "cycles_to_nu",
           "probe_sentences", "leakage_sentence", "summary_sentence", "femf_cut_sentence", "high_share_sentence",
           "band_roles", "band_allocation_sentence", "dc_share_sentence", "expert_band_sentences",
           "stage_gain_sentence", "attention_locality", "near_diagonal", "locality_table", "attention_sentences",
           "band_weights_sentence", "separability_sentence", "mcm_weight_sentence", "missing_weights_sentence",
           "energy_sentence", "collapse_sentence", "SHIFT_RATIO",
           "dropout_sentence"]
