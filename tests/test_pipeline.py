"""The command end to end at tiny size: the seed's layout, files, and one-line errors."""

import re
import subprocess
import sys

import pytest

from growlib.config import PRESETS
from conftest import open_recipe, run_recipe

SEED_FILES = ["dense_model", "moe_model_init", "moe_model_final", "large_moe_final"]


def test_three_phases_in_the_seeds_layout(tmp_path, sample_path, capsys):
    s = run_recipe(preset="tiny", data=str(sample_path), out=tmp_path)
    out = capsys.readouterr().out
    lines = out.splitlines()
    # phase banners, in order, each framed by rules
    titles = [l.strip() for l in lines if re.match(r"^  Phase \d", l) and ":" not in l]
    assert titles == ["Phase 1 — Dense", "Phase 2 — MoE", "Phase 3  —  Bilateral Growth (Width x2, Layers +2)",
                      "Phase 3 — Large MoE (Bilateral Growth)"]
    assert "  Steps: 60  |  LR: 0.003  |  Device: cpu" in lines
    assert any(re.fullmatch(r"  Active Params/tok: +\d+\.\d\d M  \(top-2 of 4 experts\)", l) for l in lines)
    assert any(re.fullmatch(r"  Efficiency: \d+\.\d% active per forward pass", l) for l in lines)
    step_lines = [l for l in lines if l.startswith("  step ")]
    assert all(re.fullmatch(r"  step +\d+ \| loss \d+\.\d{4} \| \d+\.\ds", l) for l in step_lines)
    assert "[Bilateral Growth] Scaling x2 width, +2 layers..." in lines
    assert "  ✓ PASSED — functional equivalence confirmed (< 0.0001)" in lines
    # the BOUNDARY SUMMARY closes the run
    start = lines.index("BOUNDARY SUMMARY")
    labels = [l.split(":")[0].strip() for l in lines[start + 2:-1] if ":" in l]
    assert labels == ["Phase 1 final loss", "Phase 2 first loss", "Phase 2 final loss", "Phase 1→2 jump",
                      "Phase 1→2 jump (exact)", "Phase 2 total drop", "Phase 2 drop (val)", "Phase 3 first loss",
                      "Phase 3 final loss", "Phase 2→3 jump", "Phase 2→3 jump (exact)", "Phase 3 total drop",
                      "Phase 3 drop (val)"]
    # the exact jumps: same validation batches before/after each transition
    assert abs(s.state.figures[2].exact_jump) < 1e-4
    assert abs(s.state.figures[3].exact_jump) < 1e-4
    assert s.state.results[2].final_loss < s.state.results[2].first_loss  # phase 2 keeps learning
    for name in SEED_FILES:
        assert (tmp_path / f"{name}.safetensors").exists() and (tmp_path / f"{name}.json").exists()
    assert (tmp_path / "training_history.jsonl").exists()


def _cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "growlib", *args], capture_output=True, text=True, cwd=cwd,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", **(env or {})})


@pytest.mark.parametrize("args, message", [
    (["run", "--preset", "huge"], "unknown preset 'huge'"),
    (["run", "--preset", "tiny", "--data", "/nonexistent.txt"], "does not exist"),
    (["run", "--preset", "tiny", "--steps", "0"], "is not > 0"),
    (["run", "--preset", "tiny", "--out", "/proc/version"], "is a file"),
    (["run", "--preset", "tiny", "--scale-factor", "0.5"], "accepted a number >= 1"),
    (["budget", "--preset", "huge"], "unknown preset"),
    (["run", "--preset", "tiny", "--max-docs", "0"], "is not > 0"),
    (["run", "--preset", "tiny", "--data", "stories.csv"], "unknown extension '.csv'"),
    (["prepare", "--preset", "tiny", "--data", "/nonexistent.txt"], "does not exist"),
    (["prepare", "--preset", "huge", "--data", "bundled"], "unknown preset 'huge'"),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "stories.csv").write_text("text\nA cat sat.\n")
    res = _cli(*args, cwd=tmp_path)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "checkpoints").exists()  # nothing was written


@pytest.mark.parametrize("name", ["recipe", "seed"])  # "seed": the preset's first name, kept as an alias
def test_budget_recipe_prints_the_exact_count(name):
    res = _cli("budget", "--preset", name)
    assert res.returncode == 0
    assert "  Total Parameters:   100.04 M" in res.stdout
    assert "exact: 100,038,016 total, 100,038,016 active; analytic 100,038,016 / 100,038,016  match: True" in res.stdout
    assert "371,640,256 total, 138,878,272 active" in res.stdout and "2,155,790,208 total" in res.stdout


def test_vocab_smaller_than_the_tokenizer_is_rejected(tmp_path, monkeypatch):
    import dataclasses
    p = PRESETS["tiny"]
    small = dataclasses.replace(p, model=dataclasses.replace(p.model, vocab_size=100))
    with pytest.raises(ValueError, match="vocab_size = 100 is smaller than the tokenizer's"):
        open_recipe(small, data="bundled", out=tmp_path, verbose=False)


def _stories_dataset(n=400):
    import datasets

    from growlib.storygen import generate_stories

    return datasets.Dataset.from_dict({"text": generate_stories(n, seed=3)})


@pytest.mark.parametrize("kind", ["parquet", "save_to_disk"])
def test_run_reads_a_parquet_file_or_a_save_to_disk_folder(tmp_path, kind):
    if kind == "parquet":
        data = tmp_path / "stories.parquet"
        _stories_dataset().to_parquet(str(data))
    else:
        data = tmp_path / "stories"
        _stories_dataset().save_to_disk(str(data))
    env = {"GROWLIB_DATA_DIR": str(tmp_path / "data")}
    res = _cli("run", "--preset", "tiny", "--steps", "2", "--data", str(data), "--out", str(tmp_path / "out"),
               cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "BOUNDARY SUMMARY" in res.stdout and "  ✓ PASSED — functional equivalence confirmed (< 0.0001)" in res.stdout
    assert f"[data] corpus: {'local file' if kind == 'parquet' else 'save_to_disk folder'} {data.name} (400 documents)" \
        in res.stdout
    again = _cli("run", "--preset", "tiny", "--steps", "2", "--data", str(data), "--out", str(tmp_path / "out"),
                 "--overwrite", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "(reused:" in again.stdout  # the token files of the first run


def test_prepare_writes_token_files_and_its_figures(tmp_path):
    import json

    data = tmp_path / "stories.parquet"
    _stories_dataset().to_parquet(str(data))
    res = _cli("prepare", "--preset", "tiny", "--data", str(data), "--json", str(tmp_path / "p.json"),
               cwd=tmp_path, env={"GROWLIB_DATA_DIR": str(tmp_path / "data")})
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["tokens"] == report["train_tokens"] + report["validation_tokens"] > 0
    assert report["tokens_per_second"] > 0 and 0 < report["peak_rss_gb"] < 4 and report["dtype"] == "uint16"
    assert report["documents"] == 400 and not report["reused"]
    manifest = json.loads((tmp_path / "data" / "cache" / report["folder"].split("/")[-1] / "manifest.json").read_text())
    assert manifest["tokens"] == report["tokens"] and manifest["splits"]["validation"]["documents"] == 20
