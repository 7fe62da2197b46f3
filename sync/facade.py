"""``GateSync``: the one object the gate agent uses to talk to the centre."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from sync.config import BrokerConfig
from sync.downlink import Callback, Downlink, DownlinkStats
from sync.link import GateLink
from sync.outbox import Outbox
from verifier.keys import SigningKey
from verifier.registry import sign_batch
from verifier.trust import TrustStore


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the agent shows on its console and in its health: link and downlink state."""

    connected: bool
    backlog: int
    acked_through: int
    published_through: int
    last_ack_t: float | None
    last_error: str | None
    connects: int  # successful connections (CONNACK accepted), the first included
    republishes: int
    refused_publishes: int
    refused_acks: int
    ack_mismatches: int  # acks naming events this gate never wrote: a second device?
    downlink_applied: dict[str, int]
    downlink_stale: dict[str, int]
    downlink_refused: dict[str, int]
    downlink_last_refusal: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GateSync:
    """Outbox shipping and signed downlink for one gate, over one MQTT connection.

    Usage by the agent::

        Outbox.ensure_schema(ledger_conn)          # once, on the agent's connection
        ...inside each ledger transaction: Outbox.add(ledger_conn, event)
        sync = GateSync(gate_id="g1", site="mecca-haram", db_path=ledger_path,
                        broker=BrokerConfig(...), trust=trust_store,
                        on_revocations=..., on_time_beacon=..., on_config=...,
                        on_used_permits=..., on_trust_list=...)
        sync.start()
        sync.publish_health({"clock": "synced", "last_verdict_t": t, "fps": 14.8})
        sync.backlog(); sync.status()
        sync.close()                               # or use it as a context manager

    ``db_path`` is the agent's ledger file: the outbox table lives in it. Callbacks get
    a verified :class:`~sync.downlink.DownlinkItem` on the link thread; the trust list
    is installed into ``trust`` before ``on_trust_list`` runs; revocations are verified
    and ``on_revocations`` applies them (``RevocationSet.apply(item.raw)``). ``versions``
    seeds the downlink's last accepted versions (see ``status``/``Downlink.versions``).
    ``signing_key`` (the gate's own key, registered in the centre's gate registry) signs
    every outgoing batch; ``groups`` are the gate groups the gate says it serves (they
    must be the registry's).
    """

    def __init__(
        self,
        *,
        gate_id: str,
        site: str,
        db_path: str | Path,
        broker: BrokerConfig,
        trust: TrustStore,
        on_trust_list: Callback | None = None,
        on_revocations: Callback | None = None,
        on_time_beacon: Callback | None = None,
        on_config: Callback | None = None,
        on_used_permits: Callback | None = None,
        versions: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        signing_key: SigningKey | None = None,
        groups: Sequence[str] | None = None,
    ) -> None:
        self.gate_id = gate_id
        self.outbox = Outbox(db_path)
        try:
            self.downlink = Downlink(
                gate=gate_id, site=site, trust=trust, on_trust_list=on_trust_list,
                on_revocations=on_revocations, on_time_beacon=on_time_beacon,
                on_config=on_config, on_used_permits=on_used_permits, versions=versions,
            )
            signer = None if signing_key is None else partial(sign_batch, signing_key)
            self.link = GateLink(gate=gate_id, outbox=self.outbox, broker=broker, clock=clock,
                                 monotonic=monotonic, signer=signer, groups=groups)
            for topic, qos in self.downlink.subscriptions():
                self.link.subscribe(topic, qos, self.downlink.handle)
        except BaseException:
            self.outbox.close()
            raise

    def start(self) -> None:
        """Start the link thread (it connects and reconnects by itself)."""
        self.link.start()

    def backlog(self) -> int:
        """Events in the outbox not yet acknowledged by the centre."""
        return self.outbox.backlog()

    def publish_health(self, fields: Mapping[str, Any]) -> None:
        """Set the agent's health fields; the link adds backlog/acked and publishes them.

        At most 32 scalar fields (str/int/float/bool/None) with id-like names; anything
        else raises :class:`~sync.errors.WireError` (a ``ValueError``) here, in the caller.
        """
        self.link.set_health(fields)

    def status(self) -> SyncStatus:
        """Link and downlink state; cheap, callable from any thread, also after close()."""
        s = self.link.status()
        d: DownlinkStats = self.downlink.stats
        return SyncStatus(
            connected=s.connected, backlog=s.backlog, acked_through=s.acked_through,
            published_through=s.published_through, last_ack_t=s.last_ack_t,
            last_error=s.last_error, connects=s.connects, republishes=s.republishes,
            refused_publishes=s.refused_publishes, refused_acks=s.refused_acks,
            ack_mismatches=s.ack_mismatches,
            downlink_applied=dict(d.applied),
            downlink_stale=dict(d.stale), downlink_refused=dict(d.refused),
            downlink_last_refusal=d.last_refusal,
        )

    def close(self) -> None:
        """Say offline, stop the link, close the outbox; safe to call twice."""
        self.link.close()
        self.outbox.close()

    def __enter__(self) -> GateSync:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
