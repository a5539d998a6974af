"""The seed's run end to end: dense (phase 1) -> MoE (phase 2) -> bilateral growth (phase 3).

``python -m growlib run`` calls :func:`run`; the notebooks call the phases one
at a time through a :class:`Session`, so both print the same lines.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .accounting import param_report
from .checkpoint import load_checkpoint, save_checkpoint
from .config import GrowthConfig, Preset, TrainConfig, get_preset
from .console import boundary_summary, phase_banner, section_banner
from .data import TokenData, load_corpus, load_tokenizer
from .grow import grow, widened_config
from .lean import free_model
from .memory import (MemoryPlan, available_memory, current_rss, estimate_memory, measured_peak, recommendations,
                     reset_peak, warm_up_runtime)
from .model import GPT, build_model
from .train import History, PhaseResult, evaluate, pick_device, train_phase
from .upcycle import upcycle
from .resume import (ROLLING, STATE_FILE, ResumePoint, StopFlag, check_settings, clear_run, optimizer_state,
                     optimizer_tensors, out_dir_has_run, read_state, truncate_history, write_state)
from .verify import Preservation, check_preservation

HISTORY = "training_history.jsonl"


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory (no machine-specific prefix in printed output)."""
    return os.path.relpath(path)


def check_output_dir(out: str | os.PathLike) -> Path:
    """The output folder, created if needed; a clear error if it cannot be written."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a file: accepted a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out {str(path)!r} is not writable ({exc.strerror}): accepted a writable folder") from exc
    return path


@dataclass
class Session:
    """Everything the three phases share: settings, data, fixed validation batches, outputs."""

    preset: Preset
    train: TrainConfig
    growth: GrowthConfig
    data: TokenData
    device: str
    out: Path | None
    history: History
    data_spec: str = "auto"
    val_batches: list = field(default_factory=list)
    verbose: bool = True
    checkpoint_every: int = 0  # periodic checkpoints (with optimizer state) every N steps; 0 = phase ends only
    stop: StopFlag = field(default_factory=StopFlag)
    after_step: Callable[[int, int], None] | None = None  # test hook: called after every step
    eval_every: int = 0  # validation curve every N steps (growlib.compare), reported to on_eval
    on_eval: Callable[[int, int, float], None] | None = None  # (phase, steps done, validation loss)
    results: dict[int, PhaseResult] = field(default_factory=dict)
    preservation: dict[int, Preservation] = field(default_factory=dict)
    boundary: dict[str, float] = field(default_factory=dict)
    runtime_bytes: float = 0.0  # memory in use before any model (runtime and data), for the plans
    plans: dict[int, MemoryPlan] = field(default_factory=dict)
    peaks: dict[int, float] = field(default_factory=dict)

    def say(self, text: str = "") -> None:
        if self.verbose:
            print(text)

    def settings(self) -> dict:
        """What must match for a run to be resumed."""
        return {"preset": self.preset.name, "model": dataclasses.asdict(self.preset.model),
                "train": dataclasses.asdict(self.train), "growth": dataclasses.asdict(self.growth),
                "data": self.data_spec}

    def save(self, model: GPT, name: str, phase: int, next_step: int | None = None) -> None:
        """Checkpoint ``model`` as a phase's end (or start) and point ``run_state.json`` at it."""
        if self.out is None:
            return
        records = [r for r in self.history.records if r["phase"] == phase]
        extra = {"preset": self.preset.name, "phase": phase, "history": records, "boundary": self.boundary}
        save_checkpoint(model, self.out, name, extra=extra)
        self.say(f"  [checkpoint] {shown_path(self.out / (name + '.safetensors'))}")
        self._point(phase, self.train.steps(phase) if next_step is None else next_step, name)

    def periodic(self, model: GPT, phase: int) -> Callable[[int, torch.optim.Optimizer], None] | None:
        """The callback that writes ``resume_latest`` (weights and optimizer state) during a phase."""
        if self.out is None:
            return None

        def write(next_step: int, opt: torch.optim.Optimizer) -> None:
            tensors, groups = optimizer_tensors(opt)
            save_checkpoint(model, self.out, ROLLING, tensors=tensors,
                            extra={"phase": phase, "next_step": next_step, "optimizer": groups})
            self._point(phase, next_step, ROLLING)

        return write

    def _point(self, phase: int, next_step: int, name: str) -> None:
        write_state(self.out, ResumePoint(phase, next_step, name, dict(self.boundary),
                                          len(self.history.records), self.settings()))

    def eval(self, model: GPT) -> float:
        return evaluate(model, self.val_batches, self.device)

    def plan_memory(self, model: GPT, phase: int) -> None:
        """The seed's memory table before a phase; the seed's advice where it will not fit."""
        plan = dataclasses.replace(estimate_memory(model.cfg, self.train.batch_size, self.train.seq_len,
                                                   lean=self.train.lean), runtime=self.runtime_bytes)
        self.plans[phase] = plan
        available = available_memory(self.device)
        for line in plan.lines(f"phase {phase}" + (" (lean mode)" if self.train.lean else ""), available):
            self.say(line)
        if plan.total >= 0.9 * available:
            self.say(f"  ⚠️  phase {phase} is estimated at {plan.total / 1e9:.1f} GB, more than this machine's "
                     f"{available / 1e9:.1f} GB can give: expect an out-of-memory error or heavy swapping")
            for line in recommendations(self.preset.model, self.growth, self.train.batch_size,
                                        self.train.seq_len, available, self.runtime_bytes):
                self.say(line)
        reset_peak(self.device)

    def report_peak(self, phase: int) -> None:
        peak, what = measured_peak(self.device)
        self.peaks[phase] = peak
        est = self.plans.get(phase)
        versus = f" (estimate {est.total / 1e9:.2f} GB)" if est else ""
        self.say(f"  Memory: measured {what} {peak / 1e9:.2f} GB{versus}")

    def verify_tokens(self) -> torch.Tensor:
        return self.val_batches[0][0]

    def fit(self, model: GPT, phase: int, resume: "Resumed | None" = None) -> PhaseResult:
        r = train_phase(model, self.data, self.train, phase, self.device, self.history, verbose=self.verbose,
                        val_batches=self.val_batches, start_step=resume.next_step if resume else 0,
                        optimizer_state=resume.optimizer if resume else None,
                        checkpoint=self.periodic(model, phase), checkpoint_every=self.checkpoint_every,
                        stop=self.stop, after_step=self.after_step, eval_every=self.eval_every,
                        on_eval=(lambda done, v: self.on_eval(phase, done, v)) if self.on_eval else None)
        self.results[phase] = r
        self.report_peak(phase)
        start = self.boundary.get(f"val_after_{phase}")
        if start is not None and r.eval_loss >= start:
            self.say(f"  ⚠️  validation loss did not decrease over phase {phase} ({start:.4f} -> "
                     f"{r.eval_loss:.4f}): the learning rate may be too high or too low")
        return r


@dataclass
class Resumed:
    """A phase to continue: its model, the step to train next, the optimizer state (mid-phase only)."""

    phase: int
    next_step: int
    model: GPT
    optimizer: dict | None


def open_session(preset: str | Preset = "cpu", data: str = "auto", steps: int | None = None,
                 out: str | os.PathLike | None = "checkpoints", device: str | None = None,
                 growth: dict | None = None, verbose: bool = True, fresh_history: bool = True,
                 checkpoint_every: int = 0, lean: bool = False, compile: bool = False) -> Session:
    """Validate every argument, then load the corpus and tokenizer (no training yet)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    tcfg = p.train if steps is None else p.train.with_steps(steps)
    if lean or compile:
        tcfg = dataclasses.replace(tcfg, lean=lean, compile=compile)
    gcfg = dataclasses.replace(p.growth, **(growth or {}))
    widened_config(dataclasses.replace(p.model, n_experts=gcfg.n_experts, top_k=gcfg.top_k), gcfg.scale_factor)
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every={checkpoint_every} is invalid: accepted 0 (phase ends only) or N > 0")
    dev = pick_device(device)
    corpus = load_corpus(data, verbose=verbose)  # a bad data file fails here, before anything is written
    out_path = check_output_dir(out) if out is not None else None
    tok = load_tokenizer(corpus, p.model.vocab_size, verbose=verbose)
    if tok.get_vocab_size() > p.model.vocab_size:
        raise ValueError(f"ModelConfig.vocab_size = {p.model.vocab_size} is smaller than the tokenizer's "
                         f"{tok.get_vocab_size()}: accepted a vocab of at least {tok.get_vocab_size()}")
    token_data = TokenData(corpus, tok, tcfg.seq_len)
    history_path = out_path / HISTORY if out_path is not None else None
    if fresh_history and history_path is not None and history_path.exists():
        history_path.unlink()
    s = Session(p, tcfg, gcfg, token_data, dev, out_path, History(history_path), data_spec=data, verbose=verbose,
                checkpoint_every=checkpoint_every)
    s.val_batches = token_data.val_batches(tcfg.eval_batches, tcfg.batch_size)
    if not dev.startswith("cuda"):
        warm_up_runtime()
        s.runtime_bytes = current_rss()
    return s


def phase1(s: Session, resume: Resumed | None = None) -> GPT:
    """Build and train the dense model; checkpoint ``dense_model``."""
    model = resume.model if resume else build_model(s.preset.model, seed=s.train.seed, device=s.device)
    _train_and_save(s, model, 1, resume)
    return model


def phase2(s: Session, dense: GPT | None, resume: Resumed | None = None) -> GPT:
    """Upcycle into a MoE, check it computes the same function, train it; two checkpoints."""
    g = s.growth
    if resume is None:
        moe = upcycle(dense, g.n_experts, g.top_k, seed=s.train.seed)
        s.preservation[2] = check_preservation(dense, moe, s.verify_tokens().to(s.device))
        s.say()
        s.say(f"[Upcycling] Dense -> MoE: {g.n_experts} experts (copies of each MLP), top-{g.top_k} routing")
        s.say(f"  max |Δlogit| on the fixed validation batch: {s.preservation[2].logit_diff:.2e}")
        s.boundary.setdefault("val_before_2", s.eval(dense))
        s.boundary["val_after_2"] = s.eval(moe)
        _warn_jump(s, 2)
        s.save(moe, "moe_model_init", 2, next_step=0)
    else:
        moe = resume.model
    _train_and_save(s, moe, 2, resume)
    return moe


def phase3(s: Session, moe: GPT | None, resume: Resumed | None = None) -> GPT:
    """Grow wider and deeper, verify per layer, train after a re-warmup; checkpoint ``large_moe_final``."""
    g = s.growth
    if resume is None:
        s.say()
        s.say(section_banner(f"Phase 3  —  Bilateral Growth (Width x{g.scale_factor:g}, Layers +{g.extra_layers})"))
        s.say()
        grown = grow(moe, g.scale_factor, g.extra_layers, where=g.placement, noise=g.noise,
                     seed=s.train.seed, verbose=s.verbose)
        s.say()
        s.preservation[3] = check_preservation(moe, grown, s.verify_tokens().to(s.device), where=g.placement)
        for line in s.preservation[3].lines():
            s.say(line)
        s.boundary.setdefault("val_before_3", s.eval(moe))
        s.boundary["val_after_3"] = s.eval(grown)
        _warn_jump(s, 3)
    else:
        grown = resume.model
    if s.train.lean and moe is not None:
        free_model(moe)  # lean mode: the MoE's memory goes back before the big model trains
    _train_and_save(s, grown, 3, resume)
    return grown


PHASE_TITLES = {1: "Phase 1 — Dense", 2: "Phase 2 — MoE", 3: "Phase 3 — Large MoE (Bilateral Growth)"}
PHASE_CHECKPOINT = {1: "dense_model", 2: "moe_model_final", 3: "large_moe_final"}


def _train_and_save(s: Session, model: GPT, phase: int, resume: Resumed | None) -> None:
    """The part every phase shares: memory plan, banner, training, boundary figures, checkpoint."""
    s.say()
    s.plan_memory(model, phase)
    s.say(phase_banner(PHASE_TITLES[phase], s.train.steps(phase), s.train.lr(phase), s.device,
                       param_report(model, s.train.seq_len)))
    s.say()
    if resume is not None and resume.next_step:
        s.say(f"  [resume] continuing phase {resume.phase} at step {resume.next_step}")
    r = s.fit(model, phase, resume)
    s.boundary.update({f"p{phase}_first": r.first_loss, f"p{phase}_final": r.final_loss,
                       f"val_end_{phase}": r.eval_loss})
    if phase < 3:
        s.boundary[f"val_before_{phase + 1}"] = r.eval_loss  # measured again after the transition
    s.save(model, PHASE_CHECKPOINT[phase], phase)


def _warn_jump(s: Session, phase: int) -> None:
    jump = s.boundary[f"val_after_{phase}"] - s.boundary[f"val_before_{phase}"]
    if abs(jump) > 0.1:
        s.say(f"  ⚠️  Phase {phase - 1}→{phase} jump {jump:+.4f} is above 0.1: the function was not preserved")


def find_resume(s: Session) -> Resumed | None:
    """The newest complete checkpoint of the run in ``s.out``, ready to continue."""
    point = read_state(s.out)
    if point is None:
        raise ValueError(f"--resume: {shown_path(s.out)!r} holds no run to resume (no {STATE_FILE}); "
                         f"run without --resume to start one")
    check_settings(point.settings, s.settings(), s.out)
    model, extra, tensors = load_checkpoint(s.out, point.checkpoint, device=s.device)
    optimizer = optimizer_state(tensors, extra["optimizer"]) if point.checkpoint == ROLLING else None
    s.history.records = truncate_history(s.history.path, point.history_len)
    s.boundary.update(point.boundary)
    for phase in (1, 2, 3):  # earlier phases' logged losses, for their results
        rows = [r for r in s.history.records if r["phase"] == phase and "loss" in r]
        if rows and phase < point.phase:
            s.results[phase] = PhaseResult(phase, [r["step"] for r in rows], [r["loss"] for r in rows])
    return Resumed(point.phase, point.next_step, model, optimizer)


def run(resume: bool = False, overwrite: bool = False, after_step: Callable[[int, int], None] | None = None,
        **kwargs) -> Session:
    """All three phases, then the BOUNDARY SUMMARY (arguments as :func:`open_session`).

    ``resume`` continues the run in ``out`` from its newest complete checkpoint;
    otherwise an ``out`` that already holds a run is refused unless ``overwrite``.
    """
    out = kwargs.get("out", "checkpoints")
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: accepted one of them")
    if not resume and not overwrite and out is not None and Path(out).is_dir() and out_dir_has_run(Path(out)):
        raise ValueError(f"--out {shown_path(Path(out))!r} already holds a run: accepted --resume to continue it, "
                         f"--overwrite to replace it, or another --out")
    s = open_session(fresh_history=not resume, **kwargs)
    s.after_step = after_step
    if overwrite and s.out is not None:
        clear_run(s.out)
    previous_handler = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):  # finish the current step, checkpoint, then stop
        s.stop.requested = True
        print("\n  [interrupt] finishing this step and writing a checkpoint...", flush=True)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_sigint)
    try:
        _run_phases(s, find_resume(s) if resume else None)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous_handler)
    s.say()
    s.say(boundary_summary(s.boundary))
    return s


def _run_phases(s: Session, point: Resumed | None) -> None:
    """Phases 1 -> 3, starting wherever ``point`` says the run stopped."""
    phase = point.phase if point else 0
    complete = point is not None and point.next_step >= s.train.steps(point.phase)
    model = point.model if point else None
    if phase == 3 and complete:
        s.say(f"[resume] the run in {shown_path(s.out)} is already complete")
        return
    if phase == 0 or (phase == 1 and not complete):
        model = phase1(s, point)
    if phase <= 1 or (phase == 2 and not complete):
        model = phase2(s, model if phase <= 1 else None, point if phase == 2 else None)
    phase3(s, model if phase < 3 else None, point if phase == 3 else None)
