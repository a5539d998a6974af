"""growlib's dense GPT as a Hugging Face GPT-NeoX model: the same function under NeoX's names and layout.

The two architectures match one to one (pre-LN blocks in sequence, LayerNorms
and linear layers with biases, rotate-half RoPE on every dimension of q and k,
exact GELU, the head tied to the embedding), so the export only renames
tensors and fuses q, k and v into NeoX's ``query_key_value``:

growlib (blocks.i.)             GPT-NeoX (gpt_neox.layers.i.)                  shape
ln1.{weight,bias}               input_layernorm.*                              [d]
attn.{q,k,v}.weight             attention.query_key_value.weight (fused)       [3d, d]
attn.{q,k,v}.bias               attention.query_key_value.bias (fused)         [3d]
attn.out.{weight,bias}          attention.dense.*                              [d, d], [d]
ln2.{weight,bias}               post_attention_layernorm.*                     [d]
mlp.fc_in.{weight,bias}         mlp.dense_h_to_4h.*                            [h, d], [h]
mlp.fc_out.{weight,bias}        mlp.dense_4h_to_h.*                            [d, h], [d]

and outside the blocks: ``tok_emb.weight`` -> ``gpt_neox.embed_in.weight`` [V, d],
``ln_f.*`` -> ``gpt_neox.final_layer_norm.*`` [d]; the tied head is not stored
(``tie_word_embeddings`` ties NeoX's to ``embed_in``).

NeoX reads ``query_key_value``'s output as [H, 3, hd] (per head: q, then k, then v),
where growlib concatenates [3, H, hd]; :func:`fuse_qkv` interleaves the rows so.

Two things have no NeoX counterpart and are refused (:class:`ExportError`): a MoE
MLP (transformers has no GPT-NeoX MoE; the experts of its MoE language models,
Mixtral to PhiMoE and GPT-OSS, are gated or bias-free MLPs, and none has growlib's
GELU expert with biases), and LayerNorms whose eps differ (NeoX has one
``layer_norm_eps`` for all of them). ``growlib.grow.widen`` rescales every
eps by the same factor, so a widened dense model exports as it is.

The files are written without transformers (``hf`` extra: needed only to load them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from .checkpoint import atomic_write_bytes
from .config import ModelConfig
from .model import GPT
from .tokenizer import EOT

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
NEOX_MODEL_TYPE = "gpt_neox"

_LAYER_NAMES = {  # growlib name inside blocks.i -> NeoX name inside gpt_neox.layers.i (q, k, v aside)
    "ln1": "input_layernorm",
    "ln2": "post_attention_layernorm",
    "attn.out": "attention.dense",
    "mlp.fc_in": "mlp.dense_h_to_4h",
    "mlp.fc_out": "mlp.dense_4h_to_h",
}


class ExportError(ValueError):
    """A model that GPT-NeoX cannot compute exactly."""


def check_exportable(cfg: ModelConfig, ln_eps: dict[str, float]) -> float:
    """The one LayerNorm eps of a model GPT-NeoX can run; an :class:`ExportError` naming why not.

    ``ln_eps``: every LayerNorm's eps by module name (``GPT.ln_eps()``, or a checkpoint's ``ln_eps``).
    """
    if cfg.is_moe:
        raise ExportError(f"a Mixture-of-Experts model ({cfg.n_experts} experts, top-{cfg.top_k}) cannot be "
                          f"exported: transformers has no GPT-NeoX MoE, and the experts of its MoE language models "
                          f"are gated or bias-free MLPs, not GELU MLPs with biases; accepted a dense model "
                          f"(n_experts = 0)")
    if not ln_eps:
        raise ExportError("the model lists no LayerNorm eps: accepted a growlib GPT (or a checkpoint) that names "
                          "every LayerNorm's eps")
    by_value: dict[float, list[str]] = {}
    for name, eps in ln_eps.items():
        by_value.setdefault(float(eps), []).append(name)
    if len(by_value) > 1:
        shown = "; ".join(f"{eps:.6g} in {len(names)}, first {names[0]}" for eps, names in sorted(by_value.items()))
        raise ExportError(f"the LayerNorms have {len(by_value)} different eps ({shown}): GPT-NeoX has one "
                          f"layer_norm_eps for all of them, so the export would change what the model computes; "
                          f"accepted a model whose LayerNorms share one eps")
    return next(iter(by_value))


def fuse_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int) -> torch.Tensor:
    """NeoX's fused projection from growlib's three: weights [d, d] -> [3d, d], or biases [d] -> [3d].

    Row block h of the result is [q rows, k rows, v rows] of head h: [H, 3, hd, ...] flattened.
    """
    d = q.shape[0]
    per_head = [t.reshape(n_heads, d // n_heads, *t.shape[1:]) for t in (q, k, v)]  # each [H, hd, ...]
    return torch.stack(per_head, dim=1).reshape(3 * d, *q.shape[1:])  # [H, 3, hd, ...] -> [3d, ...]


def neox_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """The model's tensors under GPT-NeoX's names (contiguous, on the CPU); the tied head is left out."""
    check_exportable(model.cfg, model.ln_eps())
    src = {k: v.detach() for k, v in model.state_dict().items()}
    out = {
        "gpt_neox.embed_in.weight": src["tok_emb.weight"],  # [V, d]
        "gpt_neox.final_layer_norm.weight": src["ln_f.weight"],  # [d]
        "gpt_neox.final_layer_norm.bias": src["ln_f.bias"],  # [d]
    }
    for i in range(model.cfg.n_layers):
        ours, theirs = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        for kind in ("weight", "bias"):
            for name, neox_name in _LAYER_NAMES.items():
                out[f"{theirs}{neox_name}.{kind}"] = src[f"{ours}{name}.{kind}"]
            q, k, v = (src[f"{ours}attn.{p}.{kind}"] for p in ("q", "k", "v"))  # each [d, d] or [d]
            out[f"{theirs}attention.query_key_value.{kind}"] = fuse_qkv(q, k, v, model.cfg.n_heads)
    return {name: t.contiguous().cpu() for name, t in out.items()}


def neox_config(cfg: ModelConfig, layer_norm_eps: float, eot_id: int | None,
                dtype: torch.dtype = torch.float32) -> dict:
    """``config.json`` of the NeoX model, in the key names of transformers 4 (checked: 4.40.2, 4.45.2).

    transformers 5 reads ``rotary_emb_base`` and ``rotary_pct`` into its ``rope_parameters`` (checked: 5.24.0).
    """
    dtype_name = str(dtype).removeprefix("torch.")
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": NEOX_MODEL_TYPE,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "intermediate_size": cfg.d_mlp,
        "hidden_act": "gelu",  # the exact (erf) GELU, as F.gelu
        "rotary_pct": 1.0,  # RoPE on every dimension of each head
        "rotary_emb_base": cfg.rope_theta,
        "max_position_embeddings": cfg.max_seq_len,
        "layer_norm_eps": layer_norm_eps,
        "use_parallel_residual": False,  # x + attn(LN(x)), then + mlp(LN(.)): growlib's sequential block
        "attention_bias": True,
        "tie_word_embeddings": True,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "initializer_range": cfg.init_std,
        "use_cache": True,
        "bos_token_id": eot_id,  # every training document ends with <|endoftext|>; nothing else is special
        "eos_token_id": eot_id,
        "pad_token_id": eot_id,
        "torch_dtype": dtype_name,
    }


def save_neox(model: GPT, out_dir: str | os.PathLike, eot_id: int | None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of the NeoX model into ``out_dir``; returns the folder."""
    eps = check_exportable(model.cfg, model.ln_eps())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = neox_state_dict(model)
    weights = out / WEIGHTS_FILE
    tmp = weights.with_name(f".{weights.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"format": "pt"})  # transformers refuses a file without "format"
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, weights)  # config.json comes after: a folder with a config has its weights
    config = neox_config(model.cfg, eps, eot_id, model.tok_emb.weight.dtype)
    atomic_write_bytes(out / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
    return out


def tokenizer_config(tokenizer, model_max_length: int) -> dict:
    """``tokenizer_config.json``: a ``PreTrainedTokenizerFast`` over ``tokenizer.json``, nothing added to the ids."""
    special = EOT if tokenizer.token_to_id(EOT) is not None else None
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": special,
        "eos_token": special,
        "pad_token": special,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,  # decode gives back the text exactly (no "a ," -> "a,")
    }


def save_hf_tokenizer(tokenizer, out_dir: str | os.PathLike, model_max_length: int) -> Path:
    """Write ``tokenizer.json`` (the ``tokenizers`` file, as it is) and ``tokenizer_config.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / TOKENIZER_FILE, tokenizer.to_str().encode("utf-8"))
    config = tokenizer_config(tokenizer, model_max_length)
    atomic_write_bytes(out / TOKENIZER_CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
    return out
