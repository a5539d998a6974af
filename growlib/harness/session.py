"""A run's session: its spec, its data, and what it has measured so far. Data and state only.

What a session is used for lives beside it: the phases (growlib.harness.phases), the
trainer (growlib.harness.trainer), checkpoints and resume (growlib.harness.checkpoints),
memory (growlib.harness.memory). :func:`growlib.harness.pipeline.open_session` makes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..data import TokenData
from ..model import GPT
from ..parallel.group import SINGLE, Parallel
from ..train import PhaseSpec, evaluate
from ..verify import Preservation
from .history import History, PhaseResult
from .memory.plan import RunMemory
from .records import BoundaryFigures
from .spec import RunSpec
from .stops import StopFlag


@dataclass
class RunState:
    """What a run has measured so far."""

    results: dict[int, PhaseResult] = field(default_factory=dict)
    preservation: dict[int, Preservation] = field(default_factory=dict)
    figures: BoundaryFigures = field(default_factory=BoundaryFigures)


@dataclass
class Session:
    """One run of the three phases: spec, data, fixed validation batches, history, memory plan, results.

    ``par``: the processes of a torchrun run (growlib.parallel); one by default. ``stop`` is set by
    Ctrl-C. ``after_step`` (phase, step), if set, is called after every training step (tests).
    """

    spec: RunSpec
    data: TokenData
    history: History
    val_batches: list
    memory: RunMemory
    state: RunState = field(default_factory=RunState)
    par: Parallel = SINGLE
    stop: StopFlag = field(default_factory=StopFlag)
    after_step: Callable[[int, int], None] | None = None

    @property
    def device(self) -> str:
        return self.spec.how.device

    @property
    def verbose(self) -> bool:
        return self.spec.how.verbose

    def say(self, text: str = "") -> None:
        if self.verbose:  # under torchrun, rank 0 only
            print(text)

    def phase_spec(self, phase: int) -> PhaseSpec:
        """What ``phase`` trains for in this run: the spec's phase, lean where the memory plan chose it."""
        return self.spec.phase(phase, lean=self.memory.lean(phase))

    def eval(self, model: GPT) -> float:
        """Mean loss on the run's fixed validation batches."""
        return evaluate(model, self.val_batches, self.device)

    def verify_tokens(self):
        """The fixed tokens every preservation check runs on: the first validation batch's inputs."""
        return self.val_batches[0][0]
