"""Read and write video files with PyAV (no ffmpeg subprocess).

``read_video`` returns frames ``float32 (T, 3, H, W)`` in [0, 1] and the frame rate; a
missing, corrupt or truncated file, or one without a video stream, raises ``BenchError``.
``write_video`` encodes an mp4 with libx264 (yuv420p; odd sizes are padded to even by
repeating the last row / column) and writes it atomically.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np
import torch

from bench.core.api import BenchError
from bench.core.results import atomic_write_bytes
from bench.core.video import from_uint8, pad_to_even, to_uint8

__all__ = ["VideoReader", "read_video", "write_video"]


class VideoReader:
    """Streams the frames of one video file as ``uint8 (H, W, 3)`` RGB arrays.

    Opening checks that the file exists and has a video stream. Iterating decodes frame by
    frame and raises ``BenchError`` on corrupt data; when iterated to the end it also checks
    that every packet the container declares was present (a truncated file fails).
    ``fps`` is the stream's average frame rate (``None`` if the container does not say).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise BenchError(f"video file not found: {self.path}")
        if not self.path.is_file():
            raise BenchError(f"not a video file (a directory?): {self.path}")
        try:
            self._container = av.open(str(self.path), mode="r")
        except av.FFmpegError as exc:
            raise BenchError(f"cannot open video {self.path}: corrupt, truncated or not a "
                             f"video ({exc})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise BenchError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps: Optional[float] = float(rate) if rate else None
        #: number of frames the container declares (0 when it does not say)
        self.declared_frames: int = int(self._stream.frames or 0)
        self.height: int = int(self._stream.codec_context.height)
        self.width: int = int(self._stream.codec_context.width)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def frames(self, max_frames: Optional[int] = None,
               size: Optional[tuple[int, int]] = None) -> Iterator[np.ndarray]:
        """Yield up to ``max_frames`` decoded frames, ``uint8 (H, W, 3)`` RGB.

        ``size`` = (height, width) rescales each frame as it is decoded (libswscale's
        area filter: antialiased when shrinking), which keeps memory small for big videos.
        """
        scale = {} if size is None else {"height": int(size[0]), "width": int(size[1]),
                                         "interpolation": "AREA"}
        produced = 0
        packets = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 and packet.pts is None:
                    # the demuxer's final flush packet: drain the decoder
                    for frame in packet.decode():
                        if max_frames is not None and produced >= max_frames:
                            return
                        produced += 1
                        yield frame.to_ndarray(format="rgb24", **scale)
                    continue
                if packet.is_corrupt:
                    raise BenchError(f"video {self.path} is truncated or corrupt "
                                     f"(damaged packet after {packets} packets)")
                packets += 1
                if max_frames is not None and produced >= max_frames:
                    continue  # keep demuxing (cheap) to detect a truncated file
                for frame in packet.decode():
                    if max_frames is not None and produced >= max_frames:
                        break
                    produced += 1
                    yield frame.to_ndarray(format="rgb24", **scale)
        except av.FFmpegError as exc:
            raise BenchError(f"video {self.path} is corrupt or truncated "
                             f"(decoding failed after {produced} frames: {exc})") from exc
        if self.declared_frames and packets < self.declared_frames:
            raise BenchError(f"video {self.path} is truncated: {packets} of "
                             f"{self.declared_frames} frames present")
        if produced == 0:
            raise BenchError(f"video {self.path} contains no decodable frames")


def read_video(path: str | Path, max_frames: Optional[int] = None
               ) -> tuple[torch.Tensor, float]:
    """Decode a video file -> (frames float32 (T, 3, H, W) in [0, 1], fps).

    ``max_frames`` stops decoding after that many frames (the rest of the file is still
    checked for truncation). ``fps`` is 0.0 when the container does not record a rate.
    """
    with VideoReader(path) as reader:
        arrays = list(reader.frames(max_frames))
        fps = reader.fps or 0.0
    video = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return from_uint8(video), fps


def _to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """float (T, 3, H, W) in [0, 1] -> uint8 (T, H', W', 3) with H', W' padded to even."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if hasattr(frames, "shape") else type(frames).__name__
        raise BenchError(f"write_video expects frames (T, 3, H, W), got {shape}")
    if frames.shape[0] == 0:
        raise BenchError("write_video: no frames to write")
    video = pad_to_even(to_uint8(frames.detach().to("cpu", torch.float32)))
    return video.permute(0, 2, 3, 1).contiguous().numpy()


def write_video(path: str | Path, frames: torch.Tensor, fps: float, crf: int = 0,
                preset: str = "medium") -> Path:
    """Encode frames float32 (T, 3, H, W) in [0, 1] as an H.264 mp4 (libx264, yuv420p).

    ``crf`` 0 is lossless in YUV (only the 4:2:0 chroma subsampling loses detail); 23 is
    libx264's default. Odd heights / widths are padded to even by repeating the last row /
    column, so the file is then one pixel larger. The file appears atomically (a temporary
    file in the same folder is renamed over ``path``). Returns ``path``.
    """
    path = Path(path)
    if not fps or fps <= 0:
        raise BenchError(f"write_video: fps must be positive, got {fps}")
    if not 0 <= int(crf) <= 51:
        raise BenchError(f"write_video: crf must be in 0..51, got {crf}")
    arrays = _to_uint8_frames(frames)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = arrays.shape[2], arrays.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset}
        for array in arrays:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    atomic_write_bytes(path, buffer.getvalue())
    return path
