"""The Mixture-of-Experts MLP: a top-k router and stacked experts run by grouped matmuls.

Taught in notebook 02. Dropless: every token is sent to exactly ``top_k``
distinct experts, there is no capacity limit. The experts' weights are stacked
(``w_in`` is ``[E, d, h]``), tokens are sorted by expert once, and each expert
multiplies one contiguous slice of the sorted tokens; there is no loop over
tokens and no boolean mask per expert.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ROUTER_MODES


class _ExpertMLPs(torch.autograd.Function):
    """Every expert's MLP over its slice of the sorted tokens, ``gelu(x_e @ w_in[e] + b_in[e]) @ w_out[e] + b_out[e]``.

    Each expert's matmuls write straight into its slice of the output and of each
    gradient (autograd through ``x[start:end]`` and ``w[e]`` would allocate a
    full-size zero gradient per expert and add them up).
    Only the pre-activation is kept for backward; the GELU is recomputed there.

    The GELU and its gradient run once over the whole [M, h] block, not per expert:
    CPU PyTorch runs them through oneDNN, which caches a kernel for every new shape,
    and per-expert shapes change with the routing at every step. Those cached kernels,
    a new one each step scattered through the C heap, would keep the allocator from
    reusing its freed blocks, and the process's memory would climb step after step.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor,
                b_out: torch.Tensor, counts: list[int]) -> torch.Tensor:
        # x: [M, d] sorted by expert; w_in: [E, d, h]; w_out: [E, h, d] -> [M, d]
        pre = x.new_empty(x.shape[0], w_in.shape[-1])  # [M, h]
        y = x.new_empty(x.shape[0], w_out.shape[-1])  # [M, d]
        for e, rows in _expert_rows(counts):  # a loop over experts (8), never over tokens
            torch.addmm(b_in[e], x[rows], w_in[e], out=pre[rows])
        act = F.gelu(pre)  # [M, h]
        for e, rows in _expert_rows(counts):
            torch.addmm(b_out[e], act[rows], w_out[e], out=y[rows])
        ctx.save_for_backward(x, w_in, w_out, pre)
        ctx.counts = counts
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, w_in, w_out, pre = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        grad_x = torch.empty_like(x)
        g_w_in, g_w_out = torch.empty_like(w_in), torch.empty_like(w_out)
        g_b_in = w_in.new_empty(w_in.shape[0], w_in.shape[-1])  # [E, h]
        g_b_out = w_out.new_empty(w_out.shape[0], w_out.shape[-1])  # [E, d]
        for e, n in enumerate(ctx.counts):
            if not n:  # an expert with no tokens this step: zero gradient
                for g in (g_w_in, g_b_in, g_w_out, g_b_out):
                    g[e].zero_()
        hidden = F.gelu(pre)  # [M, h]: the activation, recomputed
        for e, rows in _expert_rows(ctx.counts):
            g = grad_y[rows]  # [n, d]
            torch.mm(hidden[rows].t(), g, out=g_w_out[e])  # [h, d]
            torch.sum(g, 0, out=g_b_out[e])
            torch.mm(g, w_out[e].t(), out=hidden[rows])  # this expert's activation is used: overwrite it
        # hidden now holds the gradient at gelu's output; in place, the gradient at pre
        torch.ops.aten.gelu_backward.grad_input(hidden, pre, grad_input=hidden)
        for e, rows in _expert_rows(ctx.counts):
            g_pre = hidden[rows]  # [n, h]
            torch.mm(x[rows].t(), g_pre, out=g_w_in[e])  # [d, h]
            torch.sum(g_pre, 0, out=g_b_in[e])
            torch.mm(g_pre, w_in[e].t(), out=grad_x[rows])  # [n, d]
        return grad_x, g_w_in, g_b_in, g_w_out, g_b_out, None


def _expert_rows(counts: list[int]):
    """(expert, its slice of the sorted rows) for each expert that has rows."""
    start = 0
    for e, n in enumerate(counts):
        if n:
            yield e, slice(start, start + n)
        start += n


class _Dispatch(torch.autograd.Function):
    """Each token's row copied to its k sorted slots: ``x[order // k]``, with a gather for backward.

    Autograd's backward of ``x[idx]`` is an accumulating scatter (``index_put_``); here the k
    slots of a token are gathered back into token order and summed instead, with no scatter.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, order: torch.Tensor, inverse: torch.Tensor, k: int) -> torch.Tensor:
        # x: [N, d]; order: [N*k] (token, slot) pair of each sorted row; inverse: order's inverse
        ctx.save_for_backward(inverse)
        ctx.k = k
        return x.index_select(0, order.div(k, rounding_mode="floor"))  # [N*k, d]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inverse,) = ctx.saved_tensors
        per_slot = grad.index_select(0, inverse)  # [N*k, d] back in (token, slot) order
        return per_slot.view(-1, ctx.k, grad.shape[-1]).sum(1), None, None, None  # [N, d]


class _Unsort(torch.autograd.Function):
    """``y[inverse]`` for a permutation, whose backward is the gather by the permutation itself."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, order: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(order)
        return y.index_select(0, inverse)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (order,) = ctx.saved_tensors
        return grad.index_select(0, order), None, None


EXPERT_KERNELS = ("auto", "grouped", "loop")
_GROUPED_MM_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_GROUPED_MM_MAX_GROUPS = 1024  # the CUDA kernel's limit (GroupMM.cu: "Can't process more than 1024 groups")


def grouped_mm_is_fast(dtype: torch.dtype, cuda_capability: tuple[int, int] | None) -> bool:
    """Whether ``torch._grouped_mm`` runs its fused kernel here rather than one mm per group.

    The fused kernel (CUTLASS, aten/src/ATen/native/cuda/GroupMM.cu) runs only for bf16 on a GPU of
    compute capability 9.x or 10.x (``_grouped_mm_cuda`` in native/cuda/GroupedBlas.cpp). Anywhere
    else ``_grouped_mm_fallback`` (native/GroupedMMUtils.h) loops over the groups with one
    ``mm_out`` each, reading every offset back to the host: the expert loop of :class:`_ExpertMLPs`
    does the same matmuls and stays the default there, since its backward keeps one [N, h] block
    (the pre-activation) where autograd through the grouped path keeps two (pre-activation and
    activation). ``python -m growlib bench moe`` times both (``grouped_*``).
    ``cuda_capability``: the GPU's (major, minor); None on a CPU.
    """
    return cuda_capability is not None and cuda_capability[0] in (9, 10) and dtype == torch.bfloat16


def grouped_mm_refusal(dtype: torch.dtype, widths: tuple[int, ...], counts: list[int],
                       cuda_capability: tuple[int, int] | None = None,
                       byte_offsets: tuple[int, ...] = ()) -> str | None:
    """Why ``torch._grouped_mm`` would refuse, or get wrong, the expert MLP; None when it takes it.

    widths: (d_in, hidden, d_out), the row lengths of every operand of the forward and backward
    (x [N, d_in], w_in [E, d_in, h], the activation [N, h], w_out [E, h, d_out], grad_y [N, d_out]);
    counts: rows per expert; cuda_capability: (major, minor), None on a CPU; byte_offsets: where the
    operands' data start in their storage (CUDA's caching allocator aligns each storage's start).

    What PyTorch checks (read in its source; the CPU part also run here on torch 2.13, the CUDA part
    not run on a GPU), the same on CPU and CUDA unless said:
    - dtype float32, bfloat16 or float16, the same for both operands (``_grouped_mm_validate_inputs``,
      native/GroupedMMUtils.h). The meta kernel (torch/_meta_registrations.py, used by torch.compile)
      accepts bf16 only.
    - every operand row-major or column-major in its last two dims, with the other stride a multiple
      of 16 bytes (``check_valid_strides_and_return_transposed``, same file): 4 float32 or 8 bf16
      elements. A stride-0 (expanded) gradient is refused, which is why :func:`grouped_linear` makes
      the gradient reaching ``_grouped_mm`` contiguous.
    - offs int32, 1-D. Counts need not be multiples of 16 and may be 0 in the form growlib uses
      (x and w row-major; its backward is 2d x 3d for grad_x and x.t() [col-major] x grad_y
      [row-major] for grad_w): the fused kernel (GroupMMCommon.cuh) asserts a count multiple of
      16 bytes only for other layouts, and a count > 0 only for the 2d x 2d product of others.
    - CUDA only: data pointers on 16 bytes (the CPU skips that check); the fused kernel only: fewer
      than 1024 groups (GroupMM.cu).
    - The fused kernel on compute capability 10.x gives an expert with no tokens a non-zero weight
      gradient (pytorch/pytorch#172439, open); 9.x gives zero, as the CPU does.
    """
    if dtype not in _GROUPED_MM_DTYPES:
        return f"dtype {dtype} (torch._grouped_mm takes float32, bfloat16, float16)"
    align = 16 // dtype.itemsize  # elements in 16 bytes
    misaligned = [w for w in widths if w % align]
    if misaligned:
        return f"row widths {misaligned} ({dtype}) are not multiples of 16 bytes ({align} elements)"
    if cuda_capability is None:
        return None
    if any(off % 16 for off in byte_offsets):
        return "an operand's data does not start on a 16-byte boundary"
    if grouped_mm_is_fast(dtype, cuda_capability):
        if len(counts) >= _GROUPED_MM_MAX_GROUPS:
            return f"{len(counts)} experts (the CUDA kernel takes fewer than {_GROUPED_MM_MAX_GROUPS})"
        if cuda_capability[0] == 10 and 0 in counts:
            return "an expert with no tokens gets a wrong weight gradient on compute capability 10.x (pytorch#172439)"
    return None


def choose_expert_kernel(kernel: str, x: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor,
                         counts: list[int]) -> str:
    """"grouped" or "loop" for these operands (already in x's dtype).

    "auto": grouped only where the fused kernel runs (:func:`grouped_mm_is_fast`) and takes the case;
    "grouped": grouped wherever ``torch._grouped_mm`` takes the case (the CPU included), else a
    ValueError saying why; "loop": the expert loop of :class:`_ExpertMLPs`.
    """
    if kernel not in EXPERT_KERNELS:
        raise ValueError(f"expert kernel {kernel!r} is invalid: accepted {EXPERT_KERNELS}")
    if kernel == "loop":
        return "loop"
    capability = torch.cuda.get_device_capability(x.device) if x.is_cuda else None
    if not hasattr(torch, "_grouped_mm"):
        refusal = "this torch has no torch._grouped_mm"
    elif not (w_in.is_contiguous() and w_out.is_contiguous()):
        refusal = "the stacked weights are not contiguous [E, d_in, d_out]"  # the layout the guard knows
    else:
        widths = (w_in.shape[1], w_in.shape[2], w_out.shape[2])  # d_in, hidden, d_out
        offsets = tuple(t.storage_offset() * t.element_size() for t in (x, w_in, w_out))
        refusal = grouped_mm_refusal(x.dtype, widths, counts, capability, offsets)
    if kernel == "grouped":
        if refusal is not None:
            raise ValueError(f"expert kernel 'grouped': torch._grouped_mm cannot run this: {refusal}")
        return "grouped"
    return "grouped" if refusal is None and grouped_mm_is_fast(x.dtype, capability) else "loop"


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous.

    ``_grouped_mm``'s backward passes the incoming gradient straight to ``_grouped_mm``, which
    refuses a stride-0 one (the gradient of ``y.sum()``: "Invalid strides/sizes, got [0, 0] ...").
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def grouped_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                   counts: list[int]) -> torch.Tensor:
    """Per-expert ``x_e @ w[e] + b[e]`` over tokens already sorted by expert (``torch._grouped_mm``).

    x: [N, d_in] sorted so expert e owns rows ``sum(counts[:e]) : sum(counts[:e+1])``
    w: [E, d_in, d_out], b: [E, d_out] -> [N, d_out]
    """
    ends = torch.tensor(list(itertools.accumulate(counts)), dtype=torch.int32, device=x.device)  # [E]
    y = _ContiguousGrad.apply(torch._grouped_mm(x, w.to(x.dtype), offs=ends))  # [N, d_out]
    rows = torch.tensor(counts, device=x.device)  # [E]
    return y + torch.repeat_interleave(b.to(y.dtype), rows, dim=0, output_size=x.shape[0])  # [N, d_out]


def expert_mlps(x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor,
                b_out: torch.Tensor, counts: list[int], kernel: str = "auto") -> torch.Tensor:
    """Every expert's GELU MLP over its rows of ``x`` (sorted by expert, ``counts`` rows each) -> [N, d].

    kernel: "auto", "grouped" or "loop" (:func:`choose_expert_kernel`).
    """
    cast = [t.to(x.dtype) for t in (w_in, b_in, w_out, b_out)]  # autocast does not reach inside a Function
    if choose_expert_kernel(kernel, x, cast[0], cast[2], counts) == "grouped":
        x = x.contiguous()  # [N, d] row-major, as the kernel's stride check wants
        return grouped_linear(F.gelu(grouped_linear(x, cast[0], cast[1], counts)), cast[2], cast[3], counts)
    return _ExpertMLPs.apply(x, *cast, counts)


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


@dataclass
class RouterStats:
    """What one MoE layer's router did in a forward pass, returned with the layer's output.

    The two auxiliary losses keep their graphs (the training step adds them to the loss);
    the statistics are detached (the step logs them).
    """

    balance: torch.Tensor  # Switch load-balancing loss, E * sum_i f_i P_i (1.0 when balanced)
    z: torch.Tensor  # ST-MoE router z-loss: mean squared log-partition
    counts: torch.Tensor  # [E] assignments per expert (across processes: summed over them)
    entropy: torch.Tensor  # mean entropy of the router's distribution over experts
    frac_probs: torch.Tensor  # [E] P_i, with its graph: a reference can rebuild the balance loss


class MoE(nn.Module):
    """Dropless top-k MoE of GELU MLPs with biases.

    ``forward`` returns ``(output, RouterStats)``: the output replaces the dense MLP's, the
    statistics go to the training step (growlib.model.Block passes them on).
    """

    def __init__(self, d_model: int, d_mlp: int, n_experts: int, top_k: int,
                 router_mode: str = "topk_softmax", expert_kernel: str = "auto") -> None:
        super().__init__()
        if expert_kernel not in EXPERT_KERNELS:
            raise ValueError(f"expert kernel {expert_kernel!r} is invalid: accepted {EXPERT_KERNELS}")
        self.n_experts, self.top_k = n_experts, top_k
        self.router = Router(d_model, n_experts, top_k, router_mode)
        self.w_in = nn.Parameter(torch.empty(n_experts, d_model, d_mlp))   # [E, d, h]
        self.b_in = nn.Parameter(torch.empty(n_experts, d_mlp))            # [E, h]
        self.w_out = nn.Parameter(torch.empty(n_experts, d_mlp, d_model))  # [E, h, d]
        self.b_out = nn.Parameter(torch.empty(n_experts, d_model))         # [E, d]
        # data parallel training (growlib.parallel): sums a tensor over the processes, so the
        # balance loss counts every process's tokens; None in one process
        self.sum_counts: Callable[[torch.Tensor], torch.Tensor] | None = None
        # how the experts run: "auto", "grouped" (torch._grouped_mm) or "loop" (see choose_expert_kernel)
        self.expert_kernel = expert_kernel

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, RouterStats]:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # [N, d]
        if torch.is_autocast_enabled(x.device.type):
            # autocast runs LayerNorm in fp32 and does not reach into the experts' own Function: cast the
            # tokens to its dtype here, so the experts (and torch._grouped_mm, bf16 only) compute in it
            x = x.to(torch.get_autocast_dtype(x.device.type))
        n_tok, k = x.shape[0], self.top_k
        logits, idx, gates = self.router(x)  # [N, E], [N, k], [N, k]

        flat = idx.reshape(-1)  # [N*k] expert of each (token, slot)
        order = flat.argsort(stable=True)  # sorts the N*k assignments by expert
        counts_t = torch.bincount(flat, minlength=self.n_experts)  # [E]
        counts = counts_t.tolist()
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)  # sorted row of each (token, slot)
        x_sorted = _Dispatch.apply(x, order, inverse, k)  # [N*k, d]: token of each sorted assignment

        y_sorted = expert_mlps(x_sorted, self.w_in, self.b_in, self.w_out, self.b_out, counts,
                               self.expert_kernel)  # [N*k, d]

        y = _Unsort.apply(y_sorted, order, inverse).view(n_tok, k, -1)  # [N, k, d]
        # gate-weighted sum over the k slots (elementwise: a batched [1 x k] @ [k x d] is slower here)
        out = (y * gates.to(y.dtype).unsqueeze(-1)).sum(1)  # [N, d]

        return out.view(shape), self._aux_terms(logits, counts_t)

    def _aux_terms(self, logits: torch.Tensor, counts: torch.Tensor) -> RouterStats:
        probs = logits.float().softmax(dim=-1)  # [N, E]
        if self.sum_counts is not None:
            # f_i over the whole global batch; P_i stays this process's mean, and averaging the
            # processes' gradients averages it: the loss of one process holding every row
            counts = self.sum_counts(counts)
        frac_tokens = counts.float() / counts.sum()  # f_i: share of the N*k assignments (dropless)
        frac_probs = probs.mean(0)  # P_i: mean router probability
        # Switch Transformer: E * sum_i f_i P_i (1.0 when perfectly balanced)
        balance = self.n_experts * (frac_tokens * frac_probs).sum()
        # ST-MoE router z-loss: mean squared log-partition
        z = torch.logsumexp(logits.float(), dim=-1).pow(2).mean()
        with torch.no_grad():
            entropy = -(probs * probs.clamp_min(1e-20).log()).sum(-1).mean()
        return RouterStats(balance, z, counts.detach(), entropy, frac_probs)


def expert_loop_reference(layer: MoE, experts: list[tuple[torch.Tensor, ...]], x: torch.Tensor) -> torch.Tensor:
    """The Hugging Face Mixtral block's way, for tests and ``bench moe``: per expert, find its tokens, run it, add back.

    ``experts`` holds each expert's own (w_in [d, h], b_in [h], w_out [h, d], b_out [d]) leaf
    tensors, as Mixtral's ``nn.ModuleList`` of expert MLPs does (slicing one stacked parameter
    instead would add a full-size gradient buffer per expert to the loop's cost). x: [N, d].
    """
    logits, idx, gates = layer.router(x)  # [N, E], [N, k], [N, k]
    out = torch.zeros_like(x)
    mask = F.one_hot(idx, layer.n_experts).permute(2, 1, 0)  # [E, k, N]
    for e, (w_in, b_in, w_out, b_out) in enumerate(experts):
        slot, tok = torch.where(mask[e])
        h = F.gelu(x[tok] @ w_in + b_in)
        out.index_add_(0, tok, (h @ w_out + b_out) * gates[tok, slot, None])
    return out


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


__all__ = ["EXPERT_KERNELS", "MoE", "Router", "RouterStats", "choose_expert_kernel", "expert_loop_reference",
           "expert_mlps", "grouped_linear", "grouped_mm_is_fast", "grouped_mm_refusal", "switch_balance_loss"]
