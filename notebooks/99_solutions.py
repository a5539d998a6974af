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
# # 99 · Solutions to the exercises of 01–05
#
# Try each exercise in its own notebook first. Every solution here predicts a number with the
# notebook's derivation, then measures it. Nothing trains: the models are small, built here, and
# the whole notebook runs in seconds. The terms are defined in the [glossary](glossary.md), the
# papers listed in the [references](references.md).

# %%
# %matplotlib inline
import math

import torch
import torch.nn.functional as F

import growlib as gl

cpu = gl.get_preset("cpu")
torch.manual_seed(0)

# %% [markdown]
# ## 01 · A dense GPT
#
# **1. Count by hand.** The formula of notebook 00, $N = Vd + L(4d^2 + 2dh + 9d + h) + 2d$, for
# the `cpu` preset:

# %%
c = cpu.model
d, h, V, L = c.d_model, c.d_mlp, c.vocab_size, c.n_layers
by_hand = V * d + L * (4 * d * d + 2 * d * h + 9 * d + h) + 2 * d
model = gl.build_model(c)
print(f"by hand {by_hand:,}; gl.param_report {gl.param_report(model).total:,}; equal: {by_hand == gl.param_report(model).total}")

# %% [markdown]
# **2. The first loss.** With nearly equal logits the model's distribution is close to uniform
# over $V$ tokens, so the cross-entropy is about $\ln V$. Measured on random token ids (an
# untrained model has not seen any text, so any ids will do):

# %%
ids = torch.randint(0, V, (8, 64))
with torch.no_grad():
    loss = model(ids[:, :-1], ids[:, 1:]).item()
print(f"predicted ln V = {math.log(V):.3f}; measured {loss:.3f}")

# %% [markdown]
# **3. The cost of phase 1.** $C \approx 6NT$ with $T$ = steps × batch × sequence length, and
# the library's per-token figure (which adds attention and counts the tied head as a product):

# %%
t = cpu.train
tokens_1 = t.steps(1) * t.batch_size * t.seq_len
six_nt = 6 * by_hand * tokens_1
library = gl.training_flops_per_token(c, t.seq_len) * tokens_1
print(f"T = {tokens_1:,} tokens; 6NT = {six_nt:.3e} FLOPs; gl.training_flops_per_token x T = {library:.3e}")

# %% [markdown]
# The library's figure is larger by attention: the scores $QK^\top$ and the weighted values are
# products of activations, not of weights, so $6N$ leaves them out (about $12\,L\,T_\text{ctx}\,d$
# FLOPs per token, large next to $6N$ at this small width). $N$ itself counts the biases and
# LayerNorms, which the library leaves out; the embedding matrix counts once, as the head's product.
#
# ## 02 · Upcycling
#
# **1. The scale at every k.** Predicted: at least $k/E$ (the $k$ largest of $E$ probabilities
# that sum to 1), exactly $k/E$ only if every score were equal. Measured as the ratio of the
# upcycled layer's output to the dense MLP's, on random normalised inputs:

# %%
dense = gl.build_model(c, seed=1)
mlp = dense.blocks[0].mlp
u = F.layer_norm(torch.randn(512, d), (d,))  # what the MLP reads: a normalised residual
with torch.no_grad():
    y = mlp(u)
    for k in (1, 2, 4, 8):
        moe = gl.upcycle(dense, 8, k, router_mode="softmax_topk").blocks[0].mlp
        out, _ = moe(u)  # a MoE layer returns (output, its router's statistics)
        ratio = ((out * y).sum(-1) / (y * y).sum(-1)).mean()
        print(f"k = {k}: predicted {k / 8:.3f}, measured {ratio:.3f}")

# %% [markdown]
# Above $k/E$ at every $k < E$: a fresh router's scores are small but not zero (standard
# deviation about $0.02\sqrt d$, 0.23 at this width), and the top k are by definition the largest
# probabilities. Exactly 1 at $k = E$, where nothing is dropped.
#
# **2. Noise on the router.** Still exact. Noise changes *which* experts a token goes to and
# their gates, but every expert is the same MLP and the gates of the chosen ones still sum to
# 1, so the output is $\mathrm{MLP}(u)$ whatever was chosen:

# %%
moe = gl.upcycle(dense, 8, 2).blocks[0].mlp
router = moe.router
with torch.no_grad():
    scores = F.linear(u, router.weight) + torch.randn(len(u), 8)  # noisy scores
    top, chosen = scores.topk(2, dim=-1)
    gates = top.softmax(-1)
    noisy = sum(gates[:, j:j + 1] * mlp(u) for j in range(2))  # every chosen expert is the MLP
print(f"noisy routing vs the dense MLP: max |Δ| = {(noisy - y).abs().max():.1e}")

# %% [markdown]
# **3. A perfectly balanced router.** With $f_i = P_i = 1/E$:
# $E \sum_i \frac{1}{E}\cdot\frac{1}{E} = 1$. Under top-2 no expert can take everything: every
# token sends one of its $k = 2$ assignments to each of two *different* experts, so an expert's
# share is at most $f_i \le 1/k$. Since $\sum_i P_i = 1$,
# $\mathcal{L}_\text{balance} = E \sum_i f_i P_i \le E \max_i f_i \le E/k$: 4 for 8 experts at
# top-2, reached when every token picks the same two experts (each $f = 1/2$), whatever the
# probabilities among those two. Only top-1 lets one expert take everything ($f_1 = P_1 = 1$),
# and then the loss is $E$. Measured with growlib's function:

# %%
from growlib.moe import switch_balance_loss

n, E = 800, 8
balanced_probs = torch.full((n, E), 1 / E)
balanced_ids = torch.stack([torch.arange(n), torch.arange(n) + 1], 1).remainder(E)  # [n, 2]: all experts alike
pair_probs = torch.zeros(n, E)
pair_probs[:, :2] = 0.5  # the router's whole probability on experts 0 and 1
pair_ids = torch.tensor([[0, 1]]).expand(n, 2)  # every token to experts 0 and 1
one_expert = torch.zeros(n, E)
one_expert[:, 0] = 1.0  # the probability on expert 0 alone; under top-2 its partner still takes half the assignments
top1_ids = torch.zeros(n, 1, dtype=torch.long)  # top-1: every token to expert 0
print(f"top-2, balanced:                    {switch_balance_loss(balanced_probs, balanced_ids, E):.3f} (predicted 1)")
print(f"top-2, every token to experts 0, 1: {switch_balance_loss(pair_probs, pair_ids, E):.3f} with probabilities "
      f"(1/2, 1/2), {switch_balance_loss(one_expert, pair_ids, E):.3f} with (1, 0) (predicted E/k = {E / 2:.0f})")
print(f"top-1, every token to expert 0:     {switch_balance_loss(one_expert, top1_ids, E):.3f} (predicted E = {E})")

# %% [markdown]
# ## 03 · Bilateral growth
#
# **1. Forget the final LayerNorm.** The logits are $[e, e]\cdot[\ell, \ell] = 2\,e\cdot\ell$:
# doubled. Undo growlib's division by 2 and compare:

# %%
small = gl.build_model(gl.get_preset("tiny").model, seed=2)
with torch.no_grad():  # a fresh model's biases are zero; a trained model's are not
    for name, p in small.named_parameters():
        if name.endswith("bias"):
            p.normal_(0.0, 0.1)
ids = torch.randint(0, small.cfg.vocab_size, (2, 16))
wide = gl.widen(small, 2, noise=0.0)
with torch.no_grad():
    wide.ln_f.weight.mul_(2)
    wide.ln_f.bias.mul_(2)
    print(f"logits ratio without the division: {(wide(ids) / small(ids)).median():.4f} (predicted 2)")

# %% [markdown]
# **2. Heads twice as wide.** Duplicating $q$ and $k$ inside a head doubles $q\cdot k$ while the
# scale only grows by $\sqrt 2$: every score is multiplied by $2/\sqrt2 = \sqrt2$.

# %%
dh = 16
q, k = torch.randn(10, dh), torch.randn(10, dh)
old_scores = q @ k.T / math.sqrt(dh)
wide_scores = torch.cat([q, q], 1) @ torch.cat([k, k], 1).T / math.sqrt(2 * dh)
print(f"score ratio {(wide_scores / old_scores).mean():.4f}; predicted sqrt(2) = {math.sqrt(2):.4f}")

# %% [markdown]
# **With RoPE**, a query at position $m$ and a key at position $n$ are rotated before the product,
# each pair of coordinates by the angle $(m-n)\,\theta_i$. In the old head, rotate-half pairs
# coordinate $i$ with $i + d_h/2$ at frequency $\theta_i = b^{-2i/d_h}$. In a head of width $2d_h$
# holding $[q, q]$, coordinate $i$ is paired with $i + d_h$, its own copy, and the frequencies are
# $b^{-2i/(2d_h)}$: other pairs, other angles. At distance 0 every angle is 0, nothing rotates, and
# the score is $\sqrt2$ times the old one as above. At any other distance the rotations differ from
# the old head's, so the new score is no fixed multiple of the old one. That is why growlib copies
# heads whole: each copy keeps its width, its pairs and its frequencies.

# %% [markdown]
# **3. Zero the wrong thing.** With zero LayerNorms the sub-layers read the zero vector, but the
# linear layers still add their biases: attention writes its output bias (through the value
# bias), the MLP writes $W_\text{out}\,\mathrm{GELU}(b_\text{in}) + b_\text{out}$. Not the identity
# unless every bias is zero:

# %%
deep = gl.deepen(small, 1, preserve=False)  # a plain copy of the last block, then zero its LayerNorms
new = deep.blocks[-1]
with torch.no_grad():
    for ln in (new.ln1, new.ln2):
        ln.weight.zero_()
        ln.bias.zero_()
    print(f"zeroed LayerNorms: max |Δlogit| = {(deep(ids) - small(ids)).abs().max():.2e} (not the identity)")
    print(f"zeroed output projections: max |Δlogit| = {(gl.deepen(small, 1)(ids) - small(ids)).abs().max():.2e}")

# %% [markdown]
# **4. Clones forever.** Zero: equal weights get equal gradients and equal AdamW steps, so the
# copies stay bitwise equal however long they train.

# %%
clones = gl.widen(small, 2, noise=0.0)
pairs = gl.clone_pairs(small.cfg.d_mlp, clones.cfg.d_mlp)
opt = gl.make_optimizer(clones, 1e-3, 0.1, "cpu")
for step in range(3):
    batch = tuple(torch.randint(0, small.cfg.vocab_size, (2, 4, 16), generator=torch.Generator().manual_seed(step)))
    gl.train_step(clones, opt, batch)
print(f"after 3 steps without noise: largest |w_j - w_j'| = {gl.max_clone_difference(clones, pairs)}")

# %% [markdown]
# A grown model whose new units are still near-copies has, for now, little more capacity than
# the model it grew from: part of what growth "saves" against training from scratch is that the
# grown model is still partly the small one. Notebook 04's comparison measures the loss, not
# the capacity in use; a fair reading keeps both in mind.
#
# ## 04 · When does growth pay?
#
# **1. Where the compute goes.** $c_p T_p$ for each phase of the grown path at the sweep's largest
# budget, from the preset's models and that budget's phase lengths:

# %%
from growlib.harness.compare import load_results

sweep = load_results()
largest = sweep["budgets"][-1]
sweep_preset = gl.get_preset(sweep["setup"]["preset"])
ts = sweep_preset.train
configs = gl.phase_configs(sweep_preset.model, sweep_preset.growth)
costs = {p: gl.training_flops_per_token(configs[p], ts.seq_len) * n * ts.batch_size * ts.seq_len
         for p, n in zip((1, 2, 3), largest["grown_steps"])}
total = sum(costs.values())
for p, f in costs.items():
    active = gl.param_report(gl.build_model(configs[p], device="meta")).active
    print(f"phase {p}: {active / 1e6:5.3f} M active, {largest['grown_steps'][p - 1]:5d} steps -> {f:.3e} FLOPs "
          f"({100 * f / total:.0f}%)")
print(f"total {total:.3e} FLOPs; the budget: {largest['flops']:.3e}")

# %% [markdown]
# Phase 3 costs the most: per token its model costs several times phase 1's, and the preset gives it
# a quarter of the path's steps.
#
# **2. Compute-optimal.** $C \approx 6ND$ with $D \approx 20N$ gives $C \approx 120N^2$. Here $N$ is an
# *effective* parameter count, a token's training FLOPs divided by 6: it includes attention over the
# context and the head, so it is larger than the count of weights a token passes through.

# %%
for p, name in ((1, "small dense"), (3, "grown")):
    n = gl.training_flops_per_token(configs[p], ts.seq_len) / 6
    print(f"{name:12s} effective N ~ {n / 1e6:.3f} M: compute-optimal at C ~ {120 * n * n:.2e} FLOPs")
budget_flops = ", ".join(f"{b['flops']:.1e}" for b in sweep["budgets"])
print(f"the sweep's budgets: {budget_flops} FLOPs")
if sweep["crossover"]:
    print(f"crossover measured at {sweep['crossover']['flops']:.2e} FLOPs")

# %% [markdown]
# The sweep's budgets run from around the small model's optimum (0.65 TFLOPs) to just below the
# grown model's (25 TFLOPs). Below the crossover the small model from scratch should win, above it
# the grown one: the crossover the sweep measures lies between the two optima, as the rule of thumb
# says it must. (The rule was measured on far larger models; the direction, not the factor, is what
# carries over.)
#
# **3. Real or noise?** The per-seed savings are the `values` of each budget's figures:

# %%
import math
import statistics

smallest = sweep["budgets"][0]
# a seed whose path never reaches the target has no finite saving: the spread leaves it out, so do we
per_seed = [v for v in smallest["saving_vs_small_percent"]["values"] if math.isfinite(v)]
mean, std = statistics.mean(per_seed), statistics.stdev(per_seed)
print(f"saving vs the small model at {smallest['tokens_per_param']:g} tokens/param, per seed: "
      f"{', '.join(f'{v:+.1f}%' for v in per_seed)}")
print(f"by hand: {mean:+.1f} ± {std:.1f}%   (the file: {smallest['saving_vs_small_percent']['mean']:+.1f} ± "
      f"{smallest['saving_vs_small_percent']['std']:.1f}%)")
g, sm = smallest["final_val"]["grown"], smallest["final_val"]["small"]
gap = sm["mean"] - g["mean"]
print(f"final loss: small - grown = {gap:+.4f} nats; larger std {max(g['std'], sm['std']):.4f} -> "
      f"{'separated' if abs(gap) > max(g['std'], sm['std']) else 'not separated'}")

# %% [markdown]
# With three seeds the standard deviation is itself uncertain (its own relative error is about
# $1/\sqrt{2(n-1)} = 50\%$), so "separated by one std" is a rough screen, not a significance test.
#

# %% [markdown]
# ## 05 · Scale out
#
# **1. Four processes for the recipe.** Weights, gradients and AdamW's two moments are 16 bytes a
# parameter; FSDP divides them by the process count; the gathered groups and the activations of
# each process's rows (the recipe's batch over 4, at its sequence length) come on top:

# %%
recipe = gl.get_preset("recipe")
grown_cfg = gl.phase_configs(recipe.model, recipe.growth)[3]
n_params = gl.analytic_params(grown_cfg)[0]
print(f"predicted: 16 x {n_params / 1e9:.3f} B / 4 = {16 * n_params / 4 / 1e9:.2f} GB a process")
rows, seq_len = recipe.train.batch_size // 4, recipe.train.seq_len  # this process's rows of the global batch
plan4 = gl.estimate_memory(grown_cfg, rows, seq_len, shards=4)
print(f"plan ({rows} rows x {seq_len} tokens a process): weights+gradients+AdamW "
      f"{(plan4.model + plan4.gradients + plan4.optimizer) / 1e9:.2f} GB, gathered {plan4.gathered / 1e9:.2f} GB, "
      f"activations {plan4.activations / 1e9:.2f} GB; total {plan4.total / 1e9:.2f} GB (notebook 00's torchrun line)")

# %% [markdown]
# **2. Three processes.** The run refuses before anything starts: the average of the processes'
# mean losses is the whole batch's mean only when every process has the same number of rows
# (otherwise each mean would need its own weight), and 8 rows do not split in three:

# %%
from growlib.parallel.group import Parallel

try:
    Parallel(world=3).check_batch(8)
except ValueError as exc:
    print(exc)

# %% [markdown]
# **3. Forget the counts.** No. Take $E = 4$ experts, $k = 2$: the first half of the batch sends
# every token to experts 0 and 1, the second half to experts 2 and 3, with mean router
# probabilities $P^{(1)} = (0.4, 0.4, 0.1, 0.1)$ and $P^{(2)} = (0.1, 0.1, 0.4, 0.4)$. Each process
# alone sees a badly balanced batch; the whole batch is perfectly balanced:

# %%
E = 4
f_halves = [torch.tensor([0.5, 0.5, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.5, 0.5])]
P_halves = [torch.tensor([0.4, 0.4, 0.1, 0.1]), torch.tensor([0.1, 0.1, 0.4, 0.4])]
own = sum(E * (f * P).sum() for f, P in zip(f_halves, P_halves)) / 2
f_all = sum(f_halves) / 2
whole = sum(E * (f_all * P).sum() for P in P_halves) / 2
print(f"each process with its own counts: {own:.2f};  counts summed over the processes: {whole:.2f} "
      f"(1.00 is perfect balance)")
