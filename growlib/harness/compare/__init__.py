"""When does growth pay? The grown path against fair baselines over a sweep of budgets (notebook 04).

``python -m growlib compare`` trains, at every budget and for every seed, on the same data and
the same fixed validation batches:

(i)   the grown path: dense -> MoE -> grown, the recipe's three phases, each transition carrying
      AdamW's state (growlib.carry) and continuing the path's one learning-rate schedule;
(ii)  the grown architecture from scratch, its learning rate swept (first seed) until the best
      is inside the sweep;
(iii) the small dense model trained on, from scratch, its rate swept the same way;
(iv)  the dense model of phase 1 trained on for phase 2's compute, against the upcycled MoE.

With ``--variants``: phases 2 and 3 again with other transitions (a fresh AdamW, a re-warmed
rate, a lower peak, no transition at all as the control), at the middle budget; ways of breaking
the copies' symmetry and gentler growths at the largest. Modules: :mod:`.setup` (settings and
budgets), :mod:`.paths` (what each path trains), :mod:`.tasks` (the work, cut into tasks),
:mod:`.runner` (running and keeping them), :mod:`.summary` (the figures).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..paths import RESULTS_DIR, RUNS_DIR
from .runner import Sweep, default_processes
from .setup import LR_FACTORS, LR_MAX_POINTS, Setup
from .summary import budget_entry, crossover, summarize

__all__ = ["DEFAULT_BUDGETS", "RESULTS_FILE", "Setup", "Sweep", "budget_entry", "compare", "crossover",
           "default_variants", "load_results", "summarize"]

DEFAULT_BUDGETS = (0.5, 1.25, 3.0, 8.0, 20.0)  # tokens per active parameter of the grown architecture
RESULTS_FILE = RESULTS_DIR / "growth_sweep.json"  # the committed sweep notebook 04 reads


def default_variants(budgets: tuple[float, ...], transitions_at: float | None = None,
                     growths_at: float | None = None) -> dict[str, tuple[float, ...]]:
    """Where each variant group runs: the transition variants at ``transitions_at`` (default: the middle
    budget), symmetry and gentler growth at ``growths_at`` (default: the largest). Both must be budgets."""
    ordered = sorted(budgets)
    for name, at in (("--transition-variants-at", transitions_at), ("--growth-variants-at", growths_at)):
        if at is not None and at not in ordered:
            raise ValueError(f"{name} {at:g} is not one of the budgets {ordered}: accepted one of them")
    middle = ordered[(len(ordered) - 1) // 2] if transitions_at is None else transitions_at
    largest = ordered[-1] if growths_at is None else growths_at
    return {"phase2": (middle,), "phase3": (middle,), "symmetry": (largest,), "gentle": (largest,)}


def compare(preset: str = "sweep", data: str = "world:100000", budgets: tuple[float, ...] = DEFAULT_BUDGETS,
            seeds: tuple[int, ...] = (0, 1, 2), variants: bool = False, json_path: str | None = None,
            processes: int | None = None, lr_factors: tuple[float, ...] = LR_FACTORS,
            lr_max_points: int = LR_MAX_POINTS, new_warmup: float = 0.25, transitions_at: float | None = None,
            growths_at: float | None = None) -> dict:
    """Every path at every budget for every seed (see the module's docstring); resumes ``json_path``.

    ``transitions_at``, ``growths_at``: where the variants run with ``variants`` (see default_variants).
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {list(seeds)} are invalid: accepted one or more distinct integers")
    if not budgets or any(b <= 0 for b in budgets) or len(set(budgets)) != len(budgets):
        raise ValueError(f"budgets {list(budgets)} are invalid: accepted distinct positive numbers of tokens "
                         f"per active parameter of the grown architecture (e.g. 0.5 3 20)")
    processes = default_processes() if processes is None else processes
    if processes < 1:
        raise ValueError(f"--processes {processes} is invalid: accepted 1 or more")
    if not variants and (transitions_at, growths_at) != (None, None):
        raise ValueError("--transition-variants-at and --growth-variants-at place the variants: accepted only "
                         "with --variants")
    placed = default_variants(budgets, transitions_at, growths_at) if variants else {}
    setup = Setup(preset, data, lr_factors=tuple(lr_factors), lr_max_points=lr_max_points, new_warmup=new_warmup)
    path = Path(json_path) if json_path else RUNS_DIR / "growth_sweep.json"
    sweep = Sweep(setup, tuple(sorted(budgets)), tuple(seeds), placed, path, processes)
    sweep.load()  # a file holding other settings fails here, before anything trains
    print(f"[compare] preset {preset!r}, data {data!r}, budgets {sorted(budgets)} tokens per parameter, seeds "
          f"{list(seeds)}, {processes} process{'es' if processes > 1 else ''}; results: {path}", flush=True)
    results = sweep.run()
    _report(results)
    return results


def _report(results: dict) -> None:
    for b in results["budgets"]:
        fv = b["final_val"]
        print(f"[compare] {b['tokens_per_param']:g} tokens/param ({b['flops'] / 1e12:.2f} TFLOPs, seeds {b['seeds']}): "
              + ", ".join(f"{k} {v['mean']:.4f}" for k, v in fv.items())
              + f"; saving vs scratch {b['saving_vs_scratch_percent']['mean']:+.1f}%, vs small "
              f"{b['saving_vs_small_percent']['mean']:+.1f}%")
    if results.get("crossover"):
        c = results["crossover"]
        print(f"[compare] the big model overtakes the small one at ~{c['tokens_per_param']:.1f} tokens/param "
              f"({c['flops'] / 1e12:.2f} TFLOPs)")
    print(f"[compare] {len(results['tasks'])} tasks, {results['seconds'] / 3600:.2f} h of task time, "
          f"{results['wall_seconds'] / 3600:.2f} h of wall time")


def load_results(name: str | None = None) -> dict:
    """The committed sweep (``results/growth_sweep.json``), or the file ``name`` in ``results/``."""
    path = RESULTS_FILE if name is None else RESULTS_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: `python -m growlib compare --variants --json {path}` "
                                "computes it")
    return json.loads(path.read_text())
