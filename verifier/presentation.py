"""Presentations (``GPP1:``): a holder-bound permit plus a short-lived proof from its device.

Layout (docs/presentation-format.md)::

    text  = "GPP1:" || Base45( CBOR [bstr permit, bstr proof] )
    permit = the permit's bare COSE_Sign1 (tag 18), never zlib
    proof  = COSE_Sign1, protected {1: -7}, unprotected {}, payload {1: step, 2: period_s},
             signed by the permit's cnf key with external_aad = SHA-256(permit)

A proof binds exactly one permit (its hash is the external AAD) and one time step; it
is valid while ``step*period - tol <= now < (step+1)*period + tol``. This module
splits a presentation, checks a proof against a verified permit, and makes proofs
(for ``gatepass present`` and the test vectors; the pilgrim's device does the same in
``wallet/gpp.js``). The permit itself is verified by :func:`verifier.verify.verify_at`.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier import base45, canonical, cose
from verifier.envelope import ascii_text
from verifier.errors import PermitRefused, Reason

PREFIX: Final = "GPP1:"
_OTHER_VERSION: Final = re.compile(r"GPP[0-9]+:")
#: Longest presentation text, checked before any work.
MAX_TEXT_LEN: Final = 1600
#: Largest embedded permit COSE_Sign1 (the permit format's own limit).
MAX_PERMIT_LEN: Final = 1024
#: Largest proof COSE_Sign1 (a well-formed one is 82-86 bytes).
MAX_PROOF_LEN: Final = 256
MIN_PERIOD_S: Final = 5
MAX_PERIOD_S: Final = 60
DEFAULT_PERIOD_S: Final = 15
#: Allowed distance between the gate's clock and the device's step, each side (s).
DEFAULT_TOLERANCE_S: Final = 30
#: What the gate demands of a holder-bound permit (``[permits] presentation``).
POLICIES: Final = ("required", "preferred", "static")
#: The proof's protected header: exactly ``{1: -7}`` (ES256), canonical.
PROOF_PROTECTED: Final = b"\xa1\x01\x26"
_MAX_STEP: Final = 2**40
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_KEY_CACHE_MAX: Final = 256
#: SEC1 point -> public key object (decompressing a point costs a modular square root).
_key_cache: dict[bytes, ec.EllipticCurvePublicKey] = {}


@dataclass(frozen=True, slots=True)
class ProofTime:
    """The time step a verified proof was made for."""

    step: int
    period_s: int

    @property
    def start(self) -> int:
        return self.step * self.period_s

    @property
    def end(self) -> int:
        return (self.step + 1) * self.period_s


def is_presentation(raw: str | bytes) -> bool:
    """Does ``raw`` claim to be a presentation (any ``GPP<n>:`` prefix)?"""
    if isinstance(raw, str):
        return raw.startswith("GPP")
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw[:3]) == b"GPP"
    return False


def _text(raw: str | bytes) -> str:
    return ascii_text(raw, MAX_TEXT_LEN, "presentation")


def _bstr_at(data: bytes, pos: int, what: str, limit: int) -> tuple[bytes, int]:
    """A definite, shortest-form byte string at ``pos``; its bytes and the next position."""
    if pos >= len(data) or data[pos] >> 5 != 2:
        raise PermitRefused(Reason.BAD_PRESENTATION, f"{what} must be a byte string")
    info = data[pos] & 0x1F
    if info < 24:
        n, start = info, pos + 1
    elif info in (24, 25):
        width = 1 if info == 24 else 2
        start = pos + 1 + width
        if start > len(data):
            raise PermitRefused(Reason.BAD_PRESENTATION, "presentation truncated")
        n = int.from_bytes(data[pos + 1 : start], "big")
        if n < (24 if info == 24 else 256):
            raise PermitRefused(Reason.BAD_PRESENTATION, f"{what} length not in shortest form")
    else:  # 26/27: longer than any limit; 31: indefinite; 28-30: not well-formed
        raise PermitRefused(Reason.BAD_PRESENTATION, f"{what} length not definite and short")
    if n > limit:
        raise PermitRefused(Reason.TOO_LARGE, f"{what} above {limit} bytes")
    end = start + n
    if end > len(data):
        raise PermitRefused(Reason.BAD_PRESENTATION, "presentation truncated")
    return data[start:end], end


def split(raw: str | bytes) -> tuple[bytes, bytes]:
    """``(permit COSE_Sign1, proof COSE_Sign1)`` from presentation text, neither verified.

    Raises :class:`PermitRefused`: ``too_large`` (text, permit or proof over its limit),
    ``unsupported_version``/``malformed`` (prefix), ``bad_encoding`` (Base45),
    ``bad_presentation`` (not exactly a definite 2-array of two byte strings), ``bad_cose``
    (the permit is not a bare COSE_Sign1).
    """
    text = _text(raw)
    if not text.startswith(PREFIX):
        if _OTHER_VERSION.match(text):
            raise PermitRefused(
                Reason.UNSUPPORTED_VERSION, f"prefix {text.split(':', 1)[0]}: is not {PREFIX}"
            )
        raise PermitRefused(Reason.MALFORMED, f"presentation does not start with {PREFIX}")
    try:
        data = base45.decode(text[len(PREFIX) :])
    except base45.Base45Error as exc:
        raise PermitRefused(Reason.BAD_ENCODING, str(exc)) from None
    if not data or data[0] != 0x82:
        raise PermitRefused(Reason.BAD_PRESENTATION, "presentation must be a CBOR array of 2")
    permit, pos = _bstr_at(data, 1, "permit", MAX_PERMIT_LEN)
    proof, pos = _bstr_at(data, pos, "proof", MAX_PROOF_LEN)
    if pos != len(data):
        raise PermitRefused(
            Reason.BAD_PRESENTATION, f"{len(data) - pos} trailing bytes after the presentation"
        )
    if not permit or permit[0] != 0xD2:
        raise PermitRefused(
            Reason.BAD_COSE, "the presented permit must be a bare COSE_Sign1 (tag 18, no zlib)"
        )
    return permit, proof


def holder_public_key(point: bytes) -> ec.EllipticCurvePublicKey:
    """P-256 public key for a SEC1 point (33-byte compressed or 65-byte uncompressed).

    Raises ``ValueError`` when the point is not on the curve."""
    key = _key_cache.get(point)
    if key is None:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[point] = key
    return key


def _der(signature: bytes) -> bytes:
    """DER ``ECDSA-Sig-Value`` for a 64-byte ``r || s`` (as :func:`verifier.verify.raw_to_der`;
    that module imports this one)."""
    r, s = signature[:32].lstrip(b"\0"), signature[32:].lstrip(b"\0")
    if not r or r[0] & 0x80:
        r = b"\0" + r
    if not s or s[0] & 0x80:
        s = b"\0" + s
    return b"".join((b"\x30", bytes((len(r) + len(s) + 4, 2, len(r))), r, bytes((2, len(s))), s))


def _uint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """A shortest-form unsigned integer (major type 0, at most 8 bytes) at ``pos``."""
    if pos >= len(data) or data[pos] >> 5 != 0:
        raise PermitRefused(Reason.BAD_PRESENTATION, f"proof {what} must be an unsigned integer")
    info = data[pos] & 0x1F
    if info < 24:
        return info, pos + 1
    if info > 27:
        raise PermitRefused(Reason.BAD_PRESENTATION, f"proof {what} is not well-formed")
    width = 1 << (info - 24)
    end = pos + 1 + width
    if end > len(data):
        raise PermitRefused(Reason.BAD_PRESENTATION, "proof payload truncated")
    value = int.from_bytes(data[pos + 1 : end], "big")
    if value < (24 if width == 1 else 1 << (4 * width)):
        raise PermitRefused(
            Reason.BAD_PRESENTATION, f"proof {what} not in its shortest encoding (non-canonical)"
        )
    return value, end


def _proof_payload(payload: bytes) -> tuple[int, int]:
    """``(step, period)`` from the canonical map ``{1: step, 2: period}``, read by hand:
    exactly these bytes are the one deterministic encoding, so nothing else is accepted."""
    if payload[:2] != b"\xa2\x01":
        raise PermitRefused(Reason.BAD_PRESENTATION, "proof payload must be {1: step, 2: period}")
    step, pos = _uint(payload, 2, "step")
    if payload[pos : pos + 1] != b"\x02":
        raise PermitRefused(Reason.BAD_PRESENTATION, "proof payload must be {1: step, 2: period}")
    period, pos = _uint(payload, pos + 1, "period")
    if pos != len(payload):
        raise PermitRefused(Reason.BAD_PRESENTATION, "trailing bytes in the proof payload")
    if step >= _MAX_STEP:
        raise PermitRefused(Reason.BAD_PRESENTATION, "proof step out of range")
    return step, period


def verify_proof(
    proof: bytes,
    permit_cose: bytes,
    holder_key: bytes,
    now: float,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> ProofTime:
    """Check ``proof`` for the (verified) permit ``permit_cose`` bound to ``holder_key``.

    Order: proof shape and header (``bad_presentation``), signature with the holder key
    and SHA-256(permit) as external AAD (``bad_presentation``), payload profile
    (``bad_presentation``), time step (``presentation_in_future`` /
    ``presentation_expired``). Raises ``ValueError`` (a caller bug) for a tolerance that is
    negative or not finite: NaN would pass every time check.
    """
    if not 0 <= tolerance_s < math.inf:
        raise ValueError(f"tolerance must be a finite number of seconds >= 0, not {tolerance_s!r}")
    try:
        protected_raw, unverified_payload, signature = cose.split_sign1_strict(proof)
    except cose.CoseError as exc:
        raise PermitRefused(Reason.BAD_PRESENTATION, f"proof: {exc}") from None
    if protected_raw != PROOF_PROTECTED:
        raise PermitRefused(
            Reason.BAD_PRESENTATION, "proof protected header must be exactly {1: -7} (ES256)"
        )
    if len(signature) != 64:
        raise PermitRefused(Reason.BAD_PRESENTATION, "proof signature must be 64 bytes r||s")
    message = cose.sig_structure(
        protected_raw, unverified_payload, hashlib.sha256(permit_cose).digest()
    )
    try:
        holder_public_key(holder_key).verify(_der(signature), message, _ECDSA_SHA256)
    except InvalidSignature:
        raise PermitRefused(
            Reason.BAD_PRESENTATION, "proof not signed by the permit's holder key"
        ) from None
    step, period = _proof_payload(unverified_payload)
    if not MIN_PERIOD_S <= period <= MAX_PERIOD_S:
        raise PermitRefused(
            Reason.BAD_PRESENTATION, f"proof period must be {MIN_PERIOD_S}-{MAX_PERIOD_S} s"
        )
    when = ProofTime(step, period)
    if now < when.start - tolerance_s:
        raise PermitRefused(
            Reason.PRESENTATION_IN_FUTURE, f"code made for {when.start - now:.0f} s ahead"
        )
    if now >= when.end + tolerance_s:
        raise PermitRefused(Reason.PRESENTATION_EXPIRED, f"code {now - when.end:.0f} s old")
    return when


# --- making presentations (the holder's side) -------------------------------------------


def make_proof(
    permit_cose: bytes, key: ec.EllipticCurvePrivateKey, now: float, period_s: int
) -> bytes:
    """The proof COSE_Sign1 for time ``now`` with ``period_s``-second steps."""
    if not MIN_PERIOD_S <= period_s <= MAX_PERIOD_S:
        raise ValueError(f"period must be {MIN_PERIOD_S}-{MAX_PERIOD_S} s, not {period_s}")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the holder key must be a P-256 private key")
    step = int(now // period_s)
    payload = canonical.dumps({1: step, 2: period_s})
    message = cose.sig_structure(PROOF_PROTECTED, payload, hashlib.sha256(permit_cose).digest())
    r, s = decode_dss_signature(key.sign(message, _ECDSA_SHA256))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return b"".join((b"\xd2\x84\x43", PROOF_PROTECTED, b"\xa0", _bstr(payload), _bstr(signature)))


def _bstr(data: bytes) -> bytes:
    n = len(data)
    if n < 24:
        return bytes((0x40 | n,)) + data
    if n < 0x100:
        return bytes((0x58, n)) + data
    return b"\x59" + n.to_bytes(2, "big") + data


def wrap(permit_cose: bytes, proof: bytes) -> str:
    """Presentation text for a permit and its proof."""
    return PREFIX + base45.encode(b"\x82" + _bstr(permit_cose) + _bstr(proof))


def make_presentation(
    permit_cose: bytes,
    key: ec.EllipticCurvePrivateKey,
    now: float,
    period_s: int = DEFAULT_PERIOD_S,
) -> str:
    """What the holder's device shows at ``now``: ``GPP1:`` text."""
    return wrap(permit_cose, make_proof(permit_cose, key, now, period_s))
