# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Data: what the models see
#
# This notebook looks at the data before any model does. It shows
#
# 1. the **one data path**: every source (the built-in benchmark, MMSA pickles, utterance features,
#    bc-LSTM features) becomes the same `MultimodalDataset`, and every model sees the same `Batch`;
# 2. the labels and the sequence lengths;
# 3. the **built-in benchmark's generative story** with pictures and linear probes: where the
#    sentiment evidence of each modality sits in frequency, and why a frequency-blind reader misses it;
# 4. the **real CMU-MOSI features** (`mosi-bclstm`) and their **leakage lesson**, measured here: the
#    same ridge regression scores far higher on the standard folds than on the bc-LSTM split, because
#    the features were learned on labels of most standard test videos.
#
# Nothing is trained. Tables go to `results/<profile>/<dataset>/tables/`, figures to `.../figures/`.

# %% tags=["parameters"]
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

# %%
from mser_lib.notebook import notebook_setup

ctx = notebook_setup(profile, dataset, data_dir, device, seeds, results_dir, force)
print(f"profile {ctx.profile} | dataset {ctx.dataset} | seeds {ctx.seeds} | {ctx.threads} thread(s), "
      f"{ctx.workers} worker(s) | outputs in {ctx.rel(ctx.out)}")

# %% [markdown]
# ## 1. One data path
#
# `mser_lib.experiments.get_dataset(name, data_dir, profile)` returns a `MultimodalDataset`: a
# `DatasetInfo` (layout, task, metric family, feature widths) and three splits of padded arrays,
# `text (N, L, d_t)`, `audio (N, L, d_a)`, `vision (N, L, d_v)`, one boolean mask per modality
# (`True` = a real position; padding is at the end), `labels`, `label_mask` and `ids`.
#
# Two layouts exist. **sequence** (MMSA, the built-in benchmark): a sample is one utterance, a
# sequence of frames or tokens with one label. **position** (utterance features, mosi-bclstm): a
# sample is one video, its sequence is the video's utterances, and every position has its own label.

# %%
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
display(Markdown(to_markdown(summary.T)))        # one column per split

# %% [markdown]
# The loaders check what they read (shapes, NaN/inf, label range) and raise `DataFormatError`
# naming the file, the field, what was expected and what was found. The checks below hold for
# every dataset; nbval compares their printed output on every run.

# %%
# NBVAL_CHECK_OUTPUT
for k, v in analysis.data_checks(ds).items():
    print(f"{k}: {v}")

# %% [markdown]
# A batch is what a model's `forward` receives. `iterate_batches` pads each batch to its own
# longest sample (and, for training, groups samples of similar length).

# %%
from mser_lib.data import MODALITIES, iterate_batches

batch = next(iterate_batches(ds.train, info.layout, batch_size=8))
for m in MODALITIES:
    print(f"{m:>6}: features {tuple(batch.features(m).shape)}, mask {tuple(batch.mask(m).shape)}, "
          f"real positions per sample {batch.mask(m).sum(1).tolist()}")
print(f"labels {tuple(batch.labels.shape)}, label_mask {tuple(batch.label_mask.shape)}, ids {list(batch.ids)[:3]} ...")

# %% [markdown]
# ## 2. Labels and lengths
#
# CMU-MOSI labels average five annotators on a 7-point scale, so they lie in [-3, 3] on a grid of
# 0.2, and a few are exactly 0. The metrics make 0 matter: "neg/non-neg" Acc-2 counts 0 as
# non-negative, "neg/pos" Acc-2 drops it ([docs/metrics.md](../docs/metrics.md), `mser_lib.metrics`).
# On a classification dataset (MIntRec, the built-in `synthetic-intent`) none of this applies: a label is a
# class index, the histogram counts each class, and the metrics are accuracy, F1, precision and recall.

# %%
labels = {s: ds.split(s).labels[ds.split(s).label_mask] for s in ("train", "valid", "test")}
fig = figures.label_histogram(labels, info.label_range if info.task == "regression" else None,
                              title=f"{info.name}: labels per split")
ctx.save_figure(fig, "label_histogram")

# %%
unit = "utterances" if info.layout == "position" else "time steps"
fig = figures.length_histogram({m: ds.train.lengths(m) for m in MODALITIES}, unit=unit)
ctx.save_figure(fig, "length_histogram")

# %% [markdown]
# ### What we see (computed, `mser_lib.report.narrative`)

# %%
from mser_lib.report import narrative as nv

see = [nv.summary_sentence(summary, info.name)]
if nv.is_builtin(info) and info.task == "classification":
    see.append("The classes are drawn by the generator with falling priors (docs/data-formats.md), so the class "
               "counts are set by its configuration, not by annotators.")
elif nv.is_builtin(info):
    see.append("The labels are drawn by the generator (section 3), so their spread and the share of exact zeros "
               "are set by its configuration, not by annotators.")
else:
    see.append(f"These are {info.name}'s own labels; the {unit} per sample set how long a sequence the spectral "
               "models of notebook 01 can decompose.")
display(Markdown(nv.what_we_see(see, info)))

# %% [markdown]
# ## 3. The built-in benchmark: a generative story with a known answer
#
# `make_synthetic` (the default dataset) plants the sentiment evidence of each modality in a known
# frequency band, so a frequency-aware model has something real to find:
#
# * **text** carries its share of the label as a smooth, low-frequency component plus white noise;
# * **audio** carries its share as the *amplitude of an oscillation in a high band*,
#   **vision** in a *mid band*; the mean over time of that oscillation is about 0;
# * audio and vision also carry strong **low-frequency nuisance** (speaker drift, head pose);
# * a share `av_share` of the label variance (0.4 by default) is visible only to audio and vision.
#
# This section always uses the built-in benchmark (at this profile's size), whatever `dataset` is.

# %%
from mser_lib.data import make_synthetic
from mser_lib.experiments import load_profile

syn, latents = make_synthetic(load_profile(ctx.profile).get("synthetic_profile", ctx.profile), seed=0,
                              return_latents=True)
cfg = syn.info.source["config"]
print({k: cfg[k] for k in ("text_band", "audio_band", "vision_band", "nuisance_band", "nuisance_scale",
                           "av_share")})
fig = figures.example_sequences(syn.train, index=0, title="One synthetic sample: raw channels")
ctx.save_figure(fig, "synthetic_example")

# %% [markdown]
# The average power spectrum of each modality (DFT along the sequence axis, averaged over samples
# and channels) shows the story: the nuisance dominates the lowest frequencies of audio and vision,
# and the evidence is a bump in the audio band (high) and the vision band (mid).
#
# **Units.** Frequencies here are in *cycles per step* (0 to 0.5, the Nyquist limit): an oscillation
# at 0.4 cycles per step repeats every 2.5 steps. Notebook 01 measures Atsuko's graph frequency as
# $\nu = k/(T-1) \in [0, 1]$; the two are related by $\nu = 2 \times$ cycles per step, and notebook 01
# converts the bands below and marks them on its axes.

# %%
import pandas as pd

spectra = pd.concat([analysis.mean_power_spectrum(syn.train, m) for m in MODALITIES])
bands = {"text evidence": tuple(cfg["text_band"]), "audio evidence": tuple(cfg["audio_band"]),
         "vision evidence": tuple(cfg["vision_band"]), "nuisance": tuple(cfg["nuisance_band"])}
fig = figures.power_spectra(spectra, bands, title="Built-in benchmark: average power spectrum per modality")
ctx.save_figure(fig, "synthetic_spectra")

# %% [markdown]
# **Probes.** A ridge regression reads per-channel RMS and mean of audio and vision, once after a
# DFT band-pass to the generator's bands ("band-limited") and once on the raw signal
# ("frequency-blind"), and predicts the label's audio+vision component (test R², fitted on train).
# The band-limited reader recovers most of it; the frequency-blind reader, swamped by the nuisance,
# recovers little. That gap is what FEMF's experts and Atsuko's band routing are meant to exploit.

# %%
probes = analysis.frequency_probe(syn, latents)
ctx.save_table(probes.set_index("probe"), "synthetic_probes",
               caption="Linear probes on the built-in benchmark (test R2)")
display(Markdown(to_markdown(probes.set_index("probe").round(3))))
r2 = probes.set_index("probe")["test R2"]
assert r2["band-limited"] > r2["frequency-blind"] + 0.2, r2
assert r2["text, raw"] > 0.5, r2

# %% [markdown]
# ### What we see (computed)

# %%
see = nv.probe_sentences(r2.to_dict(), margin=0.2)
see.append(f"By construction text sees none of the av_share = {cfg['av_share']:.0%} of the label variance carried "
           f"by audio and vision, so text alone can explain at most about {1 - cfg['av_share']:.0%} of it (before "
           "the label's clipping and rounding).")
if nv.is_builtin(info) and info.name != "synthetic":
    see.append(f"This section used the regression benchmark, not {info.name}; {info.name} plants its class "
               "evidence in the same bands (docs/data-formats.md).")
elif not nv.is_builtin(info):
    see.append(f"This section used the built-in data, not {info.name}: on {info.name} nothing is planted, and no "
               "probe can say in advance which band holds the evidence.")
display(Markdown(nv.what_we_see(see, "synthetic")))

# %% [markdown]
# ## 4. Real CMU-MOSI features (mosi-bclstm) and the leakage lesson
#
# `mosi-bclstm` holds real CMU-MOSI utterance features from bc-LSTM (text-CNN 100-d, openSMILE 73-d,
# 3D-CNN 100-d) with the continuous labels (docs/data-formats.md). The text-CNN and 3D-CNN were trained
# *with labels* on the bc-LSTM train split (62 videos), which contains 24 of the 31 test videos of
# the standard CMU-MOSI folds. Evaluated on the standard folds, these features have seen the test
# labels. mser therefore uses the bc-LSTM split (train 62 videos, of which a fixed 10% become
# validation; test 31) and warns loudly when asked for the standard folds.
#
# The lesson, measured: the same ridge regression, fitted on the training utterances of each split
# and scored on its test utterances.

# %%
from mser_lib.notebook import resolve_data_dir

bclstm_dir = resolve_data_dir("mosi-bclstm", ctx.data_dir if ctx.dataset == "mosi-bclstm" else "")
if bclstm_dir is None:
    leak = None
    print("mosi-bclstm is not available (no data_dir and no ../shared/data/mosi-bclstm next to the "
          "repository): skipping this section. See docs/data-formats.md for how to fetch it.")
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
    display(Markdown(to_markdown(shown.drop(columns=["f1_has0"]))))      # the saved table keeps F1 too

# %%
if leak is not None:
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6, 3))
    sns.barplot(data=leak.assign(acc2=100 * leak["acc2_has0"]), x="modalities", y="acc2", hue="split", ax=ax)
    ax.set_ylabel("test Acc-2, neg/non-neg (%)")
    ax.set_ylim(0, 100)                                  # bars start at 0
    ax.axhline(50, color="k", ls=":", lw=1)              # a coin flip, for scale
    ax.set_title("Same ridge regression, two splits: the standard folds leak")
    ctx.save_figure(fig, "mosi_bclstm_leakage")
    t = leak.set_index(["split", "modalities"])["acc2_has0"]
    assert t["standard", "t"] > t["bclstm", "t"] + 0.10, t   # leaky text features
    assert 0.65 < t["bclstm", "tav"] < 0.85, t

# %% [markdown]
# On the standard folds the text and video features look excellent; on the split they were not
# trained on, they are ordinary (text carries most of the signal; audio and video add little).
# Every mosi-bclstm number in `results/` uses the bc-LSTM split.
#
# Along the utterance axis of a video, the real features have their own spectra (notebook 01
# decomposes them):

# %% [markdown]
# ### What we see (computed)

# %%
if leak is not None:
    see = [nv.leakage_sentence(leak, min_gap=0.05)]
    t = leak.set_index(["split", "modalities"])["acc2_has0"]
    mods = [m for m in dict.fromkeys(leak["modalities"]) if ("bclstm", m) in t]
    top = max(mods, key=lambda m: t["bclstm", m])
    see.append(f"On the clean bc-LSTM split the best feature set is {top.upper()} ({t['bclstm', top]:.1%} Acc-2); "
               + ("adding audio and video to text moves this linear probe's Acc-2 by "
                  f"{100 * (t['bclstm', 'tav'] - t['bclstm', 't']):+.1f} points (one ridge fit, no seeds: a reading "
                  "of the features, not a test; the other columns of the table may move the other way)."
                  if {"t", "tav"} <= set(mods) else ""))
    display(Markdown(nv.what_we_see(see, "mosi-bclstm")))

# %%
if bclstm_dir is not None:
    real = get_dataset("mosi-bclstm", bclstm_dir, ctx.profile)
    rs = pd.concat([analysis.mean_power_spectrum(real.train, m, n_bins=12) for m in MODALITIES])
    fig = figures.power_spectra(rs, title="mosi-bclstm: average power spectrum along the utterances of a video")
    ctx.save_figure(fig, "mosi_bclstm_spectra")
    display(Markdown(to_markdown(analysis.dataset_summary(real).T)))        # one column per split

# %%
print(ctx.written_summary())

# %% [markdown]
# ## What this notebook showed
#
# - Every dataset reaches the models through one `MultimodalDataset` and one `Batch`, checked on load.
# - The built-in benchmark plants each modality's evidence in a known frequency band (text low, vision
#   mid, audio high, behind low-frequency nuisance), and linear probes measure that a frequency-blind
#   reader cannot find the audio/vision part.
# - On the real mosi-bclstm features, the standard CMU-MOSI folds leak test labels into the features;
#   the bc-LSTM split does not.
#
# **Exercises**
#
# 1. In the probe cell (section 3), change `seed=0` of `make_synthetic` to another seed: do the three
#    R² values, and the "What we see" sentence below them, stay the same?
# 2. Rerun with `profile = "smoke"` (parameters cell): the data shrink; which numbers in the summary
#    table change, and does the band-limited probe still beat the frequency-blind one by 0.2?
# 3. With `dataset = "mosi-bclstm"` (and its `data_dir`), compare the label histogram and the length
#    histogram with the built-in data's: how many utterances does a video have?
