"""Where trained weights live, and how they are written and read.

A checkpoint is two files side by side:

* ``{name}-{profile}.pt``: ``torch.save`` of a plain ``dict[str, Tensor]`` (CPU, contiguous),
  loadable with ``torch.load(path, weights_only=True)`` (no pickled code);
* ``{name}-{profile}.card.json``: what made it (method, version, profile, steps, seed, command,
  validation scores, size, sha256, ...).

A method declares where its shipped checkpoints live (``Method.checkpoint_dir``, by default
``<its top-level package>/checkpoints``: ``baselines/checkpoints/``, ``methods/checkpoints/``
for Safe-Sora and its variants, a plugin's own package folder); ``bench run`` loads those
unless ``--checkpoint NAME=PATH`` names another file. ``bench train`` writes into the user
data folder (``user_checkpoint_path``), never into the installed packages unless ``--out``
says so. Both files are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

from bench.core.api import BenchError, Profile, declared_checkpoint_folder

__all__ = ["DATA_ENV_VAR", "REPO_ROOT", "CheckpointMissing", "card_curve", "card_path",
           "checkpoint_file_name", "checkpoint_folder", "checkpoint_path", "default_data_dir",
           "fit_state", "shift_curve", "load_card", "load_checkpoint", "load_into",
           "save_checkpoint", "train_command", "user_checkpoint_path"]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the user data folder (trained checkpoints go to its ``checkpoints/``)
DATA_ENV_VAR = "SAFESORA_BENCH_DATA"


class CheckpointMissing(BenchError):
    """A checkpoint file is absent (or ``reason``: unusable); the message names it, the
    command that makes it and, when given, how to use what that command writes (``use``)."""

    def __init__(self, path: Path | str, command: str, reason: str = "is missing",
                 use: str = ""):
        self.path = Path(path)
        self.command = command
        super().__init__(f"checkpoint {self.path} {reason}; make it with `{command}`"
                         + (f" {use}" if use else ""))


def train_command(method_name: str, profile_name: str) -> str:
    """The command line that trains ``method_name`` for a profile (its defaults otherwise)."""
    return f"python -m bench train --method {method_name} --profile {profile_name}"


def default_data_dir() -> Path:
    """``$SAFESORA_BENCH_DATA``, else ``$XDG_DATA_HOME/safesora-bench`` (``~/.local/share``)."""
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "safesora-bench"


def checkpoint_file_name(method_name: str, profile_name: str) -> str:
    """``{method_name}-{profile_name}.pt``; a variant's ``/`` becomes ``--``
    (``safe-sora/no-msfi`` -> ``safe-sora--no-msfi-default.pt``)."""
    if method_name.count("/") == 1 and all(method_name.split("/")):
        method_name = method_name.replace("/", "--")
    for part, what in ((method_name, "method name"), (profile_name, "profile name")):
        if not part or "/" in part or "\\" in part or part.startswith("."):
            raise BenchError(f"{what} {part!r} cannot be part of a checkpoint file name")
    return f"{method_name}-{profile_name}.pt"


def _method_class(method) -> type:
    """The class of ``method``: a registered name, a class or an instance."""
    if isinstance(method, str):
        from bench.core import registry

        method = registry.get("methods", method)
    return method if isinstance(method, type) else type(method)


def checkpoint_folder(method) -> Path:
    """The folder ``method`` (a registered name, a class or an instance) declares for its
    shipped checkpoints: its ``checkpoint_folder()``, or for a class without one its
    ``checkpoint_dir`` resolved the same way (``declared_checkpoint_folder``)."""
    cls = _method_class(method)
    declared = getattr(cls, "checkpoint_folder", None)
    return Path(declared()) if callable(declared) else declared_checkpoint_folder(cls)


def _name_of(method) -> str:
    return method if isinstance(method, str) else method.name


def checkpoint_path(method, profile_name: str, folder: Path | str | None = None) -> Path:
    """The shipped checkpoint of ``method`` (a registered name, a class or an instance) on a
    profile: ``checkpoint_folder(method) / checkpoint_file_name(name, profile_name)``.
    ``folder`` replaces the declared folder (and ``method`` may then be any name)."""
    file_name = checkpoint_file_name(_name_of(method), profile_name)
    return (Path(folder) if folder is not None else checkpoint_folder(method)) / file_name


def user_checkpoint_path(method, profile_name: str) -> Path:
    """Where ``bench train`` writes a checkpoint by default: the user data folder's
    ``checkpoints/{file name}``, outside the installed packages."""
    return checkpoint_path(_name_of(method), profile_name, default_data_dir() / "checkpoints")


def card_path(path: Path | str) -> Path:
    """The card beside a checkpoint: ``x-default.pt`` -> ``x-default.card.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.card.json")


def _atomic_write(path: Path, data: bytes) -> None:
    from bench.core.results import atomic_write_bytes

    atomic_write_bytes(path, data)


def _plain_state_dict(state_dict: dict) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise BenchError(f"a checkpoint holds only named tensors; {key!r} is "
                             f"{type(value).__name__}")
        out[key] = value.detach().to("cpu").contiguous().clone()
    return out


def save_checkpoint(path: Path | str, state_dict: dict, card: dict) -> Path:
    """Write ``state_dict`` (tensors only) to ``path`` and ``card`` to its ``.card.json``.

    The card written gains ``checkpoint_file``, ``checkpoint_bytes`` and ``sha256`` (of the
    weight file). Both writes are atomic. Returns ``path``.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(_plain_state_dict(state_dict), buffer)
    data = buffer.getvalue()
    _atomic_write(path, data)
    full_card = {**card, "checkpoint_file": path.name, "checkpoint_bytes": len(data),
                 "sha256": hashlib.sha256(data).hexdigest()}
    text = json.dumps(full_card, indent=2, sort_keys=False, default=_json_default) + "\n"
    _atomic_write(card_path(path), text.encode())
    return path


def _json_default(value: Any):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def load_checkpoint(path: Path | str, command: Optional[str] = None
                    ) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict on the CPU, card)``; the card is ``{}`` when its file is absent.

    A missing weight file raises ``CheckpointMissing`` (naming ``command`` when given), an
    unreadable one ``BenchError``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointMissing(path, command or "python -m bench train --method NAME "
                                "--profile PROFILE")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BenchError(f"checkpoint {path} cannot be read as a weights-only torch file: "
                         f"{exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise BenchError(f"checkpoint {path} is not a plain dict of tensors")
    return state, load_card(path)


def load_card(path: Path | str) -> dict:
    """The card beside the checkpoint ``path`` (``{}`` when absent); BenchError if malformed."""
    cpath = card_path(path)
    if not cpath.is_file():
        return {}
    try:
        card = json.loads(cpath.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"checkpoint card {cpath} is not valid JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise BenchError(f"checkpoint card {cpath} is not a JSON object")
    return card


def _profile_name(method, profile: Profile | str | None) -> str:
    profile = profile if profile is not None else getattr(method, "profile", None)
    if profile is None:
        raise BenchError(f"method {method.name!r}: load_into needs the profile (pass profile= "
                         "or set self.profile before calling it)")
    return profile if isinstance(profile, str) else profile.name


def load_into(method, checkpoint: Path | str | None = "default",
              profile: Profile | str | None = None) -> Optional[Path]:
    """Load weights into ``method.network()``; called by trainable methods' constructors.

    ``checkpoint``: ``"default"`` (the shipped file for the method and profile, in the folder
    it declares, see ``checkpoint_path``), ``None`` (keep the fresh initialisation: training)
    or a path.
    ``profile`` defaults to ``method.profile``. Sets and returns ``method.checkpoint`` (the
    file loaded, or None). Raises ``CheckpointMissing`` when the file is absent and
    ``BenchError`` when its tensors do not fit the network.
    """
    if checkpoint is None:
        method.checkpoint = None
        return None
    if isinstance(checkpoint, str) and checkpoint == "default":
        profile_name = _profile_name(method, profile)
        path = checkpoint_path(method, profile_name)
        command = train_command(method.name, profile_name)
        use = (f"and pass it to bench run: `--checkpoint {method.name}="
               f"{user_checkpoint_path(method.name, profile_name)}`")
    else:
        path = Path(checkpoint)
        known = profile if profile is not None else getattr(method, "profile", None)
        name = "PROFILE" if known is None else (known if isinstance(known, str) else known.name)
        command = train_command(method.name, name) + f" --out {path}"
        use = ""
    if not path.is_file():
        raise CheckpointMissing(path, command, use=use)
    state, card = load_checkpoint(path, command)
    trained = card.get("method_version")
    if trained is not None and str(trained) != str(method.version):
        # same tensors, other behaviour (e.g. another logo mapping): not this method's weights
        raise CheckpointMissing(path, command, f"was trained for {method.name!r} version "
                                               f"{trained}, not version {method.version}", use)
    fit_state(method, state, card, path, command)
    method.checkpoint = path
    return path


def fit_state(method, state: dict[str, torch.Tensor], card: dict, path: Path | str,
              command: str, unused_ok: bool = False) -> list[str]:
    """Load ``state`` (read from ``path``) into ``method.network()``; returns the names of
    the tensors left unused.

    Every tensor of the network must be in ``state`` with its shape. With ``unused_ok``
    ``state`` may hold more (a warm start from a larger relative, e.g. a Safe-Sora variant
    without MSFI from the full model); otherwise it must hold exactly the network's tensors.
    """
    network = method.network()
    unused = sorted(set(state) - set(network.state_dict())) if unused_ok else []
    try:
        network.load_state_dict({k: v for k, v in state.items() if k not in unused},
                                strict=True)
    except RuntimeError as exc:
        trained = card.get("method_version", "?")
        raise BenchError(
            f"checkpoint {path} does not fit {method.name!r} version {method.version} "
            f"(trained with version {trained}); retrain with `{command}`: {exc}") from exc
    return unused


def shift_curve(history: list[dict], offset: int) -> list[dict]:
    """Validation entries ``{step, w_psnr, v_psnr}`` with ``offset`` added to each step."""
    return [{"step": int(h["step"]) + offset, "w_psnr": h.get("w_psnr"),
             "v_psnr": h.get("v_psnr")} for h in history]


def card_curve(card: dict) -> list[dict]:
    """The whole validation curve of a checkpoint over its ``--init`` chain, in total steps.

    Cards since the curve was recorded carry it (``curve``); for an older card it is its own
    ``history`` shifted by the steps of the chain before it (the earlier points are unknown).
    """
    if card.get("curve") is not None:
        return [dict(point) for point in card["curve"]]
    init = card.get("init") or {}
    return shift_curve(card.get("history") or [], int(init.get("total_steps") or 0))
