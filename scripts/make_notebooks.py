# ruff: noqa: E501  (the strings below are notebook cells; the notebooks are outside ruff)
"""Write notebooks/00-03 from the cell sources below (run: ``.venv/bin/python scripts/make_notebooks.py``).

The committed ``.ipynb`` files are what counts; this script only keeps their sources in one reviewable
place. It writes notebooks without outputs; ``python -m mser_lib.pipeline --update-notebooks`` then
executes them (quick profile) and copies the outputs back. Running this script after that erases the
outputs again, so regenerate, then execute.

Conventions (see README, "Reading the notebooks"):
* cell 2 is the papermill ``parameters`` cell; its defaults read ``MSER_NB_PROFILE`` and
  ``MSER_NB_RESULTS`` so that ``make test`` (nbval) runs the committed notebooks at smoke size into a
  temporary folder;
* the notebooks call ``mser_lib`` only (``pipeline.notebook_setup``, ``experiments``, ``report.*``,
  ``spectral``, ``data``); they hold prose, equations, calls and checks;
* cells whose printed output nbval compares start with ``# NBVAL_CHECK_OUTPUT`` and print only what is
  the same on any CPU and at any profile; numbers are checked with ``assert`` and tolerances.
"""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

PARAMETERS = '''\
# Parameters (papermill): `make reproduce` passes its own values. The defaults read two environment
# variables so that `make test` (nbval) can run the committed notebook at smoke size in a temp folder.
import os

profile = os.environ.get("MSER_NB_PROFILE", "quick")   # smoke | quick | paper (mser_lib/configs/*.yaml)
dataset = "synthetic"     # synthetic | mosi-bclstm | mosi | mosei | sims | simsv2 (python -m mser_lib datasets)
data_dir = ""             # folder of a real dataset, empty for none (mosi-bclstm: ../../shared/data/mosi-bclstm)
device = "auto"           # auto | cpu | cuda | mps
seeds = None              # None for the seeds of the profile, or a list such as [0, 1, 2]
results_dir = os.environ.get("MSER_NB_RESULTS", "../results")
force = False             # True: retrain runs that are already recorded
'''

SETUP = '''\
from mser_lib.pipeline import notebook_setup

ctx = notebook_setup(profile, dataset, data_dir, device, seeds, results_dir, force)
print(f"profile {ctx.profile} | dataset {ctx.dataset} | seeds {ctx.seeds} | {ctx.threads} thread(s), "
      f"{ctx.workers} worker(s) | outputs in {ctx.rel(ctx.out)}")
'''

FOOTER = '''\
print(f"{len(ctx.written)} files written under {ctx.rel(ctx.out)}:")
for p in ctx.written:
    print("  ", ctx.rel(p))
'''


def md(text: str):
    return new_markdown_cell(dedent(text).strip("\n"))


def code(text: str, tags: list[str] | None = None):
    cell = new_code_cell(dedent(text).strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def header(title: str, intro: str) -> list:
    return [md(f"# {title}\n\n{dedent(intro).strip()}"), code(PARAMETERS, ["parameters"]), code(SETUP)]


# =============================================================================================== 00
NB00 = header("00 · Data: what the models see", """
This notebook looks at the data before any model does. It shows

1. the **one data path**: every source (the built-in benchmark, MMSA pickles, utterance features,
   bc-LSTM features) becomes the same `MultimodalDataset`, and every model sees the same `Batch`;
2. the labels and the sequence lengths;
3. the **built-in benchmark's generative story** with pictures and linear probes: where the
   sentiment evidence of each modality sits in frequency, and why a frequency-blind reader misses it;
4. the **real CMU-MOSI features** (`mosi-bclstm`) and their **leakage lesson**, measured here: the
   same ridge regression scores far higher on the standard folds than on the bc-LSTM split, because
   the features were learned on labels of most standard test videos.

Nothing is trained. Tables go to `results/<profile>/<dataset>/tables/`, figures to `.../figures/`.
""") + [
    md("""
    ## 1. One data path

    `mser_lib.experiments.get_dataset(name, data_dir, profile)` returns a `MultimodalDataset`: a
    `DatasetInfo` (layout, task, metric family, feature widths) and three splits of padded arrays,
    `text (N, L, d_t)`, `audio (N, L, d_a)`, `vision (N, L, d_v)`, one boolean mask per modality
    (`True` = a real position; padding is at the end), `labels`, `label_mask` and `ids`.

    Two layouts exist. **sequence** (MMSA, the built-in benchmark): a sample is one utterance, a
    sequence of frames or tokens with one label. **position** (utterance features, mosi-bclstm): a
    sample is one video, its sequence is the video's utterances, and every position has its own label.
    """),
    code("""
    from IPython.display import Markdown, display

    from mser_lib.experiments import get_dataset
    from mser_lib.report import analysis, figures
    from mser_lib.report.tables import to_markdown

    ds = get_dataset(ctx.dataset, ctx.data_dir, ctx.profile)
    info = ds.info
    print(f"{info.name}: layout {info.layout}, task {info.task}, metric family {info.metric_family}, "
          f"feature widths {info.dims}")
    summary = analysis.dataset_summary(ds)
    ctx.save_table(summary, "data_summary", caption=f"{info.name}: splits, labels and lengths")
    display(Markdown(to_markdown(summary)))
    """),
    md("""
    The loaders check what they read (shapes, NaN/inf, label range) and raise `DataFormatError`
    naming the file, the field, what was expected and what was found. The checks below hold for
    every dataset; nbval compares their printed output on every run.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    for k, v in analysis.data_checks(ds).items():
        print(f"{k}: {v}")
    """),
    md("""
    A batch is what a model's `forward` receives. `iterate_batches` pads each batch to its own
    longest sample (and, for training, groups samples of similar length).
    """),
    code("""
    from mser_lib.data import MODALITIES, iterate_batches

    batch = next(iterate_batches(ds.train, info.layout, batch_size=8))
    for m in MODALITIES:
        print(f"{m:>6}: features {tuple(batch.features(m).shape)}, mask {tuple(batch.mask(m).shape)}, "
              f"real positions per sample {batch.mask(m).sum(1).tolist()}")
    print(f"labels {tuple(batch.labels.shape)}, label_mask {tuple(batch.label_mask.shape)}, ids {list(batch.ids)[:3]} ...")
    """),
    md("""
    ## 2. Labels and lengths

    CMU-MOSI labels average five annotators on a 7-point scale, so they lie in [-3, 3] on a grid of
    0.2, and a few are exactly 0. The metrics make 0 matter: "neg/non-neg" Acc-2 counts 0 as
    non-negative, "neg/pos" Acc-2 drops it (SPEC 2, `mser_lib.metrics`).
    """),
    code("""
    labels = {s: ds.split(s).labels[ds.split(s).label_mask] for s in ("train", "valid", "test")}
    fig = figures.label_histogram(labels, info.label_range if info.task == "regression" else None,
                                  title=f"{info.name}: labels per split")
    ctx.save_figure(fig, "label_histogram")
    """),
    code("""
    unit = "utterances" if info.layout == "position" else "time steps"
    fig = figures.length_histogram({m: ds.train.lengths(m) for m in MODALITIES}, unit=unit)
    ctx.save_figure(fig, "length_histogram")
    """),
    md("""
    ## 3. The built-in benchmark: a generative story with a known answer

    `make_synthetic` (the default dataset) plants the sentiment evidence of each modality in a known
    frequency band, so a frequency-aware model has something real to find:

    * **text** carries its share of the label as a smooth, low-frequency component plus white noise;
    * **audio** carries its share as the *amplitude of an oscillation in a high band*,
      **vision** in a *mid band*; the mean over time of that oscillation is about 0;
    * audio and vision also carry strong **low-frequency nuisance** (speaker drift, head pose);
    * a share `av_share` of the label variance (0.4 by default) is visible only to audio and vision.

    This section always uses the built-in benchmark (at this profile's size), whatever `dataset` is.
    """),
    code("""
    from mser_lib.data import make_synthetic
    from mser_lib.experiments import load_profile

    syn, latents = make_synthetic(load_profile(ctx.profile).get("synthetic_profile", ctx.profile), seed=0,
                                  return_latents=True)
    cfg = syn.info.source["config"]
    print({k: cfg[k] for k in ("text_band", "audio_band", "vision_band", "nuisance_band", "nuisance_scale",
                               "av_share")})
    fig = figures.example_sequences(syn.train, index=0, title="One synthetic sample: raw channels")
    ctx.save_figure(fig, "synthetic_example")
    """),
    md("""
    The average power spectrum of each modality (DFT along the sequence axis, averaged over samples
    and channels) shows the story: the nuisance dominates the lowest frequencies of audio and vision,
    and the evidence is a bump in the audio band (high) and the vision band (mid).
    """),
    code("""
    import pandas as pd

    spectra = pd.concat([analysis.mean_power_spectrum(syn.train, m) for m in MODALITIES])
    bands = {"text evidence": tuple(cfg["text_band"]), "audio evidence": tuple(cfg["audio_band"]),
             "vision evidence": tuple(cfg["vision_band"]), "nuisance": tuple(cfg["nuisance_band"])}
    fig = figures.power_spectra(spectra, bands, title="Built-in benchmark: average power spectrum per modality")
    ctx.save_figure(fig, "synthetic_spectra")
    """),
    md("""
    **Probes.** A ridge regression reads per-channel RMS and mean of audio and vision, once after a
    DFT band-pass to the generator's bands ("band-limited") and once on the raw signal
    ("frequency-blind"), and predicts the label's audio+vision component (test R², fitted on train).
    The band-limited reader recovers most of it; the frequency-blind reader, swamped by the nuisance,
    recovers little. That gap is what FEMF's experts and Atsuko's band routing are meant to exploit.
    """),
    code("""
    probes = analysis.frequency_probe(syn, latents)
    ctx.save_table(probes.set_index("probe"), "synthetic_probes",
                   caption="Linear probes on the built-in benchmark (test R2)")
    display(Markdown(to_markdown(probes.set_index("probe").round(3))))
    r2 = probes.set_index("probe")["test R2"]
    assert r2["band-limited"] > r2["frequency-blind"] + 0.2, r2
    assert r2["text, raw"] > 0.5, r2
    """),
    md("""
    ## 4. Real CMU-MOSI features (mosi-bclstm) and the leakage lesson

    `mosi-bclstm` holds real CMU-MOSI utterance features from bc-LSTM (text-CNN 100-d, openSMILE 73-d,
    3D-CNN 100-d) with the continuous labels (README, "Data"). The text-CNN and 3D-CNN were trained
    *with labels* on the bc-LSTM train split (62 videos), which contains 24 of the 31 test videos of
    the standard CMU-MOSI folds. Evaluated on the standard folds, these features have seen the test
    labels. mser therefore uses the bc-LSTM split (train 62 videos, of which a fixed 10% become
    validation; test 31) and warns loudly when asked for the standard folds.

    The lesson, measured: the same ridge regression, fitted on the training utterances of each split
    and scored on its test utterances.
    """),
    code("""
    from mser_lib.pipeline import resolve_data_dir

    bclstm_dir = resolve_data_dir("mosi-bclstm", ctx.data_dir if ctx.dataset == "mosi-bclstm" else "")
    if bclstm_dir is None:
        leak = None
        print("mosi-bclstm is not available (no data_dir and no ../shared/data/mosi-bclstm next to the "
              "repository): skipping this section. See README, 'Data', for how to fetch it.")
    else:
        leak = analysis.ridge_leakage(bclstm_dir)
        shown = leak[["split", "modalities", "test utterances", "acc2_has0", "f1_has0", "acc2_non0", "acc7",
                      "mae", "corr"]].copy()
        for c in ("acc2_has0", "f1_has0", "acc2_non0", "acc7"):
            shown[c] = (100 * shown[c]).round(1)
        shown[["mae", "corr"]] = shown[["mae", "corr"]].round(3)
        shown = shown.set_index(["split", "modalities"])
        ctx.save_table(shown, "mosi_bclstm_leakage",
                       caption="Ridge regression on mosi-bclstm features: bc-LSTM split vs standard folds (test)")
        display(Markdown(to_markdown(shown)))
    """),
    code("""
    if leak is not None:
        import matplotlib.pyplot as plt
        import seaborn as sns

        fig, ax = plt.subplots(figsize=(6, 3))
        sns.barplot(data=leak.assign(acc2=100 * leak["acc2_has0"]), x="modalities", y="acc2", hue="split", ax=ax)
        ax.set_ylabel("test Acc-2, neg/non-neg (%)")
        ax.set_ylim(40, 100)
        ax.set_title("Same ridge regression, two splits: the standard folds leak")
        ctx.save_figure(fig, "mosi_bclstm_leakage")
        t = leak.set_index(["split", "modalities"])["acc2_has0"]
        assert t["standard", "t"] > t["bclstm", "t"] + 0.10, t   # leaky text features
        assert 0.65 < t["bclstm", "tav"] < 0.85, t
    """),
    md("""
    On the standard folds the text and video features look excellent; on the split they were not
    trained on, they are ordinary (text carries most of the signal; audio and video add little).
    Every mosi-bclstm number in `results/` uses the bc-LSTM split.

    Along the utterance axis of a video, the real features have their own spectra (notebook 01
    decomposes them):
    """),
    code("""
    if bclstm_dir is not None:
        real = get_dataset("mosi-bclstm", bclstm_dir, ctx.profile)
        rs = pd.concat([analysis.mean_power_spectrum(real.train, m, n_bins=12) for m in MODALITIES])
        fig = figures.power_spectra(rs, title="mosi-bclstm: average power spectrum along the utterances of a video")
        ctx.save_figure(fig, "mosi_bclstm_spectra")
        display(Markdown(to_markdown(analysis.dataset_summary(real))))
    """),
    code(FOOTER),
]

# =============================================================================================== 01
NB01 = header("01 · Spectral decompositions: FEMF's DFT split and Atsuko's graph bands", """
Both papers read a modality's features as a signal along the sequence axis and split it by frequency
before the experts see it. FEMF cuts the discrete Fourier spectrum in two (low, high); Atsuko builds
the eigenbasis of a path graph's Laplacian and cuts it into K bands of equal training energy. This
notebook walks through both on real and synthetic sequences, with the papers' equations, and checks
the properties the models rely on: the parts sum back to the signal, they are orthogonal, padding
never leaks in. Nothing is trained.
""") + [
    code("""
    import numpy as np
    import pandas as pd
    import torch
    from IPython.display import Markdown, display

    from mser_lib.data import MODALITIES, iterate_batches
    from mser_lib.experiments import get_dataset, load_profile
    from mser_lib.models.registry import build_config
    from mser_lib.report import analysis, figures
    from mser_lib.report.tables import to_markdown
    from mser_lib.spectral import dft, graph

    ds = get_dataset(ctx.dataset, ctx.data_dir, ctx.profile)
    info = ds.info
    preset = load_profile(ctx.profile).get("model_preset", ctx.profile)
    c_model = build_config("femf", info, preset).cutoff_ratio
    print(f"{info.name} ({info.layout} layout); FEMF preset '{preset}' uses c = {c_model}")
    """),
    md(r"""
    ## 1. FEMF: the DFT low/high split (eq. 8)

    FEMF applies the real DFT along the temporal axis of each modality's private representation
    $x_m^u$. With $\mathcal{F}$ the DFT, $s_x = \mathcal{F}(x)$ is split into a low part
    $s_x^{\mathrm{lfc}} \in \mathbb{C}^{c}$ and a high part $s_x^{\mathrm{hfc}} \in \mathbb{C}^{N-c}$,
    each brought back to the time axis:

    $$x_m^{\mathrm{low}},\; x_m^{\mathrm{high}} = \mathrm{FourierLayer}(x_m^u), \qquad m \in \{a, v, t\} \tag{8}$$

    mser makes the cut explicit (`mser_lib.spectral.dft`). A sample with $T$ real positions has
    $\lfloor T/2 \rfloor + 1$ rfft bins $k$; the low band keeps the first

    $$c_T = \mathrm{clamp}\big(\lfloor c \cdot (\lfloor T/2 \rfloor + 1) + \tfrac12 \rfloor,\ 1,\ \lfloor T/2 \rfloor + 1\big)$$

    bins, so $c \in [0, 1]$ is the fraction of the spectrum kept low (FEMF's truncation coefficient:
    0.6 on MOSI, 0.4 on MOSEI, its Fig. 4), and

    $$x^{\mathrm{low}} = \mathcal{F}^{-1}\!\big(\mathbb{1}[k < c_T] \odot \mathcal{F} x\big), \qquad
      x^{\mathrm{high}} = x - x^{\mathrm{low}} .$$

    Each sample uses its own length $T$, never the padded one. The expert outputs of the two bands
    are later mixed with a fixed weight (eq. 15): $R_m = \alpha X_m^{\mathrm{low}} + (1-\alpha) X_m^{\mathrm{high}}$.

    Below: one channel of one sample, split at three cut-offs.
    """),
    code("""
    m_show = "audio" if info.name == "synthetic" else "text"
    i = int(np.argmax(ds.train.lengths(m_show)))            # the longest sample
    T = int(ds.train.lengths(m_show)[i])
    x = torch.as_tensor(ds.train.features(m_show)[i:i + 1, :T], dtype=torch.float64)
    ch = int(torch.argmax(x[0].var(0)))                      # its most variable channel
    parts = {}
    for c in (0.2, 0.5, 0.8):
        low, high = dft.dft_split(x, None, c)
        parts[c] = (low[0, :, ch].numpy(), high[0, :, ch].numpy())
    fig = figures.dft_split_panels(np.arange(T), x[0, :, ch].numpy(), parts,
                                   title=f"{m_show}, sample {i} (T = {T}), channel {ch}: DFT split (eq. 8)")
    ctx.save_figure(fig, "dft_split_vs_c")
    """),
    md("""
    The split is exact and orthogonal: `low + high` is the signal, the low-pass map is an orthogonal
    projection (so the band energies add up), and the padding neither enters the spectrum nor
    receives anything. Checked on a whole training batch of every modality:
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    b = next(iterate_batches(ds.train, info.layout, batch_size=64))
    ok = {"low + high == x on real positions": True, "zero on padding": True, "energies add up": True,
          "padding values are ignored": True}
    for m in MODALITIES:
        xm, mask = b.features(m).double(), b.mask(m)
        low, high = dft.dft_split(xm, mask, c_model)
        real = mask.unsqueeze(-1)
        ok["low + high == x on real positions"] &= torch.allclose((low + high)[real.expand_as(xm)],
                                                                  xm[real.expand_as(xm)], atol=1e-9)
        ok["zero on padding"] &= bool((low[~mask] == 0).all() and (high[~mask] == 0).all())
        e = dft.band_energy(low, high)
        ok["energies add up"] &= torch.allclose(e.sum(1), (xm * real).pow(2).sum((1, 2)), rtol=1e-9)
        noisy = xm + (~real) * 7.0                              # garbage in the padding
        ok["padding values are ignored"] &= torch.allclose(dft.dft_split(noisy, mask, c_model)[0], low, atol=1e-9)
    for k, v in ok.items():
        print(f"{k}: {v}")
    """),
    md("""
    How much of each modality's energy lands in the high band, as a function of $c$ (raw input
    features of the training split):
    """),
    code("""
    share = analysis.high_band_share(ds.train, np.round(np.linspace(0.1, 1.0, 10), 2))
    fig = figures.band_energy_vs_cutoff(share, reference_c=c_model)
    ctx.save_figure(fig, "dft_high_share_vs_c")
    ctx.save_table(share.pivot(index="c", columns="modality", values="high_share").round(4), "dft_high_share",
                   caption="Share of energy in FEMF's high band vs the cut-off c (training split)")
    assert (share.groupby("modality")["high_share"].apply(lambda s: s.is_monotonic_decreasing)).all()
    """),
    md("""
    **The public reference code's rule** (SPEC 3, finding 1) computes `c = int(T * 0.9)` on the padded
    length and uses it as an index into the $\\lfloor T/2\\rfloor + 1$ rfft bins. For every $T \\ge 3$
    that index lies beyond the last bin: nothing is cut, the "high band" is float rounding noise, and
    the high-frequency experts learn a constant. mser follows the paper (a real split) and keeps the
    reference rule only for comparison:
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    for T in (2, 3, 10, 24, 50, 63):
        ours = T // 2 + 1 - dft.cutoff_bins(T, 0.6)
        print(f"T = {T:2d}: rfft bins {T // 2 + 1:2d} | reference rule moves {dft.reference_bins_removed(T, 0.9)} "
              f"to the high band | mser at c = 0.6 moves {ours}")
    xr = torch.randn(4, 24, 8, generator=torch.Generator().manual_seed(0))
    low_ref, high_ref = dft.reference_cutoff_split(xr, 0.9)
    print("reference high band / signal norm < 1e-6:", bool(high_ref.norm() / xr.norm() < 1e-6))
    """),
    md(r"""
    ## 2. Atsuko: the path-graph Laplacian basis (eq. 1)

    Atsuko treats a sequence of $T$ steps as a path graph $1 - 2 - \dots - T$ with adjacency $A$ and
    degree matrix $D$, and uses the eigenvectors of its normalised Laplacian as a frequency basis:

    $$L = I - D^{-1/2} A D^{-1/2} = U \Lambda U^\top, \qquad C = U^\top X, \qquad X = U C \tag{1}$$

    Small eigenvalues belong to smooth (low-frequency) basis vectors, large ones to fast oscillations.
    For the path graph they are distinct, $\lambda_k = 1 - \cos\!\big(\pi k / (T-1)\big)$, so the basis
    is unique up to the sign of each column (mser fixes it: first entry positive). A useful fact: the
    *combinatorial* Laplacian $D - A$ is diagonalised by the DCT-II; the normalised one is not (the two
    end nodes have degree 1), hence `eigh`, computed once per length and cached.
    """),
    code("""
    T = 24
    evals, U = graph.path_graph_eigh(T)
    fig = figures.eigenvectors(U.numpy(), evals.numpy(), ks=(0, 1, 2, 4, 8, T - 1),
                               title=f"Path-graph Laplacian eigenvectors, T = {T} (Atsuko eq. 1)")
    ctx.save_figure(fig, "laplacian_eigenvectors")
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    import math

    closed = torch.tensor([1 - math.cos(math.pi * k / (T - 1)) for k in range(T)], dtype=torch.float64)
    lap = graph.path_graph_laplacian(T)
    dct = graph.dct2_basis(T)
    comb = graph.combinatorial_laplacian(T)
    print("U is orthonormal:", torch.allclose(U.T @ U, torch.eye(T, dtype=torch.float64), atol=1e-10))
    print("L = U diag(lambda) U^T:", torch.allclose(U @ torch.diag(evals) @ U.T, lap, atol=1e-10))
    print("eigenvalues = 1 - cos(pi k / (T - 1)):", torch.allclose(evals, closed, atol=1e-10))
    print("DCT-II diagonalises D - A:", torch.allclose(dct.T @ comb @ dct, torch.diag(torch.diag(dct.T @ comb @ dct)),
                                                       atol=1e-10))
    print("DCT-II diagonalises the normalised L:", torch.allclose(dct.T @ lap @ dct, torch.diag(torch.diag(dct.T @ lap @ dct)),
                                                                  atol=1e-6))
    """),
    md(r"""
    ## 3. Equal-Energy Partitioning

    Coefficient $k$ of a length-$T$ sequence has normalised frequency $\nu_k = k / (T-1) \in [0, 1]$,
    the same scale for every length. Spectral energy is long-tailed: the low frequencies hold most of
    it, yet the paper argues the weak high frequencies carry transient emotional cues. Equal-width
    bands would leave the router almost nothing in the upper bands. Atsuko therefore averages the
    spectral energy $\|C_k\|^2$ over the training set and places the $K - 1$ cuts
    $0 < \beta_1 < \dots < \beta_{K-1} < 1$ so that each band holds about $1/K$ of the energy:

    $$\beta_b = \arg\min_{\beta}\ \Big|\, \frac{\sum_{\nu_k < \beta} \bar E(\nu_k)}{\sum_k \bar E(\nu_k)} - \frac{b}{K} \Big|, \qquad b = 1, \dots, K-1 .$$

    (`mser_lib.spectral.graph.equal_energy_boundaries`; Atsuko fits them on the training split, on the
    features its SBN decomposes: `Atsuko.prepare`.) Below, the cuts for the raw input features of each
    modality (red) and the equidistant cuts (dotted), with $K = 3$.
    """),
    code("""
    K = 3
    accs = {m: graph.SpectrumAccumulator(64) for m in MODALITIES}
    for batch in iterate_batches(ds.train, info.layout, batch_size=256):
        for m in MODALITIES:
            accs[m].update(batch.features(m).double(), batch.mask(m))
    spectra = {m: accs[m].mean_spectrum().numpy() for m in MODALITIES}
    cuts = {m: graph.equal_energy_boundaries(torch.as_tensor(spectra[m]), K).tolist() for m in MODALITIES}
    eq_width = graph.equal_width_boundaries(K).tolist()
    fig = figures.spectrum_with_boundaries(spectra, cuts, eq_width)
    ctx.save_figure(fig, "equal_energy_boundaries")
    """),
    md("""
    The energy share of each band on the training spectra, with equal-energy cuts and with equal-width
    cuts; and the cuts Atsuko itself fits at initialisation (on its projected features `X_m`, the signal
    its SBN decomposes; the buffer `band_cuts` travels with every checkpoint):
    """),
    code("""
    from mser_lib.models import build_model
    from mser_lib.train import set_seed

    shares = analysis.band_energy_shares
    set_seed(0)
    net = build_model("atsuko", info, preset)
    net.prepare(ds)
    rows = []
    for j, m in enumerate(MODALITIES):
        rows.append({"modality": m, "cuts": "equal-energy (input features)", "boundaries": np.round(cuts[m], 3).tolist(),
                     **{f"band {b + 1} energy": round(s, 3) for b, s in enumerate(shares(spectra[m], cuts[m]))}})
        rows.append({"modality": m, "cuts": "equal-width", "boundaries": np.round(eq_width, 3).tolist(),
                     **{f"band {b + 1} energy": round(s, 3) for b, s in enumerate(shares(spectra[m], eq_width))}})
        rows.append({"modality": m, "cuts": "Atsuko at init (projected X_m)",
                     "boundaries": np.round(net.band_cuts[j].tolist(), 3).tolist(),
                     **{f"band {b + 1} energy": round(s, 3)
                        for b, s in enumerate(shares(net.band_spectrum[j].numpy(), net.band_cuts[j].tolist()))}})
    bands_tbl = pd.DataFrame(rows).set_index(["modality", "cuts"])
    ctx.save_table(bands_tbl, "band_boundaries", caption="Band boundaries (normalised graph frequency) and energy shares")
    display(Markdown(to_markdown(bands_tbl)))
    dev = {c: bands_tbl.xs(c, level="cuts").filter(like="energy").sub(1 / K).abs().max(axis=1)
           for c in ("equal-energy (input features)", "equal-width")}
    print("largest deviation from 1/K per modality:", {c: v.round(3).to_dict() for c, v in dev.items()})
    assert (dev["equal-energy (input features)"] <= dev["equal-width"] + 0.05).all(), dev
    """),
    md("""
    Equal energy is not always reachable. When a single coefficient holds more than $1/K$ of the
    energy (typically $\\nu = 0$, a per-sample offset), no cut can split it: the first band is that
    coefficient alone and the next one can be nearly empty. The built-in benchmark's audio and vision
    carry such an offset (part of their low-frequency nuisance), which the table shows; the band
    router then has one "offset" band, one thin band and one band holding everything else.
    """),
    md(r"""
    ## 4. Band components sum back to the signal

    With $U_b$ the basis columns of band $b$, the band component is $X_b = U_b U_b^\top X$. The bands
    partition an orthonormal basis, so $\sum_b X_b = X$ (no information lost) and the components are
    mutually orthogonal. Atsuko's band router weighs them per sample (eq. 2):
    $w^b_m = \mathrm{softmax}\big(\mathrm{MLP}_m([s_{m,1}; \dots; s_{m,K}]) / \tau_b\big)$ with
    $s_{m,b}$ the average-pooled $X_{m,b}$, and $\tilde X_m = K \sum_b w^b_m X_{m,b}$.
    """),
    code("""
    m_show = "audio" if info.name == "synthetic" else "text"
    xm = torch.as_tensor(ds.train.features(m_show)[i:i + 1], dtype=torch.float64)
    mask = torch.as_tensor(ds.train.mask(m_show)[i:i + 1])
    T_i = int(mask.sum())
    comps = graph.band_components(xm, mask, cuts[m_show])          # (1, K, L, d)
    labels = [f"band {b + 1}: ν in [{lo:.2f}, {hi:.2f})" for b, (lo, hi) in
              enumerate(zip([0.0, *cuts[m_show]], [*cuts[m_show], 1.0]))]
    fig = figures.band_components(np.arange(T_i), xm[0, :T_i, ch].numpy(), comps[0, :, :T_i, ch].numpy(), labels,
                                  title=f"{m_show}, sample {i}, channel {ch}: equal-energy band components")
    ctx.save_figure(fig, "band_components")
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    ok = {"sum of the bands == X on real positions": True, "zero on padding": True, "bands are orthogonal": True,
          "band energies add up": True}
    for m in MODALITIES:
        xm, mask = b.features(m).double(), b.mask(m)
        comps, coeffs = graph.band_decompose(xm, mask, cuts[m])
        real = mask[:, None, :, None]
        ok["sum of the bands == X on real positions"] &= torch.allclose(comps.sum(1), xm * mask[..., None], atol=1e-9)
        ok["zero on padding"] &= bool((comps * ~real).abs().max() == 0)
        gram = torch.einsum("bkld,bjld->bkj", comps, comps)
        ok["bands are orthogonal"] &= torch.allclose(gram - torch.diag_embed(torch.diagonal(gram, dim1=1, dim2=2)),
                                                     torch.zeros_like(gram), atol=1e-8)
        e = graph.band_energy(coeffs, mask, cuts[m])
        ok["band energies add up"] &= torch.allclose(e.sum(1), (xm * mask[..., None]).pow(2).sum((1, 2)), rtol=1e-9)
    for k, v in ok.items():
        print(f"{k}: {v}")
    """),
    md("""
    ## 5. On real sequences (mosi-bclstm)

    In the utterance-feature format the sequence axis is the utterances of a video (9 to 63 of them),
    so "frequency" means how fast a speaker's features change from one utterance to the next. Both
    decompositions apply unchanged (skipped when the data folder is absent).
    """),
    code("""
    from mser_lib.pipeline import resolve_data_dir

    bclstm_dir = resolve_data_dir("mosi-bclstm", ctx.data_dir if ctx.dataset == "mosi-bclstm" else "")
    if bclstm_dir is None:
        print("mosi-bclstm is not available: skipping the real-data walkthrough (README, 'Data').")
    else:
        real = get_dataset("mosi-bclstm", bclstm_dir, ctx.profile)
        v = int(np.argmax(real.train.lengths("text")))
        Tv = int(real.train.lengths("text")[v])
        xt = torch.as_tensor(real.train.text[v:v + 1, :Tv], dtype=torch.float64)
        chv = int(torch.argmax(xt[0].var(0)))
        racc = graph.SpectrumAccumulator(32)
        for batch in iterate_batches(real.train, real.info.layout, batch_size=64):
            racc.update(batch.text.double(), batch.text_mask)
        rcuts = graph.equal_energy_boundaries(racc.mean_spectrum(), K).tolist()
        low, high = dft.dft_split(xt, None, 0.6)
        rcomps = graph.band_components(xt, torch.ones(1, Tv, dtype=torch.bool), rcuts)
        fig = figures.dft_split_panels(np.arange(Tv), xt[0, :, chv].numpy(),
                                       {0.6: (low[0, :, chv].numpy(), high[0, :, chv].numpy())},
                                       title=f"mosi-bclstm video {real.train.ids[v]} ({Tv} utterances), text channel {chv}")
        ctx.save_figure(fig, "mosi_bclstm_dft_split")
        fig = figures.band_components(np.arange(Tv), xt[0, :, chv].numpy(), rcomps[0, :, :, chv].numpy(),
                                      title=f"mosi-bclstm text: equal-energy graph bands (cuts {np.round(rcuts, 2).tolist()})")
        ctx.save_figure(fig, "mosi_bclstm_band_components")
        assert torch.allclose(rcomps.sum(1), xt, atol=1e-9) and torch.allclose(low + high, xt, atol=1e-9)
        print(f"text cuts on the real training spectra: {np.round(rcuts, 3).tolist()}")
    """),
    code(FOOTER),
]

# =============================================================================================== 02
NB02 = header("02 · FEMF stage 1: pretraining the frequency-aware experts", """
FEMF trains in two stages (paper, section 3.3). In stage 1 each modality's private features are
split by the DFT (notebook 01) and each (modality, band) pair gets its own expert, trained to predict
the label on its own. The experts are then **frozen** and, in stage 2, every band of every modality
goes through all experts of that band and a soft router mixes their outputs.

This notebook trains FEMF (both stages: `run_one` fits a model's stages in order, each selected on
VALID) for every seed, then opens stage 1: learning curves and validation metrics of every expert.
The runs are recorded in `runs.jsonl` and their checkpoints under `checkpoints/<config hash>/experts/`
and `.../full/`; notebook 03 reuses the same runs (same config hash) instead of training again.
""") + [
    md(r"""
    ## The experts and their objective

    Expert $(m, f)$, for modality $m \in \{a, v, t\}$ and band $f \in \{\mathrm{low}, \mathrm{high}\}$,
    is a stack of $Q$ Transformer encoder blocks and a linear head:

    $$\hat y_m^f = \mathrm{FC}_m^f\big(\mathrm{Transformer}_m^f(x_m^f)\big) \tag{9}$$

    $$\mathcal{L}_{train}^f = \mathrm{MSE}\big(y, \hat y_m^f\big) \tag{10}$$

    $$\mathcal{L}_{train} = \sum_{m \in \{a, v, t\}} \sum_{f \in \{\mathrm{low}, \mathrm{high}\}} \mathrm{MSE}\big(y, \hat y_m^f\big) \tag{27}$$

    "After training, the parameters of all modality-frequency experts are frozen and reused in the
    downstream model." In stage 1 mser trains the input projections, the disentanglement module
    (with $\mathcal L_{dis}$, eq. 7) and the experts on $\mathcal L_{train}$; the stage's prediction,
    used to select the epoch on VALID, is the mean of the six experts' predictions. In stage 2 the
    experts run under `torch.no_grad` with `requires_grad=False` (the public code does not freeze them,
    SPEC 3 finding 2), and each band of modality $m$ is read by every expert of that band (eq. 11-15):

    $$x_i^m = e_i(x_m^{\mathrm{low}}), \quad w^m = \mathrm{softmax}\big(\mathrm{MLP}(x_m^{\mathrm{low}}, x_t^{\mathrm{low}})\big), \quad
      X_m^{\mathrm{low}} = \sum_i w_i^m x_i^m, \quad R_m = \alpha X_m^{\mathrm{low}} + (1 - \alpha) X_m^{\mathrm{high}} .$$
    """),
    code("""
    import numpy as np
    import pandas as pd
    from IPython.display import Markdown, display

    from mser_lib.experiments import get_dataset, run_grid
    from mser_lib.models import model_names
    from mser_lib.report import analysis, figures
    from mser_lib.report.tables import to_markdown

    assert "femf" in model_names(), "mser_lib.models.femf is missing"
    ds = get_dataset(ctx.dataset, ctx.data_dir, ctx.profile)
    records = run_grid([{"model": "femf", "seed": s} for s in ctx.seeds], **ctx.grid_kwargs)
    rows = []
    for r in records:
        st = {s["stage"]: s for s in r["stages"]}
        rows.append({"seed": r["seed"], "config hash": r["config_hash"], "parameters": r["n_params"],
                     "wall time (s)": round(r["wall_time_s"], 1),
                     "experts: best epoch / run": f"{st['experts']['best_epoch']} / {st['experts']['epochs_run']}",
                     "experts: valid MAE (mean of experts)": round(st["experts"]["valid"]["mae"], 4),
                     "full: best epoch / run": f"{st['full']['best_epoch']} / {st['full']['epochs_run']}",
                     "full: valid MAE": round(st["full"]["valid"]["mae"], 4),
                     "full: test MAE": round(r["test"]["mae"], 4)})
    stages_tbl = pd.DataFrame(rows).set_index("seed")
    ctx.save_table(stages_tbl, "femf_stages", caption="FEMF: the two stages per seed (selected on VALID)")
    display(Markdown(to_markdown(stages_tbl)))
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    print("runs:", len(records) == len(ctx.seeds), "| stages:", [s["stage"] for s in records[0]["stages"]])
    print("seeds recorded as asked:", sorted(r["seed"] for r in records) == sorted(ctx.seeds))
    """),
    md("""
    ## Learning curves of both stages

    From the per-epoch histories kept in each run's checkpoints (`<stage>/last.pt`): the training
    objective and the validation MAE per epoch; the dotted line marks the epoch chosen on VALID.
    Stage 1's validation MAE is that of the mean expert; stage 2's that of FEMF's final prediction.
    """),
    code("""
    hist = [analysis.stage_history(ctx.results_dir, r, s) for r in records for s in ("experts", "full")]
    if any(h is None for h in hist):
        print("some checkpoints are gone (results copied without checkpoints/): showing the recorded "
              "final-stage histories only")
        hist = [analysis.history_long(records).assign(stage="full")]
        curves = hist[0].rename(columns={"row": "model"})
    else:
        h = pd.concat(hist, ignore_index=True)
        sel_metric = f"valid_{records[0]['select_metric']}"
        curves = h.melt(id_vars=["seed", "stage", "epoch"], value_vars=["train_total", sel_metric],
                        var_name="series", value_name="value")
    best = pd.DataFrame([{"stage": s["stage"], "epoch": s["best_epoch"]} for r in records for s in r["stages"]])
    fig = figures.learning_curves(curves, hue="series", col="stage", row="series", best=best,
                                  title="FEMF: training objective and valid MAE per epoch (mean ± sd over seeds)")
    ctx.save_figure(fig, "femf_stage_curves")
    """),
    md("""
    ## Every expert on its own

    The stage's selection metric averages the six experts. To see each one, mser replays stage 1 of
    the first seed's run exactly (same seed, same configuration, same deterministic trainer; no record
    or checkpoint is written) and scores every expert on VALID after every epoch. The replay ends on
    the same epoch and the same validation metric as the recorded run (checked below), so these curves
    are the recorded run's curves. They are cached in `tables/expert_curves_seed<seed>.csv`.
    """),
    code("""
    r0 = records[0]
    curves = analysis.cached_expert_curves(r0, ds, ctx.tables, force=ctx.force)
    st0 = {s["stage"]: s for s in r0["stages"]}["experts"]
    print(f"replayed {curves['epoch'].nunique()} epochs of stage 1 for seed {r0['seed']}; recorded run: "
          f"{st0['epochs_run']} epochs, best epoch {st0['best_epoch']}")
    assert curves["epoch"].nunique() == st0["epochs_run"], (curves["epoch"].nunique(), st0["epochs_run"])
    sel = curves[curves["metric"].isin(["mae", "corr"])]
    fig = figures.learning_curves(sel, hue="band", col="modality", row="metric",
                                  best=pd.DataFrame([{"epoch": st0["best_epoch"]}]),
                                  title=f"Stage 1, seed {r0['seed']}: each expert on VALID per epoch")
    ctx.save_figure(fig, "expert_learning_curves")
    """),
    md("""
    The validation metrics of every expert at the epoch chosen on VALID, for every seed (from the
    run's `experts/best.pt`; a seed whose checkpoint is gone is replayed as above), mean ± std over
    seeds:
    """),
    code("""
    per_seed = []
    for r in records:
        net = analysis.model_from_record(r, ds, ctx.results_dir, "experts")
        if net is None:
            net = analysis.refit_experts(r, ds, per_epoch=False)[0]
        per_seed.append(analysis.expert_metrics(net, ds.valid, ds.info).assign(seed=r["seed"]))
    em = pd.concat(per_seed, ignore_index=True)
    agg, shown = analysis.expert_table(em)
    fig = figures.expert_metric_grid(agg, ["mae", "corr", "acc2_has0", "acc7"])
    ctx.save_figure(fig, "expert_valid_metrics")
    ctx.save_table(shown, "expert_valid_metrics",
                   caption=f"FEMF stage-1 experts on VALID, mean ± std over seeds {ctx.seeds}")
    display(Markdown(to_markdown(shown)))
    assert em["value"].notna().all() and (em.loc[em["metric"] == "mae", "value"] < 3.0).all()
    if ds.info.name == "synthetic":                      # where the generator put the evidence
        corr = agg[agg["metric"] == "corr"].set_index(["modality", "band"])["mean"]
        assert corr["text", "low"] > corr["text", "high"] + 0.3, corr
        if ctx.profile != "smoke":                        # two smoke epochs are too few for audio
            assert corr["audio", "high"] > corr["audio", "low"] + 0.1, corr
    """),
    md("""
    On the built-in benchmark the text evidence is low-frequency, the audio evidence oscillates at
    0.30-0.45 cycles per step and the vision evidence at 0.12-0.22, behind low-frequency nuisance
    (notebook 00). FEMF's low band keeps the rfft bins below $c \\cdot (\\lfloor T/2 \\rfloor + 1)$, i.e.
    frequencies below about $c/2$ cycles per step (notebook 01 prints the preset's $c$; with
    $c = 0.6$, the paper's MOSI value, the cut lies near 0.3 cycles per step): text and vision
    evidence fall in the low band and audio evidence in the high band. The experts
    find their share there: text's low-band expert and audio's high-band expert clearly beat the other
    band of their modality (checked below on the built-in data); vision's evidence is the weakest
    (a mid band, half of the audio+vision share, behind the strongest nuisance). (On `mosi-bclstm` the
    validation videos come from the bc-LSTM train split, on whose labels the text and video features
    were learned, so validation scores there are optimistic; only its test split is clean.)

    ## The frozen experts in stage 2

    The checkpoint of stage 2 must hold exactly the expert weights that stage 1 selected:
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    import torch

    from mser_lib.train import load_checkpoint

    same = []
    for r in records:
        a, b = (analysis.stage_checkpoint(ctx.results_dir, r, s) for s in ("experts", "full"))
        if a is None or b is None:
            same.append(None)
            continue
        wa = load_checkpoint(a, "cpu")["model"]
        wb = load_checkpoint(b, "cpu")["model"]
        keys = [k for k in wa if k.startswith("experts.")]
        same.append(bool(keys) and all(torch.equal(wa[k], wb[k]) for k in keys))
    print("expert weights unchanged by stage 2:", "unknown (checkpoints not kept)" if None in same else all(same))
    """),
    code(FOOTER),
]

# =============================================================================================== 03
NB03 = header("03 · Full training: FEMF, Atsuko, EMOE and the baselines", """
The main comparison. Every model is trained for every seed of the profile, selected on the
validation split and scored once on the test split; the table reports mean ± std over seeds for
every metric of SPEC 2, beside the numbers the papers report (marked *reported*, with their datasets
and features: they are context, not comparable to runs on other data).

FEMF's runs were trained in notebook 02 and are reused here (same config hash). A run already in
`runs.jsonl` is not trained again unless `force=True` (`make reproduce FORCE=1`).
""") + [
    md(r"""
    ## The models

    **FEMF** (paper 000): shared/private disentanglement (eq. 1-7), the frequency-aware experts of
    notebook 02 (eq. 8-15), two-step cross-modal attention (eq. 16-19), hierarchical prediction with
    learned fusion weights (eq. 20-23) and a shared-feature consistency term (eq. 24-25). Its
    objective, with the paper's unit weights (each weight is a config field):

    $$\mathcal L_{task} = \frac1N \sum_n (\hat y_n - y_n)^2 \tag{26}$$
    $$\mathcal L_{total} = \mathcal L_{dis} + \mathcal L_{train} + \mathcal L_{align} + \mathcal L_{task} \tag{28}$$

    **Atsuko** (paper 001) on EMOE's backbone (per-modality temporal convolution, shared 1x1
    convolution, per-modality Transformer encoders): the Spectral-Band Network splits each modality
    into $K$ graph bands (eq. 1) and re-weights them per sample (eq. 2); a router on the unit
    hypersphere weighs the modalities (eq. 3-4); the Marginal Complementarity Module builds the three
    bimodal branches (eq. 5), turns the loss gap of leaving modality $m$ out into a target
    $q = \mathrm{softmax}(\Delta / \tau_c)$ (eq. 6) and pulls the router towards it,
    $\mathcal L_{comp} = \mathrm{KL}(q \,\|\, w)$ (eq. 7), with feature distillation from the
    router-weighted unimodal features (eq. 8-9). The total loss (eq. 10-12):

    $$\mathcal L = \mathcal L_{full} + \lambda_{uni}\mathcal L_{uni} + \lambda_{bi}\mathcal L_{bi}
       + \lambda_{ent}(\mathcal L^{mod}_{ent} + \mathcal L^{band}_{ent}) + \lambda_{comp}\mathcal L_{comp}
       + \lambda_{dis}\mathcal L_{dis}, \qquad \mathcal L^{mod}_{ent} = \frac1B\sum_i \sum_m w_{im}\log w_{im}.$$

    (Atsuko's equation numbers; our copy of the paper lost the formulas themselves, so these are
    written from its prose, as `mser_lib/models/atsuko.py` documents.)

    **EMOE** is Atsuko with the SBN and the MCM switched off (its router then follows EMOE's own
    target, SPEC 4): the first row of Atsuko's ablation (Table 4).

    **Baselines**: a late-fusion MLP over mean-pooled features (sequence layout) or a bc-LSTM-like
    bidirectional GRU over utterances (position layout), on all three modalities and on each alone.
    """),
    code("""
    from IPython.display import Markdown, display

    from mser_lib.experiments import find_record, get_dataset, resolve_run, run_grid
    from mser_lib.models import model_names
    from mser_lib.pipeline import main_grid
    from mser_lib.report import analysis, figures, paper_rows
    from mser_lib.report.tables import to_markdown

    ds = get_dataset(ctx.dataset, ctx.data_dir, ctx.profile)
    grid = main_grid(ctx.profile, ctx.dataset, ctx.seeds)
    missing = [m for m in ("femf", "atsuko", "emoe") if m not in model_names()]
    if missing:
        print("not available (module missing), skipped:", missing)
    cached = sum(find_record(ctx.results_dir, resolve_run(g["model"], ctx.dataset, g["seed"], ctx.profile,
                                                          g.get("overrides"), info=ds.info)) is not None
                 for g in grid) if not ctx.force else 0
    print(f"{len(grid)} runs in the grid, {cached} already recorded")
    records = run_grid(grid, **ctx.grid_kwargs)
    print(f"{len(records)} records; wall time of the trained runs: "
          f"{sum(r['wall_time_s'] for r in records):.0f} s (summed over runs)")
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    import collections

    per_row = collections.Counter(paper_rows.row_label(r) for r in records)
    print("rows:", sorted(per_row))
    print("every row has every seed:", set(per_row.values()) == {len(ctx.seeds)})
    """),
    md("""
    ## The main results table

    Rows marked *reported* are copied from the papers' Table 1 (`mser_lib/report/paper_rows.py`, the
    project's only typed numbers); their dataset, setting and features are given. Rows marked
    *measured* are ours: this notebook's dataset, features and profile, test split at the epoch chosen
    on VALID, mean ± std over the seeds listed. Accuracies and F1 in percent, as the papers print them.
    Atsuko does not state whether its Acc-2/F1 are neg/non-neg or neg/pos, so they get their own
    columns.
    """),
    code("""
    table = paper_rows.main_table(records, ds.info, ctx.profile)
    caption = (f"Main results: reported rows (papers' Table 1, their data) and ours ({ds.info.name}, profile "
               f"{ctx.profile}, test split, mean ± std over seeds {ctx.seeds})")
    ctx.save_table(table, "main_results", caption=caption)
    display(Markdown(to_markdown(table)))
    """),
    md("""
    The same measured rows in the layout of each paper's Table 1 (all of its reported rows included):
    FEMF prints Acc-2 and F1 as "neg/non-neg / neg/pos" with MAE and Corr; Atsuko prints Acc-7, Acc-2,
    F1 and MAE per setting.
    """),
    code("""
    if ds.info.metric_family == "mosi":
        femf_tbl = paper_rows.femf_layout(records, ds.info, ctx.profile)
        ctx.save_table(femf_tbl, "femf_table1_layout", caption="In the layout of FEMF Table 1")
        display(Markdown(to_markdown(femf_tbl.tail(len(femf_tbl) - len(paper_rows.femf_table1())))))
        ats_tbl = paper_rows.atsuko_layout(records, ds.info, ctx.profile)
        ctx.save_table(ats_tbl, "atsuko_table1_layout", caption="In the layout of Atsuko Table 1")
        display(Markdown(to_markdown(ats_tbl.tail(len(ats_tbl) - len(paper_rows.atsuko_table1())))))
    rep = paper_rows.reported_frame(paper_rows.reported_rows(ds.info.metric_family)).set_index(["source", "model"])
    ctx.save_table(rep, "papers_reported_rows", caption="Every transcribed row of the papers' tables (reported)")
    """),
    md("""
    ## Per-seed results and what the runs cost

    Each dot is one seed's test value, the bar their mean. Seeds differ in initial weights and batch
    order only; the data split is fixed.
    """),
    code("""
    long = analysis.records_long(records)
    order = list(dict.fromkeys(paper_rows.row_label(r) for r in records))
    cols = {"mosi": ["mae", "corr", "acc2_non0", "acc7"], "sims": ["mae", "corr", "acc2", "acc5"]}.get(
        ds.info.metric_family, ["acc", "f1_macro"])
    fig = figures.seed_points(long, cols, order)
    ctx.save_figure(fig, "test_metrics_per_seed")
    import pandas as pd

    costs = pd.DataFrame([{"row": paper_rows.row_label(r), "seed": r["seed"], "parameters": r["n_params"],
                           "epochs run": r["epochs_run"], "best epoch": r["best_epoch"],
                           "wall time (s)": r["wall_time_s"], "device": r["device"]} for r in records])
    costs = costs.groupby("row", sort=False).agg({"parameters": "first", "epochs run": "mean", "best epoch": "mean",
                                                  "wall time (s)": "mean", "device": "first"}).round(1)
    ctx.save_table(costs, "run_costs", caption="Parameters, epochs and wall time per run (mean over seeds)")
    display(Markdown(to_markdown(costs)))
    """),
    md("""
    Training objective and validation curve of the final stage of every model (from the compact
    history each record keeps; FEMF's curve is its stage 2). Training objectives include each model's
    auxiliary terms, so their scales differ between models.
    """),
    code("""
    hist = analysis.history_long(records)
    sel_metric = records[0]["select_metric"]
    hist = hist[hist["series"].isin(["train_total", f"valid_{sel_metric}"])]
    fig = figures.learning_curves(hist.rename(columns={"row": "model"}), hue="model", col="series", sharey=False,
                                  title="Training objective and validation metric per epoch (mean ± sd over seeds)")
    ctx.save_figure(fig, "learning_curves")
    """),
    md("""
    ## What the trained models do

    FEMF's soft routers (eq. 12-13: weight of each expert for each modality's band) and its fusion
    weights over the heads (eq. 22); Atsuko's band weights (eq. 2) and modality weights (eq. 3). Means
    over the test split, first seed, from the best checkpoints (skipped when checkpoints are gone).
    """),
    code("""
    import matplotlib.pyplot as plt
    import numpy as np

    first = {r["model"]: r for r in records if r["seed"] == ctx.seeds[0]}
    panels = []
    if "femf" in first:
        net = analysis.model_from_record(first["femf"], ds, ctx.results_dir, "full")
        if net is not None:
            net.set_stage("full")
            d = analysis.mean_diagnostics(net, ds.test, ds.info, ["router_low", "router_high", "fusion_weights"])
            mods = list(net.mods)
            for key in ("router_low", "router_high"):
                panels.append((f"FEMF {key.replace('_', ' ')}\\n(rows: band of modality, cols: expert)",
                               pd.DataFrame(d[key], index=mods, columns=mods)))
            panels.append(("FEMF fusion weights\\n(eq. 22)", pd.DataFrame([d["fusion_weights"]], index=["weight"],
                                                                        columns=[*mods, "joint"])))
    if "atsuko" in first:
        net = analysis.model_from_record(first["atsuko"], ds, ctx.results_dir, None)
        if net is not None:
            d = analysis.mean_diagnostics(net, ds.test, ds.info, ["band_weights", "modality_weights"])
            K = d["band_weights"].shape[-1]
            panels.append(("Atsuko band weights\\n(eq. 2)", pd.DataFrame(d["band_weights"], index=["text", "audio", "vision"],
                                                                       columns=[f"band {b + 1}" for b in range(K)])))
            panels.append(("Atsuko modality weights\\n(eq. 3)", pd.DataFrame([d["modality_weights"]], index=["weight"],
                                                                           columns=["text", "audio", "vision"])))
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2))
        for ax, (title, mat) in zip(np.atleast_1d(axes), panels):
            figures.weights_heatmap(mat, title, ax=ax)
        fig.tight_layout()
        ctx.save_figure(fig, "routing_weights")
        for title, mat in panels:
            assert np.allclose(mat.sum(axis=1), 1.0, atol=1e-4), title      # softmax weights
    else:
        print("no checkpoints to inspect")
    """),
    md("""
    Notebooks 04-06 build on these runs: ablations (FEMF Tables 2-3, Atsuko Table 4), robustness to
    missing modalities, and the papers' figures.
    """),
    code(FOOTER),
]


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    path = NOTEBOOKS / name
    NOTEBOOKS.mkdir(exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


TARGETS = {"00_data_preparation.ipynb": NB00, "01_spectral_decomposition.ipynb": NB01,
           "02_expert_pretraining.ipynb": NB02, "03_full_training.ipynb": NB03}


def main(argv=None) -> int:
    only = (argv or sys.argv[1:])
    for name, cells in TARGETS.items():
        if only and not any(name.startswith(o) for o in only):
            continue
        print(write(name, cells).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
