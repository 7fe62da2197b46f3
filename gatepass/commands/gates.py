"""``gatepass gates``: enrol gates, provision a site's gates in bulk, sign the gate registry.

- ``enrol`` runs ON the gate: it makes the gate's signing key (written 0600, never leaves
  the gate) and prints the public key and the one-line registry row for the operator.
- ``provision`` runs at the operator's desk for hundreds of gates: a CSV of gates in; the
  signed gate registry, the broker's users file, the aggregator workers' passwords and one
  bundle folder per gate out (gate.toml, trust.json, broker.password and, with
  ``--generate-keys``, gate.key).
- ``registry`` signs a new registry version from enrolment rows (``--add``) on top of the
  current one (``--from``), or shows one (``--show``).
- ``resolve`` closes a seq alarm (two devices spoke as one gate) keeping one event.

CSV columns (header row required): ``id,site,groups,mode[,types][,spki]``; ``groups`` and
``types`` are separated by spaces or ``;``; ``spki`` is the base64 DER public key that
``enrol`` printed (required unless ``--generate-keys``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from verifier.keys import SigningKey
    from verifier.registry import GateEntry

KEY_FILE = "gate.key"
ROW_FILE = "enrolment.json"
REGISTRY_FILE = "gates.registry"
SECRET_NOTE = """\
This folder is for gate {gate} ONLY. Copy it to {install} on that gate (mode 0700).
SECRET: broker.password{key} - anyone holding them can speak as this gate.
Not secret: gate.toml, trust.json.
"""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "gates", help="enrol gates, provision them in bulk, sign the gate registry",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gsub = parser.add_subparsers(dest="gates_command", metavar="ACTION", required=True)

    enrol = gsub.add_parser("enrol", help="on the gate: make its key, print its registry row")
    enrol.add_argument("--id", required=True, help="gate id (never reused)")
    enrol.add_argument("--site", required=True)
    enrol.add_argument("--group", action="append", default=[], help="gate group (repeat)")
    enrol.add_argument("--mode", required=True, choices=("entrance", "boarding", "counter"))
    enrol.add_argument("--alg", default="ES256", choices=("ES256", "EdDSA"))
    enrol.add_argument("--out", required=True, type=Path,
                       help="the gate's config directory: gate.key (0600) and enrolment.json")
    enrol.set_defaults(func=run_enrol)

    prov = gsub.add_parser("provision", help="a CSV of gates -> registry, broker users, bundles")
    prov.add_argument("--csv", required=True, type=Path)
    prov.add_argument("--keys", required=True, type=Path,
                      help="key directory of `gatepass keys new` (root.pem, trust.json)")
    prov.add_argument("--out", required=True, type=Path, help="empty or new directory")
    prov.add_argument("--generate-keys", action="store_true",
                      help="make each gate's key here (else the CSV's spki column from enrol)")
    prov.add_argument("--signer", type=Path, help="registry key PEM (default: KEYS/root.pem)")
    prov.add_argument("--version", type=int, default=1, help="registry version (default 1)")
    prov.add_argument("--workers", type=int, default=2, help="aggregator workers (default 2)")
    prov.add_argument("--broker-host", default="127.0.0.1")
    prov.add_argument("--broker-port", type=int, default=1883)
    prov.add_argument("--install-dir", default="/etc/gatepass",
                      help="where each bundle goes on its gate (paths in gate.toml)")
    prov.add_argument("--ledger", default="/var/lib/gatepass/ledger.db")
    prov.set_defaults(func=run_provision)

    reg = gsub.add_parser("registry", help="sign a new registry version, or show one")
    reg.add_argument("--keys", type=Path, help="key directory (root.pem, trust.json)")
    reg.add_argument("--from", dest="base", type=Path, help="current signed registry")
    reg.add_argument("--add", nargs="+", default=[], metavar="ROW",
                     help="enrolment.json files or JSON rows printed by enrol (replace by id)")
    reg.add_argument("--remove", nargs="+", default=[], metavar="GATE", help="retire gate ids")
    reg.add_argument("--signer", type=Path, help="registry key PEM (default: KEYS/root.pem)")
    reg.add_argument("--out", type=Path, help="where to write the new signed registry")
    reg.add_argument("--show", type=Path, help="print a signed registry (verified with --trust)")
    reg.add_argument("--trust", type=Path, help="trust.json (default: KEYS/trust.json)")
    reg.set_defaults(func=run_registry)

    res = gsub.add_parser("resolve", help="close a seq alarm keeping one event id")
    res.add_argument("--config", required=True, type=Path, help="central.toml")
    res.add_argument("--gate", required=True)
    res.add_argument("--seq", required=True, type=int)
    res.add_argument("--keep", required=True, metavar="EID",
                     help="the genuine event id (from the gate's ledger)")
    res.set_defaults(func=run_resolve)


# --- helpers ------------------------------------------------------------------------------


class GatesError(Exception):
    """A gates command cannot do what was asked; the message says why and what to do."""


def _fail(message: str) -> NoReturn:
    raise GatesError(message)


def _row(entry: GateEntry) -> dict[str, Any]:
    return {"id": entry.gate, "site": entry.site, "groups": list(entry.groups),
            "mode": entry.mode, "alg": entry.alg_name,
            "spki": base64.b64encode(entry.spki()).decode()}


def _entry_from_row(row: Mapping[str, Any], where: str) -> GateEntry:
    from verifier.errors import GatepassError
    from verifier.registry import make_entry

    try:
        groups = row.get("groups") or []
        if isinstance(groups, str):
            groups = groups.replace(";", " ").split()
        spki = base64.b64decode(str(row["spki"]), validate=True)
        return make_entry(str(row["id"]), str(row["site"]), groups, str(row["mode"]), spki,
                          str(row.get("alg") or "ES256"))
    except (KeyError, binascii.Error, ValueError, GatepassError) as exc:
        _fail(f"{where}: not a usable gate row ({exc})")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _signer(keys: Path | None, signer: Path | None) -> SigningKey:
    from verifier.keys import SigningKey

    path = signer or (keys / "root.pem" if keys is not None else None)
    if path is None:
        _fail("give --keys (root.pem) or --signer (a registry-role key)")
    try:
        return SigningKey.from_pem(path.read_bytes())
    except OSError as exc:
        _fail(f"cannot read signing key {path}: {exc.strerror}")


def _trust(path: Path) -> Any:
    from verifier.trust import TrustBundle

    try:
        return TrustBundle.from_bytes(path.read_bytes()).store()
    except OSError as exc:
        _fail(f"cannot read trust bundle {path}: {exc.strerror}")


def _sign(entries: Iterable[GateEntry], version: int, key: SigningKey, trust_file: Path) -> bytes:
    """Sign and check the result opens with the gates' own trust bundle (right signer)."""
    from verifier.errors import GatepassError
    from verifier.registry import open_registry, sign_registry

    now = time.time()
    raw = sign_registry(entries, version, key, issued_at=int(now))
    try:
        open_registry(raw, _trust(trust_file), now=now)
    except GatepassError as exc:
        _fail(f"the signed registry does not verify with {trust_file}: {exc} (use root.pem or"
              " a key the trust list gives the 'registry' role)")
    return raw


# --- enrol --------------------------------------------------------------------------------


def run_enrol(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from verifier.keys import SigningKey

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    key_path = out / KEY_FILE
    if key_path.exists():
        _fail(f"{key_path} exists: a gate keeps its key; enrol a replaced gate under a new id")
    key = SigningKey.generate(args.alg)
    entry = _entry_from_row({"id": args.id, "site": args.site, "groups": args.group,
                             "mode": args.mode, "alg": args.alg,
                             "spki": base64.b64encode(key.public_der()).decode()}, "enrol")
    _write_private(key_path, key.to_pem())
    row = json.dumps(_row(entry), separators=(",", ":"))
    _write_public(out / ROW_FILE, (row + "\n").encode())
    print(f"gate {entry.gate} enrolled; private key {key_path} (mode 0600, never copy it)")
    print("public key:")
    print(key.public().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode().rstrip())
    print("registry row (give it to the operator: gatepass gates registry --add ...):")
    print(row)
    print("CSV: " + ",".join([entry.gate, entry.site, " ".join(entry.groups), entry.mode, "",
                              base64.b64encode(entry.spki()).decode()]))
    return 0


# --- provision ----------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    except (UnicodeDecodeError, csv.Error) as exc:
        _fail(f"{path} is not a UTF-8 CSV: {exc}")
    if not rows:
        _fail(f"{path} lists no gates (a header row id,site,groups,mode[,types][,spki] first)")
    missing = {"id", "site", "groups", "mode"} - set(rows[0])
    if missing:
        _fail(f"{path} lacks columns {', '.join(sorted(missing))}")
    return rows


def _gate_toml(entry: GateEntry, types: list[str], args: argparse.Namespace) -> str:
    install = args.install_dir.rstrip("/")
    return "\n".join([
        f'gate = "{entry.gate}"',
        f'site = "{entry.site}"',
        f'mode = "{entry.mode}"',
        f'ledger = "{args.ledger}"',
        f'key_file = "{install}/{KEY_FILE}"',
        "",
        "[permits]",
        f"types = {json.dumps(types)}",
        f"gate_groups = {json.dumps(list(entry.groups))}",
        "",
        "[trust]",
        f'bundle = "{install}/trust.json"',
        "",
        "[broker]",
        f'host = "{args.broker_host}"',
        f"port = {int(args.broker_port)}",
        f'username = "{entry.gate}"',
        f'password_file = "{install}/broker.password"',
        "",
    ])


def run_provision(args: argparse.Namespace) -> int:
    import tomllib

    from central.provisioning.broker import make_users, write_broker_files, write_secrets
    from gate_agent.config import config_from_dict
    from verifier.keys import SigningKey

    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        _fail(f"{out} is not empty: provision into a new directory")
    trust_file = args.keys / "trust.json"
    try:
        trust_bytes = trust_file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {trust_file}: {exc.strerror}")
    signer = _signer(args.keys, args.signer)
    rows = _read_csv(args.csv)
    entries: list[GateEntry] = []
    keys: dict[str, SigningKey] = {}
    types: dict[str, list[str]] = {}
    for n, row in enumerate(rows, 2):
        where = f"{args.csv}:{n}"
        spki = (row.get("spki") or "").strip()
        if args.generate_keys:
            if spki:
                _fail(f"{where}: has an spki but --generate-keys makes the keys here")
            key = SigningKey.generate()
            keys[row["id"]] = key
            spki = base64.b64encode(key.public_der()).decode()
        elif not spki:
            _fail(f"{where}: no spki: enrol the gate first (gatepass gates enrol) or pass"
                  " --generate-keys")
        entry = _entry_from_row({**row, "spki": spki}, where)
        entries.append(entry)
        types[entry.gate] = (row.get("types") or "umrah").replace(";", " ").split()
    ids = [e.gate for e in entries]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        _fail(f"{args.csv}: gate ids listed twice: {', '.join(dupes[:5])}")
    raw = _sign(entries, args.version, signer, trust_file)
    users = make_users(ids, args.workers, sites={e.gate: e.site for e in entries})
    out.mkdir(parents=True, exist_ok=True)
    _write_public(out / REGISTRY_FILE, raw)
    write_broker_files(users, out / "broker")
    write_secrets([u for u in users if u.role == "aggregator"], out / "central-secrets")
    passwords = {u.username: u.password for u in users}
    for entry in entries:
        gdir = out / "gates" / entry.gate
        gdir.mkdir(parents=True, mode=0o700)
        toml = _gate_toml(entry, types[entry.gate], args)
        config_from_dict(tomllib.loads(toml))  # refuse to write a config the agent refuses
        _write_public(gdir / "gate.toml", toml.encode())
        _write_public(gdir / "trust.json", trust_bytes)
        _write_private(gdir / "broker.password", (passwords[entry.gate] + "\n").encode())
        if entry.gate in keys:
            _write_private(gdir / KEY_FILE, keys[entry.gate].to_pem())
        _write_public(gdir / "README.txt", SECRET_NOTE.format(
            gate=entry.gate, install=args.install_dir,
            key=" and gate.key" if entry.gate in keys else "").encode())
    print(f"{len(entries)} gates at {len({e.site for e in entries})} sites: registry v"
          f"{args.version} {out / REGISTRY_FILE}; broker users {out / 'broker'}; aggregator"
          f" passwords {out / 'central-secrets'}; bundles {out / 'gates'}/<id>/")
    return 0


# --- registry -----------------------------------------------------------------------------


def _rows_from(arg: str) -> list[dict[str, Any]]:
    text = arg
    if not arg.lstrip().startswith("{"):
        try:
            text = Path(arg).read_text(encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot read {arg}: {exc.strerror}")
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as exc:
                _fail(f"{arg}: not a JSON row ({exc})")
            if not isinstance(row, dict):
                _fail(f"{arg}: a row must be a JSON object")
            out.append(row)
    return out


def run_registry(args: argparse.Namespace) -> int:
    from verifier.errors import GatepassError
    from verifier.registry import open_registry

    trust_file = args.trust or (args.keys / "trust.json" if args.keys else None)
    if args.show is not None:
        if trust_file is None:
            _fail("--show needs --trust (or --keys) to verify the registry")
        try:
            reg = open_registry(args.show.read_bytes(), _trust(trust_file), now=time.time())
        except OSError as exc:
            _fail(f"cannot read {args.show}: {exc.strerror}")
        except GatepassError as exc:
            _fail(f"{args.show} is refused: {exc}")
        print(json.dumps({"version": reg.version, "gates": [_row(e) for e in sorted(
            reg.gates.values(), key=lambda e: e.gate)]}, indent=1))
        return 0
    if args.out is None or trust_file is None:
        _fail("give --out and --keys (or --signer and --trust) to sign a registry")
    gates: dict[str, GateEntry] = {}
    version = 1
    if args.base is not None:
        try:
            base = open_registry(args.base.read_bytes(), _trust(trust_file), now=time.time())
        except OSError as exc:
            _fail(f"cannot read {args.base}: {exc.strerror}")
        except GatepassError as exc:
            _fail(f"{args.base} is refused: {exc}")
        gates, version = dict(base.gates), base.version + 1
    for arg in args.add:
        for row in _rows_from(arg):
            entry = _entry_from_row(row, arg)
            gates[entry.gate] = entry
    for gate in args.remove:
        if gates.pop(gate, None) is None:
            _fail(f"--remove {gate}: not in the registry")
    if not args.add and not args.remove:
        _fail("nothing to change: give --add ROW... or --remove GATE...")
    raw = _sign(gates.values(), version, _signer(args.keys, args.signer), trust_file)
    _write_public(args.out, raw)
    print(f"gate registry v{version}: {len(gates)} gates -> {args.out} (give it to the centre:"
          " [registry] file, or POST it to /api/documents)")
    return 0


# --- resolve ------------------------------------------------------------------------------


def run_resolve(args: argparse.Namespace) -> int:
    from central.config import load_config
    from central.store import open_store

    config = load_config(args.config)
    with open_store(config.store.url) as store:
        what = store.resolve_seq_alarm(args.gate, args.seq, args.keep, now=time.time())
    print(f"gate {args.gate} seq {args.seq}: {what}", file=sys.stdout)
    return 0
