"""02's explorer: each rule toggle, driven through the explorer's own draw function, breaks exactness."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

import growlib as gl
from growlib import explore_upcycling as eu


def _new_lab():
    dense = gl.build_model(gl.get_preset("tiny").model, seed=3)
    with torch.no_grad():  # a trained model's biases are not zero
        for name, p in dense.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    tokens = torch.randint(0, dense.cfg.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    return eu.UpcyclingLab(dense, 4, tokens)


@pytest.fixture(scope="module")
def lab():
    return _new_lab()


def _drawn(lab, top_k, **toggles):
    """The explorer's figure for these control values, and the check it shows (its title's setting)."""
    fig = eu.upcycling_rules_figure(lab, top_k, **toggles)
    rules = eu.Rules(**toggles)
    check = lab.checks[(rules, top_k)]
    plt.close(fig)
    return fig, check


@pytest.mark.parametrize("toggle", ["renormalise", "copy_experts", "dropless"])
def test_each_toggle_breaks_exactness_off_and_keeps_it_on(lab, toggle):
    _, kept = _drawn(lab, 2, **{toggle: True})
    fig, broken = _drawn(lab, 2, **{toggle: False})
    assert kept.overall <= 1e-4, (toggle, kept.overall)
    assert broken.overall >= 1e-2, (toggle, broken.overall)
    title = fig.axes[0].get_title()
    assert f"{broken.logit_diff:.1e}" in title and "NOT exact" in title  # the title is the figure's own number


def test_the_figure_shows_the_broken_rule_next_to_every_rule_kept(lab):
    fig, _ = _drawn(lab, 2, renormalise=False)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert eu.Rules(renormalise=False).label() in labels and eu.EVERY_RULE.label() in labels


def test_without_renormalisation_nothing_is_lost_at_k_equal_to_e(lab):
    _, check = _drawn(lab, 4, renormalise=False)  # the softmax over all 4 experts keeps them all
    assert check.overall <= 1e-4


def test_a_capacity_drops_assignments_beyond_it_in_token_order():
    router = gl.moe.Router(4, 2, 1)
    with torch.no_grad():
        router.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))
    x = torch.tensor([[1.0, 0, 0, 0]] * 3 + [[-1.0, 0, 0, 0]])  # three tokens want expert 0, one expert 1
    _, idx, gates = eu.CapacityRouter(router, capacity_factor=1.0)(x)  # capacity ceil(4 / 2) = 2 each
    assert idx[:, 0].tolist() == [0, 0, 0, 1]
    assert gates[:, 0].tolist() == [1.0, 1.0, 0.0, 1.0]


def test_the_static_figure_marks_every_rule_turned_off_as_not_exact(lab):
    fig = eu.rule_failures_figure(lab, 2)
    texts = [t.get_text() for t in fig.axes[0].texts]
    plt.close(fig)
    assert sum("not exact" in t for t in texts) == 3 and sum("(exact)" in t for t in texts) == 1


def test_a_model_too_large_is_said_so_with_the_presets_that_run():
    recipe = gl.build_model(gl.get_preset("recipe").model, device="meta")
    big = eu.UpcyclingLab(recipe, 8, torch.zeros(1, 1, dtype=torch.long))
    assert not big.fits()
    assert "cpu" in eu.presets_that_fit() and "recipe" not in eu.presets_that_fit()
    assert "cpu" in big.too_large()


def test_headless_the_cell_shows_the_explorers_first_figure_and_no_notice(lab, monkeypatch, capsys):
    monkeypatch.setenv("GROWLIB_HEADLESS", "1")
    plt.close("all")
    assert eu.upcycling_explorer(lab, 2) is None
    shown = plt.get_fignums()  # the inline backend shows the open figure at the cell's end
    assert len(shown) == 1 and "NOT exact" in plt.figure(shown[0]).axes[0].get_title()
    plt.close("all")
    assert capsys.readouterr().out == ""  # no "GROWLIB_HEADLESS is set" in committed outputs


def test_in_a_browser_the_explorer_has_k_and_three_rule_toggles(monkeypatch):
    widgets = pytest.importorskip("ipywidgets")
    monkeypatch.setenv("GROWLIB_HEADLESS", "")
    lab = _new_lab()  # nothing checked yet: every check below was made by a redraw
    box = eu.upcycling_explorer(lab, 2)
    controls = [w for row in box.children[:-1] for w in row.children]
    assert [type(w) for w in controls] == [widgets.IntSlider] + [widgets.ToggleButtons] * 3
    assert controls[1].value is False  # it opens with the gates not renormalised
    controls[1].value = True  # every rule kept
    for name, toggle in zip(("copy_experts", "dropless"), controls[2:]):  # each redraw checks its setting
        toggle.value = False
        assert (eu.Rules(**{name: False}), 2) in lab.checks
        toggle.value = True
    plt.close("all")
