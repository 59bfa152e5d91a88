"""A real H.264 round trip: PyAV's libx264, in memory (mp4 in ``io.BytesIO``), yuv420p.

Frames are quantised to 8-bit RGB (round), padded to even H and W by repeating the last row /
column (4:2:0 needs even sizes), converted to Y'CbCr (BT.601, limited range, 2x2 mean chroma),
encoded at the clip's frame rate with constant rate factor ``crf`` and ``preset``,
one thread and x264's portable C code paths (``no-asm``), decoded back, converted to 8-bit RGB
(bilinear chroma upsampling) and cropped. A benchmark row must be reproducible: with x264's
SIMD paths the same input gave different bitstreams in different processes once other video
had been decoded in them (the macroblock-tree rate control; ``no-mbtree`` or ``no-asm`` each
made it exact); ``no-asm`` keeps every encoder setting and costs ~25 ms per 16x128x128 clip.
The colour conversion is done here, not by swscale, for the same reason. The round trip is
the one every codec attack shares (``attacks.codecs.codec_roundtrip``). After each call
``info()`` holds ``bytes`` (the H.264 bitstream: sum of the packet sizes) and
``container_bytes`` (the whole mp4 file).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attacks import choice, integer
from attacks.codecs import (  # noqa: F401 (the colour helpers are imported from here too)
    KB,
    KG,
    KR,
    PRESETS,
    CodecAttack,
    codec_roundtrip,
    rgb_to_ycbcr,
    rgb_to_yuv420p,
    ycbcr_to_rgb,
    yuv420p_to_rgb,
)
from bench.core.api import AttackParams


def x264_options(crf: int, preset: str) -> dict[str, str]:
    """libx264's AVOptions: ``crf``, ``preset``, one thread and x264's C code paths.

    With x264's SIMD paths the macroblock-tree rate control gave different bitstreams for
    the same input in different processes once other video had been decoded there. The
    encoder settings are unchanged."""
    return {"crf": str(crf), "preset": preset, "threads": "1",
            "x264-params": "threads=1:no-asm=1"}


def h264_roundtrip(frames: torch.Tensor, crf: int, preset: str,
                   fps: float = 8.0) -> tuple[torch.Tensor, dict]:
    """frames (T, 3, H, W) in [0, 1] -> (decoded frames (T, 3, H, W) float32 on the same
    device, ``{"bytes": bitstream size, "container_bytes": mp4 size}``)."""
    return codec_roundtrip(frames, "libx264", x264_options(crf, preset), fps, "mp4")


class H264(CodecAttack):
    """H.264 compression at a constant rate factor (the paper: CRF 24)."""

    name = "h264"
    version = "1"
    family = "paper"
    description = "real H.264 round trip (libx264 via PyAV, yuv420p) at constant rate factor `crf`"
    codec = "libx264"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``crf``: x264 constant rate factor, 0-51 (higher: smaller, worse); ``preset``."""

        crf: int = integer(24, 0, 51, "h264 crf")
        preset: str = choice("medium", PRESETS, "h264 preset")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(crf=c) for c in (18, 28, 32, 36)]

    def strength(self) -> float:
        return float(self.params.crf)

    def options(self) -> dict[str, str]:
        return x264_options(self.params.crf, self.params.preset)
