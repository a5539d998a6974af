"""Where a run is saved: phase checkpoints, the rolling resume checkpoint, and the pointer to the newest.

Every file goes through :func:`growlib.checkpoint.save_checkpoint` (atomic, SHA-checked
safetensors). Across processes a phase checkpoint is gathered to rank 0, which writes one
file; the rolling checkpoint is written by every process into a DCP folder instead
(growlib.parallel.dcp), so it loads into any number of processes.
"""

from __future__ import annotations

from typing import Any

import torch

from ...checkpoint import save_checkpoint
from ...model import GPT
from ...parallel import dcp
from ...parallel.sharding import gather
from ..paths import shown_path
from .pointer import ROLLING, RUN_TOKENIZER, ResumePoint, save_tokenizer, write_state

OPTIM_PREFIX = "optim."  # the optimizer's tensors in a rolling checkpoint: optim.<param index>.<name>


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as flat tensors (for safetensors) plus its JSON-able param groups."""
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{OPTIM_PREFIX}{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def optimizer_state(tensors: dict[str, torch.Tensor], groups: dict[str, Any]) -> dict[str, Any]:
    """The optimizer state dict that :func:`optimizer_tensors` flattened."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(OPTIM_PREFIX):
            idx, key = name[len(OPTIM_PREFIX):].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": groups["param_groups"]}


class Checkpointer:
    """Writes a session's checkpoints into its output folder (nothing at all when it has none)."""

    def __init__(self, s) -> None:  # s: growlib.harness.session.Session
        self.s, self.out = s, s.spec.how.out

    def phase_end(self, model: GPT, name: str, phase: int, next_step: int | None = None) -> None:
        """Checkpoint ``model`` as a phase's end (or start); every process calls this, rank 0 writes."""
        if self.out is None:
            return
        full = gather(model, self.s.par)
        if self.s.par.is_main:
            self.full(full, name, phase, next_step)
        self.s.par.barrier()

    def full(self, model: GPT, name: str, phase: int, next_step: int | None = None) -> None:
        """:meth:`phase_end` of a model with full tensors, by rank 0 (or the one process)."""
        if self.out is None:
            return
        s = self.s
        extra = {"preset": s.spec.preset, "phase": phase, "history": [r for r in s.history.records if r["phase"] == phase],
                 "boundary": s.state.figures.to_json()}
        save_checkpoint(model, self.out, name, extra=extra)
        if not (self.out / RUN_TOKENIZER).exists():  # the folder opens on its own (python -m growlib export)
            save_tokenizer(self.out, s.data.tokenizer)
        s.say(f"  [checkpoint] {shown_path(self.out / (name + '.safetensors'))}")
        self._point(phase, s.spec.train.steps(phase) if next_step is None else next_step, name)

    def rolling(self, model: GPT, optimizer, phase: int, next_step: int) -> None:
        """The resume checkpoint mid-phase: weights and optimizer state (one file, or a DCP folder)."""
        if self.out is None:
            return
        s = self.s
        if s.par.active:
            name = dcp.save_resume(model, optimizer, self.out, phase, next_step, {"lean": False}, s.par)
            if s.par.is_main:
                self._point(phase, next_step, name)
                dcp.remove_older(self.out, keep=name)
            s.par.barrier()
            return
        tensors, groups = optimizer_tensors(optimizer)
        save_checkpoint(model, self.out, ROLLING, tensors=tensors,
                        extra={"phase": phase, "next_step": next_step, "optimizer": groups,
                               "lean": s.memory.lean(phase)})
        self._point(phase, next_step, ROLLING)

    def after_step(self, model: GPT, optimizer, phase: int, done: int, steps: int) -> None:
        """Every ``--checkpoint-every`` steps within a phase (its end has its own checkpoint)."""
        every = self.s.spec.how.checkpoint_every
        if every and done % every == 0 and done < steps:
            self.rolling(model, optimizer, phase, done)

    def _point(self, phase: int, next_step: int, name: str) -> None:
        s = self.s
        write_state(self.out, ResumePoint(phase, next_step, name, s.state.figures.to_json(), len(s.history.records),
                                          s.spec.fingerprint()))
