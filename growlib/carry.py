"""AdamW's state carried through a transition: what m and v become when a model is upcycled or grown.

Taught in notebook 04. A function-preserving transition maps the old weights W to new ones
W' = T(W): rows of a writer copied k times, columns of a reader split over their c copies (W/c),
experts copied from one MLP. If training should go on as if nothing happened, the first update
after the transition must be the old update carried through the same map: ΔW' = T(ΔW). Then
W' + ΔW' = T(W + ΔW), and the grown model computes after one step what the small one would have.

AdamW's update is lr · m̂ / (√v̂ + ε), unchanged when every gradient is scaled by one factor. The
gradient of a new entry follows from T: the loss is the same function of W' = T(W), so for a
copied axis the k copies share the old gradient (each gets g/k), while for a split axis every
copy sees the old input and gets the whole g. Hence, per entry:

- **copied** (k copies of the old index): m' = m/k, v' = v/k²: the update is the old update, ΔW;
- **split** (c copies): m' = m, v' = v: the update is again ΔW, but T asks for ΔW/c, so the
  parameter's learning rate is divided by c (its weight decay multiplied by c, so that
  lr · wd stays the same); this is μP's rule for Adam, hidden layers' rate ∝ 1/width;
- **LayerNorm** (γ' = a γ, with a = √s, and 1/k more for the final one): m' = m/(k a), v' = v/(k a)²,
  learning rate × a;
- **upcycled experts** (E copies of one MLP): the gates of a token sum to 1, so the experts'
  gradients sum to the dense one, about g/E each: m' = m/E, v' = v/E². Exact only on average
  (each expert sees its own tokens); the new router starts with no state;
- **an inserted identity block** (growlib.grow.deepen): its gradient is new, so m' = 0; its v is
  its source block's, which keeps AdamW's first steps on it the size of that block's steps
  instead of a full lr · sign(g) on every weight of a projection that starts at zero.

Exact (to float rounding) for integer width factors and for weight decay on split tensors; the
mean dims of a ×1.5 growth start with no state, and a tensor whose columns are split unevenly
(×1.5: some copied, some not) gets the mean of its columns' rates. Gradient clipping sees the
new model's norm, so a clipped first step differs.
"""

from __future__ import annotations

import math

import torch

from .config import ModelConfig
from .grow import WidthMaps, depth_plan
from .model import GPT

State = dict[str, dict[str, torch.Tensor]]  # parameter name -> {"step", "exp_avg", "exp_avg_sq"}

# Each tensor's axes through widening, for the names of growlib.model (nn.Linear stores [out, in];
# the experts [E, in, out]). "R" the residual stream, "A" the attention's head dims, "H" the MLP's
# hidden units, "-" unchanged; "+" an axis whose entries are copied, "/" one whose entries are split.
_AXES = {
    "tok_emb.weight": ("-", "R+"),
    "attn.q.weight": ("A+", "R/"), "attn.k.weight": ("A+", "R/"), "attn.v.weight": ("A+", "R/"),
    "attn.q.bias": ("A+",), "attn.k.bias": ("A+",), "attn.v.bias": ("A+",),
    "attn.out.weight": ("R+", "A/"), "attn.out.bias": ("R+",),
    "mlp.fc_in.weight": ("H+", "R/"), "mlp.fc_in.bias": ("H+",),
    "mlp.fc_out.weight": ("R+", "H/"), "mlp.fc_out.bias": ("R+",),
    "mlp.w_in": ("-", "R/", "H+"), "mlp.b_in": ("-", "H+"),
    "mlp.w_out": ("-", "H/", "R+"), "mlp.b_out": ("-", "R+"),
    "mlp.router.weight": ("-", "R/"),
}


def adamw_state(model: GPT, optimizer: torch.optim.Optimizer) -> State:
    """The optimizer's per-parameter state, by parameter name (parameters it never stepped are left out)."""
    return {name: {k: v.detach().clone() for k, v in optimizer.state[p].items()}
            for name, p in model.named_parameters() if p in optimizer.state and optimizer.state[p]}


def load_adamw_state(model: GPT, optimizer: torch.optim.Optimizer, state: State) -> None:
    """Fill a fresh optimizer of ``model`` with ``state`` (parameters absent from it start fresh)."""
    for name, p in model.named_parameters():
        if name in state:
            optimizer.state[p] = {k: v.to(p.device) for k, v in state[name].items()}


# ---------------------------------------------------------------- upcycling

_EXPERT_OF = {"fc_in.weight": "w_in", "fc_in.bias": "b_in", "fc_out.weight": "w_out", "fc_out.bias": "b_out"}


def through_upcycling(state: State, n_experts: int) -> State:
    """``state`` of a dense model -> the state of its upcycled MoE (growlib.upcycle): each expert m/E, v/E²."""
    out: State = {}
    for name, s in state.items():
        if ".mlp." not in name:
            out[name] = s
            continue
        block, part = name.split(".mlp.")  # "blocks.i", "fc_in.weight"
        moments = {k: (v.t() if v.dim() == 2 else v) for k, v in s.items() if k != "step"}  # experts: [in, out]
        out[f"{block}.mlp.{_EXPERT_OF[part]}"] = {
            "step": s["step"].clone(),
            "exp_avg": (moments["exp_avg"] / n_experts).expand(n_experts, *moments["exp_avg"].shape).contiguous(),
            "exp_avg_sq": (moments["exp_avg_sq"] / n_experts ** 2).expand(n_experts, *moments["exp_avg_sq"].shape)
            .contiguous()}
    return out  # the router is new: it starts with no state


# ---------------------------------------------------------------- widening and deepening

_NORMS = ("ln1.weight", "ln2.weight", "ln1.bias", "ln2.bias", "ln_f.weight", "ln_f.bias")


def _suffix(name: str) -> str:
    """A parameter's name without its block index: "blocks.3.attn.q.weight" -> "attn.q.weight"."""
    return name.split(".", 2)[2] if name.startswith("blocks.") else name


def _axis_factors(axis: str, m: WidthMaps) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(old index of each new index, -1 for a mean or extra dim; moment factor; rate factor) of one axis."""
    if axis == "-":
        return None
    kind, how = axis
    src = {"R": torch.cat([m.resid, torch.full((m.r,), -1, dtype=torch.long)]), "A": m.attn, "H": m.hidden}[kind]
    valid = src >= 0
    copies = torch.bincount(src[valid]).to(torch.float32)[src.clamp(min=0)]  # copies of each entry's old index
    moment = torch.where(valid, 1.0 / copies if how == "+" else torch.ones_like(copies), torch.zeros_like(copies))
    rate = 1.0 / copies if how == "/" else torch.ones_like(copies)
    return src, moment, rate


def _norm_scale(name: str, m: WidthMaps) -> float:
    """a in γ' = a γ (β' = a β) for a LayerNorm parameter (growlib.grow._norm)."""
    return (math.sqrt(m.s) if name.endswith("weight") else 1.0) / (m.k if name.startswith("ln_f") else 1)


def width_rate(name: str, m: WidthMaps) -> float:
    """The learning-rate factor of a widened parameter: 1/c for split axes (their mean), a for a LayerNorm."""
    if name.endswith(_NORMS):
        return _norm_scale(name, m)
    rate = 1.0
    for f in map(lambda a: _axis_factors(a, m), _AXES[_suffix(name)]):
        if f is not None:
            rate *= float(f[2][f[0] >= 0].mean())
    return rate


def _widen_moments(name: str, s: dict, m: WidthMaps) -> dict:
    """One tensor's AdamW state through widening (see the module's docstring)."""
    axes = ("R+",) if name.endswith(_NORMS) else _AXES[_suffix(name)]
    mean, square = s["exp_avg"], s["exp_avg_sq"]
    factor = torch.ones(()) / (_norm_scale(name, m) if name.endswith(_NORMS) else 1.0)
    for dim, f in enumerate(map(lambda a: _axis_factors(a, m), axes)):
        if f is None:
            continue
        src, moment, _ = f
        mean, square = mean.index_select(dim, src.clamp(min=0)), square.index_select(dim, src.clamp(min=0))
        shape = [1] * mean.dim()
        shape[dim] = -1
        factor = factor * moment.view(shape)
    return {"step": s["step"].clone(), "exp_avg": mean * factor, "exp_avg_sq": square * factor ** 2}


def _widened(old: ModelConfig, new: ModelConfig) -> ModelConfig:
    """``new``'s width at ``old``'s depth: the model growlib.grow.widen makes before deepening."""
    return ModelConfig(**dict(old.__dict__, d_model=new.d_model, n_heads=new.n_heads, d_mlp=new.d_mlp,
                              ln_eps=new.ln_eps))


def through_growth(state: State, old: ModelConfig, new: ModelConfig, extra: int, where: str) -> State:
    """``state`` of a model of ``old`` through growlib.grow.grow to ``new`` (widened, then ``extra`` layers).

    Each inserted block starts with its source block's v and step and m = 0; the original
    blocks keep theirs under their new index.
    """
    if new.d_model != old.d_model:
        m = WidthMaps(old, _widened(old, new))
        state = {name: _widen_moments(name, s, m) for name, s in state.items()}
    plan = depth_plan(old.n_layers, extra, where)  # old layer of each new one
    out = {n: s for n, s in state.items() if not n.startswith("blocks.")}
    seen: set[int] = set()
    for new_i, old_i in enumerate(plan):
        inserted = old_i in seen  # a later occurrence of an old layer is a copy of it
        seen.add(old_i)
        for name, s in state.items():
            if name.startswith(f"blocks.{old_i}."):
                out[f"blocks.{new_i}.{_suffix(name)}"] = (
                    {"step": s["step"].clone(), "exp_avg": torch.zeros_like(s["exp_avg"]),
                     "exp_avg_sq": s["exp_avg_sq"].clone()} if inserted else s)
    return out


def inserted_parameters(model: GPT, old_layers: int, extra: int, where: str) -> tuple[str, ...]:
    """The names of the parameters of every block growlib.grow.deepen inserted into ``model``."""
    plan, seen, new = depth_plan(old_layers, extra, where), set(), []
    for i, src in enumerate(plan):
        if src in seen:
            new.append(f"blocks.{i}.")
        seen.add(src)
    return tuple(name for name, _ in model.named_parameters() if name.startswith(tuple(new)))


def growth_lr_scales(model: GPT, old: ModelConfig) -> dict[str, float]:
    """Every parameter of ``model`` (grown from a model of ``old``) -> its learning-rate factor."""
    if model.cfg.d_model == old.d_model:
        return {}
    m = WidthMaps(old, _widened(old, model.cfg))
    return {name: width_rate(name, m) for name, _ in model.named_parameters()}
