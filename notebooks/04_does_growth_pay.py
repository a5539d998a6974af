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
# # 04 · Does growth pay? Growth against fair baselines, in FLOPs, over seeds
#
# Growing a model is worth it only if the grown model is better than what the same compute buys
# without growth. The papers report large savings (G_stack: the same loss with 54.6% fewer tokens
# at 7 B; LEMON 33-57%; bert2BERT 45%; Sparse Upcycling: an upcycled MoE beats dense continuation
# given enough extra compute), each against baselines trained with their own schedules. A fair
# test here needs the same care:
#
# - **the same compute**: every path is charged its training FLOPs;
# - **baselines tuned like the path they are compared with**: their own learning rate and
#   schedule;
# - **the question a practitioner asks**: not only "is growing cheaper than training the big model
#   from scratch?" but also "is it better than not growing at all?";
# - **seeds**: a difference smaller than the seed-to-seed spread is not a finding.
#
# ## The paths
#
# For each random seed `python -m growlib compare` trains, on the same batches and the same fixed
# validation batches:
#
# - **(i) the grown path**: dense → MoE → grown, compute counted from the first dense step;
# - **(ii) the grown architecture from scratch** for as many FLOPs as (i), with its peak learning
#   rate chosen by a sweep (four values, first seed, best final validation loss);
# - **(iii) the small dense model trained on**: phase 1's architecture from scratch for as many
#   FLOPs as (i), one warm-up and cosine decay over all of it;
# - **(iv) the dense model continued**: the phase-1 model trained on for the compute phase 2
#   used, against the upcycled MoE.
#
# Every baseline warms up and decays over its own length, as each phase of (i) does.
#
# ## Counting compute
#
# Compute is counted as training FLOPs with notebook 00's rule, $6N$ per token for the weights a
# token passes through plus attention (`gl.training_flops_per_token`, written $c_p$ for phase
# $p$'s model at its sequence length). A path of phases that train $T_p$ tokens each costs
#
# $$ F = \sum_{p} c_p\,T_p, \qquad T_p = \text{steps}_p \times \text{batch} \times \text{sequence length}, $$
#
# and the saving against a baseline that ends at validation loss $\ell^\ast$ after $F_\text{base}$ is
#
# $$ \text{saving} = 1 - \frac{F_\text{grown}(\ell^\ast)}{F_\text{base}}, $$
#
# where $F_\text{grown}(\ell^\ast)$ is the compute at which the grown path first reaches
# $\ell^\ast$. If it never gets there the saving is negative: then the baseline reaches the grown
# path's final loss at $F_\text{base}(\ell_\text{grown})$ and the saving is
# $-(1 - F_\text{base}(\ell_\text{grown})/F_\text{grown})$.
#
# ## Spread over seeds
#
# Each figure is computed per seed $i = 1..n$ and reported as the mean $\bar x$ and the sample
# standard deviation
#
# $$ s = \sqrt{\tfrac{1}{n-1}\textstyle\sum_i (x_i - \bar x)^2 }. $$
#
# With $n = 3$ seeds $s$ is itself rough; we call a difference between two paths *separated* when
# their means differ by more than the larger of their two standard deviations, and say so when
# they do not.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

import growlib as gl
from growlib import plots
from growlib.harness.compare import load_results, results_path, where_grown_path_reaches
from growlib.curves import CurveKind, separated, spread
from growlib.storyworld import generate_world_stories, make_cast

# %% [markdown]
# ## A corpus on which capacity can show
#
# On growlib's bundled stories (notebook 01) a 1 M-parameter model gets close to the corpus's
# floor: every name and object is drawn afresh per story and then repeated, so the story's own
# context predicts almost everything; a bigger model has little left to learn. That corpus cannot
# tell growth from no growth. The **story world** (`--data world`, `growlib.storyworld`, also
# synthetic and labelled so) fixes a cast of 600 characters, each with a home town, a pet, a
# treasured object, a favourite food, a trait, a best friend and a grandparent's trade, and every
# story about a character keeps those facts. The first time a story states a fact, only a model
# that *remembers* the character can predict it, and remembering thousands of facts takes
# parameters:

# %%
cast = make_cast()
story = generate_world_stories(1, seed=7)[0]
hero = next(c for c in cast if c.name in story.split(".")[0])
print(f"{hero.name}: lives in {hero.town}, pet {hero.animal} {hero.pet}, treasures a {hero.color} {hero.obj}, "
      f"likes {hero.food}, {hero.trait}, best friend {cast[hero.friend].name}, grandpa a {hero.trade}\n")
print(story)
print(f"\n{len(cast)} characters x ~11 facts each; every story about {hero.first} repeats the same ones")

# %% [markdown]
# ## The results
#
# Computing them takes most of an hour per corpus on a 2-core CPU, so they are committed in
# `results/` and this notebook only reads them; the cell prints the command that recomputes each
# file. The committed runs use the `compare` preset (96-wide, 3 layers → 192-wide, 6 layers, 8
# experts top-2; 300/125/75 steps of 16 × 128 tokens): a smaller version of the `cpu` preset, so
# that three seeds, the learning-rate sweep and the variants fit in that time.

# %%
corpora = {"story world (synthetic)": "world", "TinyStories sample": "tinystories"}
results = {name: load_results(data) for name, data in corpora.items()}
for name, r in results.items():
    print(f"{name}: results/{results_path(corpora[name]).name}, "
          f"preset {r['preset']!r}, seeds {r['seeds']}, {r['tokens_per_run'] / 1e6:.2f} M tokens per path, "
          f"{r['seconds'] / 60:.0f} min to compute")
    print(f"  recompute: python -m growlib compare --data {r['data'] if r['data'] == 'world' else '<the sample>'}"
          f"{' --upcycling' if r['upcycling'] else ''}{' --ablations' if r['ablations'] else ''} "
          f"--json {results_path(corpora[name]).name}")

# %% [markdown]
# ## The curves
#
# Each line is the mean validation loss over the seeds on the same fixed batches, against the
# compute spent so far; the shaded band is ± one standard deviation. Dotted verticals: the grown
# path's phases 2 and 3 begin. Thin horizontals: the final losses of the two baselines that
# train for the whole budget, the targets the savings are measured at.

# %%
fig, axes = plt.subplots(1, 2, figsize=(15, 5.4))
for ax, (name, r) in zip(axes, results.items()):
    plots.plot_compare_curves(r, ax=ax, title=name)
fig.tight_layout()

# %%
rows = [("saving vs from scratch (tuned lr)", "saving_vs_scratch_percent"),
        ("saving vs small model trained on", "saving_vs_small_percent"),
        ("MoE vs dense continued (phase 2)", "saving_moe_vs_dense_percent")]
print(f"{'':36s}" + "".join(f"{name:>28s}" for name in results))
for label, key in rows:
    print(f"{label:36s}" + "".join(f"{r[key]['mean']:>+19.1f} ± {r[key]['std']:4.1f} %" for r in results.values()))
print()
for path in ("grown", "scratch", "small", "moe", "dense_continued"):
    print(f"final validation loss, {path:16s}   "
          + "".join(f"{r['final_val'][path]['mean']:>19.4f} ± {r['final_val'][path]['std']:.4f}" for r in results.values()))
for name, r in results.items():
    g, sm = r["final_val"]["grown"], r["final_val"]["small"]
    lower = "the grown path" if g["mean"] < sm["mean"] else "the small model trained on"
    print(f"\n{name}: grown {g['mean']:.4f} vs small trained on {sm['mean']:.4f}: {lower} ends lower by "
          f"{abs(sm['mean'] - g['mean']):.4f} nats; separated by the one-std rule: "
          f"{'yes' if separated(g, sm) else 'no'}")

# %% [markdown]
# ## The from-scratch learning rate
#
# A from-scratch baseline at someone else's learning rate is a weak opponent. The first seed
# tried four peak learning rates, each a multiple of the dense phase's (`--lr-factors`); the best
# final loss chose the rate the other seeds used. If the best is at either end of the sweep, the
# optimum may lie beyond it, and the cell says so.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, (name, r) in zip(axes, results.items()):
    plots.plot_lr_sweep(r, ax=ax, title=name)
    edge = " (at the sweep's edge: the optimum may lie beyond)" if r["scratch_lr_at_sweep_edge"] else ""
    print(f"{name}: chosen {r['scratch_lr']:.1e}{edge}")
fig.tight_layout()

# %% [markdown]
# ## Where the grown path reaches each baseline
#
# A saving says *when* the grown path reaches a target, not *which* model got there. Here, per
# seed, the phase of the grown path in which it first reaches each baseline's final loss.

# %%
for name, r in results.items():
    for run in r["runs"]:
        parts = []
        for label in (CurveKind.SCRATCH.label, CurveKind.SMALL.label):
            w = where_grown_path_reaches(r, run, label)
            parts.append(f"{label}: " + ("never" if w["flops"] is None else
                                         f"{w['flops'] / 1e12:.2f} of {w['baseline_flops'] / 1e12:.2f} TFLOPs, "
                                         f"phase {w['phase']}"))
        print(f"{name}, seed {run['seed']}: " + "; ".join(parts))

# %% [markdown]
# ## Memorising or generalising?
#
# The validation loss can only be trusted as "quality" while the model is not memorising its
# training text. Each path's loss on fixed *training* batches, measured like the validation loss,
# gives the gap: near zero means the model does as well on unseen text as on what it trained on;
# a large positive gap means it has learned its training text by heart.

# %%
for name, r in results.items():
    for label, gap in r["train_val_gap"].items():
        print(f"{name:24s} {label:38s} validation - training: {gap['mean']:+.4f} ± {gap['std']:.4f}")

# %% [markdown]
# ## Upcycling: does the MoE beat the dense model trained on?
#
# Phase 2 is judged against (iv): the same dense model trained on for the same compute. On the
# story world the comparison also re-ran phase 2 with each choice the Sparse Upcycling paper found
# to matter: continuing the dense model's learning-rate schedule instead of warming up again; a
# router initialised ten times larger; no load-balancing loss, or ten times more; top-1 routing.
# The band is the dense model continued (mean ± std).

# %%
for name, r in results.items():
    if r["upcycling"]:
        plots.plot_variants(r, "upcycling", title=f"Upcycling choices: {name}")
        plt.tight_layout()
        for variant, v in r["upcycling"].items():
            s = v["saving_vs_dense"]
            print(f"{variant:42s} final {v['final_val']['mean']:.4f} ± {v['final_val']['std']:.4f}, "
                  f"saving vs dense continued {100 * s['mean']:+.1f} ± {100 * s['std']:.1f}%")

# %% [markdown]
# ## Ablations: which part of the growth recipe matters?
#
# Phase 3 re-run from the same trained MoE with one change each: plain G_stack copies instead of
# function-preserving ones; the new layers interleaved or in the middle instead of at the end; no
# symmetry-breaking noise; ×1.5 width instead of ×2. The band is the recipe's growth (×2 width, new
# layers at the end, noise on). A variant whose bar does not reach the band differs by more than
# the seeds do. Much of a seed's spread moves every variant together (the same data order, the
# same phase-2 model), so the cell also prints each variant *minus* the recipe's growth seed by
# seed: a paired difference, whose spread is the fairer yardstick.

# %%
for name, r in results.items():
    if r["ablations"]:
        plots.plot_variants(r, "ablations", title=f"Phase-3 variants: {name}")
        plt.tight_layout()
        for variant, v in r["ablations"].items():
            paired = spread([run["ablations"][variant]["final_val"] - run["final_val"]["grown"] for run in r["runs"]])
            print(f"{variant:42s} right after growth {v['start_val']['mean']:.4f}, "
                  f"final {v['final_val']['mean']:.4f} ± {v['final_val']['std']:.4f}; "
                  f"minus the recipe's, seed by seed: {paired['mean']:+.4f} ± {paired['std']:.4f}")

# %% [markdown]
# ## Which model size does this budget call for?
#
# Before reading the verdict, a prediction from scaling laws. Hoffmann et al. (2022,
# [Chinchilla](https://arxiv.org/abs/2203.15556)) found that for a fixed training budget the
# lowest loss comes from a model trained on about $D \approx 20N$ tokens for $N$ parameters. With
# $C \approx 6ND$ training FLOPs (notebook 00) that is
#
# $$ C \approx 120\,N^2 \qquad\Longrightarrow\qquad N_\text{opt} \approx \sqrt{C / 120}. $$
#
# It is a rule of thumb measured on far larger models and real text, but the direction is robust:
# at a given budget a model much larger than $N_\text{opt}$ has seen too few tokens, and a smaller
# one that sees more of them ends lower. Growth spends most of its compute on the big model, so it
# can beat the small model trained on only where the budget calls for the big model.

# %%
import math

p = gl.get_preset(results["story world (synthetic)"]["preset"])
configs = gl.phase_configs(p.model, p.growth)
per_token = {ph: gl.training_flops_per_token(c, p.train.seq_len) for ph, c in configs.items()}
budget = results["story world (synthetic)"]["runs"][0]["total_flops"]
print(f"budget of a path: {budget / 1e12:.1f} TFLOPs -> N_opt ~ {math.sqrt(budget / 120) / 1e6:.2f} M parameters")
for ph, name in ((1, "small dense (phase 1)"), (3, "grown (phase 3)")):
    n = per_token[ph] / 6  # the parameters a token passes through, attention counted as notebook 00 does
    print(f"{name:22s} {n / 1e6:5.2f} M per token: compute-optimal at C ~ {120 * n * n / 1e12:8.1f} TFLOPs "
          f"({120 * n * n / budget:6.1f}x this budget)")

# %% [markdown]
# ## A longer budget: where does the saving go?
#
# At a short budget a big model from scratch is far from trained, and growth looks good against
# it for a poor reason. The fairer test gives every path more compute, until the from-scratch
# model's curve flattens. `python -m growlib compare --token-budget N` scales the three phases
# together (and every baseline with them). The committed longer run
# (`results/compare_bundled_long.json`) is on the story world at twice the tokens (2.05 M a
# path, 16.4 TFLOPs), for one seed only, with the from-scratch learning rates 2e-3 and 4e-3 tried:
# 20.8 minutes here. A curve's *late drop*, the loss it still lost over the last quarter of its
# compute, says how close to its plateau it ended.

# %%
from growlib.curves import Curve

longer_path = results_path("world").with_name("compare_bundled_long.json")
budgets = {"default budget": results["story world (synthetic)"]}
if longer_path.exists():
    budgets["longer budget"] = load_results("world", longer_path.name)
for name, r in budgets.items():
    print(f"{name}: {r['tokens_per_run'] / 1e6:.2f} M tokens a path, seeds {r['seeds']}, "
          f"{r['seconds'] / 60:.0f} min; saving vs scratch {r['saving_vs_scratch_percent']['mean']:+.1f}%, "
          f"vs small {r['saving_vs_small_percent']['mean']:+.1f}%")
    for label, c in r["curves"].items():
        if label == CurveKind.DENSE_CONTINUED.label:
            continue
        curve = Curve(label, c["flops"], c["val_mean"])
        late = curve.at(0.75 * curve.flops[-1]) - curve.val[-1]
        print(f"    {label:38s} final {curve.val[-1]:.4f}, late drop {late:.4f} nats")
if len(budgets) > 1:
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.4))
    for ax, (name, r) in zip(axes, budgets.items()):
        plots.plot_compare_curves(r, ax=ax, title=f"story world, {name}")
    fig.tight_layout()

# %% [markdown]
# ## Reading the result honestly
#
# The cells above print every figure; here is what they say in the committed results (three
# seeds each, 1.02 M tokens and 8.2 TFLOPs a path; the TinyStories figures agree in every
# direction: 83.4 ± 0.5% saved against scratch, −71.4 ± 0.5% against the small model, −21.7 ±
# 1.5% for the MoE).
#
# - **Against the big model from scratch, growth pays, clearly.** On the story world the grown
#   path reaches the from-scratch model's final loss with 78.5 ± 0.5% less compute, and the
#   from-scratch model had its own learning rate from the sweep. (Its best rate was the largest
#   tried, so a still larger one might have done a little better; the TinyStories run's sweep
#   reached twice as far.) Growth keeps what the small model learned cheaply, and the big model
#   from scratch spends its budget relearning it.
# - **Against not growing at all, growth loses, clearly.** The small dense model trained on for
#   the same compute ends about 0.3 nats *lower* than the grown path (0.753 ± 0.032 against
#   1.048 ± 0.007), far outside the spread; it reaches the grown path's final loss with about a
#   third of the compute (a saving of −63 ± 4%). The scaling-law estimate above says why: this
#   budget calls for a model of about 0.26 M parameters, the small model is already twice that,
#   and the grown model would be the right size only for a budget several hundred times larger.
#   The story world does hold more than the small model can store (that was its purpose), but at
#   this budget the small model has not run out of room: its training and validation losses are
#   the same, and its curve was still falling at the end (0.056 nats over its last quarter).
#   The grown path's phase 3 shows the same thing from the other side: it spends 58% of the
#   path's compute and lowers the loss from 1.053 (where phase 2 ended) to 1.048. A 30% saving
#   against the small model is not what this budget can show; the goal this project set was not
#   met here, and this is why.
# - **Upcycling did not pay either.** The upcycled MoE lost to the dense model trained on for the
#   same compute (−18 ± 2%). None of the upcycling choices changed that: a larger router
#   initialisation and either load-balancing weight stayed within a few hundredths of the
#   recipe's MoE; top-1 routing tied with the dense model (0.0 ± 1.6%), as it should at equal
#   compute when one expert per token costs exactly the dense MLP and the experts start as its
#   copies; continuing the dense schedule without a fresh warm-up was worst (−41 ± 6%), since
#   phase 1 ended at a tenth of its peak rate and the copies then hardly move. Eight copies of one
#   MLP need many more steps than 125 to specialise; Sparse Upcycling's wins came after extra
#   compute of the order of the dense model's own.
# - **The growth variants barely differ.** Across seeds every variant ends within one standard
#   deviation of the recipe's growth. Paired seed by seed, some small differences are consistent:
#   the plain G_stack copy starts 0.4 nats higher (it is not function-preserving) and still ends
#   0.0032 ± 0.0010 higher; ×1.5 width ends 0.0013 ± 0.0005 *lower* (and costs fewer FLOPs); no
#   split noise 0.0006 ± 0.0003 lower; the placements are within their noise (+0.0004 ± 0.0005).
#   Thousandths of a nat: at this size and length, training washes out most of *how* the model
#   was grown.
# - **Memorising.** On the story world no path memorises (a path sees less than one pass over
#   the 3.2 M training tokens): the validation and training losses agree to a hundredth. The
#   TinyStories sample is small (~0.2 M training tokens at this vocabulary), so every path passes
#   over it several times. Its two splits are not equally hard: the under-trained model from
#   scratch scores 0.15 nats *better* on validation than on training text, which is that offset,
#   not skill. Against it, the grown path's gap (−0.02 ± 0.07) says it generalises as far as it
#   got, while the small model trained on (+0.38 ± 0.05) has begun to learn the sample by heart,
#   about half a nat beyond the offset. Its validation loss still ends 0.42 nats below the grown
#   path's, so the verdict on this corpus is the same as on the story world: at this budget, not
#   growing wins, and from scratch loses by more (83.4 ± 0.5% saved against it).
#
# - **A longer budget does not change the verdict.** At twice the tokens (one seed) the saving
#   against scratch stays where it was (79.8%, against 78.6% for the same seed at the default
#   budget) and the small model's lead grows (−70.3% against −59.8%). The from-scratch model is
#   nearer its plateau (0.030 nats over its last quarter, against 0.075 for the three seeds'
#   mean at the default budget) but not on it,
#   and neither is the small model (0.033): the plateau where capacity decides lies beyond what
#   an hour of this CPU can train. From the scaling estimate, the saving against the small model
#   can only turn positive once the budget is large enough for the small model to stall.
#
# The models are tiny and the runs short; what transfers is the method: the same compute for
# every path, baselines with their own tuning, seeds, and the question "better than not growing?"
# asked beside "cheaper than from scratch?".

# %% [markdown]
# ## What this notebook showed
#
# How growth's compute is counted ($F = \sum_p c_p T_p$), four paths trained for the same
# compute over three seeds, the from-scratch learning rate swept, where the grown path reaches
# each baseline, the train/validation gap, the upcycling choices and the growth variants with
# their spread, and why, at a budget this small, the small model trained on wins.
#
# ## Exercises
#
# Predict first, then measure. Solutions: `99_solutions.ipynb`.
#
# 1. **Where the compute goes.** From the active parameter counts of the three phases and their
#    step counts, which phase of the grown path costs the most FLOPs? Compute $c_p T_p$ for each.
# 2. **Break-even.** How many steps of the final architecture, trained from scratch, cost as much
#    as the whole grown path?
# 3. **Real or noise?** From the per-seed figures in a results file's `runs`, compute the mean and
#    standard deviation of the saving against the small model by hand, and decide with the
#    one-std rule whether the grown and the small model's final losses differ.
