"""A deterministic day at a site: gates, slots, permits, arrivals, bus trips and outages.

Everything derives from ``(seed, gates, permits, hours)``, so the coordinator (which needs
the revoked permit ids for the trust bundle) and every worker process (which needs its
gates' arrivals) compute the same plan without passing a million permits around. Permits
are minted lazily, just before a gate sees them, with the sandbox keys that
:func:`sandbox` rebuilds from the seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from verifier.sandbox import EPOCH, Sandbox, derive_key

SITE: Final = "makkah-haram"
OTHER_SITE: Final = "madinah-nabawi"
SLOT_S: Final = 3600
EARLY_GRACE_S: Final = 900
LATE_GRACE_S: Final = 1800
TRIP_PEOPLE: Final = 450  # people per bus trip at most (seats 500: a margin for groups)
DAY_START: Final = (EPOCH // SLOT_S + 1) * SLOT_S

#: Share of permits in each category; the rest are valid first presentations.
CATEGORIES: Final = (
    ("early", 0.015),  # arrives long before its slot: too_early
    ("late", 0.015),  # arrives long after its slot: too_late
    ("forged", 0.008),  # signed by a key no trust list names: unknown_key
    ("tampered", 0.005),  # a valid permit with a byte changed: bad_signature / malformed
    ("revoked", 0.01),  # revoked before the day: revoked
    ("wrong_site", 0.007),  # for the other site: wrong_site
    ("dup_same", 0.02),  # shown again at the same gate later: already_used
    ("dup_other", 0.015),  # shown again at another entrance (gates cannot see each other)
)


@dataclass(frozen=True, slots=True)
class GateSpec:
    """One simulated gate."""

    index: int
    gate: str
    mode: str  # "entrance" | "boarding"
    route: str | None = None


@dataclass(frozen=True, slots=True)
class PermitPlan:
    """One permit and its presentation(s); minted only when presented."""

    index: int
    gate: int
    category: str
    slot: int  # slot start
    party: int
    arrive: float  # first presentation time
    again_gate: int | None = None  # second presentation (dup_same / dup_other)
    again_t: float | None = None
    route: str | None = None
    departure: int | None = None


@dataclass(slots=True)
class Action:
    """What happens at a gate at time ``t``: a scan, or the attendant opening/closing a trip."""

    t: float
    kind: str  # "scan" | "open" | "close"
    permit: PermitPlan | None = None
    trip: tuple[str, str, int, int] | None = None  # bus, route, departure, seats


@dataclass(slots=True)
class DayPlan:
    """The whole day: gates, permits, outages and the permits revoked beforehand."""

    seed: int
    hours: int
    gates: list[GateSpec]
    permits: list[PermitPlan]
    outages: dict[int, tuple[float, float]] = field(default_factory=dict)
    _by_gate: dict[int, list[Action]] | None = None

    def scans(self, gate: int) -> list[Action]:
        """Gate ``gate``'s presentations (one pass over the plan for all gates)."""
        if self._by_gate is None:
            by: dict[int, list[Action]] = {g.index: [] for g in self.gates}
            for p in self.permits:
                by[p.gate].append(Action(p.arrive, "scan", p))
                if p.again_gate is not None and p.again_t is not None:
                    by[p.again_gate].append(Action(p.again_t, "scan", p))
            self._by_gate = by
        return list(self._by_gate[gate])

    @property
    def start(self) -> int:
        return DAY_START

    @property
    def end(self) -> int:
        return DAY_START + self.hours * SLOT_S

    def revoked_ids(self) -> list[bytes]:
        return [permit_id(self.seed, p.index) for p in self.permits if p.category == "revoked"]


def permit_id(seed: int, index: int) -> bytes:
    """The permit id of permit ``index``: reproducible, so restarts re-mint the same permit."""
    return hashlib.sha256(f"gatepass-sim/{seed}/{index}".encode()).digest()[:16]


def gate_specs(n: int) -> list[GateSpec]:
    """Entrance lanes, with every fourth gate (from the third) a bus boarding point."""
    specs = []
    for i in range(n):
        boarding = n >= 3 and i % 4 == 2
        specs.append(GateSpec(
            index=i, gate=f"{'bus' if boarding else 'lane'}-{i + 1:03d}",
            mode="boarding" if boarding else "entrance",
            route=f"R{i + 1:03d}" if boarding else None,
        ))
    return specs


def _category(rng: random.Random) -> str:
    x = rng.random()
    for name, share in CATEGORIES:
        if x < share:
            return name
        x -= share
    return "valid"


def plan_day(*, seed: int, gates: int, permits: int, hours: int) -> DayPlan:
    """The day's plan: which permit arrives where and when (see the module docstring)."""
    if gates < 1 or permits < 1 or hours < 1:
        raise ValueError("gates, permits and hours must be at least 1")
    rng = random.Random(f"gatepass-sim/{seed}")
    specs = gate_specs(gates)
    entrances = [g.index for g in specs if g.mode == "entrance"]
    out: list[PermitPlan] = []
    for j in range(permits):
        g = j % gates
        cat = _category(rng)
        slot = DAY_START + rng.randrange(hours) * SLOT_S
        party = rng.choices((1, 2, 3, 4, 5), (50, 20, 15, 10, 5))[0]
        if cat == "early":
            arrive = slot - EARLY_GRACE_S - 600 - rng.random() * 1200
        elif cat == "late":
            arrive = slot + SLOT_S + LATE_GRACE_S + 600 + rng.random() * 1200
        else:
            arrive = slot - 600 + rng.random() * (SLOT_S + 1200)
        again_gate: int | None = None
        again_t: float | None = None
        if cat == "dup_other" and (specs[g].mode != "entrance" or len(entrances) < 2):
            cat = "dup_same"
        if cat == "dup_same":
            again_gate, again_t = g, arrive + 60 + rng.random() * 600
        elif cat == "dup_other":
            again_gate = rng.choice([e for e in entrances if e != g])
            again_t = arrive + 30 + rng.random() * 600
        out.append(PermitPlan(j, g, cat, slot, party, arrive, again_gate, again_t,
                              route=specs[g].route))
    plan = DayPlan(seed=seed, hours=hours, gates=specs, permits=out)
    # A network outage at about one gate in five (at least one): 30 to 120 minutes.
    cut = rng.sample(range(gates), max(1, gates // 5))
    for g in cut:
        t0 = DAY_START + rng.random() * max(1, hours * SLOT_S - 1800)
        plan.outages[g] = (t0, t0 + 1800 + rng.random() * 5400)
    return plan


def actions_for(plan: DayPlan, gate: int) -> list[Action]:
    """Gate ``gate``'s actions in time order; boarding gates get trips filled in order."""
    acts = plan.scans(gate)
    acts.sort(key=lambda a: (a.t, a.permit.index if a.permit else -1))
    spec = plan.gates[gate]
    if spec.mode != "boarding":
        return acts
    return _with_trips(acts, spec)


def _with_trips(acts: list[Action], spec: GateSpec) -> list[Action]:
    # Buses leave one after another: a trip closes when full (by the plan's head count)
    # and the next one opens. A permit names the departure of the trip it was sold for.
    out: list[Action] = []
    people = 0
    trip_no = 0
    open_until: float | None = None
    pending: list[Action] = []

    def flush() -> None:
        nonlocal trip_no
        if not pending:
            return
        trip_no += 1
        first, last = pending[0].t, pending[-1].t
        departure = int(last) + 300
        bus = f"{spec.gate}-bus{trip_no}"
        assert spec.route is not None
        out.append(Action(first - 1, "open", trip=(bus, spec.route, departure, 500)))
        for a in pending:
            assert a.permit is not None
            if a.permit.departure is None:
                # First presentation fixes the permit's departure (its ticket).
                object.__setattr__(a.permit, "departure", departure)
            out.append(a)
        out.append(Action(last + 1, "close"))
        pending.clear()

    for a in acts:
        assert a.permit is not None
        if open_until is not None and (a.t > open_until or people + a.permit.party
                                       > TRIP_PEOPLE):
            flush()
            people = 0
            open_until = None
        if open_until is None:
            open_until = a.t + 1500  # a bus waits at most 25 minutes
        pending.append(a)
        people += a.permit.party
    flush()
    return out


def sandbox(seed: int) -> Sandbox:
    """The day's keys: the same in every process for the same seed."""
    return Sandbox.create(sites=(SITE, OTHER_SITE), seed=f"gatepass-sim/{seed}")


class Minter:
    """Mints the permits of a plan with the sandbox keys (and a forger's key)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.sb = sandbox(seed)
        self._key = self.sb.specs["es256"].key
        self._forger = derive_key(f"gatepass-sim/{seed}", "forger", "ES256")

    def text(self, p: PermitPlan) -> str:
        """The QR text of permit ``p`` (a forged or tampered one for those categories)."""
        from verifier.issue import issue_permit

        site = OTHER_SITE if p.category == "wrong_site" else SITE
        key = self._forger if p.category == "forged" else self._key
        issued = issue_permit(
            key, issuer=self.sb.issuer, issued_at=DAY_START - 86400,
            ptype="umrah", site=site, slot=(p.slot, p.slot + SLOT_S), party=p.party,
            gate_groups=("all",), initials="AB", doc_number=f"P{p.index:08d}",
            route=p.route, departure=p.departure, permit_id=permit_id(self.seed, p.index),
        )
        text = issued.text
        if p.category == "tampered":
            # Change one character of the signed part: the signature no longer matches.
            i = len(text) // 2
            text = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
        return text


def iter_expected(plan: DayPlan) -> Iterator[tuple[str, int]]:
    """(category, count) of the plan, for the summary."""
    counts: dict[str, int] = {}
    for p in plan.permits:
        counts[p.category] = counts.get(p.category, 0) + 1
    yield from sorted(counts.items())
