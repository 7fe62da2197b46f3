"""``gatepass bench agent`` prints the promised JSON; speed is reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_agent_json_shape() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gatepass", "bench", "agent", "--json", "--frames", "40",
         "--permits", "8", "--impairments", "clean"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    lat = out["verdict_latency_ms"]
    assert lat["p50"] > 0 and lat["p99"] >= lat["p50"]
    assert out["fps"] > 0 and out["baseline_pyzbar_fps"] > 0
    # Clean frames: every presentation decided, every decision committed to the ledger.
    assert out["decisions"] >= 3 and out["events_committed"] == out["decisions"]
    assert out["verdicts"] == {"admit": out["decisions"]}
