"""bf16 autocast against fp32 over several seeds: does mixed precision cost accuracy?

    python benchmarks/bf16_seeds.py --device cuda --seeds 4 [--workers N] [--out DIR]
    python benchmarks/bf16_seeds.py --device cpu --tiny       # checks the script (smoke profile, CPU)

Trains FEMF (both stages) and Atsuko on the built-in synthetic benchmark with the ``paper`` profile
(its size, the models' paper presets, the profile's trainer settings), once with ``amp=False`` (fp32)
and once with ``amp=True`` (bf16 autocast) for each seed, otherwise the same config, with the
schedule shortened to ``--femf-epochs`` per stage and ``--atsuko-epochs`` (the same for both
precisions). Selection is on the validation split as in every run; the test split is scored once.

The runs are independent processes sharing the device (``--workers`` at a time), so their wall times
say nothing about speed (``bench_cuda.py`` measures that); only the metrics are compared. For each
model and metric it reports the mean over seeds of each precision and the mean paired difference
(bf16 - fp32, same seed) with its standard error and a paired t-test (two-sided, 95 %, n - 1 degrees of
freedom); a difference the test does not separate from zero is "no difference detected at this number
of seeds", which is not a proof of equality.

``--summarise FILE.json`` rewrites the summary and the ``.md`` from a finished run's JSON (no training).

Writes ``bf16_seeds_<device>.json`` / ``.md`` into ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("mae", "corr", "acc2_has0", "acc2_non0", "f1_non0", "acc7")
LOWER_IS_BETTER = {"mae"}


def one_run(model: str, seed: int, amp: bool, device: str, profile: str, femf_epochs: int,
            atsuko_epochs: int) -> dict:
    import torch

    from mser_lib.experiments import run_one

    torch.set_num_threads(1)
    train = ({"stage_epochs": {"experts": femf_epochs, "full": femf_epochs}} if model == "femf"
             else {"epochs": atsuko_epochs})
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rec = run_one(model, "synthetic", seed=seed, profile=profile, train={**train, "amp": amp},
                      device=device, results_dir=tmp, progress=False)
    return {"model": model, "seed": seed, "precision": "bf16" if amp else "fp32", "profile": profile,
            "train_overrides": train, "epochs_run": rec["epochs_run"], "best_epoch": rec["best_epoch"],
            "degenerate": rec.get("degenerate"), "wall_s": round(time.perf_counter() - t, 1),
            "valid": {k: rec["valid"].get(k) for k in METRICS}, "test": {k: rec["test"].get(k) for k in METRICS}}


def summarise(runs: list[dict], level: float = 0.95) -> list[dict]:
    """Per model and metric: mean of each precision and a paired t-test of bf16 - fp32 over the seeds
    that have both (two-sided, ``level`` confidence, n - 1 degrees of freedom)."""
    from scipy import stats

    rows = []
    for model in sorted({r["model"] for r in runs}):
        by = {(r["seed"], r["precision"]): r for r in runs if r["model"] == model and "error" not in r}
        seeds = sorted(s for s, p in by if p == "fp32" and (s, "bf16") in by)
        for m in METRICS:
            a = [by[(s, "fp32")]["test"][m] for s in seeds]
            b = [by[(s, "bf16")]["test"][m] for s in seeds]
            if not seeds or any(v is None for v in a + b):
                continue
            d = [y - x for x, y in zip(a, b)]
            n = len(d)
            mean_d = sum(d) / n
            se = math.sqrt(sum((x - mean_d) ** 2 for x in d) / (n - 1) / n) if n > 1 else float("nan")
            crit = float(stats.t.ppf(0.5 + level / 2, n - 1)) if n > 1 else float("nan")
            t = mean_d / se if n > 1 and se > 0 else (0.0 if mean_d == 0 else math.copysign(math.inf, mean_d))
            p = float(2 * stats.t.sf(abs(t), n - 1)) if n > 1 else float("nan")
            worse = mean_d > 0 if m in LOWER_IS_BETTER else mean_d < 0
            if n < 2:
                verdict = "one seed: no verdict"
            elif abs(t) <= crit:
                verdict = "no difference detected"
            else:
                verdict = "bf16 worse" if worse else "bf16 better"
            rows.append({"model": model, "metric": m, "seeds": n, "fp32_mean": sum(a) / n, "bf16_mean": sum(b) / n,
                         "diff_mean": mean_d, "diff_se": se, "t": t, "p": p, "t_crit": crit, "verdict": verdict})
    return rows


def markdown(res: dict) -> str:
    a = res["args"]
    lines = ["# bf16 autocast against fp32 over seeds (synthetic benchmark, paper profile)", "",
             f"{res['env']} Written by `benchmarks/bf16_seeds.py`.", "",
             "Protocol: `run_one(model, 'synthetic', seed, "
             f"profile='{a['profile']}', train={{..., 'amp': False/True}})`"
             f", seeds 0..{a['seeds'] - 1}, FEMF {a['femf_epochs']} + {a['femf_epochs']} epochs (stage 1 + stage 2), "
             f"Atsuko {a['atsuko_epochs']} epochs (shortened schedule, the same for both precisions); selection on "
             "the validation split, test scored once. Runs shared the device "
             f"({a['workers']} processes at a time), so their wall times are not speed measurements.", "",
             "Verdict: paired t-test of bf16 - fp32 over the seeds, two-sided, 95 %, n - 1 degrees of freedom "
             "(with 3 seeds a difference must exceed 4.3 standard errors).", "",
             "| model | metric | seeds | fp32 mean | bf16 mean | bf16 - fp32 (mean ± s.e.) | t | p | verdict |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["summary"]:
        lines.append(f"| {r['model']} | {r['metric']} | {r['seeds']} | {r['fp32_mean']:.4f} | {r['bf16_mean']:.4f} | "
                     f"{r['diff_mean']:+.4f} ± {r['diff_se']:.4f} | {r['t']:.2f} | {r['p']:.3f} | {r['verdict']} |")
    lines += ["", "Per run (test split):", "", "| model | seed | precision | epochs run | best epoch | degenerate | " +
              " | ".join(METRICS) + " |", "|---|---:|---|---:|---:|---|" + "---:|" * len(METRICS)]
    for r in res["runs"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['seed']} | {r['precision']} | error: {r['error'][:150]} |")
            continue
        lines.append(f"| {r['model']} | {r['seed']} | {r['precision']} | {r['epochs_run']} | {r['best_epoch']} | "
                     f"{r['degenerate']} | " + " | ".join(f"{r['test'][m]:.4f}" for m in METRICS) + " |")
    worse = [f"{r['model']} {r['metric']}" for r in res["summary"] if r["verdict"] == "bf16 worse"]
    compared = sorted({r["model"] for r in res["summary"] if r["seeds"] > 1})
    failed = sum("error" in r for r in res["runs"])
    if failed:
        lines += ["", f"**{failed} of {len(res['runs'])} runs failed** (see above); they are left out of the summary."]
    if not compared:
        lines += ["", "No comparison: fewer than two seeds with both precisions for every model."]
    elif worse:
        lines += ["", "The test finds bf16 worse on: " + ", ".join(worse) + "."]
    else:
        lines += ["", f"The test finds bf16 worse on no metric of {', '.join(compared)} at this number of seeds."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--workers", type=int, default=None,
                    help="processes at a time (default: the CPU count, at most 16)")
    ap.add_argument("--femf-epochs", type=int, default=5)
    ap.add_argument("--atsuko-epochs", type=int, default=6)
    ap.add_argument("--models", nargs="+", default=["femf", "atsuko"])
    ap.add_argument("--tiny", action="store_true", help="smoke profile: checks the script, measures nothing")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--summarise", metavar="JSON", help="rewrite summary and .md from this JSON; trains nothing")
    args = ap.parse_args(argv)
    if args.summarise:
        src = Path(args.summarise)
        res = json.loads(src.read_text())
        res["summary"] = summarise(res["runs"])
        src.write_text(json.dumps(res, indent=1))
        text = markdown(res)
        src.with_suffix(".md").write_text(text)
        print(text)
        return 0
    import torch
    from bench_cuda import _env_line, environment  # noqa: E402 - benchmarks/ on the path below

    profile = "smoke" if args.tiny else "paper"
    env = _env_line(environment(torch.device(args.device)))
    jobs = [(m, s, amp) for m in args.models for s in range(args.seeds) for amp in (False, True)]
    if args.workers is None:
        args.workers = min(16, os.cpu_count() or 1)
    runs = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"bf16_seeds_{torch.device(args.device).type}"

    def write() -> str:                       # after every finished run, so a stopped call keeps what it has
        order = sorted(runs, key=lambda r: (r["model"], r["seed"], r["precision"]))
        res = {"env": env, "args": {**vars(args), "profile": profile}, "runs": order, "summary": summarise(order)}
        (out / f"{name}.json").write_text(json.dumps(res, indent=1))
        text = markdown(res)
        (out / f"{name}.md").write_text(text)
        return text

    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        futs = {pool.submit(one_run, m, s, amp, args.device, profile, args.femf_epochs, args.atsuko_epochs):
                (m, s, amp) for m, s, amp in jobs}
        for f in as_completed(futs):
            m, s, amp = futs[f]
            try:
                runs.append(f.result())
            except Exception as exc:  # noqa: BLE001 - record and go on
                runs.append({"model": m, "seed": s, "precision": "bf16" if amp else "fp32", "error": repr(exc)})
            print(json.dumps({k: runs[-1].get(k) for k in ("model", "seed", "precision", "wall_s", "test",
                                                            "error")}), flush=True)
            text = write()
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
