"""``gatepass central``: the central aggregator, dashboard and config check.

- ``gatepass central serve --config FILE``: aggregator worker + dashboard/JSON API/metrics;
- ``gatepass central worker --config FILE [--client-id ID]``: one more aggregator worker
  (no HTTP) on the same store; workers split the load through the shared subscription;
- ``gatepass central check-config FILE``: validate the config (and read its key files).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "central", help="central aggregator and dashboard", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    csub = parser.add_subparsers(dest="central_command", metavar="ACTION", required=True)

    serve = csub.add_parser("serve", help="run an aggregator worker and the dashboard")
    serve.add_argument("--config", required=True, metavar="FILE", help="central TOML config")
    serve.set_defaults(func=_serve)

    worker = csub.add_parser("worker", help="run one more aggregator worker (no HTTP)")
    worker.add_argument("--config", required=True, metavar="FILE", help="central TOML config")
    worker.add_argument(
        "--client-id", metavar="ID", help="MQTT client id, unique per worker (default: config)"
    )
    worker.set_defaults(func=_worker)

    check = csub.add_parser("check-config", help="validate a central config file")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=_check)


def _run(args: argparse.Namespace, *, http: bool, client_id: str | None = None) -> int:
    from central.app import CentralApp
    from central.config import load_config
    from gatepass.stopsignals import StopSignals

    config = load_config(args.config)
    with StopSignals() as signals, CentralApp(config, http=http, client_id=client_id) as app:
        if app.dashboard is not None:
            print(f"gatepass central: dashboard on {app.dashboard.url}", flush=True)
        print(f"gatepass central: worker {app.aggregator.client_id} on "
              f"{config.broker.host}:{config.broker.port}, store {_redact(config.store.url)}",
              flush=True)
        while not signals.stop.wait(1.0):
            pass
    return 0


def _serve(args: argparse.Namespace) -> int:
    return _run(args, http=True)


def _worker(args: argparse.Namespace) -> int:
    return _run(args, http=False, client_id=args.client_id)


def _check(args: argparse.Namespace) -> int:
    from central.app import load_signer, load_trust
    from central.config import load_config

    config = load_config(args.file)
    load_signer(config)
    load_trust(config)
    print(f"{args.file}: ok ({len(config.sites)} sites, store {_redact(config.store.url)}, "
          f"http {config.http.listen}, "
          f"signing {'on' if config.signing else 'off'}, trust {'on' if config.trust else 'off'})")
    return 0


def _redact(url: str) -> str:
    # postgresql://user:secret@host/db -> postgresql://user:***@host/db
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        cred, _, rest = tail.rpartition("@")
        if ":" in cred:
            cred = cred.split(":", 1)[0] + ":***"
        return f"{head}://{cred}@{rest}"
    return url
