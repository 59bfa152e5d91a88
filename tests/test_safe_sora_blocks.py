"""Safe-Sora building blocks: selective scan, Mamba layers, Haar packing, token orders, SFMamba.

References are written here independently: a sequential float64 loop for the scan, explicit
block means for the Haar subbands, hand-listed indices for the token orders.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.core.api import BenchError
from methods.safe_sora import mamba as mamba_mod
from methods.safe_sora.mamba import (
    CHUNK,
    BiMamba,
    Mamba,
    linear_scan,
    scan_backend,
    selective_scan,
    softplus,
)
from methods.safe_sora.scan import invert, local_order_2d, raster_order, subband_order
from methods.safe_sora.sfmamba import SS2D, SFMamba2D, SFMamba3D, depthwise_conv3d
from methods.safe_sora.wavelet import (
    SUBBANDS_3D,
    dwt2_pack,
    dwt3_pack,
    haar1d_time,
    idwt2_unpack,
    idwt3_unpack,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------
# selective scan


def loop_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Token-by-token recurrence (torch, differentiable). B, C: (Bt, N, L) or (Bt, G, N, L)."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    per = dim // B.shape[1]
    B = B.repeat_interleave(per, dim=1)  # (Bt, Dm, N, L)
    C = C.repeat_interleave(per, dim=1)
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        h = torch.exp(delta[:, :, t, None] * A) * h + (delta[:, :, t] * u[:, :, t])[..., None] \
            * B[..., t]
        ys.append((h * C[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y


def numpy_loop_scan(u, delta, A, B, C):
    """The same recurrence in float64 numpy (fast enough for 20k tokens); B, C (Bt, N, L)."""
    u, delta, A, B, C = (t.double().numpy() for t in (u, delta, A, B, C))
    h = np.zeros((u.shape[0], u.shape[1], A.shape[1]))
    y = np.empty(u.shape)
    for t in range(u.shape[-1]):
        h = np.exp(delta[:, :, t, None] * A) * h + (delta[:, :, t] * u[:, :, t])[..., None] \
            * B[:, None, :, t]
        y[:, :, t] = (h * C[:, None, :, t]).sum(-1)
    return torch.from_numpy(y)


def _inputs(batch=2, dim=3, n=4, length=40, dtype=F64, seed=0, groups=0, delta_scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    bc = (batch, groups, n, length) if groups else (batch, n, length)
    return dict(
        u=torch.randn(batch, dim, length, generator=gen, dtype=dtype),
        delta=torch.rand(batch, dim, length, generator=gen, dtype=dtype) * delta_scale,
        A=-torch.rand(dim, n, generator=gen, dtype=dtype) * 3 - 0.1,
        B=torch.randn(*bc, generator=gen, dtype=dtype),
        C=torch.randn(*bc, generator=gen, dtype=dtype),
        D=torch.randn(dim, generator=gen, dtype=dtype),
        z=torch.randn(batch, dim, length, generator=gen, dtype=dtype),
        delta_bias=torch.randn(dim, generator=gen, dtype=dtype) * 0.5,
    )


OPTIONS = {
    "plain": dict(),
    "D_z": dict(D=True, z=True),
    "bias_softplus": dict(delta_bias=True, delta_softplus=True),
    "all": dict(D=True, z=True, delta_bias=True, delta_softplus=True),
}


def _kwargs(inputs, options):
    kw = {k: inputs[k] for k in ("u", "delta", "A", "B", "C")}
    for key, on in options.items():
        kw[key] = on if key == "delta_softplus" else inputs[key]
    return kw


@pytest.mark.parametrize("length", [1, 7, CHUNK, 5 * CHUNK + 3, CHUNK * CHUNK + 77])
@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
def test_selective_scan_matches_sequential_loop(options, length):
    inputs = _inputs(length=length, dim=2 if length > 1000 else 3)
    kw = _kwargs(inputs, OPTIONS[options])
    got = selective_scan(**kw)
    assert got.shape == kw["u"].shape and got.dtype == F64
    torch.testing.assert_close(got, loop_scan(**kw), rtol=1e-10, atol=1e-10)


def test_selective_scan_float32_and_grouped_b_c():
    inputs = _inputs(dim=6, groups=3, length=3 * CHUNK + 5)
    kw = _kwargs(inputs, OPTIONS["all"])
    ref = loop_scan(**kw)
    got = selective_scan(**{k: v.float() if torch.is_tensor(v) else v for k, v in kw.items()})
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)


def test_selective_scan_large_delta_is_stable():
    inputs = _inputs(length=3 * CHUNK + 9, seed=1, delta_scale=1e3)  # delta * A down to -3e3
    inputs["delta"][0, 0, 5] = 1e-6  # one nearly transparent step amid saturated ones
    kw = _kwargs(inputs, OPTIONS["D_z"])
    got = selective_scan(**{k: v.float() for k, v in kw.items()})
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), loop_scan(**kw), rtol=1e-4, atol=1e-3)


def test_selective_scan_gradients_match_loop():
    inputs = _inputs(batch=1, dim=2, n=3, length=2 * CHUNK + 5, seed=2)
    kw = {k: v.requires_grad_() for k, v in _kwargs(inputs, OPTIONS["all"]).items()
          if torch.is_tensor(v)}
    kw["delta_softplus"] = True
    tensors = [v for v in kw.values() if torch.is_tensor(v)]
    weight = torch.randn(1, 2, 2 * CHUNK + 5, dtype=F64)
    got = torch.autograd.grad((selective_scan(**kw) * weight).sum(), tensors)
    ref = torch.autograd.grad((loop_scan(**kw) * weight).sum(), tensors)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-9)


def test_training_softplus_matches_torchs_and_inference_is_torchs_own():
    x = torch.cat([torch.linspace(-40, 40, 801, dtype=F64), torch.tensor([0.0, 1e-8, -1e-8],
                                                                          dtype=F64)])
    for dtype, tol in ((F64, 1e-12), (torch.float32, 2e-6)):
        xs = x.to(dtype).requires_grad_()
        got = softplus(xs)
        (grad,) = torch.autograd.grad(got.sum(), xs)
        # torch returns x itself above its threshold 20 (1.9e-9 off in float64): lift it
        ref = F.softplus(x.to(dtype), threshold=100.0)
        torch.testing.assert_close(got.detach(), ref, rtol=tol, atol=tol)
        torch.testing.assert_close(grad, torch.sigmoid(x.to(dtype)), rtol=tol, atol=tol)
    torch.autograd.gradcheck(softplus, (torch.randn(20, dtype=F64).mul(5).requires_grad_(),))
    plain = torch.randn(1000) * 10  # no gradient wanted: exactly F.softplus
    assert torch.equal(softplus(plain), F.softplus(plain))


def test_linear_scan_gradcheck():
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(2, 3 * CHUNK + 1, generator=gen, dtype=F64).requires_grad_()
    b = torch.randn(2, 3 * CHUNK + 1, generator=gen, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(linear_scan, (a, b))


def test_selective_scan_long_sequence_float32():
    length = 20000
    inputs = _inputs(batch=1, dim=2, n=2, length=length, seed=4, delta_scale=0.05)
    inputs["A"] = -torch.tensor([[1e-3, 0.5], [1e-4, 2.0]], dtype=F64)  # slow and fast decays
    kw = {k: inputs[k].float() for k in ("u", "delta", "A", "B", "C")}
    got = selective_scan(**kw)
    assert torch.isfinite(got).all()
    ref = numpy_loop_scan(**kw)
    scale = ref.abs().max()
    assert float((got.double() - ref).abs().max() / scale) < 1e-4


# --------------------------------------------------------------------------------------------
# Mamba layers

MAMBA_SSM_SHAPES = {  # mamba-ssm Mamba(d_model=16, d_state=4, d_conv=4, expand=2)
    "A_log": (32, 4), "D": (32,), "in_proj.weight": (64, 16), "conv1d.weight": (32, 1, 4),
    "conv1d.bias": (32,), "x_proj.weight": (1 + 2 * 4, 32), "dt_proj.weight": (32, 1),
    "dt_proj.bias": (32,), "out_proj.weight": (16, 32),
}


def test_mamba_parameters_match_mamba_ssm():
    torch.manual_seed(0)
    layer = Mamba(16, d_state=4, d_conv=4, expand=2, dt_min=0.001, dt_max=0.1)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == MAMBA_SSM_SHAPES
    with_bias = Mamba(16, d_state=4, expand=2, bias=True).state_dict()
    assert set(with_bias) == set(MAMBA_SSM_SHAPES) | {"in_proj.bias", "out_proj.bias"}
    assert torch.equal(layer.A_log, torch.log(torch.arange(1.0, 5.0)).repeat(32, 1))
    assert torch.equal(layer.D, torch.ones(32))
    dt = F.softplus(layer.dt_proj.bias.detach())
    assert float(dt.min()) >= 0.001 * 0.999 and float(dt.max()) <= 0.1 * 1.001
    assert Mamba(40).dt_rank == 3 and Mamba(40, dt_rank=5).dt_rank == 5
    Mamba(16, d_state=4, expand=2).load_state_dict(layer.state_dict())


def test_mamba_forward_is_causal_and_uses_conv1d():
    torch.manual_seed(0)
    layer = Mamba(8, d_state=2).double()
    x = torch.randn(2, 30, 8, dtype=F64)
    ref_conv = F.conv1d(x.transpose(1, 2), layer.conv1d.weight, layer.conv1d.bias,
                        padding=3, groups=8)[..., :30].transpose(1, 2)
    torch.testing.assert_close(layer.causal_conv(x), ref_conv)
    y = layer(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 20:] += 1.0
    y2 = layer(x2)
    torch.testing.assert_close(y2[:, :20], y[:, :20])
    assert not torch.allclose(y2[:, 20:], y[:, 20:])


def test_bimamba_is_forward_plus_flipped_backward():
    torch.manual_seed(0)
    layer = BiMamba(8, d_state=2)
    x = torch.randn(2, 25, 8)
    expected = layer.forward_layer(x) + layer.backward_layer(x.flip(1)).flip(1)
    torch.testing.assert_close(layer(x), expected)
    assert set(layer.state_dict()) == {f"{d}_layer.{k}" for d in ("forward", "backward")
                                       for k in Mamba(8, d_state=2).state_dict()}


def test_scan_backend(monkeypatch):
    assert scan_backend("cpu") == "pytorch"
    monkeypatch.setattr(mamba_mod, "_fused_scan", lambda: None)
    assert scan_backend("cuda") == "pytorch"
    monkeypatch.setattr(mamba_mod, "_fused_scan", lambda: selective_scan)
    assert scan_backend(torch.device("cuda", 0)) == "mamba-ssm"
    assert scan_backend("cpu") == "pytorch"


@pytest.mark.gpu
def test_mamba_fused_and_pytorch_paths_agree(monkeypatch):
    if not torch.cuda.is_available() or mamba_mod._fused_scan() is None:
        pytest.skip("needs CUDA and mamba_ssm")
    torch.manual_seed(0)
    layer = Mamba(32, d_state=4, expand=2).cuda()
    x = torch.randn(2, 500, 32, device="cuda")
    assert scan_backend(x.device) == "mamba-ssm"
    fused = layer(x)
    monkeypatch.setattr(mamba_mod, "_fused_scan", lambda: None)
    assert scan_backend(x.device) == "pytorch"
    torch.testing.assert_close(layer(x), fused, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------
# wavelets


@pytest.mark.parametrize("levels", [1, 2])
def test_dwt2_perfect_reconstruction_and_energy(levels):
    x = torch.randn(2, 3, 16, 12, dtype=F64)
    canvas = dwt2_pack(x, levels)
    assert canvas.shape == x.shape
    torch.testing.assert_close(idwt2_unpack(canvas, levels), x)
    torch.testing.assert_close(canvas.square().sum(), x.square().sum())


def test_dwt2_layout():
    base = torch.randn(1, 2, 1, 8, dtype=F64)
    canvas = dwt2_pack(base.expand(1, 2, 8, 8), 1)  # constant along H
    assert float(canvas[..., 4:, :].abs().max()) < 1e-12  # HL, HH: high-pass along H
    canvas = dwt2_pack(base.transpose(2, 3).expand(1, 2, 8, 8), 1)  # constant along W
    assert float(canvas[..., :, 4:].abs().max()) < 1e-12  # LH, HH
    x = torch.randn(1, 1, 8, 8, dtype=F64)
    canvas = dwt2_pack(x, 2)
    means = x.view(1, 1, 2, 4, 2, 4).mean(dim=(3, 5))
    torch.testing.assert_close(canvas[..., :2, :2], means * 4)  # LL2 = 4x4 mean * 2^2
    torch.testing.assert_close(canvas[..., 4:, 4:], dwt2_pack(x, 1)[..., 4:, 4:])  # level-1 HH


def test_dwt3_reconstruction_energy_and_subbands():
    x = torch.randn(2, 3, 4, 8, 6, dtype=F64)
    packed = dwt3_pack(x)
    assert packed.shape == x.shape
    torch.testing.assert_close(idwt3_unpack(packed), x)
    torch.testing.assert_close(packed.square().sum(), x.square().sum())
    means = x.view(2, 3, 2, 2, 4, 2, 3, 2).mean(dim=(3, 5, 7))
    torch.testing.assert_close(packed[:, :, :2, :4, :3], means * 2 * math.sqrt(2))  # LLL


def test_dwt3_octants_follow_letters():
    frame = torch.randn(1, 2, 1, 8, 8, dtype=F64)
    packed = dwt3_pack(frame.expand(1, 2, 4, 8, 8))  # constant along time
    names = [n for n in SUBBANDS_3D if n[0] == "H"]
    assert names == ["HLL", "HLH", "HHL", "HHH"]
    assert float(packed[:, :, 2:].abs().max()) < 1e-12  # every octant whose first letter is H
    assert float(packed[:, :, :2].abs().max()) > 0.1
    column = torch.randn(1, 2, 4, 8, 1, dtype=F64).expand(1, 2, 4, 8, 8)  # constant along W
    assert float(dwt3_pack(column)[..., 4:].abs().max()) < 1e-12
    row = torch.randn(1, 2, 4, 1, 8, dtype=F64).expand(1, 2, 4, 8, 8)  # constant along H
    assert float(dwt3_pack(row)[..., 4:, :].abs().max()) < 1e-12


def test_temporal_haar_equals_pytorch_wavelets():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pytorch_wavelets import DWT1DForward
    x = torch.randn(2, 3, 6, 4, 5, dtype=F64)
    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        dwt = DWT1DForward(J=1, wave="haar", mode="zero")
    finally:
        torch.set_default_dtype(default)
    lo, (hi,) = dwt(x.permute(0, 1, 3, 4, 2).reshape(2, -1, 6))
    low, high = haar1d_time(x)
    torch.testing.assert_close(low, lo.reshape(2, 3, 4, 5, 3).permute(0, 1, 4, 2, 3))
    torch.testing.assert_close(high, hi.reshape(2, 3, 4, 5, 3).permute(0, 1, 4, 2, 3))


def test_wavelet_size_errors():
    with pytest.raises(BenchError, match="divisible"):
        dwt2_pack(torch.zeros(1, 1, 12, 12), 3)
    with pytest.raises(BenchError, match="even"):
        dwt3_pack(torch.zeros(1, 1, 3, 4, 4))
    with pytest.raises(BenchError):
        idwt2_unpack(torch.zeros(1, 1, 8, 8), 0)


# --------------------------------------------------------------------------------------------
# token orders


def _is_perm(perm, n):
    return perm.dtype == torch.long and torch.equal(perm.sort().values, torch.arange(n))


def test_orders_are_permutations_and_invert():
    assert torch.equal(raster_order(2, 3, 4), torch.arange(24))
    for perm, n in [(subband_order(4, 6, 8), 192), (subband_order(4, 6, 8, False), 192),
                    (local_order_2d(8, 12, grid=4), 96)]:
        assert _is_perm(perm, n)
        inv = invert(perm)
        assert torch.equal(perm[inv], torch.arange(n)) and torch.equal(inv[perm], torch.arange(n))


def test_subband_order_visits_octants_in_order():
    t, h, w = 4, 6, 8
    perm = subband_order(t, h, w).view(8, -1)
    z, y, x = perm // (h * w), perm // w % h, perm % w
    for i, name in enumerate(SUBBANDS_3D):
        a, b, c = (letter == "H" for letter in name)
        assert bool(((z >= t // 2) == a)[i].all() and ((y >= h // 2) == b)[i].all()
                    and ((x >= w // 2) == c)[i].all()), name


def test_subband_order_by_hand():
    # 4x4x4: octants are 2x2x2; raster index = 16 z + 4 y + x
    assert subband_order(4, 4, 4)[:16].tolist() == [0, 1, 4, 5, 16, 17, 20, 21,  # LLL
                                                    2, 3, 6, 7, 18, 19, 22, 23]  # LLH
    assert subband_order(4, 4, 4, space_first=False)[:8].tolist() == [0, 16, 1, 17, 4, 20, 5, 21]
    assert subband_order(4, 4, 4)[-1] == 63 and subband_order(4, 4, 4)[16:18].tolist() == [8, 9]


def test_local_order_2d_by_hand():
    perm = local_order_2d(8, 8, grid=4)  # 2x2 windows
    assert perm[:12].tolist() == [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13]
    assert perm[16:20].tolist() == [16, 17, 24, 25]  # first window of the second window row
    with pytest.raises(BenchError):
        local_order_2d(10, 8, grid=4)


# --------------------------------------------------------------------------------------------
# SFMamba blocks


def _grads_everywhere(module):
    missing = [n for n, p in module.named_parameters() if p.grad is None
               or not torch.isfinite(p.grad).all() or float(p.grad.abs().sum()) == 0]
    assert not missing, missing


def test_ss2d_cross_scan_is_transpose_equivariant():
    torch.manual_seed(0)
    ss2d = SS2D(8, d_state=2).double()
    with torch.no_grad():
        ss2d.dt_projs_bias.mul_(30)  # longer memory: the directions differ more
    swapped = copy.deepcopy(ss2d)
    with torch.no_grad():  # rows <-> columns; the 3x3 conv transposed with the image
        swapped.conv2d.weight.copy_(ss2d.conv2d.weight.transpose(2, 3))
        for name in ("x_proj_weight", "dt_projs_weight", "dt_projs_bias"):
            getattr(swapped, name).copy_(getattr(ss2d, name)[[1, 0, 3, 2]])
        for name in ("A_logs", "Ds"):
            getattr(swapped, name).copy_(getattr(ss2d, name).view(4, 8, -1)[[1, 0, 3, 2]]
                                         .reshape(getattr(ss2d, name).shape))
    x = torch.randn(2, 5, 7, 8, dtype=F64)
    y = ss2d(x)
    assert y.shape == x.shape
    torch.testing.assert_close(swapped(x.transpose(1, 2)), y.transpose(1, 2))
    assert not torch.allclose(ss2d(x.transpose(1, 2)), y.transpose(1, 2))


def test_sfmamba2d_shapes_and_gradients():
    torch.manual_seed(0)
    block = SFMamba2D(8, d_state=2)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    _grads_everywhere(block)
    assert torch.isfinite(x.grad).all()


def test_sfmamba3d_shapes_gradients_and_variants():
    torch.manual_seed(0)
    block = SFMamba3D(8)
    x = torch.randn(1, 4, 8, 8, 8, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    _grads_everywhere(block)
    with torch.no_grad():
        no_sls = SFMamba3D(8, local_scan=False)
        no_sls.load_state_dict(block.state_dict())
        time_first = SFMamba3D(8, space_first=False)
        time_first.load_state_dict(block.state_dict())
        assert not torch.allclose(no_sls(x), y, atol=1e-6)
        assert not torch.allclose(time_first(x), y, atol=1e-6)
        assert not torch.allclose(no_sls(x), time_first(x), atol=1e-6)


@pytest.mark.slow  # the first torch.utils.checkpoint call imports torch._dynamo (~2 s)
def test_sfmamba3d_checkpoint_gives_same_numbers():
    torch.manual_seed(0)
    block = SFMamba3D(8).double()
    ckpt = SFMamba3D(8, checkpoint=True).double()
    ckpt.load_state_dict(block.state_dict())
    x = torch.randn(1, 4, 8, 8, 8, dtype=F64)
    y1, y2 = block(x), ckpt(x)
    torch.testing.assert_close(y1, y2)
    g1 = torch.autograd.grad(y1.square().sum(), list(block.parameters()))
    g2 = torch.autograd.grad(y2.square().sum(), list(ckpt.parameters()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_depthwise_conv3d_backward_matches_pytorch():
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(5, 5, 3, padding=1, groups=5).double()
    x = torch.randn(2, 5, 4, 6, 7, dtype=F64, requires_grad=True)
    grad = torch.randn(2, 5, 4, 6, 7, dtype=F64)
    params = [x, conv.weight, conv.bias]
    got = torch.autograd.grad(depthwise_conv3d(x, conv), params, grad)
    ref = torch.autograd.grad(conv(x), params, grad)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r)


def test_depthwise_conv3d_backward_runs_under_bf16_autocast():
    """The custom backward sees the forward's autocast state: bf16 gradients close to fp32."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(4, 4, 3, padding=1, groups=4)
    x = torch.randn(1, 4, 4, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = depthwise_conv3d(x, conv)
    assert y.dtype == torch.bfloat16
    got = torch.autograd.grad(y.float().sum(), [x, conv.weight, conv.bias])
    ref = torch.autograd.grad(conv(x).sum(), [x, conv.weight, conv.bias])
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == r.dtype == torch.float32
        torch.testing.assert_close(g, r, rtol=0.05, atol=0.1)


def test_wavelets_run_and_backpropagate_under_bf16_autocast():
    """Under autocast the Haar transforms run in float32 and equal their plain results."""
    torch.manual_seed(0)
    image = torch.randn(2, 3, 8, 8, requires_grad=True)
    video = torch.randn(1, 2, 4, 8, 8, requires_grad=True)
    plain = (dwt2_pack(image, 2), dwt3_pack(video))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = (dwt2_pack(image, 2), dwt3_pack(video))
        back = (idwt2_unpack(cast[0], 2), idwt3_unpack(cast[1]))
    for got, want in zip(cast, plain, strict=True):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(back[0], image)
    torch.testing.assert_close(back[1], video)
    grads = torch.autograd.grad(back[0].sum() + back[1].sum(), [image, video])
    for grad in grads:
        torch.testing.assert_close(grad, torch.ones_like(grad))
