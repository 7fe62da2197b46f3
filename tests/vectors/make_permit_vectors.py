"""Generate the permit test vectors in tests/vectors/permits/.

Run from the repository root: ``.venv/bin/python tests/vectors/make_permit_vectors.py``.
Keys are fixed test fixtures committed under ``permits/keys/`` (created once from a
fixed seed when missing); trust bundles go to ``permits/trust/``, extra signed
documents to ``permits/docs/``, and one JSON file per case to ``permits/``::

    {"description": ..., "payload": "GP1:...", "trust": "trust/base.json",
     "at": "2026-05-28T20:31:40Z", "window": {"early_s": .., "late_s": ..} (optional),
     "apply": ["docs/x.cose", ...] (optional: signed documents applied after the bundle),
     "apply_expected": [null | "<reason>", ...] (optional: each applied document's verdict),
     "expected": {"ok": true|false, "reason": null|"<reason code>"}}

ECDSA signatures use a random nonce, so re-running changes the payloads but never the
verdicts; the tests check every vector through the API and the CLI.
"""

from __future__ import annotations

import json
import shutil
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2

ROOT = Path(__file__).resolve().parent / "permits"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from verifier import base45, canonical, cose, envelope  # noqa: E402
from verifier.documents import sign_document  # noqa: E402
from verifier.keys import SigningKey  # noqa: E402
from verifier.revocation import sign_delta, sign_snapshot  # noqa: E402
from verifier.sandbox import Sandbox, derive_key, load_sandbox  # noqa: E402

T0 = 1_780_000_000  # 2026-05-28T20:26:40Z
SLOT = (T0 + 3600, T0 + 7200)
AT = SLOT[0] + 300
RETIRE_AT = T0 - 86400  # es256 stops signing at this time in trust/rotated.json


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def keys_sandbox() -> Sandbox:
    keydir = ROOT / "keys"
    if not (keydir / "keys.json").exists():
        sb = Sandbox.create(sites=("makkah-haram", "madinah"), seed="gatepass-vectors-v1")
        sb.add_issuer("es256b", "ES256", not_before=RETIRE_AT)
        sb.add_issuer("collide-a", "ES256", kid=b"\xc0\x11\x1d\xe0")
        sb.add_issuer("collide-b", "EdDSA", kid=b"\xc0\x11\x1d\xe0")
        sb.add_issuer("bus-only", "ES256", ptypes=("bus",), sites=("madinah",))
        sb.publish_trust_list()
        keydir.mkdir(parents=True, exist_ok=True)
        for name, data in sb.bundle_files().items():
            if name != "trust.json":
                (keydir / name).write_bytes(data)
        (keydir / "trust.json").write_bytes(sb.bundle().to_bytes())
    files = {p.name: p.read_bytes() for p in keydir.iterdir() if p.is_file()}
    return load_sandbox(files, now=T0)


def forge(
    key: SigningKey,
    claims: dict[int, Any],
    header: dict[int, Any] | None = None,
    tag: int | None = 18,
) -> str:
    protected = cbor2.dumps(header or {1: key.alg_id, 4: key.kid}, canonical=True)
    payload = cbor2.dumps(claims, canonical=True)
    alg = key.alg_id
    sig = cose.sign(alg, key.private, cose.sig_structure(protected, payload))
    body = [protected, {}, payload, sig]
    return envelope.PREFIX + base45.encode(
        cbor2.dumps(cbor2.CBORTag(tag, body) if tag is not None else body)
    )


def forge_bytes(key: SigningKey, payload: bytes, protected: bytes | None = None) -> str:
    """A permit over exact ``payload`` (and ``protected``) bytes: for encoding vectors."""
    protected = protected if protected is not None else canonical.dumps({1: key.alg_id, 4: key.kid})
    sig = cose.sign(key.alg_id, key.private, cose.sig_structure(protected, payload))
    return envelope.wrap(canonical.dumps(cbor2.CBORTag(18, [protected, {}, payload, sig])))


def cbor_map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A definite map of already-encoded pairs, in the order given (duplicates allowed)."""
    assert len(pairs) < 24
    return bytes((0xA0 | len(pairs),)) + b"".join(k + v for k, v in pairs)


def claim_pairs(claims: dict[int, Any]) -> list[tuple[bytes, bytes]]:
    """The claims' encoded pairs in deterministic (bytewise) order."""
    return sorted((canonical.dumps(k), canonical.dumps(v)) for k, v in claims.items())


def claims_of(text: str) -> dict[int, Any]:
    return dict(cbor2.loads(cose.parse_sign1_strict(envelope.unwrap(text)).payload))


def main() -> None:
    sb = keys_sandbox()
    for sub in ("trust", "docs"):
        shutil.rmtree(ROOT / sub, ignore_errors=True)
        (ROOT / sub).mkdir(parents=True)
    for old in ROOT.glob("*.json"):
        old.unlink()

    # trust/base.json: trust list v1 with every key valid
    base_version = sb.trust_version
    (ROOT / "trust" / "base.json").write_bytes(sb.bundle().to_bytes())
    trust_v_base = sb.store.trust_list
    assert trust_v_base is not None
    (ROOT / "docs" / "trust-old.cose").write_bytes(trust_v_base)

    # trust/revoked.json: base + a revocation snapshot and a delta
    revoked_permit = sb.issue_full(slot=SLOT, key="es256", issued_at=T0)
    unrevoked_permit = sb.issue_full(slot=SLOT, key="es256", issued_at=T0)
    snap = sign_snapshot([revoked_permit.permit_id, unrevoked_permit.permit_id], 1, sb.revoker)
    delta = sign_delta(1, 2, sb.revoker, remove=[unrevoked_permit.permit_id])
    bundle = sb.bundle()
    revoked_bundle = type(bundle)(
        bundle.root_spki, bundle.root_alg, bundle.root_kid, bundle.trust_list, (snap, delta)
    )
    (ROOT / "trust" / "revoked.json").write_bytes(revoked_bundle.to_bytes())
    (ROOT / "docs" / "delta-gap.cose").write_bytes(
        sign_delta(7, 8, sb.revoker, add=[unrevoked_permit.permit_id])
    )
    (ROOT / "docs" / "time-beacon.cose").write_bytes(
        sign_document("time_beacon", {"t": T0}, 1, sb.central)
    )

    # trust/rotated.json: next version, es256 retired at RETIRE_AT (es256b took over)
    sb.specs["es256"].not_after = RETIRE_AT
    sb.publish_trust_list()
    assert sb.trust_version == base_version + 1
    (ROOT / "trust" / "rotated.json").write_bytes(sb.bundle().to_bytes())

    vectors: list[dict[str, Any]] = []

    def add(
        name: str,
        description: str,
        payload: str,
        expected: str | None,
        *,
        trust: str = "base",
        at: int = AT,
        window: tuple[int, int] | None = None,
        apply: list[str] | None = None,
        apply_expected: list[str | None] | None = None,
    ) -> None:
        v: dict[str, Any] = {
            "description": description,
            "payload": payload,
            "trust": f"trust/{trust}.json",
            "at": iso(at),
        }
        if window is not None:
            v["window"] = {"early_s": window[0], "late_s": window[1]}
        if apply:
            v["apply"] = apply
            v["apply_expected"] = apply_expected
        v["expected"] = {"ok": expected is None, "reason": expected}
        vectors.append(v)
        (ROOT / f"{len(vectors):02d}-{name}.json").write_text(json.dumps(v, indent=1) + "\n")

    def issue(**kw: Any) -> str:
        kw.setdefault("slot", SLOT)
        kw.setdefault("issued_at", T0)
        return sb.issue(**kw)

    typical = issue(party=3, gate_groups=("north",), initials="AK", doc_number="P1234567")
    add("ok-es256", "typical ES256 permit, party of 3", typical, None)
    add("ok-eddsa", "EdDSA (Ed25519) permit", issue(key="eddsa"), None)
    compressed = issue(gate_groups=tuple(f"north-gate-{i}" for i in range(8)))
    assert base45.decode(compressed[4:])[0] == 0x78
    add("ok-zlib", "zlib-compressed permit (compression shrinks it)", compressed, None)
    add(
        "ok-bus",
        "bus permit with route and departure",
        issue(
            ptype="bus",
            site="madinah",
            route="haram-mina-3",
            departure=SLOT[0] + 900,
            key="bus-only",
        ),
        None,
    )
    add(
        "ok-early-grace",
        "inside the early grace of the slot window",
        typical,
        None,
        at=SLOT[0] - 600,
        window=(600, 300),
    )
    add(
        "ok-collide-a",
        "colliding kid: the first candidate key verifies",
        issue(key="collide-a"),
        None,
    )
    add(
        "ok-collide-b",
        "colliding kid: the second candidate (EdDSA) verifies",
        issue(key="collide-b"),
        None,
    )
    old = issue(key="es256", issued_at=RETIRE_AT - 3600)
    add(
        "ok-rotation-old-key",
        "rotation: permit signed by the old key before retirement",
        old,
        None,
        trust="rotated",
    )
    add(
        "ok-rotation-new-key",
        "rotation: permit signed by the new key",
        issue(key="es256b", issued_at=RETIRE_AT + 60),
        None,
        trust="rotated",
    )
    add("too-large", "text longer than the 1200-character limit", "GP1:" + "0" * 1200, "too_large")
    add("malformed-prefix", "no GP1: prefix", typical[4:], "malformed")
    add(
        "unsupported-version",
        "a future prefix version",
        "GP2:" + typical[4:],
        "unsupported_version",
    )
    add(
        "bad-encoding",
        "lower-case character is not Base45",
        typical[:20] + typical[20].lower() + typical[21:]
        if typical[20].isalpha()
        else typical[:20] + "a" + typical[21:],
        "bad_encoding",
    )
    add(
        "decompression-limit",
        "zlib bomb: 700 KB from 1 KB",
        "GP1:" + base45.encode(zlib.compress(b"\xd2" + bytes(700_000), 9)),
        "decompression_limit",
    )
    es = sb.issuers["es256"]
    claims = claims_of(typical)
    add("bad-cose-untagged", "COSE_Sign1 without tag 18", forge(es, claims, tag=None), "bad_cose")
    add("bad-cose-wrong-tag", "COSE_Mac0 tag 17", forge(es, claims, tag=17), "bad_cose")
    add(
        "bad-algorithm-hmac",
        "alg HMAC 256/256",
        forge(es, claims, {1: 5, 4: es.kid}),
        "bad_algorithm",
    )
    add(
        "bad-algorithm-none",
        "alg 0 (reserved, no signature)",
        forge(es, claims, {1: 0, 4: es.kid}),
        "bad_algorithm",
    )
    ed = sb.issuers["eddsa"]
    add(
        "bad-algorithm-key-confusion",
        "ES256 header naming the Ed25519 key's kid",
        forge(es, claims, {1: -7, 4: ed.kid}),
        "bad_algorithm",
    )
    stranger = derive_key("not-trusted", "x", "ES256")
    add(
        "unknown-key", "signed by a key no trust list names", forge(stranger, claims), "unknown_key"
    )
    tampered = claims_of(typical)
    tampered[-5] = 9
    impostor = derive_key("impostor", "x", "ES256", kid=es.kid)
    add(
        "bad-signature",
        "trusted kid, wrong private key (party raised to 9)",
        forge(impostor, tampered),
        "bad_signature",
    )
    add(
        "key-out-of-scope-site",
        "bus-only key signing for makkah-haram",
        issue(ptype="bus", site="makkah-haram", key="bus-only"),
        "key_out_of_scope",
    )
    add(
        "key-out-of-scope-type",
        "bus-only key signing an umrah permit",
        issue(ptype="umrah", site="madinah", key="bus-only"),
        "key_out_of_scope",
    )
    late = issue(key="es256", issued_at=RETIRE_AT + 60)
    add(
        "key-not-valid-retired",
        "rotation: old key signing after its retirement",
        late,
        "key_not_valid",
        trust="rotated",
    )
    bad = claims_of(typical)
    bad[-5] = 0
    add("bad-claims", "correctly signed, party 0", forge(es, bad), "bad_claims")
    add(
        "issued-in-future",
        "issued-at beyond the clock skew allowance",
        issue(issued_at=AT + 3600),
        "issued_in_future",
    )
    add(
        "not-yet-valid",
        "nbf after the verification time",
        issue(not_before=AT + 60),
        "not_yet_valid",
    )
    add("expired-exp", "exp claim passed", issue(expires_at=AT - 1), "expired", window=(3600, 3600))
    add(
        "expired-slot",
        "no window given: the slot end is the expiry",
        typical,
        "expired",
        at=SLOT[1],
    )
    add(
        "too-early",
        "before the slot minus the early grace",
        typical,
        "too_early",
        at=SLOT[0] - 601,
        window=(600, 300),
    )
    add(
        "too-late",
        "after the slot plus the late grace",
        typical,
        "too_late",
        at=SLOT[1] + 301,
        window=(600, 300),
    )
    add("revoked", "revoked by the snapshot", revoked_permit.text, "revoked", trust="revoked")
    add(
        "unrevoked-by-delta",
        "revoked by the snapshot, un-revoked by the delta",
        unrevoked_permit.text,
        None,
        trust="revoked",
    )
    add(
        "rollback-trust-list",
        "an older trust list (key still valid there) is refused;"
        " the newer one keeps the retired key refused",
        late,
        "key_not_valid",
        trust="rotated",
        apply=["docs/trust-old.cose"],
        apply_expected=["rollback"],
    )
    add(
        "version-gap-delta",
        "a revocation delta that skips versions is refused",
        unrevoked_permit.text,
        None,
        trust="revoked",
        apply=["docs/delta-gap.cose"],
        apply_expected=["version_gap"],
    )
    add(
        "wrong-kind-document",
        "a time beacon where a trust list/revocation is expected",
        typical,
        None,
        apply=["docs/time-beacon.cose"],
        apply_expected=["wrong_kind"],
    )
    # --- deterministic encoding (docs/permit-format.md "Deterministic CBOR") -----------
    pairs = claim_pairs(claims)
    party = canonical.dumps(-5)
    dup = [*pairs, (party, canonical.dumps(5))]  # party 3, then party 5 again
    assert dict(cbor2.loads(cbor_map(dup)))[-5] == 5  # a last-wins decoder reads 5
    add(
        "non-canonical-duplicate-claim",
        "claims hold party twice (3 then 5): a first-wins and a last-wins reader would differ",
        forge_bytes(es, cbor_map(dup)),
        "non_canonical",
    )
    add(
        "non-canonical-trailing-bytes",
        "one byte after the claims map",
        forge_bytes(es, canonical.dumps(claims) + b"\x00"),
        "non_canonical",
    )
    add(
        "non-canonical-claims-order",
        "claims map keys in reverse order",
        forge_bytes(es, cbor_map(pairs[::-1])),
        "non_canonical",
    )
    long_iat = [
        (k, b"\x1b" + claims[6].to_bytes(8, "big")) if k == canonical.dumps(6) else (k, v)
        for k, v in pairs
    ]
    add(
        "non-canonical-long-integer",
        "iat in 8-byte form (its shortest form is 4 bytes)",
        forge_bytes(es, cbor_map(long_iat)),
        "non_canonical",
    )
    groups = canonical.dumps(-3)
    indefinite = [
        (k, b"\x9f" + b"".join(canonical.dumps(g) for g in claims[-3]) + b"\xff")
        if k == groups
        else (k, v)
        for k, v in pairs
    ]
    add(
        "non-canonical-indefinite-length",
        "gate groups as an indefinite-length array",
        forge_bytes(es, cbor_map(indefinite)),
        "non_canonical",
    )
    kid = canonical.dumps(es.kid)
    add(
        "non-canonical-header-order",
        "protected header {4: kid, 1: alg}: keys out of order",
        forge_bytes(es, canonical.dumps(claims), b"\xa2\x04" + kid + b"\x01\x26"),
        "non_canonical",
    )
    add(
        "non-canonical-header-alg-long",
        "protected header alg -7 as 0x38 0x06 (its shortest form is 0x26)",
        forge_bytes(es, canonical.dumps(claims), b"\xa2\x01\x38\x06\x04" + kid),
        "non_canonical",
    )
    add(
        "bad-claims-null-optional",
        "exp present as null: optional claims are absent, never null",
        forge_bytes(es, cbor_map(claim_pairs({**claims, 4: None}))),
        "bad_claims",
    )

    # --- documents: rollback, first version, strict deltas, encoding, retired signers --
    docs = ROOT / "docs"
    (docs / "snapshot-same-version.cose").write_bytes(sign_snapshot([], 2, sb.revoker))
    (docs / "snapshot-older.cose").write_bytes(sign_snapshot([], 1, sb.revoker))
    add(
        "rollback-revocation-snapshot",
        "held revocations v2 (snapshot v1 + delta v2) revoke it; an empty snapshot v2 and"
        " an empty snapshot v1 are both refused (not newer) and it stays revoked",
        revoked_permit.text,
        "revoked",
        trust="revoked",
        apply=["docs/snapshot-same-version.cose", "docs/snapshot-older.cose"],
        apply_expected=["rollback", "rollback"],
    )
    (docs / "version-zero.cose").write_bytes(
        sb.revoker.sign1(
            canonical.dumps({"kind": "revocation_snapshot", "v": 0, "body": {"ids": b""}})
        )
    )
    both = revoked_permit.permit_id
    (docs / "delta-add-and-remove.cose").write_bytes(
        sb.revoker.sign1(
            canonical.dumps(
                {
                    "kind": "revocation_delta",
                    "v": 3,
                    "body": {"base": 2, "add": both, "remove": both},
                }
            )
        )
    )
    head_pairs = sorted(
        (canonical.dumps(k), canonical.dumps(v))
        for k, v in {"kind": "revocation_delta", "v": 3}.items()
    )
    body_pair = (canonical.dumps("body"), canonical.dumps({"base": 2, "remove": both}))
    unsorted_doc = cbor_map([*head_pairs[::-1], body_pair])
    (docs / "delta-non-canonical.cose").write_bytes(sb.revoker.sign1(unsorted_doc))
    add(
        "document-refusals",
        "a document v0 (versions start at 1), a delta adding and removing one id, and a"
        " delta whose payload keys are out of order are refused; the permit stays revoked",
        revoked_permit.text,
        "revoked",
        trust="revoked",
        apply=[
            "docs/version-zero.cose",
            "docs/delta-add-and-remove.cose",
            "docs/delta-non-canonical.cose",
        ],
        apply_expected=["malformed", "malformed", "non_canonical"],
    )

    # trust/revoker-retired.json: the first revocation key retired (until) before AT; a
    # second one signed the bundle's snapshot. A delta from the retired key is refused.
    retired_at = AT - 3600
    sb.add_issuer("revoker2", "ES256", issuer="central", roles=("revocation",))
    sb.specs["revoker"].verify_until = retired_at
    sb.publish_trust_list()
    target = sb.issue_full(slot=SLOT, key="es256b", issued_at=T0)
    snap2 = sign_snapshot([target.permit_id], 1, sb.specs["revoker2"].key)
    bundle = sb.bundle()
    retired_bundle = type(bundle)(
        bundle.root_spki, bundle.root_alg, bundle.root_kid, bundle.trust_list, (snap2,)
    )
    (ROOT / "trust" / "revoker-retired.json").write_bytes(retired_bundle.to_bytes())
    (docs / "delta-retired-signer.cose").write_bytes(
        sign_delta(1, 2, sb.revoker, remove=[target.permit_id])
    )
    add(
        "revocation-signer-retired",
        "a delta un-revoking it, signed by a revocation key past its until, is refused",
        target.text,
        "revoked",
        trust="revoker-retired",
        apply=["docs/delta-retired-signer.cose"],
        apply_expected=["key_not_valid"],
    )
    print(f"wrote {len(vectors)} vectors to {ROOT}")


if __name__ == "__main__":
    main()
