"""The EU DCC test vectors (shared corpus) through ``gatepass conformance dcc``."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatepass.commands.conformance import (
    CHECK_INPUTS,
    evaluate_case,
    make_picture_decoder,
    run_directory,
)

pytestmark = pytest.mark.corpus

REPO = Path(__file__).resolve().parents[2]
#: Vectors that expect a check for which they carry no input (see the xfail below).
INCONSISTENT = {("common/2DCode/raw/B1.json", "EXPECTEDPICTUREDECODE")}


@pytest.fixture(scope="module")
def dcc_dir(corpus: Path) -> Path:
    root = corpus / "dcc"
    if not root.is_dir():
        pytest.skip(f"no dcc vectors under {corpus}")
    return root


@pytest.fixture(scope="module")
def report(dcc_dir: Path) -> dict[str, Any]:
    decoder, name = make_picture_decoder()
    return run_directory(dcc_dir, decoder, name)


def _case_files(root: Path) -> list[str]:
    """Case files found independently of the code under test (os.walk, case-sensitive)."""
    found = []
    for folder, _, files in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        if rel == "2DCode/raw" or rel.endswith("/2DCode/raw"):
            found += [f"{rel}/{f}" for f in files if f.endswith(".json")]
    return sorted(found)


def _expected(root: Path, rel: str) -> dict[str, bool]:
    return dict(json.loads((root / rel).read_text())["EXPECTEDRESULTS"])


def test_every_case_file_is_run(report: dict[str, Any], dcc_dir: Path) -> None:
    files = _case_files(dcc_dir)
    assert files
    assert [c["file"] for c in report["cases"]] == files
    assert report["summary"]["cases"] == len(files)
    assert not [c for c in report["cases"] if "error" in c]


def test_every_compared_flag_equals_the_vector(report: dict[str, Any], dcc_dir: Path) -> None:
    wrong = []
    compared = 0
    for case in report["cases"]:
        expected = _expected(dcc_dir, case["file"])
        for flag, got in case["checks"].items():
            if flag in expected:
                compared += 1
                if got != expected[flag]:
                    reason = case.get("reasons", {}).get(flag)
                    wrong.append(
                        f"{case['file']} {flag}: expected {expected[flag]}, got {got} ({reason})"
                    )
    assert wrong == []
    assert compared == report["summary"]["checks"] == report["summary"]["matches"]
    assert report["mismatches"] == []


def test_each_check_is_exercised_both_ways(report: dict[str, Any], dcc_dir: Path) -> None:
    """A check that only ever meets 'true' (or only 'false') vectors proves little.

    The vectors hold no EXPECTEDVALIDJSON or EXPECTEDENCODE = false case:
    test_json_checks_notice_changes supplies the negative ones."""
    seen: dict[str, set[bool]] = {flag: set() for flag in CHECK_INPUTS}
    for case in report["cases"]:
        expected = _expected(dcc_dir, case["file"])
        for flag in case["checks"]:
            if flag in expected:
                seen[flag].add(expected[flag])
    want = {flag: {True, False} for flag in CHECK_INPUTS}
    want["EXPECTEDVALIDJSON"] = want["EXPECTEDENCODE"] = {True}
    assert seen == want


@pytest.mark.parametrize(
    ("file", "path", "value"),
    [
        ("AT/2DCode/raw/1.json", ("nam", "gn"), "Gabi"),
        ("AT/2DCode/raw/1.json", ("dob",), "1998-02-27"),
        ("DE/2DCode/raw/2.json", ("t", 0, "tt"), "LP217198-4"),
        ("SE/2DCode/raw/2.json", ("t", 0, "sc"), "2021-06-15T09:24:03Z"),  # tagged date, +1 s
        ("SE/2DCode/raw/2.json", ("t", 0, "sc"), "2021-06-15T09:24:02"),  # no time zone
        ("CH/2DCode/raw/1.json", ("v", 0, "dn"), 1),
        ("CH/2DCode/raw/1.json", ("v", 0, "dn"), "2"),
        ("CH/2DCode/raw/1.json", ("v", 0, "dn"), True),
        ("CH/2DCode/raw/1.json", ("v", 0, "extra"), 1),
    ],
)
def test_json_checks_notice_changes(
    dcc_dir: Path, file: str, path: tuple[Any, ...], value: Any
) -> None:
    case = json.loads((dcc_dir / file).read_text())
    before = evaluate_case(case, None)[0]
    assert before["EXPECTEDDECODE"] and before["EXPECTEDVALIDJSON"]
    assert before["EXPECTEDENCODE"] is ("sc" not in path)  # tagged date vs text (note 2)
    node = case["JSON"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    after = evaluate_case(case, None)[0]
    assert not after["EXPECTEDDECODE"]
    assert not after["EXPECTEDVALIDJSON"]
    assert not after["EXPECTEDENCODE"]


def test_checks_run_exactly_when_their_inputs_exist(report: dict[str, Any], dcc_dir: Path) -> None:
    for case in report["cases"]:
        raw = json.loads((dcc_dir / case["file"]).read_text())
        for flag, inputs in CHECK_INPUTS.items():
            present = all(_field(raw, f) for f in inputs)
            assert (flag in case["checks"]) == present, (case["file"], flag)


def _field(case: dict[str, Any], dotted: str) -> bool:
    node: Any = case
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node not in (None, "")


def test_only_known_vectors_expect_a_check_without_input(report: dict[str, Any]) -> None:
    lacking = {
        (n["file"], n["check"]) for n in report["not_compared"] if n["why"].startswith("case lacks")
    }
    assert lacking == INCONSISTENT


@pytest.mark.xfail(
    strict=True,
    reason="vector common/B1 expects EXPECTEDPICTUREDECODE=true but has no 2DCODE to decode",
)
def test_vector_b1_carries_the_picture_it_expects_decoded(dcc_dir: Path) -> None:
    case = json.loads((dcc_dir / "common/2DCode/raw/B1.json").read_text())
    assert case["EXPECTEDRESULTS"]["EXPECTEDPICTUREDECODE"] is True
    assert "2DCODE" in case


def test_project_decoder_is_used_when_present() -> None:
    _, name = make_picture_decoder()
    if importlib.util.find_spec("gate_agent.decode") is not None:
        assert name.startswith("gate_agent.decode")
    else:
        assert name.startswith("zxingcpp")


def test_picture_check_depends_on_the_decoder(dcc_dir: Path) -> None:
    case = json.loads((dcc_dir / "AT/2DCode/raw/1.json").read_text())
    assert evaluate_case(case, lambda image: [case["PREFIX"]])[0]["EXPECTEDPICTUREDECODE"]
    assert not evaluate_case(case, lambda image: ["HC1:other"])[0]["EXPECTEDPICTUREDECODE"]
    assert not evaluate_case(case, lambda image: [])[0]["EXPECTEDPICTUREDECODE"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatepass", "conformance", "dcc", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_cli_json_matches_the_vectors(dcc_dir: Path, report: dict[str, Any]) -> None:
    done = _cli(str(dcc_dir), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["cases"] == report["cases"]
    assert out["summary"] == report["summary"]
    assert out["summary"]["matches"] == out["summary"]["checks"] > 0
    assert out["mismatches"] == []


def test_cli_reports_a_flipped_flag(dcc_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "XX/2DCode/raw"
    target.mkdir(parents=True)
    case = json.loads((dcc_dir / "common/2DCode/raw/CO5.json").read_text())
    case["EXPECTEDRESULTS"]["EXPECTEDVERIFY"] = True  # CO5's signature is invalid
    (target / "1.json").write_text(json.dumps(case))
    done = _cli(str(tmp_path), "--json")
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["mismatches"] == [
        {
            "file": "XX/2DCode/raw/1.json",
            "check": "EXPECTEDVERIFY",
            "expected": True,
            "got": False,
            "reason": out["cases"][0]["reasons"]["EXPECTEDVERIFY"],
        }
    ]
    assert out["mismatches"][0]["reason"].startswith("bad_signature")
    text = _cli(str(tmp_path))
    assert text.returncode == 1
    assert "MISMATCH XX/2DCode/raw/1.json EXPECTEDVERIFY" in text.stdout


def test_validation_clock_at_exp_passes_one_second_later_expires(
    dcc_dir: Path, tmp_path: Path
) -> None:
    """The DCC boundary: a validation clock exactly at ``exp`` expects a pass."""
    from datetime import UTC, datetime

    from verifier import dcc
    from verifier.x509 import parse_certificate

    good = json.loads((dcc_dir / "AT/2DCode/raw/1.json").read_text())
    cert = parse_certificate(base64.b64decode(good["TESTCTX"]["CERTIFICATE"]))
    exp = dcc.verify(bytes.fromhex(good["COSE"]), [cert]).expires_at
    target = tmp_path / "XB/2DCode/raw"
    target.mkdir(parents=True)
    for name, clock, want in (("at-exp", exp, True), ("after-exp", exp + 1, False)):
        iso = datetime.fromtimestamp(clock, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        case = {**good, "TESTCTX": {**good["TESTCTX"], "VALIDATIONCLOCK": iso}}
        case["EXPECTEDRESULTS"] = {"EXPECTEDVERIFY": True, "EXPECTEDEXPIRATIONCHECK": want}
        (target / f"{name}.json").write_text(json.dumps(case))
    done = _cli(str(tmp_path), "--json")
    out = json.loads(done.stdout)
    assert done.returncode == 0 and out["mismatches"] == [], done.stdout
    by_name = {Path(c["file"]).stem: c for c in out["cases"]}
    assert by_name["at-exp"]["checks"]["EXPECTEDEXPIRATIONCHECK"] is True
    assert by_name["after-exp"]["checks"]["EXPECTEDEXPIRATIONCHECK"] is False


def test_cli_survives_hostile_case_files(dcc_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "ZZ/2DCode/raw"
    target.mkdir(parents=True)
    good = json.loads((dcc_dir / "AT/2DCode/raw/1.json").read_text())
    hostile: dict[str, Any] = {
        "not-json": "{",
        "array": [1, 2],
        "deep": "[" * 100_000 + "]" * 100_000,
        "wrong-types": {
            "COSE": 5,
            "PREFIX": [],
            "BASE45": {},
            "COMPRESSED": 1.5,
            "TESTCTX": "x",
            "EXPECTEDRESULTS": {"EXPECTEDVERIFY": True},
        },
        "bad-hex": {**good, "COSE": "zz", "COMPRESSED": "0"},
        "bad-cert": {**good, "TESTCTX": {**good["TESTCTX"], "CERTIFICATE": "AAAA"}},
        "bad-clock": {**good, "TESTCTX": {**good["TESTCTX"], "VALIDATIONCLOCK": "yesterday"}},
        "bad-png": {**good, "2DCODE": "iVBORw0KGgo="},
        "not-base64": {**good, "2DCODE": "%%%"},
        "png-bomb": {**good, "2DCODE": _png_header(100_000, 100_000)},
        "jpeg": {**good, "2DCODE": base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(40)).decode()},
        "deep-cbor": {**good, "CBOR": "81" * 5000 + "00"},
        "huge-cbor-length": {**good, "CBOR": "9b00000000ffffffff"},
        "cbor-bytes-for-json": {**good, "CBOR": "a1636e616d4100"},
    }
    for name, body in hostile.items():
        text = body if isinstance(body, str) else json.dumps(body)
        (target / f"{name}.json").write_text(text)
    done = _cli(str(tmp_path), "--json")
    assert done.returncode == 1, done.stderr  # wrong-types expects VERIFY true: a mismatch
    out = json.loads(done.stdout)
    by_name = {Path(c["file"]).stem: c for c in out["cases"]}
    assert set(by_name) == set(hostile)
    for name in ("not-json", "array", "deep"):
        assert "error" in by_name[name]
    assert by_name["wrong-types"]["checks"] == {
        "EXPECTEDUNPREFIX": False,
        "EXPECTEDB45DECODE": False,
        "EXPECTEDCOMPRESSION": False,
    }
    assert by_name["bad-hex"]["checks"]["EXPECTEDVERIFY"] is False
    assert by_name["bad-cert"]["checks"]["EXPECTEDVERIFY"] is False
    assert by_name["bad-clock"]["checks"]["EXPECTEDEXPIRATIONCHECK"] is False
    assert by_name["bad-clock"]["checks"]["EXPECTEDVERIFY"] is True
    assert by_name["bad-png"]["checks"]["EXPECTEDPICTUREDECODE"] is False
    assert by_name["not-base64"]["checks"]["EXPECTEDPICTUREDECODE"] is False
    assert by_name["png-bomb"]["checks"]["EXPECTEDPICTUREDECODE"] is False
    assert "above" in by_name["png-bomb"]["reasons"]["EXPECTEDPICTUREDECODE"]
    assert by_name["jpeg"]["checks"]["EXPECTEDPICTUREDECODE"] is False
    for name in ("deep-cbor", "huge-cbor-length", "cbor-bytes-for-json"):
        assert by_name[name]["checks"]["EXPECTEDDECODE"] is False
        assert by_name[name]["checks"]["EXPECTEDVALIDJSON"] is True


def _png_header(width: int, height: int) -> str:
    """A PNG signature and IHDR chunk announcing a huge image (no pixel data follows)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    chunk = len(ihdr).to_bytes(4, "big") + b"IHDR" + ihdr
    crc = zlib.crc32(b"IHDR" + ihdr).to_bytes(4, "big")
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk + crc).decode()


def test_cli_usage_error(tmp_path: Path) -> None:
    done = _cli(str(tmp_path / "missing"))
    assert done.returncode == 2
    assert done.stderr.startswith("gatepass: error:")


def test_cli_copy_of_corpus_gives_the_same_result(dcc_dir: Path, tmp_path: Path) -> None:
    """Paths in the report are relative to DIR, wherever DIR lives."""
    copy = tmp_path / "copy"
    shutil.copytree(dcc_dir / "common", copy / "common")
    out = json.loads(_cli(str(copy), "--json").stdout)
    assert all(c["file"].startswith("common/2DCode/raw/") for c in out["cases"])
    assert out["mismatches"] == []


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = ["JSON", "CBOR", "COSE", "COMPRESSED", "BASE45", "PREFIX", "2DCODE", "TESTCTX"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzz_case_fields_never_crash(dcc_dir: Path, data: st.DataObject) -> None:
    """Any value of any JSON type in any field gives True/False results, never an exception."""
    case = json.loads((dcc_dir / "CH/2DCode/raw/1.json").read_text())
    for field in data.draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3)):
        original = case[field]
        if isinstance(original, str) and original and data.draw(st.booleans()):
            pos = data.draw(st.integers(0, len(original) - 1))
            case[field] = original[:pos] + data.draw(st.text(max_size=3)) + original[pos + 1 :]
        else:
            case[field] = data.draw(_JSONISH)
    results, reasons = evaluate_case(case, lambda image: [])
    assert all(isinstance(v, bool) for v in results.values())
    assert set(reasons) <= set(results)
