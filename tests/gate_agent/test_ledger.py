"""The ledger on real SQLite files: identity, reopening, corrupt files, invalid events."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate_agent.errors import LedgerError, LedgerMismatch
from gate_agent.ledger import Ledger

SLOT = 1_800_000_000


def admit(ledger: Ledger, ph: str, party: int = 1, **kw: object) -> int:
    ev = ledger.append(t=SLOT + 1.0, tc="synced", kind="scan", verdict="admit",
                       mode="entrance", ph=ph, ptype="umrah", slot=SLOT, party=party,
                       **kw)  # type: ignore[arg-type]
    return ev.seq


def test_reopen_keeps_everything_and_wal_full(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path, gate="g1", site="s") as led:
        assert admit(led, "a" * 32, 2) == 1
        assert admit(led, "a" * 32, 1) == 2
        mode = led.connection.execute("PRAGMA journal_mode").fetchone()[0]
        sync = led.connection.execute("PRAGMA synchronous").fetchone()[0]
        assert (mode, sync) == ("wal", 2)  # 2 = FULL
    with Ledger(path, gate="g1", site="s") as led:
        assert led.usage("a" * 32, SLOT).admitted == 3
        assert led.slot_admitted(SLOT) == 3
        assert led.totals() == (3, 0)
        assert admit(led, "b" * 32) == 3
        assert led.outbox_backlog() == 3


def test_close_twice_and_use_after_close(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite", gate="g1", site="s")
    led.close()
    led.close()
    with pytest.raises(LedgerError, match="closed"):
        admit(led, "a" * 32)


def test_ledger_of_another_gate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    Ledger(path, gate="g1", site="s").close()
    with pytest.raises(LedgerMismatch, match="belongs to gate g1"):
        Ledger(path, gate="g2", site="s")


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="not a usable SQLite database"):
        Ledger(path, gate="g1", site="s")
    assert path.read_bytes().startswith(b"this is not")  # never overwritten


def test_invalid_event_is_refused_and_nothing_written(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", gate="g1", site="s") as led:
        with pytest.raises(LedgerError, match="invalid"):
            led.append(t=1.0, tc="synced", kind="scan", verdict="admit", mode="entrance",
                       ph="not-a-hash", party=1)
        with pytest.raises(LedgerError):
            led.append(t=1.0, tc="sure", kind="scan", verdict="deny", mode="entrance")
        assert led.last_seq() == 0 and led.outbox_backlog() == 0
        assert admit(led, "c" * 32) == 1  # seq not burnt by the refusals


def test_trips_and_site_stream(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", gate="g1", site="s") as led:
        led.open_trip(trip_id="t1", bus="B1", route="r", departure=SLOT, seats=10, t=1.0,
                      tc="synced", mode="boarding")
        with pytest.raises(LedgerError, match="already open"):
            led.open_trip(trip_id="t2", bus="B1", route="r", departure=SLOT, seats=10,
                          t=1.0, tc="synced", mode="boarding")
        admit(led, "d" * 32, 3, trip="t1")
        trip = led.current_trip()
        assert trip is not None and trip.boarded == 3
        _ev, row = led.close_trip(t=2.0, tc="synced", mode="boarding")
        assert row["closed_at"] == 2.0 and led.current_trip() is None
        assert [r["party"] for r in led.manifest("t1")] == [3]
        assert led.add_site_used([("e" * 32, "g2", 1.0), ("f" * 32, "g1", 1.0)]) == 1
        assert led.used_elsewhere("e" * 32) and not led.used_elsewhere("f" * 32)


def test_read_only_ledger_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path, gate="g1", site="s") as led:
        admit(led, "a" * 32)
    led = Ledger(path, gate="g1", site="s")
    led.connection.execute("PRAGMA query_only = ON")  # as if the card went read-only
    with pytest.raises(LedgerError):
        admit(led, "b" * 32)
    led.close()


def test_one_process_per_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with (
        Ledger(path, gate="g1", site="s"),
        pytest.raises(LedgerError, match="in use by another gatepass process"),
    ):
        Ledger(path, gate="g1", site="s")
    Ledger(path, gate="g1", site="s").close()  # free again once closed
