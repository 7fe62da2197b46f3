"""A worker process hosting many simulated gates as threads, on the real agent path.

Each gate is a :class:`~gate_agent.agent.GateAgent` with its own SQLite ledger (and sync
outbox) and its own ``sync.GateSync`` link to the broker. A gate thread feeds its permits'
payloads straight into ``GateAgent.handle_payload`` (verification, policy, ledger commit:
no images at this scale) on a simulated clock that follows the plan's arrival times.

A worker killed at any instant is restarted with the same arguments: each gate resumes
from its ledger (one ledger event per action, so ``last_seq`` is the cursor) and its
outbox ships what the centre has not acknowledged.

Run as ``python -m gatepass.sim.worker SPEC.json INDEX``; it prints JSON lines
(``{"fed": ...}`` when every gate has seen all its arrivals, ``{"drained": ...}`` when
the centre has acknowledged everything) and exits 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gatepass.sim.site import (
    EARLY_GRACE_S,
    LATE_GRACE_S,
    SITE,
    Action,
    DayPlan,
    GateSpec,
    Minter,
    actions_for,
    plan_day,
)

log = logging.getLogger("gatepass.sim.worker")


class SimClock:
    """A gate's clock in simulated time: wall and monotonic move together (no jumps)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def wall(self) -> float:
        return self.t

    def mono(self) -> float:
        return self.t


def gate_config(spec: GateSpec, *, workdir: Path, bundle: Path, broker: dict[str, Any]) -> Any:
    """The agent config of one simulated gate (validated like a TOML file)."""
    from gate_agent.config import config_from_dict

    return config_from_dict({
        "gate": spec.gate, "site": SITE, "mode": spec.mode,
        "ledger": str(workdir / "gates" / f"{spec.gate}.db"),
        "debounce_s": 0,
        "permits": {"types": ["umrah"], "early_grace_s": EARLY_GRACE_S,
                    "late_grace_s": LATE_GRACE_S},
        "passback": {"scope": "gate"},
        "console": {"enabled": False},
        "broker": broker,
        "trust": {"bundle": str(bundle)},
        "clock": {"system": "trust", "poll_s": 3600, "jump_threshold_s": 60},
        "key_file": str(workdir / "gates" / f"{spec.gate}.key"),
    })


class SimGate:
    """One gate thread: resume from the ledger, feed the remaining actions, cut the link
    during the plan's outage, then wait until the centre has acknowledged everything."""

    def __init__(self, *, spec: GateSpec, plan: DayPlan, minter: Minter, workdir: Path,
                 bundle: Path, broker: dict[str, Any], pace: float, stop: threading.Event,
                 t0_mono: float) -> None:
        self.spec = spec
        self.plan = plan
        self.minter = minter
        self.cfg = gate_config(spec, workdir=workdir, bundle=bundle, broker=broker)
        self.pace = pace  # simulated seconds per real second at most (0: flat out)
        self.stop = stop
        self.t0_mono = t0_mono
        self.fed = threading.Event()
        self.error: BaseException | None = None
        self.outages = 0
        self.thread = threading.Thread(target=self._run, name=f"sim-gate-{spec.gate}",
                                       daemon=True)

    def _run(self) -> None:
        try:
            self._feed()
        except BaseException as exc:  # reported by the worker, never silently lost
            self.error = exc
            log.exception("gate %s failed", self.spec.gate)
        finally:
            self.fed.set()

    def _feed(self) -> None:
        from gate_agent.agent import GateAgent
        from gate_agent.assembly import clock_from_config
        from gate_agent.ledger import Ledger
        from gate_agent.trust import GateTrust
        from gate_agent.uplink import open_sync

        actions: list[Action] = actions_for(self.plan, self.spec.index)
        cfg = self.cfg
        outage = self.plan.outages.get(self.spec.index)
        with contextlib.ExitStack() as stack:
            ledger = stack.enter_context(Ledger(cfg.ledger, gate=cfg.gate, site=cfg.site))
            done = ledger.last_seq()  # one ledger event per action: the ledger is the cursor
            first_t = actions[done].t if done < len(actions) else self.plan.end
            sim = SimClock(max(first_t, ledger.last_trusted_t() or first_t))
            clock = clock_from_config(cfg, wall=sim.wall, mono=sim.mono)
            clock.poll()
            agent = GateAgent(config=cfg, ledger=ledger, clock=clock,
                              trust=GateTrust.from_files(cfg.trust.bundle))
            stack.callback(agent.close)
            link: contextlib.ExitStack | None = None

            def connect() -> None:
                nonlocal link
                if link is None:
                    link = contextlib.ExitStack()
                    link.enter_context(open_sync(agent))

            def cut(outage: bool = True) -> None:
                nonlocal link
                if link is not None:
                    link.close()
                    link = None
                    self.outages += outage

            stack.callback(cut, False)
            for i in range(done, len(actions)):
                if self.stop.is_set():
                    return
                a = actions[i]
                sim.t = max(sim.t, a.t)
                offline = outage is not None and outage[0] <= sim.t < outage[1]
                if offline:
                    cut()
                else:
                    connect()
                self._wait_pace(a.t)
                self._act(agent, a)
            connect()
            self.fed.set()
            # The centre must acknowledge everything this gate recorded.
            while not self.stop.wait(0.2):
                if agent.sync is not None and agent.sync.backlog() == 0:
                    break

    def _wait_pace(self, t: float) -> None:
        if self.pace <= 0:
            return
        due = self.t0_mono + (t - self.plan.start) / self.pace
        delay = due - time.monotonic()
        if delay > 0:
            self.stop.wait(min(delay, 5.0))

    def _act(self, agent: Any, a: Action) -> None:
        if a.kind == "scan":
            assert a.permit is not None
            agent.handle_payload(self.minter.text(a.permit), origin="sim")
        elif a.kind == "open":
            assert a.trip is not None
            bus, route, departure, seats = a.trip
            agent.open_trip(bus, route, departure, seats)
        else:
            agent.close_trip()


def run_worker(spec_path: Path, index: int, day_started: float | None = None) -> int:
    """Host this worker's gates until they are fed and drained (or SIGTERM/SIGINT)."""
    spec = json.loads(spec_path.read_text())
    workdir = Path(spec["workdir"])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    plan = plan_day(seed=spec["seed"], gates=spec["gates"], permits=spec["permits"],
                    hours=spec["hours"])
    mine = [g for g in plan.gates if g.index % spec["workers"] == index]
    minter = Minter(spec["seed"])
    # A restarted worker keeps the day's pace: the day started when the first one did.
    t0 = time.monotonic() - (time.time() - day_started if day_started else 0.0)
    gates = [
        SimGate(spec=g, plan=plan, minter=minter, workdir=workdir, bundle=Path(spec["bundle"]),
                broker=spec["broker"], pace=float(spec["pace"]), stop=stop, t0_mono=t0)
        for g in mine
    ]
    started = time.monotonic()
    for g in gates:
        g.thread.start()
    fed_at: float | None = None
    while True:
        alive = [g for g in gates if g.thread.is_alive()]
        if fed_at is None and all(g.fed.is_set() for g in gates):
            fed_at = time.monotonic()
            _say({"worker": index, "fed": True, "seconds": round(fed_at - started, 3)})
        if not alive or stop.is_set():
            break
        time.sleep(0.1)
    for g in gates:
        g.thread.join(30)
    errors = [f"{g.spec.gate}: {g.error!r}" for g in gates if g.error is not None]
    _say({"worker": index, "drained": not stop.is_set() and not errors, "errors": errors,
          "outages": sum(g.outages for g in gates),
          "drain_seconds": round(time.monotonic() - (fed_at or started), 3)})
    return 1 if errors else 0


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover - run by the simulation as a child
    sys.exit(run_worker(Path(sys.argv[1]), int(sys.argv[2]),
                        float(sys.argv[3]) if len(sys.argv) > 3 else None))
