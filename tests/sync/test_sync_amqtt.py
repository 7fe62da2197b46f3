"""MQTT 3.1.1 end to end on amqtt (the pure-Python broker the demo embeds; it refuses v5)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from realparts import missing_part
from sync_helpers import FakeCentre, Ledger, wait_for

from sync.config import BrokerConfig
from sync.link import GateLink
from sync.outbox import Outbox

pytestmark = pytest.mark.broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def amqtt_port(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("amqtt", path=str(Path(sys.executable).parent))
    if binary is None:
        missing_part("amqtt is not installed", "make install")
    port = free_port()
    conf = tmp_path / "amqtt.yaml"
    conf.write_text(
        "listeners:\n  default:\n    type: tcp\n"
        f"    bind: 127.0.0.1:{port}\n"
        "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
        "    allow_anonymous: true\n")
    log = (tmp_path / "amqtt.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"amqtt did not start: {(tmp_path / 'amqtt.log').read_text()}")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_v311_link_on_amqtt_and_v5_refused(tmp_path: Path, amqtt_port: int) -> None:
    centre = FakeCentre(amqtt_port, protocol="3.1.1").start()
    fast = {"port": amqtt_port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.3,
            "connect_timeout_s": 2}
    try:
        ledger = Ledger(tmp_path / "a.db", gate="g311")
        ledger.admit(120)
        with Outbox(tmp_path / "a.db") as ob, GateLink(
                gate="g311", outbox=ob,
                broker=BrokerConfig.model_validate({**fast, "protocol": "3.1.1",
                                                    "batch_size": 50})):
            wait_for(lambda: ob.backlog() == 0, 30, "acked through amqtt")
        assert centre.seqs("g311") == set(range(1, 121))
        ledger.close()
        l5 = Ledger(tmp_path / "b.db", gate="g5")
        l5.admit(3)
        with Outbox(tmp_path / "b.db") as ob, GateLink(
                gate="g5", outbox=ob,
                broker=BrokerConfig.model_validate({**fast, "protocol": "5"})) as link:
            # amqtt holds a v5 CONNECT without answering: connect_timeout_s gives up.
            wait_for(lambda: link.status().last_error is not None, 10, "v5 attempt given up")
            st = link.status()
            assert not st.connected and st.connects == 0 and ob.backlog() == 3
            assert st.last_error is not None
        l5.close()
    finally:
        centre.stop()
