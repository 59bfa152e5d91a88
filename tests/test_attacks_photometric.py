"""The photometric attacks against independent computations (PIL ImageEnhance, torchvision's
functional transforms, colorsys, scipy, numpy)."""

from __future__ import annotations

import colorsys
import io
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torchvision.transforms.functional as TF
from clips import psnr, seeded, seeded_output, uniform_clip
from PIL import Image, ImageEnhance

from attacks.photometric import (
    JPEG,
    Brightness,
    Contrast,
    Gamma,
    Hue,
    Median,
    Saturation,
    hsv_to_rgb,
    rgb_to_hsv,
)
from bench.core.api import BenchError


def random_clip(t: int = 3, h: int = 16, w: int = 20, seed: int = 0) -> torch.Tensor:
    return uniform_clip(t, h, w, seed, 0.0, 1.0)


ATTACKS = [Brightness, Contrast, Saturation, Hue, Gamma, JPEG, Median]
GRID = [(cls, params) for cls in ATTACKS for params in cls.grid()]
GRID_IDS = [cls(params).canonical for cls, params in GRID]
STRAIGHT_THROUGH = (JPEG, Median)


def uint8_clip(t: int = 2, h: int = 16, w: int = 20, seed: int = 0) -> torch.Tensor:
    """float32 (T, 3, H, W) on 8-bit levels."""
    return (random_clip(t, h, w, seed) * 255).round() / 255


def pil_frames(frames: torch.Tensor) -> list[Image.Image]:
    pixels = (frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(p) for p in pixels]


def from_pil(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(i.convert("RGB")) for i in images]).transpose(0, 3, 1, 2) / 255


# --- contract -------------------------------------------------------------------------------

def test_canonical_strings_and_strengths():
    assert Brightness().canonical == "brightness(factor=0.7)"
    assert Contrast().canonical == "contrast(factor=0.7)"
    assert Saturation().canonical == "saturation(factor=0.5)"
    assert Hue().canonical == "hue(shift=0.1)"
    assert Gamma().canonical == "gamma(gamma=1.5)"
    assert JPEG().canonical == "jpeg(quality=50)"
    assert Median().canonical == "median(kernel=3)"
    assert Hue(Hue.Params(shift=-0.2)).strength() == 0.2
    assert math.isnan(Brightness(Brightness.Params(factor=(0.5, 1.5))).strength())
    assert [JPEG(p).strength() for p in JPEG.grid()] == [50.0, 90.0, 75.0, 30.0, 10.0]


@pytest.mark.parametrize("make,words", [
    (lambda: Brightness.Params(factor=-0.1), "brightness factor"),
    (lambda: Contrast.Params(factor=float("inf")), "finite"),
    (lambda: Saturation.Params(factor=(2.0, 1.0)), "low <= high"),
    (lambda: Hue.Params(shift=0.6), "hue shift"), (lambda: Gamma.Params(gamma=0), "above 0"),
    (lambda: Gamma.Params(gamma=(0.0, 2.0)), "above 0"),
    (lambda: JPEG.Params(quality=0), "jpeg quality"), (lambda: JPEG.Params(quality=96), "1, 95"),
    (lambda: JPEG.Params(quality=50.5), "integer"), (lambda: Median.Params(kernel=4), "odd"),
    (lambda: Median.Params(kernel=0), "median kernel"), (lambda: Hue(Gamma.Params()), "needs"),
])
def test_bad_params_raise_with_a_clear_message(make, words):
    with pytest.raises(BenchError, match=words):
        make()


def test_median_kernel_too_large_for_the_frame():
    with pytest.raises(BenchError, match="larger than"):
        Median(Median.Params(kernel=9))(random_clip(h=4, w=20), seeded())


# --- every attack, every grid point -----------------------------------------------------------

@pytest.mark.parametrize("cls,params", GRID, ids=GRID_IDS)
def test_shape_range_determinism_and_train_form(cls, params):
    frames = random_clip()
    first = seeded_output(cls(params), frames)
    batch = frames[None].clone().requires_grad_()
    trained = cls(params).train_form()(batch, seeded(7))
    assert torch.allclose(trained[0].detach(), first, atol=1e-6)
    weights = torch.rand(trained.shape, generator=seeded(1))
    (trained * weights).sum().backward()
    assert torch.isfinite(batch.grad).all() and batch.grad.abs().sum() > 0
    if cls in STRAIGHT_THROUGH:
        assert torch.equal(batch.grad, weights)


def test_ranges_are_drawn_per_row():
    frames = random_clip()
    attack = Brightness(Brightness.Params(factor=(0.5, 1.5)))
    drawn = set()
    for seed in range(4):
        out = attack(frames, seeded(seed))
        factor = attack.info()["factor"]
        assert 0.5 <= factor <= 1.5
        assert torch.allclose(out, (frames * factor).clamp(0, 1), atol=1e-6)
        drawn.add(factor)
    assert len(drawn) == 4


# --- colour adjustments: torchvision and PIL ImageEnhance --------------------------------------

@pytest.mark.parametrize("factor", [0.5, 0.7, 1.5])
def test_brightness_matches_torchvision_and_pil(factor):
    frames = uint8_clip()
    out = Brightness(Brightness.Params(factor=factor))(frames, seeded())
    np.testing.assert_allclose(out.numpy(), TF.adjust_brightness(frames, factor).numpy(),
                               atol=1e-6)
    pil = from_pil([ImageEnhance.Brightness(i).enhance(factor) for i in pil_frames(frames)])
    assert np.abs(out.numpy() - pil).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("factor", [0.5, 0.7, 1.6])
def test_contrast_matches_torchvision_and_pil(factor):
    frames = uint8_clip()
    out = Contrast(Contrast.Params(factor=factor))(frames, seeded())
    ref = torch.stack([TF.adjust_contrast(f, factor) for f in frames])  # per frame
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-6)
    # PIL rounds the frame's mean grey to a whole level first
    pil = from_pil([ImageEnhance.Contrast(i).enhance(factor) for i in pil_frames(frames)])
    assert np.abs(out.numpy() - pil).max() <= 2 / 255 + 1e-6


def test_contrast_mean_is_per_frame_in_numpy():
    frames = random_clip(t=2)
    out = Contrast(Contrast.Params(factor=0.3))(frames, seeded()).numpy()
    x = frames.double().numpy()
    for t in range(2):
        mean = (0.2989 * x[t, 0] + 0.587 * x[t, 1] + 0.114 * x[t, 2]).mean()
        np.testing.assert_allclose(out[t], np.clip(0.3 * x[t] + 0.7 * mean, 0, 1), atol=1e-6)


@pytest.mark.parametrize("factor", [0.0, 0.5, 2.0])
def test_saturation_matches_torchvision_and_pil(factor):
    frames = uint8_clip()
    out = Saturation(Saturation.Params(factor=factor))(frames, seeded())
    np.testing.assert_allclose(out.numpy(), TF.adjust_saturation(frames, factor).numpy(),
                               atol=1e-6)
    pil = from_pil([ImageEnhance.Color(i).enhance(factor) for i in pil_frames(frames)])
    assert np.abs(out.numpy() - pil).max() <= 3 / 255 + 1e-6


def test_hsv_conversion_matches_colorsys():
    frames = torch.cat([random_clip(t=1, h=6, w=7).double(),
                        torch.tensor([0.0, 0.5, 1.0, 0.25, 0.25, 0.25, 0.8]).double()
                        .view(1, 1, 1, 7).expand(1, 3, 1, 7).contiguous()
                        .expand(1, 3, 6, 7)], dim=0)  # includes greys (r == g == b)
    hsv = rgb_to_hsv(frames).numpy()
    x = frames.numpy()
    for t in range(x.shape[0]):
        for i in range(6):
            for j in range(7):
                expected = colorsys.rgb_to_hsv(*x[t, :, i, j])
                np.testing.assert_allclose(hsv[t, :, i, j], expected, atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(torch.from_numpy(hsv)).numpy(), x, atol=1e-12)


@pytest.mark.parametrize("shift", [0.1, -0.3, 0.5])
def test_hue_matches_colorsys_and_torchvision(shift):
    frames = random_clip(t=1, h=5, w=6)
    out = Hue(Hue.Params(shift=shift))(frames, seeded()).numpy()
    x = frames.double().numpy()
    for i in range(5):
        for j in range(6):
            h, s, v = colorsys.rgb_to_hsv(*x[0, :, i, j])
            expected = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
            np.testing.assert_allclose(out[0, :, i, j], expected, atol=1e-5)
    np.testing.assert_allclose(out, TF.adjust_hue(frames, shift).numpy(), atol=1e-5)


@pytest.mark.parametrize("gamma", [0.5, 1.5, 2.5])
def test_gamma_matches_numpy_and_torchvision(gamma):
    frames = random_clip()
    frames[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 1e-4])
    out = Gamma(Gamma.Params(gamma=gamma))(frames, seeded())
    np.testing.assert_allclose(out.numpy(), np.power(frames.double().numpy(), gamma), atol=1e-6)
    np.testing.assert_allclose(out.numpy(), TF.adjust_gamma(frames, gamma).numpy(), atol=1e-6)


def test_gamma_gradient_is_finite_at_black():
    frames = torch.zeros(1, 1, 3, 4, 4, requires_grad=True)
    Gamma(Gamma.Params(gamma=0.5)).train_form()(frames, seeded()).sum().backward()
    assert torch.isfinite(frames.grad).all()


# --- jpeg -----------------------------------------------------------------------------------

def test_jpeg_is_a_per_frame_pil_round_trip():
    frames = uint8_clip(t=3, h=24, w=32)
    attack = JPEG(JPEG.Params(quality=40))
    out = attack(frames, seeded())
    expected, total = [], 0
    for image in pil_frames(frames):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=40, subsampling="4:2:0")
        total += len(buffer.getvalue())
        expected.append(Image.open(io.BytesIO(buffer.getvalue())))
    np.testing.assert_allclose(out.numpy(), from_pil(expected), atol=1e-7)
    assert attack.info() == {"bytes": total}


def test_jpeg_quality_orders_fidelity_and_size():
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 48), indexing="ij")
    frames = torch.stack([ys, xs, (xs + ys) / 2])[None].repeat(2, 1, 1, 1)
    frames = frames + 0.05 * random_clip(t=2, h=32, w=48)
    frames = frames.clamp(0, 1)
    results = []
    for quality in (90, 50, 10):
        attack = JPEG(JPEG.Params(quality=quality))
        out = attack(frames, seeded())
        assert torch.equal((out * 255).round() / 255, out)
        results.append((psnr(out, frames), attack.info()["bytes"]))
    assert results[0][0] > results[1][0] > results[2][0]
    assert results[0][1] > results[1][1] > results[2][1]


# --- median ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_median_matches_scipy(kernel):
    frames = random_clip(t=2, h=14, w=17)
    out = Median(Median.Params(kernel=kernel))(frames, seeded())
    # scipy's "mirror" reflects about the edge pixel, like torch's "reflect" padding
    ref = ndi.median_filter(frames.numpy(), size=(1, 1, kernel, kernel), mode="mirror")
    np.testing.assert_array_equal(out.numpy(), ref)


def test_median_interior_matches_a_numpy_loop():
    frames = random_clip(t=1, h=9, w=10)
    out = Median(Median.Params(kernel=5))(frames, seeded()).numpy()
    x = frames.numpy()
    for c in range(3):
        for i in range(2, 7):
            for j in range(2, 8):
                assert out[0, c, i, j] == np.median(x[0, c, i - 2:i + 3, j - 2:j + 3])
