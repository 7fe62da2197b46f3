"""Child process for test_durability: admits permits until SIGKILLed.

Usage: python crash_child.py CONFIG_JSON PERMITS_FILE NOW T0

Prints ``ADMIT <ph> <seq>`` AFTER the ledger commit and BEFORE the turnstile signal (the
line is written and flushed inside ``signal_admit``), so every line the parent reads is
an admission the turnstile saw.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from gate_agent.assembly import assemble
from gate_agent.clock import TrustedClock
from gate_agent.config import config_from_dict


class PrintingOutputs:
    """Turnstile stand-in that reports each admission on stdout before 'opening'."""

    def __init__(self) -> None:
        self.pending = ""

    def signal_admit(self) -> None:
        sys.stdout.write(f"ADMIT {self.pending}\n")
        sys.stdout.flush()

    def signal_deny(self) -> None:
        pass

    def close(self) -> None:
        pass


def main() -> None:
    cfg = config_from_dict(json.loads(Path(sys.argv[1]).read_text()))
    permits = Path(sys.argv[2]).read_text().split("\n")
    now = float(sys.argv[3])
    # Time moves on across restarts (argv[4] is the test's start): never behind the ledger.
    t0 = float(sys.argv[4])
    clock = TrustedClock(system="trust", wall=lambda: now + time.time() - t0)
    outputs = PrintingOutputs()
    with assemble(cfg, clock=clock, outputs=outputs, with_source=False,
                  with_decoder=False) as agent:
        agent.clock.poll()
        original = agent.ledger.append

        def append(**kw: object) -> object:
            ev = original(**kw)  # type: ignore[arg-type]
            outputs.pending = f"{ev.ph} {ev.seq}"
            return ev

        agent.ledger.append = append  # type: ignore[method-assign]
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        for raw in permits:
            view = agent.handle_payload(raw, origin="camera")
            sys.stdout.write(f"DONE {view['verdict']} {view['reason']}\n")
            sys.stdout.flush()
    sys.stdout.write("FINISHED\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
