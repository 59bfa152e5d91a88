"""The content-addressed cache: keys, round trips, atomicity, damaged entries."""

from __future__ import annotations

import torch

from bench.core.results import atomic_write_bytes
from bench.core.store import Cache, make_key, tensor_digest


def test_keys_are_stable_and_order_free_for_dicts():
    assert make_key("a", {"x": 1, "y": 2}) == make_key("a", {"y": 2, "x": 1})
    assert make_key("a", 1) != make_key("a", 2)


def test_tensor_digest_depends_on_content_shape_and_dtype():
    x = torch.zeros(2, 3)
    assert tensor_digest(x) == tensor_digest(x.clone())
    assert tensor_digest(x) != tensor_digest(torch.zeros(3, 2))
    assert tensor_digest(x) != tensor_digest(x.double())
    y = x.clone()
    y[0, 0] = 1e-7
    assert tensor_digest(x) != tensor_digest(y)


def test_round_trips_and_damaged_entries(tmp_path):
    cache = Cache(tmp_path)
    key = make_key("k")
    assert cache.get_json("rows", key) is None
    cache.put_json("rows", key, {"a": 1.5, "b": float("nan")})
    got = cache.get_json("rows", key)
    assert got["a"] == 1.5 and got["b"] != got["b"]
    cache.put_tensors("wm", key, {"v": torch.arange(5, dtype=torch.uint8)})
    assert torch.equal(cache.get_tensors("wm", key)["v"], torch.arange(5, dtype=torch.uint8))
    # a damaged entry is treated as missing (and will be recomputed)
    path = next((tmp_path / "rows").rglob("*.json"))
    path.write_text("{not json")
    assert cache.get_json("rows", key) is None


def test_disabled_cache_stores_nothing(tmp_path):
    cache = Cache(None)
    cache.put_json("rows", "ab", {"a": 1})
    assert cache.get_json("rows", "ab") is None


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]
