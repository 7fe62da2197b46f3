"""What a test does when a real part (broker, browser, database, library) is missing.

Outside CI it skips and names the command that installs the part. Under CI (``CI=true``)
it fails: a green CI run always means the broker, browser and PostgreSQL tests ran. Only
the shared corpus may be absent outside CI, and it has its own skip (``corpus`` fixture).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

INSTALL_HINT = "run scripts/install-system-deps.sh as root (make test does when it can)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing_part(what: str, fix: str = INSTALL_HINT) -> NoReturn:
    """Skip (or, under CI, fail) because ``what`` is missing; ``fix`` says how to get it
    (empty: ``what`` says it already)."""
    message = f"{what}: {fix}" if fix else what
    if in_ci():
        pytest.fail(f"CI needs every real part, and {message}", pytrace=False)
    pytest.skip(message)


def require_decoder(name: str) -> None:
    """Skip (or, under CI, fail) a test that needs decoder backend ``name`` when its
    library is missing here, naming why and what installs it. ``default`` always works."""
    from gate_agent.decode import backend_status

    if name == "default":
        return
    status = backend_status(name)
    if not status.available:
        missing_part(f"decoder {name} unavailable here ({status.reason})", "")
