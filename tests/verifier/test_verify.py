"""verify_at: every reason code from a real signed permit, both algorithms, key policy."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from permit_helpers import NOW, SLOT, claims_of, cose_of, forge, text_from_cose

from verifier import (
    PermitRefused,
    Reason,
    RevocationSet,
    SlotWindow,
    TrustStore,
    VerifiedPermit,
    permit_hash,
    verify_at,
)
from verifier.keys import SigningKey
from verifier.permit import holder_hash
from verifier.sandbox import Sandbox


def refused(raw: Any, now: float, store: TrustStore, **kw: Any) -> Reason:
    with pytest.raises(PermitRefused) as info:
        verify_at(raw, now, trust=store, **kw)
    assert isinstance(info.value, ValueError)
    return info.value.reason


@pytest.mark.parametrize("key", ["es256", "eddsa"])
def test_valid_permit_round_trip(sb: Sandbox, key: str) -> None:
    issued = sb.issue_full(
        ptype="umrah",
        site="madinah",
        slot=SLOT,
        party=3,
        gate_groups=("north", "east"),
        key=key,
        initials="ak",
        doc_number="p 123-4567",
        health="ok",
    )
    permit = verify_at(issued.text, NOW, trust=sb.store, window=SlotWindow(600, 600))
    assert isinstance(permit, VerifiedPermit)
    assert permit.permit_id == issued.permit_id and len(permit.permit_id) == 16
    assert permit.ph == permit_hash(issued.permit_id) == issued.ph
    assert (permit.ptype, permit.site, permit.party) == ("umrah", "madinah", 3)
    assert permit.gate_groups == ("north", "east")
    assert (permit.slot_start, permit.slot_end) == SLOT
    assert permit.holder_initials == "AK" and permit.holder_doc_digits == "4567"
    assert permit.holder_matches("P1234567") and not permit.holder_matches("P1234568")
    assert permit.holder_hash == holder_hash(issued.permit_id, "P1234567")
    assert permit.alg == {"es256": "ES256", "eddsa": "EdDSA"}[key]
    assert permit.kid == sb.issuers[key].kid
    assert permit.issuer == "moh" and permit.route is None
    with pytest.raises(AttributeError):
        permit.party = 9  # type: ignore[misc]


def test_bus_permit_carries_route_and_departure(sb: Sandbox) -> None:
    raw = sb.issue(ptype="bus", slot=SLOT, route="haram-mina-3", departure=SLOT[0] + 900)
    permit = verify_at(raw, NOW, trust=sb.store)
    assert (permit.route, permit.departure) == ("haram-mina-3", SLOT[0] + 900)


def test_bytes_input_is_accepted(sb: Sandbox) -> None:
    raw = sb.issue(slot=SLOT)
    assert verify_at(raw.encode(), NOW, trust=sb.store).ph == sb.issued[raw].ph


def test_permit_ids_are_random_and_distinct() -> None:
    sb = Sandbox.create()
    ids = {sb.issue_full(slot=SLOT).permit_id for _ in range(50)}
    assert len(ids) == 50


def test_time_reasons(sb: Sandbox) -> None:
    w = SlotWindow(early_s=600, late_s=300)
    raw = sb.issue(slot=SLOT, issued_at=SLOT[0] - 1000)
    assert verify_at(raw, SLOT[0] - 600, trust=sb.store, window=w)
    assert refused(raw, SLOT[0] - 601, sb.store, window=w) == Reason.TOO_EARLY
    assert verify_at(raw, SLOT[1] + 300, trust=sb.store, window=w)
    assert refused(raw, SLOT[1] + 301, sb.store, window=w) == Reason.TOO_LATE
    # no window: the slot end is the expiry
    assert refused(raw, SLOT[1], sb.store) == Reason.EXPIRED
    # issued in the future (beyond the skew allowance) relative to the gate's clock
    assert refused(raw, SLOT[0] - 1000 - 301, sb.store) == Reason.ISSUED_IN_FUTURE


def test_nbf_and_exp_claims(sb: Sandbox) -> None:
    raw = sb.issue(slot=SLOT, not_before=SLOT[0] - 100, expires_at=SLOT[1] + 50)
    w = SlotWindow(early_s=3600, late_s=3600)
    assert refused(raw, SLOT[0] - 101, sb.store, window=w) == Reason.NOT_YET_VALID
    assert verify_at(raw, SLOT[1] + 49, trust=sb.store, window=w).expires_at == SLOT[1] + 50
    assert refused(raw, SLOT[1] + 50, sb.store, window=w) == Reason.EXPIRED


def test_revoked(sb: Sandbox) -> None:
    raw = sb.issue(slot=SLOT)
    other = sb.issue(slot=SLOT)
    revset = RevocationSet(sb.store)
    revset.apply(sb.revoke(raw), now=NOW)
    assert refused(raw, NOW, sb.store, revocations=revset) == Reason.REVOKED
    assert verify_at(other, NOW, trust=sb.store, revocations=revset)
    assert verify_at(raw, NOW, trust=sb.store)  # no revocation set given: not checked


def test_unknown_key_and_forgery() -> None:
    ours = Sandbox.create(seed="ours")
    theirs = Sandbox.create(seed="theirs")
    assert refused(theirs.issue(slot=SLOT), NOW, ours.store) == Reason.UNKNOWN_KEY
    # same kid as our issuer, but another private key: the signature fails
    impostor = SigningKey.generate("ES256", kid=ours.issuers["es256"].kid)
    claims = claims_of(ours.issue(slot=SLOT))
    assert refused(forge(impostor, claims), NOW, ours.store) == Reason.BAD_SIGNATURE


def test_claims_changed_after_signing_fail(sb: Sandbox) -> None:
    raw = sb.issue(slot=SLOT, party=1)
    cose_bytes = cose_of(raw)
    patched = cose_bytes.replace(b"\x24\x01", b"\x24\x09", 1)  # claim -5 (party): 1 -> 9
    assert patched != cose_bytes
    assert refused(text_from_cose(patched), NOW, sb.store) == Reason.BAD_SIGNATURE


def test_key_scope_sites_types_issuer() -> None:
    sb = Sandbox.create(sites=("makkah-haram",), seed="scope")
    sb.add_issuer("bus-only", ptypes=("bus",), sites=("madinah",))
    sb.publish_trust_list()
    assert verify_at(
        sb.issue(ptype="bus", site="madinah", key="bus-only", slot=SLOT), NOW, trust=sb.store
    )
    for kw in ({"ptype": "umrah", "site": "madinah"}, {"ptype": "bus", "site": "makkah-haram"}):
        raw = sb.issue(key="bus-only", slot=SLOT, **kw)
        assert refused(raw, NOW, sb.store) == Reason.KEY_OUT_OF_SCOPE
    raw = sb.issue(slot=SLOT, issuer="someone-else")
    assert refused(raw, NOW, sb.store) == Reason.KEY_OUT_OF_SCOPE


def test_rotation_two_keys_then_retirement() -> None:
    sb = Sandbox.create(seed="rotation")
    old_raw = sb.issue(slot=SLOT, issued_at=SLOT[0] - 5000)
    sb.add_issuer("next", "EdDSA", not_before=SLOT[0] - 4000)
    sb.publish_trust_list()
    new_raw = sb.issue(slot=SLOT, key="next", issued_at=SLOT[0] - 3000)
    # both keys valid at once
    assert verify_at(old_raw, NOW, trust=sb.store).kid == sb.issuers["es256"].kid
    assert verify_at(new_raw, NOW, trust=sb.store).kid == sb.issuers["next"].kid
    # retire the old key at SLOT[0] - 4000: its permits issued before stay good,
    # anything it signs afterwards is refused
    sb.specs["es256"].not_after = SLOT[0] - 4000
    sb.publish_trust_list()
    assert verify_at(old_raw, NOW, trust=sb.store)
    late = sb.issue(slot=SLOT, issued_at=SLOT[0] - 100)
    assert refused(late, NOW, sb.store) == Reason.KEY_NOT_VALID
    early = sb.issue(slot=SLOT, key="next", issued_at=SLOT[0] - 4500)
    assert refused(early, NOW, sb.store) == Reason.KEY_NOT_VALID
    # a hard stop for everything the old key signed
    sb.specs["es256"].verify_until = NOW - 1
    sb.publish_trust_list()
    assert refused(old_raw, NOW, sb.store) == Reason.KEY_NOT_VALID
    # removed from the trust list: unknown
    sb.remove_issuer("es256")
    sb.publish_trust_list()
    assert refused(old_raw, NOW, sb.store) == Reason.UNKNOWN_KEY


def test_colliding_kids_try_each_candidate() -> None:
    sb = Sandbox.create(seed="collide")
    kid = b"\x01\x02\x03\x04"
    sb.add_issuer("a", "ES256", kid=kid)
    sb.add_issuer("b", "ES256", kid=kid, issuer="other", ptypes=("bus",))
    sb.add_issuer("c", "EdDSA", kid=kid)
    sb.publish_trust_list()
    assert len(sb.store.permit_keys(kid)) == 3
    for name in ("a", "c"):
        assert verify_at(sb.issue(slot=SLOT, key=name), NOW, trust=sb.store).kid == kid
    assert verify_at(sb.issue(slot=SLOT, key="b", ptype="bus"), NOW, trust=sb.store)
    stranger = SigningKey.generate("ES256", kid=kid)
    forged = forge(stranger, claims_of(sb.issue(slot=SLOT, key="a")))
    assert refused(forged, NOW, sb.store) == Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({1: 0}, Reason.BAD_ALGORITHM),  # alg "none"-like: reserved 0
        ({1: 5}, Reason.BAD_ALGORITHM),  # HMAC 256/256 with the public key as secret
        ({1: -37}, Reason.BAD_ALGORITHM),  # PS256: not a permit algorithm
        ({1: "ES256"}, Reason.BAD_ALGORITHM),  # text alg
        ({}, Reason.BAD_ALGORITHM),  # no alg at all
        ({1: -7, 2: [1]}, Reason.BAD_COSE),  # crit / any extra header
        ({1: -7, 4: "kid"}, Reason.BAD_COSE),  # kid must be bytes
    ],
)
def test_algorithm_confusion_and_headers(
    sb: Sandbox, header: dict[int, Any], reason: Reason
) -> None:
    key = sb.issuers["es256"]
    claims = claims_of(sb.issue(slot=SLOT))
    h = {4: key.kid, **header} if 4 not in header else header
    assert refused(forge(key, claims, protected=h), NOW, sb.store) == reason


def test_hmac_forgery_with_public_key_as_secret(sb: Sandbox) -> None:
    import hashlib
    import hmac

    from verifier import cose

    key = sb.issuers["es256"]
    protected_raw = cbor2.dumps({1: 5, 4: key.kid}, canonical=True)
    payload = cbor2.dumps(claims_of(sb.issue(slot=SLOT)), canonical=True)
    tag = hmac.new(
        key.public_der(), cose.sig_structure(protected_raw, payload), hashlib.sha256
    ).digest()
    raw = text_from_cose(cbor2.dumps(cbor2.CBORTag(18, [protected_raw, {}, payload, tag])))
    assert refused(raw, NOW, sb.store) == Reason.BAD_ALGORITHM


def test_key_used_outside_its_algorithm(sb: Sandbox) -> None:
    """An Ed25519 issuer's kid with alg ES256 (and the reverse) is refused before verifying."""
    es, ed = sb.issuers["es256"], sb.issuers["eddsa"]
    claims = claims_of(sb.issue(slot=SLOT))
    lying = forge(es, claims, protected={1: -7, 4: ed.kid})  # signed by ES256 key, ed's kid
    assert refused(lying, NOW, sb.store) == Reason.BAD_ALGORITHM
    lying = forge(ed, claims, protected={1: -8, 4: es.kid})
    assert refused(lying, NOW, sb.store) == Reason.BAD_ALGORITHM


@pytest.mark.parametrize("tag", [None, 17, 61, 98, 96])
def test_wrong_cose_tags(sb: Sandbox, tag: int | None) -> None:
    key = sb.issuers["es256"]
    raw = forge(key, claims_of(sb.issue(slot=SLOT)), tag=tag)
    assert refused(raw, NOW, sb.store) == Reason.BAD_COSE


def test_unprotected_header_content_is_refused(sb: Sandbox) -> None:
    key = sb.issuers["es256"]
    raw = forge(key, claims_of(sb.issue(slot=SLOT)), unprotected={4: key.kid})
    assert refused(raw, NOW, sb.store) == Reason.BAD_COSE


@pytest.mark.parametrize(
    ("change", "value"),
    [
        (7, b"short"),  # permit id < 128 bits
        (-5, 0),  # party 0
        (-5, 65),  # party too big
        (-5, True),  # bool is not an int here
        (-4, [SLOT[0]]),  # slot without duration
        (-4, [SLOT[0], 0]),  # empty slot
        (-4, [SLOT[0], -5]),
        (-3, []),  # no gate group
        (-3, ["bad group!"]),
        (-1, ""),  # empty type
        (-2, 7),  # site not text
        (-6, ["ak", "1", b""]),  # lower-case initials
        (-6, ["AK", "1234", b"123"]),  # wrong hash length
        (6, -1),  # negative iat
        (6, 1.5),  # float time
        (-50, "x"),  # unknown private claim
        (99, 1),  # unknown claim
    ],
)
def test_bad_claims_even_when_signed(sb: Sandbox, change: int, value: Any) -> None:
    claims = claims_of(sb.issue(slot=SLOT))
    claims[change] = value
    raw = forge(sb.issuers["es256"], claims)
    assert refused(raw, NOW, sb.store) == Reason.BAD_CLAIMS


@pytest.mark.parametrize("missing", [1, 6, 7, -1, -2, -3, -4, -5, -6, -7])
def test_missing_required_claim(sb: Sandbox, missing: int) -> None:
    claims = claims_of(sb.issue(slot=SLOT))
    del claims[missing]
    assert refused(forge(sb.issuers["es256"], claims), NOW, sb.store) == Reason.BAD_CLAIMS


def test_extension_range_claims_are_ignored(sb: Sandbox) -> None:
    claims = claims_of(sb.issue(slot=SLOT))
    claims[-150] = {"note": "ignored by verifiers"}
    assert verify_at(forge(sb.issuers["es256"], claims), NOW, trust=sb.store)


def test_signed_garbage_payload_is_bad_claims(sb: Sandbox) -> None:
    from verifier import cose

    key = sb.issuers["es256"]
    for payload in (b"\xff\xff", b"\x9f" * 20, b"\x81" * 50 + b"\x00", b"\xa1\x01", b""):
        raw = text_from_cose(cose.encode_sign1(payload, key.private, key.alg_id, key.kid))
        assert refused(raw, NOW, sb.store) == Reason.BAD_CLAIMS


def test_not_text_input() -> None:
    store = Sandbox.create(seed="x").store
    assert refused(12345, NOW, store) == Reason.MALFORMED
    assert refused(b"\xff\xfe", NOW, store) == Reason.BAD_ENCODING
    assert refused("GP1:\u00e9\u00e9\u00e9", NOW, store) == Reason.BAD_ENCODING


@pytest.mark.parametrize("now", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_time_is_a_caller_error(sb: Sandbox, now: float) -> None:
    raw = sb.issue(slot=SLOT)
    with pytest.raises(ValueError, match="finite") as info:
        verify_at(raw, now, trust=sb.store, window=SlotWindow(600, 600))
    assert not isinstance(info.value, PermitRefused)


def test_any_site_sandbox_needs_a_site() -> None:
    sb = Sandbox.create(sites=(), seed="any-site")
    raw = sb.issue(slot=SLOT, site="taif")
    assert verify_at(raw, NOW, trust=sb.store).site == "taif"
    with pytest.raises(ValueError, match="site"):
        sb.issue(slot=SLOT)


def test_fast_construction_fills_exactly_the_dataclass_fields(sb: Sandbox) -> None:
    import dataclasses

    permit = verify_at(sb.issue(slot=SLOT), NOW, trust=sb.store)
    assert set(vars(permit)) == {f.name for f in dataclasses.fields(VerifiedPermit)}
    again = dataclasses.replace(permit)  # through the real __init__
    assert again == permit and hash(again) == hash(permit)
