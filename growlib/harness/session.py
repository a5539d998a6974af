"""A run's session: its settings, its data, what it has measured, and the steps every phase shares.

:class:`RunSettings` is what the run was asked to do (fixed when it starts and
compared when it resumes); :class:`RunState` is what it has measured so far;
:class:`Session` holds both with the data and the history, and knows how to
plan a phase's memory, train it, checkpoint it and report its peak.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import save_checkpoint
from ..config import GrowthConfig, Preset, TrainConfig
from ..data import TokenData
from ..memory import MemoryPlan, Overhead
from ..model import GPT
from ..parallel import dcp
from ..parallel.group import SINGLE, Parallel
from ..train import History, PhaseHooks, PhaseResult, PhaseSchedule, evaluate, train_phase
from ..verify import Preservation
from .advice import LEAN_WHAT, NotEnoughMemory, PhasePlan, best_option, recommendations
from .allocator import release_freed_memory
from .measure import available_memory, measured_peak, reset_peak
from .paths import shown_path
from .records import BoundaryFigures
from .resume import ROLLING, ResumePoint, optimizer_tensors, write_state


@dataclass(frozen=True)
class RunSettings:
    """What a run is asked to do: fixed when it starts."""

    preset: Preset
    train: TrainConfig
    growth: GrowthConfig
    device: str
    out: Path | None  # None: nothing is written (compare, tests)
    data_spec: str = "auto"
    max_docs: int | None = None  # training documents kept from the source (None: all)
    checkpoint_every: int = 0  # periodic checkpoints (with optimizer state) every N steps; 0 = phase ends only
    lean_mode: str = "auto"  # auto | always | never (growlib.harness.advice)
    verbose: bool = True

    def fingerprint(self) -> dict:
        """What must match for a run to be resumed: what is trained, not how (memory mode, compile)."""
        train = {k: v for k, v in dataclasses.asdict(self.train).items() if k not in ("lean", "compile")}
        return {"preset": self.preset.name, "model": dataclasses.asdict(self.preset.model), "train": train,
                "growth": dataclasses.asdict(self.growth), "data": self.data_spec,
                **({"max_docs": self.max_docs} if self.max_docs is not None else {})}


@dataclass
class RunState:
    """What a run has measured so far."""

    results: dict[int, PhaseResult] = field(default_factory=dict)
    preservation: dict[int, Preservation] = field(default_factory=dict)
    figures: BoundaryFigures = field(default_factory=BoundaryFigures)
    overhead: Overhead = Overhead()  # what the process holds besides the plans' tensors (runtime and data, heap)
    run_plan: dict[int, PhasePlan] = field(default_factory=dict)  # made before phase 1: which phases train lean
    peaks: dict[int, float] = field(default_factory=dict)


class StopFlag:
    """Set by the SIGINT handler; the training loop checks it between steps."""

    def __init__(self) -> None:
        self.requested = False


@dataclass
class SessionHooks:
    """What a caller of the phases may add: Ctrl-C, a per-step callback, a validation curve."""

    stop: StopFlag = field(default_factory=StopFlag)
    after_step: Callable[[int, int], None] | None = None  # (phase, step), after every step (tests)
    on_eval: Callable[[int, int, float], None] | None = None  # (phase, steps done, validation loss)
    eval_every: int = 0  # report to on_eval every N steps


@dataclass
class Session:
    """One run of the three phases: settings, data, fixed validation batches, history, results."""

    config: RunSettings
    data: TokenData
    history: History
    val_batches: list
    state: RunState = field(default_factory=RunState)
    hooks: SessionHooks = field(default_factory=SessionHooks)
    par: Parallel = SINGLE  # the processes of a torchrun run (growlib.parallel); one by default

    def say(self, text: str = "") -> None:
        if self.config.verbose:  # under torchrun, rank 0 only
            print(text)

    def available(self) -> float:
        """Bytes this process may plan for: on a CPU, the processes on this machine share its memory."""
        return available_memory(self.config.device) / self.par.memory_share(self.config.device)

    def eval(self, model: GPT) -> float:
        return evaluate(model, self.val_batches, self.config.device)

    def train_config(self, phase: int) -> TrainConfig:
        """The run's training settings, in lean mode where the run plan chose it for ``phase``."""
        plan = self.state.run_plan.get(phase)
        return dataclasses.replace(self.config.train, lean=plan.lean_chosen) if plan else self.config.train

    def verify_tokens(self):
        """The fixed tokens every preservation check runs on: the first validation batch's inputs."""
        return self.val_batches[0][0]

    # ------------------------------------------------------------ checkpoints

    def save(self, model: GPT, name: str, phase: int, next_step: int | None = None) -> None:
        """Checkpoint ``model`` as a phase's end (or start) and point ``run_state.json`` at it.

        Every process calls this; a sharded model is gathered and rank 0 writes one file.
        """
        if self.config.out is None:
            return
        full = self.par.gather(model)
        if self.par.is_main:
            self.save_full(full, name, phase, next_step)
        self.par.barrier()

    def save_full(self, model: GPT, name: str, phase: int, next_step: int | None = None) -> None:
        """:meth:`save` of a model with full tensors, by rank 0 (or the one process)."""
        out = self.config.out
        if out is None:
            return
        records = [r for r in self.history.records if r["phase"] == phase]
        extra = {"preset": self.config.preset.name, "phase": phase, "history": records,
                 "boundary": self.state.figures.to_json()}
        save_checkpoint(model, out, name, extra=extra)
        self.say(f"  [checkpoint] {shown_path(out / (name + '.safetensors'))}")
        self._point(phase, self.config.train.steps(phase) if next_step is None else next_step, name)

    def periodic(self, model: GPT, phase: int) -> Callable[[int, object], None] | None:
        """The callback that writes ``resume_latest`` (weights and optimizer state) during a phase."""
        out = self.config.out
        if out is None:
            return None
        if self.par.active:
            return self._periodic_sharded(model, phase)

        def write(next_step: int, opt) -> None:
            tensors, groups = optimizer_tensors(opt)
            save_checkpoint(model, out, ROLLING, tensors=tensors,
                            extra={"phase": phase, "next_step": next_step, "optimizer": groups,
                                   "lean": self.train_config(phase).lean})
            self._point(phase, next_step, ROLLING)

        return write

    def _periodic_sharded(self, model: GPT, phase: int) -> Callable[[int, object], None]:
        """Across processes: each writes its shards into a DCP folder (growlib.parallel.dcp)."""
        out = self.config.out

        def write(next_step: int, opt) -> None:
            name = dcp.save_resume(model, opt, out, phase, next_step, {"lean": False}, self.par)
            if self.par.is_main:
                self._point(phase, next_step, name)
                dcp.remove_older(out, keep=name)
            self.par.barrier()

        return write

    def _point(self, phase: int, next_step: int, name: str) -> None:
        write_state(self.config.out, ResumePoint(phase, next_step, name, self.state.figures.to_json(),
                                                 len(self.history.records), self.config.fingerprint()))

    # ------------------------------------------------------------ memory

    def _plan(self, phase: int) -> MemoryPlan | None:
        """The plan the run chose for ``phase`` before phase 1 (AdamW or lean)."""
        chosen = self.state.run_plan.get(phase)
        return chosen.chosen if chosen else None

    def plan_memory(self, phase: int) -> None:
        """The recipe's memory table before a phase; the recipe's advice where it will not fit."""
        c, lean, plan = self.config, self.train_config(phase).lean, self._plan(phase)
        available = self.available()
        for line in plan.lines(f"phase {phase}" + (" (lean mode)" if lean else ""), available):
            self.say(line)
        if not plan.fits(available):
            self.say(f"  ⚠️  phase {phase} is estimated at {plan.total / 1e9:.1f} GB, more than this machine's "
                     f"{available / 1e9:.1f} GB can give: expect an out-of-memory error or heavy swapping")
            for line in recommendations(c.preset.model, c.growth, c.train.batch_size, c.train.seq_len, available,
                                        self.state.overhead):
                self.say(line)
        release_freed_memory()  # the last phase's freed blocks are not this phase's peak
        reset_peak(c.device)

    def report_peak(self, phase: int) -> None:
        peak, what = measured_peak(self.config.device)
        peak = self.par.maximum(peak)
        self.state.peaks[phase] = peak
        if self.par.active:
            what += f", the largest of {self.par.world} processes"
        est = self._plan(phase)
        versus = f" (estimate {est.total / 1e9:.2f} GB)" if est else ""
        self.say(f"  Memory: measured {what} {peak / 1e9:.2f} GB{versus}")

    def _check_memory_now(self, phase: int) -> None:
        """Before the optimizer is allocated: stop with advice, rather than be killed, if the plan cannot fit now."""
        plan = self._plan(phase)
        if plan is None or self.config.lean_mode == "never" or self.config.device.startswith("cuda"):
            return  # CUDA: its allocator raises an error that fit() catches
        available = self.available()
        if not plan.fits(available):
            raise self._not_enough(phase, f"it is planned at {plan.total / 1e9:.1f} GB and this device can give "
                                          f"{available / 1e9:.1f} GB now")

    def _not_enough(self, phase: int, why: str) -> NotEnoughMemory:
        c = self.config
        lean = self.train_config(phase).lean
        advice = ("try a smaller growth: " + best_option(c.preset.model, c.growth, c.train.batch_size, c.train.seq_len,
                                                          self.available(), self.state.overhead)
                  if lean else f"resume with --lean ({LEAN_WHAT})")
        return NotEnoughMemory(f"phase {phase} stopped before training: {why}; {advice}")

    # ------------------------------------------------------------ training

    def fit(self, model: GPT, phase: int, start_step: int = 0,
            optimizer_state: dict | Callable[[object], None] | None = None) -> PhaseResult:
        """Train ``model`` over the recipe's schedule of ``phase``, from ``start_step``."""
        c, h, train = self.config, self.hooks, self.train_config(phase)
        self._check_memory_now(phase)
        # Ctrl-C reaches the processes at different moments: they stop together, at the first step any saw it
        stop = (lambda: self.par.maximum(float(h.stop.requested)) > 0) if self.par.active else (lambda: h.stop.requested)
        hooks = PhaseHooks(checkpoint=self.periodic(model, phase), checkpoint_every=c.checkpoint_every,
                           stop_requested=stop, after_step=h.after_step,
                           on_eval=(lambda done, v: h.on_eval(phase, done, v)) if h.on_eval else None,
                           eval_every=h.eval_every)
        try:
            r = train_phase(model, self.data, train, PhaseSchedule.of(train, phase), c.device, self.history, hooks,
                            self.val_batches, start_step, optimizer_state, verbose=c.verbose, par=self.par)
        except torch.cuda.OutOfMemoryError as exc:  # CUDA's allocator: nothing was killed, so say what to do
            raise self._not_enough(phase, f"the device ran out of memory ({str(exc).splitlines()[0]})") from None
        self.state.results[phase] = r
        self.report_peak(phase)
        start = self.state.figures[phase].val_after
        if start is not None and r.eval_loss >= start:
            self.say(f"  ⚠️  validation loss did not decrease over phase {phase} ({start:.4f} -> "
                     f"{r.eval_loss:.4f}): the learning rate may be too high or too low")
        return r
