"""Attack specs (bench/run/attack_spec.py) and the chain attack (attacks/chain.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from attacks.blur import Blur
from attacks.chain import Chain
from attacks.erasure import Erasure
from attacks.h264 import H264
from attacks.noise import Noise
from bench.core import registry
from bench.core.api import Attack, AttackParams, BenchError
from bench.core.registry import split_list as split_entries
from bench.run.attack_spec import attack_groups, build_call, parse_call
from bench.run.runner import build_attacks, first_settings, is_paper_setting

PAPER = ["blur", "erasure", "h264", "identity", "noise", "rotation"]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clip(t: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(t, 3, h, w, generator=seeded(seed)) * 0.9 + 0.05


def one(spec: str) -> Attack:
    (group,) = attack_groups(spec)
    assert len(group) == 1
    return group[0]


# --- syntax ---------------------------------------------------------------------------------

def test_commas_inside_parentheses_do_not_split():
    assert split_entries("blur,chain(blur(3),noise(0.05))") == ["blur",
                                                                "chain(blur(3),noise(0.05))"]
    assert split_entries(" a , b(1, 2) ,, c ") == ["a", "b(1, 2)", "c"]
    assert split_entries("h264(preset='a,b'),x") == ["h264(preset='a,b')", "x"]
    assert len(attack_groups("blur,chain(blur(3),noise(0.05))")) == 2


def test_values_parse_to_numbers_strings_tuples():
    call = parse_call("x(1, -2.5, 5e-2, medium, 'two words', (0, 0.1), U(1,2), None, k=3)")
    assert call.name == "x"
    assert call.args == (1, -2.5, 0.05, "medium", "two words", (0, 0.1), (1, 2), None)
    assert isinstance(call.args[0], int) and isinstance(call.args[1], float)
    assert call.kwargs == (("k", 3),)


# --- settings -------------------------------------------------------------------------------

def test_bare_name_gives_the_grid_and_a_call_one_setting():
    assert [a.canonical for a in attack_groups("blur")[0]] == \
        [Blur(p).canonical for p in Blur.grid()]
    assert one("blur(3)").canonical == "blur(kernel=3)"
    assert one("blur()").canonical == Blur().canonical  # empty parentheses: the default
    assert one("h264(28)").params == H264.Params(crf=28)
    assert one("h264(crf=28, preset=fast)").canonical == "h264(crf=28,preset=fast)"
    assert one("h264(28, 'slow')").canonical == "h264(crf=28,preset=slow)"


@pytest.mark.parametrize("spelling", [
    "chain(blur(kernel=3),noise(sigma=0.05))", "chain(blur(3),noise(0.05))",
    " chain( blur( 3 ) , noise(sigma=5e-2) ) ", "chain(blur(3.0),noise(sigma=0.050))",
    "chain(chain(blur(3)),noise(0.05))",  # a chain inside a chain is flattened
])
def test_chain_canonical_is_stable_across_spellings(spelling):
    attack = one(spelling)
    assert attack.canonical == "chain(blur(kernel=3),noise(sigma=0.05))"
    assert attack.name == "chain" and attack.family == "chain"
    assert attack.version == "1(1,1)"


def test_ints_become_floats_for_float_fields():
    assert one("rotation(5)").canonical == one("rotation(angle=5.0)").canonical \
        == "rotation(angle=5.0)"
    assert one("noise((0, 0.1))").canonical == "noise(sigma=U(0.0,0.1))"


def _every_registered_setting() -> list[Attack]:
    out = []
    for name in registry.names("attacks"):
        cls = registry.get("attacks", name)
        out.extend(cls(p) for p in cls.grid())
    return out


def test_every_canonical_parses_back_to_itself():
    settings = _every_registered_setting()
    assert settings
    for attack in settings:
        again = attack_groups(attack.canonical)
        if "(" in attack.canonical:
            assert len(again) == 1 and len(again[0]) == 1
        assert again[0][0].canonical == attack.canonical
        assert again[0][0].params == attack.params
    chain = Chain.of(*settings[:3])
    assert one(chain.canonical).canonical == chain.canonical


def test_paper_is_exactly_the_six():
    assert registry.resolve("attacks", "paper") == PAPER
    groups = attack_groups("paper")
    assert sorted({g[0].name for g in groups}) == PAPER
    assert all(g[0].family == "paper" for g in groups)
    assert "identity" in {a.canonical for g in groups for a in g}


def test_all_is_every_registered_setting():
    names = registry.names("attacks")
    assert registry.resolve("attacks", "all") == names
    assert "chain" not in names  # no setting without parts
    expected = [a.canonical for a in _every_registered_setting()]
    assert sorted(a.canonical for a in build_attacks("all")) == sorted(expected)
    # "all" and "paper" also work as entries of a list, with other entries
    mixed = build_attacks("paper,chain(blur(3),noise(0.05)),all")
    assert len(mixed) == len(expected) + 1


def test_first_settings_under_curve_videos():
    """The setting each entry gives every video: a grid's first point, else the one given."""
    firsts = [a.canonical for a in first_settings("blur,noise(0.1),chain(blur(3),identity)")]
    assert firsts == ["blur(kernel=5)", "noise(sigma=0.1)", "chain(blur(kernel=3),identity)"]
    assert is_paper_setting(one("chain(blur(3),identity)"))
    assert [a.canonical for a in build_attacks("blur(3),blur")] == \
        ["blur(kernel=3)", "blur(kernel=5)", "blur(kernel=7)"]  # repeated settings once


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,message", [
    ("blurr", "unknown attack 'blurr'; did you mean 'blur'"),
    ("chain(blur(3),nosie(0.1))", "unknown attack 'nosie'.*in 'nosie\\(0.1\\)'"),
    ("blur(k=3)", "no parameter 'k' in 'blur\\(k=3\\)' \\(its parameters: kernel, sigma\\)"),
    ("blur(3,1,2)", "at most 2 argument"),
    ("blur(kernel=3,kernel=5)", "given twice"),
    ("blur(4)", "bad value in 'blur\\(4\\)'.*odd"),
    ("blur(abc)", "bad value 'abc' for parameter 'kernel' of 'blur'"),
    ("h264(crf=2.5)", "bad value 2.5 for parameter 'crf'"),
    ("rotation(angle=left)", "bad value 'left'.*expected float or tuple"),
    ("noise(sigma=blur(3))", "bad value blur\\(3\\)"),
    ("blur(3", "unbalanced parentheses.*never closed"),
    ("chain(blur(3),noise(0.1)", "unbalanced parentheses"),
    ("blur(3))", "unbalanced parentheses.*closes nothing"),
    ("h264(preset='fast)", "unclosed quote"),
    ("chain()", "empty chain 'chain\\(\\)'"),
    ("chain", "needs its parts"),
    ("chain(x=blur(3))", "not keyword arguments"),
    ("chain(bl*)", "syntax error"),
    ("blur(3)x", "syntax error in attack spec 'blur\\(3\\)x'"),
    ("blur(kernel=3, 5)", "positional ones come first"),
    ("blur(,)", "expected a value"),
    ("crf=28", "syntax error"),
    ("zzz*", "no attacks match"),
    ("", "no attacks given"),
])
def test_bad_specs_raise_naming_the_part(spec, message):
    with pytest.raises(BenchError, match=message):
        attack_groups(spec)


def test_registry_resolve_checks_calls_and_methods_take_none():
    assert registry.resolve("attacks", "blur,chain(blur(3),noise(0.05))") == ["blur", "chain"]
    with pytest.raises(BenchError, match="no parameter"):
        attack_groups("blur(k=3)")
    with pytest.raises(BenchError, match="unknown attack"):
        registry.resolve("attacks", "blurr(3)")
    with pytest.raises(BenchError, match="take no arguments"):
        registry.resolve("methods", "dct-qim(3)")
    assert registry.get("attacks", "chain") is Chain
    with pytest.raises(BenchError, match="did you mean 'chain'"):
        registry.get("attacks", "chian")


def test_cli_rejects_a_bad_spec_before_the_run_starts(tmp_path, capsys):
    from bench.__main__ import main

    out = tmp_path / "r"
    code = main(["run", "--methods", "identity", "--attacks", "blur,chain(blur(3),noise(x))",
                 "--limit", "1", "--out", str(out), "--quiet", "--no-fvd"])
    assert code == 2
    assert "bad value 'x' for parameter 'sigma' of 'noise'" in capsys.readouterr().err
    assert not out.exists()


def test_cli_list_attacks_shows_families_and_the_chain_syntax(capsys):
    from bench.__main__ import main

    assert main(["list", "attacks"]) == 0
    out = capsys.readouterr().out
    assert "chain(A(...),B(...),...)" in out and "family" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("blur "))
    assert " paper " in line


# --- the chain attack -----------------------------------------------------------------------

def test_chain_applies_parts_in_order_with_one_generator():
    frames = clip()
    chain = one("chain(erasure(0.1),blur(3),noise(0.05))")
    got = chain(frames, seeded(7))
    generator = seeded(7)  # the parts, one after the other, with one generator
    expected = Erasure(Erasure.Params(area=0.1))(frames, generator)
    expected = Blur(Blur.Params(kernel=3))(expected, generator)
    expected = Noise(Noise.Params(sigma=0.05))(expected, generator)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    parts = chain.info()["parts"]  # each part's info, and all of them merged
    assert len(parts) == 3 and parts[1] == {} and parts[2] == {"sigma": 0.05}
    assert chain.info()["area"] == parts[0]["area"] and chain.info()["sigma"] == 0.05
    swapped = one("chain(noise(0.05),blur(3),erasure(0.1))")(frames, seeded(7))
    assert not torch.equal(swapped, got)  # the order matters
    assert math.isnan(chain.strength())


def test_chain_info_has_the_codec_bytes():
    frames = clip(t=4, h=16, w=16)
    chain = one("chain(blur(3),h264(28))")
    out = chain(frames, seeded(0))
    codec = H264(H264.Params(crf=28))
    alone = codec(Blur(Blur.Params(kernel=3))(frames, seeded(0)), seeded(0))
    torch.testing.assert_close(out, alone, rtol=0, atol=0)
    assert chain.info()["bytes"] == codec.info()["bytes"] > 0


def test_chain_version_follows_its_parts():
    class Blur2(Blur):
        version = "2"

    a = Chain.of(Blur(Blur.Params(kernel=3)), Noise(Noise.Params(sigma=0.1)))
    b = Chain.of(Blur2(Blur.Params(kernel=3)), Noise(Noise.Params(sigma=0.1)))
    assert a.canonical == b.canonical and a.params == b.params
    assert (a.version, b.version) == ("1(1,1)", "1(2,1)")
    assert Chain.version == "1"


def test_chain_train_form_composes_the_parts():
    frames = clip()[None].repeat(2, 1, 1, 1, 1)
    chain = one("chain(blur(3),noise(0.05))")
    got = chain.train_form()(frames, seeded(1))
    generator = seeded(1)
    expected = Blur(Blur.Params(kernel=3)).train_form()(frames, generator)
    expected = Noise(Noise.Params(sigma=0.05)).train_form()(expected, generator)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


class _NoTrainForm(Attack):
    name, version, family = "no-train", "1", "other"

    @dataclass(frozen=True)
    class Params(AttackParams):
        pass

    def __call__(self, frames, generator):
        return frames


def test_chain_train_form_fails_when_a_part_has_none():
    chain = Chain.of(Blur(), _NoTrainForm())
    with pytest.raises(BenchError, match="chain part no-train has no training form"):
        chain.train_form()
    assert chain(clip(), seeded()).shape == clip().shape  # evaluation still works


def test_chain_needs_parts():
    with pytest.raises(BenchError, match="no default setting"):
        Chain()
    with pytest.raises(BenchError, match="empty chain"):
        Chain.Params(parts=())
    with pytest.raises(BenchError, match="must be an attack"):
        Chain.Params(parts=("blur",))
    assert Chain.grid() == []
    assert build_call(parse_call("chain(blur)")).canonical == "chain(blur(kernel=5))"
