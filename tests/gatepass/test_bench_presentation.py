"""``gatepass bench presentation`` end to end on small counts: sizes, scene, verify speed."""

from __future__ import annotations

import json
import subprocess
import sys

GATEPASS = [sys.executable, "-m", "gatepass"]


def test_bench_presentation_prints_sizes_read_rates_and_speed() -> None:
    proc = subprocess.run(
        [*GATEPASS, "bench", "presentation", "--json", "--presentations", "2", "--rounds", "2",
         "--per-round", "5", "--revocations", "1000"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    sizes = out["sizes"]
    assert sizes["static_permit"]["qr_version_m"] < sizes["presentation"]["qr_version_m"] <= 15
    assert sizes["presentation"]["text_chars"] <= 1600
    assert sizes["presentation"]["proof_bytes"] <= 256
    assert sizes["holder_bound_permit"]["cose_bytes"] == sizes["presentation"]["permit_bytes"]
    scene = out["scene"]
    for part in ("static", "presentation"):
        assert scene[part]["all"]["total"] == scene[part]["clean"]["total"] * (
            len(scene[part]) - 1)
        assert 0 <= scene[part]["all"]["rate"] <= 1
    assert scene["within_frames"] == 3
    verify = out["verify"]
    assert verify["presentation_verify_per_s"] > 0 and verify["baseline_two_es256_verify_per_s"] > 0
    assert verify["ratio"] > 0 and isinstance(verify["goal_ratio_ge_0_75"], bool)


def test_bench_presentation_refuses_unknown_parts() -> None:
    proc = subprocess.run([*GATEPASS, "bench", "presentation", "--skip", "everything"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "--skip takes scene and verify" in proc.stderr


def test_bench_verify_reports_presentations_against_two_raw_verifications() -> None:
    proc = subprocess.run(
        [*GATEPASS, "bench", "verify", "--json", "--revocations", "100", "--rounds", "2",
         "--per-round", "5"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["presentation_verify_per_s"] > 0
    assert out["baseline_two_es256_verify_per_s"] > 0
    assert out["presentation_ratio"] > 0
