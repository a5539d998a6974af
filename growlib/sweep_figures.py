"""The figures of notebook 04: a budget sweep's results (``python -m growlib compare``), drawn.

Each function takes the results dict (``growlib.harness.compare.load_results()``) and an Axes
(or makes one) and returns the Axes. Means over seeds are drawn with ± one standard deviation.
"""

from __future__ import annotations

import statistics

import matplotlib.pyplot as plt
import numpy as np

PATH_STYLE = {  # path key -> (label, colour)
    "grown": ("grown path (dense → MoE → grown)", "tab:green"),
    "scratch": ("grown architecture from scratch", "tab:red"),
    "small": ("small dense model from scratch", "tab:blue"),
    "dense_continued": ("dense model continued (phase 2)", "tab:gray"),
}
SAVING_STYLE = {"saving_vs_scratch_percent": ("against the grown architecture from scratch", "tab:red"),
                "saving_vs_small_percent": ("against the small model from scratch", "tab:blue"),
                "saving_given_small_percent": ("with the dense model already trained (phases 2-3 only)",
                                               "tab:purple")}


def _axes(ax, size=(7, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def plot_final_losses(results: dict, ax=None, paths=("grown", "scratch", "small")):
    """Final validation loss of each path against the budget's FLOPs (log-log), the crossover marked."""
    ax = _axes(ax)
    budgets = results["budgets"]
    flops = np.array([b["flops"] for b in budgets])
    for path in paths:
        label, colour = PATH_STYLE[path]
        mean = [b["final_val"][path]["mean"] for b in budgets]
        std = [b["final_val"][path]["std"] for b in budgets]
        ax.errorbar(flops, mean, yerr=std, marker="o", ms=4, capsize=3, color=colour, label=label)
    cross = results.get("crossover")
    if cross:
        ax.axvline(cross["flops"], color="k", ls=":", lw=1)
        # left of the line, mid-height: the budgets' names sit along the top edge
        ax.annotate(f"big model overtakes \nsmall: ~{cross['tokens_per_param']:.1f} tokens/param ",
                    (cross["flops"], 0.6), xycoords=("data", "axes fraction"), ha="right", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute of every path (FLOPs)")
    ax.set_ylabel("final validation loss (nats/token)")
    for b in budgets:  # the budget's name under each point
        ax.annotate(f"{b['tokens_per_param']:g}", (b["flops"], 1), xycoords=("data", "axes fraction"),
                    xytext=(0, -24), textcoords="offset points", ha="center", fontsize=7, color="0.4")
    ax.set_title("Final loss against compute (grey numbers: tokens per active parameter of the grown model)",
                 fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_savings(results: dict, ax=None):
    """Each saving of the grown path against the budget, in percent of the baseline's compute."""
    ax = _axes(ax)
    budgets = results["budgets"]
    tpp = [b["tokens_per_param"] for b in budgets]
    for key, (label, colour) in SAVING_STYLE.items():
        ax.errorbar(tpp, [b[key]["mean"] for b in budgets], yerr=[b[key]["std"] for b in budgets], marker="o", ms=4,
                    capsize=3, color=colour, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("budget (tokens per active parameter of the grown architecture)")
    ax.set_ylabel("compute saved by growing (%)")
    ax.set_title("What growth saves, budget by budget (< 0: it costs more)", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_budget_curves(entry: dict, ax=None):
    """One budget's validation curves against compute, each path's mean over seeds with its spread."""
    ax = _axes(ax)
    for path, (label, colour) in PATH_STYLE.items():
        c = entry["curves"][path]
        mean, std = np.array(c["val_mean"]), np.array(c["val_std"])
        ax.plot(c["flops"], mean, color=colour, label=label, lw=1.4)
        ax.fill_between(c["flops"], mean - std, mean + std, color=colour, alpha=0.2, lw=0)
    for start in entry["phase_start_flops"][1:]:
        ax.axvline(start, color="tab:green", ls=":", lw=1)
    floor = min(min(entry["curves"][p]["val_mean"]) for p in PATH_STYLE)
    ax.set_ylim(floor - 0.1, floor + 2.0)  # past the first steps' fall, where the paths part
    ax.set_xlabel("training FLOPs so far")
    ax.set_ylabel("validation loss")
    ax.set_title(f"{entry['tokens_per_param']:g} tokens/param: dotted, the grown path's phases 2 and 3 begin",
                 fontsize=9)
    ax.legend(fontsize=7)
    return ax


def _mean_points(found: list[dict]) -> tuple[list[int], list[float]]:
    """The first tenth of a phase, as (steps, mean over seeds of the loss minus the loss before it)."""
    by_step: dict[int, list[float]] = {}
    for boundary in found:
        for step, v in boundary["points"]:
            by_step.setdefault(step, []).append(v - boundary["before"])
    steps = sorted(s for s, v in by_step.items() if len(v) == len(found))
    return steps, [statistics.mean(by_step[s]) for s in steps]


def plot_rise(results: dict, phase: int, names: tuple[str, ...], ax=None):
    """The validation loss just after the transition into ``phase``, minus the loss just before it:
    the default transition and each named variant, means over seeds (at the variants' budget)."""
    ax = _axes(ax, (7, 3.6))
    budget, rate = results["post_growth_rise"]["budget"], results["post_growth_rise"]["grown_lr"]
    tasks = results["tasks"]
    grown = [t["boundaries"][str(phase)] for k, t in tasks.items() if k.startswith(f"{budget:g}/") and
             k.endswith(f"/grown@{rate:.4g}")]
    series = {"carried, continued (the default)": grown}
    for name in names:
        series[name] = [t["boundary"] for k, t in tasks.items()
                        if k.startswith(f"{budget:g}/") and k.endswith(f"/phase{phase}:{name}")]
    for name, found in series.items():
        if found:
            steps, mean = _mean_points(found)
            ax.plot(steps, mean, marker=".", ms=3, lw=1.2, label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel(f"step of phase {phase}")
    ax.set_ylabel("validation loss − loss before (nats)")
    ax.set_title(f"The first tenth of phase {phase} ({budget:g} tokens/param, mean over seeds)", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_clone_traces(results: dict, ax=None):
    """1 − cos(unit, its copy) over phase 3, for the default growth and each symmetry-breaking variant."""
    ax = _axes(ax, (7, 3.6))
    sym = results.get("symmetry", {})
    for name, v in sym.items():
        if isinstance(v, dict) and v.get("trace"):
            steps, gaps = zip(*v["trace"])
            ax.plot(steps, gaps, lw=1.2, label=name if name != "default" else "default (split noise 0.02)")
    ax.set_yscale("log")
    ax.set_xlabel("step of phase 3")
    ax.set_ylabel("1 − cos(unit, its copy)")
    ax.set_title(f"Do the copies learn apart? ({sym.get('budget', 0):g} tokens/param, first seed)", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_lr_sweeps(results: dict, kind: str = "scratch", ax=None):
    """The first seed's learning-rate sweep of a baseline at every budget: final loss against the rate."""
    ax = _axes(ax, (6, 3.6))
    for b in results["budgets"]:
        sweep = b[f"{kind}_lr_sweep"]
        ax.plot([r["lr"] for r in sweep], [r["final_val"] for r in sweep], marker="o", ms=3,
                label=f"{b['tokens_per_param']:g} tokens/param")
        best = min(sweep, key=lambda r: r["final_val"])
        ax.plot([best["lr"]], [best["final_val"]], marker="*", ms=10, color="k")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final validation loss")
    ax.set_title(f"{PATH_STYLE[kind][0]}: the rate sweep (★ chosen)", fontsize=9)
    ax.legend(fontsize=7)
    return ax


__all__ = ["plot_budget_curves", "plot_clone_traces", "plot_final_losses", "plot_lr_sweeps", "plot_rise",
           "plot_savings"]
