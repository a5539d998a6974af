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
    lines = ["BOUNDARY SUMMARY", DOUBLE]
    lines.append(f"  Phase 1 final loss      : {f(s['p1_final'])}")
    if "p2_first" in s:
        jump12 = s["p2_first"] - s["p1_final"]
        lines += [f"  Phase 2 first loss      : {f(s['p2_first'])}",
                  f"  Phase 2 final loss      : {f(s['p2_final'])}",
                  f"  Phase 1→2 jump          : {f(jump12)}  ← Small is good (train loss, batch noise included)"]
        if "val_after_2" in s:
            lines.append(f"  Phase 1→2 jump (exact)  : {s['val_after_2'] - s['val_before_2']:8.1e}"
                         "  ← same validation batches before/after upcycling")
        lines.append(f"  Phase 2 total drop      : {f(s['p2_first'] - s['p2_final'])}")
        if "val_after_2" in s and "val_end_2" in s:
            lines.append(f"  Phase 2 drop (val)      : {f(s['val_after_2'] - s['val_end_2'])}"
                         "  ← same validation batches, start to end of the phase")
    if "p3_first" in s:
        jump23 = s["p3_first"] - s["p2_final"]
        lines += ["", f"  Phase 3 first loss      : {f(s['p3_first'])}",
                  f"  Phase 3 final loss      : {f(s['p3_final'])}",
                  f"  Phase 2→3 jump          : {f(jump23)}  ← train loss, batch noise included"]
        if "val_after_3" in s:
            lines.append(f"  Phase 2→3 jump (exact)  : {s['val_after_3'] - s['val_before_3']:8.1e}"
                         "  ← VERY small means success!")
        lines.append(f"  Phase 3 total drop      : {f(s['p3_first'] - s['p3_final'])}")
        if "val_after_3" in s and "val_end_3" in s:
            lines.append(f"  Phase 3 drop (val)      : {f(s['val_after_3'] - s['val_end_3'])}"
                         "  ← same validation batches, start to end of the phase")
    lines.append(DOUBLE)
    return "\n".join(lines)
