"""Training throughput of every trainable method: one optimiser step, fp32 against bf16.

A step here is what ``bench train`` does per step once its clip bank is warm: the method's
``training_losses`` (under bf16 autocast with the network in channels_last, or in plain fp32),
backward and an AdamW update, on the method's own default batch, window and crop, at the
``default`` profile's frame size. Samples per second = batch items / step time. Run the
timings with ``python -m pytest tests/test_train_benchmark.py --benchmark-enable``; the
default suite runs each step once, untimed, and checks that it trains.
"""

from __future__ import annotations

import pytest
import torch

from bench.core import registry
from bench.core.precision import to_channels_last
from bench.core.profiles import load_profile
from bench.train.loop import _training_attacks

#: Safe-Sora at its default batch 1 of one 8-frame unit
TRAINABLE = ("balujanet", "udh", "pusnet", "safe-sd", "wengnet", "safe-sora")
PROFILE = load_profile("default")


def _step_fn(name: str, precision: str):
    torch.manual_seed(0)
    method = registry.get("methods", name)(PROFILE, "cpu", checkpoint=None)
    defaults = method.resolved_train_defaults()
    batch, frames = int(defaults["batch_size"]), int(defaults.get("frames") or PROFILE.frames)
    gen = torch.Generator().manual_seed(1)
    videos = (torch.rand(batch, frames, 3, PROFILE.height, PROFILE.width, generator=gen)
              * 255).round() / 255
    logos = torch.rand(batch, 3, PROFILE.logo_size, PROFILE.logo_size, generator=gen)
    _, attack = _training_attacks(("identity",), PROFILE)[0]
    network = method.network().train()
    if precision == "bf16":
        to_channels_last(network)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            losses = method.training_losses(videos, logos, attack, torch.Generator())
        loss = losses["loss"].float()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss)

    return step, batch


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", TRAINABLE)
def test_training_step_throughput(benchmark, name, precision):
    benchmark.group = f"train step {name}"
    step, batch = _step_fn(name, precision)
    step()  # warm-up (oneDNN primitives)
    loss = benchmark.pedantic(step, rounds=3, iterations=1)
    assert torch.isfinite(torch.tensor(loss))
    if benchmark.stats is not None:
        benchmark.extra_info["samples_per_second"] = batch / benchmark.stats.stats.median
