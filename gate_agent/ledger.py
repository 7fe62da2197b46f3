"""The gate's durable ledger: every scan, override and trip change, in SQLite (WAL).

Rules that make admissions exact whatever the power does:

- ``synchronous=FULL`` in WAL mode: a transaction is on disk when ``COMMIT`` returns,
  and the agent opens the turnstile only after that.
- One transaction per event holds the event row, the usage counters it changes, the
  trip's boarded count and the sync outbox row (``sync.outbox.Outbox.add(conn, event)``),
  so an admission is in all of them or in none.
- ``seq`` is assigned inside the write transaction (``BEGIN IMMEDIATE``) as the last
  ``seq`` + 1, so it is per-gate contiguous even across crashes.

Local-only details (holder initials and document digits for the ID check and the bus
manifest) stay in this file; the :class:`sync.schema.GateEvent` that sync ships carries
only the permit hash.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

from gate_agent.errors import LedgerError, LedgerMismatch
from gate_agent.policy import TripState, Usage
from sync.errors import OutboxError
from sync.outbox import Outbox
from sync.schema import EventInvalid, GateEvent

SCHEMA_VERSION = 1
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    eid TEXT NOT NULL UNIQUE,
    t REAL NOT NULL,
    kind TEXT NOT NULL,
    verdict TEXT NOT NULL,
    ph TEXT,
    slot INTEGER,
    party INTEGER NOT NULL,
    trip TEXT,
    body TEXT NOT NULL,
    details TEXT
);
CREATE INDEX IF NOT EXISTS events_ph ON events (ph, slot);
CREATE INDEX IF NOT EXISTS events_trip ON events (trip);
CREATE TABLE IF NOT EXISTS usage (
    ph TEXT NOT NULL,
    slot INTEGER NOT NULL,
    admitted INTEGER NOT NULL,
    last_t REAL NOT NULL,
    PRIMARY KEY (ph, slot)
);
CREATE TABLE IF NOT EXISTS slot_counts (slot INTEGER PRIMARY KEY, admitted INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trips (
    trip_id TEXT PRIMARY KEY,
    bus TEXT NOT NULL,
    route TEXT NOT NULL,
    departure INTEGER NOT NULL,
    seats INTEGER NOT NULL,
    boarded INTEGER NOT NULL DEFAULT 0,
    opened_at REAL NOT NULL,
    closed_at REAL
);
CREATE TABLE IF NOT EXISTS downlink (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS site_used (
    ph TEXT NOT NULL,
    gate TEXT NOT NULL,
    t REAL NOT NULL,
    PRIMARY KEY (ph, gate)
);
"""


def _exclusive(path: Path) -> int:
    """Hold ``<ledger>.lock`` so two agents never decide on one ledger at the same time.

    Usage is read before the write transaction; a second process could otherwise admit
    the same permit in between. The kernel drops the lock when the process dies.
    """
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LedgerError(
            f"ledger {path} is in use by another gatepass process: stop it or use another file"
        ) from None
    return fd


class OutboxWriter(Protocol):
    """What the ledger needs from ``sync.outbox.Outbox``: add a row in OUR transaction."""

    def add(self, conn: sqlite3.Connection, event: GateEvent) -> Any: ...


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as the ledger stores it, with its local-only details."""

    event: GateEvent
    details: dict[str, Any]


class Ledger:
    """The durable record of one gate. Thread-safe; a context manager; ``close()`` twice is fine.

    Every event also goes to ``outbox`` (``sync.outbox.Outbox`` by default: its ``add``
    is static) in the same transaction as the ledger row, so a gate that runs offline for
    days ships everything once a broker is configured. ``outbox=None`` only in tests.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        gate: str,
        site: str,
        outbox: OutboxWriter | None = Outbox,  # type: ignore[assignment]
        timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.gate = gate
        self.site = site
        self._outbox = outbox
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = _exclusive(self.path)
            self._conn = sqlite3.connect(
                str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as exc:
            self._unlock()
            raise LedgerError(
                f"cannot open ledger {path}: {exc} (check the directory exists and is writable)"
            ) from None
        self._closed = False
        try:
            self._setup()
        except BaseException:
            self._conn.close()
            self._unlock()
            self._closed = True
            raise

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _setup(self) -> None:
        c = self._conn
        try:
            mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA foreign_keys=ON")
            c.executescript(_SCHEMA)
            if self._outbox is not None:
                Outbox.ensure_schema(c)
            c.execute("BEGIN IMMEDIATE")
            try:
                rows = dict(c.execute("SELECT key, value FROM meta").fetchall())
                if not rows:
                    c.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("gate", self.gate), ("site", self.site),
                         ("schema", str(SCHEMA_VERSION))],
                    )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"ledger {self.path} is not a usable SQLite database: {exc}"
                " (move it aside; never delete a ledger with unsynced admissions)"
            ) from None
        if str(self.path) != ":memory:" and mode.lower() != "wal":
            raise LedgerError(f"ledger {self.path}: WAL mode refused by the filesystem ({mode})")
        if rows and (rows.get("gate"), rows.get("site")) != (self.gate, self.site):
            raise LedgerMismatch(
                f"ledger {self.path} belongs to gate {rows.get('gate')} at site"
                f" {rows.get('site')}, not {self.gate} at {self.site}: use that gate's config"
                " or another ledger file"
            )

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        """The agent's connection (sync's outbox reads through its own)."""
        return self._conn

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
                self._unlock()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------

    def append(
        self,
        *,
        t: float,
        tc: str,
        kind: str,
        verdict: str,
        mode: str,
        reason: str | None = None,
        ph: str | None = None,
        ptype: str | None = None,
        slot: int | None = None,
        slot_end: int | None = None,
        party: int = 0,
        trip: str | None = None,
        note: str | None = None,
        flags: Iterable[str] = (),
        details: dict[str, Any] | None = None,
    ) -> GateEvent:
        """Record one event durably; return it once COMMIT has returned.

        An ``admit`` with a permit hash adds ``party`` to that permit's usage for the slot
        and to the slot's count; with a ``trip`` it adds to the trip's boarded count.
        """
        fields = dict(
            t=t, tc=tc, kind=kind, verdict=verdict, mode=mode, reason=reason, ph=ph,
            ptype=ptype, slot=slot, slot_end=slot_end, party=party, trip=trip, note=note,
            flags=tuple(flags),
        )
        return self._transaction(lambda c: self._insert(c, fields, details or {}))

    def open_trip(
        self, *, trip_id: str, bus: str, route: str, departure: int, seats: int,
        t: float, tc: str, mode: str,
    ) -> GateEvent:
        """Open a bus trip and log it (kind ``trip_open``) in one transaction."""

        def work(c: sqlite3.Connection) -> GateEvent:
            if c.execute("SELECT 1 FROM trips WHERE closed_at IS NULL").fetchone():
                raise LedgerError("a trip is already open: close it first")
            try:
                c.execute(
                    "INSERT INTO trips (trip_id, bus, route, departure, seats, opened_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (trip_id, bus, route, departure, seats, t),
                )
            except sqlite3.IntegrityError:
                raise LedgerError(f"trip id {trip_id} already used: pick another") from None
            return self._insert(
                c,
                dict(t=t, tc=tc, kind="trip_open", verdict="none", mode=mode, trip=trip_id,
                     note=f"bus {bus} route {route} departure {departure} seats {seats}"),
                {"bus": bus, "route": route, "departure": departure, "seats": seats},
            )

        return self._transaction(work)

    def close_trip(self, *, t: float, tc: str, mode: str) -> tuple[GateEvent, dict[str, Any]]:
        """Close the open trip and log it (kind ``trip_close``); return it as a dict."""

        def work(c: sqlite3.Connection) -> tuple[GateEvent, dict[str, Any]]:
            trip = self._open_trip(c)
            if trip is None:
                raise LedgerError("no trip is open")
            c.execute("UPDATE trips SET closed_at = ? WHERE trip_id = ?", (t, trip.trip_id))
            ev = self._insert(
                c,
                dict(t=t, tc=tc, kind="trip_close", verdict="none", mode=mode,
                     trip=trip.trip_id, note=f"boarded {trip.boarded} of {trip.seats}"),
                {"boarded": trip.boarded},
            )
            row = self._trip_rows(c, "WHERE trip_id = ?", (trip.trip_id,))[0]
            return ev, row

        return self._transaction(work)

    def add_site_used(self, items: Iterable[tuple[str, str, float]]) -> int:
        """Remember permits the site-wide stream says were admitted: (ph, gate, t).

        A permit carries one slot, so its hash alone says it went in elsewhere.
        """
        rows = [(ph, gate, float(t)) for ph, gate, t in items if gate != self.gate]

        def work(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO site_used (ph, gate, t) VALUES (?, ?, ?)", rows
            )
            return c.total_changes - before

        return self._transaction(work)

    def save_document(self, *, line: str, kind: str, version: int, raw: bytes) -> None:
        """Keep a signed downlink document so a restarted gate re-applies it offline.

        Per ``line`` (trust_list, revocations, gate_config) only what is needed to rebuild
        the state is kept: the last document, or for revocations the last snapshot and
        the deltas after it.
        """

        def work(c: sqlite3.Connection) -> None:
            if line != "revocations" or kind == "revocation_snapshot":
                c.execute("DELETE FROM downlink WHERE line = ?", (line,))
            c.execute(
                "INSERT INTO downlink (line, kind, version, raw) VALUES (?, ?, ?, ?)",
                (line, kind, int(version), bytes(raw)),
            )

        self._transaction(work)

    def documents(self) -> list[tuple[str, str, int, bytes]]:
        """Saved downlink documents in arrival order: (line, kind, version, raw)."""
        return [
            (str(r[0]), str(r[1]), int(r[2]), bytes(r[3]))
            for r in self._read("SELECT line, kind, version, raw FROM downlink ORDER BY seq")
        ]

    def _transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            if self._closed:
                raise LedgerError(f"ledger {self.path} is closed")
            c = self._conn
            try:
                c.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {self.path} is busy or read-only: {exc}") from None
            try:
                result = work(c)
                c.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    c.execute("ROLLBACK")
                if isinstance(exc, (sqlite3.Error, OutboxError)):
                    raise LedgerError(f"ledger {self.path} write failed: {exc}") from None
                raise
            return result

    def _insert(
        self, c: sqlite3.Connection, fields: dict[str, Any], details: dict[str, Any]
    ) -> GateEvent:
        row = c.execute("SELECT MAX(seq) FROM events").fetchone()
        seq = int(row[0] or 0) + 1
        event = GateEvent(gate=self.gate, site=self.site, seq=seq, eid=uuid.uuid4().hex, **fields)
        if self._outbox is None:
            # Outbox.add validates too; without it, still never record what sync would refuse.
            try:
                GateEvent.from_dict(event.to_dict())
            except EventInvalid as exc:
                raise LedgerError(f"refusing to record an invalid event: {exc}") from None
        c.execute(
            "INSERT INTO events (seq, eid, t, kind, verdict, ph, slot, party, trip, body, details)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, event.eid, event.t, event.kind, event.verdict, event.ph, event.slot,
             event.party, event.trip, json.dumps(event.to_dict(), separators=(",", ":")),
             json.dumps(details, separators=(",", ":")) if details else None),
        )
        admitted = event.admitted
        if admitted and event.ph is not None and event.slot is not None:
            c.execute(
                "INSERT INTO usage (ph, slot, admitted, last_t) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (ph, slot) DO UPDATE SET admitted = admitted + excluded.admitted,"
                " last_t = excluded.last_t",
                (event.ph, event.slot, admitted, event.t),
            )
        if admitted and event.slot is not None:
            c.execute(
                "INSERT INTO slot_counts (slot, admitted) VALUES (?, ?) ON CONFLICT (slot)"
                " DO UPDATE SET admitted = admitted + excluded.admitted",
                (event.slot, admitted),
            )
        if admitted and event.trip is not None:
            c.execute(
                "UPDATE trips SET boarded = boarded + ? WHERE trip_id = ?", (admitted, event.trip)
            )
        if self._outbox is not None:
            self._outbox.add(c, event)
        return event

    # -- reading -----------------------------------------------------------------------

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            if self._closed:
                raise LedgerError(f"ledger {self.path} is closed")
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {self.path} read failed: {exc}") from None

    def usage(self, ph: str, slot: int) -> Usage:
        """People of permit ``ph`` admitted at this gate for ``slot``."""
        rows = self._read(
            "SELECT admitted, last_t FROM usage WHERE ph = ? AND slot = ?", (ph, slot)
        )
        return Usage(admitted=int(rows[0][0]), last_t=float(rows[0][1])) if rows else Usage()

    def slot_admitted(self, slot: int) -> int:
        rows = self._read("SELECT admitted FROM slot_counts WHERE slot = ?", (slot,))
        return int(rows[0][0]) if rows else 0

    def used_elsewhere(self, ph: str) -> bool:
        """The site-wide stream says another gate admitted permit ``ph``."""
        return bool(self._read("SELECT 1 FROM site_used WHERE ph = ? LIMIT 1", (ph,)))

    def totals(self) -> tuple[int, int]:
        """(people admitted, scans refused) at this gate, all time."""
        rows = self._read(
            "SELECT COALESCE(SUM(CASE WHEN verdict = 'admit' THEN party ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN verdict IN ('deny', 'untrusted_time') THEN 1 ELSE 0 END),"
            " 0) FROM events"
        )
        return int(rows[0][0]), int(rows[0][1])

    def outbox_backlog(self) -> int:
        """Events in the sync outbox (not yet acknowledged by the centre)."""
        from sync.outbox import TABLE

        return int(self._read(f"SELECT COUNT(*) FROM {TABLE}")[0][0])

    def last_trusted_t(self) -> float | None:
        """Time of the newest event recorded on a trusted clock (a floor for the clock)."""
        rows = self._read(
            "SELECT MAX(t) FROM events WHERE json_extract(body, '$.tc')"
            " IN ('synced', 'beacon', 'monotonic')"
        )
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def last_seq(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    @staticmethod
    def _recorded(body: str, details: str | None) -> Recorded:
        return Recorded(GateEvent.from_dict(json.loads(body)), json.loads(details or "{}"))

    def events(self, after_seq: int = 0, limit: int = 1_000_000) -> Iterator[Recorded]:
        """Events in seq order (tests, audits, re-seeding sync)."""
        for body, details in self._read(
            "SELECT body, details FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ):
            yield self._recorded(body, details)

    def recent(self, limit: int = 20) -> list[Recorded]:
        rows = self._read(
            "SELECT body, details FROM events ORDER BY seq DESC LIMIT ?", (limit,)
        )
        return [self._recorded(b, d) for b, d in rows]

    def history(self, ph: str, limit: int = 50) -> list[Recorded]:
        """This gate's events for one permit, newest first (counter mode)."""
        rows = self._read(
            "SELECT body, details FROM events WHERE ph = ? ORDER BY seq DESC LIMIT ?", (ph, limit)
        )
        return [self._recorded(b, d) for b, d in rows]

    def _open_trip(self, c: sqlite3.Connection) -> TripState | None:
        row = c.execute(
            "SELECT trip_id, bus, route, departure, seats, boarded FROM trips"
            " WHERE closed_at IS NULL"
        ).fetchone()
        return TripState(*row) if row else None

    def current_trip(self) -> TripState | None:
        with self._lock:
            return self._open_trip(self._conn)

    def _trip_rows(
        self, c: sqlite3.Connection, where: str, args: tuple[Any, ...] = (), limit: int = 20
    ) -> list[dict[str, Any]]:
        cols = ("id", "bus", "route", "departure", "seats", "boarded", "opened_at", "closed_at")
        rows = c.execute(
            "SELECT trip_id, bus, route, departure, seats, boarded, opened_at, closed_at"
            f" FROM trips {where} ORDER BY opened_at DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def trip(self, trip_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = self._trip_rows(self._conn, "WHERE trip_id = ?", (trip_id,))
        return rows[0] if rows else None

    def closed_trips(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            return self._trip_rows(self._conn, "WHERE closed_at IS NOT NULL", (), limit)

    def manifest(self, trip_id: str) -> list[dict[str, Any]]:
        """Who boarded ``trip_id`` (admissions and override admissions), in order."""
        if self.trip(trip_id) is None:
            raise KeyError(f"unknown trip {trip_id}")
        out = []
        for body, details in self._read(
            "SELECT body, details FROM events WHERE trip = ? AND verdict = 'admit' ORDER BY seq",
            (trip_id,),
        ):
            rec = self._recorded(body, details)
            ev = rec.event
            out.append({
                "seq": ev.seq, "t": ev.t, "ph": ev.ph or "", "type": ev.ptype or "",
                "party": ev.party, "initials": str(rec.details.get("initials", "")),
                "doc_digits": str(rec.details.get("doc_digits", "")), "kind": ev.kind,
                "note": ev.note,
            })
        return out
