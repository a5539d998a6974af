"""The figures around each phase boundary, as the BOUNDARY SUMMARY prints them and checkpoints store them.

A run writes :class:`BoundaryFigures` into checkpoints and ``run_state.json`` as
flat JSON (``p2_first``, ``val_after_3``, ...); those key names live only in
:meth:`BoundaryFigures.to_json` and :meth:`BoundaryFigures.from_json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class PhaseFigures:
    """What was measured around one phase; ``None`` until it is measured.

    Training losses are the logged ones (each on its own random batch). Validation
    losses are on the run's fixed validation batches, so they compare exactly:
    ``val_before`` is the previous phase's model at the end of that phase, ``val_after``
    the model the transition made (phase 2: upcycled, phase 3: grown), ``val_end``
    this phase's model after training.
    """

    first_loss: float | None = None
    final_loss: float | None = None
    val_before: float | None = None
    val_after: float | None = None
    val_end: float | None = None

    @property
    def exact_jump(self) -> float | None:
        """Validation loss after the transition minus before it: 0 when the function was preserved."""
        if self.val_after is None or self.val_before is None:
            return None
        return self.val_after - self.val_before


# JSON key of each field, with {p} for the phase number (the format of checkpoints and run_state.json)
_JSON_KEYS = {"first_loss": "p{p}_first", "final_loss": "p{p}_final", "val_before": "val_before_{p}",
              "val_after": "val_after_{p}", "val_end": "val_end_{p}"}


@dataclass
class BoundaryFigures:
    """:class:`PhaseFigures` of phases 1-3: what the BOUNDARY SUMMARY prints."""

    phases: dict[int, PhaseFigures] = field(default_factory=lambda: {p: PhaseFigures() for p in (1, 2, 3)})

    def __getitem__(self, phase: int) -> PhaseFigures:
        return self.phases[phase]

    def to_json(self) -> dict[str, float]:
        return {_JSON_KEYS[f.name].format(p=p): getattr(figs, f.name)
                for p, figs in self.phases.items() for f in fields(PhaseFigures) if getattr(figs, f.name) is not None}

    @classmethod
    def from_json(cls, data: dict[str, float]) -> "BoundaryFigures":
        out = cls()
        out.update(data)
        return out

    def update(self, data: dict[str, float]) -> None:
        """Take every figure ``data`` (a :meth:`to_json` dict) holds."""
        for p, figs in self.phases.items():
            for name, key in _JSON_KEYS.items():
                if key.format(p=p) in data:
                    setattr(figs, name, data[key.format(p=p)])
