"""Tables, comparisons and claims of notebooks 04-06, computed from recorded runs only.

* :func:`grid_frame` / :func:`summary_table`: per-seed metrics of a grid and their mean +- std,
  labelled by the grid's spec (``tag``), never by a cached record's tag.
* Test predictions of recorded runs come from :func:`mser_lib.runs.run_predictions`.
* :func:`compare_labels`: variant A vs B on a metric with :func:`mser_lib.report.stats.compare`; the
  bootstrap resamples whole videos in the position layout (:func:`bootstrap_clusters`).
* :func:`missing_curves`: test metrics of trained models at several missing rates (FEMF Fig. 6).
* :func:`claim_row` / :func:`adjust_claims`: the claims table (claim, paper says, we measure, seeds,
  schedule, raw and Holm-adjusted p, resolved). Verdicts follow :func:`mser_lib.report.stats.verdict`:
  "not enough seeds" below 3 seeds, "yes" only on the multiplicity-adjusted p (Holm-Bonferroni over
  all claims of a table, :func:`adjust_claims`).
* The ablation rows the papers report (FEMF Tables 2-4, Atsuko Table 4), typed in as printed,
  marked ``reported``: the only typed numbers here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from ..data import MissingModality
from ..metrics import METRIC_NAMES, in_percent
from ..runs import load_model, run_predictions
from . import stats
from .narrative import is_yes

# ------------------------------------------------------------------------------ reported rows
# FEMF Table 2 (CMU-MOSI) and Table 3 (CMU-MOSEI): MAE, Corr, Acc-2, F1 (neg/non-neg / neg/pos).
FEMF_TABLE2 = """\
Ours	0.758	0.828	85.48/88.37	85.32/88.36
w/o DTM	0.772	0.814	84.92/87.91	84.89/87.87
w/o FAE	0.802	0.817	85.09/88.01	85.06/88.00
w/o MIM	0.821	0.819	85.03/87.96	84.93/87.92
w/o HPM	0.779	0.828	84.94/88.11	84.90/88.07
w/o L_{align}	0.787	0.827	85.39/88.27	85.21/88.26
w/o L_{rec}	0.772	0.827	85.41/88.33	85.29/88.33
w/o L_{cyc}	0.772	0.826	85.4/88.33	85.22/88.32
w/o L_{orth}	0.786	0.826	85.38/88.25	85.29/88.25
w/o L_{sim}	0.782	0.825	85.37/88.26	85.27/88.25
"""
FEMF_TABLE3 = """\
Ours	0.553	0.831	85.23/87.6	85.41/87.54
w/o DTM	0.566	0.821	84.99/87.53	85.02/87.45
w/o FAE	0.557	0.828	84.81/87.41	84.87/87.38
w/o MIM	0.553	0.830	84.85/87.47	84.91/87.43
w/o HPM	0.556	0.829	84.93/87.46	84.89/87.42
w/o L_{align}	0.555	0.828	84.96/87.51	84.98/87.41
w/o L_{rec}	0.553	0.83	85.01/87.56	84.93/87.49
w/o L_{cyc}	0.562	0.829	84.97/87.58	84.91/87.51
w/o L_{orth}	0.557	0.83	84.9/87.46	84.88/87.39
w/o L_{sim}	0.56	0.831	85.01/87.53	84.97/87.46
"""
# FEMF Table 4: modality subsets; MOSI MAE Acc-2 F1, MOSEI MAE Acc-2 F1 (Acc-2/F1 neg/pos, as Table 1's).
FEMF_TABLE4 = """\
T	0.762	87.25	87.19	0.564	86.99	86.97
A	1.482	54.93	55.02	0.883	72.48	71.80
V	1.409	60.91	60.89	0.908	69.45	68.76
T+A	0.771	87.49	87.46	0.558	87.28	87.22
T+V	0.852	88.01	88.02	0.563	87.13	87.06
A+V	1.373	61.43	61.45	0.868	72.52	71.73
T+A+V	0.758	88.37	88.36	0.553	87.60	87.54
"""
# Atsuko Table 4: SBN, MCM, MOSI ACC7 ACC2 F1 MAE, MOSEI ACC7 ACC2 F1 MAE (Acc-2 protocol not stated).
ATSUKO_TABLE4 = """\
-	-	46.0	83.5	83.5	0.716	52.3	83.8	83.7	0.558
yes	-	47.1	85.5	85.5	0.701	53.0	85.1	85.2	0.548
-	yes	46.9	85.4	85.3	0.700	53.8	85.2	85.1	0.535
yes	yes	48.7	86.3	86.2	0.696	54.4	85.6	85.7	0.530
"""
FEMF_LABELS = {"Ours": "FEMF (full)", "w/o L_{align}": "w/o L_align", "w/o L_{rec}": "w/o L_rec",
               "w/o L_{cyc}": "w/o L_cyc", "w/o L_{orth}": "w/o L_orth", "w/o L_{sim}": "w/o L_sim"}
ATSUKO_LABELS = {("-", "-"): "-, -", ("yes", "-"): "SBN", ("-", "yes"): "MCM",
                 ("yes", "yes"): "SBN + MCM (Atsuko)"}


def _lines(text: str) -> list[list[str]]:
    return [ln.split("\t") for ln in text.strip().splitlines()]


def reported_femf_components() -> pd.DataFrame:
    """FEMF Tables 2 (CMU-MOSI) and 3 (CMU-MOSEI) as printed: one row per (dataset, variant)."""
    rows = []
    for dataset, text in (("CMU-MOSI", FEMF_TABLE2), ("CMU-MOSEI", FEMF_TABLE3)):
        for c in _lines(text):
            a_has0, a_non0 = c[3].split("/")
            f_has0, f_non0 = c[4].replace(" ", "").split("/")
            table = "FEMF Table 2" if dataset == "CMU-MOSI" else "FEMF Table 3"
            rows.append({"source": "reported", "table": table,
                         "dataset": dataset, "variant": FEMF_LABELS.get(c[0], c[0]), "mae": float(c[1]),
                         "corr": float(c[2]), "acc2_has0": float(a_has0), "acc2_non0": float(a_non0),
                         "f1_has0": float(f_has0), "f1_non0": float(f_non0)})
    return pd.DataFrame(rows)


def reported_femf_modalities() -> pd.DataFrame:
    """FEMF Table 4 as printed (Acc-2 and F1 in percent; the neg/pos protocol of its Table 1)."""
    rows = []
    for c in _lines(FEMF_TABLE4):
        for dataset, off in (("CMU-MOSI", 1), ("CMU-MOSEI", 4)):
            rows.append({"source": "reported", "table": "FEMF Table 4", "dataset": dataset, "variant": c[0],
                         "mae": float(c[off]), "acc2_non0": float(c[off + 1]), "f1_non0": float(c[off + 2])})
    return pd.DataFrame(rows)


def reported_atsuko_table4() -> pd.DataFrame:
    """Atsuko Table 4 as printed (Acc-2 / F1 protocol not stated by the paper)."""
    rows = []
    for c in _lines(ATSUKO_TABLE4):
        for dataset, off in (("CMU-MOSI", 2), ("CMU-MOSEI", 6)):
            rows.append({"source": "reported", "table": "Atsuko Table 4", "dataset": dataset,
                         "variant": ATSUKO_LABELS[(c[0], c[1])], "acc7": float(c[off]),
                         "acc2_unstated": float(c[off + 1]), "f1_unstated": float(c[off + 2]),
                         "mae": float(c[off + 3])})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ measured tables
def grid_frame(specs: list[dict], records: list[dict], split: str = "test",
               include_degenerate: bool = False) -> pd.DataFrame:
    """Long frame, one row per (run, metric): ``label`` (the spec's tag), model, seed, metric, value,
    config_hash. ``specs`` and ``records`` are aligned (as :func:`run_grid` returns them). Degenerate runs (that
    learned nothing, :func:`mser_lib.train.trainer.learned_nothing`) are left out unless ``include_degenerate``,
    as every table of notebook 03 leaves them out: their seeds are missing from every comparison
    (:func:`degenerate_note` says which)."""
    if len(specs) != len(records):
        raise ValueError("specs and records must be aligned")
    rows = []
    for spec, rec in zip(specs, records):
        if rec.get("degenerate") and not include_degenerate:
            continue
        for k, v in (rec.get(split) or {}).items():
            rows.append({"label": spec.get("tag") or rec["model"], "model": rec["model"], "seed": rec["seed"],
                         "metric": k, "value": float(v) if v is not None else math.nan,
                         "config_hash": rec["config_hash"]})
    df = pd.DataFrame(rows)
    return df.drop_duplicates(subset=["label", "seed", "metric"], keep="last") if not df.empty else df


def degenerate_note(specs: list[dict], records: list[dict]) -> str | None:
    """One line naming the runs :func:`grid_frame` leaves out because they learned nothing (label and seeds), or
    None when every run learned something."""
    left: dict[str, list[int]] = {}
    for spec, rec in zip(specs, records):
        if rec.get("degenerate"):
            left.setdefault(spec.get("tag") or rec["model"], []).append(int(rec["seed"]))
    if not left:
        return None
    n = sum(len(v) for v in left.values())
    listed = "; ".join(f"{lab}: seed{'s' if len(v) > 1 else ''} {', '.join(map(str, sorted(set(v))))}"
                       for lab, v in left.items())
    return (f"WARNING: {n} run{'s' if n > 1 else ''} learned nothing (no better than the trivial predictor at the "
            f"epoch their selection chose) and {'are' if n > 1 else 'is'} left out of every table, figure and test "
            f"below: {listed}. A variant left with fewer than 3 seeds gets no verdict.")


def summary_table(frame: pd.DataFrame, metrics: list[str], order: list[str] | None = None,
                  percent: bool = True) -> pd.DataFrame:
    """Wide "mean ± std" table (one row per label, the given metrics; accuracies/F1 in percent)."""
    order = order or list(dict.fromkeys(frame["label"]))
    out = {}
    for lab in order:
        sub = frame[frame["label"] == lab]
        if sub.empty:
            continue
        row = {"source": "measured"}
        for m in metrics:
            v = sub.loc[sub["metric"] == m, "value"].to_numpy(dtype=float)
            if len(v) == 0:
                row[METRIC_NAMES.get(m, m)] = ""
                continue
            scale = 100.0 if percent and in_percent(m) else 1.0
            dg = 1 if scale == 100.0 else 3
            s = f"{np.nanmean(v) * scale:.{dg}f}"
            if len(v) > 1:
                s += f" ± {np.nanstd(v, ddof=1) * scale:.{dg}f}"
            row[METRIC_NAMES.get(m, m)] = s
        row["seeds"] = int(sub["seed"].nunique())
        out[lab] = row
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index.name = "variant"
    return df


def reported_as_rows(rep: pd.DataFrame, dataset: str, metrics: list[str]) -> pd.DataFrame:
    """Reported rows of one dataset in :func:`summary_table`'s layout (values as printed)."""
    sub = rep[rep["dataset"] == dataset]
    out = {}
    for _, r in sub.iterrows():
        row = {"source": f"reported ({r['table']}, {dataset})"}
        for m in metrics:
            name = METRIC_NAMES.get(m, m)
            alt = {"acc2_non0": "acc2_unstated", "f1_non0": "f1_unstated"}.get(m)
            v = r.get(m) if m in r and not pd.isna(r.get(m)) else (r.get(alt) if alt in r else None)
            fmt = ".1f" if in_percent(m) else ".3f"
            row[name] = "" if v is None or pd.isna(v) else format(v, fmt)
        row["seeds"] = ""
        out[f"{r['variant']} [reported]"] = row
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index.name = "variant"
    return df


# what a notebook shows inline of a comparison table (index A, B, metric) and of a claims table (index claim);
# the saved tables keep every column
BRIEF_TEST_COLUMNS = ["mean A-B", "seed CI", "p adjusted (Holm)", "resolved", "seeds", "bootstrap CI", "schedule"]
BRIEF_CLAIM_COLUMNS = ["paper says", "we measure", "bootstrap 95% CI", "seeds", "schedule", "resolved",
                       "agrees with paper"]


def resolved_first(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its resolved rows ("yes") first, then the undecided rows that had the seeds for a verdict,
    then those with too few seeds (so that an inline view of the first rows shows what the sentences discuss),
    each group in its order."""
    return table.sort_values("resolved", key=lambda col: col.map(
        lambda v: 0 if v == "yes" else 2 if v == stats.NOT_ENOUGH_SEEDS else 1), kind="stable")


def beside_reported(table: pd.DataFrame, columns: list[str], paper_column: str) -> pd.DataFrame:
    """Our rows of a :func:`reported_as_rows` + :func:`summary_table` table, narrowed to ``columns``, with
    the papers' ``paper_column`` beside them, one column per reported dataset ("paper MAE (CMU-MOSI)"):
    the compact form a notebook shows (the full table keeps every reported row)."""
    is_rep = table["source"].astype(str).str.startswith("reported")
    out = table.loc[~is_rep, columns].copy()
    for source, sub in table[is_rep].groupby("source", sort=False):
        dataset = str(source).rsplit(", ", 1)[-1].rstrip(")")
        reported = {str(i).removesuffix(" [reported]"): v for i, v in sub[paper_column].items()}
        out[f"paper {paper_column} ({dataset})"] = [reported.get(str(i), "") for i in out.index]
    return out


def values(frame: pd.DataFrame, label: str, metric: str, seeds: list[int]) -> list[float]:
    """The per-seed values of one label and metric, in ``seeds`` order (``nan`` when missing)."""
    sub = frame[(frame["label"] == label) & (frame["metric"] == metric)].set_index("seed")["value"]
    return [float(sub.get(s, math.nan)) for s in seeds]


# ------------------------------------------------------------------------------ predictions
def schedule_text(record: dict) -> str:
    """The training schedule of a recorded run, from ``record["config"]["train"]``: epochs per stage
    for staged models (the stage names the record trained), else epochs; then the patience, e.g.
    ``"60 epochs, patience 12"`` or ``"experts 2 + full 4 epochs, patience 4"``."""
    train = (record.get("config") or {}).get("train") or {}
    stages = [st.get("stage") for st in record.get("stages") or [] if isinstance(st, dict) and st.get("stage")]
    per = train.get("stage_epochs") or {}
    if stages:
        text = " + ".join(f"{st} {per.get(st, train.get('epochs', '?'))}" for st in stages) + " epochs"
    else:
        text = f"{train.get('epochs', '?')} epochs"
    if train.get("patience") is not None:
        text += f", patience {train['patience']}"
    return text


def _schedules(sched_a: list[str], sched_b: list[str]) -> str:
    """One schedule if the runs behind both sides share it, else ``"A: ...; B: ..."``."""
    sa = list(dict.fromkeys(x for x in sched_a if x))
    sb = list(dict.fromkeys(x for x in sched_b if x))
    if sa == sb:
        return " | ".join(sa)
    return f"A: {' | '.join(sa) or '?'}; B: {' | '.join(sb) or '?'}"


def bootstrap_clusters(ids: np.ndarray | None, layout: str) -> np.ndarray | None:
    """Clusters of the test bootstrap: the sample (video) id of each labelled position in the position
    layout, where the utterances of one video are not independent; ``None`` (every sample its own
    cluster) in the sequence layout."""
    if layout == "position":
        if ids is None:
            raise ValueError("the position layout needs the sample id of each position to bootstrap by video")
        return np.asarray(ids)
    return None


class RunPredictions(NamedTuple):
    """Test labels and predictions of one run over labelled positions, with the bootstrap clusters
    (:func:`bootstrap_clusters`; ``None``: one sample per cluster) and the run's schedule."""

    y: np.ndarray
    p: np.ndarray
    clusters: np.ndarray | None = None
    schedule: str = ""


def _aligned(got: list[tuple]) -> None:
    """Every run's predictions must be over the same labelled positions, in the same order."""
    y0, _, ids0 = got[0]
    for y, _, ids in got[1:]:
        if not (np.array_equal(ids, ids0) and np.allclose(y, y0)):
            raise ValueError("test predictions of the compared runs are not over the same positions")


def compare_labels(frame: pd.DataFrame, specs: list[dict], records: list[dict], a: str, b: str, metric: str,
                   ds=None, results_dir=None, cache_dir=None, expect: int | None = None,
                   n_boot: int = 1000, retrain: bool = True) -> dict:
    """Variant ``a`` vs ``b`` on ``metric`` (paired over their common seeds; with ``ds`` and
    ``results_dir`` also the paired bootstrap over test samples of the seed-averaged metric, which
    resamples whole videos in the position layout).

    Returns :func:`mser_lib.report.stats.compare`'s dict plus ``a``, ``b``, ``metric``, ``seeds``,
    ``schedule`` (of the runs behind both sides, :func:`schedule_text`) and ``boot_unit``
    (``"videos"`` or ``"samples"``). Its ``verdict`` is for this comparison alone; a table of claims
    adjusts for multiplicity with :func:`adjust_claims`. A run whose predictions are neither cached nor on this
    machine's checkpoints is retrained for the bootstrap; with ``retrain=False`` the bootstrap is left out (the
    comparison is then seed-level only, and cannot resolve)."""
    seeds = sorted(set(frame.loc[frame["label"] == a, "seed"]) & set(frame.loc[frame["label"] == b, "seed"]))
    va, vb = values(frame, a, metric, seeds), values(frame, b, metric, seeds)
    by = {(s.get("tag") or r["model"], r["seed"]): r for s, r in zip(specs, records)}
    y = pa = pb = clusters = None
    unit = ""
    if ds is not None and results_dir is not None and stats.has_fast(metric):
        got_a = [run_predictions(by[(a, s)], ds, results_dir, cache_dir=cache_dir, with_ids=True, retrain=retrain)
                 for s in seeds]
        got_b = [run_predictions(by[(b, s)], ds, results_dir, cache_dir=cache_dir, with_ids=True, retrain=retrain)
                 for s in seeds]
        if all(g is not None for g in got_a + got_b) and seeds:
            _aligned(got_a + got_b)
            y = got_a[0][0]
            pa, pb = [g[1] for g in got_a], [g[1] for g in got_b]
            clusters = bootstrap_clusters(got_a[0][2], ds.info.layout)
            unit = "videos" if clusters is not None else "samples"
    res = stats.compare(va, vb, metric, y, pa, pb, n_boot=n_boot, expect=expect, clusters=clusters)
    res.update({"a": a, "b": b, "metric": metric, "seeds": seeds, "boot_unit": unit,
                "schedule": _schedules([schedule_text(by[(a, s)]) for s in seeds if (a, s) in by],
                                       [schedule_text(by[(b, s)]) for s in seeds if (b, s) in by])})
    return res


def _adjust_column(method: str) -> str:
    return f"p adjusted ({stats.ADJUSTMENTS[method][0]})"


def _family_verdicts(n_seeds, p_raw, same_sign, excludes, method: str) -> tuple[np.ndarray, list[str], int]:
    """Adjust the raw seed-level p-values of a table for multiplicity and give each row its verdict.

    The family is the rows that can be resolved at all: at least ``stats.MIN_SEEDS`` seeds and a
    finite p-value; the others keep ``nan`` as adjusted p (their verdict is "not enough seeds" or
    "no" regardless). Returns ``(adjusted p, verdicts, family size)``."""
    n = np.asarray(n_seeds, dtype=float)
    p = np.asarray(p_raw, dtype=float)
    eligible = (n >= stats.MIN_SEEDS) & np.isfinite(p)
    adj = stats.adjust_p(np.where(eligible, p, math.nan), method)
    verdicts = [stats.verdict(int(k), float(q), bool(ss), ex)
                for k, q, ss, ex in zip(n, adj, same_sign, excludes)]
    return adj, verdicts, int(eligible.sum())


def comparison_frame(results: list[dict], method: str = "holm", family: list[dict] | None = None) -> pd.DataFrame:
    """A readable table of :func:`compare_labels` results (differences a - b). The paired-t p-values
    are adjusted together (Holm-Bonferroni by default, ``method="bh"`` for Benjamini-Hochberg; the column
    name says which) and ``resolved`` uses the adjusted p (:func:`mser_lib.report.stats.verdict`: "yes",
    "no" or "not enough seeds").

    ``family``: the results tested together, of which ``results`` are some (the same objects). A notebook
    whose claims table holds every comparison it shows passes them all, so that each table gives a
    comparison the verdict the claims table gives it (:func:`adjust_claims` over the same rows); without it
    the family is ``results``."""
    fam = results if family is None else family
    where = {id(r): i for i, r in enumerate(fam)}
    if any(id(r) not in where for r in results):
        raise ValueError("comparison_frame: every result must be one of the family's (the same objects)")
    # the p-values as the claims table holds them (4 significant digits, claim_row), so that both adjust the
    # same numbers and a verdict never flips between them at a rounding boundary
    p_shown = [math.nan if _p(r["p_t"]) == "" else _p(r["p_t"]) for r in fam]
    adj_f, verdicts_f, m = _family_verdicts([r.get("n", len(r["seeds"])) for r in fam], p_shown,
                                            [r["same_sign"] for r in fam], [r.get("boot_excludes") for r in fam],
                                            method)
    adj = [adj_f[where[id(r)]] for r in results]
    verdicts = [verdicts_f[where[id(r)]] for r in results]
    rows = []
    for r, q, v in zip(results, adj, verdicts):
        pct = in_percent(r["metric"])          # accuracies and F1 in points, as every table beside them
        k, dg = (100.0, 2) if pct else (1.0, 4)
        rows.append({"A": r["a"], "B": r["b"],
                     "metric": METRIC_NAMES.get(r["metric"], r["metric"]) + (", points" if pct else ""),
                     "mean A-B": round(r["mean_diff"] * k, dg),
                     "seed CI": _interval(*(None if x is None else x * k for x in (r["ci_lo"], r["ci_hi"])), dg),
                     "p (paired t)": _p(r["p_t"]), _adjust_column(method): _p(q),
                     "p (sign flip)": _p(r["p_sign_flip"]),
                     "bootstrap CI": _interval(*(None if x is None else x * k for x in (r["boot_lo"], r["boot_hi"])),
                                               dg),
                     "bootstrap over": _boot_over(r),
                     "seeds": r.get("n", len(r["seeds"])), "schedule": r.get("schedule", ""),
                     CLAIM_FAMILY: m, "resolved": v})
    return pd.DataFrame(rows)


def switch_text(dev) -> str:
    """The switch a ledger row flips, as settings: ``"align_detach_prediction=False"``; the reference preset
    and the reference's loss weights by name."""
    from ..models.femf import REFERENCE_BEHAVIOUR, REFERENCE_LOSS_WEIGHTS

    if dev.overrides == REFERENCE_BEHAVIOUR:
        return "preset 'reference' (REFERENCE_BEHAVIOUR)"
    if dev.overrides == REFERENCE_LOSS_WEIGHTS:
        return "REFERENCE_LOSS_WEIGHTS"
    parts = [f"{k}={v}" for k, v in dev.overrides.items()] + [f"train {k}={v}" for k, v in (dev.train or {}).items()]
    return ", ".join(parts)


def ledger_collapse(specs: list[dict], records: list[dict], ds) -> pd.DataFrame:
    """:func:`mser_lib.report.analysis.late_collapse` over the ledger's runs (``specs`` and their ``records``, in
    order), one row per ledger row: which departures make a run end worse than the trivial predictor on VALID,
    or stop it (notebook 04, ``python -m mser_lib ledger``)."""
    from ..train.trainer import trivial_metrics
    from .analysis import late_collapse

    tags = {r["config_hash"]: s["tag"] for s, r in zip(specs, records)}
    return late_collapse(records, trivial_metrics(ds, "valid"), ds.info.task, label=lambda r: tags[r["config_hash"]])


def deviation_ledger(frame: pd.DataFrame, specs: list[dict], records: list[dict], ds=None, results_dir=None,
                     cache_dir=None, method: str = "holm", retrain: bool = True) -> pd.DataFrame:
    """The deviation ledger (:data:`mser_lib.grids.DEVIATIONS`) as a table: one row per switch whose runs
    are in ``frame``, the flipped run against its model's default run (:data:`mser_lib.grids.LEDGER_BASE`),
    paired over their common seeds. MAE decides: its paired t-test p-values are Holm-adjusted over the
    rows and ``resolved`` follows :func:`mser_lib.report.stats.verdict` (with ``ds`` and ``results_dir``
    the bootstrap over test videos enters it too); Acc-2 and Corr differences are the seed means,
    untested. Differences are flipped minus default: a positive MAE difference means the flipped run is
    worse. A row whose flipped run is the default run itself (the profile already has that setting) is left
    out."""
    from .. import grids

    present = set(frame["label"]) if not frame.empty else set()
    rows = [d for d in grids.DEVIATIONS if d.label in present and grids.LEDGER_BASE[d.model] in present]
    hashes = frame.groupby("label")["config_hash"].agg(set).to_dict() if not frame.empty else {}
    # a switch the profile's default run already has (e.g. the quick miniatures clip, and run frozen experts
    # without autograd) gives the same run: no row to measure
    rows = [d for d in rows if hashes.get(d.label) != hashes.get(grids.LEDGER_BASE[d.model])]
    res = [compare_labels(frame, specs, records, d.label, grids.LEDGER_BASE[d.model], "mae", ds, results_dir,
                          cache_dir, retrain=retrain) for d in rows]
    adj, verdicts, family = _family_verdicts([r["n"] for r in res], [r["p_t"] for r in res],
                                             [r["same_sign"] for r in res], [r.get("boot_excludes") for r in res],
                                             method)
    out = []
    for d, r, q, v in zip(rows, res, adj, verdicts):
        base = grids.LEDGER_BASE[d.model]
        same = bool(r["seeds"]) and all(
            values(frame, d.label, m, r["seeds"]) == values(frame, base, m, r["seeds"])
            for m in set(frame.loc[frame["label"] == base, "metric"]))
        acc = stats.paired_seed_test(values(frame, d.label, "acc2_has0", r["seeds"]),
                                     values(frame, base, "acc2_has0", r["seeds"]))["mean_diff"]
        corr = stats.paired_seed_test(values(frame, d.label, "corr", r["seeds"]),
                                      values(frame, base, "corr", r["seeds"]))["mean_diff"]
        out.append({"deviation": d.label, "switch": switch_text(d), "the flipped run follows": d.source,
                    "the default run": d.default, "seeds": r["n"], "schedule": r["schedule"],
                    "MAE: flipped - default": _r(r["mean_diff"], 4), "seed 95% CI": _interval(r["ci_lo"], r["ci_hi"]),
                    "bootstrap 95% CI": _interval(r["boot_lo"], r["boot_hi"]), "bootstrap over": _boot_over(r),
                    "p (paired t)": _p(r["p_t"]), _adjust_column(method): _p(q), "claims in family": family,
                    "Acc-2 (neg/non-neg), points": _r(100 * acc, 2), "Corr": _r(corr, 4), "resolved": v,
                    "identical to the default": same})
    return pd.DataFrame(out)


def _boot_over(res: dict) -> str:
    k = res.get("n_clusters") or 0
    return f"{k} {res.get('boot_unit') or 'samples'}" if k else ""


def _p(x):
    """A p-value for a table: 4 significant digits (small p stay visible and keep their order)."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else float(f"{float(x):.4g}")


def _r(x, d=3):
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), d)


def _interval(lo, hi, d=4) -> str:
    if lo is None or math.isnan(lo):
        return ""
    return f"[{lo:.{d}f}, {hi:.{d}f}]"


# ------------------------------------------------------------------------------ robustness
def missing_curves(specs: list[dict], records: list[dict], ds, results_dir, rates, metrics=("f1_non0", "corr",
                   "mae", "acc2_non0"), cache_dir=None) -> tuple[pd.DataFrame, dict]:
    """Test metrics of each recorded run with modalities dropped at each rate (0 = complete).

    Returns:
        ``(long frame: label, seed, rate, metric, value)``, and the predictions
        ``{(label, seed, rate): RunPredictions(y, p, clusters, schedule)}`` for bootstrap
        comparisons (:func:`degradation_compare`; clusters: the video of each position in the
        position layout). Runs without checkpoints are skipped, and degenerate runs (that learned nothing) are
        left out, as :func:`grid_frame` leaves them out.
    """
    rows, preds = [], {}
    for spec, rec in zip(specs, records):
        if rec.get("degenerate"):
            continue
        label = spec.get("tag") or rec["model"]
        for rate in rates:
            mm = None if rate == 0 else MissingModality(rate=float(rate))
            got = run_predictions(rec, ds, results_dir, mm, cache_dir, with_ids=True)
            if got is None:
                continue
            y, p, ids = got
            preds[(label, rec["seed"], float(rate))] = RunPredictions(
                y, p, bootstrap_clusters(ids, ds.info.layout), schedule_text(rec))
            for m in metrics:
                rows.append({"label": label, "seed": rec["seed"], "rate": float(rate), "metric": m,
                             "value": stats.metric_fn(m)(y, p)})
    return pd.DataFrame(rows), preds


def curve_table(curves: pd.DataFrame, metrics=("f1_non0", "corr")) -> pd.DataFrame:
    """Mean ± std over seeds of each model at each missing rate (rows: model, metric; columns: rates)."""
    out = {}
    for (lab, m), sub in curves[curves["metric"].isin(metrics)].groupby(["label", "metric"], sort=False):
        scale, dg = (100.0, 1) if in_percent(m) else (1.0, 3)
        row = {}
        for rate, g in sub.groupby("rate"):
            v = g["value"].to_numpy(dtype=float) * scale
            spread = f" ± {v.std(ddof=1):.{dg}f}" if len(v) > 1 else ""
            row[f"rate {rate:g}"] = f"{v.mean():.{dg}f}" + spread
        row["seeds"] = int(sub["seed"].nunique())
        out[(lab, METRIC_NAMES.get(m, m))] = row
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["model", "metric"])
    return df


def masking_alone(weights: np.ndarray, rate: float, never_masked: Sequence[int] = ()) -> np.ndarray:
    """The expected weights of a router that keeps its complete-data ``weights`` (M,) and only drops the absent
    modalities, renormalising over those present, when each modality is missing independently with
    probability ``rate`` and a sample left with none keeps one at random (:class:`mser_lib.data.missing.
    MissingModality`): the sum over presence patterns ``S`` of ``P(S) w_i / sum_{j in S} w_j``. The entries
    ``never_masked`` (FEMF's joint head, eq. 22) are in every pattern; the drops are over the others."""
    import itertools

    w = np.asarray(weights, dtype=float)
    fixed = np.zeros(len(w), dtype=bool)
    fixed[list(never_masked)] = True
    mods = np.flatnonzero(~fixed)
    m = len(mods)
    out = np.zeros(len(w))
    for keep in itertools.product((False, True), repeat=m):
        k = np.array(keep, dtype=bool)
        if not k.any():
            continue
        p = rate ** (m - k.sum()) * (1 - rate) ** k.sum() + (rate ** m / m if k.sum() == 1 else 0.0)
        present = fixed.copy()
        present[mods[k]] = True
        total = w[present].sum()
        if total > 0:
            out[present] += p * w[present] / total
    return out


def degradation_compare(preds: dict, a: str, b: str, metric: str, seeds: list[int], rate: float,
                        n_boot: int = 1000) -> dict:
    """Does ``a`` lose less of ``metric`` than ``b`` between rate 0 and ``rate``? Degradation
    ``D = better_sign * (m(0) - m(rate))`` (positive = worse under missing data); the comparison is
    ``D_b - D_a`` (positive: ``a`` degrades less), paired over seeds and bootstrapped over samples
    (whole videos in the position layout: the clusters :func:`missing_curves` stores).

    ``preds`` maps ``(label, seed, rate)`` to :class:`RunPredictions` (or a plain ``(y, p)``: one
    sample per cluster). Returns :func:`mser_lib.report.stats.paired_seed_test`'s fields, the
    bootstrap fields of :func:`mser_lib.report.stats.compare`, ``verdict``/``resolved`` for this
    comparison alone, ``sign_agrees`` (``a`` degrades less on average) and ``agrees`` (resolved and
    so), ``deg_a``, ``deg_b``, ``schedule``, ``boot_unit``."""
    sgn = stats.better_sign(metric)
    f = stats.metric_fn(metric)
    seeds = [s for s in seeds if all((lab, s, r) in preds for lab in (a, b) for r in (0.0, rate))]
    if not seeds:
        return {"resolved": False, "verdict": stats.NOT_ENOUGH_SEEDS, "mean_diff": math.nan, "seeds": [],
                "n": 0, "a": a, "b": b, "metric": metric, "agrees": False, "sign_agrees": None,
                "same_sign": False, "p_t": math.nan, "boot_lo": math.nan, "boot_hi": math.nan,
                "boot_excludes": None, "deg_a": math.nan, "deg_b": math.nan, "schedule": "", "n_clusters": 0}

    def deg(lab, s, idx):
        y, p0 = preds[(lab, s, 0.0)][:2]
        pr = preds[(lab, s, rate)][1]
        return sgn * (f(y[idx], p0[idx]) - f(y[idx], pr[idx]))

    first = preds[(a, seeds[0], 0.0)]
    n = len(first[0])
    clusters = first.clusters if isinstance(first, RunPredictions) else None
    full = np.arange(n)
    da = [deg(a, s, full) for s in seeds]
    db = [deg(b, s, full) for s in seeds]
    res = stats.paired_seed_test(db, da)
    boot = stats.bootstrap_ci(lambda i: float(np.mean([deg(b, s, i) for s in seeds]) -
                                              np.mean([deg(a, s, i) for s in seeds])), n, n_boot,
                              clusters=clusters)
    res["boot_lo"], res["boot_hi"], res["n_clusters"] = boot["lo"], boot["hi"], boot["n_clusters"]
    res["boot_excludes"] = None if math.isnan(boot["lo"]) else bool(boot["lo"] > 0 or boot["hi"] < 0)
    res["p_seed"] = res["p_t"]
    res["verdict"] = stats.verdict(res["n"], res["p_t"], res["same_sign"], res["boot_excludes"])
    res["resolved"] = res["verdict"] == "yes"
    res["sign_agrees"] = None if math.isnan(res["mean_diff"]) else bool(res["mean_diff"] > 0)
    res["agrees"] = bool(res["resolved"] and res["sign_agrees"])
    sched = {lab: [getattr(preds[(lab, s, 0.0)], "schedule", "") for s in seeds] for lab in (a, b)}
    res.update({"a": a, "b": b, "metric": metric, "seeds": seeds, "deg_a": float(np.mean(da)),
                "deg_b": float(np.mean(db)), "schedule": _schedules(sched[a], sched[b]),
                "boot_unit": "videos" if clusters is not None else "samples"})
    return res


@torch.no_grad()
def diagnostics_under_missing(record: dict, ds, results_dir, rates, keys,
                              batch_size: int = 256) -> pd.DataFrame:
    """Mean of per-sample diagnostics (e.g. Atsuko's ``modality_weights``, FEMF's ``fusion_weights``)
    over the test split at each missing rate. Long frame: rate, key, index (component), value."""
    from .analysis import mean_diagnostics

    net = load_model(record, ds, results_dir)
    if net is None:
        return pd.DataFrame()
    rows = []
    for rate in rates:
        mm = None if rate == 0 else MissingModality(rate=float(rate))
        means = mean_diagnostics(net, ds.test, ds.info, keys, batch_size, missing=mm, seed=record["seed"])
        for k, m in means.items():
            for i, val in enumerate(np.asarray(m).reshape(-1)):
                rows.append({"rate": float(rate), "key": k, "index": i, "value": float(val)})
    return pd.DataFrame(rows)


@torch.no_grad()
def fused_features(record: dict, ds, results_dir,
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray] | None:
    """Atsuko/EMOE fused representation (the input of the fusion head, eq. 4) of every test sample
    (sequence layout) or labelled position, with the labels; for the t-SNE of Atsuko Fig. 4."""
    from ..data import iterate_batches

    net = load_model(record, ds, results_dir)
    if net is None or not hasattr(net, "fusion_head"):
        return None
    feats, labels = [], []
    grab = {}
    h = net.fusion_head.register_forward_pre_hook(lambda mod, args: grab.__setitem__("x", args[0].detach()))
    try:
        for batch in iterate_batches(ds.test, ds.info.layout, batch_size, shuffle=False):
            net(batch)
            x = grab["x"]
            mask = batch.label_mask.bool()
            if x.dim() == 3 and mask.dim() == 2:
                x = x[mask]
            elif x.dim() == 3:
                x = x[:, 0]
            feats.append(x.reshape(x.shape[0], -1).numpy())
            labels.append(batch.labels[mask].numpy().reshape(-1))
    finally:
        h.remove()
    return np.concatenate(feats), np.concatenate(labels)


# ------------------------------------------------------------------------------ single samples
def strongest_positive(ds, batch_size: int = 64):
    """The test batch holding the most positive labelled sample, and that sample's row in the batch
    (position layout: the video with the highest mean label). Returns ``(batch, index, label)``."""
    from ..data import iterate_batches

    best = (None, -1, -math.inf)
    for batch in iterate_batches(ds.test, ds.info.layout, batch_size, shuffle=False, bucket=False):
        lab = batch.labels.float()
        if lab.dim() == 2:
            m = batch.label_mask.float()
            score = (lab * m).sum(1) / m.sum(1).clamp_min(1)
        else:
            score = lab
        i = int(torch.argmax(score))
        if float(score[i]) > best[2]:
            best = (batch, i, float(score[i]))
    return best


@torch.no_grad()
def sample_diagnostic(net, ds, key: str, n: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A per-sample diagnostic (e.g. ``modality_weights``) of ``n`` random labelled test samples
    (positions), with their labels. The same samples for every model (chosen by ``seed``)."""
    from ..data import iterate_batches

    vals, labels = [], []
    for batch in iterate_batches(ds.test, ds.info.layout, 256, shuffle=False, bucket=False):
        v = net(batch).diagnostics[key].float()
        mask = batch.label_mask.bool()
        if mask.dim() == 2:
            v = v[mask]
        vals.append(v.numpy())
        labels.append(batch.labels[mask].numpy().reshape(-1))
    vals, labels = np.concatenate(vals), np.concatenate(labels)
    idx = np.sort(np.random.default_rng(seed).choice(len(labels), size=min(n, len(labels)), replace=False))
    return vals[idx], labels[idx]


@torch.no_grad()
def femf_attention(net, batch, index: int) -> dict[str, np.ndarray]:
    """FEMF's low/high expert attention maps (Fig. 7) of sample ``index`` of ``batch``, cropped to
    its real length: ``{"attn_low_text": (L, L), ...}``."""
    was = getattr(net, "return_attention", False)
    net.return_attention = True
    try:
        diag = net(batch).diagnostics
    finally:
        net.return_attention = was
    out = {}
    for k, v in diag.items():
        if k.startswith("attn_"):
            m = k.split("_", 2)[2]
            n = int(batch.mask(m)[index].sum()) if batch.mask(m).dim() == 2 else v.shape[-1]
            out[k] = v[index, :n, :n].float().numpy()
    return out


@torch.no_grad()
def band_energy_frame(net, ds, model: str) -> pd.DataFrame:
    """Mean share of spectral energy per band and modality over the test split: Atsuko's graph bands
    (``band_energy`` (B, 3, K)) or FEMF's low/high DFT bands (``band_energy`` (B, M, 2), normalised)."""
    from ..data import iterate_batches

    acc, count = None, 0
    for batch in iterate_batches(ds.test, ds.info.layout, 256, shuffle=False):
        e = net(batch).diagnostics.get("band_energy")
        if e is None:
            return pd.DataFrame()
        e = e.float()
        e = e / e.sum(-1, keepdim=True).clamp_min(1e-12)
        acc = e.sum(0) if acc is None else acc + e.sum(0)
        count += e.shape[0]
    share = (acc / max(count, 1)).numpy()
    mods = list(getattr(net, "mods", ["text", "audio", "vision"]))
    names = ["low", "high"] if model == "femf" else [f"band {b + 1}" for b in range(share.shape[1])]
    return pd.DataFrame([{"model": model, "modality": mods[j], "band": names[b], "share": float(share[j, b])}
                         for j in range(share.shape[0]) for b in range(share.shape[1])])


# ------------------------------------------------------------------------------ claims
def reported_pair_text(rep: pd.DataFrame, a: str, b: str, metric: str) -> str:
    """"CMU-MOSI 0.758 vs 0.772; CMU-MOSEI 0.553 vs 0.566" from reported rows (variants a, b)."""
    parts = []
    for dataset in dict.fromkeys(rep["dataset"]):
        sub = rep[rep["dataset"] == dataset].set_index("variant")
        col = metric if metric in sub.columns else {"acc2_non0": "acc2_unstated",
                                                     "f1_non0": "f1_unstated"}.get(metric, metric)
        if a in sub.index and b in sub.index and col in sub.columns:
            parts.append(f"{dataset} {sub.loc[a, col]:g} vs {sub.loc[b, col]:g}")
    return f"{METRIC_NAMES.get(metric, metric)} " + "; ".join(parts) if parts else ""


CLAIM_P_RAW = "p (paired t)"
CLAIM_FAMILY = "claims in family"


def claim_row(claim: str, paper: str, res: dict, measure: str | None = None) -> dict:
    """One row of the claims table from a comparison result (``mean_diff`` is A - B).

    Columns: claim, paper says, we measure, seeds (paired seeds behind the row), schedule (of the
    runs behind it, :func:`schedule_text`), bootstrap 95% CI and what it resampled ("31 videos"),
    whether the CI excludes 0, whether all seeds agree in sign, ``p (paired t)`` (raw seed-level
    p), ``p adjusted (Holm)``, ``claims in family``, resolved ("yes" / "no" / "not enough seeds"),
    direction as paper (the mean difference points the paper's way, resolved or not) and agrees with
    paper ("undecided" unless resolved).

    A row on its own is a family of one (adjusted p = raw p); the table's verdicts come from
    :func:`adjust_claims`, which adjusts the p-values over all the table's claims (Holm-Bonferroni)
    and recomputes ``resolved`` and ``agrees with paper`` from the adjusted p.
    """
    m = res.get("metric", "")
    scale, unit, dg = (100.0, " pp", 2) if m and in_percent(m) else (1.0, "", 4)
    if measure is None:
        measure = (f"{METRIC_NAMES.get(m, m)}: A-B = {res['mean_diff'] * scale:+.{dg}f}{unit}"
                   if not math.isnan(res.get("mean_diff", math.nan)) else "not measured")
    lo, hi = res.get("boot_lo", math.nan), res.get("boot_hi", math.nan)
    excl = res.get("boot_excludes")
    if excl is None and not math.isnan(lo):
        excl = bool(lo > 0 or hi < 0)
    sign_ok = res.get("sign_agrees")
    if sign_ok is None and res.get("agrees") is not None and res.get("resolved"):
        sign_ok = bool(res["agrees"])          # a caller that only set "agrees" (resolved rows)
    row = {"claim": claim, "paper says": paper, "we measure": measure,
           "seeds": int(res.get("n", len(res.get("seeds", [])))), "schedule": res.get("schedule", ""),
           "bootstrap 95% CI": _interval(lo * scale, hi * scale, dg) + ("" if math.isnan(lo) else unit),
           "bootstrap over": _boot_over(res), "CI excludes 0": _yn(excl),
           "seeds agree in sign": _yn(res.get("same_sign")), CLAIM_P_RAW: _p(res.get("p_t", math.nan)),
           "direction as paper": _yn(sign_ok)}
    return adjust_claims(pd.DataFrame([row])).iloc[0].to_dict()


def _yn(x) -> str:
    return "" if x is None else ("yes" if x else "no")


def adjust_claims(df: pd.DataFrame, method: str = "holm") -> pd.DataFrame:
    """The claims table with its p-values adjusted for multiplicity over all its rows, and the
    verdicts recomputed from the adjusted p.

    ``method="holm"`` (default): Holm-Bonferroni, which controls the family-wise error rate (the
    chance of any false "yes" in the table); ``"bh"``: Benjamini-Hochberg (false discovery rate).
    The family is the rows with at least 3 seeds and a raw p-value (the others cannot be resolved:
    "not enough seeds" or "no"). Adds or replaces ``p adjusted (Holm)`` (or ``(BH)``) after the raw
    ``p (paired t)``, sets ``claims in family``, and recomputes ``resolved`` (:func:`
    mser_lib.report.stats.verdict` on the adjusted p) and ``agrees with paper``. Works on the
    frames :func:`claim_row` builds and on claims CSVs read back (``claim`` as column or index).
    Returns a new frame; rows and their order are kept.
    """
    need = ["seeds", CLAIM_P_RAW, "seeds agree in sign", "CI excludes 0", "direction as paper"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise KeyError(f"claims table lacks {missing}: rebuild it with ab.claim_row from this version")
    out = df.drop(columns=[c for c in df.columns if str(c).startswith("p adjusted (")] +
                  [c for c in (CLAIM_FAMILY,) if c in df.columns])
    p_raw = pd.to_numeric(out[CLAIM_P_RAW].replace("", np.nan), errors="coerce").to_numpy(dtype=float)
    n = pd.to_numeric(out["seeds"], errors="coerce").fillna(0).to_numpy(dtype=float)
    same = [bool(is_yes(x)) for x in out["seeds agree in sign"]]
    excl = [is_yes(x) for x in out["CI excludes 0"]]
    adj, verdicts, m = _family_verdicts(n, p_raw, same, excl, method)
    pos = list(out.columns).index(CLAIM_P_RAW) + 1
    out.insert(pos, _adjust_column(method), [_p(q) for q in adj])
    out.insert(pos + 1, CLAIM_FAMILY, m)
    out["resolved"] = verdicts
    direction = [is_yes(x) for x in out["direction as paper"]]
    out["agrees with paper"] = [("yes" if d else "no") if v == "yes" and d is not None else "undecided"
                                for v, d in zip(verdicts, direction)]
    return out


__all__ = ["reported_femf_components", "reported_femf_modalities", "reported_atsuko_table4", "grid_frame",
           "summary_table", "reported_as_rows", "values", "compare_labels",
           "comparison_frame", "missing_curves", "curve_table", "masking_alone", "degradation_compare",
           "diagnostics_under_missing",
           "fused_features", "strongest_positive", "sample_diagnostic", "femf_attention",
           "band_energy_frame", "reported_pair_text", "claim_row", "adjust_claims", "schedule_text", "degenerate_note",
           "bootstrap_clusters", "RunPredictions"]
