"""The attendant console end to end in Debian's headless Chromium, on an in-memory backend.

Waits use Playwright's ``expect`` (not ``wait_for_function``): the console's Content
Security Policy forbids evaluating strings, and the tests keep that policy on.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from gate_agent import i18n
from gate_agent.console.memory import MemoryBackend
from gate_agent.console.server import ConsoleServer

pytestmark = pytest.mark.browser

PERMIT = {"type": "umrah", "slot_start": 1_780_000_000, "slot_end": 1_780_007_200,
          "party": 1, "initials": "M.R.", "doc_digits": "7731", "ph": "cd" * 16}
SHOTS = Path("/tmp")


@pytest.fixture
def backend() -> MemoryBackend:
    b = MemoryBackend()
    b.add_permit("GP1:GOOD", PERMIT)
    b.add_permit("GP1:NORTH", PERMIT, verdict="deny", reason="wrong_gate_group")
    return b


@pytest.fixture
def console(backend: MemoryBackend) -> Iterator[ConsoleServer]:
    with ConsoleServer(backend=backend) as server:
        yield server


def open_console(page: Any, console: ConsoleServer, width: int = 800, height: int = 480
                 ) -> list[str]:
    """Load the page, recording every request the browser makes."""
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_viewport_size({"width": width, "height": height})
    page.goto(console.url + "/")
    page.wait_for_selector("#verdict[data-verdict='none']")
    expect(page.locator("#gate-name")).to_have_text("gate-1")
    assert errors == []
    return requests


def scan(page: Any, payload: str) -> None:
    page.fill("#scan-input", payload)
    page.press("#scan-input", "Enter")


def test_scan_shows_verdict_in_two_languages_offline_and_rtl(
    browser_page: Any, console: ConsoleServer, backend: MemoryBackend
) -> None:
    page = browser_page
    requests = open_console(page, console)
    scan(page, "GP1:NORTH")
    page.wait_for_selector("#verdict[data-verdict='deny']")
    assert page.text_content("#verdict-word") == "REFUSED"
    assert page.get_attribute("#verdict-icon", "data-icon") == "deny"  # not colour alone
    att = i18n.message("wrong_gate_group", "en", "attendant")
    pil = i18n.message("wrong_gate_group", "ar", "pilgrim")
    assert page.text_content("#attendant-msg") == att.text
    assert page.text_content("#pilgrim-msg") == pil.text
    assert page.get_attribute("#pilgrim-msg", "dir") == "rtl"
    assert page.text_content("#p-initials") == "M.R."
    assert page.text_content("#p-doc") == "7731"
    page.screenshot(path=str(SHOTS / "console-deny-800x480.png"))

    page.select_option("#pilgrim-lang", "fr")
    expect(page.locator("#pilgrim-msg")).to_have_attribute("lang", "fr")
    assert page.text_content("#pilgrim-msg") == i18n.message("wrong_gate_group", "fr",
                                                             "pilgrim").text
    assert page.get_attribute("#pilgrim-msg", "dir") == "ltr"
    page.select_option("#pilgrim-lang", "ur")
    expect(page.locator("#pilgrim-msg")).to_have_attribute("lang", "ur")
    assert page.get_attribute("#pilgrim-msg", "dir") == "rtl"

    # The attendant's own language: the whole console flips to right-to-left.
    page.select_option("#console-lang", "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert page.text_content("#verdict-word") == i18n.catalogue("ar").ui["verdict_deny"]
    assert page.text_content("#attendant-msg") == i18n.message("wrong_gate_group", "ar").text
    page.screenshot(path=str(SHOTS / "console-deny-ar-800x480.png"))

    # A decision made elsewhere (the camera) reaches the page live, no reload.
    backend.submit_payload("GP1:GOOD")
    page.wait_for_selector("#verdict[data-verdict='admit']")
    assert page.get_attribute("#verdict-icon", "data-icon") == "admit"
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(SHOTS / "console-admit-ar-1280x800.png"))

    assert requests, "the recorder saw nothing"
    outside = [u for u in requests if not u.startswith(console.url + "/")]
    assert outside == [], f"requests left the gate: {outside}"
    assert console.url.startswith("http://127.0.0.1:")


def test_override_requires_a_reason_and_reaches_the_backend(
    browser_page: Any, console: ConsoleServer, backend: MemoryBackend
) -> None:
    page = browser_page
    open_console(page, console)
    scan(page, "GP1:NORTH")
    page.wait_for_selector("#verdict[data-verdict='deny']")
    page.click("#override-btn")
    page.wait_for_selector("#override-dialog[open]")
    page.screenshot(path=str(SHOTS / "console-override-800x480.png"))
    page.click("#ov-submit")
    assert page.text_content("#ov-error") == i18n.catalogue("en").ui["reason_required"]
    assert page.is_visible("#override-dialog")
    page.click("#ov-reasons [data-reason='other']")
    page.click("#ov-submit")
    assert page.text_content("#ov-error") == i18n.catalogue("en").ui["note_required"]
    assert [name for name, _ in backend.history] == ["submit_payload"]  # nothing sent yet

    page.click("#ov-reasons [data-reason='elderly_or_disabled']")
    page.fill("#ov-note", "wheelchair, gate 3 is stairs only")
    page.click("#ov-plus")
    page.click("#ov-submit")
    page.wait_for_selector("#override-dialog", state="hidden")
    page.wait_for_selector("#verdict[data-verdict='admit']")
    assert page.is_visible("#override-tag")
    assert backend.history[-1] == ("override", {
        "action": "admit", "reason_code": "elderly_or_disabled",
        "note": "wheelchair, gate 3 is stairs only", "party": 2})
    assert page.text_content("#attendant-msg") == i18n.message("elderly_or_disabled", "en").text
    # The pilgrim hears a welcome, not the staff's reason.
    assert page.text_content("#pilgrim-msg") == i18n.message("admit", "ar", "pilgrim").text


def test_group_head_count(
    browser_page: Any, console: ConsoleServer, backend: MemoryBackend
) -> None:
    backend.add_permit("GP1:FAMILY", dict(PERMIT, party=5))
    page = browser_page
    open_console(page, console)
    scan(page, "GP1:FAMILY")
    page.wait_for_selector("#headcount", state="visible")
    assert page.text_content("#hc-value") == "5"
    page.click("#hc-minus")
    page.click("#hc-minus")
    assert page.text_content("#hc-admit-n") == "3"
    page.screenshot(path=str(SHOTS / "console-headcount-800x480.png"))
    page.click("#hc-admit")
    page.wait_for_selector("#headcount", state="hidden")
    decision_id = backend.snapshot()["last"]["id"]
    assert backend.history[-1] == ("confirm_party", {"decision_id": decision_id, "count": 3})
    expect(page.locator("#c-gate")).to_have_text("3")


def test_boarding_trip_controls_and_manifest(
    browser_page: Any, backend: MemoryBackend
) -> None:
    backend.mode = "boarding"
    page = browser_page
    with ConsoleServer(backend=backend) as console:
        open_console(page, console)
        assert page.is_visible("#trip-form")
        page.fill("#trip-bus", "B-17")
        page.fill("#trip-route", "Haram-Aziziyah")
        page.fill("#trip-departure", "2026-05-28T21:30")
        page.fill("#trip-seats", "45")
        page.click("#trip-open-btn")
        page.wait_for_selector("#trip-open-view", state="visible")
        name, args = backend.history[-1]
        assert name == "open_trip" and args["bus"] == "B-17" and args["seats"] == 45
        assert args["route"] == "Haram-Aziziyah" and isinstance(args["departure"], int)
        scan(page, "GP1:GOOD")
        expect(page.locator("#trip-count")).to_have_text(re.compile(r"^1 / 45 "))
        page.screenshot(path=str(SHOTS / "console-boarding-800x480.png"))

        page.click("#trip-close-btn")  # first tap only arms the button
        assert backend.snapshot()["trip"] is not None
        page.click("#trip-close-btn")
        page.wait_for_selector("#closed-trips .manifest-link")
        assert backend.history[-1][0] == "close_trip"
        with page.expect_download() as info:
            page.click("#closed-trips .manifest-link")
        rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
        assert [(r["initials"], r["doc_digits"], r["party"]) for r in rows] == [
            ("M.R.", "7731", "1")]


def test_untrusted_clock_banner_and_logged_override(
    browser_page: Any, console: ConsoleServer, backend: MemoryBackend
) -> None:
    page = browser_page
    open_console(page, console)
    assert not page.is_visible("#clock-banner")
    backend.set_clock("untrusted", trusted=False)  # e.g. a Pi that booted into 1970
    page.wait_for_selector("#clock-banner", state="visible")
    assert page.text_content("#banner-text") == i18n.catalogue("en").ui["banner_untrusted"]
    scan(page, "GP1:GOOD")
    page.wait_for_selector("#verdict[data-verdict='untrusted_time']")
    assert page.get_attribute("#verdict-icon", "data-icon") == "untrusted_time"
    page.screenshot(path=str(SHOTS / "console-untrusted-800x480.png"))
    page.click("#trust-clock-btn")
    page.wait_for_selector("#clock-dialog[open]")
    page.fill("#clock-note", "ok")
    page.click("#clock-submit")
    assert page.text_content("#clock-error") != ""
    assert "time_override" not in [name for name, _ in backend.history]
    page.fill("#clock-note", "checked against the supervisor's GPS watch")
    page.click("#clock-submit")
    page.wait_for_selector("#clock-banner", state="hidden")
    assert backend.history[-1] == ("time_override",
                                   {"note": "checked against the supervisor's GPS watch"})


def test_counter_mode_shows_what_an_entrance_would_say_and_the_history(
    browser_page: Any, backend: MemoryBackend
) -> None:
    backend.mode = "counter"
    history = [{"id": "e1", "t": 1_780_000_100, "kind": "scan", "verdict": "admit",
                "reason": None, "type": "umrah", "party": 1, "initials": "M.R."}]
    backend.add_permit(
        "GP1:DESK", dict(PERMIT, site="haram", gate_groups=["north", "east"], health="cleared",
                         issuer="moh"),
        verdict="inspect", reason="not_admitted_counter_only",
        extra={"would": {"verdict": "deny", "reason": "already_used"}, "history": history})
    page = browser_page
    with ConsoleServer(backend=backend) as console:
        open_console(page, console)
        scan(page, "GP1:DESK")
        page.wait_for_selector("#verdict[data-verdict='inspect']")
        expect(page.locator("#would-word")).to_have_text("REFUSED")
        expect(page.locator("#would-why")).to_have_text(
            i18n.message("already_used", "en").text)
        assert page.get_attribute("#would-icon", "data-icon") == "deny"
        expect(page.locator("#p-groups")).to_have_text("north, east")
        expect(page.locator("#history li")).to_have_count(1)
        expect(page.locator("#history li")).to_contain_text("ADMIT")
        page.screenshot(path=str(SHOTS / "console-counter-800x480.png"))


def test_keyboard_wedge_burst_is_submitted_but_slow_typing_is_not(
    browser_page: Any, console: ConsoleServer, backend: MemoryBackend
) -> None:
    page = browser_page
    open_console(page, console)
    page.click("#counters")  # focus on nothing that takes text
    page.keyboard.type("GP1:NORTH", delay=250)  # a person poking at keys
    page.keyboard.press("Enter")
    # A scanner: the whole code within milliseconds. Dispatched in one synchronous script,
    # so the burst stays a burst however loaded the machine is (Playwright's own key
    # presses can be spread out by a busy machine); the slow typing above only gets slower.
    page.evaluate("""() => {
        for (const key of [..."GP1:GOOD", "Enter"]) {
            document.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
        }
    }""")
    page.wait_for_selector("#verdict[data-verdict='admit']")
    assert backend.history == [("submit_payload", {"text": "GP1:GOOD"})]


def test_a_lost_agent_is_shown_not_hidden(browser_page: Any, backend: MemoryBackend) -> None:
    page = browser_page
    console = ConsoleServer(backend=backend).start()
    try:
        open_console(page, console)
        scan(page, "GP1:GOOD")
        page.wait_for_selector("#verdict[data-verdict='admit']")
        assert not page.is_visible("#conn")
    finally:
        console.close()
    # The old ADMIT must not look current once the agent is gone.
    page.wait_for_selector("#conn", state="visible", timeout=10_000)
    expect(page.locator("html")).to_have_class(re.compile(r"\bstale\b"))
