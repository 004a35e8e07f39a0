"""Where does a quick-profile run spend its time? One run of each model, split into parts.

    .venv/bin/python benchmarks/profile_quick.py [--dataset synthetic] [--epochs 4]

Each model trains ``--epochs`` epochs (FEMF: half of them as expert epochs) with the quick profile's
settings on one thread, as ``make reproduce`` runs it, and the wall time is split into:

* forward (training batches), backward, optimiser step (clipping included);
* evaluation (the per-epoch validation pass and the final scoring);
* checkpoint writes (``last.pt`` every epoch, ``best.pt`` on improvement);
* data collation (building the batches);
* the rest: Python overhead of the loop, metrics bookkeeping, progress.

The table goes to ``benchmarks/results/profile_quick_<dataset>.md`` (absolute seconds and shares,
measured here; no numbers from elsewhere).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
import torch

from mser_lib.experiments import get_dataset, resolve_run
from mser_lib.models import build_model
from mser_lib.report.tables import to_markdown
from mser_lib.train import TrainConfig, fit_model, set_seed
from mser_lib.train import trainer as T

OUT = Path(__file__).resolve().parent / "results"


class Clock:
    def __init__(self):
        self.t = defaultdict(float)
        self.depth = 0

    @contextmanager
    def part(self, name):
        if self.depth:               # nested parts count once, in the outer part
            yield
            return
        self.depth += 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[name] += time.perf_counter() - t0
            self.depth -= 1


def instrument(clock: Clock):
    """Wrap the trainer's parts; returns an undo function."""
    saved = {n: getattr(T, n) for n in ("evaluate", "atomic_torch_save", "_step", "iterate_batches")}
    saved_backward = torch.Tensor.backward

    def timed(name, fn):
        def w(*a, **k):
            with clock.part(name):
                return fn(*a, **k)
        return w

    def batches(*a, **k):
        it = saved["iterate_batches"](*a, **k)
        while True:
            with clock.part("data collation"):
                try:
                    b = next(it)
                except StopIteration:
                    return
            yield b

    def backward(self, *a, **k):
        with clock.part("backward"):
            return saved_backward(self, *a, **k)

    T.evaluate = timed("evaluation", saved["evaluate"])
    T.atomic_torch_save = timed("checkpoint writes", saved["atomic_torch_save"])
    T._step = timed("optimiser step", saved["_step"])
    T.iterate_batches = batches
    torch.Tensor.backward = backward

    def undo():
        for n, f in saved.items():
            setattr(T, n, f)
        torch.Tensor.backward = saved_backward
    return undo


def profile_one(model: str, dataset: str, epochs: int) -> dict:
    ds = get_dataset(dataset, None, "quick")
    run = resolve_run(model, dataset, 0, "quick", {"modalities": "tav"} if model == "baseline" else None,
                      info=ds.info)
    tr = {**run["train"], "epochs": epochs, "patience": None, "progress": False}
    if tr.get("stage_epochs"):
        tr["stage_epochs"] = {"experts": max(1, epochs // 2), "full": epochs}
    cfg = TrainConfig(**tr)
    set_seed(0)
    net = build_model(model, ds.info, run["model_preset"], **run["overrides"])
    clock = Clock()
    fwd = net.forward

    def forward(*a, **k):
        with clock.part("forward (train)" if net.training else "evaluation"):
            return fwd(*a, **k)

    net.forward = forward
    undo = instrument(clock)
    try:
        with TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = fit_model(net, ds, cfg, seed=0, run_dir=tmp)
            total = time.perf_counter() - t0
    finally:
        undo()
    row = {"model": model, "epochs": res.epochs_run, "train samples": len(ds.train), "total (s)": total,
           "s / epoch": total / res.epochs_run}
    parts = ["forward (train)", "backward", "optimiser step", "evaluation", "checkpoint writes", "data collation"]
    for p in parts:
        row[p] = clock.t[p] / total
    row["rest (Python loop, metrics)"] = 1 - sum(clock.t[p] for p in parts) / total
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--models", nargs="*", default=["baseline", "emoe", "atsuko", "femf"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = [profile_one(m, args.dataset, args.epochs) for m in args.models]
    df = pd.DataFrame(rows).set_index("model")
    shown = df.copy()
    for c in shown.columns[4:]:
        shown[c] = (100 * shown[c]).round(1).astype(str) + " %"
    shown[["total (s)", "s / epoch"]] = shown[["total (s)", "s / epoch"]].round(2)
    text = (f"# Quick-profile runs on `{args.dataset}`: where the time goes\n\n"
            f"One run per model, {args.epochs} epochs (FEMF: {max(1, args.epochs // 2)} expert + {args.epochs} "
            f"full epochs), 1 thread, torch {torch.__version__}, measured by `benchmarks/profile_quick.py` on this "
            "machine (shares of each run's wall time).\n\n" + to_markdown(shown) + "\n")
    OUT.mkdir(exist_ok=True)
    (OUT / f"profile_quick_{args.dataset}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
