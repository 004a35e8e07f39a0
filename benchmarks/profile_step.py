"""Where does one paper-size training step go? ``torch.profiler`` over a few steps of FEMF and Atsuko.

    python benchmarks/profile_step.py --device cuda [--steps 6] [--out DIR]
    python benchmarks/profile_step.py --device cpu --tiny        # checks the script (seconds)

Uses the workloads of :mod:`bench_cuda` (paper presets, the paper profile's trainer settings, the
trainer's own batching, autocast, loss, backward, clipping and Adam) and, after two warm-up steps,
profiles ``--steps`` steps of each stage. Per step it reports the wall time, the number of operator
calls, the shares of self time by kind of operator (matmul, attention, copies, dropout RNG, other), on
CUDA also the time the device spent in kernels, the number of kernel launches and the calls that make
the host wait for the device (``cudaStreamSynchronize``, device-to-host ``cudaMemcpy``); then the
operators with the most self time on the host and on the device. A step whose kernels fill a small share of its
wall time is bound by the host (launches, Python, synchronisations), not by arithmetic.

Writes ``profile_step_<device>.md`` into ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cuda import _trainer_cfg, environment, train_epoch, workloads  # noqa: E402

from mser_lib.data.batch import MultimodalDataset  # noqa: E402
from mser_lib.models import build_model  # noqa: E402
from mser_lib.train import set_seed  # noqa: E402
from mser_lib.train.trainer import _make_optimizer  # noqa: E402

SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpyAsync", "cudaMemcpy")


#: Operator kinds for :func:`time_by_kind` (aten names; anything else is "other").
KINDS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
               "aten::convolution_backward", "aten::cudnn_convolution"),
    "attention": ("_scaled_dot_product", "_flash_attention", "_efficient_attention", "_cudnn_attention"),
    "copies (cat, copy, fill, index)": ("aten::copy_", "aten::cat", "aten::stack", "aten::fill_", "aten::zero_",
                                        "aten::index_select", "aten::index_add_", "aten::index_copy",
                                        "aten::scatter_add_", "aten::index_put_", "aten::_index_put_impl_"),
    "dropout RNG": ("aten::bernoulli_", "aten::native_dropout"),
}


def time_by_kind(ev, device) -> dict[str, float]:
    """Shares of the self time (device time on CUDA, CPU time otherwise) of the aten operators, by kind."""
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    tot = {k: 0.0 for k in (*KINDS, "other")}
    for e in ev:
        if not e.key.startswith("aten::"):
            continue
        kind = next((k for k, names in KINDS.items()
                     if e.key in names or (k == "attention" and any(n in e.key for n in names))), "other")
        tot[kind] += getattr(e, attr, 0) or 0
    total = sum(tot.values()) or 1.0
    return {k: v / total for k, v in tot.items()}


def profile_stage(model_name, wname, info, split, stage, device, amp, steps, top) -> str:
    set_seed(0, True)
    cfg = _trainer_cfg(model_name, device)
    model = build_model(model_name, info, "paper")
    if hasattr(model, "prepare"):
        model.prepare(MultimodalDataset(info, split, split, split))
    model.to(device).train()
    if stage is not None:
        model.set_stage(stage)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(params, cfg)
    train_epoch(model, split, info, cfg, params, opt, device, amp, epoch=1, max_batches=2)   # warm-up
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    with profile(activities=acts) as prof:
        train_epoch(model, split, info, cfg, params, opt, device, amp, epoch=1, max_batches=steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
    wall = (time.perf_counter() - t) / steps
    ev = prof.key_averages()
    n_ops = sum(e.count for e in ev if e.key.startswith("aten::")) / steps
    launches = sum(e.count for e in ev if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC",
                                                     "cuLaunchKernelEx")) / steps
    syncs = {k: sum(e.count for e in ev if e.key == k) / steps for k in SYNC_EVENTS}
    dev_us = sum(getattr(e, "self_device_time_total", 0) for e in ev if e.device_type.name == "CUDA") / steps
    head = (f"### {model_name} {wname}{' stage ' + stage if stage else ''} ({'bf16' if amp else 'fp32'})\n\n"
            f"- wall per step (profiled, so slower than unprofiled): {wall * 1e3:.1f} ms\n"
            f"- aten operator calls per step: {n_ops:.0f}\n")
    if device.type == "cuda":
        head += (f"- device kernel time per step: {dev_us / 1e3:.1f} ms ({100 * dev_us / 1e6 / wall:.0f} % of wall); "
                 f"kernel launches per step: {launches:.0f}\n"
                 f"- per step: " + ", ".join(f"{k} {v:.1f}" for k, v in syncs.items()) + "\n")
    shares = time_by_kind(ev, device)
    head += ("- self " + ("device" if device.type == "cuda" else "CPU") + " time by kind of operator: "
             + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()) + "\n\n")
    sort_host = "self_cpu_time_total"
    tables = "Top operators by self host time:\n\n```\n" + ev.table(sort_by=sort_host, row_limit=top,
                                                                    max_name_column_width=48) + "```\n\n"
    if device.type == "cuda":
        tables += "Top by self device time:\n\n```\n" + ev.table(sort_by="self_cuda_time_total", row_limit=top,
                                                                  max_name_column_width=48) + "```\n\n"
    return head + tables


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--amp", action="store_true", help="also profile under bf16 autocast")
    ap.add_argument("--only", nargs="*", default=["femf/synthetic-paper", "atsuko/synthetic-paper"])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU; default torch's)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment(device)
    parts = [f"# One training step, profiled ({env.get('gpu', env['device'])}, torch {env['torch']}, "
             f"{env['date']}, {torch.get_num_threads()} intra-op threads)\n\nWritten by `benchmarks/profile_step.py`; "
             f"{args.steps} profiled steps after 2 warm-up steps, paper presets and the paper profile's trainer "
             "settings.\n"]
    for model_name, wname, _desc, info, split in workloads(args.tiny):
        if f"{model_name}/{wname}" not in args.only:
            continue
        stages = ["experts", "full"] if model_name == "femf" else [None]
        for stage in stages:
            for amp in (False, True) if args.amp else (False,):
                text = profile_stage(model_name, wname, info, split, stage, device, amp, args.steps, args.top)
                print(text, flush=True)
                parts.append(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"profile_step_{device.type}" + (f"_t{args.threads}" if args.threads else "")
    (out / f"{name}.md").write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
