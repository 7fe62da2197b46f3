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
- per gate, the highest contiguous stored ``seq``; what the centre acknowledges is
  that, capped below the lowest seq with an open *seq alarm*, plus a digest of the event
  ids stored in the acknowledged range (:func:`sync.wire.eid_digest`), so a gate deletes
  only what the centre holds;
- a *seq alarm* is raised when a ``(gate, seq)`` arrives with another event id than the
  stored one: two devices speak as one gate. The contender is kept (never counted) until
  an operator resolves the alarm (:meth:`Store.resolve_seq_alarm`): keeping the stored
  event, or replacing it by the contender (the stored one is then quarantined and no
  longer counted).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from central.errors import StoreError
from sync.schema import EventInvalid, GateEvent
from sync.wire import eid_digest

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
    #: per gate the call touched: the seq to acknowledge (highest contiguous stored seq,
    #: capped below an open seq alarm)
    acks: Mapping[str, int] = field(default_factory=dict)
    #: per gate: ``(first, digest)``, the ids stored at ``first..acks[gate]`` (see module doc)
    proofs: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    #: ``(gate, seq, eid, stored_eid)`` of every event refused because its seq is taken
    seq_conflicts: tuple[tuple[str, int, str, str], ...] = ()


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
class SeqAlarm:
    """Two event ids for one ``(gate, seq)``: two devices speak as one gate."""

    gate: str
    seq: int
    eid: str  # the contender (refused, not counted)
    stored_eid: str  # what the centre stored first
    first_seen: float
    last_seen: float
    seen: int  # how many times the contender arrived
    resolved: float | None
    resolution: str | None


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

    # --- seq alarms -----------------------------------------------------------------------
    @abc.abstractmethod
    def seq_alarms(self, *, open_only: bool = False, limit: int = 1000) -> list[SeqAlarm]:
        """Seq alarms, newest first."""

    @abc.abstractmethod
    def seq_alarm_count(self, *, open_only: bool = True) -> int:
        """Number of seq alarms (open ones by default)."""

    @abc.abstractmethod
    def resolve_seq_alarm(self, gate: str, seq: int, keep_eid: str, *, now: float) -> str:
        """Close the open alarms of ``(gate, seq)`` keeping event ``keep_eid``; return what
        was done. Keeping the contender quarantines the stored event (uncounted) and stores
        and counts the contender, so the genuine gate's next republish is acknowledged."""

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

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Any]:
        """One write transaction on the store's writer connection."""

    @abc.abstractmethod
    def _x(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run ``sql`` (``?`` placeholders) on a write transaction's ``conn``; rows if any."""

    @abc.abstractmethod
    def _flag_conflicts(self, conn: Any, phs: Any, now: float) -> int:
        """Re-check the cross-gate conflicts of permit hashes ``phs`` in ``conn``'s transaction."""

    # --- seq alarms, written once for both SQL stores -------------------------------------
    def _record_seq_conflicts(
        self, conn: Any, odd: Sequence[tuple[GateEvent, str]], now: float
    ) -> None:
        for ev, other in odd:
            self._x(
                conn,
                "INSERT INTO seq_alarms (gate, seq, eid, stored_eid, body, first_seen, last_seen,"
                " seen) VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (gate, seq, eid) DO UPDATE"
                " SET last_seen = excluded.last_seen, seen = seq_alarms.seen + 1",
                (ev.gate, ev.seq, ev.eid, other,
                 json.dumps(ev.to_dict(), separators=(",", ":")), now, now),
            )

    def _ack_and_proof(
        self, conn: Any, gate: str, start: int, contiguous: int, lowest: int
    ) -> tuple[int, tuple[int, str]]:
        """The seq to acknowledge for ``gate`` and its proof ``(first, digest)``.

        ``start`` is the gate's contiguous seq before this call, ``lowest`` the lowest seq
        the call received from the gate. The range starts at whichever is lower of the
        first newly acknowledged seq and ``lowest`` (a gate republishing from its own
        acknowledged seq + 1 gets exactly the range it can check).
        """
        cap = self._x(
            conn, "SELECT min(seq) FROM seq_alarms WHERE gate = ? AND resolved IS NULL", (gate,)
        )
        ack = contiguous
        if cap and cap[0][0] is not None:
            ack = min(ack, int(cap[0][0]) - 1)
        first = max(1, min(min(start, ack) + 1, lowest))
        eids = [
            str(r[0]) for r in self._x(
                conn, "SELECT eid FROM events WHERE gate = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                (gate, first, ack),
            )
        ] if first <= ack else []
        return ack, (first, eid_digest(eids))

    def seq_alarms(self, *, open_only: bool = False, limit: int = 1000) -> list[SeqAlarm]:
        where = " WHERE resolved IS NULL" if open_only else ""
        rows = self._read(
            "SELECT gate, seq, eid, stored_eid, first_seen, last_seen, seen, resolved, resolution"
            f" FROM seq_alarms{where} ORDER BY last_seen DESC, gate, seq LIMIT ?", (limit,)
        )
        return [SeqAlarm(*r) for r in rows]

    def seq_alarm_count(self, *, open_only: bool = True) -> int:
        where = " WHERE resolved IS NULL" if open_only else ""
        return int(self._read(f"SELECT count(*) FROM seq_alarms{where}")[0][0])

    def resolve_seq_alarm(self, gate: str, seq: int, keep_eid: str, *, now: float) -> str:
        with self._write() as conn:
            x = self._x
            open_ = x(conn, "SELECT eid, body FROM seq_alarms WHERE gate = ? AND seq = ? AND "
                      "resolved IS NULL ORDER BY eid", (gate, seq))
            if not open_:
                raise StoreError(f"no open seq alarm for gate {gate} seq {seq}")
            stored = x(conn, f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE gate = ? "
                       "AND seq = ?", (gate, seq))
            if not stored:
                raise StoreError(f"gate {gate} seq {seq} is not stored")
            old = dict(zip(EVENT_COLUMNS, stored[0], strict=True))
            contenders = {str(e): str(b) for e, b in open_}
            if keep_eid == old["eid"]:
                what = (f"kept stored event {keep_eid}; refused "
                        f"{', '.join(sorted(contenders))}")
            elif keep_eid in contenders:
                try:
                    new = GateEvent.from_dict(json.loads(contenders[keep_eid]))
                except (ValueError, EventInvalid) as exc:
                    raise StoreError(f"kept contender {keep_eid} is unreadable: {exc}") from None
                self._replace_event(conn, old, new, now)
                what = f"replaced stored event {old['eid']} (quarantined) by {keep_eid}"
            else:
                raise StoreError(
                    f"{keep_eid} is neither the stored event nor a contender at {gate} seq {seq}"
                )
            x(conn, "UPDATE seq_alarms SET resolved = ?, resolution = ? WHERE gate = ? AND "
              "seq = ? AND resolved IS NULL", (now, what[:500], gate, seq))
            x(conn, "INSERT INTO anomalies (gate, seq, kind, detail, detected) "
              "VALUES (?, ?, 'seq_alarm_resolved', ?, ?)", (gate, seq, what[:500], now))
        return what

    def _replace_event(self, conn: Any, old: Mapping[str, Any], new: GateEvent,
                       now: float) -> None:
        x = self._x
        x(conn, "INSERT INTO quarantine (gate, seq, eid, body, reason, quarantined) "
          "VALUES (?, ?, ?, ?, ?, ?)",
          (old["gate"], old["seq"], old["eid"], json.dumps(dict(old), default=str),
           f"seq alarm resolved for {new.eid}", now))
        x(conn, "DELETE FROM events WHERE gate = ? AND seq = ?", (old["gate"], old["seq"]))
        # The quarantined event becomes a refused contender: if its device sends it again
        # it meets this (resolved) alarm and holds nothing back.
        x(conn, "INSERT INTO seq_alarms (gate, seq, eid, stored_eid, body, first_seen, last_seen,"
          " seen) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (gate, seq, eid) DO NOTHING",
          (old["gate"], old["seq"], old["eid"], new.eid, json.dumps(dict(old), default=str),
           now, now))
        admit = old["verdict"] == "admit"
        x(conn, "UPDATE counts SET events = events - 1, admits = admits - ?, "
          "admitted = admitted - ? WHERE site = ? AND gate = ? AND slot = ? AND ptype = ? "
          "AND trip = ?",
          (1 if admit else 0, int(old["party"]) if admit else 0, old["site"], old["gate"],
           NO_SLOT if old["slot"] is None else old["slot"], old["ptype"] or NO_TEXT,
           old["trip"] or NO_TEXT))
        x(conn, "DELETE FROM counts WHERE events <= 0")
        x(conn, f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES "
          f"({', '.join('?' for _ in EVENT_COLUMNS)})", event_row(new, now))
        x(conn, "INSERT INTO counts (site, gate, slot, ptype, trip, events, admits, admitted) "
          "VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (site, gate, slot, ptype, trip) DO "
          "UPDATE SET events = counts.events + excluded.events, "
          "admits = counts.admits + excluded.admits, "
          "admitted = counts.admitted + excluded.admitted",
          (*count_key(new), 1 if new.verdict == "admit" else 0, new.admitted))
        phs = sorted({p for p in (old["ph"], new.ph) if p is not None})
        for ph in phs:  # the quarantined admission may have been a standing one
            x(conn, "DELETE FROM conflicts WHERE ph = ?", (ph,))
        x(conn, "DELETE FROM conflicts WHERE gate = ? AND seq = ?", (old["gate"], old["seq"]))
        if phs:
            self._flag_conflicts(conn, phs, now)

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
