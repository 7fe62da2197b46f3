"""The outbox shares the agent's transaction: both rows or neither."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sync_helpers import Ledger, make_event

from sync.errors import OutboxError, SyncError
from sync.outbox import Outbox


def test_rollback_leaves_nothing_commit_keeps_both(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = Ledger(db)
    conn = ledger.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO ledger VALUES (1, 'a')")
    Outbox.add(conn, make_event(1))
    conn.execute("ROLLBACK")
    with Outbox(db) as ob:
        assert ob.backlog() == 0
        assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO ledger VALUES (1, 'a')")
        Outbox.add(conn, make_event(1))
        # Not committed yet: the link's own connection must not see it.
        assert ob.backlog() == 0
        conn.execute("COMMIT")
        assert ob.backlog() == 1
        assert [e.seq for e in ob.pending(10)] == [1]
    ledger.close()


def test_failure_inside_the_transaction_rolls_back_both(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = Ledger(db)
    ledger.admit(1)
    conn = ledger.conn
    with pytest.raises(OutboxError):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO ledger VALUES (2, 'b')")
            Outbox.add(conn, make_event(1))  # seq 1 again: refused
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 1
    with Outbox(db) as ob:
        assert ob.backlog() == 1
    ledger.close()


def test_add_refuses_an_event_the_centre_would_refuse(tmp_path: Path) -> None:
    conn = sqlite3.connect(str(tmp_path / "x.db"))
    Outbox.ensure_schema(conn)
    with pytest.raises(OutboxError) as info:
        Outbox.add(conn, make_event(1, eid="not-hex"))
    assert isinstance(info.value, SyncError)
    assert conn.execute("SELECT COUNT(*) FROM sync_outbox").fetchone()[0] == 0
    conn.close()


def test_pending_delete_through_and_close_twice(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = Ledger(db)
    events = ledger.admit(10)
    ob = Outbox(db)
    assert ob.pending(3, after_seq=4) == events[4:7]
    assert [s for s, _ in ob.pending_raw(100, after_seq=2, through_seq=5)] == [3, 4, 5]
    assert ob.max_seq() == 10
    assert ob.delete_through(6) == 6
    assert ob.backlog() == 4 and ob.acked_through() == 6
    assert ob.delete_through(3) == 0 and ob.acked_through() == 6  # never goes back
    ob.close()
    ob.close()
    with pytest.raises(OutboxError):
        ob.backlog()
    ledger.close()


def test_corrupt_row_is_reported_not_skipped(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = Ledger(db)
    ledger.admit(3)
    ledger.conn.execute("UPDATE sync_outbox SET body = '{\"v\":1' WHERE seq = 2")
    with Outbox(db) as ob, pytest.raises(OutboxError, match="seq 2"):
        ob.pending(10)
    ledger.close()


def test_unopenable_path_raises_outbox_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError):
        Outbox(tmp_path / "missing-dir" / "ledger.db")
