"""What ``make reproduce DATA=mosi`` costs on a full-size MMSA CMU-MOSI pickle, said before it starts.

Usage::

    python benchmarks/mmsa_full_size.py                    # quick profile, this machine, a few minutes
    python benchmarks/mmsa_full_size.py --profile paper    # the papers' profile
    python benchmarks/mmsa_full_size.py --keep /tmp/mmsa   # keep the generated pickle there

No MMSA release is on this machine, so the script writes one of the real size from random numbers: MMSA's
``MOSI/Processed/unaligned_50.pkl`` layout with 1284 / 229 / 686 utterances, text 50 x 768 (BERT-sized
features), audio 375 x 5 and vision 500 x 20, each sequence's real length drawn uniformly between a quarter
of the padded length and all of it, labels uniform in [-3, 3]. Random features cost what real ones cost:
every model's work depends on the shapes and lengths only.

It measures, on this machine:

1. loading the pickle (checked and fingerprinted as ``get_dataset`` does);
2. Atsuko's equal-energy band fitting on the whole training split (the preparation that ran silently for
   15-30 minutes before the issue on the papers' models' speed);
3. the training phase's cost as ``make reproduce ... ESTIMATE=1`` announces it (``mser_lib.estimate``:
   a probe of a few batches per configuration, every epoch counted), and the cheaper selections it offers;
4. the estimator against time measured: on the built-in benchmark, each run's estimate at the number of
   epochs it really ran, beside the wall time of its committed record (the same runs, trained on the CPU kind
   named in the records). Under load both sides slow down unequally, so the load average is written beside it.

Writes ``benchmarks/results/mmsa_full_size_<profile>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: MMSA CMU-MOSI, unaligned_50: utterances per split and (padded length, feature size) per modality.
SPLITS = {"train": 1284, "valid": 229, "test": 686}
SHAPES = {"text": (50, 768), "audio": (375, 5), "vision": (500, 20)}


def write_mosi_pickle(root: Path, seed: int = 0) -> Path:
    """A full-size MMSA CMU-MOSI pickle of random numbers at ``root/MOSI/Processed/unaligned_50.pkl``
    (the keys and dtypes of docs/data-formats.md)."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in SPLITS.items():
        d, lengths = {}, {}
        for m, (length, dim) in SHAPES.items():
            lengths[m] = rng.integers(max(1, length // 4), length + 1, size=n)
            real = np.arange(length)[None] < lengths[m][:, None]
            d[m] = (rng.standard_normal((n, length, dim), dtype=np.float32) * real[..., None]).astype(np.float32)
        attn = (np.arange(SHAPES["text"][0])[None] < lengths["text"][:, None]).astype(np.float32)
        ids = rng.integers(1, 30_000, size=attn.shape).astype(np.float32) * attn
        y = rng.uniform(-3, 3, size=n).astype(np.float32)
        d.update({
            "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
            "id": np.array([f"{split}video{i // 10}$_${i % 10}" for i in range(n)], dtype=object),
            "text_bert": np.stack([ids, attn, np.zeros_like(attn)], axis=1).astype(np.float32),
            "audio_lengths": lengths["audio"].astype(np.int64), "vision_lengths": lengths["vision"].astype(np.int64),
            "regression_labels": y, "classification_labels": np.sign(y).astype(np.float32),
            "annotations": np.array(["Positive" if v >= 0 else "Negative" for v in y], dtype=object),
        })
        data[split] = d
    path = root / "MOSI" / "Processed" / "unaligned_50.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=4)
    return path


def band_fitting_seconds(ds, profile: str) -> float:
    """Atsuko's ``prepare`` (its equal-energy band boundaries) on the whole training split, one thread."""
    import torch

    from mser_lib.experiments import resolve_run
    from mser_lib.models import build_model

    run = resolve_run("atsuko", ds.info.name, 0, profile, info=ds.info)
    net = build_model("atsuko", ds.info, run["model_preset"], **run["overrides"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        net.prepare(ds)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def estimator_check(results_dir: Path) -> dict:
    """The estimator on the built-in benchmark's grid: each run's estimate at the epochs it really ran (so early
    stopping is not counted against it) beside its committed record's wall time."""
    from mser_lib import estimate, pipeline
    from mser_lib.experiments import committed_record, config_hash, get_dataset, resolve_run

    ds = get_dataset("synthetic", None, "quick")
    specs = pipeline.notebook_runs(None, "quick", ds.info, [0, 1, 2])
    probes, seen, rows = {}, set(), []
    for s in specs:
        run = resolve_run(s["model"], "synthetic", s.get("seed", 0), "quick", s.get("overrides"), s.get("train"),
                          info=ds.info)
        h = config_hash(run)
        rec = committed_record(results_dir, run)
        if h in seen or rec is None:
            continue
        seen.add(h)
        key = run["model"]                    # one probe per model, as the announcement does
        if key not in probes:
            probes[key] = estimate.probe(run, ds)
        ran = copy.deepcopy(run)
        stages = [st for st in rec.get("stages") or [] if st.get("stage")]
        if stages:
            ran["train"]["stage_epochs"] = {st["stage"]: st["epochs_run"] for st in stages}
        else:
            ran["train"]["epochs"] = rec["epochs_run"]
        rows.append({"model": run["model"], "variant": bool(run["overrides"]),
                     "estimate_s": estimate.run_seconds(ran, ds, probes[key]),
                     "recorded_s": float(rec["wall_time_s"]), "cpu": (rec.get("versions") or {}).get("cpu")})
    by_model = {}
    for r in rows:
        m = by_model.setdefault(r["model"], {"runs": 0, "estimate_s": 0.0, "recorded_s": 0.0})
        m["runs"] += 1
        m["estimate_s"] += r["estimate_s"]
        m["recorded_s"] += r["recorded_s"]
    total_e, total_r = sum(r["estimate_s"] for r in rows), sum(r["recorded_s"] for r in rows)
    plain = [r for r in rows if not r["variant"]]
    plain_e, plain_r = sum(r["estimate_s"] for r in plain), sum(r["recorded_s"] for r in plain)
    return {"runs": len(rows), "estimate_s": total_e, "recorded_s": total_r, "ratio": total_e / total_r,
            "plain_runs": len(plain), "plain_ratio": plain_e / plain_r,
            "by_model": by_model, "record_cpus": sorted({str(r["cpu"]) for r in rows})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--keep", default="", help="write the pickle here and keep it (default: a temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args()

    from mser_lib import pipeline
    from mser_lib.experiments import cpu_description, get_dataset, versions

    load_before = os.getloadavg()
    tmp = None if a.keep else tempfile.TemporaryDirectory(prefix="mmsa_full_")
    root = Path(a.keep or tmp.name)
    t0 = time.perf_counter()
    path = write_mosi_pickle(root)
    t_write, size = time.perf_counter() - t0, path.stat().st_size
    t0 = time.perf_counter()
    ds = get_dataset("mosi", str(root), a.profile)
    t_load = time.perf_counter() - t0
    t_bands = band_fitting_seconds(ds, a.profile)

    results = tempfile.TemporaryDirectory(prefix="mmsa_results_")      # no record times these runs
    ns = argparse.Namespace(dataset="mosi", data_dir=str(root), profile=a.profile, only=None, device="auto",
                            executor=None, force=0, results_dir=results.name)
    seeds = pipeline.resolve_seeds("", a.profile, "mosi")
    _, specs, _, workers, common = pipeline._grid_setup(ns, seeds)
    t0 = time.perf_counter()
    lines, cost = pipeline.announce_cost(ns, seeds, ds, specs, workers, common)
    t_announce = time.perf_counter() - t0
    lines = [line.replace(str(root), "/path/to/MMSA") for line in lines]     # not this run's temporary folder
    check = estimator_check(ROOT / "results")
    load_after = os.getloadavg()
    results.cleanup()
    if tmp is not None:
        tmp.cleanup()

    out = {
        "profile": a.profile, "machine": {"cpu": cpu_description(), "cores": os.cpu_count(),
                                          "platform": platform.platform(), "load_avg_before": load_before,
                                          "load_avg_after": load_after},
        "versions": versions(), "pickle": {"path_in_root": str(path.relative_to(root)), "splits": SPLITS,
                                           "shapes": SHAPES, "bytes": size, "write_s": t_write},
        "load_s": t_load, "atsuko_band_fitting_s": t_bands, "announce_s": t_announce, "announcement": lines,
        "runs": len(cost.seconds), "workers": workers, "grid_wall_s": cost.wall(workers),
        "run_seconds_sum": sum(cost.seconds.values()), "estimator_check": check,
    }
    dest = Path(a.out)
    dest.mkdir(parents=True, exist_ok=True)
    stem = f"mmsa_full_size_{a.profile}"
    (dest / f"{stem}.json").write_text(json.dumps(out, indent=2) + "\n")
    (dest / f"{stem}.md").write_text(report(out))
    print(report(out))
    return 0


def report(o: dict) -> str:
    from mser_lib.estimate import hours

    c = o["estimator_check"]
    lines = [
        f"# `make reproduce DATA=mosi PROFILE={o['profile']}` on a full-size MMSA CMU-MOSI pickle",
        "",
        f"Generated by `benchmarks/mmsa_full_size.py` on {o['machine']['cpu']} ({o['machine']['cores']} cores), "
        f"load average {o['machine']['load_avg_before'][0]:.2f} at the start and "
        f"{o['machine']['load_avg_after'][0]:.2f} at the end (1 minute). The pickle is random numbers of MMSA MOSI's "
        "size "
        f"({', '.join(f'{k} {v}' for k, v in o['pickle']['splits'].items())} utterances; "
        + ", ".join(f"{m} {L} x {d}" for m, (L, d) in o["pickle"]["shapes"].items())
        + f"; {o['pickle']['bytes'] / 2**20:.0f} MiB).",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| loading the pickle (checked, fingerprinted) | {o['load_s']:.1f} |",
        f"| Atsuko's band fitting on the training split (one thread) | {o['atsuko_band_fitting_s']:.1f} |",
        f"| the cost announcement (probes of every configuration) | {o['announce_s']:.1f} |",
        "",
        f"**What `make reproduce DATA=mosi PROFILE={o['profile']} ESTIMATE=1` printed** ({o['runs']} runs, "
        f"{o['workers']} workers; every epoch counted, so an upper bound):",
        "",
        "```",
        *o["announcement"],
        "```",
        "",
        f"**The estimator against recorded times** (the built-in benchmark, {c['runs']} runs, each estimated at the "
        f"epochs it ran; records made on {', '.join(c['record_cpus'])}): estimates sum to {c['estimate_s']:.0f} s, the "
        f"records' wall times to {c['recorded_s']:.0f} s (ratio {c['ratio']:.2f}); over the {c['plain_runs']} runs "
        f"that set no override (each model as the probe measured it) the ratio is {c['plain_ratio']:.2f}, and the "
        "rest is the variants, estimated at their full model's cost. The records were trained two at a time; the "
        "probes ran beside whatever else the machine did.",
        "",
        "| model | runs | estimate (s) | recorded (s) | ratio |",
        "|---|---:|---:|---:|---:|",
        *[f"| {m} | {v['runs']} | {v['estimate_s']:.1f} | {v['recorded_s']:.1f} | "
          f"{v['estimate_s'] / v['recorded_s']:.2f} |" for m, v in c["by_model"].items()],
        "",
        f"The whole grid at the full schedule: {hours(o['grid_wall_s'])} on {o['workers']} workers "
        f"({o['run_seconds_sum'] / 3600:.1f} h of one-thread training).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
