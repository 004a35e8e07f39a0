"""``migrate`` on a hostile or damaged results folder (issue 24, item 9): every file is read and checked before
anything changes, so a bad file or a symbolic link stops it with one line and leaves the folder byte for byte
as it was; a migration interrupted while applying is finished by running it again."""

import hashlib
import json
import os
import re
import sqlite3

import pytest

from mser_lib import migrate
from mser_lib.experiments import config_hash, get_dataset

RECORD_KEYS = {"model": "baseline", "dataset": "synthetic", "profile": "smoke", "overrides": {}, "tag": None}


def _old_config(seed: int) -> dict:
    """A run's config as an mser before data fingerprints saved it (no ``data_fingerprint``)."""
    return {**{k: RECORD_KEYS[k] for k in ("model", "dataset", "profile")}, "seed": seed, "data_kwargs": {},
            "model_config": {"d_model": 8}, "train": {"epochs": 1, "lr": 1e-3}}


def _new_hash(cfg: dict) -> str:
    fp = get_dataset("synthetic", None, "smoke", {}).info.source["fingerprint"]
    return config_hash({**cfg, "data_fingerprint": fp})


def _folder(tmp_path):
    """``<tmp>/results/smoke/synthetic`` written by hand as an old mser left it: two runs in ``runs.jsonl``,
    their ``checkpoints/<hash>/`` (record.json, a checkpoint), predictions, a table, a notebook and a study.

    Returns the folder and ``{old hash: new hash}``."""
    folder = tmp_path / "results" / "smoke" / "synthetic"
    (folder / "tables").mkdir(parents=True)
    (folder / "notebooks").mkdir()
    (folder / "predictions").mkdir()
    (folder / "search").mkdir()
    lines, mapping = [], {}
    for seed in (0, 1):
        cfg = _old_config(seed)
        old = config_hash(cfg)
        mapping[old] = _new_hash(cfg)
        rec = {**RECORD_KEYS, "seed": seed, "config": cfg, "config_hash": old, "test": {"mae": 1.0 + seed}}
        lines.append(json.dumps(rec, sort_keys=True) + "\n")
        ck = folder / "checkpoints" / old
        ck.mkdir(parents=True)
        (ck / "record.json").write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
        (ck / "best.pt").write_bytes(b"\x80\x02weights" + bytes([seed]))
        (folder / "predictions" / f"{old}_full.npz").write_bytes(b"PK\x03\x04" + bytes([seed]))
    (folder / "runs.jsonl").write_text("".join(lines))
    a, b = mapping
    (folder / "tables" / "runs.csv").write_text(f"config_hash,mae\r\n{a},1.0\r\n{b},2.0\r\n")   # CRLF kept
    (folder / "tables" / "runs.md").write_text(f"| run | mae |\n|---|---|\n| {a} | 1.0 |\n")
    (folder / "notebooks" / "03.ipynb").write_text(json.dumps({"cells": [{"source": [f"run {b}"]}]}))
    con = sqlite3.connect(folder / "search" / "baseline.db")         # the tables optuna keeps them in
    con.execute("CREATE TABLE trial_user_attributes (trial_user_attribute_id INTEGER PRIMARY KEY, "
                "trial_id INTEGER, key VARCHAR(512), value_json TEXT)")
    con.execute("CREATE TABLE study_user_attributes (study_user_attribute_id INTEGER PRIMARY KEY, "
                "study_id INTEGER, key VARCHAR(512), value_json TEXT)")
    con.executemany("INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?, ?, ?)",
                    [(0, "config_hash", json.dumps(a)), (1, "config_hash", json.dumps(b)),
                     (1, "wall_time_s", "2.5")])
    con.commit()
    con.close()
    return folder, mapping


def _tree(root) -> dict:
    """Every entry under ``root`` (links not followed): a file's sha256, a link's target, or 'dir'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "link -> " + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            else:
                with open(p, "rb") as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def _refused(tmp_path, folder, capsys, match: str) -> str:
    """Run ``python -m mser_lib.migrate`` on ``folder``: it must stop with one line matching ``match`` and
    change nothing under ``tmp_path`` (the results folder and anything a link points to)."""
    before = _tree(tmp_path)
    capsys.readouterr()
    assert migrate.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("mser: error: "), err
    assert re.search(match, err), err
    with pytest.raises((ValueError, OSError), match=match):        # the library raises the same, once more
        migrate.add_data_fingerprints(folder, progress=False)
    assert _tree(tmp_path) == before
    return err.strip()


def test_a_non_json_migrated_hashes_changes_nothing(tmp_path, capsys):
    folder, _ = _folder(tmp_path)
    (folder / "migrated_hashes.json").write_bytes(b"{'0123456789abcdef': oops\n")
    _refused(tmp_path, folder, capsys, r"migrated_hashes\.json: field '<json>': expected a JSON object "
                                       r"\{old config hash: new config hash\}, found not JSON")


def test_a_search_db_that_is_not_sqlite_changes_nothing(tmp_path, capsys):
    folder, _ = _folder(tmp_path)
    (folder / "search" / "femf.db").write_text("trial,value\n0,1.0\n")
    _refused(tmp_path, folder, capsys, r"femf\.db: field '<sqlite>': expected an Optuna study \(an SQLite "
                                       r"database.*found 18 bytes beginning b'trial,value")


def test_a_table_that_is_not_utf8_changes_nothing(tmp_path, capsys):
    folder, _ = _folder(tmp_path)
    (folder / "tables" / "zz_latin1.tex").write_bytes("r\u00e9sum\u00e9 & 1.0 \\\\\n".encode("latin-1"))
    _refused(tmp_path, folder, capsys, r"zz_latin1\.tex: field '<text>': expected UTF-8 text .*found bytes "
                                       r"that are not UTF-8 \(byte 0xe9 at offset 1\)")


def test_a_corrupt_line_of_runs_jsonl_changes_nothing_and_loses_no_record(tmp_path, capsys):
    folder, _ = _folder(tmp_path)
    with open(folder / "runs.jsonl", "a") as f:
        f.write('{"config_hash": "0123456789abcdef", "conf\n')         # torn mid-write
    _refused(tmp_path, folder, capsys, r"runs\.jsonl: field 'line 3': expected one JSON object per line")


def test_a_linked_tables_folder_is_refused_and_nothing_changes(tmp_path, capsys):
    folder, mapping = _folder(tmp_path)
    outside = tmp_path / "elsewhere" / "tables"
    outside.parent.mkdir()
    (folder / "tables").rename(outside)
    (folder / "tables").symlink_to(outside, target_is_directory=True)
    _refused(tmp_path, folder, capsys, r"synthetic/tables: a symbolic link inside a results folder")
    assert next(iter(mapping)) in (outside / "runs.csv").read_text()


def test_a_linked_checkpoint_folder_is_refused_and_nothing_changes(tmp_path, capsys):
    folder, mapping = _folder(tmp_path)
    old = next(iter(mapping))
    outside = tmp_path / "elsewhere" / old
    outside.parent.mkdir()
    (folder / "checkpoints" / old).rename(outside)
    (folder / "checkpoints" / old).symlink_to(outside, target_is_directory=True)
    _refused(tmp_path, folder, capsys, rf"checkpoints/{old}: a symbolic link inside a results folder")


def test_an_interrupted_migration_is_finished_by_running_it_again(tmp_path, monkeypatch):
    """A disk that fills while the tables are rewritten (after the checkpoints were renamed): the rerun
    recognises what was done and ends exactly where an uninterrupted migration of a copy ends."""
    folder, mapping = _folder(tmp_path / "a")
    reference, _ = _folder(tmp_path / "b")
    assert migrate.add_data_fingerprints(reference, progress=False) == mapping
    runs_before = (folder / "runs.jsonl").read_bytes()

    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if os.path.basename(os.path.dirname(dst)) == "tables":
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        migrate.add_data_fingerprints(folder, progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    # half way: the checkpoints and predictions carry the new hashes, runs.jsonl still the old ones
    assert sorted(os.listdir(folder / "checkpoints")) == sorted(mapping.values())
    assert (folder / "runs.jsonl").read_bytes() == runs_before
    assert not (folder / "migrated_hashes.json").exists()

    assert migrate.add_data_fingerprints(folder, progress=False) == mapping
    assert _tree(folder) == _tree(reference)
    recs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert [r["config_hash"] for r in recs] == list(mapping.values())          # no record lost
    assert all(json.loads((folder / "checkpoints" / h / "record.json").read_text())["config_hash"] == h
               for h in mapping.values())
    a, b = mapping.values()
    assert (folder / "tables" / "runs.csv").read_bytes() == f"config_hash,mae\r\n{a},1.0\r\n{b},2.0\r\n".encode()
    con = sqlite3.connect(folder / "search" / "baseline.db")
    assert sorted(v for (v,) in con.execute("SELECT value_json FROM trial_user_attributes WHERE key = "
                                            "'config_hash'")) == sorted(json.dumps(h) for h in mapping.values())
    con.close()
    assert migrate.add_data_fingerprints(folder, progress=False) == {}          # a third run changes nothing
    assert _tree(folder) == _tree(reference)
