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
# # 00 · Growing a language model: the plan
#
# > **Prerequisites.** Python and PyTorch; what a transformer block is (attention, an MLP,
# > LayerNorm, residual connections). Nothing is trained here: this notebook only counts.
# >
# > **Learning objectives.** After this notebook you can
# > - say what each of the series' three phases does to the model, and why each transition is
# >   meant to leave its function unchanged;
# > - name real models that were grown or upcycled, and the condition under which growth pays;
# > - count a GPT's parameters by hand and check the count against its tensors;
# > - tell a Mixture-of-Experts' total parameters from its active ones, and estimate training
# >   compute as $6\,N_\text{active}$ FLOPs per token;
# > - estimate the memory that training each phase needs, and pick a way to fit it.
# >
# > **Time.** Under a minute at full length on a 2-core CPU (last measured: 13 s).
# >
# > The words of the series are in the [glossary](glossary.md), its papers in the
# > [references](references.md), and every rule of upcycling and growth, tensor by tensor, in
# > the [rule table](rules.md).

# %% [markdown]
# This series trains a small GPT on children's stories and then makes it **bigger without
# starting over**:
#
# 1. **Dense** (notebook 01): a GPT with RoPE, GELU MLPs and tied embeddings learns the stories.
# 2. **MoE** (notebook 02): each MLP is *upcycled* into 8 copies (experts) and a router picks 2
#    of them per token. At the moment of upcycling the model computes exactly the same function;
#    training then lets the experts specialise.
# 3. **Bilateral growth** (notebook 03): the MoE becomes twice as wide and 4 layers deeper, again
#    without changing what it computes, verified layer by layer, and training continues.
#
# ## Why grow instead of training the big model from scratch?
#
# A big model trained from scratch spends its first thousands of steps learning what a small
# model learns far more cheaply: spelling, grammar, who the characters are. Growth hands that
# knowledge to the big model at its first step. It has been done at scale:
#
# - **Depth, with identity blocks.** LLaMA Pro grew LLaMA2-7B into an 8.3 B model by inserting
#   copies of its blocks whose output projections are zero, so the grown model started as the old
#   one; only the new blocks were then trained, on code and mathematics, and the old model's
#   general abilities were kept. Notebook 03 grows depth with the same identity blocks.
# - **Depth, by stacking.** G_stack stacked a small model's layers into a 7 B model, which reached
#   the loss of a 7 B model trained from scratch on 300 B tokens after 194 B.
# - **Experts, by upcycling.** Qwen1.5-MoE-A2.7B (14.3 B parameters, 2.7 B of them active per
#   token) was upcycled from the dense Qwen-1.8B and matched the dense Qwen1.5-7B at a quarter of
#   its training cost. (Qwen cut the dense MLP into smaller experts; notebook 02 does the plain
#   version, every expert a whole copy.) LEMON and bert2BERT, which grow BERT-sized models,
#   report 33-57% of the compute saved.
#
# **When does it pay?** Not always. A study of warm-starting language models from smaller ones
# (Mallik et al., 2026) found the speed-ups most reliable when the model grows about ×2, largest
# at budgets under about 20 training tokens per parameter and shrinking as the budget grows; beyond
# some growth factor, training from scratch was the more efficient. And "cheaper than the big
# model from scratch" is only half the question: the other half is "better than the small model
# trained from scratch on the same compute?". Notebook 04 asks both of this series' models, with
# baselines tuned on their own and several random seeds.
#
# **The recipe.** The series follows one specification of this three-phase run, which we call
# *the recipe*: a dense GPT of exactly 100,038,016 parameters (d_model 832, 7 layers, 8 heads,
# GPT-Neo's 50,257-token vocabulary), upcycled to 8 experts with top-2 routing, then grown ×2
# in width and +4 in depth, with its console format, checkpoints and memory table. The preset
# `recipe` has its sizes. (A *seed*, in code and text alike, is only ever a random seed.)
#
# This notebook trains nothing and reads no corpus. It counts: how many parameters each phase
# has, how many a token actually uses, and how much memory training each phase needs. Notebooks
# 01-03 print the corpus they train on (real TinyStories text where this machine has it, otherwise
# growlib's bundled synthetic stories, labelled so).

# %%
# %matplotlib inline
import growlib as gl
from growlib import harness, plots

# %% [markdown]
# ## The recipe's three models, counted on the meta device
#
# `build_model(cfg, device="meta")` creates every tensor's *shape* without its memory, so the
# 2-billion-parameter phase-3 model is counted instantly. Each count is checked against a
# hand count from the config (`match: True`), the habit of nanoGPT's sizing notebook.

# %%
recipe = gl.get_preset("recipe")
for line in gl.budget_table(recipe.model, recipe.growth):
    print(line)

# %% [markdown]
# ### The dense model's parameters, by hand
#
# Write $V$ for the vocabulary (50,257), $d$ for the model width (832), $h$ for the MLP's hidden
# width ($4d$ = 3,328) and $L$ for the number of blocks (7). Every linear layer has a weight and a
# bias; every LayerNorm a scale $\gamma$ and a shift $\beta$ of $d$ numbers each; RoPE has no
# parameters; the output head reuses the embedding matrix (tied), so it adds none.
#
# $$
# \begin{aligned}
# N_\text{embedding} &= V d \\
# N_\text{attention} &= 4\,(d^2 + d) && \text{(query, key, value, output projection)} \\
# N_\text{MLP} &= (d h + h) + (h d + d) && \text{(in and out projection)} \\
# N_\text{LayerNorms} &= 2 \cdot 2d && \text{(one before attention, one before the MLP)} \\
# N &= V d + L\,\bigl(4d^2 + 2dh + 9d + h\bigr) + 2d && \text{(the final LayerNorm: } 2d)
# \end{aligned}
# $$
#
# With the recipe's numbers: $50{,}257 \cdot 832 = 41{,}813{,}824$ for the embedding,
# $4 \cdot 832^2 + 2 \cdot 832 \cdot 3{,}328 + 9 \cdot 832 + 3{,}328 = 8{,}317{,}504$ per block,
# so $41{,}813{,}824 + 7 \cdot 8{,}317{,}504 + 1{,}664 = 100{,}038{,}016$. The cell below does the same
# sum term by term and compares it with the tensors of the model itself.

# %%
c = recipe.model
d, h, V, L = c.d_model, c.d_mlp, c.vocab_size, c.n_layers
terms = {
    "embedding (tied with the head)": V * d,
    "attention, per block": 4 * (d * d + d),
    "MLP, per block": (d * h + h) + (h * d + d),
    "LayerNorms, per block": 2 * 2 * d,
    "final LayerNorm": 2 * d,
}
per_block = terms["attention, per block"] + terms["MLP, per block"] + terms["LayerNorms, per block"]
by_hand = terms["embedding (tied with the head)"] + L * per_block + terms["final LayerNorm"]
for name, n in terms.items():
    print(f"{name:32s} {n:>12,}")
print(f"{'one block':32s} {per_block:>12,}")
by_tensors = sum(p.numel() for p in gl.build_model(c, device="meta").parameters())
print(f"{'total by hand':32s} {by_hand:>12,}\n{'total from the tensors':32s} {by_tensors:>12,}   equal: {by_hand == by_tensors}")

# %% [markdown]
# ### What a training step costs: $6 N$ FLOPs per token
#
# A weight $w$ that multiplies an input $x$ costs one multiply and one add per token in the
# forward pass: 2 FLOPs. The backward pass needs two products of the same size, the gradient
# for the input ($\partial L/\partial x = w\,\partial L/\partial y$, passed on to the layer below)
# and the gradient for the weight ($\partial L/\partial w = x\,\partial L/\partial y$): 4 FLOPs.
# So training costs about
#
# $$ C \approx 6\,N_\text{active}\,T $$
#
# FLOPs for $T$ training tokens, where $N_\text{active}$ counts the weights a token actually
# passes through (for a MoE, $k$ of its $E$ experts; the embedding lookup is free, but the tied
# head is a $d \times V$ product and counts). Attention adds $4\,T_\text{ctx}\,d$ forward FLOPs
# per token and layer for the scores and the weighted values, times 3 with the backward pass.
# Notebook 04 measures growth's saving in these units.

# %% [markdown]
# **Read the table.** The dense model has exactly 100,038,016 parameters ("100.04 M"), the MoE
# 371.64 M of which a token uses 138.88 M (2 of 8 experts in each of 7 layers: 42 experts sit
# idle for any one token). The recipe's *Efficiency* column is that active fraction, active
# divided by total parameters: not a speed. The last line is the honest one:

# %%
reports = gl.phase_reports(recipe.model, recipe.growth)
print(gl.recipe_discrepancy_line(reports[3]))

# %% [markdown]
# The recipe's text promised ~1.47 B parameters for phase 3. But doubling the width roughly
# **quadruples** every weight matrix (both sides double) and the 4 extra layers add 4/7 more:
# 371.64 M becomes 2,155,790,208 parameters, of which 693,264,000 are active (32.2%: the shared
# attention and embedding weights are a smaller share now). We print the truth.
#
# ## The budget as a chart
#
# Blue is what one token passes through; grey is the experts it skips. Look at how the grey
# part (capacity that costs memory but not compute) grows faster than the blue.

# %%
plots.plot_budget(reports, title="The recipe's three phases");

# %% [markdown]
# ## Memory: will it fit?
#
# Training in fp32 with AdamW needs, per parameter, 4 bytes for the weight, 4 for its gradient
# and 8 for the optimizer's two moments: 16 bytes. Activations (what the forward pass keeps for
# the backward pass) come on top and grow with batch × sequence length.
#
# A run that trains on a plain CPU adds two lines to the table below, the runtime's memory and the
# C heap's slack; the appendix [Memory on a CPU](../docs/memory-on-a-cpu.md) explains them.

# %%
configs = gl.phase_configs(recipe.model, recipe.growth)
available = harness.system_memory_bytes()
plans = {p: gl.estimate_memory(c, recipe.train.batch_size, recipe.train.seq_len) for p, c in configs.items()}
for p, plan in plans.items():
    print("\n".join(plan.lines(f"phase {p}", available)))
plots.plot_memory(plans, available);

# %% [markdown]
# **What to notice:** phases 1 and 2 fit easily. Phase 3, at 2.16 B parameters, needs far more
# than a 24 GB laptop has: the recipe's table (~24 GB) was computed for its mistaken 1.47 B
# figure. The recipe's own fallbacks help: width ×1.5 instead of ×2, +2 layers instead of +4,
# batch 4 instead of 8. Below, each is worked out for 24 GB, together with growlib's *lean mode*
# (`python -m growlib run --lean`): Adafactor instead of AdamW (its second moment is factored
# into a row and a column per matrix, no first moment), each parameter updated inside the
# backward pass the moment its gradient is ready (so the gradients never all exist at once),
# and gradient checkpointing (blocks recompute their insides during backward).

# %%
for line in harness.recommendations(recipe.model, recipe.growth, recipe.train.batch_size, recipe.train.seq_len, 24e9):
    print(line)
lean = gl.estimate_memory(configs[3], recipe.train.batch_size, recipe.train.seq_len, lean=True)
print("\n".join(lean.lines("phase 3, lean mode", 24e9)))

# %% [markdown]
# Try the fallbacks in the explorer below.
#
# ## Explorer: change the growth plan
#
# The figure below is drawn with the recipe's defaults. When you run this notebook yourself,
# the sliders under it redraw both charts (no training happens, only counting).

# %%
import ipywidgets as widgets


def explore(scale_factor=2.0, extra_layers=4, n_experts=8, top_k=2, batch=8):
    top_k = min(top_k, n_experts)
    growth = gl.GrowthConfig(n_experts=n_experts, top_k=top_k, scale_factor=scale_factor, extra_layers=extra_layers)
    return plots.budget_and_memory_figure(recipe.model, growth, batch, recipe.train.seq_len, available)


explore();  # the static figure, at the recipe's defaults

# %% [markdown]
# The explorer draws with the same `explore` function, again at each change of a slider.

# %%
gl.explorer(explore, dict(
    scale_factor=widgets.SelectionSlider(options=[1.0, 1.5, 2.0, 3.0], value=2.0, description="width ×"),
    extra_layers=widgets.IntSlider(value=4, min=0, max=8, description="+ layers"),
    n_experts=widgets.IntSlider(value=8, min=2, max=16, description="experts"),
    top_k=widgets.IntSlider(value=2, min=1, max=4, description="top-k"),
    batch=widgets.SelectionSlider(options=[1, 2, 4, 8, 16], value=8, description="batch"),
))

# %% [markdown]
# ## What this machine will run
#
# The notebooks pick a preset for the machine they run on: the recipe's sizes on a GPU or an
# Apple-silicon Mac, and the small `cpu` preset on a plain CPU, where all three phases finish
# in minutes. The `cpu` preset keeps the recipe's shape (×2 width, +4 layers, 8 experts, top-2)
# at a size a CPU can train.

# %%
name = gl.default_preset()
preset = gl.get_preset(name)
print(f"preset for this machine: {name!r} ({preset.description})")
for line in gl.budget_table(preset.model, preset.growth)[:5]:
    print(line)

# %% [markdown]
# ## Is this machine ready?
#
# `python -m growlib doctor` checks what the notebooks need, one line per item: OK, WARN (the
# notebooks run, but read the fix), or FAIL (something is missing; the fix says what to install
# or set). Here is its answer on the machine that ran this notebook:

# %%
from growlib.harness import doctor

doctor.main();

# %% [markdown]
# ## Summary
#
# - The series grows one model in three phases: dense, then a Mixture-of-Experts by upcycling,
#   then wider and deeper by growth. Each transition is built to leave the model's function
#   unchanged, so training goes on from where it was.
# - Growth and upcycling are used at scale (LLaMA Pro, G_stack, Qwen1.5-MoE). Whether they pay
#   depends on the growth factor and the budget; notebook 04 measures it against both the big
#   model from scratch and the small model from scratch, for the same compute.
# - A GPT's parameters count by hand, $N = Vd + L(4d^2 + 2dh + 9d + h) + 2d$, to the exact number
#   of its tensors: 100,038,016 for the recipe's dense model.
# - A MoE's total parameters grow much faster than its active ones, and compute follows the active
#   ones, $C \approx 6\,N_\text{active}\,T$. The recipe's phase 3 has 2,155,790,208 parameters, 693,264,000
#   of them active, not the 1.47 B its text gives.
# - Training with AdamW in fp32 needs 16 bytes a parameter before any activation: the recipe's
#   phase 3 does not fit in 24 GB that way. Lean mode does, and so do the recipe's fallbacks
#   combined (×1.5 width, +2 layers, batch 4) and FSDP over 4 processes: the options above print
#   each one's total.
#
# Next, [notebook 01](01_dense.ipynb) trains phase 1. The words are in the
# [glossary](glossary.md), the papers in the [references](references.md), the growth rules in the
# [rule table](rules.md).
