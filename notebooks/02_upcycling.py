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
# # 02 · Phase 2: upcycling the dense model into a Mixture-of-Experts
#
# *Sparse upcycling* (Komatsuzaki et al., ICLR 2023) turns every MLP of the trained dense model
# into 8 experts, all copies of that MLP, plus a new router that sends each token to 2 of them.
# Because the two chosen experts are identical and their gates sum to 1, the MoE computes
# **exactly** what the dense model computed. Training then makes the experts diverge.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

import growlib as gl
from growlib import plots

session = gl.notebook_session()
dense = gl.ensure_phase(session, 1)

# %% [markdown]
# ## What upcycling does to the weights
#
# A toy layer makes it visible: a dense MLP with 8 inputs and 16 hidden units (its first weight
# matrix, hidden × input) becomes 4 experts, each an exact copy, and a router: a fresh 4 × 8
# matrix drawn from N(0, 0.02²), which scores each expert for each token.

# %%
toy = gl.build_model(gl.ModelConfig(vocab_size=16, d_model=8, n_layers=1, n_heads=2, d_mlp=16, max_seq_len=8), seed=1)
toy_moe = gl.upcycle(toy, n_experts=4, top_k=2, router_std=0.02)
w = toy.blocks[0].mlp.fc_in.weight.detach()
experts = toy_moe.blocks[0].mlp
fig, axes = plt.subplots(1, 6, figsize=(13, 2.6))
vmax = float(w.abs().max())
plots.draw_matrix(axes[0], w, "dense MLP-in\n(16 × 8)", vmax)
for e in range(4):
    plots.draw_matrix(axes[e + 1], experts.w_in[e].detach().T, f"expert {e}\n(a copy)", vmax)
plots.draw_matrix(axes[5], experts.router.weight.detach(), "router (4 × 8)\nnew, N(0, 0.02²)")
fig.tight_layout()

# %% [markdown]
# The four experts are pixel-for-pixel the dense matrix; the router is faint noise (std 0.02).
#
# ## The exactness check
#
# Run the dense model and the upcycled one on the same fixed validation tokens and compare the
# logits. The default router takes the top-2 logits, *then* a softmax over just those two, so the
# gates sum to 1 and `g₁·E(x) + g₂·E(x) = E(x)`. Two variants break that on purpose:
# softmax over all 8 experts *then* top-2 (the gates sum to less than 1), and Drop-Upcycling
# (Nakamura et al., ICLR 2025), which re-initialises half of each expert for diversity.

# %%
cfg = session.config.growth
tokens = session.verify_tokens().to(session.config.device)
variants = {
    "top-k then softmax (default)": gl.upcycle(dense, cfg.n_experts, cfg.top_k),
    "softmax then top-k": gl.upcycle(dense, cfg.n_experts, cfg.top_k, router_mode="softmax_topk"),
    "Drop-Upcycling, 50%": gl.upcycle(dense, cfg.n_experts, cfg.top_k, drop_ratio=0.5),
}
for name, moe in variants.items():
    res = gl.check_preservation(dense, moe, tokens)
    print(f"{name:30s} max |Δlogit| = {res.logit_diff:.2e}   validation loss {session.eval(moe):.4f}")
print(f"{'dense model':30s} {'':22s} validation loss {session.eval(dense):.4f}")

# %% [markdown]
# **What to notice:** the default is exact to float rounding (around 1e-6) and its validation
# loss equals the dense model's. The other two start from a worse loss: they must re-learn
# what the dense model knew.
#
# ## Explorer: router mode and k against the upcycling gap
#
# How far is the upcycled model from the dense one, for each router mode and each number of
# experts per token? Every combination is upcycled and checked once, here, on one short
# sequence; the figure then only redraws. Predict before you move the sliders: with top-k then
# softmax, does k matter? With softmax then top-k, is the gap larger at k = 1 or at k = 8?

# %%
import ipywidgets as widgets

gaps = gl.upcycling_gaps(dense, cfg.n_experts, tokens[:1, :64])
plots.plot_upcycling_gaps(gaps, "softmax_topk", cfg.top_k);  # the static figure, at the recipe's k

# %%
gl.explorer(lambda router_mode, top_k: plots.plot_upcycling_gaps(gaps, router_mode, top_k), dict(
    router_mode=widgets.ToggleButtons(options=list(gl.ROUTER_MODES), value="softmax_topk", description="router"),
    top_k=widgets.IntSlider(value=cfg.top_k, min=1, max=cfg.n_experts, description="top-k"),
))

# %% [markdown]
# With top-k then softmax every k is exact: the gates always sum to 1. With softmax then
# top-k the output is scaled by the probability mass the k kept experts hold, about k/E with a
# fresh router, so the gap shrinks as k grows and vanishes at k = E, where nothing is dropped.
#
# ## Training phase 2
#
# The MoE trains with the recipe's lower learning rate. Besides the language-model loss, two
# small router losses are added (and logged separately): the Switch Transformer
# load-balancing loss, which is 1.0 when tokens spread evenly over the experts and grows when
# the router favours a few, and the ST-MoE z-loss, which keeps router logits small.

# %%
moe = gl.ensure_phase(session, 2, previous=dense)

# %% [markdown]
# ## One loss curve, two phases
#
# At the boundary the curve continues where phase 1 left off: upcycling did not change the
# function. (The training loss itself jumps a little from batch to batch; the exact jump,
# measured on the same validation batches just before and after upcycling, is below.)

# %%
plots.plot_loss(session.history.records, title="Phases 1 and 2");
b = session.state.figures[2]
if b.exact_jump is not None:
    print(f"validation loss before upcycling {b.val_before:.6f}, after {b.val_after:.6f}: "
          f"exact jump {b.exact_jump:.1e}")

# %% [markdown]
# ## Do the experts specialise?
#
# For each layer, the share of routed tokens that went to each expert at each logged step.
# At step 0 the router is noise and the experts are identical, so the split is arbitrary;
# as training goes on, each expert sees different tokens, its weights move apart, and the
# load-balancing loss keeps any expert from starving (a balanced row is 1/8 = 0.125).

# %%
plots.plot_expert_load(session.history.records, phase=2);

# %% [markdown]
# ## The price: total versus active parameters
#
# The MoE stores 8 experts per layer but a token only runs through 2. The chart compares the
# two phases of this run's preset: total parameters grew far more than the parameters (and
# so the compute) each token uses.

# %%
reports = {p: gl.param_report(m) for p, m in ((1, dense), (2, moe))}
for p, r in reports.items():
    print(f"phase {p}:", *r.lines(), sep="\n")
plots.plot_budget(reports, title=f"Preset {session.config.preset.name!r}: dense vs MoE");

# %% [markdown]
# ## What the MoE writes

# %%
print(gl.sample_text(moe, session, tokens=80))
