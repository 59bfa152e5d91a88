"""Hostile and careless use: nothing read outside its place, nothing incomplete passed as
complete, no traceback for bad input, outputs readable as the umask says, git left alone."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pandas as pd
import pytest
import torch

from bench.__main__ import main
from bench.core.api import BenchError
from bench.core.profiles import load_profile
from bench.core.results import load_results
from bench.core.video_io import write_video
from bench.run.runner import RunConfig, git_hash, run
from bench.sources.folder import FolderSource

TINY = load_profile("tiny")
KEYS = ["video_id", "method", "attack_params"]


def _config(tmp_path, **kw) -> RunConfig:
    base = dict(methods="identity,dct-qim", attacks="identity", profile="tiny", limit=2,
                out=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False, fvd=False)
    base.update(kw)
    return RunConfig(**base)


def _sorted(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(KEYS).reset_index(drop=True)


def _video(path, frames=16, size=(48, 40), seed=0):
    gen = torch.Generator().manual_seed(seed)
    write_video(path, torch.rand(frames, 3, *size, generator=gen), fps=8)


CLI_RUN = ["run", "--profile", "tiny", "--limit", "1", "--methods", "identity", "--attacks",
           "identity", "--no-fvd", "--quiet"]


# ------------------------------------------------------------------ 1. folder source escapes


@pytest.mark.parametrize("manifest", [
    "id,prompt,file\na,p,/etc/passwd\n",
    "id,prompt,file\na,p,../../../etc/passwd\n",
    "id,prompt,file\na,p,../outside.mp4\n",
    "id,prompt,file\na,p,sub/../../outside.mp4\n",
    "id,prompt\n../outside,p\n",
])
def test_folder_source_refuses_files_outside_its_folder(tmp_path, manifest):
    _video(tmp_path / "outside.mp4")  # a readable video waits outside the folder
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "manifest.csv").write_text(manifest)
    with pytest.raises(BenchError, match="absolute path|leaves the folder"):
        FolderSource(TINY, folder)
    code = main([*CLI_RUN, "--source", f"folder:{folder}", "--out", str(tmp_path / "o")])
    assert code == 2 and not (tmp_path / "o" / "rows.csv").exists()


def test_folder_source_still_reads_subfolders(tmp_path):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    _video(folder / "sub" / "a.mp4")
    (folder / "manifest.csv").write_text("id,prompt,file\na,p,sub/a.mp4\n")
    (clip,) = list(FolderSource(TINY, folder))
    assert tuple(clip.frames.shape) == (16, 3, 64, 64)


# ------------------------------------------------------------------ 2. incomplete results


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run: 3 videos x identity, dct-qim x identity."""
    base = tmp_path_factory.mktemp("finished")
    run(_config(base, limit=3))
    return base / "out"


def _copy(run_dir, tmp_path, name="run"):
    return shutil.copytree(run_dir, tmp_path / name)


def _killed(folder):
    """What kill -9 leaves: rows.csv, a manifest without ``finished``, no sets.csv."""
    (folder / "sets.csv").unlink()
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("finished", "rows", "clips", "statuses"):
        manifest.pop(key)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _truncated(folder):
    data = (folder / "rows.csv").read_bytes()
    (folder / "rows.csv").write_bytes(data[: len(data) // 2])
    return folder


def test_report_refuses_a_killed_run_unless_partial_allowed(finished_run, tmp_path, capsys):
    folder = _killed(_copy(finished_run, tmp_path))
    assert main(["report", "--results", str(folder), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "did not finish" in err and "sets.csv is missing" in err and "--allow-partial" in err
    assert main(["report", "--results", str(folder), "--out", str(tmp_path / "r"),
                 "--allow-partial"]) == 0
    text = (tmp_path / "r" / "README.md").read_text()
    assert "Partial results" in text and "did not finish" in text
    complete = tmp_path / "c"
    assert main(["report", "--results", str(finished_run), "--out", str(complete)]) == 0
    assert "Partial" not in (complete / "README.md").read_text()


def test_report_refuses_a_truncated_rows_file(finished_run, tmp_path, capsys):
    folder = _truncated(_copy(finished_run, tmp_path))
    expected = len(load_results(finished_run).rows)
    assert main(["report", "--results", str(folder), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and f"the manifest says {expected}" in err
    assert main(["report", "--results", str(folder), "--out", str(tmp_path / "r"),
                 "--allow-partial"]) == 0
    table = pd.read_csv(tmp_path / "r" / "robustness.csv")
    assert len(table) > 0
    assert "Partial results" in (tmp_path / "r" / "README.md").read_text()


def _thresholds(tmp_path, reference):
    path = tmp_path / "gate.toml"
    path.write_text(f'reference = "{reference}"\n[[check]]\nmethod = "dct-qim"\n'
                    'attack = "identity"\nmetric = "w_psnr"\n')
    return path


def test_gate_refuses_killed_truncated_and_fewer_video_runs(finished_run, tmp_path, capsys):
    from bench.gate import run_gate

    gate = _thresholds(tmp_path, finished_run)
    lines: list[str] = []
    assert run_gate(finished_run, gate, out=lines.append) == 0, lines
    for broken in (_killed(_copy(finished_run, tmp_path, "k")),
                   _truncated(_copy(finished_run, tmp_path, "t"))):
        lines = []
        assert run_gate(broken, gate, out=lines.append) == 2
        assert "not a complete results folder" in "\n".join(lines)
    one = tmp_path / "one"
    run(_config(tmp_path, limit=1, out=one))
    lines = []
    assert run_gate(one, gate, out=lines.append) == 2
    text = "\n".join(lines)
    assert "covers 1 video(s), the reference 3" in text and "missing from the candidate" in text
    # allowed: compared over the common video only, against the reference's value there
    lines = []
    assert run_gate(one, gate, out=lines.append, allow_partial=True) == 0
    ref = load_results(finished_run).rows
    common = ref[(ref.video_id.isin(load_results(one).rows.video_id)) & (ref.method == "dct-qim")]
    assert f"{common['w_psnr'].mean():.4g}" in "\n".join(lines)
    assert main(["gate", "--results", str(one), "--thresholds", str(gate)]) == 2


# ------------------------------------------------------------------ 3. cache entries validated


def _entries(cache, kind, suffix):
    return sorted((cache / kind).rglob(f"*{suffix}"))


def test_bad_row_entries_are_recomputed_counted_and_keep_integer_seeds(tmp_path):
    first = run(_config(tmp_path))
    clean = _sorted(load_results(first.out).rows)
    entries = _entries(tmp_path / "cache", "rows", ".json")
    assert len(entries) == first.rows == 4
    video = clean.loc[0, "video_id"]
    entries[0].write_text(json.dumps({"schema": 1, "value": {"video_id": video,
                                                             "status": "ok"}}))
    entries[1].write_text(json.dumps({"video_id": video, "status": "ok"}))  # no schema
    value = json.loads(entries[2].read_text())["value"]
    entries[2].write_text(json.dumps({"schema": 999, "value": value}))  # another schema
    value = json.loads(entries[3].read_text())["value"]
    entries[3].write_text(json.dumps({"schema": 1, "value": {**value, "seed": 1.5}}))
    again = run(_config(tmp_path))
    assert again.rejected_cache_entries == 4 and again.computed_rows == 4
    rows = _sorted(load_results(again.out).rows)
    assert rows["seed"].dtype.kind == "i" and rows["seed"].max() > 2**53
    assert (rows["seed"] == clean["seed"]).all()
    pd.testing.assert_frame_equal(rows[KEYS + ["status", "w_psnr", "v_psnr"]],
                                  clean[KEYS + ["status", "w_psnr", "v_psnr"]])
    assert json.loads((again.out / "manifest.json").read_text())["cache"]["rejected"] == \
        {"rows": 4}


def test_watermarked_entry_without_video_is_recomputed(tmp_path):
    first = run(_config(tmp_path, methods="dct-qim"))
    clean = _sorted(load_results(first.out).rows)
    for path in _entries(tmp_path / "cache", "watermarked", ".pt"):
        torch.save({"_schema": 1, "other": torch.zeros(2)}, path)
    for path in _entries(tmp_path / "cache", "rows", ".json"):
        path.unlink()  # the rows must be recomputed from the watermarked video
    again = run(_config(tmp_path, methods="dct-qim"))
    assert again.statuses["error"] == 0 and again.rejected_cache_entries == 2
    pd.testing.assert_frame_equal(_sorted(load_results(again.out).rows)[KEYS + ["w_psnr"]],
                                  clean[KEYS + ["w_psnr"]])


class _FakeI3D:
    """Stands in for I3D: 400 numbers that depend on the video's content."""

    calls = 0

    def __init__(self, device="cpu", model=None):
        pass

    def __call__(self, video):
        _FakeI3D.calls += 1
        pooled = torch.nn.functional.adaptive_avg_pool3d(video.permute(1, 0, 2, 3)[None],
                                                         (4, 10, 10))
        return pooled.flatten()[:400].double().numpy()


@pytest.fixture
def fake_i3d(monkeypatch):
    import bench.metrics.fvd
    import bench.metrics.i3d

    monkeypatch.setattr(bench.metrics.i3d, "I3DFeatures", _FakeI3D)
    monkeypatch.setattr(bench.metrics.i3d, "load_i3d", lambda device="cpu": None)
    monkeypatch.setattr(bench.metrics.fvd, "bootstrap_fvd", lambda a, b, seed=0: (0.0, 0.0))
    return _FakeI3D


def test_missing_or_wrong_i3d_entries_do_not_shrink_fvd(tmp_path, fake_i3d):
    config = _config(tmp_path, methods="dct-qim", limit=3, fvd=True)
    first = run(config)
    sets = load_results(first.out).sets
    assert sets.loc[0, "n"] == 3 and sets.loc[0, "status"] == "ok"
    i3d = _entries(tmp_path / "cache", "i3d", ".json")
    assert len(i3d) == 6  # 3 covers + 3 watermarked videos
    for path in i3d[:3]:
        path.unlink()
    value = json.loads(i3d[3].read_text())["value"]
    i3d[3].write_text(json.dumps({"schema": 1, "value": {"features": value["features"][:7]}}))
    for path in _entries(tmp_path / "cache", "watermarked", ".pt"):
        path.unlink()  # nor the videos to take them from: they are embedded again
    again = run(config)
    sets2 = load_results(again.out).sets
    assert sets2.loc[0, "n"] == 3 and sets2.loc[0, "value"] == pytest.approx(sets.loc[0, "value"])
    assert again.rejected_cache_entries >= 1


# ------------------------------------------------------------------ 4. unusable cache


@pytest.mark.parametrize("cache", ["/proc/x", "file"])
def test_unusable_cache_fails_at_start(tmp_path, capsys, cache):
    if cache == "file":
        cache = tmp_path / "cache-file"
        cache.write_text("not a folder")
    code = main([*CLI_RUN, "--cache", str(cache), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "cache folder" in capsys.readouterr().err
    assert not (tmp_path / "o" / "rows.csv").exists()


# ------------------------------------------------------------------ 5. messages, not tracebacks


def _bad_outs(tmp_path):
    existing = tmp_path / "a-file"
    existing.write_text("x")
    return {"existing file": existing, "under a file": existing / "sub",
            "unwritable": "/proc/x/out"}


@pytest.mark.parametrize("case", ["existing file", "under a file", "unwritable"])
def test_bad_out_paths_are_clear_errors(finished_run, tmp_path, capsys, case):
    out = str(_bad_outs(tmp_path)[case])
    assert main([*CLI_RUN, "--out", out]) == 2
    assert main(["report", "--results", str(finished_run), "--out", out]) == 2
    (tmp_path / "ref").mkdir()
    (tmp_path / "cand").mkdir()
    assert main(["compare", "--reference", str(tmp_path / "ref"), "--candidate",
                 str(tmp_path / "cand"), "--json", out if case != "existing file" else
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err


def test_disk_full_results_folder_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import errno

    import bench.core.results

    real = bench.core.results.atomic_write_bytes

    def full(path, data):
        if path.name == "rows.csv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(bench.core.results, "atomic_write_bytes", full)
    assert main([*CLI_RUN, "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "rows.csv" in err


@pytest.mark.parametrize("value", ["16.5", '"16"', "true"])
def test_profile_values_of_the_wrong_type(tmp_path, value):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "bad"\nframes = {value}\nheight = 64\nwidth = 64\n'
                    "logo_size = 32\n")
    with pytest.raises(BenchError, match="frames must be an integer"):
        load_profile(str(path))
    assert main([*CLI_RUN[:-2], "--profile", str(path), "--out", str(tmp_path / "o")]) == 2
    path.write_text('name = "ok"\nframes = 16\nheight = 64\nwidth = 64\nlogo_size = 32\n'
                    "fps = 8\n")
    assert load_profile(str(path)).fps == 8


# ------------------------------------------------------------------ 6. compare never cuts


def test_compare_refuses_other_frame_counts_and_fails_when_nothing_compared(tmp_path, capsys):
    ref, cand = tmp_path / "ref", tmp_path / "cand"
    ref.mkdir()
    cand.mkdir()
    _video(ref / "a.mp4", frames=16, size=(32, 32))
    _video(cand / "a.mp4", frames=3, size=(32, 32))  # the first 3 frames of the reference
    code = main(["compare", "--reference", str(ref), "--candidate", str(cand),
                 "--json", str(tmp_path / "c.json")])
    captured = capsys.readouterr()
    assert code != 0 and "no video was compared" in captured.err
    assert "16 frames in the reference vs 3 in the candidate" in captured.out
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["n"] == 0 and result["v_psnr"] is None


# ------------------------------------------------------------------ 7. one bad checkpoint


@pytest.mark.parametrize("content", ["wrong shape", "garbage"])
def test_bad_checkpoint_makes_error_rows_and_the_others_run(tmp_path, monkeypatch, content):
    import bench.core.checkpoints
    from baselines.balujanet import BalujaNet

    monkeypatch.setattr(BalujaNet, "checkpoint_dir", tmp_path / "repo/baselines/checkpoints")
    path = bench.core.checkpoints.checkpoint_path("balujanet", "tiny")
    path.parent.mkdir(parents=True)
    if content == "wrong shape":
        torch.save({"weight": torch.zeros(3, 3)}, path)
    else:
        path.write_bytes(b"\x80\x04 not a torch file")
    summary = run(_config(tmp_path, methods="identity,balujanet"))
    rows = load_results(summary.out).rows
    ident = rows[rows.method == "identity"]
    assert len(ident) == 2 and set(ident["status"]) <= {"ok", "unavailable"}
    baluja = rows[rows.method == "balujanet"]
    assert len(baluja) == 2 and set(baluja["status"]) == {"error"}
    assert baluja["error"].str.contains(str(path), regex=False).all()
    manifest = json.loads((summary.out / "manifest.json").read_text())
    assert "balujanet" in manifest["methods_failed"]


# ------------------------------------------------------------------ 8. outputs follow the umask


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_follow_the_umask(tmp_path, mask):
    from bench.core.checkpoints import save_checkpoint

    old = os.umask(mask)
    try:
        summary = run(_config(tmp_path, methods="dct-qim", limit=1))
        ckpt = save_checkpoint(tmp_path / "ck" / "m-tiny.pt", {"w": torch.zeros(2)}, {})
    finally:
        os.umask(old)
    expected = 0o666 & ~mask
    files = [summary.out / "rows.csv", summary.out / "sets.csv", summary.out / "manifest.json",
             ckpt, ckpt.with_name("m-tiny.card.json"),
             *_entries(tmp_path / "cache", "rows", ".json"),
             *_entries(tmp_path / "cache", "watermarked", ".pt"),
             *(summary.out / "samples").glob("*.npz")]
    assert len(files) > 6
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(expected)}


# ------------------------------------------------------------------ 9. git, read-only


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_hash_never_writes_the_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "a")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True).stdout.strip()
    index = repo / ".git" / "index"
    os.utime(repo / "a.txt", ns=(1_000_000_000, 1_000_000_000))  # stale stat data: a plain
    before = (index.read_bytes(), index.stat().st_mtime_ns)     # `git status` rewrites it
    assert git_hash(repo) == head
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    (repo / "a.txt").write_text("two")
    assert git_hash(repo) == head + "-dirty"
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    assert not (repo / ".git" / "index.lock").exists()


def test_git_hash_without_git_or_outside_a_repository(tmp_path, monkeypatch):
    assert git_hash(tmp_path) == "unknown"
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert git_hash() == "unknown"
