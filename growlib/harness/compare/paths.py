"""The paths a comparison trains, each for the same compute: the grown path and its baselines, and variants.

- :func:`grown_path`: the recipe's three phases, dense -> MoE -> grown, each transition by its
  :class:`~.setup.Transition` (AdamW's state carried or fresh; the learning rate continued or
  re-warmed); validation densely in the first tenth of phases 2 and 3, where a rise would show;
  the copies' similarity over phase 3. It leaves its phase-1 and phase-2 models (with AdamW's
  state) in a folder, for the tasks that start from them.
- :func:`from_scratch`: the grown architecture, or the small dense one, trained from its
  initialisation for the whole budget at one learning rate.
- :func:`dense_continued`: the phase-1 model trained on for phase 2's compute, against the MoE.
- :func:`phase_variant`: phase 2 or 3 again from the same model, one choice changed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch

from ... import carry
from ...accounting import training_flops_per_token
from ...checkpoint import load_checkpoint, save_checkpoint
from ...config import GrowthConfig, get_preset
from ...curves import Curve
from ...grow import grow
from ...model import GPT, build_model
from ...symmetry import clone_pairs, clone_similarity, reinit_copies
from ...train import PhaseSpec, evaluate
from ...upcycle import upcycle
from ...verify import check_preservation
from ..history import History
from ..pipeline import open_session
from ..session import Session
from ..spec import RunSpec
from ..trainer import PhaseTrainer, ValidationCurve
from .setup import DENSE_POINTS, DENSE_SHARE, Setup, Transition, baseline_spec, eval_every, grown_phase_spec

TRAIN_FIT_STREAM = 99  # fixed training batches, evaluated like the validation ones: the train/validation gap
ADAM_PREFIX = "adam."  # AdamW's state in a kept checkpoint: adam.<parameter name>.<exp_avg | exp_avg_sq | step>


def open_for(setup: Setup, seed: int, growth: GrowthConfig | None = None) -> Session:
    """A quiet session with no output folder for ``seed`` (and another growth, for a variant)."""
    spec = RunSpec.build(setup.preset, data=setup.data, out=None, verbose=False)
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=seed),
                               growth=growth or spec.growth)
    return open_session(spec)


def _fit_batches(s: Session) -> list:
    """Fixed training batches, as many as the validation ones: a model's loss on them is its fit."""
    t = s.spec.train
    return [s.data.train_batch(t.batch_size, t.seed, TRAIN_FIT_STREAM, i) for i in range(t.eval_batches)]


def _train(s: Session, model: GPT, spec: PhaseSpec, on_point, dense: bool = False, optimizer_state=None):
    """Train quietly, calling ``on_point(done, validation loss)`` at each evaluation; the optimizer after."""
    dense_until = math.ceil(DENSE_SHARE * spec.steps) if dense else 0
    points = ValidationCurve(eval_every(spec.steps, 20), on_point,
                             dense_every=max(1, dense_until // DENSE_POINTS) if dense else 0, dense_until=dense_until)
    trainer = PhaseTrainer(s, curve=points, history=History(None), verbose=False)
    trainer.train(model, spec, optimizer_state=optimizer_state)
    return trainer.optimizer


# ---------------------------------------------------------------- keeping a phase's model for later tasks

def keep(model: GPT, optimizer, folder: Path, name: str) -> None:
    """``model`` with its AdamW state, as ``folder/name`` (a growlib checkpoint)."""
    tensors = {f"{ADAM_PREFIX}{p}.{k}": v for p, state in carry.adamw_state(model, optimizer).items()
               for k, v in state.items()}
    save_checkpoint(model, folder, name, tensors=tensors)


def kept(folder: Path, name: str) -> tuple[GPT, carry.State]:
    """A model and its AdamW state, as :func:`keep` wrote them."""
    model, _, tensors = load_checkpoint(folder, name)
    state: carry.State = {}
    for key, value in tensors.items():
        param, _, part = key[len(ADAM_PREFIX):].rpartition(".")
        state.setdefault(param, {})[part] = value
    return model, state


# ---------------------------------------------------------------- transitions

def upcycled(s: Session, dense: GPT, state: carry.State | None, t: Transition):
    """Phase 1 -> 2: the MoE, its preservation, and its optimizer's first state (None: fresh)."""
    g = s.spec.growth
    moe = upcycle(dense, g.n_experts, g.top_k, seed=s.spec.train.seed)
    exact = check_preservation(dense, moe, s.verify_tokens()).logit_diff
    carried = carry.through_upcycling(state, g.n_experts) if t.optimizer == "carried" and state else None
    return moe, exact, carried


def grown(s: Session, moe: GPT, state: carry.State | None, t: Transition, asymmetry: float = 0.0,
          reinit: float = 0.0):
    """Phase 2 -> 3: the grown model, its preservation, its optimizer's first state, its rates' factors."""
    g = s.spec.growth
    big = grow(moe, g.scale_factor, g.extra_layers, where=g.placement, noise=g.noise, seed=s.spec.train.seed,
               verbose=False, asymmetry=asymmetry)
    if reinit:
        reinit_copies(big, moe.cfg.d_mlp, reinit, seed=s.spec.train.seed)
    exact = check_preservation(moe, big, s.verify_tokens(), where=g.placement).overall
    if t.optimizer != "carried" or state is None:
        return big, exact, None, ()
    carried = carry.through_growth(state, moe.cfg, big.cfg, g.extra_layers, g.placement)
    return big, exact, carried, tuple(sorted(carry.growth_lr_scales(big, moe.cfg).items()))


def inserted(s: Session, moe: GPT, big: GPT) -> tuple[str, ...]:
    """The parameters of the blocks growth inserted into ``big`` (they have no history: growlib.carry)."""
    g = s.spec.growth
    return carry.inserted_parameters(big, moe.cfg.n_layers, big.cfg.n_layers - moe.cfg.n_layers, g.placement)


def _loader(model: GPT, state: carry.State | None):
    return None if state is None else (lambda opt: carry.load_adamw_state(model, opt, state))


# ---------------------------------------------------------------- the grown path

class GrownPath:
    """The recipe's path at one budget: its phases' lengths and specs, its curve and its records."""

    def __init__(self, s: Session, setup: Setup, steps: tuple[int, int, int], transitions: dict[int, Transition],
                 lengths: dict[int, int] | None = None, lr: float | None = None):
        """``lengths``: a phase trained for other steps than ``steps`` plans (a variant's other model, of
        other FLOPs per step): its part of the schedule is stretched to them. ``lr``: the path's peak
        rate (default: the preset's dense-phase rate); every phase's peak scales with it."""
        self.s, self.setup, self.steps, self.transitions = s, setup, steps, transitions
        self.lr_factor = 1.0 if lr is None else lr / s.spec.train.lr_phase1
        self.lengths = {p: n for p, n in (lengths or {}).items() if n != steps[p - 1]}
        self.step_flops = {p: setup.step_flops(p) for p in (1, 2, 3)}
        for p, n in self.lengths.items():  # the same compute over another number of steps
            self.step_flops[p] = steps[p - 1] * setup.step_flops(p) / n
        self.start = [0.0, steps[0] * self.step_flops[1], steps[0] * self.step_flops[1] + steps[1] * self.step_flops[2]]
        self.curve = Curve("grown")
        self.boundary: dict[int, dict] = {}
        self.clones: list[list[float]] = []

    def spec(self, phase: int) -> PhaseSpec:
        spec = grown_phase_spec(self.setup, self.s.spec.train, self.steps, phase, self.transitions, self.lr_factor)
        return stretched(spec, self.lengths[phase]) if phase in self.lengths else spec

    def train(self, phase: int, model: GPT, optimizer_state=None, lr_scales=(), clones=None, new_params=()):
        """Train one phase, adding its points to the curve (and the first tenth to its boundary record).

        ``new_params`` (an inserted block's) warm up alone over the setup's share of the phase, where
        the phase continues the path's schedule (a re-warmed phase warms every parameter up anyway).
        """
        spec = dataclasses.replace(self.spec(phase), lr_scales=lr_scales)
        if new_params and self.setup.new_warmup and self.transitions.get(phase, Transition()).schedule == "continue":
            spec = dataclasses.replace(spec, new_params=new_params,
                                       new_warmup=max(1, round(self.setup.new_warmup * spec.steps)))
        first = self.boundary.setdefault(phase, {"points": []})["points"]
        limit = math.ceil(DENSE_SHARE * spec.steps)

        def point(done: int, v: float) -> None:
            self.curve.add(self.start[phase - 1] + done * self.step_flops[phase], v)
            if done <= limit:
                first.append([done, v])
            if clones is not None:
                self.clones.append([done, 1.0 - clone_similarity(model, clones)])

        return _train(self.s, model, spec, point, dense=phase > 1, optimizer_state=optimizer_state)

    def enter(self, phase: int, before: float, after: float, exact: float) -> None:
        """The validation loss just before a transition and just after it (its step 0)."""
        self.boundary[phase] = {"before": before, "after": after, "exact": exact, "points": [[0, after]]}
        self.curve.add(self.start[phase - 1], after)

    def rise(self, phase: int) -> float:
        """The highest validation loss in the first tenth of ``phase`` minus the loss just before it."""
        b = self.boundary[phase]
        return max(v for _, v in b["points"]) - b["before"]


def stretched(spec: PhaseSpec, steps: int) -> PhaseSpec:
    """``spec`` over ``steps`` steps instead, its learning rate going from the same point of its schedule
    to the same end (its offset and total scaled so that the phase covers the same part of it)."""
    total = spec.lr_total or spec.steps
    new_total = round(steps * total / (total - spec.lr_offset))
    return dataclasses.replace(spec, steps=steps, lr_offset=new_total - steps, lr_total=new_total)


def grown_path(setup: Setup, seed: int, steps: tuple[int, int, int], transitions: dict[int, Transition],
               folder: Path | None = None, lr: float | None = None) -> dict:
    """(i) at one budget for ``seed``, peak rate ``lr``: its curve, boundaries, rises, final and fit losses,
    clone similarity."""
    started = time.perf_counter()
    s = open_for(setup, seed)
    path = GrownPath(s, setup, steps, transitions, lr=lr)
    dense = build_model(s.spec.model, seed=seed)
    path.curve.add(0.0, s.eval(dense))
    opt = path.train(1, dense)
    if folder is not None:
        keep(dense, opt, folder, "dense")
    moe, exact, state = upcycled(s, dense, carry.adamw_state(dense, opt), path.transitions.get(2, Transition()))
    path.enter(2, path.curve.val[-1], s.eval(moe), exact)
    opt = path.train(2, moe, _loader(moe, state))
    if folder is not None:
        keep(moe, opt, folder, "moe")
    big, exact, state, scales = grown(s, moe, carry.adamw_state(moe, opt), path.transitions.get(3, Transition()))
    path.enter(3, path.curve.val[-1], s.eval(big), exact)
    path.clones.append([0, 1.0 - clone_similarity(big, clone_pairs(moe.cfg.d_mlp, big.cfg.d_mlp))])
    path.train(3, big, _loader(big, state), scales, clone_pairs(moe.cfg.d_mlp, big.cfg.d_mlp), inserted(s, moe, big))
    return {"curve": path.curve.to_json(), "phase_start_flops": path.start, "steps": list(steps), "lr": lr,
            "boundaries": {str(p): {**b, "rise": path.rise(p)} for p, b in path.boundary.items() if "before" in b},
            "final_val": path.curve.val[-1], "train_fit": evaluate(big, _fit_batches(s), s.device),
            "clone_one_minus_cos": path.clones, "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------- one phase again, one choice changed

@dataclasses.dataclass(frozen=True)
class Change:
    """What a variant changes in the phase it re-runs (the rest is the grown path's)."""

    transition: Transition | None = None  # another optimizer or schedule at this phase's transition
    growth: dict = dataclasses.field(default_factory=dict)  # GrowthConfig fields (phase 3): noise, scale, layers
    asymmetry: float = 0.0  # growlib.grow.widen: uneven shares of a copied unit's outgoing weights
    reinit: float = 0.0  # growlib.symmetry.reinit_copies: this share of the copies re-initialised
    no_transition: bool = False  # the control: the previous phase's model trained on, nothing changed
    match_flops: bool = False  # train that model for the phase's FLOPs, not its steps (the dense model continued)


def phase_variant(setup: Setup, seed: int, steps: tuple[int, int, int], transitions: dict[int, Transition],
                  folder: Path, phase: int, change: Change, lr: float | None = None) -> dict:
    """Phase ``phase`` (2 or 3) again from the grown path's kept model of the phase before, ``change`` made
    (``lr``: that path's peak rate).

    Returns its curve over the phase, its boundary record and rise, its final and fit losses and,
    in phase 3, the copies' similarity. A change of growth gets as many phase-3 steps as the
    recipe's phase 3 had FLOPs, so the path's compute stays the budget.
    """
    started = time.perf_counter()
    g = dataclasses.replace(get_preset(setup.preset).growth, **change.growth) if change.growth else None
    s = open_for(setup, seed, growth=g)
    tr = {**transitions, **({phase: change.transition} if change.transition else {})}
    old, state = kept(folder, "dense" if phase == 2 else "moe")
    old = old.to(s.device)
    if change.no_transition:
        new, exact, carried, scales = old, 0.0, state, ()
    elif phase == 2:
        new, exact, carried = upcycled(s, old, state, tr.get(2, Transition()))
        scales = ()
    else:
        new, exact, carried, scales = grown(s, old, state, tr.get(3, Transition()), change.asymmetry, change.reinit)
    path = GrownPath(s, setup, steps, tr, lengths={phase: _same_flops(setup, steps, phase, new, change)}, lr=lr)
    path.enter(phase, s.eval(old), s.eval(new), exact)
    pairs = clone_pairs(old.cfg.d_mlp, new.cfg.d_mlp) if phase == 3 and new.cfg.d_mlp > old.cfg.d_mlp else None
    if pairs is not None:
        path.clones.append([0, 1.0 - clone_similarity(new, pairs)])
    path.train(phase, new, _loader(new, carried), scales, pairs, inserted(s, old, new) if phase == 3 else ())
    return {"curve": path.curve.to_json(), "steps": list(path.steps), "boundary": path.boundary[phase],
            "rise": path.rise(phase), "final_val": path.curve.val[-1],
            "train_fit": evaluate(new, _fit_batches(s), s.device), "clone_one_minus_cos": path.clones,
            "seconds": time.perf_counter() - started}


def _same_flops(setup: Setup, steps: tuple[int, int, int], phase: int, new: GPT, change: Change) -> int:
    """Phase ``phase``'s steps: with another model (growth, or none), as many as the recipe's phase had FLOPs."""
    if not (change.growth or change.match_flops):
        return steps[phase - 1]
    t = setup.train
    per_step = training_flops_per_token(new.cfg, t.seq_len) * t.batch_size * t.seq_len
    return max(1, round(steps[phase - 1] * setup.step_flops(phase) / per_step))


# ---------------------------------------------------------------- the baselines

def from_scratch(setup: Setup, seed: int, flops: float, phase: int, lr: float) -> dict:
    """A model of ``phase``'s architecture (1: the small dense one, 3: the grown one) trained from its
    initialisation for ``flops``, one warm-up and decay over all of it, at peak rate ``lr``."""
    started = time.perf_counter()
    s = open_for(setup, seed)
    steps, step_flops = setup.baseline_steps(flops, phase), setup.step_flops(phase)
    model = build_model(setup.configs[phase], seed=seed)
    curve = Curve("from scratch")
    curve.add(0.0, s.eval(model))
    _train(s, model, baseline_spec(setup, s.spec.train, steps, lr), lambda done, v: curve.add(done * step_flops, v))
    return {"curve": curve.to_json(), "steps": steps, "lr": lr, "final_val": curve.val[-1],
            "train_fit": evaluate(model, _fit_batches(s), s.device), "seconds": time.perf_counter() - started}
