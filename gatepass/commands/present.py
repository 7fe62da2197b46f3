"""``gatepass present``: the presentation text a holder's wallet would show at a given time.

``--permit FILE`` holds a ``GP1:`` text or a JSON line from ``gatepass issue`` (its
``payload``; the first line of a ``permits.jsonl``); ``--key`` is the holder's P-256
private key (PEM, PKCS#8 or SEC1). Prints one ``GPP1:`` line. For tests and kiosks;
a pilgrim's phone does the same in the wallet (wallet/gpp.js).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Largest --permit file read (a permits.jsonl line is well under 2 KiB).
_MAX_FILE = 64 * 1024


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "present",
        help="print the live presentation (GPP1:) of a holder-bound permit at a time",
        description=__doc__,
    )
    parser.add_argument("--permit", required=True, metavar="FILE", help="GP1: text or JSON line")
    parser.add_argument("--key", required=True, metavar="PRIVATE_KEY.pem", help="holder key")
    parser.add_argument("--at", default="now", metavar="ISO8601", help="time (default now)")
    parser.add_argument("--period", type=int, default=15, help="time step in seconds (5-60)")
    parser.set_defaults(func=run)


def permit_text(data: str) -> str:
    """The ``GP1:`` text in a file's content: the text itself or a JSON line's payload."""
    from gatepass.cli import UsageError

    text = data.strip()
    if text.startswith("{"):
        try:
            payload = json.loads(text.splitlines()[0]).get("payload")
        except (ValueError, AttributeError):
            payload = None
        if not isinstance(payload, str):
            raise UsageError("the JSON line has no \"payload\" string (a gatepass issue line)")
        text = payload.strip()
    if not text.startswith("GP1:"):
        raise UsageError("the permit file holds neither a GP1: text nor a gatepass issue line")
    return text.splitlines()[0]


def run(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from gatepass.cli import UsageError
    from gatepass.commands.verify import parse_time
    from verifier import envelope, presentation
    from verifier.errors import PermitRefused

    if not presentation.MIN_PERIOD_S <= args.period <= presentation.MAX_PERIOD_S:
        raise UsageError(
            f"--period must be {presentation.MIN_PERIOD_S}-{presentation.MAX_PERIOD_S} seconds"
        )
    try:
        with open(args.permit, "rb") as fh:
            data = fh.read(_MAX_FILE + 1)
        pem = Path(args.key).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if len(data) > _MAX_FILE:
        raise UsageError(f"{args.permit} is larger than {_MAX_FILE} bytes: not a permit file")
    text = permit_text(data.decode("utf-8", errors="replace"))
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise UsageError(f"{args.key} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UsageError(f"{args.key} is not a P-256 (ECDSA secp256r1) private key")
    try:
        cose = envelope.unwrap(text)  # a zlib-form permit is presented inflated
    except PermitRefused as exc:
        raise UsageError(f"{args.permit}: not a readable permit ({exc})") from None
    _warn_unless_bound(cose, key)
    now = parse_time(args.at)
    sys.stdout.write(presentation.make_presentation(cose, key, now, args.period) + "\n")
    return 0


def _warn_unless_bound(cose_bytes: bytes, key: Any) -> None:
    """A note on stderr when ``key`` is not the permit's cnf key (gates would refuse)."""
    import cbor2
    from cryptography.hazmat.primitives import serialization

    from verifier import cose
    from verifier.permit import CLAIM_CNF, cnf_claim

    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    try:  # unverified: only to warn; the gate verifies
        unverified_claims = cbor2.loads(cose.split_sign1_strict(cose_bytes)[1])
        unverified_cnf = unverified_claims.get(CLAIM_CNF)
    except Exception:
        unverified_cnf = None
    if unverified_cnf is None:
        print("gatepass: note: this permit is not holder-bound (no cnf): gates refuse "
              "its presentation as bad_presentation", file=sys.stderr)
    elif unverified_cnf != cnf_claim(point):
        print("gatepass: note: --key is not this permit's holder key: gates refuse "
              "the presentation as bad_presentation", file=sys.stderr)
