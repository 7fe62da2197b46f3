"""Issue #9 items 1 and 2 against the SHIPPED broker: a rogue gate's credentials can neither
join the aggregators' shared subscription nor take over another client's session.

Mosquitto runs from deploy/mosquitto/mosquitto.conf as shipped (deployment.py), users from
central.provisioning.broker, the real aggregator (two workers, gp-central-1 and -2) on
PostgreSQL, gates on real GateLinks. The rogue is paho-mqtt v2, used directly. Each test
fails if its attack works (measured on the previous acl_file deployment: the rogue's
subscriptions were granted, 5 of 10 batches were lost, the takeover succeeded).
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from deployment import DEPLOY, ShippedBroker, missing_tools
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from realparts import missing_part
from waits import wait_for

from central.aggregator import Aggregator
from central.provisioning.broker import BrokerUser, make_users
from central.store import Store, open_store
from sync import topics, wire
from sync.config import BrokerConfig
from tests.central.central_helpers import SimGate, make_event

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

GATES = {"gate-a": "makkah", "gate-b": "makkah", "gate-c": "madinah", "gate-d": "madinah"}
WORKERS = ("gp-central-1", "gp-central-2")
DEADLINE_S = 60.0  # generous: a loaded 2-core machine




class Rogue:
    """A hostile client with some user's credentials: records everything it gets."""

    def __init__(self, b: ShippedBroker, user: str, *, client_id: str, protocol: str = "5",
                 listener: str = "plain", clean_start: bool = True) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.connack: ReasonCode | None = None
        self.disconnects: list[str] = []
        self.cond = threading.Condition()
        v5 = protocol == "5"
        self.c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=client_id, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else clean_start)
        port = b.port
        if listener in ("tls", "mtls"):
            cert = b.cert(user) if listener == "mtls" else (None, None)
            self.c.tls_set(ca_certs=str(b.ca_file),
                           certfile=str(cert[0]) if cert[0] else None,
                           keyfile=str(cert[1]) if cert[1] else None,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            port = b.tls_port if listener == "tls" else b.mtls_port
        if listener != "mtls":
            self.c.username_pw_set(user, b.password(user))
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = self._on_publish
        self.c.on_disconnect = self._on_disconnect
        props = None
        kw: dict[str, Any] = {}
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            kw = {"clean_start": clean_start, "properties": props}
        self.c.reconnect_delay_set(60, 120)  # a rogue that is thrown out stays out
        assert self.c.connect("localhost", port, 30, **kw) == MQTTErrorCode.MQTT_ERR_SUCCESS
        self.c.loop_start()
        with self.cond:
            assert self.cond.wait_for(lambda: self.connack is not None, 15), "no CONNACK"

    def _on_connect(self, c: Any, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
        with self.cond:
            self.connack = rc
            self.cond.notify_all()

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: list[ReasonCode], p: Any) -> None:
        with self.cond:
            self.subacks[mid] = [int(rc.value) for rc in rcs]
            self.cond.notify_all()

    def _on_publish(self, c: Any, u: Any, mid: int, rc: ReasonCode, p: Any) -> None:
        with self.cond:
            self.pubacks[mid] = int(rc.value)
            self.cond.notify_all()

    def _on_disconnect(self, c: Any, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
        with self.cond:
            self.disconnects.append(str(rc))

    def subscribe(self, topic: str) -> int:
        """The SUBACK code for ``topic`` (QoS 1 requested)."""
        rc, mid = self.c.subscribe(topic, qos=1)
        assert rc == MQTTErrorCode.MQTT_ERR_SUCCESS
        with self.cond:
            assert self.cond.wait_for(lambda: mid in self.subacks, 15), f"no SUBACK: {topic}"
            return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """The PUBACK reason code, or None if the broker closed the connection instead."""
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        with self.cond:
            self.cond.wait_for(lambda: info.mid in self.pubacks or bool(self.disconnects), 15)
            return self.pubacks.get(info.mid)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


# --- fixtures --------------------------------------------------------------------------------

@dataclass
class Deployment:
    broker: ShippedBroker
    users: list[BrokerUser]
    store_url: str
    tmp: Path


@pytest.fixture
def deployment(tmp_path: Path, postgres_url: str) -> Iterator[Deployment]:
    if missing_tools():
        missing_part(f"not installed: {', '.join(missing_tools())}")
    users = make_users(list(GATES), len(WORKERS), sites=GATES)
    with ShippedBroker(tmp_path / "broker", users) as b:
        yield Deployment(b, users, postgres_url, tmp_path)


def worker_broker(b: ShippedBroker) -> BrokerConfig:
    # One config for every worker, as the central TOML has it: the worker's client id
    # picks its own broker user and password file.
    return BrokerConfig.model_validate({
        "host": "127.0.0.1", "port": b.port, "username": "{client_id}",
        "password_file": str(b.secrets / "{client_id}"), "keepalive": 5,
        "reconnect_min_s": 0.1, "reconnect_max_s": 1.0})


@pytest.fixture
def workers(deployment: Deployment) -> Iterator[list[Aggregator]]:
    stores: list[Store] = [open_store(deployment.store_url) for _ in WORKERS]
    aggs = [Aggregator(store=s, broker=worker_broker(deployment.broker), client_id=cid,
                       max_batch_events=1000) for s, cid in zip(stores, WORKERS, strict=True)]
    try:
        for a in aggs:
            a.start()
        wait_for(lambda: all(a.connected for a in aggs), DEADLINE_S, "both workers subscribed")
        yield aggs
    finally:
        for a in aggs:
            a.close()
        for s in stores:
            s.close()


def sim_gate(d: Deployment, gate: str) -> SimGate:
    g = SimGate(d.tmp / f"{gate}.db", gate, d.broker.port, site=GATES[gate])
    # Acks time out only after the test's deadline: a batch a rogue swallowed would stay
    # unacknowledged, not be quietly republished.
    g.broker = d.broker.broker_config(gate, ack_timeout_s=600.0, keepalive=5,
                                      health_period_s=1.0)
    return g


# --- 1. shared-subscription hijack -----------------------------------------------------------

GATE_FORBIDDEN_FILTERS = [
    topics.SHARED_EVENTS,                                  # $share/agg/gp/v1/gates/+/events
    f"$share/x/{topics.ALL_EVENTS}",
    f"$share/agg/{topics.events('gate-a')}",
    topics.ALL_EVENTS,
    topics.events("gate-a"),
    f"{topics.PREFIX}/gates/#",
    "#",
    "+/+/+/+/+",
    "$SYS/#",
    "$CONTROL/dynamic-security/#",
    topics.ack("gate-a"),
    topics.config("gate-a"),
    topics.status("gate-a"),
    topics.site_used("madinah"),                           # not gate-b's site
    f"$share/x/{topics.ack('gate-b')}",
]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_gate_credentials_cannot_subscribe_to_events_or_others_topics(
        deployment: Deployment, protocol: str) -> None:
    rogue = Rogue(deployment.broker, "gate-b", client_id="rogue", protocol=protocol)
    try:
        assert rogue.connack is not None and not rogue.connack.is_failure
        codes = {f: rogue.subscribe(f) for f in GATE_FORBIDDEN_FILTERS}
        granted = {f: c for f, c in codes.items() if c < 0x80}
        assert granted == {}, f"the broker granted a gate: {granted}"
        # ... while what a gate legitimately reads is granted (QoS 1)
        own = [topics.ack("gate-b"), topics.config("gate-b"), topics.TRUST,
               topics.REVOCATION_SNAPSHOT, topics.REVOCATION_DELTA, topics.TIME,
               topics.site_used("makkah")]
        assert {f: rogue.subscribe(f) for f in own} == dict.fromkeys(own, 1)
    finally:
        rogue.close()


def test_rogue_shared_subscribers_swallow_no_batch(
        deployment: Deployment, workers: list[Aggregator]) -> None:
    b = deployment.broker
    # Every gate user tries to join both the aggregators' share group and one of its own,
    # several connections each (they share a client id, so they also displace each other).
    rogues: list[Rogue] = []
    gates = [sim_gate(deployment, g) for g in ("gate-a", "gate-b")]
    try:
        for n in range(2):
            for user in ("gate-c", "gate-d"):  # not the gates shipping below
                r = Rogue(b, user, client_id=f"rogue-{n}")
                rogues.append(r)
                for f in (topics.SHARED_EVENTS, f"$share/x/{topics.ALL_EVENTS}"):
                    assert r.subscribe(f) >= 0x80
        # gate-a also ships through its real link while the rogues sit there: 20 rounds,
        # each its own batch (the link sends live events as they are admitted).
        gates[0].start()
        gates[1].start()
        for _ in range(20):
            gates[0].admit(5)
            gates[1].admit(5)
            time.sleep(0.05)
        wait_for(lambda: all(g.backlog() == 0 for g in gates), DEADLINE_S,
                 "every batch acknowledged without a republish")
        for g in gates:
            st = g.link.status()
            assert st.republishes == 0 and st.refused_publishes == 0, st
        shares = [w.stats().events_received for w in workers]
        assert sum(w.stats().events_inserted for w in workers) == 200
        assert all(n > 0 for n in shares), f"the two workers did not share the load: {shares}"
        with open_store(deployment.store_url) as s:
            assert s.contiguous_seq("gate-a") == 100 and s.contiguous_seq("gate-b") == 100
        assert all(r.messages == [] for r in rogues)
    finally:
        for g in gates:
            g.close()
        for r in rogues:
            r.close()


def test_raw_batches_all_reach_the_aggregators_with_rogues_subscribed(
        deployment: Deployment, workers: list[Aggregator]) -> None:
    # The attack exactly as reported: 20 batches published once each, no retries at all.
    b = deployment.broker
    rogues = [Rogue(b, user, client_id=f"x-{user}") for user in ("gate-c", "gate-d")]
    for r in rogues:
        r.subscribe(topics.SHARED_EVENTS)
    gate = Rogue(b, "gate-a", client_id="gate-a")
    try:
        assert gate.subscribe(topics.ack("gate-a")) == 1
        for seq in range(1, 21):
            body = wire.encode_batch("gate-a", [make_event("gate-a", seq, site="makkah")])
            assert gate.publish(topics.events("gate-a"), body) == 0
        with open_store(deployment.store_url) as s:
            wait_for(lambda: s.contiguous_seq("gate-a") == 20, DEADLINE_S, "all 20 stored")
        wait_for(lambda: any(wire.decode_ack(p, "gate-a").seq == 20 for t, p in gate.messages
                             if t == topics.ack("gate-a")), DEADLINE_S, "ack of seq 20")
        assert sum(w.stats().batches_stored for w in workers) >= 1
        assert all(r.messages == [] for r in rogues)
    finally:
        gate.close()
        for r in rogues:
            r.close()


# --- 2. client-id takeover -------------------------------------------------------------------

@pytest.mark.parametrize("listener", ["plain", "tls", "mtls"])
def test_gate_cannot_take_over_an_aggregator_worker(
        deployment: Deployment, workers: list[Aggregator], listener: str) -> None:
    b = deployment.broker
    before = b.log_text().count("already connected, closing old connection")
    rogue = Rogue(b, "gate-a", client_id="gp-central-1", listener=listener)
    gate = sim_gate(deployment, "gate-b")
    try:
        # Whatever it asked for, the broker named the rogue after its own user (or refused).
        gate.start()
        gate.admit(30)
        wait_for(lambda: gate.backlog() == 0, DEADLINE_S, "gate-b acknowledged")
        assert all(w.connected for w in workers)
        assert gate.link.status().republishes == 0
        log = b.log_text()
        assert log.count("already connected, closing old connection") == before, log[-2000:]
        connected = re.findall(r"New client connected from \S+ as (\S+) \(.*u'([^']+)'\)", log)
        assert ("gate-a", "gate-a") in connected, connected  # renamed after its user
        assert all(cid == user for cid, user in connected), connected
        assert rogue.messages == []
    finally:
        gate.close()
        rogue.close()


@pytest.mark.parametrize("listener", ["plain", "tls", "mtls"])
@pytest.mark.parametrize("as_id", ["gp-gate-gate-b", "gate-b"])
def test_gate_cannot_take_over_another_gates_queued_session(
        deployment: Deployment, listener: str, as_id: str) -> None:
    b = deployment.broker
    # gate-b's persistent session: subscribed to its config and its site's used stream
    victim = Rogue(b, "gate-b", client_id=as_id, clean_start=False)
    for t in (topics.config("gate-b"), topics.site_used("makkah")):
        assert victim.subscribe(t) == 1
    victim.close()  # DISCONNECT: the session (expiry 1 h) stays, messages queue for it
    centre = Rogue(b, "gp-central-2", client_id="gp-central-2")
    rogue: Rogue | None = None
    try:
        for n in range(3):
            assert centre.publish(topics.config("gate-b"), b"cfg-%d" % n) == 0
            assert centre.publish(topics.site_used("makkah"), b"used-%d" % n) == 0
        rogue = Rogue(b, "gate-a", client_id=as_id, clean_start=False, listener=listener)
        time.sleep(1.0)  # give a takeover time to show: queued messages flow at once
        assert rogue.messages == [], "gate-a received gate-b's queued messages"
        rogue.close()
        rogue = None
        back = Rogue(b, "gate-b", client_id=as_id, clean_start=False)
        try:
            assert back.connack is not None and not back.connack.is_failure
            wait_for(lambda: len(back.messages) == 6, DEADLINE_S, "gate-b's queue, intact")
            assert sorted(p for _, p in back.messages) == sorted(
                [b"cfg-%d" % n for n in range(3)] + [b"used-%d" % n for n in range(3)])
        finally:
            back.close()
    finally:
        centre.close()
        if rogue is not None:
            rogue.close()


def test_a_second_connection_of_a_user_replaces_the_first(deployment: Deployment) -> None:
    b = deployment.broker
    first = Rogue(b, "gate-c", client_id="one")
    second = Rogue(b, "gate-c", client_id="two")
    try:
        assert second.connack is not None and not second.connack.is_failure
        with first.cond:
            assert first.cond.wait_for(lambda: bool(first.disconnects), 15), \
                "two connections of one user held at once"
        assert second.subscribe(topics.ack("gate-c")) == 1  # the second one is alive
        assert "Client gate-c already connected, closing old connection." in b.log_text()
    finally:
        first.close()
        second.close()


def test_without_the_listener_option_the_plugin_still_refuses_a_foreign_client_id(
        tmp_path: Path) -> None:
    # An operator who drops use_username_as_clientid from a listener keeps the binding:
    # the users file names each user's client id. (Not so on the mutual-TLS listener,
    # where Mosquitto skips the plugin's login check: there the option is the binding.)
    if missing_tools():
        missing_part(f"not installed: {', '.join(missing_tools())}")
    altered = tmp_path / "deploy"
    shutil.copytree(DEPLOY, altered)
    conf = (altered / "mosquitto.conf").read_text()
    assert conf.count("\nuse_username_as_clientid true\n") == 3
    (altered / "mosquitto.conf").write_text(conf.replace("\nuse_username_as_clientid true\n",
                                                         "\n"))
    users = make_users(list(GATES), 1, sites=GATES)
    with ShippedBroker(tmp_path / "b", users, tls=False, deploy=altered) as b:
        for cid in ("gp-central-1", "gp-gate-gate-b", "gate-b"):
            rogue = Rogue(b, "gate-a", client_id=cid)
            try:
                assert rogue.connack is not None and rogue.connack.is_failure, cid
            finally:
                rogue.close()
        own = Rogue(b, "gate-a", client_id="gate-a")
        try:
            assert own.connack is not None and not own.connack.is_failure
        finally:
            own.close()


def test_users_file_binds_each_user_to_its_client_id_and_denies_by_default(
        deployment: Deployment) -> None:
    # Belt and braces: even on a listener that did not rewrite client ids, the plugin
    # refuses a login under another client id. The shipped listeners rewrite it first, so
    # this reads what the broker was given.

    doc = json.loads((deployment.broker.etc / "dynamic-security.json").read_text())
    assert {c["username"]: c["clientid"] for c in doc["clients"]} == {
        u: u for u in [*GATES, *WORKERS]}
    assert doc["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": False,
                                       "subscribe": False, "unsubscribe": True}


# --- what a gate legitimately needs still works ---------------------------------------------

def test_a_real_gate_gets_all_its_subscriptions_and_its_queued_downlink(
        deployment: Deployment) -> None:
    from sync import GateSync
    from verifier.sandbox import Sandbox

    b = deployment.broker
    sb = Sandbox.create(sites=("makkah",), seed=9)
    applied: dict[str, list[int]] = {}

    def cb(name: str) -> Any:
        return lambda item: applied.setdefault(name, []).append(item.version)

    def gate_sync() -> GateSync:
        return GateSync(gate_id="gate-b", site="makkah", db_path=deployment.tmp / "gb.db",
                        broker=b.broker_config("gate-b"), trust=sb.new_store(),
                        on_config=cb("config"), on_used_permits=cb("used"),
                        on_time_beacon=cb("time"))

    # worker 1 stores and acknowledges; worker 2's user stands in for the centre's downlink
    store = open_store(deployment.store_url)
    agg = Aggregator(store=store, broker=worker_broker(b), client_id="gp-central-1")
    agg.start()
    centre = Rogue(b, "gp-central-2", client_id="whatever")
    try:
        wait_for(lambda: agg.connected, DEADLINE_S, "worker 1 subscribed")
        assert centre.publish(topics.config("gate-b"), sb.sign_document(
            "gate_config", {"gate": "gate-b"}, version=3), retain=True) in (0, 16)  # 16: none yet
        with gate_sync() as gs:
            wait_for(lambda: gs.status().connected and applied.get("config") == [3], DEADLINE_S,
                     "gate-b connected and got its config")
            conn = sqlite_ledger(deployment.tmp / "gb.db")
            add_events(conn, "gate-b", 5)
            wait_for(lambda: gs.backlog() == 0, DEADLINE_S, "gate-b's events acknowledged")
            wait_for(lambda: any(g.gate == "gate-b" and g.state == "online"
                                 for g in store.gates()), DEADLINE_S, "its status stored")
        # offline: a used-permit batch for its site queues in its persistent session
        assert centre.publish(topics.site_used("makkah"), sb.sign_document(
            "used_permits", {"site": "makkah", "ph": ["ab" * 16]}, version=1)) == 0  # queued
        with gate_sync() as gs:
            wait_for(lambda: applied.get("used") == [1], DEADLINE_S, "queued used batch")
            st = gs.status()
            assert st.refused_publishes == 0
            assert st.last_error is None or "refused" not in st.last_error, st.last_error
        conn.close()
    finally:
        centre.close()
        agg.close()
        store.close()


def sqlite_ledger(path: Path) -> Any:
    import sqlite3

    from sync.outbox import Outbox

    conn = sqlite3.connect(str(path), isolation_level=None)
    Outbox.ensure_schema(conn)
    return conn


def add_events(conn: Any, gate: str, n: int) -> None:
    from sync.outbox import Outbox

    for seq in range(1, n + 1):
        conn.execute("BEGIN IMMEDIATE")
        Outbox.add(conn, make_event(gate, seq, site="makkah"))
        conn.execute("COMMIT")


# --- gates stay in their lane when publishing ----------------------------------------------

FORBIDDEN_PUBLISH = [
    topics.events("gate-b"), topics.status("gate-b"), topics.health("gate-b"),
    topics.ack("gate-a"), topics.config("gate-a"), topics.TRUST, topics.REVOCATION_SNAPSHOT,
    topics.REVOCATION_DELTA, topics.TIME, topics.site_used("makkah"),
    "$CONTROL/dynamic-security/v1", "gp/v1/other",
]


@pytest.mark.parametrize("topic", FORBIDDEN_PUBLISH)
def test_gate_publish_to_topics_not_its_own_is_refused(
        deployment: Deployment, workers: list[Aggregator], topic: str) -> None:
    b = deployment.broker
    rogue = Rogue(b, "gate-a", client_id="gate-a")
    try:
        forged = wire.encode_batch("gate-b", [make_event("gate-b", 1, site="makkah")])
        rc = rogue.publish(topic, forged)
        rogue.close()
        # MQTT 5: PUBACK 135 (not authorized); 2.0.11 may close the connection instead
        assert rc is None or rc == 135, f"publish to {topic} answered {rc}"
        # an honest batch afterwards is stored; the forged one never is
        honest = Rogue(b, "gate-a", client_id="gate-a")
        body = wire.encode_batch("gate-a", [make_event("gate-a", 1, site="makkah")])
        assert honest.publish(topics.events("gate-a"), body) == 0
        honest.close()
        with open_store(deployment.store_url) as s:
            wait_for(lambda: s.contiguous_seq("gate-a") == 1, DEADLINE_S, "honest batch")
            assert s.contiguous_seq("gate-b") == 0
        assert all(w.connected for w in workers)
    finally:
        rogue.close()
