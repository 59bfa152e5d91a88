"""Where a run's time goes (manifest timings, report section) and ``bench run --dry-run``."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from bench.core.results import load_results
from bench.core.timing import StageTimes, forward_seconds, timings_markdown, timings_table
from bench.report import build as report
from bench.run.plan import format_plan, plan
from bench.run.runner import RunConfig, run


def _config(tmp_path, **kw) -> RunConfig:
    base = dict(methods="identity,dct-qim", attacks="identity,blur", profile="tiny", limit=2,
                out=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False, fvd=False)
    base.update(kw)
    return RunConfig(**base)


def test_stage_times_accumulate_and_sort():
    times = StageTimes()
    times.add("embed/a", 1.5)
    times.add("embed/a", 0.5)
    times.add("extract/a", 3.0, calls=4)
    with pytest.raises(ZeroDivisionError):
        with times.stage("attack/x"):
            1 / 0  # noqa: B018 - a failing stage is still timed
    times.count("rows_computed", 3)
    out = times.as_dict()
    assert list(out["stages"])[:2] == ["extract/a", "embed/a"]
    assert out["stages"]["embed/a"] == {"s": 2.0, "calls": 2}
    assert out["stages"]["attack/x"]["calls"] == 1
    assert out["counts"] == {"rows_computed": 3}
    assert forward_seconds(out) == pytest.approx(5.0)


def test_timings_table_and_markdown_from_a_manifest():
    manifest = {"wall_s": 10.0, "peak_rss_mb": 512.0,
                "timings": {"stages": {"extract/m": {"s": 4.0, "calls": 8},
                                       "embed/m": {"s": 1.0, "calls": 2},
                                       "io": {"s": 0.5, "calls": 2}},
                            "counts": {"rows_computed": 8, "rows_cached": 0}}}
    table = timings_table(manifest)
    assert [r["stage"] for r in table] == ["extract/m", "embed/m", "io", "(untimed)"]
    assert [r["share"] for r in table] == pytest.approx([0.4, 0.1, 0.05, 0.45])
    text = timings_markdown(manifest)
    assert "wall / forward = 2.00" in text and "peak RSS 512 MB" in text
    assert "| extract/m" in text and "40.0%" in text
    assert "no per-stage timings" in timings_markdown({})


def test_run_records_stages_and_cached_units(tmp_path):
    first = run(_config(tmp_path))
    manifest = load_results(tmp_path / "out").manifest
    stages = manifest["timings"]["stages"]
    for name in ("source", "embed/dct-qim", "extract/dct-qim", "attack/blur", "metrics/video",
                 "metrics/logo", "io", "cache"):
        assert name in stages, name
    # 2 clips x 4 settings: one extract per computed dct-qim row, one embed per clip
    assert stages["extract/dct-qim"]["calls"] == 8 and stages["embed/dct-qim"]["calls"] == 2
    assert manifest["timings"]["counts"]["rows_computed"] == first.computed_rows
    assert manifest["peak_rss_mb"] > 0

    report.build_report(tmp_path / "out", tmp_path / "report")
    csv = pd.read_csv(tmp_path / "report" / "timings.csv").set_index("stage")
    assert csv.loc["extract/dct-qim", "calls"] == 8
    assert "## Where the time goes" in (tmp_path / "report" / "README.md").read_text()

    rerun = run(_config(tmp_path))
    assert rerun.cached_rows == first.rows and rerun.computed_rows == 0
    again = load_results(tmp_path / "out").manifest["timings"]
    assert again["counts"]["rows_cached"] == first.rows
    assert again["counts"]["units_cached"] == 2 * 2
    assert "embed/dct-qim" not in again["stages"]


def test_dry_run_counts_the_rows_a_run_makes_and_writes_nothing(tmp_path):
    config = _config(tmp_path, attacks="identity,blur,noise")
    result = plan(config)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    assert set(result["timings"]["methods"]) == {"identity", "dct-qim"}
    assert result["estimate_s"] > 0
    parts = result["estimate_parts_s"]
    assert set(parts) == {"extract", "attacks", "embed", "source"}
    assert sum(parts.values()) == pytest.approx(result["estimate_s"])
    # every row extracts once per method: rows_per_method x one clip's extract time
    extract = sum(c["extract"] for c in result["timings"]["methods"].values())
    assert parts["extract"] == pytest.approx(result["rows_per_method"] * extract)
    text = format_plan(result)
    assert f"{result['rows']:,} rows" in text and "estimate for an empty cache" in text
    assert "of which extract" in text
    summary = run(config)
    assert result["rows"] == summary.rows


def test_dry_run_times_each_method_in_the_precision_the_run_uses(tmp_path):
    """safe-sd declares bf16 for its shipped checkpoint: auto times it in bf16."""
    for precision, expected in (("auto", "bf16"), ("fp32", "fp32")):
        config = _config(tmp_path, methods="safe-sd,identity", attacks="identity",
                         profile="default", limit=1, precision=precision)
        methods = plan(config)["timings"]["methods"]
        assert methods["safe-sd"]["precision"] == expected
        assert methods["identity"]["precision"] == "fp32"


def test_dry_run_cli(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--profile", "tiny", "--methods", "dct-qim",
         "--attacks", "identity", "--limit", "1", "--out", str(tmp_path / "out"), "--cache",
         str(tmp_path / "cache"), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "1 videos x 1 methods: 1 rows" in out.stdout
    assert not (tmp_path / "out").exists()
