"""The run, described once: what is trained and how, from the command line to the step.

:class:`RunSpec` is one frozen value. Its first fields say *what* is trained (the preset's
model, the three phases' training settings, the growth, the data); that part is the run's
fingerprint, which a resume must match. :class:`RunOptions` says *how* (device, output
folder, lean mode, compile, periodic checkpoints, processes); a resume may change it.
``python -m growlib run`` builds the spec once (:meth:`RunSpec.build`, which validates
every value before anything is opened or written); each phase then reads only its own
:class:`growlib.train.PhaseSpec` (:meth:`RunSpec.phase`). Nothing replaces a spec after a
run starts: ``compare`` builds the spec each of its paths needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..config import GrowthConfig, ModelConfig, Preset, TrainConfig, get_preset
from ..device import pick_device
from ..grow import widened_config
from ..train import PhaseSpec

LEAN_MODES = ("auto", "always", "never")  # --lean: per phase when needed, every phase, none


def check_lean_mode(value: str) -> str:
    """``auto``, ``always`` or ``never``, or a clear error."""
    if value not in LEAN_MODES:
        raise ValueError(f"--lean {value!r} is invalid: accepted one of {LEAN_MODES} (or --lean alone: always)")
    return value


@dataclass(frozen=True)
class RunOptions:
    """How a run trains: may change when it is resumed."""

    device: str = "cpu"
    out: Path | None = Path("checkpoints")  # None: nothing is written (compare, tests)
    lean: str = "auto"  # auto | always | never (growlib.harness.memory)
    compile: bool = False  # torch.compile each block (CUDA only)
    checkpoint_every: int = 0  # periodic checkpoints (with optimizer state) every N steps; 0 = phase ends only
    parallel: str | None = None  # under torchrun: fsdp (default there) or ddp
    workers: int | None = None  # processes that tokenize when the token files are first made
    verbose: bool = True


@dataclass(frozen=True)
class RunSpec:
    """What a run trains (its fingerprint) and how (:class:`RunOptions`)."""

    preset: str
    model: ModelConfig
    train: TrainConfig
    growth: GrowthConfig
    data: str = "auto"
    max_docs: int | None = None  # training documents kept from the source (None: all)
    how: RunOptions = field(default_factory=RunOptions)

    @classmethod
    def build(cls, preset: str | Preset = "cpu", data: str = "auto", steps: int | None = None,
              growth: dict | None = None, max_docs: int | None = None, device: str | None = None,
              out: str | Path | None = "checkpoints", lean: str = "auto", compile: bool = False,
              checkpoint_every: int = 0, parallel: str | None = None, workers: int | None = None,
              verbose: bool = True) -> "RunSpec":
        """The spec of a run, every value checked here (a clear ``ValueError``), before anything is opened."""
        p = get_preset(preset) if isinstance(preset, str) else preset
        train = p.train if steps is None else p.train.with_steps(steps)
        g = dataclasses.replace(p.growth, **(growth or {}))
        widened_config(dataclasses.replace(p.model, n_experts=g.n_experts, top_k=g.top_k), g.scale_factor)
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every={checkpoint_every} is invalid: accepted 0 (phase ends only) or N > 0")
        how = RunOptions(pick_device(device), None if out is None else Path(out), check_lean_mode(lean), compile,
                         checkpoint_every, parallel, workers, verbose)
        return cls(p.name, p.model, train, g, data, max_docs, how)

    def fingerprint(self) -> dict:
        """What must match for a run to be resumed: what is trained, not how."""
        return {"preset": self.preset, "model": dataclasses.asdict(self.model),
                "train": dataclasses.asdict(self.train), "growth": dataclasses.asdict(self.growth), "data": self.data,
                **({"max_docs": self.max_docs} if self.max_docs is not None else {})}

    def phase(self, phase: int, lean: bool = False) -> PhaseSpec:
        """What phase ``phase`` trains for; ``lean``: the memory plan chose lean mode for it."""
        return PhaseSpec.of(self.train, phase, lean=lean, compile=self.how.compile)

    def with_how(self, **changes) -> "RunSpec":
        """The same run trained another way (``changes``: fields of :class:`RunOptions`)."""
        return dataclasses.replace(self, how=dataclasses.replace(self.how, **changes))
