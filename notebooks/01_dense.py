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
# places, a problem, its resolution and a moral. The line printed below tells you which one this
# run used. `--data` also takes your own `.txt`, `.jsonl` or `.parquet` file,
# or a folder written by `datasets`' `save_to_disk`: every source is read through `datasets`.

# %%
session = harness.notebook_session()
source = session.data.source
print(f"\ncorpus: {source.label}")
for story in source.documents(2):
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
# ## What this notebook showed
#
# The corpus became token files and random windows of them; a pre-LN GPT of
# this preset's size learned from them, its loss falling from about $\ln V$ (a uniform guess) to
# the validation figure printed above; and every step is the one `train_step` shown.
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
