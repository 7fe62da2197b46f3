"""Issue #9 items 3 and 4 against the real deployment: Mosquitto from the shipped
deploy/mosquitto files (deployment.py), the real aggregator on PostgreSQL with a signed
gate registry, two sites and three registered gates on real GateLinks that sign their
batches. Each test fails if its attack works: on the code before the gate registry an
admission claiming madinah from a makkah gate was counted at madinah and sent in
madinah's used-permit stream, and a pre-empted seq made the real gate delete its row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deployment import missing_tools
from identity_helpers import (
    DEADLINE_S,
    UNREGISTERED,
    Deployment,
    deployment,
    event,
    wait_for,
)

from central.dashboard.api import build_summary
from sync import topics
from verifier.keys import SigningKey

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


@pytest.fixture
def dep(tmp_path: Path, postgres_url: str) -> Iterator[Deployment]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    with deployment(tmp_path, postgres_url) as d:
        yield d


def admitted_at(d: Deployment, site: str) -> int:
    return sum(r.admitted for r in d.store.counts() if r.site == site)


def refused(d: Deployment, gate: str, kind: str, n: int = 1) -> None:
    wait_for(lambda: d.anomalies(gate).count(kind) >= n, DEADLINE_S, f"{kind} anomaly for {gate}")


def test_an_admission_claiming_another_site_is_refused(dep: Deployment) -> None:
    d = dep
    watch_m = d.watcher("madinah")
    # gate-a (makkah-haram), with its own key and credentials, claims madinah.
    forged = event("gate-a", 1, site="madinah")
    rogue = d.client("gate-a")
    rogue.publish(topics.events("gate-a"), d.signed_batch("gate-a", [forged]))
    refused(d, "gate-a", "wrong_site")
    rogue.close()
    d.clients.remove(rogue)
    # Then a genuine madinah admission: its used-permit batch is the positive control that
    # the stream flows, and the centre handled the forged batch before it (one worker).
    m = d.gate("gate-m")
    m_ev = m.admit(1)[0]
    wait_for(lambda: m.backlog() == 0, DEADLINE_S, "gate-m acknowledged")
    wait_for(lambda: any(r[0] == m_ev.ph for doc in d.used_docs(watch_m, "madinah")
                         for r in doc), DEADLINE_S, "madinah's used batch for gate-m")
    rows = [r for doc in d.used_docs(watch_m, "madinah") for r in doc]
    assert forged.ph not in {r[0] for r in rows}  # a madinah pilgrim is not refused for it
    assert {r[1] for r in rows} == {"gate-m"}
    assert d.store.stored_keys("gate-a") == []  # not stored, so never acknowledged
    assert admitted_at(d, "madinah") == 1  # gate-m's pilgrim only
    assert {r.gate for r in d.store.counts() if r.site == "madinah"} == {"gate-m"}
    summary = build_summary(d.store, [], time.time())
    assert any(a["kind"] == "wrong_site" and a["gate"] == "gate-a"
               for a in summary["anomalies"]["recent"])


@pytest.mark.parametrize("attack", ["unregistered", "unsigned", "other_key", "wrong_group",
                                    "wrong_mode"])
def test_unregistered_unsigned_badly_signed_or_misgrouped_batches_are_refused(
        dep: Deployment, attack: str) -> None:
    d = dep
    gate = UNREGISTERED if attack == "unregistered" else "gate-b"
    ev = event(gate, 1)
    if attack == "unregistered":
        payload = d.signed_batch(gate, [ev], groups=["south"])
        kind = "unregistered_gate"
    elif attack == "unsigned":
        payload = d.signed_batch(gate, [ev], sign=False)
        kind = "unsigned_batch"
    elif attack == "other_key":
        payload = d.signed_batch(gate, [ev], key=d.keys["gate-a"])
        kind = "bad_signature"
    elif attack == "wrong_group":
        payload = d.signed_batch(gate, [ev], groups=["north"])  # gate-a's group
        kind = "wrong_group"
    else:
        from dataclasses import replace
        payload = d.signed_batch(gate, [replace(ev, mode="boarding")])
        kind = "wrong_mode"
    rogue = d.client(gate)
    rogue.publish(topics.events(gate), payload)
    refused(d, gate, kind)
    rogue.close()
    d.clients.remove(rogue)
    assert d.store.stored_keys(gate) == []
    assert sum(r.events for r in d.store.counts() if r.gate == gate) == 0
    # The genuine gate-b on the same deployment is accepted and acknowledged: the check
    # refuses the attack, not gates.
    b = d.gate("gate-b")
    real = b.admit(2)
    wait_for(lambda: b.backlog() == 0, DEADLINE_S, "genuine gate-b acknowledged")
    assert d.store.stored_keys("gate-b") == [(e.seq, e.eid) for e in real]


def test_a_gate_whose_config_names_other_groups_is_refused_whole(dep: Deployment) -> None:
    d = dep
    g = d.gate("gate-b", groups=["north", "south"])  # config drifted from the registry
    g.admit(3)
    refused(d, "gate-b", "wrong_group")
    time.sleep(1.5)  # an ack would have come by now; none may
    assert g.backlog() == 3 and d.store.stored_keys("gate-b") == []


def test_used_batches_for_a_site_hold_only_that_sites_gates(dep: Deployment) -> None:
    d = dep
    wh = d.watcher("makkah-haram")
    wm = d.watcher("madinah")
    gates = {name: d.gate(name) for name in ("gate-a", "gate-b", "gate-m")}
    evs = {name: g.admit(3) for name, g in gates.items()}
    for name, g in gates.items():
        wait_for(lambda g=g: g.backlog() == 0, DEADLINE_S, f"{name} acknowledged")
    wait_for(lambda: sum(len(r) for r in d.used_docs(wh, "makkah-haram")) >= 6, DEADLINE_S,
             "makkah-haram used permits")
    rows = [r for doc in d.used_docs(wh, "makkah-haram") for r in doc]
    assert {r[1] for r in rows} == {"gate-a", "gate-b"}
    assert {r[0] for r in rows} == {e.ph for n in ("gate-a", "gate-b") for e in evs[n]}
    wait_for(lambda: sum(len(r) for r in d.used_docs(wm, "madinah")) >= 3, DEADLINE_S,
             "madinah used permits")
    assert {r[1] for doc in d.used_docs(wm, "madinah") for r in doc} == {"gate-m"}
    assert admitted_at(d, "madinah") == 3 and admitted_at(d, "makkah-haram") == 6


def test_a_preempted_seq_is_never_acknowledged_as_the_gates(
        dep: Deployment, caplog: pytest.LogCaptureFixture) -> None:
    d = dep
    caplog.set_level(logging.ERROR, logger="central.aggregator")
    a = d.gate("gate-a")
    first = a.admit(3)
    wait_for(lambda: a.backlog() == 0, DEADLINE_S, "gate-a's first three acknowledged")
    a.link.close()  # the gate is between connections (the broker lets one client per id)
    # A second device holding gate-a's key and credentials (a cloned SD card) sends the
    # gate's NEXT seq first, with another event id.
    fake = event("gate-a", 4)
    clone = d.client("gate-a")
    clone.publish(topics.events("gate-a"), d.signed_batch("gate-a", [fake]))
    wait_for(lambda: (4, fake.eid) in d.store.stored_keys("gate-a"), DEADLINE_S,
             "the centre stores the clone's seq 4")
    clone.close()
    d.clients.remove(clone)
    # The real gate-a admits its own seq 4 and comes back.
    real = a.admit(1)[0]
    a3 = a.restart()
    wait_for(lambda: d.store.seq_alarm_count() == 1, DEADLINE_S, "seq alarm raised")
    wait_for(lambda: a3.link.status().republishes >= 1, DEADLINE_S, "the gate resends seq 4")
    # The gate keeps its row: no ack named its event id.
    assert a3.pending() == {4: real.eid}
    assert a3.link.status().acked_through == 3
    assert a3.link.status().ack_mismatches >= 1  # the clone's ack named another id
    # The centre acknowledges gate-a only below the taken seq (the same store call the
    # aggregator makes, run once more).
    assert d.store.add_events([real], now=time.time()).acks == {"gate-a": 3}
    # The alarm is visible: store table, dashboard API, Prometheus, log line.
    (alarm,) = d.store.seq_alarms(open_only=True)
    assert (alarm.gate, alarm.seq, alarm.eid, alarm.stored_eid) == ("gate-a", 4, real.eid,
                                                                    fake.eid)
    assert build_summary(d.store, [], time.time())["seq_alarms"]["open"] == 1
    assert _metric(d, "gatepass_central_seq_conflicts_total") >= 1
    assert _metric(d, "gatepass_seq_alarms_open") == 1
    assert any("two devices speak as gate gate-a" in r.getMessage() for r in caplog.records)
    # The operator resolves it for the real event: the clone's is quarantined, uncounted.
    what = d.store.resolve_seq_alarm("gate-a", 4, real.eid, now=time.time())
    assert "quarantined" in what
    wait_for(lambda: a3.backlog() == 0, DEADLINE_S, "the real seq 4 acknowledged after resolution")
    assert d.store.stored_keys("gate-a") == [(e.seq, e.eid) for e in [*first, real]]
    assert sum(r.admitted for r in d.store.counts() if r.gate == "gate-a") == 4
    assert d.store.seq_alarm_count() == 0
    more = a3.admit(2)
    wait_for(lambda: a3.backlog() == 0, DEADLINE_S, "later admissions flow again")
    assert d.store.stored_keys("gate-a")[-2:] == [(e.seq, e.eid) for e in more]


def test_a_preemption_without_the_gates_key_is_refused_outright(dep: Deployment) -> None:
    d = dep
    # Only broker credentials were stolen: the forged seq 1 is not signed by gate-a's key.
    fake = event("gate-a", 1)
    rogue = d.client("gate-a")
    rogue.publish(topics.events("gate-a"), d.signed_batch("gate-a", [fake],
                                                          key=SigningKey.generate()))
    refused(d, "gate-a", "bad_signature")
    rogue.close()
    d.clients.remove(rogue)
    a = d.gate("gate-a")
    real = a.admit(1)
    wait_for(lambda: a.backlog() == 0, DEADLINE_S, "the real seq 1 acknowledged")
    assert d.store.stored_keys("gate-a") == [(1, real[0].eid)]
    assert d.store.seq_alarm_count() == 0


def _metric(d: Deployment, name: str) -> float:
    from prometheus_client import generate_latest

    from central.metrics import StoreCollector

    reg: Any = d.aggregator.metrics.registry
    if not getattr(d, "_collector", None):
        reg.register(StoreCollector(d.store))
        d._collector = True  # type: ignore[attr-defined]
    for line in generate_latest(reg).decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
