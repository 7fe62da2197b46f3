"""``gatepass central``: config checking, and serve + worker as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from central_helpers import SimGate, assert_exact, free_port, uid, wait_for

from central.config import load_config, parse_config
from central.errors import CentralConfigError
from central.store import open_store
from gatepass.keyfiles import write_key_directory
from verifier.keys import SigningKey
from verifier.registry import make_entry, sign_registry
from verifier.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]


def gatepass(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatepass", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, **kw)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_check_config_accepts_a_good_file_and_names_the_bad_field(tmp_path: Path) -> None:
    sb = Sandbox.create(sites=("haram",), seed=3)
    keys = tmp_path / "keys"
    write_key_directory(sb, keys)
    good = write_config(tmp_path / "good.toml", f"""
[broker]
port = 1884
[store]
url = "sqlite:///{tmp_path}/c.db"
[http]
listen = "127.0.0.1:0"
[signing]
key_file = "{keys}/central.pem"
[trust]
bundle_file = "{keys}/trust.json"
[registry]
file = "{keys}/gates.registry"
[[sites]]
id = "haram"
capacity_per_slot = 5000
slot_capacity = {{ "1767225600" = 3000 }}
""")
    gate_key = SigningKey.generate()
    (keys / "gates.registry").write_bytes(sign_registry(
        [make_entry("g1", "haram", ("north",), "entrance", gate_key.public_der())], 1, sb.root))
    r = gatepass("central", "check-config", str(good))
    assert r.returncode == 0, r.stderr
    assert "ok (1 sites" in r.stdout and "signing on, trust on" in r.stdout
    assert load_config(good).sites[0].capacity(1767225600) == 3000

    # No gate registry at all is an error that says what to do, never a silent default.
    text = good.read_text()
    bare = write_config(tmp_path / "bare.toml", text.replace(
        f'[registry]\nfile = "{keys}/gates.registry"\n', ""))
    r = gatepass("central", "check-config", str(bare))
    assert r.returncode == 1 and "[registry] is required" in r.stderr, r.stderr
    demo = write_config(tmp_path / "demo.toml", text.replace(
        f'file = "{keys}/gates.registry"', "check = false"))
    assert gatepass("central", "check-config", str(demo)).returncode == 0

    typo = write_config(tmp_path / "typo.toml", "[http]\nlisten = '127.0.0.1:0'\nlsiten = 1\n")
    r = gatepass("central", "check-config", str(typo))
    assert r.returncode == 1
    assert r.stderr.startswith("gatepass: error: ") and "http.lsiten" in r.stderr
    assert "Traceback" not in r.stderr

    nokey = write_config(tmp_path / "nokey.toml", "[signing]\nkey_file = '/nonexistent.pem'\n"
                         "[registry]\ncheck = false\n")
    r = gatepass("central", "check-config", str(nokey))
    assert r.returncode == 1 and "cannot read signing key" in r.stderr


@pytest.mark.parametrize("bad", [
    {"store": {"url": "mysql://x"}},
    {"http": {"listen": "8080"}},
    {"sites": [{"id": "a/b", "capacity_per_slot": 1}]},
    {"sites": [{"id": "a", "capacity_per_slot": 1}, {"id": "a", "capacity_per_slot": 2}]},
    {"sites": [{"id": "a", "capacity_per_slot": 1, "slot_capacity": {"noon": 5}}]},
    {"aggregator": {"client_id": "has space"}},
])
def test_config_rules(bad: dict[str, Any]) -> None:
    with pytest.raises(CentralConfigError):
        parse_config(bad)


@pytest.mark.broker
@pytest.mark.slow
def test_serve_and_a_second_worker_process_count_exactly(
    broker: Any, tmp_path: Path
) -> None:
    port = free_port()
    sb = Sandbox.create(sites=("haram",), seed=9)
    keys = tmp_path / "keys"
    write_key_directory(sb, keys)
    cfg = write_config(tmp_path / "central.toml", f"""
[broker]
port = {broker.port}
reconnect_min_s = 0.1
reconnect_max_s = 1.0
[store]
url = "sqlite:///{tmp_path}/central.db"
[http]
listen = "127.0.0.1:{port}"
poll_ms = 200
[aggregator]
client_id = "cli-serve"
time_beacon_period_s = 0.5
[signing]
key_file = "{keys}/central.pem"
[trust]
bundle_file = "{keys}/trust.json"
[registry]
check = false
[[sites]]
id = "haram"
capacity_per_slot = 1000
""")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "gatepass", "central", "serve", "--config",
                          str(cfg)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True),
        subprocess.Popen([sys.executable, "-m", "gatepass", "central", "worker", "--config",
                          str(cfg), "--client-id", "cli-worker-2"], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]
    gates = [SimGate(tmp_path / f"cli{i}.db", uid(f"cli{i}"), broker.port) for i in range(3)]
    try:
        def summary() -> dict[str, Any]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/summary", timeout=5) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]

        def up() -> bool:
            try:
                return summary() is not None
            except OSError:
                return False

        wait_for(up, 30, "the dashboard to answer")
        # both processes announce themselves before the gates start
        assert procs[0].stdout is not None and procs[1].stdout is not None
        assert "dashboard on" in procs[0].stdout.readline()
        assert "worker cli-serve" in procs[0].stdout.readline()
        assert "worker cli-worker-2" in procs[1].stdout.readline()
        for g in gates:
            g.start()
        for _ in range(8):
            for g in gates:
                g.admit(100, party=2)
        wait_for(lambda: all(g.backlog() == 0 for g in gates), 60, "outboxes drained")
        d = summary()
        assert d["totals"]["events"] == 2400 and d["totals"]["admitted"] == 4800
        with open_store(f"sqlite:///{tmp_path}/central.db") as store:
            assert_exact(store, gates)
        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()  # type: ignore[no-any-return]

        assert 'gatepass_site_admitted{site="haram"} 4800.0' in metrics()
        wait_for(lambda: 'documents_published_total{kind="time_beacon"}' in metrics(), 10,
                 "a signed time beacon (the config has a signing key)")
        # a revocation snapshot given over HTTP is checked, kept and listed
        snap = sb.revocations()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/documents", data=snap,
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 201
            assert json.loads(r.read())["kind"] == "revocation_snapshot"
        wait_for(lambda: [d["kind"] for d in summary()["documents"]] == ["revocation_snapshot"],
                 5, "the document listed (the summary is cached 0.2 s)")
    finally:
        for g in gates:
            g.close()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(30) == 0, p.stderr.read() if p.stderr else ""
