"""``run_state.json``: the pointer to a run's newest complete checkpoint, and the run folder's files.

A run keeps ``run_state.json`` in its output folder, rewritten atomically after every
checkpoint. It names the newest complete checkpoint (a phase-end one, or the rolling
``resume_latest`` written every N steps with the optimizer's state), the phase and the next
step to train, the boundary figures so far, how many history records belong to the run up to
that point, and the run's fingerprint (a resume with another one is refused).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ...checkpoint import CheckpointError, atomic_write_bytes
from ..history import HISTORY

STATE_FILE = "run_state.json"
ROLLING = "resume_latest"  # the rolling checkpoint of one process, with the optimizer's state
RUN_TOKENIZER = "tokenizer.json"  # the run's tokenizer, beside its checkpoints (python -m growlib export reads it)


@dataclass
class ResumePoint:
    phase: int
    next_step: int
    checkpoint: str
    boundary: dict
    history_len: int
    settings: dict


def write_state(out: Path, point: ResumePoint) -> None:
    atomic_write_bytes(out / STATE_FILE, json.dumps(point.__dict__, indent=1).encode())


def read_state(out: Path) -> ResumePoint | None:
    path = out / STATE_FILE
    if not path.exists():
        return None
    try:
        return ResumePoint(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is corrupted ({exc}); start a new run with --overwrite") from exc


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_settings(saved: dict, current: dict, out: Path) -> None:
    """Refuse to resume a run made with other settings, naming the first difference."""
    saved, current = _flat(saved), _flat(current)
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise CheckpointError(f"the run in {str(out)!r} is from a different configuration ({key}: "
                                  f"{saved.get(key)!r} there, {current.get(key)!r} now); resume with the same "
                                  f"options, or start a new run with --overwrite or another --out")


def save_tokenizer(out: str | os.PathLike, tokenizer) -> Path:
    """Write a run's tokenizer (a ``tokenizers.Tokenizer``) as ``out/tokenizer.json``; returns its path."""
    path = Path(out) / RUN_TOKENIZER
    atomic_write_bytes(path, tokenizer.to_str().encode("utf-8"))
    return path


def out_dir_has_run(out: Path) -> bool:
    return (out / STATE_FILE).exists() or any(out.glob("*.safetensors"))


def clear_run(out: Path) -> None:
    """Remove a previous run's files (only with --overwrite)."""
    for p in list(out.glob("*.safetensors")) + list(out.glob("*.json")) + [out / HISTORY]:
        if p.exists():
            os.remove(p)
    for folder in out.glob("resume_p*.dcp"):  # sharded resume checkpoints (growlib.parallel.dcp)
        shutil.rmtree(folder)
