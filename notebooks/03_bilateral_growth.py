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
# The rules come from Net2Net and bert2BERT (the first function-preserving growth), HyperCloning
# and LEMON (width), LLaMA Pro and G_stack (depth); each is derived below, and the docstring of
# `growlib/grow.py` states them again beside the code.

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
# function on a duplicated stream.
#
# **LayerNorm of a duplicated vector.** $[x, x]$ has the same mean and the same variance as $x$
# (each value appears twice, in numerator and denominator alike), so with the scale and shift
# duplicated too, $\gamma' = [\gamma, \gamma]$, $\beta' = [\beta, \beta]$:
# $\;\mathrm{LN}'([x, x]) = [\mathrm{LN}(x), \mathrm{LN}(x)]$.
#
# **A matrix that reads the stream** (query, key, value, $W_\text{in}$, the router) sees
# $[u, u]$. Copy its rows and split each input column between the two copies of that input:
#
# $$ W' = \begin{pmatrix} W/2 + N & W/2 - N \\ W/2 + N' & W/2 - N' \end{pmatrix}, \qquad
# W' \begin{pmatrix} u \\ u \end{pmatrix} = \begin{pmatrix} W u \\ W u \end{pmatrix}. $$
#
# The noise $N$ cancels, so the output is unchanged; but the two copies now get different
# gradients and can learn different things (without $N$ they would stay clones forever). The
# router gets no noise: top-k is discontinuous, and a tiny change of its scores can swap which
# experts a token goes to.
#
# **A matrix that writes the stream** ($W_\text{out}$, the attention output) reads a duplicated
# hidden vector $[a, a]$ and must write $[y, y]$: its output rows are copied **and** its input
# columns halved, $W' = \tfrac12\begin{pmatrix} W & W \\ W & W \end{pmatrix}$, so
# $W'[a; a] = [Wa; Wa]$. (Copying the rows without halving would write $[2y, 2y]$.)
#
# **Heads are copied whole.** A head of width $d_h$ scores $q \cdot k / \sqrt{d_h}$. Making each
# head twice as wide with duplicated $q, k$ would give $[q,q]\cdot[k,k]/\sqrt{2d_h} = \sqrt{2}\;
# q\cdot k/\sqrt{d_h}$: every attention logit scaled by $\sqrt 2$, a sharper softmax, another
# function. Twice as many heads of the old width keep every score as it was.
#
# **The tied head and the final LayerNorm.** The logits are $E' \,\mathrm{LN}_f'(x')$ with every
# embedding row duplicated, $e' = [e, e]$: $\;[e, e]\cdot[\ell, \ell] = 2\,e\cdot\ell$. So the final
# LayerNorm's $\gamma$ and $\beta$ are divided by 2 (by the width factor), and the logits are
# the old ones.
#
# The toy model below (4 dimensions, 2 heads) shows a reader and a writer before and after:

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
plots.draw_matrix(axes[4], o1, "MLP-out after ×2 (8 × 16):\nrows copied, columns halved", vmax)
fig.tight_layout()
plots.weights_colorbar(fig, axes);

# %% [markdown]
# The third panel adds the two column halves back: it is the original matrix, stacked twice.
#
# **Width ×1.5** cannot duplicate everything. Copying half the features would move LayerNorm's
# mean, so growlib uses LEMON's *average expansion*: the extra residual dimensions hold the
# per-token mean of the original ones, every writer gets extra rows equal to the mean of its
# rows, and every LayerNorm rescales its gain by √s and its eps by s = d/d′ (each LayerNorm
# keeps its own eps). The output of every LayerNorm is then `[LN(x), 0]`: exact.
#
# Why those numbers. Write the widened vector as $x' = [x,\ \mu\mathbf{1}_{d'-d}]$, where
# $\mu = \tfrac1d\sum_i x_i$ and $\sigma^2 = \tfrac1d\sum_i (x_i-\mu)^2$. Its mean is unchanged,
# $$\mu' = \tfrac{1}{d'}\big(d\mu + (d'-d)\mu\big) = \mu,$$
# and the extra entries add nothing to the squared deviations, so its variance shrinks by $s = d/d'$:
# $$\sigma'^2 = \tfrac{1}{d'}\Big(\sum_{i\le d}(x_i-\mu)^2 + 0\Big) = s\,\sigma^2 .$$
# With $\epsilon' = s\,\epsilon$ the normaliser is $\sqrt{s\sigma^2 + s\epsilon} = \sqrt{s}\,\sqrt{\sigma^2+\epsilon}$, so on the
# first $d$ entries a gain $\gamma'_i = \sqrt{s}\,\gamma_i$ gives back exactly
# $\gamma_i\,(x_i-\mu)/\sqrt{\sigma^2+\epsilon} + \beta_i$, and on the extra entries $(\mu-\mu) = 0$ with a zero bias
# gives 0. Readers take $[W;\,0]$ (zero columns for the extra entries) and see $\mathrm{LN}(x)$.
# The invariant "extra entries = the mean" must survive every residual addition: a writer whose
# update is $u$ adds $[u,\ \bar u\,\mathbf 1]$ when its extra output rows are the mean of its rows
# ($\bar u$ is linear in $u$), and the embedding rows are extended the same way.
#
# ## Depth +n: zeroed output projections
#
# A copy of a block added to a residual network computes $x + f(x)$ a second time: not the same
# function (that is the plain G_stack copy, measured below). Zeroing the copy's two output
# projections (attention and MLP, weights *and* biases, every expert's) makes it the identity:
# $x + \mathrm{Attn}(\cdot)\cdot 0 + \mathrm{MLP}(\cdot)\cdot 0 = x$. It still learns from the first
# step: the gradient of an output projection is $\partial L/\partial W_\text{out} = \delta\, a^\top$,
# the residual's gradient $\delta$ times the block's inner activation $a$, and both are nonzero
# because the LayerNorms and input projections keep the copied weights. (Its other weights get
# no gradient until $W_\text{out}$ has moved off zero.) G_stack (Du et al., 2024) copies whole
# blocks without zeroing: the function changes, the loss jumps, and the paper accepts it because
# training recovers the jump quickly and the copies are a good start.

# %%
deep = gl.deepen(toy, 1, where="end")
fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
plots.draw_matrix(axes[0], deep.blocks[1].attn.q.weight.detach(), "new layer: query\n(copied)", vmax)
plots.draw_matrix(axes[1], deep.blocks[1].attn.out.weight.detach(), "new layer: attn out\n(zeroed)", vmax)
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
# after the matching layer; an inserted layer is compared with the layer it copies. The
# placements: `end` (the recipe's: copies of the last layer appended), `interleave` (spread
# through the stack) and `middle` (copies of the middle layers, as MIDAS suggests).

# %%
tokens = session.verify_tokens().to(session.device)
extra = session.spec.growth.extra_layers
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

grown = gl.grow(moe, 2, extra, where="end", verbose=False)
plots.plot_boundary(("MoE\n(end of phase 2)", session.eval(moe)),
                    {f"×2, +{extra} end\n(preserving)": session.eval(grown), "plain G_stack\ncopies": session.eval(stacked)},
                    title="The 2→3 boundary: right after growth")
del grown

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
    gl.phase_configs(gl.get_preset("cpu").model, session.spec.growth)[2], seed=0)
short = tokens[:1, :64]
gl.explorer(lambda **choice: gl.growth_figure(small, short, **choice), dict(
    scale_factor=widgets.SelectionSlider(options=[1.0, 1.5, 2.0, 3.0], value=2.0, description="width ×"),
    extra_layers=widgets.IntSlider(value=extra, min=0, max=8, description="+ layers"),
    where=widgets.Dropdown(options=list(gl.PLACEMENTS), value="end", description="placement"),
    noise=widgets.FloatLogSlider(value=session.spec.growth.noise, base=10, min=-4, max=0, description="split noise"),
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
grown = harness.ensure_phase(session, 3, previous=moe)

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
# validation batches just before and just after the transition. A phase's *total drop* is its
# first training batch's loss minus its last one's: two different batches, so in a short phase
# whose loss is nearly flat it can come out negative without the model getting worse. The
# *drop (val)* line measures the same thing on the fixed validation batches and is the one to trust.

# %%
print(harness.boundary_summary(session.state.figures))

# %% [markdown]
# ## Training and validation loss side by side
#
# The training loss is measured on the batches the model is learning from; the validation loss
# on held-out stories it never trains on. A small gap means the model learned what generalises;
# a validation loss well above the training loss means it has begun to memorise its training
# text, which happens when a corpus is small next to the model and the run passes over it
# several times.

# %%
t = session.spec.train
for p, r in sorted(session.state.results.items()):
    last = r.losses[-5:]
    train_end = sum(last) / len(last)
    seen = t.steps(p) * t.batch_size * t.seq_len / len(session.data.train)
    print(f"phase {p}: training loss {train_end:.3f} (mean of the last {len(last)} logged steps), "
          f"validation {r.eval_loss:.3f}, gap {r.eval_loss - train_end:+.3f}; "
          f"this phase read {seen:.1f}× the training tokens")

# %% [markdown]
# ## Symmetry breaking, measured
#
# After widening, hidden unit $j$ and its copy $j'$ have the same incoming weights up to the
# split noise, and the same outgoing weights (each half of the original). Without noise they
# are exact clones: both compute $a = \mathrm{gelu}(w^\top x + b)$ for every token, so the
# gradients of their incoming weights are
# $$\frac{\partial L}{\partial w_j} = \sum_t \frac{\partial L}{\partial a_{j,t}}\,\mathrm{gelu}'(w_j^\top x_t + b_j)\,x_t
#   = \frac{\partial L}{\partial w_{j'}},$$
# because $\partial L/\partial a_{j,t} = v_j^\top g_t$ with equal outgoing rows $v_j = v_{j'}$. Equal
# gradients give equal AdamW steps, so the two stay clones at every step and the wide layer
# computes no more than the narrow one did. Noise makes $w_j \ne w_{j'}$ at the start; whether
# training then pulls them apart is a question to measure. Below, the session's MoE is widened ×2
# three times (split noise 0, the default, and ten times the default) and each is trained for
# the same steps on the same batches at phase 3's learning rate; after every step, the mean over
# all units, experts and layers of $1 - \cos(w_j, w_{j'})$.

# %%
spec3 = session.phase_spec(3)
noises = {"no noise": 0.0, f"noise {session.spec.growth.noise}": session.spec.growth.noise,
          f"noise {10 * session.spec.growth.noise:g}": 10 * session.spec.growth.noise}
probe_steps = min(30, spec3.steps)
traces = {}
for label, noise in noises.items():
    wide = gl.widen(moe, 2.0, noise=noise)
    pairs = gl.clone_pairs(moe.cfg.d_mlp, wide.cfg.d_mlp)  # (unit, its copy)
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
# the default noise they start apart by the noise alone and, over these steps, training does not
# pull them further apart: the grown model's new units are still near-copies at the end of
# phase 3, so much of its extra width is not yet used. Ten times the noise starts them ten
# times further apart in weight (the function is still preserved: the noise is zero-sum, as the
# explorer above checks), but they do not move apart faster either. Exercise 4 below asks what
# this means for the comparison in notebook 04.
#
# ## What the grown model writes

# %%
print(harness.sample_text(grown, session, tokens=80))

# %% [markdown]
# ## What this notebook showed
#
# Widening keeps a duplicated residual stream duplicated (readers split their columns, writers
# halve theirs, LayerNorm is blind to duplication, heads are copied whole, the final LayerNorm
# is divided by the width factor); deepening adds blocks that start as the identity and still
# learn; every layer of the grown model was checked against the MoE, and the plain G_stack copy
# was not preserving.
#
# ## The papers
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
#   LLM Pre-Training*, NeurIPS 2024, <https://arxiv.org/abs/2405.15319> (depth by stacking copies).
# - LLaMA Pro: Wu et al., *LLaMA Pro: Progressive LLaMA with Block Expansion*, ACL 2024,
#   <https://arxiv.org/abs/2401.02415> (identity blocks with zeroed output projections).
#
# ## Exercises
#
# Predict first, then measure. Solutions: `99_solutions.ipynb`.
#
# 1. **Forget the final LayerNorm.** Widen ×2 but leave $\gamma_f, \beta_f$ as they were. By what
#    factor do the logits change?
# 2. **Heads twice as wide.** Duplicate $q$ and $k$ inside each head instead of copying heads.
#    By what factor does every attention score change?
# 3. **Zero the wrong thing.** Make the new block's LayerNorms zero instead of its output
#    projections. Is the new block the identity? (Think about the biases.)
# 4. **Clones forever.** Widen a model with split noise 0 and train it a few steps. Predict the
#    largest difference between a unit's incoming weights and its copy's, then measure it. If
#    the copies of the grown model stay near-copies, what does that say about comparing it with
#    the same architecture trained from scratch (notebook 04)?
