"""kill -9 at random points, then resume: the rows equal an uninterrupted run's. Two runs at
once on one cache both finish with those rows."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

from bench.core.results import incomplete, load_results

KILLS = int(os.environ.get("FAULT_KILLS", "3"))


def _start(command) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_at_random_points_then_resume(tmp_path, clean, faults, cli_run):
    rng = random.Random(17)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with faults.inject("kill -9 during a run", KILLS):
        # anywhere from start-up to the last clip (a run of this size takes ~8 s alone)
        for _ in range(KILLS):
            proc = _start(cli_run(out, cache))
            time.sleep(rng.uniform(1.0, 8.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if (out / "rows.csv").exists():  # atomic writes: what is there reads back whole
                partial = load_results(out)
                assert set(partial.rows["status"]) <= {"ok", "unavailable", "error"}
                assert incomplete(partial) or partial.manifest.get("finished")
        done = subprocess.run(cli_run(out, cache), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        resumed = load_results(out)
        assert not incomplete(resumed)
        assert faults.compare(clean.rows, resumed.rows) == 0
        assert len(resumed.rows) == len(clean.rows)


def test_concurrent_runs_on_one_cache(tmp_path, clean, faults, cli_run):
    cache = tmp_path / "cache"
    with faults.inject("two concurrent runs on one cache"):
        procs = [_start(cli_run(tmp_path / name, cache)) for name in ("a", "b")]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        for name in ("a", "b"):
            rows = load_results(tmp_path / name).rows
            assert faults.compare(clean.rows, rows) == 0 and len(rows) == len(clean.rows)
