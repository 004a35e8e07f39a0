"""CLI misuse (issue 12): every user error prints one line ``mser: error: ...`` and exits 2, no traceback;
numbers on the command line parse as numbers (``--train-set lr=1e-4``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mser_lib import cli

ROOT = Path(__file__).resolve().parents[1]


def run_cli(argv, capsys) -> tuple[int, str]:
    """``main(argv)`` in this process: (exit status, stderr)."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:          # argparse
        rc = exc.code
    return rc, capsys.readouterr().err


T = ["train", "--profile", "smoke", "--quiet"]       # never trains long if a case slipped through
B = [*T, "--model", "baseline"]
F = [*T, "--model", "femf"]

# (case id, argv, a fragment the one-line message must hold); {tmp} is a fresh folder, {missing} is absent
MISUSE = [
    ("no command", [], "the following arguments are required"),
    ("unknown command", ["fly"], "invalid choice"),
    ("no model", T, "--model"),
    ("unknown model", [*T, "--model", "gpt"], "invalid choice: 'gpt'"),
    ("unknown dataset", [*B, "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    ("dataset without data dir", [*B, "--dataset", "mosi"], "needs data_dir"),
    ("missing data dir", [*B, "--dataset", "mosi-bclstm", "--data-dir", "{missing}"], "no such file or folder"),
    ("empty data dir", [*B, "--dataset", "mosi-bclstm", "--data-dir", "{tmp}"], "transcripts.csv"),
    ("missing mmsa file", [*B, "--dataset", "mosi", "--data-dir", "{tmp}"], "an MMSA pickle"),
    ("missing utterance pickle", [*B, "--dataset", "mosi-utt", "--data-dir", "{tmp}"], "CMUMOSI_features_raw_2way"),
    ("unknown profile", ["train", "--model", "baseline", "--profile", "huge"], "unknown profile 'huge'"),
    ("unknown trainer key", [*B, "--train-set", "epoch=3"], "unknown trainer setting(s) ['epoch']"),
    ("unknown model field", [*B, "--set", "hiden=64"], "no field(s) ['hiden']"),
    ("unknown loader argument", [*B, "--data-set", "split=standard"], "no setting(s) ['split']"),
    ("unknown bclstm loader argument", [*B, "--dataset", "mosi-bclstm", "--data-dir", "{tmp}", "--data-set",
                                        "spilt=standard"], "no loader argument(s) ['spilt']"),
    ("bad loader value", [*B, "--dataset", "mosi-bclstm", "--data-dir", "{tmp}", "--data-set", "split=weird"],
     "split must be 'bclstm' or 'standard'"),
    ("non-bool loader value", [*B, "--dataset", "mosi-bclstm", "--data-dir", "{tmp}", "--data-set",
                               "standardize=maybe"], "standardize must be true or false"),
    ("malformed key=value", [*B, "--train-set", "epochs"], "expects KEY=VALUE"),
    ("empty key", [*B, "--set", "=5"], "expects KEY=VALUE"),
    ("unparsable value", [*B, "--set", "hidden=[1,"], "cannot parse the value"),
    ("text for a number", [*B, "--train-set", "epochs=ten"], "TrainConfig.epochs='ten': expected an integer"),
    ("float for an int", [*B, "--train-set", "batch_size=1.5"], "TrainConfig.batch_size=1.5"),
    ("epochs 0", [*B, "--train-set", "epochs=0"], "TrainConfig.epochs=0: expected an integer >= 1"),
    ("patience 0", [*B, "--train-set", "patience=0"], "TrainConfig.patience=0"),
    ("patience -1", [*B, "--train-set", "patience=-1"], "TrainConfig.patience=-1"),
    ("clip_grad -1", [*B, "--train-set", "clip_grad=-1"], "TrainConfig.clip_grad=-1: expected a number > 0"),
    ("grad_accum -1", [*B, "--train-set", "grad_accum=-1"], "TrainConfig.grad_accum=-1"),
    ("lr 0", [*B, "--train-set", "lr=0"], "TrainConfig.lr=0: expected a number > 0"),
    ("lr negative", [*B, "--train-set", "lr=-1e-3"], "TrainConfig.lr=-0.001"),
    ("loss_kind huber", [*B, "--train-set", "loss_kind=huber"], "TrainConfig.loss_kind='huber'"),
    ("unknown select metric", [*B, "--train-set", "select_metric=accuracy"], "TrainConfig.select_metric"),
    ("unknown optimizer", [*B, "--train-set", "optimizer=sgd"], "TrainConfig.optimizer='sgd'"),
    ("bad device", [*B, "--device", "gpu0"], "TrainConfig.device='gpu0'"),
    ("hidden 0", [*B, "--set", "hidden=0"], "BiGRUConfig.hidden=0"),
    ("dropout 1.5", [*B, "--set", "dropout=1.5"], "BiGRUConfig.dropout=1.5: expected a number in [0, 1)"),
    ("bad modalities", [*B, "--set", "modalities=xyz"], "BiGRUConfig.modalities='xyz'"),
    ("femf alpha 7", [*F, "--set", "alpha=7"], "FEMFConfig.alpha=7: expected a number in [0, 1]"),
    ("femf negative stage epochs", [*F, "--train-set", "stage_epochs={experts: -1}"], "TrainConfig.stage_epochs"),
    ("femf huber", [*F, "--set", "task_loss_kind=huber"], "FEMFConfig.task_loss_kind='huber'"),
    ("femf loss_kind on the trainer", [*F, "--train-set", "loss_kind=mse", "epochs=1"],
     "is not used by FEMF"),
    ("atsuko zero layers", [*T, "--model", "atsuko", "--set", "num_layers=0"], "AtsukoConfig.num_layers=0"),
    ("negative seed", [*B, "--seed", "-1"], "a seed must be an integer in [0, 4294967295], got '-1'"),
    ("huge seed", [*B, "--seed", str(2**64)], f"got '{2**64}'"),
    ("negative seed in seeds", [*B, "--seeds", "0", "-3"], "got '-3'"),
    ("text seed", [*B, "--seed", "one"], "got 'one'"),
    ("evaluate missing rate 2", ["evaluate", "--model", "baseline", "--profile", "smoke", "--missing-rate", "2"],
     "rate in [0, 1)"),
    ("evaluate bad condition", ["evaluate", "--model", "baseline", "--profile", "smoke", "--condition", "xyz"],
     "condition must be one of"),
    ("evaluate never trained", ["evaluate", "--model", "baseline", "--profile", "smoke", "--results-dir", "{tmp}"],
     "no recorded run"),
    ("evaluate bad split", ["evaluate", "--model", "baseline", "--split", "dev"], "invalid choice: 'dev'"),
    ("datasets unknown", ["datasets", "--show", "imagenet"], "unknown dataset 'imagenet'"),
    ("datasets missing dir", ["datasets", "--show", "mosi-bclstm", "--data-dir", "{missing}"], "no such file"),
    ("search zero trials", ["search", "--trials", "0"], "expected an integer >= 1, got '0'"),
    ("search unknown model", ["search", "--models", "gpt"], "invalid choice: 'gpt'"),
    ("search --set with two models", ["search", "--models", "femf", "baseline", "--set", "hidden=32"],
     "give it with one --models name only"),
    ("search negative sampler seed", ["search", "--sampler-seed", "-2"], "got '-2'"),
    ("search without cross-fitting", ["search", "--dataset", "synthetic", "--profile", "smoke", "--models",
                                      "baseline", "--trials", "1", "--results-dir", "{tmp}"],
     "the search selects on the cross-fitted test folds"),
    ("text for an int field", [*B, "--set", "hidden=abc"], "BiGRUConfig.hidden='abc': expected an integer"),
    ("empty value", [*B, "--set", "hidden="], "BiGRUConfig.hidden=None"),
    ("list for a string field", [*B, "--set", "modalities=[t,a]"], "expected a string"),
    ("number for a mapping", [*F, "--train-set", "stage_epochs=5"], "TrainConfig.stage_epochs=5: expected a mapping"),
    ("nan lr", [*B, "--train-set", "lr=.nan"], "TrainConfig.lr=nan"),
    ("one crossfit fold", [*B, "--train-set", "crossfit_folds=1"], "TrainConfig.crossfit_folds=1"),
    ("bad interaction order", [*F, "--set", "interaction_order=t:av,a:tv,v:tt"], "FEMFConfig.interaction_order"),
    ("emoe zero kernel", [*T, "--model", "emoe", "--set", "kernel_sizes=[3,0,3]"], "AtsukoConfig.kernel_sizes"),
    ("profile path traversal", [*B, "--profile", "../configs/quick"], "unknown profile '../configs/quick'"),
    ("synthetic empty split", ["datasets", "--show", "synthetic", "--data-set", "n_train=0"],
     "SyntheticConfig.n_train=0"),
    ("data dir is a file", [*B, "--dataset", "mosi-bclstm", "--data-dir", "{file}"], "transcripts.csv"),
    ("mmsa aligned not a bool", [*B, "--dataset", "mosi", "--data-dir", "{tmp}", "--data-set", "aligned=maybe"],
     "aligned must be true, false or null"),
    ("utterance feature names not a mapping", [*B, "--dataset", "mosi-utt", "--data-dir", "{tmp}", "--data-set",
                                               "feature_names=[a]"], "feature_names must map"),
    ("utterance label file not a path", [*B, "--dataset", "mosi-utt", "--data-dir", "{tmp}", "--data-set",
                                         "label_file=5"], "label_file must be a path"),
    ("valid fraction 1", [*B, "--dataset", "mosi-bclstm", "--data-dir", "{tmp}", "--data-set", "valid_fraction=1"],
     "valid_fraction must be a number in (0, 1)"),
    ("table of an unknown profile", ["table", "--profile", "huge", "--results-dir", "{tmp}"], "unknown profile"),
    ("table without records", ["table", "--results-dir", "{tmp}"], "no records yet in"),
]
if not __import__("torch").cuda.is_available():
    MISUSE.append(("cuda on a machine without it", [*B, "--device", "cuda", "--results-dir", "{tmp}"],
                   "CUDA is not available on this machine"))


@pytest.mark.parametrize("argv,fragment", [(a, f) for _, a, f in MISUSE], ids=[c for c, _, _ in MISUSE])
def test_cli_misuse_is_one_line_and_exit_2(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # a case that slipped through writes here, not in results/
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a folder\n")
    argv = [a.replace("{tmp}", str(tmp_path / "empty")).replace("{missing}", str(tmp_path / "absent"))
            .replace("{file}", str(tmp_path / "file")) for a in argv]
    rc, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("mser: error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


def test_numbers_parse_as_numbers():
    got = cli._kv(["lr=1e-4", "a=3E2", "b=+.5", "c=1_000", "d=64", "e=false", "f=null", "g=nan", "h=t:av",
                   "i={experts: 2, full: 3}", "j=0.5"], "--train-set")
    assert got == {"lr": 1e-4, "a": 300.0, "b": 0.5, "c": 1000, "d": 64, "e": False, "f": None, "g": "nan",
                   "h": "t:av", "i": {"experts": 2, "full": 3}, "j": 0.5}
    assert type(got["lr"]) is float
    assert type(got["d"]) is int


def test_the_helps_own_example_trains(capsys, tmp_path):
    """``--train-set lr=1e-4`` (the help's example) once crashed: YAML 1.1 reads 1e-4 as a string."""
    rc, err = run_cli([*B, "--train-set", "lr=1e-4", "epochs=1", "--results-dir", tmp_path], capsys)
    assert rc == 0, err
    import json

    rec = json.loads((tmp_path / "smoke" / "synthetic" / "runs.jsonl").read_text().splitlines()[0])
    assert rec["config"]["train"]["lr"] == 1e-4


def _module(argv, env=None):
    return subprocess.run([sys.executable, "-m", "mser_lib", *argv], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=300)


@pytest.mark.slow
def test_python_m_mser_lib_prints_one_line_and_debug_shows_the_traceback():
    argv = ["train", "--model", "femf", "--profile", "smoke", "--set", "alpha=7"]
    out = _module(argv)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == "mser: error: FEMFConfig.alpha=7: expected a number in [0, 1]"
    dbg = _module(argv, {"MSER_DEBUG": "1"})
    assert dbg.returncode == 1
    assert "Traceback" in dbg.stderr
    assert "ConfigError" in dbg.stderr


def test_train_warns_on_extreme_feature_scales(capsys, tmp_path, monkeypatch):
    """Raw bc-LSTM audio carries pitch in Hz: `train` names the modality, the column and its scale, and how to
    standardise; the default (standardised) loader gives no warning."""
    from test_loaders import BCLSTM_DIR

    from mser_lib import experiments

    if not (BCLSTM_DIR / "transcripts.csv").is_file():
        pytest.skip("../shared/data/mosi-bclstm not present")
    monkeypatch.setattr(experiments, "run_one", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    argv = [*B, "--dataset", "mosi-bclstm", "--data-dir", BCLSTM_DIR, "--results-dir", tmp_path]
    rc, err = run_cli([*argv, "--data-set", "standardize=false"], capsys)
    assert rc == 130
    assert "mser: warning: mosi-bclstm: 1 of 73 audio feature columns have an extreme scale" in err
    assert "column 0: 202" in err
    assert "--data-set standardize=true" in err
    rc, err = run_cli(argv, capsys)
    assert rc == 130
    assert "warning" not in err


def test_scale_warnings_flag_large_and_tiny_columns_only():
    from dataclasses import replace

    from mser_lib.data.validate import scale_warnings

    from helpers import tiny_dataset

    ds = tiny_dataset()
    assert scale_warnings(ds) == []
    audio = ds.train.audio.copy()
    audio[..., 0] *= 1e4
    audio[..., 1] *= 1e-5
    audio[..., 2] = 0.0                                   # a constant-zero column is not a scale problem
    msgs = scale_warnings(replace(ds, train=replace(ds.train, audio=audio)))
    assert len(msgs) == 1
    assert "2 of 3 audio feature columns" in msgs[0]
    assert "column 1:" in msgs[0]


@pytest.mark.parametrize("args, names", [
    (["--seeds", "0; x"], "seeds"), (["--seeds", "1e3"], "seeds"), (["--seeds", "-1"], "seeds"),
    (["--only", "99"], "only"), (["--tolerance", "nan"], "tolerance"), (["--dataset", "../../x"], "dataset"),
])
def test_pipeline_refuses_bad_arguments_in_one_line(tmp_path, capsys, args, names):
    """Issue 24, item 8: each used to give a traceback, train the whole grid, or write outside the results."""
    from mser_lib import pipeline

    rc = pipeline.cli(["--results-dir", str(tmp_path / "res"), "--no-notebooks", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert err[0].startswith("mser: error:")
    assert names in err[0]
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("var, value", [("MSER_WORKERS", "abc"), ("MSER_WORKERS", "2.5"), ("MSER_THREADS", "-1"),
                                        ("MSER_THREADS", "0")])
def test_pipeline_refuses_bad_worker_and_thread_counts(tmp_path, capsys, monkeypatch, var, value):
    from mser_lib import pipeline

    monkeypatch.setenv(var, value)
    rc = pipeline.cli(["--results-dir", str(tmp_path / "res"), "--no-notebooks", "--profile", "smoke"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert var in err[0]


def test_a_yaml_alias_bomb_in_set_is_refused_at_once():
    """Issue 24, item 10: 600 bytes of aliases took 56 s and 2.9 GB before an error built from the expansion."""
    import time

    from mser_lib.cli import UsageError, _scalar

    rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    t = time.process_time()                     # CPU seconds: other work on the machine must not count
    with pytest.raises(UsageError, match="YAML alias") as err:
        _scalar("\n".join(rows))
    assert time.process_time() - t < 1.0
    assert len(str(err.value)) < 300
    assert _scalar("x&y") == "x&y"
    assert _scalar("[1, 2]") == [1, 2]
    with pytest.raises(UsageError, match="YAML alias"):            # the flow form too
        _scalar("[&a 1, *a]")


@pytest.mark.slow
def test_ledger_command_trains_the_ledger_grid_and_writes_its_table(tmp_path):
    from mser_lib.cli import main

    rc = main(["ledger", "--profile", "smoke", "--seeds", "0", "--results-dir", str(tmp_path), "--quiet"])
    assert rc == 0
    md = (tmp_path / "smoke" / "synthetic" / "tables" / "deviations.md").read_text()
    assert "| deviation |" in md
    assert "FEMF: L_align also pulls the prediction" in md
    collapse = (tmp_path / "smoke" / "synthetic" / "tables" / "ledger_late_collapse.csv").read_text()
    assert collapse.startswith("row,runs,collapsed,best epoch,best,last")   # notebook 04's late-collapse table
    assert "FEMF (default)" in collapse
    # from the records alone: the same table, nothing trained (checkpoints gone, predictions cached)
    import shutil

    shutil.rmtree(tmp_path / "smoke" / "synthetic" / "checkpoints")
    assert main(["ledger", "--profile", "smoke", "--seeds", "0", "--results-dir", str(tmp_path), "--quiet",
                 "--from-records"]) == 0
    assert (tmp_path / "smoke" / "synthetic" / "tables" / "deviations.md").read_text() == md
    assert not (tmp_path / "smoke" / "synthetic" / "checkpoints").exists()
    # a ledger run without a record: refused, naming the file and a run
    assert main(["ledger", "--profile", "smoke", "--seeds", "1", "--results-dir", str(tmp_path), "--quiet",
                 "--from-records"]) == 2
