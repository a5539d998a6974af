"""``python -m growlib bench device`` (``scripts/device_check.py``): what the recipe does on this device.

One short run, written to one JSON file, for the day a GPU is lent (it runs on a CPU too, at the
tiny preset, so it cannot rot). On the device it measures:

- each phase's training step (dense, MoE, grown) at the preset's batch: seconds, tokens/s,
  TFLOP/s and, where the GPU's bf16 peak is known, the MFU (growlib.device);
- the MoE's experts through ``torch._grouped_mm`` against the expert loop, time and difference;
- the two transitions' preservation after training in the device's dtype, checked in fp32;
- each phase's memory plan (growlib.memory) against the measured peak (CUDA's
  ``max_memory_allocated``, a CPU's peak resident memory);
- whether the preset's run (the recipe's: 100 steps a phase) fits this device, and how long its
  phases take at 100 steps each.

The models train on random tokens: a step's time and memory do not depend on the text.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from ..accounting import training_flops_per_token
from ..budget import phase_configs
from ..config import get_preset
from ..device import accelerator_peak_flops, pick_device, training_dtype
from ..grow import grow
from ..memory import GB, Overhead, estimate_memory
from ..model import GPT, build_model
from ..moe import MoE
from ..train import PhaseSpec, end_phase, phase_optimizer, train_step
from ..upcycle import upcycle
from ..verify import check_preservation
from .memory.heap import keep_freed_memory_for_reuse
from .memory.machine import available_memory, measured_peak, reset_peak, runtime_overhead
from .memory.plan import plan_run

RECIPE_STEPS = 100  # steps per phase of the recipe's run


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed_steps(model: GPT, spec: PhaseSpec, device: str, steps: int) -> tuple[float, float]:
    """(median seconds of the last ``steps`` training steps after one warm-up step, loss of the last)."""
    opt = phase_optimizer(model, spec, device)
    gen = torch.Generator().manual_seed(spec.phase)
    times, loss = [], float("nan")
    for i in range(steps + 1):
        batch = tuple(t.to(device) for t in torch.randint(0, model.cfg.vocab_size, (2, spec.batch_size, spec.seq_len),
                                                           generator=gen))
        _sync(device)
        start = time.perf_counter()
        loss = train_step(model, opt, batch, spec).loss
        _sync(device)
        if i:  # the first step allocates and compiles kernels: not timed
            times.append(time.perf_counter() - start)
    end_phase(model, opt)
    del opt
    return statistics.median(times), loss


def _phase_figures(model: GPT, spec: PhaseSpec, device: str, steps: int, plan) -> dict:
    reset_peak(device)
    seconds, loss = _timed_steps(model, spec, device, steps)
    peak, what = measured_peak(device)
    tokens = spec.batch_size * spec.seq_len
    flops = training_flops_per_token(model.cfg, spec.seq_len) * tokens / seconds
    peak_rate = accelerator_peak_flops(device)
    return {"step_seconds": seconds, "tokens_per_second": tokens / seconds, "tflops": flops / 1e12,
            "mfu": flops / peak_rate if peak_rate else None, "loss": loss, "lean": spec.lean,
            "plan_gb": plan.total / GB, "measured_gb": peak / GB, "measured": what,
            "measured_over_plan": peak / plan.total}


def _experts(moe: MoE, tokens: int, device: str, dtype: torch.dtype, repeats: int = 5) -> dict:
    """One MoE layer's forward and backward with each expert kernel: median ms, and their difference."""
    d = moe.w_in.shape[1]
    x = torch.randn(tokens, d, device=device, generator=None)
    out, times = {}, {}
    for kernel in ("loop", "grouped"):
        moe.expert_kernel = kernel
        try:
            with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
                runs = []
                for _ in range(repeats + 1):
                    xi = x.clone().requires_grad_()
                    _sync(device)
                    start = time.perf_counter()
                    y, _ = moe(xi)
                    y.float().square().mean().backward()
                    _sync(device)
                    runs.append(time.perf_counter() - start)
                out[kernel] = y.detach().float()
            times[kernel] = 1e3 * statistics.median(runs[1:])
        except ValueError as exc:  # the guard refused the grouped kernel here: say why
            times[kernel], out[kernel] = str(exc), None
        finally:
            moe.expert_kernel = "auto"
    diff = float((out["grouped"] - out["loop"]).abs().max()) if out.get("grouped") is not None else None
    return {"loop_ms": times["loop"], "grouped_ms": times["grouped"], "grouped_minus_loop_max": diff,
            "dtype": str(dtype).replace("torch.", "")}


def _run_fits(device: str, configs: dict, batch: int, seq: int) -> dict:
    """Each phase's plan with AdamW and in lean mode, the mode ``--lean auto`` would choose, whether it fits."""
    plans = plan_run(configs, batch, seq, Overhead(), available_memory(device), "auto")
    return {f"phase{p}": {"adamw_gb": plan.adamw.total / GB, "lean_gb": plan.lean.total / GB,
                          "trains_lean": plan.lean_chosen, "fits": plan.chosen.fits(available_memory(device))}
            for p, plan in plans.items()}


def device_check(device: str | None = None, preset: str | None = None, steps: int = 3,
                 json_path: str | None = None) -> dict:
    """Every figure of the module's docstring, on ``device`` (default: the best here) at ``preset``."""
    device = pick_device(device)
    preset = preset or ("tiny" if device == "cpu" else "recipe")
    p = get_preset(preset)  # a bad preset fails here, before anything is built
    started = time.perf_counter()
    configs, t = phase_configs(p.model, p.growth), p.train
    fits = _run_fits(device, configs, t.batch_size, t.seq_len)
    figures: dict = {"device": device, "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda")
                     else "CPU", "torch": torch.__version__, "preset": preset,
                     "training_dtype": str(training_dtype(device)).replace("torch.", ""), "steps_timed": steps,
                     "available_gb": available_memory(device) / GB, "run_fits": fits}
    specs = {ph: PhaseSpec.of(t, ph, lean=fits[f"phase{ph}"]["trains_lean"]) for ph in (1, 2, 3)}
    overhead = Overhead() if device.startswith("cuda") else runtime_overhead(keep_freed_memory_for_reuse())
    plans = {ph: estimate_memory(configs[ph], t.batch_size, t.seq_len, lean=specs[ph].lean, overhead=overhead)
             for ph in (1, 2, 3)}
    dense = build_model(configs[1], seed=0, device=device)
    figures["dense"] = _phase_figures(dense, specs[1], device, steps, plans[1])
    moe = upcycle(dense, p.growth.n_experts, p.growth.top_k, seed=0)
    tokens = torch.randint(0, configs[1].vocab_size, (1, min(64, t.seq_len)), device=device)
    figures["upcycling_logit_diff"] = check_preservation(dense, moe, tokens).logit_diff
    del dense
    figures["moe"] = _phase_figures(moe, specs[2], device, steps, plans[2])
    figures["experts"] = _experts(moe.moe_layers()[0], t.batch_size * t.seq_len * p.growth.top_k, device,
                                  training_dtype(device))
    grown = grow(moe, p.growth.scale_factor, p.growth.extra_layers, where=p.growth.placement, verbose=False)
    growth = check_preservation(moe, grown, tokens, where=p.growth.placement)
    figures["growth_max_diff"], figures["growth_passed"] = growth.overall, growth.passed
    del moe
    figures["grown"] = _phase_figures(grown, specs[3], device, steps, plans[3])
    figures["run_100_steps_seconds"] = {name: RECIPE_STEPS * figures[name]["step_seconds"]
                                        for name in ("dense", "moe", "grown")}
    figures["seconds"] = time.perf_counter() - started
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(figures, indent=1) + "\n")
    return figures
