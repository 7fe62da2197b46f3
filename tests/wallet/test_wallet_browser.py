"""The pilgrim wallet (wallet/) in Debian's headless Chromium, against the real issuer and gate.

Enrol (the wallet's key, exported as SPKI PEM), issue a holder-bound permit for it with
the real ``gatepass issue --holder-key``, load it into the wallet, and check what the
page shows through the gate's real decode (a screenshot of the QR) and ``verify_at``.
The page keeps its Content Security Policy on; waits use Playwright's ``expect``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from gate_agent.decode import make_decoder
from gatepass.sim.wallet import WalletServer
from hardware.image import read_image
from verifier import (
    PermitRefused,
    TrustBundle,
    base45,
    canonical,
    cose,
    envelope,
    presentation,
    verify_at,
)
from verifier.presentation import PREFIX

pytestmark = pytest.mark.browser


@pytest.fixture
def wallet_server() -> Iterator[WalletServer]:
    """The wallet's folder over HTTP on 127.0.0.1 (the demo's server), stoppable mid-test."""
    with WalletServer() as server:
        yield server

GATEPASS = [sys.executable, "-m", "gatepass"]
SITE = "haram"
LIVE = re.compile("^" + re.escape(PREFIX))


def gatepass(*args: str) -> str:
    done = subprocess.run(
        [*GATEPASS, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wallet-keys") / "keys"
    gatepass("keys", "new", str(directory), "--sites", SITE)
    return directory


@pytest.fixture
def errors(browser_page: Any) -> Iterator[list[str]]:
    found: list[str] = []
    browser_page.on("pageerror", lambda e: found.append(str(e)))
    browser_page.on(
        "console", lambda m: found.append(m.text) if m.type == "error" else None
    )
    yield found


def open_wallet(page: Any, url: str, width: int = 375) -> str:
    """Load the wallet at a phone's width; return its public key (SPKI PEM)."""
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=15_000)
    pem = page.locator("#device").get_attribute("data-spki-pem")
    assert pem and pem.startswith("-----BEGIN PUBLIC KEY-----")
    return str(pem)


def issue_for(
    keys: Path, pem: str, tmp_path: Path, name: str = "phone", gates: str = "all"
) -> str:
    """A permit for this phone's key, issued now for a slot running now (JSON line)."""
    key_file = tmp_path / f"{name}.pem"
    key_file.write_text(pem)
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    return gatepass(
        "issue", "--keys", str(keys), "--site", SITE, "--slot-start", start,
        "--slot-minutes", "120", "--party", "2", "--initials", "AK", "--doc", "P1234567",
        "--holder-key", str(key_file), "--gates", gates,
    ).splitlines()[0]


def add_permit(page: Any, text: str) -> None:
    page.fill("#add-text", text)
    page.click("#add")
    expect(page.locator("#add-result")).not_to_have_class("small bad")
    expect(page.locator("#permits li")).to_have_count(1)


def show(page: Any) -> Any:
    page.locator("#permits li button.show").first.click()
    section = page.locator("#present")
    expect(section).to_be_visible()
    if section.get_attribute("data-mode") == "live":
        expect(section).to_have_attribute("data-text", LIVE)
    return section


def trust_store(keys: Path) -> Any:
    return TrustBundle.from_bytes((keys / "trust.json").read_bytes()).store()


def verdict(text: str, now: float, keys: Path) -> str | None:
    try:
        verify_at(text, now, trust=trust_store(keys))
    except PermitRefused as exc:
        return exc.reason.value
    return None


def shown_at(text: str) -> float:
    """A time inside the step a presentation was made for (read from its proof)."""
    proof = presentation.split(text)[1]
    claims = canonical.loads(cose.split_sign1_strict(proof)[1])
    return float(claims[1] * claims[2] + claims[2] // 2)


def decode_screenshot(page: Any, path: Path) -> str:
    page.locator("#qr").screenshot(path=str(path))
    codes = make_decoder("default").decode(read_image(path))
    assert len(codes) == 1, f"{len(codes)} codes read from the QR screenshot"
    return codes[0].text


def test_enrol_issue_present_verify_through_screenshot(
    browser_page: Any, wallet_server: Any, keys: Path, tmp_path: Path, errors: list[str]
) -> None:
    page = browser_page
    pem = open_wallet(page, wallet_server.url)
    line = issue_for(keys, pem, tmp_path)
    permit_text = json.loads(line)["payload"]
    assert verdict(permit_text, time.time(), keys) == "presentation_required"
    add_permit(page, line)  # the JSON line from gatepass issue, as the office sends it
    expect(page.locator("#permits li")).to_contain_text("Umrah")
    section = show(page)
    expect(section).to_have_attribute("data-mode", "live")
    expect(section).to_have_attribute("data-text", LIVE)
    text = section.get_attribute("data-text")
    assert text and text.startswith(PREFIX)
    signed_at = int(section.get_attribute("data-signed-at") or 0) / 1000
    assert verdict(text, signed_at, keys) is None
    # The QR itself, read by the gate's decoder from a screenshot.
    shot = decode_screenshot(page, tmp_path / "qr.png")
    assert shot.startswith(PREFIX)
    signed_at = shown_at(shot)  # the code may have renewed since data-text was read
    assert verdict(shot, signed_at, keys) is None, "the screenshot is admitted now"
    assert verdict(shot, signed_at + 60, keys) == "presentation_expired"
    assert verdict(shot, signed_at - 60, keys) == "presentation_in_future"
    # And through the gate itself: gatepass agent scan on the screenshot, now and 60 s on.
    gate = tmp_path / "gate.toml"
    gate.write_text(
        f'gate = "g1"\nsite = "{SITE}"\nmode = "entrance"\n'
        f'ledger = "{tmp_path / "ledger.sqlite"}"\n[permits]\ntypes = ["umrah"]\n'
        f'[trust]\nbundle = "{keys / "trust.json"}"\n[clock]\nsystem = "trust"\n'
        '[console]\nenabled = false\n'
    )
    for offset, verdict_reason in ((0, ("admit", None)), (60, ("deny", "presentation_expired"))):
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(signed_at) + offset))
        scan = json.loads(gatepass("agent", "scan", "--config", str(gate), "--at", at,
                                   str(tmp_path / "qr.png")).splitlines()[0])
        assert (scan["verdict"], scan["reason"]) == verdict_reason, scan
    version = int(page.locator("#qr").get_attribute("data-version") or 0)
    assert 1 <= version <= 15
    assert errors == []


def test_code_renews_every_step_with_a_countdown(
    browser_page: Any, wallet_server: Any, keys: Path, tmp_path: Path
) -> None:
    page = browser_page
    add_permit_line = issue_for(keys, open_wallet(page, wallet_server.url), tmp_path)
    add_permit(page, add_permit_line)
    section = show(page)
    expect(section).to_have_attribute("data-text", LIVE)
    first_step = section.get_attribute("data-step")
    first_text = section.get_attribute("data-text")
    expect(page.locator("#countdown")).to_contain_text(" s")
    # A new code within one period (15 s), plus generous slack for a loaded machine.
    expect(section).not_to_have_attribute("data-step", first_step or "", timeout=40_000)
    second_text = section.get_attribute("data-text")
    assert second_text and second_text != first_text
    assert int(section.get_attribute("data-step") or 0) > int(first_step or 0)
    signed_at = int(section.get_attribute("data-signed-at") or 0) / 1000
    assert verdict(second_text, signed_at, keys) is None


def test_a_zlib_form_permit_is_presented_inflated(
    browser_page: Any, wallet_server: Any, keys: Path, tmp_path: Path
) -> None:
    page = browser_page
    groups = ",".join(f"north-gate-{i}" for i in range(8))  # long enough for zlib to pay
    line = issue_for(keys, open_wallet(page, wallet_server.url), tmp_path, gates=groups)
    payload = json.loads(line)["payload"]
    assert base45.decode(payload[4:])[0] == 0x78, "issued in zlib form"
    add_permit(page, payload[:70] + "\n" + payload[70:])  # bare GP1: text, wrapped by e-mail
    section = show(page)
    text = section.get_attribute("data-text") or ""
    assert presentation.split(text)[0] == envelope.unwrap(payload)
    assert verdict(text, shown_at(text), keys) is None


def test_private_key_is_not_extractable(browser_page: Any, wallet_server: Any) -> None:
    page = browser_page
    open_wallet(page, wallet_server.url)
    result = page.evaluate(
        """async () => {
            const db = await new Promise((ok, fail) => {
                const r = indexedDB.open('gatepass-wallet'); r.onsuccess = () => ok(r.result)
                r.onerror = () => fail(r.error)
            })
            const key = await new Promise((ok) => {
                const r = db.transaction('keys').objectStore('keys').get('device')
                r.onsuccess = () => ok(r.result)
            })
            const out = {extractable: key.privateKey.extractable, type: key.privateKey.type,
                         curve: key.privateKey.algorithm.namedCurve}
            for (const format of ['pkcs8', 'jwk']) {
                try {
                    await crypto.subtle.exportKey(format, key.privateKey)
                    out[format] = 'exported'
                } catch (e) { out[format] = e.name }
            }
            return out
        }"""
    )
    assert result == {"extractable": False, "type": "private", "curve": "P-256",
                      "pkcs8": "InvalidAccessError", "jwk": "InvalidAccessError"}


def test_copied_permit_cannot_be_presented_from_another_profile(
    browser_page: Any, wallet_server: Any, keys: Path, tmp_path: Path
) -> None:
    page = browser_page
    line = issue_for(keys, open_wallet(page, wallet_server.url), tmp_path)
    other = page.context.browser.new_context()  # a second profile: its own key store
    try:
        thief = other.new_page()
        thief_pem = open_wallet(thief, wallet_server.url)
        assert thief_pem != page.locator("#device").get_attribute("data-spki-pem")
        add_permit(thief, line)
        section = show(thief)
        expect(section).to_have_attribute("data-mode", "other-device")
        expect(thief.locator("#present-note")).to_be_visible()
        assert section.get_attribute("data-text") is None
        assert thief.locator("#qr").is_hidden()
    finally:
        other.close()


def test_permit_file_then_works_offline_after_the_first_visit(
    browser_page: Any, wallet_server: Any, keys: Path, tmp_path: Path
) -> None:
    page = browser_page
    pem = open_wallet(page, wallet_server.url)
    family = [issue_for(keys, pem, tmp_path), issue_for(keys, pem, tmp_path)]
    permits_file = tmp_path / "permits.jsonl"  # the issuer's file, opened: both permits
    permits_file.write_text("\n".join(family) + "\n")
    page.set_input_files("#add-file", str(permits_file))
    expect(page.locator("#permits li")).to_have_count(2)
    # The service worker has precached every file and controls the page.
    assert page.evaluate(
        "async () => { const r = await navigator.serviceWorker.ready; return !!r.active }"
    )
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=15_000)
    assert page.evaluate("() => !!navigator.serviceWorker.controller")
    wallet_server.close()  # no network at the gate
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=15_000)
    section = show(page)
    expect(section).to_have_attribute("data-mode", "live")
    text = section.get_attribute("data-text")
    signed_at = int(section.get_attribute("data-signed-at") or 0) / 1000
    assert text and verdict(text, signed_at, keys) is None


def test_enrolment_qr_carries_the_key_and_nothing_is_external(
    browser_page: Any, wallet_server: Any, keys: Path, tmp_path: Path
) -> None:
    page = browser_page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    pem = open_wallet(page, wallet_server.url)
    page.click("#enrol-show")
    expect(page.locator("#enrol-qr")).to_be_visible()
    # The issuer scans the enrolment QR: it is the PEM the download gives.
    page.locator("#enrol-qr").screenshot(path=str(tmp_path / "enrol.png"))
    codes = make_decoder("default").decode(read_image(tmp_path / "enrol.png"))
    assert [c.text for c in codes] == [pem]
    expect(page.locator("#pem")).to_have_text(pem.strip() + "\n")
    assert issue_for(keys, codes[0].text, tmp_path, name="scanned")  # usable as --holder-key
    assert requests and all(u.startswith(wallet_server.url) for u in requests), requests


@pytest.mark.parametrize("lang", ["ar", "ur", "fa"])
def test_right_to_left_languages(
    browser_page: Any, wallet_server: Any, lang: str, tmp_path: Path
) -> None:
    page = browser_page
    open_wallet(page, wallet_server.url, width=360)
    page.select_option("#lang", lang)
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    title = page.locator(".bar h1").bounding_box()
    select = page.locator("#lang").bounding_box()
    assert title and select and title["x"] > select["x"], "the title starts on the right"
    assert page.evaluate("() => getComputedStyle(document.body).direction") == "rtl"
    # No horizontal scrolling on a 360 px phone.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(tmp_path / f"wallet-{lang}.png"), full_page=True)
    page.select_option("#lang", "en")
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
