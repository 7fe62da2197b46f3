"""The SQLite outbox: events waiting for the centre's acknowledgement.

The table lives in the agent's ledger database file. The agent writes each event with
:meth:`Outbox.add` on ITS connection inside ITS transaction, so the ledger row and the
outbox row commit together or not at all. The link opens its own :class:`Outbox` on
the same file (WAL, busy timeout) to read pending rows and delete acknowledged ones.
A row leaves the outbox only through :meth:`Outbox.apply_ack`, which the link calls on
the centre's acknowledgement (never on a broker PUBACK), and only when the ack names
the very event ids this outbox holds: an ack that covers a seq the centre stored with
another event id (a second device speaking as this gate) deletes nothing.
"""

from __future__ import annotations

import enum
import json
import re
import sqlite3
import threading
from pathlib import Path
from types import TracebackType
from typing import Final

from sync.errors import OutboxError
from sync.schema import EventInvalid, GateEvent
from sync.wire import Ack, eid_digest

TABLE: Final = "sync_outbox"
META: Final = "sync_outbox_meta"
BUSY_TIMEOUT_MS: Final = 10_000

_SCHEMA: Final = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " seq INTEGER PRIMARY KEY,"
    " gate TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " eid TEXT)",
    f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


_EID_RE: Final = re.compile(r"[0-9a-f]{32}")


class AckOutcome(enum.Enum):
    """What :meth:`Outbox.apply_ack` did with an ack."""

    APPLIED = "applied"  # rows deleted through ack.seq
    NOTHING = "nothing"  # names nothing new (already applied, empty range, no proof)
    AHEAD = "ahead"  # starts after a seq not acknowledged yet: keep it and wait
    STALE = "stale"  # starts at a seq already deleted here: unverifiable, wait for another
    MISMATCH = "mismatch"  # the centre holds other events than ours at those seqs


class Outbox:
    """Reader/deleter of the outbox for the link thread; ``add``/``ensure_schema`` for the agent.

    Thread-safe: the link thread and the agent (``backlog()``) may share one instance.
    """

    # --- the agent's side: its connection, its transaction ----------------------------------

    @staticmethod
    def ensure_schema(conn: sqlite3.Connection) -> None:
        """Create the outbox tables on the agent's connection (idempotent)."""
        try:
            for stmt in _SCHEMA:
                conn.execute(stmt)
            cols = {r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")}
            if "eid" not in cols:  # an outbox made before acks named event ids
                try:
                    conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN eid TEXT")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):  # another connection was first
                        raise
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot create the outbox tables: {exc}") from None

    @staticmethod
    def add(conn: sqlite3.Connection, event: GateEvent) -> None:
        """Queue ``event`` inside the caller's open transaction; the caller commits.

        The event is re-validated as the centre will see it, so an event the centre would
        refuse fails here, inside the agent's transaction, instead of blocking the queue.
        """
        try:
            body = event.to_dict()
            GateEvent.from_dict(body)
        except EventInvalid as exc:
            raise OutboxError(f"event seq {event.seq} is invalid: {exc}") from None
        try:
            conn.execute(
                f"INSERT INTO {TABLE} (seq, gate, body, eid) VALUES (?, ?, ?, ?)",
                (event.seq, event.gate, json.dumps(body, separators=(",", ":")), event.eid),
            )
        except sqlite3.IntegrityError:
            raise OutboxError(f"event seq {event.seq} is already in the outbox") from None
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot queue event seq {event.seq}: {exc}") from None

    # --- the link's side: its own connection ------------------------------------------------

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_ms / 1000, isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            # The agent commits admissions with its own durability settings; a lost delete
            # only means a duplicate send, which the centre absorbs.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self.ensure_schema(self._conn)
        except sqlite3.Error as exc:
            self.close()
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError("outbox is closed")
        return self._conn

    def pending(self, limit: int, after_seq: int = 0, through_seq: int | None = None
                ) -> list[GateEvent]:
        """Up to ``limit`` queued events with ``after_seq < seq [<= through_seq]``, by seq."""
        out: list[GateEvent] = []
        for seq, body in self.pending_raw(limit, after_seq, through_seq):
            try:
                out.append(GateEvent.from_dict(json.loads(body)))
            except (ValueError, TypeError) as exc:
                # Never skip a row silently: the link stops and says which one.
                raise OutboxError(f"outbox row seq {seq} is corrupt: {exc}") from None
        return out

    def pending_raw(self, limit: int, after_seq: int = 0, through_seq: int | None = None
                    ) -> list[tuple[int, str]]:
        """Like :meth:`pending` but the stored JSON bodies, unparsed (validated by ``add``).

        The link ships these as they are: parsing and re-encoding every event would cost
        more than the whole MQTT round trip when a large backlog drains.
        """
        hi = 2**63 - 1 if through_seq is None else through_seq
        with self._lock:
            try:
                rows = self._db().execute(
                    f"SELECT seq, body FROM {TABLE} WHERE seq > ? AND seq <= ? "
                    "ORDER BY seq LIMIT ?",
                    (after_seq, hi, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the outbox: {exc}") from None
        return [(int(seq), str(body)) for seq, body in rows]

    def backlog(self) -> int:
        """How many events wait for the centre's acknowledgement."""
        with self._lock:
            try:
                return int(self._db().execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot count the outbox: {exc}") from None

    def max_seq(self) -> int:
        """Highest queued seq, 0 when empty."""
        with self._lock:
            try:
                row = self._db().execute(f"SELECT MAX(seq) FROM {TABLE}").fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the outbox: {exc}") from None
        return int(row[0] or 0)

    def acked_through(self) -> int:
        """Highest seq the centre has acknowledged, as last recorded here (0 if never)."""
        with self._lock:
            try:
                row = self._db().execute(
                    f"SELECT value FROM {META} WHERE key = 'acked'"
                ).fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the outbox: {exc}") from None
        return int(row[0]) if row else 0

    def ids(self, first: int, last: int) -> list[tuple[int, str]]:
        """``(seq, eid)`` of the queued rows with ``first <= seq <= last``, by seq."""
        with self._lock:
            try:
                # Rows queued before the eid column existed: json_extract reads the body.
                rows = self._db().execute(
                    f"SELECT seq, COALESCE(eid, json_extract(body, '$.eid')) FROM {TABLE} "
                    "WHERE seq >= ? AND seq <= ? ORDER BY seq",
                    (first, last),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the outbox: {exc}") from None
        out = []
        for seq, eid in rows:
            if not isinstance(eid, str) or not _EID_RE.fullmatch(eid):
                raise OutboxError(f"outbox row seq {seq} has no valid event id")
            out.append((int(seq), eid))
        return out

    def apply_ack(self, ack: Ack) -> tuple[AckOutcome, int]:
        """Delete the rows an ack proves stored; return the outcome and the rows deleted.

        Applied only when the ack's range ``first..seq`` starts at the first
        unacknowledged seq and the ids this outbox holds for that whole range hash to the
        ack's digest (every seq present, in order). Anything else deletes nothing.
        """
        if not ack.names():
            return AckOutcome.NOTHING, 0
        assert ack.first is not None
        acked = self.acked_through()
        if ack.seq <= acked:
            return AckOutcome.NOTHING, 0
        if ack.first > acked + 1:
            return AckOutcome.AHEAD, 0
        if ack.first <= acked:
            return AckOutcome.STALE, 0
        rows = self.ids(ack.first, ack.seq)
        if [s for s, _ in rows] != list(range(ack.first, ack.seq + 1)):
            # Rows are only ever deleted from the bottom: a missing one is a seq above our
            # newest, so the centre holds events this gate never wrote.
            return AckOutcome.MISMATCH, 0
        if eid_digest(e for _, e in rows) != ack.digest:
            return AckOutcome.MISMATCH, 0
        return AckOutcome.APPLIED, self.delete_through(ack.seq)

    def delete_through(self, seq: int) -> int:
        """Delete every row with ``seq <= seq``; return how many went. Only :meth:`apply_ack`
        (after checking the ack's digest) and tests call this."""
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    n = db.execute(f"DELETE FROM {TABLE} WHERE seq <= ?", (seq,)).rowcount
                    db.execute(
                        f"INSERT INTO {META} (key, value) VALUES ('acked', ?) ON CONFLICT(key)"
                        " DO UPDATE SET value = max(value, excluded.value)",
                        (seq,),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot delete acknowledged rows: {exc}") from None
        return int(n)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
