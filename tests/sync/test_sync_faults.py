"""Faults against a real Mosquitto: broker SIGKILL mid-stream, gate process SIGKILL mid-burst.

After recovery the centre holds exactly the gate's ledger: every seq once, same event ids.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import FakeCentre, Ledger, wait_for

from sync.config import BrokerConfig
from sync.link import GateLink
from sync.outbox import Outbox

pytestmark = [pytest.mark.broker, pytest.mark.slow]
HERE = Path(__file__).resolve().parent


def ledger_eids(db: Path) -> dict[int, str]:
    conn = sqlite3.connect(str(db))
    try:
        return dict(conn.execute("SELECT seq, eid FROM ledger").fetchall())
    finally:
        conn.close()


def assert_exact(centre: FakeCentre, db: Path, gate: str = "g1") -> None:
    eids = ledger_eids(db)
    with centre.lock:
        stored = {s: ev.eid for (g, s), ev in centre.stored.items() if g == gate}
    assert stored == eids  # nothing lost, nothing extra; duplicates collapse on (gate, seq)


def test_broker_sigkill_mid_stream_loses_nothing(tmp_path: Path, mosquitto_factory: Any) -> None:
    b = mosquitto_factory(workdir=tmp_path / "m")
    b.start()
    centre = FakeCentre(b.port).start()
    db = tmp_path / "ledger.db"
    ledger = Ledger(db)
    cfg = BrokerConfig(port=b.port, ack_timeout_s=1.5, reconnect_min_s=0.1,
                       reconnect_max_s=0.5, keepalive=5, batch_size=50)
    stop = threading.Event()

    def admit() -> None:
        writer = Ledger(db)  # its own connection, as the agent's thread would have
        while not stop.wait(0.002) and writer.next_seq() <= 1500:
            writer.admit(1)
        writer.close()

    try:
        with Outbox(db) as ob, GateLink(gate="g1", outbox=ob, broker=cfg) as link:
            t = threading.Thread(target=admit, name="test-admit")
            t.start()
            wait_for(lambda: len(centre.seqs()) > 200, 20, "stream under way")
            b.kill()
            killed_at = len(ledger_eids(db))
            time.sleep(1.0)
            b.start()
            t.join(60)
            assert not t.is_alive()
            assert killed_at < 1500  # the kill really was mid-stream
            wait_for(lambda: ob.backlog() == 0, 60, "outbox drained after the restart")
            assert link.status().connects >= 2
        assert_exact(centre, db)
    finally:
        stop.set()
        centre.stop()
        ledger.close()


def test_gate_process_sigkill_mid_burst_then_restart(tmp_path: Path, broker: Any,
                                                     centre: FakeCentre) -> None:
    db = tmp_path / "ledger.db"
    gate = "gkill"
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}

    def spawn() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(HERE / "gate_proc.py"), str(db), str(broker.port), gate,
             "1200"], stdout=subprocess.PIPE, text=True, env=env)

    proc = spawn()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("admitted") and int(line.split()[1]) >= 400:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        def last_state() -> str | None:
            with centre.lock:
                states = [st.state for st in centre.statuses if st.gate == gate]
            return states[-1] if states else None

        wait_for(lambda: last_state() == "offline", 10, "Last Will says offline")
        before = len(ledger_eids(db))
        assert 400 <= before < 1200
        proc = spawn()
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0 and "drained" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert len(ledger_eids(db)) == 1200
    wait_for(lambda: len(centre.seqs(gate)) == 1200, 10, "centre complete")
    assert_exact(centre, db, gate)


def test_long_outage_while_admitting_then_live_first_and_exact(tmp_path: Path,
                                                               mosquitto_factory: Any) -> None:
    """Live events overtake a backlog that is still draining, whatever the machine's speed.

    The centre holds back its acks after the outage, so the backlog cannot drain past its
    ``max_unacked`` window: the live events must reach the centre while most of the backlog
    is still queued. Timing plays no part; only the order of what the centre saw does.
    """
    b = mosquitto_factory(workdir=tmp_path / "m")
    b.start()
    centre = FakeCentre(b.port).start()
    db = tmp_path / "ledger.db"
    ledger = Ledger(db, gate="g-out")
    window = 200
    cfg = BrokerConfig(port=b.port, ack_timeout_s=2.0, reconnect_min_s=0.2,
                       reconnect_max_s=0.5, keepalive=5, batch_size=100, drain_rate=300,
                       max_unacked=window)
    try:
        with Outbox(db) as ob, GateLink(gate="g-out", outbox=ob, broker=cfg) as link:
            ledger.admit(50)
            wait_for(lambda: ob.backlog() == 0, 30, "online and acked")
            b.kill()  # the network is gone; the gate keeps admitting
            wait_for(lambda: not link.status().connected, 30, "outage noticed")
            ledger.admit(1500)
            centre.ack_enabled = False  # the backlog stalls at its window once drained to it
            b.start()
            wait_for(lambda: link.status().connected, 30, "reconnected")
            live = ledger.admit(10)  # after the reconnect: must not wait behind the backlog
            live_seqs = {e.seq for e in live}
            wait_for(lambda: live_seqs <= centre.seqs("g-out"), 60, "live events delivered")
            backlog_seen = {s for s in centre.seqs("g-out") if 50 < s <= 1550}
            assert len(backlog_seen) <= window + 100, "the backlog ran past its unacked window"
            assert len(backlog_seen) < 1500, "live events waited for the whole backlog"
            centre.ack_enabled = True
            centre.ack_now("g-out")
            wait_for(lambda: ob.backlog() == 0, 120, "backlog drained and acked")
        assert_exact(centre, db, "g-out")
    finally:
        centre.stop()
        ledger.close()
