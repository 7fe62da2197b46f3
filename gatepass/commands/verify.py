"""``gatepass verify``: verify permits offline and print one JSON object per payload.

Payloads come as arguments, one per line on stdin (``-``), or from QR images
(``--image``). Exit 0 when every payload is accepted, 1 when any is refused, 2 for
usage errors (including an unusable trust file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verifier.revocation import RevocationSet
    from verifier.trust import TrustStore
    from verifier.verify import SlotWindow


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "verify", help="verify permits offline (JSON lines out)", description=__doc__
    )
    parser.add_argument(
        "--trust", required=True, metavar="TRUSTFILE", help="trust bundle (gatepass keys new)"
    )
    parser.add_argument(
        "--at",
        required=True,
        metavar="ISO8601",
        help="verification time, e.g. 2026-05-28T21:00:00Z (no zone: UTC); 'now' for the clock",
    )
    parser.add_argument(
        "--revocations",
        nargs="*",
        default=[],
        metavar="FILE",
        help="signed revocation snapshots/deltas to apply after the bundle's, in order",
    )
    parser.add_argument("--early", type=int, metavar="S", help="check the slot: early grace (s)")
    parser.add_argument("--late", type=int, metavar="S", help="check the slot: late grace (s)")
    parser.add_argument("--image", nargs="+", metavar="FILE", help="decode QR codes from images")
    parser.add_argument("payloads", nargs="*", metavar="PAYLOAD", help="permit texts, or - for stdin")
    parser.set_defaults(func=run)


def parse_time(text: str) -> float:
    """ISO 8601 to epoch seconds (naive means UTC); ``now`` reads the clock (CLI only)."""
    from gatepass.cli import UsageError

    if text == "now":
        import time

        return time.time()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {text!r} is not ISO 8601; use e.g. 2026-05-28T21:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def load_trust(path: str, extra: list[str]) -> tuple[TrustStore, RevocationSet]:
    """Read a trust bundle (and extra revocation files); usage error when unusable."""
    from gatepass.cli import UsageError
    from verifier.errors import VerifierError
    from verifier.trust import TrustBundle

    try:
        bundle = TrustBundle.from_bytes(Path(path).read_bytes())
        store = bundle.store()
        revset = bundle.revocation_set(store)
        for name in extra:
            revset.apply(Path(name).read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except VerifierError as exc:
        raise UsageError(f"trust file {path} unusable: {exc}") from None
    return store, revset


def _payloads(args: argparse.Namespace) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(context for the output line, payload text or None when nothing was decoded)."""
    for item in args.payloads:
        if item == "-":
            for line in sys.stdin:
                line = line.rstrip("\r\n")
                if line:
                    yield {}, line
        else:
            yield {}, item
    if args.image:
        import cv2

        from gate_agent.decode import make_decoder

        decoder = make_decoder("default")
        for name in args.image:
            frame = cv2.imread(name, cv2.IMREAD_COLOR)
            if frame is None:
                from gatepass.cli import UsageError

                raise UsageError(f"cannot read image {name}: missing or not an image file")
            codes = decoder.decode(frame)
            if not codes:
                yield {"image": name}, None
            for code in codes:
                yield {"image": name}, code.text


def verify_one(
    text: str | None, now: float, store: TrustStore, revset: RevocationSet,
    window: SlotWindow | None,
) -> dict[str, Any]:
    from verifier.errors import PermitRefused
    from verifier.verify import verify_at

    if text is None:
        return {"ok": False, "reason": "no_code", "detail": "no QR code found in the image"}
    try:
        permit = verify_at(text, now, trust=store, revocations=revset, window=window)
    except PermitRefused as exc:
        return {"ok": False, "reason": exc.reason.value, "detail": exc.detail}
    return {"ok": True, "reason": None, **permit.to_dict()}


def run(args: argparse.Namespace) -> int:
    from gatepass.cli import UsageError
    from verifier.verify import SlotWindow

    if not args.payloads and not args.image:
        raise UsageError("give payloads, - to read them from stdin, or --image FILE...")
    if args.payloads.count("-") > 1:
        raise UsageError("- (stdin) may be given once")
    now = parse_time(args.at)
    window = None
    if args.early is not None or args.late is not None:
        if (args.early or 0) < 0 or (args.late or 0) < 0:
            raise UsageError("--early and --late must be >= 0 seconds")
        window = SlotWindow(early_s=args.early or 0, late_s=args.late or 0)
    store, revset = load_trust(args.trust, args.revocations)
    refused = 0
    out = sys.stdout
    for context, text in _payloads(args):
        result = {**verify_one(text, now, store, revset, window), **context}
        refused += not result["ok"]
        out.write(json.dumps(result) + "\n")
    out.flush()
    return 1 if refused else 0
