"""The MoE layer routes every token to exactly k experts, and upcycling is exact."""

import copy

import pytest
import torch
import torch.nn.functional as F

from growlib.config import PRESETS
from growlib.model import build_model
from growlib.moe import MoE, expert_mlps, switch_balance_loss
from growlib.train import make_optimizer
from growlib.upcycle import upcycle
from growlib.verify import check_preservation

from conftest import perturbed, small_config


def _moe(n_experts=4, top_k=2, mode="topk_softmax", d=16, h=32):
    layer = MoE(d, h, n_experts, top_k, mode)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return layer


def _reference(layer: MoE, x):
    """The Mixtral-style loop: for each expert, its tokens, its MLP, scatter-add back."""
    logits, idx, gates = layer.router(x)
    out = torch.zeros_like(x)
    for e in range(layer.n_experts):
        tok, slot = torch.where(idx == e)
        h = F.gelu(x[tok] @ layer.w_in[e] + layer.b_in[e])
        out.index_add_(0, tok, (h @ layer.w_out[e] + layer.b_out[e]) * gates[tok, slot, None])
    return out


@pytest.mark.parametrize("mode", ["topk_softmax", "softmax_topk"])
def test_matches_the_per_expert_loop(mode):
    layer = _moe(mode=mode)
    x = torch.randn(50, 16)
    torch.testing.assert_close(layer(x)[0], _reference(layer, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_gradients_match_the_per_expert_loop(top_k):
    # float64: the custom dispatch / unsort / grouped-matmul backward against plain autograd
    layer = _moe(top_k=top_k).double()
    x = torch.randn(40, 16, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(40, 16, dtype=torch.float64)
    params = [x, *layer.parameters()]
    ours = torch.autograd.grad((layer(x)[0] * upstream).sum(), params)
    ref = torch.autograd.grad((_reference(layer, x) * upstream).sum(), params)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_benchmark_loop_reference_computes_the_same_layer():
    from growlib.moe import expert_loop_reference

    layer = _moe()
    experts = [tuple(p[e].detach().clone() for p in (layer.w_in, layer.b_in, layer.w_out, layer.b_out))
               for e in range(layer.n_experts)]
    x = torch.randn(50, 16)
    torch.testing.assert_close(expert_loop_reference(layer, experts, x), layer(x)[0], rtol=1e-5, atol=1e-5)


def test_every_token_gets_k_distinct_experts_and_gates_sum_to_one():
    layer = _moe(n_experts=8, top_k=3)
    logits, idx, gates = layer.router(torch.randn(200, 16))
    assert idx.shape == (200, 3)
    assert all(len(set(row)) == 3 for row in idx.tolist())
    torch.testing.assert_close(gates.sum(-1), torch.ones(200))
    _, stats = layer(torch.randn(200, 16))
    assert int(stats.counts.sum()) == 200 * 3  # dropless: no token lost


def test_softmax_then_topk_does_not_renormalise():
    layer = _moe(mode="softmax_topk")
    _, _, gates = layer.router(torch.randn(30, 16))
    assert bool((gates.sum(-1) < 1).all())


def test_expert_mlps_equal_per_expert_mlps_with_an_empty_expert():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w_in, b_in = torch.randn(3, 4, 6, dtype=torch.float64, generator=gen), torch.randn(3, 6, dtype=torch.float64)
    w_out, b_out = torch.randn(3, 6, 4, dtype=torch.float64, generator=gen), torch.randn(3, 4, dtype=torch.float64)
    params = [t.requires_grad_() for t in (w_in, b_in, w_out, b_out)]
    counts = [3, 0, 7]  # expert 1 gets no tokens: its gradients must be exactly zero

    def ref():
        mlp = lambda rows, e: F.gelu(x[rows] @ w_in[e] + b_in[e]) @ w_out[e] + b_out[e]
        return torch.cat([mlp(slice(0, 3), 0), mlp(slice(3, 10), 2)])

    ours = expert_mlps(x, w_in, b_in, w_out, b_out, counts)
    torch.testing.assert_close(ours, ref(), rtol=1e-12, atol=1e-12)
    upstream = torch.randn(10, 4, dtype=torch.float64, generator=gen)
    g_ours = torch.autograd.grad((ours * upstream).sum(), [x, *params])
    g_ref = torch.autograd.grad((ref() * upstream).sum(), [x, *params])
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert float(g_ours[1][1].abs().max()) == 0.0 and float(g_ours[4][1].abs().max()) == 0.0


def test_balance_loss_on_a_hand_built_case():
    # 4 tokens, 2 experts, top-1: tokens 0,1,2 -> expert 0, token 3 -> expert 1
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    ids = torch.tensor([[0], [0], [0], [1]])
    # f = (3/4, 1/4), P = (0.65, 0.35): 2 * (0.75*0.65 + 0.25*0.35) = 1.15
    assert switch_balance_loss(probs, ids, 2).item() == pytest.approx(1.15)
    layer = MoE(2, 4, 2, 1)
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(2))
    x = torch.log(probs)  # router logits = x, so softmax(logits) = probs
    _, stats = layer(x)
    assert stats.balance.item() == pytest.approx(1.15, rel=1e-6)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_upcycling_is_exact(dtype, tol):
    dense = perturbed(build_model(small_config(), seed=2).to(dtype))
    before = copy.deepcopy(dense.state_dict())
    moe = upcycle(dense, 8, 2, seed=3)
    x = torch.randint(0, 97, (4, 32))
    res = check_preservation(dense, moe, x)
    assert res.logit_diff <= tol and res.overall <= tol
    assert all(torch.equal(before[k], v) for k, v in dense.state_dict().items())  # input untouched
    assert moe.cfg.n_experts == 8 and not dense.cfg.is_moe
    routing = []
    moe(x, routing=routing)
    counts = torch.stack([r.counts for r in routing])
    assert int((counts > 0).sum()) > 8  # the check really exercised several experts


def test_drop_upcycling_and_softmax_topk_are_not_exact():
    dense = perturbed(build_model(small_config(), seed=2))
    x = torch.randint(0, 97, (2, 32))
    assert check_preservation(dense, upcycle(dense, 4, 2, drop_ratio=0.5), x).logit_diff > 1e-3
    assert check_preservation(dense, upcycle(dense, 4, 2, router_mode="softmax_topk"), x).logit_diff > 1e-3


def test_after_one_step_experts_differ_and_router_learns():
    dense = build_model(small_config(), seed=2)
    moe = upcycle(dense, 4, 2, seed=3)
    x, y = torch.randint(0, 97, (2, 8, 32))
    opt = make_optimizer(moe, 1e-2, 0.0, "cpu")
    routing = []
    loss = moe(x, y, routing=routing) + 0.01 * torch.stack([r.balance for r in routing]).mean()
    loss.backward()
    layer = moe.moe_layers()[0]
    assert layer.router.weight.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(layer.w_in[0], layer.w_in[1])


def test_upcycling_the_seed_architecture_is_exact():
    # the seed's d_model, heads, MLP, layers, experts; vocab reduced to keep memory small
    cfg = PRESETS["recipe"].model.__class__(**{**PRESETS["recipe"].model.__dict__, "vocab_size": 512})
    dense = build_model(cfg, seed=0)
    moe = upcycle(dense, 8, 2)
    res = check_preservation(dense, moe, torch.randint(0, 512, (1, 64)))
    assert res.logit_diff <= 1e-5


def test_upcycle_rejects_a_moe():
    moe = upcycle(build_model(small_config()), 4, 2)
    with pytest.raises(ValueError, match="already a MoE"):
        upcycle(moe, 4, 2)
