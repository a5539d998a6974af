"""What the notebooks share: run length, the default preset, and "load the checkpoint or make it".

Each notebook runs on its own: :func:`ensure_phase` loads a phase's
checkpoint when an earlier notebook made it, and otherwise trains the missing
phases (saying so). ``GROWLIB_STEPS`` (read only by :func:`steps_override`)
shortens every phase for CI; the notebooks' text is the same in both modes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoint import checkpoint_exists, load_checkpoint
from .data import DATA_DIR
from .model import GPT
from .pipeline import PHASE_CHECKPOINT, Session, open_session, phase1, phase2, phase3, shown_path
from .train import PhaseResult, pick_device

STEPS_VAR = "GROWLIB_STEPS"
RUNS_DIR = Path(os.environ.get("GROWLIB_RUNS_DIR", DATA_DIR.parent / "runs"))
SAMPLE_VAR = "GROWLIB_TINYSTORIES_SAMPLE"
# the course's shared folder beside the repository, where a teacher can put a TinyStories sample
SHARED_SAMPLE = DATA_DIR.parent.parent / "shared" / "data" / "tinystories-valid-sample.txt"


def steps_override() -> int | None:
    """Steps per phase from ``GROWLIB_STEPS`` (CI), or None for the preset's own."""
    raw = os.environ.get(STEPS_VAR, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{STEPS_VAR}={raw!r} is invalid: accepted a whole number > 0, or unset for full runs")
    return int(raw)


def tinystories_sample() -> str | None:
    """A local TinyStories text file: ``$GROWLIB_TINYSTORIES_SAMPLE``, else ``../shared/data/``'s, else None."""
    raw = os.environ.get(SAMPLE_VAR, "").strip()
    if raw:
        if not Path(raw).is_file():
            raise ValueError(f"{SAMPLE_VAR}={raw!r} is not a file: accepted the path of a .txt or .jsonl "
                             "TinyStories file, or unset")
        return raw
    return str(SHARED_SAMPLE) if SHARED_SAMPLE.is_file() else None


def default_preset() -> str:
    """``cpu`` where there is no CUDA or MPS device, the seed's sizes where there is."""
    return "cpu" if pick_device() == "cpu" else "seed"


def notebook_session(preset: str | None = None, data: str = "auto", verbose: bool = True) -> Session:
    """A session whose checkpoints live in ``runs/<preset>-<steps>/``, shared by all notebooks."""
    preset = preset or default_preset()
    steps = steps_override()
    out = RUNS_DIR / f"{preset}-{steps or 'full'}-{data if os.sep not in data else Path(data).stem}"
    s = open_session(preset, data=data, steps=steps, out=out, verbose=verbose, fresh_history=False)
    length = "full length" if steps is None else f"shortened to {steps} steps per phase by {STEPS_VAR}"
    s.say(f"[notebook] preset {preset!r} on {s.device}, {length}; checkpoints in {shown_path(out)}")
    return s


def _restore(s: Session, phase: int, extra: dict) -> None:
    if phase in s.results:  # already trained or restored in this session
        return
    r = PhaseResult(phase)
    for rec in extra.get("history", []):
        s.history.records.append(rec)
        if "loss" in rec:
            r.steps.append(rec["step"])
            r.losses.append(rec["loss"])
        if "eval_loss" in rec:
            r.eval_loss = rec["eval_loss"]
    s.results[phase] = r
    s.boundary.update(extra.get("boundary", {}))


def ensure_phase(s: Session, phase: int, previous: GPT | None = None) -> GPT:
    """The model at the end of ``phase``: loaded if its checkpoint exists, trained if not.

    ``previous`` is the model of the phase before, if the notebook already has it;
    otherwise it is loaded or trained in turn.
    """
    name = PHASE_CHECKPOINT[phase]
    if s.out is not None and checkpoint_exists(s.out, name):
        for p in range(1, phase):  # earlier phases' curves and boundary figures
            if p not in s.results and checkpoint_exists(s.out, PHASE_CHECKPOINT[p]):
                _restore(s, p, load_checkpoint(s.out, PHASE_CHECKPOINT[p])[1])
        model, extra, _ = load_checkpoint(s.out, name, device=s.device)
        _restore(s, phase, extra)
        s.say(f"[notebook] loaded phase {phase} from {shown_path(s.out / name)}.safetensors")
        return model
    s.say(f"[notebook] no phase-{phase} checkpoint in {shown_path(s.out)}: making it now")
    if phase == 1:
        return phase1(s)
    if previous is None:
        previous = ensure_phase(s, phase - 1)
    return phase2(s, previous) if phase == 2 else phase3(s, previous)


def sample_text(model: GPT, s: Session, prompt: str = "Once upon a time", tokens: int = 60, seed: int = 0) -> str:
    """A sampled continuation of ``prompt`` (same seed, same text: the phases can be compared)."""
    idx = s.data.encode(prompt)[None, :].to(s.device)
    gen = torch.Generator().manual_seed(seed)
    out = model.generate(idx, tokens, temperature=0.8, top_k=40, generator=gen)
    return s.data.decode(out[0].tolist())
