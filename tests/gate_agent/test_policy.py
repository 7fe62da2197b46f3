"""Gate policy on plain values: every refusal reason, groups, boarding, counter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agent_helpers import HOUR, SLOT, make_config, permit

from gate_agent.clock import TimeReading
from gate_agent.policy import GateState, TripState, Usage, decide, decide_refused
from gate_agent.reasons import GateReason, Verdict
from verifier.errors import PermitRefused, Reason

NOW = TimeReading(SLOT + 60, "synced")


def state(**kw: Any) -> GateState:
    return GateState(time=kw.pop("time", NOW), site_stream_fresh=kw.pop("fresh", True), **kw)


def test_admits_a_good_permit(tmp_path: Path) -> None:
    d = decide(permit(), make_config(tmp_path), state())
    assert (d.verdict, d.reason, d.party) == (Verdict.ADMIT, None, 1)


@pytest.mark.parametrize(
    ("permit_kw", "cfg_kw", "state_kw", "reason"),
    [
        ({"site": "madinah"}, {}, {}, GateReason.WRONG_SITE),
        ({"ptype": "hajj"}, {}, {}, GateReason.WRONG_TYPE),
        ({"gate_groups": ("south",)}, {}, {}, GateReason.WRONG_GATE_GROUP),
        ({"health": "isolation"}, {}, {}, GateReason.HEALTH_STATUS),
        ({}, {}, {"usage": Usage(1, SLOT)}, GateReason.ALREADY_USED),
        ({}, {"passback": {"scope": "site"}}, {"used_elsewhere": True}, GateReason.USED_ELSEWHERE),
        ({}, {"capacity": {"per_slot": 10}}, {"slot_admitted": 10}, GateReason.CAPACITY_FULL),
        ({"party": 4}, {"capacity": {"per_slot": 10}}, {"slot_admitted": 8},
         GateReason.CAPACITY_FULL),
        ({}, {"reentry": {"allowed": True, "cooldown_s": 600}},
         {"usage": Usage(1, SLOT)}, GateReason.REENTRY_TOO_SOON),
        ({}, {"reentry": {"allowed": True, "max_entries": 2, "cooldown_s": 0}},
         {"usage": Usage(2, SLOT)}, GateReason.ALREADY_USED),
    ],
)
def test_refusals(
    tmp_path: Path, permit_kw: dict[str, Any], cfg_kw: dict[str, Any],
    state_kw: dict[str, Any], reason: GateReason,
) -> None:
    d = decide(permit(**permit_kw), make_config(tmp_path, **cfg_kw), state(**state_kw))
    assert d.verdict == Verdict.DENY
    assert d.reason == reason.value
    assert d.party == 0


def test_reentry_after_cooldown(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, reentry={"allowed": True, "cooldown_s": 30})
    d = decide(permit(), cfg, state(usage=Usage(1, NOW.t - 31)))
    assert d.verdict == Verdict.ADMIT and d.party == 1


def test_any_gate_group_when_permit_names_none(tmp_path: Path) -> None:
    assert decide(permit(gate_groups=()), make_config(tmp_path), state()).verdict == "admit"


def test_untrusted_clock_is_its_own_verdict(tmp_path: Path) -> None:
    d = decide(permit(), make_config(tmp_path), state(time=TimeReading(SLOT, "untrusted")))
    assert d.verdict == Verdict.UNTRUSTED_TIME and d.reason == "untrusted_time"


@pytest.mark.parametrize(
    ("reason", "trusted", "verdict"),
    [
        (Reason.EXPIRED, False, Verdict.UNTRUSTED_TIME),
        (Reason.TOO_EARLY, False, Verdict.UNTRUSTED_TIME),
        (Reason.EXPIRED, True, Verdict.DENY),
        (Reason.BAD_SIGNATURE, False, Verdict.DENY),  # forged is forged at any time
    ],
)
def test_refused_permits(tmp_path: Path, reason: Reason, trusted: bool, verdict: Verdict) -> None:
    t = TimeReading(SLOT, "synced" if trusted else "untrusted")
    d = decide_refused(PermitRefused(reason), make_config(tmp_path), t)
    assert d.verdict == verdict


def test_override_clock_flags_the_event(tmp_path: Path) -> None:
    d = decide(permit(), make_config(tmp_path), state(time=TimeReading(SLOT, "override")))
    assert d.verdict == Verdict.ADMIT and "time_override" in d.flags


@pytest.mark.parametrize(("offline", "verdict"), [("strict", "deny"), ("soft", "admit")])
def test_site_passback_offline_policy(tmp_path: Path, offline: str, verdict: str) -> None:
    cfg = make_config(
        tmp_path, passback={"scope": "site", "offline": offline},
        broker={"host": "127.0.0.1", "port": 1883},
    )
    d = decide(permit(), cfg, state(fresh=False))
    assert d.verdict == verdict
    if offline == "strict":
        assert d.reason == GateReason.OFFLINE_UNCHECKED.value
    else:
        assert "offline_soft" in d.flags


def test_group_full_admission_and_partial_rest(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    d = decide(permit(party=5), cfg, state())
    assert (d.verdict, d.party) == (Verdict.ADMIT, 5)
    # Two of five went in earlier (attendant head count): the other three may follow.
    d = decide(permit(party=5), cfg, state(usage=Usage(2, SLOT)))
    assert (d.verdict, d.party, d.remaining) == (Verdict.ADMIT, 3, 0)


def test_group_ask_waits_for_a_head_count(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, group={"admission": "ask"}, capacity={"per_slot": 10})
    d = decide(permit(party=5), cfg, state(slot_admitted=7))
    assert d.verdict == Verdict.ADMIT and d.awaiting_count
    assert (d.party, d.remaining, d.max_count) == (0, 5, 3)


def trip(**kw: Any) -> TripState:
    base: dict[str, Any] = dict(
        trip_id="t1", bus="B7", route="haram-aziziyah", departure=SLOT, seats=40, boarded=0
    )
    base.update(kw)
    return TripState(**base)


@pytest.mark.parametrize(
    ("permit_kw", "trip_kw", "reason"),
    [
        ({}, None, GateReason.NO_TRIP_OPEN),
        ({"route": "haram-mina"}, {}, GateReason.WRONG_ROUTE),
        ({"departure": SLOT + 2 * HOUR}, {}, GateReason.WRONG_DEPARTURE),
        ({}, {"boarded": 40}, GateReason.TRIP_FULL),
        ({"party": 3}, {"boarded": 38}, GateReason.TRIP_FULL),
    ],
)
def test_boarding_refusals(
    tmp_path: Path, permit_kw: dict[str, Any], trip_kw: dict[str, Any] | None,
    reason: GateReason,
) -> None:
    cfg = make_config(tmp_path, mode="boarding")
    p = permit(**{"route": "haram-aziziyah", "departure": SLOT, **permit_kw})
    d = decide(p, cfg, state(trip=None if trip_kw is None else trip(**trip_kw)))
    assert (d.verdict, d.reason) == (Verdict.DENY, reason.value)


def test_boarding_admits_on_matching_trip(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, mode="boarding")
    p = permit(route="haram-aziziyah", departure=SLOT + 600, party=2)
    d = decide(p, cfg, state(trip=trip(boarded=10)))
    assert (d.verdict, d.party) == (Verdict.ADMIT, 2)


@pytest.mark.parametrize(
    ("permit_kw", "state_kw", "would", "reason"),
    [
        ({}, {}, Verdict.ADMIT, GateReason.NOT_ADMITTED_COUNTER_ONLY.value),
        ({"site": "other"}, {}, Verdict.DENY, GateReason.WRONG_SITE.value),
        ({}, {"usage": Usage(1, SLOT)}, Verdict.DENY, GateReason.ALREADY_USED.value),
    ],
)
def test_counter_only_inspects(
    tmp_path: Path, permit_kw: dict[str, Any], state_kw: dict[str, Any], would: Verdict,
    reason: str,
) -> None:
    cfg = make_config(tmp_path, mode="counter")
    d = decide(permit(**permit_kw), cfg, state(**state_kw))
    assert d.verdict == Verdict.INSPECT and d.party == 0
    assert d.would_verdict == would and d.reason == reason
