"""Profiles are data: one TOML file per evaluation setting."""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
import dataclasses
from pathlib import Path

from bench.core.api import BenchError, Profile

PROFILE_DIR = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


#: the TOML types each kind of Profile field accepts (bool is no int here)
_ACCEPTED = {"int": (int,), "float": (int, float), "str": (str,)}


def _check_types(path: Path, data: dict) -> None:
    """Each known key of ``data`` has its Profile field's type; BenchError naming it if not."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(Profile)}
    for key, value in data.items():
        kind = kinds.get(key)
        if kind not in _ACCEPTED:
            continue  # unknown keys are reported by Profile(**data)
        if isinstance(value, bool) or not isinstance(value, _ACCEPTED[kind]):
            wanted = {"int": "an integer", "float": "a number", "str": "a string"}[kind]
            raise BenchError(f"profile {path}: {key} must be {wanted}, got {value!r} "
                             f"({type(value).__name__})")


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (``default``) or by path to a TOML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise BenchError(f"unknown profile {name_or_path!r} (known: {', '.join(available())})")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"malformed profile {path}: {exc}") from exc
    _check_types(path, data)
    try:
        profile = Profile(**data)
    except TypeError as exc:
        raise BenchError(f"malformed profile {path}: {exc}") from exc
    for key in ("frames", "height", "width", "logo_size", "prompts"):
        if getattr(profile, key) <= 0:
            raise BenchError(f"profile {path}: {key} must be positive")
    if profile.curve_videos < 0:
        raise BenchError(f"profile {path}: curve_videos must be 0 (all) or positive")
    return profile
