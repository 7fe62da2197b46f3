"""Deterministic CBOR (verifier.canonical) and the fast claims check that must agree with it."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import Reason, canonical, cose, envelope, verify_at
from verifier.errors import PermitRefused
from verifier.permit import claims_canonical, decode_claims
from verifier.sandbox import Sandbox

scalars = (
    st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.text(max_size=30)
    | st.binary(max_size=30)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
)
keys = (
    st.integers(min_value=-(2**40), max_value=2**40) | st.text(max_size=30) | st.binary(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)


@given(values)
@settings(max_examples=300, deadline=None)
def test_round_trip_and_one_encoding(value: Any) -> None:
    data = canonical.dumps(value)
    back = canonical.loads(data)
    assert canonical.dumps(back) == data
    # whatever other encoding cbor2 gives the same value is refused, never read differently
    for other in (cbor2.dumps(value), cbor2.dumps(value, canonical=True)):
        if other != data:
            with pytest.raises(canonical.CborNonCanonical):
                canonical.loads(other)


def test_map_keys_bytewise_not_length_first() -> None:
    # 24 encodes as 0x18 0x18, -1 as 0x20: bytewise 24 comes first; length-first -1 does
    data = canonical.dumps({-1: "a", 24: "b"})
    assert data == bytes.fromhex("a2 1818 6162 20 6161")
    assert cbor2.dumps({-1: "a", 24: "b"}, canonical=True) != data
    with pytest.raises(canonical.CborNonCanonical, match="order"):
        canonical.loads(cbor2.dumps({-1: "a", 24: "b"}, canonical=True))


@pytest.mark.parametrize(
    ("hex_bytes", "rule"),
    [
        ("a2 01 02 01 03", "duplicate"),
        ("a1 01 02 00", "trailing"),
        ("a2 02 01 01 02", "order"),
        ("a1 18 01 02", "shortest"),
        ("a1 01 19 0002", "shortest"),
        ("9f 01 ff", "indefinite"),
        ("5f 41 61 ff", "indefinite"),
        ("fb 3ff0000000000000", "shortest"),  # 1.0 in 64 bits; f9 3c00 is its form
        ("c2 41 01", "shortest"),  # bignum 1
    ],
)
def test_each_rule_is_named(hex_bytes: str, rule: str) -> None:
    with pytest.raises(canonical.CborNonCanonical, match=rule):
        canonical.loads(bytes.fromhex(hex_bytes))


def test_depth_is_counted_in_containers() -> None:
    assert canonical.loads(canonical.dumps(1), max_depth=0) == 1
    assert canonical.loads(canonical.dumps([1]), max_depth=1) == [1]
    assert canonical.loads(canonical.dumps({1: [2]}), max_depth=2) == {1: [2]}
    with pytest.raises(canonical.CborInvalid, match="depth"):
        canonical.loads(canonical.dumps({1: [2]}), max_depth=1)
    with pytest.raises(canonical.CborInvalid):
        canonical.loads(b"\x81" * 100)


# --- the permit claims: the fast length check agrees with the generic check ---------------

SB = Sandbox.create(seed="canonical")
TEXT = SB.issue(party=3, route=None, expires_at=SB.epoch + 7200)
CLAIMS: dict[int, Any] = dict(cbor2.loads(cose.parse_sign1_strict(envelope.unwrap(TEXT)).payload))


def _widen(enc: bytes) -> bytes:
    """The same integer or length head one size wider (non-shortest)."""
    first = enc[0]
    major, info = first & 0xE0, first & 0x1F
    if info < 24:
        return bytes((major | 24, info)) + enc[1:]
    width = {24: 1, 25: 2, 26: 4}.get(info)
    if width is None:
        return enc + b""  # already 8 bytes wide: leave it
    nxt = {1: 25, 2: 26, 4: 27}[width]
    arg = int.from_bytes(enc[1 : 1 + width], "big")
    return bytes((major | nxt,)) + arg.to_bytes(width * 2, "big") + enc[1 + width :]


@given(
    st.lists(
        st.sampled_from(["widen-value", "widen-key", "swap", "dup", "trail", "none"]),
        min_size=1,
        max_size=3,
    ),
    st.randoms(use_true_random=False),
)
@settings(max_examples=300, deadline=None)
def test_fast_claims_check_agrees_with_generic(ops: list[str], rnd: Any) -> None:
    pairs = sorted((canonical.dumps(k), canonical.dumps(v)) for k, v in CLAIMS.items())
    tail = b""
    for op in ops:
        i = rnd.randrange(len(pairs))
        k, v = pairs[i]
        if op == "widen-value" and v[0] & 0xE0 in (0x00, 0x20, 0x40, 0x60, 0x80):
            pairs[i] = (k, _widen(v))
        elif op == "widen-key":
            pairs[i] = (_widen(k), v)
        elif op == "swap":
            j = rnd.randrange(len(pairs))
            pairs[i], pairs[j] = pairs[j], pairs[i]
        elif op == "dup" and len(pairs) < 23:
            pairs.insert(rnd.randrange(len(pairs) + 1), (k, v))
        elif op == "trail":
            tail = b"\x00"
    data = bytes((0xA0 | len(pairs),)) + b"".join(a + b for a, b in pairs) + tail
    decoded = cbor2.loads(data)
    try:
        canonical.loads(data, max_depth=4)
        generic = True
    except canonical.CborNonCanonical:
        generic = False
    try:
        permit = decode_claims(decoded, b"k", "ES256")
    except ValueError:
        return  # a duplicate kept a value the profile refuses anyway
    assert claims_canonical(decoded, permit, len(data)) is generic


def test_permit_with_extension_claim_uses_the_generic_check() -> None:
    es = SB.issuers["es256"]
    claims = {**CLAIMS, -150: {"z": 1, "a": [1, 2]}}  # an ignored extension claim
    good = canonical.dumps(claims)
    protected = canonical.dumps({1: es.alg_id, 4: es.kid})

    def permit(payload: bytes) -> str:
        sig = cose.sign(es.alg_id, es.private, cose.sig_structure(protected, payload))
        return envelope.wrap(canonical.dumps(cbor2.CBORTag(18, [protected, {}, payload, sig])))

    now = SB.epoch + 60
    assert verify_at(permit(good), now, trust=SB.store).party == 3
    bad = cbor2.dumps(claims)  # cbor2 keeps insertion order: -150 last, not in order
    with pytest.raises(PermitRefused) as info:
        verify_at(permit(bad), now, trust=SB.store)
    assert info.value.reason == Reason.NON_CANONICAL


def test_issued_permits_and_documents_are_deterministic() -> None:
    payload = cose.parse_sign1_strict(envelope.unwrap(TEXT)).payload
    assert canonical.loads(payload) == CLAIMS
    raw = SB.sign_document("gate_config", {"b" * 30: 1, "a": {24: 1, -1: 2}}, 1)
    assert canonical.loads(cose.parse_sign1_strict(raw).payload)["body"]["a"] == {24: 1, -1: 2}


@given(
    party=st.integers(min_value=1, max_value=64),
    groups=st.lists(st.from_regex(r"[a-z0-9-]{1,30}", fullmatch=True), min_size=1, max_size=4),
    initials=st.from_regex(r"[A-Z]{0,4}", fullmatch=True),
    duration=st.integers(min_value=1, max_value=31 * 86400),
    exp=st.none() | st.integers(min_value=0, max_value=2**40 - 1),
    route=st.none() | st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True),
    departure=st.none() | st.integers(min_value=0, max_value=2**40 - 1),
    site=st.from_regex(r"[a-z]{1,30}", fullmatch=True),
)
@settings(max_examples=150, deadline=None)
def test_fast_check_proves_every_issued_shape(
    party: int, groups: list[str], initials: str, duration: int, exp: int | None,
    route: str | None, departure: int | None, site: str,
) -> None:
    """Whatever the issuer mints, the fast check proves it deterministic (no slow path)."""
    start = SB.epoch
    text = SB.issue(
        site=site, slot=(start, start + duration), party=party, gate_groups=tuple(groups),
        initials=initials, expires_at=exp, route=route, departure=departure,
        issued_at=start - 10,
    )
    payload = cose.parse_sign1_strict(envelope.unwrap(text)).payload
    claims = cbor2.loads(payload)
    permit = decode_claims(claims, b"k", "ES256")
    assert claims_canonical(claims, permit, len(payload)) is True
    assert claims_canonical(claims, permit, len(payload) + 1) is False
