"""Signed downlink: time beacons, the used-permit stream, relayed trust lists/revocations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from central_helpers import Listener, broker_config, make_event, ph_of, wait_for

from central.aggregator import Aggregator
from central.downlink import DownlinkSigner
from central.errors import DocumentNotNewer, DownlinkError
from central.store import open_store
from sync import topics, wire
from verifier import documents
from verifier.keys import SigningKey
from verifier.sandbox import Sandbox

pytestmark = pytest.mark.broker
NOW = 1_780_000_123.5


def test_beacons_used_stream_and_relayed_documents_are_signed(
    broker: Any, tmp_path: Path
) -> None:
    sb = Sandbox.create(sites=("haram",), seed=5)
    gate_trust = sb.new_store()  # what a gate holds: verifies everything below
    listener = Listener(broker.port, [topics.TIME, "gp/v1/sites/+/used", topics.TRUST,
                                      topics.REVOCATION_SNAPSHOT, topics.REVOCATION_DELTA,
                                      topics.config("down1")])
    try:
        with open_store(f"sqlite:///{tmp_path}/c.db") as store, Aggregator(
            store=store, broker=broker_config(broker.port), client_id="agg-down",
            signer=DownlinkSigner(key=sb.central), trust=sb.new_store(),
            clock=lambda: NOW, time_beacon_period_s=0.2,
        ) as agg:
            wait_for(lambda: agg.connected, 30, "aggregator connected")
            wait_for(lambda: bool(listener.on(topics.TIME)), 10, "a time beacon")
            version, body = documents.open_document(
                listener.on(topics.TIME)[0], documents.KIND_TIME_BEACON, gate_trust, now=NOW)
            assert body == {"t": NOW} and version == int(NOW * 1000)

            phs = [ph_of(i) for i in range(3)]
            evs = [make_event("down1", i + 1, ph=ph) for i, ph in enumerate(phs)]
            evs.append(make_event("down1", 4, verdict="deny"))
            listener.publish(topics.events("down1"), wire.encode_batch("down1", evs))
            used_topic = topics.site_used("haram")
            wait_for(lambda: bool(listener.on(used_topic)), 10, "used-permit batch")
            _, used = documents.open_document(
                listener.on(used_topic)[0], documents.KIND_USED_PERMITS, gate_trust, now=NOW)
            assert used["site"] == "haram"
            assert sorted(u[0] for u in used["used"]) == sorted(phs)  # denials not listed

            snap = sb.revocations()
            given = agg.give(snap)
            assert (given.kind, given.version) == (documents.KIND_REVOCATION_SNAPSHOT, 1)
            snap2 = sb.revocations()  # the next snapshot version
            agg.give(snap2)
            wait_for(lambda: len(listener.on(topics.REVOCATION_SNAPSHOT)) >= 2, 10, "relay")
            assert listener.on(topics.REVOCATION_SNAPSHOT)[-1] == snap2
            newer = sb.publish_trust_list()
            assert agg.give(newer).version == sb.trust_version
            wait_for(lambda: newer in listener.on(topics.TRUST), 10, "trust list relayed")

            with pytest.raises(DownlinkError):  # an older trust list: rollback
                agg.give(sb.sign_trust_list(1))
            with pytest.raises(DownlinkError):  # a key nobody trusts
                agg.give(documents.sign_document(
                    documents.KIND_REVOCATION_SNAPSHOT, {}, 99, SigningKey.generate()))
            with pytest.raises(DownlinkError):  # the right signer, a kind not relayed
                agg.give(sb.sign_document(documents.KIND_TIME_BEACON, {"t": 1}, 5))
            with pytest.raises(DownlinkError):
                agg.give(b"\x00garbage")
            agg.send_gate_config("down1", {"policy": {"reentry": False}}, 3)
            for older in (3, 2):  # the retained config is never replaced by an older one
                with pytest.raises(DocumentNotNewer):
                    agg.send_gate_config("down1", {"policy": {"reentry": True}}, older)
            wait_for(lambda: bool(listener.on(topics.config("down1"))), 10, "gate config")
            _, cfg = documents.open_document(
                listener.on(topics.config("down1"))[0], documents.KIND_GATE_CONFIG, gate_trust,
                now=NOW)
            assert cfg == {"policy": {"reentry": False}, "gate": "down1"}
            kept = {(d.kind, d.version) for d in store.documents()
                    if not d.kind.startswith("gate_config.")}
            assert kept == {(documents.KIND_REVOCATION_SNAPSHOT, 1),
                            (documents.KIND_REVOCATION_SNAPSHOT, 2),
                            (documents.KIND_TRUST_LIST, sb.trust_version)}
    finally:
        listener.close()
