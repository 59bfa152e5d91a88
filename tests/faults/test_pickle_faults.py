"""Malicious pickles at every load site: each is refused (a clear error, or an entry read as
absent), and the payload never runs. The payload is live: plain ``pickle.loads`` runs it."""

from __future__ import annotations

import io
import os
import pickle

import pytest
import torch

from bench.core.api import BenchError


class _Payload:
    """Unpickling this creates ``marker`` (through ``os.system``: code from the file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _torch_file(path, marker):
    buf = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "evil": _Payload(marker)}, buf)
    path.write_bytes(buf.getvalue())
    return path


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def _cache_site(tmp_path, path):
    from bench.core.store import Cache, make_key

    cache = Cache(tmp_path / "cache")
    key = make_key("k")
    cache.put_tensors("watermarked", key, {"video": torch.zeros(2, dtype=torch.uint8)})
    (entry,) = (tmp_path / "cache").rglob("*.pt")
    entry.write_bytes(path.read_bytes())
    assert cache.get_tensors("watermarked", key, ("video",)) is None
    assert cache.rejected["watermarked"] == 1


def _checkpoint_site(tmp_path, path):
    from bench.core.checkpoints import load_checkpoint

    with pytest.raises(BenchError, match="weights-only"):
        load_checkpoint(path)


def _training_state_site(tmp_path, path):
    from bench.train.loop import _load_state

    with pytest.raises(BenchError, match="cannot be read"):
        _load_state(path, None, ())


def _lpips_sites(tmp_path, path, monkeypatch):
    import bench.metrics.lpips as m

    monkeypatch.setattr(m, "alexnet_path", lambda: path)
    with pytest.raises(m.LpipsUnavailable, match="cannot read"):
        m._load_alexnet_backbone(torch.nn.Module())
    monkeypatch.setattr(m, "lpips_linear_path", lambda: path)
    with pytest.raises(m.LpipsUnavailable, match="cannot read"):
        m._load_linear_layers(torch.nn.Module())


SITES = {"cache tensors": _cache_site, "checkpoint": _checkpoint_site,
         "training state": _training_state_site}


@pytest.mark.parametrize("site", sorted(SITES))
def test_malicious_torch_files_are_refused(tmp_path, faults, site):
    marker = tmp_path / "ran"
    path = _torch_file(tmp_path / "evil.pt", marker)
    with faults.inject(f"malicious pickle: {site}"):
        SITES[site](tmp_path, path)
        assert not marker.exists()


def test_malicious_lpips_weights_are_refused(tmp_path, faults, monkeypatch):
    marker = tmp_path / "ran"
    path = _torch_file(tmp_path / "evil.pth", marker)
    with faults.inject("malicious pickle: LPIPS weights", 2):
        _lpips_sites(tmp_path, path, monkeypatch)
        assert not marker.exists()


def test_malicious_i3d_weights_are_refused(tmp_path, faults):
    from bench.metrics.i3d import load_i3d, load_numpy_pickle

    marker = tmp_path / "ran"
    path = tmp_path / "i3d.pkl"
    path.write_bytes(pickle.dumps({"params": {"w": _Payload(marker)}}))
    with faults.inject("malicious pickle: I3D weights"):
        with pytest.raises(pickle.UnpicklingError, match="refused global"):
            load_numpy_pickle(path)
        with pytest.raises(BenchError, match="cannot read the I3D weights"):
            load_i3d("cpu", path=path)
        assert not marker.exists()


def test_malicious_cache_entry_in_a_run(tmp_path, clean, faults, run_config):
    """A watermarked-video entry replaced by a pickle payload: rejected, recomputed."""
    import shutil

    from bench.core.results import load_results
    from bench.run.runner import run

    marker = tmp_path / "ran"
    cache = shutil.copytree(clean.cache, tmp_path / "cache")
    entries = sorted((cache / "watermarked").rglob("*.pt"))
    for entry in entries:
        _torch_file(entry, marker)
    for row in (cache / "rows").rglob("*.json"):
        row.unlink()  # so that the videos are needed
    with faults.inject("malicious pickle: cache entries in a run", len(entries)):
        summary = run(run_config(tmp_path / "out", cache))
        assert not marker.exists()
        assert summary.rejected_cache_entries == len(entries)
        assert faults.compare(clean.rows, load_results(summary.out).rows) == 0
