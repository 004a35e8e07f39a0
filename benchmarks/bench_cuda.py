"""FEMF and Atsuko on a GPU at their paper presets: epoch time (fp32 and bf16 autocast), inference, memory.

Usage::

    python benchmarks/bench_cuda.py                          # on the GPU (a few minutes on an H100)
    python benchmarks/bench_cuda.py --workloads femf/mosi-utt --out DIR
    python benchmarks/bench_cuda.py --device cpu --tiny      # check the script itself, no GPU (seconds)
    python benchmarks/bench_cuda.py --compare BEFORE.json AFTER.json

Whether bf16 costs accuracy is a question for several seeds: ``bf16_seeds.py``.

Each workload runs with the model's ``paper`` preset and the trainer settings of
the ``paper`` profile (``mser_lib/configs/paper.yaml``: batch size, gradient accumulation, clipping), on

* ``mosi-utt`` (FEMF): the 93 CMU-MOSI videos as utterance sequences (position layout), utterance counts
  of the real videos (9 to 63), the reference code's feature widths (text 1024, audio 512, vision 1024),
  random features;
* ``mosi-aligned50`` (Atsuko): 1284 random sequences (MOSI's training-split size) of the MMSA aligned_50
  shapes (text 768, audio 5, vision 20, real lengths 20..50);
* ``synthetic-paper`` (both): the training split of the built-in benchmark at its ``paper`` size
  (1284 sequences, text 64 / audio 32 / vision 32, lengths 20..50).

An epoch is what the trainer does for one epoch without the validation pass: the same batches
(``iterate_batches``, bucketed, shuffled), collation and host-to-device copy, autocast, the model's loss,
backward, clipping and Adam. One warm-up epoch is run first and not counted; the figure is the median
of ``--epochs`` timed epochs, each bracketed by ``torch.cuda.synchronize()``. Inference is the whole split
in eval mode under ``no_grad`` at the profile's evaluation batch size (median of ``--epochs`` passes
after one warm-up). Peak memory is ``torch.cuda.max_memory_allocated`` since a reset right before the
timed training epochs (``train``) and before the inference passes (``infer``). Seeding and deterministic
kernels are as in the trainer (``set_seed(0, deterministic=True)``); fp32 runs with torch's default
matmul precision (recorded in the output).

Writes ``bench_cuda.json`` / ``.md`` into ``--out`` (default ``benchmarks/results``), updated after each
workload.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_femf import MOSI_COUNTS, REF_DIMS, make_split  # noqa: E402

from mser_lib.data.batch import DatasetInfo, MultimodalDataset, iterate_batches  # noqa: E402
from mser_lib.experiments import get_dataset, resolve_run  # noqa: E402
from mser_lib.models import build_model, count_parameters  # noqa: E402
from mser_lib.train import TrainConfig, set_seed  # noqa: E402
from mser_lib.train.trainer import _autocast, _make_optimizer, _read_back, _step, compute_loss  # noqa: E402

ALIGNED50 = {"text": 768, "audio": 5, "vision": 20}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device):
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None


def _random_sequences(dims, n, min_len, max_len, seed):
    rng = np.random.default_rng(seed)
    shape = {"layout": "sequence", "dims": dims}
    return make_split(shape, rng.integers(min_len, max_len + 1, size=n), seed)


def workloads(tiny: bool):
    """(model, workload name, description, DatasetInfo, train split)."""
    counts = MOSI_COUNTS[::12] if tiny else MOSI_COUNTS
    n_seq = 48 if tiny else 1284
    utt = make_split({"layout": "position", "dims": REF_DIMS}, np.asarray(counts), 2)
    utt_info = DatasetInfo("mosi", "position", "regression", "mosi", dict(REF_DIMS))
    al = _random_sequences(ALIGNED50, n_seq, 20, 50, 3)
    al_info = DatasetInfo("mosi", "sequence", "regression", "mosi", dict(ALIGNED50))
    syn = get_dataset("synthetic", profile="smoke" if tiny else "paper")
    syn_train = syn.train.subset(np.arange(n_seq)) if tiny else syn.train
    return [
        ("femf", "mosi-utt", f"{len(counts)} MOSI videos, {int(np.sum(counts))} utterances, "
         "t1024/a512/v1024 (position layout)", utt_info, utt),
        ("femf", "synthetic-paper", f"{len(syn_train)} synthetic paper-size sequences, "
         f"t{syn.info.dims['text']}/a{syn.info.dims['audio']}/v{syn.info.dims['vision']}", syn.info, syn_train),
        ("atsuko", "mosi-aligned50", f"{n_seq} random MOSI aligned_50 sequences, t768/a5/v20, L 20..50",
         al_info, al),
        ("atsuko", "synthetic-paper", f"{len(syn_train)} synthetic paper-size sequences, "
         f"t{syn.info.dims['text']}/a{syn.info.dims['audio']}/v{syn.info.dims['vision']}", syn.info, syn_train),
    ]


def _trainer_cfg(model: str, device) -> TrainConfig:
    tr = dict(resolve_run(model, "synthetic", 0, "paper")["train"])
    tr.update(device=str(device), progress=False)
    return TrainConfig(**tr)


def train_epoch(model, split, info, cfg: TrainConfig, params, opt, device, amp: bool, epoch: int,
                max_batches: int | None = None) -> float:
    """One training epoch exactly as :func:`mser_lib.train.trainer.fit` runs it, without validation;
    with ``max_batches``, only its first batches (and no end-of-epoch optimiser step)."""
    model.train()
    opt.zero_grad(set_to_none=True)
    n, total = 0, 0.0
    for i, batch in enumerate(iterate_batches(split, info.layout, cfg.batch_size, shuffle=True,
                                              seed=epoch, bucket=cfg.bucket, device=device)):
        if max_batches is not None and i == max_batches:
            return total / max(n, 1)
        with _autocast(device, amp):
            out = model(batch)
            loss, parts = compute_loss(model, out, batch, info.task, cfg.loss_kind)
        values = _read_back(loss, parts)      # as the trainer: the loss parts read back once per batch
        if not math.isfinite(values["total"]):
            raise FloatingPointError(f"non-finite loss at epoch {epoch}, batch {i}")
        (loss / cfg.grad_accum).backward()
        if (i + 1) % cfg.grad_accum == 0:
            _step(opt, params, cfg)
        total += values["total"]
        n += 1
    if n % cfg.grad_accum:
        _step(opt, params, cfg)
    return total / max(n, 1)


def bench_workload(model_name, wname, desc, info, split, device, amp, reps, overrides=None) -> dict:
    set_seed(0, True)
    cfg = _trainer_cfg(model_name, device)
    model = build_model(model_name, info, "paper", **(overrides or {}))
    if hasattr(model, "prepare"):
        model.prepare(MultimodalDataset(info, split, split, split))
    model.to(device)
    res = {"model": model_name, "workload": wname, "data": desc, "precision": "bf16" if amp else "fp32",
           "parameters": count_parameters(model), "samples": len(split), "batch_size": cfg.batch_size,
           "grad_accum": cfg.grad_accum, "overrides": dict(overrides or {}), "stages": {}}
    if model_name == "femf":
        res["femf_flags"] = {k: getattr(model.config, k) for k in ("freeze_experts", "expert_grad_to_inputs")}
    stages = list(model.stages()) if hasattr(model, "stages") else [None]
    for stage in stages:
        if stage is not None:
            model.set_stage(stage)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = _make_optimizer(params, cfg)
        train_epoch(model, split, info, cfg, params, opt, device, amp, epoch=0)     # warm-up, not counted
        _sync(device)
        _peak_reset(device)
        losses, times = [], []
        for r in range(reps):
            _sync(device)
            t = time.perf_counter()
            losses.append(train_epoch(model, split, info, cfg, params, opt, device, amp, r + 1))
            _sync(device)
            times.append(time.perf_counter() - t)
        sec, all_s = float(np.median(times)), [round(x, 4) for x in times]
        res["stages"][stage or "main"] = {
            "epoch_s": round(sec, 4), "epoch_s_all": all_s, "batches": math.ceil(len(split) / cfg.batch_size),
            "samples_per_s": round(len(split) / sec, 1), "train_loss_last": round(losses[-1], 5),
            "peak_mem_train_mib": _peak_mib(device)}
    model.eval()

    times = []
    with torch.no_grad():
        for r in range(reps + 1):                      # pass 0 is the warm-up
            if r == 1:
                _peak_reset(device)
            _sync(device)
            t = time.perf_counter()
            for b in iterate_batches(split, info.layout, cfg.eval_batch_size, device=device):
                with _autocast(device, amp):
                    out = model(b)
                out.prediction.float().cpu()           # as predict() does
            _sync(device)
            times.append(time.perf_counter() - t)
    sec, all_s = float(np.median(times[1:])), [round(x, 4) for x in times[1:]]
    res["inference"] = {"pass_s": round(sec, 4), "pass_s_all": all_s, "eval_batch_size": cfg.eval_batch_size,
                        "samples_per_s": round(len(split) / sec, 1), "peak_mem_infer_mib": _peak_mib(device)}
    return res


def environment(device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "fp32_matmul_precision": torch.get_float32_matmul_precision(),
           "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=torch.cuda.get_device_name(device), gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   multiprocessors=p.multi_processor_count, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def _env_line(env) -> str:
    if "gpu" in env:
        return (f"GPU: **{env['gpu']}** ({env['gpu_memory_gib']} GiB, {env['multiprocessors']} SMs, driver "
                f"{env.get('driver', '?')}), torch {env['torch']} (CUDA {env['cuda']}, cuDNN {env['cudnn']}), "
                f"Python {env['python']}, {env['date']}. fp32 = torch defaults (float32 matmul precision "
                f"'{env['fp32_matmul_precision']}', TF32 matmul {env['cuda_matmul_allow_tf32']}, "
                f"cuDNN TF32 {env['cudnn_allow_tf32']}); bf16 = the trainer's `amp=True` (bfloat16 autocast).")
    return f"Device: {env['device']} ({env.get('cpu')}), torch {env['torch']}, {env['date']} (a dry run, not a GPU)."


def bench_markdown(res: dict) -> str:
    lines = ["# FEMF and Atsuko on CUDA: epoch time, inference, memory", "", _env_line(res["env"]), "",
             "Paper presets, the paper profile's trainer settings; an epoch = the trainer's training loop over "
             "the split (batching, host-to-device copy, forward, loss, backward, clipping, Adam), without "
             "validation; median of the timed epochs after one warm-up epoch, each bracketed by "
             "`torch.cuda.synchronize()`. Peak memory = `torch.cuda.max_memory_allocated` over the timed "
             "epochs / the inference passes. Written by `benchmarks/bench_cuda.py`.", "",
             "Workloads: " + "; ".join(f"`{k}` = {v}" for k, v in res.get("workloads", {}).items()) + ".", "",
             "| model | workload | stage | precision | params | samples (batch x accum) | epoch s (all) | "
             "samples/s | peak alloc. train MiB |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in res["runs"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['workload']} | | {r['precision']} | error: {r['error'][:200]} "
                         "| | | | |")
            continue
        wl = r["workload"] + (f" ({', '.join(f'{k}={v}' for k, v in r['overrides'].items())})"
                              if r["overrides"] else "")
        for st, s in r["stages"].items():
            lines.append(f"| {r['model']} | {wl} | {st} | {r['precision']} | {r['parameters']:,} | "
                         f"{r['samples']} ({r['batch_size']} x {r['grad_accum']}) | {s['epoch_s']} "
                         f"({', '.join(str(x) for x in s['epoch_s_all'])}) | {s['samples_per_s']} | "
                         f"{s['peak_mem_train_mib']} |")
    lines += ["", "| model | workload | precision | inference pass s (eval batch) | samples/s | "
              "peak alloc. infer MiB |", "|---|---|---|---:|---:|---:|"]
    for r in res["runs"]:
        if "error" in r:
            continue
        i = r["inference"]
        wl = r["workload"] + (" (" + ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) + ")"
                              if r["overrides"] else "")
        lines.append(f"| {r['model']} | {wl} | {r['precision']} | {i['pass_s']} ({i['eval_batch_size']}) | "
                     f"{i['samples_per_s']} | {i['peak_mem_infer_mib']} |")
    lines += ["", "## Target: a MOSI-sized paper-profile FEMF epoch under 1 s", ""]
    for r in res["runs"]:
        if r.get("model") == "femf" and "stages" in r:
            for st, s in r["stages"].items():
                ok = "met" if s["epoch_s"] < 1.0 else "NOT met"
                ov = f", {r['overrides']}" if r["overrides"] else ""
                lines.append(f"- {r['workload']}{ov}, stage `{st}`, {r['precision']}: {s['epoch_s']} s per epoch "
                             f"-> {ok}")
    return "\n".join(lines) + "\n"


def compare_markdown(before: dict, after: dict, names=("before", "after")) -> str:
    """A before/after table of two part-1 results (same workloads, stages, precisions and overrides)."""
    def index(res):
        out = {}
        for r in res["runs"]:
            if "stages" not in r:
                continue
            ov = ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
            key = (r["model"], r["workload"] + (f" ({ov})" if ov else ""), r["precision"])
            for st, v in r["stages"].items():
                out[key + (st,)] = v["epoch_s"]
            out[key + ("inference",)] = r["inference"]["pass_s"]
        return out
    a, b = index(before), index(after)
    lines = [f"| model | workload | precision | stage | {names[0]} s | {names[1]} s | {names[0]} / {names[1]} |",
             "|---|---|---|---|---:|---:|---:|"]
    for k in a:
        if k in b:
            lines.append(f"| {' | '.join(k)} | {a[k]} | {b[k]} | {a[k] / b[k]:.2f}x |")
    gone = [" / ".join(k) for k in a if k not in b]
    if gone:
        lines += ["", f"Measured only {names[0]}: " + "; ".join(gone) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (and inference passes) per measurement")
    ap.add_argument("--workloads", nargs="*", default=None,
                    help="the workloads as model/workload (default all), e.g. femf/synthetic-paper")
    ap.add_argument("--tiny", action="store_true", help="tiny data: checks the script, measures nothing")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"),
                    help="print a before/after table of two bench_cuda.json files; measures nothing")
    args = ap.parse_args(argv)
    if args.compare:
        res = [json.loads(Path(f).read_text()) for f in args.compare]
        print(compare_markdown(*res, names=tuple(Path(f).stem for f in args.compare)), end="")
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing measured", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment(device)
    print(json.dumps(env), flush=True)
    start = time.perf_counter()

    res = {"env": env, "tiny": args.tiny, "timed_epochs": args.epochs, "runs": []}
    jobs = []
    wls = workloads(args.tiny)
    res["workloads"] = {f"{m} {w}": d for m, w, d, _, _ in wls}
    for model, wname, desc, info, split in wls:
        if args.workloads and f"{model}/{wname}" not in args.workloads:
            continue
        for amp in (False, True):
            jobs.append((model, wname, desc, info, split, amp, None))
        if model == "femf" and wname == "mosi-utt":   # the speed option: frozen experts without autograd
            for amp in (False, True):
                jobs.append((model, wname, desc, info, split, amp, {"expert_grad_to_inputs": False}))
    for model, wname, desc, info, split, amp, ov in jobs:
        t = time.perf_counter()
        try:
            r = bench_workload(model, wname, desc, info, split, device, amp, args.epochs, ov)
        except Exception as exc:  # noqa: BLE001 - record and go on with the next workload
            r = {"model": model, "workload": wname, "precision": "bf16" if amp else "fp32", "error": repr(exc)}
        r["wall_s"] = round(time.perf_counter() - t, 1)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        res["runs"].append(r)
        print(json.dumps(r), flush=True)
        (out / "bench_cuda.json").write_text(json.dumps(res, indent=2) + "\n")
        (out / "bench_cuda.md").write_text(bench_markdown(res))
    res["wall_s"] = round(time.perf_counter() - start, 1)
    (out / "bench_cuda.json").write_text(json.dumps(res, indent=2) + "\n")
    print(bench_markdown(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
