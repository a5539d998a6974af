"""Phase 1 -> 2: sparse upcycling of a dense GPT into a Mixture-of-Experts.

Taught in notebook 02 (Sparse Upcycling: Komatsuzaki et al., ICLR 2023).
Every expert is a copy of its layer's MLP, the router is new (N(0, 0.02^2)),
everything else is copied. With top-k-then-softmax gates (which sum to 1) and
no token dropped, the MoE computes the dense function: exactly in exact arithmetic, to
float rounding in fp32 (the gates' sum and the weighted sum of identical outputs round).
"""

from __future__ import annotations

import dataclasses

import torch

from .model import GPT, MLP
from .moe import MoE


@torch.no_grad()
def upcycle(dense: GPT, n_experts: int, top_k: int, router_mode: str = "topk_softmax",
            router_std: float = 0.02, drop_ratio: float = 0.0, seed: int = 0) -> GPT:
    """A new MoE model whose every expert copies the dense MLP; ``dense`` is left untouched.

    ``drop_ratio`` > 0 is Drop-Upcycling (Nakamura et al., ICLR 2025): that share
    of each expert's hidden neurons is re-initialised, differently per expert.
    It diversifies the experts and is *not* function-preserving.
    """
    if dense.cfg.is_moe:
        raise ValueError("upcycle: the model is already a MoE (n_experts="
                         f"{dense.cfg.n_experts}); accepted a dense model")
    if not 0.0 <= drop_ratio <= 1.0:
        raise ValueError(f"upcycle: drop_ratio={drop_ratio!r} is invalid: accepted a number in [0, 1]")
    cfg = dataclasses.replace(dense.cfg, n_experts=n_experts, top_k=top_k, router_mode=router_mode)
    ref = next(dense.parameters())
    moe = GPT(cfg, seed=None).to(device=ref.device, dtype=ref.dtype)
    gen = torch.Generator().manual_seed(seed)

    src = dense.state_dict()
    moe.load_state_dict({k: v for k, v in src.items() if ".mlp." not in k}, strict=False)
    moe.set_ln_eps(dense.ln_eps())
    for block_new, block_old in zip(moe.blocks, dense.blocks):
        mlp: MLP = block_old.mlp
        experts: MoE = block_new.mlp
        # nn.Linear stores [out, in]; the experts store [in, out] for x @ w
        experts.w_in.copy_(mlp.fc_in.weight.t().expand(n_experts, -1, -1))  # [E, d, h]
        experts.b_in.copy_(mlp.fc_in.bias.expand(n_experts, -1))  # [E, h]
        experts.w_out.copy_(mlp.fc_out.weight.t().expand(n_experts, -1, -1))  # [E, h, d]
        experts.b_out.copy_(mlp.fc_out.bias.expand(n_experts, -1))  # [E, d]
        router = torch.randn(experts.router.weight.shape, generator=gen, dtype=torch.float64) * router_std
        experts.router.weight.copy_(router)
        if drop_ratio > 0:
            _drop_reinit(experts, drop_ratio, gen, std=float(mlp.fc_in.weight.std()))
    return moe


def _drop_reinit(experts: MoE, ratio: float, gen: torch.Generator, std: float) -> None:
    """Re-initialise ``ratio`` of each expert's hidden neurons (their in- and out-weights)."""
    n_exp, d, h = experts.w_in.shape
    n_drop = int(round(ratio * h))
    for e in range(n_exp):
        idx = torch.randperm(h, generator=gen)[:n_drop]
        experts.w_in[e][:, idx] = (torch.randn(d, n_drop, generator=gen) * std).to(experts.w_in.dtype)
        experts.b_in[e][idx] = 0
        experts.w_out[e][idx, :] = (torch.randn(n_drop, d, generator=gen) * std).to(experts.w_out.dtype)
