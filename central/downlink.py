"""Signed documents the centre sends down to gates.

The centre signs three kinds itself with its own key (root or ``central`` role):

- ``time_beacon``: version = milliseconds since the epoch, body ``{"t": seconds}``;
- ``gate_config``: version chosen by the operator, body = the rule sections plus
  ``"gate": G``, retained on ``gp/v1/gates/{G}/config``;
- ``used_permits``: version = microseconds since the epoch (every worker's clock, so
  versions from several workers interleave but never repeat within one), body
  ``{"site": S, "used": [[ph, gate, t], ...]}``: permits admitted at that site.

Trust lists and revocation snapshots/deltas are signed by the issuer (root or a
``revocation`` key) and only *relayed*: :func:`check_given` opens them with the
centre's trust store first (signer validity at ``now``), so the centre never
republishes garbage under its name, and refuses any version at or below the newest it
holds on that line (:func:`verifier.documents.check_newer` with :func:`held_version`):
an old revocation snapshot can never become the retained one again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from central.errors import CentralConfigError, DocumentNotNewer, DownlinkError
from verifier import documents
from verifier.errors import DocumentRefused, Reason
from verifier.keys import SigningKey

if TYPE_CHECKING:
    from central.store.base import Store
    from verifier.trust import TrustStore

#: Kinds the centre relays, and the retained-or-not topic each goes to (see sync.topics).
RELAYED_KINDS = (
    documents.KIND_TRUST_LIST,
    documents.KIND_REVOCATION_SNAPSHOT,
    documents.KIND_REVOCATION_DELTA,
)
MAX_USED_PER_DOCUMENT = 2000


class DownlinkSigner:
    """Signs the centre's own downlink documents with one key."""

    def __init__(self, *, key: SigningKey) -> None:
        self.key = key

    def time_beacon(self, now: float) -> bytes:
        return documents.sign_document(
            documents.KIND_TIME_BEACON, {"t": float(now)}, int(now * 1000), self.key,
            issued_at=int(now),
        )

    def gate_config(
        self, gate: str, body: Mapping[str, Any], version: int, now: float
    ) -> bytes:
        """A gate's config; the body names the gate so another gate refuses it."""
        return documents.sign_document(
            documents.KIND_GATE_CONFIG, {**dict(body), "gate": gate}, version, self.key,
            issued_at=int(now),
        )

    def used_permits(
        self, site: str, used: Sequence[tuple[str, str, float]], now: float
    ) -> list[bytes]:
        """One or more documents listing ``(ph, gate, t)`` admitted at ``site``."""
        out = []
        base = int(now * 1_000_000)
        for n, i in enumerate(range(0, len(used), MAX_USED_PER_DOCUMENT)):
            chunk = [[ph, gate, float(t)] for ph, gate, t in used[i:i + MAX_USED_PER_DOCUMENT]]
            out.append(
                documents.sign_document(
                    documents.KIND_USED_PERMITS, {"site": site, "used": chunk}, base + n,
                    self.key, issued_at=int(now),
                )
            )
        return out


def load_signing_key(path: Path, kid_hex: str | None = None) -> SigningKey:
    """Read a PEM private key; raise :class:`CentralConfigError` if it cannot be used."""
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise CentralConfigError(f"cannot read signing key {path}: {exc.strerror}") from None
    try:
        return SigningKey.from_pem(pem, kid=bytes.fromhex(kid_hex) if kid_hex else None)
    except ValueError as exc:
        raise CentralConfigError(f"signing key {path} is unusable: {exc}") from None


@dataclass(frozen=True, slots=True)
class Given:
    """A relayed document after checking: kind, version and a one-line summary."""

    kind: str
    version: int
    summary: str
    raw: bytes


def held_version(store: Store, kind: str, trust: TrustStore | None = None) -> int:
    """Newest version the centre holds on ``kind``'s version line (0: none): the kept
    documents of the line, and for trust lists also the list ``trust`` holds."""
    line = documents.version_line(kind)
    kinds = (
        (documents.KIND_REVOCATION_SNAPSHOT, documents.KIND_REVOCATION_DELTA)
        if line == documents.LINE_REVOCATIONS
        else (kind,)
    )
    held = max((d.version for k in kinds for d in store.documents(k)[:1]), default=0)
    if kind == documents.KIND_TRUST_LIST and trust is not None:
        held = max(held, trust.version)
    return held


def check_given(
    raw: bytes,
    trust: TrustStore,
    *,
    now: float | None,
    held: Callable[[str], int] | None = None,
) -> Given:
    """Open a trust list or revocation document given to the centre; refuse anything else.

    ``held(kind)`` gives the newest version held on the document's line (see
    :func:`held_version`); a document not newer raises :class:`DocumentNotNewer`.
    """
    try:
        doc = documents.read_document(raw, RELAYED_KINDS, trust, now=now)
        if held is not None:
            documents.check_newer(doc, held(doc.kind))
    except DocumentRefused as exc:
        if exc.reason in (Reason.ROLLBACK, Reason.VERSION_GAP):
            raise DocumentNotNewer(f"document refused: {exc}") from None
        raise DownlinkError(f"document refused: {exc}") from None
    return Given(doc.kind, doc.version, _summary(doc.kind, doc.body), bytes(raw))


def _summary(kind: str, body: Any) -> str:
    if isinstance(body, dict):
        parts = []
        for k, v in sorted(body.items(), key=lambda kv: str(kv[0])):
            if isinstance(v, (list, tuple, dict)):
                parts.append(f"{k}: {len(v)} entries")
            elif isinstance(v, (bytes, bytearray)):
                parts.append(f"{k}: {len(v)} bytes")
            else:
                parts.append(f"{k}: {str(v)[:40]}")
        return f"{kind} " + ", ".join(parts[:6])
    return kind
