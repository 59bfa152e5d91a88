"""The learned H.264 stand-in: architecture, differentiable training form, fitting, reloading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attacks import h264_proxy
from attacks.h264_proxy import (
    H264Proxy,
    codec_h264_train_form,
    codec_pairs,
    fit_proxy,
    load_h264_proxy,
    proxy_fidelity,
    proxy_h264_train_form,
)
from bench.core.api import BenchError
from bench.core.checkpoints import CheckpointMissing, load_checkpoint, save_checkpoint
from bench.core.profiles import load_profile

PROFILE = load_profile("tiny")


def _random_proxy_file(tmp_path, target=None):
    torch.manual_seed(0)
    proxy = H264Proxy()
    torch.nn.init.normal_(proxy.layers[-1].weight, std=0.05)
    card = {"name": "h264-proxy"} if target is None else {"name": "h264-proxy", "target": target}
    path = save_checkpoint(tmp_path / "proxy.pt", proxy.state_dict(), card)
    return proxy, path


def test_architecture_and_near_identity_at_start(smooth_clip):
    proxy = H264Proxy()
    convs = [m for m in proxy.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 32), (32, 32), (32, 32),
                                                                 (32, 3)]
    assert all(c.kernel_size == (3, 3, 3) and c.padding == (1, 1, 1) for c in convs)
    assert sum(isinstance(m, torch.nn.ReLU) for m in proxy.modules()) == 3
    x = smooth_clip[None, :4, :, :16, :16]
    with torch.no_grad():
        assert float((proxy(x) - x).abs().max()) < 0.01
    assert torch.equal(proxy.layers[-1].bias, torch.zeros(3))
    with pytest.raises(BenchError, match="B, T, 3, H, W"):
        proxy(x[0])


def test_train_form_passes_gradients_to_its_input_only(tmp_path, smooth_clip):
    proxy, path = _random_proxy_file(tmp_path)
    form = proxy_h264_train_form("tiny", path=path)
    x = smooth_clip[None, :4, :, :16, :16].clone().requires_grad_(True)
    out = form(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and float(out.detach().min()) >= 0
    assert float(out.detach().max()) <= 1
    with torch.no_grad():
        assert torch.allclose(out, proxy(x).clamp(0, 1))
    (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    loaded = h264_proxy._cached_proxy("tiny", str(path), "cpu")
    assert all(p.grad is None and not p.requires_grad for p in loaded.parameters())
    # the gradient is the proxy's own Jacobian-vector product (unclamped: straight-through)
    x2 = x.detach().clone().requires_grad_(True)
    ref = proxy(x2)
    (ref * torch.linspace(0, 1, ref.numel()).view_as(ref)).sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)


def test_codec_form_sends_the_real_codec_forward_and_the_proxys_gradient_back(tmp_path,
                                                                             smooth_clip):
    from attacks.h264 import h264_roundtrip

    proxy, path = _random_proxy_file(tmp_path, {"crf": 36, "preset": "ultrafast"})
    form = codec_h264_train_form("tiny", path=path)
    x = torch.stack([smooth_clip[:4, :, :32, :32], smooth_clip[4:8, :, 16:48, 16:48]])
    x = x.clone().requires_grad_(True)
    out = form(x, torch.Generator().manual_seed(0))
    # forward: each clip through libx264 at the card's CRF and preset, bit for bit
    for b in range(2):
        real, _ = h264_roundtrip(x[b].detach(), 36, "ultrafast", PROFILE.fps)
        assert torch.equal(out[b].detach(), real)
    assert float((out.detach() - x.detach()).abs().max()) > 1 / 255  # the codec did act
    # backward: the proxy's Jacobian-vector product, not the identity
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out * weights).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    (proxy(x2) * weights).sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)
    assert not torch.allclose(x.grad, weights, atol=1e-3)


def test_codec_form_needs_the_codec_the_proxy_was_fitted_to(tmp_path):
    _, path = _random_proxy_file(tmp_path)
    with pytest.raises(BenchError, match="target crf and preset"):
        codec_h264_train_form("tiny", path=path)


def test_missing_proxy_names_the_fit_command(tmp_path, monkeypatch):
    monkeypatch.setattr(h264_proxy, "proxy_path", lambda name: tmp_path / f"h-{name}.pt")
    with pytest.raises(CheckpointMissing, match="python -m bench fit-proxy --profile tiny"):
        load_h264_proxy("tiny")
    from bench.train.loop import _training_attacks

    with pytest.raises(CheckpointMissing):
        _training_attacks(("identity", "h264-proxy"), PROFILE)
    with pytest.raises(CheckpointMissing):
        _training_attacks(("identity", "h264-codec"), PROFILE)


def test_fidelity_of_the_identity_proxy_is_the_identity_baseline():
    x = torch.full((1, 2, 3, 16, 16), 100, dtype=torch.uint8)
    y = x.clone()
    y[..., :8] += 3
    identity = H264Proxy()
    torch.nn.init.zeros_(identity.layers[-1].weight)
    stats = proxy_fidelity(identity, x, y, crf=24, preset="ultrafast", fps=8.0)
    mse = np.mean((x.numpy().astype(np.float64) / 255 - y.numpy() / 255) ** 2)
    assert stats["psnr_identity_db"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)
    assert stats["psnr_proxy_db"] == pytest.approx(stats["psnr_identity_db"], abs=1e-3)
    assert stats["gain_db"] == pytest.approx(0.0, abs=1e-3)
    assert stats["explained_error"] == pytest.approx(0.0, abs=1e-3)
    for probe in stats["perturbations"].values():
        assert probe["energy_proxy"] == pytest.approx(1.0, abs=1e-6)
        assert probe["cosine_proxy"] == pytest.approx(probe["cosine_identity"], abs=1e-6)


def test_probe_perturbations_have_their_std_and_correlation():
    gen = torch.Generator().manual_seed(0)
    iid = h264_proxy.perturbation((4, 3, 64, 64), 0.02, 1, gen)
    smooth = h264_proxy.perturbation((4, 3, 64, 64), 0.02, 8, gen)
    for d in (iid, smooth):
        assert float(d.std()) == pytest.approx(0.02, rel=1e-4)

    def neighbour_correlation(d):
        a, b = d[..., :, :-1].flatten().double(), d[..., :, 1:].flatten().double()
        return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])

    assert abs(neighbour_correlation(iid)) < 0.05
    assert neighbour_correlation(smooth) > 0.9


@pytest.mark.slow
def test_small_fit_runs_and_reloads_exactly(tmp_path):
    out = fit_proxy("tiny", clips=4, heldout=1, epochs=2, out=tmp_path / "p.pt",
                    progress=False, batch_size=2, crop_frames=8, crop_size=64)
    state, card = load_checkpoint(out)
    assert torch.load(out, weights_only=True).keys() == state.keys()
    assert card["epochs"] == 2 and card["steps"] == 2 * 4 and len(card["train_clips"]) == 4
    assert card["target"]["crf"] == 24 and card["profile"] == "tiny"
    assert card["augmentation"] != "none"
    assert card["command"] == ("python -m bench fit-proxy --profile tiny --clips 4 "
                               "--heldout 1 --epochs 2")
    fidelity = card["fidelity"]
    assert math.isfinite(fidelity["psnr_proxy_db"]) and fidelity["clips"] == 1
    # the fitted proxy moved away from the identity
    torch.manual_seed(0)  # fit_proxy's initialisation for seed 0
    start = H264Proxy().state_dict()
    assert all(not torch.equal(start[k], state[k]) for k in start)

    # reloaded, it gives the same outputs, hence the same fidelity, on the same held-out clip
    held_x, held_y, ids = codec_pairs(PROFILE, [199], 0, 24, "medium")
    assert ids == card["heldout_clips"]
    again = proxy_fidelity(load_h264_proxy("tiny", path=out), held_x, held_y, 24, "medium",
                           PROFILE.fps)
    for key in ("psnr_proxy_db", "psnr_identity_db", "perturbations"):
        assert again[key] == fidelity[key], key
    mse = np.mean((held_x.numpy().astype(np.float64) - held_y.numpy()) ** 2) / 255 ** 2
    assert fidelity["psnr_identity_db"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)


def test_bad_fit_settings_are_refused(tmp_path):
    with pytest.raises(BenchError, match="clips"):
        fit_proxy("tiny", clips=200, heldout=8, out=tmp_path / "p.pt", progress=False)
    with pytest.raises(BenchError, match="crf"):
        fit_proxy("tiny", clips=2, crf=60, out=tmp_path / "p.pt", progress=False)
