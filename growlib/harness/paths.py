"""Where runs live, and where a local TinyStories text is found.

``GROWLIB_RUNS_DIR`` moves the notebooks' run folders (default: ``runs/`` beside
``data/``). ``GROWLIB_TINYSTORIES_SAMPLE`` names a local TinyStories text file:
the scripts that run the tests, the notebooks and the benchmarks set it when
they know one; the library never looks outside the repository by itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..cache import DATA_DIR

RUNS_DIR = Path(os.environ.get("GROWLIB_RUNS_DIR", DATA_DIR.parent / "runs"))
SAMPLE_VAR = "GROWLIB_TINYSTORIES_SAMPLE"
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"  # committed results (git-tracked), beside growlib/


def run_name(preset: str, steps: int | None, data: str) -> str:
    """``<preset>-<steps or full>-<data>``: the one name of a run's folder (or results file) under runs/."""
    return f"{preset}-{steps or 'full'}-{Path(data).stem if os.sep in data else data}"


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory (no machine-specific prefix in printed output)."""
    return os.path.relpath(path)


def tinystories_sample() -> str | None:
    """``$GROWLIB_TINYSTORIES_SAMPLE`` if set (it must be a file), else None."""
    raw = os.environ.get(SAMPLE_VAR, "").strip()
    if not raw:
        return None
    if not Path(raw).is_file():
        raise ValueError(f"{SAMPLE_VAR}={raw!r} is not a file: accepted the path of a .txt or .jsonl "
                         "TinyStories file, or unset")
    return raw
