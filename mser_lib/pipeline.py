"""``make reproduce``: retrain every run the notebooks need, run the notebooks, report reproduction.

    python -m mser_lib.pipeline --profile quick --dataset synthetic
    python -m mser_lib.pipeline --profile quick --only 00 01          # some notebooks only
    python -m mser_lib.pipeline --profile quick --update-notebooks    # also refresh notebooks/ outputs
    python -m mser_lib.pipeline --reuse records                       # `make tables`: re-render only
    python -m mser_lib.pipeline --readme-table          # refresh the README's results table
    python -m mser_lib.pipeline --profile claims --dataset mosi-bclstm --reuse records --train-only
                                                        # only the runs no record holds yet, then stop
    python -m mser_lib.pipeline --executor ray --ray-address ray://head:10001   # train on a Ray cluster

Three phases:

1. **Train.** Every run the chosen notebooks need (:func:`notebook_runs`) is trained in one grid, the
   longest first on a pool of one-thread workers. Only runs this machine has already finished are
   reused (``reuse="local"``, see :mod:`mser_lib.experiments`): in a fresh clone everything is
   retrained, whatever the committed ``runs.jsonl`` holds. An interrupted reproduce continues where it
   stopped (finished runs are kept, an unfinished one resumes from its ``last.pt``). ``--executor``
   overrides the choice of :func:`mser_lib.notebook.grid_executor`; ``--executor ray`` trains one Ray task per run, on a
   local Ray or on the cluster of ``--ray-address`` (default ``$RAY_ADDRESS``; see
   :func:`mser_lib.executors.run_grid` for what a cluster needs).
2. **Notebooks.** papermill executes them; they find every run trained and only analyse.
3. **Report.** :mod:`mser_lib.reproduction` compares each run trained here with the committed record
   of the same config hash, writes ``tables/reproduction.{csv,md}`` and prints the verdict line.
   ``--strict`` (CI) exits 1 when a run differs.

``--reuse records`` (``make tables``) skips phases 1 and 3: the notebooks re-render from the committed
records and retrain only the runs whose checkpoints a step needs.

Outputs go to ``results/<profile>/<dataset>/``: ``runs.jsonl`` (one record per run),
``notebooks/`` (executed copies), ``tables/`` (CSV, Markdown, LaTeX), ``figures/`` (PNG, PDF),
``notebook_timings.json`` (wall time of each phase and notebook of the committed run; a run writes its own
to ``checkpoints/notebook_timings.json``, and to the committed file only with ``--record-timings``).

The notebooks start with :func:`mser_lib.notebook.notebook_setup`, which turns their papermill parameters into a
:class:`~mser_lib.notebook.NotebookContext` (resolved seeds, data folder, output folders, run arguments) and fixes
the plotting style and the CPU thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from . import estimate, grids
from .executors import EXECUTORS, run_grid
from .experiments import REUSE_MODES
from .notebook import (
    NOTEBOOKS,
    REGRESSION_NOTEBOOKS,
    ROOT,
    apply_threads,
    env_int,
    notebook_paths,
    resolve_data_dir,
    resolve_seeds,
)
from .report.tables import aggregate, load_records, to_markdown, wide_table, write_table
from .train.io import atomic_write_text


def notebook_runs(only: list[str] | None, profile: str, dataset, seeds: list[int]) -> list[dict]:
    """Every run the chosen notebooks train (duplicates kept; :func:`run_grid` trains each once).
    ``dataset``: its name or its ``DatasetInfo`` (the sensitivity sweeps' default points depend on it)."""
    name = dataset if isinstance(dataset, str) else dataset.name
    specs = []
    for nb in notebook_paths(only, name):
        key = nb.name[:2]
        if key == "02":
            specs += [{"model": "femf", "seed": s} for s in seeds]
        elif key == "03":
            specs += grids.main_grid(profile, name, seeds)
        elif key in grids.NOTEBOOK_GRIDS:
            specs += grids.notebook_grid(key, profile, seeds, dataset)
    return specs


#: The training time a reproduce should fit in before :func:`announce_cost` offers a cheaper selection (seconds).
COST_BUDGET_S = 3600


def _grid_setup(args, seeds: list[int]) -> tuple:
    """The dataset, the runs the chosen notebooks train, and the grid's executor, workers and common job settings."""
    from .experiments import get_dataset

    data_dir = resolve_data_dir(args.dataset, args.data_dir)
    ds = get_dataset(args.dataset, data_dir, args.profile)
    specs = notebook_runs(args.only, args.profile, ds.info, seeds)
    executor, workers = apply_threads(args.profile, args.device)
    executor = getattr(args, "executor", None) or executor
    common = {"results_dir": Path(args.results_dir).resolve(), "dataset": args.dataset, "profile": args.profile,
              "data_dir": data_dir, "device": None if args.device in ("", "auto", None) else args.device,
              "force": bool(args.force), "reuse": getattr(args, "reuse", "local")}
    return ds, specs, executor, workers, common


def announce_cost(args, seeds: list[int], ds, specs: list[dict], workers: int,
                  common: dict) -> tuple[list[str], estimate.GridCost]:
    """What the training phase will cost on this machine, said before it starts: the runs' times from their
    committed records, or, for runs no record times (new data), from a probe of each model
    (:mod:`mser_lib.estimate`). When the grid would take longer than :data:`COST_BUDGET_S`, the lines also
    give the cheaper selections (the first seed; notebook 03's main comparison alone; both) with their
    estimates, as settings of the same command (its reuse mode and notebooks). Returns the lines (printed as they
    come) and the runs' costs."""
    from .executors import _job_run
    from .experiments import config_hash

    jobs = [{**common, **s} for s in specs]
    cost = estimate.grid_cost(jobs, ds)
    todo = sum(c > 0 for c in cost.seconds.values())
    wall = cost.wall(workers)
    where = []
    if cost.recorded:
        where.append(f"{cost.recorded} timed by their committed records (their machine)")
    if cost.probed:
        where.append(f"{cost.probed} estimated from probes of a few batches of {cost.models} models on this machine "
                     f"({cost.probe_s:.0f} s; every epoch counted and a variant at its full model's cost, so an upper "
                     "bound: early stopping ends runs sooner)")
    lines = [f"== cost: {todo} of {len(cost.seconds)} runs to train, {estimate.hours(wall)} on {workers} "
             f"worker(s)" + (f": {'; '.join(where)}" if where else "")]
    if wall > COST_BUDGET_S:
        # cheaper selections of this same command (its reuse mode, its notebooks): the first seed, notebook 03 alone
        first = {seeds[0]} if len(seeds) > 1 else None
        chosen = [nb.name[:2] for nb in notebook_paths(args.only, args.dataset)]
        main = ({config_hash(_job_run({**common, **s})) for s in notebook_runs(["03"], args.profile, ds.info, seeds)}
                if "03" in chosen and len(chosen) > 1 else None)
        options = []
        if first:
            options.append((f"the first seed (SEEDS={seeds[0]}, --seeds {seeds[0]})", cost.wall(workers, first)))
        if main:
            options.append(("notebook 03 alone (ONLY=03, --only 03)", cost.wall(workers, runs=main)))
        if first and main:
            options.append((f"the first seed and notebook 03 alone (SEEDS={seeds[0]} ONLY=03, --seeds {seeds[0]} "
                            "--only 03)", cost.wall(workers, first, main)))
        fits = [(what, s) for what, s in options if s <= COST_BUDGET_S]
        shown = fits or ([min(options, key=lambda o: o[1])] if options else [])
        offer = ""
        if shown:
            offer = ((": cheaper selections that fit: " if fits else ": none of the cheaper selections fits; the "
                      "cheapest: ") + "; ".join(f"{what}, {estimate.hours(s)}" for what, s in shown))
        lines.append(f"   more than {COST_BUDGET_S / 60:.0f} minutes{offer}. Every run resumes: stopping with Ctrl-C "
                     "keeps what finished.")
    for line in lines:
        print(line, flush=True)
    return lines, cost


def train_all(args, seeds: list[int]) -> set[str]:
    """Phase 1: train every run the notebooks need, in one grid (longest first), after saying what it will
    cost (:func:`announce_cost`). Returns their config hashes."""
    ds, specs, executor, workers, common = _grid_setup(args, seeds)
    if not specs:
        return set()
    _, cost = announce_cost(args, seeds, ds, specs, workers, common)
    records = run_grid(specs, executor=executor, workers=workers, progress=True, costs=cost.seconds, **common,
                       **_ray_kwargs(args, executor))
    return {r["config_hash"] for r in records}


def _ray_kwargs(args, executor: str) -> dict:
    """``ray_address`` for ``run_grid`` under ``--executor ray`` (empty: ``$RAY_ADDRESS`` or a local Ray)."""
    address = getattr(args, "ray_address", None) or None
    if executor != "ray":
        if address:
            print(f"note: --ray-address {address} is ignored without --executor ray", flush=True)
        return {}
    print(f"   on Ray: {address or os.environ.get('RAY_ADDRESS') or 'a local Ray'}", flush=True)
    return {"ray_address": address}


#: notebooks that read the tables the other notebooks write (the synthesis): they start when all before them ended
READS_OTHERS = ("06",)


def notebook_slots(force: bool) -> int:
    """How many notebooks run at once: one per core, at most 2 (each kernel trains and predicts on one
    thread). One when runs may be retrained inside the notebooks (``force``), so that no two notebooks
    train the same run."""
    return 1 if force else max(1, min(2, os.cpu_count() or 1))


def run_notebooks(args, out: Path, seeds: list[int], force: bool) -> list[tuple[str, float]]:
    """Execute the notebooks with papermill, :func:`notebook_slots` at a time, in their order; a notebook of
    :data:`READS_OTHERS` waits until every notebook before it has ended. Each runs in its own kernel; the
    threads that wait for them are daemons, so Ctrl-C ends the run at once (a kernel exits with its parent)."""
    import queue
    import threading

    import papermill as pm

    out_nb = (out / "notebooks").resolve()
    out_nb.mkdir(parents=True, exist_ok=True)
    results_dir = Path(args.results_dir).resolve()
    os.environ["MSER_REUSE"] = args.reuse          # the notebook kernels inherit it
    params = {"profile": args.profile, "dataset": args.dataset,
              "data_dir": _data_dir_param(args.data_dir, args.dataset), "device": args.device, "seeds": seeds,
              "results_dir": _rel_to_notebooks(results_dir), "force": force}
    ended: queue.Queue = queue.Queue()

    def execute(nb: Path) -> None:
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(out_nb / nb.name), progress_bar=False, kernel_name="python3",
                                parameters=params)
            ended.put((nb, time.perf_counter() - t0, None))
        except BaseException as exc:      # handed to the main thread, which raises it
            ended.put((nb, 0.0, exc))

    pending, running, took = list(notebook_paths(args.only, args.dataset)), 0, {}
    slots = notebook_slots(force)
    # The kernels start in notebooks/ (the notebooks' relative paths). One chdir for the whole phase: papermill's
    # own ``cwd`` changes the process's folder per notebook and restores it when that notebook ends, which two
    # notebooks at a time would undo under each other.
    with contextlib.chdir(NOTEBOOKS):
        while pending or running:
            while pending and running < slots and not (pending[0].name[:2] in READS_OTHERS and running):
                nb = pending.pop(0)
                print(f"== {nb.name}", flush=True)
                threading.Thread(target=execute, args=(nb,), name=f"notebook {nb.name}", daemon=True).start()
                running += 1
            while True:
                try:
                    nb, seconds, exc = ended.get(timeout=0.5)
                    break
                except queue.Empty:
                    continue
            running -= 1
            if exc is not None:
                raise exc
            took[nb.name] = seconds
            strip_run_metadata(out_nb / nb.name)
            print(f"   {nb.name}: {seconds:.1f} s", flush=True)
            if args.update_notebooks:
                update_committed_notebook(out_nb / nb.name, nb)
                print(f"   outputs copied into {nb.relative_to(ROOT)}", flush=True)
    return [(nb.name, took[nb.name]) for nb in notebook_paths(args.only, args.dataset)]


def _rel_to_notebooks(path: Path) -> str:
    """A results folder inside the repository as a path relative to ``notebooks/`` (keeps absolute paths
    out of the executed notebooks); other folders stay absolute."""
    try:
        return os.path.relpath(path, NOTEBOOKS) if path.is_relative_to(ROOT) else str(path)
    except ValueError:
        return str(path)


def _data_dir_param(data_dir: str | None, dataset: str | None = None) -> str:
    """The data folder as the notebooks (run in ``notebooks/``) must see it: ``""`` when it is the
    dataset's default folder (the notebooks find that one themselves, so ``--data-dir`` naming it and
    leaving it out give the same executed notebook), else relative to ``notebooks/`` when it lies next to
    the repository (e.g. ``../../shared/data/mosi-bclstm``), else absolute."""
    if not data_dir:
        return ""
    default = resolve_data_dir(dataset, "") if dataset else None
    if default is not None and Path(data_dir).expanduser().resolve() == Path(default).resolve():
        return ""
    p = Path(os.path.abspath(Path(data_dir).expanduser()))
    return os.path.relpath(p, NOTEBOOKS) if p.is_relative_to(ROOT.parent) else str(p)


def _strip_run_metadata(nb) -> None:
    """Drop papermill's timestamps, durations and paths from a notebook (in place), give its
    injected-parameters cell a fixed id (papermill draws a random one on every run), and join a cell's
    consecutive outputs of one stream (how Jupyter cuts a cell's stdout varies from run to run)."""
    pm_meta = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "exception", "input_path", "output_path"):
        pm_meta.pop(key, None)
    for c in nb.cells:
        c.metadata.pop("execution", None)
        for key in ("start_time", "end_time", "duration", "exception", "status"):
            c.metadata.get("papermill", {}).pop(key, None)
        if "injected-parameters" in c.metadata.get("tags", []):
            c["id"] = "injected-parameters"
        if c.get("outputs"):                 # Jupyter splits one print stream at random flush points
            merged = []
            for o in c.outputs:
                last = merged[-1] if merged else None
                if (last is not None and o.output_type == last.output_type == "stream"
                        and o.get("name") == last.get("name")):
                    last.text += o.text
                else:
                    merged.append(o)
            c.outputs = merged


def strip_run_metadata(path: Path) -> None:
    """Rewrite an executed notebook without papermill's run metadata (:func:`_strip_run_metadata`), so
    that rerunning a notebook whose outputs did not change rewrites the same file (the mosi-bclstm
    copies are committed)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    _strip_run_metadata(nb)
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    shutil.move(tmp, path)


def update_committed_notebook(executed: Path, target: Path) -> None:
    """Copy an executed notebook's outputs into ``notebooks/``: drop papermill's injected-parameters
    cell (so the committed parameters cell, with its environment-variable defaults, stays in charge
    when nbval re-runs it) and papermill's run metadata; the cell sources are the committed ones."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    _strip_run_metadata(nb)
    nb.metadata.pop("papermill", None)
    for c in nb.cells:
        c.metadata.pop("papermill", None)
    orig = nbformat.read(target, as_version=4)
    if [c.source for c in orig.cells] != [c.source for c in nb.cells]:
        raise RuntimeError(f"{target.name} changed while it ran; not copying its outputs")
    tmp = target.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    shutil.move(tmp, target)


def run_direct(args, out: Path, seeds: list[int]) -> None:
    runs = grids.main_grid(args.profile, args.dataset, seeds)
    executor = getattr(args, "executor", None) or "inline"
    run_grid(runs, results_dir=Path(args.results_dir).resolve(), dataset=args.dataset, profile=args.profile,
             data_dir=args.data_dir or None, device=args.device, force=bool(args.force), reuse=args.reuse,
             executor=executor, **_ray_kwargs(args, executor))
    records = load_records(args.results_dir, args.profile, args.dataset)
    table = wide_table(aggregate(records))
    for p in write_table(table, out / "tables", "main_results",
                         caption=f"{args.dataset}, profile {args.profile}, test split, mean ± std over seeds"):
        print(p)
    print(to_markdown(table))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-dir", default="")
    p.add_argument("--device", default="auto")
    p.add_argument("--seeds", default="", help="space-separated seeds; default: the profile's")
    p.add_argument("--force", type=int, default=0, help="1: retrain even the runs this machine has finished")
    p.add_argument("--reuse", default="local", choices=REUSE_MODES,
                   help="local (default): retrain all but the runs this machine finished, then report "
                        "reproduction; records: re-render from the committed records (make tables)")
    p.add_argument("--record-timings", action="store_true",
                   help="write this run's wall times to the committed notebook_timings.json (default: "
                        "checkpoints/notebook_timings.json, beside this machine's checkpoints)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a reproduced run differs (CI)")
    p.add_argument("--prune", action="store_true",
                   help="after the report, drop from runs.jsonl the records that no notebook needed (maintainers, "
                        "before committing regenerated results; the dropped records are printed)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest |difference| of a test metric counted as reproduced (default 1e-4)")
    p.add_argument("--executor", default=None, choices=EXECUTORS,
                   help="how the training phase runs its grid: inline, process (a local pool) or ray (one Ray "
                        "task per run; needs pip install -e '.[ray]'); default: a pool of one-thread workers "
                        "on a multi-core CPU, else inline")
    p.add_argument("--ray-address", default="",
                   help="with --executor ray: the cluster (e.g. ray://head:10001 or auto); default $RAY_ADDRESS, "
                        "else a local Ray")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--readme-table", action="store_true")
    p.add_argument("--train-only", action="store_true",
                   help="phase 1 alone: train the runs the notebooks need, then stop (no notebooks, no report); with "
                        "--reuse records only the runs without a committed record, so a grid too long for one sitting "
                        "is built up over several, each finished run recorded with its test predictions")
    p.add_argument("--estimate", action="store_true",
                   help="say what the training phase would cost on this machine (and what cheaper selection fits "
                        "an hour), then stop: nothing is trained or written")
    p.add_argument("--no-notebooks", action="store_true", help="run the main grid directly")
    p.add_argument("--only", nargs="*", default=None, metavar="NN",
                   help="run only the notebooks whose names start with these prefixes (e.g. 00 01)")
    p.add_argument("--update-notebooks", action="store_true",
                   help="copy the executed notebooks' outputs back into notebooks/ (for committing)")
    args = p.parse_args(argv)
    from .checks import ConfigError
    from .data import dataset_names

    if args.dataset not in dataset_names():
        raise ConfigError("pipeline", "dataset", args.dataset, f"one of {', '.join(dataset_names())}")
    if args.tolerance is not None and not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise ConfigError("pipeline", "tolerance", args.tolerance, "a finite number >= 0")
    env_int("MSER_WORKERS", 1)           # refused here, before any work, when not a count
    env_int("MSER_THREADS", 1)
    if (args.prune or args.update_notebooks) and args.seeds.strip():
        raise ConfigError("pipeline", "prune" if args.prune else "update-notebooks", f"with --seeds {args.seeds}",
                          "the profile's seeds (no --seeds): --prune would drop the other seeds' records, "
                          "--update-notebooks would commit notebooks with fewer seeds")
    if args.update_notebooks and (args.dataset != "synthetic" or args.profile != "quick"):
        raise ConfigError("pipeline", "update-notebooks", f"with --dataset {args.dataset} --profile {args.profile}",
                          "the built-in benchmark at the quick profile: notebooks/ shows its outputs (the other "
                          "executed notebooks stay in results/<profile>/<dataset>/notebooks/)")
    if args.prune and (args.only or args.reuse != "local" or args.no_notebooks):
        raise ConfigError("pipeline", "prune", "with --only, --reuse records or --no-notebooks",
                          "a reproduce of every notebook (it keeps only the runs they need)")
    if args.only is not None and not notebook_paths(args.only):
        raise ConfigError("pipeline", "only", args.only,
                          f"prefixes of the notebooks' names: {', '.join(nb.name[:2] for nb in notebook_paths())}")
    if args.readme_table:
        from .report.readme import write_readme_block

        return write_readme_block(args.results_dir, ROOT / "README.md")
    from . import reproduction

    seeds = resolve_seeds(args.seeds, args.profile, args.dataset)
    if args.estimate:
        ds, specs, _, workers, common = _grid_setup(args, seeds)
        announce_cost(args, seeds, ds, specs, workers, common)
        return 0
    out = Path(args.results_dir) / args.profile / args.dataset
    t0 = time.perf_counter()
    kept = notebook_paths(args.only, args.dataset)
    has_nb = bool(kept)
    left_out = [nb.name for nb in notebook_paths(args.only) if nb not in kept]
    if left_out:
        print(f"{args.dataset} is a classification dataset: not run, written for regression only: "
              + "; ".join(f"{n} ({REGRESSION_NOTEBOOKS[n[:2]]})" for n in left_out), flush=True)
    if args.train_only:         # one trainer per results folder, whatever the reuse mode
        with reproduction.ReproduceLock(args.results_dir, args.profile, args.dataset):
            needed = train_all(args, seeds)
        print(f"\n{len(needed)} runs trained or found recorded in {time.perf_counter() - t0:.0f} s; records in "
              f"{out / 'runs.jsonl'}, test predictions in {out / 'predictions'}")
        return 0
    reproducing = args.reuse == "local"
    if reproducing:
        with reproduction.ReproduceLock(args.results_dir, args.profile, args.dataset):
            return _reproduce(args, seeds, out, t0, has_nb)
    return _reproduce(args, seeds, out, t0, has_nb)


def _reproduce(args, seeds: list[int], out: Path, t0: float, has_nb: bool) -> int:
    """The body of :func:`main`: train, run the notebooks (or the main grid), report."""
    from . import reproduction

    reproducing = args.reuse == "local"
    if reproducing:
        reproduction.snapshot_reference(args.results_dir, args.profile, args.dataset)
    timings, needed = [], None
    if has_nb and not args.no_notebooks:
        if reproducing:
            print("== training every run the notebooks need", flush=True)
            t1 = time.perf_counter()
            needed = train_all(args, seeds)
            timings.append(("training", time.perf_counter() - t1))
            print(f"   {len(needed)} runs in {timings[-1][1]:.1f} s", flush=True)
        timings += run_notebooks(args, out, seeds, force=bool(args.force) and not reproducing)
        # this machine's times go beside its checkpoints; the committed notebook_timings.json (the times of
        # the committed run) changes only when asked, so a reproduce leaves the committed files as they are
        path = out / ("notebook_timings.json" if args.record_timings else "checkpoints/notebook_timings.json")
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update({k: round(v, 1) for k, v in timings})
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(old, indent=2) + "\n")
        print(f"   times: {path}", flush=True)
    else:
        run_direct(args, out, seeds)
    print(f"\nall done in {time.perf_counter() - t0:.0f} s; results in {out}/")
    for sub in ("runs.jsonl", "tables", "figures", "notebooks"):
        if (out / sub).exists():
            print(f"  {out / sub}")
    if not reproducing:
        return 0
    tol = reproduction.TOLERANCE if args.tolerance is None else args.tolerance
    # the runs this reproduce needed (all notebooks), else every run this machine finished
    line, table = reproduction.write_report(args.results_dir, args.profile, args.dataset, tol, only=needed)
    (out / "checkpoints" / reproduction.REFERENCE_NAME).unlink(missing_ok=True)
    if args.prune:
        dropped = reproduction.prune(args.results_dir, args.profile, args.dataset, set(table["config hash"]))
        print(f"pruned {len(dropped)} record(s) no notebook needed from {out / 'runs.jsonl'}: {dropped}")
    differ = int((table["status"] == "differs").sum())
    print(f"\n{line}\n  report: {out / 'tables' / 'reproduction.md'}")
    if differ:
        print(f"\nWARNING: {differ} run(s) did not reproduce the committed numbers; see the report and "
              "docs/reproduction.md ('When runs differ').", file=sys.stderr)
        if args.strict:
            return 1
    return 0


def cli(argv=None) -> int:
    """``python -m mser_lib.pipeline``: :func:`main`, with Ctrl-C and SIGTERM ending in one line that says
    what was kept and how to resume (exit status 130)."""
    from .cli import USER_ERRORS, _message
    from .executors import GridInterrupted

    def _term(signum, frame):       # SIGTERM (a job scheduler) ends the run as Ctrl-C does, in every phase
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        return main(argv)
    except GridInterrupted as exc:
        print(f"\nmser: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nmser: interrupted: finished runs are recorded and an unfinished run keeps its last epoch's "
              "checkpoint (last.pt); run the same command again to resume", file=sys.stderr)
    except USER_ERRORS as exc:      # a user error: one line, as the CLI's (MSER_DEBUG=1 keeps the traceback)
        if os.environ.get("MSER_DEBUG"):
            raise
        print(f"mser: error: {_message(exc)}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    # every record and checkpoint is already written atomically; skip the interpreter's exit handlers, which
    # would wait on the stopped pool's threads for seconds
    os._exit(130)


if __name__ == "__main__":
    sys.exit(cli())
