"""Fixtures for the gate agent tests: a real sandbox PKI, real SQLite, simulated outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import SLOT, FakeTime, base_config

from gate_agent.agent import GateAgent
from gate_agent.assembly import assemble, clock_from_config
from gate_agent.config import config_from_dict
from gatepass.keyfiles import write_key_directory
from hardware.outputs import SimulatedOutputs
from verifier.sandbox import Sandbox

SITE = "haram"


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return Sandbox.create(sites=(SITE, "madinah"), seed="gate-agent-tests")


@pytest.fixture
def bundle(sandbox: Sandbox, tmp_path: Path) -> Path:
    return write_key_directory(sandbox, tmp_path / "keys")


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_agent(
    tmp_path: Path, bundle: Path, fake_time: FakeTime
) -> Iterator[Callable[..., GateAgent]]:
    """``make_agent(**config overrides)``: an unstarted agent on a fresh ledger."""
    stack: list[Any] = []

    def build(source: Any = None, **over: Any) -> GateAgent:
        data = base_config(tmp_path, **over)
        data["trust"] = {"bundle": str(bundle)}
        cfg = config_from_dict(data)
        clock = clock_from_config(
            cfg, wall=lambda: fake_time.wall, mono=lambda: fake_time.mono,
            synced=lambda: fake_time.synced,
        )
        outputs = SimulatedOutputs(start_thread=False)
        cm = assemble(cfg, clock=clock, outputs=outputs, with_source=False,
                      with_decoder=source is not None, source=source)
        agent = cm.__enter__()
        agent.clock.poll()
        stack.append(cm)
        return agent

    try:
        yield build
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)


def slot() -> tuple[int, int]:
    return (SLOT, SLOT + 7200)
