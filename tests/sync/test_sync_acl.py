"""deploy/mosquitto as shipped, users from central.provisioning.broker: gates stay in their lane.

Subscriptions, shared subscriptions and client ids: tests/security/test_broker.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from realparts import missing_part
from sync_helpers import FakeCentre, Ledger, make_event, wait_for

from central.provisioning.broker import make_users
from sync import topics, wire
from sync.config import BrokerConfig
from sync.link import GateLink
from sync.outbox import Outbox
from tests.security.deployment import ShippedBroker, missing_tools

pytestmark = pytest.mark.broker
USERS = {"ga": "pw-ga-secret", "gb": "pw-gb-secret", "gp-central-1": "pw-central"}


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    # The shipped mosquitto.conf (plain listener only) with users from the provisioning.
    if missing_tools():
        missing_part(f"not installed: {', '.join(missing_tools())}")
    users = make_users(["ga", "gb"], 1, passwords=USERS)
    with ShippedBroker(tmp_path / "m", users, tls=False) as b:
        yield b


class RawGate:
    """A hostile gate client: publishes wherever it likes and records PUBACK reason codes."""

    def __init__(self, port: int, user: str, protocol: str) -> None:
        self.codes: dict[int, ReasonCode] = {}
        self.done = threading.Condition()
        self.c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=f"raw-{user}-{protocol}",
                             protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311)
        self.c.username_pw_set(user, USERS[user])
        self.c.on_publish = self._on_publish
        self.connected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: (None if rc.is_failure
                                                    else self.connected.set())
        assert self.c.connect("127.0.0.1", port, 30) == MQTTErrorCode.MQTT_ERR_SUCCESS
        self.c.loop_start()
        assert self.connected.wait(10)

    def _on_publish(self, c: Any, u: Any, mid: int, rc: ReasonCode, p: Any) -> None:
        with self.done:
            self.codes[mid] = rc
            self.done.notify_all()

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.c.publish(topic, payload, qos=1)
        assert info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
        with self.done:
            assert self.done.wait_for(lambda: info.mid in self.codes, 10)
            return self.codes[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def publish_once(port: int, user: str, protocol: str, topic: str, payload: bytes) -> ReasonCode:
    # One connection per publish: Mosquitto 2.0.11 closes an MQTT 5 connection right after
    # the PUBACK with reason 135.
    gate = RawGate(port, user, protocol)
    try:
        return gate.publish(topic, payload)
    finally:
        gate.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_gate_cannot_publish_under_another_gates_topic(acl_broker: Any, protocol: str) -> None:
    centre = FakeCentre(acl_broker.port, username="gp-central-1", password=USERS["gp-central-1"],
                        shared=True).start()
    assert centre.subscribe_codes and not any(
        c.is_failure for c in centre.subscribe_codes)  # type: ignore[attr-defined]
    try:
        port = acl_broker.port
        forged = wire.encode_batch("gb", [make_event(1, gate="gb")])
        rc = publish_once(port, "ga", protocol, topics.events("gb"), forged)
        forged_ack = publish_once(port, "ga", protocol, topics.ack("ga"),
                                  wire.encode_ack("ga", 10**6))
        forged_trust = publish_once(port, "ga", protocol, topics.TRUST, b"x")
        if protocol == "5":
            assert [rc.value, forged_ack.value, forged_trust.value] == [135, 135, 135]
        else:
            assert not rc.is_failure  # MQTT 3.1.1: PUBACKed and silently dropped
        # The broker handled the forged publishes before their PUBACKs; a legitimate batch
        # published after them reaches the centre after anything they could have produced.
        own = publish_once(port, "ga", protocol, topics.events("ga"),
                           wire.encode_batch("ga", [make_event(1, "ga")]))
        assert not own.is_failure
        wait_for(lambda: centre.seqs("ga") == {1}, 10, "own batch arrives")
        assert centre.seqs("gb") == set()
        assert centre.refused == []
    finally:
        centre.stop()


def test_gate_link_with_password_works_and_bad_password_is_refused(
        tmp_path: Path, acl_broker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    centre = FakeCentre(acl_broker.port, username="gp-central-1", password=USERS["gp-central-1"],
                        shared=True).start()
    secret = tmp_path / "ga.secret"
    secret.write_text(USERS["ga"] + "\n")
    good = BrokerConfig(port=acl_broker.port, username="ga", password_file=secret,
                        reconnect_min_s=0.1, reconnect_max_s=0.3)
    monkeypatch.setenv("GP_TEST_BAD_PW", "wrong")
    bad = BrokerConfig(port=acl_broker.port, username="gb", password_env="GP_TEST_BAD_PW",
                       reconnect_min_s=0.1, reconnect_max_s=0.3)
    la, lb = Ledger(tmp_path / "a.db", gate="ga"), Ledger(tmp_path / "b.db", gate="gb")
    la.admit(10)
    lb.admit(10)
    try:
        with Outbox(tmp_path / "a.db") as oa, Outbox(tmp_path / "b.db") as ob, \
                GateLink(gate="ga", outbox=oa, broker=good), \
                GateLink(gate="gb", outbox=ob, broker=bad) as link_b:
            wait_for(lambda: oa.backlog() == 0, 15, "gate ga acked through the ACL")
            time.sleep(0.5)
            st = link_b.status()
            assert not st.connected and st.published_through == 0 and ob.backlog() == 10
            assert st.last_error is not None and "refused" in st.last_error
        assert centre.seqs("ga") == set(range(1, 11)) and centre.seqs("gb") == set()
    finally:
        centre.stop()
        la.close()
        lb.close()
