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


def test_seed_everything_fixes_threads_and_deterministic_algorithms(monkeypatch):
    threads = torch.get_num_threads()
    try:
        config.seed_everything(0, threads=1)
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.utils.deterministic.fill_uninitialized_memory  # no NaN fill of new tensors
        monkeypatch.setenv("LECTURE_THREADS", "2")
        config.seed_everything(0)
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="positive int, got 0"):
            config.seed_everything(0, threads=0)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = True


def test_seeded_loader_kwargs_repeat_the_shuffle_and_worker_seeds():
    data = torch.utils.data.TensorDataset(torch.arange(20))

    def order(seed):
        loader = torch.utils.data.DataLoader(data, batch_size=5, shuffle=True,
                                             **config.seeded_loader_kwargs(seed))
        return torch.cat([b[0] for b in loader]).tolist()

    torch.manual_seed(1)  # the global RNG must not matter
    first = order(3)
    torch.manual_seed(2)
    assert order(3) == first and order(4) != first
    assert sorted(first) == list(range(20))
    with pytest.raises(ValueError, match="non-negative int"):
        config.seeded_loader_kwargs(-1)


def test_seed_everything_rejects_bad_seeds():
    with pytest.raises(TypeError, match="int, got float"):
        config.seed_everything(1.5)
    with pytest.raises(ValueError, match=">= 0"):
        config.seed_everything(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_device_works():
    x = torch.ones(2, device=config.get_device())
    assert x.device.type == "cuda"
