"""``gatepass issue``: sign permits with a key from a ``gatepass keys new`` directory.

One permit (the default), ``--count N`` permits for one slot, or one per row of
``--holders CSV`` (columns: initials, doc_number, party, gate_groups (``;``-separated),
ptype, site, slot_start, slot_end, health, route, departure; missing columns take the
command-line values). ``--holder-key PEM`` binds every permit to that device key.
Without ``--out`` the permits go to stdout as JSON lines; with
``--out DIR``: ``permits.jsonl``, ``qr/<ph>.png`` and ``.svg``, and ``sheet.html``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "issue",
        help="issue permits (JSON lines, PNG/SVG QR codes, printable sheet)",
        description=__doc__,
    )
    parser.add_argument("--keys", required=True, metavar="DIR", help="key directory")
    parser.add_argument("--key", default=None, help="issuer key name (default: the first one)")
    parser.add_argument("--type", dest="ptype", default="umrah", help="permit type")
    parser.add_argument("--site", default=None, help="site (default: the key's first site)")
    parser.add_argument(
        "--slot-start", metavar="ISO8601", help="slot start (required unless in CSV)"
    )
    parser.add_argument("--slot-minutes", type=int, default=60, help="slot length (default 60)")
    parser.add_argument("--party", type=int, default=1, help="people admitted by one permit")
    parser.add_argument("--gates", default="all", help="comma-separated gate groups")
    parser.add_argument("--initials", default="", help="holder initials (e.g. AK)")
    parser.add_argument("--doc", default=None, help="holder ID document number (hashed)")
    parser.add_argument("--health", default="ok", help="health status code at issue time")
    parser.add_argument("--route", default=None, help="bus route (bus permits)")
    parser.add_argument("--departure", default=None, metavar="ISO8601", help="bus departure")
    parser.add_argument(
        "--holder-key",
        metavar="PUBLIC_KEY.pem",
        help="bind the permit(s) to this P-256 device key (SPKI PEM from the wallet): "
        "gates then want a live presentation",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--count", type=int, default=None, help="issue N permits for the slot")
    group.add_argument("--holders", metavar="CSV", help="one permit per CSV row")
    parser.add_argument("--at", default="now", metavar="ISO8601", help="issued-at time")
    parser.add_argument("--out", metavar="DIR", help="write files here instead of stdout")
    parser.add_argument("--no-png", action="store_true")
    parser.add_argument("--no-svg", action="store_true")
    parser.add_argument("--no-sheet", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from central.issuing import (
        MAX_SHEET,
        IssueRequestInvalid,
        PermitRequest,
        issue_batch,
        read_holder_key,
        read_holders_csv,
        write_outputs,
    )
    from gatepass.cli import UsageError
    from gatepass.commands.keys import load_directory
    from gatepass.commands.verify import parse_time

    sb = load_directory(args.keys)
    issuers = {n: s for n, s in sb.specs.items() if "permit" in s.roles}
    if not issuers:
        raise UsageError(f"{args.keys} holds no issuer key")
    issued_at = int(parse_time(args.at))
    # Default: the first key whose validity covers issued-at (a retired key would only
    # produce permits that gates refuse as key_not_valid).
    valid = [n for n, s in issuers.items() if s.not_before <= issued_at <= s.not_after]
    name = args.key or (valid or list(issuers))[0]
    if name not in issuers:
        raise UsageError(f"no issuer key {name!r}; choose one of {', '.join(issuers)}")
    spec = issuers[name]
    site = args.site or (spec.sites[0] if spec.sites else None)
    if site is None and not args.holders:
        raise UsageError("give --site (the key may sign for any site)")
    if args.slot_minutes < 1 or args.party < 1:
        raise UsageError("--slot-minutes and --party must be positive")
    start = int(parse_time(args.slot_start)) if args.slot_start else None
    if start is None and not args.holders:
        raise UsageError("give --slot-start")
    holder_key = None
    if args.holder_key:
        try:
            holder_key = read_holder_key(Path(args.holder_key).read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {args.holder_key}: {exc.strerror}") from None
        except IssueRequestInvalid as exc:
            raise UsageError(f"{args.holder_key}: {exc}") from None
    defaults = PermitRequest(
        ptype=args.ptype,
        site=site or "",
        slot_start=start or 0,
        slot_end=(start or 0) + args.slot_minutes * 60,
        party=args.party,
        gate_groups=tuple(g.strip() for g in args.gates.split(",") if g.strip()),
        initials=args.initials,
        doc_number=args.doc,
        health=args.health,
        route=args.route,
        departure=int(parse_time(args.departure)) if args.departure else None,
        holder_key=holder_key,
    )
    if args.holders:
        try:
            text = Path(args.holders).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise UsageError(f"cannot read {args.holders}: {exc.strerror}") from None
        try:
            requests = read_holders_csv(text, defaults)
        except IssueRequestInvalid as exc:
            raise UsageError(f"{args.holders}: {exc}") from None
    else:
        count = 1 if args.count is None else args.count
        if not 1 <= count <= 1_000_000:
            raise UsageError("--count must be between 1 and 1000000")
        requests = [defaults] * count
    bar = tqdm(total=len(requests), unit="permit", file=sys.stderr, disable=None)
    try:
        records = issue_batch(
            spec.key,
            issuer=spec.issuer,
            issued_at=issued_at,
            requests=requests,
            progress=bar.update,
        )
        if args.out:
            n = write_outputs(
                records,
                Path(args.out),
                png=not args.no_png,
                svg=not args.no_svg,
                sheet=not args.no_sheet,
            )
            bar.close()
            result: dict[str, Any] = {"issued": n, "out": args.out}
            if not args.no_sheet and n > MAX_SHEET:
                result["sheet"] = f"not written: more than {MAX_SHEET} permits"
            print(json.dumps(result))
        else:
            for rec in records:
                sys.stdout.write(json.dumps(rec.to_json()) + "\n")
    except IssueRequestInvalid as exc:
        raise UsageError(str(exc)) from None
    finally:
        bar.close()
    return 0
