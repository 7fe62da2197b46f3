"""``verify_at``: parse, then verify the signature, then apply policy, at a given time.

Order of checks (the first failure is the reason): size, prefix, Base45, zlib, COSE
shape, protected header (deterministic CBOR, then algorithm), key lookup, signature,
claims encoding (deterministic CBOR), claims profile, issuer, key scope, key validity,
issued in the future, revoked, not yet valid, expired, slot window.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isfinite
from typing import Any, Final, cast

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from verifier import canonical, cose, envelope, presentation
from verifier.errors import PermitRefused, Reason
from verifier.keys import TrustedKey
from verifier.permit import (
    CLAIMS_MAX_DEPTH,
    ClaimsInvalid,
    VerifiedPermit,
    claims_canonical,
    decode_claims,
)
from verifier.revocation import RevocationSet
from verifier.trust import TrustStore

#: How far a permit's issued-at may lie ahead of the gate's clock (issuer clock skew).
MAX_CLOCK_SKEW_S: Final = 300
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_HEADER_CACHE_MAX: Final = 256
#: protected header bytes -> (alg, kid); issuers reuse a handful of headers.
_header_cache: dict[bytes, tuple[int, bytes]] = {}


@dataclass(frozen=True, slots=True)
class SlotWindow:
    """Grace around a permit's slot: admit from ``start - early_s`` to ``end + late_s``."""

    early_s: int = 0
    late_s: int = 0


def _header(protected_raw: bytes) -> tuple[int, bytes]:
    hit = _header_cache.get(protected_raw)
    if hit is not None:
        return hit
    try:
        header = cose.decode_protected(protected_raw)
    except cose.CoseNonCanonical as exc:
        raise PermitRefused(Reason.NON_CANONICAL, str(exc)) from None
    except cose.CoseError as exc:
        raise PermitRefused(Reason.BAD_COSE, str(exc)) from None
    if set(header) - {cose.HDR_ALG, cose.HDR_KID}:
        raise PermitRefused(Reason.BAD_COSE, "protected header may hold only alg and kid")
    alg, kid = header.get(cose.HDR_ALG), header.get(cose.HDR_KID)
    if type(alg) is not int or alg not in (cose.ALG_ES256, cose.ALG_EDDSA):
        raise PermitRefused(Reason.BAD_ALGORITHM, f"algorithm {alg!r} is not ES256 or EdDSA")
    if type(kid) is not bytes or not 0 < len(kid) <= 32:
        raise PermitRefused(Reason.BAD_COSE, "kid must be 1-32 bytes in the protected header")
    if len(_header_cache) >= _HEADER_CACHE_MAX:
        _header_cache.clear()  # hostile variety only costs re-decoding
    _header_cache[protected_raw] = (alg, kid)
    return alg, kid


def raw_to_der(signature: bytes) -> bytes:
    """DER ``ECDSA-Sig-Value`` for a 64-byte ``r || s`` (half the cost of
    ``encode_dss_signature`` with two big-int conversions, on the hot path)."""
    r, s = signature[:32].lstrip(b"\0"), signature[32:].lstrip(b"\0")
    if not r or r[0] & 0x80:
        r = b"\0" + r
    if not s or s[0] & 0x80:
        s = b"\0" + s
    lr, ls = len(r), len(s)
    return b"".join((b"\x30", bytes((lr + ls + 4, 2, lr)), r, bytes((2, ls)), s))


def _verifies(alg: int, key: TrustedKey, signature: bytes, message: bytes) -> bool:
    if alg == cose.ALG_ES256:
        if len(signature) != 64:
            return False
        der = raw_to_der(signature)
        try:
            cast(ec.EllipticCurvePublicKey, key.public).verify(der, message, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True
    try:
        cose.verify_signature(alg, key.public, signature, message)
    except (cose.CoseSignatureError, cose.CoseAlgorithmError):
        return False
    return True


def _refuse_non_canonical(payload: bytes) -> None:
    """Raise ``NON_CANONICAL`` if the claims bytes are not deterministic CBOR (error path)."""
    try:
        canonical.loads(payload, max_depth=CLAIMS_MAX_DEPTH)
    except canonical.CborNonCanonical as exc:
        raise PermitRefused(Reason.NON_CANONICAL, f"claims: {exc}") from None
    except canonical.CborInvalid:
        pass


def verify_at(
    raw: str | bytes,
    now: float,
    *,
    trust: TrustStore,
    revocations: RevocationSet | None = None,
    window: SlotWindow | None = None,
    presentation_policy: str = "required",
    presentation_tolerance_s: float = presentation.DEFAULT_TOLERANCE_S,
) -> VerifiedPermit:
    """Verify permit text ``raw`` at time ``now`` (seconds since the epoch, UTC).

    ``raw`` may also be a presentation (``GPP1:``, verifier/presentation.py): its permit
    passes every permit check first, then its proof is checked against the permit's
    holder key with ``presentation_tolerance_s``. A holder-bound permit shown bare is
    ``presentation_required`` when ``presentation_policy`` is ``"required"`` (else
    admitted, with ``presentation`` None for the gate to flag).

    Returns the :class:`VerifiedPermit` or raises :class:`PermitRefused` with a reason.
    Without ``window`` the slot is not checked (only the permit's nbf/exp are).
    Raises ``ValueError`` (a caller bug, not a refusal) when ``now`` is not finite:
    NaN compares false with everything and would pass every time check.
    """
    if not isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, not {now!r}")
    proof: bytes | None = None
    if presentation.is_presentation(raw):
        cose_bytes, proof = presentation.split(raw)
    else:
        cose_bytes = envelope.unwrap(raw)
    try:  # the protected header is decoded (and cached) by _header, not here
        protected_raw, payload, signature, message = cose.split_sign1_for_verify(cose_bytes)
    except cose.CoseError as exc:
        raise PermitRefused(Reason.BAD_COSE, str(exc)) from None
    header = _header_cache.get(protected_raw)
    alg, kid = header if header is not None else _header(protected_raw)
    candidates = trust.permit_keys(kid)
    if not candidates:
        raise PermitRefused(Reason.UNKNOWN_KEY, f"no trusted permit key has kid {kid.hex()}")
    key: TrustedKey | None = None
    fitting = 0
    der = raw_to_der(signature) if alg == cose.ALG_ES256 and len(signature) == 64 else b""
    for candidate in candidates:  # colliding kids: try each
        if candidate.alg != alg:
            continue
        fitting += 1
        if der:  # ES256, the default: call OpenSSL directly (hot path)
            try:
                public: Any = candidate.public  # alg equality above: a P-256 key
                public.verify(der, message, _ECDSA_SHA256)
            except InvalidSignature:
                continue
            key = candidate
            break
        if _verifies(alg, candidate, signature, message):
            key = candidate
            break
    if key is None:
        if not fitting:
            raise PermitRefused(
                Reason.BAD_ALGORITHM, f"key {kid.hex()} is not a {cose.ALG_NAMES[alg]} key"
            )
        raise PermitRefused(Reason.BAD_SIGNATURE, "signature does not verify")
    try:
        # Indefinite lengths decode here and are refused by the canonical check below.
        claims: Any = cbor2.loads(payload, max_depth=CLAIMS_MAX_DEPTH)
        permit = decode_claims(claims, kid, key.alg_name)
    except ClaimsInvalid as exc:
        _refuse_non_canonical(payload)  # the encoding rule comes first: parse, then profile
        raise PermitRefused(Reason.BAD_CLAIMS, str(exc)) from None
    except Exception as exc:  # a trusted issuer signed bytes cbor2 cannot decode
        raise PermitRefused(
            Reason.BAD_CLAIMS, f"claims are not CBOR ({type(exc).__name__})"
        ) from None
    if claims_canonical(claims, permit, len(payload)) is not True:
        # Not proven deterministic by the fast check (or extension claims it does not
        # cover): the generic check decides, and names the rule broken.
        try:
            canonical.loads(payload, max_depth=CLAIMS_MAX_DEPTH)
        except canonical.CborNonCanonical as exc:
            raise PermitRefused(Reason.NON_CANONICAL, f"claims: {exc}") from None
        except canonical.CborInvalid as exc:
            raise PermitRefused(Reason.BAD_CLAIMS, f"claims: {exc}") from None
    if permit.issuer != key.issuer:
        raise PermitRefused(
            Reason.KEY_OUT_OF_SCOPE, f"key {kid.hex()} belongs to issuer {key.issuer!r}"
        )
    if key.ptypes is not None and permit.ptype not in key.ptypes:
        raise PermitRefused(
            Reason.KEY_OUT_OF_SCOPE, f"key {kid.hex()} may not sign {permit.ptype!r} permits"
        )
    if key.sites is not None and permit.site not in key.sites:
        raise PermitRefused(
            Reason.KEY_OUT_OF_SCOPE, f"key {kid.hex()} may not sign permits for {permit.site!r}"
        )
    if not key.not_before <= permit.issued_at <= key.not_after:
        raise PermitRefused(
            Reason.KEY_NOT_VALID, f"permit issued outside the validity of key {kid.hex()}"
        )
    if key.verify_until is not None and now > key.verify_until:
        raise PermitRefused(Reason.KEY_NOT_VALID, f"key {kid.hex()} is retired")
    if permit.issued_at > now + MAX_CLOCK_SKEW_S:
        raise PermitRefused(Reason.ISSUED_IN_FUTURE, "issued after the gate's current time")
    if revocations is not None and permit.permit_id in revocations:
        raise PermitRefused(Reason.REVOKED, f"permit {permit.ph} is revoked")
    if permit.not_before is not None and now < permit.not_before:
        raise PermitRefused(Reason.NOT_YET_VALID, "permit not valid yet")
    # Without exp the permit lasts as long as its slot plus the gate's late grace.
    if permit.expires_at is not None and now >= permit.expires_at:
        raise PermitRefused(Reason.EXPIRED, "permit expired")
    if window is None and now >= permit.slot_end:
        raise PermitRefused(Reason.EXPIRED, "permit's slot is over")
    if window is not None:
        if now < permit.slot_start - window.early_s:
            raise PermitRefused(Reason.TOO_EARLY, "before the permit's slot")
        if now > permit.slot_end + window.late_s:
            raise PermitRefused(Reason.TOO_LATE, "after the permit's slot")
    if proof is not None:
        if permit.holder_key is None:
            raise PermitRefused(Reason.BAD_PRESENTATION, "the permit is not holder-bound (no cnf)")
        when = presentation.verify_proof(
            proof, cose_bytes, permit.holder_key, now, tolerance_s=presentation_tolerance_s
        )
        shown = object.__new__(VerifiedPermit)  # as decode_claims: every field is checked
        fields = {**permit.__dict__, "presentation": (when.step, when.period_s)}
        object.__setattr__(shown, "__dict__", fields)
        permit = shown
    elif permit.holder_key is not None and presentation_policy not in ("preferred", "static"):
        if presentation_policy != "required":  # a typo must not admit copies
            raise ValueError(f"presentation_policy must be one of {presentation.POLICIES}")
        raise PermitRefused(
            Reason.PRESENTATION_REQUIRED, "holder-bound permit shown without a live code"
        )
    return permit
