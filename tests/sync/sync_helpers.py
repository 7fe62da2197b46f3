"""Test helpers for sync: event factory, a ledger writer, and a tiny fake centre.

The fake centre talks through the real broker like the aggregator does: it subscribes
to every gate's events, "stores" them in a dict (idempotent on (gate, seq)), and
publishes a retained ack with the highest contiguous seq stored per gate.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from sync import topics, wire
from sync.errors import TopicError, WireError
from sync.outbox import Outbox
from sync.schema import GateEvent


def make_event(seq: int, gate: str = "g1", site: str = "s1", **kw: object) -> GateEvent:
    base: dict[str, object] = dict(
        gate=gate, site=site, seq=seq, eid=uuid.uuid4().hex, t=1_700_000_000.0 + seq,
        tc="synced", kind="scan", verdict="admit", mode="entrance", ph=uuid.uuid4().hex,
        ptype="umrah", slot=1_700_000_000, party=1,
    )
    base.update(kw)
    return GateEvent(**base)  # type: ignore[arg-type]


class Ledger:
    """Stands in for the agent's ledger: one table plus the outbox, one transaction each."""

    def __init__(self, path: Path, gate: str = "g1") -> None:
        self.gate = gate
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=10)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, eid TEXT)")
        Outbox.ensure_schema(self.conn)

    def next_seq(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger").fetchone()[0]) + 1

    def admit(self, n: int = 1) -> list[GateEvent]:
        out = []
        for _ in range(n):
            ev = make_event(self.next_seq(), gate=self.gate)
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT INTO ledger VALUES (?, ?)", (ev.seq, ev.eid))
            Outbox.add(self.conn, ev)
            self.conn.execute("COMMIT")
            out.append(ev)
        return out

    def close(self) -> None:
        self.conn.close()


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class FakeCentre:
    """A minimal aggregator through the real broker: store in a dict, ack contiguous seqs."""

    def __init__(self, port: int, *, protocol: str = "5", ack: bool = True,
                 tls_ca: str | None = None, shared: bool = False,
                 username: str | None = None, password: str | None = None) -> None:
        self.port = port
        self.events_filter = topics.SHARED_EVENTS if shared else topics.ALL_EVENTS
        self.ack_enabled = ack
        self.lock = threading.Lock()
        self.stored: dict[tuple[str, int], GateEvent] = {}
        self.receipts = 0  # events received, duplicates included
        self.order: list[int] = []  # seqs in the order they arrived (duplicates included)
        self.refused: list[str] = []
        self.statuses: list[wire.Status] = []
        self.health: list[dict[str, object]] = []
        self.high: dict[str, int] = {}
        self.acked: dict[str, int] = {}  # last ack sent per gate
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"fake-centre-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.subscribe_codes: list[object] = []

    def _on_connect(self, client: mqtt.Client, ud: object, flags: object, rc: object,
                    props: object) -> None:
        client.subscribe([(self.events_filter, 1), (topics.ALL_STATUS, 1),
                          (topics.ALL_HEALTH, 0)])

    def _on_subscribe(self, client: mqtt.Client, ud: object, mid: int, codes: list[object],
                      props: object) -> None:
        self.subscribe_codes = list(codes)
        self._subscribed.set()

    def start(self) -> FakeCentre:
        assert self.client.connect("127.0.0.1", self.port, 30) == MQTTErrorCode.MQTT_ERR_SUCCESS
        self.client.loop_start()
        assert self._subscribed.wait(10), "fake centre never subscribed"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, ud: object, msg: mqtt.MQTTMessage) -> None:
        try:
            gt = topics.parse_gate_topic(msg.topic)
        except TopicError as exc:
            self.refused.append(str(exc))
            return
        try:
            if gt.leaf == "status":
                if msg.payload:
                    self.statuses.append(wire.decode_status(msg.payload, gt.gate))
                return
            if gt.leaf == "health":
                if msg.payload:
                    self.health.append(wire.decode_health(msg.payload, gt.gate))
                return
            events = wire.decode_batch(msg.payload, gt.gate)
        except WireError as exc:
            self.refused.append(str(exc))
            return
        with self.lock:
            self.receipts += len(events)
            self.order.extend(ev.seq for ev in events)
            for ev in events:
                self.stored.setdefault((ev.gate, ev.seq), ev)
            h = self.high.get(gt.gate, 0)
            while (gt.gate, h + 1) in self.stored:
                h += 1
            self.high[gt.gate] = h
            if self.ack_enabled:
                # The centre's rule: the ack names the ids from the lowest seq just received
                # (a republish) or the first newly acknowledged seq, whichever is lower.
                lowest = min(ev.seq for ev in events)
                self.send_ack(gt.gate, h, min(self.acked.get(gt.gate, 0) + 1, lowest))

    def send_ack(self, gate: str, seq: int, first: int | None = None) -> None:
        """Ack ``seq`` naming the stored ids from ``first`` (default: after the last ack)."""
        if first is None:
            first = min(self.acked.get(gate, 0) + 1, max(seq, 1))
        digest = wire.eid_digest(self.stored[(gate, s)].eid for s in range(first, seq + 1))
        self.acked[gate] = max(self.acked.get(gate, 0), seq)
        info = self.client.publish(topics.ack(gate), wire.encode_ack(gate, seq, first, digest),
                                   qos=1, retain=True)
        assert info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_now(self, gate: str) -> None:
        with self.lock:
            self.send_ack(gate, self.high.get(gate, 0))

    def seqs(self, gate: str = "g1") -> set[int]:
        with self.lock:
            return {s for (g, s) in self.stored if g == gate}
