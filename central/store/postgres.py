"""The PostgreSQL store (``postgresql://`` URLs), for sites with many gates and workers.

Bulk path: one ``COPY`` of the batch into a session-private staging table, then one
``INSERT ... SELECT ... ON CONFLICT (gate, seq) DO NOTHING`` whose ``RETURNING`` rows
feed the counts upsert in the same statement, so only newly stored events are
counted, whichever worker stores them. Workers COPY in parallel but take one
transaction-scoped advisory lock before touching shared rows, so the contiguous-seq
walk and the cross-gate conflict check of each batch see every batch stored before
it (two overlapping transactions would each miss the other's rows). Query shapes
avoid joins whose plan depends on fresh statistics (see ``_CONFLICTING``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from central.errors import StoreError
from central.store.base import (
    EVENT_COLUMNS,
    AddResult,
    SqlStore,
    advance_contiguous,
    dedupe,
    dumps_health,
    event_row,
    resolve_conflicts,
)
from sync.schema import GateEvent

_SCHEMA_LOCK = 0x6761_7465  # advisory lock id: concurrent CREATE IF NOT EXISTS can collide
_WRITE_LOCK = 0x6761_7467

# Identifier columns compare bytewise (COLLATE "C"): no locale calls in any index.
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    gate TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, site TEXT COLLATE "C" NOT NULL,
    eid TEXT NOT NULL, t DOUBLE PRECISION NOT NULL, tc TEXT NOT NULL, kind TEXT NOT NULL,
    verdict TEXT NOT NULL, mode TEXT NOT NULL, reason TEXT, ph TEXT COLLATE "C",
    ptype TEXT COLLATE "C", slot BIGINT, slot_end BIGINT, party INTEGER NOT NULL,
    trip TEXT COLLATE "C", note TEXT, flags TEXT NOT NULL,
    received DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (gate, seq)
);
CREATE INDEX IF NOT EXISTS events_ph ON events (ph) WHERE verdict = 'admit' AND ph IS NOT NULL;
CREATE TABLE IF NOT EXISTS counts (
    site TEXT COLLATE "C" NOT NULL, gate TEXT COLLATE "C" NOT NULL, slot BIGINT NOT NULL,
    ptype TEXT COLLATE "C" NOT NULL, trip TEXT COLLATE "C" NOT NULL, events BIGINT NOT NULL,
    admits BIGINT NOT NULL, admitted BIGINT NOT NULL,
    PRIMARY KEY (site, gate, slot, ptype, trip)
);
CREATE TABLE IF NOT EXISTS progress (gate TEXT COLLATE "C" PRIMARY KEY, contiguous BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts (
    gate TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, ph TEXT COLLATE "C" NOT NULL,
    site TEXT COLLATE "C" NOT NULL, t DOUBLE PRECISION NOT NULL,
    standing_gate TEXT COLLATE "C" NOT NULL, standing_seq BIGINT NOT NULL,
    standing_t DOUBLE PRECISION NOT NULL, detected DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (gate, seq)
);
CREATE INDEX IF NOT EXISTS conflicts_ph ON conflicts (ph);
CREATE TABLE IF NOT EXISTS anomalies (
    id BIGSERIAL PRIMARY KEY, gate TEXT COLLATE "C" NOT NULL, seq BIGINT, kind TEXT NOT NULL,
    detail TEXT NOT NULL, detected DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS gates (
    gate TEXT COLLATE "C" PRIMARY KEY, site TEXT, state TEXT, state_t DOUBLE PRECISION,
    offline_since DOUBLE PRECISION, health TEXT, health_t DOUBLE PRECISION,
    last_seen DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, version BIGINT NOT NULL, raw BYTEA NOT NULL, summary TEXT NOT NULL,
    size INTEGER NOT NULL, received DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, version)
);
CREATE TABLE IF NOT EXISTS seq_alarms (
    gate TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, eid TEXT NOT NULL,
    stored_eid TEXT NOT NULL, body TEXT NOT NULL, first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL, seen BIGINT NOT NULL, resolved DOUBLE PRECISION,
    resolution TEXT, PRIMARY KEY (gate, seq, eid)
);
CREATE TABLE IF NOT EXISTS quarantine (
    gate TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, eid TEXT NOT NULL, body TEXT NOT NULL,
    reason TEXT NOT NULL, quarantined DOUBLE PRECISION NOT NULL, PRIMARY KEY (gate, seq, eid)
);
"""

_COLS = ", ".join(EVENT_COLUMNS)
_INSERT_AND_COUNT = f"""
WITH ins AS (
    INSERT INTO events ({_COLS}) SELECT {_COLS} FROM staging
    ON CONFLICT (gate, seq) DO NOTHING
    RETURNING site, gate, slot, ptype, trip, verdict, party
), c AS (
    INSERT INTO counts (site, gate, slot, ptype, trip, events, admits, admitted)
    SELECT site, gate, COALESCE(slot, -1), COALESCE(ptype, ''), COALESCE(trip, ''), count(*),
           count(*) FILTER (WHERE verdict = 'admit'),
           COALESCE(sum(party) FILTER (WHERE verdict = 'admit'), 0)
    FROM ins GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (site, gate, slot, ptype, trip) DO UPDATE SET
        events = counts.events + EXCLUDED.events, admits = counts.admits + EXCLUDED.admits,
        admitted = counts.admitted + EXCLUDED.admitted
)
SELECT count(*) FROM ins
"""
# Array parameters rather than joins with the staging table: on a young database the
# planner believes ``events`` is empty and nests loops over it (measured 20 s for the
# first 500-event batch); with ``= ANY(array)`` the worst plan is one scan of events.
_CONFLICTING = """
SELECT ph FROM events WHERE verdict = 'admit' AND ph = ANY(%s::text[])
GROUP BY ph HAVING count(DISTINCT gate) > 1
"""
_ADMISSIONS = """
SELECT ph, site, gate, seq, t FROM events WHERE verdict = 'admit' AND ph = ANY(%s::text[])
"""
_AHEAD_LIMIT = 4096
_AHEAD = """
SELECT p.gate, s.seq
FROM unnest(%s::text[], %s::bigint[]) AS p(gate, contiguous)
CROSS JOIN LATERAL (
    SELECT e.seq FROM events e WHERE e.gate = p.gate AND e.seq > p.contiguous
    ORDER BY e.seq LIMIT %s
) s
ORDER BY p.gate, s.seq
"""
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


class PostgresStore(SqlStore):
    """Event store on PostgreSQL; several worker processes may share one database."""

    pipelined = True

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self._timeout = connect_timeout_s
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._closed = False
        self._w: psycopg.Connection[Any] | None = None
        self._r: psycopg.Connection[Any] | None = None
        self._staging_ready = False
        with self._wlock:
            conn = self._writer()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(SCHEMA)

    # --- connections ----------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            # prepare_threshold=None: a statement prepared while the tables were empty keeps
            # its generic plan (a sequential scan) for ever; measured 30x slower at 50k rows.
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._timeout)),
                prepare_threshold=None,
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {_line(exc)}") from None

    def _writer(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError("store is closed")
        if self._w is None or self._w.closed or self._w.broken:
            self._w = self._connect()
            self._staging_ready = False  # temp tables die with their session
        return self._w

    def _ensure_staging(self, conn: psycopg.Connection[Any]) -> None:
        if not self._staging_ready:
            # Emptied in place at every COMMIT: cheaper than a TRUNCATE per batch, which
            # gives the table a new file each time (measured ~13% of a 500-event batch).
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staging (LIKE events) ON COMMIT DELETE ROWS"
            )
            self._staging_ready = True

    @contextmanager
    def _reader(self) -> Iterator[psycopg.Connection[Any]]:
        with self._rlock:
            if self._closed:
                raise StoreError("store is closed")
            if self._r is None or self._r.closed or self._r.broken:
                self._r = self._connect()
            try:
                yield self._r
            except psycopg.Error as exc:
                raise StoreError(f"cannot read PostgreSQL store: {_line(exc)}") from None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # The shared queries use "?"; none holds a literal question mark.
        return self._rows(sql.replace("?", "%s"), params)

    def _x(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cur = conn.execute(sql.replace("?", "%s"), params)
        return list(cur.fetchall()) if cur.description is not None else []

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        for attempt in (1, 2):
            try:
                with self._reader() as conn:
                    return conn.execute(sql, params).fetchall()
            except StoreError:
                # A session killed while idle (server restart) is noticed on first use:
                # one fresh connection and the read is answered after all.
                if attempt == 2 or self._r is None or not self._r.broken:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        with self._wlock:
            conn = self._writer()
            try:
                with conn.transaction():
                    yield conn
            except psycopg.Error as exc:
                raise StoreError(f"cannot write PostgreSQL store: {_line(exc)}") from exc

    # --- events ---------------------------------------------------------------------------
    def add_events(self, events: Sequence[GateEvent], *, now: float) -> AddResult:
        by_key, repeats, odd = dedupe(events)
        if not by_key:
            return AddResult(len(events), 0, repeats, 0, 0, {})
        for attempt in range(6):
            try:
                with self._wlock:
                    return self._add(by_key, repeats, list(odd), len(events), now)
            except _RETRYABLE:
                # Two workers upserting the same count cells: one lost; nothing of its
                # transaction stayed, so running it again is exact.
                time.sleep(0.01 * (attempt + 1))
            except psycopg.Error as exc:
                raise StoreError(f"cannot store events in PostgreSQL: {_line(exc)}") from exc
        raise StoreError("cannot store events in PostgreSQL: repeated deadlocks")

    def _add(
        self,
        by_key: dict[tuple[str, int], GateEvent],
        repeats: int,
        odd: list[tuple[GateEvent, str]],
        received: int,
        now: float,
    ) -> AddResult:
        conn = self._writer()
        self._ensure_staging(conn)
        gates = sorted({g for g, _ in by_key})
        sites = {ev.gate: ev.site for ev in by_key.values()}
        phs = sorted(
            {ev.ph for ev in by_key.values() if ev.ph is not None and ev.verdict == "admit"}
        )
        with conn.transaction():
            with conn.cursor() as cur, cur.copy(f"COPY staging ({_COLS}) FROM STDIN") as copy:
                for ev in by_key.values():
                    copy.write_row(event_row(ev, now))
            # One writer at a time from here to COMMIT (the staging COPY above runs in
            # parallel). The contiguous-seq walk and the conflict check must see every
            # batch stored before; two overlapping transactions would each miss the
            # other's rows and could leave an ack behind or a conflict unflagged. The
            # lock comes first, so writers cannot deadlock on count cells either.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            row = conn.execute(_INSERT_AND_COUNT).fetchone()
            inserted = int(row[0]) if row else 0
            odd_db = 0
            if inserted < len(by_key):
                per_gate: dict[str, list[int]] = {}
                for gate, seq in by_key:
                    per_gate.setdefault(gate, []).append(seq)
                for gate, seqs in per_gate.items():
                    for seq, stored in conn.execute(
                        "SELECT seq, eid FROM events WHERE gate = %s AND seq BETWEEN %s AND %s",
                        (gate, min(seqs), max(seqs)),
                    ).fetchall():
                        mine = by_key.get((gate, int(seq)))
                        if mine is not None and mine.eid != stored:
                            odd.append((mine, str(stored)))
                            odd_db += 1
            with conn.cursor() as cur:
                if odd:
                    cur.executemany(
                        "INSERT INTO anomalies (gate, seq, kind, detail, detected) "
                        "VALUES (%s, %s, 'duplicate_seq', %s, %s)",
                        [
                            (ev.gate, ev.seq, f"eid {ev.eid} differs from stored {other}", now)
                            for ev, other in odd
                        ],
                    )
                cur.executemany(
                    "INSERT INTO gates (gate, site, last_seen) VALUES (%s, %s, %s) "
                    "ON CONFLICT (gate) DO UPDATE SET site = EXCLUDED.site, "
                    "last_seen = GREATEST(gates.last_seen, EXCLUDED.last_seen)",
                    [(g, sites[g], now) for g in gates],
                )
            if odd:
                self._record_seq_conflicts(conn, odd, now)
            starts, contiguous = self._advance(conn, gates)
            lowest: dict[str, int] = {}
            for g, seq in by_key:
                lowest[g] = min(seq, lowest.get(g, seq))
            acks: dict[str, int] = {}
            proofs: dict[str, tuple[int, str]] = {}
            for g in gates:
                acks[g], proofs[g] = self._ack_and_proof(
                    conn, g, starts[g], contiguous[g], lowest[g]
                )
            conflicts = self._flag_conflicts(conn, phs, now) if phs else 0
        repeats += len(by_key) - inserted - odd_db
        return AddResult(
            received=received,
            inserted=inserted,
            duplicates=repeats,
            anomalies=len(odd),
            conflicts=conflicts,
            acks=acks,
            proofs=proofs,
            seq_conflicts=tuple((ev.gate, ev.seq, ev.eid, other) for ev, other in odd),
        )

    def _advance(
        self, conn: psycopg.Connection[Any], gates: list[str]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Walk each gate's stored seqs up from its last contiguous one (few round trips)."""
        start = {g: 0 for g in gates}
        start.update(
            (g, int(c)) for g, c in conn.execute(
                "SELECT gate, contiguous FROM progress WHERE gate = ANY(%s)", (gates,)
            ).fetchall()
        )
        ahead: dict[str, list[int]] = {g: [] for g in gates}
        for g, seq in conn.execute(
            _AHEAD, (gates, [start[g] for g in gates], _AHEAD_LIMIT)
        ):
            ahead[g].append(int(seq))
        acks: dict[str, int] = {}
        for g in gates:

            def fetch(after: int, limit: int, g: str = g) -> list[int]:
                if after == start[g]:
                    return ahead[g]  # the first chunk came with the batch query
                return [
                    int(r[0])
                    for r in conn.execute(
                        "SELECT seq FROM events WHERE gate = %s AND seq > %s "
                        "ORDER BY seq LIMIT %s",
                        (g, after, limit),
                    )
                ]

            acks[g] = advance_contiguous(start[g], fetch, chunk=_AHEAD_LIMIT)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO progress (gate, contiguous) VALUES (%s, %s) ON CONFLICT (gate) "
                "DO UPDATE SET contiguous = GREATEST(progress.contiguous, EXCLUDED.contiguous)",
                [(g, c) for g, c in acks.items() if c != start[g] or c == 0],
            )
        return start, acks

    def _flag_conflicts(self, conn: Any, phs: Any, now: float) -> int:
        hits = [r[0] for r in conn.execute(_CONFLICTING, (list(phs),)).fetchall()]
        if not hits:
            return 0
        rows = conn.execute(_ADMISSIONS, (hits,)).fetchall()
        by_ph: dict[str, list[tuple[str, str, str, int, float]]] = {}
        for ph, site, gate, seq, t in rows:
            by_ph.setdefault(ph, []).append((ph, site, gate, int(seq), float(t)))
        flagged = 0
        for ph, admissions in by_ph.items():
            marks = resolve_conflicts(admissions)
            keep = {(m[2], m[3]) for m in marks}
            for gate, seq in conn.execute(
                "SELECT gate, seq FROM conflicts WHERE ph = %s", (ph,)
            ).fetchall():
                if (gate, int(seq)) not in keep:
                    conn.execute(
                        "DELETE FROM conflicts WHERE gate = %s AND seq = %s", (gate, seq)
                    )
            for m in marks:
                cur = conn.execute(
                    "INSERT INTO conflicts (ph, site, gate, seq, t, standing_gate, standing_seq,"
                    " standing_t, detected) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (gate, seq) DO UPDATE SET"
                    " standing_gate = EXCLUDED.standing_gate,"
                    " standing_seq = EXCLUDED.standing_seq, standing_t = EXCLUDED.standing_t"
                    " WHERE conflicts.standing_gate <> EXCLUDED.standing_gate"
                    " OR conflicts.standing_seq <> EXCLUDED.standing_seq",
                    (*m, now),
                )
                flagged += cur.rowcount
        return flagged

    def record_anomaly(
        self, *, gate: str, seq: int | None, kind: str, detail: str, now: float
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO anomalies (gate, seq, kind, detail, detected) "
                "VALUES (%s, %s, %s, %s, %s)",
                (gate[:200], seq, kind, detail[:500], now),
            )

    # --- gates ----------------------------------------------------------------------------
    def set_gate_status(self, gate: str, state: str, t: float | None, *, now: float) -> None:
        since = t if t is not None else now
        with self._write() as conn:
            conn.execute(
                "INSERT INTO gates (gate, state, state_t, offline_since, last_seen) "
                "VALUES (%s, %s, %s, CASE WHEN %s = 'offline' THEN %s::double precision END, %s) "
                "ON CONFLICT (gate) DO UPDATE SET state = EXCLUDED.state, "
                "state_t = EXCLUDED.state_t, offline_since = CASE "
                "  WHEN EXCLUDED.state = 'online' THEN NULL "
                "  WHEN gates.state = 'offline' AND gates.offline_since IS NOT NULL "
                "    THEN gates.offline_since "
                "  ELSE EXCLUDED.offline_since END",
                (gate, state, t, state, since, now),
            )

    def set_gate_health(self, gate: str, health: Mapping[str, Any], *, now: float) -> None:
        t = health.get("t")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO gates (gate, health, health_t) VALUES (%s, %s, %s) "
                "ON CONFLICT (gate) DO UPDATE SET health = EXCLUDED.health, "
                "health_t = EXCLUDED.health_t",
                (gate, dumps_health(health), t if isinstance(t, (int, float)) else now),
            )

    # --- documents ------------------------------------------------------------------------
    def add_document(
        self, *, kind: str, version: int, raw: bytes, summary: str, now: float
    ) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO documents (kind, version, raw, summary, size, received) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (kind, version, bytes(raw), summary[:500], len(raw), now),
            )
            return cur.rowcount == 1

    # --- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._wlock, self._rlock:
            if self._closed:
                return
            self._closed = True
            for conn in (self._w, self._r):
                if conn is not None:
                    conn.close()
            self._w = self._r = None


def _line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
