"""The bf16 training path CUDA takes, run here: the tiny preset's three phases in CPU autocast.

``GROWLIB_TEST_CPU_BF16=1`` (a switch for tests) makes the CPU train through the same
``torch.autocast(bfloat16)`` code path a GPU run takes: bf16 matmuls, fp32 weights, the MoE's
tokens cast to bf16 before the experts. The run must learn, keep fp32 checkpoints, verify every
transition in fp32 below the recipe's 1e-4, and say which dtype trained.
"""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import load_file

from growlib.device import FORCE_CPU_AUTOCAST_VAR, autocast_for, cpu_autocast_forced, training_dtype

from conftest import run_recipe

NAMES = ("dense_model", "moe_model_init", "moe_model_final", "large_moe_final")


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FORCE_CPU_AUTOCAST_VAR, "1")
        import io
        from contextlib import redirect_stdout
        printed = io.StringIO()
        with redirect_stdout(printed):
            s = run_recipe(preset="tiny", data="bundled", steps=12, out=out)
    # the switch ends with the run, also when the run tokenized its corpus in worker processes
    # (growlib.tokenfiles.same_environ_object)
    assert not cpu_autocast_forced() and not torch.is_autocast_enabled("cpu")
    yield s, printed.getvalue(), out


def test_the_switch_turns_on_cpu_autocast_only_when_set(monkeypatch):
    monkeypatch.delenv(FORCE_CPU_AUTOCAST_VAR, raising=False)
    assert training_dtype("cpu") == torch.float32 and not torch.is_autocast_enabled("cpu")
    monkeypatch.setenv(FORCE_CPU_AUTOCAST_VAR, "1")
    assert training_dtype("cpu") == torch.bfloat16
    with autocast_for("cpu"):
        assert torch.is_autocast_enabled("cpu") and (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16


def test_a_bf16_run_learns_and_the_console_says_so(bf16_run):
    s, out, _ = bf16_run
    for phase in (1, 2, 3):
        losses = s.state.results[phase].losses
        assert all(map(lambda v: v == v and abs(v) < 1e3, losses)), losses  # finite
    assert s.state.results[1].final_loss < s.state.results[1].first_loss - 0.5
    assert s.state.figures[3].val_end < s.state.figures[3].val_after  # phase 3 still learns
    lines = [l for l in out.splitlines() if l.startswith("  throughput:")]
    assert len(lines) == 3 and all(l.endswith("(trained in bf16 autocast, weights fp32)") for l in lines)


def test_checkpoints_stay_fp32(bf16_run):
    _, _, out = bf16_run
    for name in NAMES:
        assert {t.dtype for t in load_file(str(out / f"{name}.safetensors")).values()} == {torch.float32}


def test_every_transition_is_verified_in_fp32_below_the_threshold(bf16_run):
    s, out, _ = bf16_run
    assert s.state.preservation[2].logit_diff < 1e-4
    assert s.state.preservation[3].overall < 1e-4 and s.state.preservation[3].passed
    diffs = [float(m) for m in re.findall(r"Overall max difference: (\S+)", out)]
    assert diffs and max(diffs) < 1e-4
