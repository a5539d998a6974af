"""Memory, in one room: the run's plan and its checks (:mod:`.plan`), the recipe's advice
(:mod:`.advice`), the machine's readings (:mod:`.machine`), the C heap's setup (:mod:`.heap`).

The estimates themselves are a concept, taught in notebook 00: :mod:`growlib.memory`.
"""

from .advice import LEAN_WHAT, best_option, recommendations
from .heap import keep_freed_memory_for_reuse, map_large_blocks, release_freed_memory
from .machine import available_memory, available_to, measured_peak, reset_peak, runtime_overhead, system_memory_bytes
from .plan import PhasePlan, RunMemory, plan_run, run_plan_lines

__all__ = ["LEAN_WHAT", "PhasePlan", "RunMemory", "available_memory", "available_to", "best_option",
           "keep_freed_memory_for_reuse", "map_large_blocks", "measured_peak", "plan_run", "recommendations",
           "release_freed_memory", "reset_peak", "run_plan_lines", "runtime_overhead", "system_memory_bytes"]
