"""The process group of a run under torchrun, and what the processes compute together.

One process (``SINGLE``) is the default and every method is then a no-op, so the
training loop reads the same with one process or many.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

PARALLEL_MODES = ("fsdp", "ddp")  # fsdp: parameters, gradients and optimizer sharded; ddp: replicated


def in_torchrun() -> bool:
    """True in a process that torchrun started (it sets RANK, WORLD_SIZE and LOCAL_RANK)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def process_rank() -> int:
    """This process's rank under torchrun (0 otherwise): only rank 0 prints errors and the console."""
    return int(os.environ.get("RANK", "0")) if in_torchrun() else 0


@dataclass(frozen=True)
class Parallel:
    """Which process this is among how many, and how the model is spread over them."""

    mode: str = "none"  # none | fsdp | ddp
    rank: int = 0
    world: int = 1
    device: str = "cpu"
    local_world: int = 1  # processes on this machine

    @property
    def active(self) -> bool:
        return self.mode != "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def memory_share(self, device: str) -> int:
        """How many processes share the memory a device reports: on a CPU, those on this machine."""
        return self.local_world if device == "cpu" else 1

    def check_batch(self, batch_size: int) -> None:
        """Every process trains on an equal share of the global batch: refuse a count that does not divide it."""
        if batch_size % self.world:
            divisors = [n for n in range(1, batch_size + 1) if batch_size % n == 0]
            raise ValueError(f"{self.world} processes cannot share a batch of {batch_size} rows equally: accepted "
                             f"--nproc-per-node (times nodes) in {divisors}")

    def rows(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows of the global batch (inputs, targets), each [B, T] -> [B / world, T]."""
        if not self.active:
            return x, y
        n = x.shape[0] // self.world
        mine = slice(self.rank * n, (self.rank + 1) * n)
        return x[mine], y[mine]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over the processes (a new tensor; no gradient flows through it)."""
        if not self.active:
            return t
        out = t.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def average(self, t: torch.Tensor) -> torch.Tensor:
        """Elementwise mean over the processes: each holds a mean over an equal number of rows."""
        return self.sum(t) / self.world if self.active else t

    def maximum(self, value: float) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item()

    def broadcast(self, obj):
        """Rank 0's ``obj`` (any picklable value) on every process."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=torch.device(self._collective_device()))
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def _collective_device(self) -> str:
        return self.device if self.device.startswith("cuda") else "cpu"


SINGLE = Parallel()


def from_torchrun(mode: str, device: str) -> Parallel:
    """Join the process group torchrun describes: gloo on a CPU, nccl on CUDA (one GPU per process)."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"--parallel {mode!r} is invalid: accepted {' | '.join(PARALLEL_MODES)}")
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.startswith("cuda"):
        device, backend = f"cuda:{local}", "nccl"
        torch.cuda.set_device(local)
    elif device == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"training across processes on {device!r} is not supported: accepted cpu (gloo) "
                         f"or cuda (nccl)")
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Parallel(mode, rank, world, device, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def leave(par: Parallel) -> None:
    """Leave the process group at the end of a run."""
    if par.active and dist.is_initialized():
        dist.destroy_process_group()
