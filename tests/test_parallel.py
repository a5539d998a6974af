"""Training across processes (growlib.parallel) on CPU with gloo: the same run as one process.

Two processes each train their half of every global batch. The reference is one
process that trains the same halves as two accumulated micro-batches, with the
MoE's balance loss counting the experts' tokens over the whole batch, as the two
processes do by summing their counts: the same arithmetic, so the logged losses
(balance and z-loss included) agree to float rounding. Against one process that
trains the whole batch at once they agree only in the dense phase: right after
upcycling the experts are identical, the language-model loss's gradient at the
router is rounding noise, and AdamW scales that noise up to full-size steps, so
two summation orders route differently within a few steps. A sharded resume
checkpoint continues the run in one process or in two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
import torch
import torch.multiprocessing as mp

import growlib.train
from growlib.train import PhaseSpec, StepResult, clip_gradients
from conftest import run_recipe
from growlib.memory import estimate_memory
from growlib.config import get_preset

import parallel_workers

SETTINGS = dict(preset="tiny", data="bundled", steps=10, checkpoint_every=4, verbose=False)
TOLERANCE = 1e-6  # nats: float rounding of a sum split in two


def _records(out) -> list[dict]:
    lines = (out / "training_history.jsonl").read_text().splitlines()
    return [json.loads(l) for l in lines if l.strip()]


def _spawn(target, args, world: int = 2) -> None:
    mp.start_processes(target, args=args, nprocs=world, start_method="spawn", join=True)


def _run_processes(tmp_path, out, world: int = 2, stop_at=None, **changes) -> None:
    rendezvous = tempfile.mktemp(prefix="rendezvous-", dir=tmp_path)  # a new file per group: a used one would hang
    settings = {**SETTINGS, "out": out, **changes}
    _spawn(parallel_workers.run_worker, (world, rendezvous, settings, stop_at), world)


def _assert_same_run(got: list[dict], want: list[dict]) -> None:
    assert [(r["phase"], r["step"]) for r in got] == [(r["phase"], r["step"]) for r in want]
    assert sum("aux_loss" in r for r in want) >= 4  # the MoE phases' balance loss is compared too
    for g, w in zip(got, want):
        for key in ("loss", "eval_loss", "aux_loss", "z_loss"):
            if key in w:
                assert abs(g[key] - w[key]) <= TOLERANCE, (g["phase"], g["step"], key, g[key], w[key])
        if "expert_tokens" in w:
            assert g["expert_tokens"] == w["expert_tokens"]  # counts over the whole global batch


def accumulated_step(model, optimizer, batch, spec=None, par=None, net=None, parts: int = 2) -> StepResult:
    """growlib.train.train_step over ``parts`` micro-batches: what ``parts`` processes compute, in one."""
    spec = spec or PhaseSpec()
    x, y = batch
    rows = x.shape[0] // parts
    pieces = []
    for j in range(parts):  # every forward first: the balance loss needs the whole batch's counts
        routing = []
        loss = model(x[j * rows:(j + 1) * rows], y[j * rows:(j + 1) * rows], routing=routing)
        pieces.append((loss, routing))
    counts = [sum(piece[1][i].counts for piece in pieces) for i in range(len(pieces[0][1]))]
    optimizer.zero_grad(set_to_none=True)
    figures = []
    for loss, layers in pieces:
        terms = [loss]
        if layers:
            balance = torch.stack([m.n_experts * (c.float() / c.sum() * r.frac_probs).sum()
                                   for m, c, r in zip(model.moe_layers(), counts, layers)]).mean()
            z = torch.stack([r.z for r in layers]).mean()
            terms += [balance, z]
        total = loss if not layers else loss + spec.balance_coef * terms[1] + spec.z_coef * terms[2]
        (total / parts).backward()  # halving is exact: the sum of halves is the processes' average
        figures.append(torch.stack([t.detach().float() for t in terms]))
    if not spec.lean:
        clip_gradients(model, spec.grad_clip)
    optimizer.step()
    stats = ()
    if counts:  # logged: the whole batch's counts, the micro-batches' mean entropy
        entropy = sum(torch.stack([r.entropy for r in layers]) for _, layers in pieces) / parts
        stats = (torch.stack(counts), entropy)
    return StepResult(*(sum(figures) / parts).tolist(), *stats)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process, each global batch as two accumulated micro-batches."""
    out = tmp_path_factory.mktemp("one")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker process runs (parallel_workers.join): the same sums, in the same order
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(growlib.train, "train_step", accumulated_step)
            run_recipe(out=out, **SETTINGS)
    finally:
        torch.set_num_threads(threads)
    return _records(out)


@pytest.mark.parametrize("mode", ["fsdp", "ddp"])
def test_two_processes_log_the_losses_of_one(tmp_path, one_process, mode):
    out = tmp_path / mode
    _run_processes(tmp_path, out, parallel=mode)
    assert sum(r["phase"] == 3 and "loss" in r for r in one_process) >= 2
    _assert_same_run(_records(out), one_process)
    for name in ("dense_model", "moe_model_init", "moe_model_final", "large_moe_final"):
        assert (out / f"{name}.safetensors").is_file()  # the phase checkpoints: one file each, as in one process


def test_growth_while_sharded_keeps_the_function(tmp_path):
    result = tmp_path / "growth.json"
    _spawn(parallel_workers.growth_worker, (2, tempfile.mktemp(prefix="rendezvous-", dir=tmp_path), str(result)))
    got = json.loads(result.read_text())
    assert got["max_diff"] <= 1e-5
    assert got["w_in"] == [[4, 96, 384], [2, 96, 384]]  # experts split across the two processes
    assert got["tok_emb"] == [[97, 96], [49, 96]]  # rows split, the last shard one shorter


@pytest.mark.parametrize("world_after", [1, 2])
def test_a_sharded_checkpoint_resumes_with_any_process_count(tmp_path, one_process, world_after):
    out = tmp_path / "run"
    _run_processes(tmp_path, out, stop_at=(2, 5))  # Ctrl-C after phase 2's step 5: a DCP checkpoint at step 6
    state = json.loads((out / "run_state.json").read_text())
    assert state["checkpoint"] == "resume_p2_s6.dcp" and (out / "resume_p2_s6.dcp" / ".metadata").is_file()
    if world_after == 1:
        run_recipe(out=out, resume=True, **SETTINGS)
    else:
        _run_processes(tmp_path, out, resume=True, stop_at=None)
    _assert_same_run(_records(out), one_process)


def test_impossible_process_count_is_refused_in_one_line(tmp_path):
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "3", "LOCAL_RANK": "0", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "growlib", "run", "--preset", "tiny", "--data", "bundled",
                          "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip() == ("error: 3 processes cannot share a batch of 8 rows equally: accepted "
                                  "--nproc-per-node (times nodes) in [1, 2, 4, 8]")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_parallel_without_torchrun_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs several processes"):
        run_recipe(out=tmp_path, parallel="fsdp", **SETTINGS)


def test_fsdp_plan_divides_the_state_among_the_processes():
    cfg = get_preset("recipe").model
    one = estimate_memory(cfg, 8, 512)
    four = estimate_memory(cfg, 2, 512, shards=4)
    assert four.model == one.model / 4 and four.optimizer == one.optimizer / 4
    assert four.gathered > 0 and four.activations < one.activations
