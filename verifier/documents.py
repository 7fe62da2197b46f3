"""Signed documents for the downlink: trust lists, revocations, time beacons, config, used permits.

A document is a COSE_Sign1 (canonical shape, see :func:`verifier.cose.parse_sign1_strict`)
whose payload is the deterministic CBOR (:mod:`verifier.canonical`) map
``{"kind": tstr, "v": uint, "iat": int?, "body": any}``.
Who may sign which kind: the trust list only the root key; revocation snapshots and
deltas the root or a key the trust list gives the ``revocation`` role; every other
kind (time beacons, gate config, used-permit batches...) the root or a ``central`` key.

Signer validity (:func:`read_document`): a trust-list key signs nothing that is accepted
outside its window: refused when ``now`` is before its ``nbf`` or after its ``until``,
when the document's ``iat`` lies outside ``[nbf, exp]``, or when ``now`` is past ``exp``
and the document carries no ``iat`` (it cannot show it was signed in time). The root
has no window. Without ``now`` only root-signed documents are accepted.

Versions (no rollback) follow one rule, :func:`check_newer`, that every holder calls
with the newest version it holds on the document's *line* (:func:`version_line`):
revocation snapshots and deltas share the line ``revocations``; every other kind is its
own line, except ``used_permits``, an additive stream with no line (a batch only adds
permits already admitted; replays are harmless and dropped by the holder). Versions
start at 1; 0 means "nothing held".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from verifier import canonical, cose
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
#: Nesting limit of a document payload, in containers (the payload map is level 1).
MAX_DEPTH = 16
#: The version line revocation snapshots and deltas share.
LINE_REVOCATIONS = "revocations"


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
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError("document version must be an integer >= 1")
    payload: dict[str, Any] = {"kind": kind, "v": version, "body": body}
    if issued_at is not None:
        payload["iat"] = int(issued_at)
    return key.sign1(canonical.dumps(payload))


def read_document(
    raw: bytes,
    kind: str | Collection[str],
    trust: TrustStore,
    *,
    now: float | None = None,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Document:
    """Verify ``raw`` against ``trust`` and return the document; raise :class:`DocumentRefused`.

    ``kind`` is the kind (or kinds) the caller expects; ``now`` (seconds since the epoch)
    is the time the signer's validity is checked at (see the module docstring). Version
    order is the caller's: :func:`check_newer`.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise DocumentRefused(Reason.MALFORMED, "a signed document must be bytes")
    if len(raw) > max_bytes:
        raise DocumentRefused(Reason.TOO_LARGE, f"document above {max_bytes} bytes")
    raw = bytes(raw)
    try:
        unverified = cose.parse_sign1_strict(raw)
    except cose.CoseNonCanonical as exc:
        raise DocumentRefused(Reason.NON_CANONICAL, str(exc)) from None
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
        payload = canonical.loads(unverified.payload, max_depth=MAX_DEPTH)
    except canonical.CborNonCanonical as exc:
        raise DocumentRefused(Reason.NON_CANONICAL, f"document payload: {exc}") from None
    except ValueError as exc:
        raise DocumentRefused(Reason.MALFORMED, f"document payload: {exc}") from None
    if not isinstance(payload, Mapping):
        raise DocumentRefused(Reason.MALFORMED, "document payload must be a map")
    got_kind, version, iat = payload.get("kind"), payload.get("v"), payload.get("iat")
    if not isinstance(got_kind, str):
        raise DocumentRefused(Reason.MALFORMED, "document kind missing")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DocumentRefused(Reason.MALFORMED, "document version must be an integer >= 1")
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
    if signer is not trust.root:
        check_signer_valid(signer, now, iat)
    return Document(got_kind, version, payload["body"], iat, signer)


def check_signer_valid(signer: TrustedKey, now: float | None, issued_at: int | None) -> None:
    """Refuse (``KEY_NOT_VALID``) a document from a trust-list key outside its window."""
    kid = signer.kid.hex()
    if now is None:
        raise DocumentRefused(
            Reason.KEY_NOT_VALID, f"no time given to check the validity of signer {kid}"
        )
    if now < signer.not_before:
        raise DocumentRefused(Reason.KEY_NOT_VALID, f"signer {kid} is not valid yet")
    if signer.verify_until is not None and now > signer.verify_until:
        raise DocumentRefused(Reason.KEY_NOT_VALID, f"signer {kid} is retired")
    if issued_at is None:
        if now > signer.not_after:
            raise DocumentRefused(
                Reason.KEY_NOT_VALID,
                f"signer {kid} stopped signing at its exp and the document has no iat",
            )
    elif not signer.not_before <= issued_at <= signer.not_after:
        raise DocumentRefused(
            Reason.KEY_NOT_VALID, f"document issued outside the signing window of key {kid}"
        )


def version_line(kind: str) -> str | None:
    """The version line of ``kind``: ``revocations`` for snapshots and deltas, none for
    the additive ``used_permits`` stream, the kind itself otherwise."""
    if kind in (KIND_REVOCATION_SNAPSHOT, KIND_REVOCATION_DELTA):
        return LINE_REVOCATIONS
    if kind == KIND_USED_PERMITS:
        return None
    return kind


def delta_base(body: Any) -> int:
    """The version a revocation delta applies to (``body["base"]``); raise ``MALFORMED``."""
    base = body.get("base") if isinstance(body, Mapping) else None
    if type(base) is not int or base < 0:
        raise DocumentRefused(Reason.MALFORMED, "revocation delta lacks a non-negative base")
    return base


def check_version(kind: str, version: int, held: int, *, base: int | None = None) -> None:
    """:func:`check_newer` on bare values: ``base`` is a delta's base (deltas only), for a
    holder about to sign or publish ``version`` itself (the centre's gate config)."""
    if kind == KIND_REVOCATION_DELTA:
        if base is None:
            raise DocumentRefused(Reason.MALFORMED, "revocation delta lacks a base")
        if version <= base:
            raise DocumentRefused(
                Reason.MALFORMED, f"delta version {version} is not above its base {base}"
            )
    if version <= held:
        raise DocumentRefused(
            Reason.ROLLBACK, f"{kind} version {version} is not newer than held version {held}"
        )
    if kind == KIND_REVOCATION_DELTA and base != held:
        raise DocumentRefused(
            Reason.VERSION_GAP,
            f"delta applies to version {base} but version {held} is held;"
            " fetch the missing deltas or a new snapshot",
        )


def check_newer(doc: Document, held: int) -> None:
    """The one monotonic rule: accept ``doc`` only when it moves its line forward.

    ``held`` is the newest version the caller holds on ``version_line(doc.kind)`` (0:
    none). Refused with ``ROLLBACK`` when ``doc.version <= held`` (the same version
    again included); a revocation delta must also start exactly at ``held``
    (``body["base"] == held``, else ``VERSION_GAP``) and end above its base. A snapshot
    replaces the whole line; the next document after it must be newer than it.
    """
    base = delta_base(doc.body) if doc.kind == KIND_REVOCATION_DELTA else None
    check_version(doc.kind, doc.version, held, base=base)


def open_document(
    raw: bytes, kind: str | Collection[str], trust: TrustStore, *, now: float | None = None
) -> tuple[int, Any]:
    """Verify a signed document and return ``(version, body)``; see :func:`read_document`."""
    doc = read_document(raw, kind, trust, now=now)
    return doc.version, doc.body
