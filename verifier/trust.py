"""Trust: the root public key, the signed trust list of issuer keys, and trust bundles.

A gate holds only the root public key and the latest trust list. The trust list is a
``trust_list`` document (see :mod:`verifier.documents`) signed by the root whose body is
``{"keys": [entry, ...]}``; each entry::

    {"kid": bstr, "alg": "ES256"|"EdDSA", "spki": bstr (DER SubjectPublicKeyInfo),
     "iss": tstr, "roles": ["permit", "revocation", "central"],
     "types": [tstr] | null, "sites": [tstr] | null,      # null: any
     "nbf": int, "exp": int, "until": int | null}           # seconds since the epoch

A trust bundle (the file ``gatepass keys new`` writes and ``gatepass verify --trust``
reads) is UTF-8 JSON::

    {"format": "gatepass-trust-bundle/1",
     "root": {"kid": hex, "alg": "ES256", "spki": base64},
     "trust_list": base64 | null, "revocations": [base64, ...]}
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from verifier import cose
from verifier.documents import KIND_TRUST_LIST, check_newer, read_document
from verifier.errors import DocumentRefused, KeyUnusable, Reason
from verifier.keys import (
    ROLE_ROOT,
    ROLES,
    TrustedKey,
    alg_id,
    default_kid,
    load_public,
    spki,
)

if TYPE_CHECKING:
    from verifier.revocation import RevocationSet

BUNDLE_FORMAT = "gatepass-trust-bundle/1"
MAX_BUNDLE_BYTES = 128 * 1024 * 1024
MAX_KEYS = 10_000


def _alg_of(public: cose.PublicKey) -> int:
    for alg in (cose.ALG_ES256, cose.ALG_EDDSA):
        if cose.key_fits(alg, public):
            return alg
    raise KeyUnusable("root key must be P-256 (ES256) or Ed25519 (EdDSA)")


class TrustStore:
    """What a gate trusts: the root key plus the newest trust list it has accepted.

    ``apply`` verifies a signed trust list against the root and refuses one whose
    version is older than the held one (``Reason.ROLLBACK``); re-applying the very
    same list is a no-op. ``apply`` builds the new key index first and then rebinds it,
    so verification in another thread sees the old or the new list, never half of one.
    """

    def __init__(self, root_public: cose.PublicKey, *, root_kid: bytes | None = None) -> None:
        self.root = TrustedKey(
            kid=root_kid if root_kid is not None else default_kid(root_public),
            alg=_alg_of(root_public),
            public=root_public,
            issuer="root",
            roles=frozenset({ROLE_ROOT}),
        )
        self.version = 0
        self.trust_list: bytes | None = None
        self.keys: tuple[TrustedKey, ...] = ()
        self._permit_keys: dict[bytes, tuple[TrustedKey, ...]] = {}
        self._document_keys: dict[bytes, tuple[TrustedKey, ...]] = {self.root.kid: (self.root,)}

    def apply(self, signed_trust_list: bytes) -> int:
        """Verify and install a trust list; return its version."""
        doc = read_document(signed_trust_list, KIND_TRUST_LIST, self, now=None)  # root only
        if doc.signer is not self.root:
            raise DocumentRefused(Reason.KEY_OUT_OF_SCOPE, "trust list not signed by the root")
        if doc.version == self.version and bytes(signed_trust_list) == self.trust_list:
            return self.version  # the very list held: nothing to do
        check_newer(doc, self.version)
        keys = parse_trust_list_body(doc.body)
        permit: dict[bytes, list[TrustedKey]] = {}
        documents: dict[bytes, list[TrustedKey]] = {self.root.kid: [self.root]}
        for key in keys:
            if "permit" in key.roles:
                permit.setdefault(key.kid, []).append(key)
            if key.roles - {"permit"}:
                documents.setdefault(key.kid, []).append(key)
        self.keys = keys
        self._permit_keys = {k: tuple(v) for k, v in permit.items()}
        self._document_keys = {k: tuple(v) for k, v in documents.items()}
        self.version = doc.version
        self.trust_list = bytes(signed_trust_list)
        return self.version

    def permit_keys(self, kid: bytes) -> tuple[TrustedKey, ...]:
        """Keys with the ``permit`` role and this kid (several when kids collide)."""
        return self._permit_keys.get(kid, ())

    def document_keys(self, kid: bytes) -> tuple[TrustedKey, ...]:
        """The root and trust-list keys with a document role and this kid."""
        return self._document_keys.get(kid, ())


def _ident_list(value: Any, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and 0 < len(v) <= 64 for v in value
    ):
        raise DocumentRefused(Reason.MALFORMED, f"trust list {what} must be a list of names")
    return frozenset(value)


def _int(entry: Mapping[Any, Any], name: str, default: int | None) -> int | None:
    value = entry.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DocumentRefused(Reason.MALFORMED, f"trust list entry {name} must be an integer")
    return value


def parse_trust_list_body(body: Any) -> tuple[TrustedKey, ...]:
    """Validate a trust list body strictly; raise ``DocumentRefused(MALFORMED)``."""
    if not isinstance(body, Mapping) or not isinstance(body.get("keys"), (list, tuple)):
        raise DocumentRefused(Reason.MALFORMED, 'trust list body must be {"keys": [...]}')
    entries = body["keys"]
    if len(entries) > MAX_KEYS:
        raise DocumentRefused(Reason.TOO_LARGE, f"trust list holds more than {MAX_KEYS} keys")
    out: list[TrustedKey] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise DocumentRefused(Reason.MALFORMED, "trust list entry must be a map")
        kid, alg, der, iss = entry.get("kid"), entry.get("alg"), entry.get("spki"), entry.get("iss")
        if not isinstance(kid, bytes) or not 0 < len(kid) <= 32:
            raise DocumentRefused(Reason.MALFORMED, "trust list entry kid must be 1-32 bytes")
        if not isinstance(alg, str) or not isinstance(der, bytes) or not isinstance(iss, str):
            raise DocumentRefused(Reason.MALFORMED, "trust list entry needs alg, spki and iss")
        try:
            public = load_public(der, alg)
        except KeyUnusable as exc:
            raise DocumentRefused(Reason.MALFORMED, f"trust list key {kid.hex()}: {exc}") from None
        roles = _ident_list(entry.get("roles", ["permit"]), "roles") or frozenset()
        if not roles or roles - ROLES:
            raise DocumentRefused(
                Reason.MALFORMED, f"trust list key roles must be among {sorted(ROLES)}"
            )
        out.append(
            TrustedKey(
                kid=kid,
                alg=alg_id(alg),
                public=public,
                issuer=iss,
                roles=roles,
                ptypes=_ident_list(entry.get("types"), "types"),
                sites=_ident_list(entry.get("sites"), "sites"),
                not_before=_int(entry, "nbf", 0) or 0,
                not_after=_int(entry, "exp", 2**62) or 0,
                verify_until=_int(entry, "until", None),
            )
        )
    return tuple(out)


def trust_list_entry(
    key: TrustedKey | Any,
    *,
    kid: bytes,
    alg: str,
    issuer: str,
    roles: Iterable[str] = ("permit",),
    ptypes: Iterable[str] | None = None,
    sites: Iterable[str] | None = None,
    not_before: int = 0,
    not_after: int = 2**62,
    verify_until: int | None = None,
) -> dict[str, Any]:
    """One trust-list entry for public key ``key`` (a ``cryptography`` public key)."""
    public = key.public if isinstance(key, TrustedKey) else key
    return {
        "kid": kid,
        "alg": alg,
        "spki": spki(public),
        "iss": issuer,
        "roles": sorted(roles),
        "types": None if ptypes is None else sorted(ptypes),
        "sites": None if sites is None else sorted(sites),
        "nbf": not_before,
        "exp": not_after,
        "until": verify_until,
    }


@dataclass(frozen=True, slots=True)
class TrustBundle:
    """The root public key, the signed trust list and revocation documents, as one file."""

    root_spki: bytes
    root_alg: str
    root_kid: bytes
    trust_list: bytes | None = None
    revocations: tuple[bytes, ...] = ()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustBundle:
        """Parse a bundle file's bytes; raise :class:`KeyUnusable` saying what is wrong."""
        if len(data) > MAX_BUNDLE_BYTES:
            raise KeyUnusable(f"trust bundle larger than {MAX_BUNDLE_BYTES} bytes")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise KeyUnusable(
                f"trust bundle is not JSON ({exc}); give a gatepass trust file"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
            raise KeyUnusable(f"trust bundle format must be {BUNDLE_FORMAT!r}")
        root = doc.get("root")
        try:
            if not isinstance(root, dict):
                raise TypeError("root missing")
            root_alg = str(root["alg"])
            root_kid = bytes.fromhex(str(root["kid"]))
            root_spki = base64.b64decode(str(root["spki"]), validate=True)
            tl = doc.get("trust_list")
            trust_list = None if tl is None else base64.b64decode(str(tl), validate=True)
            revs = doc.get("revocations") or []
            if not isinstance(revs, list):
                raise TypeError("revocations must be a list")
            revocations = tuple(base64.b64decode(str(r), validate=True) for r in revs)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise KeyUnusable(f"trust bundle field invalid ({exc}); regenerate it") from None
        load_public(root_spki, root_alg)
        return cls(root_spki, root_alg, root_kid, trust_list, revocations)

    def to_bytes(self) -> bytes:
        doc = {
            "format": BUNDLE_FORMAT,
            "root": {
                "kid": self.root_kid.hex(),
                "alg": self.root_alg,
                "spki": base64.b64encode(self.root_spki).decode(),
            },
            "trust_list": None
            if self.trust_list is None
            else base64.b64encode(self.trust_list).decode(),
            "revocations": [base64.b64encode(r).decode() for r in self.revocations],
        }
        return (json.dumps(doc, indent=1) + "\n").encode()

    def store(self) -> TrustStore:
        """A :class:`TrustStore` with the bundle's trust list applied (verified)."""
        store = TrustStore(load_public(self.root_spki, self.root_alg), root_kid=self.root_kid)
        if self.trust_list is not None:
            store.apply(self.trust_list)
        return store

    def revocation_set(self, store: TrustStore, *, now: float | None) -> RevocationSet:
        """A :class:`RevocationSet` with the bundle's revocation documents applied in order
        (signer validity checked at ``now``)."""
        from verifier.revocation import RevocationSet

        revset = RevocationSet(store)
        for raw in self.revocations:
            revset.apply(raw, now=now)
        return revset
