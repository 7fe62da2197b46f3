"""The agent end to end on real permits (sandbox PKI), a real SQLite ledger, simulated outputs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from agent_helpers import SLOT, FakeTime
from conftest import SITE, slot

from gate_agent.agent import GateAgent
from gate_agent.console.backend import NotFound
from gate_agent.errors import ConsoleRequestError
from verifier.permit import permit_hash
from verifier.sandbox import Sandbox

MakeAgent = Callable[..., GateAgent]


def relay_pulses(agent: GateAgent) -> int:
    return len(agent.outputs.pulses("relay"))  # type: ignore[union-attr]


def test_admit_then_already_used(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent()
    raw = sandbox.issue(site=SITE, slot=slot(), initials="MK", doc_number="X9876543")
    first = agent.submit_payload(raw)
    assert first["verdict"] == "admit" and first["admitted"] == 1
    assert first["permit"]["initials"] == "MK"
    assert relay_pulses(agent) == 1
    second = agent.submit_payload(raw)
    assert (second["verdict"], second["reason"]) == ("deny", "already_used")
    assert relay_pulses(agent) == 1
    events = [r.event for r in agent.ledger.events()]
    assert [e.seq for e in events] == [1, 2]
    assert [e.verdict for e in events] == ["admit", "deny"]
    assert events[0].ph == first["permit"]["ph"] and events[0].tc == "synced"
    assert agent.ledger.outbox_backlog() == 2  # same transaction: every event is queued
    snap = agent.snapshot()
    assert snap["counters"]["gate_admitted"] == 1 and snap["counters"]["gate_denied"] == 1
    assert snap["counters"]["slot_admitted"] == 1
    assert snap["recent"][0]["verdict"] == "deny"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello world", None),
        ("GP1:" + "A" * 5000, "too_large"),
        ("", None),
        ("\x00\x01\x02", None),
        ("GP1:%%%%", None),
    ],
)
def test_garbage_payloads_are_refused_not_crashing(
    make_agent: MakeAgent, text: str, reason: str | None
) -> None:
    agent = make_agent()
    try:
        d = agent.submit_payload(text)
    except ConsoleRequestError:
        assert not text.strip("\x00\x01\x02 ") or not text.strip()
        return
    assert d["verdict"] == "deny" and d["reason"]
    if reason:
        assert d["reason"] == reason
    assert relay_pulses(agent) == 0


def test_forged_and_wrong_site(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent()
    other = Sandbox.create(sites=(SITE,), seed="someone-else")
    assert agent.submit_payload(other.issue(site=SITE, slot=slot()))["reason"] == "unknown_key"
    d = agent.submit_payload(sandbox.issue(site="madinah", slot=slot()))
    assert d["reason"] == "wrong_site"


def test_slot_window_with_grace(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime
) -> None:
    fake_time.wall = SLOT - 601
    agent = make_agent(permits={"early_grace_s": 600, "late_grace_s": 0})
    assert agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))["reason"] == "too_early"
    fake_time.advance(2)
    assert agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))["verdict"] == "admit"


def test_revocation_from_sync(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent()
    raw = sandbox.issue(site=SITE, slot=slot())
    agent.on_revocations(sandbox.revoke(raw))
    assert agent.submit_payload(raw)["reason"] == "revoked"


def test_untrusted_clock_then_operator_override(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime
) -> None:
    fake_time.synced = False
    agent = make_agent(clock={"system": "timedatectl"})
    snap = agent.snapshot()
    assert snap["clock"]["trusted"] is False and snap["clock"]["banner"]
    raw = sandbox.issue(site=SITE, slot=slot())
    d = agent.submit_payload(raw)
    assert d["verdict"] == "untrusted_time" and relay_pulses(agent) == 0
    with pytest.raises(ConsoleRequestError):
        agent.time_override("ok")  # a reason is required
    clock = agent.time_override("checked against supervisor's phone at 14:02")
    assert clock["state"] == "override" and clock["trusted"]
    d = agent.submit_payload(raw)
    assert d["verdict"] == "admit" and "time_override" in d["flags"]
    kinds = [r.event.kind for r in agent.ledger.events()]
    assert kinds == ["scan", "time_override", "scan"]


def test_time_beacon_from_sync(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime
) -> None:
    fake_time.synced = False
    real_now = fake_time.wall
    fake_time.wall = 1_600_000_000  # fake-hwclock restored an old time after a power cut
    agent = make_agent(clock={"system": "timedatectl"})
    raw = sandbox.issue(site=SITE, slot=slot())
    assert agent.submit_payload(raw)["verdict"] == "untrusted_time"
    agent.on_time_beacon(real_now, received_mono=fake_time.mono)
    d = agent.submit_payload(raw)
    assert d["verdict"] == "admit" and d["tc"] == "beacon"


def test_group_ask_partial_admission(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent(group={"admission": "ask"})
    raw = sandbox.issue(site=SITE, slot=slot(), party=5)
    d = agent.submit_payload(raw)
    assert d["awaiting_count"] and d["verdict"] == "admit" and d["admitted"] == 0
    assert relay_pulses(agent) == 0 and agent.ledger.last_seq() == 0
    with pytest.raises(ConsoleRequestError):
        agent.confirm_party(d["id"], 6)
    c = agent.confirm_party(d["id"], 3)
    assert (c["admitted"], c["remaining"]) == (3, 2) and "partial" in c["flags"]
    assert relay_pulses(agent) == 1
    with pytest.raises(ConsoleRequestError):
        agent.confirm_party(d["id"], 1)  # that decision is done
    again = agent.submit_payload(raw)
    assert again["awaiting_count"] and again["remaining"] == 2
    assert agent.confirm_party(again["id"], 2)["remaining"] == 0
    assert agent.submit_payload(raw)["reason"] == "already_used"
    assert agent.snapshot()["counters"]["gate_admitted"] == 5


def test_override_is_logged_and_counts(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent()
    d = agent.submit_payload(sandbox.issue(site=SITE, slot=slot(), ptype="hajj", party=2))
    assert d["reason"] == "wrong_type"
    o = agent.override("admit", "supervisor_approved", "ok by supervisor Omar", 2)
    assert o["kind"] == "override" and o["admitted"] == 2
    ev = list(agent.ledger.events())[-1].event
    assert (ev.kind, ev.verdict, ev.reason, ev.party) == ("override", "admit",
                                                          "supervisor_approved", 2)
    assert ev.ph == d["permit"]["ph"] and ev.note == "ok by supervisor Omar"
    with pytest.raises(ConsoleRequestError):
        agent.override("admit", "medical", "x" * 501, 1)
    with pytest.raises(ConsoleRequestError):
        agent.override("open-everything", "medical", "", 1)


def test_boarding_trip_and_manifest(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent(mode="boarding", permits={"types": ["shuttle"]})
    raw = sandbox.issue(site=SITE, slot=slot(), ptype="shuttle", route="haram-aziziyah",
                        departure=SLOT + 600, party=2, initials="ZK")
    assert agent.submit_payload(raw)["reason"] == "no_trip_open"
    trip = agent.open_trip("B17", "haram-aziziyah", SLOT + 600, 3)
    with pytest.raises(ConsoleRequestError):
        agent.open_trip("B18", "haram-aziziyah", SLOT + 600, 3)
    assert agent.submit_payload(raw)["verdict"] == "admit"
    third = sandbox.issue(site=SITE, slot=slot(), ptype="shuttle", route="haram-aziziyah",
                          departure=SLOT + 600, party=2)
    assert agent.submit_payload(third)["reason"] == "trip_full"
    wrong = sandbox.issue(site=SITE, slot=slot(), ptype="shuttle", route="haram-mina")
    assert agent.submit_payload(wrong)["reason"] == "wrong_route"
    assert agent.snapshot()["trip"]["boarded"] == 2
    closed = agent.close_trip()
    assert closed["closed_at"] is not None and closed["boarded"] == 2
    rows = agent.manifest(trip["id"])
    assert [(r["initials"], r["party"]) for r in rows] == [("ZK", 2)]
    with pytest.raises(NotFound):
        agent.manifest("no-such-trip")
    with pytest.raises(ConsoleRequestError):
        agent.close_trip()
    with pytest.raises(ConsoleRequestError):
        agent.open_trip("B1", "bad route/../", 1, 3)


def test_counter_mode_inspects_and_logs(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent(mode="counter")
    raw = sandbox.issue(site=SITE, slot=slot(), party=3)
    d = agent.submit_payload(raw)
    assert d["verdict"] == "inspect" and d["would"]["verdict"] == "admit"
    assert relay_pulses(agent) == 0
    d2 = agent.submit_payload(raw)
    assert len(d2["history"]) == 1 and d2["history"][0]["kind"] == "inspect"
    assert [r.event.party for r in agent.ledger.events()] == [0, 0]
    with pytest.raises(ConsoleRequestError):
        agent.override("admit", "medical", "", 1)


def test_site_passback_uses_the_stream(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent(passback={"scope": "site", "offline": "soft", "stale_after_s": 0.2})
    a, b = (sandbox.issue(site=SITE, slot=slot()) for _ in range(2))
    ph_a = permit_hash(sandbox.permit_id(a))
    agent.on_link(True)
    agent.on_used_permits([(ph_a, "g2", SLOT + 30.0)])
    assert agent.submit_payload(a)["reason"] == "used_elsewhere"
    d = agent.submit_payload(b)
    assert d["verdict"] == "admit" and "offline_soft" not in d["flags"]
    agent.on_link(False)
    # Just cut: what the stream said until now still counts (stale_after_s).
    assert "offline_soft" not in agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))[
        "flags"]
    time.sleep(0.3)
    c = agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))
    assert c["verdict"] == "admit" and "offline_soft" in c["flags"]


def test_console_wait_for_change(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent()
    v = agent.version()
    got: list[int] = []
    th = threading.Thread(target=lambda: got.append(agent.wait_for_change(v, 5.0)))
    th.start()
    agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))
    th.join(5)
    assert got and got[0] > v
    assert agent.wait_for_change(agent.version(), 0.01) == agent.version()


def test_ledger_failure_keeps_the_gate_shut(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent()
    agent.ledger.close()  # e.g. the SD card went read-only
    d = agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))
    assert (d["verdict"], d["reason"]) == ("deny", "ledger_failure")
    assert relay_pulses(agent) == 0


def test_implements_console_backend(make_agent: MakeAgent) -> None:
    from gate_agent.console.backend import ConsoleBackend

    agent: Any = make_agent()
    assert isinstance(agent, ConsoleBackend)
    import json

    json.dumps(agent.snapshot())


def test_frame_loop_on_a_wedge_scanner(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    import io
    import time

    from hardware.sources import open_source

    permits = [sandbox.issue(site=SITE, slot=slot()) for _ in range(3)]
    stream = io.BytesIO(("\n".join([permits[0], "garbage", *permits[1:], permits[0]]) + "\n")
                        .encode())
    source = open_source({"kind": "wedge", "device": "stdin"}, stream=stream)
    agent = make_agent(source=source)
    agent.start()
    deadline = time.monotonic() + 10
    while agent.ledger.last_seq() < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    agent.close()
    agent.close()  # safe twice
    events = [r.event for r in agent.ledger.events()]
    assert [(e.verdict, e.reason) for e in events] == [
        ("admit", None), ("deny", "malformed"), ("admit", None), ("admit", None),
        ("deny", "already_used"),
    ]
    assert [t.name for t in threading.enumerate() if t.name.startswith("gate-agent")] == []


def test_restart_after_power_cut_with_clock_set_back(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime
) -> None:
    agent = make_agent()
    assert agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))["verdict"] == "admit"
    agent.close()
    agent.ledger.close()
    # Power cut; fake-hwclock restores a time 2 h earlier and (wrongly) "trust" is on.
    fake_time.wall -= 7200
    fake_time.mono = 5.0
    again = make_agent()
    d = again.submit_payload(sandbox.issue(site=SITE, slot=slot()))
    assert d["verdict"] == "untrusted_time"
    assert "before the last recorded event" in again.snapshot()["clock"]["banner"]


def test_an_unreadable_outbox_shows_as_unknown_never_as_zero(
    make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Operators check the backlog before they retire a ledger: an error must not read 0."""
    from gate_agent.errors import LedgerError

    agent = make_agent()

    def broken() -> int:
        raise LedgerError("ledger gate.db read failed: disk I/O error")

    monkeypatch.setattr(agent.ledger, "outbox_backlog", broken)
    health = agent.snapshot()["health"]
    assert health["sync_backlog"] is None
    assert "disk I/O error" in health["sync_backlog_error"]
    agent._refresh_health()  # the Prometheus gauge says "unknown" (NaN), not 0
    gauge = agent.metrics_registry.get_sample_value("gatepass_agent_sync_backlog")
    assert gauge is not None and gauge != gauge
    monkeypatch.undo()
    health = agent.snapshot()["health"]
    assert health["sync_backlog"] == 0 and health["sync_backlog_error"] is None
