"""``gatepass simulate``: rehearse a whole day at a site before it happens.

``gatepass simulate --gates N --permits M --hours H [--chaos] [--seed S] [--json]`` runs
a real broker, the central service and N gates (threads inside a few worker processes,
on the real agent, ledger and sync code; payloads go straight to the agent, no images),
with slots across H hours, bus trips at the boarding points, network outages, and with
``--chaos`` random SIGKILLs of the broker, the central service and gate workers. It ends
with one JSON object: gate_admissions, central_admissions, lost, counted_twice,
conflicts, seconds, and more.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="simulate a day at a site (exact counts under faults)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--gates", type=int, default=4, metavar="N", help="gates (default 4)")
    p.add_argument("--permits", type=int, default=1000, metavar="M",
                   help="permits presented during the day (default 1000)")
    p.add_argument("--hours", type=int, default=4, metavar="H",
                   help="hours of one-hour slots (default 4)")
    p.add_argument("--chaos", action="store_true",
                   help="SIGKILL the broker, the central service and gate workers at random")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--workers", type=int, default=0, metavar="W",
                   help="worker processes hosting the gates (default: one per CPU)")
    p.add_argument("--broker", choices=("auto", "mosquitto", "amqtt"), default="auto",
                   help="broker to start (default: mosquitto if installed, else amqtt)")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="where ledgers and the central store go (default: a temp dir)")
    p.add_argument("--day-seconds", type=float, default=12.0, metavar="S",
                   help="the day takes at least this long in real time (default 12)")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                   help="give up after this long (default 1800)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", action="store_true",
                   help="print only the JSON summary on stdout (progress goes to stderr)")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    from gatepass.cli import UsageError
    from gatepass.sim.procs import install_stop_signals
    from gatepass.sim.simulation import SimOptions, run_simulation

    for name in ("gates", "permits", "hours"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    if args.hours > 48:
        raise UsageError("--hours must be at most 48")

    def log(msg: str) -> None:
        print(f"gatepass simulate: {msg}", file=sys.stderr, flush=True)

    opt = SimOptions(
        gates=args.gates, permits=args.permits, hours=args.hours, chaos=args.chaos,
        seed=args.seed, workers=args.workers, broker=args.broker, workdir=args.workdir,
        day_seconds=args.day_seconds, timeout_s=args.timeout, keep=args.keep, log=log,
    )
    stop = threading.Event()
    restore = install_stop_signals(stop)
    try:
        result = run_simulation(opt, stop)
    finally:
        restore()
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(json.dumps(result, indent=1), flush=True)
    ok = result["lost"] == 0 and result["counted_twice"] == 0 and not result["errors"]
    return 0 if ok else 1
