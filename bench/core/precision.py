"""Numeric precision of a method's forward passes: ``fp32`` (the reference) or ``bf16``
(autocast on the CPU or GPU, weights in fp32, convolutions in channels_last)."""

from __future__ import annotations

import contextlib

import torch

from bench.core.api import BenchError

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise BenchError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def autocast(precision: str, device: str = "cpu"):
    """A context that runs the body in ``precision``: bf16 autocast, or nothing for fp32."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """Put every 4-D parameter and buffer in channels_last and every 5-D one in
    channels_last_3d, in place (convolutions then run in the faster NHWC layout)."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.dim() in formats:
            tensor.data = tensor.data.contiguous(memory_format=formats[tensor.dim()])
    return module
