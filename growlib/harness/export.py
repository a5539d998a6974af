"""``python -m growlib export RUN_DIR --out DIR``: a run's dense checkpoint as a Hugging Face GPT-NeoX folder.

Every check comes before anything is written: the run folder, the checkpoint
(a MoE, or LayerNorms with different eps, are refused from its metadata,
before its weights are read), the output folder, the tokenizer. Then the model
(:mod:`growlib.export`) and the tokenizer are written, and, when transformers
is installed, the folder is loaded back and its logits compared with growlib's.

The tokenizer is ``RUN_DIR/tokenizer.json`` when the run wrote one
(:func:`save_tokenizer`). Otherwise it is rebuilt as the run made it, from the
settings in ``run_state.json`` (``data``, ``max_docs``, the model's vocabulary
size) through :func:`growlib.sources.open_source` and
:func:`growlib.tokenizer.load_tokenizer`, which reuse the files cached under
``data/cache``. A rebuilt tokenizer is used only when ``data/cache`` also holds
the token files the run made with it: ``load_tokenizer`` trains a BPE when
GPT-Neo's tokenizer cannot be fetched, and a run that had GPT-Neo's would then
get other ids.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, checkpoint_exists, load_checkpoint, read_meta
from ..config import ModelConfig
from ..export import (CONFIG_FILE, NEOX_MODEL_TYPE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE,
                      ExportError, check_exportable, save_hf_tokenizer, save_neox)
from ..model import GPT
from ..tokenizer import EOT
from .paths import shown_path
from .checkpoints.pointer import RUN_TOKENIZER, STATE_FILE, read_state

DEFAULT_CHECKPOINT = "dense_model"
CHECK_TOLERANCE = 1e-4  # max |Δlogit| (fp32) accepted when the exported folder is loaded back
CHECK_TOKENS = 64  # positions per sequence of the load-back check (at most max_seq_len)
WRITTEN = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, TOKENIZER_CONFIG_FILE)
AUTO_CHOICES = ("tinystories", "bundled")  # what --data auto may have opened (growlib.sources.open_source)


def export_command(run_dir: str | os.PathLike, out: str | os.PathLike,
                   checkpoint: str = DEFAULT_CHECKPOINT) -> Path:
    """Export ``run_dir``'s checkpoint ``checkpoint`` to the folder ``out``; returns that folder."""
    run = _run_folder(run_dir)
    cfg, ln_eps = _checkpoint_config(run, checkpoint)
    try:
        check_exportable(cfg, ln_eps)
    except ExportError as exc:
        raise ExportError(f"checkpoint {checkpoint!r} of {shown_path(run)}: {exc}") from None
    dest = _output_folder(out, run)
    tokenizer, tokenizer_origin = find_tokenizer(run)
    if tokenizer.get_vocab_size() > cfg.vocab_size:
        raise ExportError(f"the tokenizer ({tokenizer_origin}) has {tokenizer.get_vocab_size()} tokens, more than "
                          f"the model's vocab_size={cfg.vocab_size}: accepted the tokenizer the run trained with")
    model = load_checkpoint(run, checkpoint)[0].eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[export] {checkpoint} of {shown_path(run)}: {n_params / 1e6:.2f} M parameters, d_model {cfg.d_model}, "
          f"{cfg.n_layers} layers, {cfg.n_heads} heads -> GPT-NeoX")
    print(f"  tokenizer: {tokenizer_origin}, {tokenizer.get_vocab_size():,} tokens")
    save_neox(model, dest, tokenizer.token_to_id(EOT))
    save_hf_tokenizer(tokenizer, dest, cfg.max_seq_len)
    print(f"  wrote {shown_path(dest)}: {', '.join(WRITTEN)}")
    check_with_transformers(dest, model)
    return dest


# ---------------------------------------------------------------- checks before any work

def _run_folder(run_dir: str | os.PathLike) -> Path:
    run = Path(run_dir)
    if not run.is_dir():
        what = "is a file" if run.exists() else "does not exist"
        raise ExportError(f"run folder {str(run)!r} {what}: accepted the --out folder of python -m growlib run")
    return run


def _checkpoints_in(run: Path) -> list[str]:
    return sorted(p.stem for p in run.glob("*.json") if checkpoint_exists(run, p.stem))


def _checkpoint_config(run: Path, name: str) -> tuple[ModelConfig, dict[str, float]]:
    """The checkpoint's model config and LayerNorm eps, from its metadata (its weights are not read yet)."""
    if not checkpoint_exists(run, name):
        found = _checkpoints_in(run)
        raise ExportError(f"checkpoint {name!r} is not in {shown_path(run)}: accepted "
                          + (f"one of {found}" if found else "a run folder holding checkpoints (none found)"))
    meta = read_meta(run, name)
    try:
        return ModelConfig(**meta["model"]), dict(meta["ln_eps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {name!r} of {shown_path(run)} has invalid metadata ({exc})") from exc


def _is_export(folder: Path) -> bool:
    """True for a folder an earlier export wrote (its config.json names GPT-NeoX)."""
    try:
        return json.loads((folder / CONFIG_FILE).read_text()).get("model_type") == NEOX_MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def _output_folder(out: str | os.PathLike, run: Path) -> Path:
    """``out``, checked: a new or empty folder, or an earlier export (its files are replaced)."""
    if str(out) == "":
        raise ExportError("no output folder: accepted --out DIR (a new or empty folder, or an earlier export)")
    dest = Path(out)
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"--out {str(dest)!r} is a file: accepted a folder (it is created if missing)")
    if dest.resolve() == run.resolve():
        raise ExportError(f"--out {str(dest)!r} is the run folder itself: accepted another folder (the export's "
                          f"config.json and model.safetensors would sit among the run's checkpoints)")
    if dest.is_dir() and any(dest.iterdir()) and not _is_export(dest):
        names = sorted(p.name for p in dest.iterdir())
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise ExportError(f"--out {str(dest)!r} holds other files ({shown}): accepted a new or empty folder, "
                          f"or an earlier export to replace")
    return dest


# ---------------------------------------------------------------- the tokenizer

def find_tokenizer(run: Path):
    """(the run's ``tokenizers.Tokenizer``, where it came from); a one-line ``ExportError`` if it cannot be had."""
    from tokenizers import Tokenizer

    saved = run / RUN_TOKENIZER
    if saved.exists():
        try:
            return Tokenizer.from_file(str(saved)), shown_path(saved)
        except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
            raise ExportError(f"{shown_path(saved)} is not a tokenizers file ({exc}): accepted the file "
                              f"save_tokenizer writes") from None
    if not (run / STATE_FILE).exists():
        raise ExportError(f"{shown_path(run)} has no {RUN_TOKENIZER} and no {STATE_FILE} to rebuild the tokenizer "
                          f"from: accepted a run folder holding either")
    return _rebuild_tokenizer(run)


def _rebuild_tokenizer(run: Path):
    """The tokenizer the run made, from its settings: open_source + load_tokenizer, as the run did."""
    from ..sources import open_source
    from ..tokenfiles import folder_for, read_manifest
    from ..tokenizer import load_tokenizer

    state = read_state(run)
    settings = state.settings if state is not None else {}
    data, vocab = settings.get("data"), (settings.get("model") or {}).get("vocab_size")
    if not isinstance(data, str) or not isinstance(vocab, int):
        raise ExportError(f"{shown_path(run / STATE_FILE)} names no data and vocab size in its settings "
                          f"(data={data!r}, model.vocab_size={vocab!r}): accepted a run_state.json written by "
                          f"python -m growlib run, or a {RUN_TOKENIZER} in the run folder")
    max_docs = settings.get("max_docs")
    # --data auto read TinyStories or, without it, the bundled stories; which one is not recorded
    specs = AUTO_CHOICES if data == "auto" else (data,)
    used, unreadable = [], []
    with _offline():  # what the run left in the caches, never a download
        for spec in specs:
            try:
                source = open_source(spec, max_docs=max_docs, verbose=False)
            except ValueError as exc:  # not here (TinyStories not cached, a file moved away)
                unreadable.append(str(exc))
                continue
            tokenizer = load_tokenizer(source, vocab, verbose=False)
            if read_manifest(folder_for(source, tokenizer)) is not None:  # a run tokenized this corpus with it
                used.append((spec, tokenizer))
    docs = f", max_docs {max_docs}" if max_docs is not None else ""
    if len(used) == 1:
        spec, tokenizer = used[0]
        shown = repr(data) if spec == data else f"{data!r} -> {spec!r}"
        return tokenizer, f"rebuilt from {STATE_FILE} (data {shown}{docs}, vocab {vocab})"
    if len(used) > 1:
        raise ExportError(f"the run read --data auto, and both TinyStories and the bundled stories have token files "
                          f"under data/cache made with their tokenizers at vocab {vocab}, so which one the run used "
                          f"is not known: accepted a run folder holding its {RUN_TOKENIZER} (save_tokenizer writes it)")
    if len(unreadable) == len(specs):
        raise ExportError(f"the run's tokenizer cannot be rebuilt: {'; '.join(unreadable)}")
    raise ExportError(f"the tokenizer rebuilt from {STATE_FILE} (data {data!r}{docs}, vocab {vocab}) has no token "
                      f"files for this corpus under data/cache, so it may not be the one the run used: "
                      f"accepted a run folder holding its {RUN_TOKENIZER} (save_tokenizer writes it)")


@contextmanager
def _offline():
    """The Hugging Face hub and datasets read from their local caches only, inside the block."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    before = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ---------------------------------------------------------------- loading it back

def check_with_transformers(folder: Path, model: GPT) -> float | None:
    """Load ``folder`` with transformers and return max |Δlogit| against ``model``; None without transformers.

    Both run in fp32 on a fixed batch of random ids; above ``CHECK_TOLERANCE`` is an ``ExportError``.
    """
    try:
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError:
        print("  transformers is not installed (pip install 'growlib[hf]'): the folder was not loaded back")
        return None
    transformers.logging.disable_progress_bar()
    hf = AutoModelForCausalLM.from_pretrained(str(folder)).float().eval()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (2, min(CHECK_TOKENS, cfg.max_seq_len)), generator=gen)  # [2, T]
    with torch.no_grad():
        ours = model.float()(ids)  # [2, T, V]
        theirs = hf(ids).logits.float()  # [2, T, V]
    diff = (ours - theirs).abs().max().item()
    if diff > CHECK_TOLERANCE:
        raise ExportError(f"transformers {transformers.__version__} loads {shown_path(folder)} but its logits differ "
                          f"from growlib's by up to {diff:.2e} (> {CHECK_TOLERANCE:g}): this version computes "
                          f"GPT-NeoX differently; the folder is left for inspection")
    print(f"  loaded back with transformers {transformers.__version__}: max |Δlogit| {diff:.2e} against growlib "
          f"on {ids.shape[0]} x {ids.shape[1]} random tokens")
    return diff
