"""The centre's HTTP side: dashboard page, JSON API, document intake and ``/metrics``.

Stdlib ``ThreadingHTTPServer`` in a named thread. Everything the page needs ships in
this package (``index.html``, ``app.js``, ``app.css``): no request ever leaves for the
internet, and the Content Security Policy says so to the browser too.

Routes::

    GET  /                 the dashboard page
    GET  /static/<file>    its CSS and JS
    GET  /api/summary      counts against capacity, gates, trips, conflicts, documents
    GET  /healthz          "ok" (the process and its store answer)
    GET  /metrics          Prometheus text format
    POST /api/documents    a signed trust list / revocation snapshot / delta to relay
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from central.dashboard.api import build_summary
from central.errors import (
    BodyTooLarge,
    CentralError,
    DocumentNotNewer,
    DownlinkError,
    StoreError,
)

if TYPE_CHECKING:
    from central.config import SiteConfig
    from central.downlink import Given
    from central.store.base import Store

log = logging.getLogger(__name__)

STATIC: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
JOIN_TIMEOUT_S: Final = 10.0


def _asset(name: str) -> bytes:
    # Next to this module (not in a sub-folder) so the package-data globs ship them.
    return resources.files("central.dashboard").joinpath(name).read_bytes()


class DashboardServer:
    """Serves the dashboard for one store. ``give`` relays posted documents (optional)."""

    def __init__(
        self,
        *,
        store: Store,
        sites: Sequence[SiteConfig] = (),
        host: str = "127.0.0.1",
        port: int = 8080,
        registry: CollectorRegistry | None = None,
        give: Callable[[bytes], Given] | None = None,
        max_body_bytes: int = 1024 * 1024,
        poll_ms: int = 1000,
        clock: Callable[[], float] = time.time,
        cache_s: float = 0.2,
    ) -> None:
        self.store = store
        self.sites = list(sites)
        self.registry = registry
        self.give = give
        self.max_body_bytes = max_body_bytes
        self.poll_ms = poll_ms
        self.clock = clock
        self._cache_s = cache_s
        self._cache: tuple[float, bytes] | None = None
        self._cache_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._assets = {name: _asset(name) for name in STATIC}
        self._index = _asset("index.html").replace(b"{{POLL_MS}}", str(poll_ms).encode())
        self._host = host
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> DashboardServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                name="central-http", daemon=True,
            )
            self._thread.start()
        return self

    def summary_json(self) -> bytes:
        """The summary, cached briefly: many open dashboards cost one query per period."""
        with self._cache_lock:
            now = self.clock()
            if self._cache is not None and now - self._cache[0] < self._cache_s:
                return self._cache[1]
            body = json.dumps(build_summary(self.store, self.sites, now),
                              separators=(",", ":")).encode()
            self._cache = (now, body)
            return body

    def close(self) -> None:
        """Stop serving and release the port; safe twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(JOIN_TIMEOUT_S)
        self._httpd.server_close()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _handler_for(app: DashboardServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gatepass-central"
        sys_version = ""
        timeout = 30  # a client that connects and sends nothing must not hold a thread

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, ctype: str, *, cache: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._json(status, {"error": message})

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(200, app._index, "text/html; charset=utf-8")
                elif path.startswith("/static/") and path[8:] in app._assets:
                    name = path[8:]
                    self._send(200, app._assets[name], STATIC[name], cache=True)
                elif path == "/api/summary":
                    self._send(200, app.summary_json(), "application/json")
                elif path == "/healthz":
                    app.store.event_count()
                    self._send(200, b"ok\n", "text/plain; charset=utf-8")
                elif path == "/metrics" and app.registry is not None:
                    self._send(200, generate_latest(app.registry), CONTENT_TYPE_LATEST)
                else:
                    self._error(HTTPStatus.NOT_FOUND, f"no such page {path[:100]}")
            except StoreError as exc:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path != "/api/documents":
                self._drain_refuse(HTTPStatus.NOT_FOUND, f"no such endpoint {path[:100]}")
                return
            try:
                raw = self._body()
            except BodyTooLarge as exc:
                self._drain_refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc))
                return
            except ValueError as exc:
                self._drain_refuse(HTTPStatus.BAD_REQUEST, str(exc))
                return
            if app.give is None:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, "no aggregator to relay documents")
                return
            try:
                given = app.give(raw)
            except DocumentNotNewer as exc:  # rollback or a gap: nothing changed
                self._error(HTTPStatus.CONFLICT, str(exc))
                return
            except DownlinkError as exc:
                self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
                return
            except CentralError as exc:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
                return
            self._json(HTTPStatus.CREATED, {"kind": given.kind, "version": given.version,
                                            "summary": given.summary})

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                raise ValueError("chunked bodies are not accepted; send Content-Length")
            length_text = self.headers.get("Content-Length")
            if length_text is None or not length_text.strip().isdigit():
                raise ValueError("Content-Length is required")
            length = int(length_text)
            if length > app.max_body_bytes:
                raise BodyTooLarge(f"body of {length} bytes exceeds {app.max_body_bytes}")
            if length == 0:
                raise ValueError("empty body")
            return self.rfile.read(length)

        def _drain_refuse(self, status: HTTPStatus, message: str) -> None:
            # Do not read a hostile body: answer and close the connection instead.
            self.close_connection = True
            self._error(status, message)

    return Handler
