"""``gatepass bench sync`` at toy size: the JSON has every promised key and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.broker
@pytest.mark.postgres
@pytest.mark.slow
def test_bench_sync_small_run_prints_the_promised_json(postgres_admin_dsn: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "gatepass", "bench", "sync", "--json", "--events", "4000",
         "--gates", "4", "--workers", "1", "--backlog", "2000", "--latency-s", "0.5",
         "--rate", "100", "--timeout", "60", "--pg-url", postgres_admin_dsn],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(d["events_per_s"]) == {"sqlite", "postgresql"}
    assert all(v > 0 for v in d["events_per_s"].values())
    assert d["baseline_raw_mqtt_events_per_s"] > 0
    assert d["backlog_100k_drain_s"] is not None and d["backlog_100k_drain_s"] > 0
    assert d["latency_ms"]["p50"] is not None
    assert d["latency_ms"]["p50"] <= d["latency_ms"]["p99"]
    assert d["details"]["latency_samples"] > 0
    assert (d["lost"], d["duplicated"]) == (0, 0)
