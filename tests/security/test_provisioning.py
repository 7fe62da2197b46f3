"""`gatepass gates`: enrolment on the gate, bulk provisioning, registry versions, and the
agent's refusal of a gate key others can read."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gate_agent.config import load_config
from gate_agent.errors import ConfigError
from gate_agent.uplink import load_gate_key
from verifier.errors import DocumentRefused, Reason
from verifier.registry import open_registry
from verifier.trust import TrustBundle

NOW = 2_000_000_000.0


def gp(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "gatepass", *map(str, args)],
                       capture_output=True, text=True, timeout=120)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys") / "keys"
    gp("keys", "new", d)
    return d


def trust(keys: Path):  # type: ignore[no-untyped-def]
    return TrustBundle.from_bytes((keys / "trust.json").read_bytes()).store()


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_enrol_writes_a_private_key_and_prints_the_registry_row(tmp_path: Path) -> None:
    r = gp("gates", "enrol", "--id", "haram-n-01", "--site", "makkah-haram", "--group", "north",
           "--group", "gate-1", "--mode", "entrance", "--out", tmp_path / "etc")
    assert mode(tmp_path / "etc" / "gate.key") == 0o600
    row = json.loads((tmp_path / "etc" / "enrolment.json").read_text())
    assert row["id"] == "haram-n-01" and row["groups"] == ["gate-1", "north"]
    assert json.dumps(row, separators=(",", ":")) in r.stdout
    assert "BEGIN PUBLIC KEY" in r.stdout and "PRIVATE" not in r.stdout
    again = gp("gates", "enrol", "--id", "haram-n-01", "--site", "makkah-haram", "--mode",
               "entrance", "--out", tmp_path / "etc", ok=False)
    assert again.returncode == 1 and "keeps its key" in again.stderr
    assert load_gate_key(tmp_path / "etc" / "gate.key").alg == "ES256"


def test_provision_from_a_csv_of_enrolled_and_generated_gates(tmp_path: Path,
                                                               keys: Path) -> None:
    rows = []
    for gid, site, group in (("h-01", "makkah-haram", "north"), ("m-01", "madinah", "rawdah")):
        gp("gates", "enrol", "--id", gid, "--site", site, "--group", group, "--mode",
           "entrance", "--out", tmp_path / gid)
        row = json.loads((tmp_path / gid / "enrolment.json").read_text())
        rows.append(f"{gid},{site},{group},entrance,umrah;visit,{row['spki']}")
    csv = tmp_path / "gates.csv"
    csv.write_text("id,site,groups,mode,types,spki\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    r = gp("gates", "provision", "--csv", csv, "--keys", keys, "--out", out, "--workers", "3")
    assert "2 gates at 2 sites" in r.stdout
    reg = open_registry((out / "gates.registry").read_bytes(), trust(keys), now=NOW)
    assert reg.version == 1 and set(reg.gates) == {"h-01", "m-01"}
    assert reg.gates["m-01"].site == "madinah" and reg.gates["m-01"].groups == ("rawdah",)
    assert (out / "broker" / "dynamic-security.json").exists()
    assert sorted(p.name for p in (out / "central-secrets").iterdir()) == [
        "gp-central-1", "gp-central-2", "gp-central-3"]
    bundle = out / "gates" / "h-01"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "README.txt", "broker.password", "gate.toml", "trust.json"]  # the key stayed on the gate
    assert mode(bundle / "broker.password") == 0o600 and mode(bundle) == 0o700
    cfg = load_config(bundle / "gate.toml")
    assert (cfg.gate, cfg.site, cfg.permits.gate_groups) == ("h-01", "makkah-haram", ["north"])
    assert cfg.permits.types == ["umrah", "visit"]
    assert cfg.key_file == Path("/etc/gatepass/gate.key") and cfg.broker is not None
    assert cfg.broker.username == "h-01"
    # the same CSV without public keys needs --generate-keys; then each bundle has its key
    csv.write_text("id,site,groups,mode\nh-02,makkah-haram,south,entrance\n")
    no_keys = gp("gates", "provision", "--csv", csv, "--keys", keys, "--out", tmp_path / "o2",
                 ok=False)
    assert no_keys.returncode == 1 and "enrol the gate first" in no_keys.stderr
    gp("gates", "provision", "--csv", csv, "--keys", keys, "--out", tmp_path / "o3",
       "--generate-keys")
    key = tmp_path / "o3" / "gates" / "h-02" / "gate.key"
    assert mode(key) == 0o600
    reg3 = open_registry((tmp_path / "o3" / "gates.registry").read_bytes(), trust(keys), now=NOW)
    assert reg3.gates["h-02"].spki() == load_gate_key(key).public_der()


@pytest.mark.parametrize("line,why", [
    ("h 1,makkah-haram,north,entrance", "gate row"),
    ("h-1,makkah-haram,north,exit", "gate row"),
    ("h-1,makkah-haram,no/rth,entrance", "gate row"),
])
def test_provision_refuses_bad_rows(tmp_path: Path, keys: Path, line: str, why: str) -> None:
    csv = tmp_path / "g.csv"
    csv.write_text("id,site,groups,mode\n" + line + "\n")
    r = gp("gates", "provision", "--csv", csv, "--keys", keys, "--out", tmp_path / "o",
           "--generate-keys", ok=False)
    assert r.returncode == 1 and why in r.stderr and not (tmp_path / "o").exists()


def test_registry_add_remove_show_and_no_rollback(tmp_path: Path, keys: Path) -> None:
    for gid in ("a-01", "a-02"):
        gp("gates", "enrol", "--id", gid, "--site", "makkah-haram", "--mode", "entrance",
           "--out", tmp_path / gid)
    v1 = tmp_path / "v1.registry"
    gp("gates", "registry", "--keys", keys, "--add", tmp_path / "a-01" / "enrolment.json",
       "--out", v1)
    v2 = tmp_path / "v2.registry"
    gp("gates", "registry", "--keys", keys, "--from", v1, "--add",
       (tmp_path / "a-02" / "enrolment.json").read_text().strip(), "--out", v2)
    shown = json.loads(gp("gates", "registry", "--show", v2, "--keys", keys).stdout)
    assert shown["version"] == 2 and [g["id"] for g in shown["gates"]] == ["a-01", "a-02"]
    v3 = tmp_path / "v3.registry"
    gp("gates", "registry", "--keys", keys, "--from", v2, "--remove", "a-01", "--out", v3)
    reg3 = open_registry(v3.read_bytes(), trust(keys), now=NOW)
    assert reg3.version == 3 and set(reg3.gates) == {"a-02"}
    # a registry signed by a key the trust list does not name for the role is refused
    other = tmp_path / "other"
    gp("keys", "new", other)
    bad = gp("gates", "registry", "--keys", keys, "--signer", other / "root.pem", "--add",
             tmp_path / "a-01" / "enrolment.json", "--out", tmp_path / "bad", ok=False)
    assert bad.returncode == 1 and "does not verify" in bad.stderr
    from verifier.registry import newer_registry
    with pytest.raises(DocumentRefused) as exc:
        newer_registry(reg3, open_registry(v2.read_bytes(), trust(keys), now=NOW))
    assert exc.value.reason == Reason.ROLLBACK


def test_the_agent_refuses_a_gate_key_others_can_read(tmp_path: Path) -> None:
    gp("gates", "enrol", "--id", "g-1", "--site", "s", "--mode", "counter", "--out", tmp_path)
    key = tmp_path / "gate.key"
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_gate_key(key)


def test_the_centre_loads_the_provisioned_registry_from_its_config(tmp_path: Path,
                                                                   keys: Path) -> None:
    from central.app import CentralApp
    from central.config import parse_config
    from central.errors import CentralConfigError

    csv = tmp_path / "g.csv"
    csv.write_text("id,site,groups,mode\nh-1,makkah-haram,north,entrance\n"
                   "m-1,madinah,rawdah,counter\n")
    gp("gates", "provision", "--csv", csv, "--keys", keys, "--out", tmp_path / "o",
       "--generate-keys")

    def config(registry: Path) -> object:
        return parse_config({
            "store": {"url": f"sqlite:///{tmp_path / 'central.db'}"},
            "trust": {"bundle_file": str(keys / "trust.json")},
            "registry": {"file": str(registry)},
        })

    app = CentralApp(config(tmp_path / "o" / "gates.registry"), http=False)  # type: ignore[arg-type]
    try:
        reg = app.aggregator.registry
        assert reg is not None and set(reg.gates) == {"h-1", "m-1"}
        assert reg.gates["m-1"].mode == "counter"
    finally:
        app.close()
    bad = tmp_path / "bad.registry"
    bad.write_bytes((tmp_path / "o" / "gates.registry").read_bytes()[:-3])
    with pytest.raises(CentralConfigError, match="unusable"):
        CentralApp(config(bad), http=False)  # type: ignore[arg-type]
    with pytest.raises(CentralConfigError, match="needs"):
        parse_config({"registry": {"file": str(bad)}})
