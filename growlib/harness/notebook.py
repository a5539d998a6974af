"""What the notebooks share: run length, the default preset, and "load the checkpoint or make it".

Each notebook runs on its own: :func:`ensure_phase` loads a phase's
checkpoint when an earlier notebook made it, and otherwise trains the missing
phases (saying so). ``GROWLIB_STEPS`` (read only by :func:`steps_override`)
shortens every phase for CI; the notebooks' text is the same in both modes.
"""

from __future__ import annotations

import os

import torch

from ..checkpoint import checkpoint_exists, load_checkpoint
from ..device import default_preset
from ..model import GPT
from .history import PhaseResult
from .paths import RUNS_DIR, run_name, shown_path, tinystories_sample
from .phases import PHASE_CHECKPOINT, phase1, phase2, phase3
from .pipeline import open_session
from .session import Session
from .spec import RunSpec

STEPS_VAR = "GROWLIB_STEPS"


def steps_override() -> int | None:
    """Steps per phase from ``GROWLIB_STEPS`` (CI), or None for the preset's own."""
    raw = os.environ.get(STEPS_VAR, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{STEPS_VAR}={raw!r} is invalid: accepted a whole number > 0, or unset for full runs")
    return int(raw)


def notebook_session(preset: str | None = None, data: str | None = None, verbose: bool = True) -> Session:
    """A session whose checkpoints live in ``runs/<preset>-<steps>-<data>/``, shared by all notebooks.

    ``data`` by default: the local TinyStories text that ``GROWLIB_TINYSTORIES_SAMPLE`` names
    (scripts/env.sh sets it), else ``auto`` (TinyStories from the hub or its cache, else the
    bundled synthetic stories).
    """
    preset = preset or default_preset()
    data = data or tinystories_sample() or "auto"
    steps = steps_override()
    out = RUNS_DIR / run_name(preset, steps, data)
    s = open_session(RunSpec.build(preset, data=data, steps=steps, out=out, verbose=verbose), fresh_history=False)
    length = "full length" if steps is None else f"shortened to {steps} steps per phase by {STEPS_VAR}"
    # the corpus is named once, by the data layer's "[data] corpus:" line (growlib.sources.open_source)
    s.say(f"[notebook] preset {preset!r} on {s.device}, {length}; checkpoints in {shown_path(out)}")
    return s


def _restore(s: Session, phase: int, extra: dict) -> None:
    """A loaded checkpoint's phase back into the session: its history records, result and boundary figures."""
    if phase in s.state.results:  # already trained or restored in this session
        return
    records = extra.get("history", [])
    s.history.records.extend(records)
    s.state.results[phase] = PhaseResult.from_records(records, phase)
    s.state.figures.update(extra.get("boundary", {}))


def ensure_phase(s: Session, phase: int, previous: GPT | None = None) -> GPT:
    """The model at the end of ``phase``: loaded if its checkpoint exists, trained if not.

    ``previous`` is the model of the phase before, if the notebook already has it;
    otherwise it is loaded or trained in turn.
    """
    name, out = PHASE_CHECKPOINT[phase], s.spec.how.out
    if out is not None and checkpoint_exists(out, name):
        for p in range(1, phase):  # earlier phases' curves and boundary figures
            if p not in s.state.results and checkpoint_exists(out, PHASE_CHECKPOINT[p]):
                _restore(s, p, load_checkpoint(out, PHASE_CHECKPOINT[p])[1])
        model, extra, _ = load_checkpoint(out, name, device=s.device)
        _restore(s, phase, extra)
        s.say(f"[notebook] loaded phase {phase} from {shown_path(out / name)}.safetensors")
        return model
    s.say(f"[notebook] no phase-{phase} checkpoint in {shown_path(out)}: making it now")
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
