"""Does growth pay? The grown path against training from scratch, measured in FLOPs.

``python -m growlib compare`` trains, on the same data and the same fixed
validation batches, for each seed:

(a) the grown path: dense -> MoE -> grown, FLOPs counted from the first dense step;
(b) the final grown architecture from scratch, for as many FLOPs as (a) used;
(c) the dense model trained on for the FLOPs that phase 2 used (upcycled MoE
    against continued dense training at equal compute).

FLOPs per step come from :func:`growlib.accounting.training_flops_per_token`
(forward + backward, active parameters, attention and the output head). Each
run logs validation loss against cumulative FLOPs. The saving is
``1 - F_grown / F_scratch`` where ``F_grown`` is the FLOPs at which the grown
path first reaches the scratch run's final validation loss (negative, and
measured the other way round, when growth does not reach it).
Ablations re-run phase 3 only, from the same phase-2 model, for the first seed;
a placement whose layer plan equals one already run (``interleave`` and
``middle`` coincide when the new layers equal the old ones) is not re-run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field

from ..accounting import training_flops_per_token
from ..budget import phase_configs
from ..config import get_preset
from ..grow import depth_plan, grow
from ..model import GPT, build_model
from ..train import PhaseHooks, PhaseSchedule, train_phase
from .paths import RUNS_DIR, run_name
from .pipeline import open_session, phase1, phase2, phase3
from .records import CurveKind
from .session import Session

ABLATIONS = {
    "plain G_stack copy": {"preserve": False},
    "placement interleave": {"placement": "interleave"},
    "placement middle": {"placement": "middle"},
    "no symmetry-breaking noise": {"noise": 0.0},
    "width x1.5": {"scale_factor": 1.5},
}


@dataclass
class Curve:
    label: str
    flops: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)

    def add(self, flops: float, val: float) -> None:
        self.flops.append(flops)
        self.val.append(val)

    def reach(self, target: float) -> float | None:
        """First FLOPs at which the validation loss is <= target (linear between evaluations)."""
        for i, (f, v) in enumerate(zip(self.flops, self.val)):
            if v <= target:
                if i == 0:
                    return f
                f0, v0 = self.flops[i - 1], self.val[i - 1]
                return f0 + (f - f0) * (v0 - target) / (v0 - v)
        return None


def saving(path: Curve, reference: Curve) -> float:
    """Share of the reference's FLOPs that ``path`` saves to reach the reference's final loss."""
    f = path.reach(reference.val[-1])
    if f is not None:
        return 1.0 - f / reference.flops[-1]
    g = reference.reach(path.val[-1])  # path never got there: how much sooner the reference got to path's end
    return -(1.0 - g / path.flops[-1]) if g is not None else float("-inf")


def _step_flops(s: Session, cfg) -> float:
    t = s.config.train
    return float(training_flops_per_token(cfg, t.seq_len) * t.batch_size * t.seq_len)


def _train_curve(s: Session, model: GPT, schedule: PhaseSchedule, curve: Curve, flops0: float,
                 step_flops: float) -> None:
    """Train ``model`` over ``schedule``, adding a point to ``curve`` every ``eval_every`` steps."""
    hooks = PhaseHooks(on_eval=lambda done, v: curve.add(flops0 + done * step_flops, v), eval_every=s.hooks.eval_every)
    train_phase(model, s.data, s.config.train, schedule, s.config.device, hooks=hooks, val_batches=s.val_batches,
                verbose=False)


@dataclass
class _Costs:
    """Training FLOPs of one step of each phase's model, and the FLOPs spent before each phase."""

    step: dict[int, float]
    before: dict[int, float]
    total: float


def _costs(s: Session, cfgs: dict) -> _Costs:
    t = s.config.train
    step = {p: _step_flops(s, c) for p, c in cfgs.items()}
    before = {1: 0.0, 2: t.steps_phase1 * step[1]}
    before[3] = before[2] + t.steps_phase2 * step[2]
    return _Costs(step, before, before[3] + t.steps_phase3 * step[3])


def compare_one(preset: str, data: str, seed: int, eval_every: int, ablations: bool, steps: int | None,
                token_budget: int | None = None) -> dict:
    """The three paths (and, if asked, the ablations) for one random seed."""
    started = time.perf_counter()
    s = open_session(preset, data=data, steps=steps, out=None, verbose=False)
    train = dataclasses.replace(s.config.train, seed=seed)
    s.config = dataclasses.replace(s.config, train=train.with_token_budget(token_budget) if token_budget else train)
    s.hooks.eval_every = eval_every
    cfgs = phase_configs(s.config.preset.model, s.config.growth)  # dense, MoE, grown
    costs = _costs(s, cfgs)
    grown = Curve(CurveKind.GROWN.label)
    s.hooks.on_eval = lambda phase, done, v: grown.add(costs.before[phase] + done * costs.step[phase], v)
    grown.add(0.0, s.eval(build_model(cfgs[1], seed=seed)))
    dense = phase1(s)
    dense_copy = copy.deepcopy(dense)
    moe = phase2(s, dense)
    moe_final = copy.deepcopy(moe)
    phase3(s, moe)
    scratch = _scratch(s, cfgs[3], seed, costs)
    dense_more = _dense_continued(s, dense_copy, grown, costs)
    moe_part = Curve(CurveKind.UPCYCLED_MOE.label, *_between(grown, costs.before[2], costs.before[3]))
    t = s.config.train
    result = {"seed": seed, "total_flops": costs.total,
              "curves": {c.label: {"flops": c.flops, "val": c.val} for c in (grown, scratch, dense_more)},
              "saving_grown_vs_scratch": saving(grown, scratch),
              "saving_moe_vs_dense": saving(_rebase(moe_part, costs.before[2]), _rebase(dense_more, costs.before[2])),
              "final_val": {"grown": grown.val[-1], "scratch": scratch.val[-1], "moe": moe_part.val[-1],
                            "dense_continued": dense_more.val[-1]},
              "steps": [t.steps_phase1, t.steps_phase2, t.steps_phase3],
              "phase_start_flops": [0.0, costs.before[2], costs.before[3]],
              "seconds": time.perf_counter() - started}
    if ablations:
        started = time.perf_counter()
        base_final = _between(grown, costs.before[3], float("inf"))[1][-1]
        result["ablations"] = _ablations(s, moe_final, seed, costs, base_final)
        result["ablation_seconds"] = time.perf_counter() - started
    return result


def _between(c: Curve, lo: float, hi: float) -> tuple[list[float], list[float]]:
    """The points of ``c`` with lo <= FLOPs <= hi."""
    kept = [(f, v) for f, v in zip(c.flops, c.val) if lo <= f <= hi]
    return [f for f, _ in kept], [v for _, v in kept]


def _scratch(s: Session, cfg, seed: int, costs: _Costs) -> Curve:
    """(b) the grown architecture from scratch for the grown path's FLOPs, on the dense phase's batches and LR."""
    curve = Curve(CurveKind.SCRATCH.label)
    big = build_model(cfg, seed=seed)
    curve.add(0.0, s.eval(big))
    t = s.config.train
    schedule = PhaseSchedule.of(t, 1).with_length(max(1, round(costs.total / costs.step[3])), t.lr_phase1)
    _train_curve(s, big, schedule, curve, 0.0, costs.step[3])
    return curve


def _dense_continued(s: Session, dense: GPT, grown: Curve, costs: _Costs) -> Curve:
    """(c) the dense model trained on for phase 2's FLOPs, on phase 2's batches and LR."""
    curve = Curve(CurveKind.DENSE_CONTINUED.label)
    curve.add(costs.before[2], _between(grown, 0.0, costs.before[2])[1][-1])
    t = s.config.train
    steps = max(1, round(t.steps_phase2 * costs.step[2] / costs.step[1]))
    _train_curve(s, dense, PhaseSchedule.of(t, 2).with_length(steps, t.lr_phase2), curve, costs.before[2],
                 costs.step[1])
    return curve


def _ablations(s: Session, moe_final: GPT, seed: int, costs: _Costs, base_final: float) -> dict:
    """Phase 3 again from the same phase-2 model, once per variant with its own layer plan."""
    out: dict = {}
    plans = {}  # (everything but the placement, layer plan) -> the ablation that ran it
    t, n_layers = s.config.train, moe_final.cfg.n_layers
    for name, change in ABLATIONS.items():
        preserve = change.get("preserve", True)
        g = dataclasses.replace(s.config.growth, **{k: v for k, v in change.items() if k != "preserve"})
        key = (preserve, g.scale_factor, g.noise, tuple(depth_plan(n_layers, g.extra_layers, g.placement)))
        if key in plans:  # the same model would be trained again, step for step
            out[name] = {**out[plans[key]], "same_as": plans[key]}
            continue
        plans[key] = name
        model = grow(copy.deepcopy(moe_final), g.scale_factor, g.extra_layers, where=g.placement,
                     noise=g.noise, preserve=preserve, seed=seed, verbose=False)
        c = Curve(name)
        c.add(costs.before[3], s.eval(model))
        _train_curve(s, model, PhaseSchedule.of(t, 3), c, costs.before[3], _step_flops(s, model.cfg))
        out[name] = {"flops": c.flops, "val": c.val, "final_val": c.val[-1], "start_val": c.val[0],
                     "seed_growth_final_val": base_final}
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


def where_grown_path_reaches_scratch(result: dict, run: dict) -> dict:
    """The compute at which the grown path first reaches scratch's final loss, and in which phase."""
    grown = Curve("grown", *run["curves"][CurveKind.GROWN.label].values())
    scratch = run["curves"][CurveKind.SCRATCH.label]
    f = grown.reach(scratch["val"][-1])
    starts = phase_start_flops(result, run)
    phase = None if f is None else max(i + 1 for i, start in enumerate(starts) if f >= start)
    return {"flops": f, "phase": phase, "scratch_flops": scratch["flops"][-1], "phase_start_flops": starts}


def _rebase(c: Curve, origin: float) -> Curve:
    return Curve(c.label, [f - origin for f in c.flops], list(c.val))


def compare(preset: str = "cpu", data: str = "auto", seeds: tuple[int, ...] = (0, 1), eval_every: int = 25,
            ablations: bool = False, steps: int | None = None, json_path: str | None = None,
            token_budget: int | None = None) -> dict:
    p = get_preset(preset)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {list(seeds)} are invalid: accepted one or more distinct integers")
    if token_budget is not None:
        p.train.with_token_budget(token_budget)  # a bad budget fails here, before any training
    started = time.perf_counter()
    runs = []
    for seed in seeds:
        print(f"[compare] preset {preset!r}, data {data!r}, seed {seed}...", flush=True)
        # ablations re-train phase 3 once per variant: done for the first seed only
        runs.append(compare_one(preset, data, seed, eval_every, ablations and seed == seeds[0], steps, token_budget))
        r = runs[-1]
        print(f"  {r['seconds'] / 60:.1f} min for the three paths"
              + (f", {r['ablation_seconds'] / 60:.1f} min for the ablations" if "ablation_seconds" in r else ""))
        for name, a in r.get("ablations", {}).items():
            print(f"  ablation {name}: start {a['start_val']:.4f}, final {a['final_val']:.4f} "
                  f"(the recipe's growth {a['seed_growth_final_val']:.4f})"
                  + (f" [same layer plan as {a['same_as']}: not re-run]" if "same_as" in a else ""))
        print(f"  grown path final val {r['final_val']['grown']:.4f}, scratch {r['final_val']['scratch']:.4f}: "
              f"saving {100 * r['saving_grown_vs_scratch']:.1f}%")
        print(f"  MoE final val {r['final_val']['moe']:.4f}, dense continued {r['final_val']['dense_continued']:.4f}: "
              f"saving {100 * r['saving_moe_vs_dense']:.1f}%")
    summary = {}
    for key in ("saving_grown_vs_scratch", "saving_moe_vs_dense"):
        vals = [r[key] for r in runs]
        summary[key] = {"mean": statistics.mean(vals), "min": min(vals), "max": max(vals), "values": vals}
        print(f"[compare] {key}: mean {100 * summary[key]['mean']:.1f}% "
              f"(min {100 * summary[key]['min']:.1f}%, max {100 * summary[key]['max']:.1f}%, seeds {list(seeds)})")
    seconds = time.perf_counter() - started
    print(f"[compare] done in {seconds / 60:.1f} min")
    out = {"preset": preset, "data": data, "seeds": list(seeds), "token_budget": token_budget,
           "summary": summary, "runs": runs, "seconds": seconds}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(out, f, indent=1)
    return out


def load_or_run(preset: str, data: str = "auto", seeds: tuple[int, ...] = (0, 1), eval_every: int = 25,
                ablations: bool = True, steps: int | None = None) -> tuple[dict, str]:
    """The comparison's results: from ``runs/compare-*.json`` when a run left them, else computed now."""

    name = f"compare-{run_name(preset, steps, data)}.json"
    path = RUNS_DIR / name
    if path.exists():
        return json.loads(path.read_text()), f"loaded from runs/{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = compare(preset, data, seeds, eval_every, ablations, steps, str(path))
    return result, f"computed now and saved to runs/{name}"
