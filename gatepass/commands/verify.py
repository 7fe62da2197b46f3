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
        "--apply",
        action="append",
        default=[],
        metavar="FILE",
        help="a signed trust list or revocation snapshot/delta to apply after the bundle's"
        " (repeat, applied in order); a refused one is reported on stderr and skipped",
    )
    parser.add_argument("--early", type=int, metavar="S", help="check the slot: early grace (s)")
    parser.add_argument("--late", type=int, metavar="S", help="check the slot: late grace (s)")
    parser.add_argument(
        "--presentation", choices=("required", "preferred", "static"), default="required",
        help="what a holder-bound permit needs (docs/presentation-format.md; default required)",
    )
    parser.add_argument(
        "--presentation-tolerance", type=int, default=30, metavar="S",
        help="seconds a presentation's time step may lie from --at (default 30)",
    )
    parser.add_argument(
        "--image", action="extend", nargs="+", metavar="FILE", help="decode QR codes from images"
    )
    parser.add_argument(
        "payloads", nargs="*", metavar="PAYLOAD", help="permit texts, or - for stdin"
    )
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


def load_trust(
    path: str, extra: list[str], *, now: float
) -> tuple[TrustStore, RevocationSet]:
    """Read a trust bundle, then apply ``extra`` signed documents; usage error when the
    bundle is unusable. A refused extra document is reported on stderr and skipped.

    Signers are checked valid at ``now``; versions follow the one monotonic rule
    (:func:`verifier.documents.check_newer`, inside ``TrustStore``/``RevocationSet``).
    """
    from gatepass.cli import UsageError
    from verifier.documents import (
        KIND_REVOCATION_DELTA,
        KIND_REVOCATION_SNAPSHOT,
        KIND_TRUST_LIST,
        read_document,
    )
    from verifier.errors import DocumentRefused, VerifierError
    from verifier.trust import TrustBundle

    try:
        bundle = TrustBundle.from_bytes(Path(path).read_bytes())
        store = bundle.store()
        revset = bundle.revocation_set(store, now=now)
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except VerifierError as exc:
        raise UsageError(f"trust file {path} unusable: {exc}") from None
    kinds = (KIND_TRUST_LIST, KIND_REVOCATION_SNAPSHOT, KIND_REVOCATION_DELTA)
    for name in extra:
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror}") from None
        try:
            kind = read_document(raw, kinds, store, now=now).kind
            version = store.apply(raw) if kind == KIND_TRUST_LIST else revset.apply(raw, now=now)
        except DocumentRefused as exc:
            print(f"gatepass: warning: {name} refused: {exc}", file=sys.stderr)
            continue
        print(f"gatepass: applied {kind} version {version} from {name}", file=sys.stderr)
    return store, revset


def _payloads(args: argparse.Namespace) -> Iterator[tuple[dict[str, Any], str | bytes | None]]:
    """(context for the output line, payload text or None when nothing was decoded)."""
    for item in args.payloads:
        if item == "-":
            yield from _stdin_lines()
        else:
            yield {}, item
    if args.image:
        from gate_agent.decode import availability_note, make_decoder
        from gatepass.cli import UsageError
        from hardware.errors import UnusableImage
        from hardware.image import quiet_opencv, read_image

        decoder = make_decoder("default")
        note = availability_note("default")
        if note:
            print(f"gatepass: note: {note}", file=sys.stderr, flush=True)
        quiet_opencv()
        for name in args.image:
            # The shared reader: regular files only, size and pixel limits from the
            # header before anything is decoded.
            try:
                frame = read_image(name, grayscale=True)
            except UnusableImage as exc:
                raise UsageError(f"cannot read image {exc}") from None
            codes = decoder.decode(frame)
            if not codes:
                yield {"image": name}, None
            for code in codes:
                yield {"image": name}, code.text


def _stdin_lines() -> Iterator[tuple[dict[str, Any], str | bytes | None]]:
    """Lines of stdin as bytes, never reading more than the size limit of one line: the
    first chunk of an over-long line goes to verify_at (which refuses it as too large)
    and the rest of that line is skipped."""
    from verifier.envelope import MAX_TEXT_LEN

    stream = sys.stdin.buffer
    while True:
        line = stream.readline(MAX_TEXT_LEN + 2)
        if not line:
            return
        if not line.endswith(b"\n") and len(line) > MAX_TEXT_LEN:
            while (rest := stream.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
            yield {}, line
            continue
        text = line.rstrip(b"\r\n")
        if text:
            yield {}, text


def verify_one(
    text: str | bytes | None,
    now: float,
    store: TrustStore,
    revset: RevocationSet,
    window: SlotWindow | None,
    *,
    presentation_policy: str = "required",
    presentation_tolerance_s: int = 30,
) -> dict[str, Any]:
    from verifier.errors import PermitRefused
    from verifier.verify import verify_at

    if text is None:
        return {"ok": False, "reason": "no_code", "detail": "no QR code found in the image"}
    try:
        permit = verify_at(text, now, trust=store, revocations=revset, window=window,
                           presentation_policy=presentation_policy,
                           presentation_tolerance_s=presentation_tolerance_s)
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
    if args.presentation_tolerance < 0:
        raise UsageError("--presentation-tolerance must be >= 0 seconds")
    store, revset = load_trust(args.trust, args.apply, now=now)
    refused = 0
    out = sys.stdout
    for context, text in _payloads(args):
        result = {**verify_one(text, now, store, revset, window,
                               presentation_policy=args.presentation,
                               presentation_tolerance_s=args.presentation_tolerance), **context}
        refused += not result["ok"]
        out.write(json.dumps(result) + "\n")
    out.flush()
    return 1 if refused else 0
