"""Speed and memory of Atsuko and EMOE, and the cost of the path-graph eigenbasis (with / without cache).

Usage::

    python benchmarks/bench_atsuko.py                 # both models, both presets, CPU (a few minutes)
    python benchmarks/bench_atsuko.py --device cuda   # on a GPU
    python benchmarks/bench_atsuko.py --quick-only    # skip the paper preset

Each (model, preset) runs in its own subprocess so that its peak memory is its own: on the CPU the
peak resident set size (``ru_maxrss``) and its growth over the process after imports; on CUDA
``torch.cuda.max_memory_allocated``. Inputs are random tensors of the shapes each preset is meant for:
``quick`` the built-in synthetic benchmark (text 32, audio 16, vision 24 features, real lengths
12..40), ``paper`` CMU-MOSI aligned_50 (text 768, audio 5, vision 20, padded length 50, real lengths
20..50). Training throughput counts forward + backward + Adam step; inference is ``eval`` under
``no_grad``. Each time is a median over the timed steps (min and max beside it); FLOPs of one step are
counted with ``torch.utils.flop_counter.FlopCounterMode`` and set against an fp32 matmul peak measured in
the same subprocess, as ``bench_femf.py`` does. Writes ``benchmarks/results/atsuko_bench.json`` and ``.md``
(``atsuko_bench_t<N>`` for a CPU run at ``--threads N`` other than the default 1).
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

from bench_femf import _timing, matmul_peak  # noqa: E402
from memory import rss_mib  # noqa: E402

SHAPES = {
    "quick": dict(dims={"text": 32, "audio": 16, "vision": 24}, L=40, min_len=12, train_bs=32, infer_bs=128),
    "paper": dict(dims={"text": 768, "audio": 5, "vision": 20}, L=50, min_len=20, train_bs=16, infer_bs=64),
}


def _batch(shape: dict, B: int, seed: int, device):
    import numpy as np

    from mser_lib.data.batch import SplitData, collate

    rng = np.random.default_rng(seed)
    L = shape["L"]
    lengths = rng.integers(shape["min_len"], L + 1, size=B)
    real = np.arange(L)[None, :] < lengths[:, None]
    arrays = {}
    for m, d in shape["dims"].items():
        arrays[m] = np.where(real[..., None], rng.standard_normal((B, L, d)), 0).astype(np.float32)
        arrays[f"{m}_mask"] = real.copy()
    split = SplitData(**arrays, labels=rng.uniform(-3, 3, B).astype(np.float32),
                      label_mask=np.ones(B, dtype=bool), ids=np.array([str(i) for i in range(B)]))
    return split, collate(split, np.arange(B), "sequence").to(device)


def run_one(model_name: str, preset: str, device_name: str, steps: int, warmup: int) -> dict:
    """Measure one (model, preset) in this process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mser_lib.data.batch import DatasetInfo, MultimodalDataset
    from mser_lib.models.base import count_parameters, task_loss
    from mser_lib.models.registry import build_model

    device = torch.device(device_name)
    shape = SHAPES[preset]
    info = DatasetInfo(name="mosi" if preset == "paper" else "synthetic", layout="sequence",
                       task="regression", metric_family="mosi", dims=dict(shape["dims"]))
    peak = matmul_peak(device)
    base_rss = rss_mib()
    torch.manual_seed(0)
    model = build_model(model_name, info, preset)
    split, train_batch = _batch(shape, shape["train_bs"], 0, device)
    if hasattr(model, "prepare"):
        model.prepare(MultimodalDataset(info, split, split, split))
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def train_step():
        out = model(train_batch)
        loss = task_loss(out.prediction, train_batch, "regression") + sum(out.aux_losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(fn) -> list[float]:
        times = []
        for _ in range(steps):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
        return times

    model.train()
    for _ in range(warmup):
        train_step()
    train_t = _timing(timed(train_step))
    train_peak = (torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None
    with FlopCounterMode(display=False) as fc:
        train_step()
    train_flops = fc.get_total_flops()

    _, infer_batch = _batch(shape, shape["infer_bs"], 1, device)
    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            model(infer_batch)
        infer_t = _timing(timed(lambda: model(infer_batch)))
        with FlopCounterMode(display=False) as fc:
            model(infer_batch)
        infer_flops = fc.get_total_flops()
    # the peak again after the work: on a shared CPU the higher of the two is the fairer reference
    peak = max(peak, matmul_peak(device))
    train_s, infer_s = train_t["median"], infer_t["median"]
    out = {
        "model": model_name, "preset": preset, "device": device_name,
        "parameters": count_parameters(model), "matmul_peak_gflops": round(peak, 1),
        "train_batch": shape["train_bs"], "train_step_ms": round(train_s * 1e3, 2), "train_step_s": train_t,
        "train_samples_per_s": round(shape["train_bs"] / train_s, 1),
        "train_gflop_per_step": round(train_flops / 1e9, 3),
        "train_utilisation_of_matmul_peak": round(train_flops / train_s / 1e9 / peak, 3),
        "infer_batch": shape["infer_bs"], "infer_batch_ms": round(infer_s * 1e3, 2), "infer_batch_s": infer_t,
        "infer_samples_per_s": round(shape["infer_bs"] / infer_s, 1),
        "infer_gflop_per_batch": round(infer_flops / 1e9, 3),
        "infer_utilisation_of_matmul_peak": round(infer_flops / infer_s / 1e9 / peak, 3),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        out["peak_mem_train_mib"] = round(train_peak, 1)
        out["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["peak_rss_mib"] = round(peak, 1)
        out["peak_rss_growth_mib"] = round(peak - base_rss, 1)
    return out


def eigenbasis_cost(device_name: str, repeats: int = 20) -> list[dict]:
    """Time the eq. 1 eigenbasis (eigh, float64) and a band decomposition, cold versus cached."""
    import torch

    from mser_lib.spectral import graph as G

    device = torch.device(device_name)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for T in (20, 50, 375, 500):
        G.basis_cache_clear()
        t = time.perf_counter()
        G.path_graph_basis(T, torch.float32, device, cache=True)      # cold: eigh + cast + copy
        sync()
        cold = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(repeats):
            G.path_graph_basis(T, torch.float32, device, cache=True)
        sync()
        warm = (time.perf_counter() - t) / repeats
        t = time.perf_counter()
        for _ in range(max(2, repeats // 4)):
            G.path_graph_basis(T, torch.float32, device, cache=False)
        sync()
        nocache = (time.perf_counter() - t) / max(2, repeats // 4)
        # a whole band decomposition of a batch with 4 distinct real lengths near T
        B, D = 16, 64
        x = torch.randn(B, T, D, device=device)
        lens = torch.tensor([T, T - 1, T - 2, T - 3] * (B // 4), device=device).clamp_min(1)
        mask = torch.arange(T, device=device)[None, :] < lens[:, None]
        cuts = [0.1, 0.3]
        G.band_decompose(x, mask, cuts)
        sync()
        t = time.perf_counter()
        for _ in range(repeats):
            G.band_decompose(x, mask, cuts, cache=True)
        sync()
        dec_cached = (time.perf_counter() - t) / repeats
        t = time.perf_counter()
        for _ in range(max(2, repeats // 4)):
            G.band_decompose(x, mask, cuts, cache=False)
        sync()
        dec_nocache = (time.perf_counter() - t) / max(2, repeats // 4)
        rows.append({"T": T, "eigh_cold_ms": round(cold * 1e3, 3), "basis_cached_ms": round(warm * 1e3, 4),
                     "basis_uncached_ms": round(nocache * 1e3, 3),
                     "band_decompose_B16_D64_cached_ms": round(dec_cached * 1e3, 3),
                     "band_decompose_B16_D64_uncached_ms": round(dec_nocache * 1e3, 3)})
    return rows


def _markdown(res: dict, title: str = "Atsuko / EMOE benchmark", note: str = "") -> str:
    lines = [f"# {title}", "",
             f"Device: {res['device']} ({res['machine']}), torch {res['torch']}, "
             f"{res['threads']} intra-op threads, load average at start {res['load_avg']}.",
             "Shapes: quick = synthetic benchmark (L <= 40), paper = MOSI aligned_50 (768/5/20, L = 50).",
             "Times: median over the timed steps after the warm-up, min-max in brackets. FLOPs: "
             "`torch.utils.flop_counter.FlopCounterMode` over one step (GEMMs, convolutions and the attention "
             "kernels it knows); % of peak = achieved GFLOP/s over the best fp32 2048 x 2048 matmul measured "
             "in the same process before and after the work. No number from another machine is compared." + note,
             "", "| model | preset | parameters | train step s (min-max) | train samples/s (batch) | GFLOP/step "
             "| % of matmul peak | infer s/batch (min-max) | infer samples/s (batch) | % of matmul peak "
             "| matmul peak GFLOP/s | peak memory |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["models"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['preset']} | error: {r['error']} |" + " |" * 9)
            continue
        mem = (f"{r['peak_mem_mib']} MiB allocated" if "peak_mem_mib" in r else
               f"{r['peak_rss_mib']} MiB RSS (+{r['peak_rss_growth_mib']} over imports)")
        tr, inf = r["train_step_s"], r["infer_batch_s"]
        lines.append(f"| {r['model']} | {r['preset']} | {r['parameters']:,} | {tr['median']} ({tr['min']}-{tr['max']}) "
                     f"| {r['train_samples_per_s']} ({r['train_batch']}) | {r['train_gflop_per_step']} | "
                     f"{r['train_utilisation_of_matmul_peak']:.1%} | {inf['median']} ({inf['min']}-{inf['max']}) | "
                     f"{r['infer_samples_per_s']} ({r['infer_batch']}) | {r['infer_utilisation_of_matmul_peak']:.1%} | "
                     f"{r['matmul_peak_gflops']} | {mem} |")
    if res.get("eigenbasis"):
        lines += ["", "Eigenbasis of eq. 1 (normalised path Laplacian, float64 eigh) and a band decomposition "
                  "(B = 16, D = 64, 4 distinct lengths, K = 3):", "",
                  "| T | eigh, cold (ms) | basis, cached (ms) | basis, no cache (ms) | decompose, cached (ms) "
                  "| decompose, no cache (ms) |", "|---:|---:|---:|---:|---:|---:|"]
    for r in res.get("eigenbasis") or []:
        lines.append(f"| {r['T']} | {r['eigh_cold_ms']} | {r['basis_cached_ms']} | {r['basis_uncached_ms']} | "
                     f"{r['band_decompose_B16_D64_cached_ms']} | {r['band_decompose_B16_D64_uncached_ms']} |")
    lines += ["", f"Wall time of the benchmark: {res['wall_s']} s.", ""]
    return "\n".join(lines)


def main(argv=None, models: tuple[str, ...] = ("emoe", "atsuko"), name: str = "atsuko_bench",
         title: str = "Atsuko / EMOE benchmark", eigenbasis: bool = True, note: str = "") -> None:
    """Benchmark ``models`` (registry names) at both presets, each in its own subprocess; write
    ``benchmarks/results/<name>.{json,md}``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 quick, 5 paper)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default 1 on the CPU: small models on a shared machine "
                        "run several times slower oversubscribed; torch's default elsewhere)")
    p.add_argument("--quick-only", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--one", nargs=2, metavar=("MODEL", "PRESET"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads is None and a.device == "cpu":
        a.threads = 1
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.one:
        steps = a.steps or (10 if a.one[1] == "quick" else 5)
        print(json.dumps(run_one(a.one[0], a.one[1], a.device, steps, a.warmup)))
        return
    import torch

    start = time.perf_counter()
    res = {"device": a.device, "machine": platform.processor() or platform.machine(),
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "load_avg": [round(x, 2) for x in os.getloadavg()], "models": []}
    presets = ["quick"] if a.quick_only else ["quick", "paper"]
    for preset in presets:
        for model in models:
            cmd = [sys.executable, __file__, "--one", model, preset, "--device", a.device,
                   "--warmup", str(a.warmup)] + (["--steps", str(a.steps)] if a.steps else []) \
                + (["--threads", str(a.threads)] if a.threads else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                res["models"].append({"model": model, "preset": preset, "error": proc.stderr.strip()[-300:]})
            else:
                res["models"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(res["models"][-1]), flush=True)
    if eigenbasis:
        res["eigenbasis"] = eigenbasis_cost(a.device)
    res["wall_s"] = round(time.perf_counter() - start, 1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = name + (f"_t{res['threads']}" if a.device == "cpu" and res["threads"] != 1 else "")
    (out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / f"{name}.md").write_text(_markdown(res, title, note))
    print(_markdown(res, title, note))


if __name__ == "__main__":
    main()
