"""``gatepass bench agent``: frame to committed verdict through the whole gate pipeline.

Simulated 1280x720 camera frames (``hardware.scene.SceneSimulator``) of real signed
permits (``verifier.sandbox.Sandbox``) go through ``GateAgent.process_frame``: decode,
debounce, ``verify_at``, gate policy and the durable ledger commit (SQLite WAL,
``synchronous=FULL``, event + outbox row in one transaction). The baseline is the same
pipeline with the pyzbar decoder, fed the same frames in the same run, interleaved frame
by frame so a machine shared with other work slows both alike. Rendering frames is not
timed. The process is pinned to one CPU.

Output (one JSON object)::

    {"verdict_latency_ms": {"p50": .., "p99": ..}, "fps": .., "baseline_pyzbar_fps": ..,
     "baseline": {"decoder": "pyzbar", "available": true, "reason": null}, ...details}

Where pyzbar cannot be used here (Debian's ``libzbar0`` missing), the benchmark still
measures the pipeline under test and reports ``"baseline": {"available": false,
"reason": "..."}`` with ``baseline_pyzbar_fps`` null, and says so in one line on stderr.

``verdict_latency_ms``: wall time from a frame entering the pipeline to its verdict being
committed, over the frames that produced a decision. ``fps``: frames / time spent in the
pipeline over all frames (empty ones included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "agent", help="frame-to-committed-verdict latency and fps vs a pyzbar pipeline",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    parser.add_argument("--frames", type=int, default=600, help="frames per pipeline")
    parser.add_argument("--permits", type=int, default=64, help="distinct permits shown")
    parser.add_argument("--seed", type=int, default=7, help="scene seed")
    parser.add_argument(
        "--impairments", default="clean,perspective,rotation,blur,glare,noise",
        help="comma-separated scene impairments (hardware.scene.IMPAIRMENTS)",
    )
    parser.add_argument("--decoder", default="default", help="decoder under test")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pyzbar pipeline")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: first)")
    parser.set_defaults(func=run)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[k], 3)


def _pin(cpu: int | None) -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = cpu if cpu is not None else allowed[0]
    os.sched_setaffinity(0, {chosen})
    return chosen


class _Pipeline:
    """One agent (own ledger file) and its timings."""

    def __init__(self, name: str, decoder: str, workdir: Path, sandbox: Any, now: float) -> None:
        from gate_agent.agent import GateAgent
        from gate_agent.clock import TrustedClock
        from gate_agent.config import config_from_dict
        from gate_agent.decode import make_decoder
        from gate_agent.ledger import Ledger
        from gate_agent.trust import GateTrust

        cfg = config_from_dict({
            "gate": f"bench-{name}", "site": sandbox.sites[0], "mode": "entrance",
            "ledger": str(workdir / f"{name}.sqlite"), "decoder": decoder,
            "permits": {"types": ["umrah"], "gate_groups": ["north"]},
            "trust": {"bundle": str(workdir / "unused-trust.json")},
            "clock": {"system": "trust"}, "console": {"enabled": False},
        })
        self.name = name
        self.ledger = Ledger(cfg.ledger, gate=cfg.gate, site=cfg.site)
        start = time.monotonic()
        # Wall time that advances with the monotonic clock: a frozen one would look like
        # a clock jump to the trusted clock after a few seconds.
        clock = TrustedClock(system="trust", wall=lambda: now + time.monotonic() - start)
        self.agent = GateAgent(
            config=cfg, ledger=self.ledger, clock=clock,
            trust=GateTrust(sandbox.store, sandbox.revocation_set()),
            decoder=make_decoder(decoder),
        )
        self.agent.clock.poll()
        self.frame_s: list[float] = []
        self.latency_ms: list[float] = []
        self.verdicts: dict[str, int] = {}

    def feed(self, frame: Any) -> None:
        t0 = time.perf_counter()
        decisions = self.agent.process_frame(frame)
        dt = time.perf_counter() - t0
        self.frame_s.append(dt)
        for d in decisions:
            self.verdicts[d["verdict"]] = self.verdicts.get(d["verdict"], 0) + 1
        if decisions:
            self.latency_ms.append(dt * 1000.0)

    @property
    def fps(self) -> float:
        total = sum(self.frame_s)
        return round(len(self.frame_s) / total, 1) if total > 0 else 0.0

    def close(self) -> None:
        self.agent.close()
        self.ledger.close()


def measure(
    *, frames: int, permits: int, seed: int, impairments: list[str], decoder: str,
    baseline: bool, cpu: int | None,
) -> dict[str, Any]:
    import logging

    from gate_agent.decode import backend_status
    from hardware.scene import SceneSimulator
    from hardware.sources import Frame
    from verifier.sandbox import Sandbox

    base_status = backend_status("pyzbar")
    baseline_info: dict[str, Any] = {"decoder": "pyzbar", **base_status.to_dict()}
    if not baseline:
        baseline_info = {"decoder": "pyzbar", "available": False,
                         "reason": "skipped (--no-baseline)"}
    baseline = baseline and base_status.available
    pinned = _pin(cpu)
    logging.disable(logging.INFO)  # one log line per decision is not what is measured
    sb = Sandbox.create(sites=("makkah-haram",), seed="bench-agent")
    slot = (sb.epoch, sb.epoch + 7200)
    payloads = [
        sb.issue(ptype="umrah", site="makkah-haram", slot=slot, party=1 + i % 3,
                 gate_groups=("north",), key="es256" if i % 2 else "eddsa")
        for i in range(permits)
    ]
    scene = SceneSimulator(payloads, seed=seed, size=(1280, 720), impairments=impairments)
    with tempfile.TemporaryDirectory(prefix="gatepass-bench-agent-") as tmp:
        work = Path(tmp)
        pipes = [_Pipeline("main", decoder, work, sb, slot[0] + 60)]
        if baseline:
            pipes.append(_Pipeline("pyzbar", "pyzbar", work, sb, slot[0] + 60))
        shown = 0
        try:
            for i, sf in enumerate(scene.frames(frames)):
                shown += sf.payload is not None
                # A 30 fps camera clock: the debouncer sees real presentation timing.
                frame = Frame(image=sf.image, text=None, t_mono=i / 30.0, index=i)
                for p in pipes if i % 2 == 0 else reversed(pipes):
                    p.feed(frame)
            main = pipes[0]
            commit = [r.event for r in main.ledger.events()]
            result: dict[str, Any] = {
                "verdict_latency_ms": {
                    "p50": _pct(main.latency_ms, 0.50), "p99": _pct(main.latency_ms, 0.99),
                },
                "fps": main.fps,
                "baseline_pyzbar_fps": pipes[1].fps if baseline else None,
                "baseline": baseline_info,
                "frames": frames,
                "frame_ms_p50": _pct([s * 1000 for s in main.frame_s], 0.5),
                "decisions": len(main.latency_ms),
                "verdicts": main.verdicts,
                "events_committed": len(commit),
                "frames_with_code": shown,
                "decoder": decoder,
                "impairments": impairments,
                "cpu": pinned,
                "goals": {"p50_ms": 10, "p99_ms": 30, "fps": 120},
            }
            if baseline:
                base = pipes[1]
                result["baseline_pyzbar"] = {
                    "verdict_latency_ms": {"p50": _pct(base.latency_ms, 0.5),
                                           "p99": _pct(base.latency_ms, 0.99)},
                    "decisions": len(base.latency_ms), "verdicts": base.verdicts,
                }
            return result
        finally:
            for p in pipes:
                p.close()


def run(args: argparse.Namespace) -> int:
    from gate_agent.decode import availability_note, backend_status
    from gatepass.cli import UsageError

    if args.frames < 10 or args.permits < 1:
        raise UsageError("--frames must be at least 10 and --permits at least 1")
    # One line says what is missing here: what the pipeline under test uses instead, and
    # that the baseline is reported as unavailable (a missing single backend under test
    # is an error, from make_decoder).
    note = availability_note(args.decoder)
    base = backend_status("pyzbar")
    if not args.no_baseline and not base.available:
        note = (note or f"pyzbar unavailable ({base.reason})") + (
            "; the pyzbar baseline is reported as unavailable")
    if note:
        print(f"gatepass: note: {note}", file=sys.stderr, flush=True)
    impairments = [s.strip() for s in args.impairments.split(",") if s.strip()]
    result = measure(
        frames=args.frames, permits=args.permits, seed=args.seed, impairments=impairments,
        decoder=args.decoder, baseline=not args.no_baseline, cpu=args.cpu,
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0
