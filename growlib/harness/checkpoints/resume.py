"""Finding where a stopped run goes on: the phase to start at, its model, its optimizer's state.

Because every training batch is drawn from (seed, phase, step) and the learning rate is a
function of the step, a resumed run logs exactly the losses of the uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...checkpoint import load_checkpoint
from ...model import GPT
from ...parallel import dcp
from ...parallel.sharding import distribute
from ..history import PhaseResult
from ..paths import shown_path
from .pointer import ROLLING, STATE_FILE, check_settings, read_state
from .saver import optimizer_state


@dataclass
class Resumed:
    """Where a run goes on: phase ``phase`` from ``next_step`` (0: from its start) with ``model``.

    Mid-phase, ``model`` is that phase's own model and ``optimizer`` its state (or a loader of a
    sharded one; None when it restarts). At a boundary (``next_step`` None), ``model`` is the
    previous phase's final model, which the phase's transition starts from.
    """

    phase: int
    next_step: int | None
    model: GPT
    optimizer: dict | object | None = None


def find_resume(s) -> Resumed | None:
    """The newest complete checkpoint of the session's run; None when the run is already complete."""
    out = s.spec.how.out
    point = read_state(out)
    if point is None:
        raise ValueError(f"--resume: {shown_path(out)!r} holds no run to resume (no {STATE_FILE}); "
                         f"run without --resume to start one")
    check_settings(point.settings, s.spec.fingerprint(), out)
    model, optimizer = _load(s, point)
    s.history.truncate(point.history_len)
    s.state.figures.update(point.boundary)
    for phase in range(1, point.phase):  # earlier phases' logged losses, for their results
        s.state.results[phase] = PhaseResult.from_records(s.history.records, phase)
    if point.next_step < s.spec.train.steps(point.phase):
        return Resumed(point.phase, point.next_step, model, optimizer)
    s.state.results[point.phase] = PhaseResult.from_records(s.history.records, point.phase)
    return Resumed(point.phase + 1, None, model) if point.phase < 3 else None


def _load(s, point) -> tuple[GPT, dict | object | None]:
    """The pointed checkpoint's model and, for a rolling one, the optimizer's state (or its loader)."""
    out = s.spec.how.out
    if dcp.is_dcp(point.checkpoint):  # written across processes: loads into any number of them, one included
        model = dcp.load_model(out / point.checkpoint, s.par)
        return model, _same_optimizer(s, point, dcp.optimizer_loader(model, out / point.checkpoint, s.par), False)
    model, extra, tensors = load_checkpoint(out, point.checkpoint, device=s.spec.how.device) \
        if s.par.is_main else (None, {}, {})
    model = distribute(model, s.par)
    if point.checkpoint != ROLLING:
        return model, None
    if s.par.active:  # one process's optimizer state does not shard
        s.say(f"[resume] phase {point.phase} continues at step {point.next_step} across {s.par.world} "
              f"processes; the optimizer's state restarts (it was saved by one process)")
        return model, None
    return model, _same_optimizer(s, point, optimizer_state(tensors, extra["optimizer"]), extra.get("lean", False))


def _same_optimizer(s, point, optimizer, saved_lean: bool):
    """``optimizer`` if it was saved in the memory mode the phase trains in now; else None (it restarts)."""
    lean_now = s.memory.lean(point.phase)
    if saved_lean == lean_now:
        return optimizer
    s.say(f"[resume] phase {point.phase} continues at step {point.next_step} "
          f"{'in lean mode' if lean_now else 'with AdamW'}; the optimizer's state restarts "
          f"(it was saved {'with AdamW' if lean_now else 'in lean mode'})")
    return None
