"""A tiny static server for the wallet (Python's http.server), stoppable mid-test."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

WALLET = Path(__file__).resolve().parents[2] / "wallet"


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 (the base class's own attribute)
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".webmanifest": "application/manifest+json",
        "": "application/octet-stream",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class WalletServer:
    port: int
    httpd: http.server.ThreadingHTTPServer
    thread: threading.Thread
    stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=10)


@pytest.fixture
def wallet_server() -> Iterator[WalletServer]:
    handler = functools.partial(_Handler, directory=str(WALLET))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # a free port, no race
    port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, name="wallet-http", daemon=True)
    thread.start()
    server = WalletServer(port, httpd, thread)
    try:
        yield server
    finally:
        server.stop()
