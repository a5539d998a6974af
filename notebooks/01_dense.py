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
# # 01 · Phase 1: a dense GPT learns to tell stories
#
# > **Prerequisites.** [Notebook 00](00_overview.ipynb) (the recipe and its parameter count);
# > PyTorch's `nn.Module`, autograd and an optimizer step; attention as softmax of
# > $q \cdot k/\sqrt{d_h}$ over the previous tokens.
# >
# > **Learning objectives.** After this notebook you can
# > - follow a story from text to token ids to the batches a training step reads;
# > - write the pre-LN block and say which of its matrices read the residual stream and which
# >   write it;
# > - derive why rotary position embeddings (RoPE) make an attention score depend only on how
# >   far apart two tokens are, and check it on growlib's `apply_rope`;
# > - read the recipe's training console and the loss curve of phase 1.
# >
# > **Time.** About 3 minutes at full length on a 2-core CPU (last measured: 173 s), nearly all
# > of it training.
# >
# > The words of the series are in the [glossary](glossary.md), its papers in the
# > [references](references.md).
#
# We train the model that everything later grows from: a pre-LayerNorm GPT with rotary
# position embeddings (RoPE), GELU MLPs four times as wide as the model, biases everywhere
# and an output layer that reuses the input embedding ("tied" weights).

# %%
# %matplotlib inline
import growlib as gl
from growlib import harness, plots

# %% [markdown]
# ## The data
#
# The notebooks train on TinyStories (Eldan & Li, 2023): a local copy when
# `GROWLIB_TINYSTORIES_SAMPLE` names one (the course's sample of 4,300 stories; the scripts set it),
# otherwise the whole dataset when the Hugging Face hub or its local cache can serve it, with its
# own validation split. Offline with neither, growlib says so within a second and falls back to
# its own **synthetic** stories: a seeded generator of simple children's stories with characters,
# places, a problem, its resolution and a moral. The line `[data] corpus:` printed below tells you
# which one this run used. `--data` also takes your own `.txt`, `.jsonl` or `.parquet` file,
# or a folder written by `datasets`' `save_to_disk`: every source is read through `datasets`.

# %%
session = harness.notebook_session()  # opens the corpus and names it: the "[data] corpus:" line
for story in session.data.source.documents(2):
    print("\n" + story)

# %% [markdown]
# ## The tokenizer
#
# Text becomes integers through a byte-level BPE: frequent character sequences become single
# tokens. At the `cpu` preset's small vocabulary growlib trains its own BPE on the corpus (cached
# under `data/cache/`); with the recipe's 50,257-token vocabulary on TinyStories it uses GPT-Neo's,
# as TinyStories did.

# %%
text = "Once upon a time, there was a little girl named Lily."
ids = session.data.encode(text)
print(f"{session.data.vocab_size:,} tokens in the vocabulary; {len(text)} characters -> {len(ids)} tokens")
print([session.data.decode([i]) for i in ids.tolist()])

# %% [markdown]
# ## Token files and batches
#
# The corpus is tokenized once (`python -m growlib prepare`, or the first run on it) into one
# flat file of token ids per split, each story followed by `<|endoftext|>`, 2 bytes per token while
# the vocabulary fits in 16 bits. Training reads them through `np.memmap`: the file stays on disk
# and only the windows a batch needs are read, so a run's memory does not grow with the corpus.
# A training batch is `batch_size` windows of `seq_len + 1` tokens at random offsets; the targets
# are the inputs shifted by one token. The offsets come from a generator seeded by
# (random seed, phase, step), so step 7 of phase 1 always sees the same batch, which is what lets
# an interrupted run resume exactly.

# %%
train_ids = session.data.train  # np.memmap, [tokens]
print(f"training tokens: {len(train_ids):,} ({train_ids.dtype}); validation tokens: {len(session.data.val):,}")
x, y = session.data.train_batch(2, seed=0, stream=1, step=7)
print("inputs  ", x[0, :12].tolist())
print("targets ", y[0, :12].tolist())
# the text of the first window, the end-of-text token shown where one story ends and the next begins
print(repr(session.data.tokenizer.decode(x[0, :40].tolist(), skip_special_tokens=False)))

# %% [markdown]
# ## The model
#
# The preset's configuration, its parameters counted two ways (by the tensors, and by hand
# from the config), and the text it writes *before* any training: random tokens.

# %%
import inspect

cfg = session.spec.model
print(cfg)
untrained = gl.build_model(cfg, seed=session.spec.train.seed)
print(gl.count_match_line(untrained))
print("\nbefore training:", harness.sample_text(untrained, session, tokens=30))

# %% [markdown]
# ### The block and the residual stream
#
# The model keeps one vector per position, $x \in \mathbb{R}^d$: the **residual stream**. The
# embedding writes the token's row into it; then each of the $L$ blocks *reads* a normalised copy
# and *adds* what it computes (pre-LN: the LayerNorm sits before each sub-layer, not after):
#
# $$
# x \;\leftarrow\; x + \mathrm{Attn}\bigl(\mathrm{LN}_1(x)\bigr), \qquad
# x \;\leftarrow\; x + \mathrm{MLP}\bigl(\mathrm{LN}_2(x)\bigr), \qquad
# \mathrm{MLP}(u) = W_\text{out}\,\mathrm{GELU}(W_\text{in} u + b_\text{in}) + b_\text{out}.
# $$
#
# LayerNorm centres and rescales a vector, then applies a learned scale and shift:
#
# $$ \mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta, \qquad
# \mu = \tfrac{1}{d}\textstyle\sum_i x_i, \quad \sigma^2 = \tfrac{1}{d}\sum_i (x_i - \mu)^2. $$
#
# So the matrices split into those that **read** the stream (the query, key and value projections
# and $W_\text{in}$, each behind a LayerNorm) and those that **write** it (the attention output
# projection and $W_\text{out}$). Notebook 03 grows each kind by its own rule, and a block whose
# two writers are zero adds nothing: it is the identity. At the end a final LayerNorm and the
# **tied head** turn the stream into logits with the embedding matrix $E \in \mathbb{R}^{V\times d}$
# itself: $\text{logits} = E\,\mathrm{LN}_f(x)$, one score per vocabulary entry. Here is the block's
# forward pass as the library writes it:

# %%
print(inspect.getsource(gl.model.Block.forward))

# %% [markdown]
# ### Where a token is: rotary position embeddings (RoPE)
#
# Attention by itself does not know the order of the tokens: the causal mask tells a token which
# tokens came before it, not how far back each one is. RoPE puts the position into the query and
# the key themselves. Before the scores are computed, the query and the key of the token at
# position $m$ are *rotated*, pair of coordinates by pair, by angles proportional to $m$; the
# values are left alone, and nothing is learned (RoPE has no parameters).
#
# **The rotation.** In a head of width $d_h$, growlib pairs coordinate $i$ with coordinate
# $i + d_h/2$ (the *rotate-half* layout), for $i = 0, \dots, d_h/2 - 1$, and gives pair $i$ the
# frequency $\theta_i = b^{-2i/d_h}$ with $b$ = `rope_theta` = 10,000. At position $m$ the pair
# $q^{(i)} = (q_i,\ q_{i + d_h/2})$ turns by the angle $m\theta_i$:
#
# $$ R(m\theta_i)\,q^{(i)} = \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix}
# \begin{pmatrix} q_i \\ q_{i + d_h/2} \end{pmatrix}. $$
#
# All pairs at once is what `apply_rope` computes, with $\boldsymbol\theta = [\theta_0, \dots, \theta_{d_h/2-1}, \theta_0, \dots, \theta_{d_h/2-1}]$
# repeated over the two halves and $\mathrm{rot}(q) = [-q_{d_h/2:},\ q_{:d_h/2}]$, the two halves swapped and
# the first negated:
#
# $$ \mathrm{rope}(q, m) = q \odot \cos(m\boldsymbol\theta) + \mathrm{rot}(q) \odot \sin(m\boldsymbol\theta). $$
#
# **Why the score depends only on the distance.** A rotation's transpose is the rotation back,
# $R(a)^\top R(b) = R(b - a)$. The score of the query at position $m$ against the key at $n$ is a
# sum over the pairs:
#
# $$ \mathrm{rope}(q, m) \cdot \mathrm{rope}(k, n) = \sum_{i} \bigl(R(m\theta_i)\,q^{(i)}\bigr)^\top R(n\theta_i)\,k^{(i)}
# = \sum_{i} q^{(i)\top} R\bigl((n - m)\,\theta_i\bigr)\,k^{(i)}, $$
#
# a function of $n - m$ alone: the same two vectors score the same at positions (3, 5) as at
# (103, 105). The frequencies run from $\theta_0 = 1$ radian a position, whose pair comes round
# every $2\pi \approx 6.3$ tokens and tells neighbours apart, down to pairs that turn so slowly that
# they change little over the whole context.
#
# Two facts here matter again in notebook 03: a pair joins coordinates $i$ and $i + d_h/2$ *of
# one head*, and its frequency depends on $d_h$. In a head made twice as wide, coordinate $i$
# would be paired with $i + d_h$ and turned at $b^{-i/d_h}$ instead: other pairs, other
# frequencies. That is one reason growth copies heads whole instead of widening them.
#
# The cell below turns every pair by hand, as the matrix above says, and compares with
# `apply_rope`; then it scores one query against one key at every pair of positions.

# %%
import math

import matplotlib.pyplot as plt
import torch

from growlib.model import apply_rope, rope_tables

hd, T, base = cfg.head_dim, cfg.max_seq_len, cfg.rope_theta
cos, sin = rope_tables(hd, T, base)  # [T, hd] each: cos and sin of m * theta, for every position m


def rope_by_pairs(x, m):
    """x: [hd] at position m -> each pair (i, i + hd/2) turned by the angle m * theta_i (a 2 x 2 rotation)."""
    half, out = hd // 2, x.clone()
    for i in range(half):
        angle = m * base ** (-2 * i / hd)
        out[i] = x[i] * math.cos(angle) - x[i + half] * math.sin(angle)
        out[i + half] = x[i] * math.sin(angle) + x[i + half] * math.cos(angle)
    return out


gen = torch.Generator().manual_seed(0)
x = torch.randn(T, hd, generator=gen)  # one vector per position
library = apply_rope(x[None, None], cos, sin)[0, 0]  # apply_rope takes [B, H, T, hd]
by_hand = torch.stack([rope_by_pairs(x[m], m) for m in range(T)])
print(f"apply_rope against the pairs turned by hand: max |Δ| = {(library - by_hand).abs().max():.1e}")

q, k = torch.randn(hd, generator=gen), torch.randn(hd, generator=gen)
Q = apply_rope(q.expand(1, 1, T, hd), cos, sin)[0, 0]  # the same q at every position, [T, hd]
K = apply_rope(k.expand(1, 1, T, hd), cos, sin)[0, 0]
scores = Q @ K.T  # [T, T]: the query at position m (row) against the key at position n (column)
spread = max(float(scores.diagonal(n).max() - scores.diagonal(n).min()) for n in range(-T + 1, T))
print(f"q·k at {T} x {T} pairs of positions: along each diagonal (one n - m) the scores differ by at most "
      f"{spread:.1e}, for scores up to {float(scores.abs().max()):.1f}")
print(f"head width {hd}: pair 0 turns 1 rad a position (period {2 * math.pi:.1f} tokens), pair {hd // 2 - 1} "
      f"{base ** (-(hd - 2) / hd):.2e} rad (period {2 * math.pi * base ** ((hd - 2) / hd):,.0f} tokens); context {T}")

fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
top = float(scores.abs().max())
im = a.imshow(scores, cmap="RdBu_r", vmin=-top, vmax=top)
a.set(xlabel="key position n", ylabel="query position m", title="q·k after RoPE: one value per diagonal")
fig.colorbar(im, ax=a, label="score q·k")
b.plot(range(T), (Q[0] * Q).sum(-1).tolist())
b.set(xlabel="distance between the two positions (tokens)", ylabel="rope(q, 0) · rope(q, distance)",
      title="One vector against itself, further and further apart")
fig.tight_layout()

# %% [markdown]
# **What to notice:** growlib's `apply_rope` is the pairwise rotation written above, to float
# rounding. The score map is constant along every diagonal: the score depends on $n - m$ only
# (the causal mask then keeps the lower triangle, keys at or before the query). A vector scored
# against itself is largest at distance 0, where no pair is turned, and lower, with wiggles from the
# fast pairs, further apart.

# %% [markdown]
# ## Training phase 1
#
# The console output is the recipe's: a banner with the parameter report, then the loss every
# few steps with the time since the phase began. AdamW, a short linear warm-up, cosine decay,
# gradient clipping at 1.0. At the end the model is evaluated on fixed held-out batches (the
# same batches every later phase is measured on) and saved as `dense_model.safetensors`.
# If an earlier run left that checkpoint, it is loaded instead.

# %%
dense = harness.ensure_phase(session, 1)

# %% [markdown]
# ## The training step
#
# Every step of every phase is one call of `gl.train_step`: the forward pass returns the mean
# next-token loss (a MoE adds its router's two auxiliary losses from the same pass), backward
# fills the gradients, they are clipped, and the optimizer updates the weights. Here it is, the
# whole of it; `gl.train_steps` only repeats it over a phase's learning-rate schedule and hands
# each step's result to whoever drives it (the console, the checkpoints, Ctrl-C), printed after it.

# %%
print(inspect.getsource(gl.train_step))
print(inspect.getsource(gl.train_steps))

# %% [markdown]
# ## The loss curve
#
# The loss starts near ln(vocabulary size), the loss of a uniform guess, and falls fast as the
# model learns which tokens are common, then more slowly as it learns grammar and the shape of
# a story. The star is the validation loss on held-out stories: close to the training loss,
# so the model is not memorising.

# %%
plots.plot_loss(session.history.records, title="Phase 1: dense training");

# %% [markdown]
# ## What the trained model writes
#
# Same prompt, same sampling seed as above. Compare with the random tokens before training.

# %%
print(harness.sample_text(dense, session, tokens=80))

# %% [markdown]
# ## The model in Hugging Face transformers
#
# The dense model maps one to one onto transformers' GPT-NeoX (pre-LN blocks, rotate-half RoPE,
# GELU, biases, a tied head): `python -m growlib export RUN_DIR --out DIR` writes a folder that
# `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` open, and checks that
# transformers' logits are growlib's. Exported here from this notebook's own run folder, then
# sampled through transformers' text-generation pipeline:

# %%
import tempfile

from transformers import pipeline, set_seed

from growlib.harness.export import export_command

exported = export_command(session.spec.how.out, tempfile.mkdtemp(prefix="growlib-hf-"))
generate = pipeline("text-generation", model=str(exported), tokenizer=str(exported))
set_seed(0)
print(generate("Once upon a time", max_new_tokens=60, do_sample=True, temperature=0.8, top_k=40)[0]["generated_text"])

# %% [markdown]
# ## Summary
#
# - The corpus became flat token files, read through `np.memmap`, and training batches are random
#   windows of them, the same ones for the same (seed, phase, step).
# - The model is a pre-LN GPT: each block reads a normalised copy of the residual stream and adds
#   its attention's and its MLP's outputs to it. The query, key, value and MLP-in projections read
#   the stream; the attention output and MLP-out projections write it. Notebook 03 grows each kind
#   by its own rule.
# - RoPE turns each pair $(i, i + d_h/2)$ of a head's query and key by $m\,\theta_i$; rotations
#   compose, so every score depends only on how far apart the two tokens are, as the check above
#   confirmed on `apply_rope`.
# - Phase 1 trained this preset's model with AdamW, a warm-up and a cosine decay; its loss fell
#   from about $\ln V$ (a uniform guess) to the validation figure printed above, and every step
#   is the one `train_step` shown.
#
# Next, [notebook 02](02_upcycling.ipynb) upcycles this model into a Mixture-of-Experts. The
# words are in the [glossary](glossary.md), the papers in the [references](references.md).
#
# ## Exercises
#
# Predict first, then measure. Solutions: `99_solutions.ipynb`.
#
# 1. **Count by hand.** Using the formula of notebook 00, count the parameters of this notebook's
#    preset (`session.spec.model`) and compare with `gl.param_report(dense).total`.
# 2. **The first loss.** An untrained model's logits are nearly equal. What loss does that
#    predict for this vocabulary? Measure the loss of `untrained` on one training batch.
# 3. **The cost of phase 1.** With $C \approx 6 N T$, how many FLOPs did phase 1 take
#    ($T$ = steps × batch × sequence length)? Compare with `gl.training_flops_per_token`.
