"""The temporal attacks against independent computations (frame matching, numpy loops,
nearest-in-time searches); every output keeps the input's T frames."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from clips import seeded, seeded_output, uniform_clip

from attacks.temporal import FrameAverage, FrameDrop, FrameRate, FrameSwap, TemporalCrop
from bench.core.api import BenchError


def random_clip(t: int = 8, h: int = 6, w: int = 7, seed: int = 0) -> torch.Tensor:
    return uniform_clip(t, h, w, seed, 0.0, 1.0)


ATTACKS = [FrameDrop, FrameSwap, FrameAverage, FrameRate, TemporalCrop]
GRID = [(cls, params) for cls in ATTACKS for params in cls.grid()]
GRID_IDS = [cls(params).canonical for cls, params in GRID]


def source_frames(out: torch.Tensor, frames: torch.Tensor) -> list[int]:
    """For each output frame, the input frame it equals (found by comparison)."""
    found = []
    for frame in out:
        matches = [i for i, f in enumerate(frames) if torch.equal(frame, f)]
        assert len(matches) == 1, "an output frame is not exactly one input frame"
        found.append(matches[0])
    return found


# --- contract -------------------------------------------------------------------------------

def test_canonical_strings_and_strengths():
    assert FrameDrop().canonical == "frame-drop(rate=0.25)"
    assert FrameSwap().canonical == "frame-swap(pairs=2)"
    assert FrameAverage().canonical == "frame-average(window=3)"
    assert FrameRate().canonical == "frame-rate(factor=0.5)"
    assert TemporalCrop().canonical == "temporal-crop(fraction=0.5)"
    assert [FrameRate(p).strength() for p in FrameRate.grid()] == [0.5, 0.75, 0.375, 0.25]


@pytest.mark.parametrize("make,words", [
    (lambda: FrameDrop.Params(rate=1.5), "frame-drop rate"),
    (lambda: FrameDrop.Params(rate=(0.5, 0.1)), "low <= high"),
    (lambda: FrameSwap.Params(pairs=-1), "frame-swap pairs"),
    (lambda: FrameSwap.Params(pairs=1.5), "integer"),
    (lambda: FrameAverage.Params(window=4), "odd"),
    (lambda: FrameAverage.Params(window=0), "frame-average window"),
    (lambda: FrameRate.Params(factor=0), "above 0"), (lambda: FrameRate.Params(factor=2), "1.0"),
    (lambda: FrameRate.Params(factor=(0.25, 0.5)), "a number"),
    (lambda: TemporalCrop.Params(fraction=0), "above 0"),
    (lambda: FrameSwap(FrameDrop.Params()), "needs"),
])
def test_bad_params_raise_with_a_clear_message(make, words):
    with pytest.raises(BenchError, match=words):
        make()


# --- every attack, every grid point -----------------------------------------------------------

@pytest.mark.parametrize("t", [1, 2, 8, 16])
@pytest.mark.parametrize("cls,params", GRID, ids=GRID_IDS)
def test_keeps_t_shape_range_and_is_seeded(cls, params, t):
    frames = random_clip(t=t)
    seeded_output(cls(params), frames)


@pytest.mark.parametrize("cls,params", GRID, ids=GRID_IDS)
def test_train_form_is_the_evaluation_form_with_gradients(cls, params):
    frames = random_clip()
    batch = frames[None].repeat(2, 1, 1, 1, 1).requires_grad_()
    trained = cls(params).train_form()(batch, seeded(3))
    assert trained.shape == batch.shape
    evaluated = cls(params)(frames, seeded(3))
    assert torch.allclose(trained[0].detach(), evaluated, atol=1e-6)
    (trained * torch.rand(trained.shape, generator=seeded(1))).sum().backward()
    assert torch.isfinite(batch.grad).all() and batch.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [FrameDrop, FrameSwap, TemporalCrop], ids=lambda c: c.name)
def test_seeded_attacks_depend_on_the_seed(cls):
    frames = random_clip(t=16)
    outputs = {tuple(source_frames(cls()(frames, seeded(s)), frames)) for s in range(8)}
    assert len(outputs) >= 4


# --- frame drop -----------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.75, 1.0])
def test_frame_drop_repeats_the_last_kept_frame(rate):
    t = 16
    frames = random_clip(t=t)
    attack = FrameDrop(FrameDrop.Params(rate=rate))
    for seed in range(4):
        src = source_frames(attack(frames, seeded(seed)), frames)
        kept = [i for i in range(t) if src[i] == i]
        assert src[0] == 0 and len(kept) == t - min(t - 1, round(rate * t))
        for i in range(1, t):  # a dropped frame shows the output frame before it
            assert src[i] == i or src[i] == src[i - 1]
        assert src == attack.info()["index"]


# --- frame swap -----------------------------------------------------------------------------

@pytest.mark.parametrize("pairs", [1, 2, 4, 8])
def test_frame_swap_swaps_disjoint_adjacent_pairs(pairs):
    t = 16
    frames = random_clip(t=t)
    attack = FrameSwap(FrameSwap.Params(pairs=pairs))
    for seed in range(4):
        src = source_frames(attack(frames, seeded(seed)), frames)
        moved = [i for i in range(t) if src[i] != i]
        swaps = [i for i in moved if src[i] == i + 1]
        assert all(src[i + 1] == i for i in swaps) and len(moved) == 2 * len(swaps)
        assert 1 <= len(swaps) <= pairs and swaps == attack.info()["starts"]
        if pairs <= 2:
            assert len(swaps) == pairs  # always room for two pairs in 16 frames


def test_frame_swap_on_a_short_clip_takes_what_fits():
    frames = random_clip(t=3)
    attack = FrameSwap(FrameSwap.Params(pairs=8))
    src = source_frames(attack(frames, seeded()), frames)
    assert attack.info()["pairs"] == 1 and sorted(src) == [0, 1, 2]


# --- frame average --------------------------------------------------------------------------

@pytest.mark.parametrize("window", [1, 3, 5, 9])
def test_frame_average_matches_a_numpy_loop(window):
    t = 8
    frames = random_clip(t=t)
    out = FrameAverage(FrameAverage.Params(window=window))(frames, seeded()).numpy()
    x = frames.double().numpy()
    r = window // 2
    for i in range(t):
        expected = x[max(0, i - r):min(t, i + r + 1)].mean(axis=0)
        np.testing.assert_allclose(out[i], expected, atol=1e-6)


# --- frame rate -----------------------------------------------------------------------------

def nearest_in_time(times: list[Fraction], target: Fraction) -> int:
    """The index of the time in ``times`` closest to ``target``, the earlier on a tie."""
    gaps = [abs(s - target) for s in times]
    return gaps.index(min(gaps))


@pytest.mark.parametrize("factor", [0.5, 0.75, 0.375, 0.25, 0.3, 1.0])
@pytest.mark.parametrize("t", [1, 7, 16])
def test_frame_rate_matches_a_nearest_in_time_search(factor, t):
    frames = random_clip(t=t)
    src = source_frames(FrameRate(FrameRate.Params(factor=factor))(frames, seeded()), frames)
    fps, rate = Fraction(8), Fraction(factor)
    original = [Fraction(i) / fps for i in range(t)]
    middle = [Fraction(k) / (rate * fps) for k in range(-(-t * rate.numerator
                                                          // rate.denominator))]
    resampled = [nearest_in_time(original, s) for s in middle]
    assert src == [resampled[nearest_in_time(middle, s)] for s in original]


def test_frame_rate_half_holds_every_other_frame():
    frames = random_clip(t=8)
    src = source_frames(FrameRate()(frames, seeded()), frames)
    assert src == [0, 0, 2, 2, 4, 4, 6, 6]


# --- temporal crop --------------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75, 1.0])
def test_temporal_crop_keeps_a_segment_padded_with_its_last_frame(fraction):
    t = 16
    frames = random_clip(t=t)
    attack = TemporalCrop(TemporalCrop.Params(fraction=fraction))
    starts = set()
    for seed in range(6):
        src = source_frames(attack(frames, seeded(seed)), frames)
        kept = round(fraction * t)
        start = src[0]
        assert src[:kept] == list(range(start, start + kept))
        assert src[kept:] == [start + kept - 1] * (t - kept)
        assert 0 <= start <= t - kept
        starts.add(start)
    assert len(starts) > 1 or fraction == 1.0
