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
# # 04 · Ablations: what each part of FEMF and Atsuko contributes
#
# *Written for regression data (sentiment scores).* On a classification dataset (MIntRec, the built-in
# `synthetic-intent`) the setup cell below stops with `NotApplicable`, naming the notebooks that apply.
#
# Both papers argue for their designs by removing one part at a time and showing that the numbers get
# worse. This notebook repeats those ablations on our data:
#
# * **FEMF Tables 2-3**: the full model against the model without the disentanglement module (DTM),
#   the frequency-aware experts (FAE), the modality-interaction module (MIM), the hierarchical
#   prediction module (HPM), and without each auxiliary loss
#   ($\mathcal L_{align}, \mathcal L_{rec}, \mathcal L_{cyc}, \mathcal L_{orth}, \mathcal L_{sim}$);
# * **FEMF Table 4**: FEMF built and trained on each subset of the modalities (T, A, V, T+A, T+V, A+V, T+A+V);
# * **Atsuko Table 4**: the spectral band network (SBN) and the marginal complementarity module (MCM)
#   switched on and off.
#
# Every variant is trained with the same seeds as the full model, so the comparisons are *paired*. The
# papers report one number per cell and no spread; we report mean ± std over seeds **and** say, for
# every difference, whether our runs can resolve it (next section). The papers' numbers are copied as
# printed: the tables shown here set the paper's MAE beside each of our rows ("paper MAE (CMU-MOSI)"), the
# saved tables keep every reported row, marked *reported*. They come from CMU-MOSI/MOSEI with other
# features, so they give the direction of each effect, not a target value.
#
# **Words used here**
#
# * **SBN** (spectral band network, Atsuko eq. 1-2): each modality's sequence is split into $K$ frequency bands of
#   a graph Laplacian over its time steps, and a band router weighs the bands per sample.
# * **MCM** (marginal complementarity module, Atsuko eq. 5-7): how much the task loss rises when one modality is
#   left out (its marginal contribution); the modality router is trained towards those contributions.
# * **EMOE**: the mixture-of-experts sentiment model Atsuko is built on ([docs/emoe.md](../docs/emoe.md)): one
#   transformer encoder per modality, a router that weighs the modalities per sample, and a distillation that
#   pulls the fused features towards the router-weighted unimodal ones.
# * **$\mathcal L_{dis}$** (FEMF eq. 5-7): the disentanglement loss $\mathcal L_{sim} + \mathcal L_{orth} +
#   \mathcal L_{rec} + \mathcal L_{cyc}$: shared features alike across modalities, private features orthogonal to
#   them, and both together able to rebuild the input.
# * **Acc-2 neg/non-neg** (has0) and **neg/pos** (non0): the two binary accuracies of the field. has0 counts a
#   label of exactly 0 as non-negative; non0 leaves those samples out ([docs/metrics.md](../docs/metrics.md)).
# * **cross-fitting** (mosi-bclstm): the test videos are split into two folds; each fold chooses the epoch that
#   then scores the *other* fold, so no test score comes from an epoch chosen on its own videos.
# * **config hash**: a 16-hex-digit hash of a run's fully resolved settings (model, data, trainer, seed;
#   `mser_lib.experiments.config_hash`). Two runs with the same hash are the same run: it is trained once and
#   reused.
# * **seed spread**: the standard deviation of a result over training seeds (initial weights and batch order); a
#   gap smaller than it is training noise.
# * **Holm's adjustment**: when many comparisons are tested at once, the smallest p-value is compared with
#   0.05 / m, the next with 0.05 / (m - 1) and so on, so that the chance of any false "resolved" among the m stays
#   below 5 %.

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

ctx = notebook_setup(profile, dataset, data_dir, device, seeds, results_dir, force, notebook="04")
print(f"profile {ctx.profile} | dataset {ctx.dataset} | seeds {ctx.seeds} | {ctx.threads} thread(s), "
      f"{ctx.workers} worker(s) | outputs in {ctx.rel(ctx.out)}")

# %% [markdown]
# ## Which differences can our runs resolve?
#
# A difference between two variants has two sources of noise, and we measure both.
#
# **Training noise.** Variant $A$ and variant $B$ are trained with the same seeds $s = 1..n$. The
# per-seed differences $d_s = m_A(s) - m_B(s)$ give the mean $\bar d$, a $t$ interval and the paired
# $t$-test,
#
# $$\bar d \pm t_{n-1,\,0.975}\,\frac{\mathrm{sd}(d)}{\sqrt n}, \qquad t = \frac{\bar d}{\mathrm{sd}(d)/\sqrt n},$$
#
# and an exact sign-flip test (the share of the $2^n$ sign patterns of $d$ whose mean is as far from 0).
# With 2 or 3 seeds this test is weak by construction: its smallest p-value is $2/2^n$.
#
# **Test-set noise.** Which utterances land in the test split is chance too. The paired bootstrap
# resamples the $N$ test samples with replacement, $B = 1000$ times, recomputes
# $\Delta^{*} = \overline{m}_A(\text{resample}) - \overline{m}_B(\text{resample})$ (each averaged over
# seeds, the same resample for both variants) and takes the 2.5 % and 97.5 % quantiles.
#
# In the position layout (mosi-bclstm: a sample is a video, its utterances are positions) the bootstrap
# resamples whole videos, since utterances of one video are not independent.
#
# A difference is **resolved** ("yes") when it has at least 3 seeds, the paired $t$-test over seeds gives
# $p < 0.05$ *after* Holm's adjustment over all the claims of the table (many claims are tested at once),
# the bootstrap interval excludes 0 and every seed agrees on its sign (`mser_lib.report.stats.verdict`,
# `mser_lib.report.ablations.adjust_claims`). With fewer than 3 seeds the verdict is "not enough seeds":
# the seed-level test is what covers training noise. "no" means our runs cannot tell; it does not mean
# the effect is absent. Each row says how many seeds and which schedule produced it.

# %% [markdown]
# ## The grid
#
# `mser_lib.grids` lists the runs per profile: every variant of the three tables at `quick`, `claims`
# and `paper`, a few at `smoke`. At `quick` the ablation runs use the first seed only and a shortened
# schedule (`grids.ABLATION_TRAIN`), the same for every variant so that the comparisons stay fair; the
# `claims` profile (quick's settings and models) trains every variant at 5 seeds on the main runs' full
# schedule, and `paper` uses the papers' schedule and all seeds. The first cell printed which profile
# this is. Runs are cached by config hash: FEMF's full model is also Table 4's T+A+V row and is trained
# once, and re-running this notebook trains nothing.

# %%
import pandas as pd
from IPython.display import Markdown, display

from mser_lib import grids
from mser_lib.executors import run_grid
from mser_lib.experiments import get_dataset
from mser_lib.report import ablation_figures as af
from mser_lib.report import ablations as ab
from mser_lib.report import narrative as nv
from mser_lib.report import stats
from mser_lib.report.tables import inline_table

ds = get_dataset(ctx.dataset, ctx.data_dir, ctx.profile)
seeds = grids.ablation_seeds(ctx.profile, ctx.seeds)
specs = {"components": grids.femf_components(ctx.profile, ctx.seeds),
         "modalities": grids.femf_modalities(ctx.profile, ctx.seeds),
         "atsuko": grids.atsuko_table4(ctx.profile, ctx.seeds),
         "deviations": grids.deviations(ctx.profile, ctx.seeds, ds.info.layout, ds.info.name)}
flat = [s for group in specs.values() for s in group]
print(f"{len(flat)} runs listed, {grids.unique_runs(flat)} distinct trainings, seeds {seeds}; "
      f"trainer override: {grids.ABLATION_TRAIN[ctx.profile]}")
recs = run_grid(flat, **ctx.grid_kwargs)
records, start = {}, 0
for name, group in specs.items():
    records[name] = recs[start:start + len(group)]
    start += len(group)
frames = {name: ab.grid_frame(specs[name], records[name]) for name in specs}    # degenerate runs left out
for name in specs:
    note = ab.degenerate_note(specs[name], records[name])
    if note:
        print(f"{name}: {note}")
pred_cache = ctx.out / "predictions"      # test predictions recomputed from checkpoints (bootstrap)
print(f"{len(recs)} records; trained wall time summed over distinct runs: "
      f"{sum({r['config_hash']: r['wall_time_s'] for r in recs}.values()):.0f} s")

# %%
# NBVAL_CHECK_OUTPUT
for name in frames:      # the grid is complete: every run trained, whether or not it learned anything
    frame = ab.grid_frame(specs[name], records[name], include_degenerate=True)
    per_label = frame.groupby("label")["seed"].nunique() if not frame.empty else pd.Series(dtype=int)
    n = len(grids.sweep_seeds(ctx.profile, ctx.seeds) if name == "deviations" else seeds)
    print(f"{name}: every variant has every seed: {bool((per_label == n).all())}")

# %% [markdown]
# ## The paired tests: one family for the whole notebook
#
# Every verdict of this notebook but the deviation ledger's (a family of its own, further down) comes from
# one set of paired comparisons, the claims table at its end:
# each FEMF variant against the full model (MAE and Corr), the modality subsets against T+A+V and text
# against audio and vision, and Atsuko's four rows against each other. Holm's adjustment runs over all of
# them at once, so each tests table below shows a slice of one family and a comparison has the same
# verdict wherever it appears. The tests are computed here, before any of them is shown.

# %%
order = [label for label, _ in grids.FEMF_COMPONENTS if label in set(frames["components"]["label"])]
morder = [grids.MODALITY_LABELS[m] for m in grids.FEMF_MODALITIES
          if grids.MODALITY_LABELS[m] in set(frames["modalities"]["label"])]
aorder = [label for _, label in grids.ATSUKO_ROWS]
comp_tests = [ab.compare_labels(frames["components"], specs["components"], records["components"], "FEMF (full)",
                                label, m, ds, ctx.results_dir, pred_cache, expect=+1)
              for label in order[1:] for m in ("mae", "corr")]
# the tests keep a subset whose every run learned nothing: its claim stays in the table, without a verdict
mtested = [grids.MODALITY_LABELS[m] for m in grids.FEMF_MODALITIES
           if grids.MODALITY_LABELS[m] in {sp["tag"] for sp in specs["modalities"]}]
mod_tests = [ab.compare_labels(frames["modalities"], specs["modalities"], records["modalities"], "T+A+V", label,
                               "mae", ds, ctx.results_dir, pred_cache, expect=+1) for label in mtested if label != "T+A+V"]
mod_tests += [ab.compare_labels(frames["modalities"], specs["modalities"], records["modalities"], "T", label,
                                "mae", ds, ctx.results_dir, pred_cache, expect=+1) for label in ("A", "V") if label in mtested]
ats_pairs = [("SBN", "-, -", "acc2_non0"), ("MCM", "-, -", "mae"), ("MCM", "SBN", "mae"),
             ("SBN + MCM (Atsuko)", "SBN", "mae"), ("SBN + MCM (Atsuko)", "MCM", "mae"),
             ("SBN + MCM (Atsuko)", "-, -", "mae"), ("SBN + MCM (Atsuko)", "-, -", "acc7")]
ats_tests = [ab.compare_labels(frames["atsuko"], specs["atsuko"], records["atsuko"], a, b, m, ds, ctx.results_dir,
                               pred_cache, expect=+1) for a, b, m in ats_pairs]
family = comp_tests + mod_tests + ats_tests
print(f"{len(family)} paired comparisons in the family: {len(comp_tests)} FEMF components, {len(mod_tests)} "
      f"modality subsets, {len(ats_tests)} Atsuko Table 4")

# %% [markdown]
# ## FEMF Tables 2 and 3: removing modules and losses
#
# What each switch removes (`FEMFConfig`; a switch that is off removes the module's parameters and its
# loss terms):
#
# | switch | removes | equations |
# |---|---|---|
# | `use_dtm` | shared/private encoders and $\mathcal L_{dis}$; the experts see the projected inputs | 1-7 |
# | `use_fae` | DFT split and the low/high experts with their routers (and stage 1) | 8-15 |
# | `use_mim` | the two-step cross-modal attention | 16-19 |
# | `use_hpm` | the unimodal heads and fusion weights: a single joint head | 20-23 |
# | `use_l_*` | one term of $\mathcal L_{dis} = \mathcal L_{sim} + \mathcal L_{orth} + \mathcal L_{rec} + \mathcal L_{cyc}$, or $\mathcal L_{align}$ | 5-7, 24-25 |
#
# The table below shows our MAE, Corr and neg/pos Acc-2 and F1 per variant, with the paper's MAE beside them
# (FEMF Table 2, CMU-MOSI, and Table 3, CMU-MOSEI). The saved table (`tables/femf_ablation_components.md`)
# holds every reported row as printed (Acc-2 and F1 as "neg/non-neg / neg/pos", split into columns).

# %%
cols = ["mae", "corr", "acc2_has0", "acc2_non0", "f1_has0", "f1_non0"]
rep_comp = ab.reported_femf_components()
table = pd.concat([ab.reported_as_rows(rep_comp, "CMU-MOSI", cols), ab.reported_as_rows(rep_comp, "CMU-MOSEI", cols),
                   ab.summary_table(frames["components"], cols, order)])
ctx.save_table(table, "femf_ablation_components",
               caption=f"FEMF ablation (Tables 2-3): reported rows and ours ({ds.info.name}, {ctx.profile}, "
                       f"mean ± std over seeds {seeds})")
display(Markdown(inline_table(ab.beside_reported(table, ["MAE", "Corr", "Acc-2 (neg/pos)", "F1 (neg/pos)", "seeds"],
                                                  "MAE"), full=f"{ctx.rel(ctx.tables)}/femf_ablation_components.md")))

# %%
fig = af.variant_points(frames["components"], ["mae", "corr", "acc2_non0"], order, reference="FEMF (full)",
                        title="FEMF ablation: each seed (dots), mean (bar), full model (dashed)")
ctx.save_figure(fig, "femf_ablation_components",
                nv.points_caption(frames["components"], f"FEMF ablation on {ds.info.name}", row_col="label"))

# %% [markdown]
# Each variant against the full model, $A$ = full, $B$ = variant: for MAE a negative $A-B$ means the
# full model is better, for Corr a positive one does.

# %%
comp_table = ab.comparison_frame(comp_tests, family=family)
ctx.show_table(comp_table.set_index(["A", "B", "metric"]), "femf_ablation_components_tests",
               caption=f"FEMF ablation: full model minus variant, paired over seeds and bootstrapped over test samples "
                       f"(Holm over the notebook's {len(family)} comparisons)",
               columns=ab.BRIEF_TEST_COLUMNS)
fig = af.forest(comp_tests, "FEMF ablation: full model minus each variant (mean, seed CI, bootstrap CI)")
ctx.save_figure(fig, "femf_ablation_components_forest",
                nv.forest_caption(comp_tests, f"FEMF ablation on {ds.info.name}, full model minus variant"))


# %% [markdown]
# ### Build it yourself: a paired video bootstrap in ten lines
#
# The "bootstrap CI" column above comes from `stats.bootstrap_ci`. Here is the same interval by hand
# for the first row of the tests table (full model $A$ against the first variant $B$). Put the test
# predictions of every seed of $A$ and of $B$ side by side. One bootstrap replicate draws the
# resampling units with replacement, as many as there are: whole videos in the position layout (the
# utterances of one video are not independent), single samples otherwise. On that one resample,
# compute
#
# $$\Delta^{*} = \frac1n\sum_s m\big(A_s\big) - \frac1n\sum_s m\big(B_s\big),$$
#
# the metric of each seed averaged over seeds, **the same resample for both variants** (that is what
# makes it paired). Repeat $B = 1000$ times and take the 2.5 % and 97.5 % quantiles of the $\Delta^{*}$.
# The library draws from `np.random.default_rng(0)`; with the same generator and the same draws in
# the same order our interval must match the library's to the last digit.

# %%
import numpy as np
from mser_lib.runs import run_predictions
r = comp_tests[0]                                   # first row of the tests table: A = full model, B = a variant
by = {(s["tag"], rec["seed"]): rec for s, rec in zip(specs["components"], records["components"])}
got = {(lab, s): run_predictions(by[(lab, s)], ds, ctx.results_dir, cache_dir=pred_cache, with_ids=True)
       for lab in (r["a"], r["b"]) for s in r["seeds"]}
(y, _, ids), f = got[(r["a"], r["seeds"][0])], stats.metric_fn(r["metric"])
y, P = np.asarray(y, float), {k: np.asarray(v[1], float) for k, v in got.items()}
units = ([np.flatnonzero(ids == v) for v in dict.fromkeys(ids)] if ds.info.layout == "position"
         else [np.array([i]) for i in range(len(y))])   # resampling unit: a video, or one sample
rng = np.random.default_rng(0)                      # the library's generator and seed: the same draws
draws = [np.concatenate([units[j] for j in rng.integers(0, len(units), size=len(units))]) for _ in range(1000)]
# Delta* of each draw: the metric of each seed on the drawn positions, averaged over seeds, A minus B
reps = np.array([np.mean([f(y[i], P[(r["a"], s)][i]) for s in r["seeds"]])
                 - np.mean([f(y[i], P[(r["b"], s)][i]) for s in r["seeds"]]) for i in draws])
q = (1 - 0.95) / 2
lo, hi = np.quantile(reps[np.isfinite(reps)], [q, 1 - q])
print(f"{r['a']} - {r['b']} ({r['metric']}, seeds {r['seeds']}, {len(units)} units), 95% bootstrap interval\n"
      f"  by hand: [{lo:.6f}, {hi:.6f}]   library: [{r['boot_lo']:.6f}, {r['boot_hi']:.6f}]")
assert np.allclose([lo, hi], [r["boot_lo"], r["boot_hi"]], rtol=0, atol=1e-12), "bootstrap intervals differ"

# %% [markdown]
# ### What we see (computed, `mser_lib.report.narrative`)

# %%
from mser_lib.report import narrative as nv

mae_rows = comp_table[comp_table["metric"] == nv.metric_name("mae")]
hurts = [r["B"] for _, r in mae_rows.iterrows() if r["resolved"] == "yes" and float(r["mean A-B"]) < 0]
helps = [r["B"] for _, r in mae_rows.iterrows() if r["resolved"] == "yes" and float(r["mean A-B"]) > 0]
n_seeds = sorted({int(x) for x in mae_rows["seeds"]}) if len(mae_rows) else []
if n_seeds and max(n_seeds) < stats.MIN_SEEDS:
    see = [f"On MAE the {len(mae_rows)} variants have {', '.join(map(str, n_seeds))} seed(s) each, fewer than the "
           f"{stats.MIN_SEEDS} a verdict needs (the rule above): the table gives each removal's direction on this "
           "data, not whether it is more than training noise."]
else:
    rest = mae_rows[mae_rows["resolved"] == "no"].set_index("B")
    tested = int(mae_rows["claims in family"].iloc[0])        # the family's comparisons with enough seeds
    parts = nv.undecided_parts(rest, tested, effect="mean A-B")
    see = [f"On MAE (per variant: {nv.seeds_schedule(mae_rows)}; A-B is the full model minus the variant, so a "
           f"negative A-B means the removal hurts) and by the rule above (Holm over the {tested} comparisons of "
           f"the notebook's family that have enough seeds), removing a part resolvably hurts FEMF for {len(hurts)} of the {len(mae_rows)} variants"
           + (f" ({', '.join(hurts)})" if hurts else "") + f" and resolvably helps for {len(helps)}"
           + (f" ({', '.join(helps)})" if helps else "")
           + f"; the other {len(mae_rows) - len(hurts) - len(helps)} are undecided"
           + (": " + "; ".join(parts) if parts else "") + "."]
see.append("FEMF's Tables 2-3 report each removal hurting or tying the full model (the paper MAE columns above); only "
           "a resolved row confirms or contradicts one of them on this data.")
display(Markdown(nv.what_we_see(see, ds.info)))

# %% [markdown]
# ## FEMF Table 4: modality subsets
#
# FEMF built on a subset of the modalities (`modalities="ta"` etc.: the absent modalities have no
# encoder, expert or head), trained and tested on that subset. The paper finds text the strongest
# single modality and all three best (its MAE is beside ours in the table below: on CMU-MOSI the text-only
# model beats T+A and T+V). On the built-in benchmark the evidence is in all three modalities (text
# low-frequency, audio high band, vision mid band), but not in equal shares: text carries $1 - s$ of the
# label variance and audio and vision together the other $s$ (`av_share`, 0.4 by default;
# `mser_lib/data/synthetic.py`), so there text should be the strongest single modality and the $s$ share is
# what audio and vision can add. Real data plants nothing. The cell after the tables says what our runs show,
# whichever data this is.

# %%
mcols = ["mae", "corr", "acc2_non0", "f1_non0"]
rep_mod = ab.reported_femf_modalities()
mtable = pd.concat([ab.reported_as_rows(rep_mod, "CMU-MOSI", mcols), ab.reported_as_rows(rep_mod, "CMU-MOSEI", mcols),
                    ab.summary_table(frames["modalities"], mcols, morder)])
ctx.save_table(mtable, "femf_ablation_modalities",
               caption=f"FEMF modality subsets (Table 4): reported rows and ours ({ds.info.name}, {ctx.profile})")
display(Markdown(inline_table(ab.beside_reported(mtable, ["MAE", "Corr", "Acc-2 (neg/pos)", "seeds"],
                                                  "MAE"), full=f"{ctx.rel(ctx.tables)}/femf_ablation_modalities.md")))
fig = af.variant_points(frames["modalities"], ["mae", "corr", "acc2_non0"], morder, reference="T+A+V",
                        title="FEMF on modality subsets: each seed (dots), mean (bar), T+A+V (dashed)")
ctx.save_figure(fig, "femf_ablation_modalities",
                nv.points_caption(frames["modalities"], f"FEMF on modality subsets, {ds.info.name}", row_col="label"))
mod_table = ab.comparison_frame(mod_tests, family=family).set_index(["A", "B", "metric"])
ctx.show_table(mod_table, "femf_ablation_modalities_tests",
               caption=f"FEMF modality subsets: paired comparisons (Holm over the notebook's {len(family)} comparisons)",
               columns=ab.BRIEF_TEST_COLUMNS)

# %%
mods = frames["modalities"]
singles = [lab for lab in ("T", "A", "V") if lab in mtested]     # run, whether or not they learned something
see = []
if singles:
    see.append(nv.best_sentence(mods, singles, "mae", names={lab: f"the {lab}-only FEMF" for lab in singles},
                                among="the single-modality FEMFs", tests=mod_tests))
if "T+A+V" in morder:
    see.append(nv.best_sentence(mods, mtested, "mae", names={lab: f"the {lab} FEMF" for lab in mtested},
                                among=f"all {len(mtested)} subsets", tests=mod_tests))
if nv.is_builtin(ds.info):
    from mser_lib.data.synthetic import synthetic_config

    share = synthetic_config(ctx.profile).av_share
    see.append(f"The generator gives text {1 - share:.0%} of the label variance and audio and vision together "
               f"{share:.0%}, so text is expected to be the strongest single modality and T+A+V to beat T by "
               "what audio and vision add.")
else:
    see.append("FEMF's Table 4 finds text the strongest single modality and T+A+V best on CMU-MOSI and MOSEI; "
               "the two sentences above say whether this data agrees.")
display(Markdown(nv.what_we_see(see, ds.info, behind=nv.records_behind(records["modalities"]))))

# %% [markdown]
# ## Atsuko Table 4: SBN × MCM
#
# * without **SBN** the modality features enter the encoders as they are (no graph-Fourier bands, no
#   band weights, eq. 1-2);
# * without **MCM** there are no bimodal branches and the router is supervised by EMOE's target
#   $1/(\mathrm{err}+\epsilon)$ instead of the marginal-complementarity target
#   $q = \mathrm{softmax}(\Delta/\tau_c)$ (eq. 5-7).
#
# The paper reports Acc-7, Acc-2, F1 and MAE without stating which Acc-2/F1 protocol. The table below
# shows our Acc-7, neg/pos Acc-2, MAE and Corr with the paper's MAE beside them; the saved table adds our
# neg/pos F1 and every reported row as printed.

# %%
acols = ["acc7", "acc2_non0", "f1_non0", "mae", "corr"]
rep_ats = ab.reported_atsuko_table4()
atable = pd.concat([ab.reported_as_rows(rep_ats, "CMU-MOSI", acols), ab.reported_as_rows(rep_ats, "CMU-MOSEI", acols),
                    ab.summary_table(frames["atsuko"], acols, aorder)])
ctx.save_table(atable, "atsuko_ablation_table4",
               caption=f"Atsuko SBN x MCM (Table 4): reported rows and ours ({ds.info.name}, {ctx.profile})")
display(Markdown(inline_table(ab.beside_reported(atable, ["Acc-7", "Acc-2 (neg/pos)", "MAE", "Corr", "seeds"], "MAE"),
                              full=f"{ctx.rel(ctx.tables)}/atsuko_ablation_table4.md")))
fig = af.variant_points(frames["atsuko"], ["acc7", "acc2_non0", "mae"], aorder, reference="SBN + MCM (Atsuko)",
                        title="Atsuko SBN x MCM: each seed (dots), mean (bar), Atsuko (dashed)")
ctx.save_figure(fig, "atsuko_ablation_table4",
                nv.points_caption(frames["atsuko"], f"Atsuko's SBN x MCM on {ds.info.name}", row_col="label"))
ats_table = ab.comparison_frame(ats_tests, family=family).set_index(["A", "B", "metric"])
ctx.show_table(ats_table, "atsuko_ablation_table4_tests",
               caption=f"Atsuko SBN x MCM: paired comparisons (Holm over the notebook's {len(family)} comparisons)",
               columns=ab.BRIEF_TEST_COLUMNS)

# %%
ats = frames["atsuko"]
see = [nv.compare_sentence(ats, "SBN + MCM (Atsuko)", "-, -", m,
                           names={"SBN + MCM (Atsuko)": "Atsuko", "-, -": "the row without SBN and MCM"},
                           tests=ats_tests)
       for m in ("mae", "acc7") if {"SBN + MCM (Atsuko)", "-, -"} <= set(ats["label"])]
see.append("The row without SBN and MCM keeps Atsuko's loss weights and its router over pooled features, so it is "
           "not notebook 03's EMOE (EMOE's loss weights and, at the papers' size, its router over the raw inputs). "
           "Atsuko's Table 4 reports each addition helping and both together best; the tests table above gives "
           "each of these gaps its verdict (Holm over the notebook's family).")
display(Markdown(nv.what_we_see(see, ds.info, behind=nv.records_behind(records["atsuko"]))))

# %% [markdown]
# ## The deviation ledger: what each departure costs
#
# Every place where mser departs from a paper, every choice where a paper is silent, and every behaviour
# where a public reference code departs from its paper is a switch (`mser_lib.grids.DEVIATIONS`,
# [docs/reference-differences.md](../docs/reference-differences.md), [docs/emoe.md](../docs/emoe.md)).
# Each row trains the model with that one switch flipped, beside the model's default run with the same
# seeds and schedule: on real data the default run is the paper's configuration. The difference is
# *flipped minus default*, so a positive MAE difference means the departure costs accuracy. MAE decides,
# with the rule above (Holm over the rows of this table that have a test: a row whose switch changes no
# score has none); the saved table (`tables/deviations.md`) adds the
# Acc-2 and Corr differences of the seed means, for reading.
# The FEMF row "every reference behaviour" (shown first) flips them all at once (the `reference` preset): how far the
# reference code's departures move the paper's model on this data. (The reference also selects its epoch
# on the test set; on mosi-bclstm, notebook 03's selection-protocol table measures what that protocol adds.)

# %%
brief = ["deviation", "MAE: flipped - default", "seed 95% CI", "bootstrap 95% CI", "p adjusted (Holm)", "seeds",
         "schedule", "resolved"]
ledger = pd.DataFrame(columns=brief)
if specs["deviations"]:
    # retrain=False: a run whose test predictions are neither cached nor computable from a checkpoint here (a
    # record from another machine) is paired over seeds only, as `python -m mser_lib ledger --from-records` pairs it,
    # rather than retrained inside the notebook one run after another
    ledger = ab.deviation_ledger(frames["deviations"], specs["deviations"], records["deviations"], ds,
                                 ctx.results_dir, pred_cache, retrain=False)
    ctx.save_table(ledger.set_index("deviation"), "deviations",
                   caption=f"Deviation ledger on {ds.info.name} ({ctx.profile}): each switch flipped on its model's "
                           "default run, paired over seeds")
    shown = ab.resolved_first(ledger[brief]).set_index("deviation")
    preset_first = sorted(shown.index, key=lambda d: not d.startswith("FEMF: every reference behaviour"))
    display(Markdown(inline_table(shown.loc[preset_first], full=f"{ctx.rel(ctx.tables)}/deviations.md")))
n_rows = len({s["tag"] for s in specs["deviations"]} - set(grids.LEDGER_BASE.values()))
if n_rows < len(grids.DEVIATIONS):
    why = ("on the built-in benchmark the quick profile trains none, to keep make reproduce within its 15 minutes; "
           "the real-data notebook (results/quick/mosi-bclstm/notebooks/04_ablations.ipynb) trains every row that "
           "acts on its layout, and "
           "the smoke profile the first two"
           if ds.info.name == "synthetic" and ctx.profile == "quick" else
           "the smoke profile trains the first rows only" if ctx.profile == "smoke" else
           f"the others change nothing on the {ds.info.layout} layout")
    print(f"{n_rows} of the {len(grids.DEVIATIONS)} ledger rows run here: {why}.")

# %%
# NBVAL_CHECK_OUTPUT
print("every ledger row has a verdict:", bool(ledger["resolved"].isin(stats.VERDICTS).all()))

# %%
display(Markdown(nv.what_we_see([nv.ledger_sentence(ledger)], ds.info,
                                behind=nv.records_behind(records["deviations"]) if records["deviations"] else None)))

# %% [markdown]
# Which switches change how the final stage *ends*? A run that beats the trivial predictor on the validation
# split at its best epoch and ends worse than it (notebook 03's check, `analysis.late_collapse`) has a model
# that got worse with training; the ledger's rows say which departures make that happen or stop it. The
# selected epochs, not the last ones, are what every table scores.

# %%
from mser_lib.report import analysis

if specs["deviations"]:
    collapse = ab.ledger_collapse(specs["deviations"], records["deviations"], ds)
    ctx.show_table(analysis.collapse_table(collapse), "ledger_late_collapse",
                   caption=f"Runs of each ledger row that beat the trivial predictor on VALID and ended worse than it "
                           f"({ds.info.name}, {ctx.profile}; medians over those runs)")
    display(Markdown(nv.what_we_see([nv.collapse_sentence(collapse)], ds.info,
                                    behind=nv.records_behind(records["deviations"]))))
else:
    print(f"No ledger row runs on {ds.info.name} at this profile: nothing to read here.")

# %% [markdown]
# The reference code also selects its epoch on the test set (the best test F1 of all its epochs). The runs
# of the `reference` row and of FEMF's default run, read under the three selection protocols of notebook 03
# (cross-fitted, leaky validation, the test epoch and seed with the best test Acc-2), say how much of a reported number
# such a protocol can add on top of the reference's architecture and losses.

# %%
ref_row = next(d.label for d in grids.DEVIATIONS if d.model == "femf" and d.source == "reference code"
               and d.label.startswith("FEMF: every reference behaviour"))
tag_of = {r["config_hash"]: s["tag"] for s, r in zip(specs["deviations"], records["deviations"])}
pair = [r for s, r in zip(specs["deviations"], records["deviations"])
        if s["tag"] in (grids.LEDGER_BASE["femf"], ref_row) and r.get("protocols")]
if pair:
    proto = analysis.selection_protocol_table(pair, ds, label=lambda r: tag_of[r["config_hash"]])
    ctx.save_table(proto, "reference_preset_protocols",
                   caption=f"FEMF's default and its reference preset under three selection protocols ({ds.info.name}, "
                           f"{ctx.profile}; accuracies in %)")
    display(Markdown(inline_table(proto, full=f"{ctx.rel(ctx.tables)}/reference_preset_protocols.md")))
    moves = nv.protocol_sentences(proto) or [
        "No row here has a seed spread (a single seed each), so the table's moves cannot be set against one."]
    display(Markdown(nv.what_we_see(moves + [
        "The reference code selects its epoch by the best test F1, the optimistic kind of row above: the move from "
        "the clean row to it is what that protocol adds to a number on these runs, whichever architecture and "
        "losses produced them."], ds.info, behind=nv.records_behind(pair))))
else:
    print(f"The runs on {ds.info.name} select on the validation split; the protocol comparison is built for runs "
          "with cross-fitted selection (mosi-bclstm).")

# %% [markdown]
# ## Claims: what the papers say, what we measure
#
# One row per claim of the ablation sections. *Paper says* quotes the reported numbers (A vs B);
# *we measure* is the difference A − B of our seed means; *resolved* follows the rule above; *agrees
# with paper* is "undecided" when our runs cannot resolve the difference.

# %%
claims = [ab.claim_row(f"Removing {r['b'][4:]} hurts FEMF ({'MAE' if r['metric'] == 'mae' else 'Corr'})",
                       ab.reported_pair_text(rep_comp, r["a"], r["b"], r["metric"]), r)
          for r in comp_tests]
claims += [ab.claim_row(f"{r['a']} beats {r['b']} (FEMF, MAE)", ab.reported_pair_text(rep_mod, r["a"], r["b"], "mae"), r)
           for r in mod_tests]
claims += [ab.claim_row(f"Atsuko: {r['a']} beats {r['b']} ({nv.metric_name(r['metric'])})",
                        ab.reported_pair_text(rep_ats, r["a"], r["b"], r["metric"]), r)
           for r in ats_tests]
claims = ab.adjust_claims(pd.DataFrame(claims)).set_index("claim")
ctx.save_table(claims, "claims_ablations", caption=f"Ablation claims on {ds.info.name} ({ctx.profile})")
display(Markdown(inline_table(ab.resolved_first(claims), ab.BRIEF_CLAIM_COLUMNS,
                              full=f"{ctx.rel(ctx.tables)}/claims_ablations.md")))

# %%
# NBVAL_CHECK_OUTPUT
print("claims table columns:", list(claims.columns))
print("every claim has a verdict:", bool(claims["resolved"].isin(stats.VERDICTS).all()))

# %%
display(Markdown(nv.what_we_see([nv.claims_sentence(claims)], ds.info)))

# %%
print(ctx.written_summary())

# %% [markdown]
# ## What this notebook showed
#
# - What each part of FEMF (modules, losses, modalities) and of Atsuko (SBN, MCM) contributes on this
#   dataset, measured as paired differences over seeds and bootstrapped over test samples.
# - Which of the papers' ablation claims our runs resolve, which agree, which contradict, and which
#   stay undecided because the seeds or the test set cannot tell (the claims table and its count).
#
# **Exercises**
#
# 1. If this is the `quick` profile, rerun with `profile = "claims"` (every ablation at each of 5 seeds on
#    the full schedule, where `quick` trains them at its first seed, `grids.ablation_seeds`; many times
#    quick's training); if it is `claims`, open the quick profile's executed copy of this notebook. How many
#    claims move from "not enough seeds" or "no" to "yes"?
# 2. Rerun with `profile = "smoke"`: which variants does the smoke grid keep, and what does the claims
#    sentence say with so few runs?
# 3. Run this notebook on the dataset it did not run on (`dataset = "synthetic"`, or `"mosi-bclstm"` with its
#    `data_dir`): does removing a modality from FEMF cost the same on real features as on the built-in
#    data, where audio and vision carry a planted share of the label?
