"""LPIPS (AlexNet trunk, v0.1 linear layers): the model, the video and temporal (tLP) forms
and their metric objects (``V_LPIPS`` and ``TLP`` in ``bench.metrics`` are ``LpipsMetric``s).

A value that cannot be computed is ``MetricValue(nan, reason)``, never a made-up number: LPIPS
needs torchvision's AlexNet weights (see ``python -m bench weights``) and is *unavailable*
without them; a random backbone exists for tests only and says so (``LpipsModel.is_random``).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from functools import lru_cache
from typing import Optional

import torch

from bench.core.api import (
    METRIC_NOT_APPLICABLE,
    BenchError,
    Metric,
    MetricInputs,
    MetricSpec,
    MetricValue,
)
from bench.core.weights import ALEXNET_SHA256_PREFIX, alexnet_path, lpips_linear_path, sha256_file
from bench.metrics.fidelity import check_pair


class LpipsUnavailable(BenchError):
    """LPIPS cannot be built here; the message says why and what to do."""


def _missing_alexnet_reason() -> str:
    """'' when the pretrained AlexNet file is present and intact, else why it cannot be used."""
    path = alexnet_path()
    if not path.is_file():
        return (f"LPIPS needs torchvision's AlexNet ImageNet weights, missing at {path}; "
                "see `python -m bench weights` for how to install them")
    digest = sha256_file(path)
    if not digest.startswith(ALEXNET_SHA256_PREFIX):
        return (f"{path} has sha256 {digest[:12]}..., expected {ALEXNET_SHA256_PREFIX}...: "
                "the file is damaged or not torchvision's IMAGENET1K_V1 AlexNet; see "
                "`python -m bench weights`")
    return ""


def _load_linear_layers(model: torch.nn.Module) -> None:
    """Load the LPIPS v0.1 linear layers shipped in the lpips package, strictly."""
    path = lpips_linear_path()
    if not path.is_file():
        raise LpipsUnavailable(f"LPIPS linear-layer weights missing at {path} (reinstall lpips)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LpipsUnavailable(f"cannot read {path}: {exc}") from exc
    result = model.load_state_dict(state, strict=False)
    # ``lins.N`` aliases ``linN`` (same modules), so checking ``linN.*`` covers both
    lin_keys = {k for k in model.state_dict() if re.match(r"lin\d+\.", k)}
    if result.unexpected_keys or lin_keys - set(state):
        raise LpipsUnavailable(
            f"{path} does not match the LPIPS linear layers (unexpected "
            f"{result.unexpected_keys}, missing {sorted(lin_keys - set(state))})")


def _load_alexnet_backbone(net: torch.nn.Module) -> None:
    """Copy torchvision AlexNet ``features.*`` tensors into lpips' slices (strict)."""
    path = alexnet_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LpipsUnavailable(f"cannot read {path}: {exc}") from exc
    # lpips names each AlexNet layer by its index in torchvision's ``features``: slice2.3 = 3
    target = {}
    for key in net.state_dict():
        slice_name, index, param = key.split(".")
        target[f"features.{index}.{param}"] = key
    mapped = {}
    for src, dst in target.items():
        if src not in state:
            raise LpipsUnavailable(f"{path} lacks {src}: not a torchvision AlexNet state dict")
        mapped[dst] = state[src]
    try:
        net.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise LpipsUnavailable(f"{path} does not fit AlexNet: {exc}") from exc


class LpipsModel:
    """LPIPS (AlexNet trunk, v0.1 linear layers) as ``model(a, b) -> (N,)`` distances.

    ``backbone="pretrained"`` loads torchvision's AlexNet ImageNet weights from torch hub's
    cache (``torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth``) and never downloads;
    when the file is missing or damaged the constructor raises ``LpipsUnavailable`` with the
    reason. ``backbone="random"`` builds a seeded random AlexNet trunk, FOR TESTS ONLY (it
    exercises the plumbing; its distances mean nothing): such a model has ``is_random=True``.
    """

    def __init__(self, device: str = "cpu", backbone: str = "pretrained", seed: int = 0,
                 batch_size: int = 32):
        if backbone not in ("pretrained", "random"):
            raise BenchError(f"LPIPS backbone must be 'pretrained' or 'random', not {backbone!r}")
        if backbone == "pretrained":
            reason = _missing_alexnet_reason()
            if reason:
                raise LpipsUnavailable(reason)
        self.is_random = backbone == "random"
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = self._build(seed)

    def _build(self, seed: int) -> torch.nn.Module:
        try:
            import lpips
        except ImportError as exc:
            raise LpipsUnavailable(f"the lpips package is not installed: {exc}") from exc
        quiet = contextlib.redirect_stdout(io.StringIO())
        with quiet, warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")
            torch.manual_seed(seed)
            try:
                # pnet_rand: the trunk is built without touching the network (random), then
                # overwritten below unless this is the test-only random backbone
                model = lpips.LPIPS(net="alex", version="0.1", pretrained=False,
                                    pnet_rand=True, verbose=False)
            except Exception as exc:
                raise LpipsUnavailable(f"lpips could not build its model: {exc}") from exc
        _load_linear_layers(model)
        if not self.is_random:
            _load_alexnet_backbone(model.net)
        model.eval().requires_grad_(False)
        return model.to(self.device)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b: (N, 3, H, W) in [0, 1] -> LPIPS distances (N,) float64 on the CPU."""
        check_pair(a, b, 4, "lpips")
        out = []
        with torch.no_grad():
            for i in range(0, a.shape[0], self.batch_size):
                x = a[i:i + self.batch_size].to(self.device, torch.float32) * 2 - 1
                y = b[i:i + self.batch_size].to(self.device, torch.float32) * 2 - 1
                try:
                    d = self.model(x, y)
                except RuntimeError as exc:
                    raise BenchError(f"LPIPS failed on {tuple(x.shape)} inputs: {exc}") from exc
                out.append(d.reshape(-1).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def video_lpips(watermarked: torch.Tensor, cover: torch.Tensor, model: LpipsModel) -> float:
    """Mean over frames of LPIPS(w_t, c_t) of two (T, 3, H, W) videos."""
    check_pair(watermarked, cover, 4, "video_lpips")
    return float(model(watermarked, cover).mean())


def tlp(watermarked: torch.Tensor, cover: torch.Tensor, model: LpipsModel) -> float:
    """Temporal LPIPS: mean over t of |LPIPS(w_t, w_t+1) - LPIPS(c_t, c_t+1)|, raw scale.

    Videos (T, 3, H, W) with T >= 2. The paper prints this value x100.
    """
    check_pair(watermarked, cover, 4, "tlp")
    if watermarked.shape[0] < 2:
        raise BenchError("tLP needs at least 2 frames")
    d_w = model(watermarked[:-1], watermarked[1:])
    d_c = model(cover[:-1], cover[1:])
    return float((d_w - d_c).abs().mean())


TLP_FRAMES_REASON = "tLP needs at least 2 frames"


@lru_cache(maxsize=None)
def _lpips_model(device: str, backbone: str) -> tuple[Optional[LpipsModel], str]:
    """One LPIPS model per (device, backbone) per process, or None with the reason."""
    try:
        return LpipsModel(device=device, backbone=backbone), ""
    except LpipsUnavailable as exc:
        return None, str(exc)



def _lpips_spec(name: str, description: str) -> MetricSpec:
    return MetricSpec(name=name, higher_is_better=False, unit="", level="row",
                      description=description, version="1", compares="video")


_LPIPS_SPECS = {
    "frame": _lpips_spec("v-lpips",
                         "LPIPS (AlexNet, v0.1) of watermarked vs cover video, mean over frames"),
    "temporal": _lpips_spec("tlp",
                            "temporal LPIPS: mean |LPIPS(w_t, w_t+1) - LPIPS(c_t, c_t+1)|, raw "
                            "(paper x100)"),
}


class LpipsMetric(Metric):
    """V-LPIPS (``kind="frame"``: LPIPS(w_t, c_t), mean over frames) or tLP
    (``kind="temporal"``); NaN, unavailable, without the pretrained backbone's weights."""

    def __init__(self, kind: str, backbone: str = "pretrained"):
        if kind not in ("frame", "temporal"):
            raise ValueError(f"LPIPS metric kind must be 'frame' or 'temporal', not {kind!r}")
        self.kind, self.backbone = kind, backbone
        self.spec = _LPIPS_SPECS[kind]
        self.column = self.spec.name.replace("-", "_")
        self.fn = video_lpips if kind == "frame" else tlp

    def score(self, inputs: MetricInputs) -> MetricValue:
        model, reason = _lpips_model(str(inputs.device), self.backbone)
        if model is None:
            return MetricValue(math.nan, reason)
        if self.kind == "temporal" and inputs.watermarked.shape[0] < 2:
            return MetricValue(math.nan, TLP_FRAMES_REASON, METRIC_NOT_APPLICABLE)
        return MetricValue(self.fn(inputs.watermarked, inputs.cover, model))
