"""The model spread over the processes, and gathered back to rank 0 between phases.

FSDP2 (``fully_shard``): each block is one group whose parameters, gradients and
AdamW moments are split along their first dimension, one slice per process; a
block's full weights exist only while it runs (all-gathered in forward and
backward, the gradients reduce-scattered). The root group holds the embedding,
which is also the tied output head, and the final LayerNorm. DDP: every process
holds the whole model; gradients are averaged in backward.

Growth changes shapes, which a sharded model cannot do in place. Between phases
the model is gathered into full tensors on rank 0 (:func:`gather`), grown and
verified there as in one process, then shared out again (:func:`distribute`);
only rank 0 ever holds a whole model.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel

from ..config import ModelConfig
from ..model import GPT, model_from_state, rope_tables
from .group import Parallel


@lru_cache(maxsize=None)
def _mesh(device_type: str, world: int) -> DeviceMesh:
    return init_device_mesh(device_type, (world,))


def shard(model: GPT, par: Parallel) -> GPT:
    """FSDP2 in place: each block its own group, then the root (embedding, tied head, final LayerNorm)."""
    mesh = _mesh(par.device.split(":")[0], par.world)
    # on CUDA, bf16 compute with fp32 master weights and fp32 gradient reduction
    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
          if par.device.startswith("cuda") else MixedPrecisionPolicy())
    for block in model.blocks:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def empty_sharded(cfg: ModelConfig, ln_eps: dict[str, float], par: Parallel) -> GPT:
    """A sharded model whose local shards are allocated but not filled (a state dict fills them)."""
    with torch.device("meta"):
        model = GPT(cfg, seed=None)
    model.set_ln_eps(ln_eps)
    shard(model, par)
    model.to_empty(device=par.device)
    cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)  # buffers are not in the state dict
    model.rope_cos, model.rope_sin = cos.to(par.device), sin.to(par.device)
    return model


def distribute(full: GPT | None, par: Parallel) -> GPT:
    """Rank 0's ``full`` model on every process: sharded (fsdp) or replicated (ddp). Collective.

    Ranks other than 0 pass None. Nothing is initialised twice: the other ranks build
    their part on the meta device (fsdp) or receive rank 0's tensors (ddp).
    """
    if not par.active:
        return full
    cfg, eps = par.broadcast((full.cfg, full.ln_eps()) if par.is_main else None)
    if par.mode == "ddp":
        model = full if par.is_main else GPT(cfg, seed=None).to(par.device)
        model.set_ln_eps(eps)
        for t in model.state_dict().values():  # the replicas start from rank 0's weights
            torch.distributed.broadcast(t, src=0)
        return model
    model = empty_sharded(cfg, eps, par)
    state = full.state_dict() if par.is_main else {}
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    return model


def gather(model: GPT, par: Parallel) -> GPT | None:
    """The whole model as plain tensors on rank 0 (None elsewhere). Collective."""
    if not par.active:
        return model
    if par.mode == "ddp":
        return model if par.is_main else None
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not par.is_main:
        return None
    return model_from_state(model.cfg, state, model.ln_eps()).to(par.device)


def local_shapes(model: GPT) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Each parameter's (full shape, shape held by this process): what FSDP2 split."""
    out = {}
    for name, p in model.named_parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        out[name] = (tuple(p.shape), tuple(local.shape))
    return out


@contextmanager
def training(model: GPT, par: Parallel):
    """While a phase trains: the module to run forward (DDP's wrapper, or the model itself).

    A MoE's balance loss multiplies two batch averages; with the batch split over the
    processes, each layer sums its expert counts over them (growlib.moe), so the loss
    and its gradient are those of one process with the whole batch.
    """
    moes = model.moe_layers()
    for m in moes:
        m.sum_counts = par.sum if par.active else None
    net = model
    if par.mode == "ddp":
        local = [torch.device(par.device).index] if par.device.startswith("cuda") else None
        net = DistributedDataParallel(model, device_ids=local)
    try:
        yield net
    finally:
        for m in moes:
            m.sum_counts = None
