"""Speed and memory of FEMF at the quick and paper sizes, and its stage-2 step on MOSI-shaped data.

Usage::

    python benchmarks/bench_femf.py                  # CPU, default intra-op threads (a few minutes)
    python benchmarks/bench_femf.py --threads 1      # one thread (a busy, shared CPU)
    python benchmarks/bench_femf.py --device cuda    # on a GPU
    python benchmarks/bench_femf.py --quick-only     # skip the paper size

What is measured (each configuration in its own subprocess, so its peak memory is its own):

* ``parameters``; training throughput (forward + backward + Adam step) in each stage
  (``experts``: stage 1, eq. 10; ``full``: stage 2 with frozen experts, run without autograd by the
  quick preset's speed option ``expert_grad_to_inputs=False`` and with autograd through them by the
  paper preset, as the paper);
  inference throughput (``eval``, ``no_grad``, ``predictions_only`` as mser's ``predict`` runs it: no loss
  terms); peak memory (CPU: peak resident set size
  ``ru_maxrss`` and its growth after imports and data; CUDA: ``torch.cuda.max_memory_allocated``).
* FLOPs of one step, counted with ``torch.utils.flop_counter.FlopCounterMode`` (GEMMs and the
  attention kernels it knows), the achieved GFLOP/s, and the utilisation against an fp32 matmul
  peak measured in the same subprocess (best of several 2048 x 2048 ``torch.matmul``, before and
  after the work; the higher of the two is used, which matters on a shared, busy CPU).
* The stage-2 step on MOSI-shaped batches: 64 videos whose utterance counts are drawn from CMU-MOSI's
  93 real videos (9 to 63, mean 23.6), reference feature widths (text 1024 DeBERTa-large, audio 512
  wav2vec, vision 1024 MA-Net); and a whole "epoch" of the 93 videos in batches of 64 ordered as the
  trainer orders them.

Variants at the paper size, each in its own subprocess: ``paper`` (the paper preset: gradients pass
through the frozen experts to the encoders in stage 2), ``paper-nograd`` (the named speed option
``expert_grad_to_inputs=False``: frozen experts run without autograd; this row is that option's
measured gain) and ``paper-all63`` (every video 63 utterances long, so packing real lengths gains
nothing: the worst case, reported, not targeted). Every time is a median over ``--steps`` timed steps
after ``--warmup``, with the min and max beside it.

Nothing here is compared with a number from another machine. The side-by-side comparison with the public
reference code (timed on the same inputs in one process) is ``benchmarks/bench_reference.py``.

Shapes: ``quick`` = the built-in synthetic benchmark (sequence layout, text 32 / audio 16 / vision 24
features, real lengths 12..40), batch 32 (train) and 128 (inference); ``paper`` = the MOSI-shaped
position layout above, batch 64 videos. Writes ``benchmarks/results/femf_bench_<device>.json`` and
``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import rss_mib  # noqa: E402

# Utterances per video of the 93 CMU-MOSI videos (from CMUMOSI_features_raw_2way.pkl, SPEC 1b/1c).
MOSI_COUNTS = [9, 9, 10, 11, 12, 12, 12, 12, 13, 13, 13, 14, 14, 14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 16,
               16, 16, 17, 18, 18, 18, 18, 18, 18, 19, 19, 19, 20, 20, 21, 21, 21, 22, 22, 22, 22, 22, 22, 23,
               23, 24, 24, 24, 24, 24, 25, 25, 25, 25, 25, 26, 26, 27, 28, 29, 29, 29, 30, 30, 30, 30, 30, 30,
               30, 30, 31, 31, 31, 31, 31, 32, 32, 33, 33, 34, 34, 34, 35, 39, 39, 43, 44, 55, 63]
REF_DIMS = {"text": 1024, "audio": 512, "vision": 1024}

SHAPES = {
    "quick": dict(layout="sequence", dims={"text": 32, "audio": 16, "vision": 24}, L=40, min_len=12,
                  train_bs=32, infer_bs=128, name="synthetic"),
    "paper": dict(layout="position", dims=REF_DIMS, L=63, train_bs=64, infer_bs=64, name="mosi"),
}
# name -> (model preset, shape, model overrides, all videos of full length, stages timed, MOSI epoch)
VARIANTS = {
    "quick": ("quick", "quick", {}, False, ("experts", "full"), False),
    "paper": ("paper", "paper", {}, False, ("experts", "full"), True),
    "paper-nograd": ("paper", "paper", {"expert_grad_to_inputs": False}, False, ("full",), True),
    "paper-all63": ("paper", "paper", {}, True, ("full",), False),
}


def matmul_peak(device, n: int = 2048, reps: int = 6) -> float:
    """Best fp32 ``torch.matmul`` throughput (GFLOP/s) of ``n x n`` by ``n x n``."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def make_split(shape: dict, lengths, seed: int):
    """A split of random features with the given real lengths (padding at the end)."""
    import numpy as np

    from mser_lib.data.batch import SplitData

    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    n, L = len(lengths), int(max(lengths.max(), 1))
    real = np.arange(L)[None, :] < lengths[:, None]
    arrays = {}
    for m, d in shape["dims"].items():
        arrays[m] = np.where(real[..., None], rng.standard_normal((n, L, d)), 0).astype(np.float32)
        arrays[f"{m}_mask"] = real.copy()
    if shape["layout"] == "position":
        labels = np.where(real, rng.uniform(-3, 3, (n, L)), 0).astype(np.float32)
        label_mask = real.copy()
    else:
        labels = rng.uniform(-3, 3, n).astype(np.float32)
        label_mask = np.ones(n, dtype=bool)
    return SplitData(**arrays, labels=labels, label_mask=label_mask, ids=np.array([str(i) for i in range(n)]))


def _lengths(shape: dict, B: int, seed: int, full_length: bool = False):
    import numpy as np

    rng = np.random.default_rng(seed)
    if full_length:
        return np.full(B, shape["L"])
    if shape["layout"] == "position":
        return rng.choice(MOSI_COUNTS, size=B)
    return rng.integers(shape["min_len"], shape["L"] + 1, size=B)


def _timing(times: list[float]) -> dict:
    import numpy as np

    return {"median": round(float(np.median(times)), 4), "min": round(min(times), 4),
            "max": round(max(times), 4), "all": [round(x, 4) for x in times]}


def measure(variant: str, device_name: str, steps: int, warmup: int, threads: int | None,
            epoch: bool) -> dict:
    """Measure one variant (:data:`VARIANTS`) in this process."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mser_lib.data.batch import DatasetInfo, batch_order, collate
    from mser_lib.models.base import count_parameters, predictions_only
    from mser_lib.models.registry import build_model

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    preset, shape_name, overrides, full_length, stages, mosi_epoch = VARIANTS[variant]
    shape = SHAPES[shape_name]
    epoch = epoch and mosi_epoch
    info = DatasetInfo(name=shape["name"], layout=shape["layout"], task="regression", metric_family="mosi",
                       dims=dict(shape["dims"]), source={"standardize": True})   # inputs drawn standard normal
    peak = matmul_peak(device)
    base_rss = rss_mib()
    torch.manual_seed(0)
    model = build_model("femf", info, preset, **overrides).to(device)
    n_params = count_parameters(model)
    B = shape["train_bs"]
    lengths = _lengths(shape, B, 0, full_length)
    train_batch = collate(make_split(shape, lengths, 0), np.arange(B), shape["layout"]).to(device)
    positions = int(lengths.sum()) if shape["layout"] == "position" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step(batch, opt):
        out = model(batch)
        loss, _ = model.loss(out, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    res = {"variant": variant, "preset": preset, "overrides": overrides, "device": device_name,
           "threads": torch.get_num_threads(), "parameters": n_params, "matmul_peak_gflops": round(peak, 1),
           "train_batch": B,
           "stages": {}}
    if positions:
        res["train_batch_utterances"] = positions
    model.train()
    for stage in model.stages():
        model.set_stage(stage)
        if stage not in stages:
            continue
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for _ in range(warmup):
            step(train_batch, opt)
        sync()
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            step(train_batch, opt)
            sync()
            times.append(time.perf_counter() - t)
        with FlopCounterMode(display=False) as fc:
            step(train_batch, opt)
        flops = fc.get_total_flops()
        sec = float(np.median(times))
        row = {"step_s": round(sec, 4), "step_s_spread": _timing(times),
               "samples_per_s": round(B / sec, 2), "gflop_per_step": round(flops / 1e9, 2),
               "achieved_gflops": round(flops / sec / 1e9, 2),
               "utilisation_of_matmul_peak": round(flops / sec / 1e9 / peak, 3)}
        if positions:
            row["utterances_per_s"] = round(positions / sec, 1)
        res["stages"][stage] = row
    if device.type == "cuda":
        res["peak_mem_train_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

    # inference (stage "full")
    Bi = shape["infer_bs"]
    li = _lengths(shape, Bi, 1, full_length)
    infer_batch = collate(make_split(shape, li, 1), np.arange(Bi), shape["layout"]).to(device)
    model.eval()
    with torch.no_grad(), predictions_only(model):        # as mser's predict runs it
        for _ in range(warmup):
            model(infer_batch)
        sync()
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            model(infer_batch)
            sync()
            times.append(time.perf_counter() - t)
        with FlopCounterMode(display=False) as fc:
            model(infer_batch)
    sec = float(np.median(times))
    res["inference"] = {"batch": Bi, "batch_s": round(sec, 4), "batch_s_spread": _timing(times),
                        "samples_per_s": round(Bi / sec, 2),
                        "gflop_per_batch": round(fc.get_total_flops() / 1e9, 2),
                        "utilisation_of_matmul_peak": round(fc.get_total_flops() / sec / 1e9 / peak, 3)}

    if epoch and shape["layout"] == "position":
        # stage 2, an epoch of the 93 MOSI videos in batches of 64 as the trainer orders them
        model.train()
        model.set_stage("full")
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        split = make_split(shape, MOSI_COUNTS, 2)
        order = batch_order(np.asarray(MOSI_COUNTS), 64, shuffle=True, seed=0, bucket=True)
        batches = [collate(split, idx, "position").to(device) for idx in order]
        step(batches[0], opt)                                         # warm-up
        sync()
        times = []
        for b in batches:
            t = time.perf_counter()
            step(b, opt)
            sync()
            times.append(time.perf_counter() - t)
        res["mosi_epoch_stage2"] = {
            "videos": len(MOSI_COUNTS), "batches": [len(b) for b in batches],
            "utterances_per_batch": [int(b.label_mask.sum()) for b in batches],
            "batch_s": [round(x, 3) for x in times], "epoch_s": round(sum(times), 3)}

    # the peak again after the work: on a shared CPU the best of both is the fairer reference
    peak_after = matmul_peak(device)
    res["matmul_peak_before_after_gflops"] = [round(peak, 1), round(peak_after, 1)]
    if peak_after > peak:
        scale = peak / peak_after
        res["matmul_peak_gflops"] = round(peak_after, 1)
        for row in list(res["stages"].values()) + [res["inference"]]:
            row["utilisation_of_matmul_peak"] = round(row["utilisation_of_matmul_peak"] * scale, 3)
    if device.type == "cuda":
        res["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["peak_rss_mib"] = round(peak_rss, 1)
        res["peak_rss_growth_mib"] = round(peak_rss - base_rss, 1)
    return res


def _markdown(res: dict) -> str:
    lines = ["# FEMF benchmark", "",
             f"Device: {res['device']} ({res['machine']}, {res['cpu_count']} cores), torch {res['torch']}, "
             f"load average at start {res['load_avg']} (a loaded, shared machine makes every time longer; "
             "compare rows of one file only). Each variant ran in its own process; the matmul peak was "
             "measured in the same process (before and after the work, the higher kept). Times are medians "
             f"over {res['steps']} timed steps after {res['warmup']} warm-up (min-max in brackets). No number "
             "from another machine is compared with these.", "",
             "| variant | parameters | threads | stage | step s (min-max) | train samples/s (batch) "
             "| GFLOP/step | achieved GFLOP/s | % of matmul peak | matmul peak GFLOP/s |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["runs"]:
        if "error" in r:
            lines.append(f"| {r['variant']} | error: {r['error']} | | | | | | | | |")
            continue
        for stage, s in r["stages"].items():
            extra = f", {s['utterances_per_s']} utt/s" if "utterances_per_s" in s else ""
            sp = s["step_s_spread"]
            lines.append(f"| {r['variant']} | {r['parameters']:,} | {r['threads']} | {stage} | "
                         f"{sp['median']} ({sp['min']}-{sp['max']}) | "
                         f"{s['samples_per_s']} ({r['train_batch']}{extra}) | {s['gflop_per_step']} | "
                         f"{s['achieved_gflops']} | {s['utilisation_of_matmul_peak']:.1%} | "
                         f"{r['matmul_peak_gflops']} |")
    lines += ["", "| variant | inference s/batch (min-max) | samples/s (batch) | % of matmul peak | peak memory |",
              "|---|---:|---:|---:|---|"]
    for r in res["runs"]:
        if "error" in r:
            continue
        inf = r["inference"]
        sp = inf["batch_s_spread"]
        mem = (f"{r['peak_mem_mib']} MiB allocated" if "peak_mem_mib" in r else
               f"{r['peak_rss_mib']} MiB RSS (+{r['peak_rss_growth_mib']} MiB after imports and data)")
        lines.append(f"| {r['variant']} | {sp['median']} ({sp['min']}-{sp['max']}) | "
                     f"{inf['samples_per_s']} ({inf['batch']}) | {inf['utilisation_of_matmul_peak']:.1%} | {mem} |")
    epochs = [(r["variant"], r["mosi_epoch_stage2"]) for r in res["runs"] if r.get("mosi_epoch_stage2")]
    if epochs:
        lines += ["", "## A stage-2 epoch of the 93 MOSI-shaped videos (reference feature widths, batches of 64)", "",
                  "| variant | batches (videos) | utterances per batch | s per batch | epoch s |",
                  "|---|---|---|---|---:|"]
        for name, e in epochs:
            lines.append(f"| {name} | {e['batches']} | {e['utterances_per_batch']} | {e['batch_s']} | "
                         f"{e['epoch_s']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement (median)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--quick-only", action="store_true")
    ap.add_argument("--variants", nargs="*", default=None, choices=list(VARIANTS),
                    help="which variants to run (default: all; --quick-only: quick)")
    ap.add_argument("--no-epoch", action="store_true", help="skip the MOSI epoch measurement")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._child:
        res = measure(args._child, args.device, args.steps, args.warmup, args.threads, not args.no_epoch)
        print("RESULT " + json.dumps(res))
        return 0

    import torch

    variants = args.variants or (["quick"] if args.quick_only else list(VARIANTS))
    runs = []
    for variant in variants:
        cmd = [sys.executable, __file__, "--_child", variant, "--device", args.device,
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        cmd += ["--no-epoch"] if args.no_epoch else []
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            runs.append({"variant": variant, "error": (proc.stderr or proc.stdout)[-500:]})
        else:
            runs.append(json.loads(line[-1][7:]))
        print(f"{variant}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    res = {"device": args.device, "machine": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "torch": torch.__version__,
           "load_avg": [round(x, 2) for x in os.getloadavg()], "steps": args.steps, "warmup": args.warmup,
           "runs": runs,
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = args.device.split(":")[0] + (f"_t{args.threads}" if args.threads else "")
    (out / f"femf_bench_{tag}.json").write_text(json.dumps(res, indent=2))
    (out / f"femf_bench_{tag}.md").write_text(_markdown(res))
    print(_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
