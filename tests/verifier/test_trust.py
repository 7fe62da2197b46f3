"""Trust lists (root-signed, versioned, no rollback), trust bundles and signed documents."""

from __future__ import annotations

import base64
import json

import pytest

from verifier import DocumentRefused, Reason, TrustBundle, TrustStore, canonical, documents
from verifier.errors import KeyUnusable
from verifier.keys import SigningKey
from verifier.sandbox import Sandbox


def _refused(fn: object, *args: object, **kw: object) -> Reason:
    with pytest.raises(DocumentRefused) as info:
        fn(*args, **kw)  # type: ignore[operator]
    assert isinstance(info.value, ValueError)
    return info.value.reason


def test_rollback_refused_and_same_version_idempotent() -> None:
    sb = Sandbox.create(seed="trust")
    v1 = sb.sign_trust_list(1)
    v2 = sb.publish_trust_list()  # version 2 applied to sb.store
    store = TrustStore(sb.root.public(), root_kid=sb.root.kid)
    assert store.apply(v2) == 2
    assert store.apply(v2) == 2  # the same list again: no-op
    assert _refused(store.apply, v1) == Reason.ROLLBACK
    other_v2 = sb.sign_trust_list(2)  # same version, other bytes
    assert _refused(store.apply, other_v2) == Reason.ROLLBACK
    assert store.version == 2 and store.trust_list == v2


def test_trust_list_must_be_signed_by_root() -> None:
    sb = Sandbox.create(seed="trust-root")
    store = sb.new_store()
    forged = documents.sign_document("trust_list", sb.trust_list_body(), 9, sb.central)
    assert _refused(store.apply, forged) == Reason.KEY_OUT_OF_SCOPE
    stranger = SigningKey.generate()
    forged = documents.sign_document("trust_list", sb.trust_list_body(), 9, stranger)
    assert _refused(store.apply, forged) == Reason.UNKNOWN_KEY
    impostor = SigningKey.generate(kid=sb.root.kid)
    forged = documents.sign_document("trust_list", sb.trust_list_body(), 9, impostor)
    assert _refused(store.apply, forged) == Reason.BAD_SIGNATURE
    beacon = sb.sign_document("time_beacon", {"t": 1}, 10, signer="root")
    assert _refused(store.apply, beacon) == Reason.WRONG_KIND
    assert store.version == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"keys": "x"},
        {"keys": [1]},
        {"keys": [{"kid": b"", "alg": "ES256", "spki": b"x", "iss": "a"}]},
        {"keys": [{"kid": b"k", "alg": "HS256", "spki": b"x", "iss": "a"}]},
        {"keys": [{"kid": b"k", "alg": "ES256", "spki": b"not a key", "iss": "a"}]},
    ],
)
def test_malformed_trust_list_bodies(body: object) -> None:
    sb = Sandbox.create(seed="trust-bodies")
    raw = documents.sign_document("trust_list", body, 5, sb.root)
    assert _refused(sb.new_store().apply, raw) in {Reason.MALFORMED, Reason.BAD_ALGORITHM}


def test_trust_entry_key_must_fit_its_algorithm() -> None:
    sb = Sandbox.create(seed="trust-alg")
    body = sb.trust_list_body()
    body["keys"][0]["alg"] = "EdDSA"  # an ES256 key declared as EdDSA
    raw = documents.sign_document("trust_list", body, 5, sb.root)
    assert _refused(sb.new_store().apply, raw) == Reason.MALFORMED


def test_unknown_role_refused() -> None:
    sb = Sandbox.create(seed="trust-role")
    body = sb.trust_list_body()
    body["keys"][0]["roles"] = ["permit", "superuser"]
    raw = documents.sign_document("trust_list", body, 5, sb.root)
    assert _refused(sb.new_store().apply, raw) == Reason.MALFORMED


def test_documents_roles_and_kinds() -> None:
    sb = Sandbox.create(seed="docs")
    store = sb.store
    beacon = sb.sign_document("time_beacon", {"t": 1_780_000_000}, 3, issued_at=1_780_000_000)
    doc = documents.read_document(beacon, "time_beacon", store, now=sb.epoch)
    assert (doc.version, doc.body, doc.issued_at) == (3, {"t": 1_780_000_000}, 1_780_000_000)
    assert documents.open_document(
        beacon, ("gate_config", "time_beacon"), store, now=sb.epoch
    ) == (
        3,
        {"t": 1_780_000_000},
    )
    assert _refused(documents.open_document, beacon, "gate_config", store, now=sb.epoch) == (
        Reason.WRONG_KIND
    )
    # a permit issuer may not sign downlink documents; the revoker may not sign beacons
    by_issuer = sb.sign_document("time_beacon", {"t": 1}, 4, signer="es256")
    assert _refused(documents.open_document, by_issuer, "time_beacon", store, now=sb.epoch) == (
        Reason.UNKNOWN_KEY
    )
    by_revoker = sb.sign_document("time_beacon", {"t": 1}, 4, signer="revoker")
    assert _refused(documents.open_document, by_revoker, "time_beacon", store, now=sb.epoch) == (
        Reason.KEY_OUT_OF_SCOPE
    )
    # central may not sign revocations; root may sign anything
    snap = sb.sign_document("revocation_snapshot", {"ids": b""}, 4, signer="central")
    assert _refused(documents.open_document, snap, "revocation_snapshot", store, now=sb.epoch) == (
        Reason.KEY_OUT_OF_SCOPE
    )
    for kind in ("used_permits", "gate_config", "revocation_delta"):
        raw = sb.sign_document(kind, {"x": 1}, 1, signer="root")
        assert documents.open_document(raw, kind, store, now=None)[0] == 1  # root: no window


def test_document_signer_retired() -> None:
    sb = Sandbox.create(seed="docs-retired")
    sb.specs["central"].verify_until = 1000
    sb.publish_trust_list()
    raw = sb.sign_document("gate_config", {}, 1)
    assert documents.open_document(raw, "gate_config", sb.store, now=999)[0] == 1
    assert _refused(documents.open_document, raw, "gate_config", sb.store, now=1001) == (
        Reason.KEY_NOT_VALID
    )


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00", b"\xd2\x84", "text", b"\xd2" + b"\x81" * 100_000, b"\xa0" * 10],
)
def test_hostile_documents(raw: object) -> None:
    sb = Sandbox.create(seed="docs-hostile")
    reason = _refused(documents.read_document, raw, "gate_config", sb.store)
    assert reason in {Reason.BAD_COSE, Reason.MALFORMED}


def test_document_size_limit_checked_first() -> None:
    sb = Sandbox.create(seed="docs-size")
    raw = b"\x00" * 2000
    assert _refused(documents.read_document, raw, "gate_config", sb.store, max_bytes=1000) == (
        Reason.TOO_LARGE
    )


def test_signed_document_payload_shape() -> None:
    sb = Sandbox.create(seed="docs-shape")
    for payload in (
        {"kind": "gate_config", "v": -1, "body": {}},
        {"kind": "gate_config", "v": 1},
        {"kind": "gate_config", "v": 1, "body": {}, "extra": 1},
        {"kind": 7, "v": 1, "body": {}},
        [1, 2],
    ):
        raw = sb.central.sign1(canonical.dumps(payload))
        assert _refused(
            documents.read_document, raw, "gate_config", sb.store, now=sb.epoch
        ) == (Reason.MALFORMED)


def test_bundle_round_trip_and_errors(tmp_path: object) -> None:
    sb = Sandbox.create(seed="bundle")
    sb.revoke(sb.issue_full().permit_id)
    data = sb.bundle().to_bytes()
    bundle = TrustBundle.from_bytes(data)
    store = bundle.store()
    assert store.version == sb.trust_version
    assert len(bundle.revocation_set(store, now=sb.epoch)) == 1
    doc = json.loads(data)
    bad_cases = [
        b"not json",
        b"[]",
        json.dumps({**doc, "format": "other"}).encode(),
        json.dumps({**doc, "root": {"kid": "zz", "alg": "ES256", "spki": "AA=="}}).encode(),
        json.dumps({**doc, "trust_list": "!!!"}).encode(),
        json.dumps({**doc, "revocations": "x"}).encode(),
        json.dumps({k: v for k, v in doc.items() if k != "root"}).encode(),
    ]
    for bad in bad_cases:
        with pytest.raises(KeyUnusable):
            TrustBundle.from_bytes(bad)
    # a bundle whose trust list was signed by another root fails verification, loudly
    other = Sandbox.create(seed="bundle-other")
    mixed = {**doc, "trust_list": base64.b64encode(other.store.trust_list or b"").decode()}
    with pytest.raises(DocumentRefused):
        TrustBundle.from_bytes(json.dumps(mixed).encode()).store()


def test_hostile_bundle_json() -> None:
    for data in (b"[" * 200_000 + b"]" * 200_000, b"\xff\xfe", b"{" * 50, b"x" * 1000):
        with pytest.raises(KeyUnusable):
            TrustBundle.from_bytes(data)


@pytest.mark.parametrize("kind", ["trust_list", "revocation_delta", "gate_config"])
def test_every_byte_change_of_a_signed_document_is_refused(kind: str) -> None:
    """Each byte of a signed document, flipped three ways: refused with a reason, always."""
    from verifier import RevocationSet
    from verifier.revocation import sign_delta

    sb = Sandbox.create(seed="docs-mutation")
    if kind == "trust_list":
        raw = sb.sign_trust_list(sb.trust_version + 1)
    elif kind == "revocation_delta":
        raw = sign_delta(0, 1, sb.revoker, add=[bytes(range(16))])
    else:
        raw = sb.sign_document("gate_config", {"gate": "north-1", "mode": "entrance"}, 3)
    store = sb.new_store()  # a refused document never changes it, so one store serves all
    for i in range(len(raw)):
        for mask in (0x01, 0x80, 0xFF):
            changed = bytearray(raw)
            changed[i] ^= mask
            with pytest.raises(DocumentRefused):
                if kind == "trust_list":
                    store.apply(bytes(changed))
                elif kind == "revocation_delta":
                    RevocationSet(store).apply(bytes(changed), now=sb.epoch)
                else:
                    documents.read_document(bytes(changed), kind, store, now=sb.epoch)
    assert store.version == sb.trust_version
    for cut in range(len(raw)):
        with pytest.raises(DocumentRefused):
            documents.read_document(raw[:cut], kind, sb.store, now=sb.epoch)
