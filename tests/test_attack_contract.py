"""Every registered attack keeps the Attack contract: one family, a one-line description, a
grid with the default first and distinct settings, and canonical names that parse back to
the same setting through the ``--attacks`` grammar."""

from __future__ import annotations

import pytest

from bench import registry
from bench.api import Attack
from bench.attack_spec import build_call, parse_call

#: the family each attack module's attacks belong to
MODULE_FAMILIES = {"attacks.identity": "paper", "attacks.erasure": "paper",
                   "attacks.blur": "paper", "attacks.noise": "paper",
                   "attacks.rotation": "paper", "attacks.h264": "paper",
                   "attacks.codecs": "codec", "attacks.geometric": "geometric",
                   "attacks.photometric": "photometric", "attacks.temporal": "temporal"}


@pytest.mark.parametrize("name", registry.names("attacks"))
def test_registered_attack_keeps_the_contract(name):
    cls = registry.get("attacks", name)
    assert issubclass(cls, Attack) and cls.name == name and cls.version
    assert cls.family == MODULE_FAMILIES[cls.__module__]
    assert cls.description and "\n" not in cls.description
    grid = cls.grid()
    assert grid[0] == cls.default_params()
    canonicals = [cls(p).canonical for p in grid]
    assert len(set(canonicals)) == len(canonicals), canonicals
    for params, canonical in zip(grid, canonicals, strict=True):
        assert canonical.startswith(name)
        call = canonical if "(" in canonical else f"{canonical}()"  # a bare name: its grid
        assert build_call(parse_call(call)).params == params


def test_the_suite_has_every_family():
    families = {registry.get("attacks", n).family for n in registry.names("attacks")}
    assert families == {"paper", "codec", "geometric", "photometric", "temporal"}
    assert len(registry.names("attacks")) >= 15
