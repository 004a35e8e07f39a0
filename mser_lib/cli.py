"""Command line: the same functions the notebooks call.

    python -m mser_lib train --model baseline --dataset synthetic --seeds 0 1 2
    python -m mser_lib evaluate --model baseline --dataset synthetic --seed 0 --missing-rate 0.2
    python -m mser_lib datasets [--show mosi-bclstm --data-dir ../shared/data/mosi-bclstm]
    python -m mser_lib table --profile quick --dataset synthetic
    python -m mser_lib search --dataset mosi-bclstm --data-dir ../shared/data/mosi-bclstm --trials 20 --final

A user error (an unknown model, dataset or profile, a missing data folder, a malformed ``KEY=VALUE``, a
setting out of range, a malformed data file) prints one line ``mser: error: ...`` to stderr and exits
with status 2. Other exceptions are bugs and keep their traceback; ``MSER_DEBUG=1`` shows the traceback of
user errors too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import yaml

from .checks import MAX_SEED

PROG = "mser"


class UsageError(ValueError):
    """A command line that cannot mean anything (malformed ``KEY=VALUE``, conflicting options)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (``mser: error: ...``) and exit status 2."""

    def error(self, message: str):
        cmd = self.prog.split()[-1] if " " in self.prog else ""
        hint = f"python -m mser_lib {cmd + ' ' if cmd and cmd != 'mser_lib' else ''}--help"
        self.exit(2, f"{PROG}: error: {' '.join(message.split())} (see {hint})\n")


# YAML 1.1 reads 1e-4 (no dot) as a string; such values are numbers on the command line.
_NUMBER = re.compile(r"[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _scalar(text: str):
    """One value of ``KEY=VALUE``: YAML scalars (``64``, ``false``, ``null``, ``[1, 2]``, ``{a: 1}``), with
    every decimal number a number (``1e-4``, ``3E2``, ``+.5``). NaN and inf stay strings."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    try:
        if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader)):
            # an alias can expand a few hundred bytes into gigabytes (a "billion laughs")
            raise UsageError(f"the value {shown!r} uses a YAML alias (*name); write the value out instead")
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"cannot parse the value {shown!r} ({' '.join(str(exc).split())[:200]})") from None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        v = value.strip().replace("_", "")
        try:
            return int(v)
        except ValueError:
            return float(v)
    return value


def _kv(items: list[str] | None, option: str = "--set") -> dict:
    """``["hidden=64", "use_fae=false", "lr=1e-4"]`` -> ``{"hidden": 64, "use_fae": False, "lr": 0.0001}``."""
    out = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip() or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k.strip()):
            raise UsageError(f"{option} expects KEY=VALUE with KEY a setting name, got {item!r}")
        out[k.strip()] = _scalar(v)
    return out


def _arg_type(parse, ok, message: str):
    """An argparse ``type``: ``parse(text)`` must succeed and satisfy ``ok``, else ``message``, got <text>."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"{message}, got {text!r}")
        return value
    return convert


_seed = _arg_type(int, lambda v: 0 <= v <= MAX_SEED, f"a seed must be an integer in [0, {MAX_SEED}]")
_positive = _arg_type(int, lambda v: v >= 1, "expected an integer >= 1")
_rate = _arg_type(float, lambda v: 0.0 <= v < 1.0, "expected a rate in [0, 1)")


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
    from .data.loaders_registry import loader_arguments
    from .data.validate import scale_warnings
    from .experiments import get_dataset, run_one
    seeds = a.seeds if a.seeds else [a.seed]
    overrides, train, data_kwargs = _kv(a.overrides), _kv(a.train, "--train-set"), _kv(a.data_kwargs, "--data-set")
    ds = get_dataset(a.dataset, a.data_dir, a.profile, data_kwargs)
    for warning in scale_warnings(ds):
        hint = " (--data-set standardize=true z-scores every feature with train-split statistics)" \
            if "standardize" in (loader_arguments(a.dataset) or []) else ""
        print(f"{PROG}: warning: {warning}{hint}", file=sys.stderr)
    for seed in seeds:
        rec = run_one(a.model, a.dataset, seed, a.profile, overrides, train, a.data_dir, data_kwargs,
                      results_dir=a.results_dir, force=a.force, device=a.device, progress=not a.quiet)
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

    overrides, train, data_kwargs = _kv(a.overrides), _kv(a.train, "--train-set"), _kv(a.data_kwargs, "--data-set")
    missing = None
    if a.condition:
        missing = MissingModality(condition=a.condition)
    elif a.missing_rate:
        missing = MissingModality(rate=a.missing_rate)
    ds = get_dataset(a.dataset, a.data_dir, a.profile, data_kwargs)
    run = resolve_run(a.model, a.dataset, a.seed, a.profile, overrides, train, data_kwargs, device=a.device,
                      info=ds.info)
    if find_record(a.results_dir, run) is None:
        print(f"{PROG}: error: no recorded run with this configuration; train it first with `train` and the "
              "same arguments", file=sys.stderr)
        return 2
    ckdir = Path(a.results_dir) / a.profile / a.dataset / "checkpoints" / config_hash(run)
    bests = sorted(ckdir.rglob("best.pt"), key=lambda p: p.stat().st_mtime)
    if not bests:
        print(f"{PROG}: error: the run is recorded but its checkpoint is gone from {ckdir}", file=sys.stderr)
        return 2
    net = build_model(a.model, ds.info, run["model_preset"], **run["overrides"])
    if hasattr(net, "stages"):
        net.set_stage(net.stages()[-1])
    net.load_state_dict(load_checkpoint(bests[-1], "cpu")["model"])
    cfg = TrainConfig(**{**run["train"], "progress": False})
    metrics, _ = evaluate(net, ds.split(a.split), ds.info, cfg, missing=missing, seed=a.seed)
    print(json.dumps({"split": a.split, "missing": missing.name if missing else None,
                      **{k: round(v, 4) for k, v in metrics.items()}}, indent=2))
    return 0


def cmd_datasets(a) -> int:
    from .data import dataset_names, load_dataset
    if a.show:
        ds = load_dataset(a.show, data_dir=a.data_dir, **_kv(a.data_kwargs, "--data-set"))
        print(json.dumps(ds.summary(), indent=2))
        return 0
    for name, desc in dataset_names().items():
        print(f"{name:14s} {desc}")
    return 0


def cmd_table(a) -> int:
    from .experiments import load_profile, runs_path
    from .report.tables import results_table, write_table
    load_profile(a.profile)                      # an unknown profile is an error, not an empty table
    df = results_table(a.results_dir, a.profile, a.dataset)
    if df.empty:
        print(f"{PROG}: error: no records yet in {runs_path(a.results_dir, a.profile, a.dataset)}", file=sys.stderr)
        return 2
    if a.out:
        for path in write_table(df, a.out, "main_results"):
            print(path)
    else:
        from .report.tables import to_markdown
        print(to_markdown(df))
    return 0


def cmd_ledger(a) -> int:
    """The deviation ledger alone (notebook 04's section): its grid trained or reused, its table written. With
    ``--from-records`` nothing trains: the table is written from the committed records, the bootstraps from the
    committed predictions (or this machine's checkpoints), and a missing record stops it with the runs named."""
    from . import grids
    from .executors import run_grid
    from .experiments import committed_record, get_dataset, profile_seeds, resolve_run
    from .notebook import grid_executor
    from .report.ablations import deviation_ledger, grid_frame, ledger_collapse
    from .report.analysis import collapse_table
    from .report.narrative import collapse_sentence
    from .report.tables import to_markdown, write_table

    ds = get_dataset(a.dataset, a.data_dir, a.profile)
    seeds = a.seeds if a.seeds else profile_seeds(a.profile, a.dataset)
    specs = grids.deviations(a.profile, seeds, ds.info.layout, ds.info.name)
    if a.from_records:
        missing = [f"{s['tag']} (seed {s['seed']})" for s in specs
                   if committed_record(a.results_dir, resolve_run(s["model"], a.dataset, s["seed"], a.profile,
                                                                  s.get("overrides"), s.get("train"),
                                                                  info=ds.info)) is None]
        if missing:
            runs = Path(a.results_dir) / a.profile / a.dataset / "runs.jsonl"
            raise ValueError(f"{runs}: no record of {len(missing)} ledger run(s), e.g. {'; '.join(missing[:3])}; "
                             "--from-records trains nothing (leave it out to train them)")
    executor, workers = grid_executor(1, True)
    recs = run_grid(specs, results_dir=a.results_dir, dataset=a.dataset, profile=a.profile, data_dir=a.data_dir,
                    executor=executor, workers=workers, progress=not a.quiet,
                    reuse="records" if a.from_records else "local")
    out = Path(a.results_dir) / a.profile / a.dataset
    ledger = deviation_ledger(grid_frame(specs, recs), specs, recs, ds, a.results_dir, out / "predictions",
                              retrain=not a.from_records)
    table = ledger.set_index("deviation")
    for path in write_table(table, out / "tables", "deviations",
                            caption=f"Deviation ledger on {ds.info.name} ({a.profile}): each switch flipped on its "
                                    "model's default run, paired over seeds"):
        print(path)
    brief = ["MAE: flipped - default", "seed 95% CI", "bootstrap 95% CI", "p adjusted (Holm)", "seeds", "schedule",
             "resolved"]
    print(to_markdown(table[brief]))
    collapse = ledger_collapse(specs, recs, ds)        # notebook 04's late-collapse table, from the same records
    for path in write_table(collapse_table(collapse), out / "tables", "ledger_late_collapse",
                            caption=f"Runs of each ledger row that beat the trivial predictor on VALID and ended "
                                    f"worse than it ({ds.info.name}, {a.profile}; medians over those runs)"):
        print(path)
    print(collapse_sentence(collapse))
    return 0


def cmd_search(a) -> int:
    from .report.tables import to_markdown, write_table
    from .search import final_metrics, final_runs, run_search, search_table

    overrides, train, data_kwargs = _kv(a.overrides), _kv(a.train, "--train-set"), _kv(a.data_kwargs, "--data-set")
    if overrides and len(a.models) > 1:
        raise UsageError("--set changes model fields: give it with one --models name only")
    entries = []
    for model in a.models:
        res = run_search(model, a.dataset, a.profile, a.trials, a.seed, a.sampler_seed, a.data_dir,
                         data_kwargs, a.results_dir, overrides, train, progress=not a.quiet)
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
    p = _Parser(prog="python -m mser_lib",
                                description="mser: reproducible FEMF and Atsuko (frequency-aware MSA)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or fetch the cached record of) one run per seed")
    _common(t)
    t.add_argument("--seed", type=_seed, default=0)
    t.add_argument("--seeds", type=_seed, nargs="*", help="several seeds (overrides --seed)")
    t.add_argument("--force", action="store_true", help="retrain even if the run is recorded")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a recorded run's best checkpoint on a split")
    _common(e)
    e.add_argument("--seed", type=_seed, default=0)
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--missing-rate", type=_rate, default=0.0, help="random modality dropout rate")
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
    lg = sub.add_parser("ledger", help="the deviation ledger alone: each switch flipped on its model's default "
                                       "run (grids.DEVIATIONS), trained or reused, and its table")
    lg.add_argument("--dataset", default="synthetic")
    lg.add_argument("--data-dir", default=None)
    lg.add_argument("--profile", default="quick")
    lg.add_argument("--seeds", type=_seed, nargs="*", help="default: the profile's")
    lg.add_argument("--results-dir", default="results")
    lg.add_argument("--quiet", action="store_true", help="no progress bars")
    lg.add_argument("--from-records", action="store_true",
                    help="train nothing: the committed records, and the committed predictions for the bootstraps")
    lg.set_defaults(func=cmd_ledger)
    sr = sub.add_parser("search", help="the same Optuna search for each model on the cross-fitted selection "
                                       "folds; with --final, the folds' choices over the seeds")
    from .search import model_spaces
    spaces = list(model_spaces())
    sr.add_argument("--models", nargs="+", default=spaces, choices=spaces)
    sr.add_argument("--dataset", default="mosi-bclstm", help="a dataset the profile cross-fits (selection: crossfit)")
    sr.add_argument("--data-dir", default=None, help="folder holding the dataset's files")
    sr.add_argument("--profile", default="quick", help="smoke | quick | paper")
    sr.add_argument("--trials", type=_positive, default=20,
                    help="trials per model (a study resumes: only missing ones run)")
    sr.add_argument("--seed", type=_seed, default=0, help="training seed of the trials")
    sr.add_argument("--sampler-seed", type=_seed, default=0, help="seeds the trials' settings (RandomSampler)")
    sr.add_argument("--set", dest="overrides", nargs="*", metavar="KEY=VALUE",
                    help="fixed model fields under the searched ones (one model only)")
    sr.add_argument("--train-set", dest="train", nargs="*", metavar="KEY=VALUE",
                    help="fixed trainer settings under the searched ones")
    sr.add_argument("--data-set", dest="data_kwargs", nargs="*", metavar="KEY=VALUE", help="loader arguments")
    sr.add_argument("--final", action="store_true", help="train each fold's choice over the seeds and pool")
    sr.add_argument("--seeds", type=_seed, nargs="*", help="seeds of the final runs (default: the profile's)")
    sr.add_argument("--results-dir", default="results", help="where runs, checkpoints and search/<model>.db go")
    sr.add_argument("--out", default=None, help="folder for search.csv/.md/.tex (default: print Markdown)")
    sr.add_argument("--quiet", action="store_true", help="no progress bars")
    sr.set_defaults(func=cmd_search)
    return p


#: Exceptions that report what the user gave (settings, names, files), not a bug: one line, exit 2.
USER_ERRORS = (ValueError, KeyError, OSError, FloatingPointError)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]                           # str(KeyError) adds quotes
    else:
        text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        if os.environ.get("MSER_DEBUG"):
            raise
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
