"""EU Digital COVID Certificates (``HC1:``) on the same COSE layer as gatepass permits.

Chain (eu-dcc-hcert-spec): ``"HC1:" + Base45(zlib(COSE_Sign1(CWT)))``; the CWT carries
``iss`` (1), ``exp`` (4), ``iat`` (6) and the certificate under ``hcert`` (-260) / 1.
Signer keys come from X.509 DSCs (:mod:`verifier.x509`); their ``kid`` is the first 8
bytes of SHA-256 over the DER certificate; ES256 and PS256 only.

Each step is its own function so the conformance runner can test them one by one;
:func:`verify_hc1_at` runs them all. Parse, then verify, then apply policy: time and
key-usage checks only ever look at a :class:`VerifiedDcc`. Pure: ``now`` is a parameter.

Errors: :class:`DccRefused` (a :class:`~verifier.errors.VerifierError` and ``ValueError``)
carries a :class:`~verifier.errors.Reason`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from verifier import base45
from verifier.cose import (
    ALG_ES256,
    ALG_NAMES,
    ALG_PS256,
    HDR_ALG,
    CoseError,
    CoseSignatureError,
    UnverifiedSign1,
    key_fits,
    loads_strict,
    parse_sign1,
    verify_signature,
)
from verifier.errors import Reason, VerifierError
from verifier.x509 import SignerCertificate

PREFIX = "HC1:"
#: Longest text accepted, checked before any work: a version-40 QR holds 4,296
#: alphanumeric characters; twice that leaves room for non-QR transports.
MAX_HC1_CHARS = 8192
#: Decompressed COSE cap (zlib bomb guard): real DCCs are well under 4 KiB.
MAX_COSE_BYTES = 64 * 1024
#: Algorithms the hcert spec allows (EdDSA is a gatepass permit algorithm, not a DCC one).
DCC_ALGORITHMS = frozenset({ALG_ES256, ALG_PS256})

CLAIM_ISS = 1
CLAIM_EXP = 4
CLAIM_IAT = 6
CLAIM_HCERT = -260
HCERT_EU_DCC = 1

#: Extended key usage OIDs restricting a DSC to certificate types (hcert spec 3.2.1).
#: The EU test vectors use the draft form with an extra ``.0`` arc; both are honoured.
EKU_TYPES: Mapping[str, str] = {
    "1.3.6.1.4.1.1847.2021.1.1": "t",
    "1.3.6.1.4.1.1847.2021.1.2": "v",
    "1.3.6.1.4.1.1847.2021.1.3": "r",
    "1.3.6.1.4.1.0.1847.2021.1.1": "t",
    "1.3.6.1.4.1.0.1847.2021.1.2": "v",
    "1.3.6.1.4.1.0.1847.2021.1.3": "r",
}
DCC_TYPES = ("v", "t", "r")


class DccRefused(VerifierError, ValueError):
    """A health certificate was refused; ``reason`` says why, ``detail`` says more."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


@dataclass(frozen=True, slots=True)
class VerifiedDcc:
    """A DCC whose signature verified against ``certificate``. Policy checks come after."""

    kid: bytes
    alg: str
    issuer: str | None
    issued_at: float
    expires_at: float
    types: frozenset[str]
    dgc: Mapping[Any, Any]
    certificate: SignerCertificate


def unprefix(text: str) -> str:
    """Strip the ``HC1:`` context identifier; anything else (HC2:, none...) is refused."""
    if len(text) > MAX_HC1_CHARS:
        raise DccRefused(Reason.TOO_LARGE, f"more than {MAX_HC1_CHARS} characters")
    if not text.startswith(PREFIX):
        raise DccRefused(Reason.UNSUPPORTED_VERSION, f"text does not start with {PREFIX}")
    return text[len(PREFIX) :]


def decode_base45(text: str) -> bytes:
    """Strict Base45 (RFC 9285) with the size limit applied first."""
    if len(text) > MAX_HC1_CHARS:
        raise DccRefused(Reason.TOO_LARGE, f"more than {MAX_HC1_CHARS} characters")
    try:
        return base45.decode(text)
    except base45.Base45Error as exc:
        raise DccRefused(Reason.BAD_ENCODING, str(exc)) from None


def decompress(data: bytes, *, limit: int = MAX_COSE_BYTES) -> bytes:
    """Inflate one complete zlib stream of at most ``limit`` bytes; nothing may follow it."""
    inflater = zlib.decompressobj()
    try:
        # max_length stops a bomb after limit + 1 bytes instead of inflating it all.
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise DccRefused(Reason.BAD_ENCODING, f"zlib: {exc}") from None
    if len(out) > limit:
        raise DccRefused(Reason.DECOMPRESSION_LIMIT, f"inflates beyond {limit} bytes")
    if not inflater.eof:
        raise DccRefused(Reason.BAD_ENCODING, "zlib stream is truncated")
    if inflater.unused_data:
        raise DccRefused(Reason.BAD_ENCODING, "bytes follow the zlib stream")
    return out


def decode_hc1(text: str) -> bytes:
    """``HC1:`` text to COSE bytes (unprefix, Base45, zlib). Nothing is verified yet."""
    return decompress(decode_base45(unprefix(text)))


def _alg(msg: UnverifiedSign1) -> int:
    # The EU vectors (CO20) put alg in the unprotected header. Accepting it there
    # cannot cause algorithm confusion: key_fits() lets each DSC key verify under
    # exactly one algorithm (P-256 -> ES256, RSA -> PS256), whatever alg claims.
    headers = msg.protected if HDR_ALG in msg.protected else msg.unprotected
    alg = headers.get(HDR_ALG)
    if type(alg) is not int or alg not in DCC_ALGORITHMS:
        raise DccRefused(Reason.BAD_ALGORITHM, f"algorithm {alg!r} is not ES256 or PS256")
    return alg


def _number(claims: Mapping[Any, Any], key: int, name: str) -> float:
    value = claims.get(key)
    # bool is an int in Python; NaN and infinity would make every comparison lie.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DccRefused(Reason.BAD_CLAIMS, f"claim {name} missing or not a number")
    # Bignums would overflow float(); anything past 2**53 s is junk anyway.
    if not (isinstance(value, int) or math.isfinite(value)) or abs(value) > 2**53:
        raise DccRefused(Reason.BAD_CLAIMS, f"claim {name} is out of range")
    return float(value)


def _decode_claims(payload: bytes) -> Mapping[Any, Any]:
    try:
        claims = loads_strict(payload)
    except ValueError as exc:
        raise DccRefused(Reason.BAD_CLAIMS, f"CWT payload: {exc}") from None
    if not isinstance(claims, Mapping):
        raise DccRefused(Reason.BAD_CLAIMS, "CWT payload is not a map")
    return claims


def dgc_of(claims: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """The EU DCC map under ``hcert`` (-260) / 1 of CWT claims."""
    hcert = claims.get(CLAIM_HCERT)
    dgc = hcert.get(HCERT_EU_DCC) if isinstance(hcert, Mapping) else None
    if not isinstance(dgc, Mapping):
        raise DccRefused(Reason.BAD_CLAIMS, "no EU DCC under hcert (-260) / 1")
    return dgc


def _claims(payload: bytes) -> tuple[str | None, float, float, Mapping[Any, Any]]:
    claims = _decode_claims(payload)
    issuer = claims.get(CLAIM_ISS)
    if issuer is not None and not isinstance(issuer, str):
        raise DccRefused(Reason.BAD_CLAIMS, "claim iss is not a text string")
    issued_at = _number(claims, CLAIM_IAT, "iat")
    expires_at = _number(claims, CLAIM_EXP, "exp")
    return issuer, issued_at, expires_at, dgc_of(claims)


def unverified_dgc(cose: bytes) -> Mapping[Any, Any]:
    """The DCC inside COSE bytes WITHOUT any signature check: for display and conformance
    tests of the decoding chain only. Never admit anyone on this."""
    if len(cose) > MAX_COSE_BYTES:
        raise DccRefused(Reason.TOO_LARGE, f"COSE larger than {MAX_COSE_BYTES} bytes")
    try:
        msg = parse_sign1(cose)
    except CoseError as exc:
        raise DccRefused(Reason.BAD_COSE, str(exc)) from None
    return dgc_of(_decode_claims(msg.payload))


def _types(dgc: Mapping[Any, Any]) -> frozenset[str]:
    found = set()
    for kind in DCC_TYPES:
        entries = dgc.get(kind)
        if entries is None:
            continue
        if not isinstance(entries, (list, tuple)) or not entries:
            raise DccRefused(Reason.BAD_CLAIMS, f"DCC field {kind!r} is not a non-empty array")
        found.add(kind)
    if not found:
        raise DccRefused(Reason.BAD_CLAIMS, "DCC holds no vaccination, test or recovery")
    return frozenset(found)


def verify(cose: bytes, certificates: Iterable[SignerCertificate]) -> VerifiedDcc:
    """Verify COSE_Sign1 bytes against the DSCs whose kid matches; return the verified DCC.

    Every certificate with the message's kid is tried (kids may collide). The
    protected kid wins over an unprotected one, as the hcert spec requires.
    """
    if len(cose) > MAX_COSE_BYTES:
        raise DccRefused(Reason.TOO_LARGE, f"COSE larger than {MAX_COSE_BYTES} bytes")
    try:
        msg = parse_sign1(cose)
    except CoseError as exc:
        raise DccRefused(Reason.BAD_COSE, str(exc)) from None
    alg = _alg(msg)
    kid = msg.kid
    if kid is None:
        raise DccRefused(Reason.UNKNOWN_KEY, "no kid in either header")
    candidates = [c for c in certificates if c.kid == kid]
    if not candidates:
        raise DccRefused(Reason.UNKNOWN_KEY, f"no signer certificate with kid {kid.hex()}")
    message = msg.to_be_signed()
    signer: SignerCertificate | None = None
    fitting = 0
    for cert in candidates:
        if not key_fits(alg, cert.public_key):
            continue
        fitting += 1
        try:
            verify_signature(alg, cert.public_key, msg.signature, message)
        except CoseSignatureError:
            continue
        signer = cert
        break
    if signer is None:
        if not fitting:
            raise DccRefused(
                Reason.BAD_ALGORITHM, f"no key with kid {kid.hex()} fits {ALG_NAMES[alg]}"
            )
        raise DccRefused(Reason.BAD_SIGNATURE, "signature does not verify")
    issuer, issued_at, expires_at, dgc = _claims(msg.payload)
    return VerifiedDcc(
        kid=kid,
        alg=ALG_NAMES[alg],
        issuer=issuer,
        issued_at=issued_at,
        expires_at=expires_at,
        types=_types(dgc),
        dgc=dgc,
        certificate=signer,
    )


def check_validity(dcc: VerifiedDcc, now: float, *, skew_s: float = 0.0) -> None:
    """Refuse a DCC not valid at ``now``: signer certificate, then ``iat`` and ``exp``."""
    if not dcc.certificate.valid_at(now):
        raise DccRefused(Reason.KEY_NOT_VALID, "signer certificate not valid at this time")
    if dcc.issued_at > now + skew_s:
        raise DccRefused(Reason.ISSUED_IN_FUTURE, "issued after the verification time")
    # The DCC ecosystem (dgc-testdata's validation clock at exactly exp expects a pass)
    # treats exp as the last valid instant: valid while now <= exp. gatepass's own permits
    # keep RFC 8392's "on or after exp is expired" (verifier.verify).
    if now - skew_s > dcc.expires_at:
        raise DccRefused(Reason.EXPIRED, "expired")


def allowed_types(cert: SignerCertificate) -> frozenset[str]:
    """Certificate types the DSC may sign: from its EKU OIDs, or all when it names none."""
    types = frozenset(EKU_TYPES[o] for o in cert.eku_oids if o in EKU_TYPES)
    return types or frozenset(DCC_TYPES)


def check_key_usage(dcc: VerifiedDcc) -> None:
    """Refuse a DCC whose type (vaccination, test, recovery) its signer may not sign."""
    outside = dcc.types - allowed_types(dcc.certificate)
    if outside:
        raise DccRefused(
            Reason.KEY_OUT_OF_SCOPE,
            f"signer may not sign type(s) {','.join(sorted(outside))}",
        )


def verify_hc1_at(
    text: str, now: float, certificates: Iterable[SignerCertificate], *, skew_s: float = 0.0
) -> VerifiedDcc:
    """The whole chain: decode ``HC1:`` text, verify, then check time and key usage."""
    dcc = verify(decode_hc1(text), certificates)
    check_validity(dcc, now, skew_s=skew_s)
    check_key_usage(dcc)
    return dcc
