"""The five trained baselines (untrained weights, tiny profile): contract, gradients, sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attacks.blur import Blur
from attacks.identity import Identity
from baselines._common import (
    CHECKPOINT_BUDGET_BYTES,
    Pix2PixUNet,
    average_over_frames,
    frame_to_logo,
    logo_to_frame,
    parameter_bytes,
    parameter_count,
    quantise_ste,
)
from baselines.balujanet import BalujaNet
from baselines.pusnet import PUSNet, PUSNetwork
from baselines.safe_sd import SafeSD
from baselines.udh import UDH, UDHNetwork
from baselines.wengnet import WengNet, WengNetwork, key_frame_flags
from bench.core.api import BenchError, TrainableMethod
from bench.core.checkpoints import card_path, checkpoint_path
from bench.core.profiles import load_profile

TINY = load_profile("tiny")
DEFAULT = load_profile("default")
METHODS = [BalujaNet, UDH, PUSNet, WengNet, SafeSD]
NAMES = {"balujanet", "udh", "pusnet", "wengnet", "safe-sd"}
IDS = [cls.name for cls in METHODS]


def _clip(t: int = 3, seed: int = 0) -> torch.Tensor:
    """A smooth random batch of one clip (1, T, 3, 64, 64) in [0.1, 0.9]."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(t, 3, 8, 8, generator=gen)
    frames = F.interpolate(low, size=(TINY.height, TINY.width), mode="bilinear") * 0.8 + 0.1
    return frames[None]


def _logo(seed: int = 1) -> torch.Tensor:
    """A blocky random logo batch (1, 3, 32, 32) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 4, 4, generator=gen)
    return F.interpolate(low, size=(TINY.logo_size,) * 2, mode="nearest")


def _build(cls, profile=TINY):
    torch.manual_seed(0)
    return cls(profile, "cpu", checkpoint=None)


# ------------------------------------------------------------------------------ mapping


def test_logo_to_frame_matches_a_bilinear_reference():
    logo = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = logo_to_frame(logo, (8, 8), "bilinear")
    # upsampling x2 with half-pixel centres: output pixel i samples input at (i + 0.5) / 2 - 0.5
    ref = np.zeros((3, 8, 8))
    src = logo[0].numpy()
    for i in range(8):
        for j in range(8):
            y = min(max((i + 0.5) / 2 - 0.5, 0), 3)
            x = min(max((j + 0.5) / 2 - 0.5, 0), 3)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, 3), min(x0 + 1, 3)
            wy, wx = y - y0, x - x0
            ref[:, i, j] = ((1 - wy) * (1 - wx) * src[:, y0, x0] + (1 - wy) * wx * src[:, y0, x1]
                            + wy * (1 - wx) * src[:, y1, x0] + wy * wx * src[:, y1, x1])
    assert np.allclose(out[0].numpy(), ref, atol=1e-12)


def _triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) antialiased bilinear weights for shrinking: a triangle of half-width
    ``scale`` input pixels around each output centre, renormalised over the taps inside."""
    scale = n_in / n_out
    centres_in = np.arange(n_in) + 0.5
    w = np.zeros((n_out, n_in))
    for o in range(n_out):
        d = np.abs(centres_in - (o + 0.5) * scale)
        w[o] = np.clip(1 - d / scale, 0, None)
        w[o] /= w[o].sum()
    return w


def test_frame_to_logo_is_an_antialiased_triangle_filter():
    img = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = frame_to_logo(img, (4, 3), "bilinear")
    wy, wx = _triangle_weights(8, 4), _triangle_weights(12, 3)
    ref = np.einsum("oy,ncyx,px->ncop", wy, img.numpy(), wx)
    assert np.allclose(out.numpy(), ref, atol=1e-12)


def test_block_mapping_against_numpy_repeat_and_block_means():
    gen = torch.Generator().manual_seed(2)
    logo = torch.rand(2, 3, 4, 6, generator=gen, dtype=torch.float64)
    frame = logo_to_frame(logo, (8, 18))
    assert np.array_equal(frame.numpy(), np.repeat(np.repeat(logo.numpy(), 2, axis=2), 3, axis=3))
    img = torch.rand(2, 3, 8, 18, generator=gen, dtype=torch.float64)
    ref = img.numpy().reshape(2, 3, 4, 2, 6, 3).mean(axis=(3, 5))
    assert np.allclose(frame_to_logo(img, (4, 6)).numpy(), ref, atol=1e-12)
    # exact round trip at integer ratios; the bilinear one blurs
    assert torch.allclose(frame_to_logo(frame, (4, 6)), logo, atol=1e-12)
    blurred = frame_to_logo(logo_to_frame(logo, (8, 18), "bilinear"), (4, 6), "bilinear")
    assert float((blurred - logo).abs().max()) > 0.01
    # other ratios keep shapes and range
    odd = logo_to_frame(logo, (9, 13))
    assert odd.shape == (2, 3, 9, 13) and frame_to_logo(odd, (4, 6)).shape == (2, 3, 4, 6)
    with pytest.raises(BenchError, match="logo mapping"):
        logo_to_frame(logo, (8, 8), "cubic")


def test_mapping_round_trip_and_range():
    logo = _logo()
    frame = logo_to_frame(logo, (64, 64))
    assert frame.shape == (1, 3, 64, 64) and frame.min() >= 0 and frame.max() <= 1
    back = frame_to_logo(frame, (32, 32))
    assert float((back - logo).abs().mean()) < 0.05
    same = logo_to_frame(logo, (32, 32))
    assert torch.equal(same, logo) and same.data_ptr() != logo.data_ptr()
    assert frame_to_logo(torch.full((1, 3, 8, 8), 2.0), (4, 4)).max() == 1.0


def test_average_over_frames_and_ste():
    per_frame = torch.arange(24, dtype=torch.float64).reshape(1, 2, 3, 2, 2)
    assert torch.equal(average_over_frames(per_frame), (per_frame[:, 0] + per_frame[:, 1]) / 2)
    x = torch.tensor([0.1234, 0.5, 0.9999, -0.2], requires_grad=True)
    y = quantise_ste(x)
    assert torch.allclose(y, torch.tensor([31 / 255, 128 / 255, 1.0, -51 / 255]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(4))


def test_unet_keeps_odd_sizes():
    net = Pix2PixUNet(3, 3, levels=3, ngf=4).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 20, 36)).shape == (1, 3, 20, 36)
        assert net(torch.rand(1, 3, 10, 12)).shape == (1, 3, 10, 12)


# ------------------------------------------------------------------------------ contract


@pytest.mark.parametrize("cls", METHODS, ids=IDS)
def test_class_attributes(cls):
    assert issubclass(cls, TrainableMethod)
    assert cls.name in NAMES and cls.version and cls.description
    card = json.loads(card_path(checkpoint_path(cls.name, "default")).read_text())
    assert card["method_version"] == cls.version  # the committed checkpoint loads
    assert "\n" not in cls.description
    for key in ("lr", "betas", "weight_decay", "batch_size", "steps", "frames"):
        assert key in cls.train_defaults
    assert cls.train_attacks == ("identity",)


@pytest.mark.parametrize("cls", METHODS, ids=IDS)
def test_embed_extract_shapes_range_determinism(cls):
    method = _build(cls)
    frames, logo = _clip(), _logo()
    before = frames.clone()
    wm = method.embed(frames, logo)
    assert torch.equal(frames, before), "embed modified its input"
    assert wm.shape == frames.shape and wm.dtype == torch.float32
    assert float(wm.min()) >= 0 and float(wm.max()) <= 1
    assert torch.equal(wm, method.embed(frames, logo)), "embed is not deterministic"
    rec = method.extract(wm)
    assert rec.shape == (1, 3, TINY.logo_size, TINY.logo_size) and rec.dtype == torch.float32
    assert float(rec.min()) >= 0 and float(rec.max()) <= 1
    assert torch.equal(rec, method.extract(wm)), "extract is not deterministic"
    assert not method.network().training


@pytest.mark.parametrize("cls", METHODS, ids=IDS)
def test_bad_inputs_raise_bench_error(cls):
    method = _build(cls)
    with pytest.raises(BenchError):
        method.embed(torch.rand(3, 3, 64, 64), _logo())
    with pytest.raises(BenchError):
        method.embed(_clip(), torch.rand(2, 3, 32, 32))
    with pytest.raises(BenchError):
        method.extract(torch.rand(1, 2, 1, 64, 64))


@pytest.mark.parametrize("cls", METHODS, ids=IDS)
def test_card_is_json_and_names_the_choices(cls):
    card = _build(cls).card()
    text = json.dumps(card)
    assert card["parameters"] > 0 and card["logo_mapping"] and card["noise_layers"]
    assert card["deviations"] and "extraction" in card and "identity" in text


@pytest.mark.parametrize("attack", [Identity(), Blur()], ids=["identity", "blur"])
@pytest.mark.parametrize("cls", METHODS, ids=IDS)
def test_gradients_reach_every_parameter(cls, attack):
    method = _build(cls)
    network = method.network()
    network.train()
    frames = torch.cat([_clip(2, 0), _clip(2, 5)])
    logos = torch.cat([_logo(1), _logo(2)])
    losses = method.training_losses(frames, logos, attack.train_form(),
                                    torch.Generator().manual_seed(0))
    for key in ("loss", "video_mse", "logo_mse"):
        assert losses[key].ndim == 0 and torch.isfinite(losses[key])
    losses["loss"].backward()
    missing = [n for n, p in network.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    dead = [n for n, p in network.named_parameters() if float(p.grad.abs().sum()) == 0]
    assert not dead, f"zero gradient for {dead[:5]}"


@pytest.mark.parametrize("cls", METHODS, ids=IDS)
def test_default_checkpoint_fits_the_budget(cls):
    method = _build(cls, DEFAULT)
    network = method.network()
    n = parameter_count(network)
    assert parameter_bytes(network) < CHECKPOINT_BUDGET_BYTES
    assert 4 * n <= parameter_bytes(network) < 4 * n + 100_000  # float32, few buffers
    print(f"{cls.name}: {n} parameters, {parameter_bytes(network) / 1e6:.2f} MB")


def test_published_sizes_at_the_paper_profile():
    # the paper-profile widths reproduce the parameter counts the sources state
    assert abs(parameter_count(BalujaNet(TINY, checkpoint=None).network()) - 0.47e6) < 0.01e6
    with torch.device("meta"):
        udh = UDHNetwork(64, 64)
        weng = WengNetwork(64, 64, 7)
    assert abs(parameter_count(udh) - 17.4e6) < 0.1e6
    one_branch = parameter_count(weng.hide_frame) + parameter_count(weng.reveal_frame)
    assert abs(one_branch - 42.6e6) < 0.1e6
    assert abs(parameter_count(PUSNetwork(64)) - 4.9e6) < 0.05e6


def test_checkpoint_round_trip(tmp_path):
    from bench.core.checkpoints import CheckpointMissing, save_checkpoint

    method = _build(UDH)
    with torch.no_grad():
        for p in method.network().parameters():
            p.add_(0.01)
    path = save_checkpoint(tmp_path / "udh-tiny.pt", method.network().state_dict(), {})
    loaded = UDH(TINY, "cpu", checkpoint=str(path))
    assert loaded.checkpoint == path
    frames, logo = _clip(), _logo()
    assert torch.equal(loaded.embed(frames, logo), method.embed(frames, logo))
    with pytest.raises(CheckpointMissing):
        UDH(TINY, "cpu", checkpoint=str(tmp_path / "absent.pt"))


# -------------------------------------------------------------------- method specifics


def test_udh_residual_is_cover_agnostic():
    method = _build(UDH)
    frames, logo = _clip(3), _logo()
    wm = method.embed(frames, logo)
    residual = wm - frames
    assert float(residual.abs().max()) <= 10 / 255 + 1e-6
    assert torch.allclose(residual[:, 0], residual[:, 1], atol=1e-6)
    other = method.embed(_clip(3, seed=9), logo) - _clip(3, seed=9)
    assert torch.allclose(other[:, 0], residual[:, 0], atol=1e-6)


def test_pusnet_mask_and_keys():
    net = PUSNetwork(4)
    convs = net.keyed_convs()
    kept = sum(float(c.mask.sum()) for c in convs)
    total = sum(c.mask.numel() for c in convs)
    assert abs(kept / total - 0.9) < 0.01
    # keys and mask are rebuilt identically and are not part of the checkpoint
    again = PUSNetwork(4)
    for a, b in zip(convs, again.keyed_convs(), strict=True):
        assert torch.equal(a.mask, b.mask) and torch.equal(a.key_hide, b.key_hide)
    assert not any("mask" in k or "key" in k for k in net.state_dict())
    conv = convs[3]
    dn, hide, rev = (conv.effective_weight(t) for t in ("denoise", "hide", "reveal"))
    on = conv.mask.bool()
    assert torch.equal(dn[on], hide[on]) and torch.equal(dn[on], rev[on])
    assert torch.all(dn[~on] == 0) and not torch.equal(hide[~on], rev[~on])
    # the keyed positions never receive gradient
    (hide.sum() + rev.sum() + dn.sum()).backward()
    assert torch.all(conv.weight.grad[~on] == 0) and torch.all(conv.weight.grad[on] == 3)


def test_pusnet_denoising_uses_only_the_sparse_weights():
    method = _build(PUSNet)
    noisy = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = method.denoise(noisy)
        for conv in method.network().keyed_convs():
            conv.key_hide.normal_()
            conv.key_reveal.normal_()
        assert torch.equal(method.denoise(noisy), before)


def test_wengnet_key_frames_and_reconstruction():
    still = torch.rand(2, 1, 3, 8, 8).expand(2, 4, 3, 8, 8)
    assert key_frame_flags(still).tolist() == [True, False, False, False]
    moving = still.clone()
    moving[:, 2:] = 1 - moving[:, 2:]  # a cut at frame 2
    assert key_frame_flags(moving).tolist() == [True, False, True, False]
    decoded = torch.randn(1, 4, 3, 2, 2, dtype=torch.float64)
    flags = torch.tensor([True, False, True, False])
    out = WengNet._reconstruct(decoded, flags).numpy()
    d = decoded.numpy()
    ref = np.stack([d[:, 0], d[:, 0] + d[:, 1], d[:, 2], d[:, 2] + d[:, 3]], axis=1)
    assert np.allclose(out, ref)


def test_wengnet_residual_branch_carries_zeros_for_a_static_logo():
    method = _build(WengNet)
    frames = _clip(3)
    secrets = logo_to_frame(_logo(), (64, 64))
    seen = []
    original = method._hide_residuals

    def spy(covers, residuals):
        seen.append(residuals)
        return original(covers, residuals)

    method._hide_residuals = spy
    with torch.no_grad():
        method.hide_video(frames, secrets)
    assert len(seen) == 1 and seen[0].shape[0] == 2 and torch.all(seen[0] == 0)


def test_safe_sd_mark_is_the_decoded_latent_change_and_the_autoencoder_stays_frozen():
    method = _build(SafeSD)
    frames, logo = _clip(), _logo()
    network = method.network()
    with torch.no_grad():
        z = method.encode(frames[0])
        z_logo = method.encode(logo_to_frame(logo, (64, 64), method.logo_mapping))
        z_logo = z_logo.expand(3, -1, -1, -1)
        fused = network.fusion(torch.cat([z, z_logo], dim=1))
        expected = frames[0] + (network.decoder(fused) - network.decoder(z)) / 2
        assert torch.allclose(method.embed(frames, logo)[0], expected.clamp(0, 1), atol=1e-5)
        network.fusion.weight[:, 4:].zero_()  # no logo in the fused latent: no mark at all
        assert torch.allclose(method.embed(frames, logo), frames, atol=1e-6)
    network.train()
    covers = frames[0]
    secrets = logo_to_frame(logo, (64, 64)).expand(3, -1, -1, -1)
    stego = method.hide(covers, secrets)
    (stego.sum() + method.reveal(stego).sum()).backward()
    assert all(p.grad is None for p in network.encoder.parameters())
    assert all(p.grad is None for p in network.decoder.parameters())
    assert network.fusion.weight.grad is not None
    assert all(p.grad is not None for p in network.logo_decoder.parameters())


# ------------------------------------------------------------------------------ learning


@pytest.mark.slow
@pytest.mark.parametrize("cls", METHODS, ids=IDS)
def test_twenty_adam_steps_overfit_one_clip(cls):
    method = _build(cls)
    network = method.network()
    network.train()
    frames, logo = _clip(2), _logo()
    attack = Identity().train_form()
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
    history = []
    for _ in range(20):
        losses = method.training_losses(frames, logo, attack, torch.Generator().manual_seed(0))
        optimiser.zero_grad()
        losses["loss"].backward()
        optimiser.step()
        history.append(float(losses["logo_mse"]))
    assert min(history[-3:]) < 0.8 * history[0], history
