"""The recipe's console format: phase banners, step lines, the BOUNDARY SUMMARY.

Everything a run prints is built here, so the notebooks, the command and the layout test
share one definition. :class:`PhaseLog` is the console side of a phase (its step lines,
above a progress bar in a terminal, spike warnings, throughput) and writes each logged
step into the run's history.
"""

from __future__ import annotations

import sys

import torch

from ..accounting import ParamReport, training_flops_per_token
from ..device import accelerator_peak_flops, training_dtype
from ..model import GPT
from ..parallel.group import SINGLE, Parallel
from ..train import PhaseSpec, TrainedStep, is_spike
from .history import History, PhaseResult
from .records import BoundaryFigures

WIDTH = 60
RULE = "=" * WIDTH
THIN = "  " + "─" * 57
DOUBLE = "═" * WIDTH


def format_lr(lr: float) -> str:
    """3e-4 -> '0.0003', 8e-5 -> '8e-05' (Python's repr, as the recipe prints)."""
    return repr(float(lr))


def phase_banner(title: str, steps: int, lr: float, device: str, report: ParamReport, lean: str | None = None) -> str:
    """The recipe's banner; ``lean`` (what lean mode does) adds a line when the phase trains lean."""
    lines = [RULE, f"  {title}", f"  Steps: {steps}  |  LR: {format_lr(lr)}  |  Device: {device}"]
    if lean:
        lines.append(f"  Lean mode: {lean}")
    lines.append(THIN)
    lines += report.lines()
    lines.append(THIN)
    if report.is_moe:
        lines.append(report.efficiency_line())
    lines.append(RULE)
    return "\n".join(lines)


def section_banner(title: str) -> str:
    return "\n".join([RULE, f"  {title}", RULE])


def boundary_summary(figures: BoundaryFigures) -> str:
    """The recipe's BOUNDARY SUMMARY, plus the exact jumps on fixed validation batches."""
    f = lambda v: f"{v:8.4f}"
    lines = ["BOUNDARY SUMMARY", DOUBLE, f"  Phase 1 final loss      : {f(figures[1].final_loss)}"]
    notes = {2: ("← Small is good (train loss, batch noise included)",
                 "← same validation batches before/after upcycling"),
             3: ("← train loss, batch noise included", "← VERY small means success!")}
    for p in (2, 3):
        now, before = figures[p], figures[p - 1]
        if now.first_loss is None:
            break
        if p == 3:
            lines.append("")  # the recipe's blank line between the two transitions
        lines.append(f"  Phase {p} first loss      : {f(now.first_loss)}")
        lines.append(f"  Phase {p} final loss      : {f(now.final_loss)}")
        lines.append(f"  Phase {p - 1}→{p} jump          : {f(now.first_loss - before.final_loss)}  {notes[p][0]}")
        if now.exact_jump is not None:
            lines.append(f"  Phase {p - 1}→{p} jump (exact)  : {now.exact_jump:8.1e}  {notes[p][1]}")
        lines.append(f"  Phase {p} total drop      : {f(now.first_loss - now.final_loss)}"
                     "  ← first minus last training batch: different batches, so it can be < 0")
        if now.val_after is not None and now.val_end is not None:
            lines.append(f"  Phase {p} drop (val)      : {f(now.val_after - now.val_end)}"
                         "  ← same validation batches, start to end of the phase")
    lines.append(DOUBLE)
    return "\n".join(lines)


def step_line(step: int, loss: float, elapsed: float) -> str:
    """The recipe's step line: ``  step   10 | loss 6.1234 | 12.3s``."""
    return f"  step {step:4d} | loss {loss:.4f} | {elapsed:.1f}s"


class PhaseLog:
    """The console and the history of one phase: every ``log_every`` steps a line and a record.

    ``verbose`` False prints nothing (compare's paths, other ranks) but still writes the history.
    Across processes every process calls :meth:`after_step` (the router's entropy is averaged
    over them at each logged step); rank 0 alone prints and holds a history file.
    """

    def __init__(self, spec: PhaseSpec, history: History, result: PhaseResult, verbose: bool = True,
                 par: Parallel = SINGLE) -> None:
        self.spec, self.history, self.result, self.verbose, self.par = spec, history, result, verbose, par
        self.bar = None
        if verbose and sys.stdout.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=spec.steps, leave=False, desc=f"phase {spec.phase}")

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        elif self.verbose:
            print(text)

    def after_step(self, s: TrainedStep) -> None:
        """Tick the bar; at a logged step (and the last), its line, a spike warning, its history record."""
        if self.bar is not None:
            self.bar.update(1)
        if s.step % self.spec.log_every and s.step != self.spec.steps - 1:
            return
        r = s.result
        self.say(step_line(s.step, r.loss, s.seconds))
        lowest = min(self.result.losses, default=None)
        if is_spike(r.loss, lowest, s.step, self.spec.warmup):  # this phase's own warm-up
            self.say(f"  ⚠️  loss spike at step {s.step}: {r.loss:.4f} (lowest logged in this phase "
                     f"{lowest:.4f}); if it repeats, lower the learning rate")
        self.history.append(self._record(s))
        self.result.steps.append(s.step)
        self.result.losses.append(r.loss)

    def _record(self, s: TrainedStep) -> dict:
        r = s.result
        record = {"phase": self.spec.phase, "step": s.step, "loss": r.loss, "lr": s.lr, "tokens": s.tokens,
                  "elapsed": round(s.seconds, 3)}
        if r.balance is not None:
            entropy = self.par.average(r.router_entropy)  # [layers]
            record.update(aux_loss=r.balance, z_loss=r.z, expert_tokens=r.expert_counts.tolist(),
                          router_entropy=[round(v, 5) for v in entropy.tolist()])
        return record

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def throughput(self, model: GPT, tokens: int, seconds: float, device: str) -> None:
        """Tokens per second, FLOP/s and, on a GPU whose peak is known, the MFU."""
        if tokens <= 0 or seconds <= 0:
            return
        tok_s = tokens / seconds
        flops_s = tok_s * training_flops_per_token(model.cfg, self.spec.seq_len)
        peak = accelerator_peak_flops(device)
        mfu = f", MFU {100 * flops_s / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16" if peak else ""
        dtype = "bf16 autocast" if training_dtype(device) == torch.bfloat16 else "fp32"
        self.say(f"  throughput: {tok_s:,.0f} tokens/s, {flops_s / 1e12:.3f} TFLOP/s{mfu} (trained in {dtype}, "
                 f"weights fp32)")
