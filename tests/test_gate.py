"""bench.gate: pass, regressions in both directions, new errors, versions, malformed files."""

from __future__ import annotations

import math

import pytest

from bench.core.results import ROW_COLUMNS, SET_COLUMNS, write_manifest, write_table
from bench.gate import load_thresholds, run_gate

VIDEOS = ["v0", "v1", "v2", "v3"]


def write_run(folder, w_psnr=30.0, v_lpips=0.10, method_version="1", attack_version="1",
              error_video=None, fvd=50.0):
    """dct-qim on 4 videos x (identity, blur(k=3)); W-PSNR and V-LPIPS constant per run."""
    rows = []
    for video in VIDEOS:
        for attack, params, drop in (("identity", "identity", 0.0), ("blur", "blur(k=3)", 5.0)):
            row = {"video_id": video, "logo_id": "l0", "method": "dct-qim",
                   "method_version": method_version, "attack": attack,
                   "attack_version": attack_version, "attack_params": params, "strength": 3.0,
                   "seed": 0, "w_psnr": w_psnr - drop, "w_ssim": 0.9, "v_psnr": 40.0,
                   "v_ssim": 0.95, "v_lpips": v_lpips, "tlp": 0.01, "status": "ok",
                   "error": ""}
            if video == error_video and attack == "blur":
                row.update(status="error", error="RuntimeError: boom", w_psnr=math.nan)
            rows.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    write_table(folder / "rows.csv", rows, ROW_COLUMNS)
    write_table(folder / "sets.csv",
                [{"method": "dct-qim", "method_version": method_version, "attack": "identity",
                  "attack_params": "identity", "metric": "fvd", "value": fvd, "n": 4,
                  "status": "ok", "reason": ""}], SET_COLUMNS)
    write_manifest(folder / "manifest.json", {"finished": "2025-01-01T00:00:00",
                                              "rows": len(rows), "clips": len(VIDEOS)})
    return folder


THRESHOLDS = """
reference = "ref"
[defaults]
tolerance = 0.5

[[check]]
method = "dct-qim"
attack = "identity"
metric = "w_psnr"
floor = 20.0
tolerance = 1.0

[[check]]
method = "dct-qim"
attack = "blur(k=3)"
metric = "v_lpips"

[[check]]
method = "dct-qim"
attack = "identity"
metric = "fvd"
"""


@pytest.fixture
def gate_dir(tmp_path):
    write_run(tmp_path / "ref")
    (tmp_path / "gate.toml").write_text(THRESHOLDS)
    return tmp_path


def gate(folder, candidate, text=None):
    thresholds = folder / "gate.toml"
    if text is not None:
        thresholds = folder / "custom.toml"
        thresholds.write_text(text)
    lines: list[str] = []
    code = run_gate(candidate, thresholds, out=lines.append)
    return code, "\n".join(lines)


def test_identical_run_passes(gate_dir):
    code, text = gate(gate_dir, write_run(gate_dir / "cand"))
    assert code == 0, text
    assert "30" in text and ">= 29" in text  # value and bound (30 - tolerance 1.0) printed
    assert "0 failed" in text


def test_small_worsening_within_tolerance_passes(gate_dir):
    code, text = gate(gate_dir, write_run(gate_dir / "cand", w_psnr=29.2, v_lpips=0.55))
    assert code == 0, text


def test_higher_is_better_regression_fails(gate_dir):
    code, text = gate(gate_dir, write_run(gate_dir / "cand", w_psnr=28.9))
    assert code == 1
    assert "regression" in text


def test_lower_is_better_regression_fails(gate_dir):
    # V-LPIPS is lower-is-better: rising by more than the default 0.5 fails, falling passes
    code, text = gate(gate_dir, write_run(gate_dir / "cand", v_lpips=0.65))
    assert code == 1 and "regression" in text
    code, text = gate(gate_dir, write_run(gate_dir / "cand2", v_lpips=0.0))
    assert code == 0, text
    code, text = gate(gate_dir, write_run(gate_dir / "cand3", fvd=51.0))  # FVD, set level
    assert code == 1 and "regression" in text


def test_floor_applies_without_reference(tmp_path):
    write_run(tmp_path / "low", w_psnr=19.0)
    text = 'reference = "nothing-here"\n'
    code, out = gate(tmp_path, tmp_path / "low", text)
    assert code == 2 and "not found" in out
    text = '[[check]]\nmethod = "dct-qim"\nattack = "identity"\nmetric = "w_psnr"\nfloor = 20.0\n'
    code, out = gate(tmp_path, tmp_path / "low", text)
    assert code == 1 and "below the floor" in out
    write_run(tmp_path / "high", w_psnr=21.0)
    code, out = gate(tmp_path, tmp_path / "high", text)
    assert code == 0, out


def test_new_error_row_fails_but_old_error_does_not(gate_dir):
    code, text = gate(gate_dir, write_run(gate_dir / "cand", error_video="v2"))
    assert code == 1
    assert "1 new error row" in text and "RuntimeError: boom" in text
    write_run(gate_dir / "ref", error_video="v2")  # the reference had the same error
    code, text = gate(gate_dir, write_run(gate_dir / "cand2", error_video="v2"))
    assert code == 0, text


def test_version_change_is_not_comparable(gate_dir):
    code, text = gate(gate_dir, write_run(gate_dir / "cand", w_psnr=25.0, method_version="2"))
    assert code == 0, text
    assert "not comparable" in text and "method version 1 -> 2" in text
    code, text = gate(gate_dir, write_run(gate_dir / "cand2", w_psnr=25.0, attack_version="2"))
    assert code == 0 and "attack version 1 -> 2" in text
    # the floor still applies to a run that is not comparable
    code, text = gate(gate_dir, write_run(gate_dir / "cand3", w_psnr=15.0, method_version="2"))
    assert code == 1 and "below the floor" in text


def test_check_absent_from_candidate_fails(gate_dir):
    text = THRESHOLDS.replace('attack = "blur(k=3)"', 'attack = "rotation"')
    code, out = gate(gate_dir, write_run(gate_dir / "cand"), text)
    assert code == 1 and "absent from the candidate" in out


MALFORMED = {
    "toml syntax": ("[[check]\nmethod = 1", "not valid TOML"),
    "tolerance typo": (THRESHOLDS.replace("tolerance = 1.0", "tolerence = 1.0"),
                       "did you mean 'tolerance'"),
    "defaults typo": (THRESHOLDS.replace("tolerance = 0.5", "tolerence = 0.5"),
                      "did you mean 'tolerance'"),
    "top-level key": ("referense = 'ref'\n", "did you mean 'reference'"),
    "unknown metric": (THRESHOLDS.replace('metric = "v_lpips"', 'metric = "w_pnsr"'),
                       "did you mean 'w_psnr'"),
    "missing metric": ('[[check]]\nmethod = "dct-qim"\nattack = "identity"\n',
                       "missing 'metric'"),
    "missing method": ('[[check]]\nattack = "identity"\nmetric = "w_psnr"\n',
                       "missing 'method'"),
    "text floor": (THRESHOLDS.replace("floor = 20.0", 'floor = "20"'), "must be a number"),
    "bool floor": (THRESHOLDS.replace("floor = 20.0", "floor = true"), "must be a number"),
    "negative tolerance": (THRESHOLDS.replace("tolerance = 0.5", "tolerance = -1"), ">= 0"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_thresholds_exit_2(gate_dir, case):
    text, message = MALFORMED[case]
    code, out = gate(gate_dir, write_run(gate_dir / "cand"), text)
    assert code == 2, out
    assert message in out


def test_missing_files_exit_2(gate_dir):
    code, out = gate(gate_dir, gate_dir / "no-such-run")
    assert code == 2 and "not found" in out
    lines: list[str] = []
    assert run_gate(write_run(gate_dir / "cand"), gate_dir / "missing.toml", lines.append) == 2
    assert "not found" in lines[0]


def test_load_thresholds_resolves_reference_and_defaults(gate_dir):
    thresholds = load_thresholds(gate_dir / "gate.toml")
    assert thresholds.reference == (gate_dir / "ref").resolve()
    assert [c.tolerance for c in thresholds.checks] == [1.0, 0.5, 0.5]
    assert thresholds.checks[0].floor == 20.0 and thresholds.checks[1].floor is None
    assert thresholds.checks[1].metric.higher_is_better is False


# (thresholds text, line of the error, what that line holds, message)
LINE_CASES = {
    "typo in the second check": (
        THRESHOLDS.replace('metric = "v_lpips"', 'metric = "v_lpips"\ntolerence = 2'), 17,
        "tolerence = 2", "[[check]] #2: unknown key 'tolerence'; did you mean 'tolerance'?"),
    "wrong type in the first check": (
        THRESHOLDS.replace("floor = 20.0", 'floor = "20"'), 10, 'floor = "20"',
        "[[check]] #1: floor: must be a number"),
    "missing key: the check's header": (
        THRESHOLDS.replace('attack = "blur(k=3)"\n', ""), 13, "[[check]]",
        "[[check]] #2: missing 'attack'"),
    "unknown metric": (
        THRESHOLDS.replace('metric = "fvd"', 'metric = "fdv"'), 21, 'metric = "fdv"',
        "[[check]] #3: metric: unknown metric column 'fdv'; did you mean 'fvd'"),
    "defaults": (
        THRESHOLDS.replace("tolerance = 0.5", "tolerance = -0.5"), 4, "tolerance = -0.5",
        "[defaults]: tolerance: must be >= 0"),
    "defaults as dotted keys": (
        'reference = "ref"\ndefaults.tolerance = true\n', 2, "defaults.tolerance = true",
        "[defaults]: tolerance: must be a number"),
    "top level": (
        "# comment\n\nreferense = 'ref'\n", 3, "referense = 'ref'",
        "top level: unknown key 'referense'; did you mean 'reference'?"),
    "a [[check]] look-alike in a multi-line string": (
        'reference = """\n[[check]]\nfloor = "x"\n"""\n'
        + THRESHOLDS.replace('reference = "ref"\n', "").replace('attack = "blur(k=3)"',
                                                                 'attack = ""'),
        18, 'attack = ""', "[[check]] #2: attack: must be a non-empty string"),
}


@pytest.mark.parametrize("case", sorted(LINE_CASES))
def test_thresholds_errors_name_the_file_and_line(gate_dir, case):
    text, line, content, message = LINE_CASES[case]
    assert text.splitlines()[line - 1].strip() == content  # the case is what it says
    code, out = gate(gate_dir, write_run(gate_dir / "cand"), text)
    assert code == 2, out
    assert f"{gate_dir / 'custom.toml'}:{line}: {message}" in out


def test_thresholds_errors_without_a_line_name_the_table(gate_dir):
    # an inline array of tables has no [[check]] header to point at
    code, out = gate(gate_dir, write_run(gate_dir / "cand"),
                     'check = [{method = "dct-qim", attack = "identity"}]\n')
    assert code == 2
    assert f"{gate_dir / 'custom.toml'}: [[check]] #1: missing 'metric'" in out
