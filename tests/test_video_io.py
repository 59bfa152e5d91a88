"""bench.core.video_io: round trips against numpy references and clear errors on bad files."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from bench.core.api import BenchError
from bench.core.video_io import VideoReader, read_video, write_video


def smooth_video(frames: int, height: int, width: int) -> np.ndarray:
    """A smooth moving colour pattern, float64 (T, 3, H, W) in [0.1, 0.9]."""
    t = np.arange(frames)[:, None, None]
    y = np.arange(height)[None, :, None] / height
    x = np.arange(width)[None, None, :] / width
    red = 0.5 + 0.4 * np.sin(2 * np.pi * (x + 0.05 * t))
    green = 0.5 + 0.4 * np.cos(2 * np.pi * (y - 0.03 * t))
    blue = 0.5 + 0.4 * np.sin(np.pi * (x + y) + 0.2 * t)
    return np.stack(np.broadcast_arrays(red, green, blue), axis=1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * np.log10(1.0 / mse)


def test_round_trip_crf0_matches_reference(tmp_path):
    reference = smooth_video(8, 48, 64)
    path = write_video(tmp_path / "smooth.mp4", torch.from_numpy(reference).float(), fps=8)
    frames, fps = read_video(path)
    assert frames.dtype == torch.float32
    assert tuple(frames.shape) == (8, 3, 48, 64)
    assert fps == pytest.approx(8.0)
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert psnr(frames.numpy(), reference) > 35.0


def test_higher_crf_loses_more(tmp_path):
    rng = np.random.default_rng(0)
    reference = np.clip(smooth_video(6, 32, 32) + rng.normal(0, 0.05, (6, 3, 32, 32)), 0, 1)
    video = torch.from_numpy(reference).float()
    lossless, _ = read_video(write_video(tmp_path / "a.mp4", video, fps=8, crf=0))
    lossy, _ = read_video(write_video(tmp_path / "b.mp4", video, fps=8, crf=40))
    assert psnr(lossless.numpy(), reference) > psnr(lossy.numpy(), reference) + 3.0


def test_odd_size_is_padded_by_edge_repetition(tmp_path):
    reference = smooth_video(4, 37, 53)
    frames, _ = read_video(write_video(tmp_path / "odd.mp4", torch.from_numpy(reference), 8))
    assert tuple(frames.shape) == (4, 3, 38, 54)
    assert psnr(frames[:, :, :37, :53].numpy(), reference) > 35.0
    # the padding repeats the last row / column
    assert psnr(frames[:, :, 37, :53].numpy(), reference[:, :, 36, :]) > 30.0
    assert psnr(frames[:, :, :37, 53].numpy(), reference[:, :, :, 52]) > 30.0


def test_fractional_fps_and_max_frames(tmp_path):
    video = torch.from_numpy(smooth_video(6, 16, 16)).float()
    path = write_video(tmp_path / "ntsc.mp4", video, fps=30000 / 1001)
    frames, fps = read_video(path, max_frames=3)
    assert frames.shape[0] == 3
    assert fps == pytest.approx(29.97, abs=0.01)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    video = torch.from_numpy(smooth_video(3, 16, 16)).float()
    write_video(tmp_path / "out.mp4", video, fps=8)
    write_video(tmp_path / "out.mp4", video * 0.5, fps=8)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    frames, _ = read_video(tmp_path / "out.mp4")
    assert psnr(frames.numpy(), video.numpy() * 0.5) > 30.0  # the second write won
    assert psnr(frames.numpy(), video.numpy()) < 20.0
    with pytest.raises(BenchError, match="expects frames"):
        write_video(tmp_path / "bad.mp4", torch.zeros(3, 16, 16), fps=8)
    with pytest.raises(BenchError, match="fps"):
        write_video(tmp_path / "bad.mp4", video, fps=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_missing_file(tmp_path):
    with pytest.raises(BenchError, match="not found"):
        read_video(tmp_path / "nothing.mp4")


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(BenchError, match="corrupt|not a video"):
        read_video(path)


def test_truncated_file(tmp_path):
    video = torch.from_numpy(smooth_video(12, 32, 32)).float()
    path = write_video(tmp_path / "whole.mp4", video, fps=8)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchError):
        read_video(cut)


def _write_faststart(path, frames: int = 24) -> None:
    """An mp4 with its index first (movflags=faststart): cutting it leaves it openable."""
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(8))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.options = {"crf": "0"}
        for _ in range(frames):
            array = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_truncated_faststart_file_fails_even_when_few_frames_are_asked(tmp_path):
    whole = tmp_path / "whole.mp4"
    _write_faststart(whole)
    assert read_video(whole)[0].shape[0] == 24
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with VideoReader(cut) as reader:  # the index survives: it opens ...
        assert reader.declared_frames == 24
    with pytest.raises(BenchError, match="truncated|corrupt"):  # ... but cannot be read
        read_video(cut, max_frames=2)


def test_file_without_video_stream(tmp_path):
    path = tmp_path / "sound.wav"
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(BenchError, match="no video stream"):
        read_video(path)
