"""Broker users and the Mosquitto files ``deploy/mosquitto/mosquitto.conf`` loads.

The shipped broker authenticates and authorises with Mosquitto's dynamic-security
plugin, not with ``password_file``/``acl_file``: Mosquitto 2.0's ``acl_file`` never checks
a SUBSCRIBE, so a gate could join the aggregators' shared subscription and swallow event
batches (see ``deploy/mosquitto/README.md`` for the measurements). This module writes that
plugin's JSON file, with:

- one client per gate, username = gate id, bound to the client id = username (the broker
  also sets ``use_username_as_clientid``); it may publish only its own
  ``gp/v1/gates/<id>/{events,status,health}`` and subscribe only to what a gate reads: its
  own ``ack`` and ``config``, the trust list, revocations, time beacons and its site's
  used-permit stream (every site's when the site is not given);
- one client per aggregator worker, ``gp-central-1`` .. ``gp-central-N``: the shared
  subscription ``$share/agg/gp/v1/gates/+/events``, every gate's status and health, and
  the downlink topics to write;
- default deny for publish, subscribe and delivery; no admin user (the ``$CONTROL`` API is
  closed: change users by writing the file again and restarting the broker).

Passwords are hashed like ``mosquitto_passwd`` and the plugin do (PBKDF2-HMAC-SHA512,
12-byte salt, 101 iterations by default). Usage::

    users = make_users(["gate-a1", "gate-a2"], aggregator_workers=2,
                       sites={"gate-a1": "haram", "gate-a2": "haram"})
    write_broker_files(users, Path("/etc/mosquitto/gatepass"))   # dynamic-security.json
    write_secrets(users, Path("./secrets"))   # secrets/<user>: copy each to its owner only

Command line (what ``deploy/mosquitto/make-passwd.sh`` runs)::

    python -m central.provisioning.broker OUT_DIR SECRETS_DIR [--workers N] GATE[=SITE]...
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from central.errors import CentralError
from sync import topics
from sync.errors import TopicError

#: The file mosquitto.conf names with ``plugin_opt_config_file``.
DYNSEC_FILE: Final = "dynamic-security.json"
#: Aggregator worker usernames (and client ids) are this prefix and 1..N.
AGGREGATOR_PREFIX: Final = "gp-central-"
#: Iterations Mosquitto 2.0 uses by default (mosquitto_passwd and the dynsec plugin). Few,
#: but the passwords are 256-bit random secrets: no iteration count matters against those.
PBKDF2_ITERATIONS: Final = 101
SALT_BYTES: Final = 12
MAX_AGGREGATOR_WORKERS: Final = 64

Role = Literal["gate", "aggregator"]


class ProvisioningError(CentralError, ValueError):
    """Broker users or files cannot be made as asked (bad id, duplicate user, unwritable)."""


@dataclass(frozen=True)
class BrokerUser:
    """One broker login. The client id the broker gives it is its username."""

    username: str
    password: str = field(repr=False)
    role: Role
    #: a gate's site: it reads only that site's used-permit stream (None: every site's)
    site: str | None = None

    def __post_init__(self) -> None:
        try:
            topics.check_id(self.username, "broker username")
            if self.site is not None:
                topics.check_id(self.site, "site")
        except TopicError as exc:
            raise ProvisioningError(str(exc)) from None
        if self.role not in ("gate", "aggregator"):
            raise ProvisioningError(f"unknown broker role {self.role!r}")
        if self.role == "gate" and self.username.startswith(AGGREGATOR_PREFIX):
            raise ProvisioningError(
                f"gate id {self.username!r} must not start with {AGGREGATOR_PREFIX!r}")
        if not self.password or any(c in self.password for c in "\r\n\0"):
            raise ProvisioningError(f"password of {self.username!r} is empty or has a line break")

    @property
    def client_id(self) -> str:
        return self.username


def new_password() -> str:
    """A random broker password (32 bytes of entropy, URL-safe text)."""
    return secrets.token_urlsafe(32)


def aggregator_username(n: int) -> str:
    """``gp-central-<n>``: worker ``n``'s username and client id (1-based)."""
    return f"{AGGREGATOR_PREFIX}{n}"


def make_users(
    gate_ids: Sequence[str],
    aggregator_workers: int = 2,
    *,
    sites: Mapping[str, str] | None = None,
    passwords: Mapping[str, str] | None = None,
) -> list[BrokerUser]:
    """Gate users (username = gate id) then ``gp-central-1..N``, each with a password.

    ``sites`` maps gate id -> site (the gate reads only that site's used-permit stream);
    ``passwords`` keeps known passwords (username -> password) instead of new random ones.
    """
    if not 1 <= aggregator_workers <= MAX_AGGREGATOR_WORKERS:
        raise ProvisioningError(
            f"aggregator_workers must be 1..{MAX_AGGREGATOR_WORKERS}, not {aggregator_workers}")
    known = dict(passwords or {})
    site_of = dict(sites or {})
    unknown = sorted(set(site_of) - set(gate_ids))
    if unknown:
        raise ProvisioningError(f"sites given for unknown gates: {', '.join(unknown[:5])}")
    users = [BrokerUser(g, known.get(g) or new_password(), "gate", site_of.get(g))
             for g in gate_ids]
    users += [BrokerUser(name, known.get(name) or new_password(), "aggregator")
              for name in (aggregator_username(n) for n in range(1, aggregator_workers + 1))]
    _check_unique(users)
    return users


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> tuple[str, str]:
    """(base64 hash, base64 salt): PBKDF2-HMAC-SHA512 as Mosquitto 2.0 computes it."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return base64.b64encode(digest).decode("ascii"), base64.b64encode(salt).decode("ascii")


def password_file_line(user: BrokerUser, *, salt: bytes | None = None) -> str:
    """The user's line in ``mosquitto_passwd`` format (``user:$7$101$salt$hash``)."""
    digest, salt_b64 = hash_password(user.password, salt=salt)
    return f"{user.username}:$7${PBKDF2_ITERATIONS}${salt_b64}${digest}"


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def _read(topic: str) -> list[dict[str, Any]]:
    # Subscribing to exactly this topic, and receiving what is published there.
    return [_acl("subscribeLiteral", topic), _acl("publishClientReceive", topic)]


GATE_COMMON_ROLE: Final = "gp-gate"
AGGREGATOR_ROLE: Final = "gp-aggregator"


def _gate_role(user: BrokerUser) -> dict[str, Any]:
    g = user.username
    acls = [_acl("publishClientSend", topics.gate_topic(g, leaf))
            for leaf in ("events", "status", "health")]
    acls += _read(topics.ack(g)) + _read(topics.config(g))
    if user.site is not None:
        acls += _read(topics.site_used(user.site))
    else:
        pattern = f"{topics.PREFIX}/sites/+/used"
        acls += [_acl("subscribePattern", pattern), _acl("publishClientReceive", pattern)]
    return {"rolename": f"gp-gate-{g}", "acls": acls}


def _common_gate_role() -> dict[str, Any]:
    acls: list[dict[str, Any]] = []
    for topic in (topics.TRUST, topics.REVOCATION_SNAPSHOT, topics.REVOCATION_DELTA,
                  topics.TIME):
        acls += _read(topic)
    return {"rolename": GATE_COMMON_ROLE, "textname": "what every gate reads", "acls": acls}


def _aggregator_role() -> dict[str, Any]:
    gates = f"{topics.PREFIX}/gates/+"
    acls = [
        # Only the shared form: a worker never receives every batch twice.
        _acl("subscribePattern", topics.SHARED_EVENTS),
        _acl("subscribePattern", topics.ALL_STATUS),
        _acl("subscribePattern", topics.ALL_HEALTH),
    ]
    acls += [_acl("publishClientReceive", f"{gates}/{leaf}")
             for leaf in ("events", "status", "health")]
    acls += [_acl("publishClientSend", t) for t in (
        f"{gates}/ack", f"{gates}/config", f"{topics.PREFIX}/sites/+/used", topics.TRUST,
        topics.REVOCATION_SNAPSHOT, topics.REVOCATION_DELTA, topics.TIME)]
    return {"rolename": AGGREGATOR_ROLE, "textname": "central aggregator workers", "acls": acls}


def _check_unique(users: Iterable[BrokerUser]) -> None:
    seen: set[str] = set()
    for u in users:
        if u.username in seen:
            raise ProvisioningError(f"broker user {u.username!r} is listed twice")
        seen.add(u.username)


def dynsec_config(users: Sequence[BrokerUser]) -> dict[str, Any]:
    """The dynamic-security plugin's JSON document for ``users`` (fresh salts each call)."""
    _check_unique(users)
    clients: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = [_common_gate_role(), _aggregator_role()]
    for u in users:
        digest, salt = hash_password(u.password)
        if u.role == "gate":
            role = _gate_role(u)
            roles.append(role)
            client_roles = [GATE_COMMON_ROLE, role["rolename"]]
        else:
            client_roles = [AGGREGATOR_ROLE]
        clients.append({
            "username": u.username,
            "textname": f"gatepass {u.role}",
            # Belt and braces with use_username_as_clientid: the plugin itself refuses a
            # login under any other client id.
            "clientid": u.client_id,
            "password": digest,
            "salt": salt,
            "iterations": PBKDF2_ITERATIONS,
            "roles": [{"rolename": r, "priority": 0} for r in client_roles],
        })
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise ProvisioningError(f"cannot write {path}: {exc.strerror}") from None


def write_broker_files(users: Sequence[BrokerUser], out_dir: Path) -> list[Path]:
    """Write ``out_dir/dynamic-security.json`` (mode 0600, hashes only); return the paths.

    These are exactly the files the shipped mosquitto.conf reads besides certificates.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProvisioningError(f"cannot create {out_dir}: {exc.strerror}") from None
    path = out_dir / DYNSEC_FILE
    _write_private(path, json.dumps(dynsec_config(users), indent=2) + "\n")
    return [path]


def write_secrets(users: Sequence[BrokerUser], out_dir: Path) -> list[Path]:
    """Write each password to ``out_dir/<username>`` (mode 0600), for
    ``BrokerConfig.password_file``. Copy each file to its own gate or worker only."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ProvisioningError(f"cannot create {out_dir}: {exc.strerror}") from None
    paths = []
    for u in users:
        path = out_dir / u.username
        _write_private(path, u.password + "\n")
        paths.append(path)
    return paths


def read_secrets(secrets_dir: Path) -> dict[str, str]:
    """username -> password from a directory :func:`write_secrets` wrote (missing: empty)."""
    found: dict[str, str] = {}
    d = Path(secrets_dir)
    if not d.is_dir():
        return found
    for path in sorted(d.iterdir()):
        if path.is_file() and topics.ID_RE.match(path.name):
            lines = path.read_text(encoding="utf-8").splitlines()
            if lines and lines[0]:
                found[path.name] = lines[0]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m central.provisioning.broker",
        description="Write the broker's dynamic-security.json and one secret file per user;"
        " known secrets in SECRETS_DIR are kept.")
    p.add_argument("out_dir", type=Path, help="where dynamic-security.json goes")
    p.add_argument("secrets_dir", type=Path, help="one password file per user (kept if present)")
    p.add_argument("gates", nargs="+", metavar="GATE[=SITE]", help="gate ids, with their site")
    p.add_argument("--workers", type=int, default=2, help="aggregator workers (default 2)")
    args = p.parse_args(argv)
    try:
        gate_ids: list[str] = []
        sites: dict[str, str] = {}
        for item in args.gates:
            gate, sep, site = item.partition("=")
            gate_ids.append(gate)
            if sep:
                sites[gate] = site
        users = make_users(gate_ids, args.workers, sites=sites,
                           passwords=read_secrets(args.secrets_dir))
        written = write_broker_files(users, args.out_dir)
        write_secrets(users, args.secrets_dir)
    except (ProvisioningError, OSError, UnicodeDecodeError) as exc:
        print(f"gatepass: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {written[0]} for {len(users)} users (secrets in {args.secrets_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
