"""Signed documents for the downlink: trust lists, revocations, time beacons, config, used permits.

A document is a COSE_Sign1 (canonical shape, see :func:`verifier.cose.parse_sign1_strict`)
whose payload is the CBOR map ``{"kind": tstr, "v": uint, "iat": int?, "body": any}``.
Who may sign which kind: the trust list only the root key; revocation snapshots and
deltas the root or a key the trust list gives the ``revocation`` role; every other
kind (time beacons, gate config, used-permit batches...) the root or a ``central`` key.
Version order (no rollback) is the holder's job: :class:`verifier.trust.TrustStore` and
:class:`verifier.revocation.RevocationSet` enforce it for their kinds; for the others
the caller compares ``version`` with the last one it accepted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cbor2

from verifier import cose
from verifier.errors import DocumentRefused, Reason
from verifier.keys import (
    ROLE_CENTRAL,
    ROLE_REGISTRY,
    ROLE_REVOCATION,
    ROLE_ROOT,
    SigningKey,
    TrustedKey,
)

if TYPE_CHECKING:
    from verifier.trust import TrustStore

KIND_TRUST_LIST = "trust_list"
KIND_REVOCATION_SNAPSHOT = "revocation_snapshot"
KIND_REVOCATION_DELTA = "revocation_delta"
KIND_TIME_BEACON = "time_beacon"
KIND_GATE_CONFIG = "gate_config"
KIND_USED_PERMITS = "used_permits"
KIND_GATE_REGISTRY = "gate_registry"  # body: see verifier.registry

#: Roles allowed to sign each kind; kinds not listed here take ``DEFAULT_SIGNER_ROLES``.
SIGNER_ROLES: Mapping[str, frozenset[str]] = {
    KIND_TRUST_LIST: frozenset({ROLE_ROOT}),
    KIND_REVOCATION_SNAPSHOT: frozenset({ROLE_ROOT, ROLE_REVOCATION}),
    KIND_REVOCATION_DELTA: frozenset({ROLE_ROOT, ROLE_REVOCATION}),
    KIND_GATE_REGISTRY: frozenset({ROLE_ROOT, ROLE_REGISTRY}),
}
DEFAULT_SIGNER_ROLES = frozenset({ROLE_ROOT, ROLE_CENTRAL})

#: Refuse a document above this size before any work (1M revocations ≈ 16 MB).
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Document:
    """A verified document: its kind, version, signer and body (plain CBOR values)."""

    kind: str
    version: int
    body: Any
    issued_at: int | None
    signer: TrustedKey


def sign_document(
    kind: str, body: Any, version: int, key: SigningKey, *, issued_at: int | None = None
) -> bytes:
    """Sign ``body`` (CBOR-encodable: maps, lists, str, bytes, ints) as a ``kind`` document."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError("document version must be a non-negative integer")
    payload: dict[str, Any] = {"kind": kind, "v": version, "body": body}
    if issued_at is not None:
        payload["iat"] = int(issued_at)
    return key.sign1(cbor2.dumps(payload, canonical=True))


def read_document(
    raw: bytes,
    kind: str | Collection[str],
    trust: TrustStore,
    *,
    now: float | None = None,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Document:
    """Verify ``raw`` against ``trust`` and return the document; raise :class:`DocumentRefused`.

    ``kind`` is the kind (or kinds) the caller expects. With ``now``, a signer past its
    ``verify_until`` is refused too.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise DocumentRefused(Reason.MALFORMED, "a signed document must be bytes")
    if len(raw) > max_bytes:
        raise DocumentRefused(Reason.TOO_LARGE, f"document above {max_bytes} bytes")
    raw = bytes(raw)
    try:
        unverified = cose.parse_sign1_strict(raw)
    except cose.CoseError as exc:
        raise DocumentRefused(Reason.BAD_COSE, str(exc)) from None
    alg, kid = unverified.alg, unverified.kid
    if alg is None or alg not in (cose.ALG_ES256, cose.ALG_EDDSA):
        raise DocumentRefused(Reason.BAD_ALGORITHM, f"document algorithm {alg!r} not allowed")
    if kid is None:
        raise DocumentRefused(Reason.BAD_COSE, "document has no kid in its protected header")
    candidates = trust.document_keys(kid)
    if not candidates:
        raise DocumentRefused(Reason.UNKNOWN_KEY, f"no root or trust-list key has kid {kid.hex()}")
    fitting = [k for k in candidates if cose.key_fits(alg, k.public)]
    if not fitting:
        raise DocumentRefused(Reason.BAD_ALGORITHM, "no key with that kid fits the algorithm")
    message = unverified.to_be_signed()
    signer = None
    for key in fitting:  # colliding kids: try each candidate
        try:
            cose.verify_signature(alg, key.public, unverified.signature, message)
        except (cose.CoseSignatureError, cose.CoseAlgorithmError):
            continue
        signer = key
        break
    if signer is None:
        raise DocumentRefused(Reason.BAD_SIGNATURE, "document signature does not verify")
    try:
        payload = cose.loads_strict(unverified.payload, max_depth=MAX_DEPTH)
    except ValueError as exc:
        raise DocumentRefused(Reason.MALFORMED, f"document payload: {exc}") from None
    if not isinstance(payload, Mapping):
        raise DocumentRefused(Reason.MALFORMED, "document payload must be a map")
    got_kind, version, iat = payload.get("kind"), payload.get("v"), payload.get("iat")
    if not isinstance(got_kind, str):
        raise DocumentRefused(Reason.MALFORMED, "document kind missing")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise DocumentRefused(Reason.MALFORMED, "document version must be a non-negative integer")
    if iat is not None and (isinstance(iat, bool) or not isinstance(iat, int)):
        raise DocumentRefused(Reason.MALFORMED, "document iat must be an integer")
    if "body" not in payload or set(payload) - {"kind", "v", "iat", "body"}:
        raise DocumentRefused(Reason.MALFORMED, "document must hold exactly kind, v, iat?, body")
    expected = (kind,) if isinstance(kind, str) else tuple(kind)
    if got_kind not in expected:
        raise DocumentRefused(
            Reason.WRONG_KIND, f"got a {got_kind!r} document where {' or '.join(expected)} expected"
        )
    if not signer.roles & SIGNER_ROLES.get(got_kind, DEFAULT_SIGNER_ROLES):
        raise DocumentRefused(
            Reason.KEY_OUT_OF_SCOPE, f"key {kid.hex()} may not sign {got_kind} documents"
        )
    if now is not None and signer.verify_until is not None and now > signer.verify_until:
        raise DocumentRefused(Reason.KEY_NOT_VALID, f"key {kid.hex()} retired")
    return Document(got_kind, version, payload["body"], iat, signer)


def open_document(
    raw: bytes, kind: str | Collection[str], trust: TrustStore, *, now: float | None = None
) -> tuple[int, Any]:
    """Verify a signed document and return ``(version, body)``; see :func:`read_document`."""
    doc = read_document(raw, kind, trust, now=now)
    return doc.version, doc.body
