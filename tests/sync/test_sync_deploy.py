"""deploy/mosquitto as shipped: its mosquitto.conf and recipes, end to end over TLS.

The broker runs from the shipped mosquitto.conf with only paths and ports rewritten
(tests/security/deployment.py says exactly how), its users file made by make-passwd.sh
and its certificates by make-certs.sh.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from realparts import missing_part
from sync_helpers import FakeCentre, Ledger, wait_for

from central.provisioning.broker import DYNSEC_FILE, make_users, read_secrets
from sync.config import BrokerConfig
from sync.link import GateLink
from sync.outbox import Outbox
from tests.security.deployment import DEPLOY, ShippedBroker, missing_tools

pytestmark = pytest.mark.broker


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[ShippedBroker]:
    if missing_tools():
        missing_part(f"not installed: {', '.join(missing_tools())}")
    made = tmp_path / "made"
    env = {"PATH": "/usr/bin:/bin:/usr/sbin", "GP_SECRETS_DIR": str(made / "s"),
           "GP_WORKERS": "1", "GATEPASS_PYTHON": sys.executable, "PYTHONPATH": os.getcwd()}
    subprocess.run([str(DEPLOY / "make-passwd.sh"), str(made / "etc"), "gdep=site-1"],
                   check=True, capture_output=True, cwd=tmp_path, env=env)
    users = make_users(["gdep"], 1, sites={"gdep": "site-1"},
                       passwords=read_secrets(made / "s"))
    with ShippedBroker(tmp_path / "b", users, users_file=made / "etc" / DYNSEC_FILE) as b:
        yield b


def test_make_passwd_recipe_writes_private_files_and_keeps_secrets(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "GP_SECRETS_DIR": str(tmp_path / "s"),
           "GATEPASS_PYTHON": sys.executable, "PYTHONPATH": os.getcwd()}
    run = [str(DEPLOY / "make-passwd.sh"), str(tmp_path / "etc"), "ga=s1", "gb"]
    subprocess.run(run, check=True, capture_output=True, env=env)
    first = read_secrets(tmp_path / "s")
    subprocess.run([*run, "gc"], check=True, capture_output=True, env=env)
    second = read_secrets(tmp_path / "s")
    assert set(first) == {"ga", "gb", "gp-central-1", "gp-central-2"}
    assert {k: second[k] for k in first} == first and "gc" in second
    doc = json.loads((tmp_path / "etc" / DYNSEC_FILE).read_text())
    assert [c["username"] for c in doc["clients"]] == [
        "ga", "gb", "gc", "gp-central-1", "gp-central-2"]
    assert first["ga"] not in (tmp_path / "etc" / DYNSEC_FILE).read_text()
    for f in [tmp_path / "etc" / DYNSEC_FILE, *(tmp_path / "s").iterdir()]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    bad = subprocess.run([str(DEPLOY / "make-passwd.sh"), str(tmp_path / "etc"), "g/x"],
                         capture_output=True, env=env, text=True)
    assert bad.returncode == 1 and "invalid broker username" in bad.stderr


def test_shipped_config_and_recipes_work_end_to_end(tmp_path: Path,
                                                    deployed: ShippedBroker) -> None:
    d = deployed
    centre = FakeCentre(d.port, username="gp-central-1", password=d.password("gp-central-1"),
                        shared=True).start()
    fast = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.3, "host": "localhost"}
    try:
        assert not any(c.is_failure for c in centre.subscribe_codes)  # type: ignore[attr-defined]
        ledger = Ledger(tmp_path / "a.db", gate="gdep")
        ledger.admit(25)
        with Outbox(tmp_path / "a.db") as ob:
            cfg = BrokerConfig.model_validate({
                **fast, "port": d.tls_port, "username": "gdep",
                "password_file": d.password_file("gdep"), "tls": {"ca_file": d.ca_file}})
            with GateLink(gate="gdep", outbox=ob, broker=cfg):
                wait_for(lambda: ob.backlog() == 0, 15, "acked over TLS + password + ACL")
            ledger.admit(5)
            crt, key = d.cert("gdep")
            mtls = BrokerConfig.model_validate({
                **fast, "port": d.mtls_port, "tls": {"ca_file": d.ca_file,
                                                     "cert_file": crt, "key_file": key}})
            with GateLink(gate="gdep", outbox=ob, broker=mtls):
                wait_for(lambda: ob.backlog() == 0, 15, "acked over mutual TLS (CN = gate)")
        assert centre.seqs("gdep") == set(range(1, 31))
        ledger.close()
    finally:
        centre.stop()
