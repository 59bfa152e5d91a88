"""A real H.264 round trip: PyAV's libx264, in memory (mp4 in ``io.BytesIO``), yuv420p.

Frames are quantised to 8-bit RGB (round), padded to even H and W by repeating the last row /
column (4:2:0 needs even sizes), converted to Y'CbCr (BT.601, limited range, 2x2 mean chroma),
encoded at the clip's frame rate with constant rate factor ``crf`` and ``preset``,
one thread and x264's portable C code paths (``no-asm``), decoded back, converted to 8-bit RGB
(bilinear chroma upsampling) and cropped. A benchmark row must be reproducible: with x264's
SIMD paths the same input gave different bitstreams in different processes once other video
had been decoded in them (the macroblock-tree rate control; ``no-mbtree`` or ``no-asm`` each
made it exact); ``no-asm`` keeps every encoder setting and costs ~25 ms per 16x128x128 clip.
The colour conversion is done here, not by swscale, for the same reason. After each call
``last_info`` holds ``bytes`` (the H.264 bitstream: sum of the packet sizes) and
``container_bytes`` (the whole mp4 file).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from attacks import check_params, check_video, straight_through
from bench.api import Attack, AttackParams, BenchError

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow", "placebo")

#: BT.601 luma weights of R, G, B
KR, KG, KB = 0.299, 0.587, 0.114


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> Y'CbCr (..., 3, H, W) as 8-bit code values (floats):
    BT.601 limited range, Y' in [16, 235], Cb and Cr in [16, 240]."""
    r, g, b = rgb.unbind(-3)
    luma = KR * r + KG * g + KB * b
    cb = (b - luma) / (2 * (1 - KB))
    cr = (r - luma) / (2 * (1 - KR))
    return torch.stack([16 + 219 * luma, 128 + 224 * cb, 128 + 224 * cr], dim=-3)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """The inverse of ``rgb_to_ycbcr`` (no clamping): code values -> RGB in about [0, 1]."""
    y, cb, cr = ycc.unbind(-3)
    luma, pb, pr = (y - 16) / 219, (cb - 128) / 224, (cr - 128) / 224
    r = luma + 2 * (1 - KR) * pr
    b = luma + 2 * (1 - KB) * pb
    g = (luma - KR * r - KB * b) / KG
    return torch.stack([r, g, b], dim=-3)


def rgb_to_yuv420p(pixels: torch.Tensor) -> np.ndarray:
    """uint8 RGB (T, 3, H, W), H and W even -> uint8 (T, 3H/2, W): PyAV's yuv420p layout (the
    Y plane, then the U and V planes at half resolution, each flattened)."""
    ycc = rgb_to_ycbcr(pixels.to(torch.float64) / 255.0)
    luma = ycc[:, 0].round().clamp(0, 255).to(torch.uint8)
    chroma = F.avg_pool2d(ycc[:, 1:], 2).round().clamp(0, 255).to(torch.uint8)
    time, height, width = luma.shape
    planes = torch.cat([luma.reshape(time, -1), chroma.reshape(time, -1)], dim=1)
    return planes.reshape(time, height * 3 // 2, width).numpy()


def yuv420p_to_rgb(planes: np.ndarray) -> torch.Tensor:
    """uint8 (T, 3H/2, W) yuv420p -> RGB float32 (T, 3, H, W) on 8-bit levels in [0, 1]."""
    time, rows, width = planes.shape
    height = rows * 2 // 3
    flat = torch.from_numpy(planes).reshape(time, -1).to(torch.float64)
    luma = flat[:, :height * width].reshape(time, 1, height, width)
    chroma = flat[:, height * width:].reshape(time, 2, height // 2, width // 2)
    chroma = F.interpolate(chroma, size=(height, width), mode="bilinear", align_corners=False)
    rgb = ycbcr_to_rgb(torch.cat([luma, chroma], dim=1))
    return ((rgb.clamp(0, 1) * 255).round() / 255).to(torch.float32)


def h264_roundtrip(frames: torch.Tensor, crf: int, preset: str,
                   fps: float = 8.0) -> tuple[torch.Tensor, dict]:
    """frames (T, 3, H, W) in [0, 1] -> (decoded frames (T, 3, H, W) float32 on the same
    device, ``{"bytes": bitstream size, "container_bytes": mp4 size}``)."""
    import av  # imported here: the codec library is needed only when this attack runs

    time, _, height, width = frames.shape
    pixels = (frames.detach().to("cpu", torch.float32).clamp(0.0, 1.0) * 255.0).round()
    pixels = F.pad(pixels, (0, width % 2, 0, height % 2), mode="replicate")
    planes = rgb_to_yuv420p(pixels.to(torch.uint8))

    buffer = io.BytesIO()
    bitstream_bytes = 0
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = pixels.shape[-1], pixels.shape[-2]
        stream.pix_fmt = "yuv420p"
        # One thread, and x264's C code paths: with its SIMD paths the macroblock-tree rate
        # control gave different bitstreams for the same input in different processes once
        # other video had been decoded there. The encoder settings are unchanged.
        stream.options = {"crf": str(crf), "preset": preset, "threads": "1",
                          "x264-params": "threads=1:no-asm=1"}
        stream.codec_context.thread_count = 1
        for index, plane in enumerate(planes):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(plane), format="yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                bitstream_bytes += packet.size
                container.mux(packet)
        for packet in stream.encode():
            bitstream_bytes += packet.size
            container.mux(packet)
    data = buffer.getvalue()

    with av.open(io.BytesIO(data), mode="r") as container:
        decoded = [f.to_ndarray() for f in container.decode(video=0)]
    if len(decoded) != time:
        raise BenchError(f"h264 round trip decoded {len(decoded)} frames, expected {time}")
    if any(d.shape != planes.shape[1:] for d in decoded):
        raise BenchError(f"h264 round trip decoded frames of shape {decoded[0].shape}, "
                         f"expected yuv420p {planes.shape[1:]}")
    out = yuv420p_to_rgb(np.stack(decoded))[:, :, :height, :width]
    return out.to(frames.device), {"bytes": bitstream_bytes, "container_bytes": len(data)}


class H264(Attack):
    """H.264 compression at a constant rate factor (the paper: CRF 24)."""

    name = "h264"
    version = "1"
    family = "paper"
    description = "real H.264 round trip (libx264 via PyAV, yuv420p) at constant rate factor `crf`"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``crf``: x264 constant rate factor, 0-51 (higher: smaller, worse); ``preset``."""

        crf: int = 24
        preset: str = "medium"

        def __post_init__(self):
            crf = self.crf
            if isinstance(crf, float) and crf.is_integer():
                crf = int(crf)
            if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
                raise BenchError(f"h264 crf must be an integer in [0, 51], got {self.crf!r}")
            object.__setattr__(self, "crf", crf)
            if self.preset not in PRESETS:
                raise BenchError(f"h264 preset must be one of {', '.join(PRESETS)}, "
                                 f"got {self.preset!r}")

    def __init__(self, params: Optional[AttackParams] = None, fps: float = 8.0):
        super().__init__(params)
        check_params(self, self.params)
        if not fps > 0:
            raise BenchError(f"h264 fps must be positive, got {fps!r}")
        #: frame rate the clips are encoded at (the profiles' 8 fps)
        self.fps = float(fps)
        self.last_info: dict = {}

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(crf=c) for c in (18, 28, 32, 36)]

    def strength(self) -> float:
        return float(self.params.crf)

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """frames (T, 3, H, W) in [0, 1] -> decoded frames (T, 3, H, W) float32 in [0, 1]."""
        check_video(frames)
        out, self.last_info = h264_roundtrip(frames, self.params.crf, self.params.preset,
                                             self.fps)
        return out

    def train_form(self):
        """``(frames (B, T, 3, H, W), generator) -> frames``: straight-through estimator,
        forward the real codec per clip, backward the identity."""
        return self._apply_batch

    def _apply_batch(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_video(frames, batched=True)
        decoded, sizes = [], []
        for clip in frames:
            out, info = h264_roundtrip(clip, self.params.crf, self.params.preset, self.fps)
            decoded.append(out)
            sizes.append(info["bytes"])
        self.last_info = {"bytes": sum(sizes), "bytes_per_clip": sizes}
        return straight_through(frames, torch.stack(decoded).to(frames.dtype))
