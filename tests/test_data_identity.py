"""A run's identity covers its data: loader arguments and a fingerprint of the files read are part of the
config hash and of the table's variant label, so runs on different data are never merged (issue 12, item 3)."""

import json
import shutil
from dataclasses import replace

import pytest
from test_loaders import BCLSTM_DIR, copy_shared, needs_shared

from mser_lib import experiments, migrate
from mser_lib.data import load_dataset
from mser_lib.data.validate import data_fingerprint
from mser_lib.report.tables import aggregate, variant_name

from helpers import tiny_dataset

RUN = {"model": "baseline", "dataset": "synthetic", "seed": 0, "profile": "smoke", "progress": False}


def _with_fingerprint(ds, fp):
    return replace(ds, info=replace(ds.info, source={**ds.info.source, "fingerprint": fp}))


def test_fingerprint_follows_content_and_settings_not_the_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "x.csv").write_text("1,2,3\n")
        (d / "y.csv").write_text("4,5,6\n")
    files = lambda d: [d / "x.csv", d / "y.csv"]      # noqa: E731
    fa = data_fingerprint(files(a), {"split": "s"}, a)
    assert fa == data_fingerprint(files(b), {"split": "s"}, b)            # same files elsewhere: same data
    assert fa == data_fingerprint(list(reversed(files(a))), {"split": "s"}, a)
    assert fa != data_fingerprint(files(a), {"split": "t"}, a)            # other loader settings
    (b / "y.csv").write_text("4,5,7\n")
    assert fa != data_fingerprint(files(b), {"split": "s"}, b)            # one byte changed
    assert len(fa) == 16
    assert int(fa, 16) >= 0


def test_synthetic_fingerprint_follows_the_generator_settings():
    smoke, quick = load_dataset("synthetic", profile="smoke"), load_dataset("synthetic", profile="quick")
    assert smoke.info.source["fingerprint"] == load_dataset("synthetic", profile="smoke").info.source["fingerprint"]
    assert smoke.info.source["fingerprint"] != quick.info.source["fingerprint"]
    assert smoke.info.source["fingerprint"] != load_dataset("synthetic", profile="smoke", seed=1).info.source[
        "fingerprint"]


@needs_shared
def test_bclstm_fingerprint_sees_file_content_and_loader_arguments(tmp_path):
    ref = load_dataset("mosi-bclstm", data_dir=BCLSTM_DIR).info.source["fingerprint"]
    data = copy_shared(tmp_path / "data")
    assert load_dataset("mosi-bclstm", data_dir=data).info.source["fingerprint"] == ref
    assert load_dataset("mosi-bclstm", data_dir=data, standardize=False).info.source["fingerprint"] != ref
    path = data / "audio_train0.csv"
    lines = path.read_text().splitlines()
    cells = lines[5].split(",")
    cells[3] = f"\"{float(cells[3].strip(chr(34))) + 1.0}\""     # one feature value of one utterance
    lines[5] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    assert load_dataset("mosi-bclstm", data_dir=data).info.source["fingerprint"] != ref


def test_same_command_on_other_data_trains_again_and_keeps_both_records(tmp_path):
    ds = load_dataset("synthetic", profile="smoke")
    one = experiments.run_one(**RUN, results_dir=tmp_path, ds=_with_fingerprint(ds, "a" * 16))
    other = experiments.run_one(**RUN, results_dir=tmp_path, ds=_with_fingerprint(ds, "b" * 16))
    assert one["config_hash"] != other["config_hash"]
    assert other["config"]["data_fingerprint"] == "b" * 16
    recs = [json.loads(line) for line in experiments.runs_path(tmp_path, "smoke", "synthetic").read_text().splitlines()]
    assert {r["config"]["data_fingerprint"] for r in recs} == {"a" * 16, "b" * 16}
    # the table keeps them apart: the two runs are not averaged as two seeds of one variant
    long = aggregate(recs)
    variants = set(long["variant"])
    assert variants == {"default,data=" + "a" * 16, "default,data=" + "b" * 16}
    assert set(long["n"]) == {1}
    # the cache answers the same data with its own record
    again = experiments.run_one(**RUN, results_dir=tmp_path, ds=_with_fingerprint(ds, "a" * 16))
    assert again["config_hash"] == one["config_hash"]
    assert again["finished_at"] == one["finished_at"]


def test_variant_label_names_loader_arguments():
    rec = {"model": "femf", "dataset": "mosi-bclstm", "seed": 0, "profile": "quick", "overrides": {},
           "config": {"data_kwargs": {"split": "standard"}}}
    assert variant_name(rec) == "data.split=standard"
    rec["overrides"] = {"alpha": 0.3}
    assert variant_name(rec) == "alpha=0.3,data.split=standard"
    rec["config"]["data_kwargs"] = {}
    assert variant_name(rec) == "alpha=0.3"


def test_retraining_a_record_refuses_other_data(tmp_path):
    ds = tiny_dataset()
    rec = experiments.run_one(**{**RUN, "dataset": "tiny"}, results_dir=tmp_path,
                              ds=_with_fingerprint(ds, "a" * 16))
    shutil.rmtree(experiments.run_dir(tmp_path, "smoke", "tiny", rec["config_hash"]))
    with pytest.raises(ValueError, match="fingerprint"):
        experiments.ensure_trained(rec, _with_fingerprint(ds, "c" * 16), tmp_path)


def test_migrate_gives_old_records_their_fingerprint_without_retraining(tmp_path):
    """A results folder written before fingerprints: after migrating, the same command finds its record,
    checkpoints and predictions under the new hash and trains nothing."""
    ds = load_dataset("synthetic", profile="smoke")
    folder, old_hash, new_hash = _as_before_fingerprints(tmp_path)
    new = json.loads((folder / "checkpoints" / old_hash / "record.json").read_text())
    (folder / "tables").mkdir()
    (folder / "tables" / "runs.csv").write_text(f"config_hash\n{old_hash}\n")
    (folder / "predictions").mkdir(exist_ok=True)
    (folder / "predictions" / f"{old_hash}_full.npz").write_bytes(b"")

    assert experiments.find_record(tmp_path, experiments.resolve_run("baseline", "synthetic", 0, "smoke",
                                                                     info=ds.info)) is None
    mapping = migrate.main([str(folder)]) == 0 and json.loads((folder / "migrated_hashes.json").read_text())
    assert mapping == {old_hash: new_hash}
    assert (folder / "tables" / "runs.csv").read_text() == f"config_hash\n{new_hash}\n"
    assert (folder / "predictions" / f"{new_hash}_full.npz").exists()
    again = experiments.run_one(**RUN, results_dir=tmp_path)
    assert again["config_hash"] == new_hash
    assert again["finished_at"] == new["finished_at"]
    assert migrate.add_data_fingerprints(folder) == {}                    # a second migration changes nothing


def test_migrate_refuses_a_record_from_another_version(tmp_path):
    folder = tmp_path / "smoke" / "synthetic"
    folder.mkdir(parents=True)
    rec = {"config_hash": "0" * 16, "config": {"model": "baseline", "dataset": "synthetic", "profile": "smoke",
                                                "train": {"lr": 1e-3}}}
    (folder / "runs.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match="another version"):
        migrate.add_data_fingerprints(folder)


def test_paper_tables_keep_runs_on_different_data_apart():
    """The paper-layout tables label rows with the same variants the aggregate groups by."""
    from mser_lib.report.paper_rows import measured_frame

    base = {"model": "baseline", "dataset": "synthetic", "profile": "smoke", "overrides": {}, "tag": None,
            "test": {"mae": 1.0, "corr": 0.5}, "config": {"data_kwargs": {}}}
    recs = [{**base, "seed": s, "config_hash": f"{s:016x}", "config": {"data_kwargs": {}, "data_fingerprint": fp},
             "test": {"mae": 1.0 + s, "corr": 0.5}} for s, fp in ((0, "a" * 16), (1, "b" * 16))]
    frame = measured_frame(recs, load_dataset("synthetic", profile="smoke").info, "smoke")
    assert sorted(frame["model"]) == ["baseline (default,data=" + "a" * 16 + ")",
                                      "baseline (default,data=" + "b" * 16 + ")"]


def _as_before_fingerprints(tmp_path):
    """A smoke baseline run, its folder rewritten as an older mser wrote it (no fingerprint, old hash)."""
    new = experiments.run_one(**RUN, results_dir=tmp_path)
    folder = tmp_path / "smoke" / "synthetic"
    old_cfg = {k: v for k, v in new["config"].items() if k != "data_fingerprint"}
    old = {**new, "config": old_cfg, "config_hash": experiments.config_hash(old_cfg)}
    (folder / "runs.jsonl").write_text(json.dumps(old, sort_keys=True) + "\n")
    ck = folder / "checkpoints"
    (ck / new["config_hash"]).rename(ck / old["config_hash"])
    (ck / old["config_hash"] / "record.json").write_text(json.dumps(old, sort_keys=True))
    for f in (folder / "predictions").glob(f"{new['config_hash']}_*.npz"):   # an older mser wrote none at training
        f.unlink()
    return folder, old["config_hash"], new["config_hash"]


def test_migrate_refuses_to_overwrite_and_changes_nothing(tmp_path):
    folder, old, new = _as_before_fingerprints(tmp_path)
    (folder / "checkpoints" / new).mkdir()                 # this mser already trained the run here
    before = (folder / "runs.jsonl").read_bytes()
    with pytest.raises(FileExistsError, match="nothing was migrated"):
        migrate.add_data_fingerprints(folder)
    assert (folder / "runs.jsonl").read_bytes() == before
    assert (folder / "checkpoints" / old).is_dir()
    assert not (folder / "migrated_hashes.json").exists()


def test_migrate_renames_the_runs_of_an_optuna_study(tmp_path):
    optuna = pytest.importorskip("optuna")
    from mser_lib.search import _fingerprint

    folder, old, new = _as_before_fingerprints(tmp_path)
    ds = load_dataset("synthetic", profile="smoke")
    fp, run = _fingerprint("baseline", "synthetic", "smoke", 0, 0, {}, {}, {}, ds.info)
    fp["base_config_hash"] = migrate._old_hash(run)        # as the study was saved before fingerprints
    (folder / "search").mkdir()
    study = optuna.create_study(storage=f"sqlite:///{folder / 'search' / 'baseline.db'}", study_name="baseline")
    study.set_user_attr("fingerprint", fp)
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0,
                                              user_attrs={"config_hash": old}))
    migrate.add_data_fingerprints(folder)
    study = optuna.load_study(study_name="baseline", storage=f"sqlite:///{folder / 'search' / 'baseline.db'}")
    assert study.trials[0].user_attrs["config_hash"] == new
    assert study.user_attrs["fingerprint"]["base_config_hash"] == experiments.config_hash(run)
