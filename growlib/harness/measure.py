"""Measuring memory: what this device can give, what the process holds, the peak of a phase.

The estimates live in :mod:`growlib.memory`; this module reads the machine.
``GROWLIB_MEMORY_BUDGET_GB`` overrides what the device can give (to try a
smaller machine's plan, and in tests).
"""

from __future__ import annotations

import os
import resource
import sys

import torch

BUDGET_VAR = "GROWLIB_MEMORY_BUDGET_GB"


def system_memory_bytes() -> float:
    """Physical memory of this machine (the budget on CPU and on Apple's unified memory)."""
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _meminfo_available() -> float | None:
    """Linux's MemAvailable: what new allocations can take without swapping; None elsewhere."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def budget_override() -> float | None:
    """``$GROWLIB_MEMORY_BUDGET_GB`` in bytes, or None when unset."""
    raw = os.environ.get(BUDGET_VAR, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{BUDGET_VAR}={raw!r} is invalid: accepted a number of GB > 0, or unset")
    return value * 1e9


def available_memory(device: str) -> float:
    """What a run on ``device`` may use, counting what this process already holds.

    CUDA: the GPU's memory. CPU and MPS: the memory available now (what this process
    holds plus what the system could still give it), never more than the physical total.
    """
    override = budget_override()
    if override is not None:
        return override
    if device.startswith("cuda"):
        return float(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    free = _meminfo_available()
    if free is None:
        return system_memory_bytes()
    return min(system_memory_bytes(), free + current_rss())


def warm_up_runtime() -> None:
    """One tiny training step, so the math libraries' own buffers count as runtime, not as the model."""
    from ..config import ModelConfig
    from ..model import build_model
    from ..train import make_optimizer

    cfg = ModelConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=2, d_mlp=64, max_seq_len=16)
    model = build_model(cfg)
    opt = make_optimizer(model, 1e-3, 0.0, "cpu")
    x = torch.randint(0, 64, (2, 16))
    model(x, x).backward()
    opt.step()


def current_rss() -> float:
    """Resident memory of this process now, in bytes (Linux); elsewhere (macOS: no /proc) its peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_so_far()


def peak_rss_so_far() -> float:
    """The process's peak resident memory, in bytes: ``ru_maxrss`` is in bytes on macOS, KiB on Linux."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak if sys.platform == "darwin" else peak * 1024)


def minor_page_faults() -> int:
    """Fresh pages this process has touched so far (minor page faults; each one a page the kernel zeroed)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def reset_peak(device: str) -> None:
    """Start a new peak measurement (CUDA allocator stats; on Linux, the process's VmHWM)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    elif os.path.exists("/proc/self/clear_refs"):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the peak resident set size
        except OSError:
            pass


def measured_peak(device: str) -> tuple[float, str]:
    """(bytes, what was measured) since :func:`reset_peak`."""
    if device.startswith("cuda"):
        return float(torch.cuda.max_memory_allocated()), "CUDA max_memory_allocated"
    if device == "mps":
        return float(torch.mps.driver_allocated_memory()), "MPS driver memory"
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024, "peak RSS"
    except OSError:
        pass
    return peak_rss_so_far(), "peak RSS (process lifetime)"
