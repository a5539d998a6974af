"""``python -m growlib bench dist``: the cpu preset's grown MoE trained in one process and in two.

Times a training step and measures each process's peak memory in three ways: one
process (all the cores), two FSDP processes and two DDP processes (one core each,
launched by torchrun). On a CPU, gloo is a correctness path, not a speed path:
the processes share the same cores and memory bus, and every step all-gathers
and reduce-scatters through memory copies, so two processes are not expected to
be faster than one here. What the benchmark shows is what each process holds.

Run alone (two torch jobs on two cores slow each other many times over).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..budget import phase_configs
from ..config import get_preset
from ..memory import GB, estimate_memory
from ..model import build_model
from ..parallel.group import SINGLE, from_torchrun
from ..parallel.sharding import distribute, training
from ..train import make_optimizer, train_step
from .memory.heap import keep_freed_memory_for_reuse, map_large_blocks, release_freed_memory
from .memory.machine import measured_peak, reset_peak, runtime_overhead

PRESET, PHASE = "cpu", 3
STEPS, WARM = 6, 2  # steps timed; the first WARM are left out of the median
MODES = ("one", "fsdp", "ddp")


def _phase_config(preset):
    """The model the benchmark trains: phase PHASE of ``preset`` (PRESET's settings)."""
    return phase_configs(preset.model, preset.growth)[PHASE]


def _worker(mode: str, out: str) -> None:
    """One process of the benchmark: train STEPS steps, then rank 0 writes what every rank measured."""
    par = SINGLE if mode == "one" else from_torchrun(mode, "cpu")
    heap = map_large_blocks() if mode == "fsdp" else keep_freed_memory_for_reuse()  # as `run` sets up the C heap
    overhead = runtime_overhead(heap)
    preset = get_preset(PRESET)
    cfg = _phase_config(preset)
    batch, seq = preset.train.batch_size, preset.train.seq_len
    model = distribute(build_model(cfg, seed=0) if par.is_main else None, par)
    opt = make_optimizer(model, 1e-4, preset.train.weight_decay, "cpu")
    gen = torch.Generator().manual_seed(0)
    release_freed_memory()  # what sharing the model out freed (rank 0's whole model, the others' staging copies)
    reset_peak("cpu")
    seconds = []
    with training(model, par) as net:
        for _ in range(STEPS):
            x = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen)  # the global batch [B, T]
            y = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen)
            start = time.perf_counter()
            train_step(model, opt, (x, y), par=par, net=net)
            seconds.append(time.perf_counter() - start)
    peak = measured_peak("cpu")[0]
    peaks = [peak]
    if par.active:
        peaks = [None] * par.world
        torch.distributed.all_gather_object(peaks, peak)
    plan = estimate_memory(cfg, batch // par.world, seq, overhead=overhead,
                           shards=par.world if mode == "fsdp" else 1)
    if par.is_main:
        Path(out).write_text(json.dumps({"step_s": statistics.median(seconds[WARM:]), "peaks": peaks,
                                         "plan": plan.total, "threads": torch.get_num_threads()}))
    if par.active:
        torch.distributed.destroy_process_group()


def bench_dist() -> dict:
    """Step time and per-process peak memory: 1 process, 2 FSDP, 2 DDP (each launched fresh)."""
    figures: dict = {"dist_model": f"{PRESET} preset, phase {PHASE} (grown MoE)",
                     "dist_params": sum(p.numel() for p in build_model(_phase_config(get_preset(PRESET)), device="meta").parameters())}
    for mode in MODES:
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "figures.json")
            launcher = [sys.executable] if mode == "one" else [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
            subprocess.run(launcher + ["-m", "growlib.harness.bench_dist", mode, out], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if mode != "one" else None)
            got = json.loads(Path(out).read_text())
        figures[f"dist_{mode}_step_s"] = got["step_s"]
        figures[f"dist_{mode}_threads_per_process"] = got["threads"]
        figures[f"dist_{mode}_peak_gb"] = [p / GB for p in got["peaks"]]
        figures[f"dist_{mode}_plan_gb"] = got["plan"] / GB
    return figures


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
