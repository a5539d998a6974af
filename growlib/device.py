"""Where the tensors live: choosing the device, its autocast, its peak rate, its default preset."""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch

# tests only: train on the CPU through the autocast path CUDA takes (bf16, slowly), to exercise it here
FORCE_CPU_AUTOCAST_VAR = "GROWLIB_TEST_CPU_BF16"


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given and present, else cuda, then mps, then cpu."""
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {requested!r}: CUDA is not available here; accepted cpu"
                             + (", mps" if torch.backends.mps.is_available() else ""))
        if requested == "mps" and not torch.backends.mps.is_available():
            raise ValueError("--device 'mps': MPS is not available here; accepted cpu")
        if requested.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"--device {requested!r} is unknown: accepted cpu, cuda, cuda:N or mps")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_preset(device: str | None = None) -> str:
    """``cpu`` where there is no CUDA or MPS device, the recipe's sizes where there is."""
    return "cpu" if pick_device(device) == "cpu" else "recipe"


def cpu_autocast_forced() -> bool:
    """Whether ``$GROWLIB_TEST_CPU_BF16`` asks the CPU to train in bf16 autocast (a switch for tests)."""
    return os.environ.get(FORCE_CPU_AUTOCAST_VAR, "").strip() not in ("", "0")


def training_dtype(device: str) -> torch.dtype:
    """The dtype the matmuls of training and evaluation run in on ``device`` (the weights stay fp32)."""
    device = device.split(":")[0]
    return torch.bfloat16 if device == "cuda" or (device == "cpu" and cpu_autocast_forced()) else torch.float32


def autocast_for(device: str):
    """bf16 autocast on CUDA only: on a CPU, bf16 matmuls are far slower than fp32 (tests can force it)."""
    kind = device.split(":")[0]
    if training_dtype(kind) == torch.bfloat16:
        return torch.autocast(kind, dtype=torch.bfloat16)
    return nullcontext()


# dense bf16 tensor-core peaks (no sparsity), by device name, for the MFU line
GPU_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12,
                 "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12}


def accelerator_peak_flops(device: str) -> float | None:
    """The GPU's bf16 peak, when its name is in the table above; None on CPU/MPS or an unknown GPU."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)
