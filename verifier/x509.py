"""Just enough X.509 to use an EU DCC signer certificate (DSC): key, validity, EKU, kid.

A small strict DER reader rather than a full X.509 library, because real DSCs (and
the EU test vectors) include certificates that ``cryptography`` refuses outright,
e.g. an ``extKeyUsage`` extension with zero OIDs. Nothing here validates the chain:
the caller decides which certificates it trusts. Pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_der_public_key

from verifier.cose import PublicKey
from verifier.errors import VerifierError

#: Refuse anything larger before parsing: real DSCs are 0.4–2 KiB.
MAX_CERT_BYTES = 16 * 1024
OID_EXT_KEY_USAGE = "2.5.29.37"

_SEQUENCE = 0x30
_OID = 0x06
_BOOLEAN = 0x01
_OCTET_STRING = 0x04
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_CTX0 = 0xA0
_CTX3 = 0xA3


class CertificateError(VerifierError, ValueError):
    """The bytes are not a usable X.509 certificate."""


@dataclass(frozen=True, slots=True)
class SignerCertificate:
    """The parts of a DSC a DCC verifier needs. ``eku_oids`` is empty when absent."""

    der: bytes
    public_key: PublicKey
    not_before: float
    not_after: float
    eku_oids: tuple[str, ...]
    #: DCC key id: the first 8 bytes of SHA-256 over the DER certificate.
    kid: bytes

    def valid_at(self, now: float) -> bool:
        return self.not_before <= now <= self.not_after


class _Tlv(NamedTuple):
    tag: int
    start: int  # first byte of the header
    value_start: int
    end: int


def _read_tlv(data: bytes, pos: int, end: int) -> _Tlv:
    """Read one DER TLV at ``pos``."""
    begin = pos
    if pos + 2 > end:
        raise CertificateError("truncated DER element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise CertificateError("multi-byte DER tags are not used in certificates")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise CertificateError("indefinite lengths are not DER")
    else:
        n = first & 0x7F
        if n > 4 or pos + n > end:
            raise CertificateError("DER length is too long or truncated")
        length = int.from_bytes(data[pos : pos + n], "big")
        # DER: the shortest length form only, so one certificate has one encoding.
        if length < 0x80 or length >> (8 * (n - 1)) == 0:
            raise CertificateError("non-minimal DER length")
        pos += n
    if pos + length > end:
        raise CertificateError("DER element runs past its container")
    return _Tlv(tag, begin, pos, pos + length)


def _children(data: bytes, start: int, end: int) -> list[_Tlv]:
    out: list[_Tlv] = []
    pos = start
    while pos < end:
        tlv = _read_tlv(data, pos, end)
        out.append(tlv)
        pos = tlv.end
    return out


def _expect(tlv: _Tlv, tag: int, what: str) -> tuple[int, int]:
    if tlv.tag != tag:
        raise CertificateError(f"{what}: expected DER tag 0x{tag:02x}, got 0x{tlv.tag:02x}")
    return tlv.value_start, tlv.end


def _oid(raw: bytes) -> str:
    if not raw or raw[-1] & 0x80:
        raise CertificateError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    arc_start = True
    for byte in raw:
        if arc_start and byte == 0x80:
            raise CertificateError("non-minimal OBJECT IDENTIFIER arc")
        value = (value << 7) | (byte & 0x7F)
        arc_start = not byte & 0x80
        if arc_start:
            arcs.append(value)
            value = 0
    top = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [top, arcs[0] - 40 * top, *arcs[1:]])


def _time(tag: int, raw: bytes) -> float:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise CertificateError("certificate time is not ASCII") from None
    if not text.endswith("Z"):
        raise CertificateError("certificate time must be UTC ('Z')")
    digits = text[:-1]
    if tag == _UTC_TIME and len(digits) == 12 and digits.isdigit():
        yy = int(digits[:2])
        # RFC 5280 4.1.2.5.1: UTCTime years 50–99 are 19xx, 00–49 are 20xx.
        year = 1900 + yy if yy >= 50 else 2000 + yy
        rest = digits[2:]
    elif tag == _GENERALIZED_TIME and len(digits) == 14 and digits.isdigit():
        year = int(digits[:4])
        rest = digits[4:]
    else:
        raise CertificateError("malformed certificate time")
    try:
        moment = datetime(
            year,
            int(rest[0:2]),
            int(rest[2:4]),
            int(rest[4:6]),
            int(rest[6:8]),
            int(rest[8:10]),
            tzinfo=UTC,
        )
    except ValueError:
        raise CertificateError("certificate time out of range") from None
    return moment.timestamp()


def _eku(data: bytes, extensions: tuple[int, int]) -> tuple[str, ...]:
    found: tuple[str, ...] | None = None
    seq = _read_tlv(data, *extensions)
    if seq.tag != _SEQUENCE or seq.end != extensions[1]:
        raise CertificateError("extensions must be exactly one SEQUENCE")
    for ext in _children(data, seq.value_start, seq.end):
        parts = _children(data, *_expect(ext, _SEQUENCE, "extension"))
        if len(parts) not in (2, 3):
            raise CertificateError("extension must have 2 or 3 fields")
        oid = _oid(data[slice(*_expect(parts[0], _OID, "extension id"))])
        if len(parts) == 3:
            _expect(parts[1], _BOOLEAN, "extension critical flag")
        value = _expect(parts[-1], _OCTET_STRING, "extension value")
        if oid != OID_EXT_KEY_USAGE:
            continue
        if found is not None:
            raise CertificateError("extKeyUsage appears twice")
        inner = _read_tlv(data, *value)
        if inner.tag != _SEQUENCE or inner.end != value[1]:
            raise CertificateError("extKeyUsage must be exactly one SEQUENCE")
        usages = _children(data, inner.value_start, inner.end)
        # RFC 5280 wants at least one OID; an empty list is read as "no usage
        # restriction", which is what the EU test vector CO15 expects.
        found = tuple(_oid(data[slice(*_expect(u, _OID, "key purpose"))]) for u in usages)
    return found or ()


def parse_certificate(der: bytes) -> SignerCertificate:
    """Parse a DER certificate into a :class:`SignerCertificate`, or raise CertificateError."""
    if len(der) > MAX_CERT_BYTES:
        raise CertificateError(f"certificate larger than {MAX_CERT_BYTES} bytes")
    outer = _read_tlv(der, 0, len(der))
    if outer.tag != _SEQUENCE or outer.end != len(der):
        raise CertificateError("certificate must be exactly one DER SEQUENCE")
    cert = _children(der, outer.value_start, outer.end)
    if len(cert) != 3:
        raise CertificateError("certificate must have tbsCertificate, algorithm, signature")
    tbs = _children(der, *_expect(cert[0], _SEQUENCE, "tbsCertificate"))
    if tbs and tbs[0].tag == _CTX0:
        tbs = tbs[1:]  # explicit version
    # serial, signature algorithm, issuer, validity, subject, subjectPublicKeyInfo
    if len(tbs) < 6:
        raise CertificateError("tbsCertificate is missing fields")
    validity = _children(der, *_expect(tbs[3], _SEQUENCE, "validity"))
    if len(validity) != 2:
        raise CertificateError("validity must hold two times")
    not_before, not_after = (_time(v.tag, der[v.value_start : v.end]) for v in validity)
    _expect(tbs[5], _SEQUENCE, "subjectPublicKeyInfo")
    spki = der[tbs[5].start : tbs[5].end]
    try:
        key = load_der_public_key(spki)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateError("unreadable or unsupported subject public key") from None
    if not isinstance(key, PublicKey):  # type: ignore[misc,arg-type]
        raise CertificateError(f"unsupported public key type {type(key).__name__}")
    eku: tuple[str, ...] = ()
    for field in tbs[6:]:
        if field.tag == _CTX3:
            eku = _eku(der, (field.value_start, field.end))
    kid = hashlib.sha256(der).digest()[:8]
    return SignerCertificate(der, key, not_before, not_after, eku, kid)
