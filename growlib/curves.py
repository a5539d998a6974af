"""Comparing training paths: validation curves against compute, savings, and their spread over seeds.

Taught in notebook 04. A :class:`Curve` is one path's validation loss at cumulative training
FLOPs. The saving of a path against a baseline is ``1 - F_path / F_baseline``, where ``F_path``
is the compute at which the path first reaches the baseline's final validation loss (negative,
and measured the other way round, when it never gets there). Over seeds every figure is
reported as a mean and a sample standard deviation, so a reader can tell a difference from the
noise between seeds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


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

    def at(self, flops: float) -> float:
        """The validation loss at ``flops``, linear between evaluations (the last one past the end)."""
        for i, f in enumerate(self.flops):
            if f >= flops:
                if i == 0:
                    return self.val[0]
                f0, v0 = self.flops[i - 1], self.val[i - 1]
                return v0 + (self.val[i] - v0) * (flops - f0) / (f - f0)
        return self.val[-1]

    def between(self, lo: float, hi: float) -> "Curve":
        """The points with lo <= FLOPs <= hi."""
        kept = [(f, v) for f, v in zip(self.flops, self.val) if lo <= f <= hi]
        return Curve(self.label, [f for f, _ in kept], [v for _, v in kept])

    def shifted(self, origin: float) -> "Curve":
        return Curve(self.label, [f - origin for f in self.flops], list(self.val))

    def to_json(self) -> dict:
        return {"flops": self.flops, "val": self.val}


def saving(path: Curve, reference: Curve) -> float:
    """Share of the reference's FLOPs that ``path`` saves to reach the reference's final loss."""
    f = path.reach(reference.val[-1])
    if f is not None:
        return 1.0 - f / reference.flops[-1]
    g = reference.reach(path.val[-1])  # path never got there: how much sooner the reference got to path's end
    return -(1.0 - g / path.flops[-1]) if g is not None else float("-inf")


def spread(values: list[float]) -> dict:
    """Mean and sample standard deviation (0 for one value), with the values themselves."""
    finite = [v for v in values if math.isfinite(v)]
    mean = statistics.mean(finite) if finite else float("nan")
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return {"mean": mean, "std": std, "values": list(values)}


def percent(s: dict) -> dict:
    """A spread of fractions as percentages."""
    return {"mean": 100 * s["mean"], "std": 100 * s["std"], "values": [100 * v for v in s["values"]]}


def curves_over_seeds(curves: list[dict]) -> dict:
    """One path's curves from several seeds -> the first seed's FLOPs, the mean loss there and its spread."""
    grid = curves[0]["flops"]
    at = [[Curve("", c["flops"], c["val"]).at(f) for c in curves] for f in grid]
    return {"flops": grid, "val_mean": [statistics.mean(v) for v in at],
            "val_std": [statistics.stdev(v) if len(v) > 1 else 0.0 for v in at]}


def separated(a: dict, b: dict) -> bool:
    """Whether two spreads' means differ by more than the larger standard deviation."""
    return abs(a["mean"] - b["mean"]) > max(a["std"], b["std"])
