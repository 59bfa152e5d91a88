"""The shared 8-bit conversions and video shape checks (bench/core/video.py)."""

from __future__ import annotations

import pytest
import torch

from bench.core.api import BenchError
from bench.core.video import check_video, from_uint8, pad_to_even, quantise, to_uint8


def test_8bit_round_trip_clamps_and_rounds_to_the_nearest_level():
    x = torch.tensor([-0.5, 0.0, 0.5 / 255, 0.51 / 255, 0.5, 1.0, 1.5])
    assert to_uint8(x).tolist() == [0, 0, 0, 1, 128, 255, 255]
    assert torch.equal(from_uint8(to_uint8(x)), quantise(x))
    assert from_uint8(torch.tensor([0, 255], dtype=torch.uint8)).dtype == torch.float32
    assert quantise(x.double()).dtype == torch.float64


def test_pad_to_even_repeats_the_last_row_and_column():
    pixels = torch.arange(2 * 3 * 3 * 5, dtype=torch.uint8).reshape(2, 3, 3, 5)
    padded = pad_to_even(pixels)
    assert padded.shape == (2, 3, 4, 6) and padded.dtype == torch.uint8
    assert torch.equal(padded[..., :3, :5], pixels)
    assert torch.equal(padded[..., 3, :5], pixels[..., 2, :]) and torch.equal(
        padded[..., :, 5], padded[..., :, 4])
    even = torch.zeros(1, 3, 4, 4)
    assert pad_to_even(even) is even


@pytest.mark.parametrize("frames,kwargs,message", [
    (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), {}, r"frames must be a float tensor \(T, 3"),
    ([0.0], {"what": "clip"}, "clip must be a float tensor"),
    (torch.zeros(2, 4, 4, 4), {}, r"must have shape \(T, 3, H, W\), got \(2, 4, 4, 4\)"),
    (torch.zeros(2, 3, 4, 4), {"batched": True}, r"must have shape \(B, T, 3, H, W\)"),
    (torch.zeros(2, 3), {"floating": False, "what": "I3D: a video"}, "I3D: a video must have"),
])
def test_check_video_names_what_is_wrong(frames, kwargs, message):
    with pytest.raises(BenchError, match=message):
        check_video(frames, **kwargs)


def test_check_video_accepts_videos_and_batches():
    check_video(torch.zeros(2, 3, 4, 4))
    check_video(torch.zeros(1, 2, 3, 4, 4), batched=True)
    check_video(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), floating=False)
