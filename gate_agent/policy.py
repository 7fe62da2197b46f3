"""Gate policy: a pure decision on a verified (or refused) permit plus the gate's state.

Verification (:func:`verifier.verify_at`) says whether a permit is genuine, unrevoked and
inside its slot window (with this gate's grace). Policy then says whether *this gate*
admits it *now*: site, type, gate group, health, trip, anti-passback, quota, seats and
clock trust. Nothing here reads a clock, a file or the ledger: the agent gathers a
:class:`GateState` and calls :func:`decide`, so every rule is testable with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from gate_agent.clock import TimeReading
from gate_agent.config import AgentConfig
from gate_agent.reasons import (
    FLAG_NO_LIVE_CODE,
    FLAG_OFFLINE_SOFT,
    FLAG_TIME_OVERRIDE,
    GateReason,
    Verdict,
)
from verifier.errors import PermitRefused, Reason

if TYPE_CHECKING:
    from verifier.permit import VerifiedPermit

#: Verifier refusals that depend on the clock: on an untrusted clock they prove nothing.
TIME_DEPENDENT: Final = frozenset(
    {
        Reason.NOT_YET_VALID, Reason.EXPIRED, Reason.ISSUED_IN_FUTURE, Reason.KEY_NOT_VALID,
        Reason.TOO_EARLY, Reason.TOO_LATE, Reason.PRESENTATION_EXPIRED,
        Reason.PRESENTATION_IN_FUTURE,
    }
)


@dataclass(frozen=True, slots=True)
class Usage:
    """What this gate's ledger knows about one permit in one slot."""

    admitted: int = 0  # people admitted so far (re-entries count again)
    last_t: float | None = None  # time of the last admission


@dataclass(frozen=True, slots=True)
class TripState:
    """The open bus trip (boarding mode)."""

    trip_id: str
    bus: str
    route: str
    departure: int
    seats: int
    boarded: int


@dataclass(frozen=True, slots=True)
class GateState:
    """Everything policy needs besides the permit; gathered by the agent per scan."""

    time: TimeReading
    usage: Usage = field(default_factory=Usage)
    used_elsewhere: bool = False  # the site-wide stream saw another gate admit it this slot
    site_stream_fresh: bool = False  # sync delivered the used-permit stream recently
    slot_admitted: int = 0  # people admitted at this gate for the permit's slot
    trip: TripState | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gate does with one scan. ``party`` people go in now (0 unless admit)."""

    verdict: Verdict
    reason: str | None = None
    party: int = 0
    remaining: int = 0  # of the party, still available for this slot after this decision
    awaiting_count: bool = False  # group 'ask' mode: the attendant confirms a head count
    max_count: int = 0  # the most the attendant may confirm
    flags: tuple[str, ...] = ()
    would_verdict: Verdict | None = None  # counter mode: what an entrance would do
    would_reason: str | None = None


def decide_refused(exc: PermitRefused, cfg: AgentConfig, time: TimeReading) -> Decision:
    """The decision for a permit that failed verification."""
    if exc.reason in TIME_DEPENDENT and not time.trusted:
        inner = Decision(Verdict.UNTRUSTED_TIME, GateReason.UNTRUSTED_TIME.value)
    else:
        inner = Decision(Verdict.DENY, exc.reason.value)
    return _as_counter(inner) if cfg.mode == "counter" else inner


def decide(permit: VerifiedPermit, cfg: AgentConfig, state: GateState) -> Decision:
    """The decision for a verified permit at this gate, in this state."""
    inner = _entrance_or_boarding(permit, cfg, state)
    return _as_counter(inner) if cfg.mode == "counter" else inner


def _as_counter(inner: Decision) -> Decision:
    reason = inner.reason if inner.verdict != Verdict.ADMIT else None
    return Decision(
        Verdict.INSPECT,
        reason or GateReason.NOT_ADMITTED_COUNTER_ONLY.value,
        remaining=inner.remaining,
        flags=inner.flags,
        would_verdict=inner.verdict,
        would_reason=reason,
    )


def _deny(reason: GateReason, remaining: int = 0) -> Decision:
    return Decision(Verdict.DENY, reason.value, remaining=remaining)


def _entrance_or_boarding(permit: VerifiedPermit, cfg: AgentConfig, state: GateState) -> Decision:
    rules = cfg.permits
    flags: list[str] = []
    if not state.time.trusted:
        return Decision(Verdict.UNTRUSTED_TIME, GateReason.UNTRUSTED_TIME.value)
    if state.time.confidence == "override":
        flags.append(FLAG_TIME_OVERRIDE)
    if permit.holder_key is not None and permit.presentation is None:
        # Shown bare (a static copy): verify_at refuses it under 'required' already; this
        # holds for any verify function the agent was given.
        if rules.presentation == "required":
            return Decision(Verdict.DENY, Reason.PRESENTATION_REQUIRED.value)
        if rules.presentation == "preferred":
            flags.append(FLAG_NO_LIVE_CODE)
    if permit.site != cfg.site:
        return _deny(GateReason.WRONG_SITE)
    if permit.ptype not in rules.types:
        return _deny(GateReason.WRONG_TYPE)
    if rules.gate_groups and permit.gate_groups and not (
        set(permit.gate_groups) & set(rules.gate_groups)
    ):
        return _deny(GateReason.WRONG_GATE_GROUP)
    if permit.health not in rules.accepted_health:
        return _deny(GateReason.HEALTH_STATUS)

    trip = state.trip
    if cfg.mode == "boarding":
        if trip is None:
            return _deny(GateReason.NO_TRIP_OPEN)
        if permit.route is not None and permit.route != trip.route:
            return _deny(GateReason.WRONG_ROUTE)
        if permit.departure is not None and (
            abs(permit.departure - trip.departure) > cfg.boarding.departure_tolerance_s
        ):
            return _deny(GateReason.WRONG_DEPARTURE)

    # Anti-passback: a party goes in once per slot; a partly admitted group keeps the rest.
    usage = state.usage
    party = max(permit.party, 1)
    rounds, partial = divmod(usage.admitted, party)
    remaining = party - partial
    if partial == 0 and rounds > 0:
        re = cfg.reentry
        if not re.allowed or rounds >= re.max_entries:
            return _deny(GateReason.ALREADY_USED)
        if usage.last_t is not None and state.time.t - usage.last_t < re.cooldown_s:
            return _deny(GateReason.REENTRY_TOO_SOON)
    if usage.admitted == 0 and cfg.passback.scope == "site":
        if state.used_elsewhere:
            return _deny(GateReason.USED_ELSEWHERE)
        if not state.site_stream_fresh:
            if cfg.passback.offline == "strict":
                return _deny(GateReason.OFFLINE_UNCHECKED, remaining)
            flags.append(FLAG_OFFLINE_SOFT)

    # Room: local quota per slot, seats on the bus.
    room = remaining
    if cfg.capacity.per_slot is not None:
        room = min(room, cfg.capacity.per_slot - state.slot_admitted)
        if room <= 0:
            return _deny(GateReason.CAPACITY_FULL, remaining)
    if cfg.mode == "boarding" and trip is not None:
        seats_left = trip.seats - trip.boarded
        if seats_left <= 0:
            return _deny(GateReason.TRIP_FULL, remaining)
        room = min(room, seats_left)
    ask = cfg.group.admission == "ask" and remaining > 1
    if room < remaining and not ask:
        # A group is never split silently: the attendant decides who goes in.
        full = GateReason.TRIP_FULL if cfg.mode == "boarding" and trip is not None and (
            trip.seats - trip.boarded < remaining) else GateReason.CAPACITY_FULL
        return _deny(full, remaining)
    if ask:
        return Decision(
            Verdict.ADMIT, None, party=0, remaining=remaining, awaiting_count=True,
            max_count=room, flags=tuple(flags),
        )
    return Decision(
        Verdict.ADMIT, None, party=remaining, remaining=0, max_count=remaining, flags=tuple(flags)
    )
