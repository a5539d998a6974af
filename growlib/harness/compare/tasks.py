"""The comparison's work, cut into tasks: one path, at one budget, for one seed (at one learning rate).

A task is named ``<budget>/<seed>/<path>``, the budget in tokens per active parameter of the grown
architecture: ``3/0/grown@0.003``, ``20/1/small@0.0015``, ``3/2/phase3:fresh, re-warmed``. Which
tasks can run depends on which are done (:func:`ready`): every path's learning-rate sweep (the
grown path's, and each baseline's) grows from what the first seed found, the other seeds train
at its best rate, the variants start from the kept models of the grown path at its best rate. A task's result is a plain dict, written to the results file as soon
as it ends, so a comparison stops and resumes at any task.
"""

from __future__ import annotations

from dataclasses import dataclass

from .paths import Change
from .setup import Setup, Transition

BASELINES = ("scratch", "small")  # the grown architecture from scratch, the small dense model from scratch
SWEPT = ("grown", *BASELINES)  # the paths whose peak learning rate is swept
BASELINE_PHASE = {"scratch": 3, "small": 1}  # whose model each trains

# the variants of notebook 04, each re-running one phase from the grown path's kept model
PHASE2_VARIANTS = {
    "no transition (control)": Change(no_transition=True),
    "fresh, re-warmed (the recipe's)": Change(Transition("fresh", "rewarm")),
    "carried, re-warmed": Change(Transition("carried", "rewarm")),
    "fresh, schedule continued": Change(Transition("fresh", "continue")),
}
PHASE3_VARIANTS = {
    **PHASE2_VARIANTS,
    "fresh, re-warmed to half the peak": Change(Transition("fresh", "rewarm", peak=0.5)),
    "carried, re-warmed to half the peak": Change(Transition("carried", "rewarm", peak=0.5)),
}
SYMMETRY_VARIANTS = {  # at --growth-variants-at (default: the largest budget): do the copies learn apart?
    "split noise x10": Change(growth={"noise": 0.2}),
    "asymmetric split (0.8 / 0.2)": Change(asymmetry=0.3),
}
GENTLE_VARIANTS = {  # at --growth-variants-at (default: the largest budget): a smaller growth, for the same compute
    "depth only (+2 layers)": Change(growth={"scale_factor": 1.0}),
}
VARIANT_GROUPS = {"phase2": PHASE2_VARIANTS, "phase3": PHASE3_VARIANTS, "symmetry": SYMMETRY_VARIANTS,
                  "gentle": GENTLE_VARIANTS}


@dataclass(frozen=True)
class Task:
    budget: float  # tokens per active parameter of the grown architecture
    seed: int
    path: str  # grown@<lr> | dense_continued | scratch@<lr> | small@<lr> | <group>:<variant>

    @property
    def key(self) -> str:
        return f"{self.budget:g}/{self.seed}/{self.path}"

    @classmethod
    def parse(cls, key: str) -> "Task":
        budget, seed, path = key.split("/", 2)
        return cls(float(budget), int(seed), path)


def lr_key(kind: str, lr: float) -> str:
    """``small@0.0015``: a baseline at one learning rate (4 significant digits name the rate)."""
    return f"{kind}@{lr:.4g}"


def sweep_of(done: dict, budget: float, kind: str, seed: int) -> dict[float, float]:
    """``seed``'s learning-rate sweep of ``kind`` at ``budget`` so far: {rate: final validation loss}."""
    prefix = f"{budget:g}/{seed}/{kind}@"
    return {float(k[len(prefix):]): r["final_val"] for k, r in done.items() if k.startswith(prefix)}


def next_rate(setup: Setup, tried: dict[float, float]) -> float | None:
    """The rate to try next when the best so far is at an edge of the sweep; None when it is interior or at the limit."""
    best = min(tried, key=tried.get)
    if len(tried) >= setup.lr_max_points or min(tried) < best < max(tried):
        return None
    return best / 2 if best == min(tried) else best * 2


def first_rates(setup: Setup) -> list[float]:
    return [float(f"{f * setup.train.lr_phase1:.4g}") for f in setup.lr_factors]


def chosen_rate(setup: Setup, done: dict, budget: float, kind: str, seed: int) -> float | None:
    """The best rate of ``seed``'s finished sweep (interior, or at the stated limit); None while it goes on."""
    tried = sweep_of(done, budget, kind, seed)
    if any(r not in tried for r in first_rates(setup)) or next_rate(setup, tried) is not None:
        return None
    return min(tried, key=tried.get)


def _sweep_tasks(setup: Setup, done: dict, budget: float, seeds: tuple[int, ...]) -> list[Task]:
    """The first seed sweeps each path's rate (growing it past an edge); the other seeds then train its best."""
    tasks, first = [], seeds[0]
    for kind in SWEPT:
        tried = sweep_of(done, budget, kind, first)
        missing = [r for r in first_rates(setup) if r not in tried]
        if missing:
            tasks += [Task(budget, first, lr_key(kind, r)) for r in missing]
        elif (rate := next_rate(setup, tried)) is not None:
            tasks.append(Task(budget, first, lr_key(kind, rate)))
        else:
            best = min(tried, key=tried.get)
            tasks += [Task(budget, seed, lr_key(kind, best)) for seed in seeds[1:]]
    return tasks


def ready(setup: Setup, done: dict, budgets: tuple[float, ...], seeds: tuple[int, ...],
          variants: dict[str, tuple[float, ...]]) -> list[Task]:
    """Every task that can run now and has not run: ``variants`` maps a group to the budgets it runs at."""
    tasks: list[Task] = []
    for budget in budgets:
        tasks += _sweep_tasks(setup, done, budget, seeds)
        rate = chosen_rate(setup, done, budget, "grown", seeds[0])
        for seed in seeds:
            if rate is None or f"{budget:g}/{seed}/{lr_key('grown', rate)}" not in done:
                continue  # the dense model continued and the variants start from the chosen grown path
            tasks.append(Task(budget, seed, "dense_continued"))
            for group, at in variants.items():
                if budget in at:
                    tasks += [Task(budget, seed, f"{group}:{name}") for name in VARIANT_GROUPS[group]]
    return [t for t in tasks if t.key not in done]
