"""The machinery that runs growlib's concepts: specs, sessions, the phases, the trainer, checkpoints and
resume, the console, memory planning, the command line, the comparison and the benchmarks.

The notebooks import it beside the concepts (``import growlib as gl``; ``from growlib import harness``):

- :func:`notebook_session` and :func:`ensure_phase`: a session shared by the notebooks, and each
  phase's model loaded from its checkpoint or trained (growlib.harness.notebook);
- :class:`RunSpec`, :func:`open_session`, :func:`run`, :func:`phase1` / :func:`phase2` / :func:`phase3`:
  the recipe's run, as ``python -m growlib run`` does it;
- :func:`boundary_summary`, :func:`recommendations`, :func:`available_memory`: what a run prints.
"""

from .console import boundary_summary, phase_banner
from .memory import available_memory, recommendations, system_memory_bytes
from .notebook import ensure_phase, notebook_session, sample_text, steps_override
from .paths import tinystories_sample
from .phases import PHASES, phase1, phase2, phase3
from .pipeline import open_session, run
from .session import Session
from .spec import RunOptions, RunSpec

__all__ = ["PHASES", "RunOptions", "RunSpec", "Session", "available_memory", "boundary_summary", "ensure_phase",
           "notebook_session", "open_session", "phase1", "phase2", "phase3", "phase_banner", "recommendations",
           "run", "sample_text", "steps_override", "system_memory_bytes", "tinystories_sample"]
