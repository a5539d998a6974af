"""Configuration: the model, the training run, the growth plan, and named presets.

Every dataclass validates itself when built (``__post_init__``), so a bad value
raises a ``ValueError`` naming the field, the value and what is accepted before
any tensor is allocated. Taught in notebook 00.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

PLACEMENTS = ("end", "interleave", "middle")
# symmetry-breaking split noise of width growth, as a fraction of std(W) (growlib.grow): the function
# stays exact up to fp32 rounding, and the copies of a unit get different gradients
SPLIT_NOISE = 0.02
ROUTER_MODES = ("topk_softmax", "softmax_topk")


def _fail(cls: str, name: str, value: Any, accepted: str) -> None:
    raise ValueError(f"{cls}.{name} = {value!r} is invalid: accepted {accepted}")


def _positive(cls: str, obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            _fail(cls, name, value, "a number > 0")


def _positive_int(cls: str, obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            _fail(cls, name, value, "an integer > 0")


@dataclass(frozen=True)
class ModelConfig:
    """A pre-LN GPT; ``n_experts == 0`` is dense, otherwise every MLP is a MoE block."""

    vocab_size: int = 50257
    d_model: int = 832
    n_layers: int = 7
    n_heads: int = 8
    d_mlp: int = 3328  # 4 x d_model
    max_seq_len: int = 256
    ln_eps: float = 1e-5  # default eps of every LayerNorm (each module keeps its own copy)
    rope_theta: float = 10000.0
    init_std: float = 0.02
    n_experts: int = 0
    top_k: int = 2
    router_mode: str = "topk_softmax"

    def __post_init__(self) -> None:
        c = "ModelConfig"
        _positive_int(c, self, "vocab_size", "d_model", "n_layers", "n_heads", "d_mlp", "max_seq_len")
        _positive(c, self, "ln_eps", "rope_theta", "init_std")
        if self.d_model % self.n_heads:
            _fail(c, "n_heads", self.n_heads, f"a divisor of d_model={self.d_model}")
        if self.head_dim % 2:
            _fail(c, "n_heads", self.n_heads,
                  f"a head count giving an even head size for RoPE (d_model/n_heads = {self.head_dim})")
        if isinstance(self.n_experts, bool) or not isinstance(self.n_experts, int) or self.n_experts < 0:
            _fail(c, "n_experts", self.n_experts, "0 (dense) or an integer >= 1")
        if self.n_experts:
            _positive_int(c, self, "top_k")
            if self.top_k > self.n_experts:
                _fail(c, "top_k", self.top_k, f"1..n_experts={self.n_experts}")
        if self.router_mode not in ROUTER_MODES:
            _fail(c, "router_mode", self.router_mode, f"one of {ROUTER_MODES}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0


@dataclass(frozen=True)
class TrainConfig:
    """One run of three phases. Defaults are the recipe's: 100 steps, log every 10, batch 8."""

    steps_phase1: int = 100
    steps_phase2: int = 100
    steps_phase3: int = 100
    log_every: int = 10
    lr_phase1: float = 3e-4
    lr_phase2: float = 1e-4
    lr_phase3: float = 8e-5
    warmup_steps: int = 10  # linear warm-up at the start of every phase (the re-warmup after growth)
    min_lr_ratio: float = 0.1  # cosine decay ends at this fraction of the phase's LR
    batch_size: int = 8
    seq_len: int = 256
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_batches: int = 4  # fixed held-out batches used for every evaluation
    aux_loss_coef: float = 0.01  # Switch Transformer load balancing
    z_loss_coef: float = 1e-3  # ST-MoE router z-loss
    seed: int = 0

    def __post_init__(self) -> None:
        c = "TrainConfig"
        _positive_int(c, self, "steps_phase1", "steps_phase2", "steps_phase3", "log_every",
                      "batch_size", "seq_len", "eval_batches")
        _positive(c, self, "lr_phase1", "lr_phase2", "lr_phase3", "grad_clip")
        for name in ("warmup_steps",):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                _fail(c, name, v, "an integer >= 0")
        for name in ("weight_decay", "aux_loss_coef", "z_loss_coef"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                _fail(c, name, v, "a number >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            _fail(c, "min_lr_ratio", self.min_lr_ratio, "a number in [0, 1]")

    def steps(self, phase: int) -> int:
        return (self.steps_phase1, self.steps_phase2, self.steps_phase3)[phase - 1]

    def lr(self, phase: int) -> float:
        return (self.lr_phase1, self.lr_phase2, self.lr_phase3)[phase - 1]

    def with_token_budget(self, tokens: int) -> "TrainConfig":
        """The three phases scaled together so that they see ``tokens`` training tokens in all."""
        per_step = self.batch_size * self.seq_len
        total = (self.steps_phase1 + self.steps_phase2 + self.steps_phase3) * per_step
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 3 * per_step:
            raise ValueError(f"token budget {tokens!r} is invalid: accepted an integer >= {3 * per_step} "
                             f"(one step of {per_step} tokens per phase); this preset's is {total}")
        scale = tokens / total
        steps = [max(1, round(n * scale)) for n in (self.steps_phase1, self.steps_phase2, self.steps_phase3)]
        return replace(self, steps_phase1=steps[0], steps_phase2=steps[1], steps_phase3=steps[2],
                       warmup_steps=min(self.warmup_steps, max(1, min(steps) // 5)),
                       log_every=min(self.log_every, max(1, min(steps) // 4)))

    def with_steps(self, n: int) -> "TrainConfig":
        """The same run with every phase shortened (or lengthened) to ``n`` steps."""
        return replace(self, steps_phase1=n, steps_phase2=n, steps_phase3=n,
                       warmup_steps=min(self.warmup_steps, max(1, n // 5)),
                       log_every=min(self.log_every, max(1, n // 4)))


@dataclass(frozen=True)
class GrowthConfig:
    """Phase 2 (upcycling) and phase 3 (bilateral growth) settings."""

    n_experts: int = 8
    top_k: int = 2
    scale_factor: float = 2.0
    extra_layers: int = 4
    placement: str = "end"
    noise: float = SPLIT_NOISE

    def __post_init__(self) -> None:
        c = "GrowthConfig"
        _positive_int(c, self, "n_experts", "top_k")
        if self.top_k > self.n_experts:
            _fail(c, "top_k", self.top_k, f"1..n_experts={self.n_experts}")
        if isinstance(self.scale_factor, bool) or not isinstance(self.scale_factor, (int, float)) \
                or self.scale_factor < 1:
            _fail(c, "scale_factor", self.scale_factor, "a number >= 1")
        if isinstance(self.extra_layers, bool) or not isinstance(self.extra_layers, int) \
                or self.extra_layers < 0:
            _fail(c, "extra_layers", self.extra_layers, "an integer >= 0")
        if self.placement not in PLACEMENTS:
            _fail(c, "placement", self.placement, f"one of {PLACEMENTS}")
        if self.noise < 0:
            _fail(c, "noise", self.noise, "a number >= 0")


@dataclass(frozen=True)
class Preset:
    """A named combination of model, run and growth settings."""

    name: str
    model: ModelConfig
    train: TrainConfig
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    description: str = ""

    def __post_init__(self) -> None:
        if self.train.seq_len > self.model.max_seq_len:
            _fail("Preset", "train.seq_len", self.train.seq_len,
                  f"at most model.max_seq_len={self.model.max_seq_len}")


PRESETS: dict[str, Preset] = {
    "recipe": Preset(
        name="recipe",
        model=ModelConfig(),
        train=TrainConfig(),
        growth=GrowthConfig(),
        description="the recipe's sizes: 100.04 M dense -> 371.64 M MoE -> 2.16 B grown (GPU or 24 GB Mac)",
    ),
    "cpu": Preset(
        name="cpu",
        model=ModelConfig(vocab_size=2048, d_model=128, n_layers=4, n_heads=4, d_mlp=512, max_seq_len=128),
        train=TrainConfig(steps_phase1=600, steps_phase2=250, steps_phase3=150, log_every=50,
                          lr_phase1=2e-3, lr_phase2=1e-3, lr_phase3=6e-4, warmup_steps=30,
                          batch_size=16, seq_len=128, eval_batches=8),
        growth=GrowthConfig(),
        description="a plain CPU: all three phases learn visibly in a few minutes",
    ),
    "compare": Preset(  # the cpu preset at 3/4 width and 3 layers, half the steps
        name="compare",
        model=ModelConfig(vocab_size=2048, d_model=96, n_layers=3, n_heads=4, d_mlp=384, max_seq_len=128),
        train=TrainConfig(steps_phase1=300, steps_phase2=125, steps_phase3=75, log_every=25,
                          lr_phase1=2e-3, lr_phase2=1e-3, lr_phase3=6e-4, warmup_steps=15,
                          batch_size=16, seq_len=128, eval_batches=8),
        growth=GrowthConfig(extra_layers=3),
        description="growth against its baselines (python -m growlib compare): three seeds fit in minutes",
    ),
    "sweep": Preset(  # the budget sweep of notebook 04: a grown model of 0.4 M active parameters
        name="sweep",
        model=ModelConfig(vocab_size=1024, d_model=32, n_layers=2, n_heads=2, d_mlp=128, max_seq_len=128),
        train=TrainConfig(steps_phase1=500, steps_phase2=200, steps_phase3=250, log_every=50,
                          lr_phase1=3e-3, lr_phase2=1.5e-3, lr_phase3=1e-3, warmup_steps=25,
                          batch_size=16, seq_len=128, eval_batches=8),
        growth=GrowthConfig(extra_layers=2),
        description="when does growth pay (python -m growlib compare): 58 K dense -> 0.40 M active grown, "
                    "several budgets in hours",
    ),
    "tiny": Preset(
        name="tiny",
        model=ModelConfig(vocab_size=512, d_model=64, n_layers=2, n_heads=4, d_mlp=256, max_seq_len=64),
        train=TrainConfig(steps_phase1=60, steps_phase2=30, steps_phase3=30, log_every=10,
                          lr_phase1=3e-3, lr_phase2=1.5e-3, lr_phase3=1e-3, warmup_steps=5,
                          batch_size=8, seq_len=64, eval_batches=2),
        growth=GrowthConfig(n_experts=4, top_k=2, extra_layers=2),
        description="seconds: for tests and CI",
    ),
}


# earlier names that keep working: "seed" was the recipe preset's first name
PRESET_ALIASES = {"seed": "recipe"}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (or by an alias); a clear ``ValueError`` for an unknown one."""
    name = PRESET_ALIASES.get(name, name)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: accepted {sorted(PRESETS)} (or an alias: "
                         f"{', '.join(f'{a} = {n}' for a, n in PRESET_ALIASES.items())})")
    return PRESETS[name]
