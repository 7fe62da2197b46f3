"""Downlink: every item verified before use, older versions refused, refusals counted."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from sync_helpers import wait_for

from sync import GateSync, topics
from sync.config import BrokerConfig
from sync.downlink import Downlink, DownlinkItem
from verifier.documents import sign_document
from verifier.keys import SigningKey
from verifier.revocation import RevocationSet
from verifier.sandbox import Sandbox


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox.create(sites=("s1",), seed=5)


class Recorder:
    def __init__(self) -> None:
        self.items: dict[str, list[DownlinkItem]] = {}

    def cb(self, name: str) -> Any:
        return lambda item: self.items.setdefault(name, []).append(item)

    def versions(self, name: str) -> list[int]:
        return [i.version for i in self.items.get(name, [])]


def make_downlink(sb: Sandbox, rec: Recorder, **kw: Any) -> Downlink:
    return Downlink(gate="g1", site="s1", trust=sb.new_store(),
                    on_trust_list=rec.cb("trust"), on_revocations=rec.cb("rev"),
                    on_time_beacon=rec.cb("time"), on_config=rec.cb("config"),
                    on_used_permits=rec.cb("used"), **kw)


def test_newer_versions_applied_equal_or_older_refused(sb: Sandbox) -> None:
    rec = Recorder()
    dl = make_downlink(sb, rec)
    beacon = lambda v: sb.sign_document("time_beacon", {"t": 1000 + v}, version=v)  # noqa: E731
    dl.handle(topics.TIME, beacon(5), False)
    dl.handle(topics.TIME, beacon(5), False)  # replay
    dl.handle(topics.TIME, beacon(4), False)  # rollback
    dl.handle(topics.TIME, beacon(3), True)  # retained replay of an old one: stale
    dl.handle(topics.TIME, beacon(6), False)
    assert rec.versions("time") == [5, 6]
    assert dl.stats.applied["time_beacon"] == 2
    assert dl.stats.refused["time_beacon"] == 2
    assert dl.stats.stale["time_beacon"] == 1
    assert rec.items["time"][1].body == {"t": 1006}


def _hostile(sb: Sandbox) -> list[tuple[str, str, bytes]]:
    stranger = SigningKey.generate("ES256")
    forged_root = SigningKey.generate("ES256", kid=sb.root.kid)  # same kid, other key
    good = sb.sign_document("time_beacon", {"t": 1}, version=9)
    return [
        ("garbage", topics.TIME, b"\x00garbage"),
        ("json not cose", topics.TIME, b'{"t": 1}'),
        ("truncated", topics.TIME, good[:-10]),
        ("flipped signature byte", topics.TIME, good[:-1] + bytes([good[-1] ^ 1])),
        ("unknown key", topics.TIME, sign_document("time_beacon", {"t": 1}, 9, stranger)),
        ("forged root kid", topics.TRUST, sign_document("trust_list", {"keys": []}, 99,
                                                        forged_root)),
        ("wrong kind on topic", topics.TRUST, good),
        ("issuer key may not sign config", topics.config("g1"),
         sign_document("gate_config", {"gate": "g1"}, 9, sb.issuers["es256"])),
        ("central key may not sign trust", topics.TRUST,
         sign_document("trust_list", {"keys": []}, 99, sb.central)),
        ("config for another gate", topics.config("g1"),
         sb.sign_document("gate_config", {"gate": "g2"}, version=9)),
        ("used batch for another site", topics.site_used("s1"),
         sb.sign_document("used_permits", {"site": "s9", "ph": []}, version=9)),
        ("oversized", topics.REVOCATION_SNAPSHOT, b"\x00" * (33 * 1024 * 1024)),
    ]


@pytest.mark.parametrize("case", range(12))
def test_hostile_items_refused_and_counted_never_applied(sb: Sandbox, case: int) -> None:
    name, topic, payload = _hostile(sb)[case]
    rec = Recorder()
    dl = make_downlink(sb, rec)
    trust_version = dl.versions()["trust_list"]
    dl.handle(topic, payload, False)
    assert rec.items == {}, name
    assert sum(dl.stats.refused.values()) == 1, name
    assert dl.stats.last_refusal and "\n" not in dl.stats.last_refusal
    assert dl.versions()["trust_list"] == trust_version


def test_trust_list_installed_before_later_items_verify(sb: Sandbox) -> None:
    rec = Recorder()
    dl = make_downlink(sb, rec)
    new_central = sb.add_issuer("central2", roles=("central",), issuer="central")
    raw_cfg = sign_document("gate_config", {"gate": "g1", "mode": "boarding"}, 1, new_central)
    dl.handle(topics.config("g1"), raw_cfg, True)
    assert rec.items == {}  # key not trusted yet
    dl.handle(topics.TRUST, sb.publish_trust_list(), True)
    dl.handle(topics.config("g1"), raw_cfg, True)
    assert rec.versions("trust") == [2] and rec.versions("config") == [1]
    assert rec.items["config"][0].body["mode"] == "boarding"
    dl.handle(topics.TRUST, sb.sign_trust_list(1), False)  # rollback
    assert rec.versions("trust") == [2] and dl.stats.refused["trust_list"] == 1


def test_revocations_verified_then_applied_by_the_holder(sb: Sandbox) -> None:
    store = sb.new_store()
    revset = RevocationSet(store)
    applied: list[int] = []
    dl = Downlink(gate="g1", site="s1", trust=store,
                  on_revocations=lambda item: applied.append(revset.apply(item.raw, now=sb.epoch)))
    pid = os.urandom(16)
    dl.handle(topics.REVOCATION_SNAPSHOT, sb.revocations([pid]), True)
    assert pid in revset
    gap = sb.revoke(os.urandom(16))  # version 2
    delta3 = sb.revoke(os.urandom(16))  # version 3, base 2
    dl.handle(topics.REVOCATION_DELTA, delta3, False)  # gap: the holder refuses
    assert dl.stats.refused.get("revocation_delta") == 1
    dl.handle(topics.REVOCATION_DELTA, gap, False)
    dl.handle(topics.REVOCATION_DELTA, delta3, False)
    assert applied == [1, 2, 3]


def test_used_permit_batches_apply_in_any_order_once(sb: Sandbox) -> None:
    rec = Recorder()
    dl = make_downlink(sb, rec)
    t = topics.site_used("s1")
    for v in (3, 1, 2, 3):
        dl.handle(t, sb.sign_document("used_permits", {"site": "s1", "ph": [f"{v:032x}"]},
                                      version=v), False)
    assert rec.versions("used") == [3, 1, 2]
    assert dl.stats.stale["used_permits"] == 1 and not dl.stats.refused


def _publish(port: int, topic: str, payload: bytes, *, retain: bool) -> None:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                    client_id=f"centre-pub-{time.monotonic_ns()}")
    assert c.connect("127.0.0.1", port, 30) == MQTTErrorCode.MQTT_ERR_SUCCESS
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos=1, retain=retain)
        assert info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.mark.broker
def test_gate_sync_end_to_end_with_queued_used_permits(tmp_path: Path, broker: Any,
                                                        sb: Sandbox) -> None:
    site = f"s-{time.monotonic_ns()}"
    rec = Recorder()
    cfg = BrokerConfig(port=broker.port, client_id=f"gp-gate-dl-{time.monotonic_ns()}",
                       reconnect_min_s=0.1, reconnect_max_s=0.3)

    def gate_sync(versions: dict[str, int] | None = None) -> GateSync:
        return GateSync(gate_id="gdl", site=site, db_path=tmp_path / "ledger.db", broker=cfg,
                        trust=sb.new_store(), on_trust_list=rec.cb("trust"),
                        on_time_beacon=rec.cb("time"), on_used_permits=rec.cb("used"),
                        on_config=rec.cb("config"), versions=versions)

    _publish(broker.port, topics.config("gdl"),
             sb.sign_document("gate_config", {"gate": "gdl"}, version=4), retain=True)
    with gate_sync() as gs:
        wait_for(lambda: gs.status().connected and rec.versions("config") == [4], 10,
                 "connected, retained config applied")
        gs.publish_health({"clock": "synced", "fps": 14.5})
        versions = gs.downlink.versions()
    # Offline: the centre sends a used-permit batch; the persistent session keeps it.
    _publish(broker.port, topics.site_used(site),
             sb.sign_document("used_permits", {"site": site, "ph": ["ab" * 16]}, version=1),
             retain=False)
    with gate_sync(versions) as gs:
        wait_for(lambda: rec.versions("used") == [1], 10, "queued used-permit batch delivered")
        _publish(broker.port, topics.TIME, b"unsigned beacon", retain=False)  # QoS 0: live
        wait_for(lambda: gs.status().downlink_refused.get("time_beacon") == 1, 10,
                 "unsigned beacon refused")
        st = gs.status()
        assert st.connected and st.downlink_applied["used_permits"] == 1
        assert st.downlink_stale.get("gate_config") == 1  # retained replay, not re-applied
        assert rec.versions("config") == [4] and "time" not in rec.items
        assert gs.backlog() == 0
    gs.close()  # twice is fine


def test_callback_failure_counts_refused_and_keeps_the_version(sb: Sandbox) -> None:
    calls: list[int] = []

    def broken(item: DownlinkItem) -> None:
        calls.append(item.version)
        if len(calls) == 1:
            raise ValueError("body not understood")

    dl = Downlink(gate="g1", site="s1", trust=sb.new_store(), on_config=broken)
    raw = sb.sign_document("gate_config", {"gate": "g1"}, version=3)
    dl.handle(topics.config("g1"), raw, True)
    assert dl.stats.refused == {"gate_config": 1} and "gate_config" not in dl.versions()
    dl.handle(topics.config("g1"), raw, True)  # the same item again is tried again
    assert calls == [3, 3] and dl.stats.applied == {"gate_config": 1}
