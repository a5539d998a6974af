"""Planning a run's memory before phase 1, and the recipe's advice for a phase that does not fit.

``--lean auto`` (the default) trains a phase in lean mode (growlib.lean) exactly when its
AdamW plan does not fit in what this device can give; a run with a phase that does not fit
even in lean mode is refused before phase 1, with the recipe's options worked out here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..budget import phase_configs
from ..config import GrowthConfig, ModelConfig
from ..memory import FITS_HEADROOM, GB, MemoryPlan, Overhead, estimate_memory

# (label, growth changes, batch divisor, lean): the options the recipe suggests, in its order
OPTIONS = [("batch 8 -> 4", {}, 2, False),
           ("scale_factor 2 -> 1.5", {"scale_factor": 1.5}, 1, False),
           ("extra_layers 4 -> 2", {"extra_layers": 2}, 1, False),
           ("scale 1.5, +2 layers, batch 4", {"scale_factor": 1.5, "extra_layers": 2}, 2, False),
           ("--lean (Adafactor in backward, checkpointing)", {}, 1, True)]


def _phase3(model_cfg: ModelConfig, growth: GrowthConfig, change: dict) -> ModelConfig | None:
    """Phase 3's config with ``change`` applied to the growth plan; None where the model cannot take it."""
    try:
        return phase_configs(model_cfg, dataclasses.replace(growth, **change))[3]
    except ValueError:
        return None  # a factor this model's sizes cannot take


def recommendations(model_cfg: ModelConfig, growth: GrowthConfig, batch_size: int, seq_len: int,
                    available: float, overhead: Overhead = Overhead()) -> list[str]:
    """Phase 3's memory under each of the recipe's options, against ``available`` bytes."""
    lines = [f"  Recommendations for {available / GB:.1f} GB (phase 3 totals):"]
    for label, change, divisor, lean in OPTIONS:
        cfg = _phase3(model_cfg, growth, change)
        if cfg is None:
            continue
        plan = estimate_memory(cfg, batch_size // divisor or 1, seq_len, lean=lean, overhead=overhead)
        lines.append(f"    {label:<48s} {plan.total / GB:6.1f} GB  {'✅ fits' if plan.fits(available) else '✗'}")
    for n in PROCESS_COUNTS:  # FSDP: the same model, spread over n processes of this size
        if batch_size % n == 0:
            total = _sharded_total(model_cfg, growth, batch_size, seq_len, overhead, n)
            label = f"torchrun --nproc-per-node {n} (FSDP, per process)"
            lines.append(f"    {label:<48s} {total / GB:6.1f} GB  {'✅ fits' if total < FITS_HEADROOM * available else '✗'}")
    return lines


# ---------------------------------------------------------------- the whole run, planned before phase 1

LEAN_MODES = ("auto", "always", "never")
LEAN_WHAT = "Adafactor stepped in backward, gradient checkpointing"


class NotEnoughMemory(ValueError):
    """A phase will not fit in what this device can give (the command prints it as one line, exit 2)."""


@dataclass(frozen=True)
class PhasePlan:
    """A phase's memory in both ways of training it, and the way chosen."""

    phase: int
    adamw: MemoryPlan
    lean: MemoryPlan
    lean_chosen: bool

    @property
    def chosen(self) -> MemoryPlan:
        return self.lean if self.lean_chosen else self.adamw


def lean_mode(value: str | bool) -> str:
    """``auto``, ``always`` or ``never``; True and False (the earlier on/off flag) mean always and never."""
    if value is True or value is False:
        return "always" if value else "never"
    if value not in LEAN_MODES:
        raise ValueError(f"--lean {value!r} is invalid: accepted one of {LEAN_MODES} (or --lean alone: always)")
    return value


def plan_run(configs: dict[int, ModelConfig], batch_size: int, seq_len: int, overhead: Overhead, available: float,
             mode: str, shards: int = 1) -> dict[int, PhasePlan]:
    """Each phase's plan; ``auto`` trains a phase lean exactly when its AdamW plan does not fit.

    ``shards`` > 1: one process's plan in an FSDP run over that many, ``batch_size`` its rows
    (lean mode is one-process only: ``mode`` is then ``never``).
    """
    plans = {}
    for phase, cfg in configs.items():
        adamw = estimate_memory(cfg, batch_size, seq_len, overhead=overhead, shards=shards)
        lean = adamw if shards > 1 else estimate_memory(cfg, batch_size, seq_len, lean=True, overhead=overhead)
        chosen = mode == "always" or (mode == "auto" and not adamw.fits(available))
        plans[phase] = PhasePlan(phase, adamw, lean, chosen)
    return plans


def run_plan_lines(plans: dict[int, PhasePlan], available: float, device: str) -> list[str]:
    """The three phases' plans side by side, against what ``device`` can give now."""
    g = lambda b: f"{b / GB:7.2f}"
    sharded = any(p.chosen.gathered for p in plans.values())  # FSDP: a column for the gathered groups
    lines = [f"  Memory plan of the run, in GB ({device}: {available / GB:.1f} GB available now):",
             "    phase  mode     model  gradients  optimizer  activations  heap slack"
             + ("   gathered" if sharded else "") + "  runtime    total"]
    for p in plans.values():
        m = p.chosen
        verdict = "✅ fits" if m.fits(available) else "⚠️ does NOT fit"
        gathered = f"  {g(m.gathered):>9}" if sharded else ""
        lines.append(f"    {p.phase:>5}  {'lean ' if p.lean_chosen else 'AdamW'}  {g(m.model)}  {g(m.gradients):>9}"
                     f"  {g(m.optimizer):>9}  {g(m.activations):>11}  {g(m.heap_slack):>10}{gathered}  {g(m.runtime)}"
                     f"  {g(m.total)}  {verdict}")
    for p in plans.values():
        if p.lean_chosen and not p.adamw.fits(available):
            lines.append(f"  [memory] phase {p.phase} trains in lean mode ({LEAN_WHAT}): with AdamW it would need "
                         f"{p.adamw.total / GB:.1f} GB")
    return lines


def check_run_fits(plans: dict[int, PhasePlan], available: float, mode: str, model_cfg: ModelConfig,
                   growth: GrowthConfig, batch_size: int, seq_len: int, overhead: Overhead) -> None:
    """Refuse, before phase 1, a run with a phase that does not fit even the way it was chosen to train."""
    if mode == "never":
        return  # asked for: each phase warns before it starts, as the recipe does
    for p in plans.values():
        if not p.chosen.fits(available):
            raise NotEnoughMemory(f"phase {p.phase} is planned at {p.chosen.total / GB:.2f} GB even in lean mode: "
                                  f"it does not fit in the {available / GB:.2f} GB this device can give "
                                  f"(a plan keeps {1 - FITS_HEADROOM:.0%} of it free); "
                                  + best_option(model_cfg, growth, batch_size, seq_len, available, overhead))


def best_option(model_cfg: ModelConfig, growth: GrowthConfig, batch_size: int, seq_len: int, available: float,
                overhead: Overhead) -> str:
    """The smallest change of the recipe's options (in lean mode) that makes phase 3 fit, as advice."""
    tries = [("--scale-factor 1.5", {"scale_factor": 1.5}), ("--extra-layers 2", {"extra_layers": 2}),
             ("--scale-factor 1.5 --extra-layers 2", {"scale_factor": 1.5, "extra_layers": 2})]
    for flags, change in tries:
        cfg = _phase3(model_cfg, growth, change)
        if cfg is None:
            continue
        for batch in (batch_size, batch_size // 2):
            total = estimate_memory(cfg, max(1, batch), seq_len, lean=True, overhead=overhead).total
            if total < FITS_HEADROOM * available:
                return (f"it fits with {flags} (phase 3 {total / GB:.1f} GB in lean mode"
                        + (f", batch {batch})" if batch != batch_size else ")"))
    for n in PROCESS_COUNTS:
        if batch_size % n == 0 and _sharded_total(model_cfg, growth, batch_size, seq_len, overhead, n) < \
                FITS_HEADROOM * available:
            return (f"it fits on {n} processes of this size with FSDP (torchrun --nproc-per-node {n} -m growlib run "
                    f"...; phase 3 {_sharded_total(model_cfg, growth, batch_size, seq_len, overhead, n) / GB:.1f} GB "
                    f"a process)")
    return "none of the recipe's fallbacks fits either: use a smaller preset (cpu, tiny) or a machine with more memory"


PROCESS_COUNTS = (2, 4, 8)  # the scale-out options the advice tries (growlib.parallel)


def _sharded_total(model_cfg: ModelConfig, growth: GrowthConfig, batch_size: int, seq_len: int, overhead: Overhead,
                   processes: int) -> float:
    """Phase 3's plan for one of ``processes`` FSDP processes, each with its share of the batch."""
    cfg = phase_configs(model_cfg, growth)[3]
    return estimate_memory(cfg, batch_size // processes, seq_len, overhead=overhead, shards=processes).total
