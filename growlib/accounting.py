"""Parameter and FLOP accounting: total, active per token, idle experts, efficiency.

Taught in notebook 00. :func:`param_report` counts a real (or meta) model's
tensors; :func:`analytic_params` counts the same from the config by hand, so
the two can be printed side by side with ``match: True`` (the habit of
nanoGPT's ``transformer_sizing`` notebook).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig
from .model import GPT


@dataclass(frozen=True)
class ParamReport:
    total: int
    active: int  # parameters one token passes through (top_k of n_experts experts)
    n_experts: int  # per MoE layer; 0 for a dense model
    top_k: int
    moe_layers: int
    flops_per_token: int  # training (forward + backward) FLOPs per token at the given context

    @property
    def inactive(self) -> int:
        return self.total - self.active

    @property
    def efficiency(self) -> float:
        return self.active / self.total

    @property
    def idle_experts(self) -> int:
        """Experts a token does not visit, summed over layers (the recipe's "42 experts idle")."""
        return (self.n_experts - self.top_k) * self.moe_layers if self.n_experts else 0

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    def lines(self) -> list[str]:
        """The recipe's parameter lines, numbers right-aligned on one column."""
        def row(label: str, n: int, note: str) -> str:
            return f"  {label}{n / 1e6:{26 - len(label)}.2f} M" + (f"  ({note})" if note else "")

        out = [row("Total Parameters:", self.total, "")]
        if self.is_moe:
            out.append(row("Active Params/tok:", self.active, f"top-{self.top_k} of {self.n_experts} experts"))
            out.append(row("Inactive Params:", self.inactive, f"{self.idle_experts} experts idle"))
        else:
            out.append(row("Active Params/tok:", self.active, "Dense model"))
        return out

    def efficiency_line(self) -> str:
        return f"  Efficiency: {100 * self.efficiency:.1f}% active per forward pass"


def _block_params(cfg: ModelConfig) -> tuple[int, int]:
    """(params of one block outside the experts, params of one expert)."""
    d, h = cfg.d_model, cfg.d_mlp
    ln = 2 * d
    attn = 4 * (d * d + d)  # q, k, v, out with biases
    expert = (d * h + h) + (h * d + d)  # fc_in and fc_out with biases
    router = cfg.n_experts * d if cfg.is_moe else 0
    return 2 * ln + attn + router, expert


def analytic_params(cfg: ModelConfig) -> tuple[int, int]:
    """(total, active) counted by hand from the config."""
    shared, expert = _block_params(cfg)
    per_layer_experts = cfg.n_experts if cfg.is_moe else 1
    per_layer_active = cfg.top_k if cfg.is_moe else 1
    emb = cfg.vocab_size * cfg.d_model  # tied with the output head
    final_ln = 2 * cfg.d_model
    total = emb + final_ln + cfg.n_layers * (shared + per_layer_experts * expert)
    active = emb + final_ln + cfg.n_layers * (shared + per_layer_active * expert)
    return total, active


def training_flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Forward + backward FLOPs per token: 6 x (active matmul weights + the tied head) plus attention.

    The PaLM/Chinchilla convention: 2 FLOPs per multiply-add, backward = 2 x forward,
    attention scores and values 2 x 2 x T x d per layer forward (full, not causal-halved).
    Biases, LayerNorms, GELU and the softmax are left out (under 1% here).
    """
    d, h = cfg.d_model, cfg.d_mlp
    k = cfg.top_k if cfg.is_moe else 1
    per_layer = 4 * d * d + k * 2 * d * h + (cfg.n_experts * d if cfg.is_moe else 0)
    matmul = cfg.n_layers * per_layer + d * cfg.vocab_size  # the head is a d x V matmul
    attention = cfg.n_layers * 2 * 2 * seq_len * d
    return 3 * (2 * matmul + attention)


def param_report(model: GPT, seq_len: int | None = None) -> ParamReport:
    """Count a model's parameters (works on the meta device)."""
    cfg = model.cfg
    total = sum(p.numel() for p in model.parameters())
    moes = model.moe_layers()
    expert_params = sum(m.w_in.numel() + m.b_in.numel() + m.w_out.numel() + m.b_out.numel() for m in moes)
    idle_share = (cfg.n_experts - cfg.top_k) / cfg.n_experts if moes else 0.0
    active = total - round(expert_params * idle_share)
    return ParamReport(total=total, active=active, n_experts=cfg.n_experts if moes else 0,
                       top_k=cfg.top_k if moes else 0, moe_layers=len(moes),
                       flops_per_token=training_flops_per_token(cfg, seq_len or cfg.max_seq_len))


def count_match_line(model: GPT) -> str:
    """``measured == analytic`` for total and active, in the nanoGPT style."""
    rep = param_report(model)
    total, active = analytic_params(model.cfg)
    ok = rep.total == total and rep.active == active
    return (f"  measured {rep.total:,} total / {rep.active:,} active; analytic {total:,} / {active:,}"
            f"  match: {ok}")
