"""The evaluation attacks (registered under the ``bench.attacks`` entry points).

The paper's six (family ``paper``), one module each:

- ``identity``: no distortion.
- ``erasure``: one black rectangle per clip covering a fraction ``area`` of the frame.
- ``blur``: Gaussian blur per frame with an odd ``kernel`` (3/5/7), OpenCV's sigma rule.
- ``noise``: additive Gaussian noise of std ``sigma`` on [0, 1] values, then clamped.
- ``rotation``: rotation by ``angle`` degrees about the centre, bilinear, zero fill.
- ``h264``: a real H.264 round trip (PyAV's libx264, in memory, yuv420p) at a ``crf``.
- ``chain``: attacks applied left to right, ``chain(blur(3),h264(28))`` (not an entry point:
  it is given with its parts, see bench/run/attack_spec.py).

The suite beyond the paper, one module per family:

- ``codecs`` (``codec``): real round trips ``h265`` (libx265, ``crf``), ``vp9`` (libvpx-vp9,
  constant quality ``crf``), ``av1`` (SVT-AV1, ``crf`` or ``qp``), ``mpeg4`` (``qscale``),
  through the in-memory PyAV path h264 shares (``codec_roundtrip``).
- ``geometric``: ``crop`` (centred ``fraction``, resized back), ``resize`` (down by ``scale``,
  back up), ``hflip``, ``perspective`` (seeded corner ``jitter``), ``translation`` (``x``,
  ``y``).
- ``photometric``: ``brightness``, ``contrast``, ``saturation`` (``factor``), ``hue``
  (``shift``), ``gamma``, ``jpeg`` (per-frame PIL ``quality``), ``median`` (``kernel``).
- ``temporal``: ``frame-drop`` (``rate``), ``frame-swap`` (``pairs``), ``frame-average``
  (``window``), ``frame-rate`` (``factor``), ``temporal-crop`` (``fraction``); all keep T.

Every attack has an exact, seeded evaluation form (``attack(frames, generator)``) and a
training form (``attack.train_form()``) with the same parameters: differentiable, or
straight-through (forward the attack, backward the identity: the codecs, jpeg, median); an
attack without an honest one raises ``BenchError`` there (``attacks.batched``). A parameter
given as a tuple ``(lo, hi)`` is drawn U(lo, hi) per row from the row's generator.

This module imports nothing heavy; the helpers below are shared by the attack modules:
parameter kinds for ``Params`` fields (``float_or_range``, ``integer``, ``choice``: each
declares a parameter's default and range once, see ``bench.core.api.param``), their parsers, the
draws from a row's generator (``uniform``, ``normal``, ``draw_uniform``) and input checks.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from bench.core.api import BenchError, param
from bench.core.video import check_video as _check_video

# ------------------------------------------------------------------- parameter kinds


def float_or_range(default: float | tuple, lo: float, hi: float, label: str = "",
                   positive: bool = False) -> Any:
    """A ``Params`` field holding a number in [lo, hi] or a range ``(low, high)`` inside it
    (drawn U(low, high) per row), above 0 when ``positive``; see ``parse_float_or_range``."""
    parse = parse_positive_float_or_range if positive else parse_float_or_range
    return param(default, lambda value, name: parse(value, name, lo, hi), label)


def integer(default: int, lo: int, hi: int, label: str = "", odd: bool = False) -> Any:
    """A ``Params`` field holding an integer in [lo, hi], odd when ``odd``; see
    ``parse_int``."""
    parse = parse_odd_int if odd else parse_int
    return param(default, lambda value, name: parse(value, name, lo, hi), label)


def choice(default: str, options: Sequence[str], label: str = "") -> Any:
    """A ``Params`` field holding one of ``options`` (strings)."""
    return param(default, lambda value, name: parse_choice(value, name, options), label)


def parse_float_or_range(value: Any, name: str, lo: float, hi: float) -> float | tuple:
    """Normalise a parameter to a float or a ``(lo, hi)`` tuple of floats within [lo, hi].

    Lists (from TOML or the CLI) become tuples so the params stay hashable and canonical.
    """
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise BenchError(f"{name} range must be (low, high), got {value!r}")
        low, high = (_as_float(v, name) for v in value)
        if not (lo <= low <= high <= hi):
            raise BenchError(f"{name} range must satisfy {lo} <= low <= high <= {hi}, "
                             f"got {value!r}")
        return (low, high)
    number = _as_float(value, name)
    if not (lo <= number <= hi):
        raise BenchError(f"{name} must lie in [{lo}, {hi}], got {value!r}")
    return number


def parse_positive_float_or_range(value: Any, name: str, lo: float, hi: float
                                  ) -> float | tuple:
    """``parse_float_or_range`` on [lo, hi] with every value above 0 (lo is usually 0)."""
    parsed = parse_float_or_range(value, name, lo, hi)
    if (parsed[0] if isinstance(parsed, tuple) else parsed) <= 0:
        raise BenchError(f"{name} must be above 0, got {value!r}")
    return parsed


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BenchError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise BenchError(f"{name} must be finite, got {value!r}")
    return number


def parse_int(value: Any, name: str, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi] (a whole float is accepted); else ``BenchError``."""
    number = value
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not lo <= number <= hi:
        raise BenchError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return number


def parse_odd_int(value: Any, name: str, lo: int, hi: int) -> int:
    """``parse_int``, then odd; else ``BenchError``."""
    number = parse_int(value, name, lo, hi)
    if number % 2 == 0:
        raise BenchError(f"{name} must be odd, got {value!r}")
    return number


def parse_choice(value: Any, name: str, options: Sequence[str]) -> str:
    """``value`` if it is one of ``options``; else ``BenchError`` listing them."""
    if value not in options:
        raise BenchError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


# ------------------------------------------------------------------- draws from a row's generator


def uniform(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """float64 (shape) U(0, 1) drawn on the generator's device, returned on the CPU."""
    return torch.rand(shape, generator=generator, device=generator.device,
                      dtype=torch.float64).cpu()


def normal(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """float32 (shape) N(0, 1) drawn and left on the generator's device."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)


def draw_uniform(value: float | tuple, count: int, generator) -> list[float]:
    """``count`` values: ``value`` repeated if fixed, else drawn U(lo, hi) from ``generator``.

    A fixed value consumes no randomness.
    """
    if not isinstance(value, tuple):
        return [float(value)] * count
    low, high = value
    return [low + (high - low) * float(x) for x in uniform((count,), generator)]


# ------------------------------------------------------------------- inputs and gradients


def check_video(frames, batched: bool = False) -> None:
    """Raise ``BenchError`` unless ``frames`` is a float tensor (T, 3, H, W) or, when
    ``batched``, (B, T, 3, H, W); the message names the ``attack input``."""
    _check_video(frames, "attack input", batched)


def straight_through(inputs, outputs):
    """Forward ``outputs``, backward the identity onto ``inputs`` (a straight-through estimator)."""
    return outputs.detach() + (inputs - inputs.detach())
