"""A full disk or an unusable folder for what the commands write: a message and exit 2, never a
traceback; a run stopped by a full disk resumes from the cache with nothing lost."""

from __future__ import annotations

import errno
import os

import pytest

from bench.__main__ import main
from bench.core.results import incomplete, load_results


def _enospc(path):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_disk_full_on_results_then_resume(tmp_path, clean, faults, cli_run, monkeypatch,
                                          capsys):
    from bench.core.results import RowsFile

    real = RowsFile.append
    appends = []

    def full_after_first_clip(self, records):
        # rows.csv grows clip by clip: the disk fills up after the first clip's rows
        appends.append(len(records))
        if len(appends) > 1:
            raise _enospc(self.path)
        real(self, records)

    out, cache = tmp_path / "out", tmp_path / "cache"
    monkeypatch.setattr(RowsFile, "append", full_after_first_clip)
    with faults.inject("disk full on the results folder"):
        assert main(cli_run(out, cache)[3:]) == 2
        err = capsys.readouterr().err
        assert "No space left on device" in err and "rerun" in err
        assert incomplete(load_results(out))  # one clip's rows, not marked finished
        assert len(load_results(out).rows) == appends[0]
        monkeypatch.setattr(RowsFile, "append", real)
        assert main(cli_run(out, cache)[3:]) == 0
        assert faults.compare(clean.rows, load_results(out).rows) == 0


def _bad_paths(tmp_path) -> dict:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    return {"an existing file": blocker, "under a file": blocker / "out",
            "unwritable (/proc)": "/proc/x/out"}


@pytest.mark.parametrize("case", ["an existing file", "under a file", "unwritable (/proc)"])
def test_unusable_out_paths(tmp_path, clean, faults, cli_run, capsys, case):
    path = str(_bad_paths(tmp_path)[case])
    (tmp_path / "r").mkdir()
    commands = {
        "run --out": cli_run(path, tmp_path / "cache")[3:],
        "report --out": ["report", "--results", str(clean.out), "--out", path],
        "compare --json": ["compare", "--reference", str(tmp_path / "r"), "--candidate",
                           str(tmp_path / "r"), "--json",
                           str(tmp_path) if case == "an existing file" else path],
    }
    for name, argv in commands.items():
        with faults.inject(f"{name} {case}"):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.startswith("error: ") and "Traceback" not in err


def test_disk_full_on_report_and_compare_json(tmp_path, clean, faults, monkeypatch, capsys):
    import pathlib

    import bench.core.results

    def full(self, *args, **kwargs):
        raise _enospc(self)

    with faults.inject("disk full writing a report"):
        monkeypatch.setattr(pathlib.Path, "write_text", full)
        assert main(["report", "--results", str(clean.out), "--out", str(tmp_path / "r")]) == 2
        assert "No space left on device" in capsys.readouterr().err
        monkeypatch.undo()
    (tmp_path / "v").mkdir()
    with faults.inject("disk full writing compare --json"):
        monkeypatch.setattr(bench.core.results, "atomic_write_bytes",
                            lambda path, data: (_ for _ in ()).throw(_enospc(path)))
        assert main(["compare", "--reference", str(tmp_path / "v"), "--candidate",
                     str(tmp_path / "v"), "--json", str(tmp_path / "c.json")]) == 2
        assert "No space left on device" in capsys.readouterr().err
