"""``bench run --executor ray``: the serial run's rows from one Ray actor per method, and
clear errors (no results folder) when Ray is missing or the address is bad."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from bench.core.api import BenchError
from bench.core.results import load_results
from bench.run.executors import actor_resources, check_address, execute, ray_run
from bench.run.runner import RunConfig, run

TIMING_COLUMNS = ["embed_s", "extract_s"]


def _config(tmp_path, name: str, **kw) -> RunConfig:
    base = dict(methods="identity,dct-qim", attacks="identity,blur", profile="tiny", limit=2,
                out=tmp_path / name, cache_dir=tmp_path / f"cache-{name}", progress=False,
                fvd=False)
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.slow
def test_ray_rows_equal_the_serial_rows(tmp_path):
    pytest.importorskip("ray")
    serial = run(_config(tmp_path, "serial"))
    # its own empty cache: every ray row is computed by the actors, not read back; one CPU
    # for two actors: they share it instead of one waiting forever for a CPU of its own
    distributed = ray_run(_config(tmp_path, "ray", executor="ray"), num_cpus=1)
    assert distributed.computed_rows == serial.computed_rows == distributed.rows
    a = load_results(tmp_path / "serial")
    b = load_results(tmp_path / "ray")
    pd.testing.assert_frame_equal(a.rows.drop(columns=TIMING_COLUMNS),
                                  b.rows.drop(columns=TIMING_COLUMNS))
    assert b.manifest["config"]["executor"] == "ray"
    stages = b.manifest["timings"]["stages"]
    assert stages["extract/dct-qim"]["calls"] == 8  # the actors' timings reach the manifest


def test_missing_ray_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    config = _config(tmp_path, "run", executor="ray")
    with pytest.raises(BenchError, match=r'pip install -e "\.\[ray\]"'):
        execute(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("address", ["localhost", "10.0.0.5:port", "a b:1", ":6379"])
def test_bad_address_is_refused_before_anything_is_written(tmp_path, address):
    with pytest.raises(BenchError, match="--address must be auto or HOST:PORT"):
        check_address(address)
    pytest.importorskip("ray")
    with pytest.raises(BenchError, match="--address must be auto or HOST:PORT"):
        execute(_config(tmp_path, "run", executor="ray", address=address))
    assert not (tmp_path / "run").exists()


def test_good_addresses_pass_the_check():
    assert check_address(None) is None
    assert check_address("auto") == "auto"
    assert check_address("head-node.example:6379") == "head-node.example:6379"


def test_actor_resources_share_out_what_the_cluster_has():
    assert actor_resources({"CPU": 16.0}, 4, 1, False) == (1.0, 0.0)
    assert actor_resources({"CPU": 2.0}, 14, 1, False) == pytest.approx((2 / 14, 0.0))
    assert actor_resources({"CPU": 8.0, "GPU": 1.0}, 4, 1, True) == (1.0, 0.25)
    assert actor_resources({"CPU": 8.0, "GPU": 8.0}, 4, 1, True) == (1.0, 1.0)
    with pytest.raises(BenchError, match="no GPU"):
        actor_resources({"CPU": 8.0}, 2, 1, True)


def test_an_unreachable_address_is_a_clear_error_and_writes_nothing(tmp_path):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BenchError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        execute(_config(tmp_path, "run", executor="ray", address=f"127.0.0.1:{port}"))
    assert not (tmp_path / "run").exists()
