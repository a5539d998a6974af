"""``training_history.jsonl`` and what a phase logged: written as a run trains, read back when it resumes.

One JSON object per logged step (``phase``, ``step``, ``loss``, ``lr``, ``tokens``, ``elapsed``,
and for a MoE its router's figures), one per phase end (``eval_loss``). A phase's
:class:`PhaseResult` is built from those records in one place (:meth:`PhaseResult.from_records`):
when a phase trains, when a run resumes, when a notebook loads a checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoint import atomic_write_bytes

HISTORY = "training_history.jsonl"


class History:
    """``training_history.jsonl``: one JSON object per logged step, flushed as written."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path else None
        self.records: list[dict] = []

    def append(self, record: dict) -> None:
        self.records.append(record)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def truncate(self, n_records: int) -> None:
        """Keep the first ``n_records`` lines (those a checkpoint saw), in the file and here, atomically."""
        if self.path is None or not self.path.exists():
            self.records = self.records[:n_records]
            return
        lines = [line for line in self.path.read_text().splitlines() if line.strip()][:n_records]
        atomic_write_bytes(self.path, ("\n".join(lines) + "\n" if lines else "").encode())
        self.records = [json.loads(line) for line in lines]


@dataclass
class PhaseResult:
    """What a phase logged: its logged steps and training losses, its final validation loss, its time."""

    phase: int
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # logged training losses
    eval_loss: float = float("nan")
    seconds: float = 0.0
    tokens: int = 0

    @classmethod
    def from_records(cls, records: list[dict], phase: int, before_step: int | None = None) -> "PhaseResult":
        """The result of ``phase`` as ``records`` hold it (only steps before ``before_step``, if given)."""
        result = cls(phase)
        for rec in records:
            if rec["phase"] != phase or (before_step is not None and rec["step"] >= before_step):
                continue
            if "loss" in rec:
                result.steps.append(rec["step"])
                result.losses.append(rec["loss"])
            if "eval_loss" in rec:
                result.eval_loss = rec["eval_loss"]
        return result

    @property
    def first_loss(self) -> float:
        return self.losses[0]

    @property
    def final_loss(self) -> float:
        return self.losses[-1]
