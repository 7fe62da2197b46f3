"""deploy/mosquitto as shipped: its mosquitto.conf, acl and recipes, end to end over TLS.

Only paths and ports are rewritten (to the test's tmp dir and free ports).
"""

from __future__ import annotations

import getpass
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
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


@dataclass
class Deployed:
    local: int
    tls: int
    mtls: int
    certs: Path
    secrets: Path


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    for tool in ("mosquitto_passwd", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    etc = tmp_path / "etc"
    (etc / "certs").mkdir(parents=True)
    shutil.copy(DEPLOY / "acl", etc / "acl")
    subprocess.run([str(DEPLOY / "make-passwd.sh"), str(etc / "passwd"), "gp-central", "gdep"],
                   check=True, capture_output=True, cwd=tmp_path,
                   env={"PATH": "/usr/bin:/bin:/usr/sbin", "GP_SECRETS_DIR": str(tmp_path / "s")})
    subprocess.run([str(DEPLOY / "make-certs.sh"), str(etc / "certs"), "localhost", "gdep"],
                   check=True, capture_output=True)
    ports = {"1883": free_port(), "8883": free_port(), "8884": free_port()}
    conf = (DEPLOY / "mosquitto.conf").read_text()
    conf = conf.replace("/etc/mosquitto/gatepass", str(etc))
    conf = conf.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    conf = re.sub(r"^listener (\d+)(.*)$",
                  lambda m: f"listener {ports[m.group(1)]} 127.0.0.1", conf, flags=re.M)
    conf = f"user {getpass.getuser()}\n" + conf
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
                             str(tmp_path / "mosquitto.conf")], stdout=log, stderr=log)
    try:
        for port in ports.values():
            wait_for(lambda p=port: _listening(p), 10, f"mosquitto on {port}")
        yield Deployed(ports["1883"], ports["8883"], ports["8884"], etc / "certs",
                       tmp_path / "s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_shipped_config_acl_and_recipes_work_end_to_end(tmp_path: Path,
                                                        deployed: Deployed) -> None:
    d = deployed
    centre = FakeCentre(d.local, username="gp-central",
                        password=(d.secrets / "gp-central").read_text(), shared=True).start()
    fast = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.3, "host": "localhost"}
    try:
        ledger = Ledger(tmp_path / "a.db", gate="gdep")
        ledger.admit(25)
        with Outbox(tmp_path / "a.db") as ob:
            cfg = BrokerConfig.model_validate({
                **fast, "port": d.tls, "username": "gdep",
                "password_file": d.secrets / "gdep", "tls": {"ca_file": d.certs / "ca.crt"}})
            with GateLink(gate="gdep", outbox=ob, broker=cfg):
                wait_for(lambda: ob.backlog() == 0, 15, "acked over TLS + password + ACL")
            ledger.admit(5)
            mtls = BrokerConfig.model_validate({
                **fast, "port": d.mtls, "tls": {"ca_file": d.certs / "ca.crt",
                                                "cert_file": d.certs / "gdep.crt",
                                                "key_file": d.certs / "gdep.key"}})
            with GateLink(gate="gdep", outbox=ob, broker=mtls):
                wait_for(lambda: ob.backlog() == 0, 15, "acked over mutual TLS (CN = gate)")
        assert centre.seqs("gdep") == set(range(1, 31))
        ledger.close()
    finally:
        centre.stop()
