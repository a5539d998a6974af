"""Shared fixtures: small models and the real TinyStories sample (read by path, never copied)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import pytest
import torch

from growlib.config import ModelConfig
from growlib.device import FORCE_CPU_AUTOCAST_VAR

@pytest.fixture
def sample_path() -> Path:
    """The real TinyStories sample that ``$GROWLIB_TINYSTORIES_SAMPLE`` names (scripts/env.sh sets it)."""
    raw = os.environ.get("GROWLIB_TINYSTORIES_SAMPLE", "")
    if not raw or not Path(raw).is_file():
        pytest.skip(f"no real TinyStories sample: GROWLIB_TINYSTORIES_SAMPLE={raw!r}")
    return Path(raw)


@pytest.fixture(autouse=True)
def _offline_and_seeded(monkeypatch):
    # the hub is unreachable on build machines: say so up front, so nothing waits on it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    torch.manual_seed(0)


_last_test = [""]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Every test, and every fixture it sets up, starts in fp32: CPU autocast off, the bf16 switch unset.

    tests/test_bf16.py turns both on for its run. Should either outlive it, later tests on the same
    worker would train in bf16 and miss exact tolerances far from the cause: the leak is named
    here, with the test that ran before, and undone.
    """
    leaks = [what for what, on in (("CPU autocast", torch.is_autocast_enabled("cpu")),
                                   (f"${FORCE_CPU_AUTOCAST_VAR}", FORCE_CPU_AUTOCAST_VAR in os.environ))
             if on]
    if leaks:
        warnings.warn(f"{' and '.join(leaks)} left on before {item.nodeid} (the test before: {_last_test[0]}); "
                      "turned off")
        torch.set_autocast_enabled("cpu", False)
        os.environ.pop(FORCE_CPU_AUTOCAST_VAR, None)
    _last_test[0] = item.nodeid


def small_config(**changes) -> ModelConfig:
    """4 layers so that every depth placement differs; d_model 48, 4 heads of 12."""
    base = ModelConfig(vocab_size=97, d_model=48, n_layers=4, n_heads=4, d_mlp=192, max_seq_len=32)
    return dataclasses.replace(base, **changes)


def perturbed(model, scale: float = 0.1):
    """Non-trivial biases, LayerNorms and router, so exactness is not an accident of zeros."""
    gen = torch.Generator().manual_seed(123)
    noise = lambda p, s: p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * s)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:  # biases and LayerNorm gains and shifts
                noise(p, scale)
        for m in model.moe_layers():
            noise(m.b_in, scale)
            noise(m.b_out, scale)
            noise(m.router.weight, 1.0)  # a decisive router: tokens spread over all experts
    return model


class Killed(Exception):
    """Stands for `kill -9` (or the kernel's OOM killer): the process stops between two steps."""


def killer(phase: int, step: int):
    """An ``after_step`` hook that raises :class:`Killed` after ``step`` of ``phase``."""
    def hook(p, s):
        if (p, s) == (phase, step):
            raise Killed

    return hook


def run_recipe(**kwargs):
    """``growlib.harness.run`` on the spec that ``kwargs`` describe, as the command line builds it.

    ``resume``, ``overwrite`` and ``after_step`` go to ``run``; everything else to ``RunSpec.build``.
    """
    from growlib.harness.pipeline import run
    from growlib.harness.spec import RunSpec

    run_args = {k: kwargs.pop(k) for k in ("resume", "overwrite", "after_step") if k in kwargs}
    return run(RunSpec.build(**kwargs), **run_args)


def open_recipe(*args, **kwargs):
    """``growlib.harness.open_session`` on ``RunSpec.build(*args, **kwargs)``."""
    from growlib.harness.pipeline import open_session
    from growlib.harness.spec import RunSpec

    return open_session(RunSpec.build(*args, **kwargs))
