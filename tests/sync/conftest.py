"""Fixtures for the sync tests: a fake centre on the session broker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sync_helpers import FakeCentre


@pytest.fixture
def centre(broker: Any) -> Iterator[FakeCentre]:
    c = FakeCentre(broker.port).start()
    try:
        yield c
    finally:
        c.stop()
