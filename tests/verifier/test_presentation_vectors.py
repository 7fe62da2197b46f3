"""The published presentation vectors (tests/vectors/presentations/*.json) through the API
and ``gatepass verify``, and ``gatepass present`` against the same fixed device key."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from verifier import PermitRefused, Reason, TrustBundle, verify_at

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "presentations"
FILES = sorted(VECTORS.glob("*.json"))
GATEPASS = [sys.executable, "-m", "gatepass"]
NEW_REASONS = {
    Reason.BAD_PRESENTATION, Reason.PRESENTATION_EXPIRED, Reason.PRESENTATION_IN_FUTURE,
    Reason.PRESENTATION_REQUIRED,
}


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_vectors_cover_every_presentation_reason_and_policy() -> None:
    vectors = [_load(p) for p in FILES]
    reasons = {v["expected"]["reason"] for v in vectors}
    assert {r.value for r in NEW_REASONS} <= reasons
    assert {"revoked", "expired", "bad_signature", "unknown_key", "bad_claims", "too_large",
            "bad_encoding", "bad_cose", "unsupported_version", "non_canonical"} <= reasons
    assert {v["policy"] for v in vectors} == {"required", "preferred", "static"}
    assert sum(v["expected"]["ok"] for v in vectors) >= 5
    assert len(vectors) >= 40


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_vector_through_api(path: Path) -> None:
    v = _load(path)
    bundle = TrustBundle.from_bytes((path.parent / v["trust"]).read_bytes())
    store = bundle.store()
    now = _epoch(v["at"])
    try:
        permit = verify_at(
            v["payload"], now, trust=store, revocations=bundle.revocation_set(store, now=now),
            presentation_policy=v["policy"], presentation_tolerance_s=v["tolerance_s"],
        )
        got: dict[str, Any] = {"ok": True, "reason": None}
        shown = permit.presentation
        assert v["presentation"] == (
            None if shown is None else {"step": shown[0], "period_s": shown[1]}
        )
        assert permit.holder_key is not None or v["payload"].startswith("GP1:")
    except PermitRefused as exc:
        got = {"ok": False, "reason": exc.reason.value}
    assert got == v["expected"], v["description"]


def _cli_groups() -> dict[tuple[str, str, str, int], list[Path]]:
    groups: dict[tuple[str, str, str, int], list[Path]] = defaultdict(list)
    for path in FILES:
        v = _load(path)
        groups[(v["trust"], v["at"], v["policy"], v["tolerance_s"])].append(path)
    return groups


GROUPS = _cli_groups()


@pytest.mark.parametrize(
    "key", list(GROUPS), ids=lambda k: f"{Path(k[0]).stem}@{k[1]}/{k[2]}/{k[3]}"
)
def test_vectors_through_cli(key: tuple[str, str, str, int]) -> None:
    paths = GROUPS[key]
    vectors = [_load(p) for p in paths]
    trust, at, policy, tolerance = key
    cmd = [*GATEPASS, "verify", "--trust", str(VECTORS / trust), "--at", at]
    if (policy, tolerance) != ("required", 30):  # the defaults are left out: checks them too
        cmd += ["--presentation", policy, "--presentation-tolerance", str(tolerance)]
    cmd += [v["payload"] for v in vectors]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(vectors), proc.stderr
    for v, out in zip(vectors, lines, strict=True):
        assert {"ok": out["ok"], "reason": out["reason"]} == v["expected"], v["description"]
    assert proc.returncode == (0 if all(v["expected"]["ok"] for v in vectors) else 1)


def _first_ok() -> dict[str, Any]:
    return _load(next(p for p in FILES if p.name.endswith("-ok-presentation.json")))


def _permit_of(v: dict[str, Any], tmp_path: Path) -> Path:
    """The GP1: text inside a vector's presentation, written as a gatepass issue line."""
    from verifier import envelope, presentation

    permit_cose, _ = presentation.split(v["payload"])
    path = tmp_path / "permit.jsonl"
    path.write_text(json.dumps({"payload": envelope.wrap(permit_cose)}) + "\n")
    return path


@pytest.mark.parametrize(
    ("device", "offset", "expected"),
    [
        ("device", 0, None),
        ("device", 60, "presentation_expired"),
        ("device", -60, "presentation_in_future"),
        ("other-device", 0, "bad_presentation"),
    ],
)
def test_present_command_makes_what_the_gate_admits(
    tmp_path: Path, device: str, offset: int, expected: str | None
) -> None:
    v = _first_ok()
    permit_file = _permit_of(v, tmp_path)
    proc = subprocess.run(
        [*GATEPASS, "present", "--permit", str(permit_file), "--key",
         str(VECTORS / "keys" / f"{device}.pem"), "--at", v["at"]],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert ("not this permit's holder key" in proc.stderr) == (device != "device")
    text = proc.stdout.strip()
    assert text.startswith("GPP1:") and "\n" not in text
    store = TrustBundle.from_bytes((VECTORS / v["trust"]).read_bytes()).store()
    try:
        verify_at(text, _epoch(v["at"]) + offset, trust=store)
        got = None
    except PermitRefused as exc:
        got = exc.reason.value
    assert got == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "4"], "--period must be 5-60"),
        (["--key", "/nonexistent.pem"], "cannot read"),
        (["--at", "yesterday"], "not ISO 8601"),
    ],
)
def test_present_command_errors_are_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    permit_file = _permit_of(_first_ok(), tmp_path)
    options = {"--permit": str(permit_file), "--key": str(VECTORS / "keys" / "device.pem"),
               "--at": "2026-05-28T21:31:40Z"}
    options.update(zip(args[::2], args[1::2], strict=True))
    argv = [part for pair in options.items() for part in pair]
    proc = subprocess.run([*GATEPASS, "present", *argv], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0], proc.stderr


def test_present_refuses_a_file_without_a_permit(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    proc = subprocess.run(
        [*GATEPASS, "present", "--permit", str(bad), "--key",
         str(VECTORS / "keys" / "device.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode != 0 and "neither a GP1: text" in proc.stderr
