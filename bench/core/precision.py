"""Numeric precision of a method's forward passes: ``fp32`` (the reference) or ``bf16``
(autocast on the CPU or GPU, weights in fp32, convolutions in channels_last).

A run asks for ``fp32``, ``bf16`` or ``auto``: each method in the precision it declares
(``Method.inference_precision``: bf16 only where its shipped checkpoint was measured within
``BF16_TOLERANCE_DB`` of fp32), fp32 for every other method and for any checkpoint loaded
in place of the shipped one (its tolerance was never measured)."""

from __future__ import annotations

import contextlib

import torch

from bench.core.api import BenchError

PRECISIONS = ("fp32", "bf16")
#: what a run may ask for: a precision for every method, or ``auto`` (each its declared one)
RUN_PRECISIONS = ("auto", *PRECISIONS)
#: the largest mean |W-PSNR| and |V-PSNR| difference (dB) of bf16 against fp32, over the
#: first videos of the default profile without attack, for a method to declare bf16
BF16_TOLERANCE_DB = 0.05


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise BenchError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def check_run_precision(precision: str) -> str:
    if precision not in RUN_PRECISIONS:
        raise BenchError(f"precision must be one of {', '.join(RUN_PRECISIONS)}, "
                         f"not {precision!r}")
    return precision


def method_precision(requested: str, declared: str, shipped_checkpoint: bool) -> str:
    """The precision a method runs in: ``requested`` unless it is ``auto``; then the
    method's ``declared`` one if it runs its shipped checkpoint, else fp32."""
    if check_run_precision(requested) != "auto":
        return requested
    return check_precision(declared) if shipped_checkpoint else "fp32"


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
