"""Growth with one of its rules turned off: what each rule of growlib.grow protects (notebook 03's explorer).

:mod:`growlib.grow` states the exact rules and is left whole. Each function here starts
from its preserving result (or from its own helpers) and undoes one rule, so the learner
can compare the model grown by the rules with the model grown without one of them:

- ``final LayerNorm ÷k``: the final LayerNorm keeps its old scale and shift, so the tied
  head reads ``[e] x k`` against ``[l] x k`` and every logit is multiplied by k = floor(f);
- ``heads copied whole``: each head is made f times wider instead (its q, k, v duplicated
  inside it): the score scale 1/sqrt(head size) and the RoPE frequencies change;
- ``identity copies``: the new layers are plain G_stack copies, output projections kept;
- ``router ÷k``: the router's columns are copied instead of split, its scores multiplied by k;
- ``no noise on the router``: the router gets the readers' zero-sum split noise. Its
  input is duplicated, so the noise cancels and the function is kept: this "rule" only
  says the noise is useless there (the router's rows are experts, none of them copied).
"""

from __future__ import annotations

import dataclasses

import torch

from .grow import WidthMaps, _read_resid, _writer, deepen, widen
from .model import GPT, model_from_state

NO_RULE_OFF = "none"
RULES = {  # name shown on the explorer's buttons -> what turning it off does, in a few words
    NO_RULE_OFF: "every rule kept",
    "final LayerNorm ÷k": "every logit × k",
    "heads copied whole": "wider heads: another score scale, other RoPE frequencies",
    "identity copies": "plain G_stack copies: each new layer adds its update again",
    "router ÷k": "the router's scores × k",
    "no noise on the router": "zero-sum noise on a duplicated input cancels",
}


def unused_because(rule: str, model: GPT, scale_factor: float, extra_layers: int, noise: float) -> str | None:
    """Why turning ``rule`` off changes nothing at this setting, or None when it does something."""
    k = int(scale_factor)
    if rule in ("final LayerNorm ÷k", "router ÷k", "no noise on the router") and k == 1:
        return f"at width ×{scale_factor:g}, k = floor(f) = 1: nothing is divided or split by k"
    if rule in ("router ÷k", "no noise on the router") and not model.cfg.is_moe:
        return "a dense model has no router"
    if rule == "no noise on the router" and noise == 0:
        return "split noise 0: there is no noise to add"
    if rule == "heads copied whole" and scale_factor == 1:
        return "width ×1: no head is added"
    if rule == "identity copies" and extra_layers == 0:
        return "+0 layers: no layer is inserted"
    return None


def grow_without(model: GPT, rule: str, scale_factor: float, extra_layers: int, where: str = "end",
                 noise: float = 0.0, seed: int = 0) -> GPT:
    """``growlib.grow.grow`` with ``rule`` (a key of :data:`RULES`) turned off; ``model`` is untouched."""
    if rule not in RULES:
        raise ValueError(f"rule {rule!r} is unknown: accepted one of {list(RULES)}")
    wide = _wide_heads(model, scale_factor, noise, seed) if rule == "heads copied whole" and scale_factor != 1 \
        else widen(model, scale_factor, noise, seed)
    k = wide.cfg.d_model // model.cfg.d_model
    with torch.no_grad():
        if rule == "final LayerNorm ÷k":
            wide.ln_f.weight.mul_(k)  # undoes growlib.grow's scale=1/k
            wide.ln_f.bias.mul_(k)
        elif rule == "router ÷k":
            for layer in wide.moe_layers():
                layer.router.weight.mul_(k)  # [E, d']: each copy of a column now holds W_r, not W_r / k
        elif rule == "no noise on the router" and k > 1:
            _noisy_routers(model, wide, noise, seed)
    return deepen(wide, extra_layers, where, preserve=rule != "identity copies")


@torch.no_grad()
def _noisy_routers(model: GPT, wide: GPT, noise: float, seed: int) -> None:
    """Every router of ``wide`` split like q, k, v: W_r / k + zero-sum noise, random columns on the mean dims."""
    m = WidthMaps(model.cfg, wide.cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    for old, new in zip(model.moe_layers(), wide.moe_layers()):
        w = old.router.weight.detach().cpu()  # [E, d]
        new.router.weight.copy_(_read_resid(w, m, noise, gen))  # [E, d']


def wide_head_map(n_heads: int, head_dim: int, new_head_dim: int) -> torch.Tensor:
    """[n_heads x new_head_dim]: the old attention dim each new dim copies, the heads kept and made wider."""
    return (torch.arange(n_heads)[:, None] * head_dim + torch.arange(new_head_dim) % head_dim).reshape(-1)


@torch.no_grad()
def _wide_heads(model: GPT, factor: float, noise: float, seed: int) -> GPT:
    """``widen`` with the old number of heads, each ``factor`` times wider ([q_h, q_h] for x2), all else kept."""
    copied = widen(model, factor, noise, seed)
    old, cfg = model.cfg, dataclasses.replace(copied.cfg, n_heads=model.cfg.n_heads)
    if cfg.d_model % cfg.n_heads:
        raise ValueError(f"width ×{factor:g}: {cfg.d_model} dims do not split into {cfg.n_heads} wider heads")
    m = WidthMaps(old, copied.cfg)
    dims = wide_head_map(old.n_heads, old.head_dim, cfg.head_dim)  # [d']
    gen = torch.Generator().manual_seed(seed)
    src = {n: t.detach().cpu() for n, t in model.state_dict().items()}
    state = dict(copied.state_dict())
    for i in range(old.n_layers):
        p = f"blocks.{i}.attn."
        for proj in ("q", "k", "v"):  # rows: the wider heads' dims; columns: the residual, split
            state[p + proj + ".weight"] = _read_resid(src[p + proj + ".weight"][dims], m, noise, gen)
            state[p + proj + ".bias"] = src[p + proj + ".bias"][dims].clone()
        state[p + "out.weight"], state[p + "out.bias"] = _writer(src[p + "out.weight"], src[p + "out.bias"],
                                                                 m, dims, noise, gen)
    device = model.tok_emb.weight.device
    wide = model_from_state(cfg, {n: t.to(device) for n, t in state.items()}, copied.ln_eps())  # RoPE for the new head size
    wide.train(model.training)
    return wide


__all__ = ["NO_RULE_OFF", "RULES", "grow_without", "unused_because", "wide_head_map"]
