"""TLS to a real Mosquitto with certificates from deploy/mosquitto/make-certs.sh."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from realparts import missing_part
from sync_helpers import FakeCentre, Ledger, wait_for

from sync.config import BrokerConfig
from sync.link import GateLink
from sync.outbox import Outbox

pytestmark = pytest.mark.broker
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_broker(tmp_path: Path, mosquitto_factory: Any) -> Any:
    if shutil.which("openssl") is None:
        missing_part("openssl is not installed")
    certs = tmp_path / "certs"
    subprocess.run([str(DEPLOY / "make-certs.sh"), str(certs), "localhost", "gtls"],
                   check=True, capture_output=True)
    tls_port, mtls_port = free_port(), free_port()
    b = mosquitto_factory(workdir=tmp_path / "m", extra_conf=(
        f"user {getpass.getuser()}\n"
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {certs / 'ca.crt'}\ncertfile {certs / 'broker.crt'}\n"
        f"keyfile {certs / 'broker.key'}\ntls_version tlsv1.2\n"
        f"listener {mtls_port} 127.0.0.1\n"
        f"cafile {certs / 'ca.crt'}\ncertfile {certs / 'broker.crt'}\n"
        f"keyfile {certs / 'broker.key'}\ntls_version tlsv1.2\n"
        "require_certificate true\nuse_identity_as_username true\n"))
    b.start()
    b.certs, b.tls_port, b.mtls_port = certs, tls_port, mtls_port
    return b


def run_gate(tmp_path: Path, name: str, cfg: BrokerConfig, centre: FakeCentre,
             expect_ok: bool) -> None:
    ledger = Ledger(tmp_path / f"{name}.db", gate=name)
    ledger.admit(5)
    with Outbox(tmp_path / f"{name}.db") as ob, GateLink(gate=name, outbox=ob,
                                                         broker=cfg) as link:
        if expect_ok:
            wait_for(lambda: ob.backlog() == 0, 15, f"{name} acked over TLS")
            assert centre.seqs(name) == set(range(1, 6))
        else:
            time.sleep(1.5)
            st = link.status()
            assert not st.connected and st.published_through == 0 and ob.backlog() == 5
            assert centre.seqs(name) == set()
    ledger.close()


def test_tls_server_auth_and_mutual_tls(tmp_path: Path, tls_broker: Any) -> None:
    b = tls_broker
    centre = FakeCentre(b.port).start()  # the plain local listener, as on the broker host
    fast = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.3, "connect_timeout_s": 2}
    ca = b.certs / "ca.crt"
    try:
        run_gate(tmp_path, "gtls", BrokerConfig.model_validate(
            {"host": "localhost", "port": b.tls_port, "tls": {"ca_file": ca}, **fast}),
            centre, True)
        run_gate(tmp_path, "gmtls", BrokerConfig.model_validate(
            {"host": "localhost", "port": b.mtls_port,
             "tls": {"ca_file": ca, "cert_file": b.certs / "gtls.crt",
                     "key_file": b.certs / "gtls.key"}, **fast}),
            centre, True)
        # No client certificate on the mutual-TLS listener: refused, never connected.
        run_gate(tmp_path, "gnocert", BrokerConfig.model_validate(
            {"host": "localhost", "port": b.mtls_port, "tls": {"ca_file": ca}, **fast}),
            centre, False)
        # A CA that did not sign the broker: the handshake fails, never connected.
        other = tmp_path / "other"
        subprocess.run([str(DEPLOY / "make-certs.sh"), str(other), "localhost"], check=True,
                       capture_output=True)
        run_gate(tmp_path, "gbadca", BrokerConfig.model_validate(
            {"host": "localhost", "port": b.tls_port, "tls": {"ca_file": other / "ca.crt"},
             **fast}), centre, False)
    finally:
        centre.stop()
