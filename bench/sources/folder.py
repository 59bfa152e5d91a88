"""Cover clips from a folder of video files (e.g. the outputs of a real video generator).

The folder holds ``manifest.csv`` with columns ``id,prompt`` and optionally ``file`` (a path
relative to the folder; default ``{id}.mp4``). A file that would lie outside the folder (an
absolute path, or a ``..`` component in ``file`` or in the ``id`` it defaults from) makes the
manifest an error: nothing outside the folder is read. Each row becomes a ``Clip``: the first
``profile.frames`` frames, scaled to cover the profile's frame (aspect kept, antialiased)
and centre-cropped to ``profile.height x profile.width``. A missing, corrupt or truncated
file, or one shorter than ``profile.frames``, becomes a ``ClipError`` so the run goes on.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator, Optional

import numpy as np
import torch

from bench.core.api import BenchError, Clip, ClipError, Profile, Source
from bench.core.video import from_uint8
from bench.core.video_io import VideoReader

__all__ = ["FolderSource", "MANIFEST_NAME", "read_clip_frames"]

MANIFEST_NAME = "manifest.csv"


def _cover_size(height: int, width: int, out_h: int, out_w: int) -> tuple[int, int]:
    """Smallest size with the video's aspect that covers out_h x out_w."""
    scale = max(out_h / height, out_w / width)
    return max(out_h, round(height * scale)), max(out_w, round(width * scale))


def inside(root: Path, name: str, where: str) -> Path:
    """``root / name`` for a relative ``name`` that stays inside ``root``; BenchError if
    ``name`` is absolute (POSIX or Windows style), has a drive or a ``..`` component."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or windows.root:
        raise BenchError(f"{where}: file {name!r} is an absolute path; files must lie inside "
                         f"the folder {root} (give a path relative to it)")
    if ".." in posix.parts or ".." in windows.parts:
        raise BenchError(f"{where}: file {name!r} leaves the folder {root} ('..'); files "
                         "must lie inside it")
    return root / name


def read_clip_frames(path: str | Path, profile: Profile) -> tuple[torch.Tensor, Optional[float]]:
    """The first ``profile.frames`` frames of a video fitted to the profile's frame size.

    Returns (frames float32 (profile.frames, 3, profile.height, profile.width) in [0, 1],
    fps or None). Raises ``BenchError`` for an unreadable or too short video.
    """
    out_h, out_w = profile.height, profile.width
    with VideoReader(path) as reader:
        size = _cover_size(reader.height, reader.width, out_h, out_w)
        top, left = (size[0] - out_h) // 2, (size[1] - out_w) // 2
        kept = [array[top:top + out_h, left:left + out_w]
                for array in reader.frames(profile.frames, size=size)]
        fps = reader.fps
    if len(kept) < profile.frames:
        raise BenchError(f"video {path} has {len(kept)} frames; the profile "
                         f"{profile.name!r} needs {profile.frames}")
    video = torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2)
    return from_uint8(video).contiguous(), fps


class FolderSource(Source):
    """Clips listed in ``manifest.csv`` of a folder of video files.

    ``seed`` is accepted for symmetry with other sources (the clips are what the files
    hold); ``limit`` keeps the first ``limit`` manifest rows.
    """

    name = "folder"
    version = "1"
    description = "video files listed in manifest.csv (id,prompt[,file]), fitted to the profile"

    def __init__(self, profile: Profile, path: str | Path, seed: int = 0,
                 limit: Optional[int] = None):
        self.profile = profile
        self.root = Path(path)
        self.seed = int(seed)
        if limit is not None and limit < 0:
            raise BenchError(f"limit must be >= 0, got {limit}")
        rows = self._read_manifest()
        self.rows: list[tuple[str, str, Path]] = rows if limit is None else rows[:limit]

    def _read_manifest(self) -> list[tuple[str, str, Path]]:
        if not self.root.is_dir():
            raise BenchError(f"folder source: {self.root} is not a directory")
        manifest = self.root / MANIFEST_NAME
        if not manifest.is_file():
            raise BenchError(f"folder source: no {MANIFEST_NAME} in {self.root} "
                             "(expected columns id,prompt and optionally file)")
        try:
            with manifest.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                columns = [c.strip() for c in (reader.fieldnames or [])]
                missing = [c for c in ("id", "prompt") if c not in columns]
                if missing:
                    raise BenchError(f"{manifest}: missing column(s) {', '.join(missing)} "
                                     f"(found: {', '.join(columns) or 'none'})")
                records = [{(k or "").strip(): (v or "") for k, v in record.items()}
                           for record in reader]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise BenchError(f"{manifest}: unreadable CSV ({exc})") from exc
        rows: list[tuple[str, str, Path]] = []
        seen: set[str] = set()
        for line, record in enumerate(records, start=2):
            clip_id = record["id"].strip()
            if not clip_id:
                raise BenchError(f"{manifest}:{line}: empty id")
            if clip_id in seen:
                raise BenchError(f"{manifest}:{line}: duplicate id {clip_id!r}")
            seen.add(clip_id)
            filename = record.get("file", "").strip() or f"{clip_id}.mp4"
            path = inside(self.root, filename, f"{manifest}:{line}")
            rows.append((clip_id, record["prompt"].strip(), path))
        return rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Clip | ClipError]:
        for clip_id, prompt, file in self.rows:
            yield self._load(clip_id, prompt, file)

    def _load(self, clip_id: str, prompt: str, file: Path) -> Clip | ClipError:
        try:
            frames, fps = read_clip_frames(file, self.profile)
        except (BenchError, OSError) as exc:
            return ClipError(id=clip_id, prompt=prompt, error=str(exc),
                             meta={"file": str(file)})
        return Clip(id=clip_id, prompt=prompt, frames=frames,
                    fps=float(fps) if fps else float(self.profile.fps))
