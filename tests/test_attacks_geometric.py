"""The geometric attacks against independent computations (PIL, torchvision, numpy loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from clips import seeded, seeded_output, uniform_clip
from PIL import Image

from attacks.geometric import Crop, HFlip, Perspective, Resize, Translation
from bench.core.api import BenchError


def random_clip(t: int = 3, h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    return uniform_clip(t, h, w, seed, 0.05, 0.95)


ATTACKS = [Crop, Resize, HFlip, Perspective, Translation]
GRID = [(cls, params) for cls in ATTACKS for params in cls.grid()]
GRID_IDS = [cls(params).canonical for cls, params in GRID]


def pil_resized(image: np.ndarray, box, size) -> np.ndarray:
    """One float channel (H, W), cropped to ``box`` (left, top, right, bottom; None: all),
    then resized to ``size`` (W, H) by PIL's bilinear filter in its 32-bit float mode."""
    picture = Image.fromarray(image.astype(np.float32), mode="F")
    if box is not None:
        picture = picture.crop(box)
    return np.asarray(picture.resize(size, Image.BILINEAR))


def per_channel(frames: torch.Tensor, fn) -> np.ndarray:
    arr = frames.numpy()
    return np.stack([np.stack([fn(channel) for channel in frame]) for frame in arr])


# --- contract -------------------------------------------------------------------------------

def test_canonical_strings_and_strengths():
    assert Crop().canonical == "crop(fraction=0.8)"
    assert Resize().canonical == "resize(scale=0.5)"
    assert HFlip().canonical == "hflip" and math.isnan(HFlip().strength())
    assert Perspective().canonical == "perspective(jitter=0.1)"
    assert Translation().canonical == "translation(x=U(-0.1,0.1),y=U(-0.1,0.1),unit=fraction)"
    assert math.isnan(Translation().strength())
    assert Translation(Translation.Params(x=-3, y=2, unit="px")).strength() == 3.0
    assert [Crop(p).strength() for p in Crop.grid()] == [0.8, 0.9, 0.7, 0.6, 0.5]


@pytest.mark.parametrize("make,words", [
    (lambda: Crop.Params(fraction=0), "above 0"), (lambda: Crop.Params(fraction=1.5), "crop"),
    (lambda: Crop.Params(fraction=(0.9, 0.5)), "low <= high"),
    (lambda: Resize.Params(scale=-0.5), "resize scale"),
    (lambda: Resize.Params(scale="x"), "number"),
    (lambda: Perspective.Params(jitter=0.6), "jitter"),
    (lambda: Perspective.Params(jitter=float("nan")), "finite"),
    (lambda: Translation.Params(unit="cm"), "unit"),
    (lambda: Translation.Params(x=1.5), "translation x"),
    (lambda: Translation.Params(y=(0.1, 0.2, 0.3)), "range"),
    (lambda: HFlip(Crop.Params()), "needs"),
])
def test_bad_params_raise_with_a_clear_message(make, words):
    with pytest.raises(BenchError, match=words):
        make()


# --- every attack, every grid point -----------------------------------------------------------

@pytest.mark.parametrize("cls,params", GRID, ids=GRID_IDS)
def test_shape_range_determinism_and_train_form(cls, params):
    frames = random_clip()
    first = seeded_output(cls(params), frames)
    # the training form on a batch of one is the evaluation form, and gradients flow
    batch = frames[None].clone().requires_grad_()
    trained = cls(params).train_form()(batch, seeded(7))
    assert torch.allclose(trained[0].detach().clamp(0, 1), first, atol=1e-6)
    (trained * torch.rand(trained.shape, generator=seeded(1))).sum().backward()
    assert torch.isfinite(batch.grad).all() and batch.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [Perspective, Translation], ids=lambda c: c.name)
def test_seeded_attacks_depend_on_the_seed(cls):
    frames = random_clip()
    outputs = [cls()(frames, seeded(s)) for s in range(3)]
    assert not torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[1], outputs[2])


# --- crop and resize: PIL ---------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.8, 0.5, 0.9])
def test_crop_matches_pil_crop_and_resize(fraction):
    t, h, w = 2, 24, 32
    frames = random_clip(t=t, h=h, w=w)
    attack = Crop(Crop.Params(fraction=fraction))
    out = attack(frames, seeded())
    box_h, box_w = round(fraction * h), round(fraction * w)
    top, left = (h - box_h) // 2, (w - box_w) // 2
    assert attack.info()["box"] == (top, left, box_h, box_w)
    ref = per_channel(frames, lambda c: pil_resized(c, (left, top, left + box_w, top + box_h),
                                                   (w, h)))
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_crop_keeps_the_centre_of_a_marked_frame():
    frames = torch.zeros(1, 3, 40, 40)
    frames[:, :, 19:21, 19:21] = 1.0  # the centre
    out = Crop(Crop.Params(fraction=0.5))(frames, seeded())
    # the 2x2 centre square of the 20x20 crop, scaled 2x, stays centred
    assert out[0, 0, 18:22, 18:22].min() > 0.2 and out[0, 0, :14].max() == 0


@pytest.mark.parametrize("scale", [0.5, 0.75, 0.35])
def test_resize_matches_pil_down_then_up(scale):
    h, w = 24, 32
    frames = random_clip(t=2, h=h, w=w)
    out = Resize(Resize.Params(scale=scale))(frames, seeded())
    small = (round(scale * w), round(scale * h))
    ref = per_channel(frames, lambda c: pil_resized(pil_resized(c, None, small), None, (w, h)))
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_resize_of_a_constant_frame_is_constant():
    frames = torch.full((2, 3, 20, 30), 0.3)
    assert torch.allclose(Resize(Resize.Params(scale=0.25))(frames, seeded()), frames, atol=1e-6)


# --- hflip ----------------------------------------------------------------------------------

def test_hflip_mirrors_columns():
    frames = random_clip(t=2, h=5, w=7)
    np.testing.assert_array_equal(HFlip()(frames, seeded()).numpy(),
                                  frames.numpy()[..., ::-1])


# --- perspective: torchvision and a numpy loop ---------------------------------------------------

def bilinear_zero(image: np.ndarray, x: float, y: float) -> float:
    """``image`` (H, W) sampled at continuous (x, y) (pixel centres at i + 0.5), bilinear,
    zero outside: what ``grid_sample(align_corners=False, padding_mode="zeros")`` does."""
    h, w = image.shape
    px, py = x - 0.5, y - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    total = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - abs(px - xi)) * (1 - abs(py - yi))
            if 0 <= xi < w and 0 <= yi < h:
                total += weight * image[yi, xi]
    return total


def test_perspective_matches_a_homography_loop_and_torchvision():
    import torchvision.transforms.functional as TF

    t, h, w = 2, 12, 16
    frames = random_clip(t=t, h=h, w=w)
    attack = Perspective(Perspective.Params(jitter=0.2))
    out = attack(frames, seeded(3)).numpy()
    corners = np.array(attack.info()["corners"])
    frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    assert np.abs(corners - frame).max() <= 0.2 * max(h, w) + 1e-9
    # the homography taking the moved corners back to the frame's, solved here with numpy
    rows, rhs = [], []
    for (x, y), (u, v) in zip(corners, frame, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    m = np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1).reshape(3, 3)
    image = frames.double().numpy()[1, 2]
    for yo in range(h):
        for xo in range(w):
            u, v, s = m @ np.array([xo + 0.5, yo + 0.5, 1.0])
            assert abs(out[1, 2, yo, xo] - bilinear_zero(image, u / s, v / s)) < 1e-5
    # torchvision's perspective on the same correspondences
    ref = TF.perspective(frames, frame.tolist(), corners.tolist(),
                         interpolation=TF.InterpolationMode.BILINEAR, fill=None)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)


def test_perspective_without_jitter_is_the_identity():
    frames = random_clip()
    out = Perspective(Perspective.Params(jitter=0.0))(frames, seeded())
    assert torch.allclose(out, frames, atol=1e-5)


# --- translation: numpy ----------------------------------------------------------------------

@pytest.mark.parametrize("x,y,unit,dx,dy", [
    (0.1, 0.0, "fraction", 3, 0), (-0.25, 0.2, "fraction", -8, 5), (2, -3, "px", 2, -3),
    (0, 0, "px", 0, 0), (40, 0, "px", 40, 0),
])
def test_translation_matches_a_numpy_shift(x, y, unit, dx, dy):
    h, w = 24, 32
    frames = random_clip(t=2, h=h, w=w)
    attack = Translation(Translation.Params(x=x, y=y, unit=unit))
    out = attack(frames, seeded()).numpy()
    assert (attack.info()["dx"], attack.info()["dy"]) == (dx, dy)
    ref = np.zeros_like(frames.numpy())
    src = frames.numpy()
    for yo in range(h):
        for xo in range(w):
            if 0 <= yo - dy < h and 0 <= xo - dx < w:
                ref[..., yo, xo] = src[..., yo - dy, xo - dx]
    np.testing.assert_array_equal(out, ref)


def test_translation_range_draws_moves_within_bounds():
    frames = random_clip(t=1, h=20, w=40)
    attack = Translation()
    moves = set()
    for seed in range(8):
        attack(frames, seeded(seed))
        dx, dy = attack.info()["dx"], attack.info()["dy"]
        assert abs(dx) <= 4 and abs(dy) <= 2
        moves.add((dx, dy))
    assert len(moves) > 3


def test_a_batched_attack_without_an_honest_training_form_refuses_it():
    from dataclasses import dataclass

    from attacks.batched import BatchedAttack
    from bench.core.api import AttackParams

    class Untrainable(BatchedAttack):
        name, version, training = "untrainable", "1", None
        no_training_reason = "its gradient would be made up"

        @dataclass(frozen=True)
        class Params(AttackParams):
            """No parameters."""

        def apply(self, frames, generator):
            return frames.flip(-2), [{} for _ in frames]

    attack = Untrainable()
    assert attack(random_clip(), seeded()).shape == (3, 3, 24, 32)
    with pytest.raises(BenchError, match="has no training form: its gradient would be made up"):
        attack.train_form()
