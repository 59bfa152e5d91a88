"""Contract tests for every registered method, and the weight-free methods' own behaviour."""

from __future__ import annotations

import pytest
import torch

from bench.core import registry
from bench.core.api import Method, TrainableMethod
from bench.core.profiles import load_profile

PROFILE = load_profile("tiny")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a.double() - b.double()) ** 2).mean()))


def _build(name: str) -> Method:
    """Weight-free methods as registered; trainable ones freshly initialised (no checkpoint)."""
    factory = registry.get("methods", name)
    if isinstance(factory, type) and issubclass(factory, TrainableMethod):
        torch.manual_seed(0)
        return factory(PROFILE, "cpu", checkpoint=None)
    return factory(PROFILE, "cpu")


@pytest.mark.parametrize("name", registry.names("methods"))
def test_method_contract(name, smooth_clip, block_logo):
    method = _build(name)
    assert isinstance(method, Method) and method.name == name and method.version
    frames = smooth_clip[None]
    before = frames.clone()
    wm = method.embed(frames, block_logo[None])
    assert torch.equal(frames, before), "embed modified its input"
    assert wm.shape == frames.shape and wm.dtype == torch.float32
    assert float(wm.min()) >= 0 and float(wm.max()) <= 1
    assert torch.equal(wm, method.embed(frames, block_logo[None])), "embed is not deterministic"
    rec = method.extract(wm)
    assert rec.shape == (1, 3, PROFILE.logo_size, PROFILE.logo_size)
    assert float(rec.min()) >= 0 and float(rec.max()) <= 1
    assert torch.equal(rec, method.extract(wm)), "extract is not deterministic"


def test_identity_is_a_floor(smooth_clip, block_logo):
    method = registry.get("methods", "identity")(PROFILE, "cpu")
    wm = method.embed(smooth_clip[None], block_logo[None])
    assert torch.equal(wm, smooth_clip[None])
    assert torch.all(method.extract(wm) == 0.5)


def test_dct_qim_recovers_blindly_and_needs_the_key(smooth_clip, block_logo):
    from baselines.dct_qim import DctQimMethod

    method = DctQimMethod(PROFILE)
    wm = method.embed(smooth_clip[None], block_logo[None])
    wm8 = (wm * 255).round() / 255  # stored as an 8-bit video
    assert _psnr(wm8, smooth_clip[None]) > 35
    assert _psnr(method.extract(wm8)[0], block_logo) > 30
    wrong_key = DctQimMethod(PROFILE, key=1)
    assert _psnr(wrong_key.extract(wm8)[0], block_logo) < 15
    # the unmarked cover carries no logo
    assert _psnr(method.extract(smooth_clip[None])[0], block_logo) < 15


def test_dct_qim_degrades_gracefully_with_noise(smooth_clip, block_logo):
    from baselines.dct_qim import DctQimMethod

    method = DctQimMethod(PROFILE)
    wm = method.embed(smooth_clip[None], block_logo[None])
    gen = torch.Generator().manual_seed(3)
    scores = [_psnr(method.extract((wm + s * torch.randn(wm.shape, generator=gen))
                                   .clamp(0, 1))[0], block_logo) for s in (0.0, 0.003, 0.02)]
    assert scores[0] > scores[1] > scores[2]


def test_dct_transform_is_orthonormal():
    from baselines.dct_qim import _dct_matrix

    d = _dct_matrix()
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    # against the float64 closed-form definition of DCT-II (orthonormal)
    import math

    x = torch.arange(8, dtype=torch.float64)
    ref = [sum(x[n] * math.cos(math.pi * (2 * n + 1) * k / 16) for n in range(8))
           * math.sqrt((1 if k == 0 else 2) / 8) for k in range(8)]
    assert torch.allclose(d @ x, torch.tensor(ref, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("name", registry.names("methods"))
def test_trainable_methods_get_gradients_in_training_mode(name, smooth_clip, block_logo):
    method = _build(name)
    if not isinstance(method, TrainableMethod):
        pytest.skip(f"{name} has no weights")
    attack = registry.get("attacks", "blur")().train_form()
    frames = int(method.train_defaults.get("frames", 2))  # the method's training window
    losses = method.training_losses(smooth_clip[None, :frames], block_logo[None], attack,
                                    torch.Generator().manual_seed(0))
    losses["loss"].backward()
    grads = [p.grad for p in method.network().parameters() if p.requires_grad]
    assert any(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_a_registered_method_without_its_checkpoint_gives_unavailable_rows(tmp_path):
    from bench.run.runner import MissingMethod, RunConfig, Runner

    runner = Runner(RunConfig(methods="balujanet,identity", attacks="identity", profile="tiny",
                              limit=1, out=tmp_path / "o", cache_dir=None, progress=False,
                              fvd=False))
    missing = [m for m in runner.methods if isinstance(m, MissingMethod)]
    if not missing:
        pytest.skip("a tiny-profile balujanet checkpoint exists")
    runner.run()
    from bench.core.results import load_results

    rows = load_results(tmp_path / "o").rows.set_index("method")
    assert rows.loc["balujanet", "status"] == "unavailable"
    assert "bench train" in rows.loc["balujanet", "error"]
