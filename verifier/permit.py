"""Permit claims (CWT, RFC 8392) and the verified permit object.

Claim map (integer keys; see docs/permit-format.md for the full profile)::

    1 iss tstr   4 exp int?   5 nbf int?   6 iat int   7 cti bstr(16)
    -1 type tstr     -2 site tstr     -3 gate groups [tstr]   -4 slot [start, duration]
    -5 party uint    -6 holder [initials tstr, doc digits tstr, hash bstr]
    -7 health tstr   -8 route tstr?   -9 departure int?
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Any, Final

from verifier.presentation import holder_public_key

CLAIM_ISS: Final = 1
CLAIM_EXP: Final = 4
CLAIM_NBF: Final = 5
CLAIM_IAT: Final = 6
CLAIM_CTI: Final = 7
CLAIM_CNF: Final = 8  # holder key (RFC 8747 confirmation): {1: COSE_Key}
CLAIM_TYPE: Final = -1
CLAIM_SITE: Final = -2
CLAIM_GATES: Final = -3
CLAIM_SLOT: Final = -4
CLAIM_PARTY: Final = -5
CLAIM_HOLDER: Final = -6
CLAIM_HEALTH: Final = -7
CLAIM_ROUTE: Final = -8
CLAIM_DEPARTURE: Final = -9
#: Claims in this range are optional extensions that verifiers ignore; any other
#: unknown claim makes the permit ``bad_claims`` (it might restrict what we would allow).
IGNORED_CLAIMS = range(-199, -99)

KNOWN_CLAIMS: Final = frozenset(
    {
        CLAIM_ISS,
        CLAIM_EXP,
        CLAIM_NBF,
        CLAIM_IAT,
        CLAIM_CTI,
        CLAIM_CNF,
        CLAIM_TYPE,
        CLAIM_SITE,
        CLAIM_GATES,
        CLAIM_SLOT,
        CLAIM_PARTY,
        CLAIM_HOLDER,
        CLAIM_HEALTH,
        CLAIM_ROUTE,
        CLAIM_DEPARTURE,
    }
)

#: Permit types known today; the format accepts any identifier (extensible).
PERMIT_TYPES: Final = ("umrah", "haram-prayer", "nabawi-visit", "rawdah", "bus")
PERMIT_ID_LEN: Final = 16
MAX_PARTY: Final = 64
HOLDER_HASH_LEN: Final = 4
MAX_GATE_GROUPS: Final = 16
IDENT_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_INITIALS_RE: Final = re.compile(r"[A-Z]{0,4}")
_DIGITS_RE: Final = re.compile(r"[0-9A-Z]{0,6}")
_TIME_MAX: Final = 2**40
MAX_SLOT_S: Final = 31 * 86400
#: Nesting limit of the claims map, counted in containers (the map itself is level 1).
CLAIMS_MAX_DEPTH: Final = 4


def permit_hash(permit_id: bytes) -> str:
    """``sha256(permit_id)[:16].hex()``: the permit's id everywhere outside verifier/."""
    return hashlib.sha256(permit_id).digest()[:16].hex()


def normalize_document_number(doc_number: str) -> str:
    """Upper case, spaces and dashes removed: what the holder hash is computed over."""
    return "".join(ch for ch in doc_number.upper() if ch not in " -\t")


def holder_hash(permit_id: bytes, doc_number: str) -> bytes:
    """Salted hash binding a permit to an ID document without carrying its number.

    ``SHA-256("gatepass-holder/1" || permit_id || normalized doc number)[:4]``: the random
    permit id is the salt, so the same passport gives unrelated hashes on two permits.
    """
    data = b"gatepass-holder/1" + permit_id + normalize_document_number(doc_number).encode()
    return hashlib.sha256(data).digest()[:HOLDER_HASH_LEN]


@dataclass(frozen=True)
class VerifiedPermit:
    """A permit whose signature, key scope and validity were checked. Only verify_at makes one."""

    permit_id: bytes
    ph: str
    issuer: str
    issued_at: int
    ptype: str
    site: str
    gate_groups: tuple[str, ...]
    slot_start: int
    slot_end: int
    party: int
    holder_initials: str
    holder_doc_digits: str
    holder_hash: bytes
    health: str
    route: str | None
    departure: int | None
    kid: bytes
    alg: str
    expires_at: int | None = None
    not_before: int | None = None
    #: SEC1 point of the holder's device key (claim 8, cnf) when the permit is holder-bound.
    holder_key: bytes | None = None
    #: ``(step, period_s)`` when it was shown as a verified presentation (GPP1:).
    presentation: tuple[int, int] | None = None

    def holder_matches(self, doc_number: str) -> bool:
        """True when ``doc_number`` is the ID document this permit was issued for."""
        if not self.holder_hash:
            return False
        return holder_hash(self.permit_id, doc_number) == self.holder_hash

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (bytes as hex)."""
        return {
            "permit_id": self.permit_id.hex(),
            "ph": self.ph,
            "issuer": self.issuer,
            "issued_at": self.issued_at,
            "ptype": self.ptype,
            "site": self.site,
            "gate_groups": list(self.gate_groups),
            "slot_start": self.slot_start,
            "slot_end": self.slot_end,
            "party": self.party,
            "holder_initials": self.holder_initials,
            "holder_doc_digits": self.holder_doc_digits,
            "holder_hash": self.holder_hash.hex(),
            "health": self.health,
            "route": self.route,
            "departure": self.departure,
            "kid": self.kid.hex(),
            "alg": self.alg,
            "expires_at": self.expires_at,
            "not_before": self.not_before,
            "holder_key": None if self.holder_key is None else self.holder_key.hex(),
            "presentation": None
            if self.presentation is None
            else {"step": self.presentation[0], "period_s": self.presentation[1]},
        }


class ClaimsInvalid(ValueError):
    """Signed claims that do not follow the profile (raised inside verifier only)."""


# Identifiers already checked: sites, types, issuers and gate groups repeat on every
# permit, so a set lookup replaces the regex on the hot path. Bounded: cleared when full.
_known_idents: set[str] = set()
_KNOWN_IDENTS_MAX: Final = 4096


def _is_ident(v: Any) -> bool:
    if type(v) is str and v in _known_idents:
        return True
    if type(v) is not str or not IDENT_RE.fullmatch(v):
        return False
    if len(_known_idents) >= _KNOWN_IDENTS_MAX:
        _known_idents.clear()
    _known_idents.add(v)
    return True


def _time(v: Any, name: str) -> int:
    if type(v) is not int or not 0 <= v < _TIME_MAX:
        raise ClaimsInvalid(f"{name} must be an integer time")
    return v


def _opt_ident(v: Any, name: str) -> str | None:
    if v is None:
        return None
    if not _is_ident(v):
        raise ClaimsInvalid(f"{name} must be an identifier of 1-64 [A-Za-z0-9_.-]")
    return str(v)


def _opt_time(v: Any, name: str) -> int | None:
    return None if v is None else _time(v, name)


_COSE_KEY_LABELS: Final = (1, -1, -2, -3)  # kty, crv, x, y: bytewise order of their encodings


def _holder_key(cnf: Any) -> bytes:
    """SEC1 point from ``cnf = {1: {1: 2, -1: 1, -2: x, -3: y | bool}}`` (P-256, RFC 9053)."""
    # Labels compared by type too: True == 1 in Python and encodes in one byte (f5) like
    # 1, so neither the tuple comparison nor the length-based canonical check sees it.
    if type(cnf) is not dict or tuple(cnf) != (1,) or type(next(iter(cnf))) is not int:
        raise ClaimsInvalid("cnf must be {1: COSE_Key}")
    key = cnf[1]
    if type(key) is not dict or tuple(key) != _COSE_KEY_LABELS or any(
        type(label) is not int for label in key
    ) or key[1] != 2 or key[-1] != 1:
        raise ClaimsInvalid("cnf key must be an EC2 P-256 COSE_Key {1: 2, -1: 1, -2: x, -3: y}")
    x, y = key[-2], key[-3]
    if type(key[1]) is not int or type(key[-1]) is not int or type(x) is not bytes or len(x) != 32:
        raise ClaimsInvalid("cnf key x must be 32 bytes")
    if type(y) is bool:
        point = (b"\x03" if y else b"\x02") + x
    elif type(y) is bytes and len(y) == 32:
        point = b"\x04" + x + y
    else:
        raise ClaimsInvalid("cnf key y must be 32 bytes or a bool (compressed point)")
    try:
        holder_public_key(point)
    except ValueError:
        raise ClaimsInvalid("cnf key is not a point on P-256") from None
    return point


def cnf_claim(point: bytes) -> dict[int, Any]:
    """The cnf claim value for a SEC1 P-256 point, in the compressed form issuers use."""
    if len(point) == 65 and point[0] == 4:
        x, y_odd = point[1:33], bool(point[64] & 1)
    elif len(point) == 33 and point[0] in (2, 3):
        x, y_odd = point[1:], point[0] == 3
    else:
        raise ValueError("holder key must be a SEC1 P-256 point")
    return {1: {1: 2, -1: 1, -2: x, -3: y_odd}}


def decode_claims(claims: Any, kid: bytes, alg: str) -> VerifiedPermit:
    """Turn a verified claims map into a :class:`VerifiedPermit`; raise :class:`ClaimsInvalid`.

    Written for speed (it runs on every scan): direct checks, set lookups for the
    identifiers seen before, helpers only off the common path.
    """
    if type(claims) is not dict:
        raise ClaimsInvalid("claims must be a map")
    if not KNOWN_CLAIMS.issuperset(claims):
        for k in claims:
            if k not in KNOWN_CLAIMS and not (type(k) is int and k in IGNORED_CLAIMS):
                raise ClaimsInvalid(f"unknown claim {k!r}")
    try:
        cti = claims[CLAIM_CTI]
        iss, ptype, site = claims[CLAIM_ISS], claims[CLAIM_TYPE], claims[CLAIM_SITE]
        health, iat, slot = claims[CLAIM_HEALTH], claims[CLAIM_IAT], claims[CLAIM_SLOT]
        gates, party, holder = claims[CLAIM_GATES], claims[CLAIM_PARTY], claims[CLAIM_HOLDER]
    except KeyError as exc:
        raise ClaimsInvalid(f"required claim {exc.args[0]} missing") from None
    if type(cti) is not bytes or len(cti) != PERMIT_ID_LEN:
        raise ClaimsInvalid(f"cti (permit id) must be {PERMIT_ID_LEN} bytes")
    known = _known_idents
    if not (
        type(iss) is str
        and iss in known
        and type(ptype) is str
        and ptype in known
        and type(site) is str
        and site in known
        and type(health) is str
        and health in known
    ) and not (_is_ident(iss) and _is_ident(ptype) and _is_ident(site) and _is_ident(health)):
        raise ClaimsInvalid("iss, type, site and health must be identifiers [A-Za-z0-9_.-]{1,64}")
    if type(iat) is not int or not 0 <= iat < _TIME_MAX:
        raise ClaimsInvalid("iat must be an integer time")
    if type(slot) is not list or len(slot) != 2:
        raise ClaimsInvalid("slot must be [start, duration]")
    slot_start, duration = slot
    if type(slot_start) is not int or not 0 <= slot_start < _TIME_MAX:
        raise ClaimsInvalid("slot start must be an integer time")
    if type(duration) is not int or not 0 < duration <= MAX_SLOT_S:
        raise ClaimsInvalid(f"slot duration must be 1-{MAX_SLOT_S} seconds")
    if type(gates) is not list or not 0 < len(gates) <= MAX_GATE_GROUPS:
        raise ClaimsInvalid("gate groups must be a list of 1-16 identifiers")
    for g in gates:
        if not (type(g) is str and g in known) and not _is_ident(g):
            raise ClaimsInvalid("gate groups must be a list of 1-16 identifiers")
    if type(party) is not int or not 1 <= party <= MAX_PARTY:
        raise ClaimsInvalid(f"party must be an integer in [1, {MAX_PARTY}]")
    if type(holder) is not list or len(holder) != 3:
        raise ClaimsInvalid("holder must be [initials, document digits, hash]")
    initials, digits, hashed = holder
    if (
        type(initials) is not str
        or len(initials) > 4
        or (initials and not (initials.isascii() and initials.isalpha() and initials.isupper()))
        or type(digits) is not str
        or len(digits) > 6
        or (digits and not (digits.isascii() and digits.isalnum() and digits == digits.upper()))
        or type(hashed) is not bytes
        or len(hashed) not in (0, HOLDER_HASH_LEN)
    ):
        raise ClaimsInvalid("holder must be [0-4 capitals, 0-6 capitals/digits, 4-byte hash|empty]")
    get = claims.get
    exp, nbf = get(CLAIM_EXP), get(CLAIM_NBF)
    route, departure = get(CLAIM_ROUTE), get(CLAIM_DEPARTURE)
    if None in claims.values():
        raise ClaimsInvalid("no claim is null: an optional claim is absent")
    # The frozen dataclass __init__ spends ~2 µs on 20 object.__setattr__ calls; every
    # field is validated above, so fill the instance dict in one call instead.
    permit = object.__new__(VerifiedPermit)
    fields = {
        "permit_id": cti,
        "ph": hashlib.sha256(cti).digest()[:16].hex(),
        "issuer": iss,
        "issued_at": iat,
        "ptype": ptype,
        "site": site,
        "gate_groups": tuple(gates),
        "slot_start": slot_start,
        "slot_end": slot_start + duration,
        "party": party,
        "holder_initials": initials,
        "holder_doc_digits": digits,
        "holder_hash": hashed,
        "health": health,
        "route": None if route is None else _opt_ident(route, "route"),
        "departure": None if departure is None else _time(departure, "departure"),
        "kid": kid,
        "alg": alg,
        "expires_at": None if exp is None else _time(exp, "exp"),
        "not_before": None if nbf is None else _time(nbf, "nbf"),
        "holder_key": None if CLAIM_CNF not in claims else _holder_key(claims[CLAIM_CNF]),
        "presentation": None,
    }
    object.__setattr__(permit, "__dict__", fields)
    return permit


# Bytewise order of the encoded claim keys: every known key is one byte, unsigned
# 0x01..0x08 before negative 0x20..0x28.
_CLAIM_RANK: Final = {k: k if k >= 0 else 100 - k for k in KNOWN_CLAIMS}


def _ilen(v: int) -> int:
    """Bytes of the shortest CBOR head for a non-negative argument ``v`` (1, 2, 3, 5, 9)."""
    return 1 + (v > 23) + (v > 0xFF) + 2 * (v > 0xFFFF) + 4 * (v > 0xFFFFFFFF)


#: Head size by ``int.bit_length()`` of a non-negative argument of 24 or more (2, 3, 5
#: or 9 bytes); below 24 the head is the single byte.
_HEAD_BY_BITS: Final = tuple(
    2 if b <= 8 else 3 if b <= 16 else 5 if b <= 32 else 9 for b in range(65)
)
# (key order, iss, type, site, health, gate groups) -> the bytes those parts take, for
# key orders already checked: issuers repeat them on every permit. Bounded.
_templates: dict[tuple[Any, ...], int] = {}
_TEMPLATES_MAX: Final = 4096


def _template_len(keys: tuple[Any, ...], f: dict[str, Any]) -> int | None:
    """Bytes of the map head, keys, text claims and fixed-size parts; None: key order bad."""
    rank = _CLAIM_RANK
    if any(rank[a] >= rank[b] for a, b in itertools.pairwise(keys)):
        return None
    n = 1 + len(keys) + 1 + PERMIT_ID_LEN + 1 + 1 + 1 + 1  # map, keys, cti, 3 arrays, hash
    for text in (f["issuer"], f["ptype"], f["site"], f["health"], *f["gate_groups"]):
        n += len(text) + 1 + (len(text) > 23)  # ASCII, at most 64 characters
    return n


def claims_canonical(claims: Any, permit: VerifiedPermit, size: int) -> bool | None:
    """Is ``claims`` (``size`` bytes on the wire, decoded to ``permit``) deterministic CBOR?

    The hot path of every scan, without re-encoding: with only known claims (each key one
    byte), the encoding is deterministic exactly when the keys come in bytewise order
    and the input is as long as the shortest encoding of the decoded values (anything
    else: a non-shortest head, an indefinite length, a duplicate key whose pair the
    decoder dropped, a trailing byte, makes it longer or shorter). ``None`` when extension
    claims are present: the caller then runs the generic check of
    :mod:`verifier.canonical`. Every string claim is ASCII (checked by
    :func:`decode_claims`), so its length in characters is its length in bytes.
    """
    keys = tuple(claims)
    f = permit.__dict__
    tkey = (keys, f["issuer"], f["ptype"], f["site"], f["health"], f["gate_groups"])
    n = _templates.get(tkey)
    if n is None:
        if not KNOWN_CLAIMS.issuperset(keys):
            return None
        n = _template_len(keys, f)
        if n is None:
            return False
        if len(_templates) >= _TEMPLATES_MAX:
            _templates.clear()
        _templates[tkey] = n
    heads = _HEAD_BY_BITS
    start, iat, party = f["slot_start"], f["issued_at"], f["party"]
    duration = f["slot_end"] - start
    n += (
        (1 if iat < 24 else heads[iat.bit_length()])
        + (1 if start < 24 else heads[start.bit_length()])
        + (1 if duration < 24 else heads[duration.bit_length()])
        + (1 if party < 24 else 2)  # party <= 64
        + 2 + len(f["holder_initials"]) + len(f["holder_doc_digits"])  # 2 short texts
        + len(f["holder_hash"])
    )
    if len(keys) > 10:  # optional claims present (10 are required)
        exp, nbf, route, departure = f["expires_at"], f["not_before"], f["route"], f["departure"]
        if exp is not None:
            n += _ilen(exp)
        if nbf is not None:
            n += _ilen(nbf)
        if route is not None:
            n += len(route) + 1 + (len(route) > 23)
        if departure is not None:
            n += _ilen(departure)
        holder_key = f["holder_key"]
        if holder_key is not None:  # labels checked in order by _holder_key; 2+2+35+1 + y
            n += 43 + (1 if len(holder_key) == 33 else 34)
    return bool(n == size)


def encode_claims(
    *,
    issuer: str,
    permit_id: bytes,
    issued_at: int,
    expires_at: int | None,
    ptype: str,
    site: str,
    gate_groups: tuple[str, ...],
    slot_start: int,
    slot_end: int,
    party: int,
    holder_initials: str = "",
    holder_doc_digits: str = "",
    holder_hash_: bytes = b"",
    health: str = "ok",
    route: str | None = None,
    departure: int | None = None,
    not_before: int | None = None,
    holder_key: bytes | None = None,
) -> bytes:
    """Deterministic CBOR claims for a permit, validated by the rules the verifier applies."""
    from verifier import canonical

    claims: dict[int, Any] = {
        CLAIM_ISS: issuer,
        CLAIM_IAT: issued_at,
        CLAIM_CTI: permit_id,
        CLAIM_TYPE: ptype,
        CLAIM_SITE: site,
        CLAIM_GATES: list(gate_groups),
        CLAIM_SLOT: [slot_start, slot_end - slot_start],
        CLAIM_PARTY: party,
        CLAIM_HOLDER: [holder_initials, holder_doc_digits, holder_hash_],
        CLAIM_HEALTH: health,
    }
    if expires_at is not None:
        claims[CLAIM_EXP] = expires_at
    if not_before is not None:
        claims[CLAIM_NBF] = not_before
    if route is not None:
        claims[CLAIM_ROUTE] = route
    if departure is not None:
        claims[CLAIM_DEPARTURE] = departure
    if holder_key is not None:
        claims[CLAIM_CNF] = cnf_claim(holder_key)
    decode_claims(claims, b"", "")  # same validation as verification: never issue a dud
    return canonical.dumps(claims)
