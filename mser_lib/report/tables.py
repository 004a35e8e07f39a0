"""Tables from ``runs.jsonl`` records: mean +- std over seeds, in CSV, Markdown and LaTeX.

Nothing here is typed in: every cell is computed from recorded runs. Rows reported by the papers
are added by the notebooks from :mod:`mser_lib.report.paper_rows` and marked as reported.
"""

from __future__ import annotations

import math
import numbers
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import MAX_SEED
from ..data.validate import DataFormatError
from ..metrics import METRIC_NAMES, in_percent
from ..train.io import atomic_write_text, read_jsonl_numbered

MOSI_COLUMNS = ["acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc7", "acc5", "mae", "corr"]
SIMS_COLUMNS = ["acc2", "f1", "acc3", "acc5", "mae", "corr"]
CLS_COLUMNS = ["acc", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"]
# pseudo-metric of :func:`aggregate`: 1 when a run's chosen epoch was its last (still improving)
BEST_IS_LAST = "_best_is_last"
BEST_IS_LAST_COLUMN = "chosen epoch = last"
_REPORTED_DEGENERATE: set[str] = set()


def variant_name(record: dict) -> str:
    """A short label for a record's variant: its overrides, else 'default'.

    Not its ``tag``: a cached record keeps the tag of whichever grid trained it first. Trainer
    settings that differ from the profile's (e.g. the shortened schedule of the ablation grids) are
    appended as ``train.<field>=<value>``, and loader arguments (``--data-set``) as ``data.<arg>=<value>``,
    so that runs trained differently, or on data loaded differently, are never averaged together.
    """
    ov = dict(record.get("overrides") or {})
    config = record.get("config") or {}
    ov.update({f"data.{k}": v for k, v in (config.get("data_kwargs") or {}).items()})
    trained = config.get("train")
    if trained:
        from ..experiments import resolve_run

        try:
            base = resolve_run(record["model"], record["dataset"], record.get("seed", 0),
                               record["profile"])["train"]
        except KeyError:
            base = {}
        for k, v in sorted(trained.items()):
            if k not in ("device", "progress") and base.get(k) != v:
                ov[f"train.{k}"] = v
    return ",".join(f"{k}={v}" for k, v in sorted(ov.items())) or "default"


def data_labels(records: list[dict]) -> list[str]:
    """:func:`variant_name` of each record, with ``data=<fingerprint>`` appended where runs of one model
    and variant were trained on different data (other files or loader settings: their
    ``config["data_fingerprint"]`` differ), so that they are never averaged together."""
    names = [variant_name(r) for r in records]
    fps = [(r.get("config") or {}).get("data_fingerprint") for r in records]
    seen: dict[tuple, set] = {}
    key = lambda r, name: (r.get("dataset"), r.get("profile"), r["model"], name)     # noqa: E731
    for r, name, fp in zip(records, names, fps):
        seen.setdefault(key(r, name), set()).add(fp)
    return [f"{name},data={fp}" if len(seen[key(r, name)]) > 1 else name
            for r, name, fp in zip(records, names, fps)]


# ------------------------------------------------------------------------------------------------
# what a record must hold before a table averages it (issue 24, item 7)

#: Metrics that are fractions (accuracies, F1, precision, recall): in [0, 1].
_FRACTIONS = frozenset(METRIC_NAMES) - {"mae", "corr"}
_HASH = re.compile(r"[0-9a-f]{16}")


def _metric_rule(name: str) -> tuple[float | None, float | None, bool, str]:
    """``(low, high, nan_allowed, expected)`` of a metric: fractions in [0, 1], ``corr`` in [-1, 1] or NaN
    (Pearson r of a constant prediction is undefined, docs/metrics.md), ``mae`` >= 0, any other finite."""
    if name in _FRACTIONS:
        return 0.0, 1.0, False, "a number in [0, 1]"
    if name == "corr":
        return -1.0, 1.0, True, "a number in [-1, 1] (or NaN: Pearson r of a constant prediction)"
    if name == "mae":
        return 0.0, None, False, "a finite number >= 0"
    return None, None, False, "a finite number"


def _shown(value) -> str:
    """A found value for a one-line message: its type and a short ``repr`` (line breaks escaped)."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_record(record, path=None, line: int | None = None, *, profile: str | None = None,
                 dataset: str | None = None, split: str = "test", index: int | None = None) -> dict:
    """``record`` if the tables can average it, else a :class:`~mser_lib.data.validate.DataFormatError` whose
    one-line message names the file and line (``path``, ``line``; without a file: the record's position
    ``index`` in the list given), the run's config hash, the field, what was expected and what was found.

    Checked: ``model`` (a non-empty string), ``dataset`` and ``profile`` (strings; those of the folder the
    ``runs.jsonl`` sits in when ``dataset``/``profile`` are given), ``seed`` (an integer in [0, 2**32 - 1]),
    ``config_hash`` (16 lowercase hex characters in a file; a string in memory), ``split`` (present: a
    non-empty mapping of metric name to number) and ``test``/``valid`` wherever present, each metric a real
    number (never ``true``, a string, a list or null) in its range: accuracies, F1, precision and recall in
    [0, 1], ``corr`` in [-1, 1] or NaN, ``mae`` >= 0, any other metric finite; ``degenerate`` true, false or
    null; ``best_is_last`` true or false; ``overrides``, ``config`` and its ``train``/``data_kwargs`` mappings
    or null, ``config.data_fingerprint`` a string or null. Nothing is changed.
    """
    h = record.get("config_hash") if isinstance(record, dict) else None
    run = f"run {h}" if isinstance(h, str) and _HASH.fullmatch(h) else None
    where = _record_where(path, line, index, run)

    def refuse(field: str, expected: str, found) -> DataFormatError:
        return DataFormatError(where, field, expected, found)

    if not isinstance(record, dict):
        raise refuse("<record>", "a JSON object", _shown(record))
    _check_identity(record, refuse, dataset, profile)
    if "config_hash" in record:     # names the run's checkpoint folder; in memory (tests, searches) any string
        if path is not None and run is None:
            raise refuse("config_hash", "16 lowercase hex characters", _shown(h))
        if not isinstance(h, str):
            raise refuse("config_hash", "a string", _shown(h))
    _check_metrics(record, refuse, split)
    _check_optional_fields(record, refuse)
    return record


def _record_where(path, line: int | None, index: int | None, run: str | None) -> str:
    """Where a record sits, for :func:`check_record`'s messages: ``path, line n`` (or the record's position
    ``index`` in the list given), followed by ``(run <hash>)`` when ``run`` is given."""
    if path is not None:
        where = f"{path}, line {line}" if line is not None else str(path)
    else:
        where = "runs.jsonl record" + (f" {index + 1} of those given" if index is not None else "")
    where += f" ({run})" if run else ""
    return where


def _check_identity(record: dict, refuse, dataset: str | None, profile: str | None) -> None:
    """Raise ``refuse(field, expected, found)`` unless ``model``, ``dataset`` and ``profile`` are non-empty
    strings (``dataset``/``profile`` those given, when given) and ``seed`` an integer in [0, MAX_SEED]."""
    for key in ("model", "dataset", "profile"):
        if key not in record:
            raise refuse(key, "a string", "no such field")
        value = record[key]
        if not isinstance(value, str) or not value.strip():
            raise refuse(key, "a non-empty string", _shown(value))
    for key, want in (("dataset", dataset), ("profile", profile)):
        if want is not None and record[key] != want:
            raise refuse(key, f"{want!r} (the {key} of the folder this runs.jsonl is in)", _shown(record[key]))
    if "seed" not in record:
        raise refuse("seed", f"an integer in [0, {MAX_SEED}]", "no such field")
    seed = record["seed"]
    if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED):
        raise refuse("seed", f"an integer in [0, {MAX_SEED}]", _shown(seed))


def _check_metrics(record: dict, refuse, split: str) -> None:
    """Raise ``refuse(field, expected, found)`` unless ``record[split]`` and, where present and not null,
    ``record["test"]``/``record["valid"]`` are non-empty mappings of metric name to a number in its range
    (:func:`_metric_rule`)."""
    for name in dict.fromkeys((split, "test", "valid")):
        if name not in record:
            if name == split:
                raise refuse(name, "a mapping of metric name to number (the run's metrics on this split)",
                             "no such field")
            continue
        metrics = record[name]
        if metrics is None and name != split:
            continue
        if not isinstance(metrics, dict) or not metrics:
            raise refuse(name, "a non-empty mapping of metric name to number", _shown(metrics))
        for metric, value in metrics.items():
            if not isinstance(metric, str) or not metric or metric.startswith("_"):
                raise refuse(f"{name}.{metric}", "a metric name (a string not starting with '_')", _shown(metric))
            low, high, nan_ok, expected = _metric_rule(metric)
            if not _metric_value_ok(value, low, high, nan_ok):
                raise refuse(f"{name}.{metric}", expected, _shown(value))


def _metric_value_ok(value, low: float | None, high: float | None, nan_ok: bool) -> bool:
    """Whether ``value`` is a real number (not a bool) in [``low``, ``high``] (a bound of ``None``: none),
    finite, or NaN when ``nan_ok``; an integer past the float range counts as infinite."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        try:
            v = float(value)
        except OverflowError:             # an integer past the float range
            v = math.inf
        if math.isnan(v):
            ok = nan_ok
        else:
            ok = math.isfinite(v) and (low is None or v >= low) and (high is None or v <= high)
    return ok


def _check_optional_fields(record: dict, refuse) -> None:
    """Raise ``refuse(field, expected, found)`` unless ``degenerate`` is true, false or null, ``best_is_last``
    true or false, ``overrides``, ``config`` and ``config.train``/``config.data_kwargs`` mappings or null, and
    ``config.data_fingerprint`` a string or null (each where present)."""
    if record.get("degenerate") is not None and not isinstance(record["degenerate"], bool):
        raise refuse("degenerate", "true, false or null", _shown(record["degenerate"]))
    if "best_is_last" in record and not isinstance(record["best_is_last"], bool):
        raise refuse("best_is_last", "true or false", _shown(record["best_is_last"]))
    for key in ("overrides", "config"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise refuse(key, "a mapping or null", _shown(record[key]))
    config = record.get("config") or {}
    for key in ("train", "data_kwargs"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise refuse(f"config.{key}", "a mapping or null", _shown(config[key]))
    if config.get("data_fingerprint") is not None and not isinstance(config["data_fingerprint"], str):
        raise refuse("config.data_fingerprint", "a string or null", _shown(config["data_fingerprint"]))


def load_records(results_dir, profile: str, dataset: str) -> list[dict]:
    """The records of ``<results_dir>/<profile>/<dataset>/runs.jsonl``, each checked by :func:`check_record`
    (a record the tables cannot average, or one of another profile or dataset, is refused with one line naming
    the file, the line, the field, what was expected and what was found). Torn lines are skipped with a
    warning, as :func:`mser_lib.train.io.read_jsonl` does; no file: no records."""
    path = Path(results_dir) / profile / dataset / "runs.jsonl"
    return [check_record(rec, path, number, profile=profile, dataset=dataset)
            for number, rec in read_jsonl_numbered(path, stacklevel=3)]


def aggregate(records: list[dict], split: str = "test", by=("model", "variant"),
              include_degenerate: bool = False) -> pd.DataFrame:
    """Long table: one row per (group, metric) with mean, std (ddof=1), n seeds and the seeds.

    Runs recorded as ``degenerate`` (no better than the trivial predictor on their selection split) are
    left out, with a warning naming them, unless ``include_degenerate``.

    Every record is checked first (:func:`check_record`): a record the table cannot average is refused with
    one line, never skipped. A ``corr`` of NaN (constant predictions) makes its group's mean NaN, so ``n``
    is always the number of values averaged."""
    for i, r in enumerate(records):
        check_record(r, split=split, index=i)
    bad = [r for r in records if r.get("degenerate")]
    if bad and not include_degenerate:
        new = [r for r in bad if r.get("config_hash") not in _REPORTED_DEGENERATE]
        if new:    # once per run and process: tables are built many times from the same records
            _REPORTED_DEGENERATE.update(r.get("config_hash") for r in new)
            named = ", ".join(f"{r['model']} ({variant_name(r)}) seed {r['seed']}" for r in new)
            print(f"NOTE: {len(new)} degenerate run(s) (learned nothing: no better than the trivial predictor) "
                  f"left out of the tables, figures and sentences built from metrics (a table of run costs still "
                  f"counts them: they took their time): {named}", file=sys.stderr)
        records = [r for r in records if not r.get("degenerate")]
    labels = data_labels(records)
    rows = []
    for r, variant in zip(records, labels):
        metrics = {k: float(v) for k, v in r[split].items()}
        if "best_is_last" in r:
            metrics[BEST_IS_LAST] = float(bool(r["best_is_last"]))
        for k, v in metrics.items():
            rows.append({"model": r["model"], "variant": variant, "seed": r["seed"],
                         "metric": k, "value": v, "dataset": r["dataset"], "profile": r["profile"]})
    if not rows:
        return pd.DataFrame(columns=[*by, "metric", "mean", "std", "n", "seeds"])
    df = pd.DataFrame(rows)
    # One value per seed: if a run was recorded twice (force), keep the newest.
    df = df.drop_duplicates(subset=[*by, "seed", "metric"], keep="last")
    g = df.groupby([*by, "metric"], sort=False)["value"]
    out = g.agg(mean="mean", std=lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else float("nan"),
                n="size", values="count").reset_index()
    # a NaN (corr of a constant prediction) makes the mean and std NaN: never a mean of fewer values than n
    out.loc[out["values"] < out["n"], ["mean", "std"]] = float("nan")
    out = out.drop(columns="values")
    seeds = df.groupby([*by, "metric"], sort=False)["seed"].apply(lambda s: sorted(s.tolist())).reset_index()
    return out.merge(seeds.rename(columns={"seed": "seeds"}), on=[*by, "metric"])


def wide_table(long: pd.DataFrame, columns: list[str] | None = None, percent: bool = True,
               by=("model", "variant")) -> pd.DataFrame:
    """Wide table of "mean ± std" strings, one row per group, columns in the papers' order.

    Accuracies and F1 are shown in percent (as the papers do); MAE and Corr as they are.
    """
    if long.empty:
        return pd.DataFrame()
    present = list(dict.fromkeys(long["metric"]))
    if columns is None:
        for cand in (MOSI_COLUMNS, SIMS_COLUMNS, CLS_COLUMNS):
            if set(cand) <= set(present):
                columns = cand
                break
        else:
            columns = [m for m in present if m != "loss" and not m.startswith("_")]
    table = {}
    for keys, grp in long.groupby(list(by), sort=False):
        row = {}
        n = int(grp["n"].max())
        for m in columns:
            hit = grp[grp["metric"] == m]
            if hit.empty:
                row[METRIC_NAMES.get(m, m)] = ""
                continue
            mean, std = float(hit["mean"].iloc[0]), float(hit["std"].iloc[0])
            scale = 100.0 if percent and in_percent(m) else 1.0
            digits = 1 if scale == 100.0 else 3
            s = f"{mean * scale:.{digits}f}"
            if not np.isnan(std):
                s += f" ± {std * scale:.{digits}f}"
            row[METRIC_NAMES.get(m, m)] = s
        row["seeds"] = n
        flag = grp[grp["metric"] == BEST_IS_LAST]
        if not flag.empty:   # runs still improving at their last epoch: the budget may be too short
            row[BEST_IS_LAST_COLUMN] = f"{int(round(float(flag['mean'].iloc[0]) * int(flag['n'].iloc[0])))}/{n}"
        table[keys if isinstance(keys, tuple) else (keys,)] = row
    df = pd.DataFrame.from_dict(table, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=list(by))
    return df


def results_table(results_dir, profile: str, dataset: str, split: str = "test") -> pd.DataFrame:
    """The main results table for one profile and dataset, from its runs.jsonl."""
    return wide_table(aggregate(load_records(results_dir, profile, dataset), split))


def md_cell(value) -> str:
    """A value as one Markdown table cell: ``|`` escaped, line breaks as spaces, ``<`` as ``&lt;`` (no HTML,
    no comment marker, no extra column or row can come from a record's text)."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (index columns first; every cell through :func:`md_cell`); no extra dependency."""
    flat = df.reset_index()
    head = [md_cell(c) for c in flat.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for _, r in flat.iterrows():
        lines.append("| " + " | ".join(md_cell(v) for v in r.tolist()) + " |")
    return "\n".join(lines) + "\n"


INLINE_COLUMNS = 8   # a notebook's inline table: at most this many columns (index columns included)
INLINE_ROWS = 15     # and about this many rows; the full table stays in tables/


def inline_table(df: pd.DataFrame, columns: list[str] | None = None, rows: int = INLINE_ROWS,
                 full: str = "") -> str:
    """The Markdown a notebook shows for ``df``: at most :data:`INLINE_COLUMNS` columns and ``rows`` rows.

    A column whose value is the same on every row (e.g. ``seeds`` or ``schedule``, or an index level after the
    first, such as a paper table's ``source``) is not repeated: it becomes one line under the table ("all rows:
    seeds 2"). ``columns`` chooses the data columns to keep,
    in order (index columns always stay); past the limit the last columns go. Whatever is left out is
    named under the table with ``full`` (the path of the full table), so nothing is hidden silently.
    """
    flat = df.reset_index() if any(n is not None for n in df.index.names) else df.copy()
    keys = [c for c in flat.columns if c in (df.index.names or [])]
    chosen = [c for c in (columns if columns is not None else flat.columns) if c not in keys]
    missing = [c for c in chosen if c not in flat.columns]
    if missing:
        raise KeyError(f"inline_table: no column {missing[0]!r}; the table has {list(flat.columns)}")

    def same_everywhere(c) -> bool:
        return len(flat) > 1 and flat[c].astype(str).nunique(dropna=False) == 1

    constant = {c: flat[c].iloc[0] for c in keys[1:] + chosen if same_everywhere(c)}   # the first key always stays
    keys = [c for c in keys if c not in constant]
    data = [c for c in chosen if c not in constant]
    keep = (keys + data)[:INLINE_COLUMNS]
    shown = flat[keep].head(rows)
    notes = []
    said = {c: v for c, v in constant.items() if not pd.isna(v) and str(v).strip() not in ("", "nan", "None")}
    if said:
        notes.append("all rows: " + ", ".join(f"{c} {md_cell(v)}" for c, v in said.items()))
    empty = [c for c in constant if c not in said]
    if empty:                          # e.g. a seed interval and a p-value with one seed: say so, do not print blanks
        notes.append("empty on every row: " + ", ".join(md_cell(c) for c in empty))
    left_cols = [c for c in flat.columns if c not in keep and c not in constant]
    if left_cols or len(flat) > len(shown):
        what = []
        if len(flat) > len(shown):
            what.append(f"{len(shown)} of {len(flat)} rows")
        if left_cols:
            what.append("without " + ", ".join(md_cell(c) for c in left_cols))
        notes.append("shown: " + "; ".join(what) + (f"; the full table is `{full}`" if full else ""))
    out = to_markdown(shown.set_index(keep[0]) if keep else shown)
    return out + "".join(f"\n*{n}*\n" for n in notes)


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs LaTeX table; no extra dependency."""
    flat = df.reset_index()

    def esc(s) -> str:
        return (str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")
                .replace("&", r"\&").replace("±", r"$\pm$").replace("#", r"\#"))

    cols = "l" * len(df.index.names) + "c" * len(df.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(esc(c) for c in flat.columns) + r" \\", r"\midrule"]
    for _, r in flat.iterrows():
        lines.append(" & ".join(esc(v) for v in r.tolist()) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{esc(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out_dir, name: str, caption: str = "") -> list[Path]:
    """Write ``name``.csv, .md and .tex atomically into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    paths = [atomic_write_text(out_dir / f"{name}.csv", df.to_csv()),
             atomic_write_text(out_dir / f"{name}.md", to_markdown(df)),
             atomic_write_text(out_dir / f"{name}.tex", to_latex(df, caption, f"tab:{name}"))]
    return paths

