"""The base of every attack in this package but ``chain``: the scaffold they share.

A ``BatchedAttack`` is defined once, on a batch of clips (``apply``); its evaluation form is
that function on a batch of one clip, clamped to [0, 1], so the evaluation form and the
training form draw the same randomness from the same generator (per clip, in clip order).
The base checks the input (``check_video``), casts it to float32, keeps the first clip's info
for ``info()`` and gives the training form; ``Attack.__init__`` checks the parameters, which
the fields of ``Params`` validate themselves (``attacks.float_or_range``, ``integer``, ...).
``training`` says what ``train_form()`` gives: ``"exact"`` (``apply`` itself, differentiable),
``"straight-through"`` (forward ``apply``, backward the identity) or ``None`` (no training
form: ``train_form()`` raises ``BenchError``).
"""

from __future__ import annotations

import math
from typing import ClassVar, Optional

import torch

from attacks import check_video, straight_through
from bench.core.api import Attack, BenchError


class BatchedAttack(Attack):
    """An attack given by ``apply(frames (B, T, 3, H, W), generator) -> (frames, infos)``."""

    #: ``"exact"``, ``"straight-through"`` or ``None`` (see the module docstring)
    training: ClassVar[Optional[str]] = "exact"
    #: why there is no training form (when ``training`` is None)
    no_training_reason: ClassVar[str] = ""

    def apply(self, frames: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, list[dict]]:
        """frames (B, T, 3, H, W) -> (attacked (B, T, 3, H, W), one info dict per clip)."""
        raise NotImplementedError

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """frames (T, 3, H, W) in [0, 1] -> attacked frames (T, 3, H, W) float32 in [0, 1]."""
        check_video(frames)
        out, infos = self.apply(frames.to(torch.float32)[None], generator)
        self._info = infos[0]
        return out[0].clamp(0.0, 1.0)

    def train_form(self):
        """``(frames (B, T, 3, H, W), generator) -> frames``: ``apply`` (``exact``), or its
        forward with the identity's gradient (``straight-through``)."""
        if self.training is None:
            raise BenchError(f"attack {self.name!r} has no training form: "
                             f"{self.no_training_reason}")
        return self._apply_batch

    def _apply_batch(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_video(frames, batched=True)
        if self.training == "straight-through":
            with torch.no_grad():
                out, _ = self.apply(frames.detach(), generator)
            return straight_through(frames, out.to(frames.dtype))
        out, _ = self.apply(frames, generator)
        return out


def fixed_strength(value) -> float:
    """A fixed parameter as a float; NaN for a range (a randomised setting)."""
    return math.nan if isinstance(value, tuple) else float(value)
