"""The dashboard end to end in Debian's headless Chromium, and its HTTP API."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from central_helpers import SLOT, SimGate, broker_config, make_event, ph_of, uid, wait_for

from central.aggregator import Aggregator
from central.config import SiteConfig
from central.dashboard import DashboardServer
from central.metrics import CentralMetrics, StoreCollector
from central.store import Store, open_store

pytestmark = pytest.mark.broker


@pytest.fixture
def centre(broker: Any, tmp_path: Path) -> Iterator[tuple[Store, Aggregator, DashboardServer]]:
    store = open_store(f"sqlite:///{tmp_path}/central.db")
    metrics = CentralMetrics()
    metrics.registry.register(StoreCollector(store))
    agg = Aggregator(store=store, broker=broker_config(broker.port), client_id="agg-dash",
                     metrics=metrics)
    sites = [SiteConfig(id="haram", name="Masjid al-Haram", capacity_per_slot=500,
                        slot_capacity={str(SLOT + 3600): 40})]
    dash = DashboardServer(store=store, sites=sites, port=0, registry=metrics.registry,
                           give=agg.give, max_body_bytes=4096, poll_ms=200)
    agg.start()
    dash.start()
    try:
        wait_for(lambda: agg.connected, 30, "aggregator connected")
        yield store, agg, dash
    finally:
        dash.close()
        agg.close()
        store.close()


def request(dash: DashboardServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", dash.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.browser
def test_dashboard_counts_appear_and_rise_live_in_chromium(
    centre: tuple[Store, Aggregator, DashboardServer], browser_page: Any, broker: Any,
    tmp_path: Path,
) -> None:
    _, _, dash = centre
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    gid = uid("dash-g1")
    gate = SimGate(tmp_path / "dash-g1.db", gid, broker.port).start()
    bus = SimGate(tmp_path / "dash-b1.db", uid("dash-b1"), broker.port, site="bus-mina").start()
    try:
        gate.admit(12, party=2)
        page.goto(dash.url + "/")
        admitted = page.locator('[data-site-admitted="haram"]')
        admitted.wait_for(timeout=30000)
        page.wait_for_function(
            "() => document.querySelector('[data-site-admitted=\"haram\"]')?.textContent === '24'",
            timeout=30000,
        )
        # more people arrive while the page is open: the number rises without a reload
        gate.admit(5, party=3, slot=SLOT + 3600)
        bus.admit(4, party=1, trip="T42", mode="boarding", ptype="bus")
        page.wait_for_function(
            "() => document.querySelector('[data-site-admitted=\"haram\"]')?.textContent === '39'",
            timeout=30000,
        )
        page.wait_for_function(
            "() => document.querySelector('[data-site-admitted=\"bus-mina\"]')"
            "?.textContent === '4'",
            timeout=30000,
        )
        assert page.locator(f'[data-slot-admitted="haram/{SLOT + 3600}"]').text_content() == "15"
        # one bar per slot in the SVG chart, heights from the data
        bars = page.locator('#site-haram svg rect.bar')
        assert bars.count() == 2
        assert page.locator('[data-trip="T42"]').count() == 1
        page.wait_for_function(
            f"() => document.querySelector('[data-gate=\"{gid}\"] .state-online') !== null",
            timeout=30000,
        )
        # the same permit admitted at the two gates is flagged on the page
        ph = ph_of(4242)
        gate.admit(1, ph=ph, t=SLOT + 10)
        bus.admit(1, ph=ph, t=SLOT + 20)
        page.wait_for_function(
            f"() => document.querySelector('[data-conflict=\"{ph}\"]') !== null", timeout=30000
        )
        # the gate goes away: its row says offline
        gate.cut()
        page.wait_for_function(
            f"() => document.querySelector('[data-gate=\"{gid}\"] .state-offline') !== null",
            timeout=30000,
        )
    finally:
        gate.close()
        bus.close()
    assert requested, "the page made no requests at all"
    hosts = {urlparse(u).hostname for u in requested}
    assert hosts == {"127.0.0.1"}, f"requests left 127.0.0.1: {sorted(hosts)}"


def test_summary_api_is_exact_and_metrics_render(
    centre: tuple[Store, Aggregator, DashboardServer],
) -> None:
    store, _, dash = centre
    store.add_events([make_event("api1", s, party=2) for s in range(1, 11)]
                     + [make_event("api1", 11, party=4, slot=SLOT + 3600)], now=1.0)
    status, body = request(dash, "GET", "/api/summary")
    assert status == 200
    d = json.loads(body)
    [site] = [s for s in d["sites"] if s["site"] == "haram"]
    assert site["admitted"] == 24
    assert {(s["slot"], s["admitted"], s["capacity"]) for s in site["slots"]} == {
        (SLOT, 20, 500), (SLOT + 3600, 4, 40)}
    assert d["totals"] == {"events": 11, "admits": 11, "admitted": 24}
    status, body = request(dash, "GET", "/metrics")
    assert status == 200
    assert b'gatepass_site_admitted{site="haram"} 24.0' in body
    status, body = request(dash, "GET", "/")
    assert status == 200 and b"/static/app.js" in body and b"http" not in body.split(b"<body")[1]
    assert request(dash, "GET", "/nope")[0] == 404


def test_oversized_and_bad_bodies_are_refused(
    centre: tuple[Store, Aggregator, DashboardServer],
) -> None:
    store, _, dash = centre
    status, body = request(dash, "POST", "/api/documents", body=b"x" * 100_000,
                           headers={"Content-Type": "application/octet-stream"})
    assert status == 413 and b"exceeds 4096" in body
    status, body = request(dash, "POST", "/api/documents", body=b"not a signed document")
    assert status in (422, 503), body  # 503 only when no trust store is configured
    assert json.loads(body)["error"]
    status, _ = request(dash, "POST", "/api/documents", body=b"")
    assert status == 400
    assert store.documents() == []
    # the server is still serving after the hostile requests
    assert request(dash, "GET", "/healthz") == (200, b"ok\n")
