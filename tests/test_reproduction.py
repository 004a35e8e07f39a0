"""`make reproduce` in a newcomer's situation: committed records, no checkpoints.

The first tests copy records into an empty results folder (a fresh clone has ``runs.jsonl`` but no
``checkpoints/``) and run the steps of notebooks 02, 05 and 06 that need checkpoints; they must
retrain, never crash or silently skip. The others check the reproduction report.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from mser_lib import experiments, grids, pipeline, reproduction, runs
from mser_lib.checks import ConfigError
from mser_lib.executors import run_grid
from mser_lib.experiments import get_dataset
from mser_lib.report import ablations as ab

COMMON = {"dataset": "synthetic", "profile": "smoke", "progress": False}
SPECS = [{"model": "baseline", "seed": 0, "overrides": {"modalities": "tav"}, "tag": "baseline"},
         {"model": "femf", "seed": 0, "tag": "femf"}]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A results folder where the runs were trained (records + checkpoints), as on the author's machine."""
    src = tmp_path_factory.mktemp("author")
    recs = run_grid(SPECS, results_dir=src, **COMMON)
    return src, recs


def _fresh_clone(src, dst):
    """What a clone holds: the committed ``runs.jsonl``, no checkpoints, no predictions."""
    runs = experiments.runs_path(src, "smoke", "synthetic")
    target = experiments.runs_path(dst, "smoke", "synthetic")
    target.parent.mkdir(parents=True)
    shutil.copyfile(runs, target)
    return target


def _local_hashes(results):
    return {p.parent.name for p in (results / "smoke" / "synthetic" / "checkpoints").glob("*/record.json")}


def test_fresh_clone_retrains_instead_of_reusing_committed_records(trained, tmp_path):
    src, recs = trained
    _fresh_clone(src, tmp_path)
    ds = get_dataset("synthetic", None, "smoke")
    again = run_grid(SPECS, results_dir=tmp_path, **COMMON)               # default reuse="local"
    assert _local_hashes(tmp_path) == {r["config_hash"] for r in recs}    # every run trained here
    # the steps of notebook 05 that predict from checkpoints find them
    curves, preds = ab.missing_curves(SPECS, again, ds, tmp_path, [0.0, 0.4], cache_dir=tmp_path / "pred")
    assert set(curves["label"]) == {"baseline", "femf"}
    assert set(curves["rate"]) == {0.0, 0.4}
    # deterministic CPU training: the same results as the author's runs, so runs.jsonl is unchanged
    assert all(experiments.same_results(a, b) for a, b in zip(recs, again))
    assert experiments.runs_path(tmp_path, "smoke", "synthetic").read_bytes() == \
        experiments.runs_path(src, "smoke", "synthetic").read_bytes()
    # and the records the notebooks build their tables from are the committed ones (same wall times), with
    # this machine's run beside them: tables that show wall times do not change either
    assert [r["wall_time_s"] for r in again] == [r["wall_time_s"] for r in recs]
    assert all(r["this_machine"]["wall_time_s"] > 0 for r in again)


def test_records_mode_retrains_only_what_a_step_needs(trained, tmp_path):
    src, recs = trained
    _fresh_clone(src, tmp_path)
    ds = get_dataset("synthetic", None, "smoke")
    reused = run_grid(SPECS, results_dir=tmp_path, reuse="records", **COMMON)   # `make tables`
    assert [r["config_hash"] for r in reused] == [r["config_hash"] for r in recs]
    assert _local_hashes(tmp_path) == set()                               # nothing trained yet
    femf = reused[1]
    hist = runs.stage_history(tmp_path, femf, "experts", ds)          # notebook 02: needs last.pt
    assert hist is not None
    assert len(hist) == femf["stages"][0]["epochs_run"]
    assert _local_hashes(tmp_path) == {femf["config_hash"]}               # retrained that run only
    with torch.no_grad():                                                 # analyses run under no_grad
        net = runs.load_model(reused[0], ds, tmp_path)                      # notebook 06: needs best.pt
    assert net is not None
    assert _local_hashes(tmp_path) == {r["config_hash"] for r in recs}
    # without the dataset a step cannot retrain and says so by returning None (no KeyError)
    other = tmp_path / "other"
    _fresh_clone(src, other)
    assert runs.stage_history(other, femf, "experts") is None


def test_report_flags_an_altered_record_as_differing(trained, tmp_path):
    src, recs = trained
    reference = [json.loads(line) for line in experiments.runs_path(src, "smoke", "synthetic").read_text().splitlines()]
    altered = json.loads(json.dumps(reference))
    altered[0]["test"]["mae"] += 0.01                   # one committed number changed by hand
    altered[1]["test"]["corr"] += 1e-6                  # a float-noise difference
    table = reproduction.compare(altered, recs)
    status = dict(zip(table["config hash"], table["status"]))
    assert status[recs[0]["config_hash"]] == "differs"
    assert status[recs[1]["config_hash"]] == "within tolerance"
    row = table.set_index("config hash").loc[recs[0]["config_hash"]]
    assert row["mae diff"] == pytest.approx(-0.01)
    assert reproduction.compare(reference, recs)["status"].eq("bit-identical").all()
    line = reproduction.verdict(reproduction.compare(altered[1:], recs), n_reference=1)
    assert line.startswith("reproduced 1/1 runs: 0 bit-identical, 1 within tolerance, 0 differ; 1 new")


def test_pipeline_reports_and_strict_fails_on_a_difference(tmp_path, capsys, monkeypatch):
    args = ["--profile", "smoke", "--dataset", "synthetic", "--seeds", "0", "--no-notebooks",
            "--results-dir", str(tmp_path), "--strict"]
    # no notebook: the main grid is trained directly
    monkeypatch.setattr(grids, "main_grid",
                        lambda *a, **k: [{"model": "baseline", "seed": 0, "overrides": {"modalities": "t"}}])
    assert pipeline.main(args) == 0
    out = capsys.readouterr().out
    assert "reproduced 0/0 runs: 0 bit-identical, 0 within tolerance, 0 differ; 1 new" in out
    report = tmp_path / "smoke" / "synthetic" / "tables" / "reproduction.md"
    assert report.exists()
    assert "new" in report.read_text()
    assert not (tmp_path / "smoke" / "synthetic" / "checkpoints" / reproduction.REFERENCE_NAME).exists()
    # a committed number that the code does not reproduce: strict mode fails
    runs = experiments.runs_path(tmp_path, "smoke", "synthetic")
    rec = json.loads(runs.read_text())
    rec["test"]["mae"] += 0.5
    runs.write_text(json.dumps(rec) + "\n")
    assert pipeline.main(args) == 1
    assert "0 bit-identical, 0 within tolerance, 1 differ" in capsys.readouterr().out


def test_report_and_prune_count_only_the_runs_this_reproduce_needed(tmp_path, capsys, monkeypatch):
    """A finished run of a config no notebook needs any more (an earlier grid's, still in checkpoints/) is not
    counted as reproduced, and --prune drops its committed record."""
    base = ["--profile", "smoke", "--dataset", "synthetic", "--results-dir", str(tmp_path)]   # the profile's seeds
    t_only = {"model": "baseline", "seed": 0, "overrides": {"modalities": "t"}}
    a_only = {"model": "baseline", "seed": 0, "overrides": {"modalities": "a"}}
    monkeypatch.setattr(grids, "main_grid", lambda *a, **k: [t_only, a_only])
    assert pipeline.main(base + ["--no-notebooks"]) == 0                       # both committed
    capsys.readouterr()
    monkeypatch.setattr(pipeline, "notebook_paths", lambda only=None, dataset=None: [Path("00_x.ipynb")])
    monkeypatch.setattr(pipeline, "notebook_runs", lambda *a, **k: [t_only])   # the grid shrank to one run
    monkeypatch.setattr(pipeline, "run_notebooks", lambda args, out, seeds, force: [])
    assert pipeline.main(base + ["--prune"]) == 0
    out = capsys.readouterr().out
    assert "reproduced 1/1 runs: 1 bit-identical" in out
    assert "1 committed record(s) not rerun" in out
    runs = experiments.runs_path(tmp_path, "smoke", "synthetic")
    assert [json.loads(x)["overrides"] for x in runs.read_text().splitlines()] == [{"modalities": "t"}]
    with pytest.raises(ConfigError, match="prune"):
        pipeline.main(base + ["--prune", "--only", "00"])
    with pytest.raises(ConfigError, match="prune"):       # fewer seeds than the profile's: the others would go
        pipeline.main(base + ["--prune", "--seeds", "0"])
    assert len(runs.read_text().splitlines()) == 1                             # nothing was dropped


def test_only_the_built_in_benchmark_updates_the_committed_notebooks():
    """notebooks/ shows the built-in benchmark's outputs; a real-data run with --update-notebooks once replaced
    them with mosi-bclstm's."""
    for args in (["--dataset", "mosi-bclstm"], ["--profile", "smoke"]):
        with pytest.raises(ConfigError, match="update-notebooks"):
            pipeline.main(args + ["--update-notebooks"])


def test_upsert_keeps_a_reproduced_record_and_replaces_a_different_one(tmp_path):
    path = tmp_path / "runs.jsonl"
    base = {"config_hash": "a" * 16, "test": {"mae": 1.0}, "wall_time_s": 3.0, "git_revision": "x"}
    assert experiments.upsert_record(path, base) == "new"
    before = path.read_bytes()
    same = {**base, "wall_time_s": 9.0, "git_revision": "y"}        # only provenance differs
    assert experiments.upsert_record(path, same) == "same"
    assert path.read_bytes() == before
    other = {"config_hash": "b" * 16, "test": {"mae": 2.0}}
    assert experiments.upsert_record(path, other) == "new"
    changed = {**base, "test": {"mae": 1.5}}
    assert experiments.upsert_record(path, changed) == "replaced"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["config_hash"] for r in lines] == ["a" * 16, "b" * 16]
    assert lines[0]["test"]["mae"] == 1.5


def test_reference_snapshot_survives_an_interrupted_reproduce(tmp_path):
    runs = experiments.runs_path(tmp_path, "quick", "synthetic")
    runs.parent.mkdir(parents=True)
    runs.write_text('{"config_hash": "c"}\n')
    ref = reproduction.snapshot_reference(tmp_path, "quick", "synthetic")
    runs.write_text('{"config_hash": "d"}\n')                     # a run replaced its record, then a crash
    assert reproduction.snapshot_reference(tmp_path, "quick", "synthetic") == ref
    assert ref.read_text() == '{"config_hash": "c"}\n'


def test_notebook_runs_cover_every_grid_the_notebooks_train():
    specs = pipeline.notebook_runs(None, "quick", "synthetic", [0, 1, 2])
    n = grids.unique_runs([{k: v for k, v in s.items() if v not in (None, {})} for s in specs])
    assert {"femf", "atsuko", "emoe", "baseline"} <= {s["model"] for s in specs}
    assert n >= len(grids.main_grid("quick", "synthetic", [0, 1, 2]))


def test_reproduce_writes_its_times_beside_its_checkpoints_not_into_the_committed_file(tmp_path, monkeypatch):
    """A reproduce leaves the committed notebook_timings.json as it is (git status stays clean); this
    machine's times go to checkpoints/, and to the committed file only with --record-timings."""
    out = tmp_path / "smoke" / "synthetic"
    out.mkdir(parents=True)
    committed = out / "notebook_timings.json"
    committed.write_text('{"training": 1.0}\n')
    monkeypatch.setattr(pipeline, "notebook_paths", lambda only=None, dataset=None: [Path("00_x.ipynb")])
    monkeypatch.setattr(pipeline, "train_all", lambda args, seeds: set())
    monkeypatch.setattr(pipeline, "run_notebooks", lambda args, out, seeds, force: [("00_x.ipynb", 2.0)])
    args = ["--profile", "smoke", "--dataset", "synthetic", "--seeds", "0", "--results-dir", str(tmp_path)]
    assert pipeline.main(args) == 0
    assert committed.read_text() == '{"training": 1.0}\n'
    mine = json.loads((out / "checkpoints" / "notebook_timings.json").read_text())
    assert set(mine) == {"training", "00_x.ipynb"}
    assert mine["00_x.ipynb"] == 2.0
    assert pipeline.main(args + ["--record-timings"]) == 0
    assert json.loads(committed.read_text())["00_x.ipynb"] == 2.0


def test_a_second_reproduce_of_the_same_folder_is_refused(tmp_path, capsys):
    """Issue 24, item 1: two reproduces on one folder shared a reference snapshot; the first to end deleted it
    and the second compared its runs with themselves ('bit-identical')."""
    from mser_lib import pipeline, reproduction

    with reproduction.ReproduceLock(tmp_path, "smoke", "synthetic"):
        rc = pipeline.cli(["--profile", "smoke", "--no-notebooks", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert "another reproduce of this results folder is running" in err[0]
    assert not (tmp_path / "smoke" / "synthetic" / "runs.jsonl").exists()      # nothing trained
    with reproduction.ReproduceLock(tmp_path, "smoke", "synthetic"):           # released: it can be taken again
        pass


def test_no_verdict_without_the_reference_snapshot(tmp_path):
    from mser_lib import reproduction

    out = tmp_path / "smoke" / "synthetic"
    out.mkdir(parents=True)
    (out / "runs.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match="snapshot of the committed records"):
        reproduction.write_report(tmp_path, "smoke", "synthetic")


def _fake_notebooks(monkeypatch, tmp_path, names, fail=None):
    """run_notebooks with papermill replaced by a sleep that logs when each notebook started and ended."""
    import sys
    import threading
    import time
    import types
    from argparse import Namespace

    from mser_lib import pipeline

    log, lock = [], threading.Lock()

    def execute_notebook(src, dst, **kw):
        name = Path(src).name
        # every kernel starts in notebooks/, and nothing changes the process's folder per notebook
        assert "cwd" not in kw
        assert Path.cwd() == pipeline.NOTEBOOKS.resolve()
        assert Path(dst).is_absolute()
        with lock:
            log.append(("start", name, time.perf_counter()))
        time.sleep(0.3)
        if name == fail:
            raise RuntimeError(f"{name} failed")
        with lock:
            log.append(("end", name, time.perf_counter()))

    monkeypatch.setitem(sys.modules, "papermill", types.SimpleNamespace(execute_notebook=execute_notebook))
    monkeypatch.setattr(pipeline, "notebook_paths", lambda only=None, dataset=None: [tmp_path / n for n in names])
    monkeypatch.setattr(pipeline, "strip_run_metadata", lambda path: None)
    monkeypatch.setattr(pipeline, "notebook_slots", lambda force: 2)
    args = Namespace(results_dir=str(tmp_path / "results"), reuse="local", profile="smoke", dataset="synthetic",
                     data_dir="", device="cpu", only=None, update_notebooks=False)
    return pipeline.run_notebooks, args, log


def test_notebooks_run_two_at_a_time_and_the_synthesis_after_all_others(monkeypatch, tmp_path):
    names = ["00_a.ipynb", "01_b.ipynb", "02_c.ipynb", "03_d.ipynb", "06_figures.ipynb"]
    run, args, log = _fake_notebooks(monkeypatch, tmp_path, names)
    before = Path.cwd()
    timings = run(args, tmp_path / "out", [0], force=False)
    assert Path.cwd() == before
    assert [n for n, _ in timings] == names                       # reported in the notebooks' order
    running = peak = 0
    for kind, _, _ in sorted(log, key=lambda e: e[2]):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2
    ends = {n: t for k, n, t in log if k == "end"}
    start06 = next(t for k, n, t in log if k == "start" and n == "06_figures.ipynb")
    assert all(start06 >= ends[n] for n in names[:-1])


def test_a_failed_notebook_stops_the_run_with_its_error(monkeypatch, tmp_path):
    run, args, log = _fake_notebooks(monkeypatch, tmp_path, ["00_a.ipynb", "01_b.ipynb", "02_c.ipynb"],
                                     fail="01_b.ipynb")
    with pytest.raises(RuntimeError, match="01_b.ipynb failed"):
        run(args, tmp_path / "out", [0], force=False)


def test_one_notebook_at_a_time_when_the_notebooks_may_retrain():
    from mser_lib import pipeline

    assert pipeline.notebook_slots(force=True) == 1
    assert 1 <= pipeline.notebook_slots(force=False) <= 2


def test_records_say_which_cpu_made_them_and_the_report_names_a_mismatch(trained):
    src, recs = trained
    cpu = experiments.cpu_description()
    assert all(r["versions"]["cpu"] == cpu for r in recs)
    assert "torch kernels " + torch.backends.cpu.get_cpu_capability() in cpu
    # same CPU: nothing to say; the verdict line stays as it was
    assert reproduction.machine_note(recs, recs) is None
    other = json.loads(json.dumps(recs))
    for r in other:
        r["versions"]["cpu"] = "Some Other CPU, torch kernels AVX2"
    note = reproduction.machine_note(other, recs)
    assert note.startswith("the committed records were made on Some Other CPU, torch kernels AVX2, these runs on "
                           + cpu)
    # records from before the field existed
    for r in other:
        del r["versions"]["cpu"]
    assert "a CPU the records do not name" in reproduction.machine_note(other, recs)
    # a run that reproduced its record bit for bit carries the committed provenance, and its own beside it
    settled = [{**o, "this_machine": {"versions": r["versions"]}} for o, r in zip(other, recs)]
    assert reproduction.machine_note(other, settled) == reproduction.machine_note(other, recs)
    assert reproduction.machine_note(recs, [{**r, "this_machine": {"versions": {"cpu": "X"}}} for r in recs])
    # only the records that were compared count: an unrelated record of another CPU changes nothing
    unrelated = {**other[0], "config_hash": "0" * 16}
    assert reproduction.machine_note([*recs, unrelated], recs) is None
