"""SIGKILL the agent at random points during a burst of admissions; the ledger stays exact.

Each round starts the agent (a real child process) on the same ledger with the same
permits, reads the ``ADMIT`` lines it prints after each commit and before the turnstile
signal, and kills it with SIGKILL at a random moment. After every round: seq is
contiguous from 1, eids are unique, every admission the turnstile saw is in the ledger,
no permit is admitted twice, and the outbox holds exactly the ledger's events. The last
round runs to the end: every permit is then admitted exactly once.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from agent_helpers import SLOT, base_config
from conftest import SITE, slot

from verifier.sandbox import Sandbox

CHILD = Path(__file__).with_name("crash_child.py")
PERMITS = 300
ROUNDS = 6


def check_ledger(path: Path) -> list[tuple[str, int]]:
    """Invariants; returns [(ph, seq)] of admissions."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT seq, eid, verdict, ph, party, body FROM events ORDER BY seq")
        rows = rows.fetchall()
        seqs = [r[0] for r in rows]
        assert seqs == list(range(1, len(seqs) + 1)), "seq must be contiguous from 1"
        assert len({r[1] for r in rows}) == len(rows), "eids must be unique"
        admits = [(r[3], r[0]) for r in rows if r[2] == "admit"]
        twice = [ph for ph, n in Counter(ph for ph, _ in admits).items() if n > 1]
        assert not twice, f"admitted twice: {twice}"
        for _seq, _eid, _v, _ph, _party, body in rows:
            assert json.loads(body)["seq"] == _seq
        outbox = [r[0] for r in db.execute("SELECT seq FROM sync_outbox ORDER BY seq")]
        assert outbox == seqs, "ledger and outbox must commit together"
        usage = dict(db.execute("SELECT ph, admitted FROM usage").fetchall())
        assert usage == {ph: 1 for ph, _ in admits}
        return admits
    finally:
        db.close()


@pytest.mark.slow
def test_sigkill_during_burst_loses_nothing(
    tmp_path: Path, sandbox: Sandbox, bundle: Path
) -> None:
    rng = random.Random(20261125)
    cfg = base_config(tmp_path)
    cfg["trust"] = {"bundle": str(bundle)}
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    permits = [sandbox.issue(site=SITE, slot=slot()) for _ in range(PERMITS)]
    permits_path = tmp_path / "permits.txt"
    permits_path.write_text("\n".join(permits))
    ledger = Path(cfg["ledger"])
    seen: set[tuple[str, int]] = set()
    killed_mid_burst = 0
    t0 = time.time()

    for round_no in range(ROUNDS):
        last = round_no == ROUNDS - 1
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(cfg_path), str(permits_path), str(SLOT + 60),
             str(t0)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda p=proc, out=lines: out.extend(iter(p.stdout.readline, "")),  # type: ignore[union-attr]
            name="child-stdout", daemon=True,
        )
        reader.start()
        try:
            if not last:
                deadline = time.monotonic() + 30
                while "READY\n" not in lines and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert "READY\n" in lines, "child did not start"
                # A random instant in the burst: after k admissions of this round, plus jitter
                # so the kill also lands inside transactions and between commit and signal.
                target = rng.randint(1, 40)
                while time.monotonic() < deadline and proc.poll() is None and sum(
                    1 for ln in list(lines) if ln.startswith("ADMIT ")
                ) < target:
                    time.sleep(0.0005)
                time.sleep(rng.uniform(0.0, 0.003))
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        reader.join(10)
        if not last and "FINISHED\n" not in lines:
            killed_mid_burst += 1
        for line in lines:
            if line.startswith("ADMIT "):
                _tag, ph, seq = line.split()
                seen.add((ph, int(seq)))
        admits = check_ledger(ledger)
        print(f"round {round_no}: {len(admits)} admissions in the ledger, "
              f"{len(seen)} seen by the turnstile")
        missing = seen - set(admits)
        assert not missing, f"the turnstile opened for admissions not in the ledger: {missing}"
        if last:
            assert "FINISHED\n" in lines and proc.returncode == 0

    # Every permit exactly once, whatever the kills did.
    assert len(check_ledger(ledger)) == PERMITS
    assert killed_mid_burst >= 1, "no kill landed during a burst: the test proved nothing"
