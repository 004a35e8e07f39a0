"""Eager versus ``torch.compile`` on the CPU, side by side in one process (issue 13, item 1).

Usage::

    python benchmarks/bench_compile.py --threads 1                 # all items, 5 timed steps each
    python benchmarks/bench_compile.py --only femf-train --steps 10
    python benchmarks/bench_compile.py --tiny --backend aot_eager --out /tmp/smoke   # smoke, ~4 min
    python benchmarks/bench_compile.py --tiny --out /tmp/smoke   # smoke with Inductor, ~11 min

Items (``--only``), on the inputs of ``bench_femf.py`` / ``bench_atsuko.py`` (their functions are
imported, not copied):

* ``femf-train``: FEMF ``paper`` preset, stage 2 (``full``, frozen experts with autograd through
  them): forward + backward + Adam step on ``--videos`` MOSI-shaped videos (reference widths);
* ``femf-stage1``: the same model and batch in stage 1 (``experts``);
* ``femf-infer``: stage 2 inference (``eval``, ``no_grad``) on a second batch of ``--videos``;
* ``atsuko-train``: Atsuko ``paper`` preset train step on bench_atsuko's MOSI aligned_50 batch.

Variants (``--variants``), each a deep copy of the same initial model with its own Adam:
``eager``; ``whole`` = ``torch.compile(model)`` (graph breaks expected: the packing builds its length
buckets with Python loops and ``.tolist()``); ``parts`` = only the hot inner pieces compiled with
``dynamic=True`` (FEMF: ``StackedExperts.run``, the stacked routers and the interaction branches;
Atsuko: the modality encoders, band routers, modality router and heads); ``parts-autotune`` (opt-in)
= the same pieces with ``mode="max-autotune-no-cudagraphs"``. ``--backend`` (default ``inductor``).
Compilation dominates a run: about 0.5 to 1.5 minutes per compiled variant and item on a busy 2-core
CPU even at ``--tiny`` sizes, so a full run takes tens of minutes.

Reported per item and variant: the first call (for a compiled variant: compilation plus one step),
then, after ``--warmup`` steps, the median and min-max of ``--steps`` steps. The variants alternate
step by step (the order reversed every other round), so load on the machine hits them alike.
Graph breaks and compiled graphs come from ``torch._dynamo.utils.counters`` during the first call.
Numerics: after the timing every copy gets the initial weights back and runs the item's batch in
``eval`` mode (no dropout, whose random stream differs under compilation; with autograd for the
train items): the max abs difference to eager of the loss, the prediction and (train items) the
gradients. A variant that fails to compile is reported as ``failed: <error>`` and left out.

Timings are only comparable within one run on one machine (one output file): other load, another
CPU or another thread count changes every number. Writes ``<out>/compile_bench_cpu_t<threads>.md``
and ``.json`` (``--out``, default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_atsuko  # noqa: E402
import bench_femf  # noqa: E402

ITEMS = ("femf-train", "femf-stage1", "femf-infer", "atsuko-train")
VARIANTS = ("eager", "whole", "parts", "parts-autotune")
TINY_FEMF = dict(hidden=16, heads=2, expert_depth=1, expert_ffn=16, interaction_ffn=16)


class Item:
    """One thing to time: a model (the eager original), its batch, whether it trains, its loss."""

    def __init__(self, name, model, batch, train, loss):
        self.name, self.model, self.batch, self.train, self.loss = name, model, batch, train, loss


def femf_item(name: str, args) -> Item:
    import numpy as np
    import torch

    from mser_lib.data.batch import DatasetInfo, collate
    from mser_lib.models.registry import build_model

    shape = dict(bench_femf.SHAPES["paper"])
    overrides = {}
    if args.tiny:
        shape["dims"] = {"text": 12, "audio": 8, "vision": 10}
        overrides = TINY_FEMF
    info = DatasetInfo(name=shape["name"], layout=shape["layout"], task="regression", metric_family="mosi",
                       dims=dict(shape["dims"]), source={"standardize": True})   # inputs drawn standard normal
    torch.manual_seed(0)
    model = build_model("femf", info, "paper", **overrides)
    seed = 1 if name == "femf-infer" else 0                       # bench_femf: train seed 0, inference 1
    lengths = bench_femf._lengths(shape, args.videos, seed)
    batch = collate(bench_femf.make_split(shape, lengths, seed), np.arange(args.videos), shape["layout"])
    model.set_stage("experts" if name == "femf-stage1" else "full")
    return Item(name, model, batch, name != "femf-infer", lambda m, out, b: m.loss(out, b)[0])


def atsuko_item(args) -> Item:
    import torch

    from mser_lib.data.batch import DatasetInfo, MultimodalDataset
    from mser_lib.models.base import task_loss
    from mser_lib.models.registry import build_model

    preset = "quick" if args.tiny else "paper"
    shape = dict(bench_atsuko.SHAPES[preset], train_bs=4 if args.tiny else bench_atsuko.SHAPES[preset]["train_bs"])
    info = DatasetInfo(name="mosi" if preset == "paper" else "synthetic", layout="sequence",
                       task="regression", metric_family="mosi", dims=dict(shape["dims"]))
    torch.manual_seed(0)
    model = build_model("atsuko", info, preset)
    split, batch = bench_atsuko._batch(shape, shape["train_bs"], 0, torch.device("cpu"))
    model.prepare(MultimodalDataset(info, split, split, split))

    def loss(m, out, b):
        return task_loss(out.prediction, b, "regression") + sum(out.aux_losses.values())

    return Item("atsuko-train", model, batch, True, loss)


def compile_parts(model, **kw) -> None:
    """Compile the hot inner pieces of a FEMF or Atsuko model in place (the rest stays eager)."""
    import torch

    if hasattr(model, "experts"):                                   # FEMF
        if model.experts is not None:
            model.experts.run = torch.compile(model.experts.run, **kw)
            model.routers.compile(**kw)
        for layer in model.interaction or []:
            for branch in layer.values():
                branch.compile(**kw)
    else:                                                           # Atsuko
        mods = [model.router, model.fusion_head, *model.encoders.values(), *model.uni_heads.values()]
        for name in ("band_routers", "bi_heads"):
            mods += list((getattr(model, name, None) or {}).values())
        for m in mods:
            m.compile(**kw)


def make_variant(kind: str, item: Item, backend: str):
    """``(module to keep, callable forward)`` of a deep copy of the item's model."""
    import torch

    model = copy.deepcopy(item.model)
    model.train(item.train)
    if kind == "whole":
        return model, torch.compile(model, backend=backend)
    if kind == "parts":
        compile_parts(model, dynamic=True, backend=backend)
    elif kind == "parts-autotune":
        compile_parts(model, dynamic=True, backend=backend, mode="max-autotune-no-cudagraphs")
    return model, model


def make_step(model, fwd, item: Item):
    import torch

    if not item.train:
        def infer():
            with torch.no_grad():
                return item.loss(model, fwd(item.batch), item.batch).detach()
        return infer
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train():
        loss = item.loss(model, fwd(item.batch), item.batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()
    return train


def eval_outputs(model, fwd, item: Item, state: dict):
    """Loss, prediction and (train items) gradients with the initial weights, ``eval`` mode."""
    import torch

    model.load_state_dict(state)
    model.eval()
    try:
        with torch.set_grad_enabled(item.train):
            out = fwd(item.batch)
            loss = item.loss(model, out, item.batch)
            params = [p for p in model.parameters() if p.requires_grad] if item.train else []
            grads = torch.autograd.grad(loss, params, allow_unused=True) if params else ()
    finally:
        model.train(item.train)
    return loss.detach(), out.prediction.detach(), [g for g in grads if g is not None]


def _err(exc: Exception) -> str:
    return f"failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"


def _reason(text: str) -> str:
    """First line of a graph-break reason, with the operator it names."""
    op = re.search(r"Operator `([^`]+)`", text)
    return text.splitlines()[0] + (f" ({op.group(1)})" if op else "")


def run_item(item: Item, variants: list[str], steps: int, warmup: int, backend: str) -> dict:
    import torch
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    state = copy.deepcopy(item.model.state_dict())
    rows, live = {}, {}
    for kind in variants:
        counters.clear()
        try:
            model, fwd = make_variant(kind, item, backend)
            step = make_step(model, fwd, item)
            t = time.perf_counter()
            loss = step()
            first = time.perf_counter() - t
        except Exception as exc:                                    # report, do not crash the run
            rows[kind] = {"error": _err(exc)}
            print(f"  {item.name} {kind}: {rows[kind]['error']}", file=sys.stderr, flush=True)
            continue
        reasons = Counter()
        for text, n in counters["graph_break"].items():
            reasons[_reason(text)] += n
        rows[kind] = {"first_call_s": round(first, 3), "first_step_loss": float(loss),
                      "graph_breaks": sum(reasons.values()), "graphs": counters["stats"]["unique_graphs"],
                      "graph_break_reasons": reasons.most_common(), "times": []}
        live[kind] = (model, fwd, step)
        print(f"  {item.name} {kind}: first call {first:.2f} s, {rows[kind]['graph_breaks']} graph breaks, "
              f"{rows[kind]['graphs']} graphs", file=sys.stderr, flush=True)
    for rnd in range(warmup + steps):
        order = list(live) if rnd % 2 == 0 else list(live)[::-1]
        for kind in order:
            t = time.perf_counter()
            live[kind][2]()
            if rnd >= warmup:
                rows[kind]["times"].append(time.perf_counter() - t)
    ref = None
    for kind, (model, fwd, _) in live.items():
        row = rows[kind]
        row.update(bench_femf._timing(row.pop("times")) if steps else {})
        try:
            got = eval_outputs(model, fwd, item, state)
        except Exception as exc:
            row["numerics"] = _err(exc)
            continue
        if ref is None:
            ref = got
        row["numerics"] = {"loss": float(got[0]), "loss_abs_diff": float((got[0] - ref[0]).abs()),
                           "prediction_max_abs_diff": float((got[1] - ref[1]).abs().max()) if got[1].numel() else 0.0}
        if got[2]:
            row["numerics"]["grad_max_abs_diff"] = max(float((a - b).abs().max()) for a, b in zip(got[2], ref[2]))
            row["numerics"]["grad_max_abs"] = max(float(g.abs().max()) for g in ref[2])
    base = rows.get("eager", {}).get("median")
    for row in rows.values():
        if base and row.get("median"):
            row["speedup_vs_eager"] = round(base / row["median"], 3)
    return rows


def _markdown(res: dict) -> str:
    lines = ["# torch.compile versus eager on the CPU", "",
             f"torch {res['torch']}, {res['machine']}, {res['cpu_count']} cores, {res['threads']} intra-op "
             f"thread(s), backend {res['backend']}, load average at start {res['load_avg']}"
             f"{', TINY sizes (smoke test, not a measurement)' if res['tiny'] else ''}. "
             f"One process; variants alternate step by step; {res['steps']} timed steps after {res['warmup']} "
             "warm-up. Compare rows of this file only. Numerics: eval mode, initial weights, max abs "
             "difference to eager.", "",
             "| item | variant | first call s (compile + step) | step s median (min-max) | speed-up vs eager "
             "| graph breaks / graphs | loss diff | prediction diff | grad diff (max abs grad) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in res["items"].items():
        for kind, r in rows.items():
            if "error" in r:
                lines.append(f"| {name} | {kind} | {r['error']} | | | | | | |")
                continue
            n = r.get("numerics", {})
            if isinstance(n, str):
                num = f"{n} | | "
            else:
                grad = f"{n['grad_max_abs_diff']:.2e} ({n['grad_max_abs']:.2e})" if "grad_max_abs_diff" in n else "-"
                num = f"{n.get('loss_abs_diff', 0):.2e} | {n.get('prediction_max_abs_diff', 0):.2e} | {grad}"
            timing = f"{r['median']} ({r['min']}-{r['max']})" if "median" in r else "-"
            lines.append(f"| {name} | {kind} | {r['first_call_s']} | {timing} | {r.get('speedup_vs_eager', '-')} | "
                         f"{r['graph_breaks']} / {r['graphs']} | {num} |")
    reasons = [(name, kind, r["graph_break_reasons"]) for name, rows in res["items"].items()
               for kind, r in rows.items() if r.get("graph_break_reasons")]
    if reasons:
        lines += ["", "## Graph-break reasons (first call; count)", ""]
        for name, kind, rs in reasons:
            lines += [f"* {name} / {kind}: " + "; ".join(f"{n} x {reason}" for reason, n in rs)]
    return "\n".join(lines) + f"\n\nWall time: {res['wall_s']} s.\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant (median, min-max)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per variant after the first call")
    ap.add_argument("--videos", type=int, default=None, help="FEMF videos per batch (default 64; --tiny 6)")
    ap.add_argument("--only", nargs="*", choices=ITEMS, default=list(ITEMS), help="items to run")
    ap.add_argument("--variants", nargs="*", choices=VARIANTS, default=["eager", "whole", "parts"])
    ap.add_argument("--tiny", action="store_true",
                    help="tiny sizes: a smoke test, not a measurement (compilation still takes minutes)")
    ap.add_argument("--backend", default="inductor",
                    help="torch.compile backend; aot_eager skips Inductor code generation (a faster smoke test)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    args.videos = args.videos or (6 if args.tiny else bench_femf.SHAPES["paper"]["train_bs"])
    variants = ["eager"] + [v for v in args.variants if v != "eager"]

    import torch
    import torch._dynamo.config

    torch.set_num_threads(args.threads)
    torch._dynamo.config.recompile_limit = 64                       # one entry per segment layout
    start = time.perf_counter()
    res = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
           "load_avg": [round(x, 2) for x in os.getloadavg()], "tiny": args.tiny, "steps": args.steps,
           "warmup": args.warmup, "backend": args.backend, "videos": args.videos, "variants": variants, "items": {},
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only:                 # the files are rewritten after each item: a stopped run keeps its items
        item = atsuko_item(args) if name == "atsuko-train" else femf_item(name, args)
        res["items"][name] = run_item(item, variants, args.steps, args.warmup, args.backend)
        res["wall_s"] = round(time.perf_counter() - start, 1)
        (out / f"compile_bench_cpu_t{args.threads}.json").write_text(json.dumps(res, indent=2) + "\n")
        (out / f"compile_bench_cpu_t{args.threads}.md").write_text(_markdown(res))
    print(_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
