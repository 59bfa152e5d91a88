"""Temporal attacks (family ``temporal``): frame drop, frame swap, frame averaging, frame-rate
change, temporal crop. Every output has exactly the input's T frames.

All but averaging pick source frames: output frame ``t`` is input frame ``index[t]``, an index
drawn per clip (per row) from the row's generator where the attack is random (the draws are
in ``info()["index"]``). Averaging is a moving mean over time. All are exact and
differentiable (indexing and means); their training forms are the evaluation forms. A
parameter given as a range ``(lo, hi)`` is drawn U(lo, hi) once per clip from the generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

import torch

from attacks import draw_uniform, float_or_range, integer, parse_positive_float_or_range, uniform
from attacks.batched import BatchedAttack, fixed_strength
from bench.core.api import AttackParams, BenchError


def gather(frames: torch.Tensor, indices: list[list[int]]) -> torch.Tensor:
    """frames (B, T, ...) and one length-T index list per clip -> frames[b, indices[b]]."""
    return torch.stack([clip[torch.tensor(index, device=clip.device)]
                        for clip, index in zip(frames, indices, strict=True)])


def _randperm(count: int, generator: torch.Generator) -> list[int]:
    return torch.randperm(count, generator=generator, device=generator.device).cpu().tolist()


def drop_index(time: int, rate: float, generator: torch.Generator) -> list[int]:
    """Drop ``round(rate * T)`` frames (at most T - 1; never frame 0), chosen uniformly
    without replacement, each replaced by the last kept frame before it."""
    chosen = _randperm(time - 1, generator)[:min(time - 1, round(rate * time))]
    dropped = {c + 1 for c in chosen}  # among frames 1..T-1
    index = [0]
    for t in range(1, time):
        index.append(index[-1] if t in dropped else t)
    return index


class FrameDrop(BatchedAttack):
    """Drops a share of the frames, each replaced by the previous kept frame."""

    name = "frame-drop"
    version = "1"
    family = "temporal"
    description = "drop a share `rate` of the frames (seeded), each replaced by the last kept one"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``rate``: share of the T frames dropped, in [0, 1] (``round(rate * T)``, at most
        T - 1: the first frame is kept), or a range drawn per row."""

        rate: Union[float, tuple] = float_or_range(0.25, 0.0, 1.0, "frame-drop rate")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(rate=r) for r in (0.1, 0.5, 0.75)]

    def strength(self) -> float:
        return fixed_strength(self.params.rate)

    def apply(self, frames, generator):
        time = frames.shape[1]
        rates = draw_uniform(self.params.rate, len(frames), generator)
        indices = [drop_index(time, rate, generator) for rate in rates]
        return gather(frames, indices), [{"rate": r, "index": i}
                                         for r, i in zip(rates, indices, strict=True)]


class FrameSwap(BatchedAttack):
    """Swaps up to ``pairs`` disjoint pairs of adjacent frames, chosen per clip."""

    name = "frame-swap"
    version = "1"
    family = "temporal"
    description = "swap `pairs` disjoint pairs of adjacent frames (seeded)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``pairs``: how many pairs (t, t + 1) to swap. The starts t are taken in a random
        order, skipping any that overlaps a pair already taken, until ``pairs`` are taken
        or none is left (so a short clip may get fewer; ``info()["pairs"]``)."""

        pairs: int = integer(2, 0, 10_000, "frame-swap pairs")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(pairs=p) for p in (1, 4, 8)]

    def strength(self) -> float:
        return float(self.params.pairs)

    def apply(self, frames, generator):
        time = frames.shape[1]
        indices, infos = [], []
        for _ in frames:
            index, used, taken = list(range(time)), set(), []
            for start in _randperm(max(time - 1, 0), generator):
                if len(taken) == self.params.pairs:
                    break
                if start in used or start + 1 in used:
                    continue
                index[start], index[start + 1] = start + 1, start
                used.update((start, start + 1))
                taken.append(start)
            indices.append(index)
            infos.append({"pairs": len(taken), "starts": sorted(taken), "index": index})
        return gather(frames, indices), infos


def moving_average_matrix(time: int, window: int) -> torch.Tensor:
    """float64 (T, T) ``A`` with ``(A @ x)[t]`` the mean of frames ``t - r .. t + r``
    (``r = window // 2``) that exist: the window is cut at the clip's ends."""
    radius = window // 2
    matrix = torch.zeros(time, time, dtype=torch.float64)
    for t in range(time):
        lo, hi = max(0, t - radius), min(time - 1, t + radius)
        matrix[t, lo:hi + 1] = 1.0 / (hi - lo + 1)
    return matrix


class FrameAverage(BatchedAttack):
    """Replaces every frame by the mean of the ``window`` frames centred on it."""

    name = "frame-average"
    version = "1"
    family = "temporal"
    description = "moving average over a centred window of `window` frames (cut at the ends)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``window``: odd number of frames averaged (1: unchanged)."""

        window: int = integer(3, 1, 10_001, "frame-average window", odd=True)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(window=w) for w in (5, 9)]

    def strength(self) -> float:
        return float(self.params.window)

    def apply(self, frames, generator):
        matrix = moving_average_matrix(frames.shape[1], self.params.window)
        matrix = matrix.to(device=frames.device, dtype=frames.dtype)
        return torch.einsum("st,bt...->bs...", matrix, frames), [{} for _ in frames]


def nearest(value: Fraction) -> int:
    """The integer nearest to ``value``, halves rounded down."""
    return math.ceil(value - Fraction(1, 2))


def frame_rate_index(time: int, factor: float) -> list[int]:
    """Resampling to ``factor`` times the frame rate and back, nearest frame both ways.

    Frame ``t`` is shown at ``t / fps``. The resampled clip has ``ceil(T * factor)`` frames,
    its frame ``k`` (at ``k / (factor * fps)``) the input frame nearest in time; back at the
    original rate, output frame ``t`` is the resampled frame nearest in time."""
    rate = Fraction(factor)
    middle = max(1, math.ceil(time * rate))
    resampled = [min(time - 1, nearest(k / rate)) for k in range(middle)]
    return [resampled[min(middle - 1, nearest(t * rate))] for t in range(time)]


class FrameRate(BatchedAttack):
    """Lowers the frame rate by ``factor``, then restores T frames (nearest frame)."""

    name = "frame-rate"
    version = "1"
    family = "temporal"
    description = "resample to `factor` times the frame rate, then back (nearest frame)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``factor``: the new rate over the old one, in (0, 1] (0.5: 8 -> 4 fps)."""

        factor: float = 0.5

        def __post_init__(self):
            factor = parse_positive_float_or_range(self.factor, "frame-rate factor", 0.0, 1.0)
            if isinstance(factor, tuple):
                raise BenchError(f"frame-rate factor must be a number, got {self.factor!r}")
            object.__setattr__(self, "factor", factor)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(factor=f) for f in (0.75, 0.375, 0.25)]

    def strength(self) -> float:
        return float(self.params.factor)

    def apply(self, frames, generator):
        index = frame_rate_index(frames.shape[1], self.params.factor)
        return gather(frames, [index] * len(frames)), [{"index": index} for _ in frames]


class TemporalCrop(BatchedAttack):
    """Keeps a contiguous ``fraction`` of the frames, padded with its last frame."""

    name = "temporal-crop"
    version = "1"
    family = "temporal"
    description = ("keep `fraction` of the frames from a seeded start, pad back by repeating "
                   "the last kept frame")

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``fraction``: kept share of the frames in (0, 1] (``max(1, round(fraction * T))``
        frames, the start uniform over the places they fit), or a range drawn per row."""

        fraction: Union[float, tuple] = float_or_range(0.5, 0.0, 1.0, "temporal-crop fraction",
                                                       positive=True)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(fraction=f) for f in (0.75, 0.25)]

    def strength(self) -> float:
        return fixed_strength(self.params.fraction)

    def apply(self, frames, generator):
        time = frames.shape[1]
        fractions = draw_uniform(self.params.fraction, len(frames), generator)
        u = uniform((len(frames),), generator)
        indices, infos = [], []
        for i, fraction in enumerate(fractions):
            kept = min(time, max(1, round(fraction * time)))
            start = min(int(float(u[i]) * (time - kept + 1)), time - kept)
            index = list(range(start, start + kept)) + [start + kept - 1] * (time - kept)
            indices.append(index)
            infos.append({"fraction": fraction, "start": start, "kept": kept, "index": index})
        return gather(frames, indices), infos
