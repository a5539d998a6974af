"""The notebooks' explorers: controls that redraw a figure, drawn by the same function as the static one.

A callback never trains. It counts parameters, or builds a model from one already
in memory and compares the two on a few tokens, so each redraw takes a moment on
a small model. The figure a callback draws goes into an ``Output`` widget and is
closed there: in a callback no cell is executing, so matplotlib's inline backend
would never show a figure that is only created.

``GROWLIB_HEADLESS=1`` (set by the scripts that execute the notebooks without a
browser) leaves the controls out: nothing could move them, and executing widget
cells can hang a headless client (jupyter/nbclient#312). The figure is drawn once,
at the controls' starting values, so a notebook executed that way (its committed
outputs) shows what the explorer shows first, and no notice about the variable.
"""

from __future__ import annotations

import html
import os
import threading
from typing import Callable

import matplotlib.pyplot as plt
import torch

from .broken_growth import NO_RULE_OFF, RULES, grow_without, unused_because
from .budget import phase_configs
from .config import ROUTER_MODES, GrowthConfig, get_preset
from .grow import grow
from .model import GPT, build_model
from .plots import plot_rule_check
from .symmetry import clone_pairs, max_clone_difference
from .upcycle import upcycle
from .verify import Preservation, check_preservation


HEADLESS_VAR = "GROWLIB_HEADLESS"
# One redraw at a time: a dragged slider sends a burst of changes, and the kernel may run
# their callbacks concurrently; matplotlib (its text parser above all) is not thread-safe.
_DRAWING = threading.Lock()


def explorer(draw: Callable[..., plt.Figure], controls: dict, columns: int = 3, note: str | None = None):
    """A box of ``controls`` (name -> ipywidget) over the figure ``draw(**values)``, redrawn on every change.

    ``note``: a line shown above the controls (what the explorer runs on, and why).
    """
    from IPython.display import display

    if os.environ.get(HEADLESS_VAR, "").strip() not in ("", "0"):
        if note:
            print(note)
        fig = draw(**{name: control.value for name, control in controls.items()})
        display(fig)  # the figure at the starting values: what a reader of the executed notebook sees
        plt.close(fig)
        return None
    import ipywidgets as widgets

    figure = widgets.Output()

    def redraw(change=None) -> None:
        with _DRAWING, figure:  # a callback that raises shows its traceback here, under the controls
            values = {name: control.value for name, control in controls.items()}  # the latest, when its turn comes
            figure.clear_output(wait=True)
            fig = draw(**values)
            display(fig)
            plt.close(fig)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    items = list(controls.values())
    rows = [widgets.HBox(items[i:i + columns]) for i in range(0, len(items), columns)]
    header = [widgets.HTML(f"<i>{html.escape(note)}</i>")] if note else []
    return widgets.VBox([*header, *rows, figure])


def upcycling_gaps(dense: GPT, n_experts: int, tokens: torch.Tensor,
                   modes: tuple[str, ...] = ROUTER_MODES) -> dict[tuple[str, int], Preservation]:
    """How far each (router mode, k) upcycling of ``dense`` is from it, for k = 1 .. ``n_experts``."""
    return {(mode, k): check_preservation(dense, upcycle(dense, n_experts, k, router_mode=mode), tokens)
            for mode in modes for k in range(1, n_experts + 1)}


PLACEMENT_WORDS = {"end": "at the end", "interleave": "interleaved", "middle": "in the middle"}
NOISE_CHOICES = (0.0, 1e-4, 1e-3, 0.02, 0.1, 1.0)  # split noise, x std(W): 0 included, exactly
MAX_PARAMETERS = 20e6  # a redraw grows the model twice (by the rules, and with one rule off)


def growth_figure(model: GPT, tokens: torch.Tensor, scale_factor: float, extra_layers: int,
                  where: str = "end", noise: float = 0.0, rule_off: str = NO_RULE_OFF) -> plt.Figure:
    """Grow ``model`` one way, by every rule and with ``rule_off`` turned off; plot both checks side by side."""
    kept_model = grow(model, scale_factor, extra_layers, where=where, noise=noise, verbose=False)
    kept = check_preservation(model, kept_model, tokens, where=where)
    shape = f"{kept_model.cfg.d_model} dims, {kept_model.cfg.n_heads} heads, {kept_model.cfg.n_layers} layers"
    gap = (max_clone_difference(kept_model, clone_pairs(model.cfg.d_mlp, kept_model.cfg.d_mlp))
           if kept_model.cfg.d_mlp > model.cfg.d_mlp else None)
    del kept_model
    unused = unused_because(rule_off, model, scale_factor, extra_layers, noise) if rule_off != NO_RULE_OFF else None
    broken = None
    if rule_off != NO_RULE_OFF:
        broken = check_preservation(model, grow_without(model, rule_off, scale_factor, extra_layers, where, noise),
                                    tokens, where=where)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    plot_rule_check(kept, broken, f"without “{rule_off}”", ax)
    lines = [f"×{scale_factor:g} width, +{extra_layers} layers {PLACEMENT_WORDS[where]}, split noise {noise:g} → {shape}",
             f"every rule kept: max |Δ| {kept.overall:.1e}, {'preserved' if kept.passed else 'NOT preserved'}"]
    if broken is not None:
        verdict = "preserved" if broken.passed else "NOT preserved"
        lines.append(f"“{rule_off}” off: max |Δ| {broken.overall:.1e}, {verdict}: {unused or RULES[rule_off]}")
    if gap is not None:
        lines.append(f"a hidden unit's incoming weights and its copy's differ by at most {gap:.1e}"
                     + (": clones, and clones forever" if gap == 0 else ""))
    ax.set_title("\n".join(lines), fontsize=8)
    fig.tight_layout()
    return fig


def explorer_models(model: GPT, tokens: torch.Tensor, presets: tuple[str, ...] = ("cpu", "tiny"),
                    max_parameters: float = MAX_PARAMETERS) -> tuple[dict[str, tuple[GPT, torch.Tensor]], str]:
    """The models a growth explorer may regrow at every redraw, by name, and a note saying which and why.

    ``model`` itself when it has at most ``max_parameters``; otherwise, never silently, MoEs of
    the ``presets``' phase-2 shapes with random weights, on random tokens, each named as such.
    """
    n = sum(p.numel() for p in model.parameters())
    if n <= max_parameters:
        name = f"this session's MoE ({n / 1e6:.2f} M parameters)"
        return {name: (model, tokens)}, f"Grows {name}, checked on {tokens.numel()} of its validation tokens."
    models = {}
    for preset in map(get_preset, presets):
        cfg = phase_configs(preset.model, preset.growth)[2]
        small = build_model(cfg, seed=0)
        size = sum(p.numel() for p in small.parameters())
        if size <= max_parameters:
            ids = torch.randint(0, cfg.vocab_size, (1, min(64, cfg.max_seq_len)), generator=torch.Generator().manual_seed(0))
            models[f"random MoE of the {preset.name} preset's shape ({size / 1e6:.2f} M)"] = (small, ids)
    note = (f"This session's MoE ({n / 1e6:.1f} M parameters) is too large to grow at every redraw (this "
            f"explorer's limit: {max_parameters / 1e6:.0f} M). It runs on the sizes offered below: "
            f"MoEs of smaller presets' shapes with random weights (untrained), on random tokens.")
    return models, note


def growth_explorer(model: GPT, tokens: torch.Tensor, growth: GrowthConfig, max_parameters: float = MAX_PARAMETERS):
    """Notebook 03's explorer: width, depth, placement, split noise (0 included) and one rule to turn off."""
    import ipywidgets as widgets

    models, note = explorer_models(model, tokens, max_parameters=max_parameters)
    noise = min(NOISE_CHOICES, key=lambda v: abs(v - growth.noise))
    controls = dict(
        scale_factor=widgets.SelectionSlider(options=[1.0, 1.5, 2.0, 3.0], value=2.0, description="width ×"),
        extra_layers=widgets.IntSlider(value=growth.extra_layers, min=0, max=8, description="+ layers"),
        where=widgets.Dropdown(options=[(w, p) for p, w in PLACEMENT_WORDS.items()], value="end",
                               description="new layers"),
        noise=widgets.SelectionSlider(options=list(NOISE_CHOICES), value=noise, description="split noise"),
        rule_off=widgets.ToggleButtons(options=[("nothing", NO_RULE_OFF), *((r, r) for r in RULES if r != NO_RULE_OFF)],
                                       value=NO_RULE_OFF, description="turn off",
                                       style={"button_width": "auto"}),
    )
    if len(models) > 1:
        controls["size"] = widgets.Dropdown(options=list(models), description="model")
    first = next(iter(models))

    def draw(size: str = first, **choice) -> plt.Figure:
        grown_from, ids = models[size]
        return growth_figure(grown_from, ids, **choice)

    return explorer(draw, controls, columns=2, note=note)


__all__ = ["explorer", "explorer_models", "growth_explorer", "growth_figure", "upcycling_gaps"]
