"""How much memory a phase needs: the seed's table (model, gradients, optimizer, activations).

Taught in notebook 00. The estimate is analytic (no tensors are built):

- model and gradients: 4 bytes per parameter each (fp32 master weights);
- AdamW: two fp32 moments, 8 bytes per parameter;
- activations kept for the backward pass, per token and layer, in fp32:
  LayerNorm inputs and outputs (4d), q, k, v and their rotated copies (5d),
  the attention output and its re-layout (2d), the MLP's hidden before and
  after GELU (2h); a MoE layer keeps those for each of its k experts plus the
  gathered token copies (3kd); the output head keeps its logits, the
  log-softmax and, during backward, their gradient (3V).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .accounting import analytic_params
from .config import ModelConfig

GB = 1e9


@dataclass(frozen=True)
class MemoryPlan:
    model: float  # bytes
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.model + self.gradients + self.optimizer + self.activations

    def lines(self, title: str = "", available: float | None = None) -> list[str]:
        fmt = lambda b: f"{b / GB:6.2f} GB"
        out = [f"  Memory plan{(' — ' + title) if title else ''}:",
               f"    Model:             {fmt(self.model)}",
               f"    Gradients:         {fmt(self.gradients)}",
               f"    Optimizer states:  {fmt(self.optimizer)}",
               f"    Activations:       {fmt(self.activations)}",
               f"    Total:             {fmt(self.total)}"]
        if available is not None:
            verdict = "✅ fits" if self.total < 0.9 * available else "⚠️ does NOT fit"
            out[-1] += f"   ({verdict} in {available / GB:.1f} GB)"
        return out


def activation_bytes_per_token(cfg: ModelConfig, bytes_per_value: int = 4) -> float:
    d, h = cfg.d_model, cfg.d_mlp
    k = cfg.top_k if cfg.is_moe else 1
    per_layer = 11 * d + 2 * k * h + (3 * k * d + 2 * cfg.n_experts if cfg.is_moe else 0)
    return bytes_per_value * (cfg.n_layers * per_layer + 3 * cfg.vocab_size)


def estimate_memory(cfg: ModelConfig, batch_size: int, seq_len: int, optimizer: str = "adamw") -> MemoryPlan:
    """The seed's memory table for training ``cfg`` at this batch and sequence length."""
    params, _ = analytic_params(cfg)
    states = {"adamw": 8.0, "sgd": 0.0}
    if optimizer not in states:
        raise ValueError(f"optimizer {optimizer!r} is unknown: accepted {sorted(states)}")
    return MemoryPlan(model=4.0 * params, gradients=4.0 * params, optimizer=states[optimizer] * params,
                      activations=activation_bytes_per_token(cfg) * batch_size * seq_len)


def system_memory_bytes() -> float:
    """Physical memory of this machine (the budget on CPU and on Apple's unified memory)."""
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
