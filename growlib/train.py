"""Training one phase: AdamW with warm-up and cosine decay, the seed's step lines, the history file.

Taught in notebooks 01-03. The same function trains the dense model (phase 1),
the upcycled MoE (phase 2, with the router's auxiliary losses) and the grown
model (phase 3, after a fresh optimizer and a short re-warmup).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .config import TrainConfig
from .console import step_line
from .data import TokenData
from .accounting import training_flops_per_token
from .lean import OptimizerInBackward
from .losses import DEFAULT_CHUNK, chunked_cross_entropy
from .model import GPT


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite (the command prints it as one line and exits non-zero)."""


class RunInterrupted(Exception):
    """Ctrl-C between two steps: a checkpoint was written; ``next_step`` is where to resume."""

    def __init__(self, phase: int, next_step: int) -> None:
        super().__init__(f"interrupted in phase {phase} before step {next_step}")
        self.phase, self.next_step = phase, next_step


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given, else cuda, then mps, then cpu."""
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {requested!r}: CUDA is not available here; accepted cpu"
                             + (", mps" if torch.backends.mps.is_available() else ""))
        if requested == "mps" and not torch.backends.mps.is_available():
            raise ValueError("--device 'mps': MPS is not available here; accepted cpu")
        if requested.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"--device {requested!r} is unknown: accepted cpu, cuda, cuda:N or mps")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


# dense bf16 tensor-core peaks (no sparsity), by device name, for the MFU line
GPU_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12,
                 "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12}


def accelerator_peak_flops(device: str) -> float | None:
    """The GPU's bf16 peak, when its name is in the table above; None on CPU/MPS or an unknown GPU."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)


def autocast_for(device: str):
    """bf16 autocast on CUDA only: on CPU bf16 matmul is ~100x slower than fp32 here."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def make_optimizer(model: GPT, lr: float, weight_decay: float, device: str) -> torch.optim.Optimizer:
    """AdamW, decaying matrices only (not biases, LayerNorms); fused where the device has it."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kind = device.split(":")[0]
    fused = kind in ("cpu", "cuda", "mps")
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=fused)
    except (RuntimeError, TypeError):  # an older torch without a fused kernel for this device
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def lr_at(step: int, total: int, peak: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``min_ratio * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def lm_loss(model: GPT, idx: torch.Tensor, targets: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Mean next-token cross-entropy through the tied head, in chunks of tokens (growlib.losses)."""
    feats = model.features(idx)  # [B, T, d]
    return chunked_cross_entropy(feats.reshape(-1, feats.shape[-1]), model.tok_emb.weight, targets.reshape(-1), chunk)


@torch.no_grad()
def evaluate(model: GPT, batches: list[tuple[torch.Tensor, torch.Tensor]], device: str) -> float:
    """Mean loss over fixed batches, in eval mode."""
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in batches:
        with autocast_for(device):
            total += lm_loss(model, x.to(device), y.to(device)).item()
    model.train(was_training)
    return total / len(batches)


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


def _moe_terms(model: GPT) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    moes = model.moe_layers()
    if not moes:
        return None, None
    balance = torch.stack([m.last_aux["balance"] for m in moes]).mean()
    z = torch.stack([m.last_aux["z"] for m in moes]).mean()
    return balance, z


def train_phase(model: GPT, data: TokenData, cfg: TrainConfig, phase: int, device: str,
                history: History | None = None, steps: int | None = None, verbose: bool = True,
                val_batches: list | None = None, start_step: int = 0, optimizer_state: dict | None = None,
                checkpoint: Callable[[int, torch.optim.Optimizer], None] | None = None,
                checkpoint_every: int = 0, stop: Any = None,
                after_step: Callable[[int, int], None] | None = None,
                eval_every: int = 0, on_eval: Callable[[int, float], None] | None = None) -> PhaseResult:
    """Train ``model`` in place for one phase and return its logged losses.

    ``start_step`` and ``optimizer_state`` continue an interrupted phase;
    ``checkpoint(next_step, optimizer)`` is called every ``checkpoint_every`` steps
    and when ``stop.requested`` is set (Ctrl-C), which then raises :class:`RunInterrupted`.
    """
    steps = cfg.steps(phase) if steps is None else steps
    peak = cfg.lr(phase)
    history = history or History(None)
    model.train()
    if cfg.lean:  # growlib.lean: Adafactor stepped inside backward, gradient checkpointing
        opt = OptimizerInBackward(model, peak, cfg.weight_decay)
        model.grad_checkpointing = True
    else:
        opt = make_optimizer(model, peak, cfg.weight_decay, device)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    if cfg.compile and device.startswith("cuda"):
        for block in model.blocks:  # block by block: the MoE's data-dependent routing stays eager around them
            block.compile()
    result = PhaseResult(phase)
    for rec in history.records:  # what this phase logged before an interruption
        if rec["phase"] == phase and "loss" in rec and rec["step"] < start_step:
            result.steps.append(rec["step"])
            result.losses.append(rec["loss"])
    say = print if verbose else (lambda *a, **k: None)
    bar = None
    if verbose and sys.stdout.isatty():
        from tqdm import tqdm
        bar = tqdm(total=steps, leave=False, desc=f"phase {phase}")
        say = bar.write
    tokens_per_step = cfg.batch_size * cfg.seq_len
    result.tokens = start_step * tokens_per_step
    start = time.perf_counter()
    for step in range(start_step, steps):
        lr = lr_at(step, steps, peak, cfg.warmup_steps, cfg.min_lr_ratio)
        if isinstance(opt, OptimizerInBackward):
            opt.set_lr(lr)
        else:
            for group in opt.param_groups:
                group["lr"] = lr
        x, y = data.train_batch(cfg.batch_size, cfg.seed, phase, step)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast_for(device):
            loss = lm_loss(model, x, y)
            balance, z = _moe_terms(model)
            total = loss
            if balance is not None:
                total = loss + cfg.aux_loss_coef * balance + cfg.z_loss_coef * z
        opt.zero_grad(set_to_none=True)
        total.backward()
        if not cfg.lean:  # lean mode has no full set of gradients to clip; Adafactor clips its updates
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise TrainingDiverged(f"phase {phase} step {step}: loss is {loss_value}; stopping the phase "
                                   f"(the last good checkpoint is kept). Try a lower learning rate.")
        opt.step()
        result.tokens += tokens_per_step
        if bar is not None:
            bar.update(1)
        if step % cfg.log_every == 0 or step == steps - 1:
            elapsed = time.perf_counter() - start
            say(step_line(step, loss_value, elapsed))
            if step >= cfg.warmup_steps and result.losses and loss_value > max(1.3 * min(result.losses),
                                                                               min(result.losses) + 0.5):
                say(f"  ⚠️  loss spike at step {step}: {loss_value:.4f} (lowest logged in this phase "
                    f"{min(result.losses):.4f}); if it repeats, lower the learning rate")
            record = {"phase": phase, "step": step, "loss": loss_value, "lr": lr,
                      "tokens": result.tokens, "elapsed": round(elapsed, 3)}
            if balance is not None:
                record["aux_loss"] = balance.item()
                record["z_loss"] = z.item()
                record["expert_tokens"] = [m.last_aux["counts"].tolist() for m in model.moe_layers()]
                record["router_entropy"] = [round(m.last_aux["entropy"].item(), 5) for m in model.moe_layers()]
            history.append(record)
            result.steps.append(step)
            result.losses.append(loss_value)
        if after_step is not None:
            after_step(phase, step)
        done = step + 1
        if eval_every and on_eval is not None and val_batches and (done % eval_every == 0 or done == steps):
            on_eval(done, evaluate(model, val_batches, device))  # validation curve (growlib.compare)
        if stop is not None and stop.requested:
            if checkpoint is not None:
                checkpoint(done, opt)
            raise RunInterrupted(phase, done)
        if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0 and done < steps:
            checkpoint(done, opt)
    if bar is not None:
        bar.close()
    if cfg.lean:
        opt.remove()
        model.grad_checkpointing = False
    result.seconds = time.perf_counter() - start
    trained = steps - start_step
    if trained > 0 and result.seconds > 0:
        tok_s = trained * tokens_per_step / result.seconds
        flops_s = tok_s * training_flops_per_token(model.cfg, cfg.seq_len)
        peak = accelerator_peak_flops(device)
        mfu = f", MFU {100 * flops_s / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16" if peak else ""
        say(f"  throughput: {tok_s:,.0f} tokens/s, {flops_s / 1e12:.3f} TFLOP/s{mfu}")
    if val_batches:
        result.eval_loss = evaluate(model, val_batches, device)
        history.append({"phase": phase, "step": steps - 1, "eval_loss": result.eval_loss,
                        "tokens": result.tokens, "elapsed": round(result.seconds, 3)})
        say(f"  eval loss (fixed validation batches): {result.eval_loss:.4f}")
    return result
