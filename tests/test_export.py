"""growlib -> Hugging Face GPT-NeoX (growlib.export, python -m growlib export): same logits, greedy tokens and ids."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
from transformers import logging as hf_logging

from growlib.checkpoint import save_checkpoint
from growlib.config import ModelConfig
from growlib.export import ExportError, fuse_qkv, save_neox
from growlib.grow import widen
from growlib.harness.checkpoints.pointer import ResumePoint, save_tokenizer, write_state
from growlib.harness.export import export_command
from growlib.harness.paths import shown_path
from growlib.model import build_model
from growlib.sources import open_local
from growlib.storygen import generate_stories
from growlib.tokenfiles import prepare
from growlib.tokenizer import EOT, train_tokenizer
from growlib.upcycle import upcycle

from conftest import perturbed

# init_std 0.1 and perturbed biases and LayerNorms: logits of std ~0.7, so 1e-5 is a real bound
CFG = ModelConfig(vocab_size=320, d_model=48, n_layers=2, n_heads=4, d_mlp=192, max_seq_len=32, init_std=0.1)
TOL = 1e-5
SENTENCE = 'Lily said, "Look at the big red ball!" Then she ran home.'

hf_logging.disable_progress_bar()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A text file of 300 generated stories and the BPE a run would train on it (in a data dir of its own)."""
    root = tmp_path_factory.mktemp("corpus")
    with pytest.MonkeyPatch.context() as mp:  # only while it is made: the other modules keep their data dir
        mp.setenv("GROWLIB_DATA_DIR", str(root / "data"))
        path = root / "stories.txt"
        path.write_text("\n\n".join(generate_stories(300, seed=0)) + "\n", encoding="utf-8")
        source = open_local(path)
        return path, source, train_tokenizer(source, CFG.vocab_size)


@pytest.fixture(scope="module")
def models():
    dense = perturbed(build_model(CFG, seed=1), scale=0.3).eval()
    return {"dense": dense, "x2": widen(dense, 2).eval(), "x1.5": widen(dense, 1.5).eval()}


@pytest.fixture(scope="module")
def trained(corpus):
    """The dense model after 80 steps on the stories, and widened: untrained, greedy decoding repeats one token."""
    _, _, tok = corpus
    eot = tok.token_to_id(EOT)
    ids = torch.tensor([i for story in generate_stories(300, seed=0) for i in tok.encode(story).ids + [eot]])
    model = build_model(CFG, seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(80):
        starts = torch.randint(0, len(ids) - CFG.max_seq_len - 1, (8,), generator=gen)
        window = torch.stack([ids[s: s + CFG.max_seq_len + 1] for s in starts])  # [8, T + 1]
        loss = model(window[:, :-1], window[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return {"dense": model, "x2": widen(model, 2).eval(), "x1.5": widen(model, 1.5).eval()}


def _ids(n: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, CFG.vocab_size, (n, t), generator=torch.Generator().manual_seed(seed))  # [n, t]


def _run_folder(tmp_path: Path, model, tokenizer=None) -> Path:
    run = tmp_path / "run"
    save_checkpoint(model, run, "dense_model")
    if tokenizer is not None:
        save_tokenizer(run, tokenizer)
    return run


def _greedy_new_tokens(model, prompt: torch.Tensor, n: int, eot: int | None) -> list[int]:
    """growlib's own sampler at top_k=1 (greedy), cut after the first end-of-text (where generate stops)."""
    new = model.generate(prompt, n, top_k=1)[0, prompt.shape[1]:].tolist()
    return new[: new.index(eot) + 1] if eot in new else new


def test_fuse_qkv_puts_each_heads_q_k_v_together():
    d, heads, hd = 6, 3, 2
    q, k, v = (torch.arange(d * 4.0).reshape(d, 4) + 100 * i for i in range(3))  # [d, 4] each
    fused = fuse_qkv(q, k, v, heads)  # [3d, 4]
    assert fused.shape == (3 * d, 4)
    for h in range(heads):
        block = fused[3 * hd * h: 3 * hd * (h + 1)]
        assert torch.equal(block, torch.cat([q[h * hd:(h + 1) * hd], k[h * hd:(h + 1) * hd], v[h * hd:(h + 1) * hd]]))
    bias = fuse_qkv(torch.arange(6.0), torch.arange(6.0) + 10, torch.arange(6.0) + 20, heads)  # [3d]
    assert bias.tolist() == [0, 1, 10, 11, 20, 21, 2, 3, 12, 13, 22, 23, 4, 5, 14, 15, 24, 25]


@pytest.mark.parametrize("which, eps", [("dense", 1e-5), ("x2", 1e-5), ("x1.5", 1e-5 * 2 / 3)])
def test_exported_logits_match_growlib(models, tmp_path, which, eps):
    model = models[which]
    save_neox(model, tmp_path, eot_id=None)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(hf).__name__ == "GPTNeoXForCausalLM"
    assert hf.config.layer_norm_eps == pytest.approx(eps, rel=1e-12)
    assert hf.get_output_embeddings().weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr()  # tied
    x = _ids(3, CFG.max_seq_len)
    with torch.no_grad():
        ours, theirs = model(x), hf(x).logits  # [3, T, V]
    assert ours.std() > 0.5  # not an accident of small numbers
    assert (ours - theirs).abs().max().item() <= TOL


@pytest.mark.parametrize("which", ["dense", "x2", "x1.5"])
def test_greedy_generate_gives_growlibs_tokens(trained, corpus, tmp_path, which):
    model = trained[which]
    save_neox(model, tmp_path, eot_id=None)  # no end-of-text: both run the full length
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    prompt = torch.tensor([corpus[2].encode("Once upon a time, Tom").ids])  # [1, P]
    p = prompt.shape[1]
    n = CFG.max_seq_len - p  # up to the longest context growlib trained on
    expected = _greedy_new_tokens(model, prompt, n, eot=None)
    out = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, do_sample=False)
    assert out[0, :p].tolist() == prompt[0].tolist()
    assert out[0, p:].tolist() == expected
    assert len(expected) == n and len(set(expected)) > 5  # a real sequence, not one repeated token


def test_export_command_writes_a_folder_transformers_opens(trained, corpus, tmp_path):
    _, _, tok = corpus
    model = trained["dense"]
    run, out = _run_folder(tmp_path, model, tok), tmp_path / "hf"
    export_command(run, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json",
                                                      "tokenizer_config.json"]
    hf_tok = AutoTokenizer.from_pretrained(out)
    ids = tok.encode(SENTENCE).ids
    assert hf_tok(SENTENCE)["input_ids"] == ids
    assert hf_tok.decode(ids) == SENTENCE
    eot = tok.token_to_id(EOT)
    assert hf_tok.eos_token == EOT and hf_tok.convert_tokens_to_ids(EOT) == eot
    assert hf_tok(f"The end.{EOT}")["input_ids"] == tok.encode(f"The end.{EOT}").ids
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert hf.config.eos_token_id == eot
    x = torch.tensor([ids[: CFG.max_seq_len]])
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= TOL
    # the pipeline, greedy: the prompt, then growlib's greedy continuation decoded
    prompt = "Once upon a time"
    prompt_ids = tok.encode(prompt).ids
    n = 12
    new = _greedy_new_tokens(model, torch.tensor([prompt_ids]), n, eot)
    generator = pipeline("text-generation", model=str(out), tokenizer=str(out))
    text = generator(prompt, max_new_tokens=n, do_sample=False)[0]["generated_text"]
    assert text == prompt + tok.decode(new, skip_special_tokens=True)
    assert len(set(new)) > 5  # a real continuation, not one repeated token
    export_command(run, out)  # an earlier export is replaced
    assert (out / "config.json").exists()


def test_widened_checkpoint_exports_with_its_rescaled_eps(models, corpus, tmp_path):
    model = models["x1.5"]  # every LayerNorm's eps is 1e-5 x 2/3 (growlib.grow.widen)
    out = export_command(_run_folder(tmp_path, model, corpus[2]), tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["layer_norm_eps"] == model.blocks[0].ln1.eps
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    x = _ids(2, CFG.max_seq_len, seed=3)
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= TOL


def test_tokenizer_rebuilt_from_run_state_when_its_token_files_exist(models, corpus, tmp_path, monkeypatch):
    path, source, tok = corpus
    monkeypatch.setenv("GROWLIB_DATA_DIR", str(path.parent / "data"))  # the corpus fixture's cache
    run = _run_folder(tmp_path, models["dense"])
    settings = {"preset": "test", "model": dataclasses.asdict(CFG), "data": str(path)}
    write_state(run, ResumePoint(phase=1, next_step=0, checkpoint="dense_model", boundary={}, history_len=0,
                                 settings=settings))
    with pytest.raises(ExportError) as refused:  # no token files made with it yet: no run used it
        export_command(run, tmp_path / "hf")
    assert str(refused.value) == (
        f"the tokenizer rebuilt from run_state.json (data {str(path)!r}, vocab 320) has no token files for this "
        f"corpus under data/cache, so it may not be the one the run used: accepted a run folder holding its "
        f"tokenizer.json (save_tokenizer writes it)")
    assert not (tmp_path / "hf").exists()
    prepare(source, tok, workers=1, verbose=False)  # what the run did before training
    out = export_command(run, tmp_path / "hf")
    assert AutoTokenizer.from_pretrained(out)(SENTENCE)["input_ids"] == tok.encode(SENTENCE).ids


def test_moe_checkpoint_is_refused_in_one_line(models, tmp_path):
    moe = upcycle(models["dense"], 4, 2, seed=2)
    run = tmp_path / "run"
    save_checkpoint(moe, run, "moe_model_final")
    with pytest.raises(ExportError) as refused:
        export_command(run, tmp_path / "hf", "moe_model_final")
    assert str(refused.value) == (
        f"checkpoint 'moe_model_final' of {shown_path(run)}: a Mixture-of-Experts model (4 experts, top-2) cannot "
        f"be exported: transformers has no GPT-NeoX MoE, and the experts of its MoE language models are gated or "
        f"bias-free MLPs, not GELU MLPs with biases; accepted a dense model (n_experts = 0)")
    assert not (tmp_path / "hf").exists()


def test_layernorms_with_different_eps_are_refused_in_one_line(tmp_path):
    model = build_model(CFG, seed=1)
    model.set_ln_eps({"blocks.1.ln2": 2e-5})
    run = tmp_path / "run"
    save_checkpoint(model, run, "dense_model")
    with pytest.raises(ExportError) as refused:
        export_command(run, tmp_path / "hf")
    assert str(refused.value) == (
        f"checkpoint 'dense_model' of {shown_path(run)}: the LayerNorms have 2 different eps (1e-05 in 4, first "
        f"blocks.0.ln1; 2e-05 in 1, first blocks.1.ln2): GPT-NeoX has one layer_norm_eps for all of them, so the export would change "
        f"what the model computes; accepted a model whose LayerNorms share one eps")
    with pytest.raises(ExportError, match="2 different eps"):
        save_neox(model, tmp_path / "direct", eot_id=None)
    assert not (tmp_path / "hf").exists() and not (tmp_path / "direct").exists()


def test_bad_run_folders_are_refused_before_anything_is_written(models, corpus, tmp_path):
    _, _, tok = corpus
    run = _run_folder(tmp_path, models["dense"])
    with pytest.raises(ExportError) as no_tokenizer:
        export_command(run, tmp_path / "hf")
    assert str(no_tokenizer.value) == (f"{shown_path(run)} has no tokenizer.json and no run_state.json to rebuild "
                                       f"the tokenizer from: accepted a run folder holding either")
    save_tokenizer(run, tok)
    with pytest.raises(ExportError) as unknown:
        export_command(run, tmp_path / "hf", "large_moe_final")
    assert str(unknown.value) == f"checkpoint 'large_moe_final' is not in {shown_path(run)}: accepted one of ['dense_model']"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ExportError) as other_files:
        export_command(run, busy)
    assert str(other_files.value) == (f"--out {str(busy)!r} holds other files (notes.txt): accepted a new or empty "
                                      f"folder, or an earlier export to replace")
    with pytest.raises(ExportError, match="is the run folder itself"):
        export_command(run, run)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"] and not (tmp_path / "hf").exists()
    assert json.loads((run / "dense_model.json").read_text())["model"]["vocab_size"] == CFG.vocab_size
