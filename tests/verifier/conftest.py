"""Fixtures for the verifier tests (helpers live in permit_helpers.py)."""

from __future__ import annotations

import pytest

from verifier.sandbox import Sandbox


@pytest.fixture(scope="module")
def sb() -> Sandbox:
    return Sandbox.create(sites=("makkah-haram", "madinah"), seed="verifier-tests")
