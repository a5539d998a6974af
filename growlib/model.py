"""The GPT of the series: pre-LN, LayerNorm and linear biases, RoPE, GELU MLP, tied embeddings.

Taught in notebook 01. One file, readable top to bottom (the nanoGPT habit).
Each LayerNorm keeps its own ``eps`` (``nn.LayerNorm.eps``): the x1.5 width
growth rescales it per module, and checkpoints store it per module.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .config import ModelConfig
from .losses import chunked_cross_entropy
from .moe import MoE, RouterStats


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables for rotary embeddings: each [max_seq_len, head_dim]."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)  # [T, hd/2]
    angles = torch.cat([angles, angles], dim=-1)  # [T, hd]
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, T, hd]; rotate each (i, i + hd/2) pair by its position's angle."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class Attention(nn.Module):
    """Causal multi-head self-attention with RoPE on q and k."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        # one matmul for q, k and v (three separate weights: growth treats them one by one)
        w = torch.cat([self.q.weight, self.k.weight, self.v.weight])  # [3d, d]
        bias = torch.cat([self.q.bias, self.k.bias, self.v.bias])  # [3d]
        qkv = F.linear(x, w, bias).view(b, t, 3, self.n_heads, self.head_dim)  # [B, T, 3, H, hd]
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # each [B, H, T, hd]
        q, k = apply_rope(q, cos[:t], sin[:t]), apply_rope(k, cos[:t], sin[:t])
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, hd]
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    """GELU MLP with biases: d -> d_mlp -> d."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc_in = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.fc_out = nn.Linear(cfg.d_mlp, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(x)))


class Block(nn.Module):
    """Pre-LN residual block: x + attn(LN(x)), then x + mlp(LN(x)).

    Returns the new residual stream and, for a MoE block, its router's statistics (else None).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.mlp: nn.Module = (MoE(cfg.d_model, cfg.d_mlp, cfg.n_experts, cfg.top_k, cfg.router_mode)
                               if cfg.is_moe else MLP(cfg))

    def forward(self, x: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> tuple[torch.Tensor, RouterStats | None]:
        x = x + self.attn(self.ln1(x), cos, sin)
        if isinstance(self.mlp, MoE):
            h, stats = self.mlp(self.ln2(x))  # a MoE returns its router's statistics with its output
            return x + h, stats
        return x + self.mlp(self.ln2(x)), None


class GPT(nn.Module):
    """Token embedding -> blocks -> final LayerNorm -> tied output head."""

    def __init__(self, cfg: ModelConfig, seed: int | None = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)  # [T, hd]
        self.register_buffer("rope_sin", sin, persistent=False)
        self.grad_checkpointing = False  # lean mode: keep block inputs only, recompute in backward
        if seed is not None:
            self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """GPT-2 initialisation from one seed: N(0, 0.02), residual writers scaled by 1/sqrt(2L)."""
        if self.tok_emb.weight.is_meta:
            return  # a meta model only has shapes
        gen = torch.Generator().manual_seed(seed)
        std = self.cfg.init_std
        out_std = std / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
                p.fill_(1.0)
            elif p.dim() == 1 or name.endswith(("b_in", "b_out")):
                p.zero_()  # every bias and LayerNorm shift
            else:
                writer = name.endswith(("attn.out.weight", "fc_out.weight", "w_out"))
                p.copy_(torch.randn(p.shape, generator=gen) * (out_std if writer else std))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                routing: list[RouterStats] | None = None) -> torch.Tensor:
        """idx: [B, T] token ids -> logits [B, T, V]; with targets [B, T], the mean next-token loss instead.

        The loss goes through the chunked head (growlib.losses): the [B*T, V] logits never
        exist at once, which is what lets the recipe's 50,257-token head train in little memory.
        ``routing``, if given, receives each MoE layer's :class:`~growlib.moe.RouterStats`
        (the training step adds their auxiliary losses to the loss).
        """
        h = self.features(idx, routing=routing)  # [B, T, d]
        if targets is None:
            return self.head(h)
        return chunked_cross_entropy(h.reshape(-1, h.shape[-1]), self.tok_emb.weight, targets.reshape(-1))

    def features(self, idx: torch.Tensor, hidden: list[torch.Tensor] | None = None,
                 routing: list[RouterStats] | None = None) -> torch.Tensor:
        """The final normalised features [B, T, d] that the tied head reads.

        ``hidden``, if given, receives the residual stream [B, T, d] after each block;
        ``routing`` each MoE block's router statistics.
        """
        t = idx.shape[1]
        if t > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {t} exceeds max_seq_len={self.cfg.max_seq_len}")
        x = self.tok_emb(idx)  # [B, T, d]
        for block in self.blocks:
            x, stats = self._run_block(block, x)
            if hidden is not None:
                hidden.append(x)
            if routing is not None and stats is not None:
                routing.append(stats)
        return self.ln_f(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The tied output head: features [..., d] -> logits [..., V] (the embedding matrix, transposed)."""
        return F.linear(h, self.tok_emb.weight)

    def _run_block(self, block: Block, x: torch.Tensor) -> tuple[torch.Tensor, RouterStats | None]:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, self.rope_cos, self.rope_sin, use_reentrant=False)
        return block(x, self.rope_cos, self.rope_sin)

    def moe_layers(self) -> list[MoE]:
        return [b.mlp for b in self.blocks if isinstance(b.mlp, MoE)]

    def ln_eps(self) -> dict[str, float]:
        """The eps of every LayerNorm, by module name (stored in checkpoints)."""
        return {n: m.eps for n, m in self.named_modules() if isinstance(m, nn.LayerNorm)}

    def set_ln_eps(self, eps: dict[str, float]) -> None:
        modules = dict(self.named_modules())
        for name, value in eps.items():
            modules[name].eps = float(value)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 0.8,
                 top_k: int | None = 40, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``max_new_tokens`` continuations of idx [B, T] (no KV cache: the models are small)."""
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            ctx = idx[:, -self.cfg.max_seq_len:]
            logits = self(ctx)[:, -1, :].float() / max(temperature, 1e-6)  # [B, V]
            if top_k is not None:
                kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = logits.softmax(-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(idx.device)
            idx = torch.cat([idx, nxt], dim=1)
        self.train(was_training)
        return idx


def model_from_state(cfg: ModelConfig, state: dict[str, torch.Tensor],
                     ln_eps: dict[str, float] | None = None) -> GPT:
    """A model that takes ownership of ``state``'s tensors (no second copy in memory).

    Built on the meta device, then the tensors are assigned, so a 2 B-parameter
    model costs its weights once; the RoPE tables are rebuilt beside them.
    """
    with torch.device("meta"):
        model = GPT(cfg, seed=None)
    model.load_state_dict(state, strict=True, assign=True)
    ref = model.tok_emb.weight
    cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
    model.rope_cos, model.rope_sin = cos.to(ref.device), sin.to(ref.device)
    if ln_eps:
        model.set_ln_eps(ln_eps)
    return model


def build_model(cfg: ModelConfig, seed: int | None = 0, device: str | torch.device = "cpu") -> GPT:
    """A model on ``device``; ``device="meta"`` gives shapes only (instant, no memory)."""
    if str(device) == "meta":
        with torch.device("meta"):
            return GPT(cfg, seed=None)
    return GPT(cfg, seed=seed).to(device)
