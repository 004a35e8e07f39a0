"""What each bit-identical cut in mser's FEMF buys, side by side in one process.

Two changes that leave every result bit for bit as it was (the built-in reproduce stays bit-identical, and
``tests/test_whole_model.py`` / ``tests/test_femf.py`` check each against the code it replaced):

* ``predictions_only`` (``mser_lib.models.base``): ``predict`` runs FEMF without the work only its losses need
  (the decoders, L_cyc's re-encoding, L_align, stage 2's eq. 10 heads). Timed: inference of 64 videos with every
  loss term computed (as before) against ``predictions_only``.
* the float32 dropout fast path (``mser_lib.models.base.dropout``): the mask is built and scaled in the noise's
  own buffer and multiplies once. Timed: the stage-2 and stage-1 training steps with dropout as written before
  (``x * (noise >= p) * (1 / (1 - p))``) against the fast path.

Paper-preset FEMF on ``bench_reference.py``'s inputs (64 MOSI-shaped videos, reference feature widths), the
trainer's optimiser; the two sides of each item alternate ``--reps`` times after two warm-up calls each, in one
process per thread count.

Usage::

    python benchmarks/cut_effects.py --threads 1 2      # writes benchmarks/results/cut_effects.{json,md}
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

# item: (what the "before" side runs, what the "after" side runs)
ITEMS = {"inference (64 videos)": ("every loss term computed", "predictions_only"),
         "stage-2 step (64 videos)": ("dropout as written", "float32 fast path"),
         "stage-1 step (64 videos)": ("dropout as written", "float32 fast path")}


def written_dropout(x, p: float, training: bool):
    """``mser_lib.models.base.dropout`` as it was written before the float32 fast path (the same draws)."""
    import torch

    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, device=x.device) >= p
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


def worker(threads: int, reps: int) -> dict:
    """One process: each item's two sides alternating, ``reps`` timed calls of each."""
    import bench_reference as br
    import torch

    import mser_lib.models.femf as femf
    import mser_lib.models.packing as packing
    from mser_lib.data.batch import collate
    from mser_lib.models.base import dropout

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ours = br.MserFEMF()
    batch = collate(br.femf_split(64, 0), np.arange(64), "position")

    def use(fn):                              # the dropout FEMF and its stacked experts call
        femf.dropout = packing._dropout = fn

    def full_inference():
        ours.model.set_stage("full")
        ours.model.eval()
        with torch.no_grad():
            ours.model(batch)

    def step(stage, fn):
        use(fn)
        try:
            ours.step(batch, stage)
        finally:
            use(dropout)

    # ours.infer runs under predictions_only, as mser's predict does (bench_reference.MserFEMF.infer)
    sides = {"inference (64 videos)": (full_inference, lambda: ours.infer(batch)),
             "stage-2 step (64 videos)": (lambda: step("full", written_dropout), lambda: step("full", dropout)),
             "stage-1 step (64 videos)": (lambda: step("experts", written_dropout),
                                          lambda: step("experts", dropout))}
    out = {}
    for item, (before, after) in sides.items():
        for fn in (before, after, before, after):
            fn()
        times = {"before": [], "after": []}
        for _ in range(reps):
            for side, fn in (("before", before), ("after", after)):
                t = time.perf_counter()
                fn()
                times[side].append(time.perf_counter() - t)
        out[item] = times
    return out


def verdict(res: dict) -> str:
    """One sentence by one rule: a cut changes an item's time when its timed calls' range and the other side's
    do not overlap."""
    moved, tied = [], []
    for t, items in res["runs"].items():
        for item, times in items.items():
            b, a = times["before"], times["after"]
            name = f"{item.split(' (')[0]} at {t} thread(s)"
            if max(a) < min(b):
                moved.append(f"{name} {100 * (1 - np.median(a) / np.median(b)):.1f} % faster")
            elif min(a) > max(b):
                moved.append(f"{name} {100 * (np.median(a) / np.median(b) - 1):.1f} % slower")
            else:
                tied.append(name)
    parts = []
    if moved:
        parts.append("Ranges that separate: " + "; ".join(moved) + ".")
    if tied:
        parts.append("Within the run-to-run spread (the ranges overlap): " + "; ".join(tied) + ".")
    return " ".join(parts)


def report(res: dict) -> str:
    lines = ["# Each bit-identical cut in mser's FEMF, side by side", "",
             f"Written by `benchmarks/cut_effects.py` at mser {res['revision']}; {res['machine']}; load average "
             f"{res['load']} when it started. Paper-preset FEMF, 64 MOSI-shaped videos (`bench_reference.py`'s "
             f"inputs); in one process per thread count the two sides of each item alternate, {res['reps']} timed "
             "calls each after two warm-up calls. Median and range (fastest-slowest call) in seconds.", "",
             "| threads | item | before | after | before (s) | after (s) | after / before | before: range | "
             "after: range |", "|---|---|---|---|---|---|---|---|---|"]
    for t, items in res["runs"].items():
        for item, times in items.items():
            b, a = times["before"], times["after"]
            what_b, what_a = ITEMS[item]
            lines.append(f"| {t} | {item} | {what_b} | {what_a} | {np.median(b):.3f} | {np.median(a):.3f} | "
                         f"{np.median(a) / np.median(b):.3f} | {min(b):.3f}-{max(b):.3f} | {min(a):.3f}-{max(a):.3f} |")
    return "\n".join(lines + ["", verdict(res)]) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker is not None:
        print(json.dumps(worker(a.worker, a.reps)))
        return 0
    res = {"revision": _git(), "machine": machine(), "load": round(os.getloadavg()[0], 2), "reps": a.reps, "runs": {}}
    for t in a.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(t)}
        run = run_worker(__file__, ["--worker", str(t), "--reps", str(a.reps)], env)
        if run is None:
            return 1
        res["runs"][str(t)] = run
    write_result("cut_effects", res, report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
