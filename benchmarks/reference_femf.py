"""The public FEMF reference code against mser's ``reference`` preset, on the same data, under the reference's
own protocol.

The reference (L11yc/FEMF, https://github.com/L11yc/FEMF) is never copied into this repository: point
``FEMF_REFERENCE_ROOT`` at a local checkout (the folder holding ``config.py`` and ``FEMF/``). Without it
the script says so and exits 0.

What runs, for each seed:

1. **The reference, unmodified**, as its run script runs CMU-MOSI (``run_MoMKE_cmumosi.sh``: hidden 256,
   depth 4, 2 heads, dropout 0.5, batch 64, lr 1e-4, weight decay 1e-4, 300 epochs of which the first 150
   train the experts), in a temporary folder that holds mosi-bclstm written in its utterance format
   (``dataset/CMUMOSI/CMUMOSI_features_raw_2way.pkl`` and one ``.npy`` per utterance and modality). The
   features are mser's: standardised with the training split's statistics; the video vectors are zero-padded
   to 1024, as the reference pads MA-Net's. Its training videos are mser's 56, its test videos the 31
   bc-LSTM test videos (mser's 6 validation videos are its unused ``valVids``). Its protocol: the epoch with
   the best test F1 over all 300 epochs, metrics over the utterances with a non-zero label (MAE and Corr
   too). Parsed from its own final line.
2. **mser's ``reference`` preset** (every reference behaviour mser has as a switch,
   ``mser_lib.models.femf.REFERENCE_BEHAVIOUR``) with the same schedule and data, scored after every epoch
   of both stages on the test videos with the reference's metric definitions, and selected the same way.
   Its cross-fitted result (mser's own protocol) is reported beside it.

Usage::

    FEMF_REFERENCE_ROOT=/path/to/L11yc-FEMF python benchmarks/reference_femf.py --seeds 0 1 2
    python benchmarks/reference_femf.py --dry-run       # tiny schedule, checks the harness end to end
    # the two sides on two cores, each resumable (a finished run is not repeated):
    FEMF_REFERENCE_ROOT=... python benchmarks/reference_femf.py --side reference --seeds 0 1 &
    python benchmarks/reference_femf.py --side mser --seeds 0 1
    # a hypothesis side (HYPOTHESES: mser's preset with more reference behaviours), compared in the report
    python benchmarks/reference_femf.py --side mser-dis-module --seeds 0 1 2

Every finished run is appended, as one line, to ``benchmarks/results/reference_femf.runs.jsonl`` (its side,
seed, schedule and both revisions), so an interrupted comparison resumes and seeds can be added later. The
report, ``benchmarks/results/reference_femf.{json,md}`` (``--out`` to change), is rewritten from that file
after every run and holds the seeds that both sides have finished at the same schedule. One thread per
process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_reference import machine  # noqa: E402

from mser_lib.data import load_dataset  # noqa: E402
from mser_lib.models.femf import REFERENCE_BEHAVIOUR  # noqa: E402
from mser_lib.models.registry import build_model  # noqa: E402
from mser_lib.train import TrainConfig, fit_model, predict  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FINAL = re.compile(r"The best\(acc\) epoch of test_condition \(atv\): (\d+) --test_mae ([-\d.enan]+) "
                   r"--test_corr ([-\d.enan]+) --test_fscores ([-\d.enan]+) --test_acc ([-\d.enan]+)")
METRICS = ("acc", "f1", "mae", "corr")
METRIC_NAMES = {"acc": "Acc-2", "f1": "F1", "mae": "MAE", "corr": "Corr"}


def _unit(key: str) -> tuple[int, int]:
    """(scale, decimals) the report prints ``key`` with: accuracy and F1 in points to 0.01, the rest to 3 decimals."""
    return (100, 2) if key in ("acc", "f1") else (1, 3)


def _best(key: str):
    """The reduction that picks a curve's best epoch of ``key``: MAE is lower-better, the others higher-better."""
    return np.min if key == "mae" else np.max

def fingerprint(behaviour: dict) -> str:
    """Which reference preset an `mser` run trained: a fingerprint of its REFERENCE_BEHAVIOUR, recorded with the run."""
    return hashlib.sha1(json.dumps(behaviour, sort_keys=True, default=str).encode()).hexdigest()[:12]


PRESET = fingerprint(REFERENCE_BEHAVIOUR)
# The earlier reference presets whose `mser` runs stay in the report, oldest first: side -> (the model fields that
# turn today's preset into it, the fingerprint its runs carry (None: recorded before runs carried one), what it
# lacks). Hypotheses tested behaviours on them before the behaviours joined the preset.
EARLIER = "mser-earlier-preset"
BEFORE_CODES = "mser-preset-before-codes"
EARLIER_PRESETS = {
    EARLIER: ({"attention_key_mask": True, "expert_init": "xavier", "dis_module": "paper", "pad_vision_to": None},
              None, "without the reference's attention over padded utterances and nn.Linear's start of the experts "
              "and routers (`attention_key_mask=False`, `expert_init=\"torch\"`), nor the two behaviours of the "
              "next one"),
    BEFORE_CODES: ({"dis_module": "paper", "pad_vision_to": None}, "9b182c4e0b73",
                   "without the reference's disentanglement module and its vision features zero-padded to 1024 "
                   "(`dis_module=\"reference\"`, `pad_vision_to=1024`)"),
}
# Hypothesis sides (not part of --side both): a preset with one more reference behaviour, to find which one the
# two sides' gap comes from. side: (model fields, trainer settings, what it is, colour, the preset it extends
# (one of EARLIER_PRESETS, whose fields it gets first, or "mser", today's)). Each is compared with the `mser` runs
# of the preset it extends, as its committed runs were.
HYPOTHESES = {
    "mser-padded-keys": ({"attention_key_mask": False}, {},
                         "the reference's attention over padded utterances (`attention_key_mask=False`): no key "
                         "mask, each padded key and value the layer's bias, their number set by the batch",
                         "tab:orange", EARLIER),
    "mser-one-optimizer": ({}, {"optimizer_per_stage": False},
                           "one Adam for both stages, its state carried over (`optimizer_per_stage=False`), as "
                           "the reference builds one optimiser for all 300 epochs", "tab:green", EARLIER),
    "mser-torch-init": ({"expert_init": "torch"}, {},
                        "the experts and routers initialised as the reference's nn.Linear layers are "
                        "(`expert_init=\"torch\"`: weights and biases uniform in +-1/sqrt(fan-in), where mser draws "
                        "Xavier-uniform weights and zero biases)", "tab:purple", EARLIER),
    "mser-reference-codes": ({"dis_module": "reference", "pad_vision_to": 1024}, {},
                             "the two candidates left, together (a screen: if the side moves to the reference, "
                             "they are tried apart): the reference's disentanglement module (`dis_module="
                             "\"reference\"`: shared and private codes half as wide, one decoder for every "
                             "modality, one linear map lifting the private codes back to 256 before the experts) "
                             "and its vision features zero-padded to 1024 (its loader's `pad_to_1024`), which "
                             "starts the vision projection about three times weaker (nn.Linear's bound "
                             "1/sqrt(fan-in)); both have since joined the preset. The committed runs padded the data; "
                             "the model switch `pad_vision_to=1024` that replaced that recorded the same numbers for "
                             "each of their seeds", "tab:red", BEFORE_CODES),
    "mser-dis-module": ({"dis_module": "reference"}, {},
                        "the first of those two alone: the reference's disentanglement module (`dis_module="
                        "\"reference\"`), vision at its own width", "tab:brown", BEFORE_CODES),
}
# the reference's line for each stage-2 epoch (it prints no test metrics in stage 1)
EPOCH = re.compile(r"epoch:(\d+); test_mae_atv:([-\d.enan]+); test_corr_atv:([-\d.enan]+); "
                   r"test_fscore_atv:([-\d.enan]+)%; test_acc_atv:([-\d.enan]+)%")


def reference_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """The reference's CMU-MOSI metrics (``train_MoMKE.py``): every utterance with a zero label dropped,
    then binary accuracy and weighted F1 of ``> 0``, MAE and Pearson correlation."""
    keep = y != 0
    y, p = y[keep], p[keep]
    return {"acc": float(((y > 0) == (p > 0)).mean()), "f1": float(f1_score(y > 0, p > 0, average="weighted")),
            "mae": float(np.abs(y - p).mean()), "corr": float(np.corrcoef(y, p)[0, 1])}


def write_utterance_format(ds, folder: Path) -> None:
    """mosi-bclstm (as mser loads it) in the reference's CMU-MOSI layout under ``folder/dataset/CMUMOSI``."""
    root = folder / "dataset" / "CMUMOSI"
    feats = {m: root / "features" / m for m in ("text", "audio", "video")}
    for f in feats.values():
        f.mkdir(parents=True, exist_ok=True)
    ids, labels, speakers, sentences, vids = {}, {}, {}, {}, {}
    for split in ("train", "valid", "test"):
        sp = ds.split(split)
        vids[split] = []
        for i, vid in enumerate(sp.ids):
            vid = str(vid)
            n = int(sp.label_mask[i].sum())
            uids = [f"{vid}_{k}" for k in range(n)]
            ids[vid], labels[vid] = uids, [float(v) for v in sp.labels[i, :n]]
            speakers[vid], sentences[vid] = [""] * n, [""] * n
            vids[split].append(vid)
            for k, uid in enumerate(uids):
                np.save(feats["text"] / f"{uid}.npy", sp.text[i, k].astype(np.float32))
                np.save(feats["audio"] / f"{uid}.npy", sp.audio[i, k].astype(np.float32))
                video = np.zeros(1024, dtype=np.float32)
                video[: sp.vision.shape[2]] = sp.vision[i, k]
                np.save(feats["video"] / f"{uid}.npy", video)
    with open(root / "CMUMOSI_features_raw_2way.pkl", "wb") as fh:
        pickle.dump((ids, labels, speakers, sentences, vids["train"], vids["valid"], vids["test"]), fh)


def run_reference(ref_root: Path, work: Path, seed: int, epochs: int, stage_epochs: int) -> dict:
    """The reference's own training script, unmodified, on the data in ``work``; its final line parsed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ref_root), str(ref_root / "FEMF")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-u", str(ref_root / "FEMF" / "train_MoMKE.py"), "--dataset=CMUMOSI",
           "--audio-feature=audio", "--text-feature=text", "--video-feature=video", f"--seed={seed}",
           "--batch-size=64", f"--epoch={epochs}", "--lr=0.0001", "--hidden=256", "--depth=4", "--num_heads=2",
           "--drop_rate=0.5", "--attn_drop_rate=0.0", "--test_condition=atv", f"--stage_epoch={stage_epochs}",
           "--no-cuda"]
    t = time.time()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.time() - t
    found = FINAL.search(proc.stdout)
    if proc.returncode or not found:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"the reference run (seed {seed}) failed (exit {proc.returncode}):\n{tail}")
    epoch, mae, corr, f1, acc = (g.rstrip(".") for g in found.groups())    # the line ends with a full stop
    lines = [m.groups() for m in EPOCH.finditer(proc.stdout)]
    curve = {"mae": [float(x[1]) for x in lines], "corr": [float(x[2]) for x in lines],
             "f1": [round(float(x[3]) / 100, 4) for x in lines], "acc": [round(float(x[4]) / 100, 4) for x in lines]}
    return {"epoch": int(epoch), "acc": float(acc), "f1": float(f1), "mae": float(mae), "corr": float(corr),
            "wall_time_s": round(wall, 1), "stage2_curve": curve}


def run_mser(ds, seed: int, epochs: int, stage_epochs: int, overrides: dict | None = None,
             train: dict | None = None) -> dict:
    """mser's reference preset (plus model ``overrides`` and trainer settings ``train``) with the reference's
    schedule, scored after every epoch of both stages with the reference's metrics and selected as the reference
    selects (best test F1 over all epochs)."""
    torch.manual_seed(seed)
    model = build_model("femf", ds.info, "reference", **(overrides or {}))
    cfg = TrainConfig(batch_size=64, lr=1e-4, weight_decay=1e-4, clip_grad=None, patience=None,
                      stage_epochs={"experts": stage_epochs, "full": epochs - stage_epochs}, selection="crossfit",
                      device="cpu", progress=False, **(train or {}))
    per_epoch = []

    def score(epoch, row):
        y, p, _, _ = predict(model, ds.test, ds.info, 256, "cpu", None, seed)
        per_epoch.append({"stage": model.stage, "epoch": epoch, **reference_metrics(np.asarray(y), np.asarray(p))})

    t = time.time()
    res = fit_model(model, ds, cfg, seed=seed, callbacks=[score])
    wall = time.time() - t
    best = max(range(len(per_epoch)), key=lambda i: per_epoch[i]["f1"])
    crossfit = res.protocols["crossfit"]["metrics"]
    stage2 = [e for e in per_epoch if e["stage"] != per_epoch[0]["stage"]]
    # rounded as the reference prints its epochs: MAE and Corr to 3 decimals, F1 and accuracy to 0.01 %
    curve = {k: [round(e[k], 3 if k in ("mae", "corr") else 4) for e in stage2] for k in METRICS}
    return {"epoch": best, **{k: per_epoch[best][k] for k in METRICS}, "wall_time_s": round(wall, 1),
            "stage2_curve": curve, "crossfit": {k: crossfit[k] for k in ("acc2_non0", "f1_non0", "mae", "corr")}}


def _mean_std(rows: list[dict], key: str) -> str:
    """Mean ± seed std: accuracy and F1 in percent (as the reference prints them), MAE and Corr with three
    decimals, wall time in whole seconds."""
    scale, digits = {"acc": (100, 2), "f1": (100, 2), "acc2_non0": (100, 2), "f1_non0": (100, 2),
                     "wall_time_s": (1, 0)}.get(key, (1, 3))
    v = np.array([r[key] for r in rows], dtype=float) * scale
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def seed_difference(mser: list, ref: list, key: str) -> tuple[str, str, str, str]:
    """Paired over seeds (mser minus reference): the mean difference, each side's seed std and whether the
    difference is beyond both spreads (the one rule every difference in this report is read with), formatted as
    the report prints ``key`` (accuracy and F1 in points)."""
    scale, digits = _unit(key)
    d = (np.asarray(mser, dtype=float) - np.asarray(ref, dtype=float)) * scale
    mean = round(float(d.mean()), digits) + 0.0              # as printed: never "-0.000"
    if len(d) < 2:
        return f"{mean:+.{digits}f}", "n/a", "n/a", "n/a (one seed)"
    sr, sm = np.std(ref, ddof=1) * scale, np.std(mser, ddof=1) * scale
    beyond = "yes" if abs(d.mean()) > max(sr, sm) else "no"
    return f"{mean:+.{digits}f}", f"{sr:.{digits}f}", f"{sm:.{digits}f}", beyond


def report(out: dict) -> str:
    ref, ms = out["reference"], out["mser_reference_preset"]
    lines = ["# FEMF: the public reference code against mser's `reference` preset on mosi-bclstm", "",
             f"Written by `benchmarks/reference_femf.py` at mser {out['mser_revision']}; reference "
             f"{out['reference_revision']}; {out['machine']}; seeds {out['seeds']}; schedule {out['schedule']}; "
             "one thread per run.", "",
             "Both train on mser's 56 training videos of mosi-bclstm (standardised features) and are scored on its "
             "31 test videos with the reference's protocol: the epoch with the best test F1 over every epoch of "
             "both stages, metrics over the utterances with a non-zero label. That protocol selects on the test "
             "set, so these numbers are optimistic by construction; mser's cross-fitted result of the same runs "
             "is the last column group. Accuracy and F1 in percent. The wall times are those of these runs on a "
             "shared machine, beside other work: the speed comparison is `reference_bench_t1.md` and "
             "`reference_bench_t2.md`.", "",
             "| | Acc-2 (non-zero) | F1 (non-zero) | MAE (non-zero) | Corr (non-zero) | epoch chosen | wall time (s) |",
             "|---|---|---|---|---|---|---|"]
    named = [("reference code", ref), ("mser `reference` preset", ms)]
    shown = []
    for name, (_, _, what) in EARLIER_PRESETS.items():
        runs = (out.get("earlier_presets") or {}).get(name) or {}
        if runs:
            seeds = [str(s) for s in out["seeds"] if str(s) in runs]
            named.append((f"mser's earlier preset `{name}` ({out['earlier_revisions'][name]}; seeds "
                          f"{', '.join(seeds)})", [runs[s] for s in seeds]))
            shown.append(f"`{name}` is today's preset {what}")
    for name, rows in named:
        lines.append(f"| {name} | " + " | ".join(_mean_std(rows, k) for k in METRICS)
                     + f" | {', '.join(str(r['epoch']) for r in rows)} | {_mean_std(rows, 'wall_time_s')} |")
    if shown:
        lines += ["", "; ".join(shown) + ": the behaviours the hypotheses below tested before they joined the preset "
                  f"(`{PRESET}` is today's preset's fingerprint, recorded with each run)."]
    lines += ["", "Per-seed difference (mser minus reference) and the two seed spreads:", "",
              "| metric | mean difference | reference seed std | mser seed std | beyond both spreads |",
              "|---|---|---|---|---|"]
    for k in METRICS:
        d, sr, sm, beyond = seed_difference([m[k] for m in ms], [r[k] for r in ref], k)
        lines.append(f"| {k} | {d} | {sr} | {sm} | {beyond} |")
    lines += ["", "mser's `reference` preset under mser's own protocol (cross-fitted selection on the test videos, "
              "every utterance):", "", "| Acc-2 (neg/pos) | F1 (neg/pos) | MAE | Corr |", "|---|---|---|---|",
              "| " + " | ".join(_mean_std([r["crossfit"] for r in ms], k)
                                for k in ("acc2_non0", "f1_non0", "mae", "corr")) + " |"]
    lines += curve_section(out)
    lines += hypothesis_section(out)
    return "\n".join(lines) + "\n"


def curve_mean(curves: list, key: str, last: int | None = None, reduce=np.mean, first: int | None = None) -> float:
    """``reduce`` (mean, min or max) of each run's stage-2 test curve of ``key`` (its last ``last`` epochs when
    given, else its first ``first``), averaged over the runs: the one summary both report sections print."""
    part = slice(0, first) if first else slice(-last if last else 0, None)
    return float(np.mean([reduce(np.asarray(c[key], dtype=float)[part]) for c in curves]))


def hypothesis_section(out: dict) -> list[str]:
    """Each hypothesis side (:data:`HYPOTHESES`) beside the two others, on the seeds it ran."""
    lines = []
    at = {s: i for i, s in enumerate(out["seeds"])}
    for side, (_, _, what, _, extends) in HYPOTHESES.items():
        runs = (out.get("hypotheses") or {}).get(side) or {}
        if extends in EARLIER_PRESETS:                      # an earlier preset plus one
            base = (out.get("earlier_presets") or {}).get(extends) or {}
            preset = f"mser's earlier preset `{extends}`"
        else:                                               # today's preset plus one
            base = {str(s): r for s, r in zip(out["seeds"], out["mser_reference_preset"])}
            preset = "mser's `reference` preset"
        seeds = [s for s in out["seeds"] if str(s) in runs and str(s) in base]
        if not seeds:
            continue
        sides = (("reference code", [out["reference"][at[s]] for s in seeds]),
                 (preset, [base[str(s)] for s in seeds]),
                 (f"{preset}, `{side}`", [runs[str(s)] for s in seeds]))
        lines += ["", f"## Hypothesis `{side}` (seeds {', '.join(map(str, seeds))})", "",
                  f"{preset[0].upper()}{preset[1:]} with {what}; same seeds, schedule and protocol. If this is "
                  "where the gap comes from, the third row moves from the second to the first.", "",
                  "| | Acc-2 (non-zero) | F1 (non-zero) | MAE (non-zero) | Corr (non-zero) | epoch chosen | "
                  "stage-2 MAE, all epochs | stage-2 Corr, all epochs |", "|---|---|---|---|---|---|---|---|"]
        for name, rows in sides:
            curves = [r.get("stage2_curve") for r in rows]
            tail = ([f"{curve_mean(curves, k):.3f}" for k in ("mae", "corr")]
                    if all(curves) else ["n/a", "n/a"])
            lines.append(f"| {name} | " + " | ".join(_mean_std(rows, k) for k in METRICS)
                         + f" | {', '.join(str(r['epoch']) for r in rows)} | " + " | ".join(tail) + " |")
        if extends == EARLIER or not all(r.get("stage2_curve") for _, rows in sides for r in rows):
            continue
        for against, rows in sides[:2]:       # today's preset plus one, paired along stage 2 with both others
            table, cells = paired_table(sides[2][1], rows)
            against = "the reference code" if against == "reference code" else against
            lines += ["", f"`{side}` minus {against}, paired over seeds {', '.join(map(str, seeds))} (in "
                          "brackets whether the difference is beyond both sides' seed spreads):", "", *table, "",
                      curve_sentence(cells)]
    return lines


def curve_pairs(out: dict) -> list[tuple[int, dict, dict]]:
    """(seed, reference curve, mser curve) for the seeds whose two runs recorded their stage-2 test curves."""
    return [(s, r["stage2_curve"], m["stage2_curve"])
            for s, r, m in zip(out["seeds"], out["reference"], out["mser_reference_preset"])
            if "stage2_curve" in r and "stage2_curve" in m]


def curve_section(out: dict) -> list[str]:
    """Whether the two sides differ along the whole of stage 2 or only at the epoch the protocol picks: every
    metric of every stage-2 epoch, summarised per side, then paired over seeds against the difference at the
    protocol's epoch (the runs before curves were recorded have none)."""
    pairs = curve_pairs(out)
    if not pairs:
        return []
    seeds = ", ".join(str(s) for s, _, _ in pairs)
    lines = ["", f"Stage-2 test curves (seeds {seeds}; every stage-2 epoch scored on the test videos, as the "
                 "reference prints them: MAE and Corr to 3 decimals, Acc-2 and F1 to 0.01 points): the mean over all "
                 "stage-2 epochs, over the first 50 and the last 50, and the best epoch of each metric. Figure: "
                 "`reference_femf_curves.png`.", "",
             "| metric | side | all stage-2 epochs | first 50 | last 50 | best epoch |", "|---|---|---|---|---|---|"]
    named = [("reference code", [p[1] for p in pairs]), ("mser `reference` preset", [p[2] for p in pairs])]
    for name in EARLIER_PRESETS:
        earlier = [((out.get("earlier_presets") or {}).get(name) or {}).get(str(s), {}).get("stage2_curve")
                   for s, _, _ in pairs]
        if all(earlier):
            named.append((f"mser's earlier preset `{name}`", earlier))
    for k in METRICS:
        (scale, digits), best = _unit(k), _best(k)
        for name, curves in named:
            cells = [curve_mean(curves, k) * scale, curve_mean(curves, k, first=50) * scale,
                     curve_mean(curves, k, last=50) * scale, curve_mean(curves, k, reduce=best) * scale]
            lines.append(f"| {METRIC_NAMES[k]} | {name} | " + " | ".join(f"{c:.{digits}f}" for c in cells) + " |")
    at = {s: i for i, s in enumerate(out["seeds"])}
    table, rows = paired_table([out["mser_reference_preset"][at[s]] for s, _, _ in pairs],
                               [out["reference"][at[s]] for s, _, _ in pairs])
    lines += ["", f"The same, paired over seeds {seeds} (mser minus reference; accuracy and F1 in points; in "
                  "brackets whether the difference is beyond both sides' seed spreads): at the epoch the protocol "
                  "picks, and along stage 2.", "", *table]
    return lines + ["", curve_sentence(rows)]


def paired_table(a_rows: list[dict], b_rows: list[dict]) -> tuple[list[str], dict]:
    """Runs ``a`` minus runs ``b``, paired by seed (each run with its stage-2 curve): the markdown table of
    :func:`seed_difference` at the protocol's epoch, over all stage-2 epochs, the first 50, the last 50 and at each
    metric's best epoch, and its cells ``{metric: [cell, ...]}`` for :func:`curve_sentence`."""
    lines = ["| metric | at the protocol's epoch | mean of all stage-2 epochs | mean of the first 50 "
             "| mean of the last 50 | best epoch |", "|---|---|---|---|---|---|"]
    rows = {}
    for k in METRICS:
        best = _best(k)
        cells = [seed_difference([a[k] for a in a_rows], [b[k] for b in b_rows], k)]
        for first, last, reduce in ((None, None, np.mean), (50, None, np.mean), (None, 50, np.mean),
                                    (None, None, best)):
            cells.append(seed_difference([curve_mean([a["stage2_curve"]], k, last, reduce, first) for a in a_rows],
                                         [curve_mean([b["stage2_curve"]], k, last, reduce, first) for b in b_rows],
                                         k))
        lines.append(f"| {METRIC_NAMES[k]} | "
                     + " | ".join(f"{d} ({'one seed' if b.startswith('n/a') else b})" for d, _, _, b in cells) + " |")
        rows[k] = cells
    return lines, rows


def curve_sentence(rows: dict) -> str:
    """One sentence read off the paired table by its one rule (beyond both seed spreads or not): for each metric
    whose difference at the protocol's epoch is beyond both spreads, whether the difference averaged over all
    stage-2 epochs is too."""
    gaps = [k for k in METRICS if rows[k][0][3] == "yes"]
    if not gaps:
        return ("At the protocol's epoch no difference is beyond both seed spreads."
                if all(rows[k][0][3] == "no" for k in METRICS) else
                "One seed: no difference can be set against a seed spread.")
    def beyond(cell: tuple) -> str:
        return "beyond both spreads" if cell[3] == "yes" else "within them"

    parts = []
    for k in gaps:
        at, along, early, late = rows[k][:4]
        unit = " points" if k in ("acc", "f1") else ""
        parts.append(f"{METRIC_NAMES[k]} {at[0]}{unit} at the protocol's epoch, {along[0]}{unit} averaged over "
                     f"all stage-2 epochs ({'also' if along[3] == 'yes' else 'not'} beyond both spreads there), "
                     f"{early[0]}{unit} over the first 50 ({beyond(early)}) and {late[0]}{unit} over the last 50 "
                     f"({beyond(late)})")
    return ("Beyond both seed spreads at the epoch the protocol picks (the best test F1 of 300 epochs): "
            + "; ".join(parts) + ".")


def curve_figure(out: dict, path: Path) -> bool:
    """Stage-2 test MAE, Corr and Acc-2 per epoch: each side's mean over the seeds whose two runs both have
    curves (thick; every seed thin beside it), and the earlier preset and each hypothesis averaged over the seeds
    they ran (dotted); False when no seed has curves."""
    pairs = curve_pairs(out)
    if not pairs:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extra = [(f"mser's earlier preset {name}", colour, (out.get("earlier_presets") or {}).get(name) or {})
             for name, colour in zip(EARLIER_PRESETS, ("tab:blue", "tab:cyan"))]
    extra += [(side, colour, (out.get("hypotheses") or {}).get(side) or {})
              for side, (_, _, _, colour, _) in HYPOTHESES.items()]
    def seeds_label(seeds: list) -> str:
        return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, k, label in zip(axes, ("mae", "corr", "acc"), ("test MAE (non-zero labels), lower is better",
                                                           "test Corr (non-zero labels), higher is better",
                                                           "test Acc-2 (non-zero labels, %)")):
        scale, lo, hi = (100 if k == "acc" else 1), np.inf, -np.inf
        for i, name, colour in ((1, "reference code", "tab:gray"), (2, "mser reference preset", "tab:blue")):
            curves = np.array([p[i][k] for p in pairs], dtype=float) * scale
            for c in curves:
                ax.plot(c, color=colour, lw=0.6, alpha=0.35)
            ax.plot(curves.mean(0), color=colour, lw=1.8,
                    label=f"{name}, {'mean of ' if len(pairs) > 1 else ''}{seeds_label([p[0] for p in pairs])}")
            shown = curves[:, 10:] if curves.shape[1] > 20 else curves        # the first epochs off the scale
            lo, hi = min(lo, shown.min()), max(hi, shown.max())
        for name, colour, runs in extra:
            curves = [runs[str(s)]["stage2_curve"][k] for s, _, _ in pairs
                      if "stage2_curve" in runs.get(str(s), {})]
            if curves:
                which = [s for s, _, _ in pairs if "stage2_curve" in runs.get(str(s), {})]
                ax.plot(np.mean(np.array(curves, dtype=float), 0) * scale, color=colour, lw=1, ls=":",
                        label=f"{name}, {seeds_label(which)}")
        pad = 0.15 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("stage-2 epoch")
        ax.set_ylabel(label)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)   # off the data
    fig.suptitle("FEMF on mosi-bclstm, stage 2: the reference code against mser's reference preset")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def _git(path: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _runs(path: Path) -> list[dict]:
    """The finished runs recorded in ``path`` (one JSON object per line; a torn last line is ignored)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _append(path: Path, row: dict) -> None:
    """One finished run, appended as a single write (two processes may append to the same file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` whole (a temporary file beside it, then a rename), so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def side_of(run: dict) -> str | None:
    """The side a recorded run measures: an `mser` run of today's reference preset is ``mser``, one of an earlier
    preset that preset's name in :data:`EARLIER_PRESETS` (a run without a fingerprint: the oldest), one of another
    preset is stale (None: left out); every other side as recorded."""
    if run["side"] != "mser":
        return run["side"]
    if run.get("preset") == PRESET:
        return "mser"
    return next((name for name, (_, fp, _) in EARLIER_PRESETS.items() if fp == run.get("preset")), None)


def collect(rows: list[dict], schedule: str) -> dict | None:
    """The comparison at ``schedule`` over the seeds both the reference and today's preset finished (the latest run
    of each), or None; the earlier preset's and the hypothesis sides' runs of those seeds beside them."""
    by = {(side, r["seed"]): r for r in rows if r["schedule"] == schedule and (side := side_of(r))}
    seeds = sorted({s for side, s in by if side == "reference"} & {s for side, s in by if side == "mser"})
    if not seeds:
        return None
    ref = [by["reference", s] for s in seeds]
    ms = [by["mser", s] for s in seeds]
    return {"seeds": seeds, "schedule": schedule, "preset": PRESET,
            "mser_revision": ", ".join(sorted({r["mser_revision"] for r in ms})),
            "reference_revision": ", ".join(sorted({r["reference_revision"] for r in ref})),
            "machine": ref[0]["machine"], "reference": [r["result"] for r in ref],
            "mser_reference_preset": [r["result"] for r in ms],
            "earlier_presets": {name: {str(s): by[name, s]["result"] for s in seeds if (name, s) in by}
                                for name in EARLIER_PRESETS},
            "earlier_revisions": {name: ", ".join(sorted({by[name, s]["mser_revision"] for s in seeds
                                                          if (name, s) in by})) for name in EARLIER_PRESETS},
            "hypotheses": {side: {str(s): by[side, s]["result"] for s in seeds if (side, s) in by}
                           for side in HYPOTHESES}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mosi-bclstm"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--stage-epochs", type=int, default=150)
    p.add_argument("--out", default=str(RESULTS / "reference_femf"))
    p.add_argument("--side", choices=("both", "reference", "mser", *HYPOTHESES), default="both",
                   help="run one side only (the other can run beside it in a second process), or a hypothesis "
                        "side: mser's preset with one more reference behaviour (HYPOTHESES)")
    p.add_argument("--again", action="store_true",
                   help="train the chosen seeds again even where a run is recorded (to record the stage-2 test "
                        "curve an earlier run lacks); the latest run of each seed is the one reported")
    p.add_argument("--dry-run", action="store_true", help="4 + 4 epochs, one seed, nothing written")
    p.add_argument("--report", action="store_true", help="only rewrite the report from the recorded runs")
    a = p.parse_args(argv)
    if a.report:
        out = collect(_runs(Path(a.out + ".runs.jsonl")), f"{a.stage_epochs} + {a.epochs - a.stage_epochs} epochs, "
                      "batch 64")
        if out is None:
            print(f"no seed that both sides finished in {a.out}.runs.jsonl")
            return 1
        _write(Path(a.out + ".json"), json.dumps(out, indent=1) + "\n")
        _write(Path(a.out + ".md"), report(out))
        curve_figure(out, Path(a.out + "_curves.png"))
        print(report(out))
        return 0
    ref_root = os.environ.get("FEMF_REFERENCE_ROOT")
    sides = ("reference", "mser") if a.side == "both" else (a.side,)
    if "reference" in sides and (not ref_root or not (Path(ref_root) / "FEMF" / "train_MoMKE.py").is_file()):
        print("FEMF_REFERENCE_ROOT is not set to a checkout of L11yc/FEMF (the folder with FEMF/train_MoMKE.py): "
              "skipped")
        return 0
    if a.dry_run:
        a.seeds, a.epochs, a.stage_epochs = a.seeds[:1], 8, 4
    torch.set_num_threads(1)
    schedule = f"{a.stage_epochs} + {a.epochs - a.stage_epochs} epochs, batch 64"
    runs_file = Path(a.out + ".runs.jsonl")
    done = {(side, r["seed"]) for r in _runs(runs_file) if r["schedule"] == schedule and (side := side_of(r))}
    todo = [(side, seed) for seed in a.seeds for side in sides
            if a.dry_run or a.again or (side, seed) not in done]
    for side, seed in sorted(done):
        if seed in a.seeds and side in sides and not (a.dry_run or a.again):
            print(f"seed {seed} {side}: already in {runs_file.name}, not repeated", flush=True)
    ds = load_dataset("mosi-bclstm", data_dir=a.data_dir)
    common = {"schedule": schedule, "mser_revision": _git(ROOT),
              "reference_revision": _git(Path(ref_root)) if ref_root else "not run",
              "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if any(side == "reference" for side, _ in todo):
            write_utterance_format(ds, work)
        for side, seed in todo:
            t = time.time()
            if side == "reference":
                result = run_reference(Path(ref_root), work, seed, a.epochs, a.stage_epochs)
            else:
                overrides, train, _, _, extends = HYPOTHESES.get(side, ({}, {}, "", "", "mser"))
                overrides = {**EARLIER_PRESETS.get(extends, ({},))[0], **overrides}
                result = run_mser(ds, seed, a.epochs, a.stage_epochs, overrides, train)
            print(f"seed {seed} {side} ({time.time() - t:.0f} s): {result}", flush=True)
            if a.dry_run:
                continue
            preset = {"preset": PRESET} if side == "mser" else {}      # which reference preset this run trained
            _append(runs_file, {"side": side, "seed": seed, **common, **preset, "result": result})
            out = collect(_runs(runs_file), schedule)
            if out is not None:
                _write(Path(a.out + ".json"), json.dumps(out, indent=1) + "\n")
                _write(Path(a.out + ".md"), report(out))
                curve_figure(out, Path(a.out + "_curves.png"))
    out = collect(_runs(runs_file), schedule)
    if out is not None and not a.dry_run:
        print(report(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
