"""The device check runs here too (CPU, tiny preset), writing every field a GPU run fills."""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASE_FIELDS = {"step_seconds", "tokens_per_second", "tflops", "mfu", "loss", "lean", "plan_gb", "measured_gb",
                "measured_over_plan"}


def test_the_device_check_writes_its_json_in_under_a_minute(tmp_path):
    out = tmp_path / "device.json"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "device_check.py"), "--device", "cpu", "--preset",
                           "tiny", "--json", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.perf_counter() - start < 60
    figures = json.loads(out.read_text())
    for phase in ("dense", "moe", "grown"):
        assert PHASE_FIELDS <= set(figures[phase]) and figures[phase]["step_seconds"] > 0
        assert 0.5 < figures[phase]["measured_over_plan"] < 2.0  # the plan holds here too
    assert figures["upcycling_logit_diff"] < 1e-4 and figures["growth_passed"] and figures["growth_max_diff"] < 1e-4
    assert {"loop_ms", "grouped_ms", "grouped_minus_loop_max"} <= set(figures["experts"])
    assert figures["experts"]["grouped_minus_loop_max"] < 1e-5  # fp32 on a CPU
    assert set(figures["run_fits"]) == {"phase1", "phase2", "phase3"} and figures["training_dtype"] == "float32"
    assert set(figures["run_100_steps_seconds"]) == {"dense", "moe", "grown"}


def test_a_bad_preset_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "device_check.py"), "--preset", "huge",
                           "--json", str(tmp_path / "x.json")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: unknown preset 'huge'")
    assert not (tmp_path / "x.json").exists()
