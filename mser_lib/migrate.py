"""Bring a results folder written before data fingerprints up to date, without retraining.

Records now carry ``config["data_fingerprint"]`` (:func:`mser_lib.data.validate.data_fingerprint`:
the content of the files a loader read and its settings), and the config hash covers it, so runs on
different data are never taken for one another. Records written before have no fingerprint: their
hashes no longer match what :func:`mser_lib.experiments.resolve_run` computes, and every run would
be retrained. If the data you hold now is the data those runs were trained on, migrate instead::

    python -m mser_lib.migrate results/quick/mosi-bclstm --data-dir ../shared/data/mosi-bclstm
    python -m mser_lib.migrate results/quick/synthetic

For one ``<results>/<profile>/<dataset>`` folder this loads the dataset (with each record's loader
arguments), adds its fingerprint to every record that has none, and renames the run everywhere it
is named: ``runs.jsonl``, ``checkpoints/<hash>/`` and its ``record.json``, ``predictions/<hash>_*.npz``,
the searches' Optuna studies (``search/*.db``: each trial's ``config_hash``, the study's
``base_config_hash`` when it is the plain base run) and the hashes printed in ``tables/`` and
``notebooks/``. Nothing else changes: metrics, histories and provenance stay as recorded. A record
whose saved config does not hash to its own ``config_hash`` is refused (it was written by another
version of mser). The mapping old -> new is written to ``migrated_hashes.json`` in the folder.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from .experiments import config_hash, get_dataset, resolve_run
from .train.io import atomic_write_json, atomic_write_text, read_jsonl, refuse_links, write_jsonl

TEXT_SUFFIXES = (".csv", ".md", ".tex", ".ipynb", ".json")


def _old_hash(run: dict) -> str:
    return config_hash({k: v for k, v in run.items() if k != "data_fingerprint"})


def _migrate_record(rec: dict, fingerprint, file) -> tuple[dict, str, str]:
    run = rec["config"]
    old = rec["config_hash"]
    if _old_hash(run) != old:
        raise ValueError(f"{file}: record {old}: its saved config hashes to {_old_hash(run)}; it was written by "
                         "another version of mser and cannot be migrated (retrain it)")
    new_run = {**run, "data_fingerprint": fingerprint(run)}
    new = config_hash(new_run)
    return {**rec, "config": new_run, "config_hash": new}, old, new


def add_data_fingerprints(folder, data_dir=None, progress: bool = True) -> dict[str, str]:
    """Migrate one ``<results>/<profile>/<dataset>`` folder (see the module docstring).

    Returns:
        ``{old_hash: new_hash}`` of every record migrated (empty when all had fingerprints).
    """
    folder = Path(folder)
    runs = folder / "runs.jsonl"
    if not runs.is_file():
        raise FileNotFoundError(f"{runs}: no such file (give a <results>/<profile>/<dataset> folder)")
    records = read_jsonl(runs)
    cache: dict[str, str | None] = {}

    def fingerprint(run: dict):
        key = json.dumps([run["dataset"], run["profile"], run.get("data_kwargs") or {}], sort_keys=True)
        if key not in cache:
            ds = get_dataset(run["dataset"], data_dir, run["profile"], run.get("data_kwargs"))
            cache[key] = (ds.info.source or {}).get("fingerprint")
        return cache[key]

    mapping: dict[str, str] = {}
    out = []
    for rec in records:
        if "data_fingerprint" in (rec.get("config") or {}):
            out.append(rec)
            continue
        rec, old, new = _migrate_record(rec, fingerprint, runs)
        mapping[old] = new
        out.append(rec)
    if not mapping:
        return mapping

    # Every destination is checked before anything moves; runs.jsonl is written last, so a migration that
    # stops half way is finished by running it again (what was renamed is skipped).
    ckpt, preds = folder / "checkpoints", folder / "predictions"
    for old, new in mapping.items():
        clash = [ckpt / new] if (ckpt / old).is_dir() and (ckpt / new).exists() else []
        clash += [f.with_name(new + f.name[len(old):]) for f in preds.glob(f"{old}_*.npz")
                  if f.with_name(new + f.name[len(old):]).exists()]
        if clash:
            raise FileExistsError(f"{clash[0]} exists (trained or written by this mser already): move it away or "
                                  f"delete {ckpt / old} to keep one of them; nothing was migrated")
    for old, new in mapping.items():
        if (ckpt / old).is_dir():
            (ckpt / old).rename(ckpt / new)
        local = ckpt / new / "record.json"
        if local.is_file():
            rec = json.loads(local.read_text())
            if "data_fingerprint" not in rec.get("config", {}):
                atomic_write_json(local, _migrate_record(rec, fingerprint, local)[0])
        for f in preds.glob(f"{old}_*.npz"):
            f.rename(f.with_name(new + f.name[len(old):]))
    for db in sorted((folder / "search").glob("*.db")):
        _migrate_study(db, mapping, data_dir)
    for sub in ("tables", "notebooks"):
        for f in sorted((folder / sub).rglob("*")):
            if f.suffix in TEXT_SUFFIXES and f.is_file():
                refuse_links(f, folder)                  # a linked tables/ (or file) is not rewritten
                text = f.read_text()
                changed = text
                for old, new in mapping.items():
                    changed = changed.replace(old, new)
                if changed != text:
                    atomic_write_text(f, changed)
    done = folder / "migrated_hashes.json"
    atomic_write_json(done, {**(json.loads(done.read_text()) if done.is_file() else {}), **mapping})
    write_jsonl(runs, out)
    if progress:
        print(f"{folder}: {len(mapping)} records given their data fingerprint and new hashes "
              f"(mapping in {done})")
    return mapping


def _migrate_study(db: Path, mapping: dict[str, str], data_dir) -> None:
    """Rename the trials' ``config_hash`` in an Optuna study, and its ``base_config_hash`` when it is the
    hash of the plain base run (no fixed overrides or trainer settings) of the study's model."""
    con = sqlite3.connect(db)
    try:
        with con:
            for rowid, value in con.execute("SELECT trial_user_attribute_id, value_json FROM trial_user_attributes "
                                            "WHERE key = 'config_hash'").fetchall():
                h = json.loads(value)
                if h in mapping:
                    con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE trial_user_attribute_id = ?",
                                (json.dumps(mapping[h]), rowid))
            for rowid, value in con.execute("SELECT study_user_attribute_id, value_json FROM study_user_attributes "
                                            "WHERE key = 'fingerprint'").fetchall():
                fp = json.loads(value)
                ds = get_dataset(fp["dataset"], data_dir, fp["profile"])
                run = resolve_run(fp["model"], fp["dataset"], fp["seed"], fp["profile"], info=ds.info)
                if _old_hash(run) != fp["base_config_hash"]:
                    if config_hash(run) != fp["base_config_hash"]:
                        print(f"WARNING: {db}: the study's base run is not the plain one; its base_config_hash is "
                              "left as it is (a search with other fixed settings: run it again)", file=sys.stderr)
                    continue
                fp["base_config_hash"] = config_hash(run)
                con.execute("UPDATE study_user_attributes SET value_json = ? WHERE study_user_attribute_id = ?",
                            (json.dumps(fp), rowid))
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mser_lib.migrate", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="<results>/<profile>/<dataset> folders")
    p.add_argument("--data-dir", default=None, help="the data the runs were trained on (not for synthetic)")
    a = p.parse_args(argv)
    for folder in a.folders:
        add_data_fingerprints(folder, a.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
