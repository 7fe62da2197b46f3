"""The real agent and G2's console page in Debian's headless Chromium: a camera scan shows
up on the attendant's screen, and an untrusted clock raises the banner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from agent_helpers import FakeTime
from conftest import SITE, slot

from gate_agent.agent import GateAgent
from gate_agent.console.server import ConsoleServer
from verifier.sandbox import Sandbox

pytestmark = pytest.mark.browser


def test_scan_reaches_the_attendant_screen(
    make_agent: Callable[..., GateAgent], sandbox: Sandbox, browser_page: Any,
    fake_time: FakeTime,
) -> None:
    page = browser_page
    agent = make_agent(clock={"system": "timedatectl"})
    with ConsoleServer(backend=agent, host="127.0.0.1", port=0) as server:
        page.goto(server.url + "/", timeout=20_000)
        # fake_time.synced is True and the agent polled: the banner stays hidden.
        page.wait_for_selector("#verdict[data-verdict='none']", timeout=10_000)
        assert page.locator("#clock-banner").is_hidden()
        raw = sandbox.issue(site=SITE, slot=slot(), party=2, initials="QF", doc_number="A7654321")
        agent.submit_payload(raw)  # as the camera thread would
        page.wait_for_selector("#verdict[data-verdict='admit']", timeout=10_000)
        assert page.locator("#p-initials").inner_text().strip() == "QF"
        agent.submit_payload(raw)
        page.wait_for_selector("#verdict[data-verdict='deny']", timeout=10_000)
        # The clock loses its sync and a jump is detected: the banner must come up.
        fake_time.synced = False
        agent.clock.poll()
        fake_time.wall -= 86400
        agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))
        page.wait_for_selector("#verdict[data-verdict='admit']", timeout=10_000)
        fake_time.mono += 7 * 3600  # past monotonic_valid_s: nothing to trust any more
        agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))
        page.wait_for_selector("#verdict[data-verdict='untrusted_time']", timeout=10_000)
        page.wait_for_selector("#clock-banner:not([hidden])", timeout=10_000)
