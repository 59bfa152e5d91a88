"""Real codec attacks (family ``codec``) and the in-memory round trip they and h264 share.

``codec_roundtrip(frames, codec, options, fps, container)``: frames are quantised to 8-bit RGB
(round), padded to even H and W by repeating the last row / column (4:2:0 needs even sizes),
converted to Y'CbCr here (BT.601, limited range, 2x2 mean chroma; not by swscale, whose SIMD
paths are not ours to pin), encoded into a container in ``io.BytesIO`` at the clip's frame
rate with the encoder's AVOptions and one thread, decoded back with FFmpeg's default decoder,
converted to 8-bit RGB (bilinear chroma upsampling) and cropped. After each call an attack's
``info()`` holds ``bytes`` (the bitstream: the sum of the packet sizes) and
``container_bytes`` (the whole file). The training form of every codec is straight-through:
forward the real codec per clip, backward the identity.

- ``h265``: libx265 (x265 4.2 in PyAV 18.1's wheels), mp4, ``crf`` and ``preset`` (medium).
- ``vp9``: libvpx-vp9, webm, constant quality (``b=0`` with ``crf``), the ``good`` deadline
  at ``cpu-used`` 2, no row multithreading.
- ``av1``: SVT-AV1 (libsvtav1 4.1), mp4, ``crf`` or a fixed ``qp``, ``preset`` 8, one level of
  parallelism (``lp=1``); decoded by libdav1d.
- ``mpeg4``: FFmpeg's MPEG-4 Part 2 encoder, mp4, a fixed quantiser ``qscale`` for every frame.

Reproducibility (a benchmark row must come out the same in any process): every codec was
encoded twice in each of several fresh processes that had first decoded footage, and repeated
within a process, on 16x128x128 and small clips; vp9, av1 and mpeg4 gave identical bytes every
time. x265 did not: with its SIMD paths glibc aborted on heap corruption for some small
clips (3 frames of 40x40), and with its C paths (``no-asm``) the same clip still gave
different bitstreams from one repeat to the next within a process (valgrind: x265's motion
search reads uninitialised memory; 16x16 coding tree units removed the reports on 8x64x64
clips but not every variation on frames under ~100 pixels, e.g. 5x18x16 or 2x50x48). Each
h265 clip is therefore encoded in a fresh interpreter (``attacks/avencode.py``) with
``no-asm``, 16x16 coding tree units and no thread pool; a fresh process reads the same memory
every time, so every repeat tried gave identical bytes, and a crash there would cost one error
row, not the run. x265 refuses frames under 16 pixels a side.

Cost per 16x128x128 clip at the defaults (median wall time on 2 busy CPU cores, torch on one
thread): h264 0.14 s, h265 0.56 s (0.2 s encoding, the rest starting the interpreter), vp9
0.10 s, av1 0.08 s, mpeg4 0.03 s.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.nn.functional as F

from attacks import choice, integer, parse_int
from attacks.avencode import encode_in_fresh_process, encode_yuv420p
from attacks.batched import BatchedAttack
from bench.core.api import AttackParams, BenchError
from bench.core.video import pad_to_even, quantise, to_uint8

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
    return quantise(rgb).to(torch.float32)


def codec_roundtrip(frames: torch.Tensor, codec: str, options: dict[str, str],
                    fps: float = 8.0, container: str = "mp4",
                    isolated: bool = False) -> tuple[torch.Tensor, dict]:
    """frames (T, 3, H, W) in [0, 1] -> (decoded frames (T, 3, H, W) float32 on the same
    device, ``{"bytes": bitstream size, "container_bytes": file size}``).

    ``codec``: the FFmpeg encoder (``libx264``), ``options`` its AVOptions, ``container`` the
    muxer (``mp4``, ``webm``); ``isolated``: encode in a fresh interpreter
    (``attacks.avencode``). The file is decoded here with FFmpeg's default decoder.
    """
    import av  # imported here: the codec library is needed only when a codec attack runs

    time, _, height, width = frames.shape
    pixels = pad_to_even(to_uint8(frames.detach().to("cpu", torch.float32)))
    planes = rgb_to_yuv420p(pixels)
    encode = encode_in_fresh_process if isolated else encode_yuv420p
    try:
        data, bitstream_bytes = encode(planes, codec, options, fps, container)
    except (av.FFmpegError, RuntimeError) as exc:
        raise BenchError(f"{codec} could not encode a {time}x{height}x{width} clip: {exc}") \
            from exc

    with av.open(io.BytesIO(data), mode="r") as source:
        decoded = [f.to_ndarray() for f in source.decode(video=0)]
    if len(decoded) != time:
        raise BenchError(f"{codec} round trip decoded {len(decoded)} frames, expected {time}")
    if any(d.shape != planes.shape[1:] for d in decoded):
        raise BenchError(f"{codec} round trip decoded frames of shape {decoded[0].shape}, "
                         f"expected yuv420p {planes.shape[1:]}")
    result = yuv420p_to_rgb(np.stack(decoded))[:, :, :height, :width]
    return result.to(frames.device), {"bytes": bitstream_bytes, "container_bytes": len(data)}


class CodecAttack(BatchedAttack):
    """A real encode / decode round trip (``codec_roundtrip``) of one encoder, clip by clip.

    Subclasses set ``codec``, ``container``, ``min_side`` and ``options()``; ``strength()``
    is the quality parameter (higher: smaller and worse). After each call ``info()`` holds
    ``bytes`` (the bitstream) and ``container_bytes`` (the whole file).
    """

    family = "codec"
    training = "straight-through"
    #: the FFmpeg encoder and the container it is written to
    codec: ClassVar[str]
    container: ClassVar[str] = "mp4"
    #: the smallest frame side (pixels, after padding to even) the encoder accepts
    min_side: ClassVar[int] = 2
    #: encode each clip in a fresh interpreter (an encoder that reads memory it never wrote)
    isolated: ClassVar[bool] = False

    def __init__(self, params: Optional[AttackParams] = None, fps: float = 8.0):
        super().__init__(params)
        if not fps > 0:
            raise BenchError(f"{self.name} fps must be positive, got {fps!r}")
        #: frame rate the clips are encoded at (the profiles' 8 fps)
        self.fps = float(fps)

    def options(self) -> dict[str, str]:
        """The encoder's AVOptions for ``self.params``."""
        raise NotImplementedError

    def roundtrip(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """frames (T, 3, H, W) -> (decoded (T, 3, H, W) float32, sizes): one real round trip."""
        height, width = frames.shape[-2:]
        if min(height + height % 2, width + width % 2) < self.min_side:
            raise BenchError(f"{self.name} ({self.codec}) needs frames of at least "
                             f"{self.min_side}x{self.min_side} pixels, got {height}x{width}")
        return codec_roundtrip(frames, self.codec, self.options(), self.fps, self.container,
                               self.isolated)

    def apply(self, frames, generator):
        """Deterministic: one real round trip per clip, no randomness drawn."""
        decoded, infos = [], []
        for clip in frames:
            out, info = self.roundtrip(clip)
            decoded.append(out)
            infos.append(info)
        return torch.stack(decoded), infos


#: x264 / x265 preset names, fastest first
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow", "placebo")


class H265(CodecAttack):
    """H.265 / HEVC at a constant rate factor (libx265, mp4)."""

    name = "h265"
    version = "1"
    description = "real H.265 round trip (libx265 via PyAV, yuv420p, mp4) at rate factor `crf`"
    codec = "libx265"
    min_side = 16
    isolated = True

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``crf``: x265 constant rate factor, 0-51 (higher: smaller, worse); ``preset``."""

        crf: int = integer(28, 0, 51, "h265 crf")
        preset: str = choice("medium", PRESETS, "h265 preset")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(crf=c) for c in (23, 32, 36, 40)]

    def strength(self) -> float:
        return float(self.params.crf)

    def options(self) -> dict[str, str]:
        return {"crf": str(self.params.crf), "preset": self.params.preset,
                "x265-params": X265_PARAMS}


#: x265's portable C paths, 16x16 coding tree units, no thread pool, one frame thread, errors only
X265_PARAMS = "no-asm=1:ctu=16:pools=none:frame-threads=1:log-level=error"


class VP9(CodecAttack):
    """VP9 in constant-quality mode (libvpx-vp9, ``b=0`` + ``crf``, webm)."""

    name = "vp9"
    version = "1"
    description = "real VP9 round trip (libvpx-vp9 via PyAV, webm), constant quality `crf`"
    codec = "libvpx-vp9"
    container = "webm"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``crf``: libvpx constant quality level, 0-63 (higher: smaller, worse);
        ``cpu_used``: libvpx speed at the ``good`` deadline, 0-5 (higher: faster)."""

        crf: int = integer(32, 0, 63, "vp9 crf")
        cpu_used: int = integer(2, 0, 5, "vp9 cpu_used")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(crf=c) for c in (24, 40, 48, 56)]

    def strength(self) -> float:
        return float(self.params.crf)

    def options(self) -> dict[str, str]:
        return {"crf": str(self.params.crf), "b": "0", "deadline": "good",
                "cpu-used": str(self.params.cpu_used), "row-mt": "0"}


#: SVT-AV1's own default rate factor
DEFAULT_AV1_CRF = 35


class AV1(CodecAttack):
    """AV1 at a constant rate factor or a fixed quantiser (libsvtav1, mp4)."""

    name = "av1"
    version = "1"
    description = "real AV1 round trip (SVT-AV1 via PyAV, mp4) at rate factor `crf` or QP `qp`"
    codec = "libsvtav1"
    min_side = 4

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``crf``: SVT-AV1 constant rate factor, 1-63 (35 unless ``qp`` is given), or
        ``qp``: a fixed quantiser, 1-63 (not both; higher: smaller, worse); ``preset``:
        SVT-AV1 speed, 0-13 (higher: faster)."""

        crf: Optional[int] = None
        qp: Optional[int] = None
        preset: int = 8

        def __post_init__(self):
            crf, qp = self.crf, self.qp
            if crf is not None and qp is not None:
                raise BenchError(f"av1 takes crf or qp, not both, got crf={crf!r}, qp={qp!r}")
            if crf is None and qp is None:
                crf = DEFAULT_AV1_CRF
            object.__setattr__(self, "crf", None if crf is None else
                               parse_int(crf, "av1 crf", 1, 63))
            object.__setattr__(self, "qp", None if qp is None else parse_int(qp, "av1 qp", 1, 63))
            object.__setattr__(self, "preset", parse_int(self.preset, "av1 preset", 0, 13))

        def canonical_args(self) -> str:
            """``crf=35,preset=8`` or ``qp=40,preset=8``: the unused one is left out."""
            mode = f"crf={self.crf}" if self.crf is not None else f"qp={self.qp}"
            return f"{mode},preset={self.preset}"

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(crf=c) for c in (25, 45, 55, 63)]

    def strength(self) -> float:
        p = self.params
        return float(p.crf if p.crf is not None else p.qp)

    def roundtrip(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict]:
        # SVT-AV1 prints its whole configuration to stderr for every clip unless told not to
        # (read when each encoder starts; 1: errors only)
        os.environ.setdefault("SVT_LOG", "1")
        return super().roundtrip(frames)

    def options(self) -> dict[str, str]:
        p = self.params
        mode = {"crf": str(p.crf)} if p.crf is not None else {"qp": str(p.qp)}
        return {**mode, "preset": str(p.preset), "svtav1-params": "lp=1"}


class MPEG4(CodecAttack):
    """MPEG-4 Part 2 at a fixed quantiser (FFmpeg's mpeg4 encoder, mp4)."""

    name = "mpeg4"
    version = "1"
    description = "real MPEG-4 Part 2 round trip (FFmpeg mpeg4 via PyAV, mp4) at `qscale`"
    codec = "mpeg4"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``qscale``: the quantiser of every frame, 1-31 (higher: smaller, worse)."""

        qscale: int = integer(5, 1, 31, "mpeg4 qscale")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(qscale=q) for q in (2, 3, 8, 12, 20, 31)]

    def strength(self) -> float:
        return float(self.params.qscale)

    def options(self) -> dict[str, str]:
        # fixed quantiser: the qscale flag with the quantiser clamped to [q, q] (ffmpeg's
        # ``-q:v`` sets each frame's quality field instead, which PyAV does not expose)
        q = str(self.params.qscale)
        return {"flags": "+qscale", "qmin": q, "qmax": q}
