"""The recipe end to end: dense (phase 1) -> MoE (phase 2) -> bilateral growth (phase 3).

``python -m growlib run`` calls :func:`run`; the notebooks call the phases one
at a time through a :class:`~growlib.harness.session.Session`, so both print
the same lines.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..accounting import param_report
from ..budget import phase_configs
from ..checkpoint import load_checkpoint
from ..config import Preset, get_preset
from ..data import TokenData
from ..sources import open_source
from ..tokenfiles import prepare
from ..tokenizer import load_tokenizer
from ..device import pick_device
from ..grow import grow, widened_config
from ..lean import free_model
from ..memory import Overhead
from ..model import GPT, build_model
from ..train import History, PhaseResult
from ..upcycle import upcycle
from ..verify import check_preservation
from .advice import LEAN_WHAT, check_run_fits, lean_mode, plan_run, run_plan_lines
from .allocator import keep_freed_memory_for_reuse, map_large_blocks
from .console import boundary_summary, phase_banner, section_banner
from ..parallel import dcp
from ..parallel.group import PARALLEL_MODES, SINGLE, Parallel, from_torchrun, in_torchrun, leave
from .measure import available_memory, current_rss, warm_up_runtime
from .paths import shown_path
from .resume import (HISTORY, ROLLING, STATE_FILE, check_settings, clear_run, optimizer_state, out_dir_has_run,
                     read_state, truncate_history)
from .session import RunSettings, Session

PHASE_TITLES = {1: "Phase 1 — Dense", 2: "Phase 2 — MoE", 3: "Phase 3 — Large MoE (Bilateral Growth)"}
PHASE_CHECKPOINT = {1: "dense_model", 2: "moe_model_final", 3: "large_moe_final"}
JUMP_WARNING = 0.1  # nats: a transition that moves the validation loss this much did not preserve the function


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


def open_session(preset: str | Preset = "cpu", data: str = "auto", steps: int | None = None,
                 out: str | os.PathLike | None = "checkpoints", device: str | None = None,
                 growth: dict | None = None, verbose: bool = True, fresh_history: bool = True,
                 checkpoint_every: int = 0, lean: str | bool = "auto", compile: bool = False,
                 max_docs: int | None = None, workers: int | None = None, parallel: str | None = None) -> Session:
    """Validate every argument, open the corpus, prepare its token files, plan the run's memory (no training yet).

    ``data`` names the source (:func:`growlib.sources.open_source`); ``max_docs`` keeps
    its first N training documents; ``workers`` tokenizing processes when the token
    files are made (the first run on a corpus; later runs reuse them).

    ``lean``: ``auto`` trains a phase in lean mode when it would not fit otherwise,
    ``always`` (or True) every phase, ``never`` (or False) none.

    Under torchrun the processes join one group (growlib.parallel): ``parallel`` is
    ``fsdp`` (the default there) or ``ddp``; rank 0 prints, writes the history and the
    phase checkpoints.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    mode = lean_mode(lean)
    tcfg = p.train if steps is None else p.train.with_steps(steps)
    if compile:
        tcfg = dataclasses.replace(tcfg, compile=compile)
    gcfg = dataclasses.replace(p.growth, **(growth or {}))
    widened_config(dataclasses.replace(p.model, n_experts=gcfg.n_experts, top_k=gcfg.top_k), gcfg.scale_factor)
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every={checkpoint_every} is invalid: accepted 0 (phase ends only) or N > 0")
    dev = pick_device(device)
    par, mode = _join_processes(parallel, dev, tcfg.batch_size, mode)
    dev, verbose = par.device if par.active else dev, verbose and par.is_main
    if not par.is_main:
        par.barrier()  # rank 0 prepares the corpus's files first; the others then reuse them
    source = open_source(data, max_docs=max_docs, verbose=verbose)  # a bad source fails here, before anything is written
    out_path = check_output_dir(out) if out is not None else None
    tok = load_tokenizer(source, p.model.vocab_size, verbose=verbose)
    if tok.get_vocab_size() > p.model.vocab_size:
        raise ValueError(f"ModelConfig.vocab_size = {p.model.vocab_size} is smaller than the tokenizer's "
                         f"{tok.get_vocab_size()}: accepted a vocab of at least {tok.get_vocab_size()}")
    files, _ = prepare(source, tok, workers=workers, verbose=verbose)  # made once per corpus and tokenizer
    if par.is_main:
        par.barrier()
    token_data = TokenData(files, tok, tcfg.seq_len, source)
    history_path = out_path / HISTORY if out_path is not None and par.is_main else None
    if fresh_history and history_path is not None and history_path.exists():
        history_path.unlink()
    settings = RunSettings(p, tcfg, gcfg, dev, out_path, data_spec=data, max_docs=max_docs,
                           checkpoint_every=checkpoint_every,
                           lean_mode=mode, verbose=verbose)
    s = Session(settings, token_data, History(history_path), token_data.val_batches(tcfg.eval_batches, tcfg.batch_size),
                par=par)
    # the C heap (harness.allocator): kept for reuse (no page faults after the first step); an FSDP
    # process maps its large blocks instead, which would fragment a kept heap step after step
    heap = dev == "cpu" and (map_large_blocks() if par.mode == "fsdp" else keep_freed_memory_for_reuse())
    if not dev.startswith("cuda"):
        warm_up_runtime()
        s.state.overhead = Overhead(runtime=current_rss(), heap_slack=heap)
    _plan_run(s)
    return s


def _join_processes(parallel: str | None, device: str, batch_size: int, lean: str) -> tuple[Parallel, str]:
    """Under torchrun: the process group and the lean mode it allows (lean mode is one-process only)."""
    if not in_torchrun():
        if parallel is not None:
            raise ValueError(f"--parallel {parallel} needs several processes: accepted under torchrun "
                             f"(torchrun --standalone --nproc-per-node 2 -m growlib run ...)")
        return SINGLE, lean
    if lean == "always":
        raise ValueError("--lean trains in one process only: accepted --lean auto or never under torchrun "
                         "(FSDP divides the memory among the processes instead)")
    if parallel is not None and parallel not in PARALLEL_MODES:
        raise ValueError(f"--parallel {parallel!r} is invalid: accepted {' | '.join(PARALLEL_MODES)}")
    Parallel(world=int(os.environ["WORLD_SIZE"])).check_batch(batch_size)  # before joining: a clear error
    return from_torchrun(parallel or "fsdp", device), "never"


def _plan_run(s: Session) -> None:
    """Which phases train lean, decided before phase 1; a run that cannot fit is refused here."""
    c, overhead, par = s.config, s.state.overhead, s.par
    available = available_memory(c.device) / par.memory_share(c.device)
    configs = phase_configs(c.preset.model, c.growth)
    shards = par.world if par.mode == "fsdp" else 1
    s.state.run_plan = plan_run(configs, c.train.batch_size // par.world, c.train.seq_len, overhead, available,
                                c.lean_mode, shards=shards)
    check_run_fits(s.state.run_plan, available, c.lean_mode, c.preset.model, c.growth, c.train.batch_size,
                   c.train.seq_len, overhead)


def say_run_plan(s: Session) -> None:
    """The three phases' memory plans together, against what this device can give now."""
    where = s.config.device + (f", each of {s.par.world} processes" if s.par.active else "")
    available = available_memory(s.config.device) / s.par.memory_share(s.config.device)
    for line in run_plan_lines(s.state.run_plan, available, where):
        s.say(line)


@dataclass
class Resumed:
    """A phase to continue: its model, the step to train next, the optimizer state (mid-phase only)."""

    phase: int
    next_step: int
    model: GPT
    optimizer: dict | None


def phase1(s: Session, resume: Resumed | None = None) -> GPT:
    """Build and train the dense model; checkpoint ``dense_model``."""
    c = s.config
    if resume:
        model = resume.model
    else:  # built and initialised once, on rank 0, then shared out
        model = s.par.distribute(build_model(c.preset.model, seed=c.train.seed, device=c.device)
                                 if s.par.is_main else None)
    _train_and_save(s, model, 1, resume)
    return model


def phase2(s: Session, dense: GPT | None, resume: Resumed | None = None) -> GPT:
    """Upcycle into a MoE, check it computes the same function, train it; two checkpoints."""
    g = s.config.growth
    if resume is None:
        dense = s.par.gather(dense)  # across processes: the whole model on rank 0, which upcycles it
        moe = None
        if s.par.is_main:
            moe = upcycle(dense, g.n_experts, g.top_k, seed=s.config.train.seed)
            s.state.preservation[2] = check_preservation(dense, moe, s.verify_tokens().to(s.config.device))
            s.say()
            s.say(f"[Upcycling] Dense -> MoE: {g.n_experts} experts (copies of each MLP), top-{g.top_k} routing")
            s.say(f"  max |Δlogit| on the fixed validation batch: {s.state.preservation[2].logit_diff:.2e}")
            _measure_transition(s, 2, dense, moe)
            s.save_full(moe, "moe_model_init", 2, next_step=0)
        del dense
        moe = s.par.distribute(moe)
    else:
        moe = resume.model
    _train_and_save(s, moe, 2, resume)
    return moe


def phase3(s: Session, moe: GPT | None, resume: Resumed | None = None) -> GPT:
    """Grow wider and deeper, verify per layer, train after a re-warm-up; checkpoint ``large_moe_final``."""
    g = s.config.growth
    if resume is None:
        s.say()
        s.say(section_banner(f"Phase 3  —  Bilateral Growth (Width x{g.scale_factor:g}, Layers +{g.extra_layers})"))
        s.say()
        if s.par.active:  # the whole MoE on rank 0, which grows and verifies it; the sharded one goes
            full, moe = s.par.gather(moe), None
        else:
            full = moe
        grown = None
        if s.par.is_main:
            grown = grow(full, g.scale_factor, g.extra_layers, where=g.placement, noise=g.noise,
                         seed=s.config.train.seed, verbose=s.config.verbose)
            s.say()
            s.state.preservation[3] = check_preservation(full, grown, s.verify_tokens().to(s.config.device),
                                                         where=g.placement)
            for line in s.state.preservation[3].lines():
                s.say(line)
            _measure_transition(s, 3, full, grown)
        del full
        grown = s.par.distribute(grown)
    else:
        grown = resume.model
    if s.train_config(3).lean and moe is not None:
        free_model(moe)  # lean mode: the MoE's memory goes back before the big model trains
    _train_and_save(s, grown, 3, resume)
    return grown


def _measure_transition(s: Session, phase: int, old: GPT, new: GPT) -> None:
    """Validation loss of the old and the new model on the same batches; a warning if it jumped."""
    figures = s.state.figures[phase]
    if figures.val_before is None:  # normally measured at the end of the previous phase
        figures.val_before = s.eval(old)
    figures.val_after = s.eval(new)
    if abs(figures.exact_jump) > JUMP_WARNING:
        s.say(f"  ⚠️  Phase {phase - 1}→{phase} jump {figures.exact_jump:+.4f} is above {JUMP_WARNING}: "
              f"the function was not preserved")


def _train_and_save(s: Session, model: GPT, phase: int, resume: Resumed | None) -> None:
    """The part every phase shares: memory plan, banner, training, boundary figures, checkpoint."""
    c = s.config
    s.say()
    s.plan_memory(phase)
    s.say(phase_banner(PHASE_TITLES[phase], c.train.steps(phase), c.train.lr(phase), c.device,
                       param_report(model, c.train.seq_len), lean=LEAN_WHAT if s.train_config(phase).lean else None))
    s.say()
    if resume is not None and resume.next_step:
        s.say(f"  [resume] continuing phase {resume.phase} at step {resume.next_step}")
    r = s.fit(model, phase, resume.next_step if resume else 0, resume.optimizer if resume else None)
    figures = s.state.figures[phase]
    figures.first_loss, figures.final_loss, figures.val_end = r.first_loss, r.final_loss, r.eval_loss
    if phase < 3:
        s.state.figures[phase + 1].val_before = r.eval_loss  # the next transition starts from this model
    s.save(model, PHASE_CHECKPOINT[phase], phase)


def find_resume(s: Session) -> Resumed:
    """The newest complete checkpoint of the run in the session's folder, ready to continue."""
    out = s.config.out
    point = read_state(out)
    if point is None:
        raise ValueError(f"--resume: {shown_path(out)!r} holds no run to resume (no {STATE_FILE}); "
                         f"run without --resume to start one")
    check_settings(point.settings, s.config.fingerprint(), out)
    if dcp.is_dcp(point.checkpoint):  # written across processes: loads into any number of them, one included
        model = dcp.load_model(out / point.checkpoint, s.par)
        optimizer, extra = dcp.optimizer_loader(model, out / point.checkpoint, s.par), {"lean": False}
    else:
        model, extra, tensors = load_checkpoint(out, point.checkpoint, device=s.config.device) \
            if s.par.is_main else (None, {}, {})
        model = s.par.distribute(model)
        optimizer = None
        if point.checkpoint == ROLLING and s.par.active:  # one process's optimizer state does not shard
            s.say(f"[resume] phase {point.phase} continues at step {point.next_step} across {s.par.world} "
                  f"processes; the optimizer's state restarts (it was saved by one process)")
        elif point.checkpoint == ROLLING:
            optimizer = optimizer_state(tensors, extra["optimizer"])
    lean_now = s.train_config(point.phase).lean
    if optimizer is not None and extra.get("lean", False) != lean_now:
        optimizer = None  # AdamW's state cannot seed Adafactor, nor the reverse
        s.say(f"[resume] phase {point.phase} continues at step {point.next_step} "
              f"{'in lean mode' if lean_now else 'with AdamW'}; the optimizer's state restarts "
              f"(it was saved {'with AdamW' if lean_now else 'in lean mode'})")
    if s.history.path is not None:
        s.history.records = truncate_history(s.history.path, point.history_len)
    s.state.figures.update(point.boundary)
    for phase in (1, 2, 3):  # earlier phases' logged losses, for their results
        rows = [r for r in s.history.records if r["phase"] == phase and "loss" in r]
        if rows and phase < point.phase:
            s.state.results[phase] = PhaseResult(phase, [r["step"] for r in rows], [r["loss"] for r in rows])
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
    s.hooks.after_step = after_step
    say_run_plan(s)
    if overwrite and s.config.out is not None and s.par.is_main:
        clear_run(s.config.out)
    s.par.barrier()
    with _ctrl_c_finishes_the_step(s):
        _run_phases(s, find_resume(s) if resume else None)
    s.say()
    s.say(boundary_summary(s.state.figures))
    leave(s.par)
    return s


class _ctrl_c_finishes_the_step:
    """While the phases run: Ctrl-C asks the loop to finish its step, checkpoint and stop."""

    def __init__(self, s: Session) -> None:
        self.s, self.active = s, threading.current_thread() is threading.main_thread()

    def __enter__(self) -> None:
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)

    def __exit__(self, *exc) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self.previous)

    def _on_sigint(self, signum, frame) -> None:
        self.s.hooks.stop.requested = True
        print("\n  [interrupt] finishing this step and writing a checkpoint...", flush=True)


def _run_phases(s: Session, point: Resumed | None) -> None:
    """Phases 1 -> 3, starting wherever ``point`` says the run stopped."""
    phase = point.phase if point else 0
    complete = point is not None and point.next_step >= s.config.train.steps(point.phase)
    model = point.model if point else None
    if phase == 3 and complete:
        s.say(f"[resume] the run in {shown_path(s.config.out)} is already complete")
        return
    if phase == 0 or (phase == 1 and not complete):
        model = phase1(s, point)
    if phase <= 1 or (phase == 2 and not complete):
        model = phase2(s, model if phase <= 1 else None, point if phase == 2 else None)
    phase3(s, model if phase < 3 else None, point if phase == 3 else None)
