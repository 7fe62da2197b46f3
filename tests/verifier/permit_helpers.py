"""Helpers for the verifier tests: forge permits with arbitrary headers/claims."""

from __future__ import annotations

from typing import Any

import cbor2

from verifier import base45, canonical, envelope
from verifier.keys import SigningKey

SLOT = (1_780_003_600, 1_780_007_200)
NOW = SLOT[0] + 60


def text_from_cose(cose_bytes: bytes) -> str:
    return envelope.PREFIX + base45.encode(cose_bytes)


def cose_of(text: str) -> bytes:
    return envelope.unwrap(text)


def forge(
    key: SigningKey,
    claims: dict[int, Any],
    *,
    protected: dict[int, Any] | None = None,
    unprotected: dict[int, Any] | None = None,
    tag: int | None = 18,
) -> str:
    """A permit text with arbitrary headers/claims, correctly signed by ``key``."""
    from verifier import cose

    header = protected if protected is not None else {1: key.alg_id, 4: key.kid}
    protected_raw = canonical.dumps(header)
    payload = canonical.dumps(claims)
    sig = cose.sign(key.alg_id, key.private, cose.sig_structure(protected_raw, payload))
    body = [protected_raw, unprotected or {}, payload, sig]
    raw = cbor2.dumps(cbor2.CBORTag(tag, body) if tag is not None else body)
    return text_from_cose(raw)


def claims_of(text: str) -> dict[int, Any]:
    from verifier import cose

    return dict(cbor2.loads(cose.parse_sign1_strict(cose_of(text)).payload))
