"""Signing keys and the public keys a trust list names.

Private keys live with issuers and the root; gates only ever see :class:`TrustedKey`
(public half, from a verified trust list). Key material arrives as bytes: reading
files is the caller's business.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from verifier import cose
from verifier.errors import KeyUnusable

#: Algorithms a gatepass permit or document may use (PS256 is for EU DCC only).
PERMIT_ALGS = ("ES256", "EdDSA")
#: ES256 verifies faster than Ed25519 through ``cryptography`` (see docs/permit-format.md).
DEFAULT_ALG = "ES256"
KID_LEN = 4

ROLE_ROOT = "root"
ROLE_PERMIT = "permit"
ROLE_REVOCATION = "revocation"
ROLE_CENTRAL = "central"
ROLE_REGISTRY = "registry"  # signs the gate registry (verifier.registry)
ROLES = frozenset({ROLE_PERMIT, ROLE_REVOCATION, ROLE_CENTRAL, ROLE_REGISTRY})


def alg_id(alg: str | int) -> int:
    """COSE algorithm id of ``alg`` (a name such as ``"ES256"`` or an id), permit algs only."""
    if isinstance(alg, int):
        alg = cose.ALG_NAMES.get(alg, str(alg))
    if alg not in PERMIT_ALGS:
        raise KeyUnusable(f"algorithm {alg!r} is not allowed; use one of {', '.join(PERMIT_ALGS)}")
    return cose.ALG_IDS[alg]


def spki(public: cose.PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of ``public``: the form trust lists carry."""
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def default_kid(public: cose.PublicKey) -> bytes:
    """First ``KID_LEN`` bytes of SHA-256 over the SPKI (short: it travels in every QR)."""
    return hashlib.sha256(spki(public)).digest()[:KID_LEN]


def load_public(der_or_pem: bytes, alg: str | int) -> cose.PublicKey:
    """Load a public key and check it fits ``alg`` (no algorithm confusion)."""
    alg_num = alg_id(alg)
    try:
        if der_or_pem.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(der_or_pem)
        else:
            key = serialization.load_der_public_key(der_or_pem)
    except (ValueError, TypeError) as exc:
        raise KeyUnusable(f"public key cannot be parsed ({exc}); give DER or PEM SPKI") from None
    if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        raise KeyUnusable("public key type not supported; use P-256 or Ed25519")
    if not cose.key_fits(alg_num, key):
        raise KeyUnusable(f"public key does not fit algorithm {cose.ALG_NAMES[alg_num]}")
    return key


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with its ``kid`` and algorithm: an issuer's, the root's or central's."""

    kid: bytes
    alg: str
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, alg: str = DEFAULT_ALG, kid: bytes | None = None) -> SigningKey:
        alg_id(alg)
        private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        if alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        return cls(kid if kid is not None else default_kid(private.public_key()), alg, private)

    @classmethod
    def from_pem(cls, pem: bytes, *, kid: bytes | None = None) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM private key (P-256 or Ed25519)."""
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyUnusable(
                f"private key cannot be loaded ({exc}); give an unencrypted PKCS#8 PEM"
            ) from None
        if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
            private.curve, ec.SECP256R1
        ):
            alg = "ES256"
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            alg = "EdDSA"
        else:
            raise KeyUnusable("private key type not supported; use P-256 or Ed25519")
        return cls(kid if kid is not None else default_kid(private.public_key()), alg, private)

    @property
    def alg_id(self) -> int:
        return cose.ALG_IDS[self.alg]

    def public(self) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
        return self.private.public_key()

    def public_der(self) -> bytes:
        return spki(self.public())

    def to_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign1(self, payload: bytes) -> bytes:
        """COSE_Sign1 over ``payload`` in the canonical shape ``parse_sign1_strict`` accepts."""
        return cose.encode_sign1(payload, self.private, self.alg_id, self.kid)


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key from a verified trust list, with what it may sign and when.

    ``ptypes`` / ``sites`` of ``None`` mean any. A permit is in the key's validity when
    its issued-at lies in ``[not_before, not_after]``; after ``verify_until`` (if set)
    nothing the key signed verifies any more.
    """

    kid: bytes
    alg: int
    public: cose.PublicKey = field(repr=False)
    issuer: str = ""
    roles: frozenset[str] = frozenset({ROLE_PERMIT})
    ptypes: frozenset[str] | None = None
    sites: frozenset[str] | None = None
    not_before: int = 0
    not_after: int = 2**62
    verify_until: int | None = None

    @property
    def alg_name(self) -> str:
        return cose.ALG_NAMES.get(self.alg, str(self.alg))
