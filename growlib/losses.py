"""The output head and its cross-entropy, computed in chunks of tokens.

A 50,257-way head on 2,048 tokens makes a [2048 x 50257] fp32 logits tensor
(411 MB), and the plain loss keeps it, its log-softmax and, in backward, its
gradient: the head was ~47% of a CPU training step, mostly memory traffic.
Here the forward pass walks over chunks of tokens; for each chunk it computes
the logits, the loss and, right away, the gradients with respect to the
features and the head weight (softmax - one-hot), then drops the logits. The
backward pass only scales those saved gradients. Same result as the plain
loss to float rounding (a test checks loss and gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 1024  # tokens per chunk: [1024 x 50257] fp32 logits = 206 MB
PAD_VOCAB_TO = 64  # head rows padded to a multiple of this (aligned rows for the logits product)


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int):
        # feats: [N, d], weight: [V, d] (the tied embedding), targets: [N]
        n, vocab = feats.shape[0], weight.shape[0]
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        # Rows of the weight padded with zeros to a multiple of 64: a [c x 50257] product has rows that
        # start at unaligned addresses and ran at ~127 GFLOP/s here, [c x 50304] at ~160. The padded
        # logits are exactly 0 and are never read: every softmax step below works on the [:, :V] view.
        pad = -vocab % PAD_VOCAB_TO
        w = weight
        if pad:
            w = weight.new_empty((vocab + pad, weight.shape[1]))  # [Vp, d]
            w[:vocab].copy_(weight)
            w[vocab:].zero_()
        grad_feats = torch.empty_like(feats) if need_grad else None
        grad_w = torch.empty(w.shape, dtype=torch.float32, device=w.device) if need_grad else None  # [Vp, d]
        total = torch.zeros((), dtype=torch.float32, device=feats.device)
        for start in range(0, n, chunk):
            x = feats[start:start + chunk]
            t = targets[start:start + chunk]
            rows = torch.arange(len(t), device=x.device)
            padded = (x @ w.t()).float()  # [c, Vp]
            logits = padded[:, :vocab]  # [c, V] view
            # one pass each for max, subtract, exp, sum: the [c, V] tensor is the costly part
            top = logits.amax(dim=-1, keepdim=True)  # [c, 1]
            target_logit = logits[rows, t]  # [c]
            probs = logits.sub_(top).exp_()  # in place: unnormalised softmax
            sums = probs.sum(dim=-1)  # [c]
            lse = top.squeeze(1) + sums.log()
            total += (lse - target_logit).sum()
            if need_grad:
                probs.div_(sums[:, None] * n)  # softmax / N: the mean's 1/N folded in here
                probs[rows, t] -= 1.0 / n  # d(loss)/d(logits_i) = (softmax - one-hot) / N
                g = padded.to(x.dtype)  # [c, Vp], zero in the padded columns
                grad_feats[start:start + chunk] = g @ w  # [c, d]
                if start == 0:
                    torch.mm(g.t().float(), x.float(), out=grad_w)  # [Vp, d]: no zero-fill first
                else:
                    grad_w.addmm_(g.t().float(), x.float())
        ctx.save_for_backward(grad_feats, grad_w[:vocab] if need_grad else None)
        ctx.weight_dtype = weight.dtype
        return total / n

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_feats, grad_weight = ctx.saved_tensors
        if grad_out.device.type == "cpu" and grad_out.item() == 1.0:
            scale = None  # the usual case, loss.backward(): skip two passes over [V, d] and [N, d]
        else:
            scale = grad_out
        gf = gw = None
        if ctx.needs_input_grad[0]:
            gf = grad_feats if scale is None else grad_feats * scale.to(grad_feats.dtype)
        if ctx.needs_input_grad[1]:
            gw = (grad_weight if scale is None else grad_weight * scale).to(ctx.weight_dtype)
        return gf, gw, None, None


def chunked_cross_entropy(feats: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Mean cross-entropy of ``feats @ weight.T`` against ``targets``, never holding all logits.

    feats: [N, d], weight: [V, d], targets: [N] -> scalar.
    """
    if chunk <= 0:
        raise ValueError(f"chunk={chunk} is invalid: accepted an integer > 0")
    if torch.is_grad_enabled() and (feats.requires_grad or weight.requires_grad):
        return _ChunkedHeadLoss.apply(feats, weight, targets, chunk)
    total = sum(F.cross_entropy((feats[i:i + chunk] @ weight.t()).float(), targets[i:i + chunk], reduction="sum")
                for i in range(0, feats.shape[0], chunk))
    return total / feats.shape[0]  # evaluation: no gradients to prepare


def plain_cross_entropy(feats: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The reference: full logits, then ``F.cross_entropy``."""
    return F.cross_entropy((feats @ weight.t()).float(), targets)
