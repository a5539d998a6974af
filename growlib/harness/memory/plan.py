"""A run's memory: planned before phase 1, checked before each phase, its peak measured after it.

``--lean auto`` (the default) trains a phase in lean mode (growlib.lean) exactly when its
AdamW plan does not fit in what this device can give; a run with a phase that does not fit
even in lean mode is refused before phase 1, with the recipe's options worked out
(growlib.harness.memory.advice). :class:`RunMemory` holds the plan a run made and does the
per-phase work: the recipe's memory table before a phase, a last check just before its
optimizer is allocated (stop with advice rather than be killed), the measured peak after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...budget import phase_configs
from ...memory import FITS_HEADROOM, GB, MemoryPlan, Overhead, estimate_memory
from ...parallel.group import Parallel
from ..stops import NotEnoughMemory
from .advice import LEAN_WHAT, best_option, recommendations
from .heap import release_freed_memory
from .machine import available_to, measured_peak, reset_peak


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


def plan_run(configs: dict, batch_size: int, seq_len: int, overhead: Overhead, available: float,
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


@dataclass
class RunMemory:
    """The memory plan a run made before phase 1, and the checks and measurements of each phase.

    ``recipe`` is what the advice works with: (model config, growth, batch size, sequence length).
    """

    plans: dict[int, PhasePlan]
    overhead: Overhead
    device: str
    par: Parallel
    mode: str  # auto | always | never
    recipe: tuple
    planned_with: float  # bytes available to this process when the plan was made
    peaks: dict[int, float] = field(default_factory=dict)

    @classmethod
    def plan(cls, spec, par: Parallel, overhead: Overhead) -> "RunMemory":
        """Plan every phase of ``spec`` (a RunSpec) for one process of ``par``; refuse a run that cannot fit."""
        t, how = spec.train, spec.how
        mode = how.lean if not par.active else "never"  # lean mode is one-process only
        shards = par.world if par.mode == "fsdp" else 1
        available = available_to(par, how.device)
        plans = plan_run(phase_configs(spec.model, spec.growth), t.batch_size // par.world, t.seq_len, overhead,
                         available, mode, shards=shards)
        memory = cls(plans, overhead, how.device, par, mode, (spec.model, spec.growth, t.batch_size, t.seq_len),
                     available)
        memory.refuse_what_cannot_fit()
        return memory

    def available(self) -> float:
        """What this process may use now (read anew: other programs come and go)."""
        return available_to(self.par, self.device)

    def lean(self, phase: int) -> bool:
        return self.plans[phase].lean_chosen

    def lines(self) -> list[str]:
        """The plan of the run, as made before phase 1."""
        where = self.device + (f", each of {self.par.world} processes" if self.par.active else "")
        return run_plan_lines(self.plans, self.planned_with, where)

    def refuse_what_cannot_fit(self) -> None:
        """Before phase 1: a phase that does not fit even the way it was chosen to train stops the run."""
        if self.mode == "never":
            return  # asked for: each phase warns before it starts, as the recipe does
        available = self.planned_with
        for p in self.plans.values():
            if not p.chosen.fits(available):
                raise NotEnoughMemory(f"phase {p.phase} is planned at {p.chosen.total / GB:.2f} GB even in lean mode: "
                                      f"it does not fit in the {available / GB:.2f} GB this device can give "
                                      f"(a plan keeps {1 - FITS_HEADROOM:.0%} of it free); "
                                      + best_option(*self.recipe, available, self.overhead))

    def before_phase(self, phase: int, say: Callable[[str], None]) -> None:
        """The recipe's memory table before a phase; the recipe's advice where it will not fit."""
        plan, available = self.plans[phase].chosen, self.available()
        for line in plan.lines(f"phase {phase}" + (" (lean mode)" if self.lean(phase) else ""), available):
            say(line)
        if not plan.fits(available):
            say(f"  ⚠️  phase {phase} is estimated at {plan.total / GB:.1f} GB, more than this machine's "
                f"{available / GB:.1f} GB can give: expect an out-of-memory error or heavy swapping")
            for line in recommendations(*self.recipe, available, self.overhead):
                say(line)
        release_freed_memory()  # the last phase's freed blocks are not this phase's peak
        reset_peak(self.device)

    def check_now(self, phase: int) -> None:
        """Before the optimizer is allocated: stop with advice, rather than be killed, if the plan cannot fit now."""
        if self.mode == "never" or self.device.startswith("cuda"):
            return  # CUDA: its allocator raises an error that the trainer turns into advice
        plan, available = self.plans[phase].chosen, self.available()
        if not plan.fits(available):
            raise self.not_enough(phase, f"it is planned at {plan.total / GB:.1f} GB and this device can give "
                                         f"{available / GB:.1f} GB now")

    def not_enough(self, phase: int, why: str) -> NotEnoughMemory:
        advice = ("try a smaller growth: " + best_option(*self.recipe, self.available(), self.overhead)
                  if self.lean(phase) else f"resume with --lean ({LEAN_WHAT})")
        return NotEnoughMemory(f"phase {phase} stopped before training: {why}; {advice}")

    def report_peak(self, phase: int, say: Callable[[str], None]) -> None:
        peak, what = measured_peak(self.device)
        peak = self.par.maximum(peak)
        self.peaks[phase] = peak
        if self.par.active:
            what += f", the largest of {self.par.world} processes"
        say(f"  Memory: measured {what} {peak / GB:.2f} GB (estimate {self.plans[phase].chosen.total / GB:.2f} GB)")
