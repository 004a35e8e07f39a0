"""What a notebook needs to start: its papermill parameters resolved into a :class:`NotebookContext`.

Every numbered notebook's first code cell is ``ctx = notebook_setup(profile, dataset, data_dir, device, seeds,
results_dir, force)``: it resolves the seeds (the profile's unless given), the data folder, the output folders
``<results_dir>/<profile>/<dataset>/{tables,figures}``, the torch thread count and the grid executor
(:func:`apply_threads`), and applies the plotting style. The context then carries the arguments every run of the
notebook shares (:attr:`NotebookContext.run_kwargs`, :attr:`NotebookContext.grid_kwargs`) and writes tables and
figures (:meth:`NotebookContext.save_table`, :meth:`NotebookContext.show_table`, :meth:`NotebookContext.save_figure`).
``make reproduce`` (:mod:`mser_lib.pipeline`) executes the notebooks with papermill and uses the same thread and
executor rules for its training phase.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .data import dataset_task
from .experiments import REUSE_MODES, load_profile, profile_seeds
from .report.tables import write_table

ROOT = Path(__file__).resolve().parents[1]
#: The numbered notebooks' folder.
NOTEBOOKS = ROOT / "notebooks"


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
        line shown under the figure (what is drawn, from how many runs and seeds): the figure is displayed here,
        then its caption, and closed, so that the cell's end does not show it again below the caption."""
        from .report.figures import save_figure

        self.written += save_figure(fig, self.figures, name)
        if caption:
            import matplotlib.pyplot as plt
            from IPython.display import Markdown, display

            display(fig)
            display(Markdown(f"*Figure `{name}`.* {caption}"))
            plt.close(fig)

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


def resolve_seeds(seeds, profile: str, dataset: str | None = None) -> list[int]:
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


def env_int(name: str, low: int, default: int | None = None) -> int | None:
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
    workers = env_int("MSER_WORKERS", 1, max(1, min(cores, 4)) if (on_cpu and threads == 1) else 1)
    return ("process" if workers > 1 else "inline"), workers


def apply_threads(profile: str, device: str | None, threads: int | None = None) -> tuple[str, int]:
    """Set torch's intra-op threads for this process and choose the grid executor; returns
    ``(executor, workers)`` (:func:`grid_executor`). Threads: ``MSER_THREADS`` if set, else ``threads``,
    else (on a CPU) the profile's ``threads``, else torch's default."""
    import torch

    from .train import resolve_device

    prof = load_profile(profile)  # fails early on an unknown profile
    on_cpu = resolve_device(device or prof.get("device") or "auto").type == "cpu"
    env_threads = env_int("MSER_THREADS", 1)
    if env_threads is not None:
        threads = env_threads
    elif threads is None and on_cpu:
        threads = prof.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    return grid_executor(threads, on_cpu)


#: The notebooks written for regression only, and why: on a classification dataset (MIntRec, the built-in
#: classification benchmark) the pipeline runs the others and prints this.
REGRESSION_NOTEBOOKS = {
    "02": "FEMF's expert pre-training is read through each band expert's MAE and correlation with the label",
    "04": "the ablation and deviation tables compare MAE and Acc-2 against the papers' regression tables",
    "05": "the robustness curves and sensitivity sweeps are FEMF's and Atsuko's regression figures",
    "06": "the figures re-draw the papers' regression figures from the runs of 04 and 05",
}


def notebook_paths(only: list[str] | None = None, dataset: str | None = None) -> list[Path]:
    """The numbered notebooks in order; ``only`` keeps those whose name starts with one of its items; on a
    classification ``dataset`` the notebooks of :data:`REGRESSION_NOTEBOOKS` are left out."""
    nbs = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        nbs = [nb for nb in nbs if any(nb.name.startswith(o) for o in only)]
    if dataset is not None and dataset_task(dataset) == "classification":
        nbs = [nb for nb in nbs if nb.name[:2] not in REGRESSION_NOTEBOOKS]
    return nbs


class NotApplicable(RuntimeError):
    """A notebook written for regression was given a classification dataset."""


def notebook_setup(profile: str = "quick", dataset: str = "synthetic", data_dir=None, device: str = "auto",
                   seeds=None, results_dir="../results", force: bool = False,
                   threads: int | None = None, notebook: str | None = None) -> NotebookContext:
    """Turn a notebook's papermill parameters into a :class:`NotebookContext`.

    * ``seeds``: ``None``/empty = the profile's seeds (or its dataset section's); a list, an int or ``"0 1 2"``.
    * ``data_dir``: empty = none (for ``mosi-bclstm``: ``../shared/data/mosi-bclstm`` if present).
    * Threads: ``MSER_THREADS`` if set, else ``threads``, else the profile's ``threads`` (1 for
      ``smoke`` and ``quick``: their models are small and one thread per run is fastest), else torch's
      default. With one thread per run on a CPU, grids run on a pool (:func:`grid_executor`).
    * Reuse of recorded runs: ``MSER_REUSE`` (``local``, the default, or ``records``; see
      :mod:`mser_lib.experiments`), which ``make tables`` sets.
    * ``notebook``: the calling notebook's number ("04"). A notebook of :data:`REGRESSION_NOTEBOOKS`
      given a classification dataset stops here with :class:`NotApplicable`, which says why and which
      notebooks do apply, instead of failing later on a regression metric.
    * Applies the project's plotting style and creates ``tables/`` and ``figures/`` under
      ``<results_dir>/<profile>/<dataset>/``.
    """
    import torch

    from .report.figures import set_style

    if notebook in REGRESSION_NOTEBOOKS and dataset_task(dataset) == "classification":
        raise NotApplicable(
            f"notebook {notebook} does not apply to {dataset!r}, a classification dataset: "
            f"{REGRESSION_NOTEBOOKS[notebook]}. On classification data run the notebooks "
            f"{', '.join(p.name[:2] for p in notebook_paths(dataset=dataset))} "
            f"(make reproduce DATA={dataset} runs those and skips this one)")
    executor, workers = apply_threads(profile, device, threads)
    reuse = os.environ.get("MSER_REUSE", "local")
    if reuse not in REUSE_MODES:
        raise ValueError(f"MSER_REUSE must be one of {REUSE_MODES}, got {reuse!r}")
    results_dir = Path(results_dir).expanduser().resolve()
    out = results_dir / profile / dataset
    ctx = NotebookContext(
        profile=profile, dataset=dataset, data_dir=resolve_data_dir(dataset, data_dir),
        device=device or "auto", seeds=resolve_seeds(seeds, profile, dataset), results_dir=results_dir,
        force=bool(force), out=out, tables=out / "tables", figures=out / "figures",
        threads=torch.get_num_threads(), executor=executor, workers=workers, reuse=reuse)
    ctx.tables.mkdir(parents=True, exist_ok=True)
    ctx.figures.mkdir(parents=True, exist_ok=True)
    set_style()
    return ctx
