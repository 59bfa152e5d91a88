"""Speed of one SFMamba3D forward + backward (C = 24, 8 frames of 64 x 64), CPU and CUDA.

Run the timings with ``python -m pytest tests/test_safe_sora_benchmark.py --benchmark-enable``
(add ``-m gpu`` for the CUDA one); the default suite runs each once, untimed.
"""

from __future__ import annotations

import pytest
import torch

from methods.safe_sora.sfmamba import SFMamba3D

SHAPE = (1, 8, 24, 64, 64)  # (B, T, C, H, W)


def _step_fn(device: str):
    torch.manual_seed(0)
    block = SFMamba3D(SHAPE[2]).to(device)
    x = torch.randn(*SHAPE, device=device, requires_grad=True)

    def step():
        block.zero_grad(set_to_none=True)
        x.grad = None
        out = block(x)
        out.square().mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return block, step


@pytest.mark.slow
@pytest.mark.benchmark(group="safe-sora sfmamba3d fwd+bwd C=24 8x64x64 cpu")
def test_sfmamba3d_forward_backward_cpu(benchmark):
    block, step = _step_fn("cpu")
    out = benchmark.pedantic(step, rounds=2, iterations=1)
    assert out.shape == SHAPE and torch.isfinite(out).all()
    assert all(p.grad is not None for p in block.parameters())


@pytest.mark.gpu
@pytest.mark.benchmark(group="safe-sora sfmamba3d fwd+bwd C=24 8x64x64 cuda")
def test_sfmamba3d_forward_backward_cuda(benchmark):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    block, step = _step_fn("cuda")
    step()  # warm-up: kernels, cuDNN plans
    out = benchmark.pedantic(step, rounds=5, iterations=1)
    assert out.shape == SHAPE and torch.isfinite(out).all()
    assert all(p.grad is not None for p in block.parameters())
