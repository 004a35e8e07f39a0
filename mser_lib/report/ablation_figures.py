"""Figures of notebooks 04-06 (ablations, robustness, sensitivity, the papers' visualisations).

Same conventions as :mod:`mser_lib.report.figures` (its style, colours and ``save_figure``): each
helper takes tables or arrays computed from recorded runs and returns a matplotlib ``Figure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..metrics import METRIC_NAMES, in_percent
from ..models.registry import model_colors
from .ablations import masking_alone
from .figures import MODALITY_COLORS


def _name(m: str) -> str:
    return METRIC_NAMES.get(m, m)


def variant_points(frame: pd.DataFrame, metrics: Sequence[str], order: Sequence[str],
                   reference: str | None = None, title: str = ""):
    """One panel per metric: each seed's value per variant (dots), the seeds joined across variants
    (thin lines: paired by seed, so a difference that holds seed by seed shows as parallel lines) and
    the mean over seeds (black bar marker); the reference variant's mean as a dashed line. Points
    and lines, not bars: the value axis is zoomed to the data and does not start at 0."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 0.35 * len(order) + 1.6),
                             sharey=True, squeeze=False)
    pos = {lab: k for k, lab in enumerate(order)}
    for ax, m in zip(axes[0], metrics):
        sub = frame[(frame["metric"] == m) & (frame["label"].isin(order))]
        seeds = sorted(sub["seed"].unique()) if "seed" in sub.columns else [None]
        pal = sns.color_palette("crest", max(len(seeds), 1))
        for k, sd in enumerate(seeds):
            one = sub if sd is None else sub[sub["seed"] == sd]
            one = one.assign(y=one["label"].map(pos)).sort_values("y")
            ax.plot(one["value"], one["y"], color=pal[k], lw=0.8, alpha=0.7, marker="o", ms=4,
                    label=None if sd is None else f"seed {sd}")
        means = sub.groupby("label")["value"].mean()
        ax.scatter([means[lab] for lab in order if lab in means], [pos[lab] for lab in order if lab in means],
                   marker="|", s=300, color="k", zorder=3, label="mean over seeds")
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels(list(order))
        ax.set_ylim(len(order) - 0.5, -0.5)
        if reference is not None:
            ref = sub.loc[sub["label"] == reference, "value"].mean()
            ax.axvline(ref, color="crimson", ls="--", lw=1)
        lo, hi = sub["value"].min(), sub["value"].max()
        pad = 0.15 * (hi - lo if hi > lo else abs(hi) + 1e-3)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_title(_name(m) + (" (lower is better)" if m == "mae" else ""))
        ax.set_xlabel(f"test {_name(m)}")
        ax.set_ylabel("")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    if handles and len(handles) <= 12:
        axes[0, -1].legend(handles, labels, fontsize="x-small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


def missing_curves(curves: pd.DataFrame, metrics: Sequence[str] = ("f1_non0", "corr"),
                   title: str = "Robustness to missing modalities (test split)"):
    """FEMF Fig. 6: metric vs missing rate per model, mean over seeds with a +-1 sd band; each model in its
    registered colour under its display name (``Atsuko``, ``Self-MM``)."""
    from .narrative import name_of

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.6), squeeze=False)
    colors = model_colors()
    for ax, m in zip(axes[0], metrics):
        sub = curves[curves["metric"] == m]
        percent = in_percent(m)                                    # accuracies and F1 in %, as the tables
        if percent:
            sub = sub.assign(value=sub["value"].astype(float) * 100.0)
        sub = sub.assign(model=sub["label"].map(lambda k: name_of(k)))
        palette = {name_of(k): colors.get(k) or "k" for k in sub["label"].unique()}
        sns.lineplot(data=sub, x="rate", y="value", hue="model", marker="o", errorbar=("sd", 1), ax=ax,
                     palette=palette)
        ax.set_xlabel("modality entries dropped at test time")
        ax.set_ylabel(f"test {_name(m)}{' (%)' if percent else ''}")
        ax.set_xticks(sorted(sub["rate"].unique()))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    axes[0, -1].legend(title="model", fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))  # off the data
    for ax in axes[0, :-1]:
        if ax.get_legend():
            ax.get_legend().remove()
    fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return fig


def sensitivity(frame: pd.DataFrame, params: Sequence[str], metric: str, defaults: dict, title: str = ""):
    """FEMF Fig. 4 / Atsuko Fig. 3: the metric against each swept parameter (labels ``param=value``),
    one panel per parameter, seeds as dots and their mean as a line; the paper default marked."""
    fig, axes = plt.subplots(1, len(params), figsize=(3.3 * len(params), 3.0), squeeze=False)
    for ax, p in zip(axes[0], params):
        sub = frame[(frame["metric"] == metric) & frame["label"].str.startswith(p + "=")].copy()
        if sub.empty:
            ax.set_visible(False)
            continue
        sub["x"] = sub["label"].str.split("=").str[1].astype(float)
        mean = sub.groupby("x")["value"].mean()
        ax.plot(mean.index, mean.values, marker="o", color="#4c72b0")
        ax.scatter(sub["x"], sub["value"], color="k", s=10, alpha=0.6, zorder=3)
        if p in defaults:
            ax.axvline(defaults[p], color="crimson", ls=":", lw=1, label="paper default")
        ax.set_xlabel(p)
        ax.set_ylabel(_name(metric))
    axes[0, 0].legend(fontsize="small")
    if title:
        fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return fig


def weight_lines(df: pd.DataFrame, names: Sequence[str], title: str, ylabel: str = "mean weight",
                 never_masked: Sequence[int] = ()):
    """Router / modality weights (``diagnostics_under_missing`` frame) against the missing rate, each beside
    (dotted, same colour) what masking alone gives it (:func:`masking_alone`; ``never_masked``: the entries no
    drop removes, FEMF's joint head). A router that only drops the absent modalities follows the dotted lines;
    the gap is what it re-weights on top."""
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    base = np.array([float(df[(df["index"] == i) & (df["rate"] == df["rate"].min())]["value"].mean())
                     for i in range(len(names))])
    rates = np.sort(df["rate"].unique())
    masked = np.array([masking_alone(base, r, never_masked) for r in rates])
    for i, n in enumerate(names):
        sub = df[df["index"] == i]
        color = MODALITY_COLORS.get(n, sns.color_palette("colorblind")[i % 10])
        ax.plot(sub["rate"], sub["value"], marker="o", label=n, color=color)
        ax.plot(rates, masked[:, i], ls=":", color=color)
    ax.plot([], [], ls=":", color="0.4", label="masking alone")
    ax.set_xlabel("missing rate at test time (% of modality entries dropped)")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))     # off the lines
    fig.tight_layout()
    return fig


def tsne_panels(panels: dict[str, tuple[np.ndarray, np.ndarray]], title: str, seed: int = 0):
    """Atsuko Fig. 4: t-SNE of fused features, one panel per setting, coloured by sentiment label."""
    from sklearn.manifold import TSNE

    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False)
    sc = None
    for ax, (name, (x, y)) in zip(axes[0], panels.items()):
        perp = float(min(30, max(5, (len(x) - 1) // 4)))
        z = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(x)
        sc = ax.scatter(z[:, 0], z[:, 1], c=np.clip(y, -3, 3), cmap="coolwarm", s=6, vmin=-3, vmax=3)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    if sc is not None:
        fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label="label")
    fig.suptitle(title, y=1.03)
    return fig


def modality_weight_bars(weights: dict[str, np.ndarray], labels: np.ndarray, title: str):
    """Atsuko Fig. 5: stacked modality weights (n, 3) of the same test samples for each setting."""
    fig, axes = plt.subplots(1, len(weights), figsize=(4.2 * len(weights), 3.0), sharey=True, squeeze=False)
    mods = ["text", "audio", "vision"]
    for ax, (name, w) in zip(axes[0], weights.items()):
        bottom = np.zeros(len(w))
        x = np.arange(len(w))
        for j, m in enumerate(mods):
            ax.bar(x, w[:, j], bottom=bottom, color=MODALITY_COLORS[m], label=m, width=0.8)
            bottom += w[:, j]
        ax.set_xticks(x, [f"{v:+.1f}" for v in labels], rotation=60, fontsize="x-small")
        ax.set_xlabel("test sample (label)")
        ax.set_title(name)
    axes[0, 0].set_ylabel("modality weight")
    axes[0, -1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))   # off the bars
    fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return fig


def band_view(view: dict, index: int, channel: int = 0, title: str = "", nonempty: bool = True):
    """Atsuko Fig. 6: per modality (rows) the graph-Fourier spectrum of one sample with each coefficient
    coloured by its band (the cuts of ``view["band_cuts"]``, :func:`mser_lib.spectral.graph.band_index` with
    ``nonempty`` as the model's ``band_rule``), its band components (one channel) and its band weights beside
    the uniform weight 1/B. ``view``: :meth:`Atsuko.spectral_view` output."""
    from ..spectral.graph import band_index

    mods = ["text", "audio", "vision"]
    fig, axes = plt.subplots(3, 3, figsize=(11, 7.5))
    for r, m in enumerate(mods):
        v = view[m]
        n = int(v["mask"][index].sum())
        coef = v["coefficients"][index, :n].detach().numpy()
        energy = (coef ** 2).sum(-1)
        comps = v["components"][index, :, :n, channel].detach().numpy()
        pal = sns.color_palette("mako", comps.shape[0])
        band = band_index(n, view["band_cuts"][r], nonempty=nonempty).numpy() if n else np.zeros(0, int)
        axes[r, 0].bar(np.arange(n), energy, color=[pal[b] for b in band])
        axes[r, 0].set_yscale("log")
        axes[r, 0].set_xlabel("graph frequency index (low to high)")
        axes[r, 0].set_ylabel("energy (log)")
        axes[r, 0].set_title(f"{m}: spectral energy, coloured by band")
        for b in range(comps.shape[0]):
            axes[r, 1].plot(np.arange(n), comps[b], color=pal[b], label=f"band {b + 1}")
        axes[r, 1].set_xlabel("time step")
        axes[r, 1].set_title(f"{m}: band components (channel {channel})")
        axes[r, 1].legend(fontsize="x-small")
        w = v["band_weights"][index].detach().numpy()
        axes[r, 2].bar([f"band {b + 1}" for b in range(len(w))], w, color=pal)
        axes[r, 2].axhline(1.0 / len(w), color="black", ls="--", lw=0.8, label="1/B (uniform)")
        axes[r, 2].set_ylim(0, 1)
        axes[r, 2].set_ylabel("weight")
        axes[r, 2].legend(fontsize="x-small", loc="upper right")
        axes[r, 2].set_title(f"{m}: band weights (eq. 2)")
    if title:
        fig.suptitle(title, y=1.01)
    fig.tight_layout()
    return fig


def attention_maps(maps: dict[str, np.ndarray], title: str, width_frac: float = 0.1):
    """FEMF Fig. 7: low- and high-frequency expert attention (L, L) per modality (columns).

    Colours are centred on uniform attention ``1 / L`` (white): red cells get more weight than uniform
    attention would give them, blue cells less. Each title gives the attention mass within
    ``width = max(1, round(width_frac L))`` steps of the diagonal as a multiple of uniform attention's
    (:func:`mser_lib.report.narrative.near_diagonal`; dashed lines mark that band)."""
    from .narrative import near_diagonal

    mods = [m for m in ("audio", "text", "vision") if f"attn_low_{m}" in maps]
    fig, axes = plt.subplots(2, len(mods), figsize=(3.8 * len(mods), 7.2), squeeze=False)
    for c, m in enumerate(mods):
        for r, band in enumerate(("low", "high")):
            a = np.asarray(maps[f"attn_{band}_{m}"], dtype=float)
            n = a.shape[-1]
            ax = axes[r, c]
            vmax = max(float(a.max()), 2.0 / n)
            sns.heatmap(a, ax=ax, cmap="vlag", center=1.0 / n, vmin=0.0, vmax=vmax, square=True,
                        xticklabels=False, yticklabels=False,
                        cbar_kws={"label": "attention weight" if c == len(mods) - 1 else "", "shrink": 0.75})
            w, mass, uni = near_diagonal(a, width_frac)
            for off in (-w, w + 1):                                      # the near-diagonal band
                ax.plot([max(0, off), min(n, n + off)], [max(0, -off), min(n, n - off)], color="k", lw=0.6, ls="--")
            ax.set_xlabel("key position")
            ax.set_ylabel("query position")
            ax.set_title(f"{m}, {band}-frequency expert\nwithin {w} step(s) of diagonal: {mass / uni:.2f}x uniform",
                         fontsize="small")
    fig.suptitle(title + "\n(white = uniform attention 1/L; red: more weight than uniform, blue: less; "
                 "dashed: the near-diagonal band)", y=1.02, fontsize="medium")
    fig.tight_layout()
    return fig


def band_energy_bars(df: pd.DataFrame, title: str):
    """Per-band energy share of each modality (columns modality, band, share)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    sns.barplot(data=df, x="modality", y="share", hue="band", ax=ax, palette="mako")
    ax.set_ylabel("share of energy")
    ax.set_title(title)
    fig.tight_layout()
    return fig


__all__ = ["variant_points", "missing_curves", "sensitivity", "weight_lines", "tsne_panels",
           "modality_weight_bars", "band_view", "attention_maps", "band_energy_bars"]


def forest(results: Sequence[dict], title: str = "", difference: str = "A − B"):
    """Paired differences A - B, one row per comparison (:func:`mser_lib.report.ablations.compare_labels` or
    ``degradation_compare`` results) and one panel per metric: the mean over seeds (dot), its seed-level 95 %
    t interval (thick bar) and the bootstrap 95 % interval over test samples or videos (thin bar), beside a
    line at 0. A row whose thin bar crosses 0 is one the test set cannot decide; accuracies and F1 in points
    (pp), MAE and Corr as they are. What the notebooks' tests decide, drawn; the verdict stays the tests'.
    ``difference`` names the x axis (degradation: "drop of B − drop of A")."""
    metrics = list(dict.fromkeys(r["metric"] for r in results))
    rows = {m: [r for r in results if r["metric"] == m] for m in metrics}
    height = max(len(v) for v in rows.values()) if rows else 1
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.2 * max(len(metrics), 1), 0.42 * height + 1.5),
                             squeeze=False)
    for ax, m in zip(axes[0], metrics):
        k = 100.0 if in_percent(m) else 1.0
        unit = "" if k == 1.0 else " (pp)"
        for y, r in enumerate(rows[m]):
            ax.plot([r.get("ci_lo", np.nan) * k, r.get("ci_hi", np.nan) * k], [y - 0.12, y - 0.12], color="#1f4e79",
                    lw=3.5, solid_capstyle="butt")
            ax.plot([r.get("boot_lo", np.nan) * k, r.get("boot_hi", np.nan) * k], [y + 0.12, y + 0.12], color="0.45",
                    lw=1.4)
            ax.plot(r["mean_diff"] * k, y, "o", color="#1f4e79", ms=5, zorder=3)
        ax.axvline(0.0, color="black", lw=0.8, ls="--")
        ax.set_yticks(range(len(rows[m])), [f"{r['a']} − {r['b']}" for r in rows[m]])
        ax.set_ylim(len(rows[m]) - 0.5, -0.5)
        hint = ""
        if difference == "A − B":     # which side of 0 favours A
            hint = "\n(negative: A better)" if m in ("mae", "loss") else "\n(positive: A better)"
        ax.set_xlabel(f"{_name(m)}: {difference}{unit}{hint}")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].plot([], [], color="#1f4e79", lw=3.5, label="seed 95% CI")
    axes[0][0].plot([], [], color="0.55", lw=1.2, label="bootstrap 95% CI")
    fig.legend(loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.02))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
