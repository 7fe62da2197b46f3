"""central.provisioning.broker: users, hashes and the dynamic-security file (unit level).

The files on a real broker: tests/security/test_broker.py, tests/sync/test_sync_deploy.py.
"""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from realparts import missing_part

from central.provisioning.broker import (
    DYNSEC_FILE,
    BrokerUser,
    ProvisioningError,
    dynsec_config,
    hash_password,
    main,
    make_users,
    password_file_line,
    read_secrets,
    write_broker_files,
    write_secrets,
)
from sync import topics
from sync.config import BrokerConfig


def test_make_users_gives_gates_and_numbered_workers_random_passwords() -> None:
    users = make_users(["g1", "g2"], 3, sites={"g1": "haram"})
    assert [(u.username, u.role, u.site) for u in users] == [
        ("g1", "gate", "haram"), ("g2", "gate", None), ("gp-central-1", "aggregator", None),
        ("gp-central-2", "aggregator", None), ("gp-central-3", "aggregator", None)]
    assert len({u.password for u in users}) == 5
    assert all(len(u.password) >= 40 and u.client_id == u.username for u in users)
    assert "password" not in repr(users[0]) or users[0].password not in repr(users[0])
    kept = make_users(["g1"], 1, passwords={"g1": "known-secret"})
    assert kept[0].password == "known-secret"


@pytest.mark.parametrize(("gates", "kw", "message"), [
    (["g/1"], {}, "invalid broker username"),
    (["g+"], {}, "invalid broker username"),
    (["$share"], {}, "invalid broker username"),
    (["gp-central-1"], {}, "must not start with"),
    (["g1", "g1"], {}, "listed twice"),
    (["g1"], {"aggregator_workers": 0}, "aggregator_workers"),
    (["g1"], {"sites": {"g9": "haram"}}, "unknown gates"),
    (["g1"], {"sites": {"g1": "ha/ram"}}, "invalid site"),
])
def test_make_users_refuses_what_could_widen_an_acl(gates: list[str], kw: dict[str, object],
                                                    message: str) -> None:
    with pytest.raises(ProvisioningError, match=message):
        make_users(gates, **kw)  # type: ignore[arg-type]


def test_a_password_with_a_line_break_is_refused() -> None:
    with pytest.raises(ProvisioningError, match="line break"):
        BrokerUser("g1", "a\nb", "gate")


def test_hash_is_the_one_mosquitto_passwd_computes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        missing_part("mosquitto_passwd is not installed")
    subprocess.run([tool, "-c", "-b", str(tmp_path / "pw"), "u", "pw-Ünïcode-1"],
                   capture_output=True, check=True, timeout=30)
    out = (tmp_path / "pw").read_text().strip()
    _user, _, rest = out.partition(":")
    _, kind, iterations, salt_b64, digest_b64 = rest.split("$")
    assert (kind, iterations) == ("7", "101")
    digest, salt = hash_password("pw-Ünïcode-1", salt=base64.b64decode(salt_b64))
    assert (digest, salt) == (digest_b64, salt_b64)
    line = password_file_line(BrokerUser("u", "pw-Ünïcode-1", "gate"),
                              salt=base64.b64decode(salt_b64))
    assert line == out


def test_dynsec_file_grants_each_gate_only_its_own_lane() -> None:
    users = make_users(["g1", "g2"], 2, sites={"g1": "haram"})
    doc = dynsec_config(users)
    assert doc["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": False,
                                       "subscribe": False, "unsubscribe": True}
    roles = {r["rolename"]: r["acls"] for r in doc["roles"]}
    clients = {c["username"]: c for c in doc["clients"]}
    assert clients["g1"]["clientid"] == "g1"
    assert [r["rolename"] for r in clients["g1"]["roles"]] == ["gp-gate", "gp-gate-g1"]
    g1 = {(a["acltype"], a["topic"]) for a in roles["gp-gate-g1"]}
    assert ("publishClientSend", topics.events("g1")) in g1
    assert ("subscribeLiteral", topics.site_used("haram")) in g1
    everything = json.dumps(roles["gp-gate-g1"]) + json.dumps(roles["gp-gate"])
    assert "$share" not in everything and "g2" not in everything and "#" not in everything
    assert all(a["acltype"] != "subscribePattern" for a in roles["gp-gate-g1"])
    # a gate without a site reads every site's used stream (the pre-registry behaviour)
    assert ("subscribePattern", "gp/v1/sites/+/used") in {
        (a["acltype"], a["topic"]) for a in roles["gp-gate-g2"]}
    agg = {(a["acltype"], a["topic"]) for a in roles["gp-aggregator"]}
    assert ("subscribePattern", topics.SHARED_EVENTS) in agg
    assert ("subscribePattern", topics.ALL_EVENTS) not in agg  # only the shared form
    assert all(u.password not in json.dumps(doc) for u in users)


def test_files_are_private_and_secrets_round_trip(tmp_path: Path) -> None:
    users = make_users(["g1"], 1)
    [path] = write_broker_files(users, tmp_path / "etc")
    assert path.name == DYNSEC_FILE and stat.S_IMODE(path.stat().st_mode) == 0o600
    paths = write_secrets(users, tmp_path / "s")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    assert read_secrets(tmp_path / "s") == {u.username: u.password for u in users}
    assert read_secrets(tmp_path / "missing") == {}
    assert not list((tmp_path / "etc").glob(".*.tmp"))


def test_command_line_keeps_known_secrets_and_reports_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "etc"), str(tmp_path / "s"), "g1=haram", "--workers", "1"]) == 0
    before = read_secrets(tmp_path / "s")
    assert main([str(tmp_path / "etc"), str(tmp_path / "s"), "g1=haram", "g2"]) == 0
    after = read_secrets(tmp_path / "s")
    assert after["g1"] == before["g1"] and set(after) == {"g1", "g2", "gp-central-1",
                                                          "gp-central-2"}
    assert main([str(tmp_path / "etc"), str(tmp_path / "s"), "gp-central-7"]) == 1
    assert "gatepass: error:" in capsys.readouterr().err


def test_worker_broker_config_picks_its_own_user_and_gate_sends_its_username() -> None:
    cfg = BrokerConfig.model_validate({"username": "{client_id}",
                                       "password_file": "/run/secrets/{client_id}"})
    w2 = cfg.for_client("gp-central-2")
    assert w2.username == "gp-central-2" and str(w2.password_file) == "/run/secrets/gp-central-2"
    plain = BrokerConfig(username="gp-central-1")
    assert plain.for_client("gp-central-2") is plain
    assert BrokerConfig(username="gate-a").effective_client_id("gate-a") == "gate-a"
    assert BrokerConfig().effective_client_id("gate-a") == "gp-gate-gate-a"
    assert BrokerConfig(client_id="x", username="gate-a").effective_client_id("gate-a") == "x"
