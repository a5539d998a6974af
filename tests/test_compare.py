"""The comparison: reaching a target loss, savings over seeds, the baselines, variants, results files."""

import json
import statistics

import pytest

from growlib.curves import Curve, CurveKind, curves_over_seeds, saving, spread
from growlib.harness.compare import compare, load_results, results_path

GROWN, SCRATCH, SMALL = CurveKind.GROWN.label, CurveKind.SCRATCH.label, CurveKind.SMALL.label
RESULT_KEYS = {"seeds", "scratch_lr_sweep", "saving_vs_scratch_percent", "saving_vs_small_percent", "curves"}


def test_reach_interpolates_between_evaluations():
    c = Curve("x", [0, 10, 20], [5.0, 3.0, 2.0])
    assert c.reach(4.0) == pytest.approx(5.0)
    assert c.reach(2.0) == 20 and c.reach(1.0) is None and c.reach(6.0) == 0
    assert c.at(15) == pytest.approx(2.5) and c.at(0) == 5.0 and c.at(99) == 2.0


def test_saving_positive_and_negative():
    scratch = Curve("s", [0, 100], [5.0, 2.0])
    fast = Curve("g", [0, 40, 100], [5.0, 2.0, 1.5])
    assert saving(fast, scratch) == pytest.approx(0.6)  # reached the scratch's final loss at 40% of its FLOPs
    slow = Curve("g", [0, 100], [5.0, 3.5])
    # never reached 2.0; the scratch run reached 3.5 at 50 FLOPs: growth cost 2x -> -50%
    assert saving(slow, scratch) == pytest.approx(-0.5)


def test_spread_is_the_mean_and_sample_deviation_over_seeds():
    assert spread([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "values": [1.0, 2.0, 3.0]}
    assert spread([4.0])["std"] == 0.0
    c = curves_over_seeds([{"flops": [0, 10], "val": [5.0, 3.0]}, {"flops": [0, 20], "val": [7.0, 3.0]}])
    assert c["val_mean"] == [6.0, 4.0]  # the second seed read at 10 FLOPs: halfway from 7 to 3
    assert c["val_std"][1] == pytest.approx(statistics.stdev([3.0, 5.0]))


@pytest.fixture(scope="module")
def two_seeds():
    """Two seeds at the tiny size, every baseline and both kinds of variants (~1 min)."""
    return compare("tiny", "world", seeds=(0, 1), eval_every=3, steps=6, ablations=True, upcycling=True,
                   lr_factors=(0.5, 1.0, 2.0))


def test_every_baseline_runs_for_the_same_compute_with_its_own_learning_rate(two_seeds):
    out = two_seeds
    assert RESULT_KEYS <= set(out) and out["seeds"] == [0, 1]
    sweep = out["scratch_lr_sweep"]
    assert [r["lr"] for r in sweep] == pytest.approx([1.5e-3, 3e-3, 6e-3])  # x the tiny preset's 3e-3
    best = min(sweep, key=lambda r: r["final_val"])["lr"]
    assert out["scratch_lr"] == best and all(r["scratch_lr"] == best for r in out["runs"])
    assert len(out["runs"][1]["scratch_lr_sweep"]) == 1  # the second seed trains the chosen rate only
    for run in out["runs"]:
        curves = run["curves"]
        assert curves[GROWN]["flops"] == sorted(curves[GROWN]["flops"])
        assert curves[GROWN]["flops"][-1] == pytest.approx(run["total_flops"])
        for baseline in (SCRATCH, SMALL):  # equal compute, to a step
            assert curves[baseline]["flops"][-1] == pytest.approx(run["total_flops"], rel=0.2)
        assert run["final_val"]["small"] == curves[SMALL]["val"][-1]


def test_savings_and_losses_are_reported_as_mean_and_std_over_seeds(two_seeds):
    out = two_seeds
    for key, per_run in (("saving_vs_scratch_percent", "saving_grown_vs_scratch"),
                         ("saving_vs_small_percent", "saving_grown_vs_small")):
        values = [100 * r[per_run] for r in out["runs"]]
        assert out[key]["mean"] == pytest.approx(statistics.mean(values))
        assert out[key]["std"] == pytest.approx(statistics.stdev(values))
    grown = out["curves"][GROWN]
    assert len(grown["val_mean"]) == len(grown["val_std"]) == len(grown["flops"])
    assert grown["val_mean"][-1] == pytest.approx(out["final_val"]["grown"]["mean"])
    assert set(out["train_val_gap"]) == {GROWN, SCRATCH, SMALL}


def test_variants_run_for_every_seed(two_seeds):
    out = two_seeds
    assert set(out["ablations"]) == {"plain G_stack copy", "placement interleave", "placement middle",
                                     "no symmetry-breaking noise", "width x1.5"}
    # tiny: 2 layers + 2 -> interleave and middle copy each layer once: the same model, run once
    assert out["ablations"]["placement middle"]["same_as"] == "placement interleave"
    for run in out["runs"]:
        abl = run["ablations"]
        assert abl["placement middle"]["val"] == abl["placement interleave"]["val"]
        # function-preserving growth starts where phase 2 ended; the plain copy does not
        assert abs(abl["no symmetry-breaking noise"]["start_val"] - abl["placement interleave"]["start_val"]) < 1e-4
        assert abl["plain G_stack copy"]["start_val"] != pytest.approx(abl["placement interleave"]["start_val"],
                                                                       abs=1e-3)
        up = run["upcycling"]
        # top-1 runs as many steps with one expert per token: fewer FLOPs
        assert up["top-1 routing"]["flops"][-1] < up["router init x10 (std 0.2)"]["flops"][-1]
        # the same dense model upcycled: every top-2 variant starts at the same loss
        starts = {round(v["val"][0], 5) for n, v in up.items() if n != "top-1 routing"}
        assert len(starts) == 1
    assert len(out["upcycling"]["top-1 routing"]["final_val"]["values"]) == 2


def test_the_notebook_figures_draw_a_comparison(two_seeds):
    import matplotlib

    matplotlib.use("Agg")
    from growlib import plots

    ax = plots.plot_compare_curves(two_seeds)
    assert len(ax.lines) >= 4 and len(ax.collections) == 4  # four paths, each with its shaded spread
    ax = plots.plot_lr_sweep(two_seeds)
    assert len(ax.lines[0].get_xdata()) == 3
    for kind in ("ablations", "upcycling"):
        ax = plots.plot_variants(two_seeds, kind)
        assert len(ax.get_yticklabels()) == len(two_seeds[kind])


def test_token_budget_scales_the_phases_together():
    out = compare("tiny", "bundled", seeds=(0,), eval_every=4, token_budget=12 * 8 * 64, lr_factors=(1.0,))
    assert out["runs"][0]["steps"] == [6, 3, 3]  # the tiny preset's 60:30:30 steps scaled to 12 steps of 8 x 64


@pytest.mark.parametrize("bad", [0, 100, True])
def test_bad_token_budget_fails_before_training(bad):
    with pytest.raises(ValueError, match="token budget"):
        compare("tiny", "bundled", seeds=(0,), token_budget=bad)


@pytest.mark.parametrize("kwargs, message", [({"seeds": (1, 1)}, "seeds \\[1, 1\\] are invalid"),
                                             ({"lr_factors": (1.0, -2.0)}, "learning-rate factors")])
def test_bad_seeds_and_factors_fail_before_training(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare("tiny", "bundled", **kwargs)


def test_phase_starts_recounted_for_older_results_files(two_seeds):
    from growlib.harness.compare import phase_start_flops, where_grown_path_reaches

    run = two_seeds["runs"][0]
    stored = phase_start_flops({"preset": "tiny"}, run)
    older = {k: v for k, v in run.items() if k != "phase_start_flops"}
    assert phase_start_flops({"preset": "tiny", "steps": None}, {**older, "steps": [60, 30, 30]})[1] > 0
    assert stored[0] == 0 < stored[1] < stored[2] < run["total_flops"]
    for baseline in (SCRATCH, SMALL):
        w = where_grown_path_reaches(two_seeds, run, baseline)
        assert w["flops"] is None or w["phase"] in (1, 2, 3)


@pytest.mark.parametrize("data", ["world", "tinystories"])
def test_the_committed_results_hold_three_seeds_and_every_key(data):
    result = load_results(data)
    assert RESULT_KEYS <= set(result) and len(result["seeds"]) >= 3
    assert len(result["scratch_lr_sweep"]) >= 3 and {"lr", "final_val"} <= set(result["scratch_lr_sweep"][0])
    for key in ("saving_vs_scratch_percent", "saving_vs_small_percent"):
        assert {"mean", "std"} <= set(result[key])
    assert {GROWN, SCRATCH, SMALL} <= set(result["curves"])
    assert results_path(data).name == {"world": "compare_bundled.json", "tinystories": "compare_tinystories.json"}[data]


def test_missing_results_say_how_to_make_them(tmp_path, monkeypatch):
    import growlib.harness.compare as cmp

    monkeypatch.setattr(cmp, "RESULTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m growlib compare --data world"):
        cmp.load_results("world")
    (tmp_path / "compare_bundled.json").write_text(json.dumps({"seeds": [0]}))
    assert cmp.load_results("world") == {"seeds": [0]}
