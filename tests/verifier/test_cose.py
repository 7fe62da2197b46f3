"""Unit tests of verifier/cose.py: round trips, algorithm confusion, tampering, hostile CBOR."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from verifier import cose
from verifier.cose import (
    ALG_EDDSA,
    ALG_ES256,
    ALG_PS256,
    CoseAlgorithmError,
    CoseError,
    CoseSignatureError,
)
from verifier.errors import VerifierError

PAYLOAD = cbor2.dumps({1: "issuer", 6: 1_700_000_000, -70000: b"\x00" * 40})


@pytest.fixture(scope="module")
def keys() -> dict[int, Any]:
    return {
        ALG_ES256: ec.generate_private_key(ec.SECP256R1()),
        ALG_EDDSA: ed25519.Ed25519PrivateKey.generate(),
        ALG_PS256: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def _verify(raw: bytes, public: Any) -> cose.UnverifiedSign1:
    msg = cose.parse_sign1(raw)
    assert msg.alg is not None
    cose.verify_signature(msg.alg, public, msg.signature, msg.to_be_signed())
    return msg


@pytest.mark.parametrize("alg", [ALG_ES256, ALG_EDDSA, ALG_PS256], ids=cose.ALG_NAMES.get)
def test_round_trip(keys: dict[int, Any], alg: int) -> None:
    raw = cose.encode_sign1(PAYLOAD, keys[alg], alg, b"kid-1")
    msg = _verify(raw, keys[alg].public_key())
    assert msg.payload == PAYLOAD
    assert msg.kid == b"kid-1"
    assert msg.alg == alg
    assert raw[0] == 0xD2  # tag 18


@pytest.mark.parametrize("alg", [ALG_ES256, ALG_EDDSA, ALG_PS256], ids=cose.ALG_NAMES.get)
def test_untagged_and_cwt_wrapped_parse_the_same(keys: dict[int, Any], alg: int) -> None:
    untagged = cose.encode_sign1(PAYLOAD, keys[alg], alg, b"k", tagged=False)
    body = cbor2.loads(untagged)
    wrapped = cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(18, body)))
    for raw in (untagged, wrapped):
        assert _verify(raw, keys[alg].public_key()).payload == PAYLOAD


@pytest.mark.parametrize(
    ("alg", "wrong"),
    [
        (ALG_ES256, ALG_EDDSA),
        (ALG_ES256, ALG_PS256),
        (ALG_EDDSA, ALG_ES256),
        (ALG_EDDSA, ALG_PS256),
        (ALG_PS256, ALG_ES256),
        (ALG_PS256, ALG_EDDSA),
    ],
)
def test_key_used_outside_its_algorithm_is_refused(
    keys: dict[int, Any], alg: int, wrong: int
) -> None:
    """A header claiming another algorithm than the key's must never reach verification."""
    public = keys[alg].public_key()
    assert cose.key_fits(alg, public)
    assert not cose.key_fits(wrong, public)
    with pytest.raises(CoseAlgorithmError):
        cose.verify_signature(wrong, public, b"\x00" * 64, b"message")


@pytest.mark.parametrize("alg", [0, 5, 6, 7, -35, -36, -257, -259, 99])
def test_alg_none_hmac_and_unknown_ids_are_refused(keys: dict[int, Any], alg: int) -> None:
    # 0 is reserved ("none" in JOSE terms), 5-7 are HMAC, -35/-36 ES384/ES512,
    # -257/-259 RS256/RS512: none of them may verify anything here.
    for key in keys.values():
        assert not cose.key_fits(alg, key.public_key())
        with pytest.raises(CoseAlgorithmError):
            cose.verify_signature(alg, key.public_key(), b"\x00" * 64, b"m")


def test_weak_rsa_and_wrong_curve_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    assert not cose.key_fits(ALG_PS256, small)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert not cose.key_fits(ALG_ES256, p384)


def test_sign_refuses_mismatched_key(keys: dict[int, Any]) -> None:
    with pytest.raises(CoseAlgorithmError):
        cose.sign(ALG_ES256, keys[ALG_EDDSA], b"m")


def _rebuild(raw: bytes, index: int, value: Any) -> bytes:
    items = list(cbor2.loads(raw).value)
    items[index] = value
    return cbor2.dumps(cbor2.CBORTag(18, items))


@pytest.mark.parametrize("alg", [ALG_ES256, ALG_EDDSA, ALG_PS256], ids=cose.ALG_NAMES.get)
def test_tampering_is_refused(keys: dict[int, Any], alg: int) -> None:
    raw = cose.encode_sign1(PAYLOAD, keys[alg], alg, b"kid")
    public = keys[alg].public_key()
    _, _, payload, signature = cbor2.loads(raw).value
    bad_sig = bytes([signature[0] ^ 1]) + signature[1:]
    bad_payload = payload[:-1] + bytes([payload[-1] ^ 0x80])
    other_header = cbor2.dumps({1: alg, 4: b"other"})
    for forged in (
        _rebuild(raw, 3, bad_sig),
        _rebuild(raw, 2, bad_payload),
        _rebuild(raw, 0, other_header),
    ):
        with pytest.raises(CoseSignatureError):
            _verify(forged, public)


def test_signature_of_another_key_is_refused(keys: dict[int, Any]) -> None:
    raw = cose.encode_sign1(PAYLOAD, keys[ALG_ES256], ALG_ES256, b"kid")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(CoseSignatureError):
        _verify(raw, other)


@pytest.mark.parametrize("length", [0, 63, 65, 70, 72])
def test_es256_signature_of_wrong_length_is_refused(keys: dict[int, Any], length: int) -> None:
    public = keys[ALG_ES256].public_key()
    with pytest.raises(CoseSignatureError):
        cose.verify_signature(ALG_ES256, public, b"\x01" * length, b"m")


@pytest.mark.parametrize("size", [0, 1, 23, 24, 255, 256, 65535, 65536])
def test_sig_structure_matches_a_cbor_encoder(size: int) -> None:
    protected = cbor2.dumps({1: -7})
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = cbor2.dumps(["Signature1", protected, b"", payload])
    assert cose.sig_structure(protected, payload) == expected


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"", "empty"),
        (b"\xff", "break byte"),
        (b"\xd2", "tag without content"),
        (cbor2.dumps(cbor2.CBORTag(17, [b"", {}, b"p", b"s"])), "COSE_Mac0 tag"),
        (cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"p", []])), "COSE_Sign tag"),
        (cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(98, [b"", {}, b"p", []]))), "CWT of Sign"),
        (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"p"])), "3 items"),
        (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"p", b"s", b"x"])), "5 items"),
        (cbor2.dumps(cbor2.CBORTag(18, {"a": 1})), "map body"),
        (cbor2.dumps(cbor2.CBORTag(18, ["", {}, b"p", b"s"])), "text protected"),
        (cbor2.dumps(cbor2.CBORTag(18, [b"", [], b"p", b"s"])), "array unprotected"),
        (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, None, b"s"])), "detached payload"),
        (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"p", "s"])), "text signature"),
        (cbor2.dumps(cbor2.CBORTag(18, [b"\x01", {}, b"p", b"s"])), "protected not a map"),
        (cbor2.dumps(cbor2.CBORTag(18, [b"\xa1\x01", {}, b"p", b"s"])), "truncated protected"),
        (b"\x81" * 100_000 + b"\x00", "deep nesting"),
        (b"\x5b" + b"\xff" * 8, "huge declared length"),
        (b"\x9b\x00\x00\x00\x00\xff\xff\xff\xff", "huge array"),
        (b"\xc1\x1b\xff\xff\xff\xff\xff\xff\xff\xff", "hostile datetime tag"),
        (b"\xd8\x1d\x00", "dangling shared reference"),
    ],
)
def test_malformed_structures_raise_cose_error(raw: bytes, what: str) -> None:
    with pytest.raises(CoseError):
        cose.parse_sign1(raw)


def test_trailing_bytes_are_refused(keys: dict[int, Any]) -> None:
    raw = cose.encode_sign1(PAYLOAD, keys[ALG_ES256], ALG_ES256, b"kid")
    with pytest.raises(CoseError):
        cose.parse_sign1(raw + b"\x00")


def test_every_truncation_is_refused(keys: dict[int, Any]) -> None:
    raw = cose.encode_sign1(PAYLOAD, keys[ALG_ES256], ALG_ES256, b"kid")
    public = keys[ALG_ES256].public_key()
    for cut in range(len(raw)):
        with pytest.raises(VerifierError):
            _verify(raw[:cut], public)


def test_errors_belong_to_the_verifier_tree() -> None:
    for exc in (CoseError, CoseAlgorithmError, CoseSignatureError):
        assert issubclass(exc, VerifierError)
        assert issubclass(exc, ValueError)


def test_kid_protected_wins_over_unprotected(keys: dict[int, Any]) -> None:
    raw = cose.encode_sign1(PAYLOAD, keys[ALG_ES256], ALG_ES256, b"protected")
    forged = _rebuild(raw, 1, {4: b"unprotected"})
    assert cose.parse_sign1(forged).kid == b"protected"
    body = list(cbor2.loads(raw).value)
    body[0] = cbor2.dumps({1: ALG_ES256})
    body[1] = {4: b"only-unprotected"}
    assert cose.parse_sign1(cbor2.dumps(cbor2.CBORTag(18, body))).kid == b"only-unprotected"


@pytest.mark.parametrize("alg", [ALG_ES256, ALG_EDDSA, ALG_PS256], ids=cose.ALG_NAMES.get)
def test_encoder_output_is_the_strict_canonical_shape(keys: dict[int, Any], alg: int) -> None:
    raw = cose.encode_sign1(PAYLOAD, keys[alg], alg, b"kid")
    strict = cose.parse_sign1_strict(raw)
    assert strict == cose.parse_sign1(raw)
    cose.verify_signature(alg, keys[alg].public_key(), strict.signature, strict.to_be_signed())


def test_other_encodings_of_the_same_content_pass_lax_but_not_strict(keys: dict[int, Any]) -> None:
    raw = cose.encode_sign1(PAYLOAD, keys[ALG_ES256], ALG_ES256, b"kid")
    protected_raw, _, payload, signature = cbor2.loads(raw).value
    long_head = (
        b"\xd2\x84\x58"
        + bytes([len(protected_raw)])
        + protected_raw
        + raw[3 + len(protected_raw) :]
    )
    variants = {
        "untagged": cbor2.dumps([protected_raw, {}, payload, signature]),
        "unprotected kid": cbor2.dumps(
            cbor2.CBORTag(18, [protected_raw, {4: b"x"}, payload, signature])
        ),
        "non-shortest length": long_head,
    }
    for name, variant in variants.items():
        assert cose.parse_sign1(variant).payload == PAYLOAD, name
        with pytest.raises(CoseError):
            cose.parse_sign1_strict(variant)
