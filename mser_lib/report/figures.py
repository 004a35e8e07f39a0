"""Figures for the notebooks: one seaborn style, atomic PNG + PDF output, and the plotting helpers.

Every helper takes arrays or tables that the library computed (a split, a run record, an analysis
table from :mod:`mser_lib.report.analysis`) and returns a matplotlib ``Figure``; nothing here
trains or changes a result. :func:`save_figure` writes ``<name>.png`` and ``<name>.pdf`` atomically
(temporary file in the same folder, then ``os.replace``), so an interrupted run never leaves a
half-written figure, and without timestamps, so re-running gives the same PDF bytes.

Colours are fixed per modality and per band so that every figure of every notebook reads the same:
text blue, audio orange, vision green; low frequencies dark, high frequencies light.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..metrics import LOWER_IS_BETTER, METRIC_NAMES, in_percent

MODALITY_COLORS = {"text": "#1f77b4", "audio": "#ff7f0e", "vision": "#2ca02c"}
BAND_COLORS = {"low": "#3b528b", "high": "#f4a261"}
SPLIT_COLORS = {"train": "#4c72b0", "valid": "#dd8452", "test": "#55a868"}
FORMATS = ("png", "pdf")


# No date and no version stamps in the files: a re-run that draws the same figure writes the same bytes.
STABLE_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}


def stripplot(**kwargs):
    """``seaborn.stripplot`` with its jitter drawn from a fixed seed: seaborn draws it from numpy's global
    generator, whose state depends on what ran before, so the same data would give other bytes."""
    state = np.random.get_state()
    np.random.seed(0)
    try:
        return sns.stripplot(**kwargs)
    finally:
        np.random.set_state(state)


def set_style(context: str = "notebook") -> None:
    """The project's plotting style (seaborn ``whitegrid``, colour-blind palette, readable sizes)."""
    sns.set_theme(context=context, style="whitegrid", palette="colorblind",
                  rc={"figure.dpi": 100, "savefig.dpi": 150, "axes.titlesize": "medium",
                      "axes.labelsize": "medium", "legend.fontsize": "small", "figure.autolayout": False,
                      "pdf.fonttype": 42, "svg.hashsalt": "mser"})


def save_figure(fig, out_dir: str | Path, name: str, formats: Sequence[str] = FORMATS,
                close: bool = False) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.png`` and ``out_dir/name.pdf`` atomically; return the paths.

    Each file is first written to a temporary file in ``out_dir`` and then renamed over the target,
    so readers never see a partial file. The files carry no creation date and no software
    version (:data:`STABLE_METADATA`), so re-rendering the same figure gives the same bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    paths = []
    for fmt in formats:
        target = out_dir / f"{name}.{fmt}"
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=f".{fmt}.tmp")
        os.close(fd)
        try:
            meta = STABLE_METADATA.get(fmt)
            fig.savefig(tmp, format=fmt, bbox_inches="tight", metadata=meta)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        paths.append(target)
    if close:
        plt.close(fig)
    return paths


# ----------------------------------------------------------------------------------------- data
def label_histogram(labels: dict[str, np.ndarray], label_range: tuple[float, float] | None = (-3, 3),
                    bins: int | np.ndarray | None = None, title: str = "Sentiment labels"):
    """Histogram of the labels of each split (``{"train": y, ...}``, flat arrays of real positions); integer
    class ids (a classification dataset) are drawn as class counts with the majority class's share."""
    fig, axes = plt.subplots(1, len(labels), figsize=(3.6 * len(labels), 3.0), sharey=False, squeeze=False)
    classes = all(np.issubdtype(np.asarray(y).dtype, np.integer) for y in labels.values())
    k = max(int(np.max(y, initial=0)) for y in labels.values()) + 1 if classes else 0
    if not classes and bins is None and label_range is not None:
        lo, hi = label_range
        bins = np.arange(lo - 0.1, hi + 0.2, 0.2) if hi - lo >= 2 else np.linspace(lo, hi, 21)
    for ax, (split, y) in zip(axes[0], labels.items()):
        color = SPLIT_COLORS.get(split, "grey")
        if classes:
            counts = np.bincount(np.asarray(y), minlength=k)
            ax.bar(np.arange(k), counts, color=color, alpha=0.85)
            ax.set_title(f"{split} (n={len(y)}, majority {counts.max() / max(1, counts.sum()):.0%})")
        else:
            y = np.asarray(y, dtype=float)
            ax.hist(y, bins=bins if bins is not None else 30, color=color, alpha=0.85)
            ax.axvline(0.0, color="k", lw=0.8, ls=":")
            ax.set_title(f"{split} (n={len(y)}, mean {y.mean():.2f}, std {y.std():.2f})")
        ax.set_xlabel("class" if classes else "label")
    axes[0, 0].set_ylabel("samples" if classes else "count")
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


def length_histogram(lengths: dict[str, np.ndarray], unit: str = "time steps"):
    """Histogram of real sequence lengths per modality (``{"text": lengths, ...}``)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    lo = min(int(v.min()) for v in lengths.values())
    hi = max(int(v.max()) for v in lengths.values())
    bins = np.arange(lo - 0.5, hi + 1.5, max(1, (hi - lo) // 30 or 1))
    for m, v in lengths.items():
        ax.hist(v, bins=bins, histtype="step", lw=1.8, color=MODALITY_COLORS.get(m), label=m)
    ax.set_xlabel(f"real length ({unit})")
    ax.set_ylabel("samples")
    ax.legend()
    fig.tight_layout()
    return fig


def example_sequences(split, index: int, channels: int = 4, title: str | None = None):
    """The first ``channels`` feature channels of sample ``index`` for each modality (real positions)."""
    mods = ("text", "audio", "vision")
    fig, axes = plt.subplots(1, 3, figsize=(12, 2.8), sharex=False)
    for ax, m in zip(axes, mods):
        x = split.features(m)[index]
        n = int(split.mask(m)[index].sum())
        for c in range(min(channels, x.shape[1])):
            ax.plot(np.arange(n), x[:n, c], lw=1.2, alpha=0.85)
        ax.set_title(f"{m}: {n} steps, first {min(channels, x.shape[1])} of {x.shape[1]} channels")
        ax.set_xlabel("t")
    if title:
        fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return fig


def power_spectra(spectra: pd.DataFrame, bands: dict[str, tuple[float, float]] | None = None,
                  logy: bool = True, title: str = "Average power spectrum per modality"):
    """Average power vs frequency per modality, with optional shaded bands.

    Args:
        spectra: columns ``modality``, ``frequency`` (cycles per step, 0 to 0.5), ``power``
            (:func:`mser_lib.report.analysis.mean_power_spectrum`).
        bands: ``{"audio evidence": (lo, hi), ...}`` shaded and labelled.
    """
    mods = list(dict.fromkeys(spectra["modality"]))
    fig, axes = plt.subplots(1, len(mods), figsize=(4.0 * len(mods), 3.0), sharey=False, squeeze=False)
    for ax, m in zip(axes[0], mods):
        d = spectra[spectra["modality"] == m].dropna(subset=["power"])   # bins no sample reaches
        ax.plot(d["frequency"], d["power"], color=MODALITY_COLORS.get(m, "k"), lw=1.8, marker="o", ms=3)
        for label, (lo, hi) in (bands or {}).items():
            if label.split()[0] in (m, "nuisance") or label == m:
                ax.axvspan(lo, hi, color="grey" if label.startswith("nuisance") else MODALITY_COLORS.get(m),
                           alpha=0.15 if label.startswith("nuisance") else 0.25, label=label)
        if logy:
            ax.set_yscale("log")
        ax.set_title(m)
        ax.set_xlabel("frequency (cycles / step)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right")
    axes[0, 0].set_ylabel("power")
    fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------- spectral
def dft_split_panels(t: np.ndarray, signal: np.ndarray, parts: dict[float, tuple[np.ndarray, np.ndarray]],
                     title: str = "DFT low/high split (FEMF eq. 8) for several cut-offs c"):
    """One column per cut-off ratio ``c``: the signal, its low band and its high band.

    ``parts``: ``{c: (low, high)}``, 1-D arrays over the real positions.
    """
    fig, axes = plt.subplots(2, len(parts), figsize=(3.6 * len(parts), 4.4), sharex=True, sharey="row",
                             squeeze=False)
    for j, (c, (low, high)) in enumerate(parts.items()):
        ax = axes[0, j]
        ax.plot(t, signal, color="0.6", lw=1.0, label="x")
        ax.plot(t, low, color=BAND_COLORS["low"], lw=1.8, label="low")
        ax.set_title(f"c = {c:g}")
        ax2 = axes[1, j]
        ax2.plot(t, high, color=BAND_COLORS["high"], lw=1.5, label="high")
        ax2.set_xlabel("t")
    axes[0, 0].set_ylabel("x and low band")
    axes[1, 0].set_ylabel("high band")
    axes[0, 0].legend(loc="upper right")
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


def band_energy_vs_cutoff(table: pd.DataFrame, reference_c: float | None = None):
    """Share of energy in the high band as a function of ``c``, one line per modality.

    ``table``: columns ``modality``, ``c``, ``high_share``.
    """
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for m, d in table.groupby("modality", sort=False):
        ax.plot(d["c"], d["high_share"], marker="o", ms=3, color=MODALITY_COLORS.get(m), label=m)
    if reference_c is not None:
        ax.axvline(reference_c, color="k", ls=":", lw=1, label=f"c = {reference_c:g}")
    ax.set_xlabel("c (fraction of rfft bins kept in the low band)")
    ax.set_ylabel("energy share of the high band")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    fig.tight_layout()
    return fig


def eigenvectors(U: np.ndarray, eigenvalues: np.ndarray, ks: Iterable[int],
                 title: str = "Path-graph Laplacian eigenvectors (Atsuko eq. 1)"):
    """Plot columns ``ks`` of the eigenbasis ``U`` (T, T), labelled with their eigenvalues."""
    ks = list(ks)
    T = U.shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), gridspec_kw={"width_ratios": [2.2, 1]})
    pal = sns.color_palette("viridis", len(ks))
    for color, k in zip(pal, ks):
        lam = max(float(eigenvalues[k]), 0.0)          # PSD: a tiny negative value is rounding
        axes[0].plot(np.arange(T), U[:, k], marker="o", ms=2.5, lw=1.3, color=color,
                     label=f"k={k}, λ={lam:.2f}")
    axes[0].set_xlabel("node t (time step)")
    axes[0].set_ylabel("u_k(t)")
    axes[0].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0].set_title(f"eigenvectors, T = {T}")
    axes[1].plot(np.arange(T), eigenvalues, marker=".", color="k", lw=1)
    axes[1].set_xlabel("k (sorted)")
    axes[1].set_ylabel("λ_k")
    axes[1].set_title("eigenvalues")
    fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return fig


def spectrum_with_boundaries(spectra: dict[str, np.ndarray], cuts: dict[str, Sequence[float]],
                             equal_width: Sequence[float] | None = None,
                             title: str = "Training-set graph spectra and Equal-Energy band boundaries",
                             planted: dict[str, dict[str, tuple[float, float]]] | None = None):
    """Mean spectral energy per bin of normalised frequency with the fitted cuts (solid) and,
    optionally, the equidistant cuts (dotted); on the cumulative-energy axis the levels k/B (dashed) that
    equal-energy cuts aim at. ``spectra``/``cuts`` are keyed by modality.
    ``planted``: per modality, named bands already in nu (shaded: grey for names starting with
    "nuisance", the modality's colour otherwise), e.g. the built-in data's bands converted by
    :func:`mser_lib.report.narrative.cycles_to_nu`."""
    mods = list(spectra)
    fig, axes = plt.subplots(1, len(mods), figsize=(4.0 * len(mods), 3.0), squeeze=False)
    for ax, m in zip(axes[0], mods):
        s = np.asarray(spectra[m], dtype=float)
        F = len(s)
        nu = (np.arange(F) + 0.5) / F
        ax.bar(nu, s / max(s.sum(), 1e-300), width=1.0 / F, color=MODALITY_COLORS.get(m, "grey"), alpha=0.8)
        cum = np.cumsum(s) / max(s.sum(), 1e-300)
        ax2 = ax.twinx()
        ax2.plot(np.arange(1, F + 1) / F, cum, color="k", lw=1)
        n_bands = len(cuts.get(m, [])) + 1
        for k in range(1, n_bands):       # equal energy: each cut where the cumulative energy reaches k/B
            ax2.axhline(k / n_bands, color="crimson", lw=0.8, ls="--", alpha=0.6)
        ax2.set_ylim(0, 1.02)
        ax2.grid(False)
        if m == mods[-1]:
            ax2.set_ylabel("cumulative energy")
        for c in cuts.get(m, []):
            ax.axvline(float(c), color="crimson", lw=1.6)
        for c in equal_width or []:
            ax.axvline(float(c), color="k", lw=1, ls=":")
        for name, (lo, hi) in ((planted or {}).get(m) or {}).items():
            nuis = name.startswith("nuisance")
            ax.axvspan(float(lo), float(hi), color="grey" if nuis else MODALITY_COLORS.get(m, "grey"),
                       alpha=0.15 if nuis else 0.25, lw=0)
            ax.text((float(lo) + float(hi)) / 2, 0.86 if nuis else 0.97, name, transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=7, color="dimgrey" if nuis else "k")
        ax.set_yscale("log")
        ax.set_xlabel("normalised graph frequency ν")
        ax.set_title(f"{m}: cuts " + ", ".join(f"{float(c):.2f}" for c in cuts.get(m, [])))
    axes[0, 0].set_ylabel("energy share per bin")
    fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return fig


def band_components(t: np.ndarray, signal: np.ndarray, components: np.ndarray,
                    labels: Sequence[str] | None = None,
                    title: str = "Band components X_b = U_b U_b^T X sum back to X"):
    """The K band components (K, T) of one channel and their sum over the signal (T,)."""
    K = components.shape[0]
    labels = list(labels or [f"band {b + 1}" for b in range(K)])
    fig, axes = plt.subplots(1, K + 1, figsize=(3.3 * (K + 1), 2.9), sharey=True)
    pal = sns.color_palette("mako", K)
    for b in range(K):
        axes[b].plot(t, components[b], color=pal[b], lw=1.6)
        axes[b].set_title(labels[b])
        axes[b].set_xlabel("t")
    axes[-1].plot(t, signal, color="0.5", lw=3, alpha=0.6, label="X")
    axes[-1].plot(t, components.sum(0), color="crimson", lw=1.2, ls="--", label="Σ_b X_b")
    axes[-1].set_title("sum of the bands")
    axes[-1].set_xlabel("t")
    axes[-1].legend()
    fig.suptitle(title, y=1.04)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------- training
_SERIES = {"train_total": "training objective", "experts": "stage 1: experts", "full": "stage 2: full model",
           "low": "low band", "high": "high band"}


def series_label(v) -> str:
    """A readable name for a history series, stage or metric: ``valid_mae`` -> ``valid MAE``."""
    v = str(v)
    if v in _SERIES:
        return _SERIES[v]
    for split in ("valid_", "train_", "test_"):
        if v.startswith(split) and v[len(split):] in METRIC_NAMES:
            return f"{split[:-1]} {METRIC_NAMES[v[len(split):]]}"
    return METRIC_NAMES.get(v, v)


def ylabel_for(history: pd.DataFrame, hue: str) -> str:
    """The y label of an unfaceted history plot: the one series' name, or "value of each series"."""
    vals = list(dict.fromkeys(history[hue])) if hue in history.columns else []
    return series_label(vals[0]) if len(vals) == 1 else "value (see legend)"


def learning_curves(history: pd.DataFrame, x: str = "epoch", y: str = "value", hue: str = "series",
                    col: str | None = None, row: str | None = None, best: pd.DataFrame | None = None,
                    sharey: bool = False, height: float = 2.6, title: str | None = None):
    """Line plots of a long table of training histories (one line per ``hue``, facets by ``col``/``row``).

    ``best`` (optional): rows with the same facet columns plus ``x`` marking the epoch chosen on VALID.
    """
    from matplotlib.ticker import MaxNLocator

    g = sns.relplot(data=history, x=x, y=y, hue=hue, col=col, row=row, kind="line", marker="o",
                    markersize=3, height=height, aspect=1.35, facet_kws={"sharey": sharey, "sharex": True},
                    errorbar=("sd", 1) if "seed" in history.columns else None)
    facets = [c for c in (row, col) if c]
    for ax in g.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # readable facet titles, y labels and legend entries instead of "series = train_total | stage = experts"
    for keys, ax in (g.axes_dict.items() if facets else []):
        keys = keys if isinstance(keys, tuple) else (keys,)
        named = dict(zip(facets, keys))
        ax.set_title(" · ".join(series_label(v) for v in named.values()), fontsize="medium")
        series = [named[c] for c in facets if c in ("series", "metric")]
        ax.set_ylabel(series_label(series[0]) if series else (series_label(hue) if y == "value" else y))
    if not facets:
        for ax in g.axes.flat:
            ax.set_ylabel(ylabel_for(history, hue) if y == "value" else y)
    if g.legend is not None:
        for t in g.legend.texts:
            t.set_text(series_label(t.get_text()))
    if best is not None and not best.empty:
        for keys, ax in g.axes_dict.items():
            keys = keys if isinstance(keys, tuple) else (keys,)
            sel = best
            for name, val in zip([c for c in (row, col) if c], keys):
                if name in sel.columns:
                    sel = sel[sel[name] == val]
            for e in sel[x].unique():
                ax.axvline(e, color="k", ls=":", lw=0.9)
    if title:
        g.figure.suptitle(title, y=1.03)
    return g.figure


def expert_metric_grid(table: pd.DataFrame, metrics: Sequence[str], mean_col: str = "mean",
                       std_col: str = "std", title: str = "Stage-1 experts on VALID (mean ± std over seeds)"):
    """Bar chart of per-(modality, band) expert metrics.

    ``table``: columns ``modality``, ``band``, ``metric``, ``mean``, ``std``.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0), squeeze=False)
    mods = [m for m in ("text", "audio", "vision") if m in set(table["modality"])]
    width = 0.38
    for ax, metric in zip(axes[0], metrics):
        d = table[table["metric"] == metric]
        for k, band in enumerate(("low", "high")):
            vals = [d[(d["modality"] == m) & (d["band"] == band)] for m in mods]
            means = [float(v[mean_col].iloc[0]) if len(v) else np.nan for v in vals]
            stds = [float(v[std_col].iloc[0]) if len(v) and not pd.isna(v[std_col].iloc[0]) else 0.0
                    for v in vals]
            ax.bar(np.arange(len(mods)) + (k - 0.5) * width, means, width, yerr=stds, capsize=3,
                   color=BAND_COLORS[band], label=f"{band}-frequency expert")
        ax.set_xticks(np.arange(len(mods)), mods)
        ax.set_title(metric)
    axes[0, 0].legend(fontsize="x-small")
    fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return fig


def seed_points(long: pd.DataFrame, metrics: Sequence[str], order: Sequence[str] | None = None,
                title: str = "Test metrics per run (each dot is one seed; bar = mean)"):
    """Per-seed test values (dots) and their mean (bar) for each model/variant row.

    ``long``: columns ``row`` (label), ``seed``, ``metric``, ``value``.
    """
    order = list(order) if order is not None else list(dict.fromkeys(long["row"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 0.45 * len(order) + 1.6),
                             squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], metrics):
        d = long[long["metric"] == metric]
        percent = in_percent(metric)                              # accuracies and F1 in %, as the tables print them
        if percent:
            d = d.assign(value=d["value"].astype(float) * 100.0)
        sns.barplot(data=d, y="row", x="value", order=order, errorbar=None, color="0.85", ax=ax)
        stripplot(data=d, y="row", x="value", order=order, hue="row", hue_order=order, palette="deep",
                  legend=False, size=5, ax=ax)
        name = METRIC_NAMES.get(metric, metric)
        better = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        ax.set_title(name)
        ax.set_xlabel(f"{name}{' (%)' if percent else ''}, test split; {better}")
        ax.set_ylabel("")
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


def weights_heatmap(matrix: pd.DataFrame, title: str, fmt: str = ".2f", cmap: str = "rocket_r", ax=None):
    """Heat map of a small weight matrix (e.g. mean router weights: modality x expert)."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(0.9 * matrix.shape[1] + 2.2, 0.6 * matrix.shape[0] + 1.2))
    sns.heatmap(matrix, annot=True, fmt=fmt, cmap=cmap, vmin=0.0, vmax=1.0, cbar=False, ax=ax)
    ax.set_title(title)
    return ax.figure if own else ax


__all__ = ["set_style", "save_figure", "label_histogram", "length_histogram", "example_sequences",
           "power_spectra", "dft_split_panels", "band_energy_vs_cutoff", "eigenvectors",
           "spectrum_with_boundaries", "band_components", "learning_curves", "expert_metric_grid",
           "seed_points", "weights_heatmap", "MODALITY_COLORS", "BAND_COLORS", "SPLIT_COLORS"]
