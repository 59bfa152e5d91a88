"""Checkpoint paths, weights-only files with cards, and loading into a method's network."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

from bench.core import checkpoints
from bench.core.api import BenchError
from bench.core.checkpoints import (
    CheckpointMissing,
    card_path,
    checkpoint_path,
    load_checkpoint,
    load_into,
    save_checkpoint,
)
from bench.core.profiles import load_profile

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


def test_paths_follow_the_folder_each_method_declares():
    root = checkpoints.REPO_ROOT
    assert checkpoint_path("udh", "default") == root / "baselines/checkpoints/udh-default.pt"
    assert checkpoint_path("safe-sora", "tiny") == root / "methods/checkpoints/safe-sora-tiny.pt"
    assert (checkpoint_path("safe-sora/no-msfi", "default")
            == root / "methods/checkpoints/safe-sora--no-msfi-default.pt")
    assert (checkpoint_path("safe-sora-no-mamba", "paper", folder=root / "methods/checkpoints")
            == root / "methods/checkpoints/safe-sora-no-mamba-paper.pt")
    assert (checkpoint_path("udh", "tiny", folder=root / "methods/checkpoints")
            == root / "methods/checkpoints/udh-tiny.pt")
    assert card_path(root / "x/udh-tiny.pt") == root / "x/udh-tiny.card.json"
    for bad in ("../evil", ""):
        with pytest.raises(BenchError):
            checkpoint_path(bad, "default")
    with pytest.raises(BenchError, match="unknown method"):
        checkpoint_path("no-such-method", "default")


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
    monkeypatch.setattr(_Holder, "checkpoint_dir", tmp_path / "baselines/checkpoints",
                        raising=False)
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
    monkeypatch.setattr(_Holder, "checkpoint_dir", tmp_path / "baselines/checkpoints",
                        raising=False)
    trained = _Holder()
    with torch.no_grad():
        trained.net.weight.normal_()
    path = checkpoint_path(_Holder, "tiny")
    assert path == tmp_path / "baselines/checkpoints/tiny-net-tiny.pt"
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


# ---------------------------------------------------------- a plugin declares its location

PLUGIN = '''
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.api import TrainableMethod
from bench.core.checkpoints import load_into


class AcmeNet(TrainableMethod):
    """A plugin's method: a weak residual of one conv; the logo is the pooled frame mean."""

    name = "acme-net"
    version = "1"

    def __init__(self, profile, device="cpu", checkpoint="default"):
        self.profile = profile
        self.net = nn.Conv2d(3, 3, 1)
        load_into(self, checkpoint)

    def network(self):
        return self.net

    def embed(self, frames, logos, clips=None):
        b, t, c, h, w = frames.shape
        residual = torch.tanh(self.net(frames.reshape(b * t, c, h, w))).reshape(frames.shape)
        return (frames + 0.01 * residual).clamp(0, 1)

    def extract(self, frames):
        return F.adaptive_avg_pool2d(frames.mean(dim=1), self.profile.logo_size).clamp(0, 1)

    def training_losses(self, frames, logos, attack, generator):
        loss = F.mse_loss(self.extract(attack(self.embed(frames, logos), generator)), logos)
        return {"loss": loss, "video_mse": loss.detach(), "logo_mse": loss.detach()}
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """``acme_wm.model.AcmeNet`` in a package on sys.path, registered as ``acme-net`` like an
    entry point of another distribution; returns the class."""
    import importlib
    import sys
    from importlib.metadata import EntryPoint

    from bench.core import registry

    package = tmp_path / "site" / "acme_wm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(registry._entry_points("methods"), "acme-net",
                        EntryPoint("acme-net", "acme_wm.model:AcmeNet", "bench.methods"))
    registry.get.cache_clear()
    yield importlib.import_module("acme_wm.model").AcmeNet
    registry.get.cache_clear()
    for name in ("acme_wm.model", "acme_wm"):
        sys.modules.pop(name, None)


def test_a_plugin_finds_its_checkpoint_in_the_folder_it_declares(tmp_path, plugin):
    from bench.core.weights import expected_checkpoints, list_weights, method_checkpoint

    folder = (tmp_path / "site" / "acme_wm" / "checkpoints").resolve()
    assert plugin.checkpoint_folder() == folder
    path = folder / "acme-net-tiny.pt"
    assert checkpoint_path("acme-net", "tiny") == checkpoint_path(plugin, "tiny") == path
    assert method_checkpoint("acme-net", "tiny") == path
    with pytest.raises(CheckpointMissing) as info:
        plugin(PROFILE)
    trained = tmp_path / "data" / "checkpoints" / "acme-net-tiny.pt"
    assert str(path) in str(info.value)
    assert "python -m bench train --method acme-net --profile tiny" in str(info.value)
    assert f"--checkpoint acme-net={trained}" in str(info.value)

    made = plugin(PROFILE, checkpoint=None)
    with torch.no_grad():
        made.net.weight.normal_()
    save_checkpoint(path, made.net.state_dict(), {"method_version": "1"})
    loaded = plugin(PROFILE)
    assert loaded.checkpoint == path and torch.equal(loaded.net.weight, made.net.weight)

    expected = expected_checkpoints("tiny")
    assert expected[path.as_posix()] == "python -m bench train --method acme-net --profile tiny"
    entry = next(e for e in list_weights(hash_files=False, expected=expected)
                 if e.path == path)
    assert entry.present and "shipped with its package" in entry.how_to_install


def test_checkpoint_dir_absolute_or_under_the_outermost_regular_package(tmp_path, monkeypatch):
    import importlib

    from bench.core.api import package_folder

    class Elsewhere(_Holder):
        checkpoint_dir = tmp_path / "weights"

    assert checkpoint_path(Elsewhere, "tiny") == tmp_path / "weights" / "tiny-net-tiny.pt"
    assert checkpoints.checkpoint_folder(Elsewhere()) == tmp_path / "weights"
    # a namespace package holds no files: the regular package below it does
    (tmp_path / "ns" / "acme2").mkdir(parents=True)
    (tmp_path / "ns" / "acme2" / "__init__.py").write_text("")
    (tmp_path / "ns" / "acme2" / "net.py").write_text("")
    (tmp_path / "lone.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("ns.acme2.net")
    importlib.import_module("lone")
    assert package_folder("ns.acme2.net") == (tmp_path / "ns" / "acme2").resolve()
    assert package_folder("ns.acme2") == (tmp_path / "ns" / "acme2").resolve()
    assert package_folder("lone") == tmp_path.resolve()
    assert package_folder("baselines.udh") == checkpoints.REPO_ROOT / "baselines"
    assert package_folder("methods.safe_sora.model") == checkpoints.REPO_ROOT / "methods"
    for name in ("ns.acme2.net", "ns.acme2", "ns", "lone"):
        monkeypatch.delitem(__import__("sys").modules, name, raising=False)


def test_bench_run_uses_the_shipped_checkpoint_unless_one_is_named(tmp_path, plugin):
    from bench.__main__ import _checkpoint_args
    from bench.core.results import load_results
    from bench.run.runner import MissingMethod, RunConfig, Runner

    def config(**kw):
        return RunConfig(methods="acme-net,identity", attacks="identity", profile="tiny",
                         limit=1, out=tmp_path / "out", cache_dir=None, progress=False,
                         fvd=False, **kw)

    shipped = Runner(config()).methods
    assert isinstance(shipped[0], MissingMethod) and shipped[0].status == "unavailable"
    mine = tmp_path / "data" / "checkpoints" / "acme-net-tiny.pt"
    save_checkpoint(mine, plugin(PROFILE, checkpoint=None).net.state_dict(),
                    {"method_version": "1"})
    assert isinstance(Runner(config()).methods[0], MissingMethod)  # not picked up by itself
    runner = Runner(config(checkpoints=_checkpoint_args([f"acme-net={mine}"])))
    assert runner.methods[0].checkpoint == mine
    assert runner.fingerprints["acme-net"]["checkpoint"] == str(mine)
    runner.run()
    rows = load_results(tmp_path / "out").rows
    acme = rows[rows.method == "acme-net"]
    assert set(acme["status"]) <= {"ok", "unavailable"}  # unavailable: LPIPS offline
    assert acme["w_psnr"].notna().all() and not acme["error"].str.contains("bench train").any()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["checkpoints"] == {"acme-net": str(mine)}
    assert manifest["methods"]["acme-net"]["checkpoint"] == str(mine)

    for bad, message in (({"udh": mine}, "not among the methods"),
                         ({"identity": mine}, "takes no checkpoint"),
                         ({"acme-net": tmp_path / "absent.pt"}, "no such file")):
        with pytest.raises(BenchError, match=message):
            Runner(config(checkpoints=bad))
    for bad in (["acme-net"], ["=x.pt"], ["a=x", "a=y"]):
        with pytest.raises(BenchError, match="--checkpoint"):
            _checkpoint_args(bad)


def test_the_user_data_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFESORA_BENCH_DATA", str(tmp_path / "mine"))
    assert checkpoints.default_data_dir() == tmp_path / "mine"
    assert (checkpoints.user_checkpoint_path("safe-sora/no-msfi", "tiny")
            == tmp_path / "mine" / "checkpoints" / "safe-sora--no-msfi-tiny.pt")
    monkeypatch.delenv("SAFESORA_BENCH_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert checkpoints.default_data_dir() == tmp_path / "xdg" / "safesora-bench"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert checkpoints.default_data_dir() == tmp_path / "home/.local/share/safesora-bench"
