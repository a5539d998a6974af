"""Checkpoints: safetensors weights plus a JSON config, written atomically.

``NAME.safetensors`` holds the tensors, ``NAME.json`` the model config, each
LayerNorm's eps and any extra state; loading never unpickles anything. Every
file is written to a temporary name in the same folder, flushed, fsynced and
then renamed over the old one, so a kill at any moment leaves the previous
checkpoint intact and loadable. The JSON is written last and names the
weights' SHA-256, so a half-written pair is detected on load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .cache import written_in_place
from .config import ModelConfig
from .model import GPT, model_from_state

FORMAT = "growlib-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupted or for another configuration."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file (growlib.cache.written_in_place)."""
    with written_in_place(path, sync=True) as tmp:
        tmp.write_bytes(data)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(model: GPT, out_dir: str | os.PathLike, name: str, extra: dict[str, Any] | None = None,
                    tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``out_dir/name.safetensors`` and ``out_dir/name.json``; returns the weights' path.

    ``tensors`` adds further tensors (optimizer state, say) under their own keys.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for k, v in (tensors or {}).items():
        weights[k] = v.detach().contiguous().cpu()
    path = out / f"{name}.safetensors"
    with written_in_place(path, sync=True) as tmp:
        save_file(weights, str(tmp))
        digest = _sha256(tmp)
    meta = {"format": FORMAT, "model": dataclasses.asdict(model.cfg), "ln_eps": model.ln_eps(),
            "state_keys": sorted(model.state_dict()),
            "weights_sha256": digest, "extra": extra or {}}
    atomic_write_bytes(out / f"{name}.json", json.dumps(meta, indent=1).encode())
    return path


def read_meta(out_dir: str | os.PathLike, name: str) -> dict[str, Any]:
    path = Path(out_dir) / f"{name}.json"
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint metadata {str(path)!r} is corrupted ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a growlib checkpoint (format {FORMAT!r} expected)")
    return meta


def load_checkpoint(out_dir: str | os.PathLike, name: str, device: str | torch.device = "cpu",
                    expect: ModelConfig | None = None) -> tuple[GPT, dict[str, Any], dict[str, torch.Tensor]]:
    """(model, extra, other tensors) from ``out_dir/name``; checks integrity and, if given, the config."""
    meta = read_meta(out_dir, name)
    path = Path(out_dir) / f"{name}.safetensors"
    if not path.exists():
        raise CheckpointError(f"checkpoint weights {str(path)!r} not found")
    if _sha256(path) != meta.get("weights_sha256"):
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupted (SHA-256 mismatch)")
    try:
        cfg = ModelConfig(**meta["model"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has an invalid model config: {exc}") from exc
    if expect is not None and cfg != expect:
        diff = {k: (getattr(cfg, k), getattr(expect, k)) for k in dataclasses.asdict(cfg)
                if getattr(cfg, k) != getattr(expect, k)}
        raise CheckpointError(f"checkpoint {str(path)!r} is for a different configuration "
                              f"(field: (checkpoint, expected) = {diff})")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {exc}") from exc
    state_keys = set(meta.get("state_keys") or [])
    try:
        model = model_from_state(cfg, {k: v for k, v in tensors.items() if k in state_keys}, meta["ln_eps"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} does not match its config: {exc}") from exc
    others = {k: v for k, v in tensors.items() if k not in state_keys}
    return model.to(device), meta.get("extra", {}), others


def checkpoint_exists(out_dir: str | os.PathLike, name: str) -> bool:
    out = Path(out_dir)
    return (out / f"{name}.json").exists() and (out / f"{name}.safetensors").exists()
