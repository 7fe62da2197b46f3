"""Sandbox (the helper other packages test with), key files, Base45, and the bench command."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gatepass.keyfiles import write_key_directory
from verifier import SlotWindow, TrustBundle, base45, verify_at
from verifier.errors import KeyUnusable
from verifier.keys import SigningKey, load_public
from verifier.sandbox import Sandbox, load_sandbox


def test_seeded_sandboxes_are_reproducible() -> None:
    a, b = Sandbox.create(seed=7), Sandbox.create(seed=7)
    assert a.root.public_der() == b.root.public_der()
    assert a.issuers["eddsa"].kid == b.issuers["eddsa"].kid
    assert a.issue_full().permit_id == b.issue_full().permit_id
    c = Sandbox.create(seed=8)
    assert c.root.public_der() != a.root.public_der()
    assert Sandbox.create().root.public_der() != Sandbox.create().root.public_der()


def test_write_bundle_and_reload(tmp_path: Path) -> None:
    sb = Sandbox.create(sites=("makkah-haram",), seed="files")
    raw = sb.issue(slot=(sb.epoch, sb.epoch + 600))
    sb.revoke(raw)
    trust = write_key_directory(sb, tmp_path)
    assert trust == tmp_path / "trust.json"
    for pem in tmp_path.glob("*.pem"):
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    bundle = TrustBundle.from_bytes(trust.read_bytes())
    store = bundle.store()
    revset = bundle.revocation_set(store, now=sb.epoch)
    assert sb.issued[raw].permit_id in revset
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = load_sandbox(files, now=sb.epoch)
    assert again.root.public_der() == sb.root.public_der()
    assert again.revoked == sb.revoked and again.revocation_version == 1
    fresh = again.issue(slot=(sb.epoch, sb.epoch + 600))
    assert verify_at(fresh, sb.epoch + 1, trust=store, window=SlotWindow(0, 0))
    broken = dict(files)
    broken["keys.json"] = b"{}"
    with pytest.raises(KeyUnusable):
        load_sandbox(broken, now=sb.epoch)
    other = Sandbox.create(seed="other-root")
    mixed = dict(files)
    mixed["trust.json"] = other.bundle().to_bytes()
    with pytest.raises(KeyUnusable):
        load_sandbox(mixed, now=sb.epoch)


def test_signing_key_pem_round_trip_and_errors() -> None:
    for alg in ("ES256", "EdDSA"):
        key = SigningKey.generate(alg)
        again = SigningKey.from_pem(key.to_pem(), kid=key.kid)
        assert again.public_der() == key.public_der() and again.alg == alg
    for bad in (b"", b"-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n"):
        with pytest.raises(KeyUnusable):
            SigningKey.from_pem(bad)
    with pytest.raises(KeyUnusable):
        SigningKey.generate("HS256")
    with pytest.raises(KeyUnusable):
        load_public(SigningKey.generate("ES256").public_der(), "EdDSA")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyUnusable):
        SigningKey.from_pem(p384)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"AB", "BB8"),
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),
        (b"", ""),
    ],
)
def test_base45_rfc9285_examples(data: bytes, text: str) -> None:
    assert base45.encode(data) == text
    assert base45.decode(text) == data


@pytest.mark.parametrize("text", ["GGW", "A", "ABCD", "aaa", "Ä00", ":::", "HGW", "\x00\x00"])
def test_base45_refuses_invalid(text: str) -> None:
    with pytest.raises(base45.Base45Error):
        base45.decode(text)


def test_base45_every_group_value() -> None:
    """All 91,125 three-character groups: valid iff the value fits 16 bits."""
    alphabet = base45.ALPHABET
    for c in range(45):
        for b in range(45):
            chunk = "".join(alphabet[a] + alphabet[b] + alphabet[c] for a in range(45))
            if c < 32:
                values = [a + 45 * b + 2025 * c for a in range(45)]
                got = base45.decode(chunk)
                assert got == b"".join(v.to_bytes(2, "big") for v in values)
            for a in range(45):
                n = a + 45 * b + 2025 * c
                if c >= 32:
                    group = alphabet[a] + alphabet[b] + alphabet[c]
                    if n > 0xFFFF:
                        with pytest.raises(base45.Base45Error):
                            base45.decode(group + "00")
                    else:
                        assert base45.decode(group) == n.to_bytes(2, "big")


def test_bench_verify_prints_the_keys() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatepass",
            "bench",
            "verify",
            "--json",
            "--revocations",
            "5000",
            "--rounds",
            "2",
            "--per-round",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in (
        "verify_per_s",
        "baseline_es256_verify_per_s",
        "ratio",
        "revocation_lookup_us",
        "revocation_bytes_per_entry",
        "revocation_load_s",
    ):
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    assert result["revocations"] == 5000
    assert result["ratio"] == pytest.approx(
        result["verify_per_s"] / result["baseline_es256_verify_per_s"], rel=0.01
    )
    assert result["qr_version_m"] <= 9


@pytest.mark.parametrize(
    "sig",
    [bytes(64), b"\x80" * 64, b"\x00" * 31 + b"\x01" + b"\x7f" * 32, b"\x00\x80" + b"\x01" * 62,
     bytes(range(64)), b"\xff" * 64],
)
def test_raw_to_der_matches_cryptography(sig: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from verifier.verify import raw_to_der

    expected = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                    int.from_bytes(sig[32:], "big"))
    assert raw_to_der(sig) == expected
