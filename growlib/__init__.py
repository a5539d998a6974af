"""growlib: train a dense GPT, upcycle it into a MoE, grow it wider and deeper.

The notebooks import it as ``import growlib as gl``; every name below is a concept
taught in one of them (the module docstrings say which). The machinery that runs the
concepts (sessions, phases, checkpoints and resume, the console, memory planning, the
command line, the comparison, benchmarks) lives in its own namespace,
:mod:`growlib.harness`, which the notebooks import beside this one.
"""

from .accounting import ParamReport, analytic_params, count_match_line, param_report, training_flops_per_token
from .budget import budget_table, phase_configs, phase_reports, recipe_discrepancy_line
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import PLACEMENTS, PRESETS, ROUTER_MODES, GrowthConfig, ModelConfig, Preset, TrainConfig, get_preset
from .curves import Curve, saving, separated, spread
from .data import TokenData, load_token_data
from .device import default_preset, pick_device
from .explore import explorer, growth_explorer, growth_figure, upcycling_gaps
from .grow import copy_map, deepen, depth_plan, grow, widen, widened_config
from .memory import MemoryPlan, estimate_memory
from .model import GPT, build_model
from .moe import MoE, RouterStats
from .sources import Source, open_source
from .symmetry import (clone_pairs, clone_similarity, expert_similarity, max_clone_difference,
                       mean_expert_similarity)
from .tokenfiles import TokenFiles, prepare
from .tokenizer import load_tokenizer
from .train import PhaseSpec, StepResult, TrainedStep, evaluate, make_optimizer, train_step, train_steps
from .upcycle import upcycle
from .verify import Preservation, check_preservation

__version__ = "0.1.0"
