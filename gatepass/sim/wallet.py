"""The pilgrim wallet in the demo: its static files served on 127.0.0.1, and pilgrims whose
phones show live presentations (or stale screenshots of one) at the simulated cameras."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

#: The wallet's folder in a source checkout (a wheel does not carry it).
WALLET_DIR = Path(__file__).resolve().parents[2] / "wallet"


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


class WalletServer:
    """``wallet/`` over HTTP on 127.0.0.1 (a secure context for its service worker)."""

    def __init__(self, directory: Path = WALLET_DIR, host: str = "127.0.0.1") -> None:
        handler = functools.partial(_Handler, directory=str(directory))
        self._httpd = http.server.ThreadingHTTPServer((host, 0), handler)
        self.url = f"http://{host}:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="demo-wallet-http", daemon=True
        )
        self._closed = False

    def __enter__(self) -> WalletServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)


class Phone:
    """A pilgrim's phone: its device key, and the presentations it shows."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )

    def present(self, permit_text: str, at: float) -> str:
        """The live code this phone shows for ``permit_text`` at ``at``."""
        from verifier import envelope, presentation

        return presentation.make_presentation(envelope.unwrap(permit_text), self.key, at)


def holder_bound(sb: Any, phone: Phone, **permit: Any) -> str:
    """A permit from the sandbox's ES256 issuer bound to ``phone``."""
    from verifier.issue import issue_permit

    spec = sb.specs["es256"]
    slot = permit.pop("slot")
    return issue_permit(spec.key, issuer=spec.issuer, issued_at=int(slot[0]) - 3600,
                        slot=slot, holder_key=phone.point, **permit).text
