"""Presentations beyond the vectors: hostile input, bytes input, the cnf fast path, issuing."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import PermitRefused, Reason, base45, canonical, cose, envelope, verify_at
from verifier import presentation as gpp
from verifier.issue import issue_permit
from verifier.permit import cnf_claim
from verifier.sandbox import Sandbox

T0 = 1_780_000_000
SLOT = (T0, T0 + 3600)
NOW = T0 + 100


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    sb = Sandbox.create(sites=("makkah-haram",), seed="presentation-unit")
    dev = ec.generate_private_key(ec.SECP256R1())
    spec = sb.specs["es256"]
    point = dev.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    text = issue_permit(spec.key, issuer=spec.issuer, issued_at=T0, ptype="umrah",
                        site="makkah-haram", slot=SLOT, holder_key=point).text
    return {"sb": sb, "dev": dev, "point": point, "text": text, "cose": envelope.unwrap(text),
            "spec": spec}


def refusal(raw: Any, world: dict[str, Any], now: float = NOW, **kw: Any) -> str | None:
    try:
        verify_at(raw, now, trust=world["sb"].store, **kw)
    except PermitRefused as exc:
        return exc.reason.value
    return None


def test_presentation_as_ascii_bytes(world: dict[str, Any]) -> None:
    text = gpp.make_presentation(world["cose"], world["dev"], NOW)
    assert refusal(text.encode(), world) is None
    assert refusal(b"GPP1:\xff", world) == "bad_encoding"
    assert refusal(b"GPP1:" + b"0" * 1600, world) == "too_large"


def test_verified_permit_says_it_was_presented(world: dict[str, Any]) -> None:
    text = gpp.make_presentation(world["cose"], world["dev"], NOW, period_s=20)
    permit = verify_at(text, NOW, trust=world["sb"].store)
    assert permit.presentation == (NOW // 20, 20)
    assert permit.holder_key == world["point"]
    d = permit.to_dict()
    assert d["presentation"] == {"step": NOW // 20, "period_s": 20}
    assert d["holder_key"] == world["point"].hex()
    bare = verify_at(world["text"], NOW, trust=world["sb"].store, presentation_policy="static")
    assert bare.presentation is None and bare.holder_key == world["point"]
    assert bare.permit_id == permit.permit_id  # the ledger keys on the permit, not the code


def test_presentation_is_one_qr_of_bounded_size(world: dict[str, Any]) -> None:
    import segno

    text = gpp.make_presentation(world["cose"], world["dev"], NOW)
    assert len(text) < 500
    assert segno.make(text, error="m", boost_error=False).version <= 13


@functools.cache
def _sandbox() -> Sandbox:
    return Sandbox.create(sites=("makkah-haram",), seed="presentation-unit")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_hostile_bodies_only_refuse(body: bytes) -> None:
    sb = _sandbox()
    with contextlib.suppress(PermitRefused):
        verify_at(gpp.PREFIX + base45.encode(body), NOW, trust=sb.store)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=255))
def test_every_single_byte_change_is_refused(pos: int, value: int) -> None:
    sb = _sandbox()
    dev = ec.derive_private_key(7, ec.SECP256R1())
    spec = sb.specs["es256"]
    point = dev.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    permit = envelope.unwrap(issue_permit(
        spec.key, issuer=spec.issuer, issued_at=T0, ptype="umrah", site="makkah-haram",
        slot=SLOT, holder_key=point, permit_id=bytes(16)).text)
    body = bytearray(base45.decode(gpp.make_presentation(permit, dev, NOW)[5:]))
    pos %= len(body)
    if body[pos] == value:
        return
    body[pos] = value
    with pytest.raises(PermitRefused):
        verify_at(gpp.PREFIX + base45.encode(bytes(body)), NOW, trust=sb.store)


@pytest.mark.parametrize("compressed", [True, False])
def test_cnf_fast_canonical_check_agrees_with_the_generic_one(
    world: dict[str, Any], compressed: bool
) -> None:
    dev = world["dev"]
    fmt = (serialization.PublicFormat.CompressedPoint if compressed
           else serialization.PublicFormat.UncompressedPoint)
    point = dev.public_key().public_bytes(serialization.Encoding.X962, fmt)
    spec = world["spec"]
    text = issue_permit(spec.key, issuer=spec.issuer, issued_at=T0, ptype="umrah",
                        site="makkah-haram", slot=SLOT, holder_key=point).text
    payload = cose.split_sign1_strict(envelope.unwrap(text))[1]
    canonical.loads(payload)  # the issuer's encoding is deterministic
    claims = canonical.loads(payload)
    assert claims[8] == cnf_claim(point)  # issuers always write the compressed form
    assert type(claims[8][1][-3]) is bool
    # An uncompressed cnf signed by the issuer verifies too, through the fast check.
    c = dict(claims)
    c[8] = {1: {1: 2, -1: 1, -2: point[1:33],
                -3: dev.public_key().public_numbers().y.to_bytes(32, "big")}}
    raw = spec.key.sign1(canonical.dumps(c))
    text2 = gpp.make_presentation(raw, dev, NOW)
    assert verify_at(text2, NOW, trust=world["sb"].store).presentation is not None


def test_proof_binds_the_exact_permit_bytes(world: dict[str, Any]) -> None:
    proof = gpp.make_proof(world["cose"], world["dev"], NOW, 15)
    protected, payload, signature = cose.split_sign1_strict(proof)
    assert protected == b"\xa1\x01\x26" and len(signature) == 64
    assert canonical.loads(payload) == {1: NOW // 15, 2: 15}
    message = cose.sig_structure(protected, payload, hashlib.sha256(world["cose"]).digest())
    cose.verify_signature(cose.ALG_ES256, world["dev"].public_key(), signature, message)


def test_make_proof_refuses_bad_inputs(world: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="period"):
        gpp.make_proof(world["cose"], world["dev"], NOW, 4)
    with pytest.raises(ValueError, match="P-256"):
        gpp.make_proof(world["cose"], ec.generate_private_key(ec.SECP384R1()), NOW, 15)


def test_tolerance_is_a_parameter(world: dict[str, Any]) -> None:
    text = gpp.make_presentation(world["cose"], world["dev"], NOW)
    end = (NOW // 15 + 1) * 15
    assert refusal(text, world, now=end + 100, presentation_tolerance_s=120) is None
    assert refusal(text, world, now=end + 100) == Reason.PRESENTATION_EXPIRED.value


def test_caller_bugs_are_value_errors_not_admissions(world: dict[str, Any]) -> None:
    text = gpp.make_presentation(world["cose"], world["dev"], NOW)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="tolerance"):
            verify_at(text, NOW, trust=world["sb"].store, presentation_tolerance_s=bad)
    with pytest.raises(ValueError, match="presentation_policy"):
        verify_at(world["text"], NOW, trust=world["sb"].store, presentation_policy="require")
