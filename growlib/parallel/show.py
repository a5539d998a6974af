"""What each process holds before and after growth: ``torchrun --nproc-per-node 2 -m growlib.parallel.show``.

Builds the tiny preset's MoE on rank 0, shards it with FSDP2, prints every process's
slice of a few weights, then grows it (gathered on rank 0, grown, sharded again) and
prints them again. Notebook 05 runs it from a cell.
"""

from __future__ import annotations

import sys

import torch.distributed as dist

from ..config import get_preset
from ..grow import grow
from ..model import build_model
from ..upcycle import upcycle
from .group import from_torchrun, leave
from .sharding import distribute, gather, local_shapes

SHOWN = ("tok_emb.weight", "blocks.0.attn.q.weight", "blocks.0.mlp.w_in", "blocks.0.mlp.router.weight")


def _say_in_rank_order(par, title: str, model) -> None:
    shapes = local_shapes(model)  # before any forward pass: FSDP2 keeps the root gathered after one
    for rank in range(par.world):
        if rank == par.rank:
            for name in SHOWN:
                if name in shapes:
                    full, mine = shapes[name]
                    print(f"[rank {rank}] {title:<14} {name:<28} full {str(list(full)):<16} held {list(mine)}",
                          flush=True)
        dist.barrier()


def main(preset: str = "tiny") -> None:
    par = from_torchrun("fsdp", "cpu")
    p = get_preset(preset)
    moe = upcycle(build_model(p.model, seed=0), p.growth.n_experts, p.growth.top_k, seed=0) if par.is_main else None
    moe = distribute(moe, par)
    _say_in_rank_order(par, "MoE", moe)
    full = gather(moe, par)  # rank 0: the whole model; the other ranks: None
    grown = grow(full, p.growth.scale_factor, p.growth.extra_layers, seed=0, verbose=False) if par.is_main else None
    grown = distribute(grown, par)
    _say_in_rank_order(par, "grown MoE", grown)
    leave(par)


if __name__ == "__main__":
    main(*sys.argv[1:])
