"""The console's HTTP API against an in-memory backend: validation, hostile bodies, streams."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from gate_agent.console.memory import MemoryBackend
from gate_agent.console.server import MAX_BODY, MAX_CONNECTIONS, ConsoleServer

PERMIT = {"type": "umrah", "slot_start": 1_780_000_000, "slot_end": 1_780_007_200,
          "party": 1, "initials": "A.K.", "doc_digits": "4821", "ph": "ab" * 16}


@pytest.fixture
def backend() -> MemoryBackend:
    b = MemoryBackend(mode="boarding")
    b.add_permit("GP1:OK", PERMIT)
    b.add_permit("GP1:USED", PERMIT, verdict="deny", reason="already_used")
    return b


@pytest.fixture
def console(backend: MemoryBackend) -> Iterator[ConsoleServer]:
    with ConsoleServer(backend=backend) as server:
        yield server


def request(
    console: ConsoleServer, method: str, path: str, body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    port = int(console.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post(console: ConsoleServer, path: str, data: Any) -> tuple[int, Any]:
    status, _, raw = request(console, "POST", path, json.dumps(data).encode())
    return status, json.loads(raw)


def get_json(console: ConsoleServer, path: str) -> tuple[int, Any]:
    status, _, raw = request(console, "GET", path)
    return status, json.loads(raw)


def raw_exchange(console: ConsoleServer, data: bytes) -> bytes:
    port = int(console.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- pages and reads ----------------------------------------------------------------------


def test_page_and_assets_are_served_locally_with_a_strict_policy(console: ConsoleServer) -> None:
    status, headers, body = request(console, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in headers["content-security-policy"]
    html = body.decode()
    assert 'src="/static/app.js"' in html and 'href="/static/app.css"' in html
    assert "http://" not in html and "https://" not in html
    for asset, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        status, headers, body = request(console, "GET", f"/static/{asset}")
        assert status == 200 and headers["content-type"].startswith(ctype)
        assert b"https://" not in body and b"@import" not in body
    for evil in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/__init__.py"):
        assert request(console, "GET", evil)[0] == 404


def test_snapshot_carries_messages_in_both_languages(
    console: ConsoleServer, backend: MemoryBackend
) -> None:
    status, decision = post(console, "/api/scan", {"payload": "GP1:USED\r\n"})
    assert status == 200 and decision["verdict"] == "deny"
    assert backend.history == [("submit_payload", {"text": "GP1:USED"})]
    status, snap = get_json(console, "/api/snapshot")
    assert status == 200 and snap["last"]["reason"] == "already_used"
    msgs = snap["last"]["messages"]
    assert msgs["attendant"] == {"text": "Already used for this slot.", "lang": "en", "dir": "ltr"}
    assert msgs["pilgrim"]["lang"] == "ar" and msgs["pilgrim"]["dir"] == "rtl"


def test_i18n_and_console_metadata(console: ConsoleServer) -> None:
    status, langs = get_json(console, "/api/i18n")
    assert status == 200
    by = {entry["lang"]: entry for entry in langs}
    assert by["fa"]["dir"] == "rtl" and by["ar"]["console"] and not by["fr"]["console"]
    status, ar = get_json(console, "/api/i18n/ar")
    assert status == 200 and ar["dir"] == "rtl" and ar["ui"]["verdict_admit"] == "دخول"
    status, ur = get_json(console, "/api/i18n/ur")
    assert ur["ui"]["verdict_admit"] == "ADMIT"  # no Urdu console labels: English ones
    assert get_json(console, "/api/i18n/zz")[0] == 404
    assert get_json(console, "/api/i18n/..%2Fen")[0] == 404
    status, meta = get_json(console, "/api/console")
    assert "other" in meta["override_reasons"] and meta["max_party"] == 64


def test_metrics_come_from_the_given_registry(backend: MemoryBackend) -> None:
    registry = CollectorRegistry()
    Counter("gate_test_scans", "scans seen by the test", registry=registry).inc(3)
    with ConsoleServer(backend=backend, metrics_registry=registry) as server:
        status, headers, body = request(server, "GET", "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        assert b"gate_test_scans_total 3.0" in body
        status, health = get_json(server, "/healthz")
        assert status == 200 and health == {"ok": True, "version": backend.version()}


# -- actions ------------------------------------------------------------------------------


def test_override_is_validated_then_recorded(
    console: ConsoleServer, backend: MemoryBackend
) -> None:
    status, err = post(console, "/api/override", {"action": "admit", "party": 2})
    assert status == 400 and "reason is required" in err["error"]
    status, err = post(console, "/api/override", {"action": "admit", "reason": ""})
    assert status == 400 and "reason is required" in err["error"]
    status, err = post(console, "/api/override", {"action": "admit", "reason": "other"})
    assert status == 400 and "note" in err["error"]
    status, err = post(console, "/api/override", {"action": "open", "reason": "medical"})
    assert status == 400 and "action" in err["error"]
    status, err = post(console, "/api/override", {"action": "admit", "reason": "bribe"})
    assert status == 400 and "reason must be one of" in err["error"]
    assert backend.history == []  # nothing invalid reached the agent
    status, decision = post(console, "/api/override", {
        "action": "admit", "reason": "medical", "note": "  wheelchair  ", "party": 2})
    assert status == 200 and decision["kind"] == "override" and decision["admitted"] == 2
    assert backend.history == [("override", {"action": "admit", "reason_code": "medical",
                                             "note": "wheelchair", "party": 2})]


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/api/override", {"action": "admit", "reason": "medical", "party": True}, "party"),
        ("/api/override", {"action": "admit", "reason": "medical", "party": 65}, "party"),
        ("/api/override", {"action": "admit", "reason": "medical", "party": 2.0}, "party"),
        ("/api/override", {"action": "admit", "reason": "medical", "note": 5}, "note"),
        ("/api/override", {"action": "admit", "reason": "medical", "note": "x" * 501}, "note"),
        ("/api/override", {"action": "admit", "reason": "medical", "note": "a\x07b"}, "control"),
        ("/api/override", {"action": "admit", "reason": "medical", "sudo": 1}, "unknown field"),
        ("/api/override", {"action": ["admit"], "reason": "medical"}, "action"),
        ("/api/confirm-party", {"decision_id": "x", "count": 0}, "count"),
        ("/api/confirm-party", {"decision_id": "../../x", "count": 1}, "decision_id"),
        ("/api/confirm-party", {"count": 1}, "decision_id is required"),
        ("/api/trip/open", {"bus": "B7", "route": "R1", "departure": 0, "seats": 40},
         "departure"),
        ("/api/trip/open", {"bus": "B7", "route": "R1", "departure": "9:00", "seats": 40},
         "departure"),
        ("/api/trip/open", {"bus": "<b>", "route": "R1", "departure": 1_780_000_000,
                            "seats": 40}, "bus"),
        ("/api/trip/open", {"bus": "B7", "route": "R1", "departure": 1_780_000_000,
                            "seats": 10_000}, "seats"),
        ("/api/trip/close", {"force": True}, "unknown field"),
        ("/api/time-override", {}, "note is required"),
        ("/api/time-override", {"note": "ok"}, "note"),
        ("/api/scan", {"payload": ""}, "payload"),
        ("/api/scan", {"payload": None}, "payload"),
        ("/api/scan", {"payload": "x" * 5000}, "payload"),
        ("/api/scan", {"payload": "HC1:\x00"}, "NUL"),
    ],
)
def test_bad_fields_get_a_400_naming_the_field(
    console: ConsoleServer, backend: MemoryBackend, path: str, body: dict[str, Any], needle: str
) -> None:
    status, err = post(console, path, body)
    assert status == 400, err
    assert needle in err["error"]
    assert backend.history == []


@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        (b"{not json", {}, 400, "not valid JSON"),
        (b"[1, 2]", {}, 400, "JSON object"),
        (b'"just a string"', {}, 400, "JSON object"),
        (b'{"payload": NaN}', {}, 400, "not valid JSON"),
        (b"\xff\xfe{}", {}, 400, "UTF-8"),
        (b"[" * 15000 + b"]" * 15000, {}, 413, "larger than"),
        (b"[" * 8000 + b"]" * 8000, {}, 400, "nested"),
        (b"x" * (MAX_BODY + 1), {}, 413, "larger than"),
        (b'{"payload": "GP1:OK"}', {"Content-Type": "text/plain"}, 415, "application/json"),
        (b'{"payload": "GP1:OK"}', {"Content-Type": "application/x-www-form-urlencoded"}, 415,
         "application/json"),
        (b'{"payload": "GP1:OK"}', {"Origin": "http://evil.example"}, 403, "cross-origin"),
        (b'{"payload": "GP1:OK"}', {"Content-Length": "-5"}, 400, "negative"),
        (b'{"payload": "GP1:OK"}', {"Content-Length": "lots"}, 400, "integer"),
    ],
)
def test_hostile_bodies_are_refused_and_nothing_reaches_the_agent(
    console: ConsoleServer, backend: MemoryBackend, body: bytes, headers: dict[str, str],
    status: int, needle: str,
) -> None:
    got, _, raw = request(console, "POST", "/api/scan", body, headers)
    assert got == status
    assert needle in json.loads(raw)["error"]
    assert backend.history == []
    assert get_json(console, "/healthz")[0] == 200  # still serving


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1:8080", 200), ("localhost", 200), ("[::1]:80", 200), ("10.1.2.3", 200),
     ("gate-7.local", 200), ("evil.example:8080", 421), ("", 421), ("127.0.0.1.evil.io", 421)],
)
def test_only_ip_localhost_or_allowed_names_are_served(
    backend: MemoryBackend, host: str, status: int
) -> None:
    with ConsoleServer(backend=backend, allowed_hosts=("gate-7.local",)) as server:
        got, _, raw = request(server, "GET", "/api/snapshot", headers={"Host": host})
        assert got == status
        got, _, raw = request(server, "POST", "/api/scan", b'{"payload": "GP1:OK"}',
                              headers={"Host": host})
        assert got == status
        if status == 421:
            assert "IP address" in json.loads(raw)["error"]
            assert backend.history == []


def test_missing_length_and_chunked_bodies_are_refused(
    console: ConsoleServer, backend: MemoryBackend
) -> None:
    head = b"POST /api/scan HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    reply = raw_exchange(console, head + b"\r\n")
    assert reply.startswith(b"HTTP/1.0 411") and b"Content-Length is required" in reply
    chunked = b"Transfer-Encoding: chunked\r\n\r\n5\r\n{}{}{\r\n0\r\n\r\n"
    reply = raw_exchange(console, head + chunked)
    assert reply.startswith(b"HTTP/1.0 411")
    assert backend.history == []


def test_a_stalled_client_does_not_block_the_console(
    console: ConsoleServer, backend: MemoryBackend
) -> None:
    port = int(console.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.sendall(b"POST /api/scan HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"payload\": ")
        t0 = time.monotonic()
        status, decision = post(console, "/api/scan", {"payload": "GP1:OK"})
        assert status == 200 and decision["verdict"] == "admit"
        assert time.monotonic() - t0 < 2.0
    assert [name for name, _ in backend.history] == ["submit_payload"]


def test_too_many_connections_get_a_503_and_the_console_recovers(
    console: ConsoleServer,
) -> None:
    port = int(console.url.rsplit(":", 1)[1])
    hogs = [socket.create_connection(("127.0.0.1", port), timeout=10)
            for _ in range(MAX_CONNECTIONS)]
    try:
        for hog in hogs:
            hog.sendall(b"GET /api/snapshot HTTP/1.1\r\n")  # ...and never finish
        time.sleep(0.3)
        status, err = get_json(console, "/healthz")
        assert status == 503 and "too many open connections" in err["error"]
    finally:
        for hog in hogs:
            hog.close()
    deadline = time.monotonic() + 5
    while get_json(console, "/healthz")[0] != 200:
        assert time.monotonic() < deadline, "the console did not recover"
        time.sleep(0.05)


def test_backend_refusals_are_409_and_bugs_are_500(
    console: ConsoleServer, backend: MemoryBackend
) -> None:
    status, err = post(console, "/api/trip/close", {})
    assert status == 409 and err["error"] == "no trip is open"
    status, err = post(console, "/api/confirm-party", {"decision_id": "nope", "count": 1})
    assert status == 409 and "no longer the current one" in err["error"]

    def broken() -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    backend.snapshot = broken  # type: ignore[method-assign]
    status, err = get_json(console, "/api/snapshot")
    assert status == 500 and "disk on fire" not in err["error"]  # no internals leaked
    assert get_json(console, "/healthz")[0] == 200

    # A ValueError or KeyError from a bug is a bug too, not a refusal or a missing trip.
    def buggy_close() -> dict[str, Any]:
        raise ValueError("invalid literal for int() with base 10: 'x'")

    def buggy_manifest(trip_id: str) -> list[dict[str, Any]]:
        raise KeyError("seats")

    backend.close_trip = buggy_close  # type: ignore[method-assign]
    backend.manifest = buggy_manifest  # type: ignore[method-assign]
    status, err = post(console, "/api/trip/close", {})
    assert status == 500 and "invalid literal" not in err["error"]
    assert get_json(console, "/api/trip/t1/manifest")[0] == 500


def test_group_head_count(console: ConsoleServer, backend: MemoryBackend) -> None:
    backend.add_permit("GP1:FAMILY", dict(PERMIT, party=5))
    status, decision = post(console, "/api/scan", {"payload": "GP1:FAMILY"})
    assert decision["awaiting_count"] and decision["remaining"] == 5
    status, err = post(console, "/api/confirm-party", {"decision_id": decision["id"], "count": 6})
    assert status == 409 and "head count" in err["error"]
    status, after = post(console, "/api/confirm-party", {"decision_id": decision["id"], "count": 3})
    assert status == 200 and after["admitted"] == 3 and after["remaining"] == 2
    assert get_json(console, "/api/snapshot")[1]["counters"]["gate_admitted"] == 3


def test_trip_lifecycle_and_manifest_export(
    console: ConsoleServer, backend: MemoryBackend
) -> None:
    status, trip = post(console, "/api/trip/open", {
        "bus": "B-17", "route": "Haram-Aziziyah", "departure": 1_780_003_600, "seats": 45})
    assert status == 200 and trip["boarded"] == 0
    status, err = post(console, "/api/trip/open", {
        "bus": "B-18", "route": "R", "departure": 1_780_003_600, "seats": 45})
    assert status == 409 and "already open" in err["error"]
    backend.add_permit("GP1:EVIL", dict(PERMIT, initials="=HYPERLINK(1)", doc_digits="+1"))
    post(console, "/api/scan", {"payload": "GP1:OK"})
    post(console, "/api/scan", {"payload": "GP1:EVIL"})
    status, closed = post(console, "/api/trip/close", {})
    assert status == 200 and closed["boarded"] == 2
    status, rows = get_json(console, f"/api/trip/{trip['id']}/manifest")
    assert status == 200 and [r["initials"] for r in rows] == ["A.K.", "=HYPERLINK(1)"]
    status, headers, body = request(console, "GET", f"/api/trip/{trip['id']}/manifest.csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert "attachment" in headers["content-disposition"]
    lines = body.decode().splitlines()
    assert lines[0] == "seq,t,ph,type,party,initials,doc_digits,kind,note"
    assert len(lines) == 3 and ",'=HYPERLINK(1),'+1," in lines[2]
    assert get_json(console, "/api/trip/no-such-trip/manifest")[0] == 404
    assert request(console, "GET", "/api/trip/a%22b/manifest.csv")[0] == 400


def test_time_override_needs_a_note_and_reaches_the_backend(
    console: ConsoleServer, backend: MemoryBackend
) -> None:
    backend.set_clock("untrusted", trusted=False)
    assert get_json(console, "/api/snapshot")[1]["clock"]["trusted"] is False
    status, clock = post(console, "/api/time-override", {"note": "checked against imam's phone"})
    assert status == 200 and clock["state"] == "override"
    assert backend.history == [("time_override", {"note": "checked against imam's phone"})]


# -- live updates ---------------------------------------------------------------------------


def _read_event(resp: http.client.HTTPResponse) -> dict[str, Any]:
    data = None
    while True:
        line = resp.readline().decode()
        if line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "\n" and data is not None:
            return data


def test_event_stream_pushes_every_change_and_ends_on_close(backend: MemoryBackend) -> None:
    server = ConsoleServer(backend=backend).start()
    try:
        port = int(server.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/stream")
        resp = conn.getresponse()
        assert resp.getheader("Content-Type", "").startswith("text/event-stream")
        first = _read_event(resp)
        assert first["last"] is None
        threading.Timer(0.2, backend.submit_payload, args=("GP1:OK",)).start()
        second = _read_event(resp)
        assert second["version"] > first["version"]
        assert second["last"]["verdict"] == "admit"
        assert second["last"]["messages"]["pilgrim"]["lang"] == "ar"
    finally:
        t0 = time.monotonic()
        server.close()
        server.close()  # safe twice
    assert resp.read() == b""  # the stream ended: the server hung up
    assert time.monotonic() - t0 < 3.0
    conn.close()


def test_long_poll_returns_on_change(console: ConsoleServer, backend: MemoryBackend) -> None:
    version = backend.version()
    threading.Timer(0.3, backend.submit_payload, args=("GP1:OK",)).start()
    t0 = time.monotonic()
    status, snap = get_json(console, f"/api/snapshot?since={version}&wait=10")
    assert status == 200 and snap["version"] > version
    assert 0.2 < time.monotonic() - t0 < 5
    assert get_json(console, "/api/snapshot?since=x")[0] == 400


def test_url_requires_a_running_server(backend: MemoryBackend) -> None:
    server = ConsoleServer(backend=backend)
    with pytest.raises(RuntimeError):
        _ = server.url
    server.close()  # closing what never started is fine
