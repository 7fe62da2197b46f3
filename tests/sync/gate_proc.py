"""A gate process for kill tests: admits events into a ledger while GateLink ships them.

    python gate_proc.py DB PORT GATE TOTAL   admits until the ledger holds TOTAL events
Prints "ready" once the link thread runs, then one line per 50 admissions.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sync_helpers import Ledger

from sync.config import BrokerConfig
from sync.link import GateLink
from sync.outbox import Outbox


def main() -> None:
    db, port, gate, total = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    ledger = Ledger(Path(db), gate=gate)
    cfg = BrokerConfig(port=port, ack_timeout_s=1.5, reconnect_min_s=0.1,
                       reconnect_max_s=0.5, keepalive=5, batch_size=50)
    with Outbox(db) as ob, GateLink(gate=gate, outbox=ob, broker=cfg):
        print("ready", flush=True)
        while ledger.next_seq() <= total:
            ledger.admit(1)
            if ledger.next_seq() % 50 == 0:
                print("admitted", ledger.next_seq() - 1, flush=True)
            time.sleep(0.001)
        print("done", flush=True)
        while ob.backlog():
            time.sleep(0.05)
        print("drained", flush=True)
    ledger.close()


if __name__ == "__main__":
    main()
