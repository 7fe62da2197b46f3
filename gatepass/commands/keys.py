"""``gatepass keys``: make and maintain a key directory and the gates' trust bundle.

A key directory holds private keys (PEM, mode 0600: ``root.pem``, one per issuer key,
``central.pem``, ``revoker.pem``), ``keys.json`` (what each key is) and ``trust.json``,
the trust bundle gates load (root public key, signed trust list, revocations).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatepass.keyfiles import write_files

if TYPE_CHECKING:
    from verifier.keyring import KeyRing


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "keys", help="create keys, rotate them, revoke permits", description=__doc__
    )
    keys_sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    new = keys_sub.add_parser("new", help="create root, issuer, central and revocation keys")
    new.add_argument("directory", help="where to write keys (created; must be empty)")
    new.add_argument("--issuer", default="moh", help="issuer name in permits (default moh)")
    new.add_argument(
        "--alg",
        action="append",
        choices=("ES256", "EdDSA"),
        help="issuer key algorithm, repeat for several keys (default ES256)",
    )
    new.add_argument("--sites", default="", help="comma-separated sites the issuer may sign")
    new.add_argument("--types", default="", help="comma-separated permit types (default any)")
    new.add_argument("--valid-from", default=None, metavar="ISO8601", help="default: now")
    new.add_argument("--valid-days", type=int, default=365, help="issuer key validity (days)")
    new.set_defaults(func=run_new)

    rotate = keys_sub.add_parser("rotate", help="add an issuer key; optionally retire one")
    rotate.add_argument("directory")
    rotate.add_argument("--name", required=True, help="name of the new key")
    rotate.add_argument("--alg", choices=("ES256", "EdDSA"), default="ES256")
    rotate.add_argument("--retire", metavar="NAME", help="key that stops signing new permits")
    rotate.add_argument(
        "--at", default="now", metavar="ISO8601", help="when the new key starts / the old stops"
    )
    rotate.add_argument("--valid-days", type=int, default=365)
    rotate.set_defaults(func=run_rotate)

    revoke = keys_sub.add_parser("revoke", help="revoke permits by id (hex) into trust.json")
    revoke.add_argument("directory")
    revoke.add_argument("permit_ids", nargs="+", metavar="PERMIT_ID", help="32 hex digits")
    revoke.add_argument(
        "--snapshot", action="store_true", help="write one snapshot instead of adding a delta"
    )
    revoke.set_defaults(func=run_revoke)

    show = keys_sub.add_parser("show", help="print what a trust bundle holds (JSON)")
    show.add_argument("trust_file")
    show.set_defaults(func=run_show)


def _csv(text: str) -> tuple[str, ...] | None:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    return items or None


def load_directory(directory: str) -> KeyRing:
    import time

    from gatepass.cli import UsageError
    from verifier.errors import VerifierError
    from verifier.keyring import load_keyring

    root = Path(directory)
    if not (root / "keys.json").is_file():
        raise UsageError(f"{root} is not a key directory (no keys.json); run gatepass keys new")
    files = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    try:
        return load_keyring(files, now=time.time())
    except VerifierError as exc:
        raise UsageError(f"key directory {root}: {exc}") from None


def run_new(args: argparse.Namespace) -> int:
    from gatepass.cli import UsageError
    from gatepass.commands.verify import parse_time
    from verifier.keyring import KeyRing

    out = Path(args.directory)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty; choose a new directory (keys are never overwritten)")
    if args.valid_days < 1:
        raise UsageError("--valid-days must be at least 1")
    start = int(parse_time(args.valid_from or "now"))
    sites = _csv(args.sites)
    # Fresh keys from the operating system's random source: the product's KeyRing, not
    # the tests' seeded Sandbox.
    sb = KeyRing.create(
        sites=sites or (),
        issuer=args.issuer,
        issuer_algs=tuple(dict.fromkeys(args.alg or ["ES256"])),
        ptypes=_csv(args.types),
        key_window=(start, start + args.valid_days * 86400),
    )
    write_files(out, sb.bundle_files())
    print(json.dumps(_summary(sb, out)))
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    from gatepass.cli import UsageError
    from gatepass.commands.verify import parse_time

    sb = load_directory(args.directory)
    at = int(parse_time(args.at))
    if args.name in sb.specs:
        raise UsageError(f"a key named {args.name!r} exists; pick another --name")
    if args.retire is not None:
        spec = sb.specs.get(args.retire)
        if spec is None or "permit" not in spec.roles:
            raise UsageError(f"no issuer key named {args.retire!r} to retire")
        spec.not_after = at
    base = next((s for s in sb.specs.values() if "permit" in s.roles), None)
    sb.add_issuer(
        args.name,
        args.alg,
        ptypes=None if base is None else base.ptypes,
        sites=None if base is None else base.sites,
        not_before=at,
        not_after=at + args.valid_days * 86400,
    )
    if base is not None and base.sites is None:
        sb.specs[args.name].sites = None
    sb.publish_trust_list()
    write_files(Path(args.directory), sb.bundle_files())
    print(json.dumps(_summary(sb, Path(args.directory))))
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from gatepass.cli import UsageError

    ids = []
    for text in args.permit_ids:
        try:
            pid = bytes.fromhex(text)
        except ValueError:
            pid = b""
        if len(pid) != 16:
            raise UsageError(f"permit id {text!r} must be 32 hex digits (the permit_id field)")
        ids.append(pid)
    sb = load_directory(args.directory)
    if args.snapshot:
        sb.revocations(ids)
    else:
        sb.revoke(*ids)
    write_files(Path(args.directory), {"trust.json": sb.bundle().to_bytes()})
    print(json.dumps({"revocation_version": sb.revocation_version, "revoked": len(sb.revoked)}))
    return 0


def run_show(args: argparse.Namespace) -> int:
    import time

    from gatepass.commands.verify import load_trust

    store, revset = load_trust(args.trust_file, [], now=time.time())
    doc = {
        "root_kid": store.root.kid.hex(),
        "trust_list_version": store.version,
        "revocation_version": revset.version,
        "revoked": len(revset),
        "keys": [
            {
                "kid": k.kid.hex(),
                "alg": k.alg_name,
                "issuer": k.issuer,
                "roles": sorted(k.roles),
                "types": None if k.ptypes is None else sorted(k.ptypes),
                "sites": None if k.sites is None else sorted(k.sites),
                "nbf": k.not_before,
                "exp": k.not_after,
                "until": k.verify_until,
            }
            for k in store.keys
        ],
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def _summary(sb: KeyRing, out: Path) -> dict[str, Any]:
    return {
        "directory": str(out),
        "trust": str(out / "trust.json"),
        "trust_list_version": sb.trust_version,
        "root_kid": sb.root.kid.hex(),
        "keys": {
            n: {"kid": s.key.kid.hex(), "alg": s.key.alg, "roles": list(s.roles)}
            for n, s in sb.specs.items()
        },
    }
