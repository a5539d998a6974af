"""Benchmarks (figures, not tests): ``python -m growlib bench [all|peak|steps|moe|grow|memory] [--json PATH]``.

- ``peak``: this machine's fp32 matmul rate, the best over square and transformer-shaped products.
- ``steps``: training steps of the cpu preset and of the recipe's dense and MoE models, as a
  fraction of that peak, with tokens per second and peak memory against the estimate; each
  step timed once the heap has settled, against the peak measured in its own process just
  before and just after; the recipe's dense and MoE steps three times each, in fresh processes
  (the medians are reported). Its JSON keys ``recipe_*`` name the recipe's models; each is also
  written as ``seed_*``, the name earlier scripts read.
- ``moe``: forward+backward of the MoE layer at the recipe's shapes (d 832, hidden
  3328, 8 experts, top-2, 2048 tokens, fp32) against a dense MLP with the same
  active FLOPs (hidden 6656) and against the Mixtral-style loop over experts; the layer
  runs its default experts (``expert_kernel="auto"``: the expert loop on a CPU) and, as
  ``grouped_*``, the same layer through ``torch._grouped_mm``.
- ``grow``: growing the recipe's MoE (371.6 M) to the recipe's phase 3 (2.16 B),
  wall time and peak memory over the two models' size (run in a fresh process
  so the peak belongs to the growth alone).
- ``memory``: one ``--lean`` training step of the recipe's phase 3 (2.16 B): peak memory and time.
- ``all``: every figure above in one run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

from ..accounting import training_flops_per_token
from ..budget import phase_configs
from ..config import get_preset
from ..grow import grow
from ..lean import OptimizerInBackward, free_model
from ..memory import estimate_memory
from ..model import build_model
from ..moe import MoE, choose_expert_kernel, expert_loop_reference
from ..process_memory import current_rss, lifetime_peak_rss, minor_page_faults
from ..train import PhaseSpec, make_optimizer, train_step
from .bench_dist import bench_dist
from .memory.heap import keep_freed_memory_for_reuse
from .memory.machine import measured_peak, reset_peak, runtime_overhead


def _time(fn: Callable[[], None], repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _moe_layer_and_inputs(d: int, hidden: int, n_experts: int, top_k: int, tokens: int):
    """The MoE layer, its experts as separate leaf tensors (the loop's), a dense MLP of equal active FLOPs, x."""
    torch.manual_seed(0)
    layer = MoE(d, hidden, n_experts, top_k)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.02)
    experts = [tuple(p[e].detach().clone().requires_grad_() for p in (layer.w_in, layer.b_in, layer.w_out, layer.b_out))
               for e in range(n_experts)]
    dense = torch.nn.Sequential(torch.nn.Linear(d, hidden * top_k), torch.nn.GELU(),
                                torch.nn.Linear(hidden * top_k, d))
    return layer, experts, dense, torch.randn(tokens, d, requires_grad=True)


def _timed_in_rotation(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each step, run in rotation so a drift in the machine's speed hits all alike."""
    for step in steps.values():  # warm-up
        step(), step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, step in steps.items():
            start = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def _with_expert_kernel(layer: MoE, kernel: str, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``'s output with its experts run by ``kernel``; the layer's own choice is restored after."""
    own, layer.expert_kernel = layer.expert_kernel, kernel
    try:
        return layer(x)[0]
    finally:
        layer.expert_kernel = own


def bench_moe(d: int = 832, hidden: int = 3328, n_experts: int = 8, top_k: int = 2, tokens: int = 2048,
              repeats: int = 5) -> dict:
    layer, experts, dense, x = _moe_layer_and_inputs(d, hidden, n_experts, top_k, tokens)
    grad = torch.randn(tokens, d)

    def run(f):
        def step():
            for module in (layer, dense):
                module.zero_grad(set_to_none=True)
            x.grad = None
            for q in (q for ps in experts for q in ps):
                q.grad = None
            f().backward(grad)
        return step

    t = _timed_in_rotation({"moe": run(lambda: layer(x)[0]), "dense": run(lambda: dense(x)),
                            "loop": run(lambda: expert_loop_reference(layer, experts, x)),
                            "grouped": run(lambda: _with_expert_kernel(layer, "grouped", x))}, repeats)
    flops = 3 * 2 * tokens * top_k * 2 * d * hidden  # forward + backward of the active expert matmuls
    return {
        "moe_shape": f"d={d} hidden={hidden} experts={n_experts} top-{top_k} tokens={tokens} fp32",
        "moe_fwd_bwd_ms": 1e3 * t["moe"],
        "dense_equivalent_fwd_bwd_ms": 1e3 * t["dense"],
        "loop_reference_fwd_bwd_ms": 1e3 * t["loop"],
        "moe_gflops": flops / t["moe"] / 1e9,
        "dense_equivalent_gflops": flops / t["dense"] / 1e9,
        "moe_over_dense_equivalent": t["moe"] / t["dense"],
        "loop_reference_over_moe": t["loop"] / t["moe"],
        # what "moe" ran its experts with ("loop" or "grouped"), for balanced routing
        "moe_experts": choose_expert_kernel(layer.expert_kernel, x, layer.w_in, layer.w_out,
                                            [tokens * top_k // n_experts] * n_experts),
        "grouped_fwd_bwd_ms": 1e3 * t["grouped"],
        "grouped_over_moe": t["grouped"] / t["moe"],
        "threads": torch.get_num_threads(),
    }


def _grow_worker() -> dict:
    """Runs in a fresh process: build the recipe's MoE, grow it, report time and peak memory."""

    p = get_preset("recipe")
    cfgs = phase_configs(p.model, p.growth)
    base = current_rss() / 1e9
    moe = build_model(cfgs[2], seed=0)
    old_gb = sum(t.numel() * t.element_size() for t in moe.state_dict().values()) / 1e9
    before = current_rss() / 1e9
    start = time.perf_counter()
    grown = grow(moe, p.growth.scale_factor, p.growth.extra_layers, verbose=False)
    seconds = time.perf_counter() - start
    new_gb = sum(t.numel() * t.element_size() for t in grown.state_dict().values()) / 1e9
    peak = lifetime_peak_rss() / 1e9 - base  # the process's peak, less what torch itself took
    return {"grow_seconds": seconds, "grow_old_model_gb": old_gb, "grow_new_model_gb": new_gb,
            "grow_rss_before_gb": before - base, "grow_peak_gb": peak,
            "grow_peak_over_models": peak / (old_gb + new_gb),
            "grow_params": sum(t.numel() for t in grown.parameters())}


def bench_grow() -> dict:
    return _in_subprocess("_grow_worker")


def bench_matmul_peak(repeats: int = 5) -> dict:
    """This machine's fp32 matmul rate: the best over square and transformer-shaped products.

    The best of several shapes and repeats, so a step is never compared with an
    unlucky, low peak.
    """
    shapes = [(2048, 2048, 2048), (4096, 4096, 4096), (2048, 832, 3328), (2048, 3328, 832)]
    best = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(2):
            a @ b
        seconds = min(_time(lambda: a @ b, repeats=1, warmup=0) for _ in range(repeats))
        best = max(best, 2 * m * k * n / seconds / 1e9)
    return {"matmul_peak_gflops": best}


def _fresh_phase(preset: str, phase: int, seed: int):
    """One phase's model and AdamW in this (fresh) process, set up as ``run`` sets up a CPU training.

    The heap keeps freed memory for reuse (harness.memory.heap) and the peak is reset after the
    runtime's warm-up. Returns (model config, train config, what the process adds to the plan,
    model, optimizer, token generator).
    """
    p = get_preset(preset)
    cfg = phase_configs(p.model, p.growth)[phase]
    overhead = runtime_overhead(keep_freed_memory_for_reuse())
    reset_peak("cpu")
    model = build_model(cfg, seed=seed)
    opt = make_optimizer(model, 1e-4, p.train.weight_decay, "cpu")
    return cfg, p.train, overhead, model, opt, torch.Generator().manual_seed(seed)


SETTLED_PAGE_FAULTS = 4096  # fresh pages (16 MiB): a step that faults fewer found its memory in the heap
MAX_WARMUP_STEPS = 6


def warm_up_until_settled(step: Callable[[], None], max_steps: int = MAX_WARMUP_STEPS) -> list[int]:
    """Run ``step`` until one takes fewer than SETTLED_PAGE_FAULTS fresh pages; each step's page faults.

    The first steps of a phase grow the heap (the recipe's MoE: 1.25 M fresh 4 KiB pages in its
    first step, 0.47 M in the second, 0.10 M in the third, then none), and the kernel zeroes every
    fresh page at its first touch: a step timed before the heap has settled measures that, not
    the step a run repeats for the rest of its phase.
    """
    faults: list[int] = []
    while len(faults) < max_steps:
        before = minor_page_faults()
        step()
        faults.append(minor_page_faults() - before)
        if faults[-1] < SETTLED_PAGE_FAULTS:
            break
    return faults


def _step_worker(preset: str, phase: int, steps: int) -> dict:
    """Fresh process: time ``steps`` training steps of one phase's model at its preset's batch.

    Each is :func:`growlib.train_step`, the step a run takes (a MoE's auxiliary losses included),
    timed once the heap has settled. The matmul peak is measured in this process right before and
    right after the timed steps, and the step is compared with their mean: this machine's matmul
    rate drifts by tens of percent within a minute, so a peak taken a minute earlier would say
    more about the drift than about the step.
    """
    cfg, t, overhead, model, opt, gen = _fresh_phase(preset, phase, seed=0)
    batch = tuple(torch.randint(0, cfg.vocab_size, (2, t.batch_size, t.seq_len), generator=gen))

    def step():
        train_step(model, opt, batch, PhaseSpec.of(t, phase))

    warmup_faults = warm_up_until_settled(step)
    peak, _ = measured_peak("cpu")  # the settled heap: read before the matmul peak's matrices join it
    peak_before = bench_matmul_peak()["matmul_peak_gflops"]
    faults_before = minor_page_faults()
    times = [_time(step, repeats=1, warmup=0) for _ in range(steps)]
    timed_faults = (minor_page_faults() - faults_before) // steps
    peak_after = bench_matmul_peak()["matmul_peak_gflops"]
    tokens = t.batch_size * t.seq_len
    sec = statistics.median(times)
    gflops = training_flops_per_token(cfg, t.seq_len) * tokens / sec / 1e9
    estimate = estimate_memory(cfg, t.batch_size, t.seq_len, overhead=overhead).total
    matmul_peak = (peak_before + peak_after) / 2
    return {"step_seconds": sec, "step_gflops": gflops, "tokens_per_second": tokens / sec,
            "matmul_peak_gflops": matmul_peak, "matmul_peaks_before_after": [peak_before, peak_after],
            "fraction_of_peak": gflops / matmul_peak, "warmup_steps": len(warmup_faults),
            "warmup_page_faults": warmup_faults, "timed_page_faults_per_step": timed_faults,
            "peak_rss_gb": peak / 1e9, "estimate_gb": estimate / 1e9, "step_times": times}


def _in_subprocess(worker: str, *args) -> dict:
    code = f"import json; from growlib.harness.bench import {worker}; print(json.dumps({worker}(*{args!r})))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark {worker}{args} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _recipe_step_runs(key: str, phase: int, steps: int, runs: int) -> tuple[dict, list[dict]]:
    """The recipe's ``phase`` step measured ``runs`` times, each in a fresh process with its own peak.

    Returns (the run whose fraction of its peak is the median, all runs).
    """
    results = []
    for i in range(runs):
        r = _in_subprocess("_step_worker", "recipe", phase, steps)
        results.append(r)
        before, after = r["matmul_peaks_before_after"]
        print(f"  {key} run {i + 1}: {r['warmup_steps']} warm-up steps, peak {before:.1f} before / {after:.1f} "
              f"after GFLOP/s, step {r['step_seconds']:.2f} s, {r['step_gflops']:.1f} GFLOP/s = "
              f"{r['fraction_of_peak']:.3f} of peak", flush=True)
    median = sorted(range(runs), key=lambda i: results[i]["fraction_of_peak"])[runs // 2]
    return results[median], results


def bench_steps(recipe_runs: int = 3) -> dict:
    """Training steps of the cpu preset and of the recipe's dense and MoE models, against the matmul peak.

    Every step is timed once the heap has settled, against the matmul peak measured in its own
    process just before and just after (:func:`_step_worker`). The recipe's dense and MoE steps
    are each measured ``recipe_runs`` times, in fresh processes; their ``*_step_fraction_of_peak``
    is the median of those fractions.
    """
    out: dict = {}
    chosen = {}
    for key, phase, steps in (("recipe_dense", 1, 3), ("recipe_moe", 2, 2)):
        chosen[key], runs = _recipe_step_runs(key, phase, steps, recipe_runs)
        for field, name in (("matmul_peak_gflops", "matmul_peak_gflops"), ("step_seconds", "step_seconds"),
                            ("fraction_of_peak", "fraction_of_peak"), ("warmup_steps", "warmup_steps")):
            out[f"{key}_runs_{name}"] = [r[field] for r in runs]
    out["matmul_peak_gflops"] = chosen["recipe_dense"]["matmul_peak_gflops"]
    for key, preset, phase, steps in (("cpu_dense", "cpu", 1, 10), ("cpu_grown", "cpu", 3, 3),
                                      ("recipe_dense", "recipe", 1, 3), ("recipe_moe", "recipe", 2, 2)):
        out.update(_step_figures(key, chosen.get(key) or _in_subprocess("_step_worker", preset, phase, steps)))
    # the two medians' ratio: 1.0 when a MoE step turns its FLOPs into time as well as a dense step
    out["recipe_moe_over_dense_fraction"] = (out["recipe_moe_step_fraction_of_peak"]
                                             / out["recipe_dense_step_fraction_of_peak"])
    return with_earlier_names(out)


def _step_figures(key: str, r: dict) -> dict:
    return {f"{key}_step_seconds": r["step_seconds"], f"{key}_tokens_per_second": r["tokens_per_second"],
            f"{key}_step_gflops": r["step_gflops"], f"{key}_step_fraction_of_peak": r["fraction_of_peak"],
            f"{key}_peak_rss_gb": r["peak_rss_gb"], f"{key}_memory_estimate_gb": r["estimate_gb"],
            f"{key}_estimate_over_measured": r["estimate_gb"] / r["peak_rss_gb"]}


def with_earlier_names(figures: dict) -> dict:
    """Every ``recipe_*`` figure also under ``seed_*``, the name earlier scripts read (the recipe's first name)."""
    out = dict(figures)
    for key, value in figures.items():
        if key.startswith("recipe_"):
            out["seed_" + key[len("recipe_"):]] = value
    return out


def _lean_phase3_worker(steps: int = 1) -> dict:
    """Fresh process: the recipe's MoE -> grow to 2.16 B -> free the MoE -> ``steps`` lean training steps.

    One step already holds the peak: Adafactor's factored states are made in it.
    """

    overhead = runtime_overhead(keep_freed_memory_for_reuse())
    p = get_preset("recipe")
    cfgs = phase_configs(p.model, p.growth)
    t = p.train
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, cfgs[3].vocab_size, (2, t.batch_size, t.seq_len), generator=gen)
    moe = build_model(cfgs[2], seed=0)
    grown = grow(moe, p.growth.scale_factor, p.growth.extra_layers, verbose=False)
    free_model(moe)
    del moe
    reset_peak("cpu")  # from here on: the training's own peak
    grown.train()
    grown.grad_checkpointing = True
    opt = OptimizerInBackward(grown, t.lr_phase3, t.weight_decay)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        grown(x, y).backward()  # every parameter is updated during this call
        times.append(time.perf_counter() - start)
    train_peak, _ = measured_peak("cpu")
    opt.remove()
    estimate = estimate_memory(cfgs[3], t.batch_size, t.seq_len, lean=True, overhead=overhead).total
    return {"lean_phase3_params": sum(q.numel() for q in grown.parameters()),
            "lean_phase3_peak_rss_gb": lifetime_peak_rss() / 1e9,  # the whole process: growth included
            "lean_phase3_train_peak_rss_gb": train_peak / 1e9,
            "lean_phase3_estimate_gb": estimate / 1e9,
            "lean_phase3_estimate_over_measured": estimate / train_peak,
            "lean_phase3_step_seconds": statistics.median(times)}


def phase_peaks(preset: str, phase: int, checkpoints: tuple[int, ...], seed: int = 0) -> dict:
    """Fresh process: train one phase's model ``max(checkpoints)`` steps; the peak RSS after each checkpoint.

    AdamW through :func:`growlib.train_step`, on random tokens at the preset's batch.
    A plan made before the phase holds only if the peak stops growing once every
    buffer exists: the ratio of the last checkpoint's peak to the first shows it.
    """
    cfg, t, overhead, model, opt, gen = _fresh_phase(preset, phase, seed)
    peaks = {}
    for step in range(1, max(checkpoints) + 1):
        batch = torch.randint(0, cfg.vocab_size, (2, t.batch_size, t.seq_len), generator=gen)
        train_step(model, opt, tuple(batch), PhaseSpec.of(t, phase))
        if step in checkpoints:
            peaks[step] = measured_peak("cpu")[0]
    estimate = estimate_memory(cfg, t.batch_size, t.seq_len, overhead=overhead).total
    first, last = peaks[min(checkpoints)], peaks[max(checkpoints)]
    return {"peaks_gb": {str(k): v / 1e9 for k, v in peaks.items()}, "estimate_gb": estimate / 1e9,
            "last_over_first": last / first, "estimate_over_measured": estimate / last}


def bench_phase_peaks() -> dict:
    """The cpu preset's MoE (phase 2) and grown MoE (phase 3): does the peak keep growing with steps?"""
    out: dict = {}
    for key, phase, checkpoints in (("cpu_moe", 2, (20, 150)), ("cpu_grown", 3, (10, 40))):
        r = _in_subprocess("phase_peaks", "cpu", phase, checkpoints)
        first, last = checkpoints
        out[f"{key}_peak_gb_after_{first}"] = r["peaks_gb"][str(first)]
        out[f"{key}_peak_gb_after_{last}"] = r["peaks_gb"][str(last)]
        out[f"{key}_peak_growth"] = r["last_over_first"]
        out[f"{key}_estimate_over_peak"] = r["estimate_over_measured"]
    return out


def bench_memory() -> dict:
    """Memory over many steps at the cpu preset, and the recipe's lean phase 3."""
    return {**bench_phase_peaks(), **_in_subprocess("_lean_phase3_worker")}


def bench_all() -> dict:
    """Every figure in one run: steps against the matmul peak, the MoE layer, growth, lean memory."""
    return {**bench_steps(), **bench_moe(), **bench_grow(), **bench_memory()}


BENCHES = {"all": bench_all, "moe": bench_moe, "grow": bench_grow, "steps": bench_steps, "memory": bench_memory,
           "peak": bench_matmul_peak, "dist": bench_dist}


def run_bench(which: str, json_path: str | None = None) -> dict:
    if which not in BENCHES:
        raise ValueError(f"unknown benchmark {which!r}: accepted {sorted(BENCHES)}")
    print(f"[bench {which}] torch {torch.__version__}, {torch.get_num_threads()} threads")
    figures = BENCHES[which]()
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        shown = f"{v:.4g}" if isinstance(v, float) else (", ".join(f"{t:.3g}" for t in v) if isinstance(v, list) else v)
        print(f"  {k:<{width}}  {shown}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(figures, f, indent=1)
        print(f"  written to {json_path}")
    return figures
