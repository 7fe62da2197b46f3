"""Measure a gate's backlog drain through a real Mosquitto into the fake centre (not a test).

    .venv/bin/python tests/sync/bench_drain.py [EVENTS=100000] [DRAIN_RATE=25000]

Fills an outbox with EVENTS events, starts GateLink, and reports the seconds until the
centre has acknowledged every one (connect included), with stored/received counts.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE.parents[1])]

from conftest import Mosquitto  # noqa: E402  (tests/conftest.py)
from sync_helpers import FakeCentre, Ledger, make_event  # noqa: E402

from sync.config import BrokerConfig  # noqa: E402
from sync.link import GateLink  # noqa: E402
from sync.outbox import Outbox  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 25_000.0
    work = Path(tempfile.mkdtemp(prefix="gp-drain-"))
    broker = Mosquitto(workdir=work / "m")
    broker.start()
    try:
        ledger = Ledger(work / "ledger.db", gate="gbench")
        ledger.conn.execute("BEGIN")
        for seq in range(1, n + 1):
            Outbox.add(ledger.conn, make_event(seq, gate="gbench"))
        ledger.conn.execute("COMMIT")
        centre = FakeCentre(broker.port).start()
        cfg = BrokerConfig(port=broker.port, drain_rate=rate, batch_size=500,
                           max_unacked=50_000)
        with Outbox(work / "ledger.db") as ob:
            t0 = time.monotonic()
            with GateLink(gate="gbench", outbox=ob, broker=cfg) as link:
                while ob.backlog():
                    time.sleep(0.01)
                elapsed = time.monotonic() - t0
                st = link.status()
        centre.stop()
        stored = len(centre.seqs("gbench"))
        print(json.dumps({"events": n, "drain_rate": rate, "drain_s": round(elapsed, 2),
                          "stored": stored, "received": centre.receipts,
                          "lost": n - stored, "republishes": st.republishes}))
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
