"""A chain of attacks applied left to right: ``chain(crop(0.8),h264(28))`` crops, then encodes.

Given on ``--attacks`` with its parts (bench/run/attack_spec.py); it is not an entry point, since
it has no setting without parts (``bench list attacks`` shows its syntax). Its canonical name
is built from the parts' canonical names, ``chain(blur(kernel=3),noise(sigma=0.05))``,
however the parts were spelled, and its version from theirs (``1(1,1)``: the chain's own,
then each part's), so its rows are cached and looked up like those of any attack, and a new
version of a part recomputes the chains it is in. A chain inside a chain is flattened.

Randomness: the parts are applied in order with the row's one generator, each drawing what
it draws alone (a fixed, deterministic part draws nothing), so a part's draws follow those
of the parts before it. ``info()`` merges the parts' (a later part's key wins, e.g. the
``bytes`` of the last codec part) and lists each under ``parts``. ``strength`` is NaN: a
chain has no single strength axis, so robustness curves leave it out. ``train_form``
composes the parts' training forms; a part without one makes it raise BenchError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from attacks import check_video
from bench.core.api import Attack, AttackParams, BenchError


class Chain(Attack):
    """Attacks applied one after the other, with one generator."""

    name = "chain"
    #: the chain's own version; an instance's ``version`` adds its parts' (``1(1,1)``)
    version = "1"
    family = "chain"
    description = "attacks applied left to right (give it with its parts on --attacks)"

    @dataclass(frozen=True, eq=False)
    class Params(AttackParams):
        """``parts``: the attack instances, applied in order (at least one)."""

        parts: tuple = ()

        def __post_init__(self):
            if not isinstance(self.parts, (tuple, list)):
                raise BenchError(f"chain parts must be a tuple of attacks, got {self.parts!r}")
            flat = []
            for part in self.parts:
                if not isinstance(part, Attack):
                    raise BenchError(f"a chain part must be an attack, got {part!r}")
                flat.extend(part.params.parts if isinstance(part, Chain) else [part])
            if not flat:
                raise BenchError("empty chain: give its attacks, e.g. chain(blur(3),h264(28))")
            object.__setattr__(self, "parts", tuple(flat))

        def canonical_args(self) -> str:
            return ",".join(part.canonical for part in self.parts)

        def __eq__(self, other) -> bool:
            return isinstance(other, Chain.Params) and \
                self.canonical_args() == other.canonical_args()

        def __hash__(self) -> int:
            return hash(self.canonical_args())

    def __init__(self, params: Optional[AttackParams] = None):
        super().__init__(params)
        self.parts: tuple = self.params.parts
        self.version = f"{Chain.version}({','.join(part.version for part in self.parts)})"

    @classmethod
    def of(cls, *parts: Attack) -> "Chain":
        """``Chain.of(a, b)``: a chain of attack instances."""
        return cls(cls.Params(parts=parts))

    @classmethod
    def default_params(cls) -> AttackParams:
        raise BenchError("a chain has no default setting: give its parts, "
                         "e.g. chain(blur(3),h264(28))")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        """None: a chain is the one setting it is given with."""
        return []

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """frames (T, 3, H, W) in [0, 1] -> frames after every part in turn."""
        check_video(frames)
        merged: dict = {}
        infos = []
        for part in self.parts:
            frames = part(frames, generator)
            info = part.info()
            infos.append(info)
            merged.update(info)
        self._info = {**merged, "parts": infos}
        return frames

    def train_form(self):
        """``(frames (B, T, 3, H, W), generator) -> frames``: the parts' training forms in
        turn, with one generator."""
        forms = []
        for part in self.parts:
            try:
                form = part.train_form()
            except (NotImplementedError, BenchError) as exc:
                raise BenchError(f"chain part {part.canonical} has no training form: "
                                 f"{exc}") from exc
            if form is None:
                raise BenchError(f"chain part {part.canonical} has no training form")
            forms.append(form)

        def apply(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            check_video(frames, batched=True)
            for form in forms:
                frames = form(frames, generator)
            return frames

        return apply
