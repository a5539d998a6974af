"""The recipe's three phases as a table: dense, then upcycled to a MoE, then grown wider and deeper.

Each :class:`Phase` is a row: its title, the checkpoint written at its end, and the
:class:`Transition` that makes its model from the previous phase's (none for phase 1).
:func:`transition` is the one way a transition runs: gather the model to rank 0, build the
new one there, verify it computes the same function, measure the validation jump, share it
out again. :func:`run_phases` walks the rows; a resumed run starts at a row, with or without
a mid-phase state. The notebooks call :func:`phase1`, :func:`phase2` and :func:`phase3`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..accounting import param_report
from ..grow import grow
from ..lean import free_model
from ..model import GPT, build_model
from ..parallel.sharding import distribute, gather
from ..upcycle import upcycle
from ..verify import Preservation, check_preservation
from .checkpoints.resume import Resumed
from .checkpoints.saver import Checkpointer
from .console import phase_banner, section_banner
from .history import PhaseResult
from .memory.advice import LEAN_WHAT
from .trainer import PhaseTrainer

JUMP_WARNING = 0.1  # nats: a transition that moves the validation loss this much did not preserve the function


class Upcycle:
    """Phase 1 -> 2: every MLP copied into the experts of a MoE (growlib.upcycle)."""

    first_checkpoint = "moe_model_init"  # the MoE as upcycled, before it trains
    frees_old_in_lean = False

    def announce(self, s) -> None:
        """Nothing before the upcycling: its lines follow it."""

    def build(self, s, dense: GPT) -> GPT:
        g = s.spec.growth
        return upcycle(dense, g.n_experts, g.top_k, seed=s.spec.train.seed)

    def verify(self, s, old: GPT, new: GPT) -> Preservation:
        return check_preservation(old, new, s.verify_tokens().to(s.device))

    def report(self, s, result: Preservation) -> None:
        g = s.spec.growth
        s.say()
        s.say(f"[Upcycling] Dense -> MoE: {g.n_experts} experts (copies of each MLP), top-{g.top_k} routing")
        s.say(f"  max |Δlogit| on the fixed validation batch: {result.logit_diff:.2e}")


class Grow:
    """Phase 2 -> 3: bilateral growth, wider and deeper, verified layer by layer (growlib.grow)."""

    first_checkpoint = None
    frees_old_in_lean = True  # lean mode: the MoE's memory goes back before the big model trains

    def announce(self, s) -> None:
        g = s.spec.growth
        s.say()
        s.say(section_banner(f"Phase 3  —  Bilateral Growth (Width x{g.scale_factor:g}, Layers +{g.extra_layers})"))
        s.say()

    def build(self, s, moe: GPT) -> GPT:
        g = s.spec.growth
        return grow(moe, g.scale_factor, g.extra_layers, where=g.placement, noise=g.noise, seed=s.spec.train.seed,
                    verbose=s.verbose)

    def verify(self, s, old: GPT, new: GPT) -> Preservation:
        return check_preservation(old, new, s.verify_tokens().to(s.device), where=s.spec.growth.placement)

    def report(self, s, result: Preservation) -> None:
        s.say()
        for line in result.lines():
            s.say(line)


Transition = Upcycle | Grow


@dataclass(frozen=True)
class Phase:
    number: int
    title: str  # the recipe's banner title
    checkpoint: str  # written at the phase's end
    transition: Transition | None  # how its model is made from the previous phase's; None: built fresh


PHASES = (Phase(1, "Phase 1 — Dense", "dense_model", None),
          Phase(2, "Phase 2 — MoE", "moe_model_final", Upcycle()),
          Phase(3, "Phase 3 — Large MoE (Bilateral Growth)", "large_moe_final", Grow()))
PHASE_CHECKPOINT = {p.number: p.checkpoint for p in PHASES}


def first_model(s) -> GPT:
    """Phase 1's model, built and initialised once, on rank 0, then shared out."""
    return distribute(build_model(s.spec.model, seed=s.spec.train.seed, device=s.device) if s.par.is_main else None,
                      s.par)


def transition(s, phase: Phase, old: GPT) -> GPT:
    """Gather ``old`` to rank 0, build ``phase``'s model there, verify it, measure the jump, share it out."""
    t = phase.transition
    t.announce(s)
    full = gather(old, s.par)  # across processes: the whole model on rank 0 (None elsewhere)
    new = None
    if s.par.is_main:
        new = t.build(s, full)
        s.state.preservation[phase.number] = t.verify(s, full, new)
        t.report(s, s.state.preservation[phase.number])
        measure_jump(s, phase.number, full, new)
        if t.first_checkpoint:
            Checkpointer(s).full(new, t.first_checkpoint, phase.number, next_step=0)
    del full
    if t.frees_old_in_lean and s.memory.lean(phase.number) and not s.par.active:
        free_model(old)
    return distribute(new, s.par)


def measure_jump(s, phase: int, old: GPT, new: GPT) -> None:
    """Validation loss of the old and the new model on the same batches; a warning if it jumped."""
    figures = s.state.figures[phase]
    if figures.val_before is None:  # normally measured at the end of the previous phase
        figures.val_before = s.eval(old)
    figures.val_after = s.eval(new)
    if abs(figures.exact_jump) > JUMP_WARNING:
        s.say(f"  ⚠️  Phase {phase - 1}→{phase} jump {figures.exact_jump:+.4f} is above {JUMP_WARNING}: "
              f"the function was not preserved")


def fit(s, model: GPT, phase: int, start_step: int = 0, optimizer_state=None) -> PhaseResult:
    """Train ``model`` over the run's phase ``phase`` from ``start_step``; stop with advice if memory is short."""
    s.memory.check_now(phase)
    try:
        r = PhaseTrainer(s).train(model, s.phase_spec(phase), start_step, optimizer_state)
    except torch.cuda.OutOfMemoryError as exc:  # CUDA's allocator: nothing was killed, so say what to do
        raise s.memory.not_enough(phase, f"the device ran out of memory ({str(exc).splitlines()[0]})") from None
    s.state.results[phase] = r
    s.memory.report_peak(phase, s.say)
    start = s.state.figures[phase].val_after
    if start is not None and r.eval_loss >= start:
        s.say(f"  ⚠️  validation loss did not decrease over phase {phase} ({start:.4f} -> "
              f"{r.eval_loss:.4f}): the learning rate may be too high or too low")
    return r


def train_and_save(s, phase: Phase, model: GPT, resume: Resumed | None = None) -> None:
    """What every phase does with its model: memory table, banner, training, boundary figures, checkpoint."""
    p, spec = phase.number, s.phase_spec(phase.number)
    s.say()
    s.memory.before_phase(p, s.say)
    s.say(phase_banner(phase.title, spec.steps, spec.peak_lr, s.device, param_report(model, spec.seq_len),
                       lean=LEAN_WHAT if spec.lean else None))
    s.say()
    start = resume.next_step if resume is not None else 0
    if start:
        s.say(f"  [resume] continuing phase {p} at step {start}")
    r = fit(s, model, p, start, resume.optimizer if resume is not None else None)
    figures = s.state.figures[p]
    figures.first_loss, figures.final_loss, figures.val_end = r.first_loss, r.final_loss, r.eval_loss
    if p < len(PHASES):
        s.state.figures[p + 1].val_before = r.eval_loss  # the next transition starts from this model
    Checkpointer(s).phase_end(model, phase.checkpoint, p)


def run_phase(s, phase: Phase, previous: GPT | None) -> GPT:
    """One phase from its start: its model made (built fresh, or by its transition), trained, saved."""
    model = first_model(s) if phase.transition is None else transition(s, phase, previous)
    train_and_save(s, phase, model)
    return model


def run_phases(s, start: Resumed | None = None) -> GPT:
    """Every phase from the first, or from where ``start`` says the run stopped."""
    first, model = (1, None) if start is None else (start.phase, start.model)
    for phase in PHASES[first - 1:]:
        if start is not None and phase.number == start.phase and start.next_step is not None:
            train_and_save(s, phase, model, start)  # mid-phase: its own model, trained on from there
        else:
            model = run_phase(s, phase, model)
    return model


def phase1(s) -> GPT:
    """Build and train the dense model; checkpoint ``dense_model``."""
    return run_phase(s, PHASES[0], None)


def phase2(s, dense: GPT) -> GPT:
    """Upcycle into a MoE, check it computes the same function, train it; two checkpoints."""
    return run_phase(s, PHASES[1], dense)


def phase3(s, moe: GPT) -> GPT:
    """Grow wider and deeper, verify per layer, train; checkpoint ``large_moe_final``."""
    return run_phase(s, PHASES[2], moe)
