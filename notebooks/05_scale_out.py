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
# # 05 · Scale out: the same run across processes, with FSDP2
#
# The recipe's phase 3 is a 2.16 B-parameter MoE. Trained with AdamW in fp32 it needs 16 bytes a
# parameter before a single activation (weights 4, gradients 4, two moments 8): about 35 GB, more
# than one 24 GB device holds. This notebook trains the series across several processes with
# PyTorch's own tools, `torchrun` and FSDP2 (`fully_shard`), and checks that it computes *the same
# run*: the same losses, to the bit, as one process. Then it looks at what each process holds
# before and after growth.
#
# **The idea.** Every process draws the same global batch of $B$ rows and trains on its own
# $B/N$ of them. FSDP2 splits each block's weights, gradients and AdamW moments by rows (their
# first dimension) among the $N$ processes; a block's full weights exist only while it computes
# (gathered from all processes just before, freed after), and its gradients are summed across
# processes and split again (reduce-scatter).

# %%
# %matplotlib inline
import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import growlib as gl
from growlib import harness
from growlib.parallel.group import Parallel
from growlib.parallel.sharding import distribute

# %% [markdown]
# ## Why the gradient is the same
#
# The loss of a step is the mean over the $B$ rows' token losses $\ell_i$. Split the rows into
# $N$ equal sets $S_1, \dots, S_N$ of $B/N$ rows, one per process. Process $r$ computes the mean
# over its own rows, $L_r = \frac{N}{B}\sum_{i \in S_r} \ell_i$, and its gradient. Averaging the
# processes' gradients gives
#
# $$ \frac{1}{N}\sum_{r=1}^{N} \nabla L_r = \frac{1}{N}\sum_{r=1}^{N} \frac{N}{B}\sum_{i\in S_r}\nabla\ell_i
#    = \frac{1}{B}\sum_{i=1}^{B}\nabla \ell_i = \nabla L , $$
#
# the gradient of the whole batch. The same holds for the router's z-loss (a mean over tokens).
# The Switch balance loss does not split that way: it is a *product* of two batch averages,
#
# $$ L_\text{bal} = E\sum_{e=1}^{E} f_e\,P_e ,\qquad f_e = \frac{\text{tokens sent to } e}{k\,T},
#    \qquad P_e = \frac{1}{T}\sum_{t} p_e(x_t) . $$
#
# $f_e$ is a count (no gradient flows through it), $P_e$ is linear in the tokens. So each process
# sums its expert counts with the others' (one all-reduce of $E$ integers per layer) to get the
# whole batch's $f_e$, and keeps its own $P^{(r)}_e$: averaging $E\sum_e f_e P^{(r)}_e$ over the
# processes gives $E\sum_e f_e \frac{1}{N}\sum_r P^{(r)}_e = L_\text{bal}$, value and gradient.
# Here is each process's share of the batch, and the line of `growlib.moe` that sums the counts:

# %%
print(inspect.getsource(Parallel.rows))
source = inspect.getsource(gl.MoE._aux_terms)
print(source[:source.index("        frac_probs")])

# %% [markdown]
# ## Growth while sharded
#
# Growth changes every shape, and a sharded model cannot change shape in place (nor can a sharded
# checkpoint). Between phases the model is gathered into full tensors on rank 0 only, grown and
# verified there exactly as in one process, then shared out again: every process builds the new
# model on the meta device (shapes, no memory), shards it, allocates only its own slices, and
# receives them from rank 0.

# %%
print(inspect.getsource(distribute))

# %% [markdown]
# ## The check: two processes against one
#
# `torchrun` starts the processes; each runs `python -m growlib run` and joins the group from the
# environment torchrun sets. Two runs of the tiny preset, one process and two (FSDP2, gloo on a
# CPU); then their logged losses side by side.

# %%
steps = harness.steps_override()  # CI shortens every phase
data = harness.tinystories_sample() or "bundled"
common = ["-m", "growlib", "run", "--preset", "tiny", "--data", data, "--overwrite"]
common += ["--steps", str(steps)] if steps else []
work = Path(tempfile.mkdtemp(prefix="growlib-05-"))
env = {**os.environ, "PYTHONUNBUFFERED": "1"}
commands = {"1 process": [sys.executable, *common, "--out", str(work / "one")],
            "2 processes (FSDP2)": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc-per-node", "2", *common, "--out", str(work / "two")]}
logs = {}
for label, command in commands.items():
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    logs[label] = done.stdout
    print(f"{label}: {done.stdout.count('BOUNDARY SUMMARY')} BOUNDARY SUMMARY, "
          f"{sum(l.startswith('  step') for l in done.stdout.splitlines())} step lines")
print("\n".join(logs["2 processes (FSDP2)"].splitlines()[:12]))


# %%
def history(folder: Path) -> list[dict]:
    return [json.loads(l) for l in (folder / "training_history.jsonl").read_text().splitlines() if l.strip()]


one, two = history(work / "one"), history(work / "two")
diffs = {key: max(abs(a[key] - b[key]) for a, b in zip(one, two) if key in a)
         for key in ("loss", "aux_loss", "z_loss", "eval_loss")}
for key, d in diffs.items():
    print(f"largest |difference| in {key:<9}: {d:.1e}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
for records, label, style in ((one, "1 process", "-"), (two, "2 processes (FSDP2)", "--")):
    rows = [r for r in records if "loss" in r]
    ax1.plot(range(len(rows)), [r["loss"] for r in rows], style, label=label)
ax1.set(xlabel="logged step (phases 1, 2, 3 in turn)", ylabel="training loss (nats)", title="The same run")
ax1.legend()
pairs = [(a, b) for a, b in zip(one, two) if "loss" in a]
ax2.plot(range(len(pairs)), [abs(a["loss"] - b["loss"]) for a, b in pairs], "o-")
ax2.set(xlabel="logged step", ylabel="|difference| (nats)", title="1 process vs 2 processes")
fig.tight_layout()
plt.show()

# %% [markdown]
# The differences are float rounding: the whole batch's sums are added up in another order when
# they are split in two. `tests/test_parallel.py` removes even that: its reference is one process
# that trains each global batch as two accumulated micro-batches, the same sums in the same order,
# and the two runs' losses are then equal to the bit. Why insist? Right after upcycling, the
# experts are identical, so the language-model loss does not depend on the router at all: its
# gradient there is exactly zero, and what a computer gets is rounding noise. AdamW divides each
# step by the gradient's running size, so that noise becomes full-size steps, and two runs that
# round differently route differently a few steps later. On this run the differences stayed at
# rounding size; on the embedded corpus, 10 steps a phase, we measured them growing to 1e-3 nats
# by phase 3.
#
# ## What each process holds
#
# `growlib.parallel.show` shards the tiny MoE over two processes, prints each one's slice of a
# few weights, grows the model (gathered to rank 0, grown, sharded again) and prints them again:

# %%
show = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                       "-m", "growlib.parallel.show"], env=env, capture_output=True, text=True)
assert show.returncode == 0, show.stderr[-2000:]
print(show.stdout)

# %% [markdown]
# Every weight is split along its first dimension: the embedding by vocabulary rows, an attention
# matrix by output rows, the stacked experts by expert (two of the four on each process).
#
# ## Memory per process
#
# With $P$ parameters, $N$ FSDP processes and $B/N$ rows each, a process holds
#
# $$ M_r \approx \frac{(4 + 4 + 8)\,P}{N} + G + A(B/N) + \text{runtime}, $$
#
# $G$ the groups gathered while they compute (the root's embedding and two blocks, weights and
# gradients) and $A$ the activations of its rows. For the recipe's phase 3:

# %%
recipe = gl.get_preset("recipe")
grown = gl.phase_configs(recipe.model, recipe.growth)[3]
counts = [1, 2, 4, 8]
plans = [gl.estimate_memory(grown, 8 // n, 512, shards=n) for n in counts]
for n, plan in zip(counts, plans):
    print(f"{n} process{'es' if n > 1 else '  '}: {plan.total / 1e9:5.1f} GB each "
          f"(weights+gradients+AdamW {(plan.model + plan.gradients + plan.optimizer) / 1e9:5.1f}, "
          f"gathered {plan.gathered / 1e9:4.1f}, activations {plan.activations / 1e9:4.1f})")
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.bar([str(n) for n in counts], [p.total / 1e9 for p in plans], color="tab:blue")
ax.axhline(24 * 0.9, color="tab:red", ls="--", label="a 24 GB device, 10% kept free")
ax.set(xlabel="FSDP processes", ylabel="GB per process", title="Recipe phase 3 (2.16 B parameters), AdamW")
ax.legend()
plt.show()

# %% [markdown]
# Measured on this course's 2-core CPU (`python -m growlib bench dist`, the cpu preset's grown
# MoE): each of two FSDP processes peaked at 1.07-1.09 GB against a plan of 1.16 GB; one process
# at 1.71 GB against 1.70. Gloo on a CPU is a correctness path, not a speed path: two processes on
# two cores are slower than one process using both (4.1 s a step against 1.9 s).
#
# ## Exercises
#
# 1. **Four processes for the recipe.** Predict, with the formula above, how many GB each of 4
#    FSDP processes needs for the recipe's phase 3 without the activations, then compare with
#    `gl.estimate_memory(..., shards=4)`.
# 2. **Three processes.** The tiny preset trains batches of 8 rows. What does
#    `torchrun --nproc-per-node 3 -m growlib run --preset tiny` do, and why must it?
# 3. **Forget the counts.** If every process used its own expert counts in the balance loss,
#    would the two-process run still log the one-process losses? Predict the balance loss of a
#    batch whose two halves route all their tokens to different experts.
