"""growlib: train a dense GPT, upcycle it into a MoE, grow it wider and deeper.

The notebooks import it as ``import growlib as gl``; every name below is taught
in one of them (the module docstrings say which). The concepts live in this
package's top-level modules; ``growlib.harness`` holds the machinery that runs
them (pipeline, resume, console, command line, comparison, benchmarks).
"""

from .accounting import ParamReport, analytic_params, count_match_line, param_report, training_flops_per_token
from .budget import budget_table, phase_configs, phase_reports, recipe_discrepancy_line
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import PLACEMENTS, PRESETS, ROUTER_MODES, GrowthConfig, ModelConfig, Preset, TrainConfig, get_preset
from .data import TokenData, load_token_data
from .device import default_preset, pick_device
from .explore import explorer, growth_figure, upcycling_gaps
from .grow import deepen, depth_plan, grow, widen, widened_config
from .harness.advice import recommendations
from .harness.console import boundary_summary, phase_banner
from .harness.measure import available_memory, system_memory_bytes
from .harness.notebook import ensure_phase, notebook_session, sample_text, steps_override
from .harness.paths import tinystories_sample
from .harness.pipeline import open_session, phase1, phase2, phase3, run
from .harness.session import Session
from .memory import MemoryPlan, estimate_memory
from .model import GPT, build_model
from .moe import MoE
from .sources import Source, open_source
from .symmetry import (clone_pairs, clone_similarity, expert_similarity, max_clone_difference,
                       mean_expert_similarity)
from .tokenfiles import TokenFiles, prepare
from .tokenizer import load_tokenizer
from .train import PhaseSchedule, StepResult, evaluate, make_optimizer, train_phase, train_step
from .upcycle import upcycle
from .verify import Preservation, check_preservation

__version__ = "0.1.0"
