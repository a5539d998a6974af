"""AdamW's state carried through a transition: the grown model's first step is the small model's, carried.

Train a small model a few steps, then take one more step two ways: on the small model, and on
its widening (noise 0) with the state carried by growlib.carry. The widened model after its step
must compute what the small model computes after its own, and its weights must be the small
model's new weights, widened. Exact in float64 once AdamW's ε is negligible (the copies' ε would
have to be ε/k: with the default 1e-8 the two differ by ~3e-5 after one step, in float64 too).
"""

from __future__ import annotations

import pytest
import torch

from growlib import carry
from growlib.grow import grow, widen
from growlib.model import build_model
from growlib.train import PhaseSpec, make_optimizer, train_step
from growlib.upcycle import upcycle
from growlib.verify import check_preservation

from conftest import perturbed, small_config

NO_CLIP = PhaseSpec(grad_clip=1e9)  # clipping sees the new model's norm: off, so the comparison is exact


def _without_eps(opt):
    for group in opt.param_groups:
        group["eps"] = 1e-30
    return opt


def _trained(model, steps: int = 3, seed: int = 0, lr: float = 3e-3, eps: bool = True):
    gen = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, lr, 0.1, "cpu")
    if not eps:
        _without_eps(opt)
    for _ in range(steps):
        batch = tuple(torch.randint(0, model.cfg.vocab_size, (2, 4, 32), generator=gen))
        train_step(model, opt, batch, NO_CLIP)
    return opt, gen


def _one_step(model, opt, gen):
    train_step(model, opt, tuple(torch.randint(0, model.cfg.vocab_size, (2, 4, 32), generator=gen)), NO_CLIP)


@pytest.mark.parametrize("moe", [False, True], ids=["dense", "moe"])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-3)])
def test_a_widened_models_first_step_is_the_small_models_step_carried(moe, dtype, tolerance):
    exact = dtype == torch.float64  # float64 and no ε: exact; float32 with the default ε: close
    small = perturbed(build_model(small_config(), seed=1))
    if moe:
        small = perturbed(upcycle(small, 4, 2, seed=1))
    small = small.to(dtype)
    opt, gen = _trained(small, eps=not exact)
    state = carry.adamw_state(small, opt)
    wide = widen(small, 2.0, noise=0.0)
    scales = carry.growth_lr_scales(wide, small.cfg)
    assert {round(v, 6) for v in scales.values()} == {1.0, 0.5}  # split tensors (and ln_f) at half the rate
    wide_opt = make_optimizer(wide, 3e-3, 0.1, "cpu", scales)
    if exact:
        _without_eps(wide_opt)
    carry.load_adamw_state(wide, wide_opt, carry.through_growth(state, small.cfg, wide.cfg, 0, "end"))
    tokens = torch.randint(0, 97, (2, 32), generator=gen)
    _one_step(small, opt, torch.Generator().manual_seed(7))
    _one_step(wide, wide_opt, torch.Generator().manual_seed(7))
    after = check_preservation(small, wide, tokens)
    assert after.overall < tolerance, after.overall
    if exact:  # with ε, an entry whose sqrt(v) is near ε moves by up to lr less or more than its widening
        expected = widen(small, 2.0, noise=0.0)  # the small model's new weights, widened
        for (name, got), want in zip(wide.state_dict().items(), expected.state_dict().values()):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name)


def test_a_fresh_optimizer_does_not_take_that_step():
    """The control: the same step with a fresh AdamW moves the widened model off the small one."""
    small = perturbed(build_model(small_config(), seed=1))
    opt, gen = _trained(small)
    wide = widen(small, 2.0, noise=0.0)
    fresh = make_optimizer(wide, 3e-3, 0.1, "cpu")
    _one_step(small, opt, torch.Generator().manual_seed(7))
    _one_step(wide, fresh, torch.Generator().manual_seed(7))
    assert check_preservation(small, wide, torch.randint(0, 97, (2, 32))).overall > 1e-1  # measured: 0.8


def test_inserted_blocks_start_with_their_sources_v_and_no_mean():
    small = build_model(small_config(), seed=1)
    opt, _ = _trained(small)
    state = carry.adamw_state(small, opt)
    grown = grow(small, 2.0, 2, noise=0.0, verbose=False)
    carried = carry.through_growth(state, small.cfg, grown.cfg, 2, "end")
    assert set(carried) == {n for n, _ in grown.named_parameters()}
    last = small.cfg.n_layers - 1
    for suffix in ("attn.out.weight", "mlp.fc_in.weight"):
        copy, source = carried[f"blocks.{last + 1}.{suffix}"], carried[f"blocks.{last}.{suffix}"]
        assert float(copy["exp_avg"].abs().max()) == 0.0
        assert torch.equal(copy["exp_avg_sq"], source["exp_avg_sq"]) and copy["exp_avg_sq"].abs().sum() > 0
        assert copy["step"] == source["step"] == 3


def test_upcycled_experts_share_the_dense_moments():
    dense = build_model(small_config(), seed=1)
    opt, _ = _trained(dense)
    state = carry.through_upcycling(carry.adamw_state(dense, opt), 4)
    fc_in = carry.adamw_state(dense, opt)["blocks.0.mlp.fc_in.weight"]
    w_in = state["blocks.0.mlp.w_in"]
    assert w_in["exp_avg"].shape == (4, 48, 192)  # [E, d, h]: the experts' [in, out] layout
    torch.testing.assert_close(w_in["exp_avg"][2], fc_in["exp_avg"].t() / 4)
    torch.testing.assert_close(w_in["exp_avg_sq"][3], fc_in["exp_avg_sq"].t() / 16)
    assert "blocks.0.mlp.router.weight" not in state  # new: it starts fresh
    moe = upcycle(dense, 4, 2)
    moe_opt = make_optimizer(moe, 3e-3, 0.1, "cpu")
    carry.load_adamw_state(moe, moe_opt, state)  # every shape fits the MoE's parameters
    assert all(moe_opt.state[p]["exp_avg"].shape == p.shape for p in moe.parameters() if p in moe_opt.state)
