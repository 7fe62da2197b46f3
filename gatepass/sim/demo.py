"""``gatepass demo``: a broker, the centre and four gates watching simulated pilgrims.

Gates run in this process on the real path (``gate_agent.assembly.assemble``: camera ->
decoder -> ``GateAgent`` -> ledger + outbox; ``gate_agent.uplink.open_sync``; the
attendant ``ConsoleServer``). The broker and ``gatepass central serve`` run as children.
A director thread queues pilgrims at the gates' simulated cameras: valid permits, early,
late, forged, tampered, revoked, wrong site, a permit shown again at the same lane and one
shown at a second lane, a wrong bus route, and a counter inspection; phones showing live
presentations of holder-bound permits, a stale screenshot of one and bare copies (lane-1
requires presentations, the other gates prefer them: a bare copy is admitted flagged);
then a steady stream of new pilgrims. Each verdict is printed from the gates' ledgers as
it is recorded. The pilgrim wallet (``wallet/``) is served on 127.0.0.1, its URL printed.
"""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatepass.keyfiles import write_key_directory
from gatepass.sim.camera import QueueCamera
from gatepass.sim.identity import enrol
from gatepass.sim.procs import Broker, CentralService, free_port
from gatepass.sim.site import OTHER_SITE, SITE
from gatepass.sim.wallet import WALLET_DIR, Phone, WalletServer, holder_bound

Print = Callable[[str], None]


@dataclass
class DemoGate:
    """One demo gate: its identity, its camera and (once running) its agent and console."""

    gate: str
    mode: str
    title: str
    camera: QueueCamera
    agent: Any = None
    console_url: str = ""
    printed_seq: int = 0


@dataclass
class DemoOptions:
    """What ``gatepass demo`` was asked for."""

    duration: float | None = None
    broker: str = "auto"
    workdir: Path | None = None
    seed: int | None = None
    out: Print = print


def _central_toml(*, broker: Broker, workdir: Path, port: int) -> str:
    keys = workdir / "keys"
    return (
        f'[broker]\nhost = "127.0.0.1"\nport = {broker.port}\nprotocol = "{broker.protocol}"\n'
        'reconnect_max_s = 2.0\n'
        f'\n[store]\nurl = "sqlite:///{workdir / "central.db"}"\n'
        f'\n[http]\nlisten = "127.0.0.1:{port}"\npoll_ms = 1000\n'
        f'\n[signing]\nkey_file = "{keys / "central.pem"}"\n'
        f'\n[trust]\nbundle_file = "{keys / "trust.json"}"\n'
        f'\n[registry]\nfile = "{keys / "gates.registry"}"\n'
        '\n[aggregator]\nclient_id = "gp-central-demo"\ntime_beacon_period_s = 5.0\n'
        f'shared_subscription = {"false" if broker.kind == "amqtt" else "true"}\n'
        f'\n[[sites]]\nid = "{SITE}"\nname = "Masjid al-Haram (Grand Mosque)"\n'
        'capacity_per_slot = 400\n'
    )


def _gate_config(g: DemoGate, *, workdir: Path, broker: Broker) -> Any:
    from gate_agent.config import config_from_dict

    data: dict[str, Any] = {
        "gate": g.gate, "site": SITE, "mode": g.mode,
        "ledger": str(workdir / "gates" / f"{g.gate}.db"),
        "permits": {"types": ["bus"] if g.mode == "boarding" else ["umrah", "haram-prayer"],
                    "presentation": "required" if g.gate == "lane-1" else "preferred"},
        "passback": {"scope": "site", "offline": "soft"},
        "console": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "broker": {"host": "127.0.0.1", "port": broker.port, "protocol": broker.protocol,
                   "reconnect_min_s": 0.2, "reconnect_max_s": 2.0, "health_period_s": 2.0},
        "trust": {"bundle": str(workdir / "keys" / "trust.json")},
        "clock": {"system": "trust"},
        "key_file": str(workdir / "gates" / f"{g.gate}.key"),
    }
    return config_from_dict(data)


def _line(g: DemoGate, ev: Any) -> str:
    t = datetime.fromtimestamp(ev.t, UTC).strftime("%H:%M:%S")
    if ev.kind in ("trip_open", "trip_close"):
        what = "TRIP OPEN" if ev.kind == "trip_open" else "TRIP CLOSED"
        return f"{t}  {g.gate:<10} {what:<8} {ev.trip or '':<18} {ev.note or ''}"
    party = f"party {ev.party}" if ev.verdict == "admit" else ""
    flags = f" [{','.join(ev.flags)}]" if ev.flags else ""
    return (f"{t}  {g.gate:<10} {ev.verdict.upper():<8} {ev.reason or '-':<18} "
            f"{ev.ptype or '-':<6} {party}{flags}")


class Director:
    """Queues pilgrims at the cameras on a timeline, then a steady stream of new ones."""

    def __init__(self, *, sb: Any, gates: dict[str, DemoGate], now: float, seed: int | None,
                 stop: threading.Event) -> None:
        self.sb = sb
        self.gates = gates
        self.now = now
        self.stop = stop
        self.rng = random.Random(seed)
        self.thread = threading.Thread(target=self._run, name="demo-director", daemon=True)
        self.admitted_texts: list[tuple[str, str]] = []  # (gate, text) shown as valid
        self.slot = (int(now) - 1800, int(now) + 1800)
        self.departure = int(now) + 1800
        self.revoked = self.permit(initials="RV")
        self.timeline = self._script()

    def permit(self, **kw: Any) -> str:
        args: dict[str, Any] = {"ptype": "umrah", "site": SITE, "slot": self.slot, "party": 1,
                                "gate_groups": ("all",), "initials": "AB",
                                "doc_number": f"P{self.rng.randrange(10**7):07d}"}
        args.update(kw)
        return str(self.sb.issue(**args))

    def _script(self) -> list[tuple[float, str, str | Callable[[], str]]]:
        from verifier.issue import issue_permit
        from verifier.sandbox import derive_key

        now = int(self.now)
        a = self.permit(party=3, initials="AH")
        d = self.permit(initials="DK")
        forger = derive_key(f"forger-{self.rng.random()}", "forger", "ES256")
        forged = issue_permit(forger, issuer=self.sb.issuer, issued_at=now - 86400,
                              ptype="umrah", site=SITE, slot=self.slot, party=2,
                              initials="FX", doc_number="X0000001").text
        good = self.permit(initials="TM", party=2)
        i = len(good) // 2
        tampered = good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1:]
        bus = {"ptype": "bus", "route": "R7", "departure": self.departure}
        phone = Phone()
        bound = {"ptype": "umrah", "site": SITE, "slot": self.slot, "gate_groups": ("all",)}
        live = holder_bound(self.sb, phone, initials="PH", party=2, **bound)
        copied = holder_bound(self.sb, phone, initials="SC", **bound)
        stale = holder_bound(self.sb, phone, initials="OS", **bound)
        return [
            (0.0, "lane-1", a),
            (0.0, "lane-2", self.permit(party=2, initials="BZ")),
            (0.0, "bus-1", self.permit(party=2, initials="BS", **bus)),
            (0.0, "counter-1", self.permit(party=4, initials="CI")),
            (0.5, "lane-1", self.permit(slot=(now + 3 * 3600, now + 4 * 3600), initials="EA")),
            (0.5, "lane-2", self.permit(slot=(now - 5 * 3600, now - 4 * 3600), initials="LT")),
            (0.5, "bus-1", self.permit(ptype="bus", initials="WR", route="R9",
                                       departure=self.departure)),
            (0.5, "counter-1", self.revoked),
            (1.0, "lane-1", forged),
            (1.0, "lane-2", tampered),
            (1.0, "bus-1", self.permit(party=4, initials="BF", **bus)),
            (1.5, "lane-1", d),
            (1.5, "lane-2", self.permit(initials="CC")),
            (2.0, "lane-1", self.revoked),
            (2.5, "lane-1", self.permit(site=OTHER_SITE, initials="WS")),
            (3.0, "lane-1", a),  # the same family again at the same lane: already used
            (16.0, "lane-2", d),  # shown at a second lane: the site-wide stream knows
            # Phones: a live code made as it is shown, a stale screenshot, a bare copy.
            (3.5, "lane-1", lambda: phone.present(live, time.time())),
            (4.0, "lane-2", lambda: phone.present(stale, time.time() - 120)),  # refused too
            (4.5, "lane-1", copied),  # required here: presentation_required
            (4.5, "lane-2", holder_bound(self.sb, phone, initials="PC", **bound)),  # flagged
        ]

    def _run(self) -> None:
        t0 = time.monotonic()
        for delay, gate, text in self.timeline:
            if self.stop.wait(max(0.0, t0 + delay - time.monotonic())):
                return
            self.gates[gate].camera.present(text() if callable(text) else text,
                                            impairment="clean")
        # Then new pilgrims keep coming; now and then one tries a second lane.
        entrances = ["lane-1", "lane-2", "bus-1"]
        n = 0
        while not self.stop.wait(self.rng.uniform(2.0, 4.0)):
            n += 1
            gate = self.rng.choice(entrances)
            if gate == "bus-1":
                text = self.permit(ptype="bus", party=self.rng.randint(1, 3), route="R7",
                                   departure=self.departure, initials="NB")
            elif n % 6 == 0 and self.admitted_texts:
                prev_gate, text = self.rng.choice(self.admitted_texts)
                gate = "lane-2" if prev_gate == "lane-1" else "lane-1"
            else:
                text = self.permit(party=self.rng.randint(1, 4), initials="NP")
                self.admitted_texts.append((gate, text))
            if self.gates[gate].camera.waiting() < 3:
                self.gates[gate].camera.present(text)


def run_demo(opt: DemoOptions, stop: threading.Event) -> dict[str, Any]:
    """Run until ``stop`` or ``opt.duration``; return final figures (ledgers vs centre)."""
    from gate_agent.assembly import assemble
    from gate_agent.console.server import ConsoleServer
    from gate_agent.uplink import open_sync
    from verifier.sandbox import Sandbox

    out = opt.out
    started = time.monotonic()
    base = opt.workdir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="gatepass-demo-", dir=base))
    now = time.time()
    sb = Sandbox.create(sites=(SITE, OTHER_SITE), seed=opt.seed)
    gates = {
        "lane-1": DemoGate("lane-1", "entrance", "Grand Mosque, entrance lane 1",
                           QueueCamera(name="lane-1", seed=11)),
        "lane-2": DemoGate("lane-2", "entrance", "Grand Mosque, entrance lane 2",
                           QueueCamera(name="lane-2", seed=12)),
        "bus-1": DemoGate("bus-1", "boarding", "Shuttle bus boarding point, route R7",
                          QueueCamera(name="bus-1", seed=13)),
        "counter-1": DemoGate("counter-1", "counter", "Service counter (inspect only)",
                              QueueCamera(name="counter-1", seed=14)),
    }
    director = Director(sb=sb, gates=gates, now=now, seed=opt.seed, stop=stop)
    sb.revoke(director.revoked)  # revoked before the gates start: in their trust bundle
    write_key_directory(sb, workdir / "keys")
    figures: dict[str, Any] = {"workdir": str(workdir)}
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(Broker(workdir / "broker", kind=opt.broker))
        enrol(sb.root, [_gate_config(g, workdir=workdir, broker=broker) for g in gates.values()],
              workdir / "keys" / "gates.registry")
        conf = workdir / "central.toml"
        conf.write_text(_central_toml(broker=broker, workdir=workdir, port=free_port()))
        central = stack.enter_context(CentralService(conf, log=workdir / "central.log"))
        out(f"gatepass demo: broker {broker.kind} on 127.0.0.1:{broker.port}"
            f" (MQTT {broker.protocol})")
        out(f"gatepass demo: dashboard {central.dashboard_url}/")
        if (WALLET_DIR / "index.html").is_file():
            wallet = stack.enter_context(WalletServer())
            out(f"gatepass demo: pilgrim wallet {wallet.url}  (lane-1 requires live codes)")
        for g in gates.values():
            cfg = _gate_config(g, workdir=workdir, broker=broker)
            g.agent = stack.enter_context(assemble(cfg, source=g.camera))
            stack.enter_context(open_sync(g.agent))
            console = stack.enter_context(ConsoleServer(
                backend=g.agent, host=cfg.console.host, port=cfg.console.port,
                metrics_registry=g.agent.metrics_registry))
            g.console_url = console.url
            out(f"gatepass demo: console {g.gate:<10} {console.url}  ({g.title})")
        gates["bus-1"].agent.open_trip("Bus 7", "R7", director.departure, 49)
        for g in gates.values():
            g.agent.start()
        # Pilgrims come once the lanes are online (the site-wide used-permit stream live).
        ready_by = time.monotonic() + 10.0
        while time.monotonic() < ready_by and not stop.is_set() and not all(
                g.agent.snapshot()["health"]["online"] for g in gates.values()):
            time.sleep(0.1)
        stack.callback(director.thread.join, 5)
        stack.callback(stop.set)
        director.thread.start()
        out("gatepass demo: running"
            + (f" for {opt.duration:.0f} s" if opt.duration else "") + "; Ctrl-C stops")
        deadline = None if opt.duration is None else started + opt.duration
        while not stop.wait(0.2):
            _print_new(gates, out)
            if deadline is not None and time.monotonic() >= deadline:
                break
        stop.set()
        for g in gates.values():
            g.agent.stop()  # no new scans while the outboxes drain
        _print_new(gates, out)
        # Give the links a moment to ship what is still in the outboxes.
        drain_until = time.monotonic() + 5.0
        while time.monotonic() < drain_until and any(
                g.agent.sync is not None and g.agent.sync.backlog() > 0 for g in gates.values()):
            time.sleep(0.1)
        figures["backlog"] = sum(g.agent.ledger.outbox_backlog() for g in gates.values())
        figures["dashboard_url"] = central.dashboard_url
        with contextlib.suppress(Exception):
            # The dashboard reads the store a moment later than the acknowledgement.
            time.sleep(1.0)
            figures["dashboard_admitted"] = _dashboard_admitted(central.dashboard_url)
    from gatepass.sim.audit import audit

    res = audit([(g, workdir / "gates" / f"{g}.db") for g in gates], f"sqlite:///"
                f"{workdir / 'central.db'}")
    figures.update(gate_admissions=res.gate_admissions, central_admissions=res.central_admissions,
                   lost=res.lost, counted_twice=res.counted_twice, conflicts=res.conflicts,
                   events=res.events, seconds=round(time.monotonic() - started, 1))
    return figures


def _print_new(gates: dict[str, DemoGate], out: Print) -> None:
    for g in gates.values():
        for rec in g.agent.ledger.events(after_seq=g.printed_seq):
            g.printed_seq = rec.event.seq
            out(_line(g, rec.event))


def _dashboard_admitted(url: str | None) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{url}/api/summary", timeout=3) as resp:
        return int(json.load(resp)["totals"]["admitted"])
