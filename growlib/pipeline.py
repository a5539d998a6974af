"""The seed's run end to end: dense (phase 1) -> MoE (phase 2) -> bilateral growth (phase 3).

``python -m growlib run`` calls :func:`run`; the notebooks call the phases one
at a time through a :class:`Session`, so both print the same lines.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .accounting import param_report
from .checkpoint import save_checkpoint
from .config import GrowthConfig, Preset, TrainConfig, get_preset
from .console import boundary_summary, phase_banner, section_banner
from .data import TokenData, load_corpus, load_tokenizer
from .grow import grow
from .model import GPT, build_model
from .train import History, PhaseResult, evaluate, pick_device, train_phase
from .upcycle import upcycle
from .verify import Preservation, check_preservation

HISTORY = "training_history.jsonl"


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory (no machine-specific prefix in printed output)."""
    return os.path.relpath(path)


def check_output_dir(out: str | os.PathLike) -> Path:
    """The output folder, created if needed; a clear error if it cannot be written."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a file: accepted a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out {str(path)!r} is not writable ({exc.strerror}): accepted a writable folder") from exc
    return path


@dataclass
class Session:
    """Everything the three phases share: settings, data, fixed validation batches, outputs."""

    preset: Preset
    train: TrainConfig
    growth: GrowthConfig
    data: TokenData
    device: str
    out: Path | None
    history: History
    val_batches: list = field(default_factory=list)
    verbose: bool = True
    results: dict[int, PhaseResult] = field(default_factory=dict)
    preservation: dict[int, Preservation] = field(default_factory=dict)
    boundary: dict[str, float] = field(default_factory=dict)

    def say(self, text: str = "") -> None:
        if self.verbose:
            print(text)

    def save(self, model: GPT, name: str, phase: int) -> None:
        """Checkpoint ``model``, with this phase's logged records and the boundary figures so far."""
        if self.out is not None:
            records = [r for r in self.history.records if r["phase"] == phase]
            extra = {"preset": self.preset.name, "phase": phase, "history": records, "boundary": self.boundary}
            save_checkpoint(model, self.out, name, extra=extra)
            self.say(f"  [checkpoint] {shown_path(self.out / (name + '.safetensors'))}")

    def eval(self, model: GPT) -> float:
        return evaluate(model, self.val_batches, self.device)

    def verify_tokens(self) -> torch.Tensor:
        return self.val_batches[0][0]


def open_session(preset: str | Preset = "cpu", data: str = "auto", steps: int | None = None,
                 out: str | os.PathLike | None = "checkpoints", device: str | None = None,
                 growth: dict | None = None, verbose: bool = True, fresh_history: bool = True) -> Session:
    """Validate every argument, then load the corpus and tokenizer (no training yet)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    tcfg = p.train if steps is None else p.train.with_steps(steps)
    gcfg = dataclasses.replace(p.growth, **(growth or {}))
    dev = pick_device(device)
    corpus = load_corpus(data, verbose=verbose)  # a bad data file fails here, before anything is written
    out_path = check_output_dir(out) if out is not None else None
    tok = load_tokenizer(corpus, p.model.vocab_size, verbose=verbose)
    if tok.get_vocab_size() > p.model.vocab_size:
        raise ValueError(f"ModelConfig.vocab_size = {p.model.vocab_size} is smaller than the tokenizer's "
                         f"{tok.get_vocab_size()}: accepted a vocab of at least {tok.get_vocab_size()}")
    token_data = TokenData(corpus, tok, tcfg.seq_len)
    history_path = out_path / HISTORY if out_path is not None else None
    if fresh_history and history_path is not None and history_path.exists():
        history_path.unlink()
    s = Session(p, tcfg, gcfg, token_data, dev, out_path, History(history_path), verbose=verbose)
    s.val_batches = token_data.val_batches(tcfg.eval_batches, tcfg.batch_size)
    return s


def phase1(s: Session) -> GPT:
    """Build and train the dense model; checkpoint ``dense_model``."""
    torch.manual_seed(s.train.seed)
    model = build_model(s.preset.model, seed=s.train.seed, device=s.device)
    s.say()
    s.say(phase_banner("Phase 1 — Dense", s.train.steps_phase1, s.train.lr_phase1, s.device,
                       param_report(model, s.train.seq_len)))
    s.say()
    s.results[1] = train_phase(model, s.data, s.train, 1, s.device, s.history, verbose=s.verbose,
                               val_batches=s.val_batches)
    s.boundary["p1_final"] = s.results[1].final_loss
    s.boundary["val_before_2"] = s.results[1].eval_loss
    s.save(model, "dense_model", 1)
    return model


def phase2(s: Session, dense: GPT) -> GPT:
    """Upcycle into a MoE, check it computes the same function, train it; two checkpoints."""
    g = s.growth
    moe = upcycle(dense, g.n_experts, g.top_k, seed=s.train.seed)
    s.preservation[2] = check_preservation(dense, moe, s.verify_tokens().to(s.device))
    s.say()
    s.say(f"[Upcycling] Dense -> MoE: {g.n_experts} experts (copies of each MLP), top-{g.top_k} routing")
    s.say(f"  max |Δlogit| on the fixed validation batch: {s.preservation[2].logit_diff:.2e}")
    s.boundary.setdefault("val_before_2", s.eval(dense))
    s.boundary["val_after_2"] = s.eval(moe)
    s.save(moe, "moe_model_init", 2)
    s.say()
    s.say(phase_banner("Phase 2 — MoE", s.train.steps_phase2, s.train.lr_phase2, s.device,
                       param_report(moe, s.train.seq_len)))
    s.say()
    s.results[2] = train_phase(moe, s.data, s.train, 2, s.device, s.history, verbose=s.verbose,
                               val_batches=s.val_batches)
    s.boundary["p2_first"] = s.results[2].first_loss
    s.boundary["p2_final"] = s.results[2].final_loss
    s.boundary["val_before_3"] = s.boundary["val_end_2"] = s.results[2].eval_loss
    s.save(moe, "moe_model_final", 2)
    return moe


def phase3(s: Session, moe: GPT) -> GPT:
    """Grow wider and deeper, verify per layer, train after a re-warmup; checkpoint ``large_moe_final``."""
    g = s.growth
    s.say()
    s.say(section_banner(f"Phase 3  —  Bilateral Growth (Width x{g.scale_factor:g}, Layers +{g.extra_layers})"))
    s.say()
    grown = grow(moe, g.scale_factor, g.extra_layers, where=g.placement, noise=g.noise,
                 seed=s.train.seed, verbose=s.verbose)
    s.say()
    s.preservation[3] = check_preservation(moe, grown, s.verify_tokens().to(s.device), where=g.placement)
    for line in s.preservation[3].lines():
        s.say(line)
    s.boundary.setdefault("val_before_3", s.eval(moe))
    s.boundary["val_after_3"] = s.eval(grown)
    s.say()
    s.say(phase_banner("Phase 3 — Large MoE (Bilateral Growth)", s.train.steps_phase3, s.train.lr_phase3,
                       s.device, param_report(grown, s.train.seq_len)))
    s.say()
    s.results[3] = train_phase(grown, s.data, s.train, 3, s.device, s.history, verbose=s.verbose,
                               val_batches=s.val_batches)
    s.boundary["p3_first"] = s.results[3].first_loss
    s.boundary["p3_final"] = s.results[3].final_loss
    s.boundary["val_end_3"] = s.results[3].eval_loss
    s.save(grown, "large_moe_final", 3)
    return grown


def run(**kwargs) -> Session:
    """All three phases, then the BOUNDARY SUMMARY (arguments as :func:`open_session`)."""
    s = open_session(**kwargs)
    moe = phase2(s, phase1(s))
    phase3(s, moe)
    s.say()
    s.say(boundary_summary(s.boundary))
    return s
