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
# Because the two chosen experts are identical and their gates sum to 1, the MoE computes the
# dense model's function, to float rounding. Training then makes the experts diverge.

# %% [markdown]
# > **Prerequisites.** Notebook 01: the dense GPT, its MLP and its training step (phase 1's
# > checkpoint is made first if it is missing). PyTorch's `softmax` and `topk`.
# >
# > **Learning objectives.** After this notebook you can
# > - explain why copying the MLP into every expert gives back the dense model, and name the three
# >   rules that keep it exact (gates renormalised, experts copied exactly, no token dropped);
# > - predict what softmax-then-top-k does instead (it scales the output by the kept probability
# >   mass, at least $k/E$) and measure it;
# > - write a MoE layer and its upcycling in plain PyTorch and check them against growlib's;
# > - read the router's first gradient, the balance and z losses, and the expert load they lead to;
# > - measure how identical experts learn apart, and what the MoE costs in total against active
# >   parameters.
# >
# > **Time.** About 2½ minutes at full length on a 2-core CPU (it trains phase 2; under a minute
# > once phase 2 is trained).
# >
# > The terms are defined in the [glossary](glossary.md), the papers listed in the
# > [references](references.md); the [rule table](rules.md) gives, for every tensor, what
# > upcycling and the growth of notebook 03 do to it.

# %%
# %matplotlib inline
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import torch

import growlib as gl
from growlib import explore_upcycling, harness, plots

session = harness.notebook_session()
dense = harness.ensure_phase(session, 1)

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
plots.draw_matrix(axes[5], experts.router.weight.detach(), "router (4 × 8)\nnew, N(0, 0.02²)\n(its own scale)")
fig.tight_layout()
plots.weights_colorbar(fig, axes[:5]);

# %% [markdown]
# The four experts are pixel-for-pixel the dense matrix; the router is faint noise (std 0.02).
#
# ## The exactness check
#
# A MoE layer replaces the MLP's output for a token $u$ (the normalised residual stream) by a
# gated sum over the $k$ experts its router picks. The router scores every expert,
# $z = W_r u \in \mathbb{R}^E$; the default takes the $k$ largest scores, the set $K$, and a
# softmax over **just those**:
#
# $$ y = \sum_{i \in K} g_i\,\mathrm{MLP}_i(u), \qquad g_i = \frac{e^{z_i}}{\sum_{j \in K} e^{z_j}}, \qquad \sum_{i\in K} g_i = 1. $$
#
# Right after upcycling every expert is the same MLP, $\mathrm{MLP}_i = \mathrm{MLP}$, so
# $y = \mathrm{MLP}(u) \sum_{i\in K} g_i = \mathrm{MLP}(u)$, whatever the router says: the model is
# the dense model (in floats, up to the rounding of the gates' sum and of the weighted sum).
#
# Three rules make that true, and each can be broken:
#
# 1. **The gates are renormalised** over the $k$ chosen experts. The other order, a softmax over
#    all $E$ experts and *then* the top $k$ of those probabilities $p_i$, gives
#    $y = \mathrm{MLP}(u) \sum_{i \in K} p_i$: the dense output scaled by the probability mass the
#    kept experts hold. Those are the $k$ largest of $E$ probabilities that sum to 1, so they hold
#    **at least** $k/E$ (here $2/8 = 0.25$), exactly $k/E$ only when all $E$ scores are equal. A
#    fresh router's scores are small but not equal, so expect a scale somewhat above $k/E$: it is
#    measured below. (Renormalising the kept probabilities, $p_i / \sum_{j \in K} p_j$, gives back
#    the default's gates exactly: the $e^{z}$ of the other experts cancel.)
# 2. **Every expert is an exact copy.** Drop-Upcycling (Nakamura et al., ICLR 2025) re-initialises
#    half of each expert's hidden neurons, for diversity: not exact, by design.
# 3. **No token is dropped.** growlib's MoE is *dropless*: every token reaches its $k$ experts.
#    Many MoEs give each expert a *capacity*, $N k / E$ assignments times a capacity factor
#    (the Switch Transformer's), and drop the overflow; a dropped assignment's share is then
#    missing from the token's output.
#
# Run the dense model and the three upcycled ones on the same fixed validation tokens and
# compare the logits:

# %%
cfg = session.spec.growth
tokens = session.verify_tokens().to(session.device)
variants = {
    "top-k then softmax (default)": gl.upcycle(dense, cfg.n_experts, cfg.top_k),
    "softmax then top-k": gl.upcycle(dense, cfg.n_experts, cfg.top_k, router_mode="softmax_topk"),
    "Drop-Upcycling, 50%": gl.upcycle(dense, cfg.n_experts, cfg.top_k, drop_ratio=0.5),
}
val_after = {}
for name, moe in variants.items():
    res = gl.check_preservation(dense, moe, tokens)
    val_after[name] = session.eval(moe)
    print(f"{name:30s} max |Δlogit| = {res.logit_diff:.2e}   validation loss {val_after[name]:.4f}")
val_dense = session.eval(dense)
print(f"{'dense model':30s} {'':22s} validation loss {val_dense:.4f}")
plots.plot_boundary(("dense model\n(end of phase 1)", val_dense), {k.replace(" (", "\n("): v for k, v in val_after.items()},
                    title="The 1→2 boundary: right after upcycling");


# %% [markdown]
# **What to notice:** the default's max |Δlogit| is float rounding, far below the 1e-4 threshold,
# and its validation loss equals the dense model's to the printed digits. The other two start
# from a worse loss: they must re-learn what the dense model knew.
#
# **Predicted, then measured: the $k/E$ scale.** Capture what the first block's MLP receives,
# then compare the softmax-then-top-k layer's output with the dense MLP's on the same inputs.

# %%
def mlp_inputs(model, tokens, layer=0):
    """[tokens, d]: what block ``layer``'s MLP (or MoE) reads when ``model`` runs on ``tokens``."""
    captured = {}
    hook = model.blocks[layer].mlp.register_forward_hook(lambda module, inputs, output: captured.update(u=inputs[0]))
    with torch.no_grad():
        model(tokens)
    hook.remove()
    return captured["u"].reshape(-1, model.cfg.d_model)


u = mlp_inputs(dense, tokens)
scaled = variants["softmax then top-k"].blocks[0].mlp
with torch.no_grad():
    y_dense, (y_scaled, _) = dense.blocks[0].mlp(u), scaled(u)  # a MoE layer returns (output, router statistics)
    scores = u @ scaled.router.weight.T  # [tokens, E]: the fresh router's scores z
    kept = scores.softmax(-1).topk(cfg.top_k, dim=-1).values.sum(-1)  # [tokens]
    ratio = (y_scaled * y_dense).sum(-1) / (y_dense * y_dense).sum(-1)  # y_scaled = ratio * y_dense per token
print(f"predicted scale: at least k/E = {cfg.top_k / cfg.n_experts:.3f}; the scores' spread: "
      f"std {scores.std():.3f} (about 0.02 |u|: mean |u| = {u.norm(dim=-1).mean():.1f}, sqrt(d) = {u.shape[-1] ** 0.5:.1f})")
print(f"kept probability mass, mean over {len(u):,} tokens: {kept.mean():.3f} (min {kept.min():.3f}, max {kept.max():.3f})")
print(f"measured output / dense output, mean: {ratio.mean():.3f}; largest gap to the kept mass: {(ratio - kept).abs().max():.1e}")

# %% [markdown]
# The kept mass is above $k/E$ for every token, as it must be: the top $k$ are by definition the
# largest probabilities. How far above is set by the spread of the scores, $0.02\,\lVert u\rVert$:
# $u$ is a LayerNorm's output, whose norm is about $\sqrt d$ times its gain (the cell prints
# both), so the scores' spread is not negligible next to 1, and the softmax visibly favours the
# best experts. The output is the dense
# output times that mass, token by token, to float rounding (the largest gap printed).
#
# ## The MoE layer, written plainly
#
# growlib's MoE sorts the tokens by expert so that each expert runs one matrix product (fast);
# the arithmetic is the formula above. Here it is one token and one expert at a time, and the
# upcycling of one block, written out and checked against the library:

# %%
import torch.nn.functional as F


def moe_forward_plain(moe, u):
    """u: [N, d] -> [N, d], one token and one chosen expert at a time."""
    scores = u @ moe.router.weight.T  # [N, E]
    out = torch.zeros_like(u)
    for t in range(u.shape[0]):
        top, chosen = scores[t].topk(moe.top_k)  # the k best experts for this token
        gates = top.softmax(-1)  # a softmax over the chosen k only: the gates sum to 1
        for g, e in zip(gates, chosen):
            hidden = F.gelu(u[t] @ moe.w_in[e] + moe.b_in[e])  # [h]
            out[t] += g * (hidden @ moe.w_out[e] + moe.b_out[e])  # [d]
    return out


def upcycle_block_plain(mlp, n_experts, top_k, router_std=0.02, seed=0):
    """A MoE layer whose every expert copies ``mlp`` (nn.Linear stores [out, in]; experts store [in, out])."""
    moe = gl.MoE(mlp.fc_in.in_features, mlp.fc_in.out_features, n_experts, top_k)
    with torch.no_grad():
        for e in range(n_experts):
            moe.w_in[e] = mlp.fc_in.weight.T
            moe.b_in[e] = mlp.fc_in.bias
            moe.w_out[e] = mlp.fc_out.weight.T
            moe.b_out[e] = mlp.fc_out.bias
        moe.router.weight.normal_(0.0, router_std, generator=torch.Generator().manual_seed(seed))
    return moe


library_moe = variants["top-k then softmax (default)"].blocks[0].mlp
mine = upcycle_block_plain(dense.blocks[0].mlp, cfg.n_experts, cfg.top_k)
with torch.no_grad():
    sample = u[:256]
    print(f"plain forward vs growlib's MoE (same weights):  max |Δ| = {(moe_forward_plain(library_moe, sample) - library_moe(sample)[0]).abs().max():.1e}")
    print(f"plain upcycled block vs the dense MLP:          max |Δ| = {(moe_forward_plain(mine, sample) - y_dense[:256]).abs().max():.1e}")
    print(f"growlib's upcycled block vs the dense MLP:      max |Δ| = {(library_moe(sample)[0] - y_dense[:256]).abs().max():.1e}")

# %% [markdown]
# ## Explorer: break one rule at a time
#
# Each of the three rules above, turned off alone at the recipe's k, on the same validation
# tokens as the check above (so the bars of the default, of softmax-then-top-k and of
# Drop-Upcycling are the numbers printed there). The capacity is a factor of 1: each expert takes
# at most $N k / E$ of the $N k$ assignments, served in token order
# (`explore_upcycling.CapacityRouter`). Every upcycling is made and checked once; the explorer
# below reuses them.

# %%
lab = explore_upcycling.UpcyclingLab(dense, cfg.n_experts, tokens)  # each (rules, k) upcycled and checked once
explore_upcycling.rule_failures_figure(lab, cfg.top_k);

# %% [markdown]
# The explorer combines the rules and moves k; each figure sets the setting you chose next to
# every rule kept, per layer (left) and against k (right). It opens with the gates not
# renormalised. Predict before you move the controls: with the gates renormalised, does k
# matter? Without, is the gap larger at k = 1 or at k = 8? With a capacity, what happens at
# k = 8?

# %%
explore_upcycling.upcycling_explorer(lab, cfg.top_k)

# %% [markdown]
# With the gates renormalised every k is exact. Without, the output is scaled by the kept
# probability mass, which grows with k: the gap is large at small k and vanishes at k = E,
# where nothing is dropped from the softmax. A capacity drops assignments at every k: a fresh
# router does not spread the tokens evenly, so some experts overflow.
#
# ## Training phase 2
#
# Phase 2 trains the whole MoE on the language-model loss plus two small terms for the router
# (the coefficients are `train_step`'s defaults). The Switch Transformer's **load-balancing loss**
# multiplies, for each expert $i$, the share of token assignments it received $f_i$ by the mean
# probability the router gave it $P_i$; the ST-MoE **router z-loss** keeps the scores small:
#
# $$ \mathcal{L} = \mathcal{L}_\text{LM} + 0.01\,\underbrace{E\sum_{i=1}^{E} f_i P_i}_{\mathcal{L}_\text{balance}\;(=1 \text{ when balanced})}
# + 0.001\,\underbrace{\frac{1}{N}\sum_{t=1}^{N}\Bigl(\log\sum_{j=1}^{E} e^{z_{tj}}\Bigr)^2}_{\mathcal{L}_z}. $$
#
# **What the new router learns at the first step.** From the language-model loss: nothing. The
# router acts on the output only through the gates, $\partial y/\partial z_i = \mathrm{MLP}(u)\,\partial(\sum_K g_j)/\partial z_i = 0$,
# because the gates always sum to 1 and the experts are equal. Only the balance and z-loss
# terms move it, until training makes the experts differ. Measured on one training batch:

# %%
probe = gl.upcycle(dense, cfg.n_experts, cfg.top_k)
x, y = session.data.train_batch(session.spec.train.batch_size, 0, 2, 0)
lm_loss = probe(x.to(session.device), y.to(session.device))
lm_loss.backward()
router_grad = max(float(b.mlp.router.weight.grad.abs().max()) for b in probe.blocks)
expert_grad = max(float(b.mlp.w_in.grad.abs().max()) for b in probe.blocks)
print(f"language-model loss only: largest router gradient {router_grad:.1e}, largest expert gradient {expert_grad:.1e}")
probe.zero_grad()
routing = []  # each MoE layer's router statistics, returned with its output
lm_loss = probe(x.to(session.device), y.to(session.device), routing=routing)
balance = sum(r.balance for r in routing)
(lm_loss + 0.01 * balance).backward()
print(f"with the balance loss:    largest router gradient {max(float(b.mlp.router.weight.grad.abs().max()) for b in probe.blocks):.1e}")

# %% [markdown]
# The MoE trains with the recipe's lower learning rate; the two router losses are logged
# separately from the language-model loss.

# %%
moe = harness.ensure_phase(session, 2, previous=dense)

# %% [markdown]
# When phase 2 trains here, its banner's **Efficiency** line is the *active fraction*: the
# parameters one token passes through over all the model's parameters (active ÷ total, computed
# again below), a measure of sparsity, not of speed or of hardware use.

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
# For each layer, the share of routed tokens that went to each expert at each logged step
# (balanced: 1/8 = 0.125 each). At step 0 the router is noise and the experts are identical, so
# the split is arbitrary; as training goes on, each expert sees different tokens and its weights
# move apart. The load-balancing loss pulls the shares toward balance, but with its weight of
# 0.01 it only pulls: it does not stop an expert from being chosen rarely. The cell prints each
# layer's least and most loaded expert at the last logged step.

# %%
plots.plot_expert_load(session.history.records, phase=2);
last = [r for r in session.history.records if r["phase"] == 2 and "expert_tokens" in r][-1]
for layer, counts in enumerate(np.array(last["expert_tokens"], dtype=float)):  # [E] assignments
    share = counts / counts.sum()
    print(f"layer {layer}: least loaded expert {share.argmin()} with {share.min():.3f} of the assignments, "
          f"most loaded expert {share.argmax()} with {share.max():.3f}")

# %% [markdown]
# **How far apart did the experts move?** Right after upcycling every expert is the same MLP:
# the cosine similarity of any two experts' weights (`gl.expert_similarity`: each expert's
# $W_\text{in}$ and $W_\text{out}$ flattened into one vector) is 1, up to the rounding of fp32 dot
# products. Unlike the widened units of
# notebook 03, identical experts do not get identical gradients: each receives the gradient of
# the tokens the router sent it, $\partial L/\partial W^{(e)} = \sum_{t \to e} g_{t,e}\,(\dots)$, and
# different tokens go to different experts from the first step. So the router alone breaks the
# symmetry. Below, the dense model is upcycled again and trained for a few steps on phase 2's
# batches, with the similarity measured after every step; then the MoE trained above.

# %%
spec2 = session.phase_spec(2)
probe = gl.upcycle(dense, cfg.n_experts, cfg.top_k)
opt = gl.make_optimizer(probe, spec2.peak_lr, spec2.weight_decay, session.device)
trace = [gl.mean_expert_similarity(probe)]
for step in range(min(30, spec2.steps)):
    batch = tuple(b.to(session.device) for b in session.data.train_batch(spec2.batch_size, spec2.seed, spec2.stream, step))
    gl.train_step(probe, opt, batch, spec2)
    trace.append(gl.mean_expert_similarity(probe))
print(f"mean similarity of two experts: {trace[0]:.6f} just after upcycling, {trace[-1]:.6f} after "
      f"{len(trace) - 1} steps, {gl.mean_expert_similarity(moe):.6f} after the {spec2.steps} steps of phase 2")
plots.plot_clone_divergence({"upcycled experts": trace}, title="Identical experts learning apart",
                            ylabel="1 - mean cos(expert, expert)", xlabel="training step after upcycling");

# %% [markdown]
# **What to notice:** the first step already moves the experts about $10^{-3}$ apart (in
# $1-\cos$), about as far as notebook 03's default split noise puts a widened unit from its
# copy; but unlike those copies, which training leaves where the noise put them, the experts
# keep drifting apart over the whole phase. Where each expert stands against every other one at
# the end of phase 2, layer by layer:

# %%
plots.plot_expert_similarity(gl.expert_similarity(moe), title="After phase 2: cosine similarity of every pair of experts");

# %% [markdown]
# **Which tokens does each expert take?** Route the validation tokens through the first layer's
# router and list, per expert, how many tokens chose it first and second, and the tokens that
# choose it first most often:

# %%
with torch.no_grad():
    choices = moe.blocks[0].mlp.router(mlp_inputs(moe, tokens))[1]  # [tokens, k]: best expert first
ids = tokens.reshape(-1).tolist()
second = Counter(choices[:, 1].tolist()) if cfg.top_k > 1 else Counter()
for e in range(cfg.n_experts):
    taken = Counter(t for t, c in zip(ids, choices[:, 0].tolist()) if c == e)
    top = ", ".join(repr(session.data.decode([t])) for t, _ in taken.most_common(6))
    print(f"expert {e}: first choice of {sum(taken.values()):5d} tokens, second of {second[e]:5d}; most often {top}")

# %% [markdown]
# **What to notice:** the first choices are far from even, and an expert can be the first
# choice of only a few of the tokens. The balance loss counts every assignment, first and second,
# so an expert rarely first can still be busy as a second choice; compare the two columns.

# %% [markdown]
# ## The price: total versus active parameters
#
# The MoE stores 8 experts per layer but a token only runs through 2. The chart compares the
# two phases of this run's preset: total parameters grew far more than the parameters (and
# so the compute) each token uses. The chart's "% active" is the active fraction, the
# banner's "Efficiency".

# %%
reports = {p: gl.param_report(m) for p, m in ((1, dense), (2, moe))}
for p, r in reports.items():
    print(f"phase {p}:", *r.lines(), f"  active fraction:      {r.active / r.total:.1%} (active / total)", sep="\n")
plots.plot_budget(reports, title=f"Preset {session.spec.preset!r}: dense vs MoE");

# %% [markdown]
# ## What the MoE writes

# %%
print(harness.sample_text(moe, session, tokens=80))

# %% [markdown]
# ## The papers
#
# - Sparse Upcycling: Komatsuzaki et al., *Sparse Upcycling: Training Mixture-of-Experts from
#   Dense Checkpoints*, ICLR 2023, <https://arxiv.org/abs/2212.05055>.
# - Switch Transformer: Fedus, Zoph and Shazeer, *Switch Transformers: Scaling to Trillion
#   Parameter Models with Simple and Efficient Sparsity*, JMLR 2022,
#   <https://arxiv.org/abs/2101.03961> (the load-balancing loss).
# - ST-MoE: Zoph et al., *ST-MoE: Designing Stable and Transferable Sparse Expert Models*, 2022,
#   <https://arxiv.org/abs/2202.08906> (the router z-loss).
# - Drop-Upcycling: Nakamura et al., *Drop-Upcycling: Training Sparse Mixture of Experts with
#   Partial Re-initialization*, ICLR 2025, <https://arxiv.org/abs/2502.19261>.
#
# Every paper of the series: [references](references.md).
#
# ## Summary
#
# - Copying the MLP into every expert, with a fresh router, gives back the dense model to float
#   rounding while three rules hold: the chosen gates sum to 1, the experts are exact copies, and
#   no token is dropped. Each rule turned off alone puts the model far above the threshold.
# - Softmax-then-top-k scales each MLP's output by the kept probability mass: at least $k/E$,
#   above it by as much as the fresh router's scores are spread.
# - A plain loop over tokens and experts, and a plain upcycling, compute what growlib's sorted
#   experts compute.
# - At the first step the language-model loss gives the router no gradient (rounding only); the
#   balance loss does. The balance loss pulls the load toward even, without making it even.
# - Identical experts move apart from the first step, because each receives the gradient of its
#   own tokens; the router alone breaks the symmetry.
# - The MoE holds $E$ MLPs a layer but runs $k$ a token: its total parameters grow far more than
#   its active ones (the active fraction).
#
# ## Exercises
#
# Predict first, then measure. Solutions: `99_solutions.ipynb`.
#
# 1. **The scale at every k.** For softmax-then-top-k, predict the output scale for
#    $k = 1, 2, 4, 8$ of 8 experts, then measure it as above.
# 2. **Noise on the router.** Add Gaussian noise to the router's scores before the top-k (as some
#    MoEs do during training). Is the upcycled model still exact? Why?
# 3. **A perfectly balanced router.** What is $\mathcal{L}_\text{balance}$ when every expert gets
#    the same share of the assignments and the same mean probability? With top-2 routing every
#    token goes to two *different* experts: what is the largest share $f_i$ one expert can take,
#    and the largest $\mathcal{L}_\text{balance}$? What would it be with top-1?
