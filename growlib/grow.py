"""Phase 2 -> 3: bilateral growth, wider (``widen``) and deeper (``deepen``), function-preserving.

Taught in notebook 03, which derives each rule below (notebooks/rules.md tabulates them).

**Width** by a factor ``f`` (2, 1.5, ...): with ``d' = f d = k d + r`` (k = floor(f)) the
new residual stream is ``[x, ..., x (k copies), mean(x) (r dims)]`` (LEMON's average
expansion; for integer ``f``, r = 0 and this is plain duplication). Heads are copied
whole, f H heads of the old size (for x1.5: 4 -> 6, the first half of the heads
copied once): a head made wider instead would change its score scale 1/sqrt(hd) and,
under rotate-half RoPE, pair each coordinate with its own copy at other frequencies,
so its scores would be sqrt(2) times the old ones only at distance 0. MLP neurons are
copied by the same rule (x1.5: the first half of them, once). Then:

- writers into the residual (embedding, attention out-proj, MLP out) get their
  output rows copied k times plus r rows holding the mean of the original rows;
- every LayerNorm gets ``gamma' = [sqrt(s) gamma x k, u]``, ``beta' = [beta x k, 0]``
  and ``eps' = s eps`` with ``s = k d / d'``: its output is ``[LN(x) x k, 0]``;
- readers of a copied input get that input's column split among its copies:
  ``W/c + N_i`` with zero-sum noise ``N`` (``noise`` x std(W)), so the sum is still W
  and the function is unchanged. The readers of the residual are q, k, v and MLP-in
  (their columns on the r mean dims, whose input is 0, are small random ones); the
  writers above read copied heads and neurons, so their columns are split with noise
  too. The writers' noise is what separates a unit from its copy: the two have equal
  pre-activations (their input is duplicated, and each row's split sums to the old
  row), so their gradients differ only by ``2 gelu'(h) (N^T g) [u, u]``, N the writer
  column's noise, g the gradient at the residual. With noise on the readers alone
  they get the same gradient; with ``noise=0`` they are exact clones forever;
- the router reads the residual too, but its rows are experts (none is copied): each
  copy of its columns gets ``W_r / k`` (zeros on the mean dims) and no noise. Noise
  there would cancel on the duplicated input and has no copied unit to separate;
- the final LayerNorm is divided by k = floor(f) (not by f) so the tied output head,
  whose embedding is copied k times, stays exact: for x1.5, k = 1.

**Depth**: a copy of a block is inserted after its source (``depth_plan`` says where);
zeroing the copy's attention and MLP output projections (weights and biases, every
expert's) makes it the identity. ``preserve=False`` keeps the plain copy, not
function-preserving, for comparison. The console calls a copy "Gstack copy of
Layer i" as the recipe does, although G_stack proper stacks copies of the whole model.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch

from .config import PLACEMENTS, SPLIT_NOISE, ModelConfig
from .model import GPT, model_from_state


# ---------------------------------------------------------------- validation

def _whole(value: float, what: str, factor: float) -> int:
    if abs(value - round(value)) > 1e-9:
        raise ValueError(f"scale_factor={factor!r} gives {what} = {value:g}, not a whole number: "
                         f"accepted factors f >= 1 for which f x d_model, f x n_heads and f x d_mlp are integers")
    return int(round(value))


def widened_config(cfg: ModelConfig, factor: float) -> ModelConfig:
    """The config after widening by ``factor`` (validated before any tensor is touched)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) \
            or factor < 1:
        raise ValueError(f"scale_factor={factor!r} is invalid: accepted a number >= 1 (the recipe uses 2, and 1.5 as its fallback)")
    d = _whole(cfg.d_model * factor, "d_model", factor)
    heads = _whole(cfg.n_heads * factor, "n_heads", factor)
    hidden = _whole(cfg.d_mlp * factor, "d_mlp", factor)
    s = (d // cfg.d_model) * cfg.d_model / d
    return dataclasses.replace(cfg, d_model=d, n_heads=heads, d_mlp=hidden, ln_eps=cfg.ln_eps * s)


def depth_plan(n_layers: int, extra: int, where: str = "end") -> list[int]:
    """Old layer index of every layer of the deepened model; a copy follows its source.

    ``end`` (the recipe's): ``extra`` copies of the last layer, appended.

    ``interleave`` spreads the copies over the whole stack: every layer gets
    floor(extra / L) copies, and the remaining r = extra mod L go after layers
    floor((j+1) L / r) - 1, j < r (evenly spaced, the last one after the last layer).
    At extra = L that is one copy after each layer.

    ``middle`` copies only the middle of the stack (where MIDAS grows): the copies
    cycle over the m = min(extra, max(1, L // 2)) middle layers, from layer
    (L - m) // 2 on; for extra <= L / 2 these are the ``extra`` middle layers, one
    copy each.

    Why three different models for every extra >= 2 and L >= 2: ``interleave`` and
    ``end`` always copy the last layer, while the middle span ends before it
    (its last layer is at most 3L/4 - 1); and ``interleave`` also copies an earlier
    layer (layer 0 once extra >= L), which ``end`` never does. (At extra = 1 interleave
    and end both copy the last layer once.)
    """
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
        raise ValueError(f"extra_layers={extra!r} is invalid: accepted an integer >= 0")
    if where not in PLACEMENTS:
        raise ValueError(f"placement {where!r} is unknown: accepted one of {PLACEMENTS}")
    if where == "end":
        sources = [n_layers - 1] * extra
    elif where == "interleave":
        rounds, rest = divmod(extra, n_layers)
        sources = list(range(n_layers)) * rounds + [(j + 1) * n_layers // rest - 1 for j in range(rest)]
    else:  # middle
        span = min(extra, max(1, n_layers // 2))
        start = (n_layers - span) // 2
        sources = [start + j % span for j in range(extra)]
    plan = []
    for i in range(n_layers):
        plan.append(i)
        plan += [i] * sources.count(i)
    return plan


# ---------------------------------------------------------------- width helpers

class WidthMaps:
    """Index maps from new to old positions for the residual, the head dims and the hidden units."""

    def __init__(self, old: ModelConfig, new: ModelConfig) -> None:
        self.d, self.k = old.d_model, new.d_model // old.d_model
        self.r = new.d_model - self.k * self.d  # mean dims
        self.s = self.k * self.d / new.d_model
        hd = old.head_dim
        heads = copy_map(old.n_heads, new.n_heads)  # [H']
        self.attn = (heads[:, None] * hd + torch.arange(hd)).reshape(-1)  # [d'] old dim of each new dim
        self.hidden = copy_map(old.d_mlp, new.d_mlp)  # [h']
        self.resid = copy_map(self.d, self.k * self.d)  # [k d] (the mean dims come after)


def copy_map(n: int, n_new: int) -> torch.Tensor:
    """[0..n-1] repeated as often as fits, then its first (n_new mod n) entries."""
    return torch.arange(n_new) % n


def _split_columns(w: torch.Tensor, src: torch.Tensor, noise: float, gen: torch.Generator,
                   asymmetry: float = 0.0) -> torch.Tensor:
    """w: [out, n_in] -> [out, len(src)]: column j's copies share w[:, j] evenly, plus zero-sum noise.

    ``asymmetry`` a: a column with two copies is shared (1/2 + a, 1/2 - a) instead (still summing
    to w[:, j], so still exact): the copies then differ from the start by 2a w[:, j].
    """
    counts = torch.bincount(src, minlength=w.shape[1]).to(w.dtype)  # copies of each old column
    out = w[:, src]
    out.div_(counts[src])  # in place: at the recipe's size every temporary is hundreds of MB
    if asymmetry:
        second = torch.arange(len(src)) >= w.shape[1]  # copy_map: the later copy of a column comes after all firsts
        pair = counts[src] == 2
        out.mul_(torch.where(pair & second, 1 - 2 * asymmetry, torch.where(pair, 1 + 2 * asymmetry, 1.0)).to(w.dtype))
    if noise > 0 and bool((counts > 1).any()):
        n = torch.randn(out.shape, generator=gen, dtype=w.dtype).mul_(noise * w.std())
        group_mean = torch.zeros_like(w).index_add_(1, src, n).div_(counts)  # [out, n_in]
        n.sub_(group_mean[:, src])  # zero-sum within each column's copies; 0 for unique columns
        out.add_(n)
    return out


def _read_resid(w: torch.Tensor, m: WidthMaps, noise: float, gen: torch.Generator) -> torch.Tensor:
    """Columns for a reader of the residual: split over the k copies, small random on the mean dims."""
    cols = _split_columns(w, m.resid, noise, gen)
    if m.r:
        extra = torch.randn(w.shape[0], m.r, generator=gen, dtype=w.dtype) * (noise * w.std())
        cols = torch.cat([cols, extra], 1)  # their input is exactly 0 (LayerNorm output)
    return cols


def _write_resid(w: torch.Tensor, b: torch.Tensor, m: WidthMaps) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows for a writer into the residual: k copies, then r rows of the mean of the first copy."""
    rows, bias = w[m.resid], b[m.resid]
    if m.r:
        rows = torch.cat([rows, rows[: m.d].mean(0, keepdim=True).expand(m.r, -1)], 0)
        bias = torch.cat([bias, b.mean().expand(m.r)])
    return rows, bias


def _writer(w: torch.Tensor, b: torch.Tensor, m: WidthMaps, col_map: torch.Tensor, noise: float,
            gen: torch.Generator, asymmetry: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A writer into the residual that reads copied units (heads or neurons): rows copied, columns split."""
    rows, bias = _write_resid(w, b, m)
    return _split_columns(rows, col_map, noise, gen, asymmetry), bias


def _widen_mlp(w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor, b_out: torch.Tensor,
               m: WidthMaps, noise: float, gen: torch.Generator, asymmetry: float = 0.0) -> tuple[torch.Tensor, ...]:
    """An MLP in nn.Linear layout (w_in [h, d], w_out [d, h]): copied neurons, split readers."""
    return (_read_resid(w_in[m.hidden], m, noise, gen), b_in[m.hidden].clone(),
            *_writer(w_out, b_out, m, m.hidden, noise, gen, asymmetry))


def _norm(gamma: torch.Tensor, beta: torch.Tensor, m: WidthMaps, scale: float = 1.0):
    root = math.sqrt(m.s)
    g = gamma[m.resid] * root * scale
    b = beta[m.resid] * scale
    if m.r:
        g = torch.cat([g, (gamma.mean() * root * scale).expand(m.r)])
        b = torch.cat([b, b.new_zeros(m.r)])
    return g, b


# ---------------------------------------------------------------- widen

@torch.no_grad()
def widen(model: GPT, factor: float, noise: float = SPLIT_NOISE, seed: int = 0, asymmetry: float = 0.0) -> GPT:
    """A new model ``factor`` times wider computing the same function; ``model`` is untouched.

    ``asymmetry``: each copied MLP unit's outgoing weights are shared (1/2 + a, 1/2 - a) by its two
    copies instead of evenly (:func:`_split_columns`), another exact way to make the copies differ.
    """
    if noise < 0:
        raise ValueError(f"noise={noise!r} is invalid: accepted a number >= 0")
    old, new = model.cfg, widened_config(model.cfg, factor)
    m = WidthMaps(old, new)
    gen = torch.Generator().manual_seed(seed)
    src = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    # the generator runs on the CPU; growth is done there in the model's dtype
    W = lambda key: src[key].detach().cpu()

    emb = W("tok_emb.weight")  # [V, d]: a writer along dim 1, no noise (tied to the output)
    out["tok_emb.weight"] = _write_resid(emb.t(), emb.new_zeros(old.d_model), m)[0].t().contiguous()
    out["ln_f.weight"], out["ln_f.bias"] = _norm(W("ln_f.weight"), W("ln_f.bias"), m, scale=1.0 / m.k)

    for i in range(old.n_layers):
        p = f"blocks.{i}."
        for ln in ("ln1", "ln2"):
            out[p + ln + ".weight"], out[p + ln + ".bias"] = _norm(W(p + ln + ".weight"), W(p + ln + ".bias"), m)
        for proj in ("q", "k", "v"):  # output: copied heads, input: the residual
            w, b = W(f"{p}attn.{proj}.weight"), W(f"{p}attn.{proj}.bias")
            out[f"{p}attn.{proj}.weight"] = _read_resid(w[m.attn], m, noise, gen)
            out[f"{p}attn.{proj}.bias"] = b[m.attn].clone()
        out[p + "attn.out.weight"], out[p + "attn.out.bias"] = _writer(
            W(p + "attn.out.weight"), W(p + "attn.out.bias"), m, m.attn, noise, gen)
        if old.is_moe:
            _widen_experts(src, out, p + "mlp.", m, noise, gen, asymmetry)
        else:
            names = [p + "mlp." + n for n in ("fc_in.weight", "fc_in.bias", "fc_out.weight", "fc_out.bias")]
            for name, t in zip(names, _widen_mlp(*(W(n) for n in names), m, noise, gen, asymmetry)):
                out[name] = t
    device = model.tok_emb.weight.device
    grown = model_from_state(new, {k: v.to(device) for k, v in out.items()})
    for name, eps in model.ln_eps().items():  # every LayerNorm's own eps, rescaled by s
        grown.set_ln_eps({name: eps * m.s})
    grown.train(model.training)
    return grown


def _widen_experts(src: dict, out: dict, p: str, m: WidthMaps, noise: float, gen: torch.Generator,
                   asymmetry: float = 0.0) -> None:
    """Every expert widened like a dense MLP; the router gets W_r / k on each copy, no noise."""
    w_in, b_in = src[p + "w_in"].cpu(), src[p + "b_in"].cpu()  # [E, d, h], [E, h]
    w_out, b_out = src[p + "w_out"].cpu(), src[p + "b_out"].cpu()  # [E, h, d], [E, d]
    # experts store [in, out] (for x @ w): transposed to nn.Linear's [out, in] and back
    experts = [_widen_mlp(w_in[e].t(), b_in[e], w_out[e].t(), b_out[e], m, noise, gen, asymmetry)
               for e in range(len(w_in))]
    for i, name in enumerate(("w_in", "b_in", "w_out", "b_out")):
        parts = [ex[i].t() if ex[i].dim() == 2 else ex[i] for ex in experts]
        out[p + name] = torch.stack(parts).contiguous()
    router = src[p + "router.weight"].cpu()  # [E, d]
    cols = router[:, m.resid] / m.k
    if m.r:
        cols = torch.cat([cols, cols.new_zeros(router.shape[0], m.r)], 1)
    out[p + "router.weight"] = cols


# ---------------------------------------------------------------- deepen

def _identity_init(block: torch.nn.Module) -> None:
    """Zero the block's two output projections (weights and biases): x + 0 + 0 = x."""
    with torch.no_grad():
        block.attn.out.weight.zero_()
        block.attn.out.bias.zero_()
        mlp = block.mlp
        if hasattr(mlp, "w_out"):  # MoE: every expert's output projection
            mlp.w_out.zero_()
            mlp.b_out.zero_()
        else:
            mlp.fc_out.weight.zero_()
            mlp.fc_out.bias.zero_()


def _stack_layers(model: GPT, extra: int, where: str, preserve: bool, verbose: bool) -> GPT:
    """Insert the copies into ``model`` itself (callers pass a model they own)."""
    plan = depth_plan(model.cfg.n_layers, extra, where)
    old_blocks = list(model.blocks)
    new_blocks, seen = [], set()
    for pos, src in enumerate(plan):
        if src not in seen:
            seen.add(src)
            new_blocks.append(old_blocks[src])
            continue
        block = copy.deepcopy(old_blocks[src])
        if preserve:
            _identity_init(block)
        new_blocks.append(block)
        if verbose:
            # the recipe's line, then what the copy computes: with its output projections zeroed
            # it adds nothing to the residual stream, so it starts as the identity
            how = ("Gstack copy of Layer {src} (output projections zeroed: starts as the identity)" if preserve
                   else "plain G_stack copy of Layer {src} (NOT function-preserving)")
            print(f"  > Initialized Layer {pos} as {how.format(src=src)}")
    model.blocks = torch.nn.ModuleList(new_blocks)
    model.cfg = dataclasses.replace(model.cfg, n_layers=len(new_blocks))
    return model


def deepen(model: GPT, extra_layers: int, where: str = "end", preserve: bool = True,
           verbose: bool = False) -> GPT:
    """A new model with ``extra_layers`` more blocks; identity copies unless ``preserve=False``."""
    depth_plan(model.cfg.n_layers, extra_layers, where)  # validate before copying anything
    return _stack_layers(copy.deepcopy(model), extra_layers, where, preserve, verbose)


def grow(model: GPT, scale_factor: float, extra_layers: int, where: str = "end",
         noise: float = SPLIT_NOISE, preserve: bool = True, seed: int = 0, verbose: bool = True,
         asymmetry: float = 0.0) -> GPT:
    """Bilateral growth: widen by ``scale_factor``, then add ``extra_layers`` (the recipe's phase 3)."""
    new_cfg = widened_config(model.cfg, scale_factor)  # every check before any tensor is built
    depth_plan(model.cfg.n_layers, extra_layers, where)
    if noise < 0:
        raise ValueError(f"noise={noise!r} is invalid: accepted a number >= 0")
    if verbose:
        print(f"[Bilateral Growth] Scaling x{scale_factor:g} width, +{extra_layers} layers...")
    grown = widen(model, scale_factor, noise, seed, asymmetry) if scale_factor != 1 else copy.deepcopy(model)
    grown = _stack_layers(grown, extra_layers, where, preserve, verbose)
    if verbose:
        print(f"✓ Growth Complete. New Config: {new_cfg.d_model} dim, {grown.cfg.n_layers} layers, "
              f"{new_cfg.n_heads} heads.")
    return grown
