"""Metrics against independent references: numpy float64 closed forms, scikit-image, loops."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench import metrics
from bench.core.api import BenchError, MetricValue
from bench.metrics import lpips as lpips_metrics
from bench.metrics.fvd import frechet_distance, fvd_of_videos


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1)


def _sk_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return structural_similarity(
        a.double().numpy(), b.double().numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0, channel_axis=0)


def _structured_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 33, dtype=torch.float64),
                            torch.linspace(0, 1, 29, dtype=torch.float64), indexing="ij")
    gradient = torch.stack([xs, ys, (xs + ys) / 2])
    checker = ((torch.arange(24)[:, None] // 4 + torch.arange(24)[None] // 4) % 2).double()
    checker = checker.expand(3, 24, 24).clone()
    photo = torch.from_numpy(skdata.astronaut()[100:164:2, 180:244:2].copy()).permute(2, 0, 1)
    photo = photo.double() / 255.0
    flat = torch.full((3, 20, 20), 0.5, dtype=torch.float64)
    return [
        (gradient, _noisy(gradient, 0.05, 1)),
        (checker, checker.roll(1, dims=2)),
        (photo, _noisy(photo, 0.1, 2)),
        (photo, 1.0 - photo),
        (flat, _noisy(flat, 0.02, 3)),
        (flat, flat * 0.9),
    ]


# ----------------------------------------------------------------------------- PSNR


def test_psnr_matches_numpy_closed_form_and_skimage():
    a = _rand(3, 17, 23, seed=1)
    b = _noisy(a, 0.07, 4)
    mse = np.mean((a.numpy() - b.numpy()) ** 2, dtype=np.float64)
    expected = 10 * np.log10(1.0 / mse)
    assert metrics.psnr(a, b) == pytest.approx(expected, abs=1e-10)
    assert metrics.psnr(a, b) == pytest.approx(
        peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1.0), abs=1e-10)
    # peak 1 on [0,1] is the same as peak 255 on x255 images
    a255, b255 = a.numpy() * 255, b.numpy() * 255
    assert metrics.psnr(a, b) == pytest.approx(
        peak_signal_noise_ratio(a255, b255, data_range=255.0), abs=1e-8)


def test_psnr_float32_inputs_are_computed_in_float64():
    a = _rand(3, 16, 16, seed=2).float()
    b = (a + 1e-3).clamp(0, 1)
    d = a.double().numpy() - b.double().numpy()
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(1 / np.mean(d * d)), abs=1e-9)


def test_psnr_identical_is_inf_and_shape_mismatch_raises():
    a = _rand(3, 8, 8)
    assert metrics.psnr(a, a.clone()) == math.inf
    with pytest.raises(BenchError, match="shapes differ"):
        metrics.psnr(a, a[:, :4])


# ----------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 11, 11), (1, 40, 27), (4, 19, 50)])
def test_ssim_matches_skimage_on_random_images(shape, seed):
    a = _rand(*shape, seed=seed)
    b = _noisy(a, 0.02 + 0.1 * seed, seed + 10)
    assert metrics.ssim(a, b) == pytest.approx(_sk_ssim(a, b), abs=1e-6)


def test_ssim_matches_skimage_on_structured_images():
    for a, b in _structured_pairs():
        assert metrics.ssim(a, b) == pytest.approx(_sk_ssim(a, b), abs=1e-6)


def test_ssim_float32_inputs_match_skimage_in_float64():
    a = _rand(3, 24, 24, seed=5).float()
    b = _noisy(a.double(), 0.05, 6).float()
    assert metrics.ssim(a, b) == pytest.approx(_sk_ssim(a, b), abs=1e-6)


def test_ssim_identical_is_one_and_small_images_raise():
    a = _rand(3, 12, 12)
    assert metrics.ssim(a, a.clone()) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(BenchError, match="at least 11x11"):
        metrics.ssim(_rand(3, 10, 30), _rand(3, 10, 30))
    with pytest.raises(BenchError):
        metrics.ssim(_rand(3, 12, 12), _rand(3, 12, 13))
    with pytest.raises(BenchError):
        metrics.ssim(_rand(12, 12), _rand(12, 12))


# ----------------------------------------------------------------------------- videos


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_video_psnr_is_capped_per_frame_mean():
    cover = _rand(5, 3, 16, 16, seed=7)
    wm = torch.stack([_noisy(cover[t], 0.01 * (t + 1), t) for t in range(5)])
    wm[2] = cover[2]  # one identical frame: inf, capped at 100 dB before the mean
    per_frame = []
    for t in range(5):
        value = peak_signal_noise_ratio(cover[t].numpy(), wm[t].numpy(), data_range=1.0)
        per_frame.append(min(value, 100.0))
    assert per_frame[2] == 100.0
    assert metrics.video_psnr(wm, cover) == pytest.approx(np.mean(per_frame), abs=1e-9)
    assert metrics.video_psnr(cover, cover) == 100.0


def test_video_ssim_is_per_frame_mean():
    cover = _rand(10, 3, 20, 18, seed=8)  # more frames than one SSIM chunk
    wm = torch.stack([_noisy(cover[t], 0.03 * (t + 1), 20 + t) for t in range(10)])
    loop = np.mean([_sk_ssim(wm[t], cover[t]) for t in range(10)])
    assert metrics.video_ssim(wm, cover) == pytest.approx(loop, abs=1e-6)
    with pytest.raises(BenchError):
        metrics.video_ssim(wm[:, :, :10], cover[:, :, :10])


# ----------------------------------------------------------------------------- watermark


def test_watermark_metrics_values_and_errors():
    logo = _rand(3, 32, 32, seed=9).float()
    rec = _noisy(logo.double(), 0.05, 11).float()
    out = metrics.watermark_metrics(rec, logo)
    assert set(out) == {"w_psnr", "w_ssim"}
    assert all(isinstance(v, MetricValue) and v.available for v in out.values())
    assert out["w_psnr"].value == pytest.approx(
        peak_signal_noise_ratio(logo.double().numpy(), rec.double().numpy(), data_range=1.0),
        abs=1e-6)
    assert out["w_ssim"].value == pytest.approx(_sk_ssim(rec, logo), abs=1e-6)
    perfect = metrics.watermark_metrics(logo, logo.clone())
    assert perfect["w_psnr"].value == metrics.PSNR_CAP_DB
    assert perfect["w_ssim"].value == pytest.approx(1.0)
    with pytest.raises(BenchError, match="shape"):
        metrics.watermark_metrics(rec[:, :16], logo)
    bad = rec.clone()
    bad[0, 3, 3] = float("nan")
    with pytest.raises(BenchError, match="NaN"):
        metrics.watermark_metrics(bad, logo)
    bad[0, 3, 3] = float("inf")
    with pytest.raises(BenchError, match="recovered logo"):
        metrics.watermark_metrics(bad, logo)


# ----------------------------------------------------------------------------- LPIPS


@pytest.fixture(scope="module")
def random_lpips() -> metrics.LpipsModel:
    return metrics.LpipsModel(backbone="random", batch_size=3)


def _loop_lpips(model: metrics.LpipsModel, a: torch.Tensor, b: torch.Tensor) -> float:
    with torch.no_grad():
        return float(model.model(a[None] * 2 - 1, b[None] * 2 - 1).reshape(()))


def test_tlp_and_video_lpips_match_per_frame_loop(random_lpips):
    """random backbone: plumbing only (batching, pairing, scaling), not LPIPS values."""
    assert random_lpips.is_random
    cover = _rand(5, 3, 48, 48, seed=12).float()
    wm = (cover + 0.05 * _rand(5, 3, 48, 48, seed=13).float()).clamp(0, 1)
    loop_tlp = np.mean([
        abs(_loop_lpips(random_lpips, wm[t], wm[t + 1])
            - _loop_lpips(random_lpips, cover[t], cover[t + 1]))
        for t in range(4)])
    loop_v = np.mean([_loop_lpips(random_lpips, wm[t], cover[t]) for t in range(5)])
    assert loop_tlp > 0 and loop_v > 0
    assert metrics.tlp(wm, cover, random_lpips) == pytest.approx(loop_tlp, rel=1e-4, abs=1e-7)
    assert metrics.video_lpips(wm, cover, random_lpips) == pytest.approx(loop_v, rel=1e-4)
    with pytest.raises(BenchError, match="2 frames"):
        metrics.tlp(wm[:1], cover[:1], random_lpips)


def test_video_scorer_with_random_backbone(random_lpips):
    """random backbone: plumbing only."""
    scorer = metrics.VideoScorer(lpips_backbone="random")
    assert scorer.lpips is not None and scorer.lpips.is_random
    cover = _rand(4, 3, 40, 40, seed=14).float()
    wm = (cover + 0.1 * _rand(4, 3, 40, 40, seed=15).float()).clamp(0, 1)
    out = scorer(wm, cover)
    assert list(out) == ["v_psnr", "v_ssim", "v_lpips", "tlp"]
    assert out["v_psnr"].value == pytest.approx(metrics.video_psnr(wm, cover))
    assert out["v_ssim"].value == pytest.approx(metrics.video_ssim(wm, cover))
    # same seed -> same random trunk as the fixture model
    assert out["v_lpips"].value == pytest.approx(
        metrics.video_lpips(wm, cover, random_lpips), rel=1e-4)
    assert out["tlp"].value == pytest.approx(metrics.tlp(wm, cover, random_lpips), rel=1e-4,
                                             abs=1e-7)
    one = scorer(wm[:1], cover[:1])
    assert one["v_lpips"].available and not one["tlp"].available
    bad = wm.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(BenchError, match="NaN"):
        scorer(bad, cover)
    with pytest.raises(BenchError):
        scorer(wm, cover[:3])


def test_pretrained_lpips_unavailable_without_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(metrics.LpipsUnavailable) as info:
        metrics.LpipsModel(backbone="pretrained")
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message and "python -m bench weights" in message
    assert str(tmp_path) in message
    scorer = metrics.VideoScorer()
    assert scorer.lpips is None
    out = scorer(_rand(3, 3, 16, 16).float(), _rand(3, 3, 16, 16, seed=3).float())
    assert out["v_psnr"].available and out["v_ssim"].available
    for key in ("v_lpips", "tlp"):
        assert math.isnan(out[key].value) and "alexnet-owt-7be5be79.pth" in out[key].reason


def test_pretrained_lpips_rejects_damaged_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir()
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(metrics.LpipsUnavailable, match="sha256"):
        metrics.LpipsModel()


def test_pretrained_lpips_loads_torchvision_layout(tmp_path, monkeypatch):
    """The loader maps torchvision's ``features.i`` tensors into lpips' slices (fake weights)."""
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    torch.manual_seed(123)
    features = {k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
                if k.startswith("features.")}
    path = tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir()
    torch.save(features, path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(lpips_metrics, "ALEXNET_SHA256_PREFIX", prefix)
    model = metrics.LpipsModel(backbone="pretrained")
    assert not model.is_random
    net = model.model.net
    pairs = {"0": net.slice1, "3": net.slice2, "6": net.slice3, "8": net.slice4,
             "10": net.slice5}
    for index, layer_slice in pairs.items():
        layer = getattr(layer_slice, index)
        assert torch.equal(layer.weight, features[f"features.{index}.weight"])
        assert torch.equal(layer.bias, features[f"features.{index}.bias"])
    x = _rand(2, 3, 40, 40).float()
    assert torch.allclose(model(x, x), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    # a state dict without the features tensors is refused, not half loaded
    torch.save({"classifier.1.weight": torch.zeros(1)}, path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(lpips_metrics, "ALEXNET_SHA256_PREFIX", prefix)
    with pytest.raises(metrics.LpipsUnavailable, match="features.0"):
        metrics.LpipsModel()


def test_lpips_backbone_name_is_checked():
    with pytest.raises(BenchError, match="backbone"):
        metrics.LpipsModel(backbone="imagenet")


# ----------------------------------------------------------------------------- FVD


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 2, size=6), rng.uniform(0.1, 2, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_full_covariance_matches_sqrtm_route():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_same_samples_is_zero_even_when_rank_deficient():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(4, 8))  # fewer samples than dimensions: singular covariance
    mu, sigma = feats.mean(0), np.cov(feats, rowvar=False)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(BenchError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(BenchError, match="NaN"):
        frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))


def test_fvd_refuses_clips_too_short_for_i3d_with_a_reason():
    value = fvd_of_videos([_rand(2, 3, 8, 8)] * 2, [_rand(2, 3, 8, 8)] * 2)
    assert not value.available and "I3D" in value.reason and value.reason


def test_fvd_needs_two_videos_per_set():
    value = fvd_of_videos([_rand(12, 3, 16, 16)], [_rand(12, 3, 16, 16)])
    assert not value.available and value.reason


# ----------------------------------------------------------------------------- metric objects


def test_metric_objects_specs():
    by_name = {m.spec.name: m for m in metrics.ALL}
    assert list(by_name) == ["w-psnr", "w-ssim", "patch-acc", "v-psnr", "v-ssim", "v-lpips",
                             "tlp", "fvd"]
    assert [m.column for m in metrics.ALL[:7]] == metrics.ROW_COLUMNS
    assert metrics.FVD.column == "fvd" and metrics.FVD.spec.level == "set"
    for m in metrics.ALL:
        assert m.spec.version == "1"
        assert m.spec.higher_is_better == (m.column in ("w_psnr", "w_ssim", "patch_acc",
                                                        "v_psnr", "v_ssim"))
        assert m.spec.unit == ("dB" if m.column.endswith("psnr") else
                               "fraction" if m.column == "patch_acc" else "")
        assert m.spec.level == ("set" if m is metrics.FVD else "row")
        assert m.higher_is_better == m.spec.higher_is_better and m.name == m.spec.name
    assert metrics.W_PSNR.fn is metrics.psnr and metrics.TLP.fn is metrics.tlp


def test_by_column_and_did_you_mean():
    assert metrics.by_column("w_psnr") is metrics.W_PSNR
    assert metrics.by_column("v-lpips") is metrics.V_LPIPS
    with pytest.raises(BenchError, match="did you mean 'w_ssim'"):
        metrics.by_column("w_ssmi")
    with pytest.raises(BenchError, match="known: w_psnr"):
        metrics.by_column("zzzz")


def test_patch_accuracy_counts_matching_locations():
    embedded = torch.tensor([3, 7, 1, 0, 9])
    placed = torch.tensor([3, 7, 0, -1, 9])  # slots 2 and 3 wrong / empty
    assert metrics.patch_accuracy(placed, embedded).value == pytest.approx(3 / 5)
    assert metrics.patch_accuracy(embedded, embedded).value == 1.0
    missing = metrics.patch_accuracy(None, embedded)
    assert math.isnan(missing.value) and missing.reason == metrics.NO_POSITIONS_REASON
    with pytest.raises(BenchError, match="placed 4 patches but embed hid 5"):
        metrics.patch_accuracy(placed[:4], embedded)
