"""Safe-Sora as a method (untrained weights, tiny profile): geometry, embedding at
initialisation, position recovery end to end, units, latents, variants, training losses."""

from __future__ import annotations

import math

import pytest
import torch

from bench.core.api import BenchError, Clip
from bench.core.profiles import load_profile
from methods.safe_sora.matching import canvas_from_patches
from methods.safe_sora.model import (
    UNIT_FRAMES,
    VARIANTS,
    NoCFAPM,
    NoMSFI,
    SafeSora,
    SafeSoraConfig,
)
from methods.safe_sora.position import with_positions

TINY = load_profile("tiny")


pytestmark = pytest.mark.usefixtures("one_thread")


def _method(cls=SafeSora) -> SafeSora:
    torch.manual_seed(0)
    return cls(TINY, "cpu", checkpoint=None)


def test_geometry_follows_the_paper_at_the_paper_profile():
    paper = SafeSoraConfig.for_profile(load_profile("paper"))
    # 256 patches of 16x16, 32 regions (4 x 8) per frame, a 4 x 64 x 128 canvas per frame
    assert (paper.grid, paper.patch, paper.n_patches) == (16, 16, 256)
    assert paper.regions == (4, 8) and paper.canvas_size == (64, 128)
    default = SafeSoraConfig.for_profile(load_profile("default"))
    assert (default.patch, default.n_patches, default.regions) == (8, 64, (2, 4))
    assert default.n_patches == UNIT_FRAMES * default.regions[0] * default.regions[1]


def test_untrained_embedding_adds_a_small_residual(smooth_clip, block_logo):
    # the output layer starts at N(0, HEAD_INIT_STD^2): a faint residual, 25-45 dB V-PSNR
    method = _method()
    marked = method.embed(smooth_clip[None], block_logo[None])
    mse = float(((marked - smooth_clip[None]) ** 2).mean())
    assert 25 < -10 * math.log10(mse) < 45
    assert marked.min() >= 0 and marked.max() <= 1
    assert method.embedded_positions().shape == (1, 2 * method.config.n_patches)


def test_recovery_puts_shuffled_patches_back_by_their_position_codes(block_logo):
    """A canvas holding the true patches at *any* slots decodes to the logo, and the slots
    read back are where each patch was put (patch-acc 1)."""
    method = _method()
    c = method.config
    patches = with_positions(block_logo[None], c.patch)
    slot = torch.randperm(c.n_patches, generator=torch.Generator().manual_seed(3))[None]
    canvas = canvas_from_patches(patches, slot, UNIT_FRAMES, c.regions)
    logo, source = method.net.recover(canvas)
    assert torch.allclose(logo[0], block_logo, atol=1e-6)
    assert torch.equal(source, slot)


def test_recovery_survives_a_corrupted_position_code(block_logo):
    method = _method()
    c = method.config
    patches = with_positions(block_logo[None], c.patch)
    patches[0, 5, 3] = patches[0, 6, 3]  # patch 5 now claims patch 6's place
    slot = torch.arange(c.n_patches)[None]
    logo, source = method.net.recover(canvas_from_patches(patches, slot, UNIT_FRAMES,
                                                          c.regions))
    assert sorted(source[0].tolist()) == list(range(c.n_patches))  # still a permutation
    wrong = (source[0] != slot[0]).sum().item()
    assert wrong == 2  # patches 5 and 6 contend for one place; the loser takes the vacancy


def test_units_and_bad_inputs(smooth_clip, block_logo):
    method = _method()
    with pytest.raises(BenchError, match="multiple of 8"):
        method.embed(smooth_clip[None, :12], block_logo[None])
    with pytest.raises(BenchError, match="built for"):
        method.extract(torch.rand(1, 8, 3, 32, 32))
    with pytest.raises(BenchError, match="square"):
        method.embed(smooth_clip[None], torch.rand(1, 3, 16, 16))


def test_a_clip_latent_drives_the_matching(smooth_clip, block_logo):
    method = _method()
    method.embed(smooth_clip[None, :8], block_logo[None])
    from_frames = method.embedded_positions().clone()
    h, w = TINY.height // 8, TINY.width // 8
    latent = torch.randn(8, 4, h, w, generator=torch.Generator().manual_seed(9)) * 3
    clip = Clip(id="c", prompt="p", frames=smooth_clip[:8], fps=8.0, latent=latent)
    method.embed(smooth_clip[None, :8], block_logo[None], [clip])
    assert not torch.equal(method.embedded_positions(), from_frames)
    wrong_shape = Clip(id="c", prompt="p", frames=smooth_clip[:8], fps=8.0,
                       latent=torch.randn(8, 4, 3, 3))
    method.embed(smooth_clip[None, :8], block_logo[None], [wrong_shape])  # falls back, no error
    assert torch.equal(method.embedded_positions(), from_frames)


def test_variants_are_flags_on_one_code():
    names = [cls.name for cls in VARIANTS]
    assert names[0] == "safe-sora" and len(set(names)) == 7
    assert all(n.startswith("safe-sora/") for n in names[1:])
    method = _method(NoCFAPM)
    assert method.config.cfapm is False and method.card()["flags"] == {"cfapm": False}
    no_msfi = _method(NoMSFI)
    assert no_msfi.net.embedder.inject is None and _method().net.embedder.inject is not None


def test_no_cfapm_places_patches_in_raster_order(smooth_clip, block_logo):
    method = _method(NoCFAPM)
    method.embed(smooth_clip[None, :8], block_logo[None])
    assert torch.equal(method.embedded_positions()[0], torch.arange(method.config.n_patches))


def test_training_losses_and_gradients(smooth_clip, block_logo):
    method = _method()
    method.network().train()
    losses = method.training_losses(smooth_clip[None, :8], block_logo[None],
                                    lambda x, g: x, torch.Generator())
    assert 0 < float(losses["video_mse"]) < 1e-2  # a faint residual at initialisation
    assert torch.isfinite(losses["loss"]) and float(losses["watermark_mse"]) > 0
    # both terms on [-1, 1] values, as the released code: the video term is 4x the [0, 1] MSE
    expected = 4 * losses["video_mse"] + 0.75 * losses["watermark_mse"]
    assert float(losses["loss"]) == pytest.approx(float(expected), rel=1e-5)
    method.reveal_weight = 0.2  # what bench train --reveal-weight 0.2 sets
    with torch.no_grad():
        losses = method.training_losses(smooth_clip[None, :8], block_logo[None],
                                        lambda x, g: x, torch.Generator())
    expected = 4 * losses["video_mse"] + 0.2 * losses["watermark_mse"]
    assert float(losses["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert method.card()["loss"].startswith("MSE(video) + 0.2 MSE(patches")
    net = method.network()
    method.training_losses(smooth_clip[None, :8], block_logo[None], lambda x, g: x,
                           torch.Generator())["loss"].backward()
    for part in (net.expert, net.embedder.stem, net.embedder.head, net.extractor.stem,
                 net.extractor.head):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    assert not list(net.matcher.parameters())  # the matcher is not trained
    with pytest.raises(BenchError, match="8-frame"):
        method.training_losses(smooth_clip[None, :2], block_logo[None], lambda x, g: x,
                               torch.Generator())
