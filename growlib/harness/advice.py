"""The recipe's advice for a phase that does not fit, worked out for this machine."""

from __future__ import annotations

import dataclasses

from ..budget import phase_configs
from ..config import GrowthConfig, ModelConfig
from ..memory import GB, estimate_memory

# (label, growth changes, batch divisor, lean): the options the recipe suggests, in its order
OPTIONS = [("batch 8 -> 4", {}, 2, False),
           ("scale_factor 2 -> 1.5", {"scale_factor": 1.5}, 1, False),
           ("extra_layers 4 -> 2", {"extra_layers": 2}, 1, False),
           ("scale 1.5, +2 layers, batch 4", {"scale_factor": 1.5, "extra_layers": 2}, 2, False),
           ("--lean (Adafactor in backward, checkpointing)", {}, 1, True)]


def recommendations(model_cfg: ModelConfig, growth: GrowthConfig, batch_size: int, seq_len: int,
                    available: float, runtime: float = 0.0) -> list[str]:
    """Phase 3's memory under each of the recipe's options, against ``available`` bytes."""
    lines = [f"  Recommendations for {available / GB:.1f} GB (phase 3 totals):"]
    for label, change, divisor, lean in OPTIONS:
        try:
            cfg = phase_configs(model_cfg, dataclasses.replace(growth, **change))[3]
        except ValueError:
            continue  # a factor this model's sizes cannot take
        plan = dataclasses.replace(estimate_memory(cfg, batch_size // divisor or 1, seq_len, lean=lean), runtime=runtime)
        lines.append(f"    {label:<48s} {plan.total / GB:6.1f} GB  {'✅ fits' if plan.fits(available) else '✗'}")
    return lines
