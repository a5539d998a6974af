"""Phase-1 training learns, on the bundled corpus and on real TinyStories text."""

import json
import math

import pytest
import torch

from growlib.config import PRESETS
from growlib.harness.phases import phase1
from growlib.train import lr_at

from conftest import open_recipe


@pytest.mark.parametrize("data", ["bundled", "sample"])
def test_phase1_learns(tmp_path, request, data, capsys):
    # the real sample is skipped cleanly where shared/ is absent; the bundled corpus always runs
    spec = str(request.getfixturevalue("sample_path")) if data == "sample" else "bundled"
    s = open_recipe("tiny", data=spec, out=tmp_path, verbose=True)
    phase1(s)
    r = s.state.results[1]
    out = capsys.readouterr().out
    assert "Phase 1 — Dense" in out and "  step    0 | loss " in out
    assert r.losses[0] > math.log(s.data.vocab_size) - 0.5  # starts near uniform
    assert r.final_loss < r.losses[0] - 1.0, r.losses  # and falls clearly
    assert r.eval_loss < r.losses[0] - 1.0
    rows = [json.loads(l) for l in (tmp_path / "training_history.jsonl").read_text().splitlines()]
    assert {"phase", "step", "loss", "lr", "tokens", "elapsed"} <= set(rows[0])
    assert rows[-1]["eval_loss"] == pytest.approx(r.eval_loss)
    assert (tmp_path / "dense_model.safetensors").exists() and (tmp_path / "dense_model.json").exists()


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 1.0, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] >= 0.1


def test_loss_at_init_is_near_log_vocab():
    from growlib.model import build_model
    cfg = PRESETS["tiny"].model
    model = build_model(cfg)
    x, y = torch.randint(0, cfg.vocab_size, (2, 4, 32))
    assert abs(model(x, y).item() - math.log(cfg.vocab_size)) < 0.3


@pytest.mark.parametrize("warmup, flagged", [(0, True), (10, False)])
def test_the_spike_rule_reads_the_phases_own_warmup(capsys, warmup, flagged):
    """A phase with no warm-up (compare's continued-schedule variant) flags a spike at its step 1."""
    from growlib.harness.console import PhaseLog
    from growlib.harness.history import History, PhaseResult
    from growlib.train import PhaseSpec, StepResult, TrainedStep

    spec = PhaseSpec(phase=2, steps=20, warmup=warmup, log_every=1)
    log = PhaseLog(spec, History(None), PhaseResult(2), verbose=True)
    log.after_step(TrainedStep(0, 1e-3, StepResult(2.0), 64, 0.1))
    log.after_step(TrainedStep(1, 1e-3, StepResult(3.0), 128, 0.2))  # 50% and 1 nat above the lowest
    out = capsys.readouterr().out
    assert ("loss spike at step 1: 3.0000 (lowest logged in this phase 2.0000)" in out) == flagged
