"""Does FEMF learn on the utterance-feature format with its default settings? (issue 12, item 6)

The bc-LSTM CMU-MOSI features (``../shared/data/mosi-bclstm``) are written, unstandardised, in the
utterance-feature format (label pickle + ``features/<name>/<utterance>.npy``; docs/data-formats.md),
with the same train / valid / test videos as ``mosi-bclstm`` (56 / 6 / 31). FEMF is then trained on
``mosi-utt`` with the quick profile's defaults for 3 seeds, once as ``load_dataset`` loads it (the
loader standardises with train statistics) and once with ``standardize=false`` (raw features: audio
column 0 is pitch in Hz). Selection is on the format's own validation videos (``valVids``), which,
as on mosi-bclstm, belong to the videos the features were trained on: this checks that training
works, it is not a clean result.

Usage::

    python benchmarks/utterance_copy.py [--data-dir ../shared/data/mosi-bclstm] [--seeds 0 1 2]

Writes ``benchmarks/results/utterance_copy.{json,md}``: per run the test Acc-2 (neg/non-neg), MAE,
chosen epoch and the ``degenerate`` flag, beside the majority class's Acc-2 and the mean predictor's MAE
on the same test split.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_utterance_copy(data_dir: Path, out: Path) -> dict:
    """Write mosi-bclstm (raw features) in the utterance-feature format under ``out``; returns the
    number of videos per split."""
    from mser_lib.data.bclstm import load_mosi_bclstm
    from mser_lib.data.utterance import DEFAULT_FEATURES, LABEL_PICKLES

    ds = load_mosi_bclstm(data_dir, standardize=False)
    video_ids, labels, speakers, sentences, folds = {}, {}, {}, {}, {}
    for s in ("train", "valid", "test"):
        sp = ds.split(s)
        folds[s] = set()
        for n, vid in enumerate(sp.ids):
            real = np.flatnonzero(sp.label_mask[n])
            uids = [f"{vid}_{j}" for j in real]
            video_ids[vid], labels[vid] = uids, [float(sp.labels[n, j]) for j in real]
            speakers[vid], sentences[vid] = [""] * len(uids), np.array([""] * len(uids))
            folds[s].add(vid)
            for m, name in DEFAULT_FEATURES.items():
                folder = out / "features" / name
                folder.mkdir(parents=True, exist_ok=True)
                for u, j in zip(uids, real):
                    np.save(folder / f"{u}.npy", sp.features(m)[n, j].astype(np.float32))
    tup = [video_ids, labels, speakers, sentences, folds["train"], folds["valid"], folds["test"]]
    with open(out / LABEL_PICKLES["mosi"], "wb") as fh:
        pickle.dump(tup, fh, protocol=4)
    return {s: len(v) for s, v in folds.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mosi-bclstm"))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    import torch

    from mser_lib.experiments import get_dataset, run_one
    from mser_lib.train.trainer import trivial_metrics

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "mosi-utt"
        videos = write_utterance_copy(Path(args.data_dir), copy)
        for standardize in (True, False):
            kw = {} if standardize else {"standardize": False}
            ds = get_dataset("mosi-utt", str(copy), "quick", kw)
            trivial = trivial_metrics(ds, "test")       # the mean training label, predicted everywhere
            y = ds.test.labels[ds.test.label_mask]
            majority = max(float((y >= 0).mean()), float((y < 0).mean()))   # best constant sign, Acc-2 neg/non-neg
            for seed in args.seeds:
                t = time.perf_counter()
                rec = run_one("femf", dataset="mosi-utt", seed=seed, profile="quick", data_dir=str(copy),
                              data_kwargs=kw, results_dir=Path(tmp) / "results", record=False, ds=ds,
                              progress=False)
                rows.append({"loader": "standardize (default)" if standardize else "standardize=false (raw)",
                             "seed": seed, "acc2_has0": rec["test"]["acc2_has0"], "mae": rec["test"]["mae"],
                             "best_epoch": rec["best_epoch"], "degenerate": rec.get("degenerate"),
                             "wall_s": round(time.perf_counter() - t, 1),
                             "majority_acc2_has0": majority, "trivial_mae": trivial["mae"]})
                print(rows[-1], flush=True)
    res = {"videos": videos, "seeds": args.seeds, "profile": "quick", "selection": "valid (valVids)",
           "runs": rows, "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "utterance_copy.json").write_text(json.dumps(res, indent=2, default=str))
    lines = ["# FEMF on an utterance-format copy of mosi-bclstm", "",
             f"Videos train / valid / test: {videos['train']} / {videos['valid']} / {videos['test']}; profile "
             f"quick (position-layout defaults), seeds {args.seeds}, selection on the format's valVids (leaky, as "
             "on mosi-bclstm: this checks that training works, not a clean result). Majority: the more frequent "
             "sign of the test labels; mean predictor: the mean training label everywhere. "
             "`python benchmarks/utterance_copy.py`.", "",
             "| loader | seed | test Acc-2 (neg/non-neg) | test MAE | chosen epoch | degenerate | majority Acc-2 | "
             "mean-predictor MAE | wall s |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['loader']} | {r['seed']} | {100 * r['acc2_has0']:.1f} | {r['mae']:.3f} | "
                     f"{r['best_epoch']} | {r['degenerate']} | {100 * r['majority_acc2_has0']:.1f} | "
                     f"{r['trivial_mae']:.3f} | {r['wall_s']} |")
    (out / "utterance_copy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
