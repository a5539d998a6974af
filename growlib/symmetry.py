"""Symmetry breaking, measured: how far copies have moved apart (upcycled experts in notebook 02, widened units in 03).

Upcycling makes every expert a copy of one MLP: :func:`expert_similarity` is 1 for every
pair right after it, and only the router, sending different tokens to different experts,
can move them apart.

Widening copies every hidden unit of an MLP (or of each expert): unit ``j`` of the
grown layer and its copy read the same input, the residual's duplicated halves, through
columns that share the original column evenly. With no split noise the two are exact
clones: they receive the same gradient, take the same AdamW step, and stay clones at
every later step, so the grown layer never computes more than the small one did.
Zero-sum split noise on the readers makes their incoming weights differ from the start,
but leaves their pre-activations, and so their gradients, equal; the noise on the writers
(their outgoing columns) is what gives them different gradients, by 2 gelu'(h) (m^T g)
[u, u] (:func:`clone_gradient_gap`, :func:`with_writers_of`). Whether training then moves
them apart is what :func:`clone_similarity` measures.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .grow import copy_map
from .model import GPT
from .moe import MoE


def clone_pairs(old_hidden: int, new_hidden: int) -> torch.Tensor:
    """[P, 2]: (unit, its copy) for every hidden unit that widening from ``old_hidden`` to ``new_hidden`` added.

    Read from growlib.grow's own map of new hidden units to old ones.
    """
    if not 0 < old_hidden <= new_hidden:
        raise ValueError(f"hidden sizes {old_hidden} -> {new_hidden} are invalid: accepted 0 < old <= new")
    copies = torch.arange(old_hidden, new_hidden)
    return torch.stack([copy_map(old_hidden, new_hidden)[copies], copies], dim=1)


def _incoming(block_mlp) -> torch.Tensor:
    """[groups, h, d]: each hidden unit's incoming weights (one group per expert; one for a dense MLP)."""
    if isinstance(block_mlp, MoE):
        return block_mlp.w_in.transpose(1, 2)  # w_in: [E, d, h] -> [E, h, d]
    return block_mlp.fc_in.weight.unsqueeze(0)  # [h, d] -> [1, h, d]


@torch.no_grad()
def clone_similarity(model: GPT, pairs: torch.Tensor) -> float:
    """Mean cosine similarity of each unit's incoming weights with its copy's, over every MLP and expert.

    1.0 exactly while the copies are clones; it falls as they learn apart.
    """
    sims = []
    for block in model.blocks:
        w = _incoming(block.mlp).float()  # [groups, h, d]
        sims.append(F.cosine_similarity(w[:, pairs[:, 0]], w[:, pairs[:, 1]], dim=-1).reshape(-1))  # [groups * P]
    return torch.cat(sims).mean().item()


@torch.no_grad()
def expert_similarity(model: GPT) -> torch.Tensor:
    """[layers, E, E]: cosine similarity of every two experts' weights (w_in and w_out flattened), per MoE layer."""
    layers = model.moe_layers()
    if not layers:
        raise ValueError("expert_similarity needs a MoE model: this model has no MoE layers")
    sims = []
    for moe in layers:
        w = torch.cat([moe.w_in.flatten(1), moe.w_out.flatten(1)], dim=1).float()  # [E, 2 d h]
        w = F.normalize(w, dim=1)
        sims.append(w @ w.T)  # [E, E]
    return torch.stack(sims)


def mean_expert_similarity(model: GPT) -> float:
    """The mean of :func:`expert_similarity` over every pair of distinct experts of every layer."""
    sim = expert_similarity(model)  # [L, E, E]
    off = ~torch.eye(sim.shape[-1], dtype=torch.bool)
    return sim[:, off].mean().item()


@torch.no_grad()
def max_clone_difference(model: GPT, pairs: torch.Tensor) -> float:
    """Largest |w_unit - w_copy| over every incoming weight of every pair: 0.0 while they are exact clones."""
    diffs = []
    for block in model.blocks:
        w = _incoming(block.mlp)  # [groups, h, d]
        diffs.append((w[:, pairs[:, 0]] - w[:, pairs[:, 1]]).abs().max().item())
    return max(diffs)


def _writers(model: GPT) -> dict[str, torch.Tensor]:
    """The weights that write into the residual and read copied units: attention out-projections, MLP out (every expert's)."""
    return {n: p for n, p in model.named_parameters()
            if n.endswith(("attn.out.weight", "mlp.fc_out.weight", "mlp.w_out"))}


@torch.no_grad()
def with_writers_of(model: GPT, other: GPT) -> GPT:
    """A copy of ``model`` whose writers (:func:`_writers`) are ``other``'s: the same widening, the split noise moved.

    ``model`` widened with noise and ``other`` without gives noise on the readers only; the other
    way round, on the writers only. Both are exact: either split sums to the old weight.
    """
    mixed = copy.deepcopy(model)
    for name, p in _writers(mixed).items():
        p.copy_(_writers(other)[name])
    return mixed


def clone_gradient_gap(model: GPT, pairs: torch.Tensor, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """max |∂L/∂w_j - ∂L/∂w_j'| / max |∂L/∂w_j| over every unit and its copy, every MLP and expert, on one batch.

    L is the next-token loss on ``batch`` (inputs, targets); ``model``'s own gradients are left as they were.
    """
    grads = torch.autograd.grad(model(*batch), [_incoming_param(b.mlp) for b in model.blocks])
    gaps, scales = [], []
    for block, g in zip(model.blocks, grads):
        g = g.transpose(1, 2) if isinstance(block.mlp, MoE) else g.unsqueeze(0)  # [groups, h, d], as _incoming
        gaps.append((g[:, pairs[:, 0]] - g[:, pairs[:, 1]]).abs().max())
        scales.append(g.abs().max())
    return (max(gaps) / max(scales)).item()


def _incoming_param(block_mlp) -> torch.nn.Parameter:
    return block_mlp.w_in if isinstance(block_mlp, MoE) else block_mlp.fc_in.weight


@torch.no_grad()
def reinit_copies(model: GPT, old_hidden: int, ratio: float, seed: int = 0) -> GPT:
    """Drop-Upcycling's idea applied to widening: re-initialise ``ratio`` of the copied units of every MLP.

    In every MLP (every expert of a MoE) that a share ``ratio`` of the units widening added
    (indices ``old_hidden`` and up) gets new incoming weights, a zero bias and new outgoing
    weights, drawn with the standard deviation of the layer's own weights. The model no longer
    computes what it did (half of each chosen unit's contribution is replaced): diversity bought
    with exactness at the boundary. ``model`` is changed in place and returned.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"reinit ratio {ratio!r} is invalid: accepted a number in [0, 1]")
    gen = torch.Generator().manual_seed(seed)
    for block in model.blocks:
        mlp = block.mlp
        ins, biases, outs = ((mlp.w_in.transpose(1, 2), mlp.b_in, mlp.w_out) if isinstance(mlp, MoE) else
                             (mlp.fc_in.weight[None], mlp.fc_in.bias[None], mlp.fc_out.weight.t()[None]))
        # ins [groups, h, d], biases [groups, h], outs [groups, h, d]: one row per hidden unit
        copies = ins.shape[1] - old_hidden
        for g in range(ins.shape[0]):
            chosen = old_hidden + torch.randperm(copies, generator=gen)[:round(ratio * copies)]
            for t in (ins, outs):
                t[g, chosen] = torch.randn(len(chosen), t.shape[-1], generator=gen, dtype=t.dtype) * t[g].std()
            biases[g, chosen] = 0.0
    return model


__all__ = ["clone_gradient_gap", "clone_pairs", "clone_similarity", "expert_similarity", "max_clone_difference",
           "mean_expert_similarity", "reinit_copies", "with_writers_of"]
