"""Signed data from the centre to a gate: trust list, revocations, time, config, used permits.

Every item is verified with :func:`verifier.documents.read_document` against the gate's
:class:`~verifier.trust.TrustStore` (signer validity at ``clock()``) before any callback
sees it; a refused item is logged and counted, never applied. Versions follow the one
rule :func:`verifier.documents.check_newer` on each kind's line
(:func:`verifier.documents.version_line`):

- trust list, revocation snapshot/delta (one version line), time beacon, gate config:
  only a version NEWER than the last one accepted of that line is applied. An equal or
  older one is not applied: counted as ``stale`` when it is a retained replay (the broker
  re-delivers retained items on every reconnect), else as ``refused`` (rollback). The
  trust list and revocations are checked again by their holders (``TrustStore.apply``,
  the agent's ``RevocationSet``, which alone knows the version a delta must start from:
  the bundle's revocations are not on this line's record).
- used-permit batches: applied in any order (losing one would weaken anti-passback;
  applying one twice is harmless); an exact repeat of a recent version is skipped.

The trust list is installed into ``trust`` here (``trust.apply``) before its callback
runs, because every later item is verified against it. Revocations are only verified
here; the callback applies them to the agent's ``RevocationSet`` (which checks snapshot
and delta versions). A callback that raises (``DocumentRefused``, or anything else when
it cannot apply the body) has the item counted refused and its version not recorded.
Callbacks run on the link thread: keep them short.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sync import topics
from verifier.documents import (
    KIND_GATE_CONFIG,
    KIND_REVOCATION_DELTA,
    KIND_REVOCATION_SNAPSHOT,
    KIND_TIME_BEACON,
    KIND_TRUST_LIST,
    KIND_USED_PERMITS,
    check_newer,
    read_document,
)
from verifier.errors import DocumentRefused, Reason
from verifier.trust import TrustStore

log = logging.getLogger(__name__)

MAX_DOWNLINK_BYTES: Final = 32 * 1024 * 1024
USED_VERSIONS_REMEMBERED: Final = 4096


@dataclass(frozen=True, slots=True)
class DownlinkItem:
    """A verified downlink document, as handed to a callback."""

    kind: str
    version: int
    body: Any
    raw: bytes  # the signed bytes, to persist or to apply (TrustStore/RevocationSet.apply)
    topic: str
    retained: bool
    issued_at: int | None


Callback = Callable[[DownlinkItem], None]


@dataclass
class DownlinkStats:
    """Counters per kind: applied, stale (retained replays), refused; the last refusal."""

    applied: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    last_refusal: str | None = None


class Downlink:
    """Verifies downlink items and hands them to the agent's callbacks (by keyword).

    ``versions`` seeds the last accepted version per line (``"trust_list"``,
    ``"revocations"``, ``"time_beacon"``, ``"gate_config"``) after a restart. ``clock``
    gives the time (seconds since the epoch) signers' validity is checked at.
    """


    def __init__(
        self,
        *,
        gate: str,
        site: str,
        trust: TrustStore,
        on_trust_list: Callback | None = None,
        on_revocations: Callback | None = None,
        on_time_beacon: Callback | None = None,
        on_config: Callback | None = None,
        on_used_permits: Callback | None = None,
        versions: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gate = topics.check_id(gate, "gate")
        self._clock = clock
        self.site = topics.check_id(site, "site")
        self._trust = trust
        # topic -> (accepted kinds, version line or None for used permits, callback)
        self._routes: dict[str, tuple[tuple[str, ...], str | None, Callback | None]] = {
            topics.TRUST: ((KIND_TRUST_LIST,), "trust_list", on_trust_list),
            topics.REVOCATION_SNAPSHOT: ((KIND_REVOCATION_SNAPSHOT,), "revocations",
                                         on_revocations),
            topics.REVOCATION_DELTA: ((KIND_REVOCATION_DELTA,), "revocations", on_revocations),
            topics.TIME: ((KIND_TIME_BEACON,), "time_beacon", on_time_beacon),
            topics.config(self.gate): ((KIND_GATE_CONFIG,), "gate_config", on_config),
            topics.site_used(self.site): ((KIND_USED_PERMITS,), None, on_used_permits),
        }
        self._versions: dict[str, int] = {"trust_list": trust.version}
        self._versions.update(versions or {})
        self._used_seen: OrderedDict[int, None] = OrderedDict()
        self.stats = DownlinkStats()

    def subscriptions(self) -> list[tuple[str, int]]:
        """(topic, QoS) pairs to subscribe: the time beacon is QoS 0, the rest QoS 1."""
        return [(t, 0 if t == topics.TIME else 1) for t in self._routes]

    def versions(self) -> dict[str, int]:
        """Last accepted version per line (persist it to seed ``versions`` on restart)."""
        return dict(self._versions)

    def handle(self, topic: str, payload: bytes, retained: bool) -> None:
        """Verify one message and apply it; never raises for bad input."""
        route = self._routes.get(topic)
        if route is None:
            return
        kinds, line, callback = route
        if not payload:
            return  # a cleared retained topic carries nothing to apply
        kind = kinds[0]
        try:
            doc = read_document(
                payload, kinds, self._trust, now=self._clock(), max_bytes=MAX_DOWNLINK_BYTES
            )
        except DocumentRefused as exc:
            self._refuse(kind, topic, str(exc))
            return
        kind = doc.kind
        item = DownlinkItem(kind=doc.kind, version=doc.version, body=doc.body,
                            raw=bytes(payload), topic=topic, retained=retained,
                            issued_at=doc.issued_at)
        if not self._scope_ok(item):
            return
        if line is None:
            if doc.version in self._used_seen:
                self._count(self.stats.stale, kind)
                return
        else:
            held = self._versions.get(line, 0)
            try:
                if doc.kind != KIND_REVOCATION_DELTA:
                    check_newer(doc, held)
                elif doc.version <= held:  # its base: the RevocationSet's check
                    raise DocumentRefused(
                        Reason.ROLLBACK, f"delta version {doc.version} is not newer than {held}"
                    )
            except DocumentRefused as exc:
                if retained and exc.reason == Reason.ROLLBACK:
                    self._count(self.stats.stale, kind)
                else:
                    self._refuse(kind, topic, str(exc))
                return
        try:
            if kind == KIND_TRUST_LIST:
                self._trust.apply(item.raw)
            if callback is not None:
                callback(item)
        except DocumentRefused as exc:
            if retained and exc.reason == Reason.ROLLBACK:  # e.g. older than the bundle's
                self._count(self.stats.stale, kind)
            else:
                self._refuse(kind, topic, f"refused by holder: {exc}")
            return
        except Exception as exc:  # the agent could not apply it: not applied, say why
            log.exception("gate %s: %s callback failed", self.gate, kind)
            self._refuse(kind, topic, f"callback failed: {exc!r}")
            return
        if line is None:
            self._used_seen[doc.version] = None
            while len(self._used_seen) > USED_VERSIONS_REMEMBERED:
                self._used_seen.popitem(last=False)
        else:
            self._versions[line] = doc.version
        self._count(self.stats.applied, kind)

    def _scope_ok(self, item: DownlinkItem) -> bool:
        body = item.body
        if isinstance(body, Mapping):
            if item.kind == KIND_GATE_CONFIG and body.get("gate", self.gate) != self.gate:
                self._refuse(item.kind, item.topic, "config names another gate")
                return False
            if item.kind == KIND_USED_PERMITS and body.get("site", self.site) != self.site:
                self._refuse(item.kind, item.topic, "used-permit batch names another site")
                return False
        return True

    def _refuse(self, kind: str, topic: str, why: str) -> None:
        self._count(self.stats.refused, kind)
        self.stats.last_refusal = f"{topic}: {why}"[:300]
        log.warning("gate %s refused downlink item on %s: %s", self.gate, topic, why[:200])

    @staticmethod
    def _count(counter: dict[str, int], kind: str) -> None:
        counter[kind] = counter.get(kind, 0) + 1
