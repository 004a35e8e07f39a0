"""Analyses behind the notebooks' tables and figures, so that the notebooks hold no logic of their own.

* Data: :func:`dataset_summary`, :func:`mean_power_spectrum` (what each modality's frequency content
  looks like), :func:`frequency_probe` (the built-in benchmark's promise: a band-limited probe
  recovers the audio+vision evidence, a frequency-blind one does not), :func:`ridge_leakage` (the
  mosi-bclstm leakage lesson, measured: ridge regression on the bc-LSTM split versus the standard
  folds).
* Spectral: :func:`high_band_share` (FEMF eq. 8 band energies as a function of the cut-off ``c``).
* Records: :func:`records_long` (per-seed metric values), :func:`history_long`, the selection-protocol
  table; :func:`cached_expert_curves` (FEMF stage 1 replayed by :func:`mser_lib.runs.refit_experts`, cached).
  Loading checkpoints, rebuilding models and predicting are :mod:`mser_lib.runs`'.

Everything here reads recorded runs or calls the library (:mod:`mser_lib.spectral`,
:mod:`mser_lib.train`, :mod:`mser_lib.metrics`); no number is typed in.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

from ..data import MODALITIES, MultimodalDataset, iterate_batches
from ..metrics import compute_metrics
from ..runs import refit_experts
from ..spectral.dft import band_energy, dft_split
from ..train.io import inside


# ---------------------------------------------------------------------------------------------- data
def dataset_summary(ds: MultimodalDataset) -> pd.DataFrame:
    """One row per split: samples, labelled positions, label mean/std/zero share, lengths per modality."""
    rows = {}
    for s in ("train", "valid", "test"):
        sp = ds.split(s)
        y = sp.labels[sp.label_mask].astype(float)
        row = {"samples": len(sp), "labelled positions": int(sp.label_mask.sum())}
        if ds.info.task == "regression":
            row.update({"label mean": round(float(y.mean()), 3), "label std": round(float(y.std()), 3),
                        "zero labels (%)": round(100.0 * float((y == 0).mean()), 1)})
        for m in MODALITIES:
            L = sp.lengths(m)
            row[f"{m} length (min/mean/max)"] = f"{L.min()}/{L.mean():.1f}/{L.max()}"
            row[f"{m} dim"] = int(sp.features(m).shape[-1])
        rows[s] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "split"
    return df


def data_checks(ds: MultimodalDataset) -> dict[str, object]:
    """Invariants every loader guarantees, as printable facts (all True for a valid dataset)."""
    splits = [ds.split(s) for s in ("train", "valid", "test")]

    def prefix(mask: np.ndarray) -> bool:  # every row True...True False...False
        return bool((np.diff(mask.astype(np.int8), axis=1) <= 0).all())

    lo, hi = ds.info.label_range if ds.info.label_range is not None else (-np.inf, np.inf)
    return {
        "splits": [s for s, sp in zip(("train", "valid", "test"), splits) if len(sp) > 0],
        "masks are prefixes (padding at the end)": all(prefix(sp.mask(m)) for sp in splits
                                                       for m in MODALITIES),
        "padded positions are exactly zero": all(not sp.features(m)[~sp.mask(m)].any()
                                                 for sp in splits for m in MODALITIES),
        "labels inside the label range": all(
            bool(((y >= lo) & (y <= hi)).all()) for y in (sp.labels[sp.label_mask] for sp in splits)),
        "finite features": all(bool(np.isfinite(sp.features(m)).all()) for sp in splits for m in MODALITIES),
    }


def _real(split, modality: str, i: int) -> np.ndarray:
    n = int(split.mask(modality)[i].sum())
    return split.features(modality)[i, :n].astype(np.float64)


def mean_power_spectrum(split, modality: str, n_bins: int = 25, min_len: int = 4) -> pd.DataFrame:
    """Average power spectrum of a modality along its sequence axis.

    For every sample with ``T >= min_len`` real positions, ``P_k = sum_d |rfft(x[:T, d])_k|^2 / T`` at
    frequency ``k / T`` (cycles per step, 0 to 0.5); powers are averaged over samples in ``n_bins``
    equal-width frequency bins.

    Returns:
        columns ``modality``, ``frequency`` (bin centre), ``power``, ``samples``.
    """
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    tot = np.zeros(n_bins)
    cnt = np.zeros(n_bins)
    lengths = split.lengths(modality)
    for i in range(len(split)):
        T = int(lengths[i])
        if T < min_len:
            continue
        x = _real(split, modality, i)
        p = (np.abs(np.fft.rfft(x, axis=0)) ** 2).sum(1) / T
        f = np.fft.rfftfreq(T)
        b = np.clip(np.searchsorted(edges, f, side="right") - 1, 0, n_bins - 1)
        np.add.at(tot, b, p)
        np.add.at(cnt, b, 1)
    power = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return pd.DataFrame({"modality": modality, "frequency": (edges[:-1] + edges[1:]) / 2, "power": power,
                         "samples": cnt.astype(int)})


def band_features(split, modality: str, band: tuple[float, float] | None) -> np.ndarray:
    """Per-sample features ``[RMS per channel, mean per channel]`` of the (optionally DFT band-passed)
    signal: ``band=(lo, hi)`` keeps the rfft bins with ``lo <= k/T <= hi``; ``None`` keeps all."""
    out = []
    lengths = split.lengths(modality)
    for i in range(len(split)):
        x = _real(split, modality, i)
        if band is not None:
            T = int(lengths[i])
            spec = np.fft.rfft(x, axis=0)
            f = np.fft.rfftfreq(T)
            spec[(f < band[0]) | (f > band[1])] = 0
            x = np.fft.irfft(spec, n=T, axis=0)
        out.append(np.concatenate([np.sqrt((x ** 2).mean(0)), x.mean(0)]))
    return np.asarray(out)


def _r2(pred: np.ndarray, target: np.ndarray) -> float:
    return float(1.0 - ((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def frequency_probe(ds: MultimodalDataset, latents: dict, alpha: float = 1.0) -> pd.DataFrame:
    """The built-in benchmark's frequency story, measured with linear probes.

    A ridge probe (fitted on train, scored on test) predicts the label's audio+vision component
    (``latents[split]["av_component"]``) from per-channel RMS and mean of the audio and vision
    signals: once band-passed to the generator's audio and vision bands ("band-limited"), once
    raw ("frequency-blind"); a third probe predicts the label from the pooled text ("text, raw").

    Returns:
        columns ``probe``, ``features``, ``target``, ``test R2``.
    """
    from sklearn.linear_model import Ridge

    cfg = ds.info.source.get("config", {})
    bands = {"audio": tuple(cfg.get("audio_band", (0.3, 0.45))),
             "vision": tuple(cfg.get("vision_band", (0.12, 0.22)))}
    rows = []
    for name, use_band in (("band-limited", True), ("frequency-blind", False)):
        X = {s: np.hstack([band_features(ds.split(s), m, bands[m] if use_band else None)
                           for m in ("audio", "vision")]) for s in ("train", "test")}
        probe = Ridge(alpha=alpha).fit(X["train"], latents["train"]["av_component"])
        feats = (f"audio {bands['audio']} + vision {bands['vision']} cycles/step" if use_band
                 else "audio + vision, all frequencies")
        rows.append({"probe": name, "features": feats, "target": "audio+vision share of the label",
                     "test R2": _r2(probe.predict(X["test"]), latents["test"]["av_component"])})
    X = {s: band_features(ds.split(s), "text", None) for s in ("train", "test")}
    probe = Ridge(alpha=alpha).fit(X["train"], latents["train"]["text_component"])
    rows.append({"probe": "text, raw", "features": "text, all frequencies",
                 "target": "text share of the label",
                 "test R2": _r2(probe.predict(X["test"]), latents["test"]["text_component"])})
    return pd.DataFrame(rows)


def utterance_matrix(split, modalities: str = "tav") -> tuple[np.ndarray, np.ndarray]:
    """Position layout: the real utterances of a split as ``(X (n, sum d_m), y (n,))``."""
    m = split.label_mask
    mods = [mm for mm in MODALITIES if mm[0] in modalities]
    return np.concatenate([split.features(mm)[m] for mm in mods], 1).astype(np.float64), split.labels[m]


def ridge_leakage(data_dir, modality_sets=("t", "a", "v", "tav"), alpha: float = 1.0) -> pd.DataFrame:
    """mosi-bclstm: ridge regression on utterance features, bc-LSTM split versus the standard folds.

    The features were learned with supervision on the bc-LSTM train split, which holds most of the
    standard test fold; a linear probe shows it. For each split rule and modality set, ridge
    (``alpha``) is fitted on train + valid utterances and scored on test with the metrics of docs/metrics.md.

    Returns:
        columns ``split``, ``modalities``, ``test utterances`` and the metrics (fractions).
    """
    from scipy.linalg import LinAlgWarning
    from sklearn.linear_model import Ridge

    from ..data.bclstm import LeakageWarning, load_mosi_bclstm

    rows = []
    for split in ("bclstm", "standard"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LeakageWarning)
            ds = load_mosi_bclstm(data_dir, split=split)
        for mods in modality_sets:
            xa, ya = utterance_matrix(ds.train, mods)
            xv, yv = utterance_matrix(ds.valid, mods)
            xt, yt = utterance_matrix(ds.test, mods)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LinAlgWarning)
                pred = Ridge(alpha=alpha).fit(np.concatenate([xa, xv]), np.concatenate([ya, yv])).predict(xt)
            met = compute_metrics(yt, pred, "mosi")
            rows.append({"split": split, "modalities": mods, "test utterances": len(yt), **met})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ spectral
def high_band_share(split, ratios, modalities=MODALITIES, batch: int = 512) -> pd.DataFrame:
    """Share of the energy in FEMF's high band (eq. 8, :func:`mser_lib.spectral.dft.dft_split`) as a
    function of the cut-off ratio ``c``, per modality, over a whole split (raw input features)."""
    rows = []
    for m in modalities:
        x = torch.as_tensor(split.features(m)[:batch], dtype=torch.float64)
        mask = torch.as_tensor(split.mask(m)[:batch])
        for c in ratios:
            low, high = dft_split(x, mask, float(c), method="fft")
            e = band_energy(low, high).sum(0)
            rows.append({"modality": m, "c": float(c), "high_share": float(e[1] / e.sum())})
    return pd.DataFrame(rows)


def band_energy_shares(spectrum, cuts) -> list[float]:
    """Share of a binned spectrum's energy (``F`` equal-width bins of normalised frequency) that falls in
    each band delimited by ``cuts`` (a bin belongs to the band holding its centre)."""
    s = np.asarray(spectrum, dtype=float)
    nu = (np.arange(len(s)) + 0.5) / len(s)
    idx = np.searchsorted(np.asarray(cuts, dtype=float), nu, side="right")
    total = s.sum()
    return [float(s[idx == b].sum() / total) if total > 0 else float("nan") for b in range(len(cuts) + 1)]


# ---------------------------------------------------------------------------------------------- runs
def seed_summary(long: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Mean, std (ddof 1; nan for one seed) and count of ``value`` over seeds, grouped by ``by``."""
    g = long.groupby(by, sort=False)[value]
    return g.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
                 n="count").reset_index()


def expert_table(per_seed: pd.DataFrame, metrics=("mae", "corr", "acc2_has0", "acc2_non0", "acc7")
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-expert metrics over seeds: ``(long summary, wide table of "mean ± std" strings)``.

    ``per_seed``: the concatenated :func:`expert_metrics` tables with a ``seed`` column.
    """
    from .paper_rows import format_mean_std

    agg = seed_summary(per_seed, ["modality", "band", "metric"])
    shown = agg[agg["metric"].isin(metrics)].copy()
    shown["value"] = [format_mean_std(m, a, s)
                      for m, a, s in zip(shown["metric"], shown["mean"], shown["std"])]
    wide = shown.pivot(index=["modality", "band"], columns="metric", values="value")
    return agg, wide[[m for m in metrics if m in wide.columns]]


def records_long(records: list[dict], split: str = "test", label=None,
                 include_degenerate: bool = False) -> pd.DataFrame:
    """Per-seed metric values: columns ``row`` (``label(record)``), ``model``, ``seed``, ``metric``,
    ``value``. Degenerate runs (learned nothing) are left out unless ``include_degenerate``, as in
    :func:`mser_lib.report.tables.aggregate`."""
    from .paper_rows import row_label

    label = label or row_label
    rows = []
    for r in records:
        if r.get("degenerate") and not include_degenerate:
            continue
        name = label(r)
        for k, v in (r.get(split) or {}).items():
            rows.append({"row": name, "model": r["model"], "seed": r["seed"], "metric": k, "value": v})
    return pd.DataFrame(rows)


def history_long(records: list[dict], label=None) -> pd.DataFrame:
    """The compact histories stored in the records (final stage) as a long table:
    ``row, seed, epoch, series, value`` with series ``train_total``, ``valid_loss`` and the selection
    metric."""
    from .paper_rows import row_label

    label = label or row_label
    rows = []
    for r in records:
        name = label(r)              # once per record: a label resolves the run's profile (13 ms)
        for h in r.get("history") or []:
            for k, v in h.items():
                if k != "epoch" and v is not None:
                    rows.append({"row": name, "seed": r["seed"], "epoch": h["epoch"], "series": k,
                                 "value": float(v)})
    return pd.DataFrame(rows)



def late_collapse(records: list[dict], trivial: dict, task: str, label=None) -> pd.DataFrame:
    """Runs whose final stage got worse than the trivial predictor on VALID after beating it: per row, how many
    runs, how many of them collapsed so (their best epoch beats ``trivial`` on VALID, their last epoch does not,
    by :func:`mser_lib.train.trainer.learned_nothing`'s rule), and over those runs the median best epoch, best
    and last VALID value. ``trivial``: the trivial predictor's VALID metrics (:func:`~mser_lib.train.trainer.
    trivial_metrics`). Read from each record's compact history (final stage); runs without one are skipped.
    Columns ``row, runs, collapsed, metric, trivial, best epoch, best, last``."""
    from ..train.trainer import learned_nothing
    from .paper_rows import row_label

    label = label or row_label
    key = "acc" if task == "classification" else "mae"
    out: dict[str, dict] = {}
    for r in records:
        hist = [h for h in r.get("history") or [] if h.get(f"valid_{key}") is not None]
        if not hist:
            continue
        row = out.setdefault(label(r), {"runs": 0, "collapsed": []})
        row["runs"] += 1
        pick = (max if key == "acc" else min)(hist, key=lambda h: h[f"valid_{key}"])
        best, last = pick[f"valid_{key}"], hist[-1][f"valid_{key}"]
        if not learned_nothing({key: best}, trivial, task) and learned_nothing({key: last}, trivial, task):
            row["collapsed"].append((pick["epoch"], best, last))
    rows = []
    for name, row in out.items():
        c = np.asarray(row["collapsed"], dtype=float).reshape(-1, 3)
        med = np.median(c, 0) if len(c) else [np.nan] * 3
        rows.append({"row": name, "runs": row["runs"], "collapsed": len(c), "metric": key,
                     "trivial": float(trivial[key]), "best epoch": med[0], "best": med[1], "last": med[2]})
    return pd.DataFrame(rows, columns=["row", "runs", "collapsed", "metric", "trivial", "best epoch", "best", "last"])


def collapse_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`late_collapse`'s frame as a table to read: indexed by row, rows with collapses first, the metric
    and the trivial value (one each, said in the sentence) left out, medians blank where no run collapsed."""
    return (frame.sort_values("collapsed", ascending=False, kind="stable").set_index("row")
            .drop(columns=["metric", "trivial"]).round(3).astype(object).fillna(""))


@torch.no_grad()
def dropout_shift(model, split, info, passes: int = 3, batch_size: int = 256, seed: int = 0) -> pd.DataFrame:
    """A regression model's predictions on ``split`` with dropout off (eval mode, how every score is computed) and
    on (train mode, the mean of ``passes`` passes with seeds ``seed, seed + 1, ...``): MAE and the standard
    deviation of the predictions in each mode, beside the labels' (one row per mode: ``mode, MAE, prediction sd,
    label sd``). A model whose eval-mode predictions spread much wider than its train-mode ones learned on
    dropout-noised features a scale that the clean features do not have (variance shift). The model is left in
    eval mode."""
    def run(train: bool, k: int):
        model.train(train)
        torch.manual_seed(seed + k)
        ys, ps = [], []
        for batch in iterate_batches(split, info.layout, batch_size, shuffle=False, seed=seed,
                                     device=next(model.parameters()).device):
            out = model(batch)
            m = batch.label_mask
            ps.append(out.prediction[m].float().cpu().numpy().reshape(-1))
            ys.append(batch.labels[m].float().cpu().numpy().reshape(-1))
        return np.concatenate(ys), np.concatenate(ps)

    try:
        y, p_eval = run(False, 0)
        p_train = np.mean([run(True, k)[1] for k in range(passes)], 0)
    finally:
        model.eval()
    return pd.DataFrame([{"mode": mode, "MAE": float(np.abs(p - y).mean()), "prediction sd": float(p.std()),
                          "label sd": float(y.std())}
                         for mode, p in (("dropout off (eval)", p_eval), (f"dropout on (mean of {passes})", p_train))])


@torch.no_grad()
def mean_diagnostics(model, split, info, keys, batch_size: int = 256, missing=None,
                     seed: int | None = 0) -> dict[str, np.ndarray]:
    """Average some of a model's ``diagnostics`` (router, fusion, band weights) over a split.

    Per-sample diagnostics ``(B, ...)`` are averaged over samples; per-position ones ``(B, L, ...)``
    (position layout) over the labelled positions. Keys a model does not produce are left out.
    ``missing`` (a :class:`~mser_lib.data.MissingModality`, drawn with ``seed``) drops modalities.
    """
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for batch in iterate_batches(split, info.layout, batch_size, shuffle=False, seed=seed, missing=missing,
                                 device=device):
        out = model(batch)
        mask = batch.label_mask.bool()
        for k in keys:
            v = out.diagnostics.get(k)
            if not isinstance(v, torch.Tensor):
                continue
            v = v.float()
            if mask.dim() == 2 and v.dim() >= 2 and tuple(v.shape[:2]) == tuple(mask.shape):
                v = v[mask]
            sums[k] = sums.get(k, 0.0) + v.sum(0).cpu().numpy()
            counts[k] = counts.get(k, 0) + int(v.shape[0])
    return {k: sums[k] / max(counts[k], 1) for k in sums}


def cached_expert_curves(record: dict, ds: MultimodalDataset, tables_dir, force: bool = False
                         ) -> pd.DataFrame:
    """:func:`refit_experts` curves for one recorded FEMF run, cached in
    ``tables_dir/expert_curves_seed<seed>.csv`` under the run's config hash (re-used unless ``force``)."""
    path = inside(tables_dir, f"expert_curves_seed{record['seed']}.csv", file="runs.jsonl record", field="seed")
    if path.exists() and not force:
        cached = pd.read_csv(path)
        if not cached.empty and (cached["config_hash"] == record["config_hash"]).all():
            return cached
    _, curves, _ = refit_experts(record, ds, per_epoch=True)
    curves.insert(0, "config_hash", record["config_hash"])
    from ..train.io import atomic_write_text

    atomic_write_text(path, curves.to_csv(index=False))
    return curves


__all__ = ["dataset_summary", "data_checks", "band_energy_shares", "seed_summary", "expert_table",
           "mean_power_spectrum", "band_features", "frequency_probe", "utterance_matrix",
           "ridge_leakage", "high_band_share", "records_long", "history_long", "late_collapse", "collapse_table",
           "dropout_shift",
           "mean_diagnostics",
           "cached_expert_curves"]


# ---------------------------------------------------------------------------------- selection protocols
PROTOCOL_LABELS = {
    "crossfit": "clean: cross-fitted on test folds (ours)",
    "valid": "leaky validation (videos the features were trained on)",
    # one pick for every column: a seed's test epoch with the best Acc-2, then the seed with the best one; its MAE
    # and Corr are that pick's, not the best MAE or Corr on offer
    "test_oracle": "optimistic: the test epoch and seed with the best test Acc-2",
}


def selection_protocol_table(records: list[dict], ds: MultimodalDataset, label=None,
                             metrics=("acc2_has0", "f1_has0", "mae", "corr")) -> pd.DataFrame:
    """The same runs reported three ways (``record["protocols"]``, written by cross-fitted runs):

    * clean: each test utterance scored by an epoch chosen on other test videos (mean ± std over seeds);
    * leaky validation: the epoch chosen on VALID (mean ± std over seeds);
    * optimistic: per seed the epoch with the best test Acc-2, then the seed with the best one (what code
      that checkpoints on the test set and prints the best of several seeds reports; never a result).

    Beside them: the majority class of the test split (computed here) and the published anchors on
    these features (:data:`mser_lib.report.paper_rows.BCLSTM_ANCHORS`, marked reported). Accuracies and
    F1 in percent.
    """
    from .paper_rows import BCLSTM_ANCHORS, row_label

    label = label or row_label
    rows = []
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r.get("protocols") and not r.get("degenerate"):      # as the other tables: learned-nothing runs out
            groups.setdefault(label(r), []).append(r)

    def fmt(m, vals):
        scale, digits = (1.0, 3) if m in ("mae", "corr") else (100.0, 1)
        vals = np.asarray(vals, dtype=float) * scale
        s = f"{vals.mean():.{digits}f}"
        return s + (f" ± {vals.std(ddof=1):.{digits}f}" if len(vals) > 1 else "")

    for name, recs in groups.items():
        seeds = ",".join(str(r["seed"]) for r in sorted(recs, key=lambda r: r["seed"]))
        for key in ("crossfit", "valid"):
            rows.append({"model": name, "protocol": PROTOCOL_LABELS[key], "seeds": seeds,
                         **{m: fmt(m, [r["protocols"][key]["metrics"][m] for r in recs]) for m in metrics}})
        best = max(recs, key=lambda r: r["protocols"]["test_oracle"]["metrics"]["acc2_has0"])
        rows.append({"model": name, "protocol": PROTOCOL_LABELS["test_oracle"], "seeds": f"best of {seeds}",
                     **{m: fmt(m, [best["protocols"]["test_oracle"]["metrics"][m]]) for m in metrics}})
    y = ds.test.labels[ds.test.label_mask]
    major = max(float((y >= 0).mean()), float((y < 0).mean()))
    rows.append({"model": "majority class (computed)", "protocol": "no training", "seeds": "",
                 "acc2_has0": f"{100 * major:.1f}", "f1_has0": "", "mae": "", "corr": ""})
    for a in BCLSTM_ANCHORS:
        rows.append({"model": f"{a['model']} ({a['source']})", "protocol": a["selection"], "seeds": "",
                     "acc2_has0": f"{a['acc2_has0']:.2f}", "f1_has0": "", "mae": "", "corr": ""})
    from ..metrics import METRIC_NAMES

    return pd.DataFrame(rows).rename(columns=METRIC_NAMES).set_index(["model", "protocol"])


def selection_note(records: list[dict]) -> str:
    """One sentence naming the selection protocol(s) and the seeds behind a set of records."""
    sel = sorted({r.get("selection") or (r.get("config") or {}).get("train", {}).get("selection", "valid")
                  for r in records})
    seeds = sorted({r["seed"] for r in records})
    names = {"valid": "the epoch with the best validation score (early stopping on VALID)",
             "crossfit": "cross-fitted selection on the test videos (each test video scored by an epoch chosen "
                         "on the other fold of test videos; mser_lib/train/crossfit.py)"}
    last = sum(bool(r.get("best_is_last")) for r in records)
    text = f"Selection: {' and '.join(names.get(s, s) for s in sel)}; seeds {seeds}."
    if last:
        text += (f" {last} of {len(records)} runs chose their last epoch (still improving: the budget may be "
                 "too short for them).")
    return text
