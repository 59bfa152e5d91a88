"""The identity attack: frames pass through unchanged (the no-attack baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from attacks.batched import BatchedAttack
from bench.core.api import AttackParams


class Identity(BatchedAttack):
    """No distortion: the output is a float32 copy of the input; the training form returns
    its input. ``strength()`` is NaN, so robustness plots have no identity curve."""

    name = "identity"
    version = "1"
    family = "paper"
    description = "no distortion (the frames pass through unchanged)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """No parameters."""

    def apply(self, frames, generator):
        return frames, [{} for _ in frames]
