"""The gate registry and gate batch signatures: who may speak as a gate, and from where.

A gate registry is a ``gate_registry`` document (see :mod:`verifier.documents`) signed by
the root or by a key the trust list gives the ``registry`` role. Its body::

    {"gates": [{"id": tstr, "site": tstr, "groups": [tstr, ...],
                "mode": "entrance"|"boarding"|"counter",
                "alg": "ES256"|"EdDSA", "spki": bstr (DER SubjectPublicKeyInfo)}, ...]}

Ids, sites and groups match ``[A-Za-z0-9_.-]{1,64}``; a gate id appears once; groups are
sorted and unique. Each gate holds the private half of its key and signs every event
batch it sends (:func:`sign_batch`): a detached signature over
``BATCH_CONTEXT + batch bytes``, so a gate key signs nothing but batches. The centre
checks a batch with :func:`verify_batch` against the key the registry names for the
batch's gate, and refuses an event whose site, groups or mode differ from the entry.

Pure: no clock (``now`` is a parameter), no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from verifier import cose
from verifier.documents import (
    KIND_GATE_REGISTRY,
    Document,
    check_newer,
    read_document,
    sign_document,
)
from verifier.errors import DocumentRefused, KeyUnusable, Reason, VerifierError
from verifier.keys import SigningKey, alg_id, load_public, spki

if TYPE_CHECKING:
    from verifier.trust import TrustStore

MODES: Final = frozenset({"entrance", "boarding", "counter"})
MAX_GATES: Final = 100_000
MAX_GROUPS: Final = 64
#: Domain separation: a gate's key signs batches only, never anything a document reader takes.
BATCH_CONTEXT: Final = b"gatepass-batch/1\x00"
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class BatchSignatureInvalid(VerifierError, ValueError):
    """A gate batch's signature is missing, malformed or does not verify with the gate's key."""


@dataclass(frozen=True, slots=True)
class GateEntry:
    """One registered gate: where it stands, what it does and the key it signs batches with."""

    gate: str
    site: str
    groups: tuple[str, ...]
    mode: str
    alg: int
    public: cose.PublicKey

    @property
    def alg_name(self) -> str:
        return cose.ALG_NAMES[self.alg]

    def spki(self) -> bytes:
        return spki(self.public)

    def to_body(self) -> dict[str, Any]:
        """This entry as it appears in a registry body."""
        return {
            "id": self.gate,
            "site": self.site,
            "groups": list(self.groups),
            "mode": self.mode,
            "alg": self.alg_name,
            "spki": self.spki(),
        }


@dataclass(frozen=True, slots=True)
class GateRegistry:
    """A verified registry: its version and every gate by id."""

    version: int
    gates: Mapping[str, GateEntry]
    raw: bytes = b""
    document: Document | None = None

    def get(self, gate: str) -> GateEntry | None:
        return self.gates.get(gate)

    def sites(self) -> frozenset[str]:
        return frozenset(e.site for e in self.gates.values())


def _ident(value: Any, what: str) -> str:
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    raise DocumentRefused(
        Reason.MALFORMED, f"gate registry {what} must match [A-Za-z0-9_.-]{{1,64}}"
    )


def make_entry(
    gate: str,
    site: str,
    groups: Iterable[str],
    mode: str,
    public_der_or_pem: bytes,
    alg: str = "ES256",
) -> GateEntry:
    """Build (and check) one entry from enrolment data; raise :class:`KeyUnusable` or
    :class:`DocumentRefused` naming what is wrong."""
    public = load_public(public_der_or_pem, alg)
    return parse_entry({
        "id": gate, "site": site, "groups": sorted(set(groups)), "mode": mode,
        "alg": alg, "spki": spki(public),
    })


def parse_entry(entry: Any) -> GateEntry:
    """Validate one registry entry strictly."""
    if not isinstance(entry, Mapping):
        raise DocumentRefused(Reason.MALFORMED, "gate registry entry must be a map")
    if set(entry) != {"id", "site", "groups", "mode", "alg", "spki"}:
        raise DocumentRefused(
            Reason.MALFORMED, "gate registry entry needs exactly id, site, groups, mode, alg, spki"
        )
    gate = _ident(entry["id"], "gate id")
    site = _ident(entry["site"], f"site of {gate}")
    groups = entry["groups"]
    if not isinstance(groups, (list, tuple)) or len(groups) > MAX_GROUPS:
        raise DocumentRefused(Reason.MALFORMED, f"gate registry groups of {gate} must be a list")
    names = tuple(_ident(g, f"group of {gate}") for g in groups)
    if list(names) != sorted(set(names)):
        raise DocumentRefused(
            Reason.MALFORMED, f"gate registry groups of {gate} must be sorted and unique"
        )
    mode = entry["mode"]
    if mode not in MODES:
        raise DocumentRefused(Reason.MALFORMED, f"gate registry mode of {gate} must be one of "
                              f"{sorted(MODES)}")
    alg, der = entry["alg"], entry["spki"]
    if not isinstance(alg, str) or not isinstance(der, bytes):
        raise DocumentRefused(Reason.MALFORMED, f"gate registry key of {gate} needs alg and spki")
    try:
        public = load_public(der, alg)
        alg_num = alg_id(alg)
    except KeyUnusable as exc:
        raise DocumentRefused(Reason.MALFORMED, f"gate registry key of {gate}: {exc}") from None
    return GateEntry(gate, site, names, str(mode), alg_num, public)


def parse_registry_body(body: Any) -> dict[str, GateEntry]:
    """Validate a registry body; raise ``DocumentRefused(MALFORMED)`` saying what is wrong."""
    if not isinstance(body, Mapping) or set(body) != {"gates"}:
        raise DocumentRefused(Reason.MALFORMED, 'gate registry body must be {"gates": [...]}')
    entries = body["gates"]
    if not isinstance(entries, (list, tuple)):
        raise DocumentRefused(Reason.MALFORMED, "gate registry gates must be a list")
    if len(entries) > MAX_GATES:
        raise DocumentRefused(Reason.TOO_LARGE, f"gate registry holds more than {MAX_GATES} gates")
    out: dict[str, GateEntry] = {}
    for raw_entry in entries:
        entry = parse_entry(raw_entry)
        if entry.gate in out:
            raise DocumentRefused(Reason.MALFORMED, f"gate registry lists {entry.gate} twice")
        out[entry.gate] = entry
    return out


def registry_body(entries: Iterable[GateEntry]) -> dict[str, Any]:
    """The body of a registry listing ``entries`` (sorted by gate id)."""
    ordered = sorted(entries, key=lambda e: e.gate)
    ids = [e.gate for e in ordered]
    if len(ids) != len(set(ids)):
        raise ValueError("a gate id may appear once in a registry")
    return {"gates": [e.to_body() for e in ordered]}


def sign_registry(
    entries: Iterable[GateEntry], version: int, key: SigningKey, *, issued_at: int | None = None
) -> bytes:
    """Sign a registry of ``entries`` with the root or a ``registry`` key."""
    return sign_document(KIND_GATE_REGISTRY, registry_body(entries), version, key,
                         issued_at=issued_at)


def open_registry(raw: bytes, trust: TrustStore, *, now: float | None = None) -> GateRegistry:
    """Verify a signed registry (signer, role, validity at ``now``) and parse it strictly."""
    doc = read_document(raw, KIND_GATE_REGISTRY, trust, now=now)
    return GateRegistry(doc.version, parse_registry_body(doc.body), bytes(raw), doc)


def newer_registry(held: GateRegistry | None, offered: GateRegistry) -> bool:
    """True when ``offered`` should replace ``held``; raise ``DocumentRefused(ROLLBACK)`` for an
    older or different same-version registry. The very same registry again is False."""
    if held is None:
        return True
    if offered.version == held.version and offered.raw == held.raw:
        return False
    if offered.document is None:
        raise DocumentRefused(Reason.MALFORMED, "gate registry was not opened by open_registry")
    check_newer(offered.document, held.version)  # the one version rule of every document
    return True


# --- batch signatures -----------------------------------------------------------------------


def sign_batch(key: SigningKey, batch: bytes) -> bytes:
    """The gate's detached signature over ``batch`` (raw r||s for ES256, 64 bytes)."""
    return cose.sign(key.alg_id, key.private, BATCH_CONTEXT + bytes(batch))


def verify_batch(entry: GateEntry, batch: bytes, signature: bytes) -> None:
    """Return nothing when ``signature`` is ``entry``'s gate's over ``batch``, else raise
    :class:`BatchSignatureInvalid`."""
    try:
        cose.verify_signature(entry.alg, entry.public, bytes(signature),
                              BATCH_CONTEXT + bytes(batch))
    except (cose.CoseSignatureError, cose.CoseAlgorithmError) as exc:
        raise BatchSignatureInvalid(f"batch signature of gate {entry.gate}: {exc}") from None
