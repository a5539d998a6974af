"""The notebooks' figures: loss curves, parameter budgets, memory, expert load, preservation.

Every function draws on a Matplotlib ``Axes`` it is given (or a new one) and
returns it, so a notebook can combine figures and a test can call them headless.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib import ticker
import numpy as np

from .accounting import ParamReport
from .memory import GB, MemoryPlan
from .verify import THRESHOLD, Preservation

PHASE_COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}


def _axes(ax=None, figsize=(7, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_loss(records: list[dict], ax=None, title: str = "Training loss across phases"):
    """Logged training loss against the global step, one colour per phase, boundaries marked."""
    ax = _axes(ax)
    offset, boundaries = 0, []
    for phase in sorted({r["phase"] for r in records if "loss" in r}):
        rows = [r for r in records if r["phase"] == phase and "loss" in r]
        steps = np.array([r["step"] for r in rows]) + offset
        ax.plot(steps, [r["loss"] for r in rows], marker=".", color=PHASE_COLORS.get(phase), label=f"phase {phase}")
        evals = [r for r in records if r["phase"] == phase and "eval_loss" in r]
        if evals:
            ax.scatter([evals[-1]["step"] + offset], [evals[-1]["eval_loss"]], marker="*", s=120,
                       color=PHASE_COLORS.get(phase), edgecolor="k", zorder=3)
        offset = steps[-1] + 1
        boundaries.append(offset)
    for b in boundaries[:-1]:
        ax.axvline(b - 0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel("step (all phases)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title + "  (★ = validation loss at the end of a phase)")
    ax.legend()
    return ax


def plot_budget(reports: dict[int, ParamReport], ax=None, title: str = "Parameters per phase"):
    """Stacked bars: active parameters per token and idle experts, per phase (millions)."""
    ax = _axes(ax, (6, 3.5))
    phases = sorted(reports)
    active = np.array([reports[p].active for p in phases]) / 1e6
    idle = np.array([reports[p].inactive for p in phases]) / 1e6
    labels = [f"phase {p}" for p in phases]
    ax.bar(labels, active, color="tab:blue", label="active per token")
    ax.bar(labels, idle, bottom=active, color="tab:gray", alpha=0.6, label="idle experts")
    for i, p in enumerate(phases):
        ax.text(i, active[i] + idle[i], f"{reports[p].total / 1e6:,.1f} M\n{100 * reports[p].efficiency:.1f}% active",
                ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("parameters (M)")
    ax.set_title(title)
    ax.set_ylim(0, (active + idle).max() * 1.3)
    ax.legend(loc="upper left")
    return ax


def plot_memory(plans: dict[int, MemoryPlan], available: float | None = None, ax=None,
                title: str = "Training memory per phase (estimate)"):
    """Stacked bars of the recipe's memory table, with this machine's memory as a line."""
    ax = _axes(ax, (6, 3.5))
    phases = sorted(plans)
    parts = [("model", "tab:blue"), ("gradients", "tab:orange"), ("optimizer", "tab:green"),
             ("activations", "tab:red")]
    bottom = np.zeros(len(phases))
    for name, color in parts:
        vals = np.array([getattr(plans[p], name) for p in phases]) / GB
        ax.bar([f"phase {p}" for p in phases], vals, bottom=bottom, color=color, label=name)
        bottom += vals
    if available:
        ax.axhline(available / GB, color="k", ls="--", lw=1, label=f"this machine ({available / GB:.0f} GB)")
    ax.set_ylabel("GB")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_expert_load(records: list[dict], phase: int = 2, fig=None):
    """Heatmap per layer: share of routed tokens per expert (rows) at each logged step (columns)."""
    rows = [r for r in records if r["phase"] == phase and "expert_tokens" in r]
    if not rows:
        raise ValueError(f"no expert statistics for phase {phase} in these records")
    load = np.array([r["expert_tokens"] for r in rows], dtype=float)  # [steps, layers, experts]
    load /= load.sum(-1, keepdims=True)
    n_layers, n_exp = load.shape[1], load.shape[2]
    fig = fig or plt.figure(figsize=(min(3 * n_layers, 14), 2.8))
    axes = fig.subplots(1, n_layers, squeeze=False)[0]
    for layer, ax in enumerate(axes):
        im = ax.imshow(load[:, layer].T, aspect="auto", cmap="viridis", vmin=0, vmax=max(2.0 / n_exp, load.max()),
                       extent=(rows[0]["step"], rows[-1]["step"], n_exp - 0.5, -0.5))
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel("step")
        if layer == 0:
            ax.set_ylabel("expert")
    fig.subplots_adjust(top=0.8, wspace=0.3)  # room for the title above the panels' own
    fig.colorbar(im, ax=list(axes), label="share of tokens")
    fig.suptitle(f"Expert load in phase {phase} (balanced = {1 / n_exp:.3f})", fontsize=10, y=0.99)
    return fig


def plot_boundary(before: tuple[str, float], after: dict[str, float], ax=None,
                  title: str = "Validation loss across the boundary"):
    """Validation loss on the same fixed batches just before a boundary and just after it, per variant.

    The axis is zoomed to the values (it does not start at 0): a preserving variant sits on
    the dashed line of the model before, a non-preserving one above it by its jump.
    """
    ax = _axes(ax, (7, 3.2))
    name0, v0 = before
    labels, values = [name0, *after], [v0, *after.values()]
    ax.axhline(v0, color="tab:blue", ls="--", lw=1)
    for i, v in enumerate(values):
        color = "tab:blue" if i == 0 else ("tab:green" if abs(v - v0) < 1e-4 else "tab:red")
        ax.plot([i, i], [v0, v], color=color, lw=2)
        ax.scatter([i], [v], s=60, color=color, zorder=3)
        ax.annotate(f"{v:.4f}" if i == 0 else f"{v:.4f}\n({v - v0:+.4f})", (i, v), textcoords="offset points",
                    xytext=(8, 0), va="center", fontsize=8)
    lo, hi = min(values), max(values)
    pad = max(hi - lo, 1e-3) * 0.3
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-0.5, len(values) - 0.2)
    ax.set_xticks(range(len(values)), labels, fontsize=8)
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(f"{title} (axis zoomed to the values)", fontsize=10)
    return ax


def plot_expert_similarity(similarity, title: str = "How alike the experts are"):
    """Cosine similarity of every pair of experts' weights, one panel per layer.

    ``similarity``: [layers, experts, experts], 1 on the diagonal. The colour scale spans the
    pairs' values (the same scale in every panel); the diagonal (each expert with itself) is grey.
    """
    sim = np.asarray(similarity, dtype=float)
    n_layers, n_exp = sim.shape[0], sim.shape[1]
    pairs = np.where(np.eye(n_exp, dtype=bool), np.nan, sim)  # [layers, E, E], the diagonal left out
    lo, hi = np.nanmin(pairs), np.nanmax(pairs)
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("0.85")
    fig, axes = plt.subplots(1, n_layers, figsize=(min(3 * n_layers, 14), 3), squeeze=False)
    for layer, ax in enumerate(axes[0]):
        im = ax.imshow(pairs[layer], cmap=cmap, vmin=lo, vmax=max(hi, lo + 1e-6))
        ax.set_title(f"layer {layer}: mean {np.nanmean(pairs[layer]):.3f}", fontsize=9)
        ax.set_xlabel("expert")
        if layer == 0:
            ax.set_ylabel("expert")
    fig.subplots_adjust(top=0.8, wspace=0.3)
    fig.colorbar(im, ax=list(axes[0]), label="cosine similarity")
    fig.suptitle(f"{title} (scale {lo:.3f} to {hi:.3f}; grey: an expert with itself)", fontsize=10, y=0.99)
    return fig


def plot_clone_divergence(traces: dict[str, list[float]], title: str = "Widened units and their copies",
                          ylabel: str = "1 - cos(unit, its copy)", xlabel: str = "training step after widening"):
    """1 - a cosine similarity against the step, one line per trace, on a log axis.

    ``traces``: label -> similarity after 0, 1, 2, ... steps (growlib.symmetry: a widened unit
    with its copy, or two upcycled experts). A trace that stays at exactly 1 (clones) has nothing
    to draw on the log axis; its label says so.
    """
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, sims in traces.items():
        gap = 1.0 - np.asarray(sims, dtype=float)
        if (gap > 0).all():
            ax.plot(np.arange(len(gap)), gap, marker=".", label=label)
        else:
            ax.plot([], [], " ", label=f"{label}: 1 - cos = 0 at every step")
    _log_y(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def weights_colorbar(fig, axes, label: str = "weight value"):
    """One colorbar for a row of :func:`draw_matrix` panels drawn on a shared scale (the first panel's)."""
    return fig.colorbar(axes[0].images[0], ax=list(axes), shrink=0.85, label=label)


def _log_y(ax) -> None:
    """A log axis labelled in plain text ("1e-05"), never through matplotlib's mathtext parser.

    The explorers redraw these figures from widget callbacks, and there the mathtext
    parser (one shared instance holding its state while it parses) has intermittently
    failed on its own default labels ("Unknown symbol: \\mathdefault").
    """
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.0e}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def plot_preservation(results: dict[str, Preservation], ax=None, floor: float = 1e-9,
                      title: str = "Per-layer preservation after growth"):
    """max |Δ| of the residual stream after each layer (log scale), one line per growth variant."""
    ax = _axes(ax, (7, 3.8))
    for label, res in results.items():
        diffs = np.maximum(np.array(res.layer_diffs), floor)
        line, = ax.plot(range(len(diffs)), diffs, marker="o", label=label)
        ins = [i for i, f in enumerate(res.inserted) if f]
        ax.scatter(ins, diffs[ins], marker="s", s=60, facecolors="none", edgecolors=line.get_color())
    ax.axhline(THRESHOLD, color="red", ls="--", lw=1, label=f"threshold {THRESHOLD:g}")
    _log_y(ax)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("layer of the grown model (□ = inserted layer)")
    ax.set_ylabel("max |Δ residual|")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    return ax


def plot_upcycling_gaps(gaps: dict, chosen: str, top_k: int, floor: float = 1e-9):
    """Upcycling's distance from the dense model: per layer at one k, and against k, one line per setting.

    ``gaps`` maps (setting, k) to the :class:`Preservation` of that upcycling (the setting in
    words, e.g. growlib.explore_upcycling's ``Rules.label()``); ``chosen``: the setting whose
    figures the titles give, at ``top_k``.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
    same_k = {f"{setting}, top-{k}": res for (setting, k), res in gaps.items() if k == top_k}
    check = gaps[(chosen, top_k)]
    plot_preservation(same_k, a, floor=floor, title=f"{_verdict(check)}: max |Δlogit| {check.logit_diff:.1e}, "
                                                    f"residual up to {max(check.layer_diffs):.1e}")
    a.set_xlabel("layer")
    a.set_ylabel("max |Δ residual stream|")
    for setting in dict.fromkeys(s for s, _ in gaps):
        ks = sorted(k for s, k in gaps if s == setting)
        line, = b.plot(ks, [max(gaps[(setting, k)].logit_diff, floor) for k in ks], marker="o", label=setting)
        if setting == chosen:
            b.scatter([top_k], [max(check.logit_diff, floor)], s=160, facecolors="none",
                      edgecolors=line.get_color(), lw=2, zorder=3)
    b.axhline(THRESHOLD, color="red", ls="--", lw=1, label=f"threshold {THRESHOLD:g}")
    _log_y(b)
    b.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    b.set_xlabel("experts per token (k)")
    b.set_ylabel("max |Δlogit|")
    b.set_title(f"The gap against k (○ = {chosen}, top-{top_k})", fontsize=9)
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _verdict(check: Preservation) -> str:
    return "exact (to float rounding)" if check.passed else "NOT exact"


def plot_rule_failures(checks: dict[str, Preservation], title: str = "Each rule turned off alone", floor: float = 1e-9):
    """One bar per setting: its max |Δlogit| from the model before (log axis), the threshold as a line.

    ``checks``: setting in words -> its :class:`Preservation`; each bar is labelled with its value
    and coloured by the check's verdict (residual stream and logits).
    """
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(checks) + 1.4))
    values = [max(c.logit_diff, floor) for c in checks.values()]
    colors = ["tab:green" if c.passed else "tab:red" for c in checks.values()]
    y = np.arange(len(checks))
    ax.barh(y, values, color=colors, left=floor)
    for i, (v, c) in enumerate(zip(values, checks.values())):
        ax.text(v * 1.5, i, f"{v:.1e}  ({'exact' if c.passed else 'not exact'})", va="center", fontsize=8)
    ax.axvline(THRESHOLD, color="red", ls="--", lw=1, label=f"threshold {THRESHOLD:g}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.0e}"))  # no mathtext (see _log_y)
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlim(floor, max(values) * 300)
    ax.set_yticks(y, list(checks), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("max |Δlogit| from the model before")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def draw_matrix(ax, w, title: str, vmax: float | None = None, blocks: tuple[int, int] | None = None):
    """A small weight matrix as a heatmap, rows = outputs, columns = inputs.

    ``blocks`` (rows, columns): a black line after every that many rows and columns, to show
    the blocks a growth rule builds (e.g. (4, 4): the four 4 x 4 copies of a widened 4 x 4 matrix).
    """
    w = np.asarray(w, dtype=float)
    vmax = vmax or float(np.abs(w).max()) or 1.0
    ax.imshow(w, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    if blocks:
        for r in range(blocks[0], w.shape[0], blocks[0]):
            ax.axhline(r - 0.5, color="k", lw=1.5)
        for c in range(blocks[1], w.shape[1], blocks[1]):
            ax.axvline(c - 0.5, color="k", lw=1.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def budget_and_memory_figure(model_cfg, growth, batch_size: int, seq_len: int, available: float | None = None):
    """Parameters and training memory of the three phases for one growth plan (the explorer's figure)."""
    from .budget import phase_configs, phase_reports
    from .memory import estimate_memory

    reports = phase_reports(model_cfg, growth, seq_len)
    plans = {p: estimate_memory(c, batch_size, seq_len) for p, c in phase_configs(model_cfg, growth).items()}
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
    plot_budget(reports, a, title=f"Parameters (x{growth.scale_factor:g} width, +{growth.extra_layers} layers, "
                                  f"top-{growth.top_k} of {growth.n_experts})")
    plot_memory(plans, available, b, title=f"Training memory, batch {batch_size} x {seq_len} tokens (fp32 AdamW)")
    fig.tight_layout()
    return fig


def plot_loss_zoom(records: list[dict], phase: int, ax=None, window: int | None = None,
                   val: tuple[float, float] | None = None):
    """The logged training loss around the boundary into ``phase``, on :func:`plot_loss`'s step axis, zoomed.

    ``window``: steps shown on each side (default: 60% of the shorter of the two phases). ``val``
    (before, after): the validation loss on the fixed batches just before and just after the
    transition, drawn as two points beside the boundary line. The y axis is fitted to what is shown.
    """
    ax = _axes(ax, (4, 3.2))
    offsets = _phase_offsets(records)
    lengths = {p: max(r["step"] for r in records if r["phase"] == p and "loss" in r) + 1 for p in (phase - 1, phase)}
    window = window or max(1, int(0.6 * min(lengths.values())))
    boundary = offsets[phase] - 0.5
    shown = []
    for p in (phase - 1, phase):
        rows = [r for r in records if r["phase"] == p and "loss" in r and abs(r["step"] + offsets[p] - boundary) <= window]
        steps, losses = [r["step"] + offsets[p] for r in rows], [r["loss"] for r in rows]
        ax.plot(steps, losses, marker=".", color=PHASE_COLORS.get(p), label=f"phase {p} (training)")
        shown += losses
    if val is not None:
        ax.scatter([boundary - 0.02 * window, boundary + 0.02 * window], val, marker="*", s=120, color="k",
                   zorder=3, label=f"validation: {val[0]:.4f} → {val[1]:.4f}")
        shown += list(val)
    ax.axvline(boundary, color="grey", ls="--", lw=1)
    pad = 0.15 * (max(shown) - min(shown) or 1e-3)
    ax.set_ylim(min(shown) - pad, max(shown) + pad)
    ax.set_xlim(boundary - window, boundary + window)
    ax.set_xlabel("step (all phases)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"Zoom on the phase {phase - 1} → {phase} boundary", fontsize=10)
    ax.legend(fontsize=7)
    return ax


def _phase_offsets(records: list[dict]) -> dict[int, int]:
    """Phase -> the global step of its step 0, as :func:`plot_loss` lays the phases end to end."""
    offsets, offset = {}, 0
    for phase in sorted({r["phase"] for r in records if "loss" in r}):
        offsets[phase] = offset
        offset += max(r["step"] for r in records if r["phase"] == phase and "loss" in r) + 1
    return offsets


def plot_preservation_panels(results: dict[str, Preservation], axes, floor: float = 1e-9):
    """One small panel per growth variant: max |Δ| after each layer, the x ticks naming the old layer each copies.

    ``axes``: as many Axes as ``results`` (sharing a y axis reads best). Each panel's title
    carries its own largest difference, so the titles are the printed numbers.
    """
    for ax, (label, res) in zip(np.ravel(axes), results.items()):
        diffs = np.maximum(np.array(res.layer_diffs), floor)
        ax.plot(range(len(diffs)), diffs, marker="o", color="tab:green")
        ins = [i for i, f in enumerate(res.inserted) if f]
        ax.scatter(ins, diffs[ins], marker="s", s=70, facecolors="none", edgecolors="k", zorder=3)
        ax.axhline(THRESHOLD, color="red", ls="--", lw=1)
        _log_y(ax)
        ax.set_xticks(range(len(diffs)), [str(s) for s in res.layer_sources], fontsize=7)
        ax.set_title(f"{label}\nlargest {max(res.layer_diffs):.1e}, logits {res.logit_diff:.1e}", fontsize=8)
        ax.set_xlabel("old layer each layer matches (□ = inserted copy)", fontsize=7)
    for ax in np.atleast_2d(axes)[:, 0]:  # the first panel of each row
        ax.set_ylabel(f"max |Δ residual|\n(red: threshold {THRESHOLD:g})", fontsize=8)
    return axes


def plot_rule_check(kept: Preservation, broken: Preservation | None, broken_label: str = "", ax=None,
                    floor: float = 1e-9):
    """Growth by every rule against growth with one rule off: max |Δ| after each layer, then of the logits.

    ``broken`` None draws the first alone. The lines carry gids ``kept`` and ``broken`` (a test
    reads what the figure shows).
    """
    ax = _axes(ax, (7, 3.8))
    pairs = [(kept, "every rule kept", "tab:green", "-", "kept")]
    if broken is not None:
        pairs.append((broken, broken_label, "tab:red", "--", "broken"))
    for res, label, color, style, gid in pairs:
        diffs = np.maximum([*res.layer_diffs, res.logit_diff], floor)  # the last point: the logits
        line, = ax.plot(range(len(diffs)), diffs, ls=style, marker="o", color=color,
                        label=f"{label}: largest {res.overall:.1e}")
        line.set_gid(gid)
        ins = [i for i, f in enumerate(res.inserted) if f]
        ax.scatter(ins, diffs[ins], marker="s", s=70, facecolors="none", edgecolors=color, zorder=3)
    ax.axhline(THRESHOLD, color="k", ls=":", lw=1, label=f"threshold {THRESHOLD:g}")
    _log_y(ax)
    n = len(kept.layer_diffs)
    ax.set_xticks(range(n + 1), [*map(str, range(n)), "logits"], fontsize=8)
    ax.set_xlabel("layer of the grown model (□ = inserted layer), then the logits")
    ax.set_ylabel("max |Δ|")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)  # below: clear of the lines
    return ax
