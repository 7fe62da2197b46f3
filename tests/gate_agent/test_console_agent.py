"""The console on the real agent: a sandbox permit typed into the page ends up in the ledger.

Uses the gate agent fixtures (``make_agent``: sandbox PKI, real SQLite ledger, simulated
outputs, a hand-moved clock) from ``tests/gate_agent/conftest.py``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from conftest import SITE, slot
from playwright.sync_api import expect

from gate_agent import i18n
from gate_agent.agent import GateAgent
from gate_agent.console.backend import ConsoleBackend
from gate_agent.console.server import ConsoleServer
from verifier.sandbox import Sandbox

pytestmark = pytest.mark.browser


def test_agent_implements_the_console_protocol(make_agent: Callable[..., GateAgent]) -> None:
    assert isinstance(make_agent(), ConsoleBackend)


def test_scan_override_and_ledger_through_the_page(
    browser_page: Any, make_agent: Callable[..., GateAgent], sandbox: Sandbox
) -> None:
    agent = make_agent()
    raw = sandbox.issue(site=SITE, slot=slot(), initials="MK", doc_number="X9876543")
    page = browser_page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    with ConsoleServer(backend=agent, metrics_registry=agent.metrics_registry) as console:
        page.set_viewport_size({"width": 800, "height": 480})
        page.goto(console.url + "/")
        expect(page.locator("#gate-name")).to_have_text("g1")

        page.fill("#scan-input", raw)
        page.press("#scan-input", "Enter")
        page.wait_for_selector("#verdict[data-verdict='admit']")
        expect(page.locator("#p-initials")).to_have_text("MK")
        events = [r.event for r in agent.ledger.events()]
        assert [(e.kind, e.verdict, e.party) for e in events] == [("scan", "admit", 1)]
        assert events[0].ph == agent.snapshot()["last"]["permit"]["ph"]
        expect(page.locator("#c-gate")).to_have_text("1")

        # The same permit again: refused, and the reason in the attendant's and pilgrim's
        # languages (the agent's configured defaults).
        page.fill("#scan-input", raw)
        page.press("#scan-input", "Enter")
        page.wait_for_selector("#verdict[data-verdict='deny']")
        langs = agent.snapshot()["languages"]
        expect(page.locator("#attendant-msg")).to_have_text(
            i18n.message("already_used", langs["attendant"], "attendant").text)
        expect(page.locator("#pilgrim-msg")).to_have_text(
            i18n.message("already_used", langs["pilgrim"], "pilgrim").text)
        page.screenshot(path="/tmp/console-agent-800x480.png")

        page.click("#override-btn")
        page.click("#ov-reasons [data-reason='supervisor_approved']")
        page.fill("#ov-note", "lost companion, supervisor Omar")
        page.click("#ov-submit")
        page.wait_for_selector("#override-dialog", state="hidden")
        page.wait_for_selector("#verdict[data-verdict='admit']")
        last = list(agent.ledger.events())[-1].event
        assert (last.kind, last.verdict, last.reason, last.note) == (
            "override", "admit", "supervisor_approved", "lost companion, supervisor Omar")
        assert last.ph == events[0].ph  # the override is tied to the refused permit

        with urllib.request.urlopen(console.url + "/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert "gatepass" in metrics or "gate" in metrics
        with urllib.request.urlopen(console.url + "/api/snapshot", timeout=10) as resp:
            snap = json.loads(resp.read())
        assert snap["counters"]["gate_admitted"] == 2
        outside = [u for u in requests if not u.startswith(console.url + "/")]
        assert requests and outside == []
