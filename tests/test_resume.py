"""Resume reproduces the uninterrupted run exactly; a failure never loses what was written."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import growlib.checkpoint as ckpt
from growlib.checkpoint import load_checkpoint
from growlib.model import build_model
from growlib.harness.checkpoints.saver import Checkpointer
from growlib.harness.phases import fit
from growlib.train import TrainingDiverged

from conftest import Killed, killer, open_recipe, run_recipe

SETTINGS = dict(preset="tiny", data="bundled", steps=16, checkpoint_every=4, verbose=False)


def _losses(session):
    return [(r["phase"], r["step"], r["loss"]) for r in session.history.records if "loss" in r]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    s = run_recipe(out=tmp_path_factory.mktemp("full"), **SETTINGS)
    return _losses(s), s.state.figures


@pytest.mark.parametrize("phase, step", [(1, 9), (2, 2), (2, 13), (3, 3), (3, 14)])
def test_resume_after_a_kill_repeats_the_uninterrupted_losses(tmp_path, uninterrupted, phase, step):
    with pytest.raises(Killed):
        run_recipe(out=tmp_path, after_step=killer(phase, step), **SETTINGS)
    resumed = run_recipe(out=tmp_path, resume=True, **SETTINGS)
    losses, boundary = uninterrupted
    assert _losses(resumed) == losses  # exactly: same batches, same optimizer state, same schedule
    for phase, name in ((1, "final_loss"), (2, "first_loss"), (2, "final_loss"), (3, "first_loss"),
                        (3, "final_loss"), (3, "val_after"), (3, "val_end")):
        assert getattr(resumed.state.figures[phase], name) == getattr(boundary[phase], name), (phase, name)
    lines = (tmp_path / "training_history.jsonl").read_text().splitlines()
    assert len(lines) == len(resumed.history.records)  # no duplicated records in the file


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    s = open_recipe(**{**SETTINGS, "out": tmp_path})
    first = build_model(s.spec.model, seed=1)
    Checkpointer(s).phase_end(first, "dense_model", 1)
    real_save = ckpt.save_file

    def dies_halfway(tensors, path):
        real_save(tensors, path)
        Path(path).write_bytes(Path(path).read_bytes()[:1000])  # torn write...
        raise Killed  # ...and the process dies before the rename

    monkeypatch.setattr(ckpt, "save_file", dies_halfway)
    with pytest.raises(Killed):
        Checkpointer(s).phase_end(build_model(s.spec.model, seed=2), "dense_model", 1)
    loaded, _, _ = load_checkpoint(tmp_path, "dense_model")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), first.state_dict().values()))


def test_a_planted_nan_stops_the_phase_naming_the_step(tmp_path):
    s = open_recipe(**{**SETTINGS, "out": tmp_path})
    model = build_model(s.spec.model)
    with torch.no_grad():
        model.blocks[0].attn.q.weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="phase 1 step 0: loss is nan"):
        fit(s, model, 1)
    assert not list(tmp_path.glob("*.safetensors"))  # nothing half-trained was saved


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "growlib", "run", "--preset", "tiny", *args],
                          capture_output=True, text=True, cwd=cwd, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cli")
    res = _cli(["--data", "bundled", "--steps", "6", "--checkpoint-every", "3", "--out", "out"], cwd)
    assert res.returncode == 0, res.stderr
    return cwd


@pytest.mark.parametrize("args, message", [
    (["--data", "bundled", "--steps", "6", "--out", "out"], "already holds a run"),
    (["--data", "bundled", "--steps", "7", "--out", "out", "--resume"], "different configuration (train.steps_phase1: 6 there, 7 now)"),
    (["--data", "bundled", "--steps", "6", "--out", "out", "--preset", "cpu", "--resume"], "different configuration"),
    (["--data", "empty.txt", "--steps", "6", "--out", "out", "--overwrite"], "is empty"),
    (["--data", "binary.txt", "--steps", "6", "--out", "out", "--overwrite"], "looks binary"),
    (["--data", "missing.txt", "--steps", "6", "--out", "out", "--overwrite"], "does not exist"),
    (["--data", "bundled", "--steps", "6", "--out", "/proc/sys/growlib"], "is not writable"),
    (["--data", "bundled", "--steps", "6", "--out", "fresh", "--resume"], "holds no run to resume"),
])
def test_bad_input_is_one_line_and_overwrites_nothing(finished_run, args, message):
    (finished_run / "empty.txt").write_text("")
    (finished_run / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 100)
    before = _digest(finished_run / "out")
    res = _cli(args, finished_run)
    assert res.returncode != 0
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in res.stderr, res.stderr
    assert _digest(finished_run / "out") == before


@pytest.mark.parametrize("victim", ["large_moe_final.safetensors", "run_state.json"])
def test_corrupted_checkpoint_is_one_line(finished_run, tmp_path, victim):
    import shutil
    out = tmp_path / "out"
    shutil.copytree(finished_run / "out", out)
    path = out / victim
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    before = _digest(out)
    res = _cli(["--data", "bundled", "--steps", "6", "--out", str(out), "--resume"], tmp_path)
    assert res.returncode != 0
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and ("corrupted" in err[0] or "truncated" in err[0]), res.stderr
    assert _digest(out) == before


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path):
    import signal

    args = [sys.executable, "-m", "growlib", "run", "--preset", "tiny", "--data", "bundled", "--steps", "60",
            "--out", "out"]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until phase 1 is training
        if line.startswith("  step   20 |"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted in phase 1" in err and "--resume" in err and "Traceback" not in err
    resumed = subprocess.run(args + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "[resume] continuing phase 1 at step" in resumed.stdout and "BOUNDARY SUMMARY" in resumed.stdout


def test_lean_mode_learns_and_resumes_exactly(tmp_path):
    lean = {**SETTINGS, "lean": "always"}
    full = run_recipe(out=tmp_path / "full", **lean)
    r = full.state.results
    assert r[1].eval_loss < r[1].losses[0] - 0.5 and full.state.figures[3].val_end < full.state.figures[3].val_after
    with pytest.raises(Killed):
        run_recipe(out=tmp_path / "killed", after_step=killer(2, 13), **lean)
    resumed = run_recipe(out=tmp_path / "killed", resume=True, **lean)
    assert _losses(resumed) == _losses(full)
