"""``gatepass simulate``: a compressed day at a site, with outages and (optionally) chaos.

Real parts: a broker child (Mosquitto, or amqtt with MQTT 3.1.1), ``gatepass central
serve`` as a child with a SQLite store, and worker children hosting the gates as threads
on the real agent path (:mod:`gatepass.sim.worker`). With ``chaos`` the coordinator
SIGKILLs the broker, the central service and workers at random and restarts them; gates
resume from their ledgers. At the end the gates' ledgers are audited against the central
store event by event (:mod:`gatepass.sim.audit`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatepass.keyfiles import write_key_directory
from gatepass.sim.audit import audit
from gatepass.sim.identity import enrol
from gatepass.sim.procs import (
    Broker,
    CentralService,
    SimError,
    free_port,
    kill9,
    reap,
    spawn,
)
from gatepass.sim.site import SITE, plan_day, sandbox
from gatepass.sim.worker import gate_config

#: Chaos bounds: kills per kind at most, and the pause between two kills (seconds).
MAX_KILLS = {"broker": 4, "worker": 4, "central": 2}
CHAOS_PAUSE_S = (2.0, 6.0)


@dataclass
class SimOptions:
    """What ``gatepass simulate`` was asked for."""

    gates: int
    permits: int
    hours: int
    chaos: bool = False
    seed: int = 1
    workers: int = 0  # 0: one per CPU
    broker: str = "auto"
    workdir: Path | None = None
    day_seconds: float = 12.0  # the day takes at least this long (real seconds)
    timeout_s: float = 1800.0
    keep: bool = False
    log: Callable[[str], None] = field(default=lambda _m: None)


class _Worker:
    """One worker child and what it said on stdout."""

    def __init__(self, index: int, argv: list[str], log: Path) -> None:
        self.index = index
        self.argv = argv
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.fed = threading.Event()
        self.final: dict[str, Any] | None = None
        self.kills = 0
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.final = None
        self.proc = spawn(self.argv, log=self.log, stdout=subprocess.PIPE)
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("fed"):
                    self.fed.set()
                if "drained" in msg:
                    self.final = msg

        self._reader = threading.Thread(target=read, name=f"sim-worker-{self.index}-stdout",
                                        daemon=True)
        self._reader.start()

    def kill(self) -> None:
        kill9(self.proc)
        self.kills += 1
        self._join()

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None

    def finished(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        reap(self.proc)
        self._join()


def _central_toml(*, broker: Broker, store: Path, port: int, registry: Path) -> str:
    return (
        f'[broker]\nhost = "127.0.0.1"\nport = {broker.port}\nprotocol = "{broker.protocol}"\n'
        'reconnect_max_s = 2.0\n'
        f'\n[store]\nurl = "sqlite:///{store}"\n'
        f'\n[http]\nlisten = "127.0.0.1:{port}"\n'
        f'\n[trust]\nbundle_file = "{registry.parent / "trust.json"}"\n'
        f'\n[registry]\nfile = "{registry}"\n'
        '\n[aggregator]\nclient_id = "gp-central-sim"\nused_stream = false\n'
        f'shared_subscription = {"false" if broker.kind == "amqtt" else "true"}\n'
        f'\n[[sites]]\nid = "{SITE}"\nname = "Grand Mosque (simulated day)"\n'
        'capacity_per_slot = 1000000\n'
    )


def run_simulation(opt: SimOptions, stop: threading.Event) -> dict[str, Any]:
    """Run the day; return the summary (the JSON ``gatepass simulate`` prints)."""
    started = time.monotonic()
    base = opt.workdir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="gatepass-sim-", dir=base))
    plan = plan_day(seed=opt.seed, gates=opt.gates, permits=opt.permits, hours=opt.hours)
    sb = sandbox(opt.seed)
    sb.revocations(plan.revoked_ids())  # revoked before the day: in every gate's bundle
    bundle = write_key_directory(sb, workdir / "keys")
    nworkers = max(1, min(opt.gates, opt.workers or (os.cpu_count() or 1)))
    kills = {"broker": 0, "worker": 0, "central": 0}
    result: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(Broker(workdir / "broker", kind=opt.broker))
        store_path = workdir / "central.db"
        broker_cfg = {"host": "127.0.0.1", "port": broker.port, "protocol": broker.protocol,
                      "reconnect_min_s": 0.2, "reconnect_max_s": 2.0, "keepalive": 10,
                      # A long ack timeout and a small window: with 100 gates, a centre
                      # that lags a few seconds must not be flooded by go-back-N
                      # republishes of every window.
                      "ack_timeout_s": 5.0 if opt.permits <= 20000 else 30.0,
                      "max_unacked": 5000, "health_period_s": 30.0}
        enrol(sb.root, [gate_config(g, workdir=workdir, bundle=bundle, broker=broker_cfg)
                        for g in plan.gates], workdir / "keys" / "gates.registry")
        conf = workdir / "central.toml"
        conf.write_text(_central_toml(broker=broker, store=store_path, port=free_port(),
                                      registry=workdir / "keys" / "gates.registry"))
        central = stack.enter_context(CentralService(conf, log=workdir / "central.log"))
        opt.log(f"broker {broker.kind} on 127.0.0.1:{broker.port}; dashboard "
                f"{central.dashboard_url}; {nworkers} workers; workdir {workdir}")
        spec = {
            "workdir": str(workdir), "bundle": str(bundle), "seed": opt.seed,
            "gates": opt.gates, "permits": opt.permits, "hours": opt.hours,
            "workers": nworkers, "pace": opt.hours * 3600 / opt.day_seconds,
            "broker": broker_cfg,
        }
        spec_path = workdir / "spec.json"
        spec_path.write_text(json.dumps(spec))
        day_started = time.time()
        workers = [
            _Worker(i, [sys.executable, "-m", "gatepass.sim.worker", str(spec_path), str(i),
                        repr(day_started)], workdir / f"worker-{i}.log")
            for i in range(nworkers)
        ]
        for w in workers:
            stack.callback(w.stop)
            w.start()
        rng = random.Random(opt.seed)
        t_workers = time.monotonic()
        fed_at: float | None = None
        # First kills come early so that even a small day sees each kind at least once.
        next_kill = time.monotonic() + 1.5
        deadline = time.monotonic() + opt.timeout_s
        done = timed_out = False
        while not done:
            if stop.wait(0.1):
                raise KeyboardInterrupt
            if time.monotonic() > deadline:
                # Report how far the day got: the audit then shows what is still unshipped.
                opt.log(f"the day did not finish within {opt.timeout_s:.0f} s; stopping")
                timed_out = True
                break
            feeding = not all(w.fed.is_set() for w in workers)
            if not feeding and fed_at is None:
                fed_at = time.monotonic()
                opt.log(f"every gate has seen its arrivals after {fed_at - t_workers:.1f} s;"
                        " waiting for the centre to acknowledge everything")
            if opt.chaos and feeding and time.monotonic() >= next_kill:
                kinds = [k for k, n in kills.items() if n < MAX_KILLS[k]]
                if kinds:
                    kind = min(kinds, key=lambda k: (kills[k], rng.random()))
                    kills[kind] += 1
                    if kind == "broker":
                        broker.kill()
                        opt.log(f"chaos: broker SIGKILLed (kill {kills[kind]})")
                        stop.wait(rng.uniform(0.3, 1.5))
                        broker.start()
                    elif kind == "central":
                        central.kill()
                        opt.log(f"chaos: central service SIGKILLed (kill {kills[kind]})")
                        central.start()
                    else:
                        w = rng.choice([w for w in workers if not w.finished()] or workers)
                        w.kill()
                        opt.log(f"chaos: worker {w.index} SIGKILLed with its gates")
                # A big day spreads its kills over the whole feed, not its first minute.
                spread = max(1.0, opt.permits / 25000)
                next_kill = time.monotonic() + rng.uniform(*CHAOS_PAUSE_S) * spread
            for w in workers:
                if w.finished():
                    rc = w.proc.returncode if w.proc else None
                    if rc == 0 and w.final is not None:
                        continue
                    if rc is not None and rc < 0:
                        w.start()  # killed (by chaos): restart it from its ledgers
                        continue
                    raise SimError(f"worker {w.index} failed (exit {rc}): see {w.log}")
            done = all(w.finished() and w.final is not None for w in workers)
        done_at = time.monotonic()
        fed_s = round((fed_at or done_at) - t_workers, 2)
        drain_s = round(done_at - (fed_at or done_at), 2)
        outages = sum(int((w.final or {}).get("outages", 0)) for w in workers)
        errors = [e for w in workers for e in (w.final or {}).get("errors", [])]
        for w in workers:
            w.stop()
        central.stop()  # everything acknowledged is stored: audit a quiet store
    ledgers = [(g.gate, workdir / "gates" / f"{g.gate}.db") for g in plan.gates]
    res = audit(ledgers, f"sqlite:///{store_path}")
    result = {
        "gate_admissions": res.gate_admissions,
        "central_admissions": res.central_admissions,
        "lost": res.lost,
        "counted_twice": res.counted_twice,
        "conflicts": res.conflicts,
        "seconds": round(time.monotonic() - started, 2),
        "events": res.events,
        "central_events": res.central_events,
        "events_lost": res.events_lost,
        "mismatched": res.mismatched,
        "anomalies": res.anomalies,
        "gates": opt.gates,
        "permits": opt.permits,
        "hours": opt.hours,
        "workers": nworkers,
        "broker": broker.kind,
        "outages": len(plan.outages),
        "outage_cuts_last_run": outages,
        "kills": kills,
        "worker_restarts": sum(w.kills for w in workers),
        "feed_seconds": fed_s,
        "drain_seconds": drain_s,
        "events_per_s": round(res.events / max(fed_s, 1e-9), 1),
        "errors": errors,
        "timed_out": timed_out,
        "workdir": str(workdir),
    }
    if timed_out:
        errors.append(f"timed out after {opt.timeout_s:.0f} s")
    if not opt.keep and not errors and res.lost == 0:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
        result["workdir"] = None
    return result
