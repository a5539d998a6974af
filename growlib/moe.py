"""The Mixture-of-Experts MLP: a top-k router and stacked experts run by grouped matmuls.

Taught in notebook 02. Dropless: every token is sent to exactly ``top_k``
distinct experts, there is no capacity limit. The experts' weights are stacked
(``w_in`` is ``[E, d, h]``), tokens are sorted by expert once, and each expert
multiplies one contiguous slice of the sorted tokens; there is no loop over
tokens and no boolean mask per expert.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ROUTER_MODES


class _GroupedLinear(torch.autograd.Function):
    """``y[rows of e] = x[rows of e] @ w[e] + b[e]`` with a hand-written backward.

    Autograd through ``x[start:end]`` and ``w[e]`` would allocate a full-size zero
    gradient for ``x`` and for the whole stacked ``w`` once per expert and add them
    up; here each expert's gradient is written straight into its slice.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, counts: list[int]) -> torch.Tensor:
        y = x.new_empty(x.shape[0], w.shape[-1])
        start = 0
        for e, n in enumerate(counts):  # a loop over experts (8), never over tokens
            if n:
                torch.addmm(b[e], x[start:start + n], w[e], out=y[start:start + n])
            start += n
        ctx.save_for_backward(x, w)
        ctx.counts = counts
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, w = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(w) if ctx.needs_input_grad[1] else None
        grad_b = w.new_zeros(w.shape[0], w.shape[-1]) if ctx.needs_input_grad[2] else None
        start = 0
        for e, n in enumerate(ctx.counts):
            if n:
                g = grad_y[start:start + n]  # [n, d_out]
                if grad_x is not None:
                    torch.mm(g, w[e].t(), out=grad_x[start:start + n])  # [n, d_in]
                if grad_w is not None:
                    torch.mm(x[start:start + n].t(), g, out=grad_w[e])  # [d_in, d_out]
                if grad_b is not None:
                    torch.sum(g, 0, out=grad_b[e])
            start += n
        return grad_x, grad_w, grad_b, None


def _grouped_mm_ok(x: torch.Tensor) -> bool:
    # torch._grouped_mm is a fused kernel on recent GPUs (bf16). On this CPU it
    # measured slower than one mm per expert slice (122 vs 170 GFLOP/s at the
    # seed's shapes), so the CPU uses the slice loop of _GroupedLinear.
    return hasattr(torch, "_grouped_mm") and x.is_cuda and x.dtype == torch.bfloat16


def grouped_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                   counts: list[int]) -> torch.Tensor:
    """Per-expert ``x_e @ w[e] + b[e]`` over tokens already sorted by expert.

    x: [N, d_in] sorted so expert e owns rows ``sum(counts[:e]) : sum(counts[:e+1])``
    w: [E, d_in, d_out], b: [E, d_out] -> [N, d_out]
    """
    if _grouped_mm_ok(x):
        offs = torch.tensor(counts, device=x.device).cumsum(0).to(torch.int32)
        y = torch._grouped_mm(x, w.to(x.dtype), offs=offs)
        return y + torch.repeat_interleave(b.to(y.dtype), torch.tensor(counts, device=x.device), dim=0)
    w, b = w.to(x.dtype), b.to(x.dtype)  # autocast does not reach inside a custom Function
    return _GroupedLinear.apply(x, w, b, counts)


class Router(nn.Module):
    """Linear d_model -> experts (no bias), then top-k selection and gates."""

    def __init__(self, d_model: int, n_experts: int, top_k: int, mode: str = "topk_softmax") -> None:
        super().__init__()
        if mode not in ROUTER_MODES:
            raise ValueError(f"router mode {mode!r} is invalid: accepted {ROUTER_MODES}")
        self.weight = nn.Parameter(torch.empty(n_experts, d_model))
        self.top_k = top_k
        self.mode = mode

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: [N, d] -> (logits [N, E], expert ids [N, k], gates [N, k])."""
        logits = F.linear(x, self.weight)  # [N, E]
        if self.mode == "topk_softmax":
            # softmax over the selected logits only: gates sum to 1, so identical
            # experts (just after upcycling) give exactly the dense output
            top_logits, idx = logits.topk(self.top_k, dim=-1)
            gates = top_logits.softmax(dim=-1)
        else:
            # softmax over all experts, then keep the top k without renormalising:
            # the output is scaled by the kept probability mass (not exact)
            gates, idx = logits.softmax(dim=-1).topk(self.top_k, dim=-1)
        return logits, idx, gates


class MoE(nn.Module):
    """Dropless top-k MoE of GELU MLPs with biases; a drop-in for :class:`growlib.model.MLP`."""

    def __init__(self, d_model: int, d_mlp: int, n_experts: int, top_k: int,
                 router_mode: str = "topk_softmax") -> None:
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.router = Router(d_model, n_experts, top_k, router_mode)
        self.w_in = nn.Parameter(torch.empty(n_experts, d_model, d_mlp))   # [E, d, h]
        self.b_in = nn.Parameter(torch.empty(n_experts, d_mlp))            # [E, h]
        self.w_out = nn.Parameter(torch.empty(n_experts, d_mlp, d_model))  # [E, h, d]
        self.b_out = nn.Parameter(torch.empty(n_experts, d_model))         # [E, d]
        # statistics of the last forward pass (detached), read by the trainer
        self.last_aux: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # [N, d]
        n_tok, k = x.shape[0], self.top_k
        logits, idx, gates = self.router(x)  # [N, E], [N, k], [N, k]

        flat = idx.reshape(-1)  # [N*k] expert of each (token, slot)
        order = flat.argsort(stable=True)  # sorts the N*k assignments by expert
        counts_t = torch.bincount(flat, minlength=self.n_experts)  # [E]
        counts = counts_t.tolist()
        x_sorted = x[order // k]  # [N*k, d]: token of each sorted assignment

        h = F.gelu(grouped_linear(x_sorted, self.w_in, self.b_in, counts))  # [N*k, h]
        y_sorted = grouped_linear(h, self.w_out, self.b_out, counts)  # [N*k, d]

        inverse = order.argsort()  # back to (token, slot) order
        y = y_sorted[inverse].view(n_tok, k, -1)  # [N, k, d]
        out = torch.einsum("nkd,nk->nd", y, gates.to(y.dtype))  # gate-weighted sum

        self.last_aux = self._aux_terms(logits, counts_t, n_tok)
        return out.view(shape)

    def _aux_terms(self, logits: torch.Tensor, counts: torch.Tensor, n_tok: int) -> dict:
        probs = logits.float().softmax(dim=-1)  # [N, E]
        frac_tokens = counts.float() / (n_tok * self.top_k)  # f_i: share of assignments
        frac_probs = probs.mean(0)  # P_i: mean router probability
        # Switch Transformer: E * sum_i f_i P_i (1.0 when perfectly balanced)
        balance = self.n_experts * (frac_tokens * frac_probs).sum()
        # ST-MoE router z-loss: mean squared log-partition
        z = torch.logsumexp(logits.float(), dim=-1).pow(2).mean()
        with torch.no_grad():
            entropy = -(probs * probs.clamp_min(1e-20).log()).sum(-1).mean()
        return {"balance": balance, "z": z, "counts": counts.detach(), "entropy": entropy}


def switch_balance_loss(router_probs: torch.Tensor, expert_ids: torch.Tensor, n_experts: int) -> torch.Tensor:
    """The Switch Transformer load-balancing loss written out plainly (for tests and teaching).

    router_probs: [N, E] softmax over all experts; expert_ids: [N, k] chosen experts.
    """
    n, k = expert_ids.shape
    f = torch.zeros(n_experts, dtype=router_probs.dtype)
    for e in expert_ids.reshape(-1).tolist():
        f[e] += 1.0 / (n * k)
    p = router_probs.mean(0)
    return n_experts * (f * p).sum()


__all__ = ["MoE", "Router", "grouped_linear", "switch_balance_loss"]
