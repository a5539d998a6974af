"""The GPT: deterministic, causal, and its checkpoints reproduce logits bit for bit."""

import json

import pytest
import torch

from growlib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from growlib.model import build_model
from growlib.upcycle import upcycle

from conftest import small_config


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = build_model(small_config(), seed=3), build_model(small_config(), seed=3), build_model(small_config(), seed=4)
    for (n, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), n
    assert not torch.equal(a.tok_emb.weight, c.tok_emb.weight)


def test_causal_and_shapes():
    model = build_model(small_config()).eval()
    x = torch.randint(0, 97, (2, 16))
    y = x.clone()
    y[:, 10:] = (y[:, 10:] + 1) % 97
    lx, ly = model(x), model(y)
    assert lx.shape == (2, 16, 97)
    assert torch.equal(lx[:, :10], ly[:, :10])  # the past does not see the future
    assert not torch.allclose(lx[:, 10:], ly[:, 10:])


def test_output_head_is_tied_to_the_embedding():
    model = build_model(small_config())
    names = [n for n, _ in model.named_parameters()]
    assert "tok_emb.weight" in names and not any("head" in n for n in names)
    assert not any("pos" in n for n in names)  # RoPE: no learned position table


def test_sequence_longer_than_max_is_rejected():
    with pytest.raises(ValueError, match="exceeds max_seq_len=32"):
        build_model(small_config())(torch.zeros(1, 33, dtype=torch.long))


@pytest.mark.parametrize("moe", [False, True])
def test_checkpoint_round_trip_is_bit_exact(tmp_path, moe):
    model = build_model(small_config(), seed=5)
    if moe:
        model = upcycle(model, 4, 2, seed=1)
    model.blocks[0].ln1.eps = 3e-6  # a per-module eps survives the round trip
    save_checkpoint(model, tmp_path, "m", extra={"note": 1})
    loaded, extra, _ = load_checkpoint(tmp_path, "m")
    x = torch.randint(0, 97, (2, 16))
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    assert loaded.blocks[0].ln1.eps == 3e-6 and extra == {"note": 1}


def test_checkpoint_rejects_corruption_and_other_configs(tmp_path):
    model = build_model(small_config())
    save_checkpoint(model, tmp_path, "m")
    with pytest.raises(CheckpointError, match="different configuration"):
        load_checkpoint(tmp_path, "m", expect=small_config(n_layers=3))
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path, "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path, "m")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path, "absent")


def test_checkpoint_is_safetensors_plus_json(tmp_path):
    save_checkpoint(build_model(small_config()), tmp_path, "m")
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["model"]["d_model"] == 48 and "blocks.0.ln1" in meta["ln_eps"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temp files left
