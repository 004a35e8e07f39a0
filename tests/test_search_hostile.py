"""The search's study under hostile use (mser_lib/search.py, issue 24 item 4): a second search of the same study
stops at once instead of mixing its trials in; a study whose trials were edited by hand (settings, fold values)
is refused on resume with one line naming the file, the trial, the field, what was expected and what was found."""

import fcntl
import json
import os
import sqlite3
import subprocess
import sys

import pytest

pytest.importorskip("optuna")

from mser_lib import experiments, search  # noqa: E402
from mser_lib.cli import _message  # noqa: E402
from mser_lib.data.validate import DataFormatError  # noqa: E402

from helpers import tiny_dataset  # noqa: E402

# 3 epochs of the position-layout baseline on 16 tiny videos per trial, as in test_search.py
TRAIN = {"selection": "crossfit", "epochs": 3, "patience": 3, "batch_size": 4}


def _search(tmp_path, ds, n, **kw):
    return search.run_search("baseline", "tiny", profile="smoke", n_trials=n, results_dir=tmp_path, train=TRAIN,
                             ds=ds, progress=False, **kw)


def _study(tmp_path):
    return search.study_path(tmp_path, "smoke", "tiny", "baseline")


def _lock_file(tmp_path):
    path = _study(tmp_path)
    return path.with_name(path.name + ".lock")


def _is_locked(lock_path) -> bool:
    """Whether some open file (another process, or this one through another open) holds ``lock_path``."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)               # also releases the lock this probe took
    return False


def test_a_second_search_of_a_held_study_is_refused_at_once(tmp_path, counted):
    ds = tiny_dataset("position", n=(16, 4, 10))
    lock = _lock_file(tmp_path)
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(      # another process holds the study, as a search running in another terminal would
        [sys.executable, "-c", "import fcntl, os, sys\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OSError, match="another search holds this study") as err:
            _search(tmp_path, ds, 2)
        text = _message(err.value)                               # what the CLI prints after "mser: error: "
        assert "\n" not in str(err.value)
        assert str(_study(tmp_path)) in text
        assert counted == []
        assert not _study(tmp_path).exists()
    finally:
        holder.stdin.close()                                     # the holder ends: flock lets go with it
        holder.wait(timeout=30)
    assert len(_search(tmp_path, ds, 2).trials) == 2
    assert len(counted) == 2


def test_the_lock_is_held_while_a_search_runs_and_released_after_it_ends_or_raises(tmp_path, monkeypatch):
    ds = tiny_dataset("position", n=(16, 4, 10))
    lock = _lock_file(tmp_path)
    seen = []
    real = experiments.train_run

    def watching(run, *args, **kwargs):
        seen.append(_is_locked(lock))
        return real(run, *args, **kwargs)

    monkeypatch.setattr(experiments, "train_run", watching)
    _search(tmp_path, ds, 2)
    assert seen == [True, True]
    assert not _is_locked(lock)

    def failing(run, *args, **kwargs):
        seen.append(_is_locked(lock))
        raise RuntimeError("a bug mid-search")

    monkeypatch.setattr(experiments, "train_run", failing)
    with pytest.raises(RuntimeError, match="a bug mid-search"):
        _search(tmp_path, ds, 3)
    assert seen[-1] is True
    assert not _is_locked(lock)
    monkeypatch.setattr(experiments, "train_run", real)
    assert len(_search(tmp_path, ds, 3).trials) == 3             # and the study carries on


def _edit(db, sql, *args):
    with sqlite3.connect(db) as con:
        assert con.execute(sql, args).rowcount == 1
    con.close()


def _trial_id(db, number):
    with sqlite3.connect(db) as con:
        (tid,), = con.execute("SELECT trial_id FROM trials WHERE number = ?", (number,)).fetchall()
    con.close()
    return tid


def test_a_trial_whose_settings_were_edited_is_refused(tmp_path, counted):
    ds = tiny_dataset("position", n=(16, 4, 10))
    first = _search(tmp_path, ds, 2)
    db = first.path
    drawn = first.trials[1]["params"]
    held = {**drawn, "lr": 2e-3 if drawn["lr"] != 2e-3 else 1e-3}
    _edit(db, "UPDATE trial_params SET param_value = ? WHERE trial_id = ? AND param_name = 'lr'",
          held["lr"], _trial_id(db, 1))
    with pytest.raises(DataFormatError) as err:
        _search(tmp_path, ds, 3)
    msg = str(err.value)                                          # what its number draws, what it holds
    assert msg.startswith(f"{db}: trial 1: field 'params': expected {json.dumps(drawn, sort_keys=True)} "
                          f"(the settings trial 1 draws), found {json.dumps(held, sort_keys=True)}")
    assert "\n" not in msg
    assert len(counted) == 2                                      # refused before trial 2 was trained


def test_a_trial_holding_another_numbers_settings_is_refused(tmp_path, counted):
    # what two searches at once left: a trial numbered n holding the settings its writer drew for another number
    ds = tiny_dataset("position", n=(16, 4, 10))
    db = _search(tmp_path, ds, 2).path
    other = search.trial_params("baseline", 0)
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM trial_params WHERE trial_id = ?", (_trial_id(db, 1),))
        con.executemany("INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                        "SELECT ?, param_name, param_value, distribution_json FROM trial_params WHERE trial_id = ?",
                        [(_trial_id(db, 1), _trial_id(db, 0))])
    con.close()
    with pytest.raises(DataFormatError, match=r"trial 1: field 'params'") as err:
        _search(tmp_path, ds, 2)
    assert (err.value.file, err.value.trial) == (str(db), 1)
    assert err.value.found == json.dumps(other, sort_keys=True)


@pytest.mark.parametrize("where", ["user attribute", "objective values", "runs.jsonl"])
def test_a_trial_whose_fold_values_were_edited_is_refused(tmp_path, counted, where):
    ds = tiny_dataset("position", n=(16, 4, 10))
    first = _search(tmp_path, ds, 2)
    db, stored = first.path, first.trials[0]["fold_values"]
    edited = [stored[0] - 0.5, stored[1]]                          # trial 0 now wins fold 0
    if where == "user attribute":                                  # what choose_per_fold reads
        _edit(db, "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'fold_values'",
              json.dumps(edited), _trial_id(db, 0))
        field, expected, found = "fold_values", stored, edited
    elif where == "objective values":                             # Optuna's own copy of them
        _edit(db, "UPDATE trial_values SET value = ? WHERE trial_id = ? AND objective = 0",
              edited[0], _trial_id(db, 0))
        field, expected, found = "values", stored, edited
    else:                                                         # the run's record changed under the study
        runs = experiments.runs_path(tmp_path, "smoke", "tiny")
        recs = [json.loads(line) for line in runs.read_text().splitlines()]
        rec = next(r for r in recs if r["config_hash"] == first.trials[0]["config_hash"])
        rec["protocols"]["crossfit"]["folds"][0]["best_value"] = edited[0]
        runs.write_text("".join(json.dumps(r) + "\n" for r in recs))
        field, expected, found = "fold_values", edited, stored
    with pytest.raises(DataFormatError) as err:
        _search(tmp_path, ds, 2)
    msg = str(err.value)
    assert msg.startswith(f"{db}: trial 0: field {field!r}: expected {json.dumps(expected)}")
    assert "\n" not in msg
    assert f"found {json.dumps(found)}" in msg
    assert first.trials[0]["config_hash"] in msg
    assert "runs.jsonl" in msg
    assert len(counted) == 2
