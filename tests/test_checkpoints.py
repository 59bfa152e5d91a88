"""Checkpoint paths, weights-only files with cards, and loading into a method's network."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

from bench import checkpoints
from bench.api import BenchError
from bench.checkpoints import (
    CheckpointMissing,
    card_path,
    checkpoint_path,
    load_checkpoint,
    load_into,
    save_checkpoint,
)
from bench.profiles import load_profile

PROFILE = load_profile("tiny")


class _Holder:
    """The part of a trainable method that load_into touches."""

    name = "tiny-net"
    version = "3"

    def __init__(self, profile=PROFILE, width: int = 4):
        self.profile = profile
        self.net = nn.Conv2d(3, width, 3)
        self.checkpoint = "unset"

    def network(self) -> nn.Module:
        return self.net


def test_paths_follow_the_package_rule():
    root = checkpoints.REPO_ROOT
    assert checkpoint_path("udh", "default") == root / "baselines/checkpoints/udh-default.pt"
    assert checkpoint_path("safe-sora", "tiny") == root / "methods/checkpoints/safe-sora-tiny.pt"
    assert (checkpoint_path("safe-sora-no-mamba", "paper")
            == root / "methods/checkpoints/safe-sora-no-mamba-paper.pt")
    assert (checkpoint_path("safe-sora/no-msfi", "default")
            == root / "methods/checkpoints/safe-sora--no-msfi-default.pt")
    assert (checkpoint_path("udh", "tiny", package="methods")
            == root / "methods/checkpoints/udh-tiny.pt")
    assert card_path(root / "x/udh-tiny.pt") == root / "x/udh-tiny.card.json"
    for bad in ("../evil", ""):
        with pytest.raises(BenchError):
            checkpoint_path(bad, "default")
    with pytest.raises(BenchError, match="package"):
        checkpoint_path("udh", "default", package="elsewhere")


def test_save_is_weights_only_with_a_card(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    path = save_checkpoint(tmp_path / "sub" / "m-tiny.pt", state, {"steps": 3})
    assert path == tmp_path / "sub" / "m-tiny.pt"
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"w", "b"} and torch.equal(raw["w"], state["w"])
    card = json.loads((tmp_path / "sub" / "m-tiny.card.json").read_text())
    data = path.read_bytes()
    assert card["steps"] == 3
    assert card["checkpoint_bytes"] == len(data)
    assert card["sha256"] == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in path.parent.iterdir()) == ["m-tiny.card.json", "m-tiny.pt"]
    loaded, loaded_card = load_checkpoint(path)
    assert torch.equal(loaded["b"], state["b"]) and loaded_card == card


def test_save_copies_and_rejects_non_tensors(tmp_path):
    weight = torch.ones(2, requires_grad=True)
    save_checkpoint(tmp_path / "a.pt", {"w": weight}, {})
    assert not torch.load(tmp_path / "a.pt", weights_only=True)["w"].requires_grad
    with pytest.raises(BenchError, match="only named tensors"):
        save_checkpoint(tmp_path / "b.pt", {"w": 3}, {})
    assert not (tmp_path / "b.pt").exists()


def test_missing_file_names_the_file_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "REPO_ROOT", tmp_path)
    holder = _Holder()
    with pytest.raises(CheckpointMissing) as info:
        load_into(holder, "default")
    message = str(info.value)
    assert str(tmp_path / "baselines/checkpoints/tiny-net-tiny.pt") in message
    assert "python -m bench train --method tiny-net --profile tiny" in message
    assert isinstance(info.value, BenchError)
    with pytest.raises(CheckpointMissing, match="--out"):
        load_into(holder, tmp_path / "nowhere.pt")


def test_load_into_default_path_and_none(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "REPO_ROOT", tmp_path)
    trained = _Holder()
    with torch.no_grad():
        trained.net.weight.normal_()
    path = checkpoint_path("tiny-net", "tiny")
    save_checkpoint(path, trained.net.state_dict(), {"method_version": "3"})

    fresh = _Holder()
    assert not torch.equal(fresh.net.weight, trained.net.weight)
    assert load_into(fresh, "default") == path and fresh.checkpoint == path
    assert torch.equal(fresh.net.weight, trained.net.weight)
    assert torch.equal(fresh.net.bias, trained.net.bias)

    untouched = _Holder()
    before = untouched.net.weight.clone()
    assert load_into(untouched, None) is None and untouched.checkpoint is None
    assert torch.equal(untouched.net.weight, before)

    explicit = _Holder(profile=None)
    assert load_into(explicit, str(path)) == path
    assert torch.equal(explicit.net.weight, trained.net.weight)


def test_load_into_rejects_a_network_of_another_shape(tmp_path):
    save_checkpoint(tmp_path / "w.pt", _Holder(width=4).net.state_dict(),
                    {"method_version": "3"})
    with pytest.raises(BenchError, match="does not fit.*version 3"):
        load_into(_Holder(width=5), tmp_path / "w.pt")


def test_load_into_refuses_weights_of_another_method_version(tmp_path):
    """Same tensors, other version (another behaviour): missing, naming both versions."""
    save_checkpoint(tmp_path / "w.pt", _Holder().net.state_dict(), {"method_version": "2"})
    holder = _Holder()
    with pytest.raises(CheckpointMissing, match="trained for 'tiny-net' version 2, not "
                                                "version 3.*bench train"):
        load_into(holder, tmp_path / "w.pt")
    assert holder.checkpoint == "unset"
    save_checkpoint(tmp_path / "old.pt", _Holder().net.state_dict(), {})  # no version: loads
    assert load_into(_Holder(), tmp_path / "old.pt") == tmp_path / "old.pt"


def test_unreadable_file_is_a_bench_error(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(BenchError, match="weights-only"):
        load_checkpoint(tmp_path / "bad.pt")
