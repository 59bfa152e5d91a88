"""Shared fixtures: a private cache and user data folder per test, small clips and logos."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFESORA_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SAFESORA_BENCH_DATA", str(tmp_path / "data"))


@pytest.fixture
def smooth_clip():
    """A smooth random clip, float32 (16, 3, 64, 64) in [0.1, 0.9]."""
    gen = torch.Generator().manual_seed(0)
    low = torch.rand(16, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear") * 0.8 + 0.1


@pytest.fixture
def block_logo():
    """A blocky random logo, float32 (3, 32, 32) in [0, 1]."""
    gen = torch.Generator().manual_seed(1)
    low = torch.rand(1, 3, 4, 4, generator=gen)
    return torch.nn.functional.interpolate(low, size=(32, 32), mode="nearest")[0]


@pytest.fixture
def one_thread():
    """One intra-op thread for tests of tiny tensors (pool wake-ups cost ms per op on a busy
    2-core host); the previous count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
