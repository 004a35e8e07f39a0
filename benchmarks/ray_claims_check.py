"""One whole claims grid under the Ray executor, checked against the committed records (issue 13, item 4).

Trains a grid of notebook 05's claims profile (default: Atsuko's sensitivity sweep on mosi-bclstm, every
point x 5 seeds, the smallest complete claims grid) with ``run_grid(executor="ray")`` on a local Ray into a
fresh results folder, then checks:

* every record Ray produced has the same results (:data:`mser_lib.experiments.RESULT_FIELDS`: metrics,
  chosen epochs, histories) as the committed record of its config hash in
  ``results/claims/mosi-bclstm/runs.jsonl``, which the inline executor trained;
* the driver-written ``runs.jsonl`` holds one whole line per run, nothing interleaved;
* a second call trains nothing (the cache) and returns the same records.

    python benchmarks/ray_claims_check.py [--grid atsuko_sensitivity] [--cpus 2]

Writes ``benchmarks/results/ray_claims_check.{md,json}``. Needs Ray (``pip install -e ".[ray]"``) and the
mosi-bclstm data (``../shared/data/mosi-bclstm``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mser_lib import executors, grids  # noqa: E402
from mser_lib.executors import run_grid  # noqa: E402
from mser_lib.experiments import (  # noqa: E402
    RESULT_FIELDS,
    get_dataset,
    profile_seeds,
    read_jsonl,
    runs_path,
    same_results,
)

P, D = "claims", "mosi-bclstm"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", default="atsuko_sensitivity", help="a grid function of mser_lib.grids")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mosi-bclstm"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args()
    import ray

    torch.set_num_threads(1)
    ds = get_dataset(D, a.data_dir, P)
    seeds = profile_seeds(P, D)
    specs = getattr(grids, a.grid)(P, seeds, ds.info)
    committed_path = runs_path(ROOT / "results", P, D)
    if not committed_path.exists():
        sys.exit(f"ray_claims_check: {committed_path} does not exist: this check compares Ray's records with the "
                 f"committed records of the {P} profile on {D}; train them first "
                 f"(make reproduce PROFILE={P} DATA={D} DATA_DIR=...)")
    committed = {r["config_hash"]: r for r in read_jsonl(committed_path)}
    common = dict(dataset=D, profile=P, data_dir=a.data_dir, device=None, force=False, reuse="local")
    submitted = []
    original = executors.ray_resources

    def counting(job, run=None):                       # called once per run the driver submits as a task
        submitted.append(job["model"])
        return original(job, run)

    executors.ray_resources = counting
    ray.init(num_cpus=a.cpus, include_dashboard=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            recs = run_grid(specs, results_dir=tmp, executor="ray", progress=True, **common)
            wall = time.perf_counter() - t0
            first_tasks = len(submitted)
            hashes = sorted({r["config_hash"] for r in recs})
            by_hash = {r["config_hash"]: r for r in recs}
            same = [h for h in hashes if h in committed and same_results(by_hash[h], committed[h])]
            differ = {h: ("no committed record" if h not in committed else
                          [k for k in RESULT_FIELDS if json.dumps(by_hash[h].get(k), sort_keys=True, default=str)
                           != json.dumps(committed[h].get(k), sort_keys=True, default=str)])
                      for h in hashes if h not in same}
            raw = runs_path(tmp, P, D).read_text()
            lines = raw.split("\n")
            parsed = [json.loads(x) for x in lines[:-1]]
            whole_lines = raw.endswith("\n") and lines[-1] == "" and sorted(r["config_hash"] for r in parsed) == hashes
            before = raw
            t1 = time.perf_counter()
            again = run_grid(specs, results_dir=tmp, executor="ray", progress=False, **common)
            cached_wall = time.perf_counter() - t1
            cache_ok = (len(submitted) == first_tasks and runs_path(tmp, P, D).read_text() == before
                        and all(same_results(x, y) for x, y in zip(recs, again)))
    finally:
        ray.shutdown()
        executors.ray_resources = original
    out = {"grid": a.grid, "profile": P, "dataset": D, "seeds": seeds, "specs": len(specs), "runs": len(hashes),
           "ray": ray.__version__, "cpus": a.cpus, "tasks": first_tasks, "wall_s": round(wall, 1),
           "same_results": len(same), "differ": differ, "runs_jsonl_whole_lines": whole_lines,
           "second_call_tasks": len(submitted) - first_tasks, "second_call_wall_s": round(cached_wall, 2),
           "cache_ok": cache_ok}
    dest = Path(a.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "ray_claims_check.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    verdict = "identical" if not differ else f"{len(differ)} differ"
    md = [f"# Claims grid `{a.grid}` under the Ray executor ({D}, profile {P})", "",
          f"`python benchmarks/ray_claims_check.py --grid {a.grid} --cpus {a.cpus}`: a local Ray {ray.__version__} "
          f"with {a.cpus} CPUs trained the grid's {len(hashes)} distinct runs ({len(specs)} grid entries, seeds "
          f"{seeds}) as {first_tasks} tasks into a fresh results folder in {wall:.0f} s.", "",
          "| check | result |", "|---|---|",
          f"| records with the same results as the committed (inline-executor) record of their hash | "
          f"{len(same)} of {len(hashes)} ({verdict}) |",
          f"| driver-written runs.jsonl: one whole line per run, nothing interleaved | {whole_lines} |",
          f"| second call: tasks submitted, runs.jsonl unchanged, same records | {len(submitted) - first_tasks}, "
          f"{cache_ok} ({cached_wall:.1f} s) |", ""]
    (dest / "ray_claims_check.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0 if not differ and whole_lines and cache_ok else 1


if __name__ == "__main__":
    sys.exit(main())
