"""The grouped expert path (torch._grouped_mm) against the expert loop, and the guard that chooses.

On this CPU ``torch._grouped_mm`` runs its fallback (one mm per expert), which checks its inputs as
the CUDA kernel does (dtype, 16-byte strides); ``kernel="grouped"`` forces that path here.
"""

import pytest
import torch
import torch.nn.functional as F

from growlib.moe import (MoE, choose_expert_kernel, expert_mlps, grouped_linear, grouped_mm_is_fast,
                         grouped_mm_refusal)

ALIGNED = [16, 32, 16]
AN_EMPTY_EXPERT = [24, 0, 40]  # expert 1 gets no tokens
NOT_ALIGNED_TO_16 = [13, 7, 21, 3]
COUNTS = pytest.mark.parametrize("counts", [ALIGNED, AN_EMPTY_EXPERT, NOT_ALIGNED_TO_16],
                                 ids=["aligned", "an-empty-expert", "not-aligned-to-16"])
GRADIENTS = ("x", "w_in", "b_in", "w_out", "b_out")
# bf16 keeps 8 significant bits: one rounding moves a value by up to 2^-8 of itself, one ulp is at most
# 2^-7 of it. The two paths round at different points (mm then + bias against addmm; the bias
# gradient summed in another order), so an entry may differ by an ulp or two of the largest entry
# (measured: at most 1 ulp, 0.0066 of the largest). Elementwise rtol would fail at entries near zero,
# where a matmul's error follows its terms' size, not the result's; hence a bound on the whole tensor.
BF16_TOLERANCE = 2.0**-6  # two ulps of the largest entry


def _operands(counts: list[int], dtype: torch.dtype, d: int = 32, h: int = 64) -> list[torch.Tensor]:
    """x [N, d], w_in [E, d, h], b_in [E, h], w_out [E, h, d], b_out [E, d], upstream gradient [N, d]."""
    gen = torch.Generator().manual_seed(0)
    n, e = sum(counts), len(counts)
    shapes = [(n, d), (e, d, h), (e, h), (e, h, d), (e, d)]
    tensors = [torch.randn(s, generator=gen) * (1.0 if i == 0 else 0.3) for i, s in enumerate(shapes)]
    upstream = torch.randn(n, d, generator=gen)
    return [t.to(dtype) for t in tensors] + [upstream.to(dtype)]


def _output_and_gradients(kernel: str, operands: list[torch.Tensor], counts: list[int]) -> list[torch.Tensor]:
    """[y, grad x, grad w_in, grad b_in, grad w_out, grad b_out] of ``expert_mlps``."""
    *inputs, upstream = [t.detach().clone() for t in operands]
    for t in inputs:
        t.requires_grad_()
    y = expert_mlps(*inputs, counts, kernel=kernel)
    return [y.detach(), *torch.autograd.grad((y * upstream).sum(), inputs)]


@COUNTS
def test_grouped_linear_is_each_experts_affine_map_fp32(counts):
    x, w, b = [t.requires_grad_() for t in _operands(counts, torch.float32)[:3]]  # x, w_in, b_in
    upstream = torch.randn(sum(counts), w.shape[-1])
    ends = torch.tensor(counts).cumsum(0).tolist()
    starts = [0] + ends[:-1]
    reference = torch.cat([x[s:t] @ w[e] + b[e] for e, (s, t) in enumerate(zip(starts, ends))])
    ours = grouped_linear(x, w, b, counts)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    g_ours = torch.autograd.grad((ours * upstream).sum(), [x, w, b])
    g_ref = torch.autograd.grad((reference * upstream).sum(), [x, w, b])
    for name, a, r in zip(("x", "w", "b"), g_ours, g_ref):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5, msg=name)


@COUNTS
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_grouped_expert_mlps_match_the_loop(counts, dtype):
    operands = _operands(counts, dtype)
    grouped = _output_and_gradients("grouped", operands, counts)
    loop = _output_and_gradients("loop", operands, counts)
    for name, g, l in zip(("y", *GRADIENTS), grouped, loop):
        assert g.dtype == l.dtype == dtype
        if dtype == torch.float32:
            torch.testing.assert_close(g, l, rtol=1e-5, atol=1e-5, msg=name)
        else:  # bf16: within its rounding, relative to the largest value
            diff = float((g.float() - l.float()).abs().max())
            assert diff <= BF16_TOLERANCE * float(l.float().abs().max()), (name, diff)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_an_expert_without_tokens_gets_exactly_zero_gradients_on_the_grouped_path(dtype):
    grads = _output_and_gradients("grouped", _operands(AN_EMPTY_EXPERT, dtype), AN_EMPTY_EXPERT)[2:]
    for name, g in zip(GRADIENTS[1:], grads):  # w_in, b_in, w_out, b_out
        assert float(g[1].abs().max()) == 0.0, name
        assert float(g[0].abs().max()) > 0.0 and float(g[2].abs().max()) > 0.0, name


def test_the_grouped_path_takes_a_stride_0_gradient():
    # y.sum() sends back an expanded gradient (strides [0, 0]); torch._grouped_mm's own backward
    # would hand it to torch._grouped_mm, which refuses it
    *inputs, _ = _operands(ALIGNED, torch.float32)
    grads = {}
    for kernel in ("grouped", "loop"):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        grads[kernel] = torch.autograd.grad(expert_mlps(*leaves, ALIGNED, kernel=kernel).sum(), leaves)
    for name, g, l in zip(GRADIENTS, grads["grouped"], grads["loop"]):
        torch.testing.assert_close(g, l, rtol=1e-5, atol=1e-5, msg=name)


def test_grouped_forces_torch_grouped_mm_and_auto_keeps_the_loop_on_a_cpu(monkeypatch):
    calls = []
    real = torch._grouped_mm
    monkeypatch.setattr(torch, "_grouped_mm", lambda *a, **k: calls.append(1) or real(*a, **k))
    for kernel, expected_calls in (("auto", 0), ("loop", 0), ("grouped", 2)):
        calls.clear()
        _output_and_gradients(kernel, _operands(ALIGNED, torch.float32), ALIGNED)
        assert len(calls) == expected_calls, kernel  # the backward calls the op through ATen, not here


# --- the guard ------------------------------------------------------------------------------------

WIDTHS = (32, 64, 32)  # d_in, hidden, d_out


@pytest.mark.parametrize("dtype, widths, counts, capability, offsets, expected", [
    (torch.float32, WIDTHS, AN_EMPTY_EXPERT, None, (), None),
    (torch.bfloat16, WIDTHS, NOT_ALIGNED_TO_16, None, (), None),
    (torch.float16, WIDTHS, ALIGNED, None, (), None),
    (torch.float64, WIDTHS, ALIGNED, None, (), "dtype torch.float64 (torch._grouped_mm takes float32, bfloat16, float16)"),
    (torch.float32, (33, 64, 32), ALIGNED, None, (),
     "row widths [33] (torch.float32) are not multiples of 16 bytes (4 elements)"),
    (torch.float32, (32, 60, 32), ALIGNED, None, (), None),  # 240 bytes
    (torch.bfloat16, (32, 60, 32), ALIGNED, (9, 0), (),
     "row widths [60] (torch.bfloat16) are not multiples of 16 bytes (8 elements)"),  # 120 bytes
    (torch.float32, WIDTHS, ALIGNED, None, (4, 0, 0), None),  # the CPU does not check data pointers
    (torch.float32, WIDTHS, ALIGNED, (9, 0), (4, 0, 0), "an operand's data does not start on a 16-byte boundary"),
    (torch.bfloat16, WIDTHS, AN_EMPTY_EXPERT, (9, 0), (0, 0, 0), None),
    (torch.bfloat16, WIDTHS, AN_EMPTY_EXPERT, (10, 0), (0, 0, 0),
     "an expert with no tokens gets a wrong weight gradient on compute capability 10.x (pytorch#172439)"),
    (torch.bfloat16, WIDTHS, NOT_ALIGNED_TO_16, (10, 0), (0, 0, 0), None),
    (torch.float32, WIDTHS, AN_EMPTY_EXPERT, (10, 0), (0, 0, 0), None),  # fp32: one mm per expert
    (torch.bfloat16, WIDTHS, [1] * 1023, (9, 0), (), None),
    (torch.bfloat16, WIDTHS, [1] * 1024, (9, 0), (), "1024 experts (the CUDA kernel takes fewer than 1024)"),
    (torch.bfloat16, WIDTHS, [1] * 1024, (8, 0), (), None),  # no fused kernel there: one mm per expert
], ids=["fp32-cpu-empty-expert", "bf16-cpu-unaligned-counts", "fp16-cpu", "fp64", "fp32-d_in-33",
        "fp32-hidden-60", "bf16-hidden-60", "cpu-x-offset-4-bytes", "cuda-x-offset-4-bytes",
        "sm90-bf16-empty-expert", "sm100-bf16-empty-expert", "sm100-bf16-unaligned-counts",
        "sm100-fp32-empty-expert", "sm90-1023-experts", "sm90-1024-experts", "sm80-1024-experts"])
def test_the_guard_on_each_case(dtype, widths, counts, capability, offsets, expected):
    assert grouped_mm_refusal(dtype, widths, counts, capability, offsets) == expected


@pytest.mark.parametrize("capability, dtype, fast", [
    ((9, 0), torch.bfloat16, True), ((10, 0), torch.bfloat16, True), ((8, 0), torch.bfloat16, False),
    ((12, 0), torch.bfloat16, False), ((9, 0), torch.float32, False), ((9, 0), torch.float16, False),
    (None, torch.bfloat16, False),
])
def test_the_fused_kernel_runs_for_bf16_on_compute_capability_9_and_10_only(capability, dtype, fast):
    assert grouped_mm_is_fast(dtype, capability) is fast


def _cpu_kernel_runs(dtype: torch.dtype, widths: tuple[int, int, int], counts: list[int],
                     x_offset: int = 0) -> bool:
    """Whether torch._grouped_mm on this CPU runs the expert MLP, forward and backward (no guard)."""
    d_in, h, d_out = widths
    n, e = sum(counts), len(counts)
    x = torch.randn(n * d_in + x_offset, dtype=dtype)[x_offset:].view(n, d_in).requires_grad_()
    w_in, w_out = torch.randn(e, d_in, h, dtype=dtype), torch.randn(e, h, d_out, dtype=dtype)
    b_in, b_out = torch.zeros(e, h, dtype=dtype), torch.zeros(e, d_out, dtype=dtype)
    try:
        y = grouped_linear(F.gelu(grouped_linear(x, w_in.requires_grad_(), b_in, counts)),
                           w_out.requires_grad_(), b_out, counts)
        y.backward(torch.ones_like(y))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("dtype, widths, counts, x_offset", [
    (torch.float32, WIDTHS, NOT_ALIGNED_TO_16, 0),
    (torch.bfloat16, WIDTHS, AN_EMPTY_EXPERT, 0),
    (torch.float64, WIDTHS, ALIGNED, 0),
    (torch.float32, (33, 64, 32), ALIGNED, 0),
    (torch.float32, (32, 64, 30), ALIGNED, 0),
    (torch.bfloat16, (32, 60, 32), ALIGNED, 0),
    (torch.float32, (32, 60, 32), ALIGNED, 0),
    (torch.float32, WIDTHS, ALIGNED, 1),  # x's data 4 bytes past a 16-byte boundary
], ids=["fp32-unaligned-counts", "bf16-empty-expert", "fp64", "fp32-d_in-33", "fp32-d_out-30",
        "bf16-hidden-60", "fp32-hidden-60", "fp32-x-offset-4-bytes"])
def test_the_guard_refuses_exactly_what_the_cpu_kernel_refuses(dtype, widths, counts, x_offset):
    refusal = grouped_mm_refusal(dtype, widths, counts, None, (x_offset * dtype.itemsize, 0, 0))
    assert (refusal is None) == _cpu_kernel_runs(dtype, widths, counts, x_offset)


def test_choose_expert_kernel_on_a_cpu():
    x, w_in, _, w_out, _, _ = _operands(ALIGNED, torch.float32)
    for dtype in (torch.float32, torch.bfloat16):
        args = [t.to(dtype) for t in (x, w_in, w_out)]
        assert choose_expert_kernel("auto", *args, ALIGNED) == "loop"
        assert choose_expert_kernel("loop", *args, ALIGNED) == "loop"
        assert choose_expert_kernel("grouped", *args, ALIGNED) == "grouped"
    with pytest.raises(ValueError, match=r"cannot run this: dtype torch.float64"):
        choose_expert_kernel("grouped", x.double(), w_in.double(), w_out.double(), ALIGNED)
    assert choose_expert_kernel("auto", x.double(), w_in.double(), w_out.double(), ALIGNED) == "loop"
    with pytest.raises(ValueError, match="weights are not contiguous"):
        choose_expert_kernel("grouped", x, w_in.transpose(1, 2).contiguous().transpose(1, 2), w_out, ALIGNED)
    with pytest.raises(ValueError, match="expert kernel 'fused' is invalid"):
        choose_expert_kernel("fused", x, w_in, w_out, ALIGNED)


# --- the MoE layer carries the choice -------------------------------------------------------------

def _moe(**kwargs) -> MoE:
    layer = MoE(16, 32, 4, 2, "topk_softmax", **kwargs)  # the positional signature still works
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return layer


def test_moe_with_the_grouped_kernel_matches_the_default():
    x = torch.randn(50, 16, requires_grad=True)
    upstream = torch.randn(50, 16)
    default, grouped = _moe(), _moe(expert_kernel="grouped")
    assert default.expert_kernel == "auto" and grouped.expert_kernel == "grouped"
    outs = [layer(x)[0] for layer in (default, grouped)]  # (output, router statistics)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    grads = [torch.autograd.grad((out * upstream).sum(), [x, *layer.parameters()])
             for out, layer in zip(outs, (default, grouped))]
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_moe_refuses_an_unknown_kernel_and_the_attribute_can_be_set():
    with pytest.raises(ValueError, match="expert kernel 'fused' is invalid"):
        _moe(expert_kernel="fused")
    layer = _moe()
    layer.expert_kernel = "grouped"
    with pytest.raises(ValueError, match="cannot run this: dtype torch.float64"):
        layer.double()(torch.randn(8, 16, dtype=torch.float64))
