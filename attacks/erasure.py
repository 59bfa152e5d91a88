"""Erasure: one black rectangle per clip (the same in every frame) covering a fraction of it.

The paper erases 5-20 % of the frame area. Per clip, from the row's generator: the area
fraction ``a`` (drawn U(lo, hi) when ``area`` is a range), the aspect ratio ``r = h / w``
log-uniform in [0.5, 2], and the rectangle's position uniform over the places where it fits.
Sides are ``h = round(sqrt(a H W r))`` (at most H) and ``w = round(a H W / h)`` (at most W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch

from attacks import float_or_range, uniform
from attacks.batched import BatchedAttack, fixed_strength
from bench.core.api import AttackParams

#: bounds of the rectangle's aspect ratio (height / width)
ASPECT_RANGE = (0.5, 2.0)


class Erasure(BatchedAttack):
    """Blacks out one random rectangle per clip (mask multiply); its info: ``area`` (the
    erased share of the frame) and ``box`` (top, left, h, w in pixels)."""

    name = "erasure"
    version = "1"
    family = "paper"
    description = "one black rectangle per clip covering a fraction `area` of the frame"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``area``: fraction of the frame in [0, 1], or a range (lo, hi) drawn per row."""

        area: Union[float, tuple] = float_or_range((0.05, 0.2), 0.0, 1.0)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(area=a) for a in (0.05, 0.1, 0.2, 0.3)]

    def strength(self) -> float:
        return fixed_strength(self.params.area)

    def apply(self, frames, generator):
        height, width = frames.shape[-2:]
        mask, boxes = self._masks(frames.shape[0], height, width, generator)
        out = frames * mask.to(device=frames.device, dtype=frames.dtype)[:, None]
        return out, [{"area": box_h * box_w / (height * width), "box": (top, left, box_h, box_w)}
                     for top, left, box_h, box_w in boxes]

    def _masks(self, count: int, height: int, width: int,
               generator: torch.Generator) -> tuple[torch.Tensor, list[tuple]]:
        """(count, 1, H, W) float32 masks (0 inside the rectangle) and the boxes
        ``(top, left, h, w)`` in pixels."""
        u = uniform((count, 4), generator)
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
