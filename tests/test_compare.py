"""The comparison: reaching a target loss, savings over seeds, the task graph, a small sweep end to end, resuming."""

from __future__ import annotations

import json
import statistics

import pytest

from growlib.curves import Curve, curves_over_seeds, saving, separated, spread
from growlib.harness.compare import Setup, Sweep, compare, default_variants, load_results
from growlib.harness.compare.setup import Transition, grown_phase_spec
from growlib.harness.compare.tasks import Task, chosen_rate, lr_key, next_rate, ready

# the small sweep below is the suite's longest fixture: its tests share one worker, which builds it once
pytestmark = pytest.mark.xdist_group("compare_sweep")

ISSUE_KEYS = {"flops", "tokens_per_param", "seeds", "final_val", "scratch_lr_interior", "small_lr_interior",
              "saving_vs_scratch_percent", "saving_vs_small_percent", "saving_given_small_percent",
              "target_reached_in_phase"}


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


def test_a_budget_buys_the_same_compute_on_every_path():
    setup = Setup("sweep")
    flops = setup.budget_flops(20.0)
    # 20 tokens per active parameter of the grown architecture, trained from scratch
    assert setup.baseline_steps(flops, 3) * setup.train.batch_size * setup.train.seq_len == pytest.approx(
        20 * setup.grown_active_params(), rel=1e-3)
    grown = sum(n * setup.step_flops(p) for p, n in enumerate(setup.grown_steps(flops), start=1))
    assert grown == pytest.approx(flops, rel=2e-3)  # the phases scaled together, to a step
    assert setup.baseline_steps(flops, 1) * setup.step_flops(1) == pytest.approx(flops, rel=1e-3)


@pytest.mark.parametrize("transitions, pieces", [
    ({}, [(0, 190), (100, 190), (140, 190)]),  # one warm-up and one decay over the whole path
    ({3: Transition("fresh", "rewarm")}, [(0, 140), (100, 140), (0, 50)]),
    ({2: Transition("fresh", "rewarm"), 3: Transition("fresh", "rewarm")}, [(0, 100), (0, 40), (0, 50)]),  # the recipe's
])
def test_a_transition_that_rewarms_cuts_the_paths_schedule_there(transitions, pieces):
    setup = Setup("sweep")
    specs = [grown_phase_spec(setup, setup.train, (100, 40, 50), p, transitions) for p in (1, 2, 3)]
    assert [(s.lr_offset, s.lr_total) for s in specs] == pieces
    if not transitions:  # continuing: the rate does not jump at a boundary
        assert specs[1].lr(0) == pytest.approx(specs[0].lr(99), rel=0.02)
        assert specs[2].lr(0) == pytest.approx(specs[1].lr(39), rel=0.03)


def _done(keys_and_losses: dict) -> dict:
    return {k: {"final_val": v, "seconds": 1.0} for k, v in keys_and_losses.items()}


def test_the_first_seed_sweeps_until_the_best_rate_is_inside_then_the_others_train_it():
    setup = Setup("tiny", "world:500")  # tiny: dense rate 3e-3, first rates 1.5e-3, 3e-3, 6e-3
    start = {t.key for t in ready(setup, {}, (1.0,), (0, 1), {})}
    assert start == {f"1/0/{kind}@{lr}" for kind in ("grown", "scratch", "small") for lr in ("0.0015", "0.003", "0.006")}
    edge = _done({"1/0/scratch@0.0015": 2.0, "1/0/scratch@0.003": 1.9, "1/0/scratch@0.006": 1.8})
    assert next_rate(setup, {0.0015: 2.0, 0.003: 1.9, 0.006: 1.8}) == 0.012  # best at the top: one more, x2
    assert "1/0/scratch@0.012" in {t.key for t in ready(setup, edge, (1.0,), (0, 1), {})}
    assert chosen_rate(setup, edge, 1.0, "scratch", 0) is None  # not finished while at an edge
    inside = {**edge, **_done({"1/0/scratch@0.012": 1.85})}
    assert chosen_rate(setup, inside, 1.0, "scratch", 0) == 0.006
    assert "1/1/scratch@0.006" in {t.key for t in ready(setup, inside, (1.0,), (0, 1), {})}


def test_a_sweep_stops_growing_at_its_stated_limit():
    setup = Setup("tiny", "world:500", lr_max_points=4)
    falling = {0.0015: 2.0, 0.003: 1.9, 0.006: 1.8, 0.012: 1.7}  # still best at the top, 4 rates tried
    assert next_rate(setup, falling) is None
    done = _done({f"1/0/{lr_key('small', lr)}": v for lr, v in falling.items()})
    assert chosen_rate(setup, done, 1.0, "small", 0) == 0.012


def test_variants_wait_for_the_grown_path_at_its_chosen_rate():
    setup = Setup("tiny", "world:500")
    variants = {"phase3": (1.0,)}
    assert not any(":" in t.path for t in ready(setup, {}, (1.0,), (0, 1), variants))
    sweep = _done({"1/0/grown@0.0015": 1.2, "1/0/grown@0.003": 1.0, "1/0/grown@0.006": 1.1})
    after = {t.key for t in ready(setup, sweep, (1.0,), (0, 1), variants)}
    assert "1/1/grown@0.003" in after  # the other seed trains the chosen rate
    assert "1/0/dense_continued" in after and "1/0/phase3:no transition (control)" in after
    assert "1/1/dense_continued" not in after  # not before its own grown path is done
    assert Task.parse("3/2/phase3:fresh, re-warmed").key == "3/2/phase3:fresh, re-warmed"


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """Two budgets of the tiny preset, two seeds, every variant group: a full sweep in small."""
    folder = tmp_path_factory.mktemp("sweep")
    sweep = Sweep(Setup("tiny", "world:500"), (0.02, 0.05), (0, 1),
                  {"phase2": (0.02,), "phase3": (0.02,), "symmetry": (0.05,), "gentle": (0.05,)},
                  folder / "sweep.json", processes=1, cache=folder / "cache", say=lambda line: None)
    return sweep, sweep.run()


def test_every_budget_reports_what_notebook_04_reads(small_sweep):
    _, results = small_sweep
    assert [b["tokens_per_param"] for b in results["budgets"]] == [0.02, 0.05]
    for b in results["budgets"]:
        assert ISSUE_KEYS <= set(b) and b["seeds"] == [0, 1]
        assert set(b["final_val"]) == {"grown", "scratch", "small", "dense_continued", "moe"}
        assert b["scratch_lr_interior"] in (True, False) and b["scratch_lr_points"] >= 3
        assert set(b["target_reached_in_phase"]) == {"scratch", "small"}
        for path in ("grown", "scratch", "small"):
            assert b["curves"][path]["flops"][-1] == pytest.approx(b["flops"], rel=0.25)
        assert b["rise"]["phase3"]["mean"] >= 0.0 or abs(b["rise"]["phase3"]["mean"]) < 1e-3
    rise = results["post_growth_rise"]
    assert set(rise["phase3"]) >= {"default", "no transition (control)", "fresh, re-warmed (the recipe's)"}
    assert {"mean", "std"} <= set(rise["phase2"]["default"])
    assert set(results["symmetry"]) >= {"default", "split noise x10", "asymmetric split (0.8 / 0.2)"}
    assert results["seconds"] > 0 and results["grown_active_params"] > 0


def test_notebook_04s_figures_draw_from_a_sweep(small_sweep):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from growlib import sweep_figures
    from growlib.harness.compare.tasks import PHASE2_VARIANTS, PHASE3_VARIANTS

    _, results = small_sweep
    fig, axes = plt.subplots(2, 5)
    sweep_figures.plot_final_losses(results, axes[0, 0])
    sweep_figures.plot_savings(results, axes[0, 1])
    sweep_figures.plot_budget_curves(results["budgets"][0], axes[0, 2])
    sweep_figures.plot_rise(results, 2, tuple(PHASE2_VARIANTS), axes[0, 3])
    sweep_figures.plot_rise(results, 3, tuple(PHASE3_VARIANTS), axes[0, 4])
    sweep_figures.plot_clone_traces(results, axes[1, 0])
    for ax, kind in zip(axes[1, 1:], ("grown", "scratch", "small")):
        sweep_figures.plot_lr_sweeps(results, kind, ax)
    assert all(ax.lines or ax.collections or ax.patches for ax in axes.flat[:9])
    plt.close(fig)


def test_the_grown_path_preserves_the_function_at_each_transition(small_sweep):
    _, results = small_sweep
    for key, r in results["tasks"].items():
        if "/grown@" in key:
            assert r["boundaries"]["2"]["exact"] < 1e-4 and r["boundaries"]["3"]["exact"] < 1e-4
            assert abs(r["boundaries"]["3"]["after"] - r["boundaries"]["3"]["before"]) < 1e-4


def test_a_rerun_skips_every_finished_task_and_a_new_budget_runs_only_its_own(small_sweep, monkeypatch):
    import growlib.harness.compare.runner as runner

    sweep, results = small_sweep
    calls = []
    monkeypatch.setattr(runner, "run_task", lambda setup, key, cache, grown_lr=None:
                        calls.append(key) or {"final_val": 1.0, "seconds": 0.0})
    again = Sweep(sweep.setup, sweep.budgets, sweep.seeds, sweep.variants, sweep.path, cache=sweep.cache,
                  say=lambda line: None).run()
    assert calls == [] and again["tasks"] == results["tasks"]
    with pytest.raises(ValueError, match="holds a comparison with other settings"):
        Sweep(Setup("tiny", "world:600"), sweep.budgets, sweep.seeds, {}, sweep.path).load()


@pytest.mark.parametrize("kwargs, message", [({"seeds": (1, 1)}, r"seeds \[1, 1\] are invalid"),
                                             ({"budgets": (1.0, -2.0)}, "budgets"),
                                             ({"lr_factors": (1.0, -2.0)}, "learning-rate factors"),
                                             ({"preset": "huge"}, "unknown preset"),
                                             ({"variants": True, "transitions_at": 7.0},
                                              r"--transition-variants-at 7 is not one of the budgets"),
                                             ({"growths_at": 3.0}, "accepted only with --variants")])
def test_bad_input_fails_before_training(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        compare(**{"preset": "tiny", "data": "world:500", "json_path": str(tmp_path / "x.json"), **kwargs})


def test_variants_run_at_the_middle_and_largest_budgets_unless_placed():
    assert default_variants((20.0, 0.5, 3.0)) == {"phase2": (3.0,), "phase3": (3.0,), "symmetry": (20.0,),
                                                  "gentle": (20.0,)}
    placed = default_variants((0.25, 0.5, 1.25, 3.0, 20.0), transitions_at=0.5, growths_at=3.0)
    assert placed == {"phase2": (0.5,), "phase3": (0.5,), "symmetry": (3.0,), "gentle": (3.0,)}


def test_the_committed_sweep_holds_every_figure_the_issue_names():
    results = load_results()
    assert len(results["budgets"]) >= 4
    for b in results["budgets"]:
        assert ISSUE_KEYS <= set(b) and len(b["seeds"]) >= 3
        assert b["scratch_lr_interior"] and b["small_lr_interior"]
    crossing = results["crossover"]  # notebook 04's reading rests on where it is and on both sides of it
    assert crossing["between"] == [3.0, 20.0] and 3.0 < crossing["tokens_per_param"] < 20.0
    top = results["budgets"][-1]["final_val"]
    assert top["scratch"]["mean"] < top["small"]["mean"] and separated(top["scratch"], top["small"])
    assert {"phase2", "phase3"} <= set(results["post_growth_rise"])
    assert len([k for k in results["symmetry"] if k not in ("budget", "default")]) >= 2
    assert results["seconds"] > 0


def test_missing_results_say_how_to_make_them(tmp_path, monkeypatch):
    import growlib.harness.compare as cmp

    monkeypatch.setattr(cmp, "RESULTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m growlib compare --variants"):
        cmp.load_results("nothing.json")
    (tmp_path / "other.json").write_text(json.dumps({"seeds": [0]}))
    assert cmp.load_results("other.json") == {"seeds": [0]}
