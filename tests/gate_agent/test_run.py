"""``gatepass agent run`` as a real process: camera folder in, console and metrics out,
SIGTERM for a clean shutdown."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import segno
from conftest import SITE

from gate_agent.ledger import Ledger
from verifier.sandbox import Sandbox


def test_run_until_sigterm(tmp_path: Path, bundle: Path, sandbox: Sandbox) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    now = int(time.time())
    for i in range(3):
        permit = sandbox.issue(site=SITE, slot=(now - 600, now + 7200), party=i + 1)
        segno.make(permit, error="q").save(
            str(frames / f"f{i}.png"), scale=4, border=4
        )
    cfg = tmp_path / "gate.toml"
    cfg.write_text(
        f'gate = "g1"\nsite = "{SITE}"\nmode = "entrance"\nledger = "ledger.sqlite"\n'
        f'[permits]\ntypes = ["umrah"]\n[trust]\nbundle = "{bundle}"\n'
        f'[clock]\nsystem = "trust"\n[console]\nport = 0\n'
        f'[source]\nkind = "folder"\npath = "{frames}"\npattern = "*.png"\n'
        f'[outputs]\nbackend = "simulated"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatepass", "agent", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            m = re.search(r"console at (http://\S+)", line)
            url = m.group(1) if m else None
        assert url, "the agent never announced its console"
        snap: dict[str, object] = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/api/snapshot", timeout=5) as r:
                snap = json.loads(r.read())
            if len(snap["recent"]) >= 3:  # type: ignore[arg-type]
                break
            time.sleep(0.1)
        recent = snap["recent"]
        assert [e["verdict"] for e in recent] == ["admit"] * 3  # type: ignore[attr-defined]
        assert snap["counters"]["gate_admitted"] == 6  # type: ignore[index]
        assert snap["gate"] == "g1" and snap["clock"]["state"] == "synced"  # type: ignore[index]
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'gatepass_agent_decisions_total{reason="",verdict="admit"} 3.0' in metrics
        assert "gatepass_agent_admitted_people_total 6.0" in metrics
        # SIGHUP re-reads the rules from the file while running.
        cfg.write_text(cfg.read_text() + "[capacity]\nper_slot = 10\n")
        proc.send_signal(signal.SIGHUP)
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/api/snapshot", timeout=5) as r:
                snap = json.loads(r.read())
            if snap["counters"]["slot_capacity"] == 10:  # type: ignore[index]
                break
            time.sleep(0.1)
        assert snap["counters"]["slot_capacity"] == 10  # type: ignore[index]
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped cleanly" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    with Ledger(tmp_path / "ledger.sqlite", gate="g1", site=SITE) as ledger:
        events = [r.event for r in ledger.events()]
    assert [(e.seq, e.verdict, e.party) for e in events] == [(1, "admit", 1), (2, "admit", 2),
                                                            (3, "admit", 3)]


def test_run_with_bad_config_says_what(tmp_path: Path) -> None:
    cfg = tmp_path / "gate.toml"
    cfg.write_text('gate = "g1"\nmode = "sideways"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "gatepass", "agent", "run", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("gatepass: error: invalid agent config")
    assert "mode" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("junk", [b"\x00" * 10, b"[[[", "gate = \u202e".encode()])
def test_check_config_on_junk(tmp_path: Path, junk: bytes) -> None:
    cfg = tmp_path / "gate.toml"
    cfg.write_bytes(junk)
    proc = subprocess.run(
        [sys.executable, "-m", "gatepass", "agent", "check-config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1 and "problem" in proc.stdout
