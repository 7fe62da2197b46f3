"""``gatepass bench agent`` prints the promised JSON; speed is reported, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from realparts import require_decoder

QUICK = ["--json", "--frames", "40", "--permits", "8", "--impairments", "clean"]


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatepass", "bench", "agent", *args],
                          capture_output=True, text=True, timeout=240, env=env)




def check_pipeline(out: dict[str, object]) -> None:
    lat = out["verdict_latency_ms"]
    assert isinstance(lat, dict) and lat["p50"] > 0 and lat["p99"] >= lat["p50"]
    assert isinstance(out["fps"], float) and out["fps"] > 0
    # Clean frames: every presentation decided, every decision committed to the ledger.
    decisions = out["decisions"]
    assert isinstance(decisions, int) and decisions >= 3
    assert out["events_committed"] == decisions
    assert out["verdicts"] == {"admit": decisions}


def test_bench_agent_json_shape() -> None:
    require_decoder("pyzbar")
    proc = bench(*QUICK)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    check_pipeline(out)
    assert out["baseline_pyzbar_fps"] > 0
    assert out["baseline"] == {"decoder": "pyzbar", "available": True, "reason": None}


def test_bench_agent_without_zbar_reports_the_baseline_unavailable(tmp_path: Path) -> None:
    """Without libzbar0 (a stub pyzbar that fails to import as the real one does), the
    pipeline under test is still measured and the baseline is reported unavailable."""
    pkg = tmp_path / "pyzbar"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "wrapper.py").write_text("raise ImportError('Unable to find zbar shared library')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = bench(*QUICK, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    check_pipeline(out)
    reason = "libzbar0 not installed: apt-get install libzbar0"
    assert out["baseline"] == {"decoder": "pyzbar", "available": False, "reason": reason}
    assert out["baseline_pyzbar_fps"] is None and "baseline_pyzbar" not in out
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("gatepass:")]
    assert lines == [f"gatepass: note: pyzbar unavailable ({reason}); using zxingcpp and opencv"
                     " (the cascade skips its ZBar retry); the pyzbar baseline is reported as"
                     " unavailable"], proc.stderr
    # Asking for pyzbar as the decoder under test is one clear error, not a traceback.
    proc = bench(*QUICK, "--decoder", "pyzbar", env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"gatepass: error: pyzbar unavailable ({reason})"
