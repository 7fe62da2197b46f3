"""Faults against a real Mosquitto: afterwards the centre equals the gates' ledgers exactly."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from central_helpers import SimGate, assert_exact, broker_config, uid, wait_for

from central.aggregator import Aggregator
from central.store import open_store

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def stream(gates: list[SimGate], rounds: int, per_round: int, *,
           at: int = -1, fault: Callable[[], None] | None = None) -> None:
    """Admit at every gate in rounds; start ``fault`` in its own thread at round ``at``,
    so the gates keep admitting while it happens."""
    pause = threading.Event()
    faults: list[threading.Thread] = []
    for r in range(rounds):
        if r == at and fault is not None:
            t = threading.Thread(target=fault, name="fault")
            t.start()
            faults.append(t)
        for g in gates:
            g.admit(per_round, party=1 + r % 3)
        pause.wait(0.05)
    for t in faults:
        t.join(60)
        assert not t.is_alive(), "the fault did not finish"


def test_broker_sigkill_mid_stream_then_restart(
    mosquitto_factory: Any, store_url: str, tmp_path: Path
) -> None:
    b = mosquitto_factory(workdir=tmp_path / "mq")
    b.start()
    gates = [SimGate(tmp_path / f"bk{i}.db", uid(f"bk{i}"), b.port) for i in range(2)]
    with open_store(store_url) as store, Aggregator(
        store=store, broker=broker_config(b.port), client_id="agg-bk"
    ) as agg:
        wait_for(lambda: agg.connected, 30, "aggregator connected")
        for g in gates:
            g.start()

        def kill_and_restart() -> None:
            b.kill()  # SIGKILL: no goodbye, in-memory state gone
            threading.Event().wait(1.0)
            b.start()  # same port, same persistence directory

        stream(gates, rounds=24, per_round=20, at=8, fault=kill_and_restart)
        wait_for(lambda: all(g.backlog() == 0 for g in gates), 60, "outboxes drained")
        assert_exact(store, gates)
        assert sum(len(g.ledger()) for g in gates) == 960
    for g in gates:
        g.close()


def test_aggregator_restart_mid_stream(broker: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/central.db"
    gates = [SimGate(tmp_path / f"ar{i}.db", uid(f"ar{i}"), broker.port) for i in range(2)]
    holder: dict[str, Aggregator] = {}

    def start() -> None:
        agg = Aggregator(store=open_store(url), broker=broker_config(broker.port),
                         client_id="agg-restart")
        agg.start()
        holder["agg"] = agg
        wait_for(lambda: agg.connected, 30, "aggregator connected")

    def restart() -> None:
        old = holder["agg"]
        old.close()
        old._store.close()  # the process dies with its connection
        threading.Event().wait(0.5)
        start()

    start()
    try:
        for g in gates:
            g.start()
        stream(gates, rounds=20, per_round=20, at=7, fault=restart)
        wait_for(lambda: all(g.backlog() == 0 for g in gates), 60, "outboxes drained")
        with open_store(url) as check:
            assert_exact(check, gates)
    finally:
        holder["agg"].close()
        holder["agg"]._store.close()
        for g in gates:
            g.close()


def test_long_gate_outage_while_admitting(broker: Any, tmp_path: Path) -> None:
    gate = SimGate(tmp_path / "out.db", uid("out1"), broker.port)
    other = SimGate(tmp_path / "out2.db", uid("out2"), broker.port)
    with open_store(f"sqlite:///{tmp_path}/central.db") as store, Aggregator(
        store=store, broker=broker_config(broker.port), client_id="agg-outage"
    ) as agg:
        wait_for(lambda: agg.connected, 30, "aggregator connected")
        gate.start()
        other.start()
        gate.admit(200)
        wait_for(lambda: gate.backlog() == 0, 30, "first events acknowledged")
        gate.cut()  # the gate loses the centre for a long time...
        wait_for(lambda: _state(store, gate.gate) == "offline", 10, "gate seen offline")
        for _ in range(20):  # ...and keeps admitting, as does a gate still online
            gate.admit(60, party=2)
            other.admit(10)
        assert gate.backlog() == 1200
        wait_for(lambda: other.backlog() == 0, 30, "online gate drained")
        assert store.contiguous_seq(gate.gate) == 200
        gate.start()  # the network comes back: the backlog drains
        wait_for(lambda: gate.backlog() == 0, 60, "backlog drained after the outage")
        wait_for(lambda: _state(store, gate.gate) == "online", 10, "gate seen online")
        assert_exact(store, [gate, other])
    gate.close()
    other.close()


def _state(store: Any, gate: str) -> str | None:
    return next((g.state for g in store.gates() if g.gate == gate), None)
