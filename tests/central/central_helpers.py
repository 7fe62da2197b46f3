"""Test helpers for central: event factories and a protocol-following gate publisher."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from waits import wait_for  # noqa: F401  (re-exported: the central tests import it here)

from sync.schema import GateEvent

SLOT = 1_767_225_600  # 2026-01-01T00:00Z


def ph_of(n: int) -> str:
    return hashlib.sha256(f"permit-{n}".encode()).hexdigest()[:32]


def make_event(
    gate: str,
    seq: int,
    *,
    site: str = "haram",
    party: int = 1,
    verdict: str = "admit",
    ph: str | None = None,
    ptype: str | None = "umrah",
    slot: int | None = SLOT,
    trip: str | None = None,
    t: float | None = None,
    eid: str | None = None,
    mode: str = "entrance",
) -> GateEvent:
    return GateEvent(
        gate=gate,
        site=site,
        seq=seq,
        eid=eid or uuid.uuid4().hex,
        t=t if t is not None else SLOT + seq,
        tc="synced",
        kind="scan",
        verdict=verdict,
        mode=mode,
        reason=None if verdict == "admit" else "expired",
        ph=ph if ph is not None else uuid.uuid4().hex,
        ptype=ptype,
        slot=slot,
        slot_end=None if slot is None else slot + 3600,
        party=party if verdict == "admit" else 0,
        trip=trip,
    )


class SimGate:
    """A gate for tests: ledger row + outbox row in one SQLite transaction, shipped by
    engineer S1's :class:`sync.link.GateLink` (acks delete outbox rows)."""

    def __init__(self, path: Path, gate: str, port: int, *, site: str = "haram",
                 protocol: str = "5", ack_timeout_s: float = 2.0) -> None:
        from sync.config import BrokerConfig
        from sync.outbox import Outbox

        self.gate, self.site, self.path, self.port = gate, site, path, port
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=10,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: survives a process kill (what these tests do), not a power cut; keeps
        # thousands of one-row admissions cheap on a loaded machine.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, eid TEXT, "
            "verdict TEXT, party INTEGER)"
        )
        Outbox.ensure_schema(self.conn)
        self.broker = BrokerConfig(
            port=port, protocol=protocol, ack_timeout_s=ack_timeout_s,  # type: ignore[arg-type]
            reconnect_min_s=0.1, reconnect_max_s=1.0, keepalive=5, health_period_s=1.0,
        )
        self.outbox = Outbox(path)
        self.link: Any = None
        self.lock = threading.Lock()

    def start(self) -> SimGate:
        from sync.link import GateLink

        self.link = GateLink(gate=self.gate, outbox=self.outbox, broker=self.broker)
        self.link.start()
        return self

    def cut(self) -> None:
        """Stop shipping (a network cut from the gate's point of view); admissions go on."""
        if self.link is not None:
            self.link.close()
            self.link = None

    def admit(self, n: int = 1, **kw: Any) -> list[GateEvent]:
        from sync.outbox import Outbox

        out = []
        with self.lock:
            for _ in range(n):
                seq = int(self.conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM ledger").fetchone()[0]) + 1
                ev = make_event(self.gate, seq, site=self.site, **kw)
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("INSERT INTO ledger VALUES (?, ?, ?, ?)",
                                  (ev.seq, ev.eid, ev.verdict, ev.party))
                Outbox.add(self.conn, ev)
                self.conn.execute("COMMIT")
                out.append(ev)
        return out

    def ledger(self) -> dict[int, str]:
        with self.lock:
            return dict(self.conn.execute("SELECT seq, eid FROM ledger").fetchall())

    def admitted(self) -> int:
        with self.lock:
            return int(self.conn.execute(
                "SELECT COALESCE(SUM(party), 0) FROM ledger WHERE verdict = 'admit'"
            ).fetchone()[0])

    def backlog(self) -> int:
        return int(self.outbox.backlog())

    def close(self) -> None:
        self.cut()
        self.outbox.close()
        self.conn.close()




def broker_config(port: int, protocol: str = "5") -> Any:
    from sync.config import BrokerConfig

    return BrokerConfig(port=port, protocol=protocol, reconnect_min_s=0.1,  # type: ignore[arg-type]
                        reconnect_max_s=1.0, keepalive=5)


def assert_exact(store: Any, gates: list[SimGate]) -> None:
    """Central totals equal the sum of the gates' ledgers, event by event."""
    for g in gates:
        assert dict(store.stored_keys(g.gate)) == g.ledger(), f"gate {g.gate} differs"
    rows = store.counts()
    assert sum(r.events for r in rows) == sum(len(g.ledger()) for g in gates)
    assert sum(r.admitted for r in rows) == sum(g.admitted() for g in gates)


class Listener:
    """A plain MQTT client that records what the centre publishes."""

    def __init__(self, port: int, subs: list[str]) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        for s in subs:
            self.client.subscribe(s, qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str, *, stale: bool = False) -> list[bytes]:
        """Payloads received on ``topic``; without ``stale``, not the retained copies the
        broker hands over at subscribe time (earlier tests leave some behind)."""
        with self.lock:
            return [p for t, p, r in self.messages if t == topic and (stale or not r)]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def uid(prefix: str) -> str:
    """A gate id no earlier test used: the session broker keeps retained acks per gate id,
    and a fresh ledger under an old id would take them as its own."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
