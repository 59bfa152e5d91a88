"""The evaluation attacks against independent references (scipy, closed forms, statistics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from clips import psnr, seeded, seeded_output, smooth_clip, uniform_clip

from attacks.blur import Blur
from attacks.erasure import Erasure
from attacks.h264 import H264
from attacks.identity import Identity
from attacks.noise import Noise
from attacks.rotation import Rotation
from bench.core.api import Attack, BenchError


def random_clip(t: int = 3, h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    return uniform_clip(t, h, w, seed, 0.05, 0.95)


ATTACKS = [Identity, Erasure, Blur, Noise, Rotation, H264]
GRID = [(cls, params) for cls in ATTACKS for params in cls.grid()]
GRID_IDS = [cls(params).canonical for cls, params in GRID]


# --- contract -------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", ATTACKS, ids=lambda c: c.name)
def test_class_contract(cls):
    assert issubclass(cls, Attack)
    assert cls.version == "1" and cls.description and "\n" not in cls.description
    grid = cls.grid()
    assert grid[0] == cls.default_params()
    canonicals = [cls(p).canonical for p in grid]
    assert len(set(canonicals)) == len(canonicals), canonicals
    assert all(c.startswith(cls.name) for c in canonicals)


@pytest.mark.parametrize("name", ["identity", "erasure", "blur", "noise", "rotation", "h264"])
def test_registered_under_entry_point(name):
    from bench.core import registry

    cls = registry.get("attacks", name)
    assert cls.name == name and cls in ATTACKS


def test_canonical_strings():
    assert Identity().canonical == "identity"
    assert Blur().canonical == "blur(kernel=5)"
    assert Blur(Blur.Params(kernel=3, sigma=2)).canonical == "blur(kernel=3,sigma=2.0)"
    assert H264().canonical == "h264(crf=24,preset=medium)"
    assert Noise().canonical == "noise(sigma=U(0.0,0.2))"
    assert Erasure().canonical == "erasure(area=U(0.05,0.2))"
    assert Rotation().canonical == "rotation(angle=U(-30.0,30.0))"
    # ints, floats and lists normalise to one canonical form
    assert Rotation(Rotation.Params(angle=5)).canonical == "rotation(angle=5.0)"
    assert Noise(Noise.Params(sigma=[0, 0.1])).canonical == "noise(sigma=U(0.0,0.1))"


def test_strengths():
    assert math.isnan(Identity().strength())
    assert [Blur(p).strength() for p in Blur.grid()] == [5.0, 3.0, 7.0]
    assert [H264(p).strength() for p in H264.grid()] == [24.0, 18.0, 28.0, 32.0, 36.0]
    assert Rotation(Rotation.Params(angle=-15)).strength() == 15.0
    assert Noise(Noise.Params(sigma=0.05)).strength() == 0.05
    assert Erasure(Erasure.Params(area=0.1)).strength() == 0.1
    for cls in (Noise, Rotation, Erasure):
        assert math.isnan(cls().strength())


@pytest.mark.parametrize("make", [
    lambda: Blur.Params(kernel=4), lambda: Blur.Params(kernel=0), lambda: Blur.Params(sigma=-1),
    lambda: Erasure.Params(area=1.5), lambda: Erasure.Params(area=(0.3, 0.1)),
    lambda: Noise.Params(sigma=-0.1), lambda: Noise.Params(sigma=(0.1, 0.2, 0.3)),
    lambda: Rotation.Params(angle=float("nan")), lambda: H264.Params(crf=60),
    lambda: H264.Params(crf=20.5), lambda: H264.Params(preset="quick"),
    lambda: Blur(Noise.Params()),
])
def test_bad_params_raise(make):
    with pytest.raises(BenchError):
        make()


@pytest.mark.parametrize("bad", [torch.rand(3, 24, 32), torch.rand(2, 4, 24, 32),
                                 torch.zeros(2, 3, 8, 8, dtype=torch.uint8)])
def test_bad_frames_raise(bad):
    with pytest.raises(BenchError):
        Noise()(bad, seeded())


# --- every attack, every grid point -----------------------------------------------------------

@pytest.mark.parametrize("cls,params", GRID, ids=GRID_IDS)
def test_deterministic_unmodified_in_range(cls, params):
    frames = random_clip()
    first = seeded_output(cls(params), frames)
    assert first.data_ptr() != frames.data_ptr()


@pytest.mark.parametrize("cls", [Erasure, Noise, Rotation], ids=lambda c: c.name)
def test_randomised_defaults_depend_on_seed(cls):
    frames = random_clip()
    outputs = [cls()(frames, seeded(seed)) for seed in range(3)]
    assert not torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[1], outputs[2])


@pytest.mark.parametrize("cls,params", GRID, ids=GRID_IDS)
def test_train_form_gradients_flow(cls, params):
    frames = (torch.rand(2, 2, 3, 16, 20, generator=seeded(3)) * 0.8 + 0.1).requires_grad_()
    weights = torch.rand(2, 2, 3, 16, 20, generator=seeded(4))
    out = cls(params).train_form()(frames, seeded(5))
    assert out.shape == frames.shape
    (out * weights).sum().backward()
    assert frames.grad is not None and torch.isfinite(frames.grad).all()
    assert frames.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [Erasure, Blur, Noise, Rotation], ids=lambda c: c.name)
def test_train_form_matches_evaluation_form(cls):
    """On a batch of one and the same seed, the training form reproduces the evaluation form."""
    frames = random_clip()
    evaluated = cls()(frames, seeded(11))
    trained = cls().train_form()(frames[None], seeded(11))[0]
    assert torch.allclose(trained.clamp(0, 1), evaluated, atol=1e-6)


def test_h264_train_form_is_straight_through():
    frames = random_clip(t=2, h=16, w=16).requires_grad_()
    attack = H264()
    out = attack.train_form()(frames[None], seeded())[0]
    assert torch.equal(out.detach(), attack(frames.detach(), seeded()))
    out.sum().backward()
    assert torch.equal(frames.grad, torch.ones_like(frames))


# --- blur -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel,sigma", [(3, 0.8), (5, 1.1), (7, 1.4)])
def test_blur_matches_scipy_gaussian_filter(kernel, sigma):
    frames = random_clip(t=2, h=20, w=27)
    out = Blur(Blur.Params(kernel=kernel))(frames, seeded())
    # scipy's "mirror" reflects about the edge pixel, like OpenCV's default border
    ref = ndi.gaussian_filter(frames.double().numpy(), sigma=(0, 0, sigma, sigma),
                              radius=(0, 0, kernel // 2, kernel // 2), mode="mirror")
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-6)


def test_blur_interior_matches_float64_convolution_loop():
    kernel, sigma = 5, 2.0
    frames = random_clip(t=1, h=12, w=13)
    out = Blur(Blur.Params(kernel=kernel, sigma=sigma))(frames, seeded()).numpy()
    taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
    weights = np.outer(taps, taps) / np.outer(taps, taps).sum()
    image = frames.double().numpy()[0, 1]
    for y in range(2, 10):
        for x in range(2, 11):
            expected = float((image[y - 2:y + 3, x - 2:x + 3] * weights).sum())
            assert abs(out[0, 1, y, x] - expected) < 1e-6


# --- noise ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
def test_noise_statistics_on_mid_grey(sigma):
    frames = torch.full((4, 3, 64, 64), 0.5)
    diff = (Noise(Noise.Params(sigma=sigma))(frames, seeded(2)) - frames).double()
    assert abs(float(diff.std()) - sigma) < 0.03 * sigma
    assert abs(float(diff.mean())) < 4 * sigma / math.sqrt(diff.numel())


def test_noise_range_draws_sigma_per_row():
    frames = torch.full((2, 3, 64, 64), 0.5)
    attack = Noise()
    sigmas = []
    for seed in range(6):
        diff = (attack(frames, seeded(seed)) - frames).double()
        drawn = attack.info()["sigma"]
        assert 0.0 <= drawn <= 0.2
        assert abs(float(diff.std()) - drawn) < 0.05 * drawn + 1e-4
        sigmas.append(drawn)
    assert len(set(sigmas)) == len(sigmas)


# --- erasure --------------------------------------------------------------------------------

@pytest.mark.parametrize("area", [(0.05, 0.2), 0.05, 0.1, 0.2, 0.3])
def test_erasure_one_black_rectangle_of_the_right_area(area):
    t, h, w = 3, 32, 48
    frames = random_clip(t=t, h=h, w=w)  # strictly positive: zeros come only from the attack
    low, high = area if isinstance(area, tuple) else (area, area)
    tolerance = 1 / (2 * w) + 1e-9  # rounding one side to whole pixels
    for seed in range(8):
        out = Erasure(Erasure.Params(area=area))(frames, seeded(seed))
        zero = out == 0
        assert torch.equal(zero, zero[:1].expand_as(zero)), "rectangle differs across frames"
        rows = torch.nonzero(zero[0, 0].any(dim=1)).flatten()
        cols = torch.nonzero(zero[0, 0].any(dim=0)).flatten()
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        assert zero[:, :, top:bottom, left:right].all(), "zero set is not a filled rectangle"
        assert int(zero[0, 0].sum()) == (bottom - top) * (right - left)
        fraction = (bottom - top) * (right - left) / (h * w)
        assert low - tolerance <= fraction <= high + tolerance
        assert 0.4 <= (bottom - top) / (right - left) <= 2.5
        keep = ~zero
        assert torch.equal(out[keep], frames[keep]), "pixels outside the rectangle changed"


def test_erasure_range_draws_different_rectangles():
    frames = random_clip(t=1, h=32, w=48)
    masks = {tuple((Erasure()(frames, seeded(s)) == 0).flatten().tolist()) for s in range(5)}
    assert len(masks) == 5


# --- rotation -------------------------------------------------------------------------------

def test_rotation_by_90_degrees_equals_rot90():
    frames = random_clip(t=2, h=16, w=16)
    out = Rotation(Rotation.Params(angle=90))(frames, seeded())
    expected = torch.rot90(frames, 1, dims=(-2, -1))
    assert torch.allclose(out[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-5)


@pytest.mark.parametrize("angle", [17.0, -25.0, 30.0])
def test_rotation_matches_scipy_rotate_on_a_non_square_clip(angle):
    frames = random_clip(t=2, h=20, w=30)
    out = Rotation(Rotation.Params(angle=angle))(frames, seeded())
    # "grid-constant": bilinear with zeros outside the frame, like grid_sample's zero padding
    ref = ndi.rotate(frames.double().numpy(), angle, axes=(-2, -1), reshape=False, order=1,
                     mode="grid-constant", cval=0.0)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_rotation_range_uses_one_angle_within_bounds():
    frames = random_clip(t=2, h=20, w=30)
    attack = Rotation()
    for seed in range(5):
        out = attack(frames, seeded(seed))
        angle = attack.info()["angle"]
        assert -30.0 <= angle <= 30.0
        fixed = Rotation(Rotation.Params(angle=angle))(frames, seeded(99))
        assert torch.allclose(out, fixed, atol=1e-6)


# --- h264 -----------------------------------------------------------------------------------

def test_h264_quality_and_size_follow_crf():
    frames = smooth_clip()
    fine, coarse = H264(H264.Params(crf=18)), H264(H264.Params(crf=36))
    fine_out = fine(frames, seeded())
    coarse_out = coarse(frames, seeded())
    assert psnr(fine_out, frames) > 30.0
    assert psnr(fine_out, frames) > psnr(coarse_out, frames)
    assert 0 < coarse.info()["bytes"] < fine.info()["bytes"]
    assert fine.info()["container_bytes"] > fine.info()["bytes"]


def test_h264_odd_sizes_come_back_with_the_same_shape():
    frames = smooth_clip(t=3, h=33, w=47)
    out = H264()(frames, seeded())
    assert out.shape == (3, 3, 33, 47)
    assert psnr(out, frames) > 30.0  # the same picture, cropped back in place


def test_h264_is_lossy_but_close_on_uint8_input():
    frames = (smooth_clip(t=4, h=32, w=48) * 255).round() / 255
    out = H264(H264.Params(crf=18))(frames, seeded())
    assert not torch.equal(out, frames)
    assert torch.equal((out * 255).round() / 255, out)  # decoded values are 8-bit levels
    assert psnr(out, frames) > 30.0


def test_h264_colour_conversion_matches_skimage_bt601():
    from skimage.color import rgb2ycbcr

    from attacks.h264 import rgb_to_ycbcr, ycbcr_to_rgb

    image = np.random.default_rng(0).random((5, 7, 3))
    ycc = rgb_to_ycbcr(torch.from_numpy(image).permute(2, 0, 1))
    np.testing.assert_allclose(ycc.permute(1, 2, 0).numpy(), rgb2ycbcr(image), atol=1e-3)
    back = ycbcr_to_rgb(ycc).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(back, image, atol=1e-12)


def test_h264_repeated_round_trips_are_identical():
    frames = random_clip(t=3, h=24, w=32)
    attack = H264()
    first = attack(frames, seeded())
    sizes = {attack.info()["bytes"]}
    for _ in range(5):
        assert torch.equal(attack(frames, seeded()), first)
        sizes.add(attack.info()["bytes"])
    assert len(sizes) == 1


_CROSS_PROCESS = """
import hashlib, torch
from bench.core.profiles import load_profile
from bench.sources.generator import GeneratedSource
from attacks.h264 import H264
clip = next(iter(GeneratedSource(load_profile("tiny"), limit=1))).frames  # decodes footage
out = H264()(clip, torch.Generator().manual_seed(0))
print(hashlib.sha256(out.numpy().tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_h264_is_identical_across_processes_after_decoding_footage():
    """x264's SIMD rate-control paths once made bitstreams vary between processes."""
    import subprocess
    import sys

    digests = {subprocess.run([sys.executable, "-c", _CROSS_PROCESS], capture_output=True,
                              text=True, check=True).stdout.strip() for _ in range(3)}
    assert len(digests) == 1
