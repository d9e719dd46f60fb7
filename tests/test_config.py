"""lecture_lib.config: quick mode, device choice, seeding."""

import random

import numpy as np
import pytest
import torch

from lecture_lib import config


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_quick_mode_reads_environment(monkeypatch, value, expected):
    monkeypatch.setenv("LECTURE_QUICK", value)
    assert config.is_quick() is expected
    assert config.pick(full=30, quick=2) == (2 if expected else 30)


def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert config.get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert config.get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_device() == torch.device("cuda")


def test_get_device_rejects_unknown_or_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="one of .* got 'tpu'"):
        config.get_device("tpu")
    with pytest.raises(ValueError, match="not available"):
        config.get_device("cuda")
    assert config.get_device("cpu") == torch.device("cpu")


def test_seed_everything_makes_runs_repeat():
    def draw():
        rng = config.seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(3).tolist(), rng.random()

    assert draw() == draw()
    config.seed_everything(124)
    other = torch.rand(3).tolist()
    assert other != draw()[2]


def test_seed_everything_rejects_bad_seeds():
    with pytest.raises(TypeError, match="int, got float"):
        config.seed_everything(1.5)
    with pytest.raises(ValueError, match=">= 0"):
        config.seed_everything(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_device_works():
    x = torch.ones(2, device=config.get_device())
    assert x.device.type == "cuda"
