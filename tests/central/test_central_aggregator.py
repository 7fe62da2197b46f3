"""The aggregator against a real Mosquitto: store, ack, refuse, share the load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from central_helpers import (
    Listener,
    SimGate,
    assert_exact,
    broker_config,
    make_event,
    uid,
    wait_for,
)

from central.aggregator import Aggregator
from central.store import Store, open_store
from sync import topics, wire

pytestmark = pytest.mark.broker


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/central.db") as s:
        yield s


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_gate_events_are_stored_acked_and_deleted_at_the_gate(
    broker: Any, sqlite_store: Store, tmp_path: Path, protocol: str
) -> None:
    gid = uid("g-e2e")
    gate = SimGate(tmp_path / "g-e2e.db", gid, broker.port, protocol=protocol)
    with Aggregator(store=sqlite_store, broker=broker_config(broker.port, protocol),
                    client_id=uid("agg-e2e")) as agg:
        wait_for(lambda: agg.connected, 30, "aggregator connected")
        gate.start()
        gate.admit(150, party=2)
        gate.admit(20, verdict="deny")
        wait_for(lambda: gate.backlog() == 0, 30, "the gate's outbox to drain on acks")
        assert sqlite_store.contiguous_seq(gid) == 170
        assert_exact(sqlite_store, [gate])
        assert agg.stats().events_inserted == 170
        # the gate's retained online status reached the store
        wait_for(lambda: any(g.state == "online" for g in sqlite_store.gates()
                             if g.gate == gid), 10, "online status")
    gate.close()


def test_mismatched_gate_and_garbage_are_refused_and_not_acked(
    broker: Any, sqlite_store: Store
) -> None:
    listener = Listener(broker.port, [topics.ack("g-victim")])
    try:
        with Aggregator(store=sqlite_store, broker=broker_config(broker.port),
                        client_id="agg-refuse") as agg:
            wait_for(lambda: agg.connected, 30, "aggregator connected")
            # gate "g-evil" publishes events claiming to be from g-victim, on its own topic
            forged = [make_event("g-victim", s) for s in (1, 2)]
            body = {"v": 1, "gate": "g-victim",
                    "events": [e.to_dict() for e in forged]}
            listener.publish(topics.events("g-evil"), json.dumps(body).encode())
            # right header, but the events inside name another gate
            inner = {"v": 1, "gate": "g-evil", "events": [e.to_dict() for e in forged]}
            listener.publish(topics.events("g-evil"), json.dumps(inner).encode())
            listener.publish(topics.events("g-evil"), b"\xff\xfe not json")
            listener.publish(topics.events("g-evil"), b"{" * 100_000)
            # an honest batch after the garbage is still stored and acknowledged
            honest = [make_event("g-victim", s) for s in (1, 2, 3)]
            listener.publish(topics.events("g-victim"), wire.encode_batch("g-victim", honest))
            wait_for(lambda: sqlite_store.contiguous_seq("g-victim") == 3, 10, "honest batch")
            wait_for(lambda: agg.stats().refused == 4, 10, "four refusals")
        kinds = sorted(a.kind for a in sqlite_store.anomalies())
        assert kinds == ["bad_batch", "bad_batch", "gate_mismatch", "gate_mismatch"]
        assert dict(sqlite_store.stored_keys("g-victim")) == {e.seq: e.eid for e in honest}
        assert sqlite_store.stored_keys("g-evil") == []
        wait_for(lambda: bool(listener.on(topics.ack("g-victim"))), 5, "ack")
        acks = {wire.decode_ack(p, "g-victim").seq for p in listener.on(topics.ack("g-victim"))}
        assert acks == {3}
    finally:
        listener.close()


def test_two_workers_share_the_subscription_without_double_counting(
    broker: Any, store_url: str, tmp_path: Path
) -> None:
    gates = [SimGate(tmp_path / f"gw{i}.db", uid(f"gw{i}"), broker.port) for i in range(3)]
    stores = [open_store(store_url), open_store(store_url)]
    workers = [
        Aggregator(store=s, broker=broker_config(broker.port), client_id=f"agg-share-{i}",
                   max_batch_events=1000)
        for i, s in enumerate(stores)
    ]
    try:
        for w in workers:
            w.start()
        wait_for(lambda: all(w.connected for w in workers), 30, "workers connected")
        for g in gates:
            g.start()
        for _ in range(10):
            for g in gates:
                g.admit(100, party=3)
        wait_for(lambda: all(g.backlog() == 0 for g in gates), 60, "all outboxes drained")
        shares = [w.stats().events_received for w in workers]
        assert all(n > 0 for n in shares), f"the broker did not split the load: {shares}"
        assert sum(w.stats().events_inserted for w in workers) == 3000
        assert_exact(stores[0], gates)
    finally:
        for w in workers:
            w.close()
        for s in stores:
            s.close()
        for g in gates:
            g.close()
