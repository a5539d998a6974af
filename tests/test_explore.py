"""Notebook 03's growth explorer can break things: each rule off shows its failure, each rule on preserves.

Every check goes through the explorer's own draw function (growlib.explore.growth_figure) and
reads what its figure draws: the line of the model grown by every rule and the line of the
model grown with one rule turned off.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from growlib.broken_growth import NO_RULE_OFF, RULES, grow_without, wide_head_map
from growlib.budget import phase_configs
from growlib.config import get_preset
from growlib.explore import NOISE_CHOICES, explorer_models, growth_explorer, growth_figure
from growlib.grow import grow
from growlib.model import build_model

from conftest import perturbed

FAILS, PRESERVES = 1e-2, 1e-4


@pytest.fixture(scope="module")
def moe():
    """A MoE of the tiny preset's shape, with biases, gains and router like a trained model's.

    Its q and k are scaled up 5x so that attention is as decisive as a trained model's (a fresh
    model's attention is nearly uniform, which hides what a change of the score scale does).
    """
    preset = get_preset("tiny")
    model = perturbed(build_model(phase_configs(preset.model, preset.growth)[2], seed=0))
    with torch.no_grad():
        for block in model.blocks:
            block.attn.q.weight.mul_(5)
            block.attn.k.weight.mul_(5)
    return model


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 512, (1, 64), generator=torch.Generator().manual_seed(0))


def _drawn(fig) -> dict[str, float]:
    """gid -> the largest value of that line, as the explorer's figure draws it (layers, then the logits)."""
    lines = {line.get_gid(): max(line.get_ydata()) for line in fig.axes[0].get_lines() if line.get_gid()}
    plt.close(fig)
    return lines


FAILING_RULES = ["final LayerNorm ÷k", "heads copied whole", "identity copies", "router ÷k"]


@pytest.mark.parametrize("rule", FAILING_RULES)
@pytest.mark.parametrize("factor", [2.0, 3.0])
def test_each_rule_turned_off_breaks_the_function_and_kept_preserves_it(moe, tokens, rule, factor):
    drawn = _drawn(growth_figure(moe, tokens, factor, 2, "end", 0.02, rule_off=rule))
    assert drawn["kept"] <= PRESERVES, drawn
    assert drawn["broken"] >= FAILS, drawn


@pytest.mark.parametrize("where", ["end", "interleave", "middle"])
def test_plain_copies_fail_at_every_placement(moe, tokens, where):
    drawn = _drawn(growth_figure(moe, tokens, 1.0, 2, where, 0.0, rule_off="identity copies"))
    assert drawn["kept"] <= PRESERVES and drawn["broken"] >= FAILS, drawn


def test_at_width_one_and_a_half_k_is_one_so_the_final_layernorm_is_not_divided(moe, tokens):
    # x1.5: d' = 1 x d + d/2 mean dims, k = floor(1.5) = 1: there is nothing to forget
    drawn = _drawn(growth_figure(moe, tokens, 1.5, 2, "end", 0.02, rule_off="final LayerNorm ÷k"))
    assert drawn["broken"] <= PRESERVES, drawn
    assert _drawn(growth_figure(moe, tokens, 1.5, 2, "end", 0.02, rule_off="heads copied whole"))["broken"] >= FAILS


def test_router_noise_cancels_on_the_duplicated_input(moe, tokens):
    # the honest result: zero-sum noise on a duplicated input leaves the scores as they were
    noisy = grow_without(moe, "no noise on the router", 2.0, 0, noise=0.02)
    kept = grow(moe, 2.0, 0, noise=0.02, verbose=False)
    assert not torch.equal(noisy.blocks[0].mlp.router.weight, kept.blocks[0].mlp.router.weight)  # it was added
    drawn = _drawn(growth_figure(moe, tokens, 2.0, 2, "end", 0.02, rule_off="no noise on the router"))
    assert drawn["kept"] <= PRESERVES and drawn["broken"] <= PRESERVES, drawn


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_split_noise_from_exactly_zero_preserves_and_only_sets_how_far_the_copies_start(moe, tokens, noise):
    fig = growth_figure(moe, tokens, 2.0, 2, "end", noise)
    title = fig.axes[0].get_title()
    drawn = _drawn(fig)
    assert set(drawn) == {"kept"} and drawn["kept"] <= PRESERVES
    assert ("clones forever" in title) == (noise == 0.0), title


def test_wide_heads_pair_each_coordinate_with_its_own_copy():
    # 2 heads of 4 made 8 wide: head 0 reads old dims 0-3 twice, head 1 old dims 4-7 twice
    assert wide_head_map(2, 4, 8).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]
    model = build_model(phase_configs(get_preset("tiny").model, get_preset("tiny").growth)[2])
    wide = grow_without(model, "heads copied whole", 2.0, 0)
    assert (wide.cfg.n_heads, wide.cfg.head_dim) == (model.cfg.n_heads, 2 * model.cfg.head_dim)


def test_unknown_rule_is_refused(moe):
    with pytest.raises(ValueError, match="accepted one of"):
        grow_without(moe, "forget everything", 2.0, 0)


def _controls(box) -> list:
    import ipywidgets as widgets

    found = []
    for child in box.children:
        found += _controls(child) if isinstance(child, widgets.Box) else [child]
    return found


def test_the_explorer_offers_every_rule_and_a_split_noise_of_exactly_zero(moe, tokens, monkeypatch):
    monkeypatch.delenv("GROWLIB_HEADLESS", raising=False)
    box = growth_explorer(moe, tokens, get_preset("tiny").growth)
    controls = {getattr(c, "description", ""): c for c in _controls(box)}
    assert 0.0 in controls["split noise"].options and 0.0 in NOISE_CHOICES
    rules = [value for _, value in controls["turn off"].options]
    assert rules[0] == NO_RULE_OFF and set(rules) == set(RULES) and len(rules) - 1 >= 4
    assert "model" not in controls  # the session's model fits: nothing else is offered
    plt.close("all")


def test_a_model_too_large_is_named_and_the_sizes_that_run_are_offered(tokens, monkeypatch):
    recipe = get_preset("recipe")
    big = build_model(phase_configs(recipe.model, recipe.growth)[2], device="meta")  # 371.6 M: shapes only
    models, note = explorer_models(big, tokens)
    assert "too large" in note and "371.6 M" in note
    assert [name.split(" (")[0] for name in models] == ["random MoE of the cpu preset's shape",
                                                        "random MoE of the tiny preset's shape"]
    assert all(model is not big and sum(p.numel() for p in model.parameters()) <= 20e6 for model, _ in models.values())
    monkeypatch.delenv("GROWLIB_HEADLESS", raising=False)
    box = growth_explorer(big, tokens, recipe.growth)
    controls = {getattr(c, "description", ""): c for c in _controls(box)}
    assert list(controls["model"].options) == list(models)
    assert "too large" in box.children[0].value
    plt.close("all")


def test_headless_the_explorer_draws_its_starting_figure_and_no_notice(monkeypatch, capsys):
    import ipywidgets as widgets

    from growlib.explore import explorer

    monkeypatch.setenv("GROWLIB_HEADLESS", "1")
    drawn = []

    def draw(x):
        drawn.append(x)
        return plt.figure()

    assert explorer(draw, {"x": widgets.IntSlider(value=3)}) is None
    assert drawn == [3]  # once, at the control's starting value
    assert "GROWLIB_HEADLESS" not in capsys.readouterr().out
