"""bench.compare on tiny folders of mp4 files written here with PyAV."""

from __future__ import annotations

import math
import shutil
from fractions import Fraction

import av
import numpy as np
import pytest

from bench.compare import compare_folders, format_compare

PSNR_CAP = 100.0  # bench.metrics caps per-frame PSNR of identical frames


def write_mp4(path, frames_uint8: np.ndarray, fps: int = 8) -> None:
    """frames (T, H, W, 3) uint8 -> lossless-luma H.264 mp4."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.height, stream.width = frames_uint8.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}
        for array in frames_uint8:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode(path) -> np.ndarray:
    """(T, H, W, 3) float64 in [0, 1], decoded with PyAV directly."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames).astype(np.float64) / 255


def smooth_video(seed: int, frames: int = 6, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[0], 0:size[1]]
    out = []
    for t in range(frames):
        channels = [np.sin(x / (3 + c) + t * 0.3 + rng.random()) * np.cos(y / (4 + c))
                    for c in range(3)]
        out.append(np.stack(channels, axis=-1) * 100 + 128)
    return np.clip(np.array(out), 0, 255).astype(np.uint8)


def expected_psnr(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Mean over frames of per-frame PSNR (peak 1), capped, with a float64 loop."""
    values = []
    for c, r in zip(candidate, reference, strict=True):
        mse = np.mean((c - r) ** 2)
        values.append(PSNR_CAP if mse == 0 else min(10 * math.log10(1 / mse), PSNR_CAP))
    return float(np.mean(values))


@pytest.fixture
def folders(tmp_path):
    ref, cand = tmp_path / "ref", tmp_path / "cand"
    ref.mkdir()
    cand.mkdir()
    for i, name in enumerate(["a.mp4", "b.mp4", "only_ref.mp4"]):
        write_mp4(ref / name, smooth_video(i))
    for name in ["a.mp4", "b.mp4"]:
        shutil.copy(ref / name, cand / name)
    return ref, cand


def test_identical_folders(folders):
    ref, cand = folders
    result = compare_folders(ref, cand)
    assert result["n"] == 2 and result["videos"] == ["a.mp4", "b.mp4"]
    assert result["v_psnr"] == pytest.approx(PSNR_CAP)
    assert result["v_ssim"] == pytest.approx(1.0)
    assert [name for name, _ in result["skipped"]] == ["only_ref.mp4"]
    assert "unmatched" in result["skipped"][0][1]
    for metric in ("v_lpips", "tlp", "fvd"):  # LPIPS needs weights; FVD 2 videos
        assert result[metric] is not None or result["unavailable"][metric]
    text = format_compare(result)
    assert "2 video(s) compared" in text and "only_ref.mp4" in text and "v-psnr" in text


def test_values_match_an_independent_psnr(folders):
    ref, cand = folders
    rng = np.random.default_rng(5)
    for name in ("a.mp4", "b.mp4"):
        frames = (decode(ref / name) * 255).round().astype(np.int16)
        noisy = np.clip(frames + rng.integers(-6, 7, frames.shape), 0, 255).astype(np.uint8)
        write_mp4(cand / name, noisy)
    expected = np.mean([expected_psnr(decode(cand / n), decode(ref / n))
                        for n in ("a.mp4", "b.mp4")])
    result = compare_folders(ref, cand)
    assert result["n"] == 2
    assert result["v_psnr"] == pytest.approx(expected, abs=1e-6)
    assert result["v_psnr"] < 60


def test_other_frame_counts_and_sizes_skipped_corrupt_skipped(folders):
    ref, cand = folders
    write_mp4(cand / "a.mp4", smooth_video(0)[:4])  # fewer frames: skipped, never cut
    write_mp4(cand / "b.mp4", smooth_video(1, size=(32, 48)))  # other size: skipped
    write_mp4(ref / "c.mp4", smooth_video(3))
    (cand / "c.mp4").write_bytes(b"not a video at all")  # unreadable: skipped
    write_mp4(ref / "d.mp4", smooth_video(4))
    write_mp4(cand / "d.mp4", smooth_video(4))  # the one comparable pair
    result = compare_folders(ref, cand)
    assert result["n"] == 1 and result["videos"] == ["d.mp4"]
    expected = expected_psnr(decode(cand / "d.mp4"), decode(ref / "d.mp4"))
    assert result["v_psnr"] == pytest.approx(expected) == PSNR_CAP
    reasons = dict(result["skipped"])
    assert "6 frames in the reference vs 4 in the candidate" in reasons["a.mp4"]
    assert "shape mismatch" in reasons["b.mp4"]
    assert "unreadable" in reasons["c.mp4"]
    assert "unmatched" in reasons["only_ref.mp4"]


def test_nothing_comparable(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "c").mkdir()
    result = compare_folders(tmp_path / "r", tmp_path / "c")
    assert result["n"] == 0
    assert all(result[m] is None for m in ("v_psnr", "v_ssim", "v_lpips", "tlp", "fvd"))
    assert "unavailable" in format_compare(result)
