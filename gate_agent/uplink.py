"""Wire a :class:`GateAgent` to ``sync.GateSync``: events up, signed documents down.

Downlink items arrive verified (``sync.downlink``); the callbacks here only check the
body's shape and hand the data to the agent. A malformed body is logged and dropped:
it can never stop the link thread or the gate.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gate_agent.agent import GateAgent
from gate_agent.config import config_from_dict
from gate_agent.errors import ConfigError
from sync.downlink import DownlinkItem
from sync.facade import GateSync
from verifier.documents import read_document
from verifier.errors import DocumentRefused, KeyUnusable, Reason
from verifier.keys import SigningKey

log = logging.getLogger(__name__)

_PH = re.compile(r"^[0-9a-f]{32}\Z")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
#: Rule sections the centre may change remotely; identity, files and devices stay local.
REMOTE_SECTIONS = frozenset(
    {"permits", "passback", "capacity", "reentry", "group", "boarding", "debounce_s"}
)


def used_items(body: Any) -> list[tuple[str, str, float]]:
    """``{"site": S, "used": [[ph, gate, t], ...]}`` -> valid (ph, gate, t) rows."""
    rows = body.get("used") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise ValueError("used_permits body needs a 'used' list")
    out = []
    for row in rows:
        if (
            isinstance(row, list) and len(row) == 3
            and isinstance(row[0], str) and _PH.match(row[0])
            and isinstance(row[1], str) and _ID.match(row[1])
            and isinstance(row[2], (int, float)) and not isinstance(row[2], bool)
            and math.isfinite(row[2])
        ):
            out.append((row[0], row[1], float(row[2])))
    return out


def remote_config(agent: GateAgent, body: Any) -> None:
    """Apply a signed gate config: rule sections only, validated like the local file."""
    if not isinstance(body, dict):
        raise ConfigError("gate config body must be a map")
    body = {k: v for k, v in body.items() if k != "gate"}
    unknown = set(body) - REMOTE_SECTIONS
    if unknown:
        raise ConfigError(f"gate config may not change {sorted(unknown)} remotely")
    current = agent.config.model_dump(mode="json", exclude_none=True)
    current.update(body)
    agent.reload_config(config_from_dict(current))


class _Callbacks:
    def __init__(self, agent: GateAgent) -> None:
        self.agent = agent

    def _guard(self, kind: str, fn: Any, item: DownlinkItem) -> None:
        try:
            fn(item)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("downlink %s v%d not applied: %s", kind, item.version, exc)
            raise

    def _save(self, line: str, item: DownlinkItem) -> None:
        # Kept in the ledger file so a gate restarted without network still knows it.
        self.agent.ledger.save_document(line=line, kind=item.kind, version=item.version,
                                        raw=item.raw)

    def trust_list(self, item: DownlinkItem) -> None:
        # sync installed it into the agent's TrustStore already (same object).
        self._save("trust_list", item)
        self.agent.on_trust_changed()

    def revocations(self, item: DownlinkItem) -> None:
        def apply(i: DownlinkItem) -> None:
            self.agent.on_revocations(i.raw)
            self._save("revocations", i)

        self._guard("revocations", apply, item)

    def time_beacon(self, item: DownlinkItem) -> None:
        def apply(i: DownlinkItem) -> None:
            t = i.body.get("t") if isinstance(i.body, dict) else None
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                raise ValueError("time beacon body needs a number 't'")
            self.agent.on_time_beacon(float(t))

        self._guard("time_beacon", apply, item)

    def config(self, item: DownlinkItem) -> None:
        def apply(i: DownlinkItem) -> None:
            remote_config(self.agent, i.body)
            self._save("gate_config", i)

        self._guard("gate_config", apply, item)

    def used(self, item: DownlinkItem) -> None:
        self._guard("used_permits", lambda i: self.agent.on_used_permits(used_items(i.body)),
                    item)


def restore_documents(agent: GateAgent) -> dict[str, int]:
    """Re-apply the downlink documents saved in the ledger; return versions per line.

    Each is verified again. One that is refused (older than the bundle's, or signed by a
    key no longer trusted) is skipped and logged: the gate starts anyway.
    """
    versions: dict[str, int] = {}
    for line, kind, version, raw in agent.ledger.documents():
        try:
            if line == "trust_list":
                agent.trust.apply_trust_list(raw)
            elif line == "revocations":
                agent.trust.apply_revocations(raw)
            elif line == "gate_config":
                remote_config(
                    agent,
                    read_document(raw, (kind,), agent.trust.store, now=agent.trust.clock()).body,
                )
            else:
                continue
        except (DocumentRefused, ConfigError) as exc:
            log.warning("saved %s v%d not re-applied: %s", line, version, exc)
            if not (isinstance(exc, DocumentRefused) and exc.reason == Reason.ROLLBACK):
                continue
        versions[line] = max(versions.get(line, 0), version)
    return versions


def load_gate_key(path: Path) -> SigningKey:
    """Read the gate's private signing key; refuse one that others may read."""
    try:
        st = path.stat()
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read gate key {path}: {exc.strerror or exc}") from None
    if st.st_mode & 0o077:
        raise ConfigError(
            f"gate key {path} is readable by group or others (mode {st.st_mode & 0o777:o}):"
            f" run chmod 600 {path}"
        )
    try:
        return SigningKey.from_pem(pem)
    except KeyUnusable as exc:
        raise ConfigError(f"gate key {path} is unusable: {exc}") from None


@contextlib.contextmanager
def open_sync(agent: GateAgent, versions: dict[str, int] | None = None) -> Iterator[GateSync]:
    """Start ``GateSync`` for ``agent`` per its ``[broker]`` config; close it on exit."""
    cfg = agent.config
    if cfg.broker is None:
        raise ConfigError("no [broker] in the config: this gate runs offline")
    cb = _Callbacks(agent)
    key = load_gate_key(cfg.key_file) if cfg.key_file is not None else None
    if key is None:
        log.warning("gate %s has no key_file: its batches go unsigned, and a centre with a"
                    " gate registry refuses them", cfg.gate)
    sync = GateSync(
        gate_id=cfg.gate, site=cfg.site, db_path=agent.ledger.path, broker=cfg.broker,
        trust=agent.trust.store, on_trust_list=cb.trust_list, on_revocations=cb.revocations,
        on_time_beacon=cb.time_beacon, on_config=cb.config, on_used_permits=cb.used,
        versions=versions, signing_key=key, groups=cfg.permits.gate_groups,
    )
    agent.sync = sync
    try:
        sync.start()
        yield sync
    finally:
        agent.sync = None
        sync.close()
