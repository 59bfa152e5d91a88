"""Every registered attack keeps the Attack contract: one family, a one-line description, a
grid with the default first and distinct settings, and canonical names that parse back to
the same setting through the ``--attacks`` grammar."""

from __future__ import annotations

import pytest

from bench.core import registry
from bench.core.api import Attack
from bench.run.attack_spec import build_call, parse_call

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


@pytest.mark.parametrize("name", registry.names("attacks"))
def test_info_is_empty_before_a_call_and_a_fresh_dict_after(name):
    import torch

    attack = registry.get("attacks", name)()
    assert attack.info() == {}
    attack(torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)),
           torch.Generator().manual_seed(1))
    info = attack.info()
    assert isinstance(info, dict) and all(isinstance(k, str) for k in info)
    info["changed"] = True
    assert "changed" not in attack.info()


def test_a_param_field_checks_and_normalises_its_value_and_default():
    from dataclasses import dataclass

    from attacks import float_or_range, integer
    from bench.core.api import AttackParams, BenchError

    @dataclass(frozen=True)
    class Params(AttackParams):
        level: int = integer(3.0, 0, 9, "demo level")
        spread: float = float_or_range((0, 1), 0.0, 2.0)

    assert (Params().level, Params().spread) == (3, (0.0, 1.0))
    assert Params(level=4.0, spread=1).canonical_args() == "level=4,spread=1.0"
    with pytest.raises(BenchError, match=r"demo level must be an integer in \[0, 9\], got 10"):
        Params(level=10)
    with pytest.raises(BenchError, match=r"spread must lie in \[0.0, 2.0\]"):
        Params(spread=3)
