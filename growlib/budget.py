"""Parameter budgets of the three phases, computed on the meta device (instant, no memory).

Taught in notebook 00. ``python -m growlib budget --preset recipe`` prints the
recipe's table with the true phase-3 figures, and says where the recipe's own
phase-3 figures do not follow from its configuration.
"""

from __future__ import annotations

import dataclasses

from .accounting import ParamReport, analytic_params, param_report
from .config import GrowthConfig, ModelConfig, get_preset
from .grow import widened_config
from .model import build_model

# what the recipe's text claims for phase 3 ("~1.47 B / ~549 M / 37.4%")
RECIPE_CLAIMED_PHASE3 = (1_467_600_000, 548_700_000)


def phase_configs(model: ModelConfig, growth: GrowthConfig) -> dict[int, ModelConfig]:
    """The model config of each phase: dense, upcycled, grown."""
    moe = dataclasses.replace(model, n_experts=growth.n_experts, top_k=growth.top_k)
    grown = widened_config(moe, growth.scale_factor)
    grown = dataclasses.replace(grown, n_layers=grown.n_layers + growth.extra_layers)
    return {1: model, 2: moe, 3: grown}


def phase_reports(model: ModelConfig, growth: GrowthConfig, seq_len: int | None = None) -> dict[int, ParamReport]:
    return {p: param_report(build_model(c, device="meta"), seq_len) for p, c in phase_configs(model, growth).items()}


PHASE_NAMES = {1: "Dense", 2: "MoE", 3: "Large MoE"}


def budget_table(model: ModelConfig, growth: GrowthConfig) -> list[str]:
    cfgs = phase_configs(model, growth)
    reports = phase_reports(model, growth)
    lines = ["| Phase | Model Type | Total Params | Active Params/tok | Efficiency |",
             "|-------|-----------|--------------|-------------------|------------|"]
    for p, rep in reports.items():
        c = cfgs[p]
        kind = f"{PHASE_NAMES[p]} ({c.n_layers} layers" + (f", {c.n_experts} experts)" if c.is_moe else ")")
        lines.append(f"| Phase {p} | {kind} | {rep.total / 1e6:.2f} M | {rep.active / 1e6:.2f} M | "
                     f"{100 * rep.efficiency:.1f}% |")
    lines.append("")
    for p, rep in reports.items():
        total, active = analytic_params(cfgs[p])
        c = cfgs[p]
        lines.append(f"Phase {p}: d_model {c.d_model}, {c.n_layers} layers, {c.n_heads} heads, d_mlp {c.d_mlp}"
                     + (f", {c.n_experts} experts top-{c.top_k}" if c.is_moe else ""))
        lines += rep.lines()
        if rep.is_moe:
            lines.append(rep.efficiency_line())
        lines.append(f"  exact: {rep.total:,} total, {rep.active:,} active; analytic {total:,} / {active:,}"
                     f"  match: {rep.total == total and rep.active == active}")
    return lines


def recipe_discrepancy_line(report: ParamReport) -> str:
    """Where the recipe's own phase-3 figures part from what its configuration builds."""
    claimed_total, claimed_active = RECIPE_CLAIMED_PHASE3
    return (f"Note: the recipe's text gives phase 3 as ~{claimed_total / 1e9:.2f} B total / ~{claimed_active / 1e6:.0f} M "
            f"active / 37.4%; that does not follow from its own configuration (x2 width, +4 layers): "
            f"the true figures are {report.total / 1e9:.2f} B / {report.active / 1e6:.2f} M / "
            f"{100 * report.efficiency:.1f}%.")


def print_budget(preset: str = "recipe", scale_factor: float | None = None, extra_layers: int | None = None) -> None:
    p = get_preset(preset)
    changes = {k: v for k, v in (("scale_factor", scale_factor), ("extra_layers", extra_layers)) if v is not None}
    growth = dataclasses.replace(p.growth, **changes)
    table = budget_table(p.model, growth)  # raises on a bad growth request before printing
    print(f"Parameter budget, preset {p.name!r} (counted on the meta device)")
    print()
    for line in table:
        print(line)
    if p.name == "recipe" and not changes:
        print()
        print(recipe_discrepancy_line(phase_reports(p.model, growth)[3]))
