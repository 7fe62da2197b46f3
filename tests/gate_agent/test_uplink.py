"""The agent with ``sync.GateSync`` on a real Mosquitto: events go up, signed documents
(used permits, time beacons, gate config) come down and change decisions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from agent_helpers import SLOT
from conftest import SITE, slot

from gate_agent.agent import GateAgent
from gate_agent.uplink import open_sync, used_items
from sync import topics
from verifier.permit import permit_hash
from verifier.sandbox import Sandbox

pytestmark = pytest.mark.broker


def until(pred: Callable[[], bool], timeout: float = 15.0, act: Callable[[], Any] | None = None
          ) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if act is not None:
            act()
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_sync_both_ways(make_agent: Callable[..., GateAgent], sandbox: Sandbox,
                        broker: Any) -> None:
    agent = make_agent(
        passback={"scope": "site", "offline": "strict"},
        broker={"host": "127.0.0.1", "port": broker.port, "protocol": "5"},
    )
    got: list[bytes] = []
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-centre",
                      protocol=mqtt.MQTTv5)
    pub.on_message = lambda _c, _u, msg: got.append(msg.payload)
    pub.connect("127.0.0.1", broker.port)
    pub.subscribe(topics.events("g1"), qos=1)
    pub.loop_start()
    try:
        with open_sync(agent) as sync:
            assert until(lambda: sync.status().connected)
            agent._refresh_health()  # the clock thread does this every poll_s
            raw = sandbox.issue(site=SITE, slot=slot())
            ph = permit_hash(sandbox.permit_id(raw))
            version = [int(time.time() * 1e6)]

            def send_used() -> None:
                version[0] += 1
                doc = sandbox.sign_document(
                    "used_permits", {"site": SITE, "used": [[ph, "g2", float(SLOT)]]},
                    version[0],
                )
                pub.publish(topics.site_used(SITE), doc, qos=1)

            assert until(lambda: agent.ledger.used_elsewhere(ph), act=send_used)
            assert agent.submit_payload(raw)["reason"] == "used_elsewhere"
            other = agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))
            assert other["verdict"] == "admit"  # online: the stream is fresh
            assert until(lambda: len(got) >= 1), "no event batch reached the broker"

            cfg = sandbox.sign_document("gate_config", {"capacity": {"per_slot": 1}}, 5)
            pub.publish(topics.config("g1"), cfg, qos=1, retain=True)
            assert until(lambda: agent.config.capacity.per_slot == 1)
            full = agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))
            assert full["reason"] == "capacity_full"

            bad = sandbox.sign_document("gate_config", {"gate": "g1", "ledger": "/tmp/x"}, 6)
            pub.publish(topics.config("g1"), bad, qos=1, retain=True)
            time.sleep(0.5)
            assert str(agent.config.ledger).endswith("ledger.sqlite")  # identity stays local
    finally:
        pub.publish(topics.config("g1"), b"", qos=1, retain=True)  # clear the retained config
        pub.loop_stop()
        pub.disconnect()


def test_used_items_filters_garbage() -> None:
    good = "ab" * 16
    body = {"site": SITE, "used": [[good, "g2", 1.0], ["xyz", "g2", 1.0], [good, "g 2", 1.0],
                                   [good, "g3", float("nan")], "junk", [good, "g4", True]]}
    assert used_items(body) == [(good, "g2", 1.0)]
    with pytest.raises(ValueError):
        used_items({"site": SITE})


def test_downlink_documents_survive_a_restart(
    make_agent: Callable[..., GateAgent], sandbox: Sandbox
) -> None:
    from gate_agent.uplink import _Callbacks
    from sync.downlink import DownlinkItem
    from verifier.documents import read_document

    def item(raw: bytes, topic: str) -> DownlinkItem:
        doc = read_document(raw, ("revocation_delta", "revocation_snapshot", "gate_config"),
                            sandbox.store, now=sandbox.epoch)
        return DownlinkItem(kind=doc.kind, version=doc.version, body=doc.body, raw=raw,
                            topic=topic, retained=False, issued_at=None)

    agent = make_agent()
    raw = sandbox.issue(site=SITE, slot=slot())
    cb = _Callbacks(agent)
    cb.revocations(item(sandbox.revoke(raw), topics.REVOCATION_DELTA))
    cb.config(item(sandbox.sign_document("gate_config", {"capacity": {"per_slot": 7}}, 3),
                   topics.config("g1")))
    assert agent.submit_payload(raw)["reason"] == "revoked"
    agent.close()
    agent.ledger.close()
    # Restart without any network: the saved documents are verified and applied again.
    again = make_agent()
    assert again.config.capacity.per_slot == 7
    assert again.submit_payload(raw)["reason"] == "revoked"
    assert again.downlink_versions == {"revocations": sandbox.revocation_version,
                                       "gate_config": 3}
