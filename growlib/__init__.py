"""growlib: train a dense GPT, upcycle it into a MoE, grow it wider and deeper.

The notebooks import it as ``import growlib as gl``; every name below is taught
in one of them (the module docstrings say which).
"""

from .accounting import ParamReport, analytic_params, count_match_line, param_report, training_flops_per_token
from .budget import budget_table, phase_configs, phase_reports, seed_discrepancy_line
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import PRESETS, GrowthConfig, ModelConfig, Preset, TrainConfig, get_preset
from .console import boundary_summary, phase_banner
from .data import Corpus, TokenData, load_corpus, load_tokenizer
from .grow import deepen, depth_plan, grow, widen, widened_config
from .memory import MemoryPlan, estimate_memory, recommendations, system_memory_bytes
from .model import GPT, build_model
from .moe import MoE
from .notebook import (default_preset, ensure_phase, notebook_session, sample_text, steps_override,
                       tinystories_sample)
from .pipeline import Session, open_session, phase1, phase2, phase3, run
from .train import evaluate, train_phase
from .upcycle import upcycle
from .verify import Preservation, check_preservation

__version__ = "0.1.0"
