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
# # 03 · Phase 3: bilateral growth, wider and deeper without changing the function
#
# The trained MoE is grown **×2 in width** (every vector twice as long, twice the heads, twice
# the hidden units) and **+4 in depth** (four copies of the last layer), and must compute the
# same function afterwards. We draw each operator on small matrices, check preservation layer
# by layer for every variant, compare with the non-preserving G_stack copy, then train.
# The rules come from HyperCloning and LEMON (width), LLaMA Pro and G_stack (depth); the
# docstring of `growlib/grow.py` states each one and why it is exact.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

import growlib as gl
from growlib import plots

session = gl.notebook_session()
moe = gl.ensure_phase(session, 2)

# %% [markdown]
# ## Width ×2 on a small matrix
#
# After widening, the residual stream holds every feature twice: `[x, x]`. A layer that *reads*
# it (here a query projection, 4 outputs × 4 inputs in the toy model) gets its rows copied
# (the heads are duplicated whole) and each input column **split** between the two copies of
# that input: `W/2 + N` and `W/2 − N` with small random `N`. The two halves still add up to
# `W`, so the output is unchanged, but the two copies now get different gradients and can
# learn different things. Without `N` they would stay clones forever.
#
# A layer that *writes* into the residual (the MLP's output projection) has its output rows
# copied, so it writes `[y, y]`.

# %%
toy = gl.build_model(gl.ModelConfig(vocab_size=16, d_model=4, n_layers=1, n_heads=2, d_mlp=8, max_seq_len=8), seed=3)
wide = gl.widen(toy, 2, noise=0.2)  # a large noise, so the split is visible
q0, q1 = toy.blocks[0].attn.q.weight.detach(), wide.blocks[0].attn.q.weight.detach()
o0, o1 = toy.blocks[0].mlp.fc_out.weight.detach(), wide.blocks[0].mlp.fc_out.weight.detach()
vmax = float(max(q0.abs().max(), o0.abs().max()))
fig, axes = plt.subplots(1, 5, figsize=(13, 3))
plots.draw_matrix(axes[0], q0, "query W (4 × 4)", vmax)
plots.draw_matrix(axes[1], q1, "query after ×2 (8 × 8):\nrows copied, columns split", vmax)
plots.draw_matrix(axes[2], q1[:, :4] + q1[:, 4:], "left + right halves\n= W stacked twice", vmax)
plots.draw_matrix(axes[3], o0, "MLP-out W (4 × 8)", vmax)
plots.draw_matrix(axes[4], o1, "MLP-out after ×2 (8 × 16)", vmax)
fig.tight_layout()

# %% [markdown]
# The third panel adds the two column halves back: it is the original matrix, stacked twice.
#
# **Width ×1.5** cannot duplicate everything. Copying half the features would move LayerNorm's
# mean, so growlib uses LEMON's *average expansion*: the extra residual dimensions hold the
# per-token mean of the original ones, every writer gets extra rows equal to the mean of its
# rows, and every LayerNorm rescales its gain by √s and its eps by s = d/d′ (each LayerNorm
# keeps its own eps). The output of every LayerNorm is then `[LN(x), 0]`: exact.
#
# ## Depth +n: zeroed output projections
#
# A copy of a block added to a residual network computes `x + f(x)` a second time: not the
# same function. Zeroing the copy's two output projections (attention and MLP, weights *and*
# biases, every expert's) makes it the identity; its LayerNorms and input projections keep
# the copied weights, so gradients flow and it learns from the first step.

# %%
deep = gl.deepen(toy, 1, where="end")
fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
plots.draw_matrix(axes[0], deep.blocks[1].attn.q.weight.detach(), "new layer: query\n(copied)", vmax)
plots.draw_matrix(axes[1], deep.blocks[1].attn.out.weight.detach(), "new layer: attn out\n(zeroed)", vmax)
plots.draw_matrix(axes[2], deep.blocks[1].mlp.fc_in.weight.detach(), "new layer: MLP in\n(copied)", vmax)
plots.draw_matrix(axes[3], deep.blocks[1].mlp.fc_out.weight.detach(), "new layer: MLP out\n(zeroed)", vmax)
fig.tight_layout()

# %% [markdown]
# ## Preservation, layer by layer, for every variant
#
# Each grown model runs on the same fixed validation tokens as the MoE. After each of its
# layers, its residual stream is mapped back to the old width (each copy compared with the old
# vector, the mean dimensions with the old vector's mean) and compared with the MoE's residual
# after the matching layer; an inserted layer is compared with the layer it copies. The
# placements: `end` (the recipe's: copies of the last layer appended), `interleave` (spread
# through the stack) and `middle` (copies of the middle layers, as MIDAS suggests).

# %%
tokens = session.verify_tokens().to(session.config.device)
extra = session.config.growth.extra_layers
results = {}
for factor in (2, 1.5):
    for where in ("end", "interleave", "middle"):
        grown = gl.grow(moe, factor, extra, where=where, verbose=False)
        results[f"×{factor:g}, +{extra} {where}"] = gl.check_preservation(moe, grown, tokens, where=where)
        del grown
for label, res in results.items():
    print(f"{label:22s} max layer |Δ| {max(res.layer_diffs):.2e}   max |Δlogit| {res.logit_diff:.2e}")
stacked = gl.deepen(moe, extra, where="end", preserve=False)
gstack = gl.check_preservation(moe, stacked, tokens, where="end")
print(f"{'plain G_stack copy':22s} max layer |Δ| {max(gstack.layer_diffs):.2e}   max |Δlogit| {gstack.logit_diff:.2e}")

fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4))
plots.plot_preservation(results, a, title="Function-preserving growth (all below 1e-4)")
plots.plot_preservation({f"G_stack, +{extra} end (plain copies)": gstack,
                         f"preserving, +{extra} end": results[f"×2, +{extra} end"]}, b,
                        title="Plain G_stack copies are not preserving")
fig.tight_layout()

# %% [markdown]
# **What to notice:** every preserving variant sits around 1e-6 to 1e-5, float32 rounding, far
# below the 1e-4 line, at every layer including the inserted ones (squares). The plain G_stack
# copies match exactly up to the last old layer (drawn at the 1e-9 floor: the difference is 0),
# then jump by many orders of magnitude at the first inserted layer, and the error carries on to
# the logits: that model starts phase 3 with a different function (a loss jump to recover from).
#
# ## Explorer: grow it your way
#
# Choose the width factor, the number of extra layers, where they go and the split noise; the
# MoE is grown that way and checked layer by layer, drawn by the same `plot_preservation` as the
# figures above. Predict first: does a larger split noise break the preservation? Does placing
# the copies in the middle change the error of the old layers after them?

# %%
import ipywidgets as widgets

small = moe if sum(p.numel() for p in moe.parameters()) < 20e6 else gl.build_model(  # a redraw takes a moment
    gl.phase_configs(gl.get_preset("cpu").model, session.config.growth)[2], seed=0)
short = tokens[:1, :64]
gl.explorer(lambda **choice: gl.growth_figure(small, short, **choice), dict(
    scale_factor=widgets.SelectionSlider(options=[1.0, 1.5, 2.0, 3.0], value=2.0, description="width ×"),
    extra_layers=widgets.IntSlider(value=extra, min=0, max=8, description="+ layers"),
    where=widgets.Dropdown(options=list(gl.PLACEMENTS), value="end", description="placement"),
    noise=widgets.FloatLogSlider(value=session.config.growth.noise, base=10, min=-4, max=0, description="split noise"),
), columns=2)

# %% [markdown]
# The split noise never shows in the check: each new column's noise is cancelled by its twin's,
# so the sums the next layer computes are unchanged whatever its size (until float rounding of
# large values shows). It only decides how differently the copies start to learn.
#
# ## Phase 3: grow, verify, train
#
# The command's phase 3, with the recipe's messages: the growth, the verification, the banner
# with the new parameter report, then training with a fresh optimizer and a short learning-rate
# re-warmup (the optimizer's moments of the small model do not fit the big one).

# %%
grown = gl.ensure_phase(session, 3, previous=moe)

# %% [markdown]
# ## All three phases in one curve
#
# The dashed lines are the two transitions. At each the loss carries on from where it was:
# no jump from upcycling, none from growth. The bigger model then learns faster per step
# than the small one did at the same loss.

# %%
plots.plot_loss(session.history.records, title="Dense → MoE → grown MoE");

# %% [markdown]
# ## The BOUNDARY SUMMARY
#
# The recipe's summary: the training-loss jump at each transition (which includes the batch
# to batch noise of the training loss) and, below it, the exact jump measured on the same
# validation batches just before and just after the transition.

# %%
print(gl.boundary_summary(session.state.figures))

# %% [markdown]
# ## What the grown model writes

# %%
print(gl.sample_text(grown, session, tokens=80))
