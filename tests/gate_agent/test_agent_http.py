"""The real agent behind G2's ConsoleServer: the HTTP contract end to end (no browser)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from agent_helpers import SLOT
from conftest import SITE, slot

from gate_agent.agent import GateAgent
from gate_agent.console.server import ConsoleServer
from verifier.sandbox import Sandbox


def call(url: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_console_drives_the_real_agent(
    make_agent: Callable[..., GateAgent], sandbox: Sandbox
) -> None:
    agent = make_agent(mode="boarding", permits={"types": ["shuttle"]})
    with ConsoleServer(backend=agent, host="127.0.0.1", port=0,
                       metrics_registry=agent.metrics_registry) as server:
        url = server.url
        raw = sandbox.issue(site=SITE, slot=slot(), ptype="shuttle", route="haram-aziziyah",
                            departure=SLOT + 600, party=2, initials="QF", doc_number="A7654321")
        status, d = call(url, "/api/scan", {"payload": raw})
        assert status == 200 and d["reason"] == "no_trip_open"
        status, trip = call(url, "/api/trip/open", {"bus": "Bus 17 / Al-Rajhi", "route":
                                                    "haram-aziziyah", "departure": SLOT + 600,
                                                    "seats": 40})
        assert status == 200 and trip["bus"] == "Bus 17 / Al-Rajhi", trip
        status, d = call(url, "/api/scan", {"payload": raw})
        assert d["verdict"] == "admit" and d["permit"]["doc_digits"]
        status, snap = call(url, "/api/snapshot")
        assert snap["trip"]["boarded"] == 2 and snap["last"]["id"] == d["id"]
        status, o = call(url, "/api/override", {"action": "admit", "reason": "medical",
                                                "note": "wheelchair companion", "party": 1})
        assert status == 200 and o["kind"] == "override"
        status, err = call(url, "/api/trip/open", {"bus": "B2", "route": "haram-aziziyah",
                                                   "departure": SLOT, "seats": 4})
        assert status == 409 and "already open" in err["error"]
        status, closed = call(url, "/api/trip/close", {})
        assert status == 200 and closed["boarded"] == 3
        status, rows = call(url, f"/api/trip/{trip['id']}/manifest")
        assert status == 200 and [r["party"] for r in rows] == [2, 1]
        status, clock = call(url, "/api/time-override", {"note": "checked with the supervisor"})
        assert status == 200 and clock["state"] == "override"
        status, metrics = call(url, "/metrics")
        assert "gatepass_agent_admitted_people_total 3.0" in metrics
