"""What a grid will cost, said before it starts (mser_lib.estimate, pipeline.announce_cost)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mser_lib import estimate, experiments, grids, pipeline
from mser_lib.estimate import Probe


def test_grid_seconds_schedules_the_longest_runs_first_on_the_free_worker():
    # 5 -> w0, 4 -> w1, 3 -> w1 (7), 3 -> w0 (8): the grid ends at 8
    assert estimate.grid_seconds([3, 5, 3, 4], 2) == 8
    assert estimate.grid_seconds([3, 5, 3, 4], 1) == 15
    assert estimate.grid_seconds([3, 5, 3, 4], 8) == 5
    assert estimate.grid_seconds([], 2) == 0


def _ds(n_train, n_valid, n_test):
    class Split:
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

    class DS:
        train, valid, test = Split(n_train), Split(n_valid), Split(n_test)

    return DS()


def test_run_seconds_counts_every_epoch_of_every_stage_and_the_test_split_under_crossfitting():
    ds = _ds(100, 20, 30)
    p = Probe("femf", prepare_per_sample=0.01,
              stages={"experts": (0.1, 0.01, 0.5), "full": (0.2, 0.02, 0.5)})
    run = {"train": {"epochs": 60, "stage_epochs": {"experts": 10, "full": 40}, "selection": "crossfit"}}
    want = (0.01 * 100                                      # prepare
            + 10 * (0.1 * 100 + 0.01 * (20 + 30) + 0.5)      # experts: train, valid + test, checkpoint
            + 40 * (0.2 * 100 + 0.02 * (20 + 30) + 0.5)      # full
            + 0.02 * 30)                                     # the final test scoring
    assert estimate.run_seconds(run, ds, p) == pytest.approx(want)
    # selected on validation: the test split is scored once, at the end
    run["train"]["selection"] = "valid"
    p1 = Probe("baseline", 0.0, {None: (0.1, 0.01, 0.0)})
    run1 = {"train": {"epochs": 5, "selection": "valid"}}
    assert estimate.run_seconds(run1, ds, p1) == pytest.approx(5 * (0.1 * 100 + 0.01 * 20) + 0.01 * 30)


def test_hours_reads_as_words():
    assert estimate.hours(20) == "under a minute"
    assert estimate.hours(41 * 60) == "about 41 min"
    assert estimate.hours(3.2 * 3600) == "about 3.2 h"


def test_probe_times_each_stage_on_one_thread_and_restores_the_thread_count():
    ds = experiments.get_dataset("synthetic", None, "smoke")
    run = experiments.resolve_run("femf", "synthetic", 0, "smoke", info=ds.info)
    torch.set_num_threads(2)
    try:
        p = estimate.probe(run, ds, batches=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert list(p.stages) == ["experts", "full"]
    for per_train, per_eval, ckpt in p.stages.values():
        assert math.isfinite(per_train)
        assert per_train > 0
        assert per_eval > 0
        assert ckpt > 0
    run_a = experiments.resolve_run("atsuko", "synthetic", 0, "smoke", info=ds.info)
    assert estimate.probe(run_a, ds, batches=1).prepare_per_sample > 0    # Atsuko fits its bands


def _args(tmp_path, *extra):
    return ["--profile", "smoke", "--dataset", "synthetic", "--seeds", "0 1", "--results-dir", str(tmp_path), *extra]


def test_estimate_probes_runs_no_record_times_and_trains_nothing(tmp_path, capsys, monkeypatch):
    two = [{"model": "baseline", "seed": s, "overrides": {"modalities": "t"}} for s in (0, 1)]
    monkeypatch.setattr(pipeline, "notebook_runs", lambda *a, **k: two)
    assert pipeline.main(_args(tmp_path, "--estimate")) == 0
    out = capsys.readouterr().out
    assert "== cost: 2 of 2 runs to train" in out
    assert "2 estimated from probes of a few batches of 1 models on this machine" in out
    assert not any(tmp_path.rglob("*.jsonl"))                 # nothing trained, nothing recorded
    assert not any(tmp_path.rglob("*.pt"))


def test_a_grid_over_the_budget_is_offered_the_cheaper_selections(tmp_path, capsys, monkeypatch):
    runs = [{"model": "baseline", "seed": s, "overrides": {"modalities": "t"}} for s in (0, 1)]
    monkeypatch.setattr(pipeline, "notebook_runs", lambda only, *a, **k: runs[:1] if only == ["03"] else runs)
    monkeypatch.setattr(pipeline, "COST_BUDGET_S", 0.0)         # every grid is over it
    assert pipeline.main(_args(tmp_path, "--estimate")) == 0
    out = capsys.readouterr().out
    assert "none of the cheaper selections fits; the cheapest: the first seed (SEEDS=0, --seeds 0), " in out
    assert "ONLY=03" not in out                                        # only the cheapest is named
    # a command without notebook 03 is not offered notebook 03 alone
    assert pipeline.main(_args(tmp_path, "--estimate", "--only", "04")) == 0
    out = capsys.readouterr().out
    assert "ONLY=03" not in out
    assert "the first seed (SEEDS=0, --seeds 0)" in out
    monkeypatch.setattr(pipeline, "COST_BUDGET_S", 1e9)         # nothing is over it: no offer
    assert pipeline.main(_args(tmp_path, "--estimate")) == 0
    assert "cheaper" not in capsys.readouterr().out


def test_recorded_runs_are_timed_by_their_records_and_finished_ones_cost_nothing(tmp_path, capsys, monkeypatch):
    one = [{"model": "baseline", "seed": 0, "overrides": {"modalities": "t"}}]
    monkeypatch.setattr(grids, "main_grid", lambda *a, **k: one)
    monkeypatch.setattr(pipeline, "notebook_runs", lambda *a, **k: one)
    assert pipeline.main(_args(tmp_path, "--no-notebooks")) == 0           # trains and records it
    capsys.readouterr()
    assert pipeline.main(_args(tmp_path, "--estimate")) == 0
    assert "== cost: 0 of 1 runs to train, under a minute" in capsys.readouterr().out   # finished here
    runs = experiments.runs_path(tmp_path, "smoke", "synthetic")
    rec = json.loads(runs.read_text())
    rec["wall_time_s"] = 7200.0
    runs.write_text(json.dumps(rec) + "\n")
    assert pipeline.main(_args(tmp_path, "--estimate", "--force", "1")) == 0      # retrained: its record times it
    out = capsys.readouterr().out
    assert "== cost: 1 of 1 runs to train, about 2.0 h on" in out
    assert "1 timed by their committed records" in out


def test_train_only_with_recorded_runs_trains_just_the_missing_ones(tmp_path, capsys, monkeypatch):
    """--reuse records --train-only: a grid built up over several sittings; a run with a committed record is not
    retrained (its checkpoints are gone, as in a new checkout), the other is trained with its predictions."""
    import shutil

    t_run, a_run = ({"model": "baseline", "seed": 0, "overrides": {"modalities": m}} for m in ("t", "a"))
    monkeypatch.setattr(pipeline, "notebook_runs", lambda *a, **k: [t_run])
    assert pipeline.main(_args(tmp_path, "--train-only")) == 0               # the first sitting: one run
    out = tmp_path / "smoke" / "synthetic"
    shutil.rmtree(out / "checkpoints")
    capsys.readouterr()
    monkeypatch.setattr(pipeline, "notebook_runs", lambda *a, **k: [t_run, a_run])
    assert pipeline.main(_args(tmp_path, "--reuse", "records", "--train-only")) == 0
    text = capsys.readouterr().out
    assert "== cost: 1 of 2 runs to train" in text
    recs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(recs) == 2
    trained = [p.name for p in (out / "checkpoints").iterdir() if p.is_dir()]
    assert trained == [recs[1]["config_hash"]]                                # only the missing run trained
    assert (out / "predictions" / f"{recs[1]['config_hash']}_full.npz").exists()
    assert not (out / "tables" / "reproduction.md").exists()                 # no notebooks, no report
