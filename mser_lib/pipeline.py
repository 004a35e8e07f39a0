"""``make reproduce``: retrain every run the notebooks need, run the notebooks, report reproduction.

    python -m mser_lib.pipeline --profile quick --dataset synthetic
    python -m mser_lib.pipeline --profile quick --only 00 01          # some notebooks only
    python -m mser_lib.pipeline --profile quick --update-notebooks    # also refresh notebooks/ outputs
    python -m mser_lib.pipeline --reuse records                       # `make tables`: re-render only
    python -m mser_lib.pipeline --readme-table          # refresh the README's results table
    python -m mser_lib.pipeline --executor ray --ray-address ray://head:10001   # train on a Ray cluster

Three phases:

1. **Train.** Every run the chosen notebooks need (:func:`notebook_runs`) is trained in one grid, the
   longest first on a pool of one-thread workers. Only runs this machine has already finished are
   reused (``reuse="local"``, see :mod:`mser_lib.experiments`): in a fresh clone everything is
   retrained, whatever the committed ``runs.jsonl`` holds. An interrupted reproduce continues where it
   stopped (finished runs are kept, an unfinished one resumes from its ``last.pt``). ``--executor``
   overrides the choice of :func:`grid_executor`; ``--executor ray`` trains one Ray task per run, on a
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

The notebooks start with :func:`notebook_setup`, which turns their papermill parameters into a
:class:`NotebookContext` (resolved seeds, data folder, output folders, run arguments) and fixes the
plotting style and the CPU thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import grids  # noqa: E402
from .executors import EXECUTORS, run_grid  # noqa: E402
from .experiments import REUSE_MODES, load_profile, model_seeds, profile_seeds  # noqa: E402
from .models.registry import compared_models, model_spec  # noqa: E402
from .report.tables import aggregate, load_records, to_markdown, wide_table, write_table  # noqa: E402
from .train.io import atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def main_grid(profile: str, dataset: str, seeds: list[int]) -> list[dict]:
    """The main comparison: every registered method (FEMF, Atsuko, EMOE), then every baseline with each of
    its ``main_variants`` (the baseline on all three modalities and on each alone), for every seed (a model
    whose profile section sets ``n_seeds``: its first ones, :func:`~mser_lib.experiments.model_seeds`). The
    same models for every profile and dataset; seeds vary."""
    runs = []
    for seed in seeds:
        for name in compared_models():
            if seed not in model_seeds(profile, dataset, name, seeds):
                continue
            for overrides in model_spec(name).main_variants:
                runs.append({"model": name, "seed": seed, **({"overrides": dict(overrides)} if overrides else {})})
    return runs


# ------------------------------------------------------------------------------------ notebooks
@dataclass
class NotebookContext:
    """What a notebook needs after its parameters cell (see :func:`notebook_setup`)."""

    profile: str
    dataset: str
    data_dir: str | None
    device: str
    seeds: list[int]
    results_dir: Path
    force: bool
    out: Path
    tables: Path
    figures: Path
    threads: int
    executor: str = "inline"
    workers: int = 1
    reuse: str = "local"
    written: list = field(default_factory=list)

    @property
    def run_kwargs(self) -> dict:
        """Arguments shared by every run of the notebook (for ``run_one``/``run_grid``)."""
        return {"dataset": self.dataset, "profile": self.profile, "data_dir": self.data_dir,
                "device": None if self.device in ("", "auto", None) else self.device,
                "results_dir": self.results_dir, "force": self.force, "reuse": self.reuse}

    @property
    def grid_kwargs(self) -> dict:
        """``run_kwargs`` plus the executor: a pool of single-threaded workers on a multi-core CPU."""
        return {**self.run_kwargs, "executor": self.executor, "workers": self.workers, "progress": False}

    def rel(self, path) -> str:
        """``path`` relative to the repository root when it is inside it (for printing)."""
        p = Path(path).resolve()
        try:
            return p.relative_to(ROOT).as_posix()
        except ValueError:
            return p.as_posix()

    def save_figure(self, fig, name: str, caption: str = "") -> None:
        """Write ``figures/<name>.png`` and ``.pdf`` (atomically) and add them to ``written``, quietly:
        :meth:`written_summary` reports every saved file in one line at the end. ``caption``: one computed
        line shown with the figure (what is drawn, from how many runs and seeds)."""
        from .report.figures import save_figure

        self.written += save_figure(fig, self.figures, name)
        if caption:
            from IPython.display import Markdown, display

            display(Markdown(f"*Figure `{name}`.* {caption}"))

    def save_table(self, df, name: str, caption: str = "") -> None:
        """Write ``tables/<name>.csv``, ``.md`` and ``.tex`` (atomically) and add them to ``written``,
        quietly (see :meth:`written_summary`)."""
        self.written += write_table(df, self.tables, name, caption=caption)

    def show_table(self, df, name: str, caption: str = "", columns: list[str] | None = None,
                   rows: int | None = None) -> None:
        """:meth:`save_table` the whole of ``df``, then display its inline form
        (:func:`mser_lib.report.tables.inline_table`: at most 8 columns and ``rows`` rows, the rest named)."""
        from IPython.display import Markdown, display

        from .report.tables import INLINE_ROWS, inline_table

        self.save_table(df, name, caption=caption)
        display(Markdown(inline_table(df, columns, rows or INLINE_ROWS, full=f"{self.rel(self.tables)}/{name}.md")))

    def written_summary(self) -> str:
        """One line for every file this notebook saved: how many, where, and the folders with the
        names (without extensions) saved in each, e.g. ``"12 files written under results/quick/
        synthetic: tables/ main_results, run_costs; figures/ curves"``."""
        groups: dict = {}
        for p in self.written:
            p = Path(p)
            groups.setdefault(p.parent.name, {})[p.stem] = None
        parts = [f"{folder}/ {', '.join(stems)}" for folder, stems in groups.items()]
        return f"{len(self.written)} files written under {self.rel(self.out)}: " + "; ".join(parts)


def _resolve_seeds(seeds, profile: str, dataset: str | None = None) -> list[int]:
    """The seeds to run: the profile's (for ``dataset``) when none are given; else integers in
    ``[0, MAX_SEED]`` from a list or a space- or comma-separated string (ConfigError otherwise)."""
    from .checks import MAX_SEED, ConfigError

    if seeds is None or (isinstance(seeds, str) and not seeds.strip()):
        return profile_seeds(profile, dataset)
    items = seeds.replace(",", " ").split() if isinstance(seeds, str) else ([seeds] if isinstance(seeds, int)
                                                                              else list(seeds))
    out = []
    for item in items:
        text = str(item).strip()
        if not re.fullmatch(r"\d+", text) or int(text) > MAX_SEED:
            raise ConfigError("pipeline", "seeds", seeds, f"integers in [0, {MAX_SEED}], separated by spaces "
                              f"(found {text!r})")
        out.append(int(text))
    return out


def _env_int(name: str, low: int, default: int | None = None) -> int | None:
    """An integer environment variable of at least ``low``; ``default`` when unset; ConfigError otherwise."""
    from .checks import ConfigError

    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    if not re.fullmatch(r"\s*\d+\s*", raw) or int(raw) < low:
        raise ConfigError("environment", name, raw, f"an integer >= {low}")
    return int(raw)


def resolve_data_dir(dataset: str, data_dir) -> str | None:
    """``data_dir`` as given; for ``mosi-bclstm`` without one, ``../shared/data/mosi-bclstm`` next to the
    repository when it exists."""
    if data_dir:
        return os.path.abspath(Path(data_dir).expanduser())   # keeps symlinks (a linked ../shared)
    if dataset == "mosi-bclstm":
        from .data.bclstm import default_data_dir

        d = default_data_dir()
        return str(d) if d is not None else None
    return None


def grid_executor(threads: int | None, on_cpu: bool) -> tuple[str, int]:
    """``(executor, workers)`` for the grids: with one thread per run on a CPU, a pool of
    ``min(cores, 4)`` workers (``MSER_WORKERS`` overrides), else in-process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = _env_int("MSER_WORKERS", 1, max(1, min(cores, 4)) if (on_cpu and threads == 1) else 1)
    return ("process" if workers > 1 else "inline"), workers


def apply_threads(profile: str, device: str | None, threads: int | None = None) -> tuple[str, int]:
    """Set torch's intra-op threads for this process and choose the grid executor; returns
    ``(executor, workers)`` (:func:`grid_executor`). Threads: ``MSER_THREADS`` if set, else ``threads``,
    else (on a CPU) the profile's ``threads``, else torch's default."""
    import torch

    from .train import resolve_device

    prof = load_profile(profile)  # fails early on an unknown profile
    on_cpu = resolve_device(device or prof.get("device") or "auto").type == "cpu"
    env_threads = _env_int("MSER_THREADS", 1)
    if env_threads is not None:
        threads = env_threads
    elif threads is None and on_cpu:
        threads = prof.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    return grid_executor(threads, on_cpu)


def notebook_setup(profile: str = "quick", dataset: str = "synthetic", data_dir=None, device: str = "auto",
                   seeds=None, results_dir="../results", force: bool = False,
                   threads: int | None = None) -> NotebookContext:
    """Turn a notebook's papermill parameters into a :class:`NotebookContext`.

    * ``seeds``: ``None``/empty = the profile's seeds (or its dataset section's); a list, an int or ``"0 1 2"``.
    * ``data_dir``: empty = none (for ``mosi-bclstm``: ``../shared/data/mosi-bclstm`` if present).
    * Threads: ``MSER_THREADS`` if set, else ``threads``, else the profile's ``threads`` (1 for
      ``smoke`` and ``quick``: their models are small and one thread per run is fastest), else torch's
      default. With one thread per run on a CPU, grids run on a pool (:func:`grid_executor`).
    * Reuse of recorded runs: ``MSER_REUSE`` (``local``, the default, or ``records``; see
      :mod:`mser_lib.experiments`), which ``make tables`` sets.
    * Applies the project's plotting style and creates ``tables/`` and ``figures/`` under
      ``<results_dir>/<profile>/<dataset>/``.
    """
    import torch

    from .report.figures import set_style

    executor, workers = apply_threads(profile, device, threads)
    reuse = os.environ.get("MSER_REUSE", "local")
    if reuse not in REUSE_MODES:
        raise ValueError(f"MSER_REUSE must be one of {REUSE_MODES}, got {reuse!r}")
    results_dir = Path(results_dir).expanduser().resolve()
    out = results_dir / profile / dataset
    ctx = NotebookContext(
        profile=profile, dataset=dataset, data_dir=resolve_data_dir(dataset, data_dir),
        device=device or "auto", seeds=_resolve_seeds(seeds, profile, dataset), results_dir=results_dir,
        force=bool(force), out=out, tables=out / "tables", figures=out / "figures",
        threads=torch.get_num_threads(), executor=executor, workers=workers, reuse=reuse)
    ctx.tables.mkdir(parents=True, exist_ok=True)
    ctx.figures.mkdir(parents=True, exist_ok=True)
    set_style()
    return ctx


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order; ``only`` keeps those whose name starts with one of its items."""
    nbs = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        nbs = [nb for nb in nbs if any(nb.name.startswith(o) for o in only)]
    return nbs


def notebook_runs(only: list[str] | None, profile: str, dataset, seeds: list[int]) -> list[dict]:
    """Every run the chosen notebooks train (duplicates kept; :func:`run_grid` trains each once).
    ``dataset``: its name or its ``DatasetInfo`` (the sensitivity sweeps' default points depend on it)."""
    name = dataset if isinstance(dataset, str) else dataset.name
    specs = []
    for nb in notebook_paths(only):
        key = nb.name[:2]
        if key == "02":
            specs += [{"model": "femf", "seed": s} for s in seeds]
        elif key == "03":
            specs += main_grid(profile, name, seeds)
        elif key in grids.NOTEBOOK_GRIDS:
            specs += grids.notebook_grid(key, profile, seeds, dataset)
    return specs


def train_all(args, seeds: list[int]) -> set[str]:
    """Phase 1: train every run the notebooks need, in one grid (longest first). Returns their config hashes."""
    from .experiments import get_dataset

    data_dir = resolve_data_dir(args.dataset, args.data_dir)
    info = get_dataset(args.dataset, data_dir, args.profile).info
    specs = notebook_runs(args.only, args.profile, info, seeds)
    if not specs:
        return set()
    executor, workers = apply_threads(args.profile, args.device)
    executor = getattr(args, "executor", None) or executor
    records = run_grid(specs, results_dir=Path(args.results_dir).resolve(), executor=executor, workers=workers,
                       progress=True, dataset=args.dataset, profile=args.profile,
                       data_dir=data_dir, device=None if args.device in ("", "auto", None) else args.device,
                       force=bool(args.force), reuse="local", **_ray_kwargs(args, executor))
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

    pending, running, took = list(notebook_paths(args.only)), 0, {}
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
    return [(nb.name, took[nb.name]) for nb in notebook_paths(args.only)]


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
    runs = main_grid(args.profile, args.dataset, seeds)
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
    _env_int("MSER_WORKERS", 1)           # refused here, before any work, when not a count
    _env_int("MSER_THREADS", 1)
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

    seeds = _resolve_seeds(args.seeds, args.profile, args.dataset)
    out = Path(args.results_dir) / args.profile / args.dataset
    t0 = time.perf_counter()
    has_nb = bool(notebook_paths(args.only))
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
