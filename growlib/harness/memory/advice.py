"""The recipe's advice for a phase that does not fit: its options worked out for this machine.

Notebook 00 shows the table. :func:`recommendations` prints phase 3's memory under each of
the recipe's fallbacks (a smaller batch, x1.5 width, +2 layers, lean mode) and under FSDP
across processes; :func:`best_option` names the smallest change that fits.
"""

from __future__ import annotations

import dataclasses

from ...budget import phase_configs
from ...config import GrowthConfig, ModelConfig
from ...memory import FITS_HEADROOM, GB, Overhead, estimate_memory

LEAN_WHAT = "Adafactor stepped in backward, gradient checkpointing"

# (label, growth changes, batch divisor, lean): the options the recipe suggests, in its order
OPTIONS = [("batch 8 -> 4", {}, 2, False),
           ("scale_factor 2 -> 1.5", {"scale_factor": 1.5}, 1, False),
           ("extra_layers 4 -> 2", {"extra_layers": 2}, 1, False),
           ("scale 1.5, +2 layers, batch 4", {"scale_factor": 1.5, "extra_layers": 2}, 2, False),
           ("--lean (Adafactor in backward, checkpointing)", {}, 1, True)]


def _phase3(model_cfg: ModelConfig, growth: GrowthConfig, change: dict) -> ModelConfig | None:
    """Phase 3's config with ``change`` applied to the growth plan; None where the model cannot take it."""
    try:
        return phase_configs(model_cfg, dataclasses.replace(growth, **change))[3]
    except ValueError:
        return None  # a factor this model's sizes cannot take


def recommendations(model_cfg: ModelConfig, growth: GrowthConfig, batch_size: int, seq_len: int,
                    available: float, overhead: Overhead = Overhead()) -> list[str]:
    """Phase 3's memory under each of the recipe's options, against ``available`` bytes."""
    lines = [f"  Recommendations for {available / GB:.1f} GB (phase 3 totals):"]
    for label, change, divisor, lean in OPTIONS:
        cfg = _phase3(model_cfg, growth, change)
        if cfg is None:
            continue
        plan = estimate_memory(cfg, batch_size // divisor or 1, seq_len, lean=lean, overhead=overhead)
        lines.append(f"    {label:<48s} {plan.total / GB:6.1f} GB  {'✅ fits' if plan.fits(available) else '✗'}")
    for n in PROCESS_COUNTS:  # FSDP: the same model, spread over n processes of this size
        if batch_size % n == 0:
            total = _sharded_total(model_cfg, growth, batch_size, seq_len, overhead, n)
            label = f"torchrun --nproc-per-node {n} (FSDP, per process)"
            lines.append(f"    {label:<48s} {total / GB:6.1f} GB  {'✅ fits' if total < FITS_HEADROOM * available else '✗'}")
    return lines


def best_option(model_cfg: ModelConfig, growth: GrowthConfig, batch_size: int, seq_len: int, available: float,
                overhead: Overhead) -> str:
    """The smallest change of the recipe's options (in lean mode) that makes phase 3 fit, as advice."""
    tries = [("--scale-factor 1.5", {"scale_factor": 1.5}), ("--extra-layers 2", {"extra_layers": 2}),
             ("--scale-factor 1.5 --extra-layers 2", {"scale_factor": 1.5, "extra_layers": 2})]
    for flags, change in tries:
        cfg = _phase3(model_cfg, growth, change)
        if cfg is None:
            continue
        for batch in (batch_size, batch_size // 2):
            total = estimate_memory(cfg, max(1, batch), seq_len, lean=True, overhead=overhead).total
            if total < FITS_HEADROOM * available:
                return (f"it fits with {flags} (phase 3 {total / GB:.1f} GB in lean mode"
                        + (f", batch {batch})" if batch != batch_size else ")"))
    for n in PROCESS_COUNTS:
        if batch_size % n == 0 and _sharded_total(model_cfg, growth, batch_size, seq_len, overhead, n) < \
                FITS_HEADROOM * available:
            return (f"it fits on {n} processes of this size with FSDP (torchrun --nproc-per-node {n} -m growlib run "
                    f"...; phase 3 {_sharded_total(model_cfg, growth, batch_size, seq_len, overhead, n) / GB:.1f} GB "
                    f"a process)")
    return "none of the recipe's fallbacks fits either: use a smaller preset (cpu, tiny) or a machine with more memory"


PROCESS_COUNTS = (2, 4, 8)  # the scale-out options the advice tries (growlib.parallel)


def _sharded_total(model_cfg: ModelConfig, growth: GrowthConfig, batch_size: int, seq_len: int, overhead: Overhead,
                   processes: int) -> float:
    """Phase 3's plan for one of ``processes`` FSDP processes, each with its share of the batch."""
    cfg = phase_configs(model_cfg, growth)[3]
    return estimate_memory(cfg, batch_size // processes, seq_len, overhead=overhead, shards=processes).total
