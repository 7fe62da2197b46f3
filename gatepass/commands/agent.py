"""``gatepass agent run|scan|check-config``: the gate agent process and its offline tools.

- ``run --config FILE``: the agent with its camera, outputs, console and (with
  ``[broker]``) sync, until SIGINT/SIGTERM; SIGHUP re-reads the rules from FILE. Exits 3
  when the frame source could not be reopened within its ``give_up_after_s``; under
  systemd it sends READY=1 and (with ``WatchdogSec=``) WATCHDOG=1 while frames flow.
- ``scan --config FILE IMAGE... [--at ISO8601] [--ledger FILE]``: decode, verify and decide
  on image files, one JSON object per code found (at least ``verdict`` and ``reason``).
  Without ``--ledger`` nothing is kept between calls; with it, a second scan of the same
  permit is refused as already used. ``--at`` fixes the time (logged as an override).
- ``check-config FILE``: what is wrong, field by field (exit 1), or a summary (exit 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("gatepass.agent")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "agent", help="run or test a gate agent", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = parser.add_subparsers(dest="agent_command", metavar="ACTION", required=True)

    run = cmds.add_parser("run", help="run the gate agent until SIGINT/SIGTERM")
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="gate TOML")
    run.add_argument(
        "--text-logs", action="store_true", help="human-readable logs instead of JSON lines"
    )
    run.set_defaults(func=cmd_run)

    scan = cmds.add_parser("scan", help="decide on image files without a camera")
    scan.add_argument("--config", required=True, type=Path, metavar="FILE", help="gate TOML")
    scan.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    scan.add_argument(
        "--at", metavar="ISO8601", help="decide at this time (e.g. 2026-05-28T21:00Z)"
    )
    scan.add_argument(
        "--ledger", type=Path, metavar="FILE",
        help="ledger to keep state in between calls (default: none, nothing kept)",
    )
    scan.set_defaults(func=cmd_scan)

    check = cmds.add_parser("check-config", help="validate a config file")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(func=cmd_check_config)


def parse_at(text: str) -> float:
    """ISO 8601 to epoch seconds; a time without zone is UTC."""
    from gatepass.cli import UsageError

    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not an ISO 8601 time: write e.g. 2026-05-28T21:00:00Z"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def cmd_check_config(args: argparse.Namespace) -> int:
    from gate_agent.config import load_config, summary
    from gate_agent.errors import ConfigError
    from gate_agent.trust import GateTrust

    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            print(f"  {problem}")
        return 1
    problems = []
    try:
        GateTrust.from_files(cfg.trust.bundle, cfg.trust.revocations)
    except ConfigError as exc:
        problems.append(f"trust: {exc}")
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"{args.file}: OK")
    print(summary(cfg))
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from gate_agent.assembly import assemble, clock_from_config
    from gate_agent.clock import TrustedClock
    from gate_agent.config import load_config
    from gate_agent.decode import availability_note
    from gate_agent.reasons import GateReason
    from hardware.errors import UnusableImage
    from hardware.image import quiet_opencv, read_image

    cfg = load_config(args.config)
    clock = None
    if args.at is not None:
        at = parse_at(args.at)
        clock = TrustedClock(system="trust", wall=lambda: at)
        clock.override()  # the operator fixed the time: recorded as such
    else:
        clock = clock_from_config(cfg)
    ledger_path: Path | str = args.ledger if args.ledger is not None else ":memory:"
    failed = 0
    with assemble(
        cfg, ledger_path=ledger_path, clock=clock, with_source=False, with_outputs=False
    ) as agent:
        clock.poll()
        decoder = agent.decoder
        assert decoder is not None
        note = availability_note(cfg.decoder)
        if note:
            print(f"gatepass: note: {note}", file=sys.stderr, flush=True)
        quiet_opencv()
        for image in args.images:
            try:
                # The shared reader: regular files only, size and pixel limits checked
                # from the header before anything is decoded.
                frame = read_image(image, grayscale=True)
            except UnusableImage as exc:
                failed += 1
                print(f"gatepass: error: {exc}", file=sys.stderr, flush=True)
                _emit({"image": str(image), "verdict": "deny",
                       "reason": GateReason.NO_CODE.value, "error": str(exc)})
                continue
            codes = decoder.decode(frame)
            if not codes:
                _emit({"image": str(image), "verdict": "deny",
                       "reason": GateReason.NO_CODE.value, "codes": 0})
            for code in codes:
                view = agent.handle_payload(code.text, origin="scan")
                _emit({"image": str(image), **view})
    return 1 if failed else 0


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


#: Exit code of ``agent run`` when its frame source could not be reopened (systemd's
#: ``Restart=on-failure`` restarts it; 1 is a config or start-up error, 2 a usage error).
EXIT_SOURCE_GAVE_UP = 3


def cmd_run(args: argparse.Namespace) -> int:
    import contextlib

    from gate_agent.assembly import assemble
    from gate_agent.config import load_config
    from gate_agent.errors import ConfigError
    from gate_agent.logs import use_json_logs
    from gate_agent.watchdog import SdNotify, Watchdog, watchdog_interval_s

    cfg = load_config(args.config)
    if not args.text_logs:
        use_json_logs(logging.DEBUG if getattr(args, "debug", False) else logging.INFO)
    from gatepass.stopsignals import StopSignals

    signals = StopSignals(reload=True).install()
    notifier = SdNotify.from_env()
    failure: str | None = None
    try:
        with contextlib.ExitStack() as stack:
            agent = stack.enter_context(assemble(cfg))
            from gate_agent.decode import availability_note

            if (note := availability_note(cfg.decoder)) is not None:  # e.g. no libzbar0
                log.warning("decoder backend missing: %s", note)
                print(f"gatepass: note: {note}", file=sys.stderr, flush=True)
            if cfg.broker is not None:
                from gate_agent.uplink import open_sync

                stack.enter_context(open_sync(agent, agent.downlink_versions))
            if cfg.console.enabled:
                from gate_agent.console.server import ConsoleServer

                server = ConsoleServer(
                    backend=agent, host=cfg.console.host, port=cfg.console.port,
                    metrics_registry=agent.metrics_registry,
                )
                stack.enter_context(server)
                log.info("console listening", extra={"url": server.url})
                print(f"gatepass agent: console at {server.url}", file=sys.stderr, flush=True)
            agent.start()
            stack.callback(notifier.close)
            notifier.ready(f"gate {cfg.gate} running")  # before the first watchdog ping
            interval = watchdog_interval_s()
            if notifier.enabled and interval is not None:
                # Stopped before the agent (the stack unwinds in reverse): no ping while
                # the agent shuts down.
                stack.callback(Watchdog(notifier, interval, agent.frame_loop_healthy)
                               .start().close)
            print(f"gatepass agent: gate {cfg.gate} running ({cfg.mode})", file=sys.stderr,
                  flush=True)
            while not signals.stop.wait(0.5):
                failure = agent.source_failure
                if failure is not None:
                    break  # the source gave up: exit non-zero so systemd restarts us
                if signals.take_reload():
                    try:
                        agent.reload_config(load_config(args.config))
                    except ConfigError as exc:
                        log.error("config reload refused: %s", exc)
            notifier.stopping()
    finally:
        signals.close()
    if failure is not None:
        print(f"gatepass: error: frame source {failure}; exiting so the service manager "
              "restarts the gate", file=sys.stderr, flush=True)
        return EXIT_SOURCE_GAVE_UP
    print("gatepass agent: stopped cleanly", file=sys.stderr, flush=True)
    return 0
