"""``gatepass demo`` end to end: a real broker, the centre and four gates, then nothing left."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
URL = re.compile(r"(http://127\.0\.0\.1:\d+)")


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read()


def test_demo_prints_every_verdict_serves_urls_counts_and_leaves_no_child(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatepass", "demo", "--duration", "32", "--workdir",
         str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)  # type: ignore[union-attr]
    reader.start()
    children: set[int] = set()
    admitted = 0
    try:
        deadline = time.monotonic() + 60
        while not any("running" in line for line in list(lines)):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, lines
            time.sleep(0.2)
        text = "".join(lines)
        dashboard = URL.search(next(x for x in lines if "dashboard" in x)).group(1)  # type: ignore[union-attr]
        consoles = [URL.search(x).group(1) for x in lines if "console" in x]  # type: ignore[union-attr]
        assert len(consoles) == 4, text
        wallet = URL.search(next(x for x in lines if "pilgrim wallet" in x)).group(1)  # type: ignore[union-attr]
        consoles.append(wallet)  # served like the consoles: checked below
        for url in [dashboard, *consoles]:
            status, body = _get(url + "/")
            assert status == 200 and b"<html" in body.lower()
        children = {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        assert len(children) >= 2  # the broker and the central service
        # Counts on the dashboard's JSON API rise within 60 s of the command.
        while admitted == 0 and time.monotonic() < deadline:
            admitted = json.loads(_get(dashboard + "/api/summary")[1])["totals"]["admitted"]
            time.sleep(0.5)
        assert admitted > 0
        proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    reader.join(5)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    verdicts = [line for line in lines if re.match(r"\d\d:\d\d:\d\d  ", line)]
    joined = "\n".join(verdicts)
    assert re.search(r"ADMIT +- ", joined), joined
    for reasons in (("revoked",), ("unknown_key", "bad_signature"), ("too_early", "too_late"),
                    ("wrong_site",), ("already_used", "used_elsewhere"), ("wrong_route",)):
        assert any(re.search(rf"DENY +{r} ", joined) for r in reasons), (reasons, joined)
    assert "INSPECT" in joined
    for reason in ("presentation_expired", "presentation_required"):  # holder-bound permits
        assert re.search(rf"DENY +{reason} ", joined), (reason, joined)
    assert "[no_live_code]" in joined
    assert "gatepass demo: stopped" in "".join(lines)
    time.sleep(0.5)
    left = [pid for pid in children if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert left == []
