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

from ..checkpoint import save_checkpoint
from ..config import GrowthConfig, Preset, TrainConfig
from ..data import TokenData
from ..memory import MemoryPlan, estimate_memory
from ..model import GPT
from ..train import History, PhaseHooks, PhaseResult, PhaseSchedule, evaluate, train_phase
from ..verify import Preservation
from .advice import recommendations
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
    checkpoint_every: int = 0  # periodic checkpoints (with optimizer state) every N steps; 0 = phase ends only
    verbose: bool = True

    def fingerprint(self) -> dict:
        """What must match for a run to be resumed."""
        return {"preset": self.preset.name, "model": dataclasses.asdict(self.preset.model),
                "train": dataclasses.asdict(self.train), "growth": dataclasses.asdict(self.growth),
                "data": self.data_spec}


@dataclass
class RunState:
    """What a run has measured so far."""

    results: dict[int, PhaseResult] = field(default_factory=dict)
    preservation: dict[int, Preservation] = field(default_factory=dict)
    figures: BoundaryFigures = field(default_factory=BoundaryFigures)
    runtime_bytes: float = 0.0  # memory in use before any model (runtime and data), for the plans
    plans: dict[int, MemoryPlan] = field(default_factory=dict)
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

    def say(self, text: str = "") -> None:
        if self.config.verbose:
            print(text)

    def eval(self, model: GPT) -> float:
        return evaluate(model, self.val_batches, self.config.device)

    def verify_tokens(self):
        """The fixed tokens every preservation check runs on: the first validation batch's inputs."""
        return self.val_batches[0][0]

    # ------------------------------------------------------------ checkpoints

    def save(self, model: GPT, name: str, phase: int, next_step: int | None = None) -> None:
        """Checkpoint ``model`` as a phase's end (or start) and point ``run_state.json`` at it."""
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

        def write(next_step: int, opt) -> None:
            tensors, groups = optimizer_tensors(opt)
            save_checkpoint(model, out, ROLLING, tensors=tensors,
                            extra={"phase": phase, "next_step": next_step, "optimizer": groups})
            self._point(phase, next_step, ROLLING)

        return write

    def _point(self, phase: int, next_step: int, name: str) -> None:
        write_state(self.config.out, ResumePoint(phase, next_step, name, self.state.figures.to_json(),
                                                 len(self.history.records), self.config.fingerprint()))

    # ------------------------------------------------------------ memory

    def plan_memory(self, model: GPT, phase: int) -> None:
        """The recipe's memory table before a phase; the recipe's advice where it will not fit."""
        c = self.config
        plan = dataclasses.replace(estimate_memory(model.cfg, c.train.batch_size, c.train.seq_len, lean=c.train.lean),
                                   runtime=self.state.runtime_bytes)
        self.state.plans[phase] = plan
        available = available_memory(c.device)
        for line in plan.lines(f"phase {phase}" + (" (lean mode)" if c.train.lean else ""), available):
            self.say(line)
        if not plan.fits(available):
            self.say(f"  ⚠️  phase {phase} is estimated at {plan.total / 1e9:.1f} GB, more than this machine's "
                     f"{available / 1e9:.1f} GB can give: expect an out-of-memory error or heavy swapping")
            for line in recommendations(c.preset.model, c.growth, c.train.batch_size, c.train.seq_len, available,
                                        self.state.runtime_bytes):
                self.say(line)
        reset_peak(c.device)

    def report_peak(self, phase: int) -> None:
        peak, what = measured_peak(self.config.device)
        self.state.peaks[phase] = peak
        est = self.state.plans.get(phase)
        versus = f" (estimate {est.total / 1e9:.2f} GB)" if est else ""
        self.say(f"  Memory: measured {what} {peak / 1e9:.2f} GB{versus}")

    # ------------------------------------------------------------ training

    def fit(self, model: GPT, phase: int, start_step: int = 0, optimizer_state: dict | None = None) -> PhaseResult:
        """Train ``model`` over the recipe's schedule of ``phase``, from ``start_step``."""
        c, h = self.config, self.hooks
        hooks = PhaseHooks(checkpoint=self.periodic(model, phase), checkpoint_every=c.checkpoint_every,
                           stop_requested=lambda: h.stop.requested, after_step=h.after_step,
                           on_eval=(lambda done, v: h.on_eval(phase, done, v)) if h.on_eval else None,
                           eval_every=h.eval_every)
        r = train_phase(model, self.data, c.train, PhaseSchedule.of(c.train, phase), c.device, self.history, hooks,
                        self.val_batches, start_step, optimizer_state, verbose=c.verbose)
        self.state.results[phase] = r
        self.report_peak(phase)
        start = self.state.figures[phase].val_after
        if start is not None and r.eval_loss >= start:
            self.say(f"  ⚠️  validation loss did not decrease over phase {phase} ({start:.4f} -> "
                     f"{r.eval_loss:.4f}): the learning rate may be too high or too low")
        return r
