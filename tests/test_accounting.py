"""Parameter counts to the unit, and FLOPs per token against a hand count."""

import dataclasses

import pytest

from growlib.accounting import analytic_params, param_report, training_flops_per_token
from growlib.budget import phase_configs, phase_reports, recipe_discrepancy_line
from growlib.config import PRESETS, ModelConfig
from growlib.model import build_model


def test_seed_phase1_is_exactly_100_038_016():
    rep = param_report(build_model(PRESETS["recipe"].model, device="meta"))
    assert rep.total == rep.active == 100_038_016
    assert rep.lines() == ["  Total Parameters:   100.04 M", "  Active Params/tok:  100.04 M  (Dense model)"]


def test_seed_phase2_counts_and_lines():
    p = PRESETS["recipe"]
    rep = phase_reports(p.model, p.growth)[2]
    assert (rep.total, rep.active, rep.inactive) == (371_640_256, 138_878_272, 232_761_984)
    assert rep.lines() == ["  Total Parameters:   371.64 M",
                           "  Active Params/tok:  138.88 M  (top-2 of 8 experts)",
                           "  Inactive Params:    232.76 M  (42 experts idle)"]
    assert rep.efficiency_line() == "  Efficiency: 37.4% active per forward pass"


def test_seed_phase3_true_counts_and_the_seeds_discrepancy():
    p = PRESETS["recipe"]
    cfg = phase_configs(p.model, p.growth)[3]
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_mlp) == (1664, 11, 16, 6656)
    rep = phase_reports(p.model, p.growth)[3]
    assert (rep.total, rep.active, rep.idle_experts) == (2_155_790_208, 693_264_000, 66)
    assert f"{100 * rep.efficiency:.1f}" == "32.2"
    assert "does not follow" in recipe_discrepancy_line(rep)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("phase", [1, 2, 3])
def test_analytic_equals_measured(preset, phase):
    p = PRESETS[preset]
    cfg = phase_configs(p.model, p.growth)[phase]
    rep = param_report(build_model(cfg, device="meta"))
    assert (rep.total, rep.active) == analytic_params(cfg)


def test_meta_count_equals_real_count():
    cfg = PRESETS["tiny"].model
    assert param_report(build_model(cfg)).total == param_report(build_model(cfg, device="meta")).total


def _hand_flops(d, h, L, V, T, k=1, E=0):
    # per token, forward: q,k,v,out (4 d^2), k experts of 2 d h, router d E, head d V, all x2;
    # attention QK^T and AV: 2 x 2 T d per layer; backward doubles the forward
    fwd = 2 * (L * (4 * d * d + k * 2 * d * h + d * E) + d * V) + L * 4 * T * d
    return 3 * fwd


def test_flops_hand_count_dense_moe_grown():
    dense = ModelConfig(vocab_size=100, d_model=16, n_layers=2, n_heads=2, d_mlp=64, max_seq_len=8)
    assert training_flops_per_token(dense, 8) == _hand_flops(16, 64, 2, 100, 8) == 3 * (2 * (2 * (1024 + 2048) + 1600) + 1024)
    moe = dataclasses.replace(dense, n_experts=4, top_k=2)
    assert training_flops_per_token(moe, 8) == _hand_flops(16, 64, 2, 100, 8, k=2, E=4)
    grown = dataclasses.replace(moe, d_model=32, n_heads=4, d_mlp=128, n_layers=4)
    assert training_flops_per_token(grown, 8) == _hand_flops(32, 128, 4, 100, 8, k=2, E=4)
