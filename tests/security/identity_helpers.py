"""A gate deployment for the gate-identity tests: keys, a signed registry, the shipped
broker, the real aggregator on PostgreSQL, signing gates and a rogue publisher."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from deployment import ShippedBroker
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from waits import wait_for

from central.aggregator import Aggregator
from central.downlink import DownlinkSigner
from central.provisioning.broker import make_users
from central.store import Store, open_store
from sync import topics, wire
from sync.config import BrokerConfig
from sync.link import GateLink
from sync.outbox import Outbox
from sync.schema import GateEvent
from verifier import documents
from verifier.keys import SigningKey
from verifier.registry import (
    GateEntry,
    GateRegistry,
    make_entry,
    open_registry,
    sign_batch,
    sign_registry,
)
from verifier.sandbox import Sandbox

SLOT = 1_767_225_600
DEADLINE_S = 60.0  # generous: a loaded 2-core machine

#: gate id -> (site, groups, mode); gate-x has broker credentials but is not registered.
GATES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "gate-a": ("makkah-haram", ("north",), "entrance"),
    "gate-b": ("makkah-haram", ("south",), "entrance"),
    "gate-m": ("madinah", ("rawdah",), "entrance"),
}
UNREGISTERED = "gate-x"
#: readers of each site's used-permit stream (broker users, not registered gates)
WATCHERS = {"madinah": "watch-m", "makkah-haram": "watch-h"}
WORKER = "gp-central-1"




def event(gate: str, seq: int, *, site: str | None = None, eid: str | None = None,
          ph: str | None = None) -> GateEvent:
    return GateEvent(
        gate=gate, site=site or GATES.get(gate, ("makkah-haram",))[0], seq=seq,
        eid=eid or uuid.uuid4().hex, t=SLOT + seq, tc="synced", kind="scan", verdict="admit",
        mode="entrance", ph=ph or uuid.uuid4().hex, ptype="umrah", slot=SLOT,
        slot_end=SLOT + 3600, party=1,
    )


class SignedGate:
    """A gate as the agent runs it: ledger + outbox rows in one transaction, shipped by the
    real GateLink, which signs each batch with the gate's key."""

    def __init__(self, path: Path, gate: str, broker: BrokerConfig, key: SigningKey | None,
                 groups: Sequence[str]) -> None:
        self.gate, self.path = gate, path
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=10,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, eid TEXT)")
        Outbox.ensure_schema(self.conn)
        self.outbox = Outbox(path)
        self._signer = None if key is None else (lambda b, k=key: sign_batch(k, b))
        self._broker, self._groups = broker, list(groups)
        self.link = self._new_link()
        self.lock = threading.Lock()

    def _new_link(self) -> GateLink:
        return GateLink(gate=self.gate, outbox=self.outbox, broker=self._broker,
                        signer=self._signer, groups=self._groups)

    def start(self) -> SignedGate:
        self.link.start()
        return self

    def restart(self) -> SignedGate:
        """A new link process on the same ledger (the gate was away)."""
        self.link.close()
        self.link = self._new_link()
        return self.start()


    def admit(self, n: int = 1, **kw: Any) -> list[GateEvent]:
        out = []
        with self.lock:
            for _ in range(n):
                seq = int(self.conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM ledger").fetchone()[0]) + 1
                ev = event(self.gate, seq, **kw)
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("INSERT INTO ledger VALUES (?, ?)", (ev.seq, ev.eid))
                Outbox.add(self.conn, ev)
                self.conn.execute("COMMIT")
                out.append(ev)
        return out

    def backlog(self) -> int:
        return self.outbox.backlog()

    def pending(self) -> dict[int, str]:
        return {ev.seq: ev.eid for ev in self.outbox.pending(10_000)}

    def close(self) -> None:
        self.link.close()
        self.outbox.close()
        self.conn.close()


class Client:
    """A plain MQTT client with some user's credentials (a listener, or a rogue device)."""

    def __init__(self, cfg: BrokerConfig, client_id: str, subs: Sequence[str] = ()) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=client_id, protocol=mqtt.MQTTv5)
        cfg.apply_security(self.client)
        self.client.on_message = self._on_message
        self._subs = list(subs)
        self._ready = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._ready.set()
        assert self.client.connect(cfg.host, cfg.port, 30) == MQTTErrorCode.MQTT_ERR_SUCCESS
        self.client.loop_start()
        if not self._subs:
            self._ready.set()
        assert self._ready.wait(DEADLINE_S), "client never subscribed"

    def _on_connect(self, client: mqtt.Client, *a: Any) -> None:
        if self._subs:
            client.subscribe([(s, 1) for s in self._subs])

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(DEADLINE_S)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Deployment:
    """Everything a test needs; built by :func:`deployment`."""

    sb: Sandbox
    broker: ShippedBroker
    store: Store
    aggregator: Aggregator
    keys: dict[str, SigningKey]
    entries: dict[str, GateEntry]
    registry: GateRegistry
    tmp: Path
    gates: list[SignedGate] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    def cfg(self, user: str, **kw: Any) -> BrokerConfig:
        return self.broker.broker_config(user, ack_timeout_s=1.0, keepalive=5, **kw)

    def gate(self, gate: str, *, key: SigningKey | None = None,
             groups: Sequence[str] | None = None) -> SignedGate:
        g = SignedGate(self.tmp / f"{gate}-{uuid.uuid4().hex[:6]}.db", gate, self.cfg(gate),
                       key if key is not None else self.keys.get(gate),
                       groups if groups is not None else GATES.get(gate, ("", (), ""))[1])
        self.gates.append(g)
        return g.start()

    def client(self, user: str, subs: Sequence[str] = ()) -> Client:
        """A device logged in as ``user`` (its client id is its username, as the broker
        requires: do not run the real gate of that user at the same time)."""
        c = Client(self.cfg(user), user, subs)
        self.clients.append(c)
        return c

    def signed_batch(self, gate: str, events: Sequence[GateEvent], *,
                     key: SigningKey | None = None, groups: Sequence[str] | None = None,
                     sign: bool = True) -> bytes:
        k = key if key is not None else self.keys[gate]
        return wire.encode_batch(
            gate, events, signer=(lambda b: sign_batch(k, b)) if sign else None,
            groups=groups if groups is not None else GATES.get(gate, ("", (), ""))[1],
        )

    def watcher(self, site: str) -> Client:
        """A reader of ``site``'s used-permit stream."""
        return self.client(WATCHERS[site], [topics.site_used(site)])

    def used_docs(self, listener: Client, site: str) -> list[list[Any]]:
        """The verified ``used`` rows of every used-permit batch ``listener`` got for ``site``."""
        out = []
        for raw in listener.on(topics.site_used(site)):
            _, body = documents.open_document(raw, documents.KIND_USED_PERMITS, self.sb.store,
                                              now=time.time())
            assert body["site"] == site
            out.append(body["used"])
        return out

    def anomalies(self, gate: str) -> list[str]:
        return [a.kind for a in self.store.anomalies() if a.gate == gate]


@contextmanager
def deployment(tmp: Path, postgres_url: str) -> Iterator[Deployment]:
    sb = Sandbox.create(sites=("makkah-haram", "madinah"))
    keys = {g: SigningKey.generate() for g in [*GATES, UNREGISTERED]}
    entries = {g: make_entry(g, site, groups, mode, keys[g].public_der())
               for g, (site, groups, mode) in GATES.items()}
    registry = open_registry(sign_registry(entries.values(), 1, sb.root), sb.store, now=SLOT)
    sites = {g: v[0] for g, v in GATES.items()} | {UNREGISTERED: "makkah-haram"}
    sites |= {user: site for site, user in WATCHERS.items()}
    users = make_users(list(sites), aggregator_workers=1, sites=sites)
    with ShippedBroker(tmp / "broker", users, tls=False) as b:
        store = open_store(postgres_url)
        agg = Aggregator(store=store, broker=b.broker_config(WORKER), client_id=WORKER,
                         signer=DownlinkSigner(key=sb.central), trust=sb.store,
                         registry=registry, time_beacon_period_s=3600)
        d = Deployment(sb, b, store, agg, keys, entries, registry, tmp)
        try:
            agg.start()
            wait_for(lambda: agg.connected, DEADLINE_S, "aggregator subscribed")
            yield d
        finally:
            for g in d.gates:
                g.close()
            for c in d.clients:
                c.close()
            agg.close()
            store.close()
