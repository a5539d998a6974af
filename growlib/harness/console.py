"""The recipe's console format: phase banners and the BOUNDARY SUMMARY.

The banners and the summary are built here (the step line is
:func:`growlib.train.step_line`), so the notebooks, the command and the layout
test share one definition.
"""

from __future__ import annotations

from ..accounting import ParamReport
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
