"""Symmetry breaking: widened copies without split noise stay exact clones through training; with it they differ."""

import pytest
import torch

import growlib as gl


def test_clone_pairs_follow_the_widening_map():
    assert gl.clone_pairs(4, 8).tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert gl.clone_pairs(4, 6).tolist() == [[0, 4], [1, 5]]  # x1.5: the first half is copied
    with pytest.raises(ValueError, match="hidden sizes 8 -> 4"):
        gl.clone_pairs(8, 4)


def _trained_wide(model, noise, steps=3):
    wide = gl.widen(model, 2, noise=noise)
    opt = gl.make_optimizer(wide, 1e-3, 0.1, "cpu")
    for step in range(steps):
        gen = torch.Generator().manual_seed(step)
        gl.train_step(wide, opt, tuple(torch.randint(0, model.cfg.vocab_size, (2, 4, 16), generator=gen)))
    return wide


@pytest.mark.parametrize("moe", [False, True])
def test_without_noise_copies_stay_bitwise_clones_and_noise_breaks_them(moe):
    torch.manual_seed(0)
    model = gl.build_model(gl.get_preset("tiny").model, seed=1)
    if moe:
        model = gl.upcycle(model, 4, 2)
    pairs = gl.clone_pairs(model.cfg.d_mlp, 2 * model.cfg.d_mlp)
    clones = _trained_wide(model, noise=0.0)
    assert gl.max_clone_difference(clones, pairs) == 0.0
    assert gl.clone_similarity(clones, pairs) == pytest.approx(1.0, abs=1e-6)
    noisy = _trained_wide(model, noise=0.02)
    assert gl.max_clone_difference(noisy, pairs) > 1e-4
    assert gl.clone_similarity(noisy, pairs) < 1.0 - 1e-6


def test_upcycled_experts_start_identical_and_the_router_moves_them_apart():
    dense = gl.build_model(gl.get_preset("tiny").model, seed=1)
    moe = gl.upcycle(dense, 4, 2)
    sim = gl.expert_similarity(moe)
    assert sim.shape == (dense.cfg.n_layers, 4, 4)
    assert torch.allclose(sim, torch.ones_like(sim), atol=1e-6)
    opt = gl.make_optimizer(moe, 1e-3, 0.1, "cpu")
    for step in range(3):
        gen = torch.Generator().manual_seed(step)
        gl.train_step(moe, opt, tuple(torch.randint(0, dense.cfg.vocab_size, (2, 4, 16), generator=gen)))
    assert gl.mean_expert_similarity(moe) < 1.0 - 1e-6
    with pytest.raises(ValueError, match="no MoE layers"):
        gl.expert_similarity(dense)


@pytest.mark.parametrize("moe", [False, True])
def test_noise_on_the_readers_alone_gives_a_unit_and_its_copy_the_same_gradient(moe):
    # their pre-activations are equal (the input is duplicated); only the writers' noise makes the gradients differ
    from growlib.symmetry import clone_gradient_gap, with_writers_of

    model = gl.build_model(gl.get_preset("tiny").model, seed=1)
    model = gl.upcycle(model, 4, 2) if moe else model
    batch = tuple(torch.randint(0, model.cfg.vocab_size, (2, 4, 16), generator=torch.Generator().manual_seed(0)))
    pairs = gl.clone_pairs(model.cfg.d_mlp, 2 * model.cfg.d_mlp)
    plain, noisy, louder = (gl.widen(model, 2, noise=n) for n in (0.0, 0.02, 0.2))
    assert clone_gradient_gap(plain, pairs, batch) == 0.0
    assert clone_gradient_gap(with_writers_of(noisy, plain), pairs, batch) < 1e-5  # rounding only
    writers = clone_gradient_gap(with_writers_of(plain, noisy), pairs, batch)
    assert writers > 1e-3
    assert clone_gradient_gap(with_writers_of(plain, louder), pairs, batch) == pytest.approx(10 * writers, rel=0.3)
    # the incoming weights' difference is the readers' noise alone
    assert gl.clone_similarity(with_writers_of(plain, noisy), pairs) == 1.0
    assert gl.clone_similarity(with_writers_of(noisy, plain), pairs) == gl.clone_similarity(noisy, pairs)
