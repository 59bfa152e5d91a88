"""A learned, differentiable stand-in for H.264 (Safe-Sora's training-time codec layer).

Safe-Sora trains through a small frozen 3D CNN fitted to libx264 (METHODS.md): Conv3d
3 -> 32 -> 32 -> 32 -> 3, kernels 3x3x3, padding 1, ReLU between. Here the network predicts
a residual added to its input (``H264Proxy``); its last layer starts near zero, so an
unfitted proxy is close to the identity. It is fitted (``fit_proxy``, ``bench fit-proxy``)
with MSE to the real codec of the evaluation attack (``attacks.h264.h264_roundtrip``: CRF
24, preset ``medium``, the profile's frame rate) on training-prompt clips quantised to 8
bits, and on the same clips with a small watermark-like perturbation added, so the fit sees
inputs like the ones it will get in training. (Measured on held-out probes, the fitted proxy
still passes small perturbations almost unchanged, where the codec scrambles fine ones: it
models the codec's average smoothing, not its quantisation noise; see the card.)
The codec outputs are computed once, before fitting. Each step takes random crops
(``crop_frames`` frames, ``crop_size`` pixels square, placed on the 16-pixel macroblock
grid); an epoch draws as many crops as it takes to cover every clip once on average.

Its fidelity is measured on held-out clips and written into its card: PSNR(proxy(x), real(x))
against PSNR(x, real(x)) (the identity baseline), the share of the codec's error it explains,
and how its response to small probe perturbations (i.i.d. and smooth Gaussian, std 4/255)
compares with the codec's (``proxy_fidelity``).

``proxy_h264_train_form(profile)`` gives the training form: the frozen proxy, gradients flowing
to its input, output clamped to [0, 1] with a straight-through gradient. The training loop
(bench/train/loop.py) uses it for the training-attack name ``h264-proxy``.
``codec_h264_train_form(profile)`` (training-attack name ``h264-codec``) sends the frames
through the real codec the proxy was fitted to and takes the gradient from the proxy: the
extractor then trains on the codec's own artefacts, its quantisation noise included, while the
embedder's gradient still carries the codec's smoothing (an identity gradient would not).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.api import BenchError, Profile
from bench.core.video import from_uint8, to_uint8
from bench.metrics import psnr, psnr_from_mse

__all__ = ["H264Proxy", "codec_h264_train_form", "fit_proxy", "load_h264_proxy",
           "proxy_fidelity", "proxy_path", "proxy_h264_train_form"]

PROXY_VERSION = "1"
DEFAULT_CLIPS = 64
DEFAULT_HELDOUT = 8
DEFAULT_EPOCHS = 3
MACROBLOCK = 16
LAST_LAYER_INIT_SCALE = 0.01
#: spatial correlation scales (pixels) of the perturbations added to half the fitting clips
PERTURBATION_SCALES = (1, 2, 4, 8)
#: the perturbations probing fidelity: name -> scale, at std PROBE_STD
FIDELITY_PROBES = {"iid": 1, "smooth": 8}
PROBE_STD = 4 / 255


class H264Proxy(nn.Module):
    """frames (B, T, 3, H, W) in [0, 1] -> frames + residual (B, T, 3, H, W), unclamped.

    Conv3d 3 -> width -> width -> width -> 3 (3x3x3, padding 1, ReLU between); the last
    layer starts at 1/100 of PyTorch's default initialisation and a zero bias, so a fresh
    proxy is close to the identity. (A zero last layer gives the hidden layers no gradient
    at the first step, and Adam's normalised steps then left them dead in our fits.)
    """

    def __init__(self, width: int = 32):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv3d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv3d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv3d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv3d(width, 3, 3, padding=1),
        )
        with torch.no_grad():  # a near-identity start whose hidden layers still get gradients
            self.layers[-1].weight.mul_(LAST_LAYER_INIT_SCALE)
            self.layers[-1].bias.zero_()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise BenchError(f"H264Proxy needs frames (B, T, 3, H, W), got {tuple(frames.shape)}")
        volume = frames.permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
        return frames + self.layers(volume).permute(0, 2, 1, 3, 4)


def proxy_path(profile_name: str) -> Path:
    """``attacks/checkpoints/h264-proxy-{profile}.pt`` (package data beside this module)."""
    from bench.core.checkpoints import checkpoint_path

    return checkpoint_path("h264-proxy", profile_name, Path(__file__).resolve().parent
                           / "checkpoints")


def fit_command(profile_name: str) -> str:
    return f"python -m bench fit-proxy --profile {profile_name}"


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    from bench.core.profiles import load_profile

    return load_profile(profile)


def perturbation(shape: tuple, std: float, scale: int, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise (T, 3, H, W) of standard deviation ``std`` with spatial correlation:
    drawn i.i.d. at (H / scale, W / scale) per frame and channel, bilinearly upsampled and
    rescaled to unit std (``scale`` 1: i.i.d. pixels)."""
    time_, channels, height, width = shape
    low = torch.randn(time_, channels, max(1, height // scale), max(1, width // scale),
                      generator=gen)
    if scale > 1:
        low = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
    return std * low / low.std().clamp_min(1e-12)


def random_perturbation(shape: tuple, gen: torch.Generator) -> torch.Tensor:
    """A watermark-like perturbation for fitting: std ~ U(1, 6) / 255, scale drawn from
    ``PERTURBATION_SCALES``."""
    std = (1 + 5 * float(torch.rand((), generator=gen))) / 255
    scale = PERTURBATION_SCALES[int(torch.randint(len(PERTURBATION_SCALES), (1,),
                                                  generator=gen))]
    return perturbation(shape, std, scale, gen)


def codec_pairs(profile: Profile, indices: list[int], seed: int, crf: int, preset: str,
                progress: bool = False, perturb: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """uint8 ``(inputs, real codec outputs)`` (N, T, 3, H, W) of training prompts ``indices``
    (rendered with ``seed``), and their ids. ``perturb``: the inputs are the clips plus a
    ``random_perturbation`` (seeded by ``seed`` and the clip id), quantised to 8 bits."""
    from tqdm import tqdm

    from attacks.h264 import h264_roundtrip
    from bench.core.seeding import derive_seed
    from bench.sources.generator import GeneratedSource

    source = GeneratedSource(profile, seed=seed, split="train")
    inputs, outputs, ids = [], [], []
    for index in tqdm(indices, desc="libx264 targets", disable=not progress, leave=False):
        clip = source[index]
        frames = clip.frames
        if perturb:
            gen = torch.Generator().manual_seed(derive_seed("h264-proxy", seed, clip.id))
            frames = frames + random_perturbation(tuple(frames.shape), gen)
        frames = to_uint8(frames)
        decoded, _ = h264_roundtrip(from_uint8(frames), crf, preset, profile.fps)
        inputs.append(frames)
        outputs.append(to_uint8(decoded))
        ids.append(clip.id)
    return torch.stack(inputs), torch.stack(outputs), ids


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    norms = float(a.norm() * b.norm())
    return float((a * b).sum()) / norms if norms else 0.0


def proxy_fidelity(proxy: H264Proxy, inputs: torch.Tensor, targets: torch.Tensor,
                   crf: int, preset: str, fps: float, seed: int = 0) -> dict:
    """How closely ``proxy`` follows the codec on uint8 clips ``inputs`` -> ``targets``.

    ``psnr_proxy_db``: mean over clips of PSNR(proxy(x), real(x)); ``psnr_identity_db``: of
    PSNR(x, real(x)) (the identity baseline); ``explained_error``: 1 - MSE(proxy, real) /
    MSE(x, real) over all clips.

    ``perturbations``: for each probe d in ``FIDELITY_PROBES`` (``perturbation`` at std
    4/255; ``iid``: scale 1, ``smooth``: scale 8), with x' = 8-bit(x + d) and d = x' - x, the
    responses r_real = real(x') - real(x) and r_proxy = proxy(x') - proxy(x):
    ``energy_real`` / ``energy_proxy`` = |r|^2 / |d|^2, ``cosine_proxy`` = cos(r_real,
    r_proxy) and ``cosine_identity`` = cos(r_real, d) (what the identity would score).
    """
    from attacks.h264 import h264_roundtrip

    gen = torch.Generator().manual_seed(seed)
    proxy_db, identity_db = [], []
    err_proxy = err_identity = 0.0
    probes: dict[str, dict[str, list]] = {
        name: {"energy_real": [], "energy_proxy": [], "cosine_proxy": [],
               "cosine_identity": []} for name in FIDELITY_PROBES}
    with torch.no_grad():
        for x8, y8 in zip(inputs, targets, strict=True):
            x, y = from_uint8(x8), from_uint8(y8)
            fx = proxy(x[None])[0].clamp(0, 1)
            proxy_db.append(psnr(fx, y))
            identity_db.append(psnr(x, y))
            err_proxy += float(((fx.double() - y.double()) ** 2).sum())
            err_identity += float(((x.double() - y.double()) ** 2).sum())
            for name, scale in FIDELITY_PROBES.items():
                moved = from_uint8(to_uint8(x + perturbation(tuple(x.shape), PROBE_STD, scale,
                                                             gen)))
                delta = (moved - x).double()
                real_moved, _ = h264_roundtrip(moved, crf, preset, fps)
                real_delta = (real_moved - y).double()
                proxy_delta = (proxy(moved[None])[0].clamp(0, 1) - fx).double()
                energy = float((delta ** 2).sum())
                stats = probes[name]
                stats["energy_real"].append(float((real_delta ** 2).sum()) / energy)
                stats["energy_proxy"].append(float((proxy_delta ** 2).sum()) / energy)
                stats["cosine_proxy"].append(_cosine(real_delta, proxy_delta))
                stats["cosine_identity"].append(_cosine(real_delta, delta))
    psnr_proxy, psnr_identity = float(np.mean(proxy_db)), float(np.mean(identity_db))
    return {
        "clips": int(inputs.shape[0]),
        "psnr_proxy_db": round(psnr_proxy, 4), "psnr_identity_db": round(psnr_identity, 4),
        "gain_db": round(psnr_proxy - psnr_identity, 4),
        "explained_error": round(1 - err_proxy / err_identity, 4) if err_identity else None,
        "per_clip_psnr_proxy_db": [round(v, 3) for v in proxy_db],
        "per_clip_psnr_identity_db": [round(v, 3) for v in identity_db],
        "perturbations": {
            name: {"std": round(PROBE_STD, 6), "scale": FIDELITY_PROBES[name],
                   **{k: round(float(np.mean(v)), 4) for k, v in stats.items()}}
            for name, stats in probes.items()},
    }


def _random_crop(video: torch.Tensor, crop_frames: int, crop_size: int,
                 gen: torch.Generator) -> tuple[slice, slice, slice]:
    """Slices of a crop of ``video`` (T, 3, H, W): a time window, and a square placed on the
    macroblock grid where the frame allows (else anywhere)."""
    time_, _, height, width = video.shape
    t0 = int(torch.randint(time_ - crop_frames + 1, (1,), generator=gen))
    starts = []
    for extent in (height, width):
        room = extent - crop_size
        if room % MACROBLOCK == 0:
            start = MACROBLOCK * int(torch.randint(room // MACROBLOCK + 1, (1,), generator=gen))
        else:
            start = int(torch.randint(room + 1, (1,), generator=gen))
        starts.append(start)
    return (slice(t0, t0 + crop_frames), slice(starts[0], starts[0] + crop_size),
            slice(starts[1], starts[1] + crop_size))


def fit_proxy(profile: str | Profile = "default", clips: Optional[int] = None,
              epochs: Optional[int] = None, seed: int = 0, out: Optional[Path | str] = None,
              heldout: Optional[int] = None, progress: bool = True, crf: int = 24,
              preset: str = "medium", lr: float = 1e-3, batch_size: int = 4,
              crop_frames: int = 8, crop_size: int = 64, perturbed: bool = True) -> Path:
    """Fit ``H264Proxy`` to the real codec and write it with its card; returns the path.

    ``clips`` training prompts (the first ones of the training split) and ``heldout`` others
    (the last ones) are rendered with ``seed`` and sent through libx264 once; with
    ``perturbed`` each training clip also goes through with a ``random_perturbation`` added,
    and each crop is taken from the clean or the perturbed version with probability 1/2.
    Adam at ``lr`` (cosine to lr/100), batches of ``batch_size`` random crops; ``epochs``
    passes, each drawing ``clips x tiles / batch_size`` batches (a tile: one crop's share of
    a clip).
    """
    from tqdm import tqdm

    from attacks.h264 import H264
    from bench.core.checkpoints import save_checkpoint
    from bench.sources import load_prompts

    prof = _profile(profile)
    clips = DEFAULT_CLIPS if clips is None else int(clips)
    heldout = DEFAULT_HELDOUT if heldout is None else int(heldout)
    epochs = DEFAULT_EPOCHS if epochs is None else int(epochs)
    H264.Params(crf=crf, preset=preset)  # validates
    total = len(load_prompts("train"))
    if clips < 1 or heldout < 1 or clips + heldout > total:
        raise BenchError(f"fit-proxy needs clips >= 1, heldout >= 1 and clips + heldout <= "
                         f"{total} training prompts, got {clips} and {heldout}")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise BenchError("epochs, batch size and lr must be positive")
    crop_frames = min(crop_frames, prof.frames)
    crop_size = min(crop_size, prof.height, prof.width)
    out = Path(out) if out is not None else proxy_path(prof.name)

    began = time.perf_counter()
    train_x, train_y, train_ids = codec_pairs(prof, list(range(clips)), seed, crf, preset,
                                              progress)
    if perturbed:
        moved_x, moved_y, _ = codec_pairs(prof, list(range(clips)), seed, crf, preset,
                                          progress, perturb=True)
        train_x, train_y = torch.cat([train_x, moved_x]), torch.cat([train_y, moved_y])
    held_x, held_y, held_ids = codec_pairs(prof, list(range(total - heldout, total)), seed,
                                           crf, preset, progress)
    codec_seconds = time.perf_counter() - began

    torch.manual_seed(seed)
    proxy = H264Proxy()
    tiles = math.ceil(prof.frames / crop_frames) * math.ceil(prof.height / crop_size) \
        * math.ceil(prof.width / crop_size)
    steps_per_epoch = max(1, math.ceil(clips * tiles / batch_size))
    steps = epochs * steps_per_epoch
    optimizer = torch.optim.Adam(proxy.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr / 100)
    gen = torch.Generator().manual_seed(seed)
    began = time.perf_counter()
    bar = tqdm(total=steps, desc="fit h264 proxy", disable=not progress)
    smooth = None
    for _ in range(steps):
        picks = torch.randint(train_x.shape[0], (batch_size,), generator=gen).tolist()
        xs, ys = [], []
        for pick in picks:
            window = _random_crop(train_x[pick], crop_frames, crop_size, gen)
            t, h, w = window
            xs.append(train_x[pick][t, :, h, w])
            ys.append(train_y[pick][t, :, h, w])
        x = from_uint8(torch.stack(xs))
        y = from_uint8(torch.stack(ys))
        loss = torch.mean((proxy(x) - y) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        smooth = value if smooth is None else 0.95 * smooth + 0.05 * value
        bar.update(1)
        bar.set_postfix(mse=f"{smooth:.3g}", psnr=f"{psnr_from_mse(smooth):.2f}",
                        refresh=False)
    bar.close()
    fit_seconds = time.perf_counter() - began

    proxy.eval()
    fidelity = proxy_fidelity(proxy, held_x, held_y, crf, preset, prof.fps, seed)
    command = fit_command(prof.name)
    if clips != DEFAULT_CLIPS:
        command += f" --clips {clips}"
    if heldout != DEFAULT_HELDOUT:
        command += f" --heldout {heldout}"
    if epochs != DEFAULT_EPOCHS:
        command += f" --epochs {epochs}"
    if seed:
        command += f" --seed {seed}"
    if not perturbed:
        command += " --no-perturb"
    card = {
        "name": "h264-proxy", "version": PROXY_VERSION, "profile": prof.name,
        "architecture": "Conv3d 3->32->32->32->3, 3x3x3, padding 1, ReLU; residual",
        "target": {"codec": "libx264 via PyAV (attacks.h264.h264_roundtrip)", "crf": crf,
                   "preset": preset, "fps": prof.fps, "pix_fmt": "yuv420p"},
        "train_clips": train_ids, "heldout_clips": held_ids, "render_seed": seed,
        "augmentation": ("each training clip also with a perturbation: Gaussian noise, std "
                         "U(1, 6)/255, spatially correlated at a scale drawn from "
                         f"{list(PERTURBATION_SCALES)} px; crops drawn from clean and "
                         "perturbed clips alike") if perturbed else "none",
        "clip_shape": [prof.frames, 3, prof.height, prof.width],
        "epochs": epochs, "steps": steps, "batch_size": batch_size,
        "crop": [crop_frames, crop_size, crop_size], "lr": lr,
        "schedule": "Adam, cosine to lr/100", "loss": "MSE on [0, 1] values",
        "parameters": sum(p.numel() for p in proxy.parameters()),
        "codec_seconds": round(codec_seconds, 2), "fit_seconds": round(fit_seconds, 2),
        "fidelity": fidelity, "command": command, "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    save_checkpoint(out, proxy.state_dict(), card)
    _cached_proxy.cache_clear()
    return out


def load_h264_proxy(profile: str | Profile = "default", path: Optional[Path | str] = None,
                    device: str = "cpu") -> H264Proxy:
    """The fitted proxy of a profile (or the file ``path``), frozen, in eval mode."""
    from bench.core.checkpoints import load_checkpoint

    name = profile.name if isinstance(profile, Profile) else str(profile)
    file = Path(path) if path is not None else proxy_path(name)
    state, _ = load_checkpoint(file, fit_command(name))
    proxy = H264Proxy()
    try:
        proxy.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BenchError(f"{file} is not an H264Proxy checkpoint; refit it with "
                         f"`{fit_command(name)}`: {exc}") from exc
    proxy.requires_grad_(False)
    return proxy.eval().to(device)


@lru_cache(maxsize=8)
def _cached_proxy(name: str, path: Optional[str], device: str) -> H264Proxy:
    return load_h264_proxy(name, path, device)


def proxy_h264_train_form(profile: str | Profile = "default",
                          path: Optional[Path | str] = None) -> Callable:
    """``(frames (B, T, 3, H, W), generator) -> frames``: the frozen proxy, differentiable
    with respect to ``frames``; output clamped to [0, 1] with a straight-through gradient.

    The checkpoint is loaded now (a missing one raises ``CheckpointMissing`` at once).
    """
    from attacks import check_video, straight_through

    name = profile.name if isinstance(profile, Profile) else str(profile)
    key = str(path) if path is not None else None
    _cached_proxy(name, key, "cpu")

    def h264_proxy(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_video(frames, batched=True)
        proxy = _cached_proxy(name, key, str(frames.device))
        out = proxy(frames)
        return straight_through(out, out.clamp(0.0, 1.0))

    return h264_proxy


def _proxy_target(name: str, path: Optional[str]) -> tuple[int, str]:
    """``(crf, preset)`` of the codec the proxy of ``name`` (or the file ``path``) was fitted
    to, from its card."""
    from bench.core.checkpoints import load_card

    file = Path(path) if path is not None else proxy_path(name)
    target = load_card(file).get("target") or {}
    if "crf" not in target or "preset" not in target:
        raise BenchError(f"{file}: its card does not name the codec it was fitted to "
                         f"(target crf and preset); refit it with `{fit_command(name)}`")
    return int(target["crf"]), str(target["preset"])


def codec_h264_train_form(profile: str | Profile = "default",
                          path: Optional[Path | str] = None) -> Callable:
    """``(frames (B, T, 3, H, W), generator) -> frames``: forward, the real libx264 round trip
    (``attacks.h264.h264_roundtrip``) of each clip at the CRF and preset the proxy was fitted
    to and the profile's frame rate; backward, the frozen proxy's gradient
    (``straight_through(proxy(x), codec(x))``).

    The proxy and its card are loaded now (a missing one raises ``CheckpointMissing`` at once).
    """
    from attacks import check_video, straight_through
    from attacks.h264 import h264_roundtrip

    prof = _profile(profile)
    key = str(path) if path is not None else None
    _cached_proxy(prof.name, key, "cpu")
    crf, preset = _proxy_target(prof.name, key)

    def h264_codec(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_video(frames, batched=True)
        proxy = _cached_proxy(prof.name, key, str(frames.device))
        approx = proxy(frames)
        with torch.no_grad():
            real = torch.stack([h264_roundtrip(clip, crf, preset, prof.fps)[0]
                                for clip in frames.detach()]).to(approx.dtype)
        return straight_through(approx, real)  # forward exactly ``real``

    return h264_codec
