"""COSE_Sign1 (RFC 9052) parsing, signing and signature verification.

Only the pieces gatepass needs: a single signer, no external AAD, algorithms
ES256, EdDSA (Ed25519) and PS256 (for EU DCC signers). ``parse_sign1`` never
trusts anything: it returns an :class:`UnverifiedSign1` whose fields must not be
acted on until :func:`verify_signature` has returned.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from verifier import canonical
from verifier.errors import VerifierError

# COSE header labels and algorithm ids (IANA COSE registry).
HDR_ALG = 1
HDR_CONTENT_TYPE = 3
HDR_KID = 4
ALG_ES256 = -7
ALG_EDDSA = -8
ALG_PS256 = -37
ALG_NAMES = {ALG_ES256: "ES256", ALG_EDDSA: "EdDSA", ALG_PS256: "PS256"}
ALG_IDS = {v: k for k, v in ALG_NAMES.items()}
TAG_SIGN1 = 18
TAG_CWT = 61

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


class CoseError(VerifierError, ValueError):
    """The bytes are not a well-formed COSE_Sign1 structure."""


class CoseNonCanonical(CoseError):
    """The protected header is well-formed CBOR but not its deterministic encoding."""


class CoseAlgorithmError(CoseError):
    """Missing, unknown or disallowed algorithm, or a key that does not fit it."""


class CoseSignatureError(VerifierError, ValueError):
    """The signature does not verify."""


@dataclass(frozen=True, slots=True)
class UnverifiedSign1:
    """A parsed but NOT verified COSE_Sign1. Act on nothing here before verifying."""

    protected_raw: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes

    @property
    def alg(self) -> int | None:
        alg = self.protected.get(HDR_ALG)
        return alg if isinstance(alg, int) else None

    @property
    def kid(self) -> bytes | None:
        """``kid`` from the protected header, else the unprotected one (EU DCC allows both)."""
        kid = self.protected.get(HDR_KID, self.unprotected.get(HDR_KID))
        return kid if isinstance(kid, bytes) else None

    def to_be_signed(self) -> bytes:
        return sig_structure(self.protected_raw, self.payload)


def _bstr_head(n: int) -> bytes:
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    return b"\x5a" + n.to_bytes(4, "big")


_SIG1_PREFIX = b"\x84\x6aSignature1"


def sig_structure(protected_raw: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """``Sig_structure`` for COSE_Sign1, encoded by hand (hot path: no CBOR encoder call)."""
    return b"".join(
        (
            _SIG1_PREFIX,
            _bstr_head(len(protected_raw)),
            protected_raw,
            _bstr_head(len(external_aad)),
            external_aad,
            _bstr_head(len(payload)),
            payload,
        )
    )


def parse_sign1(data: bytes, *, decoded: Any = None) -> UnverifiedSign1:
    """Parse COSE_Sign1 bytes (tagged 18, optionally inside CWT tag 61, or untagged).

    ``decoded`` may carry an already-decoded CBOR object to avoid decoding twice.
    """
    try:
        obj = loads_strict(data) if decoded is None else decoded
    except ValueError as exc:
        raise CoseError(str(exc)) from None
    if isinstance(obj, cbor2.CBORTag) and obj.tag == TAG_CWT:
        obj = obj.value
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != TAG_SIGN1:
            raise CoseError(f"CBOR tag {obj.tag} is not COSE_Sign1 (18)")
        obj = obj.value
    if not isinstance(obj, (list, tuple)) or len(obj) != 4:
        raise CoseError("COSE_Sign1 must be an array of 4 items")
    protected_raw, unprotected, payload, signature = obj
    if not isinstance(protected_raw, bytes):
        raise CoseError("protected header must be a byte string")
    if not isinstance(unprotected, Mapping):
        raise CoseError("unprotected header must be a map")
    if not isinstance(payload, bytes):
        raise CoseError("payload must be a byte string (detached payloads are not supported)")
    if not isinstance(signature, bytes):
        raise CoseError("signature must be a byte string")
    if protected_raw:
        try:
            protected = loads_strict(protected_raw)
        except ValueError as exc:
            raise CoseError(f"protected header: {exc}") from None
        if not isinstance(protected, Mapping):
            raise CoseError("protected header must encode a map")
    else:
        protected = {}
    return UnverifiedSign1(protected_raw, protected, unprotected, payload, signature)


def key_fits(alg: int, key: PublicKey) -> bool:
    """True when ``key`` may verify signatures made with ``alg`` (no algorithm confusion)."""
    if alg == ALG_ES256:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    if alg == ALG_EDDSA:
        return isinstance(key, ed25519.Ed25519PublicKey)
    if alg == ALG_PS256:
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
    return False


def verify_signature(alg: int, key: PublicKey, signature: bytes, message: bytes) -> None:
    """Return nothing when ``signature`` over ``message`` verifies, else raise.

    Raises :class:`CoseAlgorithmError` when ``key`` cannot be used with ``alg`` and
    :class:`CoseSignatureError` when the signature is wrong.
    """
    if not key_fits(alg, key):
        raise CoseAlgorithmError(f"key does not fit algorithm {ALG_NAMES.get(alg, alg)}")
    try:
        if alg == ALG_ES256 and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                raise CoseSignatureError("ES256 signature must be 64 bytes")
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        elif alg == ALG_EDDSA and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif alg == ALG_PS256 and isinstance(key, rsa.RSAPublicKey):
            key.verify(
                signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
    except InvalidSignature:
        raise CoseSignatureError("signature does not verify") from None


def sign(alg: int, key: PrivateKey, message: bytes) -> bytes:
    """Sign ``message`` and return the COSE signature bytes (raw r||s for ES256)."""
    if alg == ALG_ES256 and isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == ALG_EDDSA and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    if alg == ALG_PS256 and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    raise CoseAlgorithmError(f"key does not fit algorithm {ALG_NAMES.get(alg, alg)}")


def encode_sign1(
    payload: bytes,
    key: PrivateKey,
    alg: int,
    kid: bytes,
    *,
    extra_protected: dict[int, Any] | None = None,
    tagged: bool = True,
) -> bytes:
    """Build and sign a COSE_Sign1 with ``alg`` and ``kid`` in the protected header."""
    header: dict[int, Any] = {HDR_ALG: alg, HDR_KID: kid}
    if extra_protected:
        header.update(extra_protected)
    protected_raw = canonical.dumps(header)
    signature = sign(alg, key, sig_structure(protected_raw, payload))
    body = [protected_raw, {}, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, body) if tagged else body)


def _head(data: bytes, pos: int, major: int) -> tuple[int, int]:
    """Read a definite-length CBOR head of ``major`` type in shortest form; return (arg, next)."""
    if pos >= len(data):
        raise CoseError("truncated COSE_Sign1")
    first = data[pos]
    if first >> 5 != major:
        raise CoseError(f"expected CBOR major type {major} at byte {pos}")
    ai = first & 0x1F
    if ai < 24:
        return ai, pos + 1
    width = {24: 1, 25: 2, 26: 4}.get(ai)
    if width is None:
        raise CoseError("indefinite or over-long CBOR length in COSE_Sign1")
    end = pos + 1 + width
    if end > len(data):
        raise CoseError("truncated COSE_Sign1")
    arg = int.from_bytes(data[pos + 1 : end], "big")
    if arg < (24 if width == 1 else 1 << (8 * width // 2)):
        raise CoseError("non-shortest CBOR length in COSE_Sign1")
    return arg, end


def _bstr(data: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _head(data, pos, 2)
    end = pos + n
    if end > len(data):
        raise CoseError("truncated COSE_Sign1")
    return data[pos:end], end


def split_sign1_strict(data: bytes) -> tuple[bytes, bytes, bytes]:
    """``(protected_raw, payload, signature)`` of the canonical COSE_Sign1 shape; see
    :func:`parse_sign1_strict`. Raises :class:`CoseError`."""
    protected_raw, payload, signature, _ = split_sign1_for_verify(data)
    return protected_raw, payload, signature


def split_sign1_for_verify(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Like :func:`split_sign1_strict`, plus the ``Sig_structure`` to verify.

    The hot path of every permit check: the common short lengths are read inline, and
    the Sig_structure reuses the input's own (canonical) bstr encodings of the protected
    header and payload instead of re-encoding them.
    """
    n = len(data)
    if n < 2 or data[0] != 0xD2:
        raise CoseError("expected COSE_Sign1 tag 18 (0xD2) as the first byte")
    if data[1] != 0x84:
        raise CoseError("COSE_Sign1 must be an array of 4 items")
    first = data[2] if n > 2 else 0
    if 0x41 <= first <= 0x57:  # short protected header, the usual case
        pos = 3 + first - 0x40
        protected_raw = data[3:pos]
    else:
        protected_raw, pos = _bstr(data, 2)
    if pos >= n or data[pos] != 0xA0:
        raise CoseError("unprotected header must be an empty map")
    payload_at = pos + 1
    if payload_at + 1 < n and data[payload_at] == 0x58 and data[payload_at + 1] >= 24:
        start = payload_at + 2
        pos = start + data[payload_at + 1]
        if pos > n:
            raise CoseError("truncated COSE_Sign1")
        payload = data[start:pos]
    else:
        payload, pos = _bstr(data, payload_at)
    if data[pos : pos + 2] == b"\x58\x40" and n == pos + 66:  # 64-byte signature, the end
        signature = data[pos + 2 :]
    else:
        signature, end = _bstr(data, pos)
        if end != n:
            raise CoseError(f"{n - end} trailing bytes after COSE_Sign1")
    tbs = b"".join((_SIG1_PREFIX, data[2:payload_at - 1], b"\x40", data[payload_at:pos]))
    return protected_raw, payload, signature, tbs


def parse_sign1_strict(
    data: bytes, *, max_protected: int = 64, decode_header: bool = True
) -> UnverifiedSign1:
    """Parse the one canonical COSE_Sign1 shape gatepass emits, without a generic CBOR decoder.

    ``D2 84 bstr(protected) A0 bstr(payload) bstr(signature)``: tag 18, an empty
    unprotected map, shortest-form lengths, no trailing bytes. Any other encoding of
    the same structure is refused, so no two byte strings carry the same signed
    content, and hostile nesting never reaches a CBOR decoder. The protected header
    (at most ``max_protected`` bytes) is decoded with a depth limit, unless
    ``decode_header`` is false (the caller decodes and caches it; ``protected`` is then empty).
    """
    protected_raw, payload, signature = split_sign1_strict(data)
    protected = decode_protected(protected_raw, max_len=max_protected) if decode_header else {}
    return UnverifiedSign1(protected_raw, protected, {}, payload, signature)


def decode_protected(protected_raw: bytes, *, max_len: int = 64) -> Mapping[Any, Any]:
    """Decode a protected header strictly: a small map in deterministic encoding
    (:mod:`verifier.canonical`); raise :class:`CoseNonCanonical` for any other encoding."""
    if not protected_raw:
        raise CoseError("protected header is empty: alg and kid must be protected")
    if len(protected_raw) > max_len:
        raise CoseError(f"protected header longer than {max_len} bytes")
    try:
        header = canonical.loads(protected_raw, max_depth=2)
    except canonical.CborNonCanonical as exc:
        raise CoseNonCanonical(f"protected header: {exc}") from None
    except ValueError as exc:
        raise CoseError(f"protected header: {exc}") from None
    if not isinstance(header, Mapping):
        raise CoseError("protected header must encode a map")
    return header


def loads_strict(data: bytes, *, max_depth: int = 16) -> Any:
    """``cbor2.loads`` with bounded depth, definite lengths only, no duplicate keys and no
    trailing bytes. Any failure is a ``ValueError`` (never a bare decoder exception)."""
    fp = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(
            fp, max_depth=max_depth, allow_indefinite=False, allow_duplicate_keys=False
        ).decode()
    except (cbor2.CBORDecodeError, RecursionError, MemoryError, OverflowError) as exc:
        raise ValueError(f"invalid CBOR ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # cbor2 semantic decoders may raise anything on hostile tags
        raise ValueError(f"invalid CBOR ({type(exc).__name__})") from None
    if fp.tell() != len(data):
        raise ValueError(f"{len(data) - fp.tell()} trailing bytes after CBOR item")
    return obj
