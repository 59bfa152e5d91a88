"""Registries: entry points, globbing, did-you-mean, descriptions, ``bench list``."""

from __future__ import annotations

import pytest

from bench.__main__ import main
from bench.core import registry
from bench.core.api import BenchError


def test_builtins_are_registered():
    assert {"identity", "erasure", "blur", "noise", "rotation", "h264"} <= set(
        registry.names("attacks"))
    assert {"identity", "dct-qim"} <= set(registry.names("methods"))
    assert {"w-psnr", "w-ssim", "v-psnr", "v-ssim", "v-lpips", "tlp", "fvd"} <= set(
        registry.names("metrics"))
    assert {"generated", "folder"} <= set(registry.names("sources"))


def test_names_are_lower_case_with_hyphens():
    for kind in registry.KINDS:
        for name in registry.names(kind):
            assert name == name.lower() and "_" not in name and " " not in name


def test_unknown_name_suggests_close_ones():
    with pytest.raises(BenchError, match="did you mean .*'h264'"):
        registry.get("attacks", "h246")
    with pytest.raises(BenchError, match="unknown method 'nothing-like-it'"):
        registry.resolve("methods", "nothing-like-it")


def test_resolve_all_globs_and_lists():
    assert registry.resolve("attacks", "all") == registry.names("attacks")
    assert registry.resolve("attacks", "blur,noise") == ["blur", "noise"]
    assert registry.resolve("methods", "dct-*") == ["dct-qim"]
    with pytest.raises(BenchError):
        registry.resolve("methods", "zzz*")


def test_describe_gives_version_and_one_line():
    version, desc = registry.describe("attacks", "h264")
    assert version and desc and "\n" not in desc


def test_cli_list_prints_names_and_versions(capsys):
    assert main(["list", "attacks"]) == 0
    out = capsys.readouterr().out
    for name in ("identity", "erasure", "blur", "noise", "rotation", "h264"):
        assert name in out
    assert main(["list", "metrics"]) == 0
    assert "w-psnr" in capsys.readouterr().out


def test_cli_list_methods_shows_the_checkpoint_each_loads(capsys):
    assert main(["list", "methods", "*", "--profile", "no-such-profile"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "baselines/checkpoints/balujanet-no-such-profile.pt (missing: bench train)" \
        in lines["balujanet"]
    assert "methods/checkpoints/safe-sora--no-msfi-no-such-profile.pt (missing" \
        in lines["safe-sora/no-msfi"]
    assert "- (no weights)" in lines["dct-qim"]


def test_cli_unknown_method_fails_with_did_you_mean(capsys, tmp_path):
    code = main(["run", "--methods", "dct-qm", "--attacks", "identity", "--limit", "1",
                 "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    assert "did you mean 'dct-qim'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["list", "run", "report", "gate", "compare", "weights",
                                     "train"])
def test_cli_help_of_every_command_prints(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out
