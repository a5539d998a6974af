"""How much memory a phase needs: the recipe's table (model, gradients, optimizer, activations).

Taught in notebook 00. The estimate is analytic (no tensors are built):

- model and gradients: 4 bytes per parameter each (fp32 master weights);
- AdamW: two fp32 moments, 8 bytes per parameter;
- activations kept for the backward pass, per token and layer, in fp32:
  LayerNorm inputs and outputs (4d), q, k, v and their rotated copies (5d),
  the attention output and its re-layout (2d), the MLP's hidden before and
  after GELU (2h); a MoE layer keeps those for each of its k experts plus the
  gathered token copies (3kd); the chunked output head (growlib.losses) keeps
  an fp32 accumulator of its weight's gradient (V d), one chunk of logits and
  the final features with their gradient.

The measured peak printed after a phase includes the Python/PyTorch runtime
and the data; the plan adds that as "runtime", measured when the run starts
(growlib.harness.memory.machine). On a CPU it also counts the C heap's slack
(:data:`HEAP_SLACK`, growlib.harness.memory.heap).
"""

from __future__ import annotations

from dataclasses import dataclass

from .accounting import analytic_params
from .config import ModelConfig
from .losses import DEFAULT_CHUNK, PAD_VOCAB_TO
from .model import build_model

GB = 1e9
# a plan fits when its total stays below this share of the memory available: the rest is left for
# the allocator's slack and everything the estimate leaves out
FITS_HEADROOM = 0.9
# CPU tensors come from glibc's heap, which a training process keeps (growlib.harness.memory.heap):
# at a step's peak it also holds freed blocks that the step's requests did not fit, a share of the
# bytes a step frees and allocates again (its activations and gradients). The share was measured
# as peak RSS less the exact peak of live tensors, on the cpu and recipe presets' phases
# (docs/memory.md); `python -m growlib bench memory` prints the estimate against the peak.
HEAP_SLACK = 0.6


@dataclass(frozen=True)
class Overhead:
    """What a training process holds besides the plan's tensors."""

    runtime: float = 0.0  # bytes: Python, PyTorch and the data, measured when the run starts
    heap_slack: bool = False  # CPU training: count the C heap's slack


@dataclass(frozen=True)
class MemoryPlan:
    model: float  # bytes
    gradients: float
    optimizer: float
    activations: float
    heap_slack: float = 0.0  # the C heap's freed blocks at the peak (CPU)
    gathered: float = 0.0  # FSDP: full weights and gradients of the groups being computed
    runtime: float = 0.0  # Python, PyTorch and the data, measured when the run starts

    @property
    def total(self) -> float:
        return (self.model + self.gradients + self.optimizer + self.activations + self.heap_slack + self.gathered
                + self.runtime)

    def fits(self, available: float) -> bool:
        return self.total < FITS_HEADROOM * available

    def lines(self, title: str = "", available: float | None = None) -> list[str]:
        fmt = lambda b: f"{b / GB:6.2f} GB"
        out = [f"  Memory plan{(' — ' + title) if title else ''}:",
               f"    Model:             {fmt(self.model)}",
               f"    Gradients:         {fmt(self.gradients)}",
               f"    Optimizer states:  {fmt(self.optimizer)}",
               f"    Activations:       {fmt(self.activations)}"]
        if self.heap_slack:
            out.append(f"    C heap slack:      {fmt(self.heap_slack)}")
        if self.gathered:
            out.append(f"    Gathered (FSDP):   {fmt(self.gathered)}")
        if self.runtime:
            out.append(f"    Runtime and data:  {fmt(self.runtime)}")
        out.append(f"    Total:             {fmt(self.total)}")
        if available is not None:
            verdict = "✅ fits" if self.fits(available) else "⚠️ does NOT fit"
            out[-1] += f"   ({verdict} in {available / GB:.1f} GB)"
        return out


def _block_values_per_token(cfg: ModelConfig) -> int:
    """fp32 values one block keeps per token for its backward pass."""
    d, h = cfg.d_model, cfg.d_mlp
    if cfg.is_moe:
        # growlib.moe saves the k sorted copies of each token and their pre-activations (k*d + k*h),
        # the k expert outputs for the gates' gradient (k*d), the router's logits and probabilities
        # (2*E), and two int64 permutations of the k assignments (4*k in fp32 values)
        k = cfg.top_k
        return 11 * d + k * h + 2 * k * d + 2 * cfg.n_experts + 4 * k
    return 11 * d + 2 * h  # the MLP keeps its pre-activation and its GELU output


def activation_bytes(cfg: ModelConfig, tokens: int, checkpointing: bool = False, chunk: int = DEFAULT_CHUNK) -> float:
    """Activations at the peak of backward: blocks, plus the chunked head's buffers."""
    per_block = _block_values_per_token(cfg) * tokens * 4
    if checkpointing:  # block inputs only, plus one block recomputed at a time
        blocks = cfg.n_layers * cfg.d_model * tokens * 4 + per_block
    else:
        blocks = cfg.n_layers * per_block
    if cfg.is_moe:  # one block's backward at a time: the experts' [k*tokens, h] gradient scratch
        blocks += cfg.top_k * cfg.d_mlp * tokens * 4
    vocab = cfg.vocab_size + (-cfg.vocab_size % PAD_VOCAB_TO)  # the head's rows, padded (growlib.losses)
    copies = 2 if vocab != cfg.vocab_size else 1  # the padded weight copy, and the gradient accumulator
    head = (copies * vocab * cfg.d_model
            + min(chunk, tokens) * vocab  # one chunk of logits / probabilities
            + 2 * tokens * cfg.d_model) * 4  # final features and their gradient
    return blocks + head


def _adafactor_values(cfg: ModelConfig) -> int:
    """Adafactor's factored second moment: a row and a column vector per matrix slice."""
    total = 0
    for p in build_model(cfg, device="meta").parameters():
        if p.dim() >= 2:
            lead = p.numel() // (p.shape[-1] * p.shape[-2])
            total += lead * (p.shape[-2] + p.shape[-1])
        else:
            total += p.numel()
    return total


def gathered_bytes(cfg: ModelConfig) -> float:
    """FSDP's full tensors at a moment of backward: the root group (embedding/head, final LayerNorm)
    and two blocks (the one computing and the one prefetched), each weights plus gradients, fp32."""
    root = cfg.vocab_size * cfg.d_model + 2 * cfg.d_model
    per_block = (analytic_params(cfg)[0] - root) // cfg.n_layers
    return 2 * 4.0 * (root + 2 * per_block)


def estimate_memory(cfg: ModelConfig, batch_size: int, seq_len: int, lean: bool = False,
                    overhead: Overhead = Overhead(), shards: int = 1) -> MemoryPlan:
    """The recipe's memory table for training ``cfg`` at this batch and sequence length.

    ``lean`` is :mod:`growlib.lean`: gradients exist one parameter at a time,
    Adafactor's states are factored, blocks are checkpointed. ``overhead``: what the
    training process adds (its runtime; on a CPU, the C heap's slack).
    ``shards`` > 1: one process of an FSDP run over that many (growlib.parallel);
    ``batch_size`` is then this process's rows. Weights, gradients and AdamW's moments
    are divided among the processes, plus the groups gathered while they compute.
    """
    params, _ = analytic_params(cfg)
    tokens = batch_size * seq_len
    if lean:
        largest = max(p.numel() for p in build_model(cfg, device="meta").parameters())
        # one parameter's gradient at a time, plus Adafactor's temporaries while it steps
        # (the squared gradient and the update, each the parameter's size)
        gradients, optimizer = 3 * 4.0 * largest, 4.0 * _adafactor_values(cfg)
        activations = activation_bytes(cfg, tokens, checkpointing=True)
    else:
        gradients, optimizer = 4.0 * params, 8.0 * params
        activations = activation_bytes(cfg, tokens)
    model = 4.0 * params
    gathered = 0.0
    if shards > 1:
        if lean:
            raise ValueError("lean mode trains in one process only: accepted shards=1 with lean=True")
        model, gradients, optimizer = model / shards, gradients / shards, optimizer / shards
        gathered = gathered_bytes(cfg)
    # a step frees its activations and gradients and allocates them again (zero_grad sets them to None)
    slack = HEAP_SLACK * (activations + gradients + gathered) if overhead.heap_slack else 0.0
    return MemoryPlan(model=model, gradients=gradients, optimizer=optimizer, activations=activations,
                      heap_slack=slack, gathered=gathered, runtime=overhead.runtime)
