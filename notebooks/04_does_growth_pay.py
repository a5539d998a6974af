# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Does growth pay? Growth against training from scratch, in FLOPs
#
# Growing a model is only worth it if it reaches the big model's quality for less compute than
# training the big model from scratch. The papers report large savings (G_stack 54.6% faster at
# 7B, LEMON 33-57%, bert2BERT 45%, sparse upcycling beating dense at ~50% of its cost). This
# notebook measures it on our small run, on the same data and the same validation batches:
#
# - **(a) the grown path**: dense → MoE → grown, compute counted from the first dense step;
# - **(b) from scratch**: the final grown architecture, trained for the same total compute;
# - **(c) dense continued**: the phase-1 model trained on for the compute phase 2 used, against
#   the upcycled MoE.
#
# Compute is counted as training FLOPs with notebook 00's rule, $6N$ per token for the weights a
# token passes through plus attention (`gl.training_flops_per_token`, written $c_p$ for phase
# $p$'s model at its sequence length). A path of phases that train $T_p$ tokens each costs
#
# $$ F = \sum_{p} c_p\,T_p, \qquad T_p = \text{steps}_p \times \text{batch} \times \text{sequence length}, $$
#
# and the saving against a baseline that ends at validation loss $\ell^\ast$ after $F_\text{scratch}$ is
#
# $$ \text{saving} = 1 - \frac{F_\text{grown}(\ell^\ast)}{F_\text{scratch}}, $$
#
# where $F_\text{grown}(\ell^\ast)$ is the compute at which the grown path first reaches
# $\ell^\ast$ (the saving is negative if growth never gets there).

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

import growlib as gl
from growlib import plots
from growlib.harness.compare import load_or_run
from growlib.harness.records import CurveKind

# %% [markdown]
# ## Two corpora
#
# We run the comparison twice: on the synthetic stories embedded in growlib (they work offline,
# everywhere) and on real TinyStories text where this machine has a sample of it (a teacher can
# point `GROWLIB_TINYSTORIES_SAMPLE` at one; `scripts/run_notebooks.py` and the test script
# set it when the course's sample sits beside the repository). A full comparison at the `cpu` preset trains, per seed, the whole pipeline, the big
# model from scratch and the dense model continued, and for the first seed the ablations below:
# about half an hour per corpus on a 2-core CPU. `python -m growlib compare --ablations --data
# bundled --json runs/compare-cpu-full-bundled.json` makes the results file (the `--data` of the
# sample likewise); this notebook loads a file when it exists and otherwise computes it (the line
# below says which). Shortened runs (CI) use one seed and skip the ablations.

# %%
steps = gl.steps_override()
corpora = {"embedded synthetic stories": "bundled"}
sample = gl.tinystories_sample()
if sample:
    corpora["TinyStories sample"] = sample
else:
    print("no TinyStories sample on this machine: the embedded corpus only")
results = {}
for name, data in corpora.items():
    results[name], origin = load_or_run(gl.default_preset(), data, seeds=(0,) if steps else (0, 1),
                                        eval_every=25 if steps is None else max(1, steps // 2),
                                        ablations=steps is None, steps=steps)
    r = results[name]
    print(f"{name}: results {origin}; preset {r['preset']!r}, seeds {r['seeds']}, "
          f"{r['seconds'] / 60:.1f} min to compute")
    for key, s in r["summary"].items():
        print(f"  {key}: mean {100 * s['mean']:+.1f}%  (per seed: {', '.join(f'{100 * v:+.1f}%' for v in s['values'])})")

# %% [markdown]
# ## The curves
#
# Each point is the validation loss on the same fixed batches, against the compute spent so far.
# The grown path starts on the small, cheap model, so it reaches a low loss at a small fraction
# of the compute; then growth hands that knowledge to the big model.

# %%
for name, r in results.items():
    fig, axes = plt.subplots(1, len(r["runs"]), figsize=(7 * len(r["runs"]), 4), squeeze=False)
    for ax, run in zip(axes[0], r["runs"]):
        plots.plot_flops_curves(run, ax=ax, title=f"{name}, seed {run['seed']}")
    fig.tight_layout()

# %% [markdown]
# **How to read it:** the thin red line is the from-scratch model's final loss; the star is where
# the green curve (grown path) first gets there, and the saving is the share of the scratch run's
# compute left over at that point. The blue dotted curve, the dense model trained on for phase 2's
# compute, is the honest baseline for upcycling: does the MoE beat simply training the dense model
# longer at equal compute?

# %%
for name, r in results.items():
    for run in r["runs"]:
        fv = run["final_val"]
        print(f"{name}, seed {run['seed']}: grown path {fv['grown']:.4f} vs scratch {fv['scratch']:.4f} "
              f"-> saving {100 * run['saving_grown_vs_scratch']:+.1f}%;  "
              f"MoE {fv['moe']:.4f} vs dense continued {fv['dense_continued']:.4f} "
              f"-> saving {100 * run['saving_moe_vs_dense']:+.1f}%")

# %% [markdown]
# ## Where does the grown path get there, and what does phase 3 add?
#
# A saving says *when* the grown path reaches the target, not *which* model got there. The cell
# below finds the phase, and then follows phase 3 alone: its loss from the moment of growth to
# the end.

# %%
from growlib.harness.compare import where_grown_path_reaches_scratch

for name, r in results.items():
    for run in r["runs"]:
        w = where_grown_path_reaches_scratch(r, run)
        grown = run["curves"][CurveKind.GROWN.label]
        p3 = [v for f, v in zip(grown["flops"], grown["val"]) if f >= w["phase_start_flops"][2]]
        reached = "never" if w["flops"] is None else f"at {w['flops'] / 1e12:.1f} TFLOPs, in phase {w['phase']}"
        print(f"{name}, seed {run['seed']}: scratch's final loss reached {reached} (phases 2 and 3 start at "
              f"{w['phase_start_flops'][1] / 1e12:.1f} and {w['phase_start_flops'][2] / 1e12:.1f} TFLOPs; "
              f"scratch used {w['scratch_flops'] / 1e12:.1f});  phase 3: {p3[0]:.4f} at growth, "
              f"highest {max(p3):.4f}, final {p3[-1]:.4f}")

# %% [markdown]
# ## Ablations: which part of the growth recipe matters?
#
# Phase 3 re-run from the same trained MoE with one change each: plain G_stack copies instead of
# function-preserving ones; the new layers interleaved or in the middle instead of at the end; no
# symmetry-breaking noise; ×1.5 width instead of ×2. Left: the validation loss right after growth
# (the jump). Right: the loss after phase 3's training, minus the recipe's growth (×2 width, copies
# of the last layer at the end, noise on); below zero means the variant ended better. With 4
# layers and 4 new ones, `interleave` and `middle` both copy every layer once: the same model,
# trained once.

# %%
for name, r in results.items():
    for run in r["runs"]:
        if "ablations" in run:
            plots.plot_ablations(run, title=f"Phase-3 variants: {name}, seed {run['seed']}")
            plt.tight_layout()

# %% [markdown]
# ## Reading the result honestly
#
# In the committed run (`cpu` preset, seeds 0 and 1) the grown path reached the from-scratch
# model's final validation loss with about a seventh of its compute on both corpora: savings of
# 86.5% (seeds 0 and 1: 86.1%, 87.0%) on the TinyStories sample and 84.1% (84.0%, 84.2%) on the
# embedded stories, far above the 30% this project set as its goal. Before quoting that number,
# read what it measures:
#
# - **Where the grown path gets there: in phase 1.** The 1 M-parameter dense model alone reaches
#   the loss at which the 36 M-parameter model from scratch ends. At this budget (35 TFLOPs, 248
#   steps of the big model) the from-scratch model is far from trained, while a small model
#   learns a lot per FLOP early on. The papers' savings are measured where the from-scratch model
#   is trained to a useful loss; ours is the short-budget end of that curve, where growth looks
#   best.
# - **What phase 3 adds.** It spends about 60% of the grown path's compute. Right after growth
#   the loss is exactly phase 2's (the growth is function-preserving); in the first evaluations it
#   *rises* (a fresh optimizer warming up to phase 3's learning rate), then it ends below where
#   phase 2 ended. So the big model does improve on the small one, by a few hundredths of a nat.
# - **Upcycling did not pay here.** The MoE lost to the dense model trained on for the same
#   compute on both corpora (−18.9% on TinyStories, −35.5% on the embedded stories): with 250
#   steps at these sizes, eight copies of one MLP have not had time to specialise, and two experts
#   per token cost twice the MLP's FLOPs. Sparse upcycling's reported wins come from far larger
#   models and budgets.
# - **The ablations barely differ at the end.** The plain G_stack copy starts much higher (the
#   jump on the left), yet after phase 3's 150 steps every variant ends within about two
#   hundredths of a nat of the recipe's growth, most within a few thousandths. At this size and
#   length, training washes out *how* the model was grown; only the start differs. One seed,
#   so differences of a few thousandths are within noise.
#
# The numbers are what this run measured. The models are tiny (1 M → 36 M parameters), the runs
# short (2 M tokens, not the papers' billions), and the TinyStories sample small (~200 K tokens,
# so the runs pass over it about ten times). A longer budget, where the from-scratch model reaches
# its own plateau, is the fairer test; `python -m growlib compare --token-budget N` runs one.

# %% [markdown]
# ## What this notebook showed
#
# How growth's compute is counted ($F = \sum_p c_p T_p$), where the grown path reaches the
# from-scratch model's final loss, what each phase adds, and which growth variants differ.
#
# ## Exercises
#
# Predict first, then measure. Solutions: `99_solutions.ipynb`.
#
# 1. **Where the compute goes.** From the active parameter counts of the three phases and their
#    step counts, which phase of the grown path costs the most FLOPs? Compute $c_p T_p$ for each.
# 2. **Break-even.** How many steps of the final architecture, trained from scratch, cost as much
#    as the whole grown path?

