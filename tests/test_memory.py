"""The memory plan: the seed's table, its advice, and lean mode's savings."""

from growlib.budget import phase_configs
from growlib.config import PRESETS
from growlib.harness.memory.advice import recommendations
from growlib.memory import GB, estimate_memory


def _seed_phase(n):
    p = PRESETS["recipe"]
    return phase_configs(p.model, p.growth)[n]


def test_seed_phase1_table_matches_16_bytes_per_parameter():
    plan = estimate_memory(_seed_phase(1), 8, 256)
    assert plan.model == 4 * 100_038_016 and plan.gradients == plan.model and plan.optimizer == 2 * plan.model
    assert 0 < plan.activations < plan.model * 5


def test_true_phase3_does_not_fit_24_gb_but_lean_mode_does():
    full = estimate_memory(_seed_phase(3), 8, 256)
    lean = estimate_memory(_seed_phase(3), 8, 256, lean=True)
    assert full.model + full.gradients + full.optimizer == 16 * 2_155_790_208  # 34.5 GB before activations
    assert full.total > 24 * GB and lean.total < 22 * GB
    assert lean.optimizer < 0.01 * full.optimizer  # Adafactor's factored moments


def test_recommendations_name_what_fits():
    p = PRESETS["recipe"]
    lines = recommendations(p.model, p.growth, 8, 256, available=24 * GB)
    assert lines[0].startswith("  Recommendations for 24.0 GB")
    fits = [l for l in lines[1:] if "fits" in l]
    assert any("--lean" in l for l in fits) and not any(l.strip().startswith("batch 8 -> 4") for l in fits)


def test_plan_is_printed_before_each_phase_and_measured_after(tmp_path, capsys):
    from conftest import run_recipe
    run_recipe(preset="tiny", data="bundled", steps=4, out=tmp_path)
    out = capsys.readouterr().out
    assert out.count("  Memory plan — phase") == 3 and out.count("  Memory: measured peak RSS") == 3
