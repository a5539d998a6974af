"""The notebooks' explorers: controls that redraw a figure, drawn by the same function as the static one.

A callback never trains. It counts parameters, or builds a model from one already
in memory and compares the two on a few tokens, so each redraw takes a moment on
a small model. The figure a callback draws goes into an ``Output`` widget and is
closed there: in a callback no cell is executing, so matplotlib's inline backend
would never show a figure that is only created.

``GROWLIB_HEADLESS=1`` (set by the scripts that execute the notebooks without a
browser) leaves the explorers out: nothing could move them, and executing widget
cells can hang a headless client (jupyter/nbclient#312).
"""

from __future__ import annotations

import os
import threading
from typing import Callable

import matplotlib.pyplot as plt
import torch

from .config import ROUTER_MODES
from .grow import grow
from .model import GPT
from .plots import plot_preservation
from .upcycle import upcycle
from .verify import Preservation, check_preservation


HEADLESS_VAR = "GROWLIB_HEADLESS"
# One redraw at a time: a dragged slider sends a burst of changes, and the kernel may run
# their callbacks concurrently; matplotlib (its text parser above all) is not thread-safe.
_DRAWING = threading.Lock()


def explorer(draw: Callable[..., plt.Figure], controls: dict, columns: int = 3):
    """A box of ``controls`` (name -> ipywidget) over the figure ``draw(**values)``, redrawn on every change."""
    if os.environ.get(HEADLESS_VAR, "").strip() not in ("", "0"):
        print(f"(an explorer: shown when the notebook runs in a browser; {HEADLESS_VAR} is set)")
        return None
    import ipywidgets as widgets
    from IPython.display import display

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
    return widgets.VBox([*rows, figure])


def upcycling_gaps(dense: GPT, n_experts: int, tokens: torch.Tensor,
                   modes: tuple[str, ...] = ROUTER_MODES) -> dict[tuple[str, int], Preservation]:
    """How far each (router mode, k) upcycling of ``dense`` is from it, for k = 1 .. ``n_experts``."""
    return {(mode, k): check_preservation(dense, upcycle(dense, n_experts, k, router_mode=mode), tokens)
            for mode in modes for k in range(1, n_experts + 1)}


def growth_figure(model: GPT, tokens: torch.Tensor, scale_factor: float, extra_layers: int,
                  where: str = "end", noise: float = 0.0) -> plt.Figure:
    """Grow ``model`` one way and plot the per-layer preservation check of the result."""
    grown = grow(model, scale_factor, extra_layers, where=where, noise=noise, verbose=False)
    result = check_preservation(model, grown, tokens, where=where)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    label = f"×{scale_factor:g} width, +{extra_layers} {where}, noise {noise:g}"
    verdict = "preserved" if result.passed else "NOT preserved"
    plot_preservation({label: result}, ax, title=f"{verdict}: max |Δ| {result.overall:.1e} "
                                                 f"({grown.cfg.d_model} dim, {grown.cfg.n_layers} layers)")
    fig.tight_layout()
    return fig


__all__ = ["explorer", "growth_figure", "upcycling_gaps"]
