"""Notebook 02's explorer: upcycling with one of its rules turned off, next to the rules that preserve.

Upcycling gives back the dense model exactly when three rules hold (growlib.upcycle):

- **gates renormalised**: the gates of the k chosen experts sum to 1 (a softmax over the k
  chosen scores; off: a softmax over all E experts, then the top k, not renormalised);
- **experts copied exactly**: every expert is the MLP (off: Drop-Upcycling re-initialises half
  of each expert's hidden neurons);
- **dropless**: every token reaches its k experts (off: each expert takes at most
  ``capacity_factor * N * k / E`` of a forward pass's N*k assignments, in token order, and the
  rest are dropped, as capacity-limited MoEs such as the Switch Transformer do).

:class:`UpcyclingLab` upcycles the dense model once per (rules, k) and checks it against the
dense model on fixed tokens; :func:`upcycling_rules_figure` is the explorer's draw function.
A callback never trains.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from .accounting import analytic_params
from .config import PRESETS, ModelConfig
from .model import GPT
from .moe import Router
from .plots import plot_upcycling_gaps, plot_rule_failures
from .upcycle import upcycle
from .verify import Preservation, check_preservation

DROP_RATIO = 0.5  # Drop-Upcycling's share of re-initialised neurons (Nakamura et al.: 0.5)
CAPACITY_FACTOR = 1.0  # the Switch Transformer's default: each expert takes N*k/E assignments at most
# the explorer upcycles the dense model up to 2 E times for one redraw: only for MoEs up to this size
MAX_MOE_PARAMS = 50e6


@dataclass(frozen=True)
class Rules:
    """Which of upcycling's three exactness rules are kept (all three: the exact upcycling)."""

    renormalise: bool = True  # the k chosen gates sum to 1 (top-k, then softmax)
    copy_experts: bool = True  # every expert an exact copy of the MLP (off: Drop-Upcycling)
    dropless: bool = True  # every token reaches its k experts (off: a capacity, overflow dropped)

    def label(self) -> str:
        """Words for these rules: "every rule kept", or the rules turned off."""
        off = [text for kept, text in ((self.renormalise, "gates not renormalised"),
                                       (self.copy_experts, f"Drop-Upcycling {DROP_RATIO:.0%}"),
                                       (self.dropless, f"capacity factor {CAPACITY_FACTOR:g}, overflow dropped"))
               if not kept]
        return "every rule kept" if not off else "off: " + ", ".join(off)


EVERY_RULE = Rules()
ONE_RULE_OFF = (Rules(renormalise=False), Rules(copy_experts=False), Rules(dropless=False))


class CapacityRouter(Router):
    """A router whose experts take at most ``capacity_factor * N * k / E`` assignments each.

    Assignments are served in token order; an expert's overflow gets gate 0, so that token's
    output lacks that expert's share (the Switch Transformer passes such a token on through the
    residual connection alone). The gates of the kept assignments are left as they were.
    """

    def __init__(self, router: Router, capacity_factor: float = CAPACITY_FACTOR) -> None:
        super().__init__(router.weight.shape[1], router.weight.shape[0], router.top_k, router.mode)
        self.weight = router.weight
        self.capacity_factor = capacity_factor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, idx, gates = super().forward(x)  # [N, E], [N, k], [N, k]
        n_experts = logits.shape[-1]
        capacity = math.ceil(self.capacity_factor * idx.numel() / n_experts)
        chosen = F.one_hot(idx.reshape(-1), n_experts)  # [N*k, E], token-major
        queue_position = (chosen.cumsum(0) * chosen).sum(-1) - 1  # [N*k]: 0 for an expert's first assignment
        kept = (queue_position < capacity).view_as(gates)
        return logits, idx, gates * kept


def upcycle_with(dense: GPT, n_experts: int, top_k: int, rules: Rules = EVERY_RULE) -> GPT:
    """``dense`` upcycled by growlib.upcycle with ``rules`` (those turned off: broken on purpose)."""
    moe = upcycle(dense, n_experts, top_k, router_mode="topk_softmax" if rules.renormalise else "softmax_topk",
                  drop_ratio=0.0 if rules.copy_experts else DROP_RATIO)
    if not rules.dropless:
        for layer in moe.moe_layers():
            layer.router = CapacityRouter(layer.router)
    return moe


def moe_params(cfg: ModelConfig, n_experts: int, top_k: int) -> float:
    """Parameters of ``cfg`` upcycled to ``n_experts`` experts."""
    return analytic_params(dataclasses.replace(cfg, n_experts=n_experts, top_k=top_k))[0]


def presets_that_fit() -> list[str]:
    """The presets whose phase-2 MoE is small enough for the explorer (:data:`MAX_MOE_PARAMS`)."""
    return [name for name, p in PRESETS.items()
            if moe_params(p.model, p.growth.n_experts, p.growth.top_k) <= MAX_MOE_PARAMS]


class UpcyclingLab:
    """The dense model, fixed tokens [B, T], and every (rules, k) checked so far (each computed once)."""

    def __init__(self, dense: GPT, n_experts: int, tokens: torch.Tensor) -> None:
        self.dense, self.n_experts, self.tokens = dense, n_experts, tokens
        self.checks: dict[tuple[Rules, int], Preservation] = {}

    def fits(self) -> bool:
        return moe_params(self.dense.cfg, self.n_experts, 2) <= MAX_MOE_PARAMS

    def too_large(self) -> str:
        """Why this dense model is too large for the explorer, and the presets that run."""
        size = moe_params(self.dense.cfg, self.n_experts, 2)
        return (f"This explorer upcycles the dense model up to {2 * self.n_experts} times a redraw; its MoE would "
                f"have {size / 1e6:,.0f} M parameters, more than the {MAX_MOE_PARAMS / 1e6:.0f} M it runs at. "
                f"The presets it runs at: {', '.join(presets_that_fit())} "
                f"(harness.notebook_session(\"cpu\") at the top of this notebook).")

    def check(self, rules: Rules, k: int) -> Preservation:
        """The upcycling with ``rules`` at top-``k``, checked against the dense model."""
        if (rules, k) not in self.checks:
            moe = upcycle_with(self.dense, self.n_experts, k, rules)
            self.checks[(rules, k)] = check_preservation(self.dense, moe, self.tokens)
        return self.checks[(rules, k)]

    def gaps(self, rules: Rules) -> dict[tuple[str, int], Preservation]:
        """(label, k) -> check, for ``rules`` and for every rule kept, at every k."""
        return {(r.label(), k): self.check(r, k) for r in dict.fromkeys((rules, EVERY_RULE))
                for k in range(1, self.n_experts + 1)}


def upcycling_rules_figure(lab: UpcyclingLab, top_k: int, renormalise: bool = True, copy_experts: bool = True,
                           dropless: bool = True) -> plt.Figure:
    """The explorer's draw function: ``rules`` at ``top_k`` next to every rule kept, per layer and against k."""
    rules = Rules(renormalise, copy_experts, dropless)
    return plot_upcycling_gaps(lab.gaps(rules), rules.label(), top_k)


def rule_failures_figure(lab: UpcyclingLab, top_k: int) -> plt.Figure:
    """Each rule turned off alone, at ``top_k``, next to every rule kept (the static figure)."""
    checks = {r.label(): lab.check(r, top_k) for r in (EVERY_RULE, *ONE_RULE_OFF)}
    return plot_rule_failures(checks, title=f"Upcycling at top-{top_k} of {lab.n_experts}: each rule turned off alone")


def _toggle(description: str, kept: str, broken: str, value: bool):
    """Two buttons: the rule kept (True) or turned off (False)."""
    import ipywidgets as widgets

    return widgets.ToggleButtons(options=[(kept, True), (broken, False)], value=value, description=description,
                                 style={"description_width": "60px", "button_width": "auto"})


def upcycling_explorer(lab: UpcyclingLab, top_k: int, headless_var: str = "GROWLIB_HEADLESS"):
    """The explorer: k and three rule toggles over :func:`upcycling_rules_figure`.

    It opens with the gates not renormalised. Where ``headless_var`` is set (a notebook executed
    without a browser, where nothing could move the controls) the cell shows the figure the
    explorer opens with. A model too large to redraw gets a message saying so, and the presets
    that run.
    """
    import ipywidgets as widgets

    from .explore import explorer

    headless = os.environ.get(headless_var, "").strip() not in ("", "0")
    if not lab.fits():
        if headless:
            print(lab.too_large())
            return None
        return widgets.HTML(f"<b>The explorer is off for this preset.</b> {lab.too_large()}")
    if headless:
        upcycling_rules_figure(lab, top_k, renormalise=False)  # shown by the inline backend at the cell's end
        return None
    draw = lambda top_k, renormalise, copy_experts, dropless: upcycling_rules_figure(
        lab, top_k, renormalise, copy_experts, dropless)
    return explorer(draw, dict(
        top_k=widgets.IntSlider(value=top_k, min=1, max=lab.n_experts, description="top-k"),
        renormalise=_toggle("gates", "renormalised", "not renormalised", False),
        copy_experts=_toggle("experts", "exact copies", f"Drop-Upcycling {DROP_RATIO:.0%}", True),
        dropless=_toggle("tokens", "dropless", f"capacity factor {CAPACITY_FACTOR:g}", True),
    ), columns=2)


__all__ = ["CAPACITY_FACTOR", "DROP_RATIO", "EVERY_RULE", "MAX_MOE_PARAMS", "ONE_RULE_OFF", "CapacityRouter",
           "Rules", "UpcyclingLab", "presets_that_fit", "rule_failures_figure", "upcycle_with",
           "upcycling_explorer", "upcycling_rules_figure"]
