"""Fixtures for decode tests (QR drawing helpers live in ``decode_helpers``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def permit_text() -> str:
    """A permit-shaped payload: 'GP1:' + 300 Base45 characters."""
    import random

    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    rnd = random.Random(42)
    return "GP1:" + "".join(rnd.choice(alphabet) for _ in range(300))
