"""Process bodies for tests/test_parallel.py: N local processes joined by a file rendezvous.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK and the run joins the group from them
(growlib.parallel.group.from_torchrun); here each process sets them itself and joins
through a file first, so tests running side by side never share a port.
"""

from __future__ import annotations

import json
import os
import signal

import torch
import torch.distributed as dist


def join(rank: int, world: int, rendezvous: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)


def run_worker(rank: int, world: int, rendezvous: str, settings: dict, stop_at: tuple[int, int] | None) -> None:
    """``growlib.harness.pipeline.run`` on ``RunSpec.build(**settings)`` as one of ``world`` processes; Ctrl-C
    after ``stop_at``."""
    from growlib.harness.pipeline import run
    from growlib.harness.spec import RunSpec
    from growlib.harness.stops import RunInterrupted

    settings = dict(settings)
    resume = settings.pop("resume", False)

    join(rank, world, rendezvous)

    def ctrl_c(phase: int, step: int) -> None:
        if (phase, step) == stop_at:
            signal.raise_signal(signal.SIGINT)  # the run's handler: finish the step, checkpoint, stop

    try:
        run(RunSpec.build(**settings), resume=resume, after_step=ctrl_c if stop_at else None)
    except RunInterrupted:
        dist.destroy_process_group()


def growth_worker(rank: int, world: int, rendezvous: str, result: str) -> None:
    """Shard a MoE, gather it, grow it on rank 0, shard the grown model: does it compute the same function?"""
    from growlib.config import ModelConfig
    from growlib.grow import grow
    from growlib.model import build_model
    from growlib.parallel.group import from_torchrun
    from growlib.parallel.sharding import distribute, gather, local_shapes
    from growlib.upcycle import upcycle

    join(rank, world, rendezvous)
    par = from_torchrun("fsdp", "cpu")
    cfg = ModelConfig(vocab_size=97, d_model=48, n_layers=2, n_heads=4, d_mlp=192, max_seq_len=32)
    tokens = torch.randint(0, cfg.vocab_size, (2, 32), generator=torch.Generator().manual_seed(1))
    moe = distribute(upcycle(build_model(cfg, seed=0), 4, 2, seed=0) if par.is_main else None, par)
    with torch.no_grad():
        before = moe(tokens)  # [B, T, V], computed by the sharded model on every process
    full = gather(moe, par)
    grown = distribute(grow(full, 2.0, 2, noise=0.0, seed=0, verbose=False) if par.is_main else None, par)
    shapes = local_shapes(grown)  # before a forward pass: FSDP2 keeps the root's weights gathered after one
    with torch.no_grad():
        after = grown(tokens)
    if par.is_main:
        with open(result, "w") as f:
            json.dump({"max_diff": (after - before).abs().max().item(),
                       "w_in": shapes["blocks.0.mlp.w_in"], "tok_emb": shapes["tok_emb.weight"]}, f)
    dist.destroy_process_group()
