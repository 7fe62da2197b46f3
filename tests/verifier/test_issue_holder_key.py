"""``gatepass issue --holder-key``: holder-bound permits from the CLI, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from verifier import PermitRefused, TrustBundle, envelope, verify_at
from verifier import presentation as gpp

GATEPASS = [sys.executable, "-m", "gatepass"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEPASS, *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("issue-holder") / "keys"
    assert run("keys", "new", str(d), "--sites", "haram").returncode == 0
    return d


def pub_pem(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def issue(keys: Path, holder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    return run("issue", "--keys", str(keys), "--slot-start", start, "--holder-key", str(holder),
               *extra)


def test_issue_holder_bound_permit(keys: Path, tmp_path: Path) -> None:
    device = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "phone.pem"
    pem.write_bytes(pub_pem(device))
    proc = issue(keys, pem, "--count", "2")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(lines) == 2
    point = device.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    assert all(x["holder_key"] == point.hex() for x in lines)
    store = TrustBundle.from_bytes((keys / "trust.json").read_bytes()).store()
    now = time.time()
    with pytest.raises(PermitRefused) as exc:
        verify_at(lines[0]["payload"], now, trust=store)
    assert exc.value.reason.value == "presentation_required"
    shown = gpp.make_presentation(envelope.unwrap(lines[0]["payload"]), device, now)
    assert verify_at(shown, now, trust=store).holder_key == point


def test_issue_out_dir_keeps_the_holder_key(keys: Path, tmp_path: Path) -> None:
    pem = tmp_path / "phone.pem"
    pem.write_bytes(pub_pem(ec.generate_private_key(ec.SECP256R1())))
    proc = issue(keys, pem, "--out", str(tmp_path / "out"), "--no-png", "--no-svg")
    assert proc.returncode == 0, proc.stderr
    line = json.loads((tmp_path / "out" / "permits.jsonl").read_text().splitlines()[0])
    assert len(bytes.fromhex(line["holder_key"])) == 33


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"hello", "not a PEM public key"),
        ("private", "not a PEM public key"),
        ("p384", "must be a P-256"),
        ("ed25519", "must be a P-256"),
    ],
)
def test_unusable_holder_keys_are_one_line_errors(
    keys: Path, tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "key.pem"
    if content == "private":
        path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    elif content == "p384":
        path.write_bytes(pub_pem(ec.generate_private_key(ec.SECP384R1())))
    elif content == "ed25519":
        path.write_bytes(pub_pem(ed25519.Ed25519PrivateKey.generate()))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    proc = issue(keys, path)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gatepass: error:") and message in err[0], err
    assert proc.stdout == ""


def test_printed_sheet_says_a_holder_bound_permit_needs_the_phone(
    keys: Path, tmp_path: Path
) -> None:
    pem = tmp_path / "phone.pem"
    pem.write_bytes(pub_pem(ec.generate_private_key(ec.SECP256R1())))
    assert issue(keys, pem, "--out", str(tmp_path / "out"), "--no-png", "--no-svg").returncode == 0
    assert "show the live code from the holder" in (tmp_path / "out" / "sheet.html").read_text()
