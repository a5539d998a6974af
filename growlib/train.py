"""Training: the step, the learning-rate schedule, and the loop that trains one phase.

Taught in notebook 01. :func:`train_step` is the whole of one update: forward,
loss, backward, optimizer step. :func:`train_phase` repeats it over a phase's
schedule, logs the recipe's step lines and the history file, and calls the
hooks a caller gave it (checkpoints, Ctrl-C, a validation curve). The same loop
trains the dense model (phase 1), the upcycled MoE (phase 2, where the router's
auxiliary losses join the loss) and the grown model (phase 3, after a fresh
optimizer and a short re-warm-up).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from .accounting import training_flops_per_token
from .config import TrainConfig
from .data import TokenData
from .device import accelerator_peak_flops, autocast_for
from .lean import OptimizerInBackward
from .model import GPT
from .parallel.group import SINGLE, Parallel

# a logged loss is a spike when it is this much above the lowest logged loss of its phase:
SPIKE_RATIO = 1.3  # 30% above it,
SPIKE_NATS = 0.5  # and at least half a nat above it (so that a low loss's small wobble is not one)


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite (the command prints it as one line and exits non-zero)."""


class RunInterrupted(Exception):
    """Ctrl-C between two steps: a checkpoint was written; ``next_step`` is where to resume."""

    def __init__(self, phase: int, next_step: int) -> None:
        super().__init__(f"interrupted in phase {phase} before step {next_step}")
        self.phase, self.next_step = phase, next_step


# ---------------------------------------------------------------- the optimizer and its schedule

def make_optimizer(model: GPT, lr: float, weight_decay: float, device: str) -> torch.optim.Optimizer:
    """AdamW, decaying matrices only (not biases, LayerNorms); fused where the device has it."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device.split(":")[0] in ("cpu", "cuda", "mps")
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=fused)
    except (RuntimeError, TypeError):  # an older torch without a fused kernel for this device
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group; a group's ``lr_scale`` (lean mode) multiplies it."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def lr_at(step: int, total: int, peak: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``min_ratio * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@dataclass(frozen=True)
class PhaseSchedule:
    """What one phase trains for: its steps, its learning rate, and which batches it draws.

    ``stream`` picks the stream of training batches (:meth:`TokenData.train_batch`); the
    recipe's phase N draws stream N, and a baseline that should see the same data as a
    phase names that phase's stream.
    """

    phase: int  # the phase number written in history records
    steps: int
    peak_lr: float
    warmup: int
    min_lr_ratio: float
    stream: int

    @classmethod
    def of(cls, cfg: TrainConfig, phase: int) -> "PhaseSchedule":
        """The recipe's schedule of ``phase``: its own steps, learning rate and batches."""
        return cls(phase, cfg.steps(phase), cfg.lr(phase), cfg.warmup_steps, cfg.min_lr_ratio, stream=phase)

    def lr(self, step: int) -> float:
        return lr_at(step, self.steps, self.peak_lr, self.warmup, self.min_lr_ratio)

    def with_length(self, steps: int, peak_lr: float) -> "PhaseSchedule":
        return replace(self, steps=steps, peak_lr=peak_lr)


# ---------------------------------------------------------------- one step

@dataclass(frozen=True)
class StepResult:
    """What one training step measured: the language-model loss and, for a MoE, the router's terms."""

    loss: float
    balance: float | None = None  # Switch load-balancing loss, mean over MoE layers
    z: float | None = None  # router z-loss, mean over MoE layers


def router_losses(model: GPT) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(balance, z) of the last forward pass, each the mean over the MoE layers; None for a dense model."""
    moes = model.moe_layers()
    if not moes:
        return None
    return (torch.stack([m.last_aux["balance"] for m in moes]).mean(),
            torch.stack([m.last_aux["z"] for m in moes]).mean())


def train_step(model: GPT, optimizer, batch: tuple[torch.Tensor, torch.Tensor], balance_coef: float = 0.01,
               z_coef: float = 1e-3, grad_clip: float | None = 1.0, par: Parallel = SINGLE,
               net: torch.nn.Module | None = None) -> StepResult:
    """One update of ``model`` on ``batch`` = (inputs, targets), each [B, T] on the model's device.

    ``grad_clip=None`` skips clipping (lean mode: each parameter was updated inside backward).
    Across processes (``par``, growlib.parallel) ``batch`` is the global batch: this process
    trains on its rows, ``net`` (DDP's wrapper, if any) runs the forward pass, and the
    figures returned are the global batch's, the same on every process.
    """
    x, y = par.rows(*batch)  # [B / processes, T] each
    with autocast_for(x.device.type):
        loss = (net or model)(x, y)  # mean next-token cross-entropy
        router = router_losses(model)  # a MoE's auxiliary terms, from the same forward pass
        total = loss if router is None else loss + balance_coef * router[0] + z_coef * router[1]
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if grad_clip is not None:
        clip_gradients(model, grad_clip, par)
    figures = par.average(torch.stack([loss.detach().float(), *(t.detach().float() for t in router or ())]))
    value, *aux = figures.tolist()
    if not math.isfinite(value):  # stop before AdamW steps (lean mode stepped inside backward already)
        raise TrainingDiverged(f"loss is {value}")
    optimizer.step()
    return StepResult(value, *aux)


@torch.no_grad()
def clip_gradients(model: GPT, max_norm: float, par: Parallel = SINGLE) -> float:
    """Scale every gradient by min(1, max_norm / ‖g‖), ‖g‖ the norm of all of them together; returns ‖g‖.

    FSDP splits each gradient by rows (its first dimension) among the processes. The norm is
    taken row by row in float32, the rows' squares summed in float64: the same float32 norm
    whether the gradients are whole (one process, DDP) or in shards, so a run across processes
    clips exactly as one process does (``torch.nn.utils.clip_grad_norm_`` sums in another order).
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    local = [g.to_local() if hasattr(g, "to_local") else g for g in grads]  # an FSDP process's rows
    squares = torch.zeros((), dtype=torch.float64, device=local[0].device)
    for g in local:
        if g.numel():
            rows = g.reshape(g.shape[0], -1) if g.dim() > 1 else g.reshape(-1, 1)  # [rows, rest]
            squares += torch.linalg.vector_norm(rows, dim=1).double().square().sum()
    if par.mode == "fsdp":
        squares = par.sum(squares)
    norm = squares.sqrt().item()
    scale = min(1.0, max_norm / (norm + 1e-6))
    if scale < 1.0:
        torch._foreach_mul_(local, scale)
    return norm


@torch.no_grad()
def evaluate(model: GPT, batches: list[tuple[torch.Tensor, torch.Tensor]], device: str) -> float:
    """Mean loss over fixed batches, in eval mode."""
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in batches:
        with autocast_for(device):
            total += model(x.to(device), y.to(device)).item()
    model.train(was_training)
    return total / len(batches)


# ---------------------------------------------------------------- the phase loop

class History:
    """``training_history.jsonl``: one JSON object per logged step, flushed as written."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path else None
        self.records: list[dict] = []

    def append(self, record: dict) -> None:
        self.records.append(record)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())


@dataclass
class PhaseResult:
    phase: int
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # logged training losses
    eval_loss: float = float("nan")
    seconds: float = 0.0
    tokens: int = 0

    @property
    def first_loss(self) -> float:
        return self.losses[0]

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


@dataclass
class PhaseHooks:
    """What a caller of :func:`train_phase` may ask for between steps; each hook is optional."""

    checkpoint: Callable[[int, object], None] | None = None  # (next step, optimizer): write a checkpoint
    checkpoint_every: int = 0  # call ``checkpoint`` every N steps (0: never mid-phase)
    stop_requested: Callable[[], bool] | None = None  # true after Ctrl-C: checkpoint, then RunInterrupted
    after_step: Callable[[int, int], None] | None = None  # (phase, step), after every step
    on_eval: Callable[[int, float], None] | None = None  # (steps done, validation loss): a validation curve
    eval_every: int = 0  # call ``on_eval`` every N steps and at the end


def phase_optimizer(model: GPT, cfg: TrainConfig, peak_lr: float, device: str):
    """AdamW, or in lean mode Adafactor stepped inside backward with gradient checkpointing on."""
    if cfg.lean:
        model.grad_checkpointing = True
        return OptimizerInBackward(model, peak_lr, cfg.weight_decay)
    return make_optimizer(model, peak_lr, cfg.weight_decay, device)


def train_phase(model: GPT, data: TokenData, cfg: TrainConfig, schedule: PhaseSchedule, device: str,
                history: History | None = None, hooks: PhaseHooks | None = None, val_batches: list | None = None,
                start_step: int = 0, optimizer_state: dict | Callable[[object], None] | None = None,
                verbose: bool = True, par: Parallel = SINGLE) -> PhaseResult:
    """Train ``model`` in place over ``schedule`` and return its logged losses.

    ``start_step`` and ``optimizer_state`` continue an interrupted phase (its earlier
    logged losses are read back from ``history``); ``optimizer_state`` is a state dict,
    or a function that fills the new optimizer (a sharded checkpoint, growlib.parallel.dcp).
    ``par``: the processes training together (every one of them calls this).
    """
    history, hooks, phase = history or History(None), hooks or PhaseHooks(), schedule.phase
    model.train()
    opt = phase_optimizer(model, cfg, schedule.peak_lr, device)
    if callable(optimizer_state):
        optimizer_state(opt)
    elif optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    if cfg.compile and device.startswith("cuda"):
        for block in model.blocks:  # block by block: the MoE's data-dependent routing stays eager around them
            block.compile()
    result = _logged_so_far(history, phase, start_step)
    log = _PhaseLog(phase, schedule.steps, verbose, par)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    result.tokens = start_step * tokens_per_step
    start = time.perf_counter()
    with par.training(model) as net:
        for step in range(start_step, schedule.steps):
            set_lr(opt, schedule.lr(step))
            x, y = data.train_batch(cfg.batch_size, cfg.seed, schedule.stream, step)  # the global batch
            batch = (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            try:
                r = train_step(model, opt, batch, cfg.aux_loss_coef, cfg.z_loss_coef,
                               None if cfg.lean else cfg.grad_clip, par, net)
            except TrainingDiverged as exc:
                raise TrainingDiverged(f"phase {phase} step {step}: {exc}; stopping the phase (the last good "
                                       f"checkpoint is kept). Try a lower learning rate.") from None
            result.tokens += tokens_per_step
            log.tick()
            if step % cfg.log_every == 0 or step == schedule.steps - 1:
                log.step(model, step, schedule.lr(step), r, result, time.perf_counter() - start, history,
                         cfg.warmup_steps)
            _between_steps(hooks, model, opt, phase, step, schedule.steps, val_batches, device)
        log.close()
    if cfg.lean:
        opt.remove()
        model.grad_checkpointing = False
    result.seconds = time.perf_counter() - start
    log.say_throughput(model, cfg, (schedule.steps - start_step) * tokens_per_step, result.seconds, device)
    if val_batches:
        result.eval_loss = evaluate(model, val_batches, device)  # every process, the same batches
        history.append({"phase": phase, "step": schedule.steps - 1, "eval_loss": result.eval_loss,
                        "tokens": result.tokens, "elapsed": round(result.seconds, 3)})
        log.say(f"  eval loss (fixed validation batches): {result.eval_loss:.4f}")
    return result


def _logged_so_far(history: History, phase: int, start_step: int) -> PhaseResult:
    """A phase's result holding what it logged before ``start_step`` (an interrupted run's first part)."""
    result = PhaseResult(phase)
    for rec in history.records:
        if rec["phase"] == phase and "loss" in rec and rec["step"] < start_step:
            result.steps.append(rec["step"])
            result.losses.append(rec["loss"])
    return result


def _between_steps(hooks: PhaseHooks, model: GPT, opt, phase: int, step: int, steps: int,
                   val_batches: list | None, device: str) -> None:
    """The hooks after a step: the caller's callback, the validation curve, Ctrl-C, periodic checkpoints."""
    if hooks.after_step is not None:
        hooks.after_step(phase, step)
    done = step + 1
    if hooks.eval_every and hooks.on_eval is not None and val_batches and (done % hooks.eval_every == 0
                                                                          or done == steps):
        hooks.on_eval(done, evaluate(model, val_batches, device))
    if hooks.stop_requested is not None and hooks.stop_requested():
        if hooks.checkpoint is not None:
            hooks.checkpoint(done, opt)
        raise RunInterrupted(phase, done)
    if hooks.checkpoint is not None and hooks.checkpoint_every and done % hooks.checkpoint_every == 0 \
            and done < steps:
        hooks.checkpoint(done, opt)


def step_line(step: int, loss: float, elapsed: float) -> str:
    """The recipe's step line: ``  step   10 | loss 6.1234 | 12.3s``."""
    return f"  step {step:4d} | loss {loss:.4f} | {elapsed:.1f}s"


class _PhaseLog:
    """The console side of a phase: step lines (above a progress bar in a terminal) and warnings."""

    def __init__(self, phase: int, steps: int, verbose: bool, par: Parallel = SINGLE) -> None:
        self.phase, self.verbose, self.bar, self.par = phase, verbose, None, par
        if verbose and sys.stdout.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=steps, leave=False, desc=f"phase {phase}")

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        elif self.verbose:
            print(text)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def step(self, model: GPT, step: int, lr: float, r: StepResult, result: PhaseResult, elapsed: float,
             history: History, warmup: int) -> None:
        """A logged step: its console line, a spike warning, its history record."""
        self.say(step_line(step, r.loss, elapsed))
        lowest = min(result.losses, default=None)
        if step >= warmup and lowest is not None and r.loss > max(SPIKE_RATIO * lowest, lowest + SPIKE_NATS):
            self.say(f"  ⚠️  loss spike at step {step}: {r.loss:.4f} (lowest logged in this phase "
                     f"{lowest:.4f}); if it repeats, lower the learning rate")
        record = {"phase": self.phase, "step": step, "loss": r.loss, "lr": lr, "tokens": result.tokens,
                  "elapsed": round(elapsed, 3)}
        if r.balance is not None:
            moes = model.moe_layers()
            record["aux_loss"] = r.balance
            record["z_loss"] = r.z
            record["expert_tokens"] = [m.last_aux["counts"].tolist() for m in moes]
            entropy = self.par.average(torch.stack([m.last_aux["entropy"] for m in moes]))  # [layers]
            record["router_entropy"] = [round(v, 5) for v in entropy.tolist()]
        history.append(record)
        result.steps.append(step)
        result.losses.append(r.loss)

    def say_throughput(self, model: GPT, cfg: TrainConfig, tokens: int, seconds: float, device: str) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        tok_s = tokens / seconds
        flops_s = tok_s * training_flops_per_token(model.cfg, cfg.seq_len)
        peak = accelerator_peak_flops(device)
        mfu = f", MFU {100 * flops_s / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16" if peak else ""
        self.say(f"  throughput: {tok_s:,.0f} tokens/s, {flops_s / 1e12:.3f} TFLOP/s{mfu}")
