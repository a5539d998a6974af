"""Running a comparison's tasks, in this process or in several, and keeping every result as it ends.

The results file is rewritten (atomically) after every task, with the summary of what is done so
far; a rerun with the same settings skips every task the file holds, so a comparison stops and
resumes at any task (Ctrl-C, a kill, a machine going away), and a partial file is a valid one.
With ``processes`` > 1 the tasks run in that many fresh processes of one thread each: on a CPU
small models leave a core idle between their operations, and two single-threaded processes do
more in an hour than one with two threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from ...cache import written_in_place
from ..paths import RUNS_DIR
from .paths import Change, from_scratch, grown_path, phase_variant
from .setup import Setup, Transition
from .summary import summarize
from .tasks import BASELINE_PHASE, VARIANT_GROUPS, Task, chosen_rate, ready

FORMAT = "growlib-sweep-1"
PHASE_OF_GROUP = {"phase2": 2, "phase3": 3, "symmetry": 3, "gentle": 3}


def _transitions(setup: Setup) -> dict[int, Transition]:
    return {2: setup.transition, 3: setup.transition}


def cache_folder(setup: Setup) -> Path:
    """Where the grown paths keep their phase-1 and phase-2 models for the tasks that start from them."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(setup), sort_keys=True).encode()).hexdigest()[:12]
    return RUNS_DIR / f"compare-{setup.preset}-{digest}"


def _kept(cache: str, t: Task, lr: float) -> Path:
    """The folder where the grown path of ``t``'s budget and seed at rate ``lr`` keeps its models."""
    return Path(cache) / f"{t.budget:g}-{t.seed}@{lr:.4g}"


def run_task(setup: Setup, key: str, cache: str, grown_lr: float | None = None) -> dict:
    """One task, in this process: its result (see growlib.harness.compare.paths).

    ``grown_lr``: the grown path's chosen rate at the task's budget (a variant starts from that path).
    """
    t = Task.parse(key)
    flops = setup.budget_flops(t.budget)
    steps = setup.grown_steps(flops)
    if "@" in t.path:
        kind, lr = t.path.split("@")
        if kind == "grown":
            return grown_path(setup, t.seed, steps, _transitions(setup), _kept(cache, t, float(lr)), float(lr))
        return from_scratch(setup, t.seed, flops, BASELINE_PHASE[kind], float(lr))
    folder = _kept(cache, t, grown_lr)
    if not (folder / "moe.json").exists():  # the kept models are gone: the grown path makes them again
        grown_path(setup, t.seed, steps, _transitions(setup), folder, grown_lr)
    if t.path == "dense_continued":
        return phase_variant(setup, t.seed, steps, _transitions(setup), folder, 2,
                             Change(no_transition=True, match_flops=True), grown_lr)
    group, name = t.path.split(":", 1)
    return phase_variant(setup, t.seed, steps, _transitions(setup), folder, PHASE_OF_GROUP[group],
                         VARIANT_GROUPS[group][name], grown_lr)


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


def _cost(setup: Setup, task: Task) -> float:
    """A task's rough compute, so the longest start first (a short one left for the end keeps both busy)."""
    share = {"dense_continued": 0.15}.get(task.path, 0.7 if ":" in task.path else 1.0)
    return setup.budget_flops(task.budget) * share


@dataclasses.dataclass
class Sweep:
    """A comparison: its setup, budgets (tokens per active parameter), seeds, the budgets each variant group
    runs at, its results file and how many processes run its tasks."""

    setup: Setup
    budgets: tuple[float, ...]
    seeds: tuple[int, ...]
    variants: dict[str, tuple[float, ...]]
    path: Path | None = None  # the results file (None: kept in memory only)
    processes: int = 1
    cache: Path | None = None  # where grown paths keep their models (default: cache_folder(setup))
    say: Callable[[str], None] = print
    _wall: tuple[float, float] = dataclasses.field(default=(0.0, 0.0), init=False, repr=False)  # set by run()

    def load(self) -> dict:
        """The results so far: the file's, when it holds this setup's; a clear error when it holds another's."""
        setup = json.loads(json.dumps(dataclasses.asdict(self.setup)))  # as the file holds it (lists, not tuples)
        fresh = {"format": FORMAT, "setup": setup, "tasks": {}, "task_seconds": 0.0,
                 "wall_seconds": 0.0}
        if self.path is None or not self.path.exists():
            return fresh
        results = json.loads(self.path.read_text())
        if results.get("format") != FORMAT or results.get("setup") != fresh["setup"]:
            raise ValueError(f"{self.path} holds a comparison with other settings ({results.get('setup')}): "
                             f"accepted the same settings to resume it, or another --json")
        return results

    def save(self, results: dict) -> None:
        results.update(summarize(self.setup, results["tasks"], self.budgets, self.seeds, self.variants))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with written_in_place(self.path) as tmp:
                tmp.write_text(json.dumps(results, indent=1) + "\n")

    def run(self) -> dict:
        results = self.load()
        self._wall = (results["wall_seconds"], time.perf_counter())  # so far, and when this run started
        try:
            if self.processes > 1:
                self._in_processes(results)
            else:
                self._here(results)
        finally:
            self._count_wall(results)
            self.save(results)
        return results

    def _count_wall(self, results: dict) -> None:
        """The wall time of earlier runs plus this one's so far (kept with every task, so a killed run counts)."""
        before, started = self._wall
        results["wall_seconds"] = before + time.perf_counter() - started

    def _pending(self, done: dict, running: set[str]) -> list[Task]:
        tasks = [t for t in ready(self.setup, done, self.budgets, self.seeds, self.variants) if t.key not in running]
        return sorted(tasks, key=lambda t: -_cost(self.setup, t))

    def _grown_lr(self, done: dict, task: Task) -> float | None:
        return chosen_rate(self.setup, done, task.budget, "grown", self.seeds[0])

    def _record(self, results: dict, key: str, result: dict) -> None:
        results["tasks"][key] = result
        results["task_seconds"] += result["seconds"]
        self._count_wall(results)
        self.say(f"[compare] {key}: final validation loss {result['final_val']:.4f} ({result['seconds']:.0f} s; "
                 f"{len(results['tasks'])} tasks done)")
        self.save(results)

    def _here(self, results: dict) -> None:
        cache = str(self.cache or cache_folder(self.setup))
        while pending := self._pending(results["tasks"], set()):
            task = pending[0]
            self._record(results, task.key, run_task(self.setup, task.key, cache, self._grown_lr(results["tasks"], task)))

    def _in_processes(self, results: dict) -> None:
        cache, running = str(self.cache or cache_folder(self.setup)), {}
        with ProcessPoolExecutor(self.processes, mp_context=get_context("spawn"), initializer=_one_thread) as pool:
            while True:
                for task in self._pending(results["tasks"], set(running.values()))[:self.processes - len(running)]:
                    lr = self._grown_lr(results["tasks"], task)
                    running[pool.submit(run_task, self.setup, task.key, cache, lr)] = task.key
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._record(results, running.pop(future), future.result())


def default_processes() -> int:
    """Two single-threaded processes on a machine of two or more cores (see the module's docstring)."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1
