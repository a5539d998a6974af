"""One phase's training, driven: growlib.train's loop, with the run's console, checkpoints and stop flag.

:func:`growlib.train.train_steps` yields after every step; :class:`PhaseTrainer` calls the
run's objects there, in this order: the console and history (:class:`~.console.PhaseLog`),
the session's ``after_step`` hook (tests), the validation curve (:class:`ValidationCurve`,
when asked for), the stop flag (Ctrl-C: write a checkpoint, raise ``RunInterrupted``), the
periodic checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..model import GPT
from ..train import PhaseSpec, TrainedStep, end_phase, evaluate, phase_optimizer, train_steps
from .checkpoints.saver import Checkpointer
from .console import PhaseLog
from .history import History, PhaseResult
from .stops import RunInterrupted


@dataclass
class ValidationCurve:
    """The validation loss every ``every`` steps of a phase and after its last, handed to ``record``.

    ``dense_every`` > 0 adds a point every ``dense_every`` steps while at most ``dense_until`` steps
    are done: the shape of the loss just after a transition. A curve that also wants the model
    at each point (a similarity, say) reads it in ``record`` through its own reference.
    """

    every: int
    record: Callable[[int, float], None]  # (steps done, validation loss)
    dense_every: int = 0
    dense_until: int = 0

    def due(self, done: int, steps: int) -> bool:
        dense = self.dense_every and done <= self.dense_until and done % self.dense_every == 0
        return bool(dense or (self.every and done % self.every == 0) or done == steps)

    def after_step(self, done: int, steps: int, model: GPT, s) -> None:
        if s.val_batches and self.due(done, steps):
            self.record(done, s.eval(model))


class PhaseTrainer:
    """Trains phases of a session (growlib.harness.session.Session) in place.

    ``curve``: a validation curve to record; ``history``: where the logged steps go (default:
    the session's); ``verbose`` False keeps the console quiet (the session's own setting otherwise).
    """

    def __init__(self, s, curve: ValidationCurve | None = None, history: History | None = None,
                 verbose: bool | None = None) -> None:
        self.s, self.curve = s, curve
        self.history = s.history if history is None else history
        self.verbose = s.verbose if verbose is None else verbose and s.verbose
        self.checkpoints = Checkpointer(s)
        self.optimizer = None  # the optimizer of the phase trained last (a transition may carry its state)

    def train(self, model: GPT, spec: PhaseSpec, start_step: int = 0, optimizer_state=None) -> PhaseResult:
        """Train ``model`` over ``spec`` from ``start_step`` (``optimizer_state``: a state dict, or a loader)."""
        s = self.s
        opt = phase_optimizer(model, spec, s.device)
        if callable(optimizer_state):  # a sharded checkpoint's loader (growlib.parallel.dcp)
            optimizer_state(opt)
        elif optimizer_state is not None:
            opt.load_state_dict(optimizer_state)
        result = PhaseResult.from_records(self.history.records, spec.phase, before_step=start_step)
        log = PhaseLog(spec, self.history, result, self.verbose, s.par)
        start = time.perf_counter()
        for done in train_steps(model, opt, s.data, spec, s.device, start_step, s.par):
            self._after_step(model, opt, spec, done, log)
        log.close()
        end_phase(model, opt)
        self.optimizer = opt
        result.seconds, result.tokens = time.perf_counter() - start, spec.steps * spec.tokens_per_step
        log.throughput(model, (spec.steps - start_step) * spec.tokens_per_step, result.seconds, s.device)
        if s.val_batches:
            self._final_eval(model, spec, result, log)
        return result

    def _after_step(self, model: GPT, opt, spec: PhaseSpec, done: TrainedStep, log: PhaseLog) -> None:
        s, n = self.s, done.step + 1  # n: steps done
        log.after_step(done)
        if s.after_step is not None:
            s.after_step(spec.phase, done.step)
        if self.curve is not None:
            self.curve.after_step(n, spec.steps, model, s)
        if self._stop_requested():
            self.checkpoints.rolling(model, opt, spec.phase, n)
            raise RunInterrupted(spec.phase, n)
        self.checkpoints.after_step(model, opt, spec.phase, n, spec.steps)

    def _stop_requested(self) -> bool:
        """Ctrl-C reaches the processes at different moments: they stop together, at the first step any saw it."""
        s = self.s
        return s.par.maximum(float(s.stop.requested)) > 0 if s.par.active else s.stop.requested

    def _final_eval(self, model: GPT, spec: PhaseSpec, result: PhaseResult, log: PhaseLog) -> None:
        result.eval_loss = evaluate(model, self.s.val_batches, self.s.device)  # every process, the same batches
        self.history.append({"phase": spec.phase, "step": spec.steps - 1, "eval_loss": result.eval_loss,
                             "tokens": result.tokens, "elapsed": round(result.seconds, 3)})
        log.say(f"  eval loss (fixed validation batches): {result.eval_loss:.4f}")
