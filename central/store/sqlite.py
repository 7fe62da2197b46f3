"""The SQLite store (the default): one WAL file, safe for several worker processes.

Writers take ``BEGIN IMMEDIATE``, so the existence check, the insert, the counts and
the contiguous-seq walk of one batch are one serialised transaction, whichever
process runs it. Readers (the dashboard) use their own connection and never wait
for a writer (WAL).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from central.errors import StoreError
from central.store.base import (
    EVENT_COLUMNS,
    AddResult,
    SqlStore,
    advance_contiguous,
    count_key,
    dedupe,
    dumps_health,
    event_row,
    resolve_conflicts,
)
from sync.schema import GateEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    gate TEXT NOT NULL, seq INTEGER NOT NULL, site TEXT NOT NULL, eid TEXT NOT NULL,
    t REAL NOT NULL, tc TEXT NOT NULL, kind TEXT NOT NULL, verdict TEXT NOT NULL,
    mode TEXT NOT NULL, reason TEXT, ph TEXT, ptype TEXT, slot INTEGER, slot_end INTEGER,
    party INTEGER NOT NULL, trip TEXT, note TEXT, flags TEXT NOT NULL, received REAL NOT NULL,
    PRIMARY KEY (gate, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_ph ON events (ph) WHERE verdict = 'admit' AND ph IS NOT NULL;
CREATE TABLE IF NOT EXISTS counts (
    site TEXT NOT NULL, gate TEXT NOT NULL, slot INTEGER NOT NULL, ptype TEXT NOT NULL,
    trip TEXT NOT NULL, events INTEGER NOT NULL, admits INTEGER NOT NULL,
    admitted INTEGER NOT NULL,
    PRIMARY KEY (site, gate, slot, ptype, trip)
);
CREATE TABLE IF NOT EXISTS progress (gate TEXT PRIMARY KEY, contiguous INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts (
    gate TEXT NOT NULL, seq INTEGER NOT NULL, ph TEXT NOT NULL, site TEXT NOT NULL,
    t REAL NOT NULL, standing_gate TEXT NOT NULL, standing_seq INTEGER NOT NULL,
    standing_t REAL NOT NULL, detected REAL NOT NULL,
    PRIMARY KEY (gate, seq)
);
CREATE INDEX IF NOT EXISTS conflicts_ph ON conflicts (ph);
CREATE TABLE IF NOT EXISTS anomalies (
    id INTEGER PRIMARY KEY AUTOINCREMENT, gate TEXT NOT NULL, seq INTEGER, kind TEXT NOT NULL,
    detail TEXT NOT NULL, detected REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS gates (
    gate TEXT PRIMARY KEY, site TEXT, state TEXT, state_t REAL, offline_since REAL,
    health TEXT, health_t REAL, last_seen REAL
);
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, version INTEGER NOT NULL, raw BLOB NOT NULL, summary TEXT NOT NULL,
    size INTEGER NOT NULL, received REAL NOT NULL, PRIMARY KEY (kind, version)
);
CREATE TABLE IF NOT EXISTS seq_alarms (
    gate TEXT NOT NULL, seq INTEGER NOT NULL, eid TEXT NOT NULL, stored_eid TEXT NOT NULL,
    body TEXT NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    seen INTEGER NOT NULL, resolved REAL, resolution TEXT, PRIMARY KEY (gate, seq, eid)
);
CREATE TABLE IF NOT EXISTS quarantine (
    gate TEXT NOT NULL, seq INTEGER NOT NULL, eid TEXT NOT NULL, body TEXT NOT NULL,
    reason TEXT NOT NULL, quarantined REAL NOT NULL, PRIMARY KEY (gate, seq, eid)
);
"""

_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)
_UPSERT_COUNTS = (
    "INSERT INTO counts (site, gate, slot, ptype, trip, events, admits, admitted) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, gate, slot, ptype, trip) DO UPDATE SET "
    "events = events + excluded.events, admits = admits + excluded.admits, "
    "admitted = admitted + excluded.admitted"
)
_CONFLICTING = """
SELECT e.ph, e.site, e.gate, e.seq, e.t FROM events e
WHERE e.verdict = 'admit' AND e.ph IN (
    SELECT f.ph FROM fresh_ph f JOIN events x ON x.ph = f.ph AND x.verdict = 'admit'
    GROUP BY f.ph HAVING count(DISTINCT x.gate) > 1)
"""


def path_from_url(url: str) -> Path:
    """``sqlite:///abs/path.db``, ``sqlite:rel.db`` or a bare path."""
    if url.startswith("sqlite:///"):
        return Path("/" + url[len("sqlite:///"):].lstrip("/"))
    if url.startswith("sqlite:"):
        return Path(url[len("sqlite:"):])
    return Path(url)


class SQLiteStore(SqlStore):
    """The default store: a SQLite WAL file shared by every worker process of the centre."""

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0) -> None:
        self.url = url
        self.path = path_from_url(url)
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._closed = False
        self._lockfile: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # read-only directory: SQLite's locks only
                self._lockfile = os.open(f"{self.path}.writer", os.O_RDWR | os.O_CREAT, 0o600)
            # Opening processes take turns too: switching a new file to WAL while another
            # connection does the same can fail at once, without the busy handler.
            with self._writer_turn():
                self._w = self._connect(busy_timeout_s)
                self._w.executescript(SCHEMA)
                self._w.execute("CREATE TEMP TABLE IF NOT EXISTS fresh_ph (ph TEXT PRIMARY KEY)")
                self._r = self._connect(busy_timeout_s)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from None

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: an event the centre acknowledged must survive a power cut, or the gate
        # (which deleted it on the ack) and the centre would disagree for ever.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._wlock, self._writer_turn():
            if self._closed:
                raise StoreError("store is closed")
            conn = self._w
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to {self.path}: {exc}") from None
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may already have rolled back (disk full)
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"cannot commit to {self.path}: {exc}") from None

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        # Writers of all processes queue on an OS file lock and wake the moment it is
        # free; SQLite's own busy handler polls with sleeps of up to 100 ms instead.
        if self._lockfile is None:
            yield
            return
        fcntl.flock(self._lockfile, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lockfile, fcntl.LOCK_UN)

    def _x(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to {self.path}: {exc}") from None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._rlock:
            if self._closed:
                raise StoreError("store is closed")
            try:
                return self._r.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read {self.path}: {exc}") from None

    # --- events ---------------------------------------------------------------------------
    def add_events(self, events: Sequence[GateEvent], *, now: float) -> AddResult:
        by_key, repeats, odd = dedupe(events)
        per_gate: dict[str, list[int]] = {}
        for gate, seq in by_key:
            per_gate.setdefault(gate, []).append(seq)
        try:
            with self._write() as conn:
                for gate, seqs in per_gate.items():
                    rows = conn.execute(
                        "SELECT seq, eid FROM events WHERE gate = ? AND seq BETWEEN ? AND ?",
                        (gate, min(seqs), max(seqs)),
                    ).fetchall()
                    for seq, eid in rows:
                        ev = by_key.pop((gate, seq), None)
                        if ev is None:
                            continue
                        if ev.eid == eid:
                            repeats += 1
                        else:
                            odd.append((ev, eid))
                fresh = list(by_key.values())
                conn.executemany(_INSERT_EVENT, (event_row(ev, now) for ev in fresh))
                cells: Counter[tuple[str, str, int, str, str]] = Counter()
                admits: Counter[tuple[str, str, int, str, str]] = Counter()
                people: Counter[tuple[str, str, int, str, str]] = Counter()
                sites: dict[str, str] = {}
                phs: set[str] = set()
                for ev in fresh:
                    key = count_key(ev)
                    cells[key] += 1
                    sites[ev.gate] = ev.site
                    if ev.verdict == "admit":
                        admits[key] += 1
                        people[key] += ev.party
                        if ev.ph is not None:
                            phs.add(ev.ph)
                conn.executemany(
                    _UPSERT_COUNTS,
                    [(*k, n, admits[k], people[k]) for k, n in sorted(cells.items())],
                )
                for ev, other in odd:
                    conn.execute(
                        "INSERT INTO anomalies (gate, seq, kind, detail, detected) "
                        "VALUES (?, ?, 'duplicate_seq', ?, ?)",
                        (ev.gate, ev.seq, f"eid {ev.eid} differs from stored {other}", now),
                    )
                self._record_seq_conflicts(conn, odd, now)
                conflicts = self._flag_conflicts(conn, phs, now) if phs else 0
                conn.executemany(
                    "INSERT INTO gates (gate, site, last_seen) VALUES (?, ?, ?) "
                    "ON CONFLICT (gate) DO UPDATE SET site = excluded.site, "
                    "last_seen = excluded.last_seen",
                    [(g, s, now) for g, s in sites.items()],
                )
                acks: dict[str, int] = {}
                proofs: dict[str, tuple[int, str]] = {}
                for gate in sorted(per_gate):
                    start, c = self._advance(conn, gate)
                    acks[gate], proofs[gate] = self._ack_and_proof(
                        conn, gate, start, c, min(per_gate[gate])
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot store events in {self.path}: {exc}") from None
        return AddResult(
            received=len(events),
            inserted=len(fresh),
            duplicates=repeats,
            anomalies=len(odd),
            conflicts=conflicts,
            acks=acks,
            proofs=proofs,
            seq_conflicts=tuple((ev.gate, ev.seq, ev.eid, other) for ev, other in odd),
        )

    def _flag_conflicts(self, conn: Any, phs: Any, now: float) -> int:
        conn.execute("DELETE FROM fresh_ph")
        conn.executemany("INSERT INTO fresh_ph (ph) VALUES (?)", [(p,) for p in phs])
        rows = conn.execute(_CONFLICTING).fetchall()
        by_ph: dict[str, list[tuple[str, str, str, int, float]]] = {}
        for ph, site, gate, seq, t in rows:
            by_ph.setdefault(ph, []).append((ph, site, gate, int(seq), float(t)))
        flagged = 0
        for ph, admissions in by_ph.items():
            marks = resolve_conflicts(admissions)
            keep = {(m[2], m[3]) for m in marks}
            for gate, seq in conn.execute(
                "SELECT gate, seq FROM conflicts WHERE ph = ?", (ph,)
            ).fetchall():
                if (gate, seq) not in keep:  # became the standing admission
                    conn.execute("DELETE FROM conflicts WHERE gate = ? AND seq = ?", (gate, seq))
            for m in marks:
                cur = conn.execute(
                    "INSERT INTO conflicts (ph, site, gate, seq, t, standing_gate, standing_seq,"
                    " standing_t, detected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (gate, seq) DO UPDATE SET standing_gate = excluded.standing_gate,"
                    " standing_seq = excluded.standing_seq, standing_t = excluded.standing_t"
                    " WHERE standing_gate <> excluded.standing_gate"
                    " OR standing_seq <> excluded.standing_seq",
                    (*m, now),
                )
                flagged += cur.rowcount
        return flagged

    def _advance(self, conn: sqlite3.Connection, gate: str) -> tuple[int, int]:
        row = conn.execute("SELECT contiguous FROM progress WHERE gate = ?", (gate,)).fetchone()
        start = int(row[0]) if row else 0

        def fetch(after: int, limit: int) -> list[int]:
            return [
                int(r[0])
                for r in conn.execute(
                    "SELECT seq FROM events WHERE gate = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (gate, after, limit),
                )
            ]

        c = advance_contiguous(start, fetch)
        if row is None or c != start:
            conn.execute(
                "INSERT INTO progress (gate, contiguous) VALUES (?, ?) "
                "ON CONFLICT (gate) DO UPDATE SET contiguous = excluded.contiguous",
                (gate, c),
            )
        return start, c

    def record_anomaly(
        self, *, gate: str, seq: int | None, kind: str, detail: str, now: float
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO anomalies (gate, seq, kind, detail, detected) VALUES (?, ?, ?, ?, ?)",
                (gate[:200], seq, kind, detail[:500], now),
            )

    # --- gates ----------------------------------------------------------------------------
    def set_gate_status(self, gate: str, state: str, t: float | None, *, now: float) -> None:
        since = t if t is not None else now
        with self._write() as conn:
            conn.execute(
                "INSERT INTO gates (gate, state, state_t, offline_since, last_seen) "
                "VALUES (?, ?, ?, CASE WHEN ? = 'offline' THEN ? END, ?) "
                "ON CONFLICT (gate) DO UPDATE SET state = excluded.state, "
                "state_t = excluded.state_t, offline_since = CASE "
                "  WHEN excluded.state = 'online' THEN NULL "
                "  WHEN gates.state = 'offline' AND gates.offline_since IS NOT NULL "
                "    THEN gates.offline_since "
                "  ELSE excluded.offline_since END",
                (gate, state, t, state, since, now),
            )

    def set_gate_health(self, gate: str, health: Mapping[str, Any], *, now: float) -> None:
        t = health.get("t")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO gates (gate, health, health_t) VALUES (?, ?, ?) "
                "ON CONFLICT (gate) DO UPDATE SET health = excluded.health, "
                "health_t = excluded.health_t",
                (gate, dumps_health(health), t if isinstance(t, (int, float)) else now),
            )

    # --- documents ------------------------------------------------------------------------
    def add_document(
        self, *, kind: str, version: int, raw: bytes, summary: str, now: float
    ) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO documents (kind, version, raw, summary, size, received) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (kind, version, bytes(raw), summary[:500], len(raw), now),
            )
            return cur.rowcount == 1

    # --- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._wlock, self._rlock:
            if self._closed:
                return
            self._closed = True
            self._w.close()
            self._r.close()
            if self._lockfile is not None:
                os.close(self._lockfile)
                self._lockfile = None
