"""The store interface: what the aggregator and the dashboard need from a database.

Both implementations (:mod:`central.store.sqlite`, :mod:`central.store.postgres`)
keep the same tables and the same guarantees:

- an event is stored once, keyed by ``(gate, seq)``; a second copy with the same
  ``eid`` is a harmless redelivery, one with a different ``eid`` is an *anomaly*
  (logged and kept for review, never counted);
- counts (events, admitting events and people admitted) are kept per site, gate,
  slot, permit type and bus trip, updated in the transaction that stores the events;
- the same permit hash admitted at two gates is a *conflict*: the earliest admission
  stands, every admission at another gate is flagged;
- per gate, the highest contiguous stored ``seq`` (what the centre acknowledges).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from sync.schema import GateEvent

#: Stand-ins for "no value" in the counts key (SQL NULL never equals NULL in a key).
NO_SLOT = -1
NO_TEXT = ""

EVENT_COLUMNS = (
    "gate", "seq", "site", "eid", "t", "tc", "kind", "verdict", "mode", "reason", "ph",
    "ptype", "slot", "slot_end", "party", "trip", "note", "flags", "received",
)


def event_row(ev: GateEvent, received: float) -> tuple[Any, ...]:
    """The column values of ``ev`` in :data:`EVENT_COLUMNS` order."""
    return (
        ev.gate, ev.seq, ev.site, ev.eid, ev.t, ev.tc, ev.kind, ev.verdict, ev.mode,
        ev.reason, ev.ph, ev.ptype, ev.slot, ev.slot_end, ev.party, ev.trip, ev.note,
        ",".join(ev.flags), received,
    )


@dataclass(frozen=True, slots=True)
class AddResult:
    """What one :meth:`Store.add_events` call did."""

    received: int
    inserted: int
    duplicates: int
    anomalies: int
    conflicts: int
    #: highest contiguous stored seq of every gate the call touched (what to acknowledge)
    acks: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CountRow:
    """Counts of one (site, gate, slot, permit type, trip) cell; ``None`` where absent."""

    site: str
    gate: str
    slot: int | None
    ptype: str | None
    trip: str | None
    events: int
    admits: int
    admitted: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """One admission flagged because the same permit was admitted earlier at another gate."""

    ph: str
    site: str
    gate: str
    seq: int
    t: float
    standing_gate: str
    standing_seq: int
    standing_t: float
    detected: float


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something refused or suspicious the centre kept for review."""

    id: int
    gate: str
    seq: int | None
    kind: str
    detail: str
    detected: float


@dataclass(frozen=True, slots=True)
class GateRow:
    """What the centre knows about a gate: status, health and stored progress."""

    gate: str
    site: str | None
    state: str | None
    state_t: float | None
    offline_since: float | None
    health: Mapping[str, Any]
    health_t: float | None
    last_seen: float | None
    contiguous_seq: int
    stored: int


@dataclass(frozen=True, slots=True)
class Document:
    """A signed downlink document the centre was given (trust list, revocation...)."""

    kind: str
    version: int
    summary: str
    size: int
    received: float


class Store(abc.ABC):
    """Durable, idempotent event storage with exact counts. A context manager."""

    url: str
    #: True when writes mostly wait on another process (a server), so decoding the next
    #: batch in another thread overlaps them; False for in-process engines (SQLite).
    pipelined: bool = False

    # --- events ---------------------------------------------------------------------------
    @abc.abstractmethod
    def add_events(self, events: Sequence[GateEvent], *, now: float) -> AddResult:
        """Store ``events`` (any gates, any order) once each; return what happened."""

    @abc.abstractmethod
    def contiguous_seq(self, gate: str) -> int:
        """Highest ``seq`` such that every seq 1..that of ``gate`` is stored (0 if none)."""

    @abc.abstractmethod
    def event_count(self) -> int:
        """Number of distinct stored events."""

    @abc.abstractmethod
    def stored_keys(self, gate: str) -> list[tuple[int, str]]:
        """``(seq, eid)`` of every stored event of ``gate``, by seq (for audits and tests)."""

    # --- counts and review ----------------------------------------------------------------
    @abc.abstractmethod
    def counts(self) -> list[CountRow]:
        """Every non-empty count cell."""

    @abc.abstractmethod
    def conflicts(self, limit: int = 1000) -> list[Conflict]:
        """Flagged admissions, newest detection first."""

    @abc.abstractmethod
    def conflict_count(self) -> int:
        """Number of flagged admissions."""

    @abc.abstractmethod
    def anomalies(self, limit: int = 1000) -> list[Anomaly]:
        """Anomalies, newest first."""

    @abc.abstractmethod
    def anomaly_count(self) -> int:
        """Number of anomalies recorded."""

    @abc.abstractmethod
    def record_anomaly(
        self, *, gate: str, seq: int | None, kind: str, detail: str, now: float
    ) -> None:
        """Keep something refused or suspicious for review."""

    # --- gates ----------------------------------------------------------------------------
    @abc.abstractmethod
    def set_gate_status(self, gate: str, state: str, t: float | None, *, now: float) -> None:
        """Record a gate's retained online/offline status (``t``: the gate's time, if any)."""

    @abc.abstractmethod
    def set_gate_health(self, gate: str, health: Mapping[str, Any], *, now: float) -> None:
        """Record a gate's latest health document."""

    @abc.abstractmethod
    def gates(self) -> list[GateRow]:
        """Every gate the centre has heard of."""

    # --- documents ------------------------------------------------------------------------
    @abc.abstractmethod
    def add_document(
        self, *, kind: str, version: int, raw: bytes, summary: str, now: float
    ) -> bool:
        """Keep a downlink document; False if that (kind, version) was already kept."""

    @abc.abstractmethod
    def documents(self, kind: str | None = None) -> list[Document]:
        """Kept documents, newest version first."""

    @abc.abstractmethod
    def latest_document(self, kind: str) -> bytes | None:
        """Raw bytes of the highest version of ``kind``, if any (republished at start)."""

    # --- lifecycle ------------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Close connections; safe to call twice."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()



class SqlStore(Store):
    """The read queries both SQL stores share, written once with ``?`` placeholders.

    A store implements :meth:`_read`: run one read-only query and return its rows.
    """

    @abc.abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a read-only query (``?`` placeholders) and return every row."""

    def contiguous_seq(self, gate: str) -> int:
        rows = self._read("SELECT contiguous FROM progress WHERE gate = ?", (gate,))
        return int(rows[0][0]) if rows else 0

    def event_count(self) -> int:
        return int(self._read("SELECT count(*) FROM events")[0][0])

    def stored_keys(self, gate: str) -> list[tuple[int, str]]:
        return [
            (int(s), str(e))
            for s, e in self._read(
                "SELECT seq, eid FROM events WHERE gate = ? ORDER BY seq", (gate,)
            )
        ]

    def counts(self) -> list[CountRow]:
        return [
            count_row(r)
            for r in self._read(
                "SELECT site, gate, slot, ptype, trip, events, admits, admitted FROM counts "
                "ORDER BY site, gate, slot, ptype, trip"
            )
        ]

    def conflicts(self, limit: int = 1000) -> list[Conflict]:
        rows = self._read(
            "SELECT ph, site, gate, seq, t, standing_gate, standing_seq, standing_t, detected "
            "FROM conflicts ORDER BY detected DESC, gate, seq LIMIT ?",
            (limit,),
        )
        return [Conflict(*r) for r in rows]

    def anomalies(self, limit: int = 1000) -> list[Anomaly]:
        rows = self._read(
            "SELECT id, gate, seq, kind, detail, detected FROM anomalies ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [Anomaly(*r) for r in rows]

    def conflict_count(self) -> int:
        return int(self._read("SELECT count(*) FROM conflicts")[0][0])

    def anomaly_count(self) -> int:
        return int(self._read("SELECT count(*) FROM anomalies")[0][0])

    def gates(self) -> list[GateRow]:
        rows = self._read(
            "SELECT g.gate, g.site, g.state, g.state_t, g.offline_since, g.health, g.health_t, "
            "g.last_seen, COALESCE(p.contiguous, 0), "
            "COALESCE((SELECT sum(events) FROM counts c WHERE c.gate = g.gate), 0) "
            "FROM gates g LEFT JOIN progress p ON p.gate = g.gate ORDER BY g.gate"
        )
        return [
            GateRow(
                gate=r[0], site=r[1], state=r[2], state_t=r[3], offline_since=r[4],
                health=loads_health(r[5]), health_t=r[6], last_seen=r[7],
                contiguous_seq=int(r[8]), stored=int(r[9]),
            )
            for r in rows
        ]

    def documents(self, kind: str | None = None) -> list[Document]:
        sql = "SELECT kind, version, summary, size, received FROM documents"
        params: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            params = (kind,)
        return [Document(*r) for r in self._read(sql + " ORDER BY kind, version DESC", params)]

    def latest_document(self, kind: str) -> bytes | None:
        rows = self._read(
            "SELECT raw FROM documents WHERE kind = ? ORDER BY version DESC LIMIT 1", (kind,)
        )
        return bytes(rows[0][0]) if rows else None

def count_key(ev: GateEvent) -> tuple[str, str, int, str, str]:
    """The counts cell of ``ev`` with the "no value" stand-ins."""
    return (
        ev.site,
        ev.gate,
        NO_SLOT if ev.slot is None else ev.slot,
        ev.ptype or NO_TEXT,
        ev.trip or NO_TEXT,
    )


def count_row(values: Sequence[Any]) -> CountRow:
    """A :class:`CountRow` from ``(site, gate, slot, ptype, trip, events, admits, admitted)``."""
    site, gate, slot, ptype, trip, events, admits, admitted = values
    return CountRow(
        site=str(site),
        gate=str(gate),
        slot=None if slot == NO_SLOT else int(slot),
        ptype=ptype or None,
        trip=trip or None,
        events=int(events),
        admits=int(admits),
        admitted=int(admitted),
    )


def resolve_conflicts(
    admissions: Sequence[tuple[str, str, str, int, float]],
) -> list[tuple[str, str, str, int, float, str, int, float]]:
    """Flag admissions of one permit at gates other than the earliest admission's gate.

    ``admissions``: ``(ph, site, gate, seq, t)``. Returns ``(ph, site, gate, seq, t,
    standing_gate, standing_seq, standing_t)`` for each flagged admission. Ties on
    ``t`` break on (gate, seq) so every worker reaches the same answer.
    """
    if not admissions:
        return []
    first = min(admissions, key=lambda a: (a[4], a[2], a[3]))
    return [
        (a[0], a[1], a[2], a[3], a[4], first[2], first[3], first[4])
        for a in admissions
        if a[2] != first[2]
    ]


def dumps_health(health: Mapping[str, Any]) -> str:
    return json.dumps(dict(health), separators=(",", ":"), sort_keys=True)


def loads_health(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def dedupe(
    events: Sequence[GateEvent],
) -> tuple[dict[tuple[str, int], GateEvent], int, list[tuple[GateEvent, str]]]:
    """Collapse repeats of one ``(gate, seq)`` inside a batch.

    Returns the unique events by key, the number of harmless repeats (same eid) and the
    anomalous repeats as ``(event, eid already seen)``.
    """
    by_key: dict[tuple[str, int], GateEvent] = {}
    repeats = 0
    odd: list[tuple[GateEvent, str]] = []
    for ev in events:
        key = (ev.gate, ev.seq)
        prev = by_key.get(key)
        if prev is None:
            by_key[key] = ev
        elif prev.eid == ev.eid:
            repeats += 1
        else:
            odd.append((ev, prev.eid))
    return by_key, repeats, odd


def advance_contiguous(start: int, fetch: Any, chunk: int = 512) -> int:
    """Walk stored seqs upward from ``start`` until the first gap.

    ``fetch(after, limit)`` returns stored seqs greater than ``after``, ascending.
    """
    c = start
    while True:
        seqs = fetch(c, chunk)
        for s in seqs:
            if s != c + 1:
                return c
            c = s
        if len(seqs) < chunk:
            return c
        chunk = min(chunk * 4, 65536)
