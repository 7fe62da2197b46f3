"""The agent signs what it sends with the key its config names (issue #9 item 3): every
batch on the wire verifies with the gate's registered key and claims its gate groups."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import SITE, slot

from gate_agent.agent import GateAgent
from gate_agent.errors import ConfigError
from gate_agent.uplink import open_sync
from sync import topics, wire
from verifier.keys import SigningKey
from verifier.registry import make_entry, verify_batch
from verifier.sandbox import Sandbox

pytestmark = pytest.mark.broker


def _key_file(tmp_path: Path, key: SigningKey, mode: int = 0o600) -> Path:
    path = tmp_path / "gate.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.to_pem())
    os.chmod(path, mode)
    return path


def test_the_agent_signs_every_batch_with_its_key(
        make_agent: Callable[..., GateAgent], sandbox: Sandbox, broker: Any,
        tmp_path: Path) -> None:
    key = SigningKey.generate()
    gate = f"g-id-{uuid.uuid4().hex[:6]}"
    agent = make_agent(gate=gate, key_file=str(_key_file(tmp_path, key)),
                       broker={"host": "127.0.0.1", "port": broker.port, "protocol": "5"})
    entry = make_entry(gate, SITE, ["north"], "entrance", key.public_der())
    got: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{gate}",
                      protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(topics.events(gate), qos=1)
    sub.loop_start()
    try:
        with open_sync(agent) as sync:
            deadline = time.monotonic() + 30
            while not sync.status().connected and time.monotonic() < deadline:
                time.sleep(0.05)
            for _ in range(3):
                assert agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))["verdict"] \
                    == "admit"
            deadline = time.monotonic() + 30
            while sum(len(wire.decode_batch(p, gate)) for p in got) < 3 \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert sum(len(wire.decode_batch(p, gate)) for p in got) >= 3
    for payload in got:
        batch = wire.decode_signed_batch(payload, gate)
        assert batch.sig is not None and batch.groups == ("north",)
        verify_batch(entry, batch.signed, batch.sig)


def test_the_agent_refuses_a_key_others_can_read(
        make_agent: Callable[..., GateAgent], broker: Any, tmp_path: Path) -> None:
    agent = make_agent(key_file=str(_key_file(tmp_path, SigningKey.generate(), 0o640)),
                       broker={"host": "127.0.0.1", "port": broker.port})
    with pytest.raises(ConfigError, match="chmod 600"), open_sync(agent):
        pass
