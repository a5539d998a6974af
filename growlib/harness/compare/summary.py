"""A comparison's figures, from the tasks done so far: per budget, where the big model overtakes the small
one, the rise after each transition, whether the copies learn apart, whether a gentler growth pays.

Every figure over seeds is a mean and a sample standard deviation (growlib.curves.spread); two
figures are *separated* when their means differ by more than the larger of the two deviations.
"""

from __future__ import annotations

import math

from ...curves import Curve, curves_over_seeds, percent, saving, separated, spread
from .setup import Setup
from .tasks import (BASELINES, GENTLE_VARIANTS, PHASE2_VARIANTS, PHASE3_VARIANTS, SWEPT, SYMMETRY_VARIANTS,
                    chosen_rate, lr_key, sweep_of)

PATHS = ("grown", "scratch", "small", "dense_continued", "moe")


def _curve(result: dict, label: str = "") -> Curve:
    return Curve(label, list(result["curve"]["flops"]), list(result["curve"]["val"]))


def _phase_reached(grown: dict, target: float) -> int | None:
    """The phase of the grown path in which it first reaches ``target`` (None: never)."""
    f = _curve(grown).reach(target)
    return None if f is None else max(i + 1 for i, start in enumerate(grown["phase_start_flops"]) if f >= start)


def _given_small(grown: dict, scratch: dict) -> tuple[float, bool]:
    """For a learner who has the trained dense model: phases 2-3's FLOPs against what the big model from
    scratch needs to reach the grown path's final loss. (saving, whether it is only a lower bound)"""
    spent = grown["curve"]["flops"][-1] - grown["phase_start_flops"][1]
    needed = _curve(scratch).reach(grown["final_val"])
    if needed is None:  # scratch never gets there within the budget: it would need more than all of it
        return 1.0 - spent / scratch["curve"]["flops"][-1], True
    return 1.0 - spent / needed, False


def _seed_runs(setup: Setup, done: dict, budget: float, seeds: tuple[int, ...]) -> list[dict]:
    """Per seed whose every path is done at ``budget``: its grown path, baselines and dense model continued."""
    rates = {kind: chosen_rate(setup, done, budget, kind, seeds[0]) for kind in SWEPT}
    if None in rates.values():
        return []
    runs = []
    for seed in seeds:
        keys = {"dense_continued": "dense_continued", **{kind: lr_key(kind, rate) for kind, rate in rates.items()}}
        found = {path: done.get(f"{budget:g}/{seed}/{key}") for path, key in keys.items()}
        if all(found.values()):
            runs.append({"seed": seed, **found})
    return runs


def _lr_sweeps(setup: Setup, done: dict, budget: float, seed: int) -> dict:
    out = {}
    for kind in SWEPT:
        tried = sweep_of(done, budget, kind, seed)
        best = min(tried, key=tried.get)
        out[f"{kind}_lr_sweep"] = [{"lr": lr, "final_val": v} for lr, v in sorted(tried.items())]
        out[f"{kind}_lr"] = best
        out[f"{kind}_lr_points"] = len(tried)
        out[f"{kind}_lr_interior"] = min(tried) < best < max(tried)
    return out


def _savings(runs: list[dict]) -> dict:
    given = [_given_small(r["grown"], r["scratch"]) for r in runs]
    return {"saving_vs_scratch_percent": percent(spread([saving(_curve(r["grown"]), _curve(r["scratch"]))
                                                         for r in runs])),
            "saving_vs_small_percent": percent(spread([saving(_curve(r["grown"]), _curve(r["small"])) for r in runs])),
            "saving_given_small_percent": percent(spread([g for g, _ in given])),
            "saving_given_small_is_lower_bound": [bound for _, bound in given],
            "target_reached_in_phase": {kind: [_phase_reached(r["grown"], r[kind]["final_val"]) for r in runs]
                                        for kind in BASELINES}}


def budget_entry(setup: Setup, done: dict, budget: float, seeds: tuple[int, ...]) -> dict | None:
    """The figures of one budget, over the seeds whose every path is done there (None: none is yet)."""
    runs = _seed_runs(setup, done, budget, seeds)
    if not runs:
        return None
    final = {path: spread([r[path]["final_val"] for r in runs]) for path in PATHS[:4]}
    final["moe"] = spread([r["grown"]["boundaries"]["3"]["before"] for r in runs])
    return {"tokens_per_param": budget, "flops": setup.budget_flops(budget), "seeds": [r["seed"] for r in runs],
            "grown_steps": list(setup.grown_steps(setup.budget_flops(budget))),
            "phase_start_flops": runs[0]["grown"]["phase_start_flops"],
            "final_val": final, **_lr_sweeps(setup, done, budget, seeds[0]), **_savings(runs),
            "rise": {f"phase{p}": spread([r["grown"]["boundaries"][str(p)]["rise"] for r in runs]) for p in (2, 3)},
            "train_val_gap": {path: spread([r[path]["final_val"] - r[path]["train_fit"] for r in runs])
                              for path in ("grown", "scratch", "small")},
            "curves": {path: curves_over_seeds([r[path]["curve"] for r in runs]) for path in PATHS[:4]}}


def crossover(budgets: list[dict]) -> dict | None:
    """Where the big model from scratch first overtakes the small one trained on, between two budgets.

    Interpolated linearly in log-FLOPs on the difference of their mean final losses; with what
    growth saves there (each saving interpolated the same way). None while the sweep does not
    bracket it.
    """
    for a, b in zip(budgets, budgets[1:]):
        da = a["final_val"]["scratch"]["mean"] - a["final_val"]["small"]["mean"]
        db = b["final_val"]["scratch"]["mean"] - b["final_val"]["small"]["mean"]
        if da > 0 >= db:
            w = da / (da - db)  # where the difference crosses 0, as a share of the log-FLOPs interval
            at = lambda x, y: x + w * (y - x)
            flops = 10 ** at(math.log10(a["flops"]), math.log10(b["flops"]))
            return {"flops": flops, "tokens_per_param": 10 ** at(math.log10(a["tokens_per_param"]),
                                                                  math.log10(b["tokens_per_param"])),
                    "between": [a["tokens_per_param"], b["tokens_per_param"]],
                    **{key: at(a[key]["mean"], b[key]["mean"]) for key in
                       ("saving_vs_scratch_percent", "saving_vs_small_percent", "saving_given_small_percent")}}
    return None


def _variants(done: dict, budget: float, seeds: tuple[int, ...], group: str, names) -> dict[str, dict[int, dict]]:
    """Each variant's results by seed, for the seeds that ran it, by name."""
    out = {}
    for name in names:
        found = {seed: done[k] for seed in seeds if (k := f"{budget:g}/{seed}/{group}:{name}") in done}
        if found:
            out[name] = found
    return out


def _clone_gap(result: dict) -> float:
    """1 - cos of the copies at the end of phase 3 (NaN for a growth that copied no unit: depth only)."""
    trace = result["clone_one_minus_cos"]
    return trace[-1][1] if trace else float("nan")


def _chosen_grown(setup: Setup, done: dict, budget: float, seeds: tuple[int, ...]) -> dict[int, dict]:
    """The grown path at its chosen rate, by seed, for the seeds that ran it (empty while its sweep goes on)."""
    rate = chosen_rate(setup, done, budget, "grown", seeds[0])
    if rate is None:
        return {}
    return {seed: done[k] for seed in seeds if (k := f"{budget:g}/{seed}/{lr_key('grown', rate)}") in done}


def _rises(setup: Setup, done: dict, seeds: tuple[int, ...], at: tuple[float, ...]) -> dict:
    """The rise after each transition: the default (grown path) and each variant, at the variants' budget."""
    if not at:
        return {}
    budget = at[0]
    out = {"budget": budget, "grown_lr": chosen_rate(setup, done, budget, "grown", seeds[0])}
    for phase, names in ((2, PHASE2_VARIANTS), (3, PHASE3_VARIANTS)):
        grown = list(_chosen_grown(setup, done, budget, seeds).values())
        entry = {"default": spread([g["boundaries"][str(phase)]["rise"] for g in grown])} if grown else {}
        for name, found in _variants(done, budget, seeds, f"phase{phase}", names).items():
            entry[name] = {**spread([r["rise"] for r in found.values()]),
                           "final_val": spread([r["final_val"] for r in found.values()])}
        out[f"phase{phase}"] = entry
    return out


def _symmetry_and_gentle(setup: Setup, done: dict, seeds: tuple[int, ...], variants: dict) -> dict:
    out = {}
    for group, names in (("symmetry", SYMMETRY_VARIANTS), ("gentle", GENTLE_VARIANTS)):
        if not variants.get(group):
            continue
        budget = variants[group][0]
        grown = _chosen_grown(setup, done, budget, seeds)
        entry = {"budget": budget}
        if grown:
            entry["default"] = {"one_minus_cos": spread([_clone_gap(g) for g in grown.values()]),
                                "final_val": spread([g["final_val"] for g in grown.values()]),
                                "trace": next(iter(grown.values()))["clone_one_minus_cos"]}
        for name, found in _variants(done, budget, seeds, group, names).items():
            paired = [r["final_val"] - grown[seed]["final_val"] for seed, r in found.items() if seed in grown]
            entry[name] = {"one_minus_cos": spread([_clone_gap(r) for r in found.values()]),
                           "final_val": spread([r["final_val"] for r in found.values()]),
                           "minus_default": spread(paired), "trace": next(iter(found.values()))["clone_one_minus_cos"]}
        out[group] = entry
    return out


def summarize(setup: Setup, done: dict, budgets: tuple[float, ...], seeds: tuple[int, ...], variants: dict) -> dict:
    """Every figure of the comparison that the tasks ``done`` so far allow."""
    entries = [e for b in sorted(budgets) if (e := budget_entry(setup, done, b, seeds)) is not None]
    return {"budgets": entries, "crossover": crossover(entries), "post_growth_rise": _rises(setup, done, seeds,
                                                                                            variants.get("phase3", ())),
            **_symmetry_and_gentle(setup, done, seeds, variants),
            "seconds": sum(r["seconds"] for r in done.values()), "grown_active_params": setup.grown_active_params(),
            "seeds": list(seeds), "budgets_requested": sorted(budgets)}
