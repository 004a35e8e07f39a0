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

Every file is read and checked before anything changes (a plan, then its application): a file that is not
what it should be (``runs.jsonl`` or ``migrated_hashes.json`` not JSON, a ``search/*.db`` that is not an
SQLite study, a table that is not UTF-8, a record that hashes to another run) or a symbolic link inside the
folder stops migrate with one line naming the file, what was expected and what was found, and the folder is
left exactly as it was. Files are read without following links and nothing outside the folder is written.
A migration interrupted while it applies its plan (a crash, a full disk) is finished by running it again:
``runs.jsonl`` is written last, and what was already renamed or rewritten is recognised and left alone.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sqlite3
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .data.validate import DataFormatError
from .experiments import config_hash, get_dataset, resolve_run
from .train.io import LinkRefused, atomic_write_bytes, jsonl_line, refuse_links

TEXT_SUFFIXES = (".csv", ".md", ".tex", ".ipynb", ".json")
_SQLITE_MAGIC = b"SQLite format 3\0"
_CONFIG_HASH = re.compile(r"[0-9a-f]{16}")


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


# ---------------------------------------------------------------- reading without following links


def _kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a special file")


def _read(path: Path, folder: Path) -> bytes | None:
    """The bytes of the regular file ``path`` inside ``folder`` (``None`` when there is none), opened with
    ``O_NOFOLLOW``: a link at the file or at a folder between ``folder`` and it is :class:`LinkRefused`."""
    refuse_links(path, folder)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise DataFormatError(path, "<file>", "a regular file", _kind(st.st_mode))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:             # became a link since the check
            raise LinkRefused(path) from None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise DataFormatError(path, "<file>", "a regular file", _kind(os.fstat(f.fileno()).st_mode))
        return f.read()


def _no_link(path: Path, folder: Path) -> Path:
    """``path`` (which need not exist) when neither it nor a folder between ``folder`` and it is a link."""
    return refuse_links(path, folder)


def _not_utf8(exc: UnicodeDecodeError) -> str:
    return f"bytes that are not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})"


def _text(data: bytes, path: Path, expected: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, "<text>", expected, _not_utf8(exc)) from None


def _json(data: bytes, path: Path, field: str, expected: str):
    try:
        return json.loads(_text(data, path, expected))
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, field, expected, f"not JSON ({exc.msg} at line {exc.lineno} column "
                              f"{exc.colno})") from None
    except RecursionError:
        raise DataFormatError(path, field, expected, "JSON nested too deeply") from None


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------- the plan


@dataclass
class _Plan:
    folder: Path
    mapping: dict[str, str] = field(default_factory=dict)
    renames: list[tuple[Path, Path]] = field(default_factory=list)      # checkpoints/, predictions/
    writes: list[tuple[Path, bytes]] = field(default_factory=list)      # in order; runs.jsonl last
    warnings: list[str] = field(default_factory=list)


def _plan(folder: Path, data_dir) -> _Plan:
    """Read and check everything a migration of ``folder`` reads or changes; change nothing."""
    plan = _Plan(folder)
    runs = folder / "runs.jsonl"
    data = _read(runs, folder)
    if data is None:
        raise FileNotFoundError(f"{runs}: no such file (give a <results>/<profile>/<dataset> folder)")
    migrated = _migrator(data_dir)
    out = _plan_runs(runs, data, plan, migrated)
    if not plan.mapping:
        return plan
    _plan_checkpoints(folder, runs, plan, migrated)
    _plan_searches_and_texts(folder, plan, data_dir)
    _plan_mapping_file(folder, plan)
    plan.writes.append((runs, "".join(jsonl_line(r) for r in out).encode("utf-8")))
    return plan


def _migrator(data_dir):
    """``migrated(rec, file, where) -> (new record, old hash, new hash)``: checks ``rec``'s ``config_hash`` and
    migrates it with :func:`_migrate_record`, loading each dataset (profile, loader arguments) once for its
    fingerprint; a malformed hash or config is a :class:`DataFormatError` naming ``file`` and ``where``."""
    cache: dict[str, str | None] = {}

    def fingerprint(run: dict):
        key = json.dumps([run["dataset"], run["profile"], run.get("data_kwargs") or {}], sort_keys=True)
        if key not in cache:
            ds = get_dataset(run["dataset"], data_dir, run["profile"], run.get("data_kwargs"))
            cache[key] = (ds.info.source or {}).get("fingerprint")
        return cache[key]

    def migrated(rec, file, where: str) -> tuple[dict, str, str]:
        old = rec.get("config_hash")
        if not isinstance(old, str) or not _CONFIG_HASH.fullmatch(old):      # it names a folder: no '../'
            raise DataFormatError(file, f"{where}config_hash", "16 lowercase hex characters", _shown(old))
        try:
            return _migrate_record(rec, fingerprint, file)
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataFormatError(file, f"{where}config", "a run's saved config (model, dataset, profile, train, "
                                  "...)", f"{type(exc).__name__}: {exc}") from None

    return migrated


def _plan_runs(runs: Path, data: bytes, plan: _Plan, migrated) -> list[dict]:
    """The records of ``runs.jsonl`` (its bytes ``data``), those without a fingerprint migrated (their
    ``old -> new`` hash added to ``plan.mapping``); a line that is not a run record is a DataFormatError."""
    out, expected_line = [], "one JSON object per line (a torn or corrupt line: delete it or restore the file)"
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataFormatError(runs, f"line {number}", expected_line, _not_utf8(exc)) from None
        except (json.JSONDecodeError, RecursionError):
            raise DataFormatError(runs, f"line {number}", expected_line, f"{raw[:60]!r}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict):
            raise DataFormatError(runs, f"line {number}", "a run record with its config (a JSON object)",
                                  _shown(rec)[:60])
        if "data_fingerprint" not in rec["config"]:
            rec, old, new = migrated(rec, runs, f"line {number} ")
            plan.mapping[old] = new
        out.append(rec)
    return out


def _plan_checkpoints(folder: Path, runs: Path, plan: _Plan, migrated) -> None:
    """Add to ``plan`` the renames of ``checkpoints/<old>/`` and ``predictions/<old>_*.npz`` and the rewrite of
    each checkpoint's ``record.json``; FileExistsError (after all are checked) when a target exists."""
    ckpt, preds = _no_link(folder / "checkpoints", folder), _no_link(folder / "predictions", folder)
    clash = []
    for old, new in plan.mapping.items():
        src, dst = _no_link(ckpt / old, folder), _no_link(ckpt / new, folder)
        if src.is_dir():
            if os.path.lexists(dst):
                clash.append((dst, src))
            plan.renames.append((src, dst))          # else already renamed (an interrupted migration) or none
        local = (src if src.is_dir() else dst) / "record.json"
        data = _read(local, folder)
        if data is not None:
            rec = _json(data, local, "<json>", "a run record (a JSON object with its config)")
            if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict):
                raise DataFormatError(local, "<json>", "a run record (a JSON object with its config)",
                                      _shown(rec)[:60])
            if "data_fingerprint" not in rec["config"]:
                rec, was, now = migrated(rec, local, "")
                if (was, now) != (old, new):
                    raise DataFormatError(local, "config_hash", f"{old}, the run of its folder (as in {runs.name})",
                                          was)
                plan.writes.append((dst / "record.json", _json_bytes(rec)))
        if preds.is_dir():
            for f in sorted(preds.glob(f"{old}_*.npz")):
                target = _no_link(f.with_name(new + f.name[len(old):]), folder)
                _no_link(f, folder)
                if os.path.lexists(target):
                    clash.append((target, f))
                plan.renames.append((f, target))
    if clash:
        raise FileExistsError(f"{clash[0][0]} exists (trained or written by this mser already): move it away or "
                              f"delete {clash[0][1]} to keep one of them; nothing was migrated")


def _plan_searches_and_texts(folder: Path, plan: _Plan, data_dir) -> None:
    """Add to ``plan`` the rewrites of the Optuna studies ``search/*.db`` (:func:`_plan_study`) and of the
    ``tables/`` and ``notebooks/`` text files whose text names an old hash."""
    search = _no_link(folder / "search", folder)
    if search.is_dir():
        for db in sorted(search.glob("*.db")):
            new_bytes = _plan_study(db, folder, plan, data_dir)
            if new_bytes is not None:
                plan.writes.append((db, new_bytes))
    for sub in ("tables", "notebooks"):
        for f in _text_files(folder, sub):
            raw = _read(f, folder)
            text = _text(raw, f, "UTF-8 text (a table or notebook mser wrote)")
            changed = text
            for old, new in plan.mapping.items():
                changed = changed.replace(old, new)
            if changed != text:
                plan.writes.append((f, changed.encode("utf-8")))


def _plan_mapping_file(folder: Path, plan: _Plan) -> None:
    """Add to ``plan`` the write of ``migrated_hashes.json``: its earlier mapping (checked) updated by
    ``plan.mapping``."""
    done = folder / "migrated_hashes.json"
    data = _read(done, folder)
    before = {}
    if data is not None:
        expected = "a JSON object {old config hash: new config hash}"
        before = _json(data, done, "<json>", expected)
        if not isinstance(before, dict) or not all(isinstance(v, str) for v in before.values()):
            raise DataFormatError(done, "<json>", expected, _shown(before)[:60])
    plan.writes.append((done, _json_bytes({**before, **plan.mapping})))


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def _text_files(folder: Path, sub: str) -> list[Path]:
    """The text files under ``folder/sub`` that migrate rewrites; a linked folder or text file there is refused."""
    root = _no_link(folder / sub, folder)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):        # never descends into a linked folder
        here = Path(dirpath)
        for name in dirnames:
            _no_link(here / name, folder)
        for name in filenames:
            if Path(name).suffix in TEXT_SUFFIXES:
                files.append(_no_link(here / name, folder))
    return sorted(files)


def _plan_study(db: Path, folder: Path, plan: _Plan, data_dir) -> bytes | None:
    """The bytes of the Optuna study ``db`` with its trials' ``config_hash`` renamed, and its
    ``base_config_hash`` when it is the hash of the plain base run (no fixed overrides or trainer settings)
    of the study's model; ``None`` when nothing changes. The study is read (and rewritten) in memory."""
    expected = "an Optuna study (an SQLite database with trial_user_attributes and study_user_attributes)"
    for suffix in ("-journal", "-wal"):
        side = db.with_name(db.name + suffix)
        if os.path.lexists(side):
            raise DataFormatError(db, "<sqlite>", f"a closed study (no {side.name}: let the search that writes "
                                  "it finish, or open the study once with optuna)", f"{side.name}")
    data = _read(db, folder)
    if not data.startswith(_SQLITE_MAGIC):
        raise DataFormatError(db, "<sqlite>", expected, f"{len(data)} bytes beginning {data[:16]!r}")
    con = sqlite3.connect(":memory:")
    changed = False
    try:
        con.deserialize(data)
        rows = con.execute("SELECT trial_user_attribute_id, value_json FROM trial_user_attributes "
                           "WHERE key = 'config_hash'").fetchall()
        studies = con.execute("SELECT study_user_attribute_id, value_json FROM study_user_attributes "
                              "WHERE key = 'fingerprint'").fetchall()
        for rowid, value in rows:
            try:
                h = json.loads(value)
            except (TypeError, json.JSONDecodeError):
                raise DataFormatError(db, f"trial_user_attributes {rowid} (config_hash)", "a JSON string",
                                      _shown(value)) from None
            if isinstance(h, str) and h in plan.mapping:
                con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE trial_user_attribute_id = ?",
                            (json.dumps(plan.mapping[h]), rowid))
                changed = True
        for rowid, value in studies:
            try:
                fp = json.loads(value)
                ds = get_dataset(fp["dataset"], data_dir, fp["profile"])
                run = resolve_run(fp["model"], fp["dataset"], fp["seed"], fp["profile"], info=ds.info)
                base = fp["base_config_hash"]
            except (TypeError, KeyError, json.JSONDecodeError) as exc:
                raise DataFormatError(db, f"study_user_attributes {rowid} (fingerprint)", "a JSON object with "
                                      "model, dataset, seed, profile and base_config_hash",
                                      f"{type(exc).__name__}: {exc}") from None
            if _old_hash(run) != base:
                if config_hash(run) != base:
                    plan.warnings.append(f"WARNING: {db}: the study's base run is not the plain one; its "
                                         "base_config_hash is left as it is (a search with other fixed settings: "
                                         "run it again)")
                continue
            fp["base_config_hash"] = config_hash(run)
            con.execute("UPDATE study_user_attributes SET value_json = ? WHERE study_user_attribute_id = ?",
                        (json.dumps(fp), rowid))
            changed = True
        if not changed:
            return None
        con.commit()
        return con.serialize()
    except sqlite3.DatabaseError as exc:
        raise DataFormatError(db, "<sqlite>", expected, f"{type(exc).__name__}: {exc}") from None
    finally:
        con.close()


# ---------------------------------------------------------------- applying it


def _rename(src: Path, dst: Path, folder: Path) -> None:
    _no_link(src, folder)
    if os.path.lexists(_no_link(dst, folder)):      # os.rename would replace an empty folder or a file
        raise FileExistsError(f"{dst} exists: a migration of {folder} is running beside this one")
    os.rename(src, dst)


def _write(path: Path, data: bytes, folder: Path) -> None:
    _no_link(path, folder)
    mode = stat.S_IMODE(os.lstat(path).st_mode) if os.path.lexists(path) else None
    atomic_write_bytes(path, data)                   # replaces the name, never writes through it
    if mode is not None:
        os.chmod(path, mode)                         # a shared folder's file stays as readable as it was


def _apply(plan: _Plan) -> None:
    for src, dst in plan.renames:
        _rename(src, dst, plan.folder)
    for path, data in plan.writes:
        _write(path, data, plan.folder)
    for line in plan.warnings:
        print(line, file=sys.stderr)


def add_data_fingerprints(folder, data_dir=None, progress: bool = True) -> dict[str, str]:
    """Migrate one ``<results>/<profile>/<dataset>`` folder (see the module docstring).

    Returns:
        ``{old_hash: new_hash}`` of every record migrated (empty when all had fingerprints).

    Raises:
        DataFormatError: a file of the folder is not what it should be (the message names it, what was
            expected and what was found); nothing was changed.
        LinkRefused: a symbolic link inside the folder; nothing was changed.
        FileExistsError: a renamed checkpoint or prediction would replace one that exists; nothing was changed.
    """
    folder = Path(folder)
    plan = _plan(folder, data_dir)
    if not plan.mapping:
        return {}
    _apply(plan)
    if progress:
        print(f"{folder}: {len(plan.mapping)} records given their data fingerprint and new hashes "
              f"(mapping in {folder / 'migrated_hashes.json'})")
    return plan.mapping


def main(argv: list[str] | None = None) -> int:
    """The command line; a user error (a bad file, a link, a clash) prints one line ``mser: error: ...``
    and exits with status 2, as ``python -m mser_lib`` does."""
    from .cli import PROG, USER_ERRORS, _message

    p = argparse.ArgumentParser(prog="python -m mser_lib.migrate", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="<results>/<profile>/<dataset> folders")
    p.add_argument("--data-dir", default=None, help="the data the runs were trained on (not for synthetic)")
    a = p.parse_args(argv)
    try:
        for folder in a.folders:
            add_data_fingerprints(folder, a.data_dir)
    except USER_ERRORS as exc:
        if os.environ.get("MSER_DEBUG"):
            raise
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
