"""The seed's console format: phase banners, step lines, the BOUNDARY SUMMARY.

Every line the command prints about a phase is built here, so the notebooks,
the command and the layout test share one definition.
"""

from __future__ import annotations

from .accounting import ParamReport

WIDTH = 60
RULE = "=" * WIDTH
THIN = "  " + "─" * 57
DOUBLE = "═" * WIDTH


def format_lr(lr: float) -> str:
    """3e-4 -> '0.0003', 8e-5 -> '8e-05' (Python's repr, as the seed prints)."""
    return repr(float(lr))


def phase_banner(title: str, steps: int, lr: float, device: str, report: ParamReport) -> str:
    lines = [RULE, f"  {title}", f"  Steps: {steps}  |  LR: {format_lr(lr)}  |  Device: {device}", THIN]
    lines += report.lines()
    lines.append(THIN)
    if report.is_moe:
        lines.append(report.efficiency_line())
    lines.append(RULE)
    return "\n".join(lines)


def section_banner(title: str) -> str:
    return "\n".join([RULE, f"  {title}", RULE])


def step_line(step: int, loss: float, elapsed: float) -> str:
    return f"  step {step:4d} | loss {loss:.4f} | {elapsed:.1f}s"


def boundary_summary(s: dict) -> str:
    """The seed's BOUNDARY SUMMARY, plus the exact jumps on fixed validation batches.

    ``s`` holds p1_final, p2_first, p2_final, p3_first, p3_final (training losses)
    and, where measured, validation losses on the fixed batches: val_before_N and
    val_after_N around each transition, val_end_N at the end of phase N.
    """
    f = lambda v: f"{v:8.4f}"
    lines = ["BOUNDARY SUMMARY", DOUBLE, f"  Phase 1 final loss      : {f(s['p1_final'])}"]
    notes = {2: ("← Small is good (train loss, batch noise included)",
                 "← same validation batches before/after upcycling"),
             3: ("← train loss, batch noise included", "← VERY small means success!")}
    for p in (2, 3):
        if f"p{p}_first" not in s:
            break
        if p == 3:
            lines.append("")  # the seed's blank line between the two transitions
        lines.append(f"  Phase {p} first loss      : {f(s[f'p{p}_first'])}")
        lines.append(f"  Phase {p} final loss      : {f(s[f'p{p}_final'])}")
        lines.append(f"  Phase {p - 1}→{p} jump          : {f(s[f'p{p}_first'] - s[f'p{p - 1}_final'])}  {notes[p][0]}")
        if f"val_after_{p}" in s:
            exact = s[f"val_after_{p}"] - s[f"val_before_{p}"]
            lines.append(f"  Phase {p - 1}→{p} jump (exact)  : {exact:8.1e}  {notes[p][1]}")
        lines.append(f"  Phase {p} total drop      : {f(s[f'p{p}_first'] - s[f'p{p}_final'])}")
        if f"val_after_{p}" in s and f"val_end_{p}" in s:
            lines.append(f"  Phase {p} drop (val)      : {f(s[f'val_after_{p}'] - s[f'val_end_{p}'])}"
                         "  ← same validation batches, start to end of the phase")
    lines.append(DOUBLE)
    return "\n".join(lines)
