"""The FLOPs comparison: reaching a target loss and the saving computed from it."""

import pytest

from growlib.harness.compare import Curve, compare, saving


def test_reach_interpolates_between_evaluations():
    c = Curve("x", [0, 10, 20], [5.0, 3.0, 2.0])
    assert c.reach(4.0) == pytest.approx(5.0)
    assert c.reach(2.0) == 20 and c.reach(1.0) is None and c.reach(6.0) == 0


def test_saving_positive_and_negative():
    scratch = Curve("s", [0, 100], [5.0, 2.0])
    fast = Curve("g", [0, 40, 100], [5.0, 2.0, 1.5])
    assert saving(fast, scratch) == pytest.approx(0.6)  # reached the scratch's final loss at 40% of its FLOPs
    slow = Curve("g", [0, 100], [5.0, 3.5])
    # never reached 2.0; the scratch run reached 3.5 at 50 FLOPs: growth cost 2x -> -50%
    assert saving(slow, scratch) == pytest.approx(-0.5)


def test_compare_runs_end_to_end_at_tiny_size():
    out = compare("tiny", "bundled", seeds=(0,), eval_every=3, steps=6)
    run = out["runs"][0]
    grown = run["curves"]["grown path (dense -> MoE -> grown)"]
    scratch = run["curves"]["grown architecture from scratch"]
    assert grown["flops"] == sorted(grown["flops"]) and grown["flops"][-1] == pytest.approx(run["total_flops"])
    assert scratch["flops"][-1] == pytest.approx(run["total_flops"], rel=0.2)  # equal compute, to a step
    assert set(out["summary"]) == {"saving_grown_vs_scratch", "saving_moe_vs_dense"}


def test_ablations_and_token_budget_at_tiny_size():
    out = compare("tiny", "bundled", seeds=(0,), eval_every=4, ablations=True, token_budget=12 * 8 * 64)
    run = out["runs"][0]
    assert run["steps"] == [6, 3, 3]  # the tiny preset's 60:30:30 steps scaled to 12 steps of 8 x 64 tokens
    abl = run["ablations"]
    assert set(abl) == {"plain G_stack copy", "placement interleave", "placement middle",
                        "no symmetry-breaking noise", "width x1.5"}
    # tiny: 2 layers + 2 -> interleave and middle copy each layer once: the same model, run once
    assert abl["placement middle"]["same_as"] == "placement interleave"
    assert abl["placement middle"]["val"] == abl["placement interleave"]["val"]
    # function-preserving growth starts where phase 2 ended; the plain copy does not
    assert abs(abl["no symmetry-breaking noise"]["start_val"] - abl["placement interleave"]["start_val"]) < 1e-4
    assert abl["plain G_stack copy"]["start_val"] != pytest.approx(abl["placement interleave"]["start_val"], abs=1e-3)


@pytest.mark.parametrize("bad", [0, 100, True])
def test_bad_token_budget_fails_before_training(bad):
    with pytest.raises(ValueError, match="token budget"):
        compare("tiny", "bundled", seeds=(0,), token_budget=bad)


def test_the_notebook_figures_draw_a_comparison():
    import matplotlib

    matplotlib.use("Agg")
    from growlib import plots

    out = compare("tiny", "bundled", seeds=(0,), eval_every=3, ablations=True, steps=6)
    run = out["runs"][0]
    ax = plots.plot_flops_curves(run)
    assert len(ax.lines) >= 3  # the three paths
    axes = plots.plot_ablations(run)
    assert len(axes[1].patches) == len(run["ablations"])  # one bar per variant


def test_phase_starts_recounted_for_older_results_files():
    from growlib.harness.compare import phase_start_flops, where_grown_path_reaches_scratch

    out = compare("tiny", "bundled", seeds=(0,), eval_every=3, steps=6)
    run = out["runs"][0]
    stored = phase_start_flops(out, run)
    older = {k: v for k, v in run.items() if k != "phase_start_flops"}
    assert phase_start_flops(out, older) == pytest.approx(stored, rel=1e-12)
    assert stored[0] == 0 < stored[1] < stored[2] < run["total_flops"]
    w = where_grown_path_reaches_scratch(out, run)
    assert w["flops"] is None or w["phase"] in (1, 2, 3)
