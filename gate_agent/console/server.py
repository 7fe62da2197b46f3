"""The console's HTTP server: the page, its JSON API, live updates, metrics.

Routes (all JSON unless said otherwise)::

    GET  /                         the page (static/index.html); /static/<file> its assets
    GET  /api/snapshot             backend.snapshot(), messages filled in; ?since=V&wait=S
                                   long-polls until the version differs from V (S <= 25)
    GET  /api/stream               server-sent events: one "snapshot" event per change
    POST /api/scan                 {"payload": str}                          typed / wedge code
    POST /api/override             {"action", "reason", "note", "party"}     manual decision
    POST /api/confirm-party        {"decision_id": str, "count": int}        group head count
    POST /api/trip/open            {"bus", "route", "departure": int, "seats": int}
    POST /api/trip/close           {}
    GET  /api/trip/<id>/manifest   rows; /api/trip/<id>/manifest.csv as CSV
    POST /api/time-override        {"note": str}
    GET  /api/console              override reasons and input limits for the page
    GET  /api/i18n                 [{"lang", "name", "dir", "console"}]; /api/i18n/<lang>
    GET  /metrics                  Prometheus text format from the given registry
    GET  /healthz                  {"ok": true, "version": int}

Every POST body must be a JSON object of at most MAX_BODY bytes with a Content-Length and
``Content-Type: application/json`` (which also keeps other web sites from posting forms
here); unknown keys, wrong types and missing reasons get a 400 with a message saying which
field and why. Backend refusals (ActionRefused, ConsoleRequestError) are 409, unknown
trips (NotFound) 404, anything else 500 and logged.
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from gate_agent import i18n
from gate_agent.console.backend import (
    NOTE_MAX,
    NOTE_MIN,
    OVERRIDE_ACTIONS,
    OVERRIDE_REASONS,
    TIME_NOTE_MIN,
    ActionRefused,
    ConsoleBackend,
    ConsoleError,
    NotFound,
)
from gate_agent.errors import ConsoleRequestError

log = logging.getLogger(__name__)

MAX_BODY: Final = 16 * 1024
MAX_PAYLOAD: Final = 4096  # a QR code holds at most 4,296 alphanumeric characters
MAX_PARTY: Final = 64  # same bound as sync.schema.MAX_PARTY
MAX_SEATS: Final = 500
#: Departures between 2020 and 2100: anything else is a typo or a 1970 clock.
DEPARTURE_RANGE: Final = (1_577_836_800, 4_102_444_800)
STREAM_POLL_S: Final = 1.0  # how often an event stream notices the server is closing
STREAM_HEARTBEAT_S: Final = 15.0
LONG_POLL_MAX_S: Final = 25.0
MAX_CONNECTIONS: Final = 32
SOCKET_TIMEOUT_S: Final = 10.0  # a client that stops sending mid-body is dropped

_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
_LABEL_RE: Final = re.compile(r"^[\w .:/#-]{1,64}\Z")
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_STATIC_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
#: The page may talk to its own origin only: nothing from the internet, even by mistake.
_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


_BUSY: Final = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nRetry-After: 2\r\n\r\n"
    b'{"error": "the console has too many open connections; retry"}'
)


class BadRequest(ConsoleError, ValueError):
    """A request the console refuses before it reaches the backend (HTTP 4xx)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


class NotRunning(ConsoleError, RuntimeError):
    """The console server is not running (not started yet, or closed)."""


# -- validation ---------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a POST body into a JSON object or raise :class:`BadRequest`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("body is not UTF-8") from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise BadRequest("body is nested too deeply") from exc
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _check_keys(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _text(
    body: dict[str, Any], name: str, *, required: bool = True, lo: int = 1, hi: int = 64,
    pattern: re.Pattern[str] | None = None, default: str = "",
) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return default
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    value = value.strip()
    if _CONTROL_RE.search(value):
        raise BadRequest(f"{name} must not contain control characters")
    if not lo <= len(value) <= hi:
        raise BadRequest(f"{name} must be {lo} to {hi} characters long")
    if pattern is not None and not pattern.match(value):
        raise BadRequest(f"{name} has characters that are not allowed")
    return value


def _int(
    body: dict[str, Any], name: str, lo: int, hi: int, *, default: int | None = None
) -> int:
    value = body.get(name)
    if value is None:
        if default is None:
            raise BadRequest(f"{name} is required")
        return default
    # bool is an int in Python but never a head count; 2.0 is a float in JSON terms.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return value


def validate_override(body: dict[str, Any]) -> tuple[str, str, str, int]:
    """``(action, reason_code, note, party)`` from an override body."""
    _check_keys(body, {"action", "reason", "note", "party"})
    action = _text(body, "action", hi=16)
    if action not in OVERRIDE_ACTIONS:
        raise BadRequest(f"action must be one of {list(OVERRIDE_ACTIONS)}")
    if body.get("reason") in (None, ""):
        raise BadRequest("reason is required: choose why you override")
    reason = _text(body, "reason", hi=32)
    if reason not in OVERRIDE_REASONS:
        raise BadRequest(f"reason must be one of {list(OVERRIDE_REASONS)}")
    note = _text(body, "note", required=False, lo=0, hi=NOTE_MAX)
    if reason == "other" and len(note) < NOTE_MIN:
        raise BadRequest(f"note is required (at least {NOTE_MIN} characters) for reason 'other'")
    party = _int(body, "party", 1, MAX_PARTY, default=1)
    return action, reason, note, party


def validate_confirm_party(body: dict[str, Any]) -> tuple[str, int]:
    _check_keys(body, {"decision_id", "count"})
    return _text(body, "decision_id", pattern=_ID_RE), _int(body, "count", 1, MAX_PARTY)


def validate_trip_open(body: dict[str, Any]) -> tuple[str, str, int, int]:
    _check_keys(body, {"bus", "route", "departure", "seats"})
    bus = _text(body, "bus", hi=32, pattern=_LABEL_RE)
    route = _text(body, "route", pattern=_LABEL_RE)
    departure = _int(body, "departure", *DEPARTURE_RANGE)
    seats = _int(body, "seats", 1, MAX_SEATS)
    return bus, route, departure, seats


def validate_time_override(body: dict[str, Any]) -> str:
    _check_keys(body, {"note"})
    if body.get("note") in (None, ""):
        raise BadRequest("note is required: say who checked the clock and against what")
    return _text(body, "note", lo=TIME_NOTE_MIN, hi=NOTE_MAX)


def validate_scan(body: dict[str, Any]) -> str:
    _check_keys(body, {"payload"})
    payload = body.get("payload")
    if not isinstance(payload, str):
        raise BadRequest("payload is required and must be a string")
    # A keyboard wedge ends the code with Enter; the code itself never has line breaks.
    payload = payload.strip("\r\n\t ")
    if not 1 <= len(payload) <= MAX_PAYLOAD:
        raise BadRequest(f"payload must be 1 to {MAX_PAYLOAD} characters long")
    if "\x00" in payload:
        raise BadRequest("payload must not contain NUL characters")
    return payload


# -- snapshot enrichment --------------------------------------------------------------------


def _message_json(m: i18n.Message) -> dict[str, str]:
    return asdict(m)


def enrich(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Fill in decision messages the backend left out, from the catalogue."""
    langs = snapshot.get("languages") or {}
    att = str(langs.get("attendant") or i18n.FALLBACK)
    pil = str(langs.get("pilgrim") or "ar")
    last = snapshot.get("last")
    if isinstance(last, dict) and isinstance(last.get("verdict"), str):
        msgs = last.get("messages")
        if not isinstance(msgs, dict) or not {"attendant", "pilgrim"} <= set(msgs):
            made = i18n.decision_messages(last["verdict"], last.get("reason"), att, pil)
            last = dict(last, messages={k: _message_json(v) for k, v in made.items()})
            snapshot = dict(snapshot, last=last)
    return snapshot


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheet formula injection: a note typed at the gate must stay text in Excel.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


MANIFEST_COLUMNS: Final = ("seq", "t", "ph", "type", "party", "initials", "doc_digits", "kind",
                           "note")


def manifest_csv(rows: list[dict[str, Any]]) -> str:
    """The manifest as CSV with a fixed header, safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(MANIFEST_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in MANIFEST_COLUMNS])
    return out.getvalue()


# -- HTTP -------------------------------------------------------------------------------------


def _static_files() -> dict[str, bytes]:
    root = resources.files("gate_agent.console").joinpath("static")
    files: dict[str, bytes] = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in _STATIC_TYPES:
            files[entry.name] = entry.read_bytes()
    return files


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with named request threads and a cap on concurrent connections.

    The cap keeps a misbehaving client (or a tab opened fifty times) from exhausting the
    threads of a Raspberry Pi: past it, new connections get a 503 and are closed at once.
    """

    daemon_threads = True
    block_on_close = False
    console: ConsoleServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._counter = itertools.count(1)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        t = threading.Thread(
            target=self._run, args=(request, client_address),
            name=f"console-http-{next(self._counter)}", daemon=True,
        )
        t.start()

    def _run(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "gatepass-console"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S

    # -- plumbing
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    @property
    def console(self) -> ConsoleServer:
        return self.server.console

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CSP)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            self._answer(fn)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # The client went away (or stalled past SOCKET_TIMEOUT_S): nothing to answer.
            self.close_connection = True

    def _answer(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BadRequest as exc:
            self._error(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            raise
        except NotFound as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc) or "not found")
        except (ActionRefused, ConsoleRequestError) as exc:
            # The backend refused (no trip open, count above the party...): say why.
            self._error(HTTPStatus.CONFLICT, str(exc) or type(exc).__name__)
        except Exception:  # a bug, a ValueError or KeyError from one included: never a 409
            log.exception("console: %s %s failed", self.command, self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (logged at the gate)")

    def _read_body(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest("chunked bodies are not accepted; send Content-Length",
                             HTTPStatus.LENGTH_REQUIRED)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise BadRequest("Content-Length is required", HTTPStatus.LENGTH_REQUIRED)
        try:
            length = int(length_header)
        except ValueError as exc:
            raise BadRequest("Content-Length must be an integer") from exc
        if length < 0:
            raise BadRequest("Content-Length must not be negative")
        if length > MAX_BODY:
            self.close_connection = True  # do not read (or wait for) a body we refuse
            raise BadRequest(f"body larger than {MAX_BODY} bytes",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self.close_connection = True
            raise BadRequest("Content-Type must be application/json",
                             HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        origin = self.headers.get("Origin")
        host = self.headers.get("Host")
        if origin and host and urlsplit(origin).netloc != host:
            self.close_connection = True
            raise BadRequest("cross-origin requests are refused", HTTPStatus.FORBIDDEN)
        raw = self.rfile.read(length)
        if len(raw) != length:
            raise BadRequest("body shorter than Content-Length")
        return parse_body(raw)

    # -- GET
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._guard(self._get)

    def _check_host(self) -> None:
        raw = (self.headers.get("Host") or "").strip().lower()
        if raw.startswith("["):  # [::1]:8080
            name = raw[1:raw.find("]")] if "]" in raw else raw
        elif raw.count(":") == 1:  # 127.0.0.1:8080, localhost:8080
            name = raw.split(":", 1)[0]
        else:
            name = raw
        try:
            ipaddress.ip_address(name)
            return
        except ValueError:
            pass
        if name == "localhost" or name in self.console.allowed_hosts:
            return
        raise BadRequest(f"unknown host name {name!r}: open the console by its IP address",
                         HTTPStatus.MISDIRECTED_REQUEST)

    def _get(self) -> None:
        self._check_host()
        parts = urlsplit(self.path)
        path = parts.path
        backend = self.console.backend
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path[len("/static/"):])
        elif path == "/api/snapshot":
            self._snapshot(parse_qs(parts.query))
        elif path == "/api/stream":
            self._stream()
        elif path == "/api/console":
            self._json(200, {
                "override_actions": list(OVERRIDE_ACTIONS),
                "override_reasons": list(OVERRIDE_REASONS),
                "note_min": NOTE_MIN, "note_max": NOTE_MAX, "time_note_min": TIME_NOTE_MIN,
                "max_party": MAX_PARTY, "max_payload": MAX_PAYLOAD,
            })
        elif path == "/api/i18n":
            self._json(200, [
                {"lang": c.lang, "name": c.name, "dir": c.dir,
                 "console": bool(c.ui and c.attendant)}
                for c in map(i18n.catalogue, i18n.languages())
            ])
        elif path.startswith("/api/i18n/"):
            lang = path[len("/api/i18n/"):]
            try:
                cat = i18n.catalogue(lang)
            except i18n.CatalogueError as exc:
                raise BadRequest(str(exc), HTTPStatus.NOT_FOUND) from exc
            data = cat.to_json()
            data["ui"] = i18n.ui_strings(lang)
            self._json(200, data)
        elif (m := re.fullmatch(r"/api/trip/([^/]{1,64})/manifest(\.csv)?", path)):
            trip_id = m.group(1)
            if not _ID_RE.match(trip_id):
                raise BadRequest("trip id has characters that are not allowed")
            rows = backend.manifest(trip_id)
            if m.group(2):
                self._send(200, manifest_csv(rows).encode("utf-8"), "text/csv; charset=utf-8",
                           {"Content-Disposition":
                            f'attachment; filename="manifest-{trip_id}.csv"'})
            else:
                self._json(200, rows)
        elif path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            try:
                version = backend.version()
            except Exception as exc:  # the agent is sick: say so, do not crash the console
                self._json(503, {"ok": False, "error": type(exc).__name__})
                return
            self._json(200, {"ok": True, "version": version})
        else:
            raise BadRequest(f"no such page: {path}", HTTPStatus.NOT_FOUND)

    def _static(self, name: str) -> None:
        body = self.console.static.get(name)  # exact names only: no path traversal
        if body is None:
            raise BadRequest(f"no such file: {name}", HTTPStatus.NOT_FOUND)
        ctype = _STATIC_TYPES["." + name.rsplit(".", 1)[-1]]
        self._send(200, body, ctype)

    def _snapshot(self, query: dict[str, list[str]]) -> None:
        backend = self.console.backend
        if "since" in query:
            try:
                since = int(query["since"][0])
                wait = min(float(query.get("wait", ["20"])[0]), LONG_POLL_MAX_S)
            except ValueError as exc:
                raise BadRequest("since must be an integer and wait a number") from exc
            if not wait >= 0:  # also refuses NaN
                raise BadRequest("wait must be a non-negative number")
            deadline_left = wait
            while deadline_left > 0 and not self.console.closing.is_set():
                step = min(STREAM_POLL_S, deadline_left)
                if backend.wait_for_change(since, step) != since:
                    break
                deadline_left -= step
        self._json(200, enrich(backend.snapshot()))

    def _stream(self) -> None:
        backend = self.console.backend
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        if self.command == "HEAD":
            return
        version: int | None = None
        idle = 0.0
        while not self.console.closing.is_set():
            current = backend.version()
            if current != version:
                snap = enrich(backend.snapshot())
                version = int(snap.get("version", current))
                data = json.dumps(snap, ensure_ascii=False, allow_nan=False)
                self.wfile.write(f"event: snapshot\nid: {version}\ndata: {data}\n\n".encode())
                self.wfile.flush()
                idle = 0.0
                continue
            backend.wait_for_change(version, STREAM_POLL_S)
            idle += STREAM_POLL_S
            if idle >= STREAM_HEARTBEAT_S:
                # A comment line: keeps proxies and the browser from thinking we died.
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                idle = 0.0

    def _metrics(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        registry = self.console.metrics_registry or REGISTRY
        self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    # -- POST
    def do_POST(self) -> None:
        self._guard(self._post)

    def _post(self) -> None:
        self._check_host()
        path = urlsplit(self.path).path
        handler = self.console.post_routes.get(path)
        if handler is None:
            raise BadRequest(f"no such action: {path}", HTTPStatus.NOT_FOUND)
        body = self._read_body()
        result = handler(body)
        self._json(200, result)

    def do_PUT(self) -> None:
        self._guard(self._method_not_allowed)

    do_DELETE = do_PATCH = do_PUT

    def _method_not_allowed(self) -> None:
        raise BadRequest("method not allowed", HTTPStatus.METHOD_NOT_ALLOWED)


class ConsoleServer:
    """Serve the attendant console for ``backend`` on ``host:port`` (0 = a free port).

    A context manager: entering starts the server thread, leaving (or ``close()``, safe to
    call twice) stops it and ends live streams within about a second. ``url`` is the base
    address, e.g. ``http://127.0.0.1:43121``.

    Requests must name the console by IP address or ``localhost`` (or a name listed in
    ``allowed_hosts``): a web page elsewhere that points its own domain at 127.0.0.1 (DNS
    rebinding) must not read holder details off the console.
    """

    def __init__(
        self,
        backend: ConsoleBackend,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics_registry: Any = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.backend = backend
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.host = host
        self.port = port
        self.metrics_registry = metrics_registry
        self.closing = threading.Event()
        self.static = _static_files()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.post_routes: dict[str, Callable[[dict[str, Any]], Any]] = {
            "/api/scan": lambda b: backend.submit_payload(validate_scan(b)),
            "/api/override": lambda b: backend.override(*validate_override(b)),
            "/api/confirm-party": lambda b: backend.confirm_party(*validate_confirm_party(b)),
            "/api/trip/open": lambda b: backend.open_trip(*validate_trip_open(b)),
            "/api/trip/close": self._close_trip,
            "/api/time-override": lambda b: backend.time_override(validate_time_override(b)),
        }

    def _close_trip(self, body: dict[str, Any]) -> Any:
        _check_keys(body, set())
        return self.backend.close_trip()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise NotRunning("the console server is not running")
        raw_host, port = self._httpd.server_address[:2]
        host = raw_host.decode() if isinstance(raw_host, bytes) else str(raw_host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> ConsoleServer:
        with self._lock:
            if self._httpd is not None:
                return self
            if self.closing.is_set():
                raise NotRunning("a closed console server cannot be restarted")
            httpd = _Server((self.host, self.port), _Handler)
            httpd.console = self
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name="console-server", daemon=True,
            )
            self._thread.start()
            log.info("attendant console on %s", self.url)
            return self

    def close(self) -> None:
        """Stop serving; safe to call twice."""
        with self._lock:
            self.closing.set()
            httpd, self._httpd = self._httpd, None
            thread, self._thread = self._thread, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(5.0)
            if thread.is_alive():
                log.warning("console server thread did not stop within 5 s")

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

