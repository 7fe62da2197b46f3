"""``gatepass conformance dcc DIR [--json]``: run the EU DCC test vectors through our stack.

Every ``**/2DCode/raw/*.json`` under DIR is one case (format: UPSTREAM-README.md of
eu-digital-green-certificates/dgc-testdata). Each check we implement runs when the
case holds its inputs and records OUR result; it is then compared with the case's
``EXPECTEDRESULTS`` flag when there is one. Exit 0 when every compared check matches.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from verifier.errors import GatepassError

#: Checks implemented, in report order, with the case fields each needs.
CHECK_INPUTS: dict[str, tuple[str, ...]] = {
    "EXPECTEDPICTUREDECODE": ("2DCODE", "PREFIX"),
    "EXPECTEDUNPREFIX": ("PREFIX", "BASE45"),
    "EXPECTEDB45DECODE": ("BASE45", "COMPRESSED"),
    "EXPECTEDCOMPRESSION": ("COMPRESSED", "COSE"),
    "EXPECTEDVERIFY": ("COSE", "TESTCTX.CERTIFICATE"),
    "EXPECTEDEXPIRATIONCHECK": ("COSE", "TESTCTX.CERTIFICATE", "TESTCTX.VALIDATIONCLOCK"),
    "EXPECTEDKEYUSAGE": ("COSE", "TESTCTX.CERTIFICATE"),
    "EXPECTEDDECODE": ("CBOR", "JSON"),
    "EXPECTEDVALIDJSON": ("PREFIX", "JSON"),
    "EXPECTEDENCODE": ("JSON", "CBOR"),
}
CASE_GLOB = "**/2DCode/raw/*.json"
#: A case file is a few KiB of JSON; refuse anything absurd before reading it.
MAX_CASE_BYTES = 4 * 1024 * 1024

#: Decodes a grayscale image to the texts of the codes found in it.
PictureDecoder = Callable[[Any], list[str]]


class CaseInputError(GatepassError, ValueError):
    """A field of a test case is not what the vector format says it is."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "conformance", help="run third-party conformance vectors", description=__doc__
    )
    suites = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    dcc = suites.add_parser(
        "dcc",
        help="EU Digital COVID Certificate test vectors (dgc-testdata layout)",
        description="Run every **/2DCode/raw/*.json case under DIR.",
    )
    dcc.add_argument("dir", metavar="DIR", type=Path, help="root of the dgc-testdata tree")
    dcc.add_argument("--json", action="store_true", help="print one JSON object")
    dcc.set_defaults(func=run_dcc)


def run_dcc(args: argparse.Namespace) -> int:
    from gatepass.cli import UsageError

    root: Path = args.dir
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    decode_picture, decoder_name = make_picture_decoder()
    report = run_directory(root, decode_picture, decoder_name)
    if args.json:
        json.dump(report, sys.stdout, indent=1, sort_keys=False)
        sys.stdout.write("\n")
    else:
        _print_text(report)
    return 0 if not report["mismatches"] else 1


def make_picture_decoder() -> tuple[PictureDecoder, str]:
    """The project's QR decoder (gate_agent.decode), or zxing-cpp until that exists."""
    try:
        from gate_agent.decode import make_decoder
    except ModuleNotFoundError as exc:
        if exc.name != "gate_agent.decode":
            raise
        import zxingcpp

        def via_zxing(image: Any) -> list[str]:
            return [r.text for r in zxingcpp.read_barcodes(image)]

        return via_zxing, "zxingcpp.read_barcodes (gate_agent.decode not available)"
    decoder = make_decoder("default")

    def via_project(image: Any) -> list[str]:
        return [code.text for code in decoder.decode(image)]

    return via_project, 'gate_agent.decode.make_decoder("default")'


def run_directory(
    root: Path, decode_picture: PictureDecoder | None, decoder_name: str = ""
) -> dict[str, Any]:
    """Run every case under ``root``; return the report (see the module docstring)."""
    cases: list[dict[str, Any]] = []
    mismatches: list[dict[str, Any]] = []
    not_compared: list[dict[str, Any]] = []
    compared = matches = 0
    for path in sorted(root.glob(CASE_GLOB)):
        rel = path.relative_to(root).as_posix()
        entry: dict[str, Any] = {"file": rel, "checks": {}}
        cases.append(entry)
        try:
            case = load_case(path)
        except (OSError, CaseInputError) as exc:
            entry["error"] = str(exc)
            continue
        description = _get(case, "TESTCTX.DESCRIPTION")
        if isinstance(description, str):
            entry["description"] = description
        results, reasons = evaluate_case(case, decode_picture)
        entry["checks"] = results
        if reasons:
            entry["reasons"] = reasons
        expected = case.get("EXPECTEDRESULTS")
        if not isinstance(expected, Mapping):
            continue
        for flag, want in expected.items():
            if flag not in CHECK_INPUTS:
                not_compared.append({"file": rel, "check": flag, "why": "not implemented"})
            elif flag not in results:
                missing = [f for f in CHECK_INPUTS[flag] if not _has(case, f)]
                why = f"case lacks input {', '.join(missing)}"
                not_compared.append({"file": rel, "check": flag, "why": why})
            else:
                compared += 1
                if results[flag] == want:
                    matches += 1
                else:
                    mismatches.append(
                        {
                            "file": rel,
                            "check": flag,
                            "expected": want,
                            "got": results[flag],
                            "reason": reasons.get(flag),
                        }
                    )
    return {
        "suite": "dcc",
        "root": str(root),
        "picture_decoder": decoder_name,
        "cases": cases,
        "summary": {
            "cases": len(cases),
            "checks_run": sum(len(c["checks"]) for c in cases),
            "checks": compared,
            "matches": matches,
            "mismatches": len(mismatches),
            "not_compared": len(not_compared),
        },
        "mismatches": mismatches,
        "not_compared": not_compared,
    }


def load_case(path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_CASE_BYTES:
        raise CaseInputError(f"{path.name}: larger than {MAX_CASE_BYTES} bytes")
    try:
        case = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise CaseInputError(f"{path.name}: not JSON ({exc})") from None
    if not isinstance(case, dict):
        raise CaseInputError(f"{path.name}: not a JSON object")
    return case


def _get(case: Mapping[str, Any], field: str) -> Any:
    node: Any = case
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _has(case: Mapping[str, Any], field: str) -> bool:
    return _get(case, field) not in (None, "")


def _text(case: Mapping[str, Any], field: str) -> str:
    value = _get(case, field)
    if not isinstance(value, str):
        raise CaseInputError(f"{field} is not a string")
    return value


def _hex(case: Mapping[str, Any], field: str) -> bytes:
    try:
        return bytes.fromhex(_text(case, field))
    except ValueError:
        raise CaseInputError(f"{field} is not hex") from None


def _b64(case: Mapping[str, Any], field: str) -> bytes:
    try:
        return base64.b64decode(_text(case, field), validate=True)
    except (binascii.Error, ValueError):
        raise CaseInputError(f"{field} is not base64") from None


def parse_clock(text: str) -> float:
    """VALIDATIONCLOCK (ISO 8601) to seconds since the epoch; a naive time is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CaseInputError(f"VALIDATIONCLOCK {text!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def evaluate_case(
    case: Mapping[str, Any], decode_picture: PictureDecoder | None
) -> tuple[dict[str, bool], dict[str, str]]:
    """Run each implemented check whose inputs the case holds: (results, reasons for False)."""
    from verifier import dcc
    from verifier.errors import VerifierError
    from verifier.x509 import parse_certificate

    results: dict[str, bool] = {}
    reasons: dict[str, str] = {}

    def record(flag: str, check: Callable[[], bool]) -> None:
        if not all(_has(case, f) for f in CHECK_INPUTS[flag]):
            return  # the case does not test this step
        try:
            ok = check()
        except (VerifierError, CaseInputError) as exc:
            ok = False
            reasons[flag] = str(exc)
        results[flag] = ok
        if not ok and flag not in reasons:
            reasons[flag] = "result differs from the case's own data"

    def picture() -> bool:
        if decode_picture is None:
            raise CaseInputError("no picture decoder")
        texts = read_picture(_b64(case, "2DCODE"), decode_picture)
        return _text(case, "PREFIX") in texts

    def unprefix() -> bool:
        return dcc.unprefix(_text(case, "PREFIX")) == _text(case, "BASE45")

    def b45() -> bool:
        return dcc.decode_base45(_text(case, "BASE45")) == _hex(case, "COMPRESSED")

    def compression() -> bool:
        return dcc.decompress(_hex(case, "COMPRESSED")) == _hex(case, "COSE")

    def verified() -> dcc.VerifiedDcc:
        cert = parse_certificate(_b64(case, "TESTCTX.CERTIFICATE"))
        return dcc.verify(_hex(case, "COSE"), [cert])

    def expiration() -> bool:
        now = parse_clock(_text(case, "TESTCTX.VALIDATIONCLOCK"))
        dcc.check_validity(verified(), now)
        return True

    def key_usage() -> bool:
        dcc.check_key_usage(verified())
        return True

    def decode() -> bool:
        # README: "CBOR can be decoded, and the contents match JSON"; its table adds the
        # COSE payload, so that must match too when the case has one. Some countries
        # put the whole CWT claims map in CBOR, others only the certificate.
        expected = _get(case, "JSON")
        content = decode_test_cbor(_hex(case, "CBOR"))
        if isinstance(content, Mapping) and dcc.CLAIM_HCERT in content:
            content = dcc.dgc_of(content)
        if not same_content(content, expected):
            return False
        return not _has(case, "COSE") or same_content(
            dcc.unverified_dgc(_hex(case, "COSE")), expected
        )

    def encode() -> bool:
        # README note 2: map order is free, so decode both sides and re-encode them
        # with one canonical encoder before comparing bytes.
        import cbor2

        content = decode_test_cbor(_hex(case, "CBOR"))
        if isinstance(content, Mapping) and dcc.CLAIM_HCERT in content:
            content = dcc.dgc_of(content)
        try:
            ours = cbor2.dumps(_get(case, "JSON"), canonical=True)
            theirs = cbor2.dumps(content, canonical=True)
        except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
            raise CaseInputError(f"cannot re-encode ({type(exc).__name__})") from None
        return bool(ours == theirs)

    def valid_json() -> bool:
        # Decoding only (the README's "whole chain"); signatures are EXPECTEDVERIFY's job.
        dgc = dcc.unverified_dgc(dcc.decode_hc1(_text(case, "PREFIX")))
        return same_content(dgc, _get(case, "JSON"))

    record("EXPECTEDPICTUREDECODE", picture)
    record("EXPECTEDUNPREFIX", unprefix)
    record("EXPECTEDB45DECODE", b45)
    record("EXPECTEDCOMPRESSION", compression)
    record("EXPECTEDVERIFY", lambda: bool(verified()))
    record("EXPECTEDEXPIRATIONCHECK", expiration)
    record("EXPECTEDKEYUSAGE", key_usage)
    record("EXPECTEDDECODE", decode)
    record("EXPECTEDVALIDJSON", valid_json)
    record("EXPECTEDENCODE", encode)
    return results, reasons


def decode_test_cbor(data: bytes) -> Any:
    """Decode the case's CBOR field: one item, bounded depth, no trailing bytes.

    Unlike a signed payload, test-data CBOR may use indefinite lengths (AT does)."""
    import io

    import cbor2

    fp = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(fp, max_depth=32).decode()
    except Exception as exc:  # cbor2's tag decoders raise many types on hostile input
        raise CaseInputError(f"CBOR does not decode ({type(exc).__name__})") from None
    if fp.tell() != len(data):
        raise CaseInputError("trailing bytes after the CBOR item")
    return obj


def same_content(cbor_value: Any, json_value: Any) -> bool:
    """Semantic equality of decoded CBOR and JSON (map order free, dates as instants)."""
    if isinstance(cbor_value, Mapping):
        return (
            isinstance(json_value, dict)
            and set(cbor_value) == set(json_value)
            and all(same_content(cbor_value[k], json_value[k]) for k in cbor_value)
        )
    if isinstance(cbor_value, (list, tuple)):
        return (
            isinstance(json_value, list)
            and len(cbor_value) == len(json_value)
            and all(same_content(a, b) for a, b in zip(cbor_value, json_value, strict=True))
        )
    if isinstance(cbor_value, datetime):
        # A tagged date-time (tag 0/1) appears in the JSON as its RFC 3339 text.
        if not isinstance(json_value, str):
            return False
        try:
            other = datetime.fromisoformat(json_value)
        except ValueError:
            return False
        if cbor_value.tzinfo is None or other.tzinfo is None:
            return False
        return cbor_value == other
    if isinstance(cbor_value, date):
        # A tagged full-date (tag 1004) appears as "YYYY-MM-DD".
        return bool(json_value == cbor_value.isoformat())
    if isinstance(cbor_value, bool) or isinstance(json_value, bool):
        return cbor_value is json_value
    if isinstance(cbor_value, (int, float)) and isinstance(json_value, (int, float)):
        return cbor_value == json_value
    if cbor_value is None or isinstance(cbor_value, str):
        return bool(cbor_value == json_value)
    return False  # bytes, tags, undefined...: nothing JSON can express


#: Largest picture side decoded: test QR images are a few hundred pixels; this stops
#: a small PNG that inflates to gigabytes (a decompression bomb) before decoding.
MAX_PICTURE_SIDE = 4096
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_picture(png: bytes, decode_picture: PictureDecoder) -> list[str]:
    """Decode a PNG to grayscale and return the texts of the codes in it.

    Through the one hardened image reader (:func:`hardware.image.decode_image`): the
    header's size is checked against the limits before any pixel is decoded.
    """
    from hardware.errors import UnusableImage
    from hardware.image import decode_image

    if len(png) < 24 or png[:8] != _PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise CaseInputError("2DCODE is not a PNG")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    if not (0 < width <= MAX_PICTURE_SIDE and 0 < height <= MAX_PICTURE_SIDE):
        raise CaseInputError(f"2DCODE is {width}x{height}, above {MAX_PICTURE_SIDE} pixels")
    try:
        image = decode_image(png, name="2DCODE", grayscale=True)
    except UnusableImage as exc:
        raise CaseInputError(f"2DCODE is not a readable image: {exc}") from None
    texts = decode_picture(image)
    if not texts:
        raise CaseInputError("no code found in the picture")
    return texts


def _print_text(report: Mapping[str, Any]) -> None:
    s = report["summary"]
    print(
        f"{s['cases']} cases, {s['checks']} checks compared, {s['matches']} match, "
        f"{s['mismatches']} mismatch, {s['not_compared']} expected flags not compared"
    )
    for m in report["mismatches"]:
        print(f"MISMATCH {m['file']} {m['check']}: expected {m['expected']}, got {m['got']}")
