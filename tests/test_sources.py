"""bench.sources: prompt lists, the offline clip generator, the folder source and logos."""

from __future__ import annotations

import hashlib
import re
import time

import numpy as np
import pytest
import torch
from skimage.transform import resize as sk_resize

from bench.core.api import BenchError, Clip, ClipError, Logo, Profile
from bench.core.video_io import write_video
from bench.sources import generator as gen
from bench.sources import load_prompts
from bench.sources import logos as logo_module
from bench.sources.folder import FolderSource
from bench.sources.generator import GeneratedSource
from bench.sources.logos import evaluation_logos, render_logo, training_logo

# small profile for speed; a non-square frame catches height / width mix-ups
SMALL = Profile(name="test", frames=4, height=32, width=48, logo_size=32, fps=8.0)

CAMERA_PHRASES = ("pan left", "pan right", "zoom in", "zoom out", "tilt up", "tilt down",
                  "dolly in", "dolly out", "static camera", "tracking shot", "aerial view")


def digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()) ** 2).mean())


# ----------------------------------------------------------------------------- prompts


def test_evaluation_prompts_have_100_stable_unique_ids():
    prompts = load_prompts("eval")
    assert [pid for pid, _ in prompts] == [f"p{i:03d}" for i in range(100)]
    texts = [p for _, p in prompts]
    assert len(set(t.lower() for t in texts)) == 100
    assert all(len(t.split()) >= 5 for t in texts)


def test_evaluation_prompts_name_a_camera_move():
    for pid, prompt in load_prompts("eval"):
        text = prompt.lower()
        assert any(phrase in text for phrase in CAMERA_PHRASES), (pid, prompt)


def test_training_prompts_are_disjoint_from_evaluation():
    train = load_prompts("train")
    assert [pid for pid, _ in train] == [f"t{i:03d}" for i in range(200)]
    train_texts = {p.lower() for _, p in train}
    assert len(train_texts) == 200
    assert not train_texts & {p.lower() for _, p in load_prompts("eval")}


def test_unknown_split():
    with pytest.raises(BenchError, match="split"):
        load_prompts("test")


# --------------------------------------------------------------------------- generator


def test_generated_clips_shape_range_and_ids():
    source = GeneratedSource(SMALL, limit=3)
    clips = list(source)
    assert len(source) == 3 and len(clips) == 3
    assert [(c.id, c.prompt) for c in clips] == load_prompts("eval")[:3]
    for clip in clips:
        assert isinstance(clip, Clip)
        assert clip.frames.dtype == torch.float32
        assert tuple(clip.frames.shape) == (4, 3, 32, 48)
        assert 0.0 <= float(clip.frames.min()) and float(clip.frames.max()) <= 1.0
        assert float(clip.frames.std()) > 0.02  # not a flat frame
        assert clip.fps == 8.0


def test_generated_clips_are_deterministic_bytes():
    first = [digest(c.frames) for c in GeneratedSource(SMALL, seed=3, limit=4)]
    second = [digest(c.frames) for c in GeneratedSource(SMALL, seed=3, limit=4)]
    assert first == second
    assert len(set(first)) == 4  # different prompts -> different clips
    other_seed = [digest(c.frames) for c in GeneratedSource(SMALL, seed=4, limit=4)]
    assert not set(first) & set(other_seed)


def test_generated_source_limits_and_training_split():
    capped = Profile(name="capped", frames=4, height=32, width=48, logo_size=32, prompts=7)
    assert len(GeneratedSource(capped)) == 7
    assert len(GeneratedSource(SMALL)) == 100
    train = GeneratedSource(SMALL, split="train", limit=2)
    assert len(GeneratedSource(SMALL, split="train")) == 200
    assert [c.id for c in train] == ["t000", "t001"]
    with pytest.raises(BenchError):
        GeneratedSource(SMALL, limit=-1)


def test_camera_moves_follow_prompt_words():
    rng = np.random.default_rng(0)
    assert gen._choose_motion("A dog, slow pan left", rng) == "pan_left"
    assert gen._choose_motion("Rain on a roof, tilt up", rng) == "tilt_up"
    assert gen._choose_motion("A cup, zoom in", rng) == "zoom_in"
    assert gen._choose_motion("A lake, static camera", rng) == "static"

    def path(motion):
        return gen._camera_path(motion, False, 300, 500, 32, 48, 16, 0.7,
                                np.random.default_rng(1))

    assert np.all(np.diff(path("pan_left").cx) < 0)
    assert np.all(np.diff(path("pan_right").cx) > 0)
    assert np.all(np.diff(path("tilt_up").cy) < 0)  # image rows grow downwards
    assert np.all(np.diff(path("zoom_in").height) < 0)
    assert np.all(np.diff(path("zoom_out").height) > 0)
    static = path("static")
    assert np.ptp(static.cx) == 0 and np.ptp(static.cy) == 0 and np.ptp(static.height) == 0
    for motion in ("pan_left", "tilt_down", "zoom_in", "tracking", "handheld", "aerial"):
        windows = path(motion)
        assert np.all(windows.cx - windows.width / 2 >= -1e-9)
        assert np.all(windows.cx + windows.width / 2 <= 500 + 1e-9)
        assert np.all(windows.cy - windows.height / 2 >= -1e-9)
        assert np.all(windows.cy + windows.height / 2 <= 300 + 1e-9)


def test_render_path_is_an_exact_crop_at_unit_scale():
    rng = np.random.default_rng(2)
    source = torch.from_numpy(rng.integers(0, 256, (1, 3, 40, 60), dtype=np.uint8))
    # window 16 x 24 whose corners fall on pixel edges: bicubic sampling hits pixel centres
    centres_x, centres_y = np.array([20.0, 21.0]), np.array([13.0, 15.0])
    windows = gen._Path(centres_x, centres_y, np.array([16.0, 16.0]), aspect=1.5)
    out = gen._render_path(source, windows, 16, 24)
    for t, (cx, cy) in enumerate(zip(centres_x, centres_y, strict=True)):
        y0, x0 = int(cy - 8), int(cx - 12)
        expected = source[0, :, y0:y0 + 16, x0:x0 + 24].double() / 255
        assert torch.allclose(out[t].double(), expected, atol=1e-5)


def test_pan_clip_moves():
    frames = gen.render_clip("x", "A red motorcycle in a garage, pan right", SMALL, seed=0)
    assert float((frames[0] - frames[-1]).abs().mean()) > 0.01


def test_find_shots_splits_at_hard_cuts():
    frames = torch.zeros(10, 3, 16, 16, dtype=torch.uint8)
    frames[:, :, :, :8] = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)  # slow drift
    frames[6:] += 150  # a cut between frame 5 and 6
    assert gen._find_shots(frames) == ((0, 6), (6, 10))


def test_footage_cache_stays_small():
    list(GeneratedSource(SMALL, limit=6))
    for entry in gen.FOOTAGE:
        footage = gen._footage(entry, gen._cache_short_side(SMALL, gen.MAX_SHORT_SIDE))
        assert footage.frames.dtype == torch.uint8
        assert footage.frames.shape[0] <= gen.MAX_CACHED_FRAMES
        assert min(footage.frames.shape[-2:]) <= gen.MAX_SHORT_SIDE
    assert gen._footage.cache_info().currsize <= 3


@pytest.mark.slow
def test_default_profile_clip_is_fast():
    profile = Profile(name="default", frames=16, height=128, width=128, logo_size=64)
    source = GeneratedSource(profile, limit=5)
    source[0]  # fills the footage cache
    start = time.perf_counter()
    for index in range(1, 5):
        source[index]
    assert (time.perf_counter() - start) / 4 < 1.0


# ------------------------------------------------------------------------------ folder


def smooth_video(frames: int, height: int, width: int) -> torch.Tensor:
    t = torch.arange(frames, dtype=torch.float64).view(-1, 1, 1)
    y = torch.linspace(0, 1, height, dtype=torch.float64).view(1, -1, 1)
    x = torch.linspace(0, 1, width, dtype=torch.float64).view(1, 1, -1)
    red = 0.5 + 0.4 * torch.sin(3 * x + 0.2 * t + 0 * y)
    green = 0.5 + 0.4 * torch.cos(2 * y - 0.1 * t + 0 * x)
    blue = 0.5 + 0.3 * torch.sin(2 * (x + y)) + 0 * t
    return torch.stack(torch.broadcast_tensors(red, green, blue), dim=1).float()


FOLDER_PROFILE = Profile(name="folder", frames=6, height=32, width=32, logo_size=16)


def write_manifest(folder, rows, header="id,prompt,file"):
    lines = [header] + [",".join(row) for row in rows]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")


def test_folder_source_reads_and_fits_a_good_video(tmp_path):
    video = smooth_video(8, 40, 60)
    write_video(tmp_path / "good.mp4", video, fps=12)
    write_manifest(tmp_path, [("good", "a smooth pattern", "")])
    clips = list(FolderSource(FOLDER_PROFILE, tmp_path))
    assert len(clips) == 1 and isinstance(clips[0], Clip)
    clip = clips[0]
    assert (clip.id, clip.prompt, clip.fps) == ("good", "a smooth pattern", 12.0)
    assert tuple(clip.frames.shape) == (6, 3, 32, 32)
    # reference: skimage's antialiased resize to cover 32 x 32 (40x60 -> 32x48), centre crop
    for t in range(6):
        frame = video[t].permute(1, 2, 0).double().numpy()
        expected = sk_resize(frame, (32, 48), anti_aliasing=True)[:, 8:40]
        got = clip.frames[t].permute(1, 2, 0).double().numpy()
        assert 10 * np.log10(1 / np.mean((got - expected) ** 2)) > 30.0


def test_folder_source_bad_files_become_clip_errors(tmp_path):
    write_video(tmp_path / "good.mp4", smooth_video(8, 32, 32), fps=8)
    write_video(tmp_path / "short.mp4", smooth_video(3, 32, 32), fps=8)
    write_video(tmp_path / "odd.mp4", smooth_video(7, 37, 53), fps=8)
    whole = write_video(tmp_path / "whole.mp4", smooth_video(12, 32, 32), fps=8).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "notes.mp4").write_text("just some text, renamed\n" * 10)
    write_manifest(tmp_path, [("a", "truncated", "cut.mp4"), ("b", "text file", "notes.mp4"),
                              ("c", "too short", "short.mp4"), ("d", "missing", "nope.mp4"),
                              ("odd", "odd size", ""), ("good", "fine", "")])
    items = list(FolderSource(FOLDER_PROFILE, tmp_path))
    assert [type(item) for item in items] == [ClipError] * 4 + [Clip] * 2
    errors = {item.id: item.error for item in items[:4]}
    assert re.search("corrupt|truncated", errors["a"])
    assert re.search("corrupt|not a video", errors["b"])
    assert "3 frames" in errors["c"] and "6" in errors["c"]
    assert "not found" in errors["d"]
    assert items[0].prompt == "truncated"
    assert tuple(items[4].frames.shape) == (6, 3, 32, 32)  # odd 37 x 53 is resized
    assert tuple(items[5].frames.shape) == (6, 3, 32, 32)


def test_folder_source_manifest_without_file_column_and_limit(tmp_path):
    for name in ("x", "y"):
        write_video(tmp_path / f"{name}.mp4", smooth_video(6, 32, 32), fps=8)
    write_manifest(tmp_path, [("x", "first"), ("y", "second")], header="id,prompt")
    assert [c.id for c in FolderSource(FOLDER_PROFILE, tmp_path)] == ["x", "y"]
    source = FolderSource(FOLDER_PROFILE, tmp_path, limit=1)
    assert len(source) == 1 and [c.id for c in source] == ["x"]


def test_folder_source_manifest_problems(tmp_path):
    with pytest.raises(BenchError, match="manifest.csv"):
        FolderSource(FOLDER_PROFILE, tmp_path)
    with pytest.raises(BenchError, match="not a directory"):
        FolderSource(FOLDER_PROFILE, tmp_path / "absent")
    write_manifest(tmp_path, [("x", "x.mp4")], header="id,file")
    with pytest.raises(BenchError, match="prompt"):
        FolderSource(FOLDER_PROFILE, tmp_path)
    write_manifest(tmp_path, [("x", "one"), ("x", "two")], header="id,prompt")
    with pytest.raises(BenchError, match="duplicate"):
        FolderSource(FOLDER_PROFILE, tmp_path)


# ------------------------------------------------------------------------------- logos


def test_logo_shape_range_and_determinism():
    first = render_logo("logo-e007", 48)
    logo_module._cached_array.cache_clear()
    second = render_logo("logo-e007", 48)
    assert isinstance(first, Logo) and first.id == "logo-e007"
    assert first.image.dtype == torch.float32 and tuple(first.image.shape) == (3, 48, 48)
    assert 0.0 <= float(first.image.min()) and float(first.image.max()) <= 1.0
    assert digest(first.image) == digest(second.image)
    with pytest.raises(BenchError):
        render_logo("logo-e007", 0)


def test_evaluation_logos_are_100_distinct_designs():
    logos = evaluation_logos(32)
    assert [logo.id for logo in logos] == [f"logo-e{i:03d}" for i in range(100)]
    images = torch.stack([logo.image for logo in logos]).double().flatten(1)
    distances = torch.cdist(images, images) ** 2 / images.shape[1]  # pairwise MSE
    distances.fill_diagonal_(float("inf"))
    assert float(distances.min()) > 0.005
    # a logo has several colours, not a flat square
    assert all(float(logo.image.std()) > 0.05 for logo in logos)
    assert evaluation_logos(32)[0] is logos[0]  # cached per size


def test_training_logos_are_a_disjoint_family():
    eval_logos = evaluation_logos(32)
    training = [training_logo(i, 32) for i in range(40)]
    assert [t.id for t in training] == [f"logo-t{i:05d}" for i in range(40)]
    assert not {t.id for t in training} & {e.id for e in eval_logos}
    train_images = torch.stack([t.image for t in training]).double().flatten(1)
    eval_images = torch.stack([e.image for e in eval_logos]).double().flatten(1)
    cross = torch.cdist(train_images, eval_images) ** 2 / train_images.shape[1]
    assert float(cross.min()) > 0.005


def test_logo_design_does_not_depend_on_size():
    small = render_logo("logo-e042", 32).image
    large = render_logo("logo-e042", 128).image
    shrunk = torch.nn.functional.avg_pool2d(large[None], 4)[0]
    assert mse(small, shrunk) < 0.005
    assert mse(small, render_logo("logo-e043", 32).image) > 0.005
