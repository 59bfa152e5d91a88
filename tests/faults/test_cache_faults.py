"""A damaged cache: truncated, garbled, emptied and wrong-schema entries of every kind are
recomputed (and counted); a full disk or an unusable cache folder."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil

import pytest
import torch

from bench.__main__ import main
from bench.core.results import load_results
from bench.run.runner import run


def _entries(cache):
    return sorted(p for p in cache.rglob("*") if p.is_file() and p.suffix in (".json", ".pt"))


def _truncate(path, rng):
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(1, max(2, len(data) - 1))])


def _garble(path, rng):
    data = bytearray(path.read_bytes())
    for _ in range(max(1, len(data) // 50)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))


def _empty(path, rng):
    path.write_bytes(b"")


def _wrong_schema(path, rng):
    if path.suffix == ".json":
        entry = json.loads(path.read_text())
        path.write_text(json.dumps({**entry, "schema": entry["schema"] + 1}))
    else:
        entry = torch.load(path, weights_only=True)
        torch.save({**entry, "_schema": entry["_schema"] + 1}, path)


def _missing_keys(path, rng):
    if path.suffix == ".json":
        entry = json.loads(path.read_text())
        value = entry["value"]
        del value[sorted(value)[rng.randrange(len(value))]]
        path.write_text(json.dumps(entry))
    else:
        torch.save({"_schema": 1}, path)  # no video tensor


def _wrong_values(path, rng):
    """Well-formed entries with wrong contents: a row of another video, a float seed, a
    video of another shape, features of another length."""
    if path.suffix == ".pt":
        entry = torch.load(path, weights_only=True)
        torch.save({**entry, "video": entry["video"][:3]}, path)
        return
    entry = json.loads(path.read_text())
    value = entry["value"]
    if "features" in value:
        value["features"] = value["features"][:-1]
    elif "seed" in value:
        if rng.random() < 0.5:
            value["seed"] = float(value["seed"])
        else:
            value["video_id"] = "another-video"
    else:
        value["metrics"] = "not a dict"
    path.write_text(json.dumps(entry))


DAMAGE = {"truncated": _truncate, "garbled": _garble, "empty": _empty,
          "wrong schema": _wrong_schema, "missing keys": _missing_keys,
          "wrong values": _wrong_values}


def test_damaged_cache_entries_are_recomputed(tmp_path, clean, faults, fake_i3d, run_config):
    """Every entry of a copy of the clean run's cache gets one kind of damage (all kinds of
    damage, on entries of every kind); the rerun gives the clean rows and FVD."""
    rng = random.Random(17)
    cache = shutil.copytree(clean.cache, tmp_path / "cache")
    entries = _entries(cache)
    rng.shuffle(entries)
    damages = sorted(DAMAGE)
    plan = {path: damages[i % len(damages)] for i, path in enumerate(entries)}
    counts = {d: sum(v == d for v in plan.values()) for d in damages}
    with contextlib.ExitStack() as stack:
        for damage in damages:
            stack.enter_context(faults.inject(f"cache entry {damage}", counts[damage]))
        for path, damage in plan.items():
            DAMAGE[damage](path, rng)
        summary = run(run_config(tmp_path / "out", cache, fvd=True))
        results = load_results(summary.out)
        assert summary.statuses["error"] == 0
        assert faults.compare(clean.rows, results.rows) == 0
        assert len(results.rows) == len(clean.rows)
        assert results.rows["seed"].dtype.kind == "i"
        assert list(results.sets["n"]) == list(clean.sets["n"])
        assert list(results.sets["value"]) == pytest.approx(list(clean.sets["value"]))
        # counted (an entry the run did not need, e.g. a video whose rows were all cached,
        # is not read, so not counted)
        assert 0 < summary.rejected_cache_entries <= len(entries)
        # what was recomputed was written back whole: a second run rejects and computes
        # nothing
        again = run(run_config(tmp_path / "out", cache, fvd=True))
        assert again.rejected_cache_entries == 0 and again.computed_rows == 0
        assert faults.compare(clean.rows, load_results(again.out).rows) == 0


def test_disk_full_cache_rows_still_written(tmp_path, clean, faults, run_config, monkeypatch):
    import bench.core.store

    real = bench.core.store.atomic_write_bytes
    failed = []

    def full(path, data):
        if len(failed) % 2 == 0:  # every other cache write: no space left
            failed.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        failed.append(None)
        real(path, data)

    monkeypatch.setattr(bench.core.store, "atomic_write_bytes", full)
    cache = tmp_path / "cache"
    small = dict(methods="dct-qim", limit=1)  # a part of the clean run, to keep it short
    expected = clean.rows[(clean.rows["method"] == "dct-qim")
                          & (clean.rows["video_id"] == clean.rows["video_id"].iloc[0])]
    summary = run(run_config(tmp_path / "out", cache, **small))
    lost_writes = [p for p in failed if p is not None]
    with faults.inject("disk full on cache writes", len(lost_writes)):
        assert summary.cache_write_errors == len(lost_writes) > 0
        assert faults.compare(expected, load_results(summary.out).rows) == 0
        monkeypatch.setattr(bench.core.store, "atomic_write_bytes", real)
        again = run(run_config(tmp_path / "out", cache, **small))  # space again
        assert again.cache_write_errors == 0
        assert faults.compare(expected, load_results(again.out).rows) == 0
        assert len(load_results(again.out).rows) == len(expected)


@pytest.mark.parametrize("where", ["/proc/x", "a regular file", "under a regular file"])
def test_unusable_cache_folder_fails_at_start(tmp_path, faults, capsys, where, cli_run):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = {"/proc/x": "/proc/x", "a regular file": blocker,
             "under a regular file": blocker / "cache"}[where]
    with faults.inject(f"unusable cache folder ({where})"):
        code = main(cli_run(tmp_path / "out", cache)[3:])
        assert code == 2
        err = capsys.readouterr().err
        assert "cache folder" in err and "Traceback" not in err
        assert not (tmp_path / "out" / "rows.csv").exists()
