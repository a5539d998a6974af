"""Does growth pay? The grown path against fair baselines, measured in FLOPs, over several seeds.

``python -m growlib compare`` trains, on the same data and the same fixed
validation batches, for each random seed:

(i)   the grown path: dense -> MoE -> grown, FLOPs counted from the first dense step;
(ii)  the grown architecture from scratch for as many FLOPs as (i), its peak
      learning rate picked by a sweep (first seed; the best final validation loss);
(iii) the small dense model trained from scratch for as many FLOPs as (i);
(iv)  the dense model of phase 1 trained on for phase 2's FLOPs, against the
      upcycled MoE of (i) at equal compute.

Every baseline has its own warm-up and cosine decay over its own length. FLOPs
per step come from :func:`growlib.accounting.training_flops_per_token` (forward +
backward, active parameters, attention and the output head); savings are
defined in :mod:`growlib.curves`.

Optional, per seed: ``ablations`` re-run phase 3 from the same phase-2 model
with each growth variant; ``upcycling`` re-runs phase 2 from the same dense
model with the choices the Sparse Upcycling paper found to matter. A variant
whose layer plan equals one already run is not re-run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

from ..accounting import training_flops_per_token
from ..budget import phase_configs
from ..config import SCRATCH_LR_FACTORS, get_preset
from ..curves import Curve, CurveKind, curves_over_seeds, percent, saving, separated, spread
from ..grow import depth_plan, grow
from ..model import GPT, build_model
from ..train import PhaseSpec, evaluate
from ..upcycle import upcycle
from .history import History
from .paths import RESULTS_DIR
from .phases import PHASES, first_model, transition
from .pipeline import open_session
from .session import Session
from .spec import RunSpec
from .trainer import PhaseTrainer, ValidationCurve

__all__ = ["compare", "compare_one", "load_results", "RESULTS_DIR"]

TRAIN_FIT_STREAM = 99  # fixed training batches, evaluated like the validation ones: the train/validation gap

ABLATIONS = {
    "plain G_stack copy": {"preserve": False},
    "placement interleave": {"placement": "interleave"},
    "placement middle": {"placement": "middle"},
    "no symmetry-breaking noise": {"noise": 0.0},
    "width x1.5": {"scale_factor": 1.5},
}
# phase 2 again from the same dense model; each changes one choice of the recipe's upcycling
UPCYCLING = {
    "no re-warm-up (dense schedule continued)": {"continue_schedule": True},
    "router init x10 (std 0.2)": {"router_std": 0.2},
    "no load balancing (weight 0)": {"aux_loss_coef": 0.0},
    "load balancing x10 (weight 0.1)": {"aux_loss_coef": 0.1},
    "top-1 routing": {"top_k": 1},
}


@dataclasses.dataclass
class _Costs:
    """Training FLOPs of one step of each phase's model, and the FLOPs spent before each phase."""

    step: dict[int, float]
    before: dict[int, float]
    total: float


def _step_flops(s: Session, cfg) -> float:
    t = s.spec.train
    return float(training_flops_per_token(cfg, t.seq_len) * t.batch_size * t.seq_len)


def _costs(s: Session, cfgs: dict) -> _Costs:
    t = s.spec.train
    step = {p: _step_flops(s, c) for p, c in cfgs.items()}
    before = {1: 0.0, 2: t.steps_phase1 * step[1]}
    before[3] = before[2] + t.steps_phase2 * step[2]
    return _Costs(step, before, before[3] + t.steps_phase3 * step[3])


def _train_curve(s: Session, model: GPT, spec: PhaseSpec, curve: Curve, flops0: float, step_flops: float,
                 eval_every: int) -> None:
    """Train ``model`` over ``spec``, adding a point to ``curve`` every ``eval_every`` steps (quietly)."""
    points = ValidationCurve(eval_every, lambda done, v: curve.add(flops0 + done * step_flops, v))
    PhaseTrainer(s, curve=points, history=History(None), verbose=False).train(model, spec)


def _train_fit_batches(s: Session) -> list:
    """Fixed training batches, as many as the validation ones: each path's loss on them is its fit."""
    t = s.spec.train
    return [s.data.train_batch(t.batch_size, t.seed, TRAIN_FIT_STREAM, i) for i in range(t.eval_batches)]


def _fixed_steps(flops: float, step_flops: float) -> int:
    return max(1, round(flops / step_flops))


def _session(preset: str, data: str, seed: int, steps: int | None, token_budget: int | None) -> Session:
    """A quiet session with no output folder, for one seed (and a token budget, if asked)."""
    spec = RunSpec.build(preset, data=data, steps=steps, out=None, verbose=False)
    train = dataclasses.replace(spec.train, seed=seed)
    return open_session(dataclasses.replace(spec, train=train.with_token_budget(token_budget) if token_budget
                                            else train))


def _grown_path(s: Session, costs: _Costs, eval_every: int) -> tuple[Curve, list[GPT]]:
    """(i): the recipe's phases in turn, each trained with its own schedule; the curve and each phase's model."""
    curve, models, model = Curve(CurveKind.GROWN.label), [], None
    curve.add(0.0, s.eval(build_model(s.spec.model, seed=s.spec.train.seed)))
    for phase in PHASES:
        p = phase.number
        model = first_model(s) if phase.transition is None else transition(s, phase, model)
        _train_curve(s, model, s.phase_spec(p), curve, costs.before[p], costs.step[p], eval_every)
        models.append(model)
    return curve, models


def compare_one(preset: str, data: str, seed: int, eval_every: int, steps: int | None = None,
                token_budget: int | None = None, scratch_lrs: tuple[float, ...] | None = None,
                ablations: bool = False, upcycling: bool = False) -> dict:
    """Every path for one random seed; ``scratch_lrs`` the learning rates tried for (ii)."""
    started = time.perf_counter()
    s = _session(preset, data, seed, steps, token_budget)
    cfgs = phase_configs(s.spec.model, s.spec.growth)  # dense, MoE, grown
    costs = _costs(s, cfgs)
    grown, (dense, moe, big) = _grown_path(s, costs, eval_every)
    fit_batches = _train_fit_batches(s)
    fit = {CurveKind.GROWN.label: evaluate(big, fit_batches, s.device)}
    del big
    result = _baselines(s, cfgs, costs, grown, dense, fit, fit_batches, scratch_lrs, eval_every)
    result["paths_seconds"] = time.perf_counter() - started
    if upcycling:
        result["upcycling"] = _upcycling(s, dense, seed, result.pop("_dense_part"), eval_every)
    result.pop("_dense_part", None)
    if ablations:
        result["ablations"] = _ablations(s, moe, seed, costs, grown.val[-1], eval_every)
    result["seconds"] = time.perf_counter() - started
    result["variant_seconds"] = result["seconds"] - result["paths_seconds"]
    return result


def _scratch_sweep(s: Session, cfg, costs: _Costs, lrs: tuple[float, ...], fit_batches: list,
                   eval_every: int) -> list[dict]:
    """(ii) at each learning rate of ``lrs``: its curve, final loss and fit."""
    sweep = []
    for lr in lrs:
        curve, model = _from_scratch(s, cfg, costs.total, costs.step[3], lr, CurveKind.SCRATCH.label, eval_every)
        sweep.append({"lr": lr, "final_val": curve.val[-1], "curve": curve.to_json(),
                      "train_fit": evaluate(model, fit_batches, s.device)})
    return sweep


def _baselines(s: Session, cfgs: dict, costs: _Costs, grown: Curve, dense: GPT, fit: dict, fit_batches: list,
               scratch_lrs: tuple[float, ...] | None, eval_every: int) -> dict:
    """(ii)-(iv) against the grown path's curve ``grown``; the per-seed result."""
    t = s.spec.train
    sweep = _scratch_sweep(s, cfgs[3], costs, scratch_lrs or (t.lr_phase1,), fit_batches, eval_every)
    best = min(sweep, key=lambda r: r["final_val"])
    scratch = Curve(CurveKind.SCRATCH.label, *best["curve"].values())
    fit[scratch.label] = best["train_fit"]
    small, model = _from_scratch(s, cfgs[1], costs.total, costs.step[1], t.lr_phase1, CurveKind.SMALL.label,
                                 eval_every)
    fit[small.label] = evaluate(model, fit_batches, s.device)
    dense_more = _dense_continued(s, copy.deepcopy(dense), grown, costs, eval_every)
    moe_part = grown.between(costs.before[2], costs.before[3]).shifted(costs.before[2])
    moe_part.label = CurveKind.UPCYCLED_MOE.label
    dense_part = dense_more.shifted(costs.before[2])
    return {"seed": t.seed, "total_flops": costs.total,
            "curves": {c.label: c.to_json() for c in (grown, scratch, small, dense_more)},
            "scratch_lr": best["lr"], "scratch_lr_sweep": sweep,
            "saving_grown_vs_scratch": saving(grown, scratch), "saving_grown_vs_small": saving(grown, small),
            "saving_moe_vs_dense": saving(moe_part, dense_part),
            "final_val": {"grown": grown.val[-1], "scratch": scratch.val[-1], "small": small.val[-1],
                          "moe": moe_part.val[-1], "dense_continued": dense_more.val[-1]},
            "train_fit": fit, "steps": [t.steps_phase1, t.steps_phase2, t.steps_phase3],
            "phase_start_flops": [0.0, costs.before[2], costs.before[3]], "_dense_part": dense_part}


def _from_scratch(s: Session, cfg, flops: float, step_flops: float, lr: float, label: str,
                  eval_every: int) -> tuple[Curve, GPT]:
    """A model of ``cfg`` trained from its initialisation for ``flops``, one warm-up and decay over all of it."""
    curve = Curve(label)
    model = build_model(cfg, seed=s.spec.train.seed)
    curve.add(0.0, s.eval(model))
    spec = s.spec.phase(1).with_length(_fixed_steps(flops, step_flops), lr)
    _train_curve(s, model, spec, curve, 0.0, step_flops, eval_every)
    return curve, model


def _dense_continued(s: Session, dense: GPT, grown: Curve, costs: _Costs, eval_every: int) -> Curve:
    """(iv) the dense model trained on for phase 2's FLOPs, on phase 2's batches and learning rate."""
    curve = Curve(CurveKind.DENSE_CONTINUED.label)
    curve.add(costs.before[2], grown.between(0.0, costs.before[2]).val[-1])
    t = s.spec.train
    steps = _fixed_steps(t.steps_phase2 * costs.step[2], costs.step[1])
    _train_curve(s, dense, s.spec.phase(2).with_length(steps, t.lr_phase2), curve, costs.before[2], costs.step[1],
                 eval_every)
    return curve


def _upcycling(s: Session, dense: GPT, seed: int, dense_part: Curve, eval_every: int) -> dict:
    """Phase 2 again from the same dense model, once per upcycling choice, against the dense model continued."""
    out = {}
    g = s.spec.growth
    for name, change in UPCYCLING.items():
        moe = upcycle(dense, g.n_experts, change.get("top_k", g.top_k), router_std=change.get("router_std", 0.02),
                      seed=seed)
        spec = dataclasses.replace(s.spec.phase(2), balance_coef=change.get("aux_loss_coef",
                                                                            s.spec.train.aux_loss_coef))
        if change.get("continue_schedule"):  # where phase 1's schedule ended, no warm-up, decaying from there
            spec = dataclasses.replace(spec, peak_lr=s.spec.train.lr_phase1 * spec.min_lr_ratio, warmup=0)
        c = Curve(name)
        c.add(0.0, s.eval(moe))
        _train_curve(s, moe, spec, c, 0.0, _step_flops(s, moe.cfg), eval_every)
        out[name] = {**c.to_json(), "final_val": c.val[-1], "saving_vs_dense": saving(c, dense_part)}
    return out


def _ablations(s: Session, moe_final: GPT, seed: int, costs: _Costs, recipe_final: float, eval_every: int) -> dict:
    """Phase 3 again from the same phase-2 model, once per variant with its own layer plan."""
    out: dict = {}
    plans = {}  # (everything but the placement, layer plan) -> the ablation that ran it
    n_layers = moe_final.cfg.n_layers
    for name, change in ABLATIONS.items():
        preserve = change.get("preserve", True)
        g = dataclasses.replace(s.spec.growth, **{k: v for k, v in change.items() if k != "preserve"})
        key = (preserve, g.scale_factor, g.noise, tuple(depth_plan(n_layers, g.extra_layers, g.placement)))
        if key in plans:  # the same model would be trained again, step for step
            out[name] = {**out[plans[key]], "same_as": plans[key]}
            continue
        plans[key] = name
        model = grow(moe_final, g.scale_factor, g.extra_layers, where=g.placement,
                     noise=g.noise, preserve=preserve, seed=seed, verbose=False)
        c = Curve(name)
        c.add(costs.before[3], s.eval(model))
        _train_curve(s, model, s.spec.phase(3), c, costs.before[3], _step_flops(s, model.cfg), eval_every)
        out[name] = {**c.to_json(), "final_val": c.val[-1], "start_val": c.val[0], "recipe_final_val": recipe_final}
    return out


def phase_start_flops(result: dict, run: dict) -> list[float]:
    """Compute spent before phases 1, 2 and 3 of one run's grown path."""
    if "phase_start_flops" in run:
        return run["phase_start_flops"]
    p = get_preset(result["preset"])  # results files written before the field existed: recount
    cfgs = phase_configs(p.model, p.growth)
    tokens = p.train.batch_size * p.train.seq_len
    per_step = [training_flops_per_token(cfgs[i], p.train.seq_len) * tokens for i in (1, 2)]
    s1, s2, _ = run["steps"]
    return [0.0, s1 * per_step[0], s1 * per_step[0] + s2 * per_step[1]]


def where_grown_path_reaches(result: dict, run: dict, baseline: str = CurveKind.SCRATCH.label) -> dict:
    """The compute at which the grown path first reaches a baseline's final loss, and in which phase."""
    grown = Curve("grown", *run["curves"][CurveKind.GROWN.label].values())
    base = run["curves"][baseline]
    f = grown.reach(base["val"][-1])
    starts = phase_start_flops(result, run)
    phase = None if f is None else max(i + 1 for i, start in enumerate(starts) if f >= start)
    return {"flops": f, "phase": phase, "baseline_flops": base["flops"][-1], "phase_start_flops": starts}


def _variants_over_seeds(runs: list[dict], key: str, fields: tuple[str, ...]) -> dict:
    """Each variant's figures as spreads over the seeds that ran it."""
    if key not in runs[0]:
        return {}
    return {name: {**{f: spread([r[key][name][f] for r in runs]) for f in fields},
                   **({"same_as": v["same_as"]} if "same_as" in v else {})}
            for name, v in runs[0][key].items()}


def summarize(runs: list[dict]) -> dict:
    """The figures over seeds: savings in percent, final losses, train/validation gaps, curves."""
    labels = list(runs[0]["curves"])
    grown, scratch = CurveKind.GROWN.label, CurveKind.SCRATCH.label
    out = {
        "saving_vs_scratch_percent": percent(spread([r["saving_grown_vs_scratch"] for r in runs])),
        "saving_vs_small_percent": percent(spread([r["saving_grown_vs_small"] for r in runs])),
        "saving_moe_vs_dense_percent": percent(spread([r["saving_moe_vs_dense"] for r in runs])),
        "final_val": {k: spread([r["final_val"][k] for r in runs]) for k in runs[0]["final_val"]},
        "train_val_gap": {label: spread([r["final_val"][_short(label)] - r["train_fit"][label] for r in runs])
                          for label in runs[0]["train_fit"]},
        "curves": {label: curves_over_seeds([r["curves"][label] for r in runs]) for label in labels},
        "ablations": _variants_over_seeds(runs, "ablations", ("start_val", "final_val")),
        "upcycling": _variants_over_seeds(runs, "upcycling", ("final_val", "saving_vs_dense")),
    }
    fv = out["final_val"]
    out["grown_beats_small"] = fv["grown"]["mean"] < fv["small"]["mean"] and separated(fv["grown"], fv["small"])
    out["grown_beats_scratch"] = fv["grown"]["mean"] < fv["scratch"]["mean"] and separated(fv["grown"], fv["scratch"])
    out["curves"][grown]["phase_start_flops"] = runs[0]["phase_start_flops"]
    out["curves"][scratch]["lr"] = runs[0]["scratch_lr"]
    return out


def _short(label: str) -> str:
    return {CurveKind.GROWN.label: "grown", CurveKind.SCRATCH.label: "scratch", CurveKind.SMALL.label: "small"}[label]


def compare(preset: str = "compare", data: str = "world", seeds: tuple[int, ...] = (0, 1, 2), eval_every: int = 25,
            ablations: bool = False, steps: int | None = None, json_path: str | None = None,
            token_budget: int | None = None, upcycling: bool = False,
            lr_factors: tuple[float, ...] = SCRATCH_LR_FACTORS) -> dict:
    """Every path for each seed, the learning-rate sweep on the first; the figures over seeds (see module doc)."""
    p = get_preset(preset)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {list(seeds)} are invalid: accepted one or more distinct integers")
    if not lr_factors or any(f <= 0 for f in lr_factors):
        raise ValueError(f"learning-rate factors {list(lr_factors)} are invalid: accepted positive numbers")
    if token_budget is not None:
        p.train.with_token_budget(token_budget)  # a bad budget fails here, before any training
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs, best_lr = [], None
    for seed in seeds:
        print(f"[compare] preset {preset!r}, data {data!r}, seed {seed}...", flush=True)
        lrs = tuple(f * p.train.lr_phase1 for f in lr_factors) if best_lr is None else (best_lr,)
        runs.append(compare_one(preset, data, seed, eval_every, steps, token_budget, lrs, ablations, upcycling))
        r = runs[-1]
        best_lr = r["scratch_lr"]
        _report_seed(r)
    summary = summarize(runs)
    seconds = time.perf_counter() - started
    shown = Path(data).name if Path(data).exists() else data  # a file's name, never a path on this machine
    out = {"preset": preset, "data": shown, "seeds": list(seeds), "token_budget": token_budget,
           "tokens_per_run": sum(runs[0]["steps"]) * p.train.batch_size * p.train.seq_len
           if token_budget is None else token_budget,
           "scratch_lr_sweep": [{"lr": r["lr"], "final_val": r["final_val"]} for r in runs[0]["scratch_lr_sweep"]],
           "scratch_lr": best_lr, "scratch_lr_at_sweep_edge": _at_edge(best_lr, runs[0]["scratch_lr_sweep"]),
           **summary, "runs": runs, "seconds": seconds}
    _report(out)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(out, f, indent=1)
        print(f"[compare] results written to {json_path}")
    return out


def _at_edge(lr: float, sweep: list[dict]) -> bool:
    """Whether the best learning rate is the sweep's smallest or largest (the optimum may lie beyond)."""
    tried = [r["lr"] for r in sweep]
    return len(tried) > 1 and lr in (min(tried), max(tried))


def _report_seed(r: dict) -> None:
    sweep = ", ".join(f"{x['lr']:.2e} -> {x['final_val']:.4f}" for x in r["scratch_lr_sweep"])
    fv = r["final_val"]
    print(f"  {r['paths_seconds'] / 60:.1f} min for the four paths"
          + (f", {r['variant_seconds'] / 60:.1f} min for the variants" if r["variant_seconds"] > 1 else "")
          + f"; scratch learning rates: {sweep}")
    print(f"  final validation loss: grown {fv['grown']:.4f}, scratch {fv['scratch']:.4f}, "
          f"small trained on {fv['small']:.4f}; MoE {fv['moe']:.4f} vs dense continued {fv['dense_continued']:.4f}")
    print(f"  saving vs scratch {100 * r['saving_grown_vs_scratch']:.1f}%, vs small {100 * r['saving_grown_vs_small']:.1f}%, "
          f"MoE vs dense {100 * r['saving_moe_vs_dense']:.1f}%", flush=True)


def _report(out: dict) -> None:
    n = len(out["seeds"])
    for key in ("saving_vs_scratch_percent", "saving_vs_small_percent", "saving_moe_vs_dense_percent"):
        s = out[key]
        print(f"[compare] {key}: {s['mean']:.1f} ± {s['std']:.1f} (mean ± std over {n} seeds)")
    for key, s in out["final_val"].items():
        print(f"[compare] final validation loss, {key}: {s['mean']:.4f} ± {s['std']:.4f}")
    for label, s in out["train_val_gap"].items():
        print(f"[compare] validation - training loss, {label}: {s['mean']:+.4f} ± {s['std']:.4f}")
    for kind in ("upcycling", "ablations"):
        for name, v in out[kind].items():
            print(f"[compare] {kind} {name}: final {v['final_val']['mean']:.4f} ± {v['final_val']['std']:.4f}")
    paths = sum(r["paths_seconds"] for r in out["runs"]) / 60
    print(f"[compare] done in {out['seconds'] / 60:.1f} min ({paths:.1f} min for the four paths, "
          f"{out['seconds'] / 60 - paths:.1f} min for the variants)")


def results_path(data: str) -> Path:
    """``results/compare_<corpus>.json``: the committed results notebook 04 draws."""
    name = {"world": "bundled", "bundled": "bundled"}.get(data, "tinystories")
    return RESULTS_DIR / f"compare_{name}.json"


def load_results(data: str, name: str | None = None) -> dict:
    """The committed results of ``compare`` on a corpus (``world`` or ``tinystories``), or the file ``name``."""
    path = results_path(data) if name is None else RESULTS_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: `python -m growlib compare --data {data} --json {path}` "
                                "computes it")
    return json.loads(path.read_text())
