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
# by layer for every variant, turn the rules off one at a time to see what each protects, then
# train. The rules come from Net2Net and bert2BERT (the first function-preserving growth),
# HyperCloning and LEMON (width), LLaMA Pro and G_stack (depth); each is derived below, the
# docstring of `growlib/grow.py` states them again beside the code, and the [rule table](rules.md)
# gathers them on one page.

# %% [markdown]
# > **Prerequisites:** notebook 01 (the GPT: pre-LN blocks, LayerNorm, RoPE, the tied head) and
# > notebook 02 (the MoE, upcycling, checking that a transition preserved the function).
# > Terms are defined in the [glossary](glossary.md), papers listed in the [references](references.md).
# >
# > **Learning objectives:** after this notebook you can
# > - derive why each width rule (LayerNorm, readers, writers, whole heads, the router, the
# >   final LayerNorm) keeps a duplicated residual stream duplicated, for ×2 and for ×1.5;
# > - explain why a copied block with zeroed output projections is the identity and still learns;
# > - check preservation layer by layer, and say which failure each rule prevents;
# > - explain which split noise makes a unit and its copy learn apart (the writers'), and why
# >   the readers' noise cannot.
# >
# > **Time:** about 8 minutes at full length on a 2-core CPU (it trains phase 3).

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

import growlib as gl
from growlib import harness, plots

session = harness.notebook_session()
moe = harness.ensure_phase(session, 2)

# %% [markdown]
# ## Width ×2 on a small matrix
#
# After widening, the residual stream holds every feature twice: $x' = [x, x] \in \mathbb{R}^{2d}$.
# Each rule below keeps that true after every layer, so the grown model computes the old
# function on a duplicated stream. (Every rule, tensor by tensor, for ×2, ×1.5, depth and
# upcycling: the [rule table](rules.md).)
#
# **LayerNorm of a duplicated vector.** $[x, x]$ has the same mean and the same variance as $x$
# (each value appears twice, in numerator and denominator alike), so with the scale and shift
# duplicated too, $\gamma' = [\gamma, \gamma]$, $\beta' = [\beta, \beta]$:
# $\;\mathrm{LN}'([x, x]) = [\mathrm{LN}(x), \mathrm{LN}(x)]$.
#
# **A matrix that reads a duplicated vector** $[u, u]$ copies its rows (each output is
# duplicated, as the next layer expects) and splits each input column between the two copies
# of that input, with zero-sum noise $N$:
#
# $$ W' = \begin{pmatrix} W/2 + N & W/2 - N \\ W/2 + N' & W/2 - N' \end{pmatrix}, \qquad
# W' \begin{pmatrix} u \\ u \end{pmatrix} = \begin{pmatrix} W u \\ W u \end{pmatrix}. $$
#
# The noise cancels, so the output is unchanged. Query, key, value and $W_\text{in}$ read the
# residual stream this way. **The writers** ($W_\text{out}$ and the attention output) read
# duplicated hidden units and heads $[a, a]$ and write $[y, y]$: the same rule, rows copied and
# columns split, with their own zero-sum noise $M$:
# $\;\begin{pmatrix} W/2 + M & W/2 - M \\ W/2 + M' & W/2 - M' \end{pmatrix}\begin{pmatrix} a \\ a \end{pmatrix}
# = \begin{pmatrix} W a \\ W a \end{pmatrix}$. (Copying the rows without halving would write $[2y, 2y]$.)
# The noise changes nothing the model computes; it decides how the copies *learn*, and the
# section on symmetry breaking below shows that it is the writers' noise that moves a unit
# and its copy apart.
#
# **The router** reads the residual too, but its rows are experts, and no expert is copied:
# its rows stay as they are, and each of its columns is split between the two copies of its
# input, $W_r' = [W_r/2,\ W_r/2]$, so its scores $W_r' [u, u] = W_r u$ are unchanged. It gets no
# noise: on the duplicated input the noise would cancel anyway, and there is no copied unit in
# the router for it to separate (the explorer below adds it, to check).
#
# **Heads are copied whole.** Twice as many heads of the old width keep every score as it was.
# Making each head twice as wide instead, with $q, k$ duplicated inside it, fails for two
# reasons. The scale: $[q,q]\cdot[k,k]/\sqrt{2d_h} = \sqrt{2}\; q\cdot k/\sqrt{d_h}$, a sharper
# softmax. And RoPE (notebook 01): rotate-half RoPE rotates coordinate $i$ together with
# coordinate $i + d_h'/2$, at a frequency set by $i$ and the head size. In a head of size $2d_h$
# holding $[q, q]$, coordinate $i$ is paired with its own copy, and the frequencies are
# $\theta^{-i/d_h}$ where the old head used $\theta^{-2i/d_h}$: another rotation altogether. Only at
# distance 0, where query and key are rotated by the same angle and the rotation drops out of
# their dot product, is the new score exactly $\sqrt2$ times the old one; checked just below.
#
# **The tied head and the final LayerNorm.** The logits are $E' \,\mathrm{LN}_f'(x')$ with every
# embedding row duplicated, $e' = [e, e]$: $\;[e, e]\cdot[\ell, \ell] = 2\,e\cdot\ell$. So the final
# LayerNorm's $\gamma$ and $\beta$ are divided by the number of copies, $k = 2$, and the logits are
# the old ones. (In general by $k = \lfloor f \rfloor$, the number of whole copies of $x$; for
# ×1.5 that is 1, see below.)
#
# The toy model below (4 dimensions, 2 heads of 2, 8 hidden units) shows a reader and a writer
# before and after, with a large noise so that the split is visible; black lines separate the
# blocks (rows: the two copies of the outputs; columns: the two copies of the inputs):

# %%
toy = gl.build_model(gl.ModelConfig(vocab_size=16, d_model=4, n_layers=1, n_heads=2, d_mlp=8, max_seq_len=8), seed=3)
wide = gl.widen(toy, 2, noise=0.2)  # a large noise, so the split is visible
q0, q1 = toy.blocks[0].attn.q.weight.detach(), wide.blocks[0].attn.q.weight.detach()  # [4, 4] -> [8, 8]
o0, o1 = toy.blocks[0].mlp.fc_out.weight.detach(), wide.blocks[0].mlp.fc_out.weight.detach()  # [4, 8] -> [8, 16]
vmax = float(max(q0.abs().max(), o0.abs().max()))
fig, axes = plt.subplots(1, 6, figsize=(15, 3))
plots.draw_matrix(axes[0], q0, "query W (4 × 4)", vmax)
plots.draw_matrix(axes[1], q1, "query after ×2 (8 × 8):\nrows copied, columns\nsplit (halves + noise)", vmax, blocks=(4, 4))
plots.draw_matrix(axes[2], q1[:, :4] + q1[:, 4:], "its two column halves added:\nW, stacked twice", vmax, blocks=(4, 4))
plots.draw_matrix(axes[3], o0, "MLP-out W (4 × 8)", vmax)
plots.draw_matrix(axes[4], o1, "MLP-out after ×2 (8 × 16):\nrows copied, columns\nsplit (halves + noise)", vmax, blocks=(4, 8))
plots.draw_matrix(axes[5], o1[:, :8] + o1[:, 8:], "its two column halves added:\nW, stacked twice", vmax, blocks=(4, 8))
fig.tight_layout()
plots.weights_colorbar(fig, axes);

# %% [markdown]
# The third and sixth panels add the two column halves back: each is the original matrix,
# stacked twice, so the noise (the uneven colours inside the blocks of the second and fifth
# panels) cancels on a duplicated input. The check of the RoPE argument: one head of size 16
# against the head of size 32 that duplicates its $q$ and $k$, with the model's own RoPE tables,
# for a query at position 20 and keys at positions 20 down to 0:

# %%
import math

from growlib.model import apply_rope, rope_tables

dh, pos = 16, 20
q, k = torch.randn(1, 1, pos + 1, dh), torch.randn(1, 1, pos + 1, dh)  # [B, H, T, hd]: one head


def scores(q, k):
    """The query at position `pos` against the keys at positions 0..pos, RoPE applied as the model does."""
    cos, sin = rope_tables(q.shape[-1], pos + 1, 10000.0)  # [T, hd]
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    return (q[..., pos, :] @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).flatten()  # [pos + 1]


old, wide_head = scores(q, k), scores(torch.cat([q, q], -1), torch.cat([k, k], -1))
print(f"distance 0: wide-head score / old score = {wide_head[pos] / old[pos]:.4f} (√2 = {math.sqrt(2):.4f})")
print(f"distances 1 to {pos}: |wide-head score - √2 × old score| up to {(wide_head - math.sqrt(2) * old)[:pos].abs().max():.2f}, "
      f"where the old scores reach {old.abs().max():.2f}")

# %% [markdown]
# **Width ×1.5** cannot duplicate everything. With $d' = 1.5\,d = k d + r$ there is $k = 1$ whole
# copy of $x$ and $r = d/2$ extra dimensions. The units are copied by the same rule as for ×2,
# but only as far as they go: the heads go from $H$ to $1.5 H$ (4 → 6 at the cpu preset: heads 0
# and 1 are copied once, heads 2 and 3 are not), the hidden units from $h$ to $1.5 h$ (the first half of
# them copied once). A writer that reads them splits only the columns of the copied heads and
# units ($W/2 \pm M$ on each copy); the columns of a unit that has no copy are kept as they are.
#
# Copying half of the residual's features would move LayerNorm's mean, so growlib uses LEMON's
# *average expansion*: the extra residual dimensions hold the per-token mean of the original
# ones, every writer gets extra rows equal to the mean of its rows, and every LayerNorm
# rescales its gain by √s and its eps by s = d/d′ (each LayerNorm keeps its own eps). The
# output of every LayerNorm is then $[\mathrm{LN}(x), 0]$: exact.
#
# Why those numbers. Write the widened vector as $x' = [x,\ \mu\mathbf{1}_{d'-d}]$, where
# $\mu = \tfrac1d\sum_i x_i$ and $\sigma^2 = \tfrac1d\sum_i (x_i-\mu)^2$. Its mean is unchanged,
# $$\mu' = \tfrac{1}{d'}\big(d\mu + (d'-d)\mu\big) = \mu,$$
# and the extra entries add nothing to the squared deviations, so its variance shrinks by $s = d/d'$:
# $$\sigma'^2 = \tfrac{1}{d'}\Big(\sum_{i\le d}(x_i-\mu)^2 + 0\Big) = s\,\sigma^2 .$$
# With $\epsilon' = s\,\epsilon$ the normaliser is $\sqrt{s\sigma^2 + s\epsilon} = \sqrt{s}\,\sqrt{\sigma^2+\epsilon}$, so on the
# first $d$ entries a gain $\gamma'_i = \sqrt{s}\,\gamma_i$ gives back exactly
# $\gamma_i\,(x_i-\mu)/\sqrt{\sigma^2+\epsilon} + \beta_i$, and on the extra entries $(\mu-\mu) = 0$ with a zero bias
# gives 0. A reader of the residual takes $W' = \begin{pmatrix} W & R \end{pmatrix}$ (its rows
# copied as its outputs are): its columns for the $d$ original entries are $W$ (one copy of
# each input, nothing to split), and for the extra entries small random columns $R$ (the
# split noise's size), which read the 0 there and change nothing; the router gets zero
# columns there. The invariant "extra entries = the mean" must
# survive every residual addition: a writer whose update is $u$ adds $[u,\ \bar u\,\mathbf 1]$ when
# its extra output rows are the mean of its rows ($\bar u$ is linear in $u$), and the embedding
# rows are extended the same way. And the tied head: the embedding is $[e,\ \bar e\,\mathbf 1]$, the
# final LayerNorm's output $[\ell, 0]$, so the logits are $e\cdot\ell$ with the final LayerNorm
# divided by $k = 1$, that is, not at all.
#
# The shapes at this session's size, read from growlib's own maps:

# %%
cfg_15 = gl.widened_config(moe.cfg, 1.5)
print(f"d_model {moe.cfg.d_model} -> {cfg_15.d_model} (k = {cfg_15.d_model // moe.cfg.d_model} copy + "
      f"{cfg_15.d_model - moe.cfg.d_model} mean dims); heads {moe.cfg.n_heads} -> {cfg_15.n_heads} of {cfg_15.head_dim}; "
      f"hidden units {moe.cfg.d_mlp} -> {cfg_15.d_mlp}")
print("old head of each new head:", gl.copy_map(moe.cfg.n_heads, cfg_15.n_heads).tolist())
wide_15 = gl.widen(moe, 1.5)
print("final LayerNorm gain, first entries, before and after:", [f"{v:.3f}" for v in moe.ln_f.weight[:3].tolist()],
      [f"{v:.3f}" for v in wide_15.ln_f.weight[:3].tolist()], f"(× √s = {math.sqrt(moe.cfg.d_model / cfg_15.d_model):.3f})")
del wide_15

# %% [markdown]
# ## Depth +n: zeroed output projections
#
# A copy of a block added to a residual network computes $x + f(x)$ a second time: not the same
# function (the plain copy, measured below). Zeroing the copy's two output projections
# (attention and MLP, weights *and* biases, every expert's) makes it the identity:
# $x + \mathrm{Attn}(\cdot)\cdot 0 + \mathrm{MLP}(\cdot)\cdot 0 = x$. This is LLaMA Pro's identity
# block. It still learns from the first step: the gradient of an output projection is
# $\partial L/\partial W_\text{out} = \delta\, a^\top$, the residual's gradient $\delta$ times the
# block's inner activation $a$, and both are nonzero because the LayerNorms and input
# projections keep the copied weights. (Its other weights get no gradient until $W_\text{out}$
# has moved off zero.)
#
# **Names.** The recipe's console calls each new layer "Gstack copy of Layer 3": a copy of one
# block, here the last, with its output projections zeroed. G_stack proper (Du et al., 2024)
# is another operation: it stacks copies of the *whole* model on top of itself, without
# zeroing, and accepts the loss jump because training recovers from it quickly. The
# non-preserving variant measured below, "plain copies", is G_stack's kind of copy applied to
# single blocks: copies of the last layer, output projections kept.

# %%
deep = gl.deepen(toy, 1, where="end")
fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
plots.draw_matrix(axes[0], deep.blocks[1].attn.q.weight.detach(), "new layer: query\n(copied)", vmax)
plots.draw_matrix(axes[1], deep.blocks[1].attn.out.weight.detach(), "new layer: attention out\n(zeroed)", vmax)
plots.draw_matrix(axes[2], deep.blocks[1].mlp.fc_in.weight.detach(), "new layer: MLP in\n(copied)", vmax)
plots.draw_matrix(axes[3], deep.blocks[1].mlp.fc_out.weight.detach(), "new layer: MLP out\n(zeroed)", vmax)
fig.tight_layout()
plots.weights_colorbar(fig, axes);

# %% [markdown]
# ## The operators, written plainly
#
# growlib's `widen` applies the rules above to every layer of a GPT or a MoE. Here they are for
# one LayerNorm + MLP sub-block, and deepening by one identity block, written out and checked
# against the library (without noise, so the plain and library weights must agree exactly):

# %%
import copy


def widen_ln_plain(ln):
    """LayerNorm of [x, x]: scale and shift duplicated."""
    wide_ln = torch.nn.LayerNorm(2 * ln.normalized_shape[0], eps=ln.eps)
    with torch.no_grad():
        wide_ln.weight.copy_(torch.cat([ln.weight, ln.weight]))
        wide_ln.bias.copy_(torch.cat([ln.bias, ln.bias]))
    return wide_ln


def widen_reader_plain(linear):
    """Reads [u, u], writes [Wu, Wu] (hidden units duplicated): rows copied, columns halved and split."""
    wide = torch.nn.Linear(2 * linear.in_features, 2 * linear.out_features)
    with torch.no_grad():
        half = linear.weight / 2
        wide.weight.copy_(torch.cat([torch.cat([half, half], 1)] * 2, 0))  # [[W/2, W/2], [W/2, W/2]]
        wide.bias.copy_(torch.cat([linear.bias, linear.bias]))
    return wide


widen_writer_plain = widen_reader_plain  # the same shape of rule: an MLP's out projection reads [a, a]

block = toy.blocks[0]
u = torch.randn(32, toy.cfg.d_model)
with torch.no_grad():
    old_out = block.mlp(block.ln2(u))  # [32, d]
    ln2, fc_in, fc_out = widen_ln_plain(block.ln2), widen_reader_plain(block.mlp.fc_in), widen_writer_plain(block.mlp.fc_out)
    plain_out = fc_out(torch.nn.functional.gelu(fc_in(ln2(torch.cat([u, u], 1)))))  # [32, 2d]
    lib = gl.widen(toy, 2, noise=0.0).blocks[0]
    lib_out = lib.mlp(lib.ln2(torch.cat([u, u], 1)))
print(f"plain widened sub-block vs [y, y]:          max |Δ| = {(plain_out - torch.cat([old_out, old_out], 1)).abs().max():.1e}")
print(f"plain widened sub-block vs growlib's widen: max |Δ| = {(plain_out - lib_out).abs().max():.1e}")


def deepen_plain(model):
    """One more block at the end: a copy of the last, its two output projections zeroed."""
    grown = copy.deepcopy(model)
    new = copy.deepcopy(grown.blocks[-1])
    with torch.no_grad():
        for layer in (new.attn.out, new.mlp.fc_out):
            layer.weight.zero_()
            layer.bias.zero_()
    grown.blocks.append(new)
    return grown


ids = torch.randint(0, toy.cfg.vocab_size, (2, 8))
with torch.no_grad():
    plain_logits, lib_logits, old_logits = deepen_plain(toy)(ids), gl.deepen(toy, 1)(ids), toy(ids)
print(f"plain deepened vs the original model:       max |Δlogit| = {(plain_logits - old_logits).abs().max():.1e}")
print(f"plain deepened vs growlib's deepen:         max |Δlogit| = {(plain_logits - lib_logits).abs().max():.1e}")

# %% [markdown]
# ## Preservation, layer by layer, for every variant
#
# Each grown model runs on the same fixed validation tokens as the MoE. After each of its
# layers, its residual stream is mapped back to the old width (each copy compared with the old
# vector, the mean dimensions with the old vector's mean) and compared with the MoE's residual
# after the matching layer; an inserted layer is compared with the layer it copies. The three
# placements of the new layers (`growlib.depth_plan`):
#
# - **at the end** (the recipe's): copies of the last layer, appended;
# - **interleaved**: spread over the whole stack, every layer copied ⌊n/L⌋ times and the rest
#   spread evenly (with as many new layers as old, one copy after each layer);
# - **in the middle** (where MIDAS grows): the copies cycle over the middle half of the stack,
#   the $\min(n, \lfloor L/2 \rfloor)$ middle layers.
#
# For every n ≥ 2 these are three different models. Here is what each gives at this session's size:

# %%
tokens = session.verify_tokens().to(session.device)
extra = session.spec.growth.extra_layers
where_words = {"end": "at the end", "interleave": "interleaved", "middle": "in the middle"}
for where, words in where_words.items():
    print(f"{words:>14}: old layer of each new layer {gl.depth_plan(moe.cfg.n_layers, extra, where)}")
results = {}
for factor in (2, 1.5):
    for where, words in where_words.items():
        grown = gl.grow(moe, factor, extra, where=where, verbose=False)
        results[f"×{factor:g} width, +{extra} layers {words}"] = gl.check_preservation(moe, grown, tokens, where=where)
        del grown
for label, res in results.items():
    print(f"{label:38s} largest layer |Δ| {max(res.layer_diffs):.2e}   largest |Δlogit| {res.logit_diff:.2e}")
stacked = gl.deepen(moe, extra, where="end", preserve=False)
plain = gl.check_preservation(moe, stacked, tokens, where="end")
print(f"{f'plain copies, +{extra} layers at the end':38s} largest layer |Δ| {max(plain.layer_diffs):.2e}   "
      f"largest |Δlogit| {plain.logit_diff:.2e}")

grown = gl.grow(moe, 2, extra, where="end", verbose=False)
plots.plot_boundary(("MoE\n(end of phase 2)", session.eval(moe)),
                    {f"×2 width, +{extra} layers\nat the end (preserving)": session.eval(grown),
                     f"+{extra} plain copies\n(not zeroed)": session.eval(stacked)},
                    title="The 2→3 boundary: right after growth")
del grown

worst = max(r.overall for r in results.values())
fig, axes = plt.subplots(2, 3, figsize=(13, 5.6), sharey=True)
plots.plot_preservation_panels(results, axes)
fig.suptitle(f"Every preserving variant, one panel each: the largest difference, logits included, is {worst:.1e}",
             fontsize=10)
fig.tight_layout()

fig, ax = plt.subplots(figsize=(8, 3.8))
plots.plot_preservation({f"plain copies, +{extra} at the end": plain,
                         f"preserving (×2 width), +{extra} at the end": results[f"×2 width, +{extra} layers at the end"]},
                        ax, title=f"Plain copies are not preserving: largest |Δ| {plain.overall:.1e}")
fig.tight_layout()

# %% [markdown]
# **What to notice:** every preserving variant sits far below the 1e-4 line, at float32
# rounding, at every layer including the inserted ones (squares); the x ticks of each panel
# name the old layer each layer is compared with, so the three placements can be read off
# them. The plain copies match exactly up to the last old layer (drawn at the 1e-9 floor: the
# difference is 0), then jump by many orders of magnitude at the first inserted layer, and the
# error carries on to the logits: that model starts phase 3 with a different function (a loss
# jump to recover from).
#
# ## Explorer: break one rule at a time
#
# Choose the width factor, the number of new layers, where they go and the split noise (0
# included); the MoE is grown that way twice, once by every rule (green) and once with the
# rule chosen under *turn off* broken (red), and both are checked layer by layer and at the
# logits. The rules you can turn off: the final LayerNorm's division by $k$; heads copied
# whole (the red model makes each head wider instead); identity copies (the red model's new
# layers are plain copies); the router's $1/k$; and the router's lack of noise.
#
# Predict first: which failures show only in the logits, which from the first layer on? At
# ×1.5, which rules have nothing to do, and why? Does any split noise, 0 or 1, break the
# check? What does the noise change instead (the title's last line)?

# %%
gl.growth_explorer(moe, tokens[:1, :64], session.spec.growth)

# %% [markdown]
# What the explorer shows:
#
# - **final LayerNorm ÷k off**: every layer is exact and only the logits are wrong, multiplied
#   by $k$; at ×1.5, $k = 1$ and there is nothing to forget.
# - **heads copied whole off**: wrong from the first layer on (the attention scores change
#   scale and RoPE frequencies), at ×1.5 too.
# - **identity copies off**: exact up to the first inserted layer, then wrong, as measured above.
# - **router ÷k off**: the router's scores are multiplied by $k$, which sharpens the softmax that
#   gives the chosen experts their gates: wrong from the first MoE layer on; at ×1.5, $k = 1$ again.
# - **no noise on the router off**: still exact. The noise is zero-sum between the two copies
#   of each column and the router's input is duplicated, so it cancels, as it does in every
#   reader. growlib leaves it out because the router has nothing for noise to separate: its
#   rows are experts, and none of them is copied.
# - **split noise**: never shows in the check, whatever its size, 0 included (each copy's noise
#   is cancelled by its twin's, up to float rounding). It only sets how far apart a unit and its
#   copy start, the title's last line: exactly 0 without noise, and then they stay clones.
#
# Had this session's MoE been too large to grow at every redraw, the explorer would say so
# above its controls and offer MoEs of smaller presets' shapes (random weights) instead.
#
# ## Phase 3: grow, verify, train
#
# The command's phase 3, with the recipe's messages: the growth, the verification, the banner
# with the new parameter report, then training with a fresh optimizer and a short learning-rate
# re-warmup (the recipe's choice: the small model's AdamW moments do not have the big one's
# shapes; `growlib.carry` can map them through the growth, and notebook 04 compares the two).

# %%
grown = harness.ensure_phase(session, 3, previous=moe)

# %% [markdown]
# ## All three phases in one curve
#
# The dashed lines are the two transitions. The left panel spans the whole run, from the
# untrained model's loss (about ln of the vocabulary size) down, which squeezes phases 2 and 3
# into a few pixels; the two zoomed panels show the steps around each boundary, with the
# validation loss on the fixed batches just before and just after the transition (the black
# stars). Look for a jump at either boundary: the stars coincide (upcycling and growth
# preserve the function), and the training loss carries on from where it was, up to its batch
# to batch noise.

# %%
records = session.history.records
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [2, 1, 1]})
plots.plot_loss(records, axes[0], title="Dense → MoE → grown MoE")
for p, ax in zip((2, 3), axes[1:]):
    f = session.state.figures[p]
    plots.plot_loss_zoom(records, p, ax, val=(f.val_before, f.val_after))
fig.tight_layout()

# %% [markdown]
# ## The BOUNDARY SUMMARY
#
# The recipe's summary: the training-loss jump at each transition (which includes the batch
# to batch noise of the training loss) and, below it, the exact jump measured on the same
# validation batches just before and just after the transition. A phase's *total drop* is its
# first training batch's loss minus its last one's: two different batches, so in a short phase
# whose loss is nearly flat it can come out negative without the model getting worse. The
# *drop (val)* line measures the same thing on the fixed validation batches and is the one to trust.

# %%
print(harness.boundary_summary(session.state.figures))

# %% [markdown]
# ## Does the bigger model learn faster?
#
# A grown model has more parameters per token than the MoE it came from, so one might expect
# each of its steps to lower the loss more. Two things to read below: the validation loss's
# drop per 100 steps in phase 2 and in phase 3 (the same fixed batches, from just after the
# transition to the end of the phase), and the gap between training and validation loss.
# The training loss is measured on the batches the model is learning from, the validation
# loss on held-out stories it never trains on; a gap that grows from phase to phase means the
# model fits its training text more than what generalises, which happens when a corpus is
# small next to the model and the run passes over it several times (the last column).
# Per-step progress also slows down as the loss falls, whatever the model, and phase 3 is
# short and starts with a learning-rate re-warmup, so a slower phase 3 does not by itself say
# that growth was a bad start: notebook 04 compares growth with training from scratch.

# %%
t, figures = session.spec.train, session.state.figures
for p, r in sorted(session.state.results.items()):
    last = r.losses[-5:]
    train_end = sum(last) / len(last)
    seen = t.steps(p) * t.batch_size * t.seq_len / len(session.data.train)
    print(f"phase {p}: training loss {train_end:.3f} (mean of the last {len(last)} logged steps), "
          f"validation {r.eval_loss:.3f}, gap {r.eval_loss - train_end:+.3f}; "
          f"this phase read {seen:.1f}× the training tokens")
rate = {p: 100 * (figures[p].val_after - figures[p].val_end) / t.steps(p) for p in (2, 3)}
for p in (2, 3):
    print(f"phase {p}: validation {figures[p].val_after:.4f} → {figures[p].val_end:.4f} in {t.steps(p)} steps, "
          f"{rate[p]:.4f} per 100 steps")
print(f"per step, the grown model lowered the validation loss {'faster' if rate[3] > rate[2] else 'more slowly'} "
      f"than the MoE did in phase 2 ({rate[3]:.4f} against {rate[2]:.4f} per 100 steps)")

# %% [markdown]
# ## Symmetry breaking, measured
#
# After widening, hidden unit $j$ and its copy $j'$ read the duplicated stream $[u, u]$ through
# the rows $w_j = [w/2 + n_j,\ w/2 - n_j]$ and $w_{j'} = [w/2 + n_{j'},\ w/2 - n_{j'}]$ (the readers'
# noise), and write through the columns $v_j = v/2 + m$ and $v_{j'} = v/2 - m$ (the writers'
# noise). Their pre-activations are the same, $w_j^\top [u, u] = w_{j'}^\top [u, u] = w^\top u$,
# for every token, so $\mathrm{gelu}'$ is the same for both, and the gradients of their incoming
# rows are
# $$\frac{\partial L}{\partial w_j} = \sum_t \mathrm{gelu}'(h_t)\,(v_j^\top g_t)\,[u_t, u_t], \qquad
#   \frac{\partial L}{\partial w_j} - \frac{\partial L}{\partial w_{j'}} = \sum_t \mathrm{gelu}'(h_t)\,(2\,m^\top g_t)\,[u_t, u_t],$$
# with $g_t$ the loss's gradient at the residual stream. Three consequences:
#
# - without any noise, equal gradients give equal AdamW steps, so the two stay clones at every
#   step and the wide layer computes no more than the narrow one did;
# - with noise on the readers alone ($m = 0$) the gradients are still equal: the readers' noise
#   lies in the direction $[z, -z]$, which a duplicated input never sees and which a gradient,
#   a multiple of $[u, u]$, never changes;
# - what separates a unit from its copy is the writers' noise: the difference of their
#   gradients is $2 m^\top g$ times the same factors, proportional to $m$.
#
# Checked at the first step, on one training batch: the session's MoE widened ×2 with the
# noise nowhere, on the readers only, on the writers only and on both, and with ten times the
# noise on the writers (`growlib.symmetry.with_writers_of` moves the writers' split from one
# widening to another):

# %%
from growlib.symmetry import clone_gradient_gap, with_writers_of

spec3 = session.phase_spec(3)
noise = session.spec.growth.noise
first_batch = tuple(b.to(session.device) for b in session.data.train_batch(spec3.batch_size, spec3.seed, spec3.stream, 0))
pairs = gl.clone_pairs(moe.cfg.d_mlp, 2 * moe.cfg.d_mlp)  # (unit, its copy)
clean, noisy, louder = (gl.widen(moe, 2.0, noise=n) for n in (0.0, noise, 10 * noise))
for label, model in {"no noise": clean, "readers only": with_writers_of(noisy, clean),
                     "writers only": with_writers_of(clean, noisy), "both (growlib's)": noisy,
                     "writers only, ×10": with_writers_of(clean, louder)}.items():
    print(f"{label:>18}: max |∂L/∂w_j - ∂L/∂w_j'| / max |∂L/∂w_j| = {clone_gradient_gap(model, pairs, first_batch):.2e};"
          f"  1 - cos(w_j, w_j') = {1 - gl.clone_similarity(model, pairs):.2e}")
del clean, noisy, louder

# %% [markdown]
# Read the two columns together: the readers' noise alone makes the incoming weights differ
# (1 − cos > 0) but leaves their gradients equal (float rounding); the writers' noise alone
# leaves the incoming weights equal but gives them different gradients, ten times more
# different for ten times the noise. Now over training: the MoE widened ×2 three times (split
# noise 0, the default, and ten times the default), each trained for the same steps on the same
# batches at phase 3's learning rate; after every step, the mean over all units, experts and
# layers of $1 - \cos(w_j, w_{j'})$.

# %%
noises = {"no noise": 0.0, f"noise {noise}": noise, f"noise {10 * noise:g}": 10 * noise}
probe_steps = min(30, spec3.steps)
traces = {}
for label, n in noises.items():
    wide = gl.widen(moe, 2.0, noise=n)
    opt = gl.make_optimizer(wide, spec3.peak_lr, spec3.weight_decay, session.device)
    traces[label] = [gl.clone_similarity(wide, pairs)]
    for step in range(probe_steps):
        batch = tuple(b.to(session.device) for b in session.data.train_batch(spec3.batch_size, spec3.seed, spec3.stream, step))
        gl.train_step(wide, opt, batch, spec3)
        traces[label].append(gl.clone_similarity(wide, pairs))
    print(f"{label:>12}: 1 - cos {1 - traces[label][0]:.2e} after widening, {1 - traces[label][-1]:.2e} "
          f"after {probe_steps} steps; largest |w_j - w_j'| {gl.max_clone_difference(wide, pairs):.2e}")
plots.plot_clone_divergence(traces);

# %% [markdown]
# And over the whole of phase 3, on the model trained above (its copies, in the widened and in
# the inserted layers, against the model just after growth):

# %%
pairs = gl.clone_pairs(moe.cfg.d_mlp, grown.cfg.d_mlp)
g = session.spec.growth
at_growth = gl.grow(moe, g.scale_factor, g.extra_layers, where=g.placement, noise=g.noise, verbose=False)
print(f"1 - cos: {1 - gl.clone_similarity(at_growth, pairs):.2e} just after growth, "
      f"{1 - gl.clone_similarity(grown, pairs):.2e} after {spec3.steps} steps of phase 3")

# %% [markdown]
# **What to notice:** without noise the copies stay identical to the last bit, as derived. With
# noise, $1 - \cos$ of the incoming weights starts at the readers' noise and barely moves, over
# 30 steps and over the whole of phase 3. The derivation says why: that starting difference
# lies in the direction $[z, -z]$ that the gradients do not change, and what does move the
# copies apart, the writers' noise through $2 m^\top g$, is small (the relative gradient
# difference printed above, a few percent at the default noise), so in these few hundred steps
# it adds little to a difference that was already there. Ten times the noise starts the copies
# ten times further apart in weight (about a hundred times in $1 - \cos$, which grows as the
# square of a small angle; the function is still preserved, as the explorer checks), and they still do
# not move apart visibly faster. The grown model's new units are near-copies at the end of
# phase 3, so much of its extra width is not yet used. Exercise 4 below asks what this means
# for the comparison in notebook 04.
#
# ## What the grown model writes

# %%
print(harness.sample_text(grown, session, tokens=80))

# %% [markdown]
# ## The papers
#
# Every paper of the series, with what each contributed: the [references](references.md) page.
#
# - Net2Net: Chen, Goodfellow and Shlens, *Net2Net: Accelerating Learning via Knowledge
#   Transfer*, ICLR 2016, <https://arxiv.org/abs/1511.05641> (function-preserving widening and deepening).
# - bert2BERT: Chen et al., *bert2BERT: Towards Reusable Pretrained Language Models*, ACL 2022,
#   <https://arxiv.org/abs/2110.07143> (Net2Net's width rules for transformers).
# - LEMON: Wang et al., *LEMON: Lossless model expansion*, ICLR 2024,
#   <https://arxiv.org/abs/2310.07999> (exact width growth with LayerNorm, average expansion).
# - HyperCloning: Samragh et al., *Scaling Smart: Accelerating Large Language Model Pre-training
#   with Small Model Initialization*, 2024, <https://arxiv.org/abs/2409.12903> (×n width by copying).
# - G_stack: Du et al., *Stacking Your Transformers: A Closer Look at Model Growth for Efficient
#   LLM Pre-Training*, NeurIPS 2024, <https://arxiv.org/abs/2405.15319> (depth by stacking copies
#   of the whole model).
# - LLaMA Pro: Wu et al., *LLaMA Pro: Progressive LLaMA with Block Expansion*, ACL 2024,
#   <https://arxiv.org/abs/2401.02415> (identity blocks with zeroed output projections).
# - MIDAS: Saunshi et al., *On the Inductive Bias of Stacking Towards Improving Reasoning*,
#   NeurIPS 2024, <https://arxiv.org/abs/2409.19044> (growing by copying the middle layers).
#
# ## Summary
#
# - **Width** keeps a duplicated residual stream duplicated: LayerNorm is blind to duplication;
#   a reader copies its rows and splits its columns between the copies of its input; a writer
#   does the same for the copied heads and hidden units it reads; both splits carry zero-sum
#   noise, which cancels on a duplicated input. The router splits its columns ($W_r/k$) and gets
#   no noise; heads are copied whole (a wider head would change the score scale and RoPE's
#   frequencies); the final LayerNorm is divided by $k = \lfloor f \rfloor$, the number of whole
#   copies (1 at ×1.5).
# - **×1.5** copies half of the heads and hidden units, splits only their columns, and fills the
#   extra residual dimensions with the mean (LEMON), with every LayerNorm's gain × √s and eps × s.
# - **Depth** adds copies whose output projections are zeroed: identity blocks that still learn.
#   The three placements (at the end, interleaved, in the middle) are three different models,
#   all exact; plain copies are not.
# - Each rule can be turned off in the explorer; each breaks the function except the router's
#   lack of noise, which only avoids useless noise.
# - **Symmetry breaking** comes from the writers' noise: a unit and its copy get gradients that
#   differ by $2 m^\top g$; with these few steps the copies stay near-copies.
# - The rules tensor by tensor: the [rule table](rules.md); the terms: the [glossary](glossary.md).
#
# ## Exercises
#
# Predict first, then measure. Solutions: `99_solutions.ipynb`.
#
# 1. **Forget the final LayerNorm.** Widen ×2 but leave $\gamma_f, \beta_f$ as they were. By what
#    factor do the logits change?
# 2. **Heads twice as wide.** Duplicate $q$ and $k$ inside each head instead of copying heads.
#    Ignoring RoPE (bare $q$ and $k$), by what factor does every attention score change? Why
#    does RoPE keep that factor only at distance 0?
# 3. **Zero the wrong thing.** Make the new block's LayerNorms zero instead of its output
#    projections. Is the new block the identity? (Think about the biases.)
# 4. **Clones forever.** Widen a model with split noise 0 and train it a few steps. Predict the
#    largest difference between a unit's incoming weights and its copy's, then measure it. If
#    the copies of the grown model stay near-copies, what does that say about comparing it with
#    the same architecture trained from scratch (notebook 04)?
