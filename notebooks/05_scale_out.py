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
# run* as one process: the same losses up to float rounding (a few units in the last place of a
# float32), and why not closer. Then it looks at what each process holds before and after growth.
#
# **The idea.** Every process draws the same global batch of $B$ rows and trains on its own
# $B/N$ of them. FSDP2 splits each block's weights, gradients and AdamW moments by rows (their
# first dimension) among the $N$ processes; a block's full weights exist only while it computes
# (gathered from all processes just before, freed after), and its gradients are **averaged**
# over the processes and split again: one reduce-scatter whose operation is the average
# (FSDP2's default), after which each process holds the mean gradient of its own slice.

# %% [markdown]
# > **Prerequisites.** Notebooks 01-03 (the three phases and their transitions) and 00's memory
# > plan. No GPU: the processes run on this CPU with the gloo backend.
# >
# > **Learning objectives.** After this notebook you can
# > - show why $N$ processes on $B/N$ rows each, with their gradients averaged, compute the whole
# >   batch's gradient, and why the balance loss needs the expert counts summed over them;
# > - launch a run on several processes with `torchrun` and compare it with one process, reading
# >   the differences in units of float32 rounding;
# > - explain how a model grows while it is sharded (gathered on rank 0, grown, shared out again);
# > - estimate the memory each FSDP process needs for the recipe's phase 3.
# >
# > **Time.** About 1½ minutes at full length on a 2-core CPU (two runs of the tiny preset, one of
# > them on two processes, and `growlib.parallel.show`).
# >
# > Terms: [glossary](glossary.md); papers: [references](references.md).

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
import numpy as np

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
# processes' gradients, as FSDP2's reduce-scatter does, gives
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
# CPU); then the step lines each run printed, side by side.

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


def step_lines(stdout: str) -> list[tuple[int, int, str]]:
    """(phase, step, loss as printed) for every step line of a run's output ("  step   10 | loss 5.9 | 0.4s")."""
    phase, rows = 0, []
    for line in stdout.splitlines():
        if line.strip().startswith("Phase ") and "—" in line:  # a phase's banner: "  Phase 2 — MoE"
            phase = int(line.split()[1])
        elif line.startswith("  step") and "| loss" in line:
            step, loss = line.split("|")[:2]
            rows.append((phase, int(step.split()[1]), loss.split()[1]))
    return rows


print(f"phase  step   loss: {'   '.join(commands)}")
for (phase, step, loss_one), (_, _, loss_two) in zip(*(step_lines(logs[label]) for label in commands)):
    print(f"{phase:5d} {step:5d}         {loss_one:>9}   {loss_two:>19}")


# %%
def history(folder: Path) -> list[dict]:
    return [json.loads(l) for l in (folder / "training_history.jsonl").read_text().splitlines() if l.strip()]


def ulp(value: float) -> float:
    """One unit in the last place of a float32 near ``value``: the gap to the next float32."""
    return float(np.spacing(np.float32(abs(value))))


one, two = history(work / "one"), history(work / "two")
for key in ("loss", "aux_loss", "z_loss", "eval_loss"):
    pairs = [(a[key], b[key]) for a, b in zip(one, two) if key in a]
    largest = max(abs(a - b) for a, b in pairs)
    units = max(abs(a - b) / ulp(a) for a, b in pairs)
    print(f"largest |difference| in {key:<9}: {largest:.1e} nats; at most {units:.1f} units in a float32's last place")

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
# The differences are float rounding. A float32 keeps 24 significant bits: between 4 and 8 one unit
# in the last place is $2^{-21} \approx 4.8\times10^{-7}$, between 1 and 2 (the balance loss) it is
# $2^{-23} \approx 1.2\times10^{-7}$, and the cell counts the differences in those units. Their
# cause is the order of the additions: one process takes one mean over $B$ rows, two processes
# take a mean over $B/2$ rows each and then average the two. Those are the same numbers added in
# another order, and float addition is not associative ($(a + b) + c$ and $a + (b + c)$ can differ
# in the last bit), so the first losses and gradients differ by a unit in the last place or so.
# From the first update on, the weights themselves differ by rounding, so a later loss can differ
# by several units (the z-loss, a mean of squared log-sum-exps, can collect more). (`eval_loss` is
# a mean over several batches taken in float64, so its units need not be whole.)
#
# **Could such a difference grow?** Not through AdamW and the router at upcycling. Right after
# upcycling the language-model loss's gradient at the router is rounding-sized, since the
# experts are identical, but the balance loss's gradient is not: notebook 02 measured it many
# orders of magnitude larger. The router's first steps therefore follow the balance loss, which
# both runs compute alike to rounding. What *can* part two runs is routing's discreteness: a
# token whose $k$-th and $(k+1)$-th scores are closer than a rounding can go to different experts
# in the two runs, and from then on the experts' gradients differ by that token's whole
# contribution, not by a rounding. Near-ties that close are rare; a drift would show in the
# right panel as a rising line, where this run's differences stay at the units printed.
# `tests/test_parallel.py` checks the same agreement, within $10^{-6}$ nats (balance and z-losses
# included), for FSDP and DDP, against one process that trains each global batch as two
# accumulated micro-batches.
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
# gradients) and $A$ the activations of its rows. For the recipe's phase 3, at the recipe's batch
# and sequence length (read from the preset: the question notebook 00's recommendations answer
# in their `torchrun` lines, with the same plan):

# %%
recipe = gl.get_preset("recipe")
grown = gl.phase_configs(recipe.model, recipe.growth)[3]
batch, seq_len = recipe.train.batch_size, recipe.train.seq_len  # the global batch: rows x tokens
counts = [1, 2, 4, 8]
plans = [gl.estimate_memory(grown, batch // n, seq_len, shards=n) for n in counts]  # each process: batch / n rows
print(f"recipe phase 3, a global batch of {batch} rows x {seq_len} tokens, fp32 AdamW:")
for n, plan in zip(counts, plans):
    print(f"{n} process{'es' if n > 1 else '  '}: {plan.total / 1e9:5.1f} GB each "
          f"(weights+gradients+AdamW {(plan.model + plan.gradients + plan.optimizer) / 1e9:5.1f}, "
          f"gathered {plan.gathered / 1e9:4.1f}, activations {plan.activations / 1e9:4.1f})")
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.bar([str(n) for n in counts], [p.total / 1e9 for p in plans], color="tab:blue")
ax.axhline(24 * 0.9, color="tab:red", ls="--", label="a 24 GB device, 10% kept free")
ax.set(xlabel="FSDP processes", ylabel="GB per process",
       title=f"Recipe phase 3 ({gl.analytic_params(grown)[0] / 1e9:.2f} B parameters), AdamW, {batch} x {seq_len} tokens")
ax.legend()
plt.show()

# %% [markdown]
# Measured on this course's 2-core CPU (`python -m growlib bench dist`, the cpu preset's grown
# MoE): each of two FSDP processes peaked at 1.07-1.09 GB against a plan of 1.16 GB; one process
# at 1.71 GB against 1.70. Gloo on a CPU is a correctness path, not a speed path: two processes on
# two cores are slower than one process using both (4.1 s a step against 1.9 s).
#
# ## The papers
#
# - ZeRO: Rajbhandari et al., *ZeRO: Memory Optimizations Toward Training Trillion Parameter
#   Models*, SC 2020, <https://arxiv.org/abs/1910.02054> (weights, gradients and optimizer states
#   split among the processes: what FSDP does).
# - PyTorch FSDP: Zhao et al., *PyTorch FSDP: Experiences on Scaling Fully Sharded Data
#   Parallel*, VLDB 2023, <https://arxiv.org/abs/2304.11277>.
# - Switch Transformer: Fedus, Zoph and Shazeer, JMLR 2022, <https://arxiv.org/abs/2101.03961>
#   (the load-balancing loss whose counts the processes sum).
#
# Every paper of the series: [references](references.md).
#
# ## Summary
#
# - $N$ processes on $B/N$ rows each, with their gradients averaged, compute the whole batch's
#   gradient; the balance loss, a product of two batch averages, needs one more step: the expert
#   counts summed over the processes.
# - FSDP2 splits every weight, gradient and AdamW moment by its first dimension; a block's full
#   weights exist only while it computes.
# - A sharded model grows by being gathered on rank 0, grown and verified there as in one
#   process, then shared out again.
# - Two processes log the losses of one up to float rounding (a few units in the last place of a
#   float32), because the same sums are added in another order; routing's near-ties are what
#   could part the runs, not AdamW acting on the router's gradient.
# - Memory per process falls as $16P/N$ plus the gathered groups and the activations of its
#   rows: by the plan, the recipe's phase 3 fits a 24 GB device from 4 processes on, as in
#   notebook 00's recommendations.
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
