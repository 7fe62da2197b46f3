"""The store contract, run against SQLite and the real PostgreSQL alike."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest
from central_helpers import SLOT, make_event, ph_of

from central.errors import StoreError
from central.store import Store, open_store


def totals(store: Store) -> dict[str, int]:
    rows = store.counts()
    return {
        "events": sum(r.events for r in rows),
        "admits": sum(r.admits for r in rows),
        "admitted": sum(r.admitted for r in rows),
    }


def test_events_stored_once_and_counted_exactly(store: Store) -> None:
    evs = [make_event("g1", s, party=2) for s in range(1, 101)]
    first = store.add_events(evs, now=1.0)
    assert (first.inserted, first.duplicates, first.anomalies) == (100, 0, 0)
    assert first.acks == {"g1": 100}
    again = store.add_events(evs[40:60] + evs[40:45], now=2.0)
    assert (again.inserted, again.duplicates, again.anomalies) == (0, 25, 0)
    assert again.acks == {"g1": 100}
    assert store.event_count() == 100
    assert totals(store) == {"events": 100, "admits": 100, "admitted": 200}
    assert [s for s, _ in store.stored_keys("g1")] == list(range(1, 101))


def test_counts_per_site_gate_slot_type_and_trip(store: Store) -> None:
    evs = [
        make_event("g1", 1, party=3, ptype="umrah"),
        make_event("g1", 2, party=1, ptype="rawdah"),
        make_event("g1", 3, verdict="deny", party=5),  # denies admit nobody
        make_event("g2", 1, site="bus", party=2, trip="T7", mode="boarding", ptype="bus"),
        make_event("g2", 2, site="bus", party=1, trip="T7", mode="boarding", ptype="bus"),
        make_event("g2", 3, site="bus", party=4, trip="T8", mode="boarding", ptype="bus",
                   slot=SLOT + 3600),
        make_event("g3", 1, slot=None, ptype=None, party=1),
    ]
    store.add_events(evs, now=1.0)
    cells = {(r.site, r.gate, r.slot, r.ptype, r.trip): (r.events, r.admits, r.admitted)
             for r in store.counts()}
    assert cells == {
        ("haram", "g1", SLOT, "umrah", None): (2, 1, 3),
        ("haram", "g1", SLOT, "rawdah", None): (1, 1, 1),
        ("bus", "g2", SLOT, "bus", "T7"): (2, 2, 3),
        ("bus", "g2", SLOT + 3600, "bus", "T8"): (1, 1, 4),
        ("haram", "g3", None, None, None): (1, 1, 1),
    }
    gates = {g.gate: g for g in store.gates()}
    assert gates["g2"].site == "bus" and gates["g2"].stored == 3


def test_duplicate_seq_with_another_eid_is_an_anomaly_not_counted(store: Store) -> None:
    original = make_event("g1", 1, party=1)
    store.add_events([original], now=1.0)
    impostor = make_event("g1", 1, party=9)  # same (gate, seq), different eid
    twin = make_event("g1", 2, party=1)
    twin_impostor = make_event("g1", 2, party=7)
    result = store.add_events([impostor, twin, twin_impostor], now=2.0)
    assert (result.inserted, result.anomalies) == (1, 2)
    assert totals(store)["admitted"] == 2
    kept = dict(store.stored_keys("g1"))
    assert kept == {1: original.eid, 2: twin.eid}
    assert store.anomaly_count() == 2
    assert {a.kind for a in store.anomalies()} == {"duplicate_seq"}


def test_contiguous_seq_stops_at_the_first_gap(store: Store) -> None:
    store.add_events([make_event("g1", s) for s in (1, 2, 3, 5, 6)], now=1.0)
    assert store.contiguous_seq("g1") == 3
    result = store.add_events([make_event("g1", 4)], now=2.0)
    assert result.acks == {"g1": 6}
    assert store.contiguous_seq("g1") == 6
    assert store.contiguous_seq("nobody") == 0
    # a gate whose seq 1 is missing acknowledges nothing yet
    assert store.add_events([make_event("g2", 2)], now=3.0).acks == {"g2": 0}


def test_same_permit_at_two_gates_is_a_conflict_earliest_stands(store: Store) -> None:
    ph = ph_of(1)
    store.add_events([make_event("g1", 1, ph=ph, t=SLOT + 100)], now=1.0)
    assert store.conflicts() == []
    r = store.add_events([make_event("g2", 1, ph=ph, t=SLOT + 200)], now=2.0)
    assert r.conflicts == 1
    [c] = store.conflicts()
    assert (c.gate, c.standing_gate, c.standing_t) == ("g2", "g1", SLOT + 100)
    # A third gate reports an EARLIER admission (it was offline): it now stands.
    store.add_events([make_event("g3", 1, ph=ph, t=SLOT + 50)], now=3.0)
    flagged = {(c.gate, c.standing_gate) for c in store.conflicts()}
    assert flagged == {("g1", "g3"), ("g2", "g3")}
    assert store.conflict_count() == 2
    # Re-entry at the same gate and denials are not cross-gate conflicts.
    other = ph_of(2)
    store.add_events([make_event("g1", 2, ph=other), make_event("g1", 3, ph=other),
                      make_event("g2", 2, ph=other, verdict="deny")], now=4.0)
    assert {c.ph for c in store.conflicts()} == {ph}
    # Every admission is still counted: the conflict is for review, not a recount.
    assert totals(store)["admits"] == 5


def test_gate_status_health_and_offline_since(store: Store) -> None:
    store.set_gate_status("g1", "online", 10.0, now=10.0)
    store.set_gate_status("g1", "offline", None, now=20.0)  # the Last Will has no time
    store.set_gate_status("g1", "offline", 25.0, now=25.0)  # still offline: since stays
    store.set_gate_health("g1", {"t": 21.0, "backlog": 42, "clock": "beacon"}, now=21.0)
    [g] = store.gates()
    assert (g.state, g.offline_since, g.health["backlog"], g.health["clock"]) == (
        "offline", 20.0, 42, "beacon")
    store.set_gate_status("g1", "online", 30.0, now=30.0)
    [g] = store.gates()
    assert (g.state, g.offline_since) == ("online", None)


def test_documents_kept_once_per_version(store: Store) -> None:
    assert store.add_document(kind="trust_list", version=1, raw=b"a", summary="s", now=1.0)
    assert not store.add_document(kind="trust_list", version=1, raw=b"b", summary="s", now=2.0)
    assert store.add_document(kind="trust_list", version=2, raw=b"c", summary="t", now=3.0)
    assert store.latest_document("trust_list") == b"c"
    assert [d.version for d in store.documents("trust_list")] == [2, 1]
    assert store.latest_document("revocation_snapshot") is None


def test_two_connections_storing_the_same_events_concurrently(store_url: str) -> None:
    """Two workers race on overlapping batches: every event once, counts exact."""
    evs = {g: [make_event(g, s, party=2) for s in range(1, 1201)] for g in ("g1", "g2", "g3")}
    batches = [evs[g][i:i + 200] for g in evs for i in range(0, 1200, 200)]
    errors: list[BaseException] = []

    def work(order: list[list[object]]) -> None:
        try:
            with open_store(store_url) as s:
                for b in order:
                    s.add_events(b, now=1.0)  # type: ignore[arg-type]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(list(batches),)),
               threading.Thread(target=work, args=(list(reversed(batches)),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with open_store(store_url) as s:
        assert totals(s) == {"events": 3600, "admits": 3600, "admitted": 7200}
        assert {g: s.contiguous_seq(g) for g in evs} == {"g1": 1200, "g2": 1200, "g3": 1200}


def test_closed_store_refuses_and_close_is_idempotent(store_url: str) -> None:
    s = open_store(store_url)
    s.close()
    s.close()
    with pytest.raises(StoreError):
        s.add_events([make_event("g1", 1)], now=1.0)


@pytest.mark.postgres
def test_postgres_store_reconnects_after_losing_its_session(postgres_url: str) -> None:
    import psycopg

    with open_store(postgres_url) as s, psycopg.connect(postgres_url, autocommit=True) as admin:
        s.add_events([make_event("g1", 1)], now=1.0)
        assert s.event_count() == 1  # the reading session exists before the kill too
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        batch = [make_event("g1", 2), make_event("g1", 3)]
        with contextlib.suppress(StoreError):  # may notice the dead session; keeps nothing
            s.add_events(batch, now=2.0)
        result = s.add_events(batch, now=3.0)  # the aggregator's retry
        assert result.acks == {"g1": 3}
        assert totals(s)["events"] == 3
        assert s.event_count() == 3


def test_workers_opening_a_new_sqlite_store_at_once(tmp_path: Path) -> None:
    """Switching a fresh file to WAL from two connections at once used to fail with
    'database is locked' (about 1 in 100 tries of three); openers now take turns."""
    errors: list[str] = []

    def open_once(url: str) -> None:
        try:
            with open_store(url) as s:
                s.event_count()
        except StoreError as exc:
            errors.append(str(exc))

    for i in range(40):
        url = f"sqlite:///{tmp_path}/race{i}.db"
        threads = [threading.Thread(target=open_once, args=(url,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
