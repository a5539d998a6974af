"""The run's memory plan, made before phase 1: --lean auto|always|never under a device budget.

``GROWLIB_MEMORY_BUDGET_GB`` stands for a smaller machine: the budget is chosen from the
session's own plans so that phase 3 fits in lean mode only.
"""

import os
import subprocess
import sys

import pytest

import growlib.harness.memory.plan as plan_module
from growlib.harness.stops import NotEnoughMemory
from growlib.memory import FITS_HEADROOM

from conftest import Killed, killer, open_recipe, run_recipe

CPU = dict(preset="cpu", data="bundled", steps=2)
TINY = dict(preset="tiny", data="bundled", steps=6, verbose=True)


def _budget_where_only_phase3_needs_lean() -> float:
    plans = open_recipe(out=None, lean="never", verbose=False, **CPU).memory.plans
    usable = (plans[3].lean.total + plans[3].adamw.total) / 2  # halfway: far from both edges
    assert plans[1].adamw.total < usable and plans[2].adamw.total < usable and plans[3].lean.total < usable
    return usable / FITS_HEADROOM


def test_auto_trains_phase3_lean_and_says_so_before_phase1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GROWLIB_MEMORY_BUDGET_GB", str(_budget_where_only_phase3_needs_lean() / 1e9))
    s = run_recipe(out=tmp_path, **CPU)
    out = capsys.readouterr().out
    assert [p.lean_chosen for p in s.memory.plans.values()] == [False, False, True]
    said = out.index("  [memory] phase 3 trains in lean mode")
    assert said < out.index("  Phase 1 — Dense") and out.count("  [memory] phase") == 1
    assert out.count("  Lean mode: Adafactor stepped in backward") == 1
    assert out.index("  Lean mode:") > out.index("  Phase 3 — Large MoE (Bilateral Growth)")
    assert "  Memory plan — phase 3 (lean mode):" in out and "  Memory plan — phase 2:" in out
    assert (tmp_path / "large_moe_final.safetensors").exists()


def test_a_budget_too_small_even_for_lean_stops_before_phase1_in_one_line(tmp_path):
    env = {**os.environ, "GROWLIB_MEMORY_BUDGET_GB": "0.05"}
    res = subprocess.run([sys.executable, "-m", "growlib", "run", "--preset", "tiny", "--data", "bundled", "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, env=env)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: phase 1 is planned at ") and "even in lean mode" in err[0]
    assert "Phase 1 — Dense" not in res.stdout
    assert not list((tmp_path / "run").glob("*.safetensors"))


def test_a_run_stopped_in_phase3_resumes_with_lean_from_phase3s_start(tmp_path, capsys):
    with pytest.raises(Killed):
        run_recipe(out=tmp_path, lean="never", after_step=killer(3, 1), **TINY)
    capsys.readouterr()
    resumed = run_recipe(out=tmp_path, resume=True, lean="always", **TINY)
    out = capsys.readouterr().out
    assert "Phase 1 — Dense" not in out and "Phase 2 — MoE" not in out  # phases 1-2 are not trained again
    assert "[Bilateral Growth] Scaling x2 width" in out  # phase 3 starts over from the trained MoE
    assert "  Memory plan — phase 3 (lean mode):" in out and "  Lean mode: Adafactor" in out
    assert [r["step"] for r in resumed.history.records if r["phase"] == 3 and "loss" in r][0] == 0
    assert (tmp_path / "large_moe_final.safetensors").exists()


def test_mid_phase_resume_in_another_memory_mode_restarts_the_optimizer_and_says_so(tmp_path, capsys):
    with pytest.raises(Killed):
        run_recipe(out=tmp_path, lean="never", checkpoint_every=2, after_step=killer(3, 2), **TINY)
    capsys.readouterr()
    run_recipe(out=tmp_path, resume=True, lean="always", **TINY)
    out = capsys.readouterr().out
    assert ("[resume] phase 3 continues at step 2 in lean mode; the optimizer's state restarts "
            "(it was saved with AdamW)") in out
    assert "  [resume] continuing phase 3 at step 2" in out


def test_resume_still_refuses_a_change_of_what_is_trained(tmp_path):
    run_recipe(out=tmp_path, lean="never", **{**TINY, "verbose": False})
    with pytest.raises(ValueError, match="different configuration"):
        run_recipe(out=tmp_path, resume=True, lean="always", **{**TINY, "steps": 7, "verbose": False})


def test_memory_short_at_a_phase_start_stops_with_advice_instead_of_being_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module.RunMemory, "available", lambda self: 1e6)  # 1 MB left when phase 1 starts
    with pytest.raises(NotEnoughMemory, match=r"phase 1 stopped before training: it is planned at .* GB and this "
                                              r"device can give 0.0 GB now; resume with --lean"):
        run_recipe(out=tmp_path, **{**TINY, "verbose": False})
    assert not list(tmp_path.glob("*.safetensors"))


def test_lean_modes_are_checked():
    with pytest.raises(ValueError, match=r"--lean 'sometimes' is invalid: accepted one of \('auto', 'always', 'never'\)"):
        open_recipe(out=None, lean="sometimes", **TINY)
