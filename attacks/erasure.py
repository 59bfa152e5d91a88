"""Erasure: one black rectangle per clip (the same in every frame) covering a fraction of it.

The paper erases 5-20 % of the frame area. Per clip, from the row's generator: the area
fraction ``a`` (drawn U(lo, hi) when ``area`` is a range), the aspect ratio ``r = h / w``
log-uniform in [0.5, 2], and the rectangle's position uniform over the places where it fits.
Sides are ``h = round(sqrt(a H W r))`` (at most H) and ``w = round(a H W / h)`` (at most W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch

from attacks import check_params, check_video, parse_float_or_range
from bench.api import Attack, AttackParams

#: bounds of the rectangle's aspect ratio (height / width)
ASPECT_RANGE = (0.5, 2.0)


class Erasure(Attack):
    """Blacks out one random rectangle per clip (mask multiply)."""

    name = "erasure"
    version = "1"
    family = "paper"
    description = "one black rectangle per clip covering a fraction `area` of the frame"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``area``: fraction of the frame in [0, 1], or a range (lo, hi) drawn per row."""

        area: Union[float, tuple] = (0.05, 0.2)

        def __post_init__(self):
            object.__setattr__(self, "area", parse_float_or_range(self.area, "area", 0.0, 1.0))

    def __init__(self, params: Optional[AttackParams] = None):
        super().__init__(params)
        check_params(self, self.params)
        self.last_info: dict = {}

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(area=a) for a in (0.05, 0.1, 0.2, 0.3)]

    def strength(self) -> float:
        area = self.params.area
        return math.nan if isinstance(area, tuple) else float(area)

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """frames (T, 3, H, W) in [0, 1] -> frames with one rectangle set to 0, float32."""
        check_video(frames)
        mask, boxes = self._masks(1, frames.shape[-2], frames.shape[-1], generator)
        _, _, box_h, box_w = boxes[0]
        self.last_info = {"area": box_h * box_w / (frames.shape[-2] * frames.shape[-1]),
                          "box": boxes[0]}
        return frames.to(torch.float32) * mask[0].to(frames.device)

    def train_form(self):
        """``(frames (B, T, 3, H, W), generator) -> frames``: a random mask multiply per clip."""
        return self._apply_batch

    def _apply_batch(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_video(frames, batched=True)
        mask, _ = self._masks(frames.shape[0], frames.shape[-2], frames.shape[-1], generator)
        return frames * mask.to(device=frames.device, dtype=frames.dtype)[:, None]

    def _masks(self, count: int, height: int, width: int,
               generator: torch.Generator) -> tuple[torch.Tensor, list[tuple]]:
        """(count, 1, H, W) float32 masks (0 inside the rectangle) and the boxes
        ``(top, left, h, w)`` in pixels."""
        u = torch.rand(count, 4, generator=generator, device=generator.device,
                       dtype=torch.float64).cpu()
        masks = torch.ones(count, 1, height, width, dtype=torch.float32)
        boxes = []
        for i in range(count):
            area = self.params.area
            if isinstance(area, tuple):
                area = area[0] + (area[1] - area[0]) * float(u[i, 0])
            log_lo, log_hi = (math.log(r) for r in ASPECT_RANGE)
            aspect = math.exp(log_lo + (log_hi - log_lo) * float(u[i, 1]))
            box_h, box_w = rectangle_size(area, aspect, height, width)
            top = min(int(float(u[i, 2]) * (height - box_h + 1)), height - box_h)
            left = min(int(float(u[i, 3]) * (width - box_w + 1)), width - box_w)
            masks[i, :, top:top + box_h, left:left + box_w] = 0.0
            boxes.append((top, left, box_h, box_w))
        return masks, boxes


def rectangle_size(area: float, aspect: float, height: int, width: int) -> tuple[int, int]:
    """Sides (h, w) in pixels of a rectangle of ``area * H * W`` pixels with h / w ~ ``aspect``,
    fitting inside an H x W frame. An area of 0 gives (0, 0)."""
    target = area * height * width
    if target <= 0:
        return 0, 0
    box_h = min(height, max(1, round(math.sqrt(target * aspect))))
    box_w = min(width, max(1, round(target / box_h)))
    return box_h, box_w
