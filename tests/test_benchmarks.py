"""The GPU benchmark scripts run where the GPU checks need them, so they are checked here on the CPU with
their ``--tiny`` dry runs (a stale argument once broke a GPU script's training runs unnoticed), and
the bf16-versus-fp32 verdict is checked on hand-made differences."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_cuda  # noqa: E402
import bf16_seeds  # noqa: E402
import profile_step  # noqa: E402


@pytest.mark.slow
def test_bench_cuda_dry_run_times_each_workload_and_precision(tmp_path):
    assert bench_cuda.main(["--device", "cpu", "--tiny", "--epochs", "1",
                            "--workloads", "femf/mosi-utt", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "bench_cuda.json").read_text())
    assert [r["precision"] for r in res["runs"]] == ["fp32", "bf16", "fp32", "bf16"]
    assert all(set(r["stages"]) == {"experts", "full"} and r["inference"]["pass_s"] > 0 for r in res["runs"])
    table = bench_cuda.compare_markdown(res, res)
    assert table.count("| 1.00x |") == 12                       # 4 runs x (2 stages + inference)


@pytest.mark.slow
def test_profile_step_dry_run(tmp_path):
    assert profile_step.main(["--device", "cpu", "--tiny", "--steps", "1", "--top", "3",
                              "--only", "atsuko/synthetic-paper", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "profile_step_cpu.md").read_text()
    assert "### atsuko synthetic-paper" in text
    assert "aten operator calls per step" in text


@pytest.mark.slow
def test_bf16_seeds_dry_run(tmp_path):
    assert bf16_seeds.main(["--device", "cpu", "--tiny", "--seeds", "2", "--workers", "2", "--models", "atsuko",
                            "--atsuko-epochs", "1", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "bf16_seeds_cpu.json").read_text())
    assert len(res["runs"]) == 4
    assert not [r for r in res["runs"] if "error" in r]
    # autocast is off on the CPU: both precisions train identically, so no difference is found
    assert {r["verdict"] for r in res["summary"]} == {"no difference detected"}
    assert bf16_seeds.main(["--summarise", str(tmp_path / "bf16_seeds_cpu.json")]) == 0


def _runs(diffs, metric="mae"):
    runs = []
    for s, d in enumerate(diffs):
        base = {m: 0.5 for m in bf16_seeds.METRICS}
        runs.append({"model": "m", "seed": s, "precision": "fp32", "test": dict(base)})
        runs.append({"model": "m", "seed": s, "precision": "bf16", "test": {**base, metric: 0.5 + d}})
    return runs


def test_bf16_verdict_is_a_paired_t_test():
    row = next(r for r in bf16_seeds.summarise(_runs([0.1, 0.2, 0.3])) if r["metric"] == "mae")
    assert row["diff_mean"] == pytest.approx(0.2)
    assert row["diff_se"] == pytest.approx(0.1 / 3 ** 0.5)
    assert row["t"] == pytest.approx(2 * 3 ** 0.5)
    assert row["p"] == pytest.approx(0.0742, abs=1e-3)
    assert row["verdict"] == "no difference detected"             # t = 3.46 < t(0.975, 2) = 4.30
    worse = next(r for r in bf16_seeds.summarise(_runs([1.0, 1.1, 0.9])) if r["metric"] == "mae")
    assert worse["verdict"] == "bf16 worse"                        # higher MAE is worse
    better = next(r for r in bf16_seeds.summarise(_runs([1.0, 1.1, 0.9], "corr")) if r["metric"] == "corr")
    assert better["verdict"] == "bf16 better"                      # higher correlation is better
    one = bf16_seeds.summarise(_runs([0.3]))[0]
    assert one["verdict"] == "one seed: no verdict"


def test_reference_comparison_pairs_the_seeds_both_sides_finished_and_resumes(tmp_path):
    """benchmarks/reference_femf.py: runs appended by two processes (a torn last line ignored) become one report
    over the seeds both sides finished at the schedule asked; a recorded run is not repeated."""
    import reference_femf as rf

    runs = tmp_path / "reference_femf.runs.jsonl"
    sched = "150 + 150 epochs, batch 64"
    common = {"schedule": sched, "mser_revision": "abc", "reference_revision": "def", "machine": "m"}
    res = {"epoch": 3, "acc": 0.8, "f1": 0.8, "mae": 0.9, "corr": 0.6, "wall_time_s": 10.0}
    for side, seed, acc in (("reference", 0, 0.78), ("mser", 0, 0.80), ("mser", 1, 0.82),
                            ("reference", 2, 0.7)):
        row = {**res, "acc": acc} if side == "reference" else {**res, "acc": acc, "crossfit": {
            "acc2_non0": 0.79, "f1_non0": 0.79, "mae": 0.9, "corr": 0.6}}
        preset = {"preset": rf.PRESET} if side == "mser" else {}
        rf._append(runs, {"side": side, "seed": seed, **common, **preset, "result": row})
    rf._append(runs, {"side": "mser", "seed": 2, **common, "preset": rf.PRESET, "schedule": "4 + 4 epochs, batch 64",
                      "result": res})
    # an mser run recorded before runs named their preset trained the oldest preset, one with a known earlier
    # fingerprint that preset; one of another preset is stale
    rf._append(runs, {"side": "mser", "seed": 0, **common, "result": {**res, "acc": 0.70, "crossfit": {}}})
    rf._append(runs, {"side": "mser", "seed": 0, **common, "preset": rf.EARLIER_PRESETS[rf.BEFORE_CODES][1],
                      "result": {**res, "acc": 0.75, "crossfit": {}}})
    rf._append(runs, {"side": "mser", "seed": 0, **common, "preset": "0123456789ab", "result": {**res, "acc": 0.1}})
    with open(runs, "a") as fh:
        fh.write('{"side": "reference", "seed": 1, "sched')          # a run being written
    out = rf.collect(rf._runs(runs), sched)
    assert out["seeds"] == [0]                                    # seed 1: no reference; seed 2: other schedule
    assert [r["acc"] for r in out["reference"]] == [0.78]
    assert [r["acc"] for r in out["mser_reference_preset"]] == [0.80]      # today's preset, not the stale run
    assert out["earlier_presets"][rf.EARLIER]["0"]["acc"] == 0.70
    assert out["earlier_presets"][rf.BEFORE_CODES]["0"]["acc"] == 0.75
    text = rf.report(out)
    assert "| reference code | 78.00 |" in text
    assert "| mser `reference` preset | 80.00 |" in text
    assert f"| mser's earlier preset `{rf.EARLIER}` (abc; seeds 0) | 70.00 |" in text
    assert f"| mser's earlier preset `{rf.BEFORE_CODES}` (abc; seeds 0) | 75.00 |" in text
    assert "n/a (one seed)" in text
    assert rf.main(["--report", "--out", str(tmp_path / "reference_femf")]) == 0
    assert (tmp_path / "reference_femf.md").read_text() == text


def test_reference_comparison_presets_pin_what_their_runs_trained():
    """benchmarks/reference_femf.py: each earlier preset is today's reference preset with the fields it lacked
    pinned back, its fingerprint is that of the behaviour its runs trained, and every hypothesis extends a known
    preset."""
    import reference_femf as rf

    from mser_lib.data import DatasetInfo
    from mser_lib.models.femf import REFERENCE_BEHAVIOUR
    from mser_lib.models.registry import build_config

    pins, fp, _ = rf.EARLIER_PRESETS[rf.BEFORE_CODES]
    assert fp == rf.fingerprint({k: v for k, v in REFERENCE_BEHAVIOUR.items() if k not in pins})
    assert fp != rf.PRESET
    for side, (_, _, _, _, extends) in rf.HYPOTHESES.items():
        assert extends in (*rf.EARLIER_PRESETS, "mser"), side
    tiny = DatasetInfo("mosi-bclstm", "position", "regression", "mosi", {"text": 6, "audio": 5, "vision": 4})
    before = build_config("femf", tiny, "reference", **pins)
    assert (before.dis_module, before.pad_vision_to) == ("paper", None)
    assert build_config("femf", tiny, "reference").pad_vision_to == 1024


def test_reference_comparison_separates_the_chosen_epoch_from_the_whole_curve():
    """benchmarks/reference_femf.py: with curves on both sides, a gap at the protocol's epoch (the best of many
    noisy epochs) is set beside the gap averaged over stage 2, each read by the one seed-spread rule."""
    import reference_femf as rf

    rng = np.random.default_rng(0)
    out = {"seeds": [0, 1, 2], "reference": [], "mser_reference_preset": []}
    for _seed in range(3):
        for side, level, noise in (("reference", 0.76, 0.005), ("mser_reference_preset", 0.76, 0.02)):
            f1 = level + noise * rng.standard_normal(150)
            curve = {"f1": list(f1), "acc": list(f1 - 0.001), "mae": [0.95] * 150, "corr": [0.64] * 150}
            best = int(np.argmax(curve["f1"]))
            out[side].append({"epoch": 150 + best, **{k: curve[k][best] for k in rf.METRICS},
                              "stage2_curve": curve})
    text = "\n".join(rf.curve_section(out))
    # the noisier side wins the maximum by far more than either spread, while its mean stays level
    for k in ("acc", "f1"):
        at, along = (rf.seed_difference([m[k] for m in out["mser_reference_preset"]],
                                        [r[k] for r in out["reference"]], k),
                     rf.seed_difference([np.mean(m["stage2_curve"][k]) for m in out["mser_reference_preset"]],
                                        [np.mean(r["stage2_curve"][k]) for r in out["reference"]], k))
        assert at[3] == "yes"
        assert along[3] == "no"
        assert f"| {rf.METRIC_NAMES[k]} | {at[0]} (yes) | {along[0]} (no) |" in text
    assert "averaged over all stage-2 epochs (not beyond both spreads there)" in text
    assert "MAE" not in text.split("Beyond both seed spreads")[1]       # no gap, no mention


def test_thp_verdict_needs_the_process_ranges_to_separate():
    """benchmarks/thp_allocation.py: an item moves only when every process of one setting beats every process of
    the other; overlapping ranges are run-to-run spread."""
    import thp_allocation as thp

    def run(s):
        return {item: {"s": s, "faults": 10.0} for item in thp.ITEMS} | {"peak_rss_mib": 100.0}

    res = {"revision": "abc", "machine": "m", "thp_mode": "madvise", "load": 0.1, "rounds": 3,
           "runs": {"1": {"0": [run(2.0), run(2.1), run(1.9)], "1": [run(1.8), run(2.05), run(1.7)]}}}
    assert thp.verdict(res).startswith("On no item and thread count")
    res["runs"]["1"]["1"] = [run(1.5), run(1.6), run(1.55)]
    assert thp.verdict(res) == ("Ranges that separate: inference at 1 thread(s) faster; stage-2 step at 1 thread(s) "
                                "faster; stage-1 step at 1 thread(s) faster.")
    text = thp.report(res)
    assert "| 1 | inference | 2.000 | 1.550 | 0.78 | 1.900-2.100 | 1.500-1.600 | 10 | 10 |" in text
