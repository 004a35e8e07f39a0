"""Does backing PyTorch's large CPU allocations with transparent huge pages speed up mser's FEMF?

PyTorch's CPU allocator aligns allocations of 2 MiB and more to huge pages and asks the kernel for them when
``THP_MEM_ALLOC_ENABLE=1`` (read once per process, at its first allocation). A paper-size FEMF step allocates
large fresh activations every call, and ``torch.profiler`` shows their first touch (page faults) inside copies
and fills. This script measures what the setting changes, with mser's FEMF alone (paper preset, the trainer's
optimiser, the inputs of ``bench_reference.py``): processes with the setting off and on alternate, ``--rounds``
of each, and each process times inference, a stage-2 step and a stage-1 step (median of 3 after 2 warm-up
calls) and counts the minor page faults per call and the peak resident set.

Usage::

    python benchmarks/thp_allocation.py --threads 1 2      # writes benchmarks/results/thp_allocation.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_reference import _git, machine, run_worker, write_result  # noqa: E402

ITEMS = ("inference", "stage-2 step", "stage-1 step")


def worker(threads: int) -> dict:
    """One process: the three items timed with this process's ``THP_MEM_ALLOC_ENABLE``."""
    import resource

    import bench_reference as br
    import torch

    from mser_lib.data.batch import collate

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    split = br.femf_split(64, 0)
    ours = br.MserFEMF()
    batch = collate(split, np.arange(64), "position")
    fns = {"inference": lambda: ours.infer(batch), "stage-2 step": lambda: ours.step(batch, "full"),
           "stage-1 step": lambda: ours.step(batch, "experts")}
    out = {}
    for name, fn in fns.items():
        for _ in range(2):
            fn()
        times = []
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 3
        out[name] = {"s": float(np.median(times)), "faults": faults}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _thp_mode() -> str:
    try:
        return Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        return "unknown"


def report(res: dict) -> str:
    lines = ["# Transparent huge pages for PyTorch's CPU allocations: mser's FEMF with and without", "",
             f"Written by `benchmarks/thp_allocation.py` at mser {res['revision']}; {res['machine']}; kernel THP mode "
             f"`{res['thp_mode']}`; load average {res['load']} when it started. Paper-preset FEMF, 64 MOSI-shaped "
             f"videos (`bench_reference.py`'s inputs); processes with `THP_MEM_ALLOC_ENABLE` 0 and 1 alternate, "
             f"{res['rounds']} of each per thread count; each value is the median over the processes of each "
             "process's median of 3 timed calls. Range: the fastest and slowest process.", "",
             "| threads | item | off (s) | on (s) | on / off | off: range (s) | on: range (s) | page faults per call, "
             "off | on |", "|---|---|---|---|---|---|---|---|---|"]
    for t, runs in res["runs"].items():
        for item in ITEMS:
            off = [r[item]["s"] for r in runs["0"]]
            on = [r[item]["s"] for r in runs["1"]]
            f_off = np.median([r[item]["faults"] for r in runs["0"]])
            f_on = np.median([r[item]["faults"] for r in runs["1"]])
            lines.append(f"| {t} | {item} | {np.median(off):.3f} | {np.median(on):.3f} | "
                         f"{np.median(on) / np.median(off):.2f} | {min(off):.3f}-{max(off):.3f} | "
                         f"{min(on):.3f}-{max(on):.3f} | {f_off:.0f} | {f_on:.0f} |")
    lines += ["", "Peak resident set per process (MiB, median): " + "; ".join(
        f"{t} thread(s): off {np.median([r['peak_rss_mib'] for r in runs['0']]):.0f}, on "
        f"{np.median([r['peak_rss_mib'] for r in runs['1']]):.0f}" for t, runs in res["runs"].items()) + "."]
    lines += ["", verdict(res)]
    return "\n".join(lines) + "\n"


def verdict(res: dict) -> str:
    """One sentence by one rule: the setting changes an item's time when the two sides' process ranges do not
    overlap."""
    moved = []
    for t, runs in res["runs"].items():
        for item in ITEMS:
            off = [r[item]["s"] for r in runs["0"]]
            on = [r[item]["s"] for r in runs["1"]]
            if max(on) < min(off):
                moved.append(f"{item} at {t} thread(s) faster")
            elif min(on) > max(off):
                moved.append(f"{item} at {t} thread(s) slower")
    if not moved:
        return ("On no item and thread count do the two settings' process ranges separate: the setting changes no "
                "time beyond the run-to-run spread here.")
    return "Ranges that separate: " + "; ".join(moved) + "."


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker is not None:
        print(json.dumps(worker(a.worker)))
        return 0
    res = {"revision": _git(), "machine": machine(),
           "thp_mode": _thp_mode(), "load": round(os.getloadavg()[0], 2), "rounds": a.rounds, "runs": {}}
    for t in a.threads:
        runs = {"0": [], "1": []}
        for _ in range(a.rounds):
            for v in ("0", "1"):
                env = {**os.environ, "THP_MEM_ALLOC_ENABLE": v, "OMP_NUM_THREADS": str(t)}
                run = run_worker(__file__, ["--worker", str(t)], env)
                if run is None:
                    return 1
                runs[v].append(run)
                print(f"threads {t}, THP {v}: " + ", ".join(f"{k} {runs[v][-1][k]['s']:.3f} s" for k in ITEMS),
                      flush=True)
        res["runs"][str(t)] = runs
    write_result("thp_allocation", res, report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
