"""Every invalid configuration raises a ValueError naming the field, its value and what is accepted."""

import dataclasses

import pytest

from growlib.config import PRESETS, GrowthConfig, ModelConfig, TrainConfig, get_preset


@pytest.mark.parametrize("changes, field, accepted", [
    ({"n_heads": 5}, "n_heads", "a divisor of d_model=832"),
    ({"d_model": 60, "n_heads": 4, "d_mlp": 240}, "n_heads", "even head size"),  # head size 15
    ({"n_experts": 4, "top_k": 5}, "top_k", "1..n_experts=4"),
    ({"d_model": 0}, "d_model", "an integer > 0"),
    ({"n_layers": -1}, "n_layers", "an integer > 0"),
    ({"vocab_size": 2.5}, "vocab_size", "an integer > 0"),
    ({"ln_eps": 0.0}, "ln_eps", "a number > 0"),
    ({"router_mode": "random"}, "router_mode", "one of"),
])
def test_invalid_model_config(changes, field, accepted):
    with pytest.raises(ValueError) as err:
        ModelConfig(**changes)
    msg = str(err.value)
    assert f"ModelConfig.{field} = " in msg and accepted in msg


@pytest.mark.parametrize("changes, field", [
    ({"steps_phase1": 0}, "steps_phase1"), ({"steps_phase3": -5}, "steps_phase3"),
    ({"lr_phase2": 0.0}, "lr_phase2"), ({"lr_phase1": -1e-3}, "lr_phase1"),
    ({"batch_size": 0}, "batch_size"), ({"log_every": 0}, "log_every"), ({"seq_len": 0}, "seq_len"),
])
def test_invalid_train_config(changes, field):
    with pytest.raises(ValueError, match=f"TrainConfig.{field} = "):
        TrainConfig(**changes)


@pytest.mark.parametrize("changes, field", [
    ({"top_k": 9}, "top_k"), ({"scale_factor": 0.5}, "scale_factor"),
    ({"extra_layers": -1}, "extra_layers"), ({"placement": "top"}, "placement"), ({"noise": -0.1}, "noise"),
])
def test_invalid_growth_config(changes, field):
    with pytest.raises(ValueError, match=f"GrowthConfig.{field} = "):
        GrowthConfig(**changes)


def test_recipe_training_defaults_are_the_recipes():
    t = get_preset("recipe").train
    assert (t.steps_phase1, t.steps_phase2, t.steps_phase3, t.log_every) == (100, 100, 100, 10)
    assert (t.lr_phase1, t.lr_phase2, t.lr_phase3, t.batch_size) == (3e-4, 1e-4, 8e-5, 8)
    m, g = get_preset("recipe").model, get_preset("recipe").growth
    assert (m.d_model, m.n_layers, m.n_heads, m.d_mlp, m.vocab_size) == (832, 7, 8, 3328, 50257)
    assert (g.n_experts, g.top_k, g.scale_factor, g.extra_layers, g.placement) == (8, 2, 2.0, 4, "end")


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown preset 'big': accepted \['compare', 'cpu', 'recipe', 'sweep', 'tiny'\] "
                                         r"\(or an alias: seed = recipe\)"):
        get_preset("big")


def test_the_recipe_preset_keeps_its_first_name_as_an_alias():
    assert get_preset("seed") is get_preset("recipe")


def test_with_steps_shortens_every_phase():
    t = PRESETS["cpu"].train.with_steps(7)
    assert (t.steps_phase1, t.steps_phase2, t.steps_phase3) == (7, 7, 7)
    assert t.warmup_steps <= 7 and t.log_every <= 7


def test_preset_sequence_must_fit_the_model():
    p = PRESETS["tiny"]
    with pytest.raises(ValueError, match="train.seq_len"):
        dataclasses.replace(p, train=dataclasses.replace(p.train, seq_len=p.model.max_seq_len + 1))


def test_the_console_script_points_at_the_command_line():
    # pyproject's [project.scripts] entry must name a function that exists (pip builds the
    # `growlib` command from it; a stale module path only fails when a user types `growlib`)
    import importlib
    import pathlib
    import tomllib

    pyproject = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())
    target = pyproject["project"]["scripts"]["growlib"]
    module, func = target.split(":")
    assert callable(getattr(importlib.import_module(module), func)), target
