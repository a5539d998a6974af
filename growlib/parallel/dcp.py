"""Resume checkpoints as ``torch.distributed.checkpoint`` (DCP) folders: sharded, any process count.

Each process writes its own shards of the model and of AdamW's moments; the
folder's metadata records how the full tensors were split, so the checkpoint
loads into any number of processes, one process without a process group
included. ``growlib.json`` beside the shards holds what a model is built from
(its config and each LayerNorm's eps) and where the phase stopped.
A DCP folder cannot change shapes: growth goes through full tensors
(growlib.parallel.sharding).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict, get_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)

from ..checkpoint import CheckpointError, atomic_write_bytes
from ..config import ModelConfig
from ..model import GPT
from .group import Parallel
from .sharding import empty_sharded

META = "growlib.json"
SUFFIX = ".dcp"


def is_dcp(name: str) -> bool:
    return name.endswith(SUFFIX)


def save_resume(model: GPT, optimizer, out: Path, phase: int, next_step: int, extra: dict, par: Parallel) -> str:
    """Write ``resume_p{phase}_s{next_step}.dcp`` (collective); returns its name."""
    name = f"resume_p{phase}_s{next_step}{SUFFIX}"
    folder = out / name
    msd, osd = get_state_dict(model, optimizer)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(folder))
    if par.is_main:
        meta = {"model": dataclasses.asdict(model.cfg), "ln_eps": model.ln_eps(), "phase": phase,
                "next_step": next_step, "extra": extra}
        atomic_write_bytes(folder / META, json.dumps(meta, indent=1).encode())
    par.barrier()
    return name


def remove_older(out: Path, keep: str) -> None:
    """Delete the resume folders other than ``keep`` (after run_state.json points at it)."""
    for folder in out.glob(f"resume_p*{SUFFIX}"):
        if folder.name != keep:
            shutil.rmtree(folder, ignore_errors=True)


def read_meta(folder: Path) -> dict:
    path = folder / META
    if not path.exists() or not (folder / ".metadata").exists():
        raise CheckpointError(f"resume checkpoint {str(folder)!r} is incomplete (no {META} or .metadata)")
    return json.loads(path.read_text())


def load_model(folder: Path, par: Parallel) -> GPT:
    """The model of a DCP resume checkpoint, sharded or replicated as ``par`` says (collective)."""
    meta = read_meta(folder)
    cfg = ModelConfig(**meta["model"])
    if par.mode == "fsdp":
        model = empty_sharded(cfg, meta["ln_eps"], par)
    else:
        model = GPT(cfg, seed=None).to(par.device)
        model.set_ln_eps(meta["ln_eps"])
    state = get_model_state_dict(model)
    dcp.load({"model": state}, checkpoint_id=str(folder), no_dist=not par.active)
    set_model_state_dict(model, state)
    return model


def optimizer_loader(model: GPT, folder: Path, par: Parallel):
    """A callback that fills a freshly made optimizer of ``model`` with the checkpoint's moments."""

    def load(optimizer) -> None:
        state = get_optimizer_state_dict(model, optimizer)  # creates the state entries to be filled
        dcp.load({"optim": state}, checkpoint_id=str(folder), no_dist=not par.active)
        set_optimizer_state_dict(model, optimizer, state)

    return load
