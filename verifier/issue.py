"""Issuing permits: claims in, ``GP1:`` text out. Randomness comes from ``os.urandom``;
time is a parameter like everywhere in verifier/."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from verifier import envelope
from verifier.keys import SigningKey
from verifier.permit import encode_claims, holder_hash, normalize_document_number, permit_hash

DOC_DIGITS: Final = 4


@dataclass(frozen=True, slots=True)
class IssuedPermit:
    """A freshly signed permit: its QR text and its ids."""

    text: str
    permit_id: bytes
    ph: str


def issue_permit(
    key: SigningKey,
    *,
    issuer: str,
    issued_at: int,
    ptype: str,
    site: str,
    slot: tuple[int, int],
    party: int = 1,
    gate_groups: tuple[str, ...] = ("all",),
    initials: str = "",
    doc_number: str | None = None,
    health: str = "ok",
    route: str | None = None,
    departure: int | None = None,
    expires_at: int | None = None,
    not_before: int | None = None,
    permit_id: bytes | None = None,
    holder_key: bytes | None = None,
) -> IssuedPermit:
    """Sign one permit with ``key``. ``doc_number`` yields the last digits and the salted
    holder hash; the number itself is never stored. ``holder_key`` (a SEC1 P-256 point)
    binds the permit to the holder's device (claim 8, cnf): gates then want a
    presentation. Raises ``ValueError`` on bad claims."""
    pid = os.urandom(16) if permit_id is None else permit_id
    digits, hashed = "", b""
    if doc_number:
        norm = normalize_document_number(doc_number)
        digits, hashed = norm[-DOC_DIGITS:], holder_hash(pid, norm)
    claims = encode_claims(
        issuer=issuer,
        permit_id=pid,
        issued_at=int(issued_at),
        expires_at=None if expires_at is None else int(expires_at),
        ptype=ptype,
        site=site,
        gate_groups=tuple(gate_groups),
        slot_start=int(slot[0]),
        slot_end=int(slot[1]),
        party=party,
        holder_initials=initials.upper(),
        holder_doc_digits=digits,
        holder_hash_=hashed,
        health=health,
        route=route,
        departure=departure,
        not_before=not_before,
        holder_key=holder_key,
    )
    return IssuedPermit(envelope.wrap(key.sign1(claims)), pid, permit_hash(pid))
