"""Bilateral growth computes the same function, per layer, and its copies learn apart."""

import copy
import dataclasses

import pytest
import torch

from growlib.config import PRESETS
from growlib.grow import deepen, depth_plan, grow, widen, widened_config
from growlib.model import build_model
from growlib.train import make_optimizer
from growlib.upcycle import upcycle
from growlib.verify import check_preservation

from conftest import perturbed, small_config


def _models(dtype):
    dense = perturbed(build_model(small_config(), seed=1).to(dtype))
    moe = perturbed(upcycle(dense, 4, 2, seed=2))  # perturbed again: experts no longer identical
    return {"dense": dense, "moe": moe}


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("factor", [2, 1.5])
@pytest.mark.parametrize("extra", [4, 2])
@pytest.mark.parametrize("where", ["end", "interleave", "middle"])
def test_growth_is_exact_per_layer(dtype, tol, factor, extra, where):
    x = torch.randint(0, 97, (3, 32))
    for kind, model in _models(dtype).items():
        before = copy.deepcopy(model.state_dict())
        grown = grow(model, factor, extra, where=where, verbose=False)
        res = check_preservation(model, grown, x, where=where)
        assert res.logit_diff <= tol, (kind, res.as_dict())
        assert max(res.layer_diffs) <= tol, (kind, res.as_dict())
        assert len(res.layer_diffs) == 4 + extra and sum(res.inserted) == extra
        assert grown.cfg.d_model == int(48 * factor) and grown.cfg.n_layers == 4 + extra
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "input modified"


def test_width_x1_5_rescales_each_layernorm_eps():
    model = build_model(small_config())
    model.blocks[1].ln2.eps = 2e-5
    wide = widen(model, 1.5)
    s = 48 / 72
    assert wide.blocks[0].ln1.eps == pytest.approx(1e-5 * s)
    assert wide.blocks[1].ln2.eps == pytest.approx(2e-5 * s)
    assert widen(model, 2).blocks[0].ln1.eps == 1e-5  # duplication keeps eps


def test_heads_are_copied_whole():
    cfg = widened_config(small_config(), 2)
    assert (cfg.n_heads, cfg.head_dim, cfg.d_mlp) == (8, 12, 384)
    cfg = widened_config(small_config(), 1.5)
    assert (cfg.n_heads, cfg.head_dim, cfg.d_mlp) == (6, 12, 288)


def test_interleave_placement_is_the_documented_one():
    # 7 -> 11 interleaved: a copy after every other layer, starting at layer 0 (0, 2, 4, 6)
    assert depth_plan(7, 4, "interleave") == [0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6]
    assert depth_plan(7, 4, "end") == [0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6]
    assert depth_plan(7, 2, "middle") == [0, 1, 2, 2, 3, 3, 4, 5, 6]


@pytest.mark.parametrize("n_layers, extra", [(4, 4), (2, 2), (3, 3), (4, 8), (7, 4), (4, 2)])
def test_the_three_placements_are_three_different_models(n_layers, extra):
    # the cpu preset (4 + 4), tiny (2 + 2), compare (3 + 3): extra >= L used to give interleave == middle
    plans = {where: depth_plan(n_layers, extra, where) for where in ("end", "interleave", "middle")}
    assert len({tuple(p) for p in plans.values()}) == 3, plans
    assert all(len(p) == n_layers + extra and sorted(set(p)) == list(range(n_layers)) for p in plans.values())


def test_middle_copies_only_the_middle_and_interleave_every_layer_once_at_extra_equal_to_depth():
    assert depth_plan(4, 4, "interleave") == [0, 0, 1, 1, 2, 2, 3, 3]
    assert depth_plan(4, 4, "middle") == [0, 1, 1, 1, 2, 2, 2, 3]  # layers 1 and 2, twice each
    assert depth_plan(3, 3, "middle") == [0, 1, 1, 1, 1, 2]


def test_seed_growth_messages(capsys):
    grow(build_model(small_config(n_layers=7)), 2, 4)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[Bilateral Growth] Scaling x2 width, +4 layers..."
    assert out[1:5] == [f"  > Initialized Layer {i} as Gstack copy of Layer 6 (output projections zeroed: "
                        f"starts as the identity)" for i in range(7, 11)]
    assert out[5] == "✓ Growth Complete. New Config: 96 dim, 11 layers, 8 heads."


def test_plain_gstack_copy_is_not_preserving_and_says_so(capsys):
    model = perturbed(build_model(small_config(), seed=1))
    stacked = deepen(model, 2, preserve=False, verbose=True)
    assert "NOT function-preserving" in capsys.readouterr().out
    assert check_preservation(model, stacked, torch.randint(0, 97, (2, 32))).logit_diff > 1e-2


@pytest.mark.parametrize("kwargs, message", [
    ({"scale_factor": 0.5, "extra_layers": 2}, "accepted a number >= 1"),
    ({"scale_factor": 1.3, "extra_layers": 2}, "not a whole number"),  # 48 * 1.3 = 62.4
    ({"scale_factor": 1.125, "extra_layers": 2}, "n_heads = 4.5"),  # 54 dims, but 4.5 heads
    ({"scale_factor": 2, "extra_layers": -1}, "extra_layers=-1"),
    ({"scale_factor": 2, "extra_layers": 2, "where": "top"}, "placement 'top' is unknown"),
    ({"scale_factor": 2, "extra_layers": 2, "noise": -1}, "noise=-1"),
])
def test_bad_growth_requests_raise_before_building(kwargs, message, capsys):
    model = build_model(small_config())
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=message):
        grow(model, **kwargs)
    assert capsys.readouterr().out == ""  # nothing was started
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _train_and_compare_copies(noise: float, steps: int = 20) -> float:
    """Max over units of |copy_a - copy_b| of MLP input rows, after ``steps`` steps of training."""
    model = upcycle(build_model(small_config(), seed=1), 4, 2)
    grown = widen(model, 2, noise=noise, seed=0)
    opt = make_optimizer(grown, 3e-3, 0.0, "cpu")
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randint(0, 97, (2, 8, 32), generator=gen)
        opt.zero_grad()
        grown(x, y).backward()
        opt.step()
    w = grown.moe_layers()[0].w_in[0].detach()  # [d', h']: hidden unit j and its copy j + h
    h = w.shape[1] // 2
    return float((w[:, :h] - w[:, h:]).abs().max() / w.abs().max())


def test_symmetry_breaks_with_noise_and_not_without():
    # With the default noise the two copies of a hidden unit drift apart by far more than float
    # rounding (1e-6 relative); 1% of the weights' scale after 20 steps is a clear, stable margin.
    assert _train_and_compare_copies(noise=0.02) > 1e-2
    # Without noise every copy receives the same gradient: the copies stay identical, bit for bit.
    assert _train_and_compare_copies(noise=0.0) == 0.0


def test_seed_architecture_grows_exactly():
    # the seed's width, heads, MLP and depth (7 layers, x2, +4); vocab reduced to keep memory small
    cfg = dataclasses.replace(PRESETS["recipe"].model, vocab_size=512)
    dense = build_model(cfg, seed=0)
    grown = grow(dense, 2, 4, verbose=False)
    res = check_preservation(dense, grown, torch.randint(0, 512, (1, 64)))
    assert grown.cfg.d_model == 1664 and grown.cfg.n_heads == 16 and grown.cfg.n_layers == 11
    assert res.overall <= 1e-5, res.as_dict()
