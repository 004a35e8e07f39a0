"""Did ``make reproduce`` get the committed numbers? The reproduction report.

The committed ``results/<profile>/<dataset>/runs.jsonl`` is the reference. When ``make reproduce``
starts, :func:`snapshot_reference` copies it to ``checkpoints/reference_runs.jsonl`` (kept until the
pipeline ends, so that an interrupted and restarted reproduce compares against the same reference).
At the end :func:`compare` matches every run trained on this machine (``checkpoints/<hash>/record.json``)
with the reference record of the same config hash, and :func:`write_report` writes
``tables/reproduction.{csv,md}`` and returns the one-line verdict.

Statuses, per run:

* ``bit-identical``: every result field (:data:`mser_lib.experiments.RESULT_FIELDS`: valid and test
  metrics, test metrics under missing modalities, chosen epochs, training histories) is exactly
  equal. This is what a CPU run in deterministic mode (the default) gives: same code, same data,
  same seeds, one thread per run.
* ``within tolerance``: not bit-identical, but every test metric differs by at most ``tolerance``
  (default :data:`TOLERANCE` = 1e-4 absolute: floating-point noise that moves no printed digit and
  flips no test utterance; an accuracy step on 686 test utterances is 1.5e-3).
* ``differs``: some test metric differs by more than ``tolerance``. Expected on other hardware
  (a GPU, another CPU's BLAS kernels) or another thread count, where floating-point sums are
  reordered and training follows another trajectory: then compare the per-model aggregate rows
  (mean over seeds, committed vs reproduced, in units of the committed seed std) instead.
* ``new``: the reference has no record of this config hash (a new or changed run).

Runs of the reference that were not retrained here are counted in the verdict as ``not rerun``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .experiments import same_results
from .report.tables import to_markdown
from .train import read_jsonl
from .train.io import ExclusiveLock, atomic_write_text, read_record, refuse_links, write_jsonl

TOLERANCE = 1e-4
# the test metrics shown per run (all test metrics are compared)
SHOWN = ("acc2_has0", "f1_has0", "acc7", "mae", "corr")
REFERENCE_NAME = "reference_runs.jsonl"


def out_dir(results_dir, profile: str, dataset: str) -> Path:
    return Path(results_dir) / profile / dataset


def snapshot_reference(results_dir, profile: str, dataset: str) -> Path:
    """Copy ``runs.jsonl`` to ``checkpoints/reference_runs.jsonl`` unless a snapshot is already there
    (an interrupted reproduce keeps its reference). Returns the snapshot's path."""
    out = out_dir(results_dir, profile, dataset)
    ref = refuse_links(out / "checkpoints" / REFERENCE_NAME, results_dir)    # a dangling link is refused too
    if not ref.exists():
        ref.parent.mkdir(parents=True, exist_ok=True)
        runs = out / "runs.jsonl"
        if runs.exists():
            shutil.copyfile(runs, ref)
        else:
            ref.write_text("")
    return ref


class FolderBusy(OSError):
    """Another process holds a reproduce of the same results folder."""


class ReproduceLock(ExclusiveLock):
    """An exclusive lock on ``<results>/<profile>/<dataset>/checkpoints/.reproduce.lock`` for the whole of a
    reproduce: a second ``make reproduce`` of the same folder (another terminal, a job sharing the workspace)
    stops at once with one line instead of sharing, and then deleting, the first one's reference snapshot.
    The lock file is opened without following a link and released when the process ends, however it ends."""

    def __init__(self, results_dir, profile: str, dataset: str):
        path = out_dir(results_dir, profile, dataset) / "checkpoints" / ".reproduce.lock"
        super().__init__(path, lambda: FolderBusy(
            f"{path.parent.parent}: another reproduce of this results folder is running; wait for it to end (two "
            "at once would compare against each other's runs)"))


def local_records(results_dir, profile: str, dataset: str) -> list[dict]:
    """Every run this machine finished for ``profile``/``dataset`` (``checkpoints/*/record.json``)."""
    ck = out_dir(results_dir, profile, dataset) / "checkpoints"
    return [read_record(p) for p in sorted(ck.glob("*/record.json"))]


def _label(rec: dict) -> str:
    ov = rec.get("overrides") or {}
    tr = (rec.get("config") or {}).get("train", {})
    parts = [f"{k}={v}" for k, v in sorted(ov.items())]
    return rec["model"] + (f" ({', '.join(parts)})" if parts else "") + (
        f" [{tr.get('stage_epochs') or tr.get('epochs')} ep]" if tr else "")


def compare(reference: list[dict], fresh: list[dict], tolerance: float = TOLERANCE) -> pd.DataFrame:
    """One row per fresh run: status, and committed / reproduced / difference for :data:`SHOWN`.

    Args:
        reference: the committed records.
        fresh: the records trained on this machine.
        tolerance: the largest absolute difference of a test metric counted as ``within tolerance``.
    """
    by_hash = {r["config_hash"]: r for r in reference}
    rows = []
    for rec in fresh:
        ref = by_hash.get(rec["config_hash"])
        row = {"config hash": rec["config_hash"], "run": _label(rec), "seed": rec["seed"]}
        if ref is None:
            status, worst = "new", np.nan
        else:
            diffs = _diffs(ref.get("test") or {}, rec.get("test") or {})
            worst = max(diffs) if diffs else 0.0
            if same_results(ref, rec):
                status = "bit-identical"
            elif worst <= tolerance:
                status = "within tolerance"
            else:
                status = "differs"
        row["status"] = status
        row["max |diff| (test)"] = worst
        for k in SHOWN:
            c = (ref or {}).get("test", {}).get(k) if ref else None
            n = rec.get("test", {}).get(k)
            row[f"{k} committed"] = c
            row[f"{k} reproduced"] = n
            row[f"{k} diff"] = None if c is None or n is None else _num(n) - _num(c)
        rows.append(row)
    cols = ["config hash", "run", "seed", "status", "max |diff| (test)"] + [
        f"{k} {w}" for k in SHOWN for w in ("committed", "reproduced", "diff")]
    df = pd.DataFrame(rows, columns=cols)
    order = {"differs": 0, "new": 1, "within tolerance": 2, "bit-identical": 3}
    return df.sort_values(["status", "run", "seed"], key=lambda c: c.map(order) if c.name == "status" else c,
                          kind="stable").reset_index(drop=True)


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _nan(v) -> bool:
    return v is None or v != v


def _diffs(ref: dict, new: dict) -> list[float]:
    """|new - ref| per test metric; a metric that is NaN on one side only counts as infinitely far."""
    out = []
    for k in sorted(set(ref) | set(new)):
        a, b = ref.get(k), new.get(k)
        if _nan(a) and _nan(b):
            out.append(0.0)
        elif _nan(a) or _nan(b):
            out.append(float("inf"))
        else:
            out.append(abs(float(b) - float(a)))
    return out


def aggregate(reference: list[dict], fresh: list[dict], metrics=("mae", "corr", "acc2_has0")) -> pd.DataFrame:
    """Per run family (same config apart from the seed): committed and reproduced mean over the
    seeds that both hold, and the difference in units of the committed seed std."""
    by_hash = {r["config_hash"]: r for r in reference}
    groups: dict[str, list[tuple[dict, dict]]] = {}
    for rec in fresh:
        ref = by_hash.get(rec["config_hash"])
        if ref is not None:
            groups.setdefault(_label(rec), []).append((ref, rec))
    rows = []
    for label, pairs in sorted(groups.items()):
        row = {"run": label, "seeds": len(pairs)}
        for m in metrics:
            c = np.array([_num(r["test"].get(m)) for r, _ in pairs])
            n = np.array([_num(f["test"].get(m)) for _, f in pairs])
            sd = float(np.std(c, ddof=1)) if len(c) > 1 else float("nan")
            row[f"{m} committed"] = float(np.mean(c))
            row[f"{m} reproduced"] = float(np.mean(n))
            row[f"{m} diff / committed sd"] = (float(np.mean(n) - np.mean(c)) / sd) if sd and sd == sd else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame, n_reference: int) -> str:
    """``reproduced 76/76 runs: 71 bit-identical, 5 within tolerance, 0 differ`` (+ new, not rerun)."""
    counts = table["status"].value_counts()
    compared = int(len(table) - counts.get("new", 0))
    n_same = int(counts.get("bit-identical", 0))
    n_tol = int(counts.get("within tolerance", 0))
    n_diff = int(counts.get("differs", 0))
    hashes = set(table["config hash"])
    line = (f"reproduced {n_same + n_tol}/{compared} runs: {n_same} bit-identical, {n_tol} within tolerance, "
            f"{n_diff} differ")
    extra = []
    if counts.get("new", 0):
        extra.append(f"{int(counts['new'])} new (no committed record)")
    not_rerun = n_reference - len(hashes & set(table.loc[table["status"] != "new", "config hash"]))
    if not_rerun:
        extra.append(f"{not_rerun} committed record(s) not rerun (no notebook needs them)")
    return line + ("; " + "; ".join(extra) if extra else "")


def _cpus(records: list[dict]) -> list[str]:
    """The CPUs that trained ``records``: a run that reproduced its committed record bit for bit carries that
    record's provenance and its own under ``this_machine`` (:func:`mser_lib.experiments.settle_record`)."""
    return sorted({((r.get("this_machine") or r).get("versions") or {}).get("cpu") or "a CPU the records do not name"
                   for r in records})


def machine_note(reference: list[dict], fresh: list[dict]) -> str | None:
    """``None`` when the compared committed records were made on the CPU of the runs trained here (the
    ``cpu`` of their ``versions``: model name and torch's kernel set); else a clause saying both, since runs
    from another CPU's math kernels are not expected to be bit-identical (docs/reproduction.md)."""
    hashes = {r["config_hash"] for r in fresh}
    compared = [r for r in reference if r["config_hash"] in hashes]
    if not compared or not fresh:
        return None
    made, here = _cpus(compared), _cpus(fresh)
    if made == here:
        return None
    return (f"the committed records were made on {' and '.join(made)}, these runs on {' and '.join(here)}: "
            "another CPU's kernels reorder sums, so runs that differ are expected there")


def write_report(results_dir, profile: str, dataset: str, tolerance: float = TOLERANCE,
                 only: set[str] | None = None) -> tuple[str, pd.DataFrame]:
    """Compare this machine's runs with the reference snapshot, write ``tables/reproduction.{csv,md}``
    and return ``(verdict, table)``. ``only``: the config hashes this reproduce needed; finished runs of
    other configs (an earlier grid's, left in ``checkpoints/``) are then left out of the comparison."""
    out = out_dir(results_dir, profile, dataset)
    ref_path = out / "checkpoints" / REFERENCE_NAME
    if not ref_path.is_file() or ref_path.is_symlink():
        # runs.jsonl now holds the runs just trained: comparing with it would call every run bit-identical
        raise FileNotFoundError(f"{ref_path}: the snapshot of the committed records taken when this reproduce "
                                "started is gone (another process removed it?); no verdict is given: run the "
                                "reproduce again")
    reference = read_jsonl(ref_path)
    ref_hashes = {r["config_hash"] for r in reference}
    fresh = local_records(results_dir, profile, dataset)
    if only is not None:
        fresh = [r for r in fresh if r["config_hash"] in only]
    table = compare(reference, fresh, tolerance)
    line = verdict(table, len(ref_hashes))
    note = machine_note(reference, fresh)
    if note:
        line += "; " + note
    agg = aggregate(reference, fresh)
    tables = out / "tables"
    atomic_write_text(tables / "reproduction.csv", table.to_csv(index=False))
    md = [f"# Reproduction of `{dataset}` (profile `{profile}`)", "",
          f"**{line}.**", "",
          "Every run trained on this machine, against the committed record with the same config hash "
          f"(`runs.jsonl` as it was when `make reproduce` started). Tolerance: |diff| <= {tolerance:g} on every "
          "test metric; see `mser_lib/reproduction.py` and docs/reproduction.md for what each status means and what "
          "to do when runs differ.", "",
          to_markdown(table.set_index("config hash").round(6)), ""]
    if not agg.empty:
        md += ["## Per run family (mean over the seeds both hold)", "",
               "The difference of the means in units of the committed seed std: on other hardware, where runs "
               "do not reproduce bit for bit, values within about ±1 say the reproduced runs land where the "
               "committed seeds scatter.", "",
               to_markdown(agg.set_index("run").round(4)), ""]
    atomic_write_text(tables / "reproduction.md", "\n".join(md))
    return line, table


def prune(results_dir, profile: str, dataset: str, keep: set[str]) -> list[str]:
    """Rewrite ``runs.jsonl`` with only the records whose config hash is in ``keep``; returns the dropped
    hashes. For maintainers committing regenerated results (``--prune``), never run implicitly."""
    path = out_dir(results_dir, profile, dataset) / "runs.jsonl"
    records = read_jsonl(path)
    kept = [r for r in records if r["config_hash"] in keep]
    dropped = [r["config_hash"] for r in records if r["config_hash"] not in keep]
    if dropped:
        write_jsonl(path, kept)
    return dropped


__all__ = ["prune", "TOLERANCE", "snapshot_reference", "local_records", "compare", "aggregate", "verdict",
           "machine_note", "write_report"]
