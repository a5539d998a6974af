"""The recipe end to end: open a session on a spec, then run its three phases (or resume them).

``python -m growlib run`` builds a :class:`~growlib.harness.spec.RunSpec` and calls :func:`run`;
the notebooks open a session (growlib.harness.notebook) and call the phases one at a time, so
both print the same lines.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from ..data import TokenData, open_corpus
from ..memory import Overhead
from ..parallel.group import PARALLEL_MODES, SINGLE, Parallel, from_torchrun, in_torchrun, leave
from ..sources import open_source
from .checkpoints.pointer import clear_run, out_dir_has_run
from .checkpoints.resume import find_resume
from .console import boundary_summary
from .history import HISTORY, History
from .memory import RunMemory, keep_freed_memory_for_reuse, map_large_blocks, runtime_overhead
from .paths import shown_path
from .phases import run_phases
from .session import Session
from .spec import RunSpec
from .stops import ctrl_c_finishes_the_step


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


def join_processes(spec: RunSpec) -> tuple[Parallel, RunSpec]:
    """Under torchrun: the process group, and the spec as this process runs it (its device; rank 0 prints)."""
    how = spec.how
    if not in_torchrun():
        if how.parallel is not None:
            raise ValueError(f"--parallel {how.parallel} needs several processes: accepted under torchrun "
                             f"(torchrun --standalone --nproc-per-node 2 -m growlib run ...)")
        return SINGLE, spec
    if how.lean == "always":
        raise ValueError("--lean trains in one process only: accepted --lean auto or never under torchrun "
                         "(FSDP divides the memory among the processes instead)")
    if how.parallel is not None and how.parallel not in PARALLEL_MODES:
        raise ValueError(f"--parallel {how.parallel!r} is invalid: accepted {' | '.join(PARALLEL_MODES)}")
    Parallel(world=int(os.environ["WORLD_SIZE"])).check_batch(spec.train.batch_size)  # before joining: a clear error
    par = from_torchrun(how.parallel or "fsdp", how.device)
    return par, spec.with_how(device=par.device, verbose=how.verbose and par.is_main, lean="never")


def _open_data(spec: RunSpec, par: Parallel) -> TokenData:
    """The corpus's token data; a bad source fails before the output folder is made. Rank 0 prepares first."""
    how = spec.how
    if not par.is_main:
        par.barrier()  # rank 0 prepares the corpus's files first; the others then reuse them
    source = open_source(spec.data, max_docs=spec.max_docs, verbose=how.verbose)
    if how.out is not None:
        check_output_dir(how.out)
    tokenizer, files, _ = open_corpus(source, spec.model.vocab_size, how.workers, how.verbose)
    if par.is_main:
        par.barrier()
    return TokenData(files, tokenizer, spec.train.seq_len, source)


def _set_up_memory(spec: RunSpec, par: Parallel) -> RunMemory:
    """The C heap set up for training, the runtime measured, every phase's memory planned."""
    device = spec.how.device
    # the C heap (memory.heap): kept for reuse (no page faults once it has settled); an FSDP process
    # maps its large blocks instead, which would fragment a kept heap step after step
    heap = device == "cpu" and (map_large_blocks() if par.mode == "fsdp" else keep_freed_memory_for_reuse())
    overhead = runtime_overhead(heap) if not device.startswith("cuda") else Overhead()  # CUDA: the GPU's own memory
    return RunMemory.plan(spec, par, overhead)


def open_session(spec: RunSpec, fresh_history: bool = True) -> Session:
    """Join the processes, open the corpus, prepare its token files, plan the run's memory (no training yet)."""
    par, spec = join_processes(spec)
    data = _open_data(spec, par)
    out = spec.how.out
    history_path = out / HISTORY if out is not None and par.is_main else None
    if fresh_history and history_path is not None and history_path.exists():
        history_path.unlink()
    t = spec.train
    return Session(spec, data, History(history_path), data.val_batches(t.eval_batches, t.batch_size),
                   _set_up_memory(spec, par), par=par)


def run(spec: RunSpec, resume: bool = False, overwrite: bool = False,
        after_step: Callable[[int, int], None] | None = None) -> Session:
    """All three phases, then the BOUNDARY SUMMARY.

    ``resume`` continues the run in the spec's output folder from its newest complete
    checkpoint; otherwise a folder that already holds a run is refused unless ``overwrite``.
    ``after_step`` (phase, step) is called after every training step (tests).
    """
    out = spec.how.out
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: accepted one of them")
    if not resume and not overwrite and out is not None and out.is_dir() and out_dir_has_run(out):
        raise ValueError(f"--out {shown_path(out)!r} already holds a run: accepted --resume to continue it, "
                         f"--overwrite to replace it, or another --out")
    s = open_session(spec, fresh_history=not resume)
    s.after_step = after_step
    for line in s.memory.lines():
        s.say(line)
    if overwrite and out is not None and s.par.is_main:
        clear_run(out)
    s.par.barrier()
    with ctrl_c_finishes_the_step(s.stop):
        start = find_resume(s) if resume else None
        if resume and start is None:
            s.say(f"[resume] the run in {shown_path(out)} is already complete")
        else:
            run_phases(s, start)
    s.say()
    s.say(boundary_summary(s.state.figures))
    leave(s.par)
    return s
