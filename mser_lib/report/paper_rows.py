"""The papers' reported numbers, and the main results table that sets them beside ours.

These are the only typed numbers of the project. Each is copied, as printed, from a table of one of
the two papers (``/work/shared/papers``: FEMF = ``000_...``, Atsuko = ``001_...``); every row carries
its source table, dataset, setting and the features the paper used, and every table built from
them marks the row ``reported``. They are never mixed into an average and never checked against
our numbers: the papers used CMU-MOSI/MOSEI with other features and GPUs, so the rows are context,
not targets. ``tests/test_notebooks.py`` checks the transcription against the papers' text.

* FEMF Table 1: MAE, Corr, Acc-2 and F1 as "neg/non-neg / neg/pos" on CMU-MOSI and CMU-MOSEI; FEMF
  and MoMKE use DeBERTa-large (text), wav2vec-large (audio) and MA-Net (visual) utterance features;
  the paper does not state the features behind the other rows (numbers quoted from their papers).
* Atsuko Table 1: Acc-7, Acc-2, F1, MAE on CMU-MOSI and CMU-MOSEI, aligned and unaligned. The paper
  does not state which Acc-2/F1 protocol (neg/non-neg or neg/pos) it reports, nor its features
  (they are in its supplement); we record them as "protocol not stated".
* Atsuko Table 2 (CH-SIMS, CH-SIMS v2: Acc-5, Acc-3, Acc-2, F1, their average) and Table 3
  (MIntRec: accuracy, F1, precision, recall), for runs on those datasets.

:func:`main_table` builds the main results table: the reported rows of the methods mser implements
(FEMF, Atsuko, EMOE) for the dataset family, then our measured rows (mean ± std over seeds, every
metric of docs/metrics.md), each with dataset, features, profile and seeds. :func:`femf_layout` and
:func:`atsuko_layout` give the same rows in the column layout of each paper's Table 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..metrics import METRIC_NAMES, in_percent
from .tables import aggregate, data_labels, variant_name

FEMF_FEATURES = "DeBERTa-large (text), wav2vec-large (audio), MA-Net (visual); utterance level, as MoMKE"
UNSTATED_FEATURES = "not stated in the paper (numbers quoted from the cited work)"
ATSUKO_FEATURES = "not stated in the paper (supplement); EMOE-style MMSA {setting} features"

# --- FEMF Table 1, as printed (tab-separated: model, MOSI MAE Corr Acc-2 F1, MOSEI MAE Corr Acc-2 F1) ---
FEMF_TABLE1 = """\
Self-MM	0.713	0.798	84.0/86.0	84.4/86.0	0.539	0.753	83.8/85.2	83.7/85.1
MMIM	0.712	0.790	83.34/85.39	83.43/85.41	0.536	0.764	82.57/85.01	82.41/85.13
CubeMLP	0.755	0.772	80.76/82.32	81.77/84.23	0.537	0.761	82.36/85.23	82.61/85.04
ConFEDE	0.742	0.784	84.17/85.52	84.13/85.52	0.522	0.780	81.65/85.82	82.17/85.83
ALMT	0.712	0.793	83.97/85.82	84.05/85.86	0.530	0.774	81.54/85.99	81.05/86.05
TMSON	0.687	0.809	85.40/87.2	85.40/87.2	0.526	0.766	85.2/86.4	85.3/86.2
HyDiscGAN	0.749	0.782	84.1/86.7	83.7/86.3	0.533	0.761	81.9/86.3	82.1/86.2
MoMKE*	0.798	0.801	85.27/87.96	85.22/87.97	0.556	0.827	84.97/87.29	84.91/87.19
DEVA	0.73	0.787	84.4/86.29	84.48/86.3	0.541	0.769	83.26/86.13	82.93/86.21
MFMB-Net	0.709	0.798	82.7/85.70	83.2/86.00	0.532	0.758	84.7/85.10	85.0/85.10
Ours	0.758	0.828	85.48/88.37	85.32/ 88.36	0.553	0.831	85.23/87.6	85.41/87.54
"""

# --- Atsuko Table 1 (model, setting, MOSI ACC7 ACC2 F1 MAE, MOSEI ACC7 ACC2 F1 MAE) ---
ATSUKO_TABLE1 = """\
EF-LSTM	aligned	33.7	75.3	75.2	1.386	47.4	78.2	77.9	0.620
LF-DNN	aligned	31.5	78.4	78.3	0.972	51.7	83.5	83.1	0.568
TFN	aligned	31.9	78.8	78.9	0.953	50.9	80.4	80.7	0.574
LMF	aligned	36.9	78.7	78.7	0.931	52.3	84.7	84.5	0.564
MFN	aligned	35.6	78.4	78.4	0.964	50.8	84.0	84.0	0.574
Graph-MFN	aligned	31.5	78.1	78.1	0.970	51.6	84.6	84.5	0.553
MulT	aligned	35.1	80.0	80.1	0.936	52.3	82.7	82.8	0.572
MISA	aligned	41.8	84.2	84.2	0.754	52.3	85.3	85.1	0.543
Self-MM	aligned	45.3	84.9	84.9	0.738	53.2	84.5	84.3	0.540
MMIM	aligned	45.8	84.6	84.5	0.717	50.1	83.6	83.5	0.580
DMD	aligned	46.2	83.2	83.2	0.721	52.4	84.8	84.7	0.546
EMOE	aligned	47.7	85.4	85.4	0.710	54.1	85.3	85.3	0.536
Atsuko(Ours)	aligned	48.7	86.3	86.2	0.696	54.4	85.6	85.7	0.530
EF-LSTM	unaligned	31.0	73.6	74.5	1.420	46.3	76.1	75.9	0.594
LF-DNN	unaligned	32.5	78.2	78.3	0.987	52.3	83.7	83.2	0.561
TFN	unaligned	35.3	76.5	76.6	0.995	50.2	84.2	84.0	0.573
LMF	unaligned	31.1	79.1	79.1	0.963	51.9	83.8	83.9	0.565
MFN	unaligned	34.7	80.0	80.1	0.971	51.3	83.2	83.3	0.567
Graph-MFN	unaligned	34.4	79.4	79.2	0.930	51.8	84.2	84.2	0.568
MulT	unaligned	33.2	80.3	80.3	0.933	53.2	84.0	84.0	0.556
MISA	unaligned	43.6	83.8	83.9	0.742	51.0	84.8	84.8	0.557
Self-MM	unaligned	45.7	83.4	83.6	0.724	52.9	85.3	84.8	0.535
MMIM	unaligned	45.9	83.4	83.4	0.777	52.6	81.5	81.3	0.578
DMD	unaligned	46.7	84.0	84.0	0.721	53.1	84.7	84.7	0.536
EMOE	unaligned	47.8	85.4	85.3	0.697	53.9	85.5	85.5	0.530
Atsuko(Ours)	unaligned	49.4	86.0	85.9	0.691	54.5	85.7	85.6	0.530
"""

# --- Atsuko Table 2 (model, SIMS ACC5 ACC3 ACC2 F1 Avg, SIMS_v2 ACC5 ACC3 ACC2 F1 Avg) ---
ATSUKO_TABLE2 = """\
TFN	39.30	65.12	78.38	78.62	65.36	52.55	72.21	80.14	80.14	71.26
LMF	40.53	64.68	77.77	77.88	65.19	47.79	64.90	74.18	73.88	65.19
Self-MM	41.53	65.47	80.04	80.44	66.87	52.77	72.61	79.69	76.76	70.46
BBFN	40.92	61.05	78.12	77.88	64.49	53.29	74.47	78.53	78.41	71.18
CENet	33.92	62.58	77.90	77.53	63.66	53.04	73.1	79.56	79.63	71.33
EMOE	42.23	65.43	79.64	79.69	66.75	53.71	71.08	80.85	80.76	71.60
Atsuko(Ours)	44.42	66.74	80.41	80.21	67.95	54.16	72.15	81.17	81.12	72.15
"""

# --- Atsuko Table 3 (model, MIntRec ACC F1 P R) ---
ATSUKO_TABLE3 = """\
MAG-BERT	70.34	68.19	68.31	69.36
MulT	72.58	69.36	70.73	69.47
MISA	72.36	70.57	71.24	70.41
EMOE	72.58	70.73	72.08	70.86
Atsuko (Ours)	74.16	71.22	72.93	70.86
"""

#: How the papers print the rows of our own methods ("Ours" in FEMF's tables: :attr:`ReportedRow.implements`);
#: every other row is matched to a registered model by its label (``ModelSpec.label``: "TFN", "MulT", ...).
OURS = {"Atsuko(Ours)": "atsuko", "Atsuko (Ours)": "atsuko"}


def implemented(model: str) -> str | None:
    """Our registry name for a model as a paper's table prints it, ``None`` when mser does not implement it."""
    from ..models.registry import model_names, model_spec

    labels = {model_spec(n).label: n for n in model_names()}
    # FEMF's Table 1 stars the rows its authors reran on their own features ("MoMKE*")
    return OURS.get(model) or labels.get(model) or labels.get(model.rstrip("*"))

#: The paper each method of ours comes from, and the table of that paper whose rows it claims to beat.
TABLE1_OF = {"femf": "FEMF Table 1", "atsuko": "Atsuko Table 1"}


@dataclass(frozen=True)
class ReportedRow:
    """One row of a paper's table, as printed.

    ``values`` maps our metric keys (``mae``, ``acc2_has0``, ...; ``acc2_unstated`` and
    ``f1_unstated`` where the paper does not say which Acc-2 protocol it used) to the printed string,
    accuracies in percent as in the paper.
    """

    source: str
    model: str
    dataset: str
    setting: str
    features: str
    values: dict = field(default_factory=dict)

    def value(self, metric: str) -> float:
        """The number as a float on our scale (accuracies and F1 as fractions)."""
        v = float(self.values[metric])
        return v if metric in ("mae", "corr") else v / 100.0

    @property
    def implements(self) -> str | None:
        """Our registry name when the row is a model mser implements (FEMF, Atsuko, EMOE and the registered
        baselines, matched by label)."""
        if self.model == "Ours":
            return "femf" if self.source.startswith("FEMF") else None
        return implemented(self.model)

    @property
    def label(self) -> str:
        """The model's name for tables (the papers' "Ours" resolved to FEMF / Atsuko)."""
        if self.model == "Ours":
            return "FEMF"
        return self.model.replace("(Ours)", "").replace(" (Ours)", "").strip()


def _rows(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.strip().splitlines()]


def _pair(s: str) -> tuple[str, str]:
    a, b = (p.strip() for p in s.split("/"))
    return a, b


def femf_table1() -> list[ReportedRow]:
    """FEMF Table 1 (CMU-MOSI and CMU-MOSEI), one row per (model, dataset)."""
    out = []
    for cells in _rows(FEMF_TABLE1):
        model = cells[0]
        feats = FEMF_FEATURES if model in ("Ours", "MoMKE*") else UNSTATED_FEATURES
        for dataset, block in (("CMU-MOSI", cells[1:5]), ("CMU-MOSEI", cells[5:9])):
            mae, corr, acc2, f1 = block
            a_has0, a_non0 = _pair(acc2)
            f_has0, f_non0 = _pair(f1)
            out.append(ReportedRow("FEMF Table 1", model, dataset, "utterance-level", feats,
                                   {"mae": mae, "corr": corr, "acc2_has0": a_has0, "acc2_non0": a_non0,
                                    "f1_has0": f_has0, "f1_non0": f_non0}))
    return out


def atsuko_table1() -> list[ReportedRow]:
    """Atsuko Table 1 (CMU-MOSI and CMU-MOSEI, aligned and unaligned)."""
    out = []
    for cells in _rows(ATSUKO_TABLE1):
        model, setting = cells[0], cells[1]
        for dataset, block in (("CMU-MOSI", cells[2:6]), ("CMU-MOSEI", cells[6:10])):
            acc7, acc2, f1, mae = block
            out.append(ReportedRow("Atsuko Table 1", model, dataset, setting,
                                   ATSUKO_FEATURES.format(setting=setting),
                                   {"acc7": acc7, "acc2_unstated": acc2, "f1_unstated": f1, "mae": mae}))
    return out


def atsuko_table2() -> list[ReportedRow]:
    """Atsuko Table 2 (CH-SIMS and CH-SIMS v2; ``avg`` is the paper's mean of the four columns)."""
    out = []
    for cells in _rows(ATSUKO_TABLE2):
        model = cells[0]
        for dataset, block in (("CH-SIMS", cells[1:6]), ("CH-SIMS v2", cells[6:11])):
            acc5, acc3, acc2, f1, avg = block
            out.append(ReportedRow("Atsuko Table 2", model, dataset, "unaligned", ATSUKO_FEATURES.format(
                setting="unaligned"), {"acc5": acc5, "acc3": acc3, "acc2": acc2, "f1": f1, "avg": avg}))
    return out


def atsuko_table3() -> list[ReportedRow]:
    """Atsuko Table 3 (MIntRec intent recognition; F1/P/R averaging as in the paper, macro assumed)."""
    return [ReportedRow("Atsuko Table 3", c[0], "MIntRec", "", ATSUKO_FEATURES.format(setting="MIntRec"),
                        {"acc": c[1], "f1_macro": c[2], "precision_macro": c[3], "recall_macro": c[4]})
            for c in _rows(ATSUKO_TABLE3)]


def reported_rows(family: str = "mosi", implemented_only: bool = False) -> list[ReportedRow]:
    """All transcribed rows for a metric family (``mosi``, ``sims``, ``classification``)."""
    rows = {"mosi": femf_table1() + atsuko_table1(), "sims": atsuko_table2(),
            "classification": atsuko_table3()}.get(family, [])
    if implemented_only:
        rows = [r for r in rows if r.implements]
    return rows


def _ahead(mine: ReportedRow, theirs: ReportedRow, metric: str) -> int:
    """+1 when the paper prints its method ahead of the row on ``metric`` (lower MAE, higher otherwise), -1 when
    behind, 0 when equal."""
    a, b = mine.value(metric), theirs.value(metric)
    if metric == "mae":
        a, b = -a, -b
    return (a > b) - (a < b)


def table1_claims(models, metrics: tuple[str, ...] = ("mae", "acc7", "corr")) -> list[dict]:
    """The claims of each paper's Table 1 that runs of ``models`` (registry names) can test: the paper's method
    beats each row of its Table 1 that mser implements and ran, on each metric of ``metrics`` where the paper's
    own numbers put it ahead (never behind in a printed dataset or setting, ahead in at least one: FEMF's MAE,
    0.758 on MOSI against Self-MM's 0.713, is no claim of FEMF's). One dict per (pair, metric): ``claim``
    ("Table 1: Atsuko beats TFN (MAE)"), ``a``, ``b`` (registry names), ``metric`` and ``says`` (the printed
    numbers, method vs row, per dataset and setting)."""
    return _table_claims(models, metrics, femf_table1() + atsuko_table1(), TABLE1_OF)


def table3_claims(models, metrics: tuple[str, ...] = ("acc", "f1_macro")) -> list[dict]:
    """Atsuko's Table 3 (MIntRec) as claims, by the rule of :func:`table1_claims`: Atsuko beats each row mser
    implements and ran (MulT, MISA, EMOE) on each metric of ``metrics`` where its printed number is ahead."""
    return _table_claims(models, metrics, atsuko_table3(), {"atsuko": "Atsuko Table 3"})


def _table_claims(models, metrics: tuple[str, ...], printed: list[ReportedRow], tables: dict[str, str]) -> list[dict]:
    """The rule of :func:`table1_claims` over the ``printed`` rows of ``tables`` (method -> its table's source)."""
    from ..models.registry import model_spec

    models = set(models)
    rows = [r for r in printed if r.implements in models]
    out = []
    for method, table in tables.items():
        mine = {(r.dataset, r.setting): r for r in rows if r.source == table and r.implements == method}
        others = dict.fromkeys(r.implements for r in rows if r.source == table and r.implements != method)
        if method not in models:
            continue
        for other in others:
            theirs = {(r.dataset, r.setting): r for r in rows if r.source == table and r.implements == other}
            for metric in metrics:
                pairs = [k for k in mine if k in theirs and metric in mine[k].values and metric in theirs[k].values]
                signs = [_ahead(mine[k], theirs[k], metric) for k in pairs]
                says = [f"{d}{' ' + st if st not in ('', 'utterance-level') else ''} {mine[(d, st)].values[metric]} "
                        f"vs {theirs[(d, st)].values[metric]}" for d, st in pairs]
                if says and min(signs) >= 0 and max(signs) > 0:
                    out.append({"claim": f"{table.split(' ', 1)[1]}: {model_spec(method).label} beats "
                                         f"{model_spec(other).label} ({_NAMES.get(metric, metric)})",
                                "a": method, "b": other, "metric": metric, "says": f"{table}: " + "; ".join(says)})
    return out


def reported_frame(rows: list[ReportedRow]) -> pd.DataFrame:
    """The rows as printed, one column per metric key (strings), marked ``reported``."""
    recs = [{"source": f"reported: {r.source}", "model": r.label, "dataset": r.dataset, "setting": r.setting,
             "features": r.features, **r.values} for r in rows]
    return pd.DataFrame(recs)


# ------------------------------------------------------------------------------- measured rows
#: Every metric of docs/metrics.md, in the order of the main table.
SPEC2_COLUMNS = {
    "mosi": ["acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc7", "acc5", "acc3", "mae", "corr"],
    "sims": ["acc2", "f1", "acc3", "acc5", "mae", "corr"],
    "classification": ["acc", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"],
}
UNSTATED = {"acc2_unstated": "Acc-2 (protocol not stated)", "f1_unstated": "F1 (protocol not stated)"}
_NAMES = {**METRIC_NAMES, **UNSTATED, "avg": "Avg"}


def features_label(info) -> str:
    """A short description of a dataset's features for the table (from its ``DatasetInfo``)."""
    d = info.dims
    dims = f"t{d['text']}/a{d['audio']}/v{d['vision']}"
    src = info.source or {}
    if info.name == "synthetic":
        return f"built-in synthetic benchmark ({src.get('profile', '?')} size, {dims})"
    if info.name == "synthetic-intent":
        return (f"built-in classification benchmark, MIntRec's stand-in ({src.get('profile', '?')} size, "
                f"{info.num_classes} classes, {dims})")
    if info.name == "mosi-bclstm":
        split = src.get("split", "bclstm")
        return (f"bc-LSTM utterance features: text-CNN, openSMILE, 3D-CNN ({dims}); "
                f"{'bc-LSTM split' if split == 'bclstm' else 'standard folds (LEAKY)'}")
    return f"{info.name} ({dims})"


def format_mean_std(metric: str, mean: float, std: float) -> str:
    """``"85.3 ± 1.2"``: accuracies/F1 in percent with one decimal, MAE/Corr with three decimals;
    no ``±`` part when the std is nan (one seed)."""
    scale, digits = (100.0, 1) if in_percent(metric) else (1.0, 3)
    if np.isnan(mean):
        return "nan"
    s = f"{mean * scale:.{digits}f}"
    if not np.isnan(std):
        s += f" ± {std * scale:.{digits}f}"
    return s


def untagged(records: list[dict]) -> list[dict]:
    """Copies of ``records`` without their ``tag``. A tag is a label given by whichever grid trained the
    run first and is not part of the config hash, so a cached record may carry another grid's tag;
    the tables here label rows by model and overrides only."""
    return [{**r, "tag": None} for r in records]


def row_label(record: dict) -> str:
    """``femf`` / ``baseline (modalities=t)``: the model and its overrides (never the record's tag)."""
    v = variant_name({**record, "tag": None})
    return record["model"] if v == "default" else f"{record['model']} ({v})"


def row_labels(records: list[dict]) -> dict[tuple[str, str], str]:
    """``{(model, variant): row label}`` with the variants :func:`~mser_lib.report.tables.aggregate` groups by
    (runs of one variant on different data are told apart by ``data=<fingerprint>``)."""
    return {(r["model"], v): r["model"] if v == "default" else f"{r['model']} ({v})"
            for r, v in zip(records, data_labels(records))}


def measured_frame(records: list[dict], info, profile: str, split: str = "test",
                   order: list[str] | None = None) -> pd.DataFrame:
    """Our rows: one per (model, variant), every metric of docs/metrics.md as "mean ± std" over seeds (percent for
    accuracies and F1, as the papers print them), with dataset, features, profile and seeds."""
    records = untagged(records)
    long = aggregate(records, split)
    if long.empty:
        return pd.DataFrame()
    cols = SPEC2_COLUMNS.get(info.metric_family, [m for m in dict.fromkeys(long["metric"]) if m != "loss"])
    labels = row_labels(records)
    out = []
    for (model, variant), grp in long.groupby(["model", "variant"], sort=False):
        seeds = sorted({s for ss in grp["seeds"] for s in ss})
        row = {"source": "measured (mser)", "model": labels[(model, variant)], "dataset": info.name,
               "setting": f"profile {profile}", "features": features_label(info),
               "seeds": ",".join(str(s) for s in seeds)}
        for m in cols:
            hit = grp[grp["metric"] == m]
            row[m] = (format_mean_std(m, float(hit["mean"].iloc[0]), float(hit["std"].iloc[0]))
                      if len(hit) else "")
        out.append(row)
    df = pd.DataFrame(out)
    if order:
        rank = {name: i for i, name in enumerate(order)}
        keys = [(rank.get(name.split(" ")[0], 99), i) for i, name in enumerate(df["model"])]
        df = df.iloc[[i for _, i in sorted(keys)]]
    return df.reset_index(drop=True)


def main_table(records: list[dict], info, profile: str, split: str = "test",
               order: list[str] | None = None,
               with_reported: bool = True) -> pd.DataFrame:
    """The main results table: reported rows of FEMF, Atsuko and EMOE (marked ``reported``, with
    their dataset, setting and features) above our measured rows (mean ± std over the seeds listed), the
    methods and baselines in ``order`` (default: the registry's, :func:`~mser_lib.models.registry.compared_models`).

    Columns: source, model, dataset, setting, features, seeds, then every metric (docs/metrics.md) of the
    dataset's family (and, for MOSI-family data, Atsuko's Acc-2/F1 whose protocol is not stated).
    """
    fam = info.metric_family
    if order is None:
        from ..models.registry import compared_models

        order = compared_models()
    ours = measured_frame(records, info, profile, split, list(order) if order else None)
    frames = []
    metric_cols = list(SPEC2_COLUMNS.get(fam, []))
    if with_reported:
        rep = reported_frame(reported_rows(fam, implemented_only=True))
        if not rep.empty:
            rep["seeds"] = "as reported"
            extra = [c for c in rep.columns if c in UNSTATED or c == "avg"]
            metric_cols += [c for c in extra if c not in metric_cols]
            frames.append(rep)
    if not ours.empty:
        frames.append(ours)
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    ident = ["source", "model", "dataset", "setting", "features", "seeds"]
    if not metric_cols:
        metric_cols = [c for c in df.columns if c not in ident]
    df = df.reindex(columns=[*ident, *metric_cols]).fillna("")
    df = df.rename(columns={c: _NAMES.get(c, c) for c in metric_cols})
    return df.set_index(["source", "model"])


def split_main_table(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Narrow views of :func:`main_table` (or its CSV read back) for display.

    Returns ``(measured, reported, features)``: our rows indexed by model, without the identity columns
    they all share (source, dataset, setting, features); the reported rows indexed by (source, model);
    each without the columns empty in every one of its rows; and the measured rows' features, to put in
    a caption (one string, ``"; "``-joined when they differ).
    """
    df = table.reset_index() if "source" not in table.columns else table.copy()
    is_rep = df["source"].astype(str).str.startswith("reported")

    def nonempty(d: pd.DataFrame) -> pd.DataFrame:
        return d[[c for c in d.columns if (d[c].astype(str).str.strip() != "").any()]]

    ours = df[~is_rep]
    features = "; ".join(dict.fromkeys(str(f) for f in ours.get("features", pd.Series(dtype=str)) if str(f)))
    measured = nonempty(ours.drop(columns=["source", "dataset", "setting", "features"], errors="ignore"))
    reported = nonempty(df[is_rep].drop(columns=["seeds"], errors="ignore"))
    return (measured.set_index("model") if "model" in measured else measured,
            reported.set_index(["source", "model"]) if len(reported) else reported, features)


def femf_layout(records: list[dict], info, profile: str, split: str = "test") -> pd.DataFrame:
    """FEMF Table 1's layout: MAE, Corr, Acc-2 and F1 as "neg/non-neg / neg/pos"; FEMF's reported
    rows (all of Table 1 for the dataset's family) then ours (means over seeds)."""
    rows = []
    for r in femf_table1():
        rows.append({"source": "reported: FEMF Table 1", "model": r.label, "dataset": r.dataset,
                     "MAE": r.values["mae"], "Corr": r.values["corr"],
                     "Acc-2": f"{r.values['acc2_has0']}/{r.values['acc2_non0']}",
                     "F1": f"{r.values['f1_has0']}/{r.values['f1_non0']}", "seeds": "as reported"})
    records = untagged(records)
    long = aggregate(records, split)
    labels = row_labels(records)
    for (model, variant), grp in long.groupby(["model", "variant"], sort=False):
        mean = dict(zip(grp["metric"], grp["mean"]))
        if not {"acc2_has0", "acc2_non0", "f1_has0", "f1_non0", "mae", "corr"} <= set(mean):
            continue
        rows.append({"source": f"measured (mser), profile {profile}", "model": labels[(model, variant)],
                     "dataset": info.name, "MAE": f"{mean['mae']:.3f}", "Corr": f"{mean['corr']:.3f}",
                     "Acc-2": f"{100 * mean['acc2_has0']:.2f}/{100 * mean['acc2_non0']:.2f}",
                     "F1": f"{100 * mean['f1_has0']:.2f}/{100 * mean['f1_non0']:.2f}",
                     "seeds": ",".join(map(str, sorted({s for ss in grp['seeds'] for s in ss})))})
    return pd.DataFrame(rows).set_index(["source", "model", "dataset"])


def atsuko_layout(records: list[dict], info, profile: str, split: str = "test") -> pd.DataFrame:
    """Atsuko Table 1's layout: Acc-7, Acc-2, F1, MAE per (model, setting). The paper does not state
    its Acc-2 protocol; our rows show neg/pos (``acc2_non0``, ``f1_non0``), said in column ``note``."""
    rows = []
    for r in atsuko_table1():
        rows.append({"source": "reported: Atsuko Table 1", "model": r.label, "dataset": r.dataset,
                     "setting": r.setting, "Acc-7": r.values["acc7"], "Acc-2": r.values["acc2_unstated"],
                     "F1": r.values["f1_unstated"], "MAE": r.values["mae"], "seeds": "as reported",
                     "note": "Acc-2/F1 protocol not stated"})
    records = untagged(records)
    long = aggregate(records, split)
    labels = row_labels(records)
    for (model, variant), grp in long.groupby(["model", "variant"], sort=False):
        mean = dict(zip(grp["metric"], grp["mean"]))
        if not {"acc7", "acc2_non0", "f1_non0", "mae"} <= set(mean):
            continue
        rows.append({"source": f"measured (mser), profile {profile}", "model": labels[(model, variant)],
                     "dataset": info.name, "setting": features_label(info),
                     "Acc-7": f"{100 * mean['acc7']:.1f}",
                     "Acc-2": f"{100 * mean['acc2_non0']:.1f}", "F1": f"{100 * mean['f1_non0']:.1f}",
                     "MAE": f"{mean['mae']:.3f}",
                     "seeds": ",".join(map(str, sorted({s for ss in grp['seeds'] for s in ss}))),
                     "note": "Acc-2/F1 = neg/pos"})
    return pd.DataFrame(rows).set_index(["source", "model", "dataset", "setting"])


#: The rows of Atsuko's Table 3 that mser cannot measure, and why (said in the table instead of a row).
TABLE3_NOT_MEASURED = {"MAG-BERT": "not measured: MAG-BERT gates the audio and vision features into BERT's own "
                                   "layers, and mser fine-tunes no BERT"}


def atsuko_table3_layout(records: list[dict], info, profile: str, split: str = "test") -> pd.DataFrame:
    """Atsuko Table 3's layout (MIntRec): accuracy, F1, precision and recall in percent, macro-averaged as
    MIntRec's code averages them. Atsuko's reported rows, then ours (means over seeds), each with its protocol
    (``features``: the data and its text features; ``selection``; ``seeds``); a reported row mser cannot
    measure says why (:data:`TABLE3_NOT_MEASURED`)."""
    src = info.source or {}
    text = src.get("text_features")
    features = features_label(info) + (f"; text: {text}" if text else "")
    select = ((records[0].get("select_metric") if records else None) or "f1_macro")
    rows = []
    for r in atsuko_table3():
        rows.append({"source": "reported: Atsuko Table 3", "model": r.label, "dataset": r.dataset,
                     "Acc": r.values["acc"], "F1": r.values["f1_macro"], "P": r.values["precision_macro"],
                     "R": r.values["recall_macro"], "features": "MIntRec, BERT text (as reported)",
                     "selection": "not stated", "seeds": "as reported",
                     "note": TABLE3_NOT_MEASURED.get(r.label, "")})
    records = untagged(records)
    long = aggregate(records, split)
    labels = row_labels(records)
    keys = ("acc", "f1_macro", "precision_macro", "recall_macro")
    for (model, variant), grp in long.groupby(["model", "variant"], sort=False):
        mean = dict(zip(grp["metric"], grp["mean"]))
        if not set(keys) <= set(mean):
            continue
        rows.append({"source": f"measured (mser), profile {profile}", "model": labels[(model, variant)],
                     "dataset": info.name, **{c: f"{100 * mean[k]:.2f}" for c, k in zip(("Acc", "F1", "P", "R"), keys)},
                     "features": features, "selection": f"validation {_NAMES.get(select, select)}",
                     "seeds": ",".join(map(str, sorted({s for ss in grp['seeds'] for s in ss}))), "note": ""})
    return pd.DataFrame(rows).set_index(["source", "model", "dataset"])


__all__ = ["ReportedRow", "femf_table1", "atsuko_table1", "atsuko_table2", "atsuko_table3", "reported_rows",
           "reported_frame", "measured_frame", "main_table", "femf_layout", "atsuko_layout", "atsuko_table3_layout",
           "table1_claims", "table3_claims",
           "TABLE3_NOT_MEASURED", "features_label",
           "row_label", "untagged", "format_mean_std", "SPEC2_COLUMNS", "FEMF_TABLE1", "ATSUKO_TABLE1",
           "ATSUKO_TABLE2", "ATSUKO_TABLE3"]


# ------------------------------------------------------------------ anchors on the mosi-bclstm features
# Binary accuracy (neg/non-neg) reported on exactly the features of ``mosi-bclstm`` (text-CNN, openSMILE,
# 3D-CNN; bc-LSTM speaker-independent split, 62 train / 31 test videos), trimodal. Context for the
# selection-protocol table, never a target; each with how its number was selected.
BCLSTM_ANCHORS = [
    {"source": "reported: Poria et al., ACL 2017 (bc-LSTM)", "model": "bc-LSTM", "acc2_has0": 80.3,
     "selection": "validation early stopping (as reported)"},
    {"source": "reported: Ghosal et al., EMNLP 2018 (MMMU-BA)", "model": "MMMU-BA", "acc2_has0": 82.31,
     "selection": "released code checkpoints on the test set and prints the maximum over five seeds"},
]
