"""Encoding yuv420p planes with one FFmpeg encoder through PyAV, in this process or in a fresh
interpreter (this file run as a script; it imports only numpy and av).

A fresh interpreter gives an encoder that reads memory it never wrote (libx265 as PyAV's
wheels ship it, see attacks/codecs.py) the same memory for the same input every time, and a
crash there costs one error row instead of the run.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from fractions import Fraction

import numpy as np

#: the most seconds one encode in a fresh interpreter may take
ISOLATED_TIMEOUT_S = 300.0


def encode_yuv420p(planes: np.ndarray, codec: str, options: dict[str, str], fps: float,
                   container: str) -> tuple[bytes, int]:
    """uint8 yuv420p planes (T, 3H/2, W) -> (the encoded file, its bitstream size in bytes:
    the sum of the packet sizes). ``options``: the encoder's AVOptions as strings, the generic
    ones included (``b``, ``flags``, ``qmin``); one thread; frame ``t`` at ``t / fps``.
    FFmpeg's errors propagate (``av.FFmpegError``)."""
    import av

    rows, width = planes.shape[1:]
    buffer = io.BytesIO()
    bitstream_bytes = 0
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width, rows * 2 // 3
        stream.pix_fmt = "yuv420p"
        stream.options = dict(options)
        stream.codec_context.thread_count = 1
        for index, plane in enumerate(planes):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(plane), format="yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                bitstream_bytes += packet.size
                out.mux(packet)
        for packet in stream.encode():
            bitstream_bytes += packet.size
            out.mux(packet)
    return buffer.getvalue(), bitstream_bytes


def encode_in_fresh_process(planes: np.ndarray, codec: str, options: dict[str, str],
                            fps: float, container: str) -> tuple[bytes, int]:
    """``encode_yuv420p`` in a new interpreter running this file; a failure there (an FFmpeg
    error, a crash, a timeout) raises ``RuntimeError`` with its message."""
    header = json.dumps({"shape": list(planes.shape), "codec": codec, "options": options,
                         "fps": fps, "container": container}).encode()
    request = struct.pack("<Q", len(header)) + header + np.ascontiguousarray(planes).tobytes()
    try:
        done = subprocess.run([sys.executable, "-I", __file__], input=request,
                              capture_output=True, timeout=ISOLATED_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"took over {ISOLATED_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"the encoder process exited with {done.returncode}"
                           + (f": {lines[-1]}" if lines else ""))
    (bitstream_bytes,) = struct.unpack("<Q", done.stdout[:8])
    return done.stdout[8:], bitstream_bytes


def _serve() -> None:
    """Read one request from stdin, write ``bitstream size (8 bytes) + file`` to stdout."""
    data = sys.stdin.buffer.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    planes = np.frombuffer(data[8 + size:], dtype=np.uint8).reshape(header["shape"])
    encoded, bitstream_bytes = encode_yuv420p(planes, header["codec"], header["options"],
                                              header["fps"], header["container"])
    sys.stdout.buffer.write(struct.pack("<Q", bitstream_bytes) + encoded)


if __name__ == "__main__":
    _serve()
