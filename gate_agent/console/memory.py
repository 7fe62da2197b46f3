"""An in-memory :class:`~gate_agent.console.backend.ConsoleBackend` that records every call.

For tests and for working on the page without a camera or a ledger (like gpiozero's
``MockFactory``): decisions come from a script (``add_permit``), every console action
lands in ``history`` so a test can assert that an override really reached the backend.
It applies no real gate policy: that is :class:`gate_agent.agent.GateAgent`'s job.
"""

from __future__ import annotations

import copy
import threading
import uuid
from typing import Any

from gate_agent.console.backend import ActionRefused, NotFound


class MemoryBackend:
    """Scripted console backend; ``history`` lists ``(method, arguments)`` in call order."""

    def __init__(
        self,
        *,
        gate: str = "gate-1",
        site: str = "haram",
        mode: str = "entrance",
        attendant_lang: str = "en",
        pilgrim_lang: str = "ar",
        slot_capacity: int | None = None,
        now: float = 1_780_000_000.0,
    ) -> None:
        self._cond = threading.Condition()
        self._version = 1
        self.now = now
        self.gate, self.site, self.mode = gate, site, mode
        self.languages = {"attendant": attendant_lang, "pilgrim": pilgrim_lang}
        self.clock: dict[str, Any] = {"state": "synced", "trusted": True, "now": now,
                                      "banner": None}
        self.health: dict[str, Any] = {"fps": 30.0, "decode_ms": 1.2, "clock": "synced",
                                       "sync_backlog": 0, "online": True}
        self.counters: dict[str, Any] = {
            "gate_admitted": 0, "gate_denied": 0, "slot_start": None, "slot_end": None,
            "slot_admitted": 0, "slot_capacity": slot_capacity,
        }
        self.last: dict[str, Any] | None = None
        self.recent: list[dict[str, Any]] = []
        self.trip: dict[str, Any] | None = None
        self.trips: list[dict[str, Any]] = []
        self.manifests: dict[str, list[dict[str, Any]]] = {}
        self.script: dict[str, tuple[str, str | None, dict[str, Any] | None,
                                     dict[str, Any]]] = {}
        self.history: list[tuple[str, dict[str, Any]]] = []
        self._seq = 0

    # -- test helpers
    def add_permit(self, payload: str, permit: dict[str, Any] | None, verdict: str = "admit",
                   reason: str | None = None, extra: dict[str, Any] | None = None) -> None:
        """Script the decision for ``payload``; ``extra`` keys are merged into it."""
        self.script[payload] = (verdict, reason, permit, dict(extra or {}))

    def set_clock(self, state: str, trusted: bool) -> None:
        with self._cond:
            self.clock = dict(self.clock, state=state, trusted=trusted)
            self.health["clock"] = state
            self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    # -- ConsoleBackend
    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return copy.deepcopy({
                "version": self._version, "gate": self.gate, "site": self.site,
                "mode": self.mode, "languages": self.languages, "clock": self.clock,
                "last": self.last, "counters": self.counters, "recent": self.recent[:20],
                "trip": self.trip, "trips": self.trips, "health": self.health,
            })

    def version(self) -> int:
        with self._cond:
            return self._version

    def wait_for_change(self, version: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout)
            return self._version

    def _decide(self, kind: str, verdict: str, reason: str | None,
                permit: dict[str, Any] | None, party: int,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        self._seq += 1
        self.now += 1.0
        group = verdict == "admit" and kind == "scan" and party > 1
        admitted = 0 if group or verdict != "admit" else party
        decision: dict[str, Any] = {
            "id": uuid.uuid4().hex, "t": self.now, "kind": kind, "verdict": verdict,
            "reason": reason, "permit": permit, "admitted": admitted,
            "remaining": party if group else 0, "awaiting_count": group, "flags": [],
            **(extra or {}),
        }
        self.last = decision
        if verdict == "admit":
            self.counters["gate_admitted"] += admitted
            self.counters["slot_admitted"] += admitted
            if self.trip is not None:
                self.trip["boarded"] += admitted
        elif verdict == "deny":
            self.counters["gate_denied"] += 1
        if admitted and self.trip is not None:
            self.manifests[self.trip["id"]].append({
                "seq": self._seq, "t": self.now, "ph": (permit or {}).get("ph", ""),
                "type": (permit or {}).get("type", ""), "party": admitted,
                "initials": (permit or {}).get("initials", ""),
                "doc_digits": (permit or {}).get("doc_digits", ""), "kind": kind,
            })
        self.recent.insert(0, {
            "id": decision["id"], "t": self.now, "kind": kind, "verdict": verdict,
            "reason": reason, "type": (permit or {}).get("type"), "party": admitted,
            "initials": (permit or {}).get("initials"),
        })
        self._bump()
        return copy.deepcopy(decision)

    def submit_payload(self, text: str) -> dict[str, Any]:
        with self._cond:
            self.history.append(("submit_payload", {"text": text}))
            verdict, reason, permit, extra = self.script.get(
                text, ("deny", "malformed", None, {}))
            if self.clock["trusted"] is False and verdict == "admit":
                verdict, reason = "untrusted_time", "untrusted_time"
            party = int((permit or {}).get("party", 1))
            return self._decide("scan", verdict, reason, permit, party, extra)

    def override(self, action: str, reason_code: str, note: str, party: int) -> dict[str, Any]:
        with self._cond:
            self.history.append(("override", {"action": action, "reason_code": reason_code,
                                              "note": note, "party": party}))
            permit = self.last.get("permit") if self.last else None
            return self._decide("override", action, reason_code, permit, party)

    def confirm_party(self, decision_id: str, count: int) -> dict[str, Any]:
        with self._cond:
            last = self.last
            if last is None or last["id"] != decision_id:
                raise ActionRefused("that decision is no longer the current one")
            if not 1 <= count <= last["remaining"]:
                raise ActionRefused(f"head count must be 1 to {last['remaining']}")
            self.history.append(("confirm_party", {"decision_id": decision_id, "count": count}))
            last["admitted"] += count
            last["remaining"] -= count
            last["awaiting_count"] = False
            self.counters["gate_admitted"] += count
            self.counters["slot_admitted"] += count
            self.recent[0]["party"] = last["admitted"]
            self._bump()
            return copy.deepcopy(last)

    def open_trip(self, bus: str, route: str, departure: int, seats: int) -> dict[str, Any]:
        with self._cond:
            if self.mode != "boarding":
                raise ActionRefused("trips exist in boarding mode only")
            if self.trip is not None:
                raise ActionRefused("a trip is already open: close it first")
            self.history.append(("open_trip", {"bus": bus, "route": route,
                                               "departure": departure, "seats": seats}))
            trip_id = f"{bus}-{departure}"
            self.trip = {"id": trip_id, "bus": bus, "route": route, "departure": departure,
                         "seats": seats, "boarded": 0, "opened_at": self.now}
            self.manifests[trip_id] = []
            self._bump()
            return dict(self.trip)

    def close_trip(self) -> dict[str, Any]:
        with self._cond:
            if self.trip is None:
                raise ActionRefused("no trip is open")
            self.history.append(("close_trip", {"trip_id": self.trip["id"]}))
            closed = dict(self.trip, closed_at=self.now)
            self.trips.insert(0, closed)
            self.trip = None
            self._bump()
            return dict(closed)

    def manifest(self, trip_id: str) -> list[dict[str, Any]]:
        with self._cond:
            if trip_id not in self.manifests:
                raise NotFound(f"unknown trip {trip_id}")
            return copy.deepcopy(self.manifests[trip_id])

    def time_override(self, note: str) -> dict[str, Any]:
        with self._cond:
            self.history.append(("time_override", {"note": note}))
            self.clock = dict(self.clock, state="override", trusted=True)
            self.health["clock"] = "override"
            self._bump()
            return dict(self.clock)
