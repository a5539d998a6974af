"""Checking that a transition preserved the function, layer by layer.

Taught in notebooks 02 and 03. Old and new model run on the same fixed tokens
in eval mode with TF32 off. After each new layer the residual stream is
mapped back to the old width (the k copies compared with the old vector, the
mean dims with its mean) and compared with the old model's residual after the
matching old layer (an inserted copy matches the layer it copies); then the
logits are compared.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .grow import depth_plan
from .model import GPT

THRESHOLD = 1e-4  # the recipe's: "functional equivalence confirmed (< 0.0001)"


@dataclass
class Preservation:
    """Per-layer max |Δ| of the residual stream and the max |Δlogit|."""

    layer_diffs: list[float] = field(default_factory=list)  # one per new layer
    layer_sources: list[int] = field(default_factory=list)  # old layer each new layer is matched with
    inserted: list[bool] = field(default_factory=list)  # True for a layer added by deepen
    logit_diff: float = 0.0
    threshold: float = THRESHOLD

    @property
    def overall(self) -> float:
        return max([self.logit_diff, *self.layer_diffs])

    @property
    def passed(self) -> bool:
        return self.overall < self.threshold

    def lines(self) -> list[str]:
        out = ["  [Verification] Checking Growth Preservation...",
               f"  Overall max difference: {self.overall:.2e}"]
        if self.passed:
            out.append(f"  ✓ PASSED — functional equivalence confirmed (< {self.threshold:g})")
        else:
            worst = max(range(len(self.layer_diffs)), key=self.layer_diffs.__getitem__, default=None)
            where = f"; largest at layer {worst}" if worst is not None else ""
            out.append(f"  ✗ FAILED — max difference {self.overall:.2e} is not below {self.threshold:g}{where}")
        return out

    def as_dict(self) -> dict:
        return {"layer_diffs": self.layer_diffs, "layer_sources": self.layer_sources,
                "inserted": self.inserted, "logit_diff": self.logit_diff, "overall": self.overall,
                "passed": self.passed}


@contextmanager
def exact_matmul():
    """fp32 for the duration: autocast off (a check inside a bf16 training step stays fp32) and TF32 off
    (CUDA would otherwise round matmul inputs to 10 bits)."""
    prev_cuda = torch.backends.cuda.matmul.allow_tf32
    prev_cudnn = torch.backends.cudnn.allow_tf32
    prev_prec = torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev_cuda
        torch.backends.cudnn.allow_tf32 = prev_cudnn
        torch.set_float32_matmul_precision(prev_prec)


def _to_old_width(h: torch.Tensor, d_old: int) -> torch.Tensor:
    """[..., d'] -> [..., k+1 or k, d_old]-comparable: k copies, and the mean dims vs the mean."""
    k = h.shape[-1] // d_old
    copies = h[..., : k * d_old].unflatten(-1, (k, d_old))  # [..., k, d]
    return copies, h[..., k * d_old:]  # mean dims (possibly empty)


def _layer_diff(old_h: torch.Tensor, new_h: torch.Tensor) -> float:
    d = old_h.shape[-1]
    copies, extra = _to_old_width(new_h, d)
    diff = (copies - old_h.unsqueeze(-2)).abs().max()
    if extra.shape[-1]:
        diff = torch.maximum(diff, (extra - old_h.mean(-1, keepdim=True)).abs().max())
    return float(diff)


@torch.no_grad()
def check_preservation(old: GPT, new: GPT, tokens: torch.Tensor, where: str | None = None,
                       threshold: float = THRESHOLD) -> Preservation:
    """Compare ``old`` and ``new`` on ``tokens`` [B, T]; ``where`` is the deepen placement used.

    Works across upcycling (same width and depth), widening and deepening.
    """
    extra = new.cfg.n_layers - old.cfg.n_layers
    if extra < 0:
        raise ValueError(f"the new model has fewer layers ({new.cfg.n_layers}) than the old ({old.cfg.n_layers})")
    plan = depth_plan(old.cfg.n_layers, extra, where or "end") if extra else list(range(old.cfg.n_layers))
    modes = old.training, new.training
    old.eval()
    new.eval()
    try:
        with exact_matmul():
            old_h, new_h = [], []  # the residual stream after each block, [B, T, d] each
            old_logits = old.head(old.features(tokens, old_h))
            new_logits = new.head(new.features(tokens.to(new.tok_emb.weight.device), new_h))
    finally:
        old.train(modes[0])
        new.train(modes[1])
    result = Preservation(threshold=threshold, logit_diff=float((new_logits.cpu() - old_logits.cpu()).abs().max()))
    seen = set()
    for h, src in zip(new_h, plan):
        result.layer_diffs.append(_layer_diff(old_h[src].cpu(), h.cpu()))
        result.layer_sources.append(src)
        result.inserted.append(src in seen)
        seen.add(src)
    return result
