"""Training: what one phase trains for, the step, the learning-rate schedule, and the loop.

Taught in notebook 01. A :class:`PhaseSpec` is everything a phase's loop and step
read. :func:`train_step` is the whole of one update: forward, loss, backward,
optimizer step. :func:`train_steps` repeats it over a phase's schedule and yields
after every step, so whoever drives it (growlib.harness.trainer: the console, the
checkpoints, Ctrl-C) acts between steps without the loop knowing about them. The
same loop trains the dense model (phase 1), the upcycled MoE (phase 2, where the
router's auxiliary losses join the loss) and the grown model (phase 3).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Iterator

import torch

from .config import TrainConfig
from .data import TokenData
from .device import autocast_for
from .lean import OptimizerInBackward
from .model import GPT
from .moe import RouterStats
from .parallel.group import SINGLE, Parallel
from .parallel.sharding import training

# a logged loss is a spike when it is this much above the lowest logged loss of its phase:
SPIKE_RATIO = 1.3  # 30% above it,
SPIKE_NATS = 0.5  # and at least half a nat above it (so that a low loss's small wobble is not one)
OPTIMIZERS = ("adamw", "lean")


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite (the command prints it as one line and exits non-zero)."""


# ---------------------------------------------------------------- what a phase trains for

@dataclass(frozen=True)
class PhaseSpec:
    """What one phase trains for: its schedule, its batches, its loss terms and its optimizer.

    ``stream`` picks the stream of training batches (:meth:`TokenData.train_batch`): the
    recipe's phase N draws stream N, and a baseline that should see the same data as a
    phase names that phase's stream. The defaults are the recipe's phase 1.
    """

    phase: int = 1  # the phase number written in history records
    steps: int = 100
    peak_lr: float = 3e-4
    warmup: int = 10  # linear warm-up steps at the start of the phase
    min_lr_ratio: float = 0.1  # cosine decay ends at this fraction of the peak
    stream: int = 1
    batch_size: int = 8
    seq_len: int = 256
    seed: int = 0
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    balance_coef: float = 0.01  # Switch Transformer load balancing
    z_coef: float = 1e-3  # ST-MoE router z-loss
    log_every: int = 10
    optimizer: str = "adamw"  # adamw | lean (growlib.lean: Adafactor inside backward, checkpointing)
    compile: bool = False  # torch.compile each block (CUDA only)
    # a phase that continues a longer schedule (a grown path's one warm-up and decay over all its
    # phases): its step 0 is that schedule's step ``lr_offset`` of ``lr_total``
    lr_offset: int = 0
    lr_total: int | None = None  # None: the schedule is this phase's own
    lr_scales: tuple[tuple[str, float], ...] = ()  # (parameter name, learning-rate factor): growlib.carry
    # parameters new at this phase's start (an inserted block) warm up alone over ``new_warmup`` steps
    new_params: tuple[str, ...] = ()
    new_warmup: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"PhaseSpec.optimizer = {self.optimizer!r} is invalid: accepted one of {OPTIMIZERS}")

    @classmethod
    def of(cls, cfg: TrainConfig, phase: int, lean: bool = False, compile: bool = False) -> "PhaseSpec":
        """The recipe's phase ``phase`` under ``cfg``: its own steps, learning rate and batches."""
        return cls(phase, cfg.steps(phase), cfg.lr(phase), cfg.warmup_steps, cfg.min_lr_ratio, phase,
                   cfg.batch_size, cfg.seq_len, cfg.seed, cfg.weight_decay, cfg.grad_clip, cfg.aux_loss_coef,
                   cfg.z_loss_coef, cfg.log_every, "lean" if lean else "adamw", compile)

    @property
    def lean(self) -> bool:
        return self.optimizer == "lean"

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def lr(self, step: int) -> float:
        return lr_at(self.lr_offset + step, self.lr_total or self.steps, self.peak_lr, self.warmup, self.min_lr_ratio)

    def with_length(self, steps: int, peak_lr: float) -> "PhaseSpec":
        return replace(self, steps=steps, peak_lr=peak_lr)


# ---------------------------------------------------------------- the optimizer and its schedule

def make_optimizer(model: GPT, lr: float, weight_decay: float, device: str,
                   lr_scales: dict[str, float] | None = None, new_params: tuple[str, ...] = (),
                   new_warmup: int = 0) -> torch.optim.Optimizer:
    """AdamW, decaying matrices only (not biases, LayerNorms); fused where the device has it.

    ``lr_scales`` (parameter name -> factor, 1 for those not named) gives parameters their own
    learning rate, lr x factor, in groups of equal factor; a decayed group's weight decay is
    divided by its factor, so that lr x weight decay, the decay a step applies, stays the same
    (growlib.carry: the rates of a grown model's split tensors). ``new_params`` are grouped apart
    and their rate warms up from 0 over ``new_warmup`` steps (:func:`set_lr`).
    """
    scales, new = lr_scales or {}, set(new_params)
    groups: dict[tuple[bool, float, bool], dict] = {}
    for name, p in model.named_parameters():
        decay, scale, fresh = p.dim() >= 2, float(scales.get(name, 1.0)), name in new
        group = groups.setdefault((decay, scale, fresh), {"params": [], "weight_decay": weight_decay / scale if decay
                                                          else 0.0, "lr_scale": scale, "lr": lr * scale,
                                                          "warmup": new_warmup if fresh else 0})
        group["params"].append(p)
    groups = [groups[k] for k in sorted(groups, key=lambda k: (not k[0], -k[1], k[2]))]  # decayed first, by factor
    fused = device.split(":")[0] in ("cpu", "cuda", "mps")
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=fused)
    except (RuntimeError, TypeError):  # an older torch without a fused kernel for this device
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def set_lr(optimizer, lr: float, step: int = 0) -> None:
    """Set the learning rate of every parameter group at the phase's ``step``.

    A group's ``lr_scale`` (lean mode, a grown model's split tensors) multiplies it; a group with
    a ``warmup`` (new parameters) has it ramped up linearly over that many steps of the phase.
    """
    for group in optimizer.param_groups:
        ramp = min(1.0, (step + 1) / group["warmup"]) if group.get("warmup") else 1.0
        group["lr"] = lr * group.get("lr_scale", 1.0) * ramp


def lr_at(step: int, total: int, peak: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``min_ratio * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def phase_optimizer(model: GPT, spec: PhaseSpec, device: str):
    """AdamW, or in lean mode Adafactor stepped inside backward with gradient checkpointing on.

    With ``spec.compile`` on CUDA each block is compiled here, block by block: the MoE's
    data-dependent routing stays eager around them.
    """
    if spec.compile and device.startswith("cuda"):
        for block in model.blocks:
            block.compile()
    if spec.lean:
        model.grad_checkpointing = True
        return OptimizerInBackward(model, spec.peak_lr, spec.weight_decay)
    return make_optimizer(model, spec.peak_lr, spec.weight_decay, device, dict(spec.lr_scales), spec.new_params,
                          spec.new_warmup)


def end_phase(model: GPT, optimizer) -> None:
    """Undo what :func:`phase_optimizer` set up (lean mode's hooks and checkpointing)."""
    if isinstance(optimizer, OptimizerInBackward):
        optimizer.remove()
        model.grad_checkpointing = False


# ---------------------------------------------------------------- one step

@dataclass(frozen=True)
class StepResult:
    """What one training step measured: the language-model loss and, for a MoE, the router's terms."""

    loss: float
    balance: float | None = None  # Switch load-balancing loss, mean over MoE layers
    z: float | None = None  # router z-loss, mean over MoE layers
    expert_counts: torch.Tensor | None = None  # [layers, E] assignments per expert, the global batch's
    router_entropy: torch.Tensor | None = None  # [layers] this process's mean router entropy


def router_losses(routing: list[RouterStats]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(balance, z) of one forward pass, each the mean over the MoE layers; None for a dense model."""
    if not routing:
        return None
    return torch.stack([r.balance for r in routing]).mean(), torch.stack([r.z for r in routing]).mean()


def train_step(model: GPT, optimizer, batch: tuple[torch.Tensor, torch.Tensor], spec: PhaseSpec | None = None,
               par: Parallel = SINGLE, net: torch.nn.Module | None = None) -> StepResult:
    """One update of ``model`` on ``batch`` = (inputs, targets), each [B, T] on the model's device.

    ``spec`` gives the auxiliary losses' weights and the clipping norm (default: the recipe's);
    lean mode does not clip (each parameter was updated inside backward). Across processes
    (``par``, growlib.parallel) ``batch`` is the global batch: this process trains on its rows,
    ``net`` (DDP's wrapper, if any) runs the forward pass, and the figures returned are the
    global batch's, the same on every process.
    """
    spec = spec or PhaseSpec()
    x, y = par.rows(*batch)  # [B / processes, T] each
    routing: list[RouterStats] = []  # filled by the MoE layers during the forward pass
    with autocast_for(x.device.type):
        loss = (net or model)(x, y, routing=routing)  # mean next-token cross-entropy
        router = router_losses(routing)  # a MoE's auxiliary terms, from the same forward pass
        total = loss if router is None else loss + spec.balance_coef * router[0] + spec.z_coef * router[1]
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if not spec.lean:
        clip_gradients(model, spec.grad_clip, par)
    figures = par.average(torch.stack([loss.detach().float(), *(t.detach().float() for t in router or ())]))
    value, *aux = figures.tolist()
    if not math.isfinite(value):  # stop before AdamW steps (lean mode stepped inside backward already)
        raise TrainingDiverged(f"loss is {value}")
    optimizer.step()
    stats = (torch.stack([r.counts for r in routing]), torch.stack([r.entropy for r in routing])) if routing else ()
    return StepResult(value, *aux, *stats)


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


def is_spike(loss: float, lowest: float | None, step: int, warmup: int) -> bool:
    """A logged loss well above the lowest of its phase so far, once the phase's own warm-up is over."""
    return step >= warmup and lowest is not None and loss > max(SPIKE_RATIO * lowest, lowest + SPIKE_NATS)


# ---------------------------------------------------------------- the loop

@dataclass(frozen=True)
class TrainedStep:
    """What the loop reports after each step."""

    step: int
    lr: float
    result: StepResult
    tokens: int  # training tokens this phase has seen, its earlier steps included
    seconds: float  # since this call of the loop started


def train_steps(model: GPT, optimizer, data: TokenData, spec: PhaseSpec, device: str, start_step: int = 0,
                par: Parallel = SINGLE) -> Iterator[TrainedStep]:
    """Train ``model`` in place over ``spec``'s steps from ``start_step``, yielding after every step.

    Every batch is drawn from (seed, stream, step), and the learning rate is a function of the
    step, so a phase continued from ``start_step`` repeats the uninterrupted one exactly.
    ``par``: the processes training together (every one of them iterates this).
    """
    model.train()
    start = time.perf_counter()
    with training(model, par) as net:
        for step in range(start_step, spec.steps):
            lr = spec.lr(step)
            set_lr(optimizer, lr, step)
            x, y = data.train_batch(spec.batch_size, spec.seed, spec.stream, step)  # the global batch
            batch = (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            try:
                r = train_step(model, optimizer, batch, spec, par, net)
            except TrainingDiverged as exc:
                raise TrainingDiverged(f"phase {spec.phase} step {step}: {exc}; stopping the phase (the last good "
                                       f"checkpoint is kept). Try a lower learning rate.") from None
            yield TrainedStep(step, lr, r, (step + 1) * spec.tokens_per_step, time.perf_counter() - start)
