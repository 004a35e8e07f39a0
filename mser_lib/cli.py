"""Command line: the same functions the notebooks call.

    python -m mser_lib train --model baseline --dataset synthetic --seeds 0 1 2
    python -m mser_lib evaluate --model baseline --dataset synthetic --seed 0 --missing-rate 0.2
    python -m mser_lib datasets [--show mosi-bclstm --data-dir ../shared/data/mosi-bclstm]
    python -m mser_lib table --profile quick --dataset synthetic
    python -m mser_lib search --dataset mosi-bclstm --data-dir ../shared/data/mosi-bclstm --trials 20 --final
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml


def _kv(items: list[str] | None) -> dict:
    """``["hidden=64", "use_fae=false"]`` -> ``{"hidden": 64, "use_fae": False}`` (YAML scalars)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _common(p: argparse.ArgumentParser) -> None:
    from .models import model_names
    p.add_argument("--model", required=True, choices=model_names(), help="model name")
    p.add_argument("--dataset", default="synthetic", help="dataset name (see `datasets`)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset's files")
    p.add_argument("--profile", default="quick", help="smoke | quick | paper")
    p.add_argument("--set", dest="overrides", nargs="*", metavar="KEY=VALUE",
                   help="model config overrides (variants, ablations), e.g. use_fae=false")
    p.add_argument("--train-set", dest="train", nargs="*", metavar="KEY=VALUE",
                   help="trainer overrides, e.g. epochs=10 lr=1e-4")
    p.add_argument("--data-set", dest="data_kwargs", nargs="*", metavar="KEY=VALUE",
                   help="loader arguments, e.g. split=standard")
    p.add_argument("--results-dir", default="results", help="where runs.jsonl and checkpoints go")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | mps (default: the profile's)")


def cmd_train(a) -> int:
    from .experiments import run_one
    seeds = a.seeds if a.seeds else [a.seed]
    for seed in seeds:
        rec = run_one(a.model, a.dataset, seed, a.profile, _kv(a.overrides), _kv(a.train), a.data_dir,
                      _kv(a.data_kwargs), results_dir=a.results_dir, force=a.force, device=a.device,
                      progress=not a.quiet)
        test = {k: round(v, 4) for k, v in (rec["test"] or {}).items()}
        print(json.dumps({"model": a.model, "dataset": a.dataset, "seed": seed, "config_hash":
                          rec["config_hash"], "best_epoch": rec["best_epoch"], "test": test}))
    print(f"records: {Path(a.results_dir) / a.profile / a.dataset / 'runs.jsonl'}")
    return 0


def cmd_evaluate(a) -> int:
    from .data import MissingModality
    from .experiments import config_hash, find_record, get_dataset, resolve_run
    from .models import build_model
    from .train import TrainConfig, evaluate, load_checkpoint

    ds = get_dataset(a.dataset, a.data_dir, a.profile, _kv(a.data_kwargs))
    run = resolve_run(a.model, a.dataset, a.seed, a.profile, _kv(a.overrides), _kv(a.train),
                      _kv(a.data_kwargs), device=a.device, info=ds.info)
    if find_record(a.results_dir, run) is None:
        print("no recorded run with this configuration; train it first with `train` and the same "
              "arguments", file=sys.stderr)
        return 2
    ckdir = Path(a.results_dir) / a.profile / a.dataset / "checkpoints" / config_hash(run)
    bests = sorted(ckdir.rglob("best.pt"), key=lambda p: p.stat().st_mtime)
    if not bests:
        print(f"the run is recorded but its checkpoint is gone from {ckdir}", file=sys.stderr)
        return 2
    net = build_model(a.model, ds.info, run["model_preset"], **run["overrides"])
    if hasattr(net, "stages"):
        net.set_stage(net.stages()[-1])
    net.load_state_dict(load_checkpoint(bests[-1], "cpu")["model"])
    missing = None
    if a.condition:
        missing = MissingModality(condition=a.condition)
    elif a.missing_rate:
        missing = MissingModality(rate=a.missing_rate)
    cfg = TrainConfig(**{**run["train"], "progress": False})
    metrics, _ = evaluate(net, ds.split(a.split), ds.info, cfg, missing=missing, seed=a.seed)
    print(json.dumps({"split": a.split, "missing": missing.name if missing else None,
                      **{k: round(v, 4) for k, v in metrics.items()}}, indent=2))
    return 0


def cmd_datasets(a) -> int:
    from .data import dataset_names, load_dataset
    if a.show:
        ds = load_dataset(a.show, data_dir=a.data_dir, **_kv(a.data_kwargs))
        print(json.dumps(ds.summary(), indent=2))
        return 0
    for name, desc in dataset_names().items():
        print(f"{name:14s} {desc}")
    return 0


def cmd_table(a) -> int:
    from .report.tables import results_table, write_table
    df = results_table(a.results_dir, a.profile, a.dataset)
    if df.empty:
        print("no records yet", file=sys.stderr)
        return 1
    if a.out:
        for path in write_table(df, a.out, "main_results"):
            print(path)
    else:
        from .report.tables import to_markdown
        print(to_markdown(df))
    return 0


def cmd_search(a) -> int:
    from .report.tables import to_markdown, write_table
    from .search import final_metrics, final_runs, run_search, search_table

    overrides, train = _kv(a.overrides), _kv(a.train)
    if overrides and len(a.models) > 1:
        raise SystemExit("--set changes model fields: give it with one --models name only")
    entries = []
    for model in a.models:
        res = run_search(model, a.dataset, a.profile, a.trials, a.seed, a.sampler_seed, a.data_dir,
                         _kv(a.data_kwargs), a.results_dir, overrides, train, progress=not a.quiet)
        print(json.dumps({"model": model, "trials": len(res.trials), "study": str(res.path),
                          "cost_s": round(res.cost_s, 1), "metric": res.metric,
                          "chosen": [None if c is None else {"fold": f, "trial": res.trials[c]["number"],
                                                             "params": res.trials[c]["params"],
                                                             "value": res.trials[c]["fold_values"][f]}
                                     for f, c in enumerate(res.choices)]}))
        finals = metrics = None
        if a.final:
            finals = final_runs(res, a.seeds or None, a.results_dir, progress=not a.quiet)
            metrics = final_metrics(res, finals, a.results_dir)
        entries.append((res, finals, metrics))
    table = search_table(entries)
    if a.out:
        for path in write_table(table, a.out, "search"):
            print(path)
    else:
        print(to_markdown(table))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mser_lib",
                                description="mser: reproducible FEMF and Atsuko (frequency-aware MSA)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or fetch the cached record of) one run per seed")
    _common(t)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--seeds", type=int, nargs="*", help="several seeds (overrides --seed)")
    t.add_argument("--force", action="store_true", help="retrain even if the run is recorded")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a recorded run's best checkpoint on a split")
    _common(e)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--missing-rate", type=float, default=0.0, help="random modality dropout rate")
    e.add_argument("--condition", default=None, help="keep only these modalities: t a v ta tv av tav")
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("datasets", help="list the datasets, or summarise one")
    d.add_argument("--show", default=None, help="dataset name to load and summarise")
    d.add_argument("--data-dir", default=None)
    d.add_argument("--data-set", dest="data_kwargs", nargs="*", metavar="KEY=VALUE")
    d.set_defaults(func=cmd_datasets)

    tb = sub.add_parser("table", help="the results table (mean +- std over seeds) from runs.jsonl")
    tb.add_argument("--profile", default="quick")
    tb.add_argument("--dataset", default="synthetic")
    tb.add_argument("--results-dir", default="results")
    tb.add_argument("--out", default=None, help="folder for CSV, Markdown and LaTeX")
    tb.set_defaults(func=cmd_table)
    sr = sub.add_parser("search", help="the same Optuna search for each model on the cross-fitted selection "
                                       "folds; with --final, the folds' choices over the seeds")
    from .search import MODEL_SPACES
    sr.add_argument("--models", nargs="+", default=sorted(MODEL_SPACES), choices=sorted(MODEL_SPACES))
    sr.add_argument("--dataset", default="mosi-bclstm", help="a dataset the profile cross-fits (selection: crossfit)")
    sr.add_argument("--data-dir", default=None, help="folder holding the dataset's files")
    sr.add_argument("--profile", default="quick", help="smoke | quick | paper")
    sr.add_argument("--trials", type=int, default=20, help="trials per model (a study resumes: only missing ones run)")
    sr.add_argument("--seed", type=int, default=0, help="training seed of the trials")
    sr.add_argument("--sampler-seed", type=int, default=0, help="seeds the trials' settings (RandomSampler)")
    sr.add_argument("--set", dest="overrides", nargs="*", metavar="KEY=VALUE",
                    help="fixed model fields under the searched ones (one model only)")
    sr.add_argument("--train-set", dest="train", nargs="*", metavar="KEY=VALUE",
                    help="fixed trainer settings under the searched ones")
    sr.add_argument("--data-set", dest="data_kwargs", nargs="*", metavar="KEY=VALUE", help="loader arguments")
    sr.add_argument("--final", action="store_true", help="train each fold's choice over the seeds and pool")
    sr.add_argument("--seeds", type=int, nargs="*", help="seeds of the final runs (default: the profile's)")
    sr.add_argument("--results-dir", default="results", help="where runs, checkpoints and search/<model>.db go")
    sr.add_argument("--out", default=None, help="folder for search.csv/.md/.tex (default: print Markdown)")
    sr.add_argument("--quiet", action="store_true", help="no progress bars")
    sr.set_defaults(func=cmd_search)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
