"""mser against the public reference codes, side by side on this machine: time, FLOPs, share of peak, memory.

The references are read from local checkouts you point at, never copied into this repository:

* ``FEMF_REFERENCE_ROOT``: L11yc/FEMF (the folder holding ``config.py`` and ``FEMF/``);
* ``EMOE_REFERENCE_ROOT``: fuyyyyy/EMOE (the folder holding ``trains/``).

A reference whose variable is unset is skipped with one line. Each reference's model is imported unmodified
(EMOE's ``transformers`` and ``pynvml`` imports are satisfied by empty stand-ins when the packages are absent:
its BERT text encoder is off here, as Atsuko and mser use given text features, and it picks no GPU).

What is timed, per thread count (``--threads``, default 1 and 2), in one process per thread count with the two
implementations alternating (so both see the same machine load):

FEMF (paper size: hidden 256, depth 4, 2 heads, dropout 0.5; MOSI-shaped videos whose utterance counts are
drawn from CMU-MOSI's 93 videos; reference feature widths: audio 512, text 1024, vision 1024):

* ``stage-2 step``: 64 videos, forward + loss + backward + Adam step of the full model. The reference's step
  is its own ``train_or_eval_model`` on a one-batch loader (its experts not frozen, as it runs them); mser's
  is the paper preset (experts frozen, gradients and L_train through them).
* ``stage-1 step``: the same for the expert stage.
* ``stage-2 epoch, 93 videos``: the 93 videos in batches of 64 and 29.
* ``inference``: 64 videos, eval mode (the reference's ``train_or_eval_model`` with ``train=False``).

EMOE (its MOSI configuration: d 256, 8 heads, 4 layers, aligned 50-step inputs of widths 768 / 5 / 20):

* ``train step``: batch 16, forward + EMOE's loss (as its ``do_train`` writes it: L1 task and unimodal terms,
  the router's MSE target, the entropy balance, the distillation) + backward + Adam step; mser's ``emoe``
  paper preset (router on the raw inputs, as EMOE's). Atsuko's paper preset is timed beside them.
* ``inference``: batch 64.

Every training step ends with an Adam step: the reference's own Adam (PyTorch's default, one tensor at a time on
the CPU) and, for mser, the optimiser its trainer builds (``_make_optimizer``: foreach Adam), and beside it the
opt-in fused Adam (``--train-set fused_optimizer=true``), which matters where one tensor is large (EMOE's router
weight holds 197 M of its parameters).

FLOPs are counted with ``torch.utils.flop_counter`` on one step of each; the share of peak uses an fp32 matmul
peak measured in the same process; peak memory is each implementation's resident-set growth over one step in a
process of its own. Results: ``benchmarks/results/reference_bench_t<threads>.{json,md}``.

Usage::

    FEMF_REFERENCE_ROOT=... EMOE_REFERENCE_ROOT=... python benchmarks/bench_reference.py [--threads 1 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = ROOT / "benchmarks" / "results"
FEMF_DIMS = {"text": 1024, "audio": 512, "vision": 1024}
EMOE_DIMS = {"text": 768, "audio": 5, "vision": 20}


# ------------------------------------------------------------------------------------------------ workloads
def femf_split(B: int, seed: int):
    from bench_femf import MOSI_COUNTS, make_split

    rng = np.random.default_rng(seed)
    return make_split({"dims": FEMF_DIMS, "layout": "position"}, rng.choice(MOSI_COUNTS, size=B), seed)


def _ref_femf_data(split, idx):
    """The reference's batch tuple (its ``collate_fn``): features [seqlen, batch, dim], speakers, umask, labels."""
    import torch

    n = split.text_mask[idx].sum(1)
    L = int(n.max())
    t = {m: torch.from_numpy(np.ascontiguousarray(split.features(m)[idx, :L].transpose(1, 0, 2))) for m in FEMF_DIMS}
    z = {m: torch.zeros_like(v) for m, v in t.items()}
    umask = torch.from_numpy(split.text_mask[idx, :L].astype(np.float32))
    label = torch.from_numpy(split.labels[idx, :L])
    return [t["audio"], t["text"], t["vision"], z["audio"], z["text"], z["vision"], torch.zeros_like(umask), umask,
            label, [str(i) for i in idx]]


class RefFEMF:
    """The reference FEMF (its MoMKE class and training function), imported unmodified."""

    def __init__(self, root: Path):
        import argparse as ap

        import torch

        sys.path[:0] = [str(root), str(root / "FEMF")]
        import train_MoMKE
        from loss import MaskedCELoss, MaskedMSELoss
        from utils import build_model

        self.T, self.losses = train_MoMKE, (MaskedMSELoss(), MaskedCELoss())
        self.args = ap.Namespace(device="cpu", drop_rate=0.5, hidden=256, depth=4, num_heads=2, attn_drop_rate=0.0,
                                 n_classes=1, no_cuda=True, dataset="CMUMOSI", test_condition="atv",
                                 add_noise=False, noise_std=0.0)
        self.model = build_model(self.args, FEMF_DIMS["audio"], FEMF_DIMS["text"], FEMF_DIMS["vision"])
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4, weight_decay=1e-4)

    def step(self, data, stage: str):
        self.T.train_or_eval_model(self.args, self.model, *self.losses, [data], optimizer=self.opt, train=True,
                                   first_stage=stage == "experts")

    def infer(self, data):
        self.T.train_or_eval_model(self.args, self.model, *self.losses, [data], train=False, first_stage=False)


def mser_optimizer(model, fused: bool = False, **settings):
    """The optimiser mser's trainer builds (``_make_optimizer``: foreach Adam on the CPU; fused with ``fused``, the
    opt-in ``TrainConfig.fused_optimizer``), so that the step timed is the step mser trains with."""
    from mser_lib.train.trainer import TrainConfig, _make_optimizer

    return _make_optimizer(model.parameters(), TrainConfig(fused_optimizer=fused, **settings))


class MserFEMF:
    def __init__(self, fused: bool = False):
        from mser_lib.data.batch import DatasetInfo
        from mser_lib.models.registry import build_model

        info = DatasetInfo("mosi-utt", "position", "regression", "mosi", dict(FEMF_DIMS), source={"standardize": True})
        self.model = build_model("femf", info, "paper")
        self.opt = mser_optimizer(self.model, fused, lr=1e-4, weight_decay=1e-4)

    def step(self, batch, stage: str):
        self.model.set_stage(stage)
        self.model.train()
        out = self.model(batch)
        loss, _ = self.model.loss(out, batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def infer(self, batch):
        import torch

        from mser_lib.models.base import predictions_only

        self.model.set_stage("full")
        self.model.eval()
        with torch.no_grad(), predictions_only(self.model):      # as mser's predict runs it: no loss terms
            self.model(batch)


def _stub_imports():
    """EMOE imports ``transformers`` (its BERT encoder, off here) and ``pynvml`` (its GPU picker, unused on a
    CPU); an empty stand-in for each one that is absent."""
    import importlib.util

    for module, names in (("transformers", ("BertModel", "BertTokenizer", "RobertaModel", "RobertaTokenizer")),
                          ("pynvml", ())):
        if importlib.util.find_spec(module) is None:
            stub = types.ModuleType(module)
            for name in names:
                setattr(stub, name, object)
            sys.modules[module] = stub


class RefEMOE:
    """EMOE's model, imported unmodified; its loss as ``trains/singleTask/EMOE.py`` writes it, from its own
    ``trains/utils/functions.py``."""

    def __init__(self, root: Path):
        import argparse as ap

        import torch

        _stub_imports()
        sys.path.insert(0, str(root))
        from trains.singleTask.model.emoe import EMOE
        from trains.utils.functions import entropy_balance, eva_imp, uni_distill

        self.f = (eva_imp, uni_distill, entropy_balance)
        args = ap.Namespace(use_bert=False, use_finetune=False, transformers="bert", pretrained="", dataset_name="mosi",
                            need_data_aligned=True, feature_dims=(768, 5, 20), dst_feature_dim_nheads=(256, 8),
                            nlevels=4, attn_dropout=0.3, attn_dropout_a=0.2, attn_dropout_v=0.0, relu_dropout=0.0,
                            embed_dropout=0.2, res_dropout=0.0, output_dropout=0.5, text_dropout=0.5, attn_mask=True,
                            fusion_method="sum", conv1d_kernel_size_l=5, conv1d_kernel_size_a=5,
                            conv1d_kernel_size_v=5, temperature=0.1)
        self.model = EMOE(args)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.l1 = torch.nn.L1Loss()

    def step(self, xs):
        import torch

        eva_imp, uni_distill, entropy_balance = self.f
        text, audio, vision, labels = xs
        self.model.train()
        self.opt.zero_grad()
        out = self.model(text, audio, vision)
        w = out["channel_weight"]
        loss_uni = sum(self.l1(out[f"logits_{m}"], labels) for m in "lva") / 3
        d = {m: eva_imp(out[f"logits_{m}"], labels) for m in "lva"}
        inv = torch.cat([1 / (d[m] + 0.1) for m in "lva"], 1)
        dist = inv / inv.sum(1, keepdim=True)
        loss_sim = torch.mean(torch.mean((dist.detach() - w) ** 2, dim=-1))
        teacher = sum(out[f"{m}_proj"] * w[:, i].view(-1, 1) for i, m in enumerate("lva")).detach()
        loss = (self.l1(out["logits_c"], labels) + loss_uni + 0.1 * (entropy_balance(w) + 0.1 * loss_sim)
                + 0.1 * uni_distill(out["c_proj"], teacher))
        loss.backward()
        self.opt.step()

    def infer(self, xs):
        import torch

        self.model.eval()
        with torch.no_grad():
            self.model(*xs[:3])


class MserAtsuko:
    def __init__(self, name: str, fused: bool = False):
        from mser_lib.data.batch import DatasetInfo
        from mser_lib.models.registry import build_model

        info = DatasetInfo("mosi", "sequence", "regression", "mosi", dict(EMOE_DIMS),
                           source={"max_lengths": {m: 50 for m in EMOE_DIMS}})
        self.model = build_model(name, info, "paper")
        self.opt = mser_optimizer(self.model, fused, lr=1e-4)

    def step(self, batch):
        from mser_lib.models.base import task_loss

        self.model.train()
        out = self.model(batch)
        loss = task_loss(out.prediction, batch, "regression", "l1") + sum(out.aux_losses.values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def infer(self, batch):
        import torch

        self.model.eval()
        with torch.no_grad():
            self.model(batch)


def emoe_inputs(B: int, seed: int):
    """Aligned MOSI-shaped inputs (50 steps, every step real as in the aligned pickle) for both."""
    import torch

    from mser_lib.data.batch import SplitData, collate

    rng = np.random.default_rng(seed)
    arrays = {m: rng.standard_normal((B, 50, d)).astype(np.float32) for m, d in EMOE_DIMS.items()}
    masks = {f"{m}_mask": np.ones((B, 50), dtype=bool) for m in EMOE_DIMS}
    labels = rng.uniform(-3, 3, B).astype(np.float32)
    split = SplitData(**arrays, **masks, labels=labels, label_mask=np.ones(B, dtype=bool),
                      ids=np.array([str(i) for i in range(B)]))
    ref = [torch.from_numpy(arrays[m]) for m in ("text", "audio", "vision")] + [torch.from_numpy(labels).view(-1, 1)]
    return ref, collate(split, np.arange(B), "sequence")


# ------------------------------------------------------------------------------------------------ measuring
def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def _alternate(fns: dict, reps: int, warmup: int = 1) -> dict:
    """``{name: callable}`` timed in turn, ``reps`` rounds after ``warmup``; median seconds per name."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def _fused(t: dict) -> dict:
    """The fused-Adam side of a timed item (training items only)."""
    return {"fused_s": t["fused"], "fused_ratio": t["fused"] / t["reference"]} if "fused" in t else {}


def measure(threads: int, reps: int, femf_root: str | None, emoe_root: str | None) -> dict:
    import torch
    from bench_femf import matmul_peak

    from mser_lib.data.batch import collate

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    work = tempfile.mkdtemp()
    os.chdir(work)                 # the reference writes ./feature_saves and ./log
    out = {"threads": threads, "items": []}
    peak = matmul_peak(torch.device("cpu"))
    if femf_root:
        split = femf_split(64, 0)
        epoch = femf_split(93, 1)
        idx = np.arange(64)
        ref, ours, fused = RefFEMF(Path(femf_root)), MserFEMF(), MserFEMF(fused=True)
        rd, ob = _ref_femf_data(split, idx), collate(split, idx, "position")
        parts = [np.arange(64), np.arange(64, 93)]            # the same videos in each batch for both
        ref_epoch = [_ref_femf_data(epoch, p) for p in parts]
        our_epoch = [collate(epoch, p, "position") for p in parts]
        items = {
            "FEMF stage-2 step (64 videos)": (lambda: ref.step(rd, "full"), lambda: ours.step(ob, "full"),
                                              lambda: fused.step(ob, "full")),
            "FEMF stage-1 step (64 videos)": (lambda: ref.step(rd, "experts"), lambda: ours.step(ob, "experts"),
                                              lambda: fused.step(ob, "experts")),
            "FEMF stage-2 epoch (93 videos)": (lambda: [ref.step(d, "full") for d in ref_epoch],
                                               lambda: [ours.step(b, "full") for b in our_epoch],
                                               lambda: [fused.step(b, "full") for b in our_epoch]),
            "FEMF inference (64 videos)": (lambda: ref.infer(rd), lambda: ours.infer(ob), None),
        }
        for name, (r, o, f) in items.items():
            t = _alternate({"reference": r, "mser": o, **({"fused": f} if f else {})}, reps)
            fl = {"reference": _flops(r), "mser": _flops(o)}
            out["items"].append({"item": name, "reference_s": t["reference"], "mser_s": t["mser"],
                                 "ratio": t["mser"] / t["reference"], **_fused(t),
                                 "reference_gflop": fl["reference"] / 1e9,
                                 "mser_gflop": fl["mser"] / 1e9,
                                 "reference_peak_share": fl["reference"] / t["reference"] / 1e9 / peak,
                                 "mser_peak_share": fl["mser"] / t["mser"] / 1e9 / peak})
    if emoe_root:
        ref = RefEMOE(Path(emoe_root))
        emoe, ats, fused = MserAtsuko("emoe"), MserAtsuko("atsuko"), MserAtsuko("emoe", fused=True)
        rx, ob = emoe_inputs(16, 0)
        rxi, obi = emoe_inputs(64, 1)
        ats.model.fit_band_boundaries([ob])
        items = {"EMOE train step (16 x 50 steps)": (lambda: ref.step(rx), lambda: emoe.step(ob), lambda: ats.step(ob),
                                                     lambda: fused.step(ob)),
                 "EMOE inference (64 x 50 steps)": (lambda: ref.infer(rxi), lambda: emoe.infer(obi),
                                                    lambda: ats.infer(obi), None)}
        for name, (r, o, a, f) in items.items():
            t = _alternate({"reference": r, "mser": o, "atsuko": a, **({"fused": f} if f else {})}, reps)
            fl = {"reference": _flops(r), "mser": _flops(o)}
            out["items"].append({"item": name, "reference_s": t["reference"], "mser_s": t["mser"],
                                 "ratio": t["mser"] / t["reference"], "atsuko_s": t["atsuko"], **_fused(t),
                                 "reference_gflop": fl["reference"] / 1e9, "mser_gflop": fl["mser"] / 1e9,
                                 "reference_peak_share": fl["reference"] / t["reference"] / 1e9 / peak,
                                 "mser_peak_share": fl["mser"] / t["mser"] / 1e9 / peak})
    out["matmul_peak_gflops"] = peak
    return out


def memory(impl: str, root: str | None) -> float:
    """Resident-set growth (MiB) of one training step of ``impl`` in this fresh process."""
    import torch

    torch.set_num_threads(1)
    os.chdir(tempfile.mkdtemp())
    if impl.startswith("femf"):
        split = femf_split(64, 0)
        obj = RefFEMF(Path(root)) if impl == "femf-reference" else MserFEMF()
        from mser_lib.data.batch import collate

        data = _ref_femf_data(split, np.arange(64)) if impl == "femf-reference" else collate(split, np.arange(64),
                                                                                            "position")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        obj.step(data, "full")
    else:
        rx, ob = emoe_inputs(16, 0)
        obj = RefEMOE(Path(root)) if impl == "emoe-reference" else MserAtsuko("emoe")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        obj.step(rx if impl == "emoe-reference" else ob)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0


def _markdown(res: dict, mem: dict) -> str:
    lines = [f"# mser against the public reference codes, {res['threads']} thread(s)", "",
             f"Written by `benchmarks/bench_reference.py` at mser {res['revision']}; {res['machine']}; load average "
             f"{res['load']} when it started; fp32 matmul peak measured beside it: {res['matmul_peak_gflops']:.0f} "
             "GFLOP/s. Median of the timed rounds, the implementations alternating in one process. Ratio = mser "
             "time / reference time. mser's steps use the optimiser its trainer builds (foreach Adam on the CPU); "
             "*fused* is the same step with the opt-in `fused_optimizer=True` (fused Adam: not the default, its "
             "rounding differs from the committed records'); the reference steps use the reference's own Adam.", "",
             "| item | reference (s) | mser (s) | ratio | mser, fused Adam (s) | ratio, fused | reference GFLOP | "
             "mser GFLOP | reference % of peak | mser % of peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    for it in res["items"]:
        fused = (f"{it['fused_s']:.3f} | {it['fused_ratio']:.2f}" if "fused_s" in it else " | ")
        lines.append(f"| {it['item']} | {it['reference_s']:.3f} | {it['mser_s']:.3f} | {it['ratio']:.2f} | {fused} | "
                     f"{it['reference_gflop']:.1f} | {it['mser_gflop']:.1f} | {100 * it['reference_peak_share']:.0f} | "
                     f"{100 * it['mser_peak_share']:.0f} |")
    ats = [it for it in res["items"] if "atsuko_s" in it]
    if ats:
        lines += ["", "Atsuko (no public code; EMOE plus SBN and MCM) at its paper size on the same inputs: "
                  + "; ".join(f"{it['item'].replace('EMOE ', '')}: {it['atsuko_s']:.3f} s" for it in ats) + "."]
    if mem:
        lines += ["", "Peak resident-set growth over one training step, each in a process of its own (MiB): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in mem.items()) + "."]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """The CPU and core count every benchmark result records."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def run_worker(script, args: list[str], env: dict) -> dict | None:
    """``script`` run with ``args`` in a process of its own under ``env``: the JSON of its last stdout line, or None
    (its output tails printed to stderr) when it failed."""
    r = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env)
    if r.returncode:
        print(r.stdout[-2000:], r.stderr[-4000:], file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def write_result(name: str, res: dict, text: str) -> None:
    """``res`` to ``results/<name>.json`` and its report ``text`` to ``results/<name>.md``; the report printed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    femf_root, emoe_root = os.environ.get("FEMF_REFERENCE_ROOT"), os.environ.get("EMOE_REFERENCE_ROOT")
    if a.memory:
        print(json.dumps(memory(a.memory, femf_root if a.memory.startswith("femf") else emoe_root)))
        return 0
    if a.worker:
        print(json.dumps(measure(int(a.worker), a.reps, femf_root, emoe_root)))
        return 0
    for var, root in (("FEMF_REFERENCE_ROOT", femf_root), ("EMOE_REFERENCE_ROOT", emoe_root)):
        if not root:
            print(f"{var} is not set: that reference is skipped")
    if not femf_root and not emoe_root:
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    mem = {}
    for impl, root in (("femf-reference", femf_root), ("femf-mser", femf_root), ("emoe-reference", emoe_root),
                       ("emoe-mser", emoe_root)):
        if root:
            r = subprocess.run([sys.executable, __file__, "--memory", impl], capture_output=True, text=True, env=env)
            mem[impl] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else float("nan")
    for threads in a.threads:
        env_t = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        load = os.getloadavg()[0]
        res = run_worker(__file__, ["--worker", str(threads), "--reps", str(a.reps)], env_t)
        if res is None:
            return 1
        res.update({"revision": _git(), "load": round(load, 2), "machine": machine()})
        write_result(f"reference_bench_t{threads}", {**res, "memory_mib": mem}, _markdown(res, mem))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
