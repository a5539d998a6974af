"""Why a run stops before its end, in one place: Ctrl-C, not enough memory, a diverged loss.

- **Ctrl-C** sets a :class:`StopFlag` (:class:`ctrl_c_finishes_the_step` installs the handler);
  the trainer checks it after every step, writes a checkpoint and raises :class:`RunInterrupted`.
  The command prints how to resume and exits 130.
- **Not enough memory**: :class:`NotEnoughMemory`, raised before phase 1 when a phase cannot fit
  even in lean mode, or just before a phase allocates its optimizer when the memory available
  then is too small (growlib.harness.memory), or when CUDA runs out. Exit 2, with the advice.
- **A diverged loss**: :class:`growlib.train.TrainingDiverged` (NaN or infinite), naming the
  phase and step. Exit 2; the last good checkpoint is kept.
"""

from __future__ import annotations

import signal
import threading

from ..train import TrainingDiverged

__all__ = ["NotEnoughMemory", "RunInterrupted", "StopFlag", "TrainingDiverged", "ctrl_c_finishes_the_step"]


class RunInterrupted(Exception):
    """Ctrl-C between two steps: a checkpoint was written; ``next_step`` is where to resume."""

    def __init__(self, phase: int, next_step: int) -> None:
        super().__init__(f"interrupted in phase {phase} before step {next_step}")
        self.phase, self.next_step = phase, next_step


class NotEnoughMemory(ValueError):
    """A phase will not fit in what this device can give (the command prints it as one line, exit 2)."""


class StopFlag:
    """Set by the SIGINT handler; the trainer reads it between steps."""

    def __init__(self) -> None:
        self.requested = False


class ctrl_c_finishes_the_step:
    """While the phases run: Ctrl-C asks the trainer to finish its step, checkpoint and stop."""

    def __init__(self, flag: StopFlag) -> None:
        self.flag, self.active = flag, threading.current_thread() is threading.main_thread()

    def __enter__(self) -> None:
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)

    def __exit__(self, *exc) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self.previous)

    def _on_sigint(self, signum, frame) -> None:
        self.flag.requested = True
        print("\n  [interrupt] finishing this step and writing a checkpoint...", flush=True)
