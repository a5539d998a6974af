"""What a comparison trains: its settings, its budgets, and each path's schedule at a budget.

A budget is named by the tokens per active parameter the grown architecture would see if it
were trained from scratch on it (the Chinchilla-style measure: compute-optimal near 20). Its
compute is then C = (tokens per parameter) x N x c, with N the grown model's active parameters
and c its training FLOPs per token (growlib.accounting). Every path of the comparison is given
C: the grown path's three phases are the preset's step counts scaled together so that their
FLOPs add up to C; each baseline trains as many steps of its own model as C buys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...accounting import analytic_params, training_flops_per_token
from ...budget import phase_configs
from ...config import TrainConfig, get_preset
from ...train import PhaseSpec

OPTIMIZERS = ("carried", "fresh")  # AdamW's state through a transition: mapped (growlib.carry), or a new AdamW
SCHEDULES = ("continue", "rewarm")  # the learning rate at a transition: the path's schedule goes on, or re-warms
LR_FACTORS = (0.5, 1.0, 2.0)  # the baselines' first learning rates, times the preset's dense-phase rate
LR_MAX_POINTS = 7  # a sweep whose best rate is at an edge grows by factors of 2, to at most this many rates
EVAL_POINTS = 20  # validation points per phase (per baseline), evenly spaced in steps
DENSE_SHARE = 0.1  # the first tenth of phases 2 and 3 (the rise is measured there) ...
DENSE_POINTS = 20  # ... is evaluated this many times besides


@dataclass(frozen=True)
class Transition:
    """How the grown path crosses into a phase: AdamW's state, and its learning rate there.

    ``continue``: the phase goes on with the path's one warm-up and cosine decay over all its
    steps (no new warm-up, no jump in the rate). ``rewarm``: the phase warms up again to its own
    peak (the preset's rate for it, times ``peak``) and decays over its own length, as the
    recipe does.
    """

    optimizer: str = "carried"
    schedule: str = "continue"
    peak: float = 1.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"transition optimizer {self.optimizer!r} is invalid: accepted {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"transition schedule {self.schedule!r} is invalid: accepted {SCHEDULES}")


@dataclass(frozen=True)
class Setup:
    """Everything a comparison's tasks share (plain values: tasks run in other processes too)."""

    preset: str = "sweep"
    data: str = "world:100000"
    transition: Transition = Transition()  # the default at both boundaries
    lr_factors: tuple[float, ...] = LR_FACTORS
    lr_max_points: int = LR_MAX_POINTS
    eval_points: int = EVAL_POINTS
    new_warmup: float = 0.25  # an inserted block's own warm-up, as a share of phase 3's steps (0: none)

    def __post_init__(self) -> None:
        get_preset(self.preset)  # an unknown preset fails here, before anything is trained
        if not self.lr_factors or any(f <= 0 for f in self.lr_factors) or len(set(self.lr_factors)) != len(self.lr_factors):
            raise ValueError(f"learning-rate factors {list(self.lr_factors)} are invalid: accepted distinct "
                             f"positive numbers")
        if self.lr_max_points < len(self.lr_factors):
            raise ValueError(f"lr_max_points={self.lr_max_points} is invalid: accepted at least the "
                             f"{len(self.lr_factors)} first rates")

    @property
    def configs(self) -> dict:
        p = get_preset(self.preset)
        return phase_configs(p.model, p.growth)

    @property
    def train(self) -> TrainConfig:
        return get_preset(self.preset).train

    def step_flops(self, phase: int) -> float:
        """Training FLOPs of one step of ``phase``'s model (1 and 3 are also the baselines' models)."""
        t = self.train
        return float(training_flops_per_token(self.configs[phase], t.seq_len) * t.batch_size * t.seq_len)

    def grown_active_params(self) -> int:
        return analytic_params(self.configs[3])[1]

    def budget_flops(self, tokens_per_param: float) -> float:
        """C for a budget of ``tokens_per_param`` tokens per active parameter of the grown architecture."""
        n = self.grown_active_params()
        return tokens_per_param * n * self.step_flops(3) / (self.train.batch_size * self.train.seq_len)

    def grown_steps(self, flops: float) -> tuple[int, int, int]:
        """The preset's three phase lengths scaled together so that the grown path costs ``flops``."""
        t = self.train
        base = (t.steps_phase1, t.steps_phase2, t.steps_phase3)
        scale = flops / sum(n * self.step_flops(p) for p, n in enumerate(base, start=1))
        return tuple(max(1, round(n * scale)) for n in base)

    def baseline_steps(self, flops: float, phase: int) -> int:
        """Steps of ``phase``'s model (1: the small dense one, 3: the grown architecture) that ``flops`` buys."""
        return max(1, round(flops / self.step_flops(phase)))

    def warmup(self, steps: int) -> int:
        """A path's warm-up: the preset's, at most a fifth of the path."""
        return max(1, min(self.train.warmup_steps, steps // 5))


def grown_phase_spec(setup: Setup, train: TrainConfig, steps: tuple[int, int, int], phase: int,
                     transitions: dict[int, Transition], lr_factor: float = 1.0) -> PhaseSpec:
    """Phase ``phase`` of the grown path: its length, and its learning rate by the transitions.

    The path is cut where a transition re-warms; each piece has one warm-up and one cosine decay
    over its length, peaking at the rate of its first phase (times that transition's ``peak``).
    With every transition continuing, the whole path is one piece at phase 1's rate. ``lr_factor``
    scales every peak: the path's own learning-rate sweep (growlib.harness.compare.tasks).
    """
    starts = [1] + [p for p in (2, 3) if transitions.get(p, Transition()).schedule == "rewarm"]
    first = max(p for p in starts if p <= phase)  # the piece ``phase`` belongs to starts here
    last = min([p - 1 for p in starts if p > phase] + [3])
    length = sum(steps[first - 1:last])
    peak = train.lr(first) * (transitions[first].peak if first > 1 else 1.0) * lr_factor
    return dataclasses.replace(PhaseSpec.of(train, phase), steps=steps[phase - 1], peak_lr=peak,
                               warmup=setup.warmup(length), lr_offset=sum(steps[first - 1:phase - 1]),
                               lr_total=length)


def baseline_spec(setup: Setup, train: TrainConfig, steps: int, lr: float, stream: int = 1) -> PhaseSpec:
    """A model trained from its initialisation for ``steps``: one warm-up and decay over all of them."""
    return dataclasses.replace(PhaseSpec.of(train, 1), steps=steps, peak_lr=lr, warmup=setup.warmup(steps),
                               stream=stream)


def eval_every(steps: int, points: int) -> int:
    return max(1, steps // points)
