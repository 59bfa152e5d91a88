"""Fault injection: every test here injects faults and counts them in one tally.

``faults.inject(what, n)`` counts ``n`` faults injected; leaving its block without an exception
counts them survived. ``faults.compare(clean, got)`` counts the rows of a clean run that a
faulted run lost or changed. The tally is printed at the end of the session:
``faults injected N, survived N, rows lost 0``.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
import pytest

KEYS = ["video_id", "method", "attack_params"]
VALUES = ["seed", "status", "w_psnr", "w_ssim", "patch_acc", "v_psnr", "v_ssim", "tlp"]


@dataclass
class Tally:
    injected: Counter = field(default_factory=Counter)
    survived: Counter = field(default_factory=Counter)
    rows_lost: int = 0
    rows_checked: int = 0

    @contextlib.contextmanager
    def inject(self, what: str, n: int = 1):
        """Count ``n`` faults of kind ``what``; survived when the block ends normally."""
        self.injected[what] += n
        yield
        self.survived[what] += n

    def compare(self, clean: pd.DataFrame, got: pd.DataFrame) -> int:
        """Rows of ``clean`` missing from ``got`` or with other values there (counted)."""
        mine = got.set_index(KEYS)
        lost = 0
        for _, row in clean.iterrows():
            key = tuple(row[k] for k in KEYS)
            if key not in mine.index or not _same(row, mine.loc[key]):
                lost += 1
        self.rows_checked += len(clean)
        self.rows_lost += lost
        return lost

    def line(self) -> str:
        return (f"faults injected {sum(self.injected.values())}, survived "
                f"{sum(self.survived.values())}, rows lost {self.rows_lost} "
                f"(of {self.rows_checked} rows checked)")


def _same(a: pd.Series, b) -> bool:
    if isinstance(b, pd.DataFrame):  # a duplicated key is a fault too
        return False
    for column in VALUES:
        x, y = a[column], b[column]
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True


TALLY = Tally()


@pytest.fixture
def faults() -> Tally:
    return TALLY


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/faults/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter):
    if not TALLY.injected:
        return
    terminalreporter.section("fault injection")
    for what in sorted(TALLY.injected):
        terminalreporter.write_line(f"  {what}: injected {TALLY.injected[what]}, survived "
                                    f"{TALLY.survived[what]}")
    terminalreporter.write_line(TALLY.line())


# --------------------------------------------------------------------------- the clean run

#: the runs of this suite: tiny profile, two methods, identity and the blur grid, 2 videos
RUN_ARGS = ["--profile", "tiny", "--limit", "2", "--methods", "identity,dct-qim",
            "--attacks", "identity,blur"]


class FakeI3D:
    """Stands in for I3D (whose weights CI may lack): 400 numbers from the video's content."""

    def __init__(self, device="cpu", model=None):
        pass

    def __call__(self, video):
        import torch

        pooled = torch.nn.functional.adaptive_avg_pool3d(video.permute(1, 0, 2, 3)[None],
                                                         (4, 10, 10))
        return pooled.flatten()[:400].double().numpy()


def patch_i3d(monkeypatch) -> None:
    import bench.metrics.fvd
    import bench.metrics.i3d

    monkeypatch.setattr(bench.metrics.i3d, "I3DFeatures", FakeI3D)
    monkeypatch.setattr(bench.metrics.i3d, "load_i3d", lambda device="cpu": None)
    monkeypatch.setattr(bench.metrics.fvd, "bootstrap_fvd", lambda a, b, seed=0: (0.0, 0.0))


@pytest.fixture
def fake_i3d(monkeypatch):
    patch_i3d(monkeypatch)


def config(out, cache, fvd: bool = False, **kw):
    from bench.run.runner import RunConfig

    base = dict(methods="identity,dct-qim", attacks="identity,blur", profile="tiny", limit=2,
                out=out, cache_dir=cache, progress=False, fvd=fvd)
    return RunConfig(**{**base, **kw})


@pytest.fixture
def run_config():
    """``run_config(out, cache, fvd=False, **overrides)``: the suite's RunConfig."""
    return config


@pytest.fixture
def cli_run():
    """``cli_run(out, cache, *extra)``: the suite's run as a ``python -m bench`` command."""
    import sys

    def command(out, cache, *extra) -> list[str]:
        return [sys.executable, "-m", "bench", "run", *RUN_ARGS, "--out", str(out), "--cache",
                str(cache), "--no-fvd", "--quiet", *extra]

    return command


@dataclass
class CleanRun:
    out: object
    cache: object
    rows: pd.DataFrame
    sets: pd.DataFrame


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> CleanRun:
    """One uninterrupted run (FVD from the stand-in I3D); its cache is copied by tests."""
    from bench.core.results import load_results
    from bench.run.runner import run

    base = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as mp:
        patch_i3d(mp)
        summary = run(config(base / "out", base / "cache", fvd=True))
    results = load_results(summary.out)
    return CleanRun(summary.out, base / "cache", results.rows, results.sets)
