"""An aggregator worker: MQTT in, store, acknowledgements and downlink out.

Several workers (threads or processes) may run at once: they join the shared
subscription ``$share/agg/gp/v1/gates/+/events`` so the broker splits batches between
them, and the store's idempotency on ``(gate, seq)`` is what keeps counts exact when
a batch reaches two of them (redelivery, a restarted worker, a gate republishing).

Flow: paho's network thread only queues messages (a full queue pauses it, which
pushes back on the broker). The ``central-store`` thread decodes with
:func:`sync.wire.decode_batch`, stores many messages in one transaction, and only
then publishes the retained ``ack`` of the highest contiguous seq stored per gate. A
batch that cannot be decoded or names another gate than its topic is refused whole,
recorded as an anomaly, and not acknowledged. A store failure is retried with the
same messages: nothing is acknowledged that is not stored.

Gate identity: with a gate registry (:mod:`verifier.registry`), a batch is refused
whole, recorded and not acknowledged, when its gate is not registered
(``unregistered_gate``), it carries no signature or one that does not verify with the
gate's registered key (``unsigned_batch``, ``bad_signature``), its gate groups are not
the registry's (``wrong_group``), or an event's site or mode is not the gate's
(``wrong_site``, ``wrong_mode``). Used-permit batches for a site then hold only events
of that site's registered gates.

Acks name what is stored (``first``/``digest``, see :mod:`sync.wire`). An event whose
``(gate, seq)`` is stored with another event id raises a *seq alarm* (store table,
``gatepass_central_seq_conflicts``, an error log line, the dashboard's ``seq_alarms``):
two devices speak as one gate. The gate's ack then stops below that seq until an
operator resolves it (``gatepass gates resolve``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.downlink import RELAYED_KINDS, DownlinkSigner, Given, check_given, held_version
from central.errors import CentralError, DocumentNotNewer, DownlinkError, StoreError
from central.metrics import CentralMetrics
from central.store.base import Store
from sync import topics, wire
from sync.config import BrokerConfig
from sync.errors import SyncError, TopicError, WireError
from sync.schema import GateEvent
from verifier import documents
from verifier.errors import DocumentRefused, GatepassError
from verifier.registry import (
    BatchSignatureInvalid,
    GateRegistry,
    newer_registry,
    open_registry,
    verify_batch,
)

if TYPE_CHECKING:
    from verifier.trust import TrustStore

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S: Final = 10.0
STORE_RETRY_S: Final = 0.5
EVENTS_PER_MESSAGE_GUESS: Final = 500  # a full batch message, to size the decoded queue
REGISTRY_RELOAD_S: Final = 5.0  # an unknown gate re-reads the stored registry this often

#: Store kind of a gate's config document: this prefix + the gate id.
GATE_CONFIG_PREFIX: Final = "gate_config."

#: Topic and retain flag of each relayed document kind.
RELAY_TOPICS: Final = {
    documents.KIND_TRUST_LIST: (topics.TRUST, True),
    documents.KIND_REVOCATION_SNAPSHOT: (topics.REVOCATION_SNAPSHOT, True),
    documents.KIND_REVOCATION_DELTA: (topics.REVOCATION_DELTA, False),
}


@dataclass(frozen=True, slots=True)
class AggregatorStats:
    """A snapshot of one worker's counters (for tests, logs and the bench)."""

    connected: bool
    messages: int
    batches_stored: int
    events_received: int
    events_inserted: int
    events_duplicate: int
    refused: int
    acks_published: int
    queued: int
    busy: bool
    last_error: str | None


class Aggregator:
    """One aggregator worker. ``Aggregator(store=..., broker=..., client_id=...)``.

    ``signer`` (with ``trust``, to check documents given for relay) enables time beacons
    and the used-permit stream; ``clock`` is wall time, injectable.
    """

    def __init__(
        self,
        *,
        store: Store,
        broker: BrokerConfig,
        client_id: str,
        signer: DownlinkSigner | None = None,
        trust: TrustStore | None = None,
        metrics: CentralMetrics | None = None,
        clock: Callable[[], float] = time.time,
        max_batch_events: int = 20000,
        queue_messages: int = 1000,
        time_beacon_period_s: float = 5.0,
        used_stream: bool = True,
        shared_subscription: bool = True,
        registry: GateRegistry | None = None,
    ) -> None:
        self._store = store
        self.client_id = topics.check_id(client_id, "client id")
        self._cfg = broker.for_client(self.client_id)  # per-worker broker user, if templated
        self._signer = signer
        self._trust = trust
        self.metrics = metrics if metrics is not None else CentralMetrics()
        self._clock = clock
        self._max_events = max_batch_events
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=queue_messages)
        # decoded messages waiting for the store: a few transactions' worth at most
        self._decoded: queue.Queue[list[GateEvent]] = queue.Queue(
            maxsize=max(4, 2 * max_batch_events // EVENTS_PER_MESSAGE_GUESS)
        )
        self._beacon_period = time_beacon_period_s
        self._used_stream = used_stream and signer is not None
        # amqtt has no $share: a plain subscription there (one worker only).
        self._events_topic = topics.SHARED_EVENTS if shared_subscription else topics.ALL_EVENTS
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client: mqtt.Client | None = None
        self._connected = False
        self._busy = False
        self._storing = False
        self._pipelined = store.pipelined
        self._closed = False
        self._lock = threading.Lock()  # counters below
        self._give_lock = threading.Lock()  # one given document at a time
        self._messages = 0
        self._batches = 0
        self._received = 0
        self._inserted = 0
        self._duplicates = 0
        self._refused = 0
        self._acks = 0
        self._last_error: str | None = None
        # The gate registry: None means no gate identity checks (a warning at start).
        self._registry: GateRegistry | None = None
        self._registry_checked = 0.0
        if registry is not None:
            self.set_registry(registry)
            self._adopt_stored_registry()

    # --- gate registry --------------------------------------------------------------------
    @property
    def registry(self) -> GateRegistry | None:
        return self._registry

    def set_registry(self, registry: GateRegistry) -> bool:
        """Install a verified registry if newer than the held one (an older one raises
        ``DocumentRefused(ROLLBACK)``); keep it in the store. False: the same one again."""
        if not newer_registry(self._registry, registry):
            return False
        self._store_retry(partial(
            self._store.add_document, kind=documents.KIND_GATE_REGISTRY,
            version=registry.version, raw=registry.raw,
            summary=f"gate_registry: {len(registry.gates)} gates, "
                    f"sites {', '.join(sorted(registry.sites()))[:300]}",
            now=self._clock(),
        ))
        self._registry = registry  # one reference swap: decoders see old or new, whole
        log.info("gate registry v%d in force: %d gates", registry.version, len(registry.gates))
        return True

    def _adopt_stored_registry(self) -> None:
        # Another worker (or the dashboard) may have been given a newer registry.
        if self._trust is None:
            return
        try:
            raw = self._store.latest_document(documents.KIND_GATE_REGISTRY)
        except StoreError as exc:
            self._error(f"cannot read the stored gate registry: {exc}")
            return
        if raw is None or (self._registry is not None and raw == self._registry.raw):
            return
        try:
            reg = open_registry(raw, self._trust, now=self._clock())
            if self._registry is None or reg.version > self._registry.version:
                self._registry = reg
                log.info("adopted stored gate registry v%d", reg.version)
        except GatepassError as exc:
            self._error(f"stored gate registry not adopted: {exc}")

    # --- public API -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect (retrying in the background) and start the worker threads."""
        if self._client is not None:
            return
        client = self._make_client()
        self._client = client
        self._connect(client)
        client.loop_start()
        self._spawn("central-decode", self._decode_loop)
        if self._pipelined:
            self._spawn("central-store", self._store_loop)
        if self._signer is not None:
            self._spawn("central-beacon", self._beacon_loop)

    def give(self, raw: bytes) -> Given:
        """Check a signed trust list or revocation document, keep it and publish it."""
        if self._trust is None:
            raise DownlinkError("this centre has no trust store to check documents with")
        given_registry = self._give_registry(raw)
        if given_registry is not None:
            return given_registry
        trust = self._trust
        with self._give_lock:  # check, keep and relay as one step: no older one slips past
            given = check_given(
                raw, trust, now=self._clock(), held=lambda k: held_version(self._store, k, trust)
            )
            if given.kind == documents.KIND_TRUST_LIST:
                try:  # installs it (check_newer again, against the list held)
                    trust.apply(given.raw)
                except GatepassError as exc:
                    raise DownlinkError(f"trust list refused: {exc}") from None
            self._store.add_document(
                kind=given.kind, version=given.version, raw=given.raw, summary=given.summary,
                now=self._clock(),
            )
            self._relay(given.kind, given.raw)
        return given

    def _give_registry(self, raw: bytes) -> Given | None:
        """A gate registry given to the centre: verify, refuse older, install. None when
        ``raw`` is another kind of document."""
        assert self._trust is not None
        try:  # which kind is it? (anything refused here gets the generic path's answer)
            doc = documents.read_document(
                raw, (documents.KIND_GATE_REGISTRY, *RELAYED_KINDS), self._trust,
                now=self._clock(),
            )
        except DocumentRefused:
            return None
        if doc.kind != documents.KIND_GATE_REGISTRY:
            return None
        try:
            reg = open_registry(raw, self._trust, now=self._clock())
        except DocumentRefused as exc:
            raise DownlinkError(f"gate registry refused: {exc}") from None
        if self._registry is None:
            raise DownlinkError("this centre checks no gate identities: configure [registry] "
                                "with a first registry file")
        with self._give_lock:
            try:
                self.set_registry(reg)
            except DocumentRefused as exc:  # an older (or another same-version) registry
                raise DocumentNotNewer(f"gate registry refused: {exc}") from None
        return Given(documents.KIND_GATE_REGISTRY, reg.version,
                     f"gate_registry: {len(reg.gates)} gates", bytes(raw))

    def send_gate_config(self, gate: str, body: Mapping[str, Any], version: int) -> bytes:
        """Sign a gate's config (rule sections) and publish it retained to that gate."""
        if self._signer is None:
            raise DownlinkError("this centre has no signing key for gate configs")
        gate = topics.check_id(gate, "gate")
        held = held_version(self._store, f"{GATE_CONFIG_PREFIX}{gate}")
        try:  # never replace the retained config with an older one
            documents.check_version(documents.KIND_GATE_CONFIG, version, held)
        except DocumentRefused as exc:
            raise DocumentNotNewer(f"gate config for {gate} refused: {exc}") from None
        raw = self._signer.gate_config(gate, body, version, self._clock())
        self._store.add_document(
            kind=f"{GATE_CONFIG_PREFIX}{gate}", version=version, raw=raw,
            summary=f"gate_config for {gate}: {', '.join(sorted(map(str, body)))[:200]}",
            now=self._clock(),
        )
        self._publish(topics.config(gate), raw, qos=1, retain=True)
        self.metrics.documents.labels(documents.KIND_GATE_CONFIG).inc()
        return raw

    def stats(self) -> AggregatorStats:
        with self._lock:
            return AggregatorStats(
                connected=self._connected,
                messages=self._messages,
                batches_stored=self._batches,
                events_received=self._received,
                events_inserted=self._inserted,
                events_duplicate=self._duplicates,
                refused=self._refused,
                acks_published=self._acks,
                queued=self._queue.qsize(),
                busy=self._busy or self._storing or not self._decoded.empty(),
                last_error=self._last_error,
            )

    @property
    def connected(self) -> bool:
        return self._connected

    def close(self) -> None:
        """Stop the threads and disconnect; queued messages stay unacknowledged. Safe twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for t in self._threads:
            t.join(JOIN_TIMEOUT_S)
            if t.is_alive():
                log.error("thread %s did not stop within %.0f s", t.name, JOIN_TIMEOUT_S)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self._connected = False
        self.metrics.connected.set(0)

    def __enter__(self) -> Aggregator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- MQTT -----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self._cfg
        v5 = cfg.protocol == "5"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        # Acks and downlink documents may pile up while the broker is away: never refuse.
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(256)
        client.reconnect_delay_set(min_delay=1, max_delay=int(max(1, cfg.reconnect_max_s)))
        client.connect_timeout = cfg.connect_timeout_s
        cfg.apply_security(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect(self, client: mqtt.Client) -> None:
        # A clean session on purpose: with a persistent one, the broker keeps a stopped
        # worker in the share group and queues its share of batches for it until the
        # session expires. Batches in flight to a worker that dies are republished by
        # their gate after its ack timeout, so a clean session loses nothing.
        if self._cfg.protocol == "5":
            client.connect_async(
                self._cfg.host, self._cfg.port, self._cfg.keepalive, clean_start=True
            )
        else:
            client.connect_async(self._cfg.host, self._cfg.port, self._cfg.keepalive)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._error(f"broker refused the connection: {reason_code}")
            return
        client.subscribe(
            [(self._events_topic, 1), (topics.ALL_STATUS, 1), (topics.ALL_HEALTH, 0)]
        )
        log.info("aggregator %s connected to %s:%s", self.client_id, self._cfg.host,
                 self._cfg.port)
        self._republish_documents()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._error(f"broker refused a subscription: {[str(rc) for rc in reason_codes]}")
            return
        self._connected = True  # only now do batches reach us
        self.metrics.connected.set(1)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected = False
        self.metrics.connected.set(0)
        if not self._stop.is_set():
            log.warning("aggregator %s lost the broker: %s", self.client_id, reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Runs on paho's thread: queue only. A full queue blocks here on purpose (the
        # broker holds the rest), but never past a stop.
        item = (msg.topic, bytes(msg.payload))
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                break
            except queue.Full:
                continue
        self.metrics.queue_depth.set(self._queue.qsize())

    def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        client = self._client
        if client is None:
            return
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            # NO_CONN: paho keeps QoS 1 messages queued and sends them on reconnect.
            self._error(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    # --- storing --------------------------------------------------------------------------
    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=f"{name}-{self.client_id}", daemon=True)
        t.start()
        self._threads.append(t)

    def _decode_loop(self) -> None:
        # Stage 1: decode (pure Python). With a pipelined store (PostgreSQL) stage 2 runs
        # in its own thread and waits on the server while this one decodes. SQLite works
        # inside this process and releases the GIL around every row, so a second thread
        # would make each row wait for the interpreter's switch interval: store inline.
        while not self._stop.is_set():
            try:
                topic, payload = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._busy = True
            try:
                events = self._decode(topic, payload)
                if self._pipelined:
                    if events:
                        self._hand_over(events)
                    continue
                while len(events) < self._max_events:
                    try:
                        topic, payload = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    events.extend(self._decode(topic, payload))
                if events:
                    self._store_events(events)
            except Exception as exc:  # a bug must not kill the decoding thread
                log.exception("aggregator %s: unexpected error", self.client_id)
                self._error(f"unexpected {type(exc).__name__}: {exc}")
            finally:
                self._busy = False
                self.metrics.queue_depth.set(self._queue.qsize())

    def _hand_over(self, events: list[GateEvent]) -> None:
        while not self._stop.is_set():
            try:
                self._decoded.put(events, timeout=0.5)
                return
            except queue.Full:
                continue

    def _store_loop(self) -> None:
        # Stage 2: store many decoded messages per transaction, then acknowledge.
        while not self._stop.is_set():
            try:
                events = self._decoded.get(timeout=0.2)
            except queue.Empty:
                continue
            self._storing = True
            try:
                while len(events) < self._max_events:
                    try:
                        events.extend(self._decoded.get_nowait())
                    except queue.Empty:
                        break
                self._store_events(events)
            except Exception as exc:  # a bug must not kill the only storing thread
                log.exception("aggregator %s: unexpected error", self.client_id)
                self._error(f"unexpected {type(exc).__name__}: {exc}")
            finally:
                self._storing = False

    def _decode(self, topic: str, payload: bytes) -> list[GateEvent]:
        try:
            parsed = topics.parse_gate_topic(topic)
        except TopicError as exc:
            self._refuse("?", None, "bad_topic", str(exc))
            return []
        self.metrics.messages.labels(parsed.leaf).inc()
        with self._lock:
            self._messages += 1
        try:
            if parsed.leaf == "events":
                batch = wire.decode_signed_batch(payload, parsed.gate)
                return self._check_identity(batch)
            if parsed.leaf == "status":
                st = wire.decode_status(payload, parsed.gate)
                self._store_retry(partial(
                    self._store.set_gate_status, st.gate, st.state, st.t, now=self._clock()
                ))
            elif parsed.leaf == "health":
                fields = wire.decode_health(payload, parsed.gate)
                self._store_retry(partial(
                    self._store.set_gate_health, parsed.gate, fields, now=self._clock()
                ))
        except WireError as exc:
            kind = "gate_mismatch" if "does not match topic gate" in str(exc) else "bad_batch"
            self._refuse(parsed.gate, None, kind, f"{parsed.leaf}: {exc}")
        return []

    def _entry(self, gate: str) -> Any:
        reg = self._registry
        assert reg is not None
        entry = reg.get(gate)
        now = time.monotonic()
        if entry is None and now - self._registry_checked > REGISTRY_RELOAD_S:
            self._registry_checked = now
            self._adopt_stored_registry()
            reg = self._registry
            entry = reg.get(gate) if reg is not None else None
        return entry

    def _check_identity(self, batch: wire.Batch) -> list[GateEvent]:
        """The batch's events if the gate registry vouches for them; else refuse it whole."""
        if self._registry is None:
            return batch.events
        gate = batch.gate
        entry = self._entry(gate)
        first = batch.events[0].seq
        if entry is None:
            self._refuse(gate, first, "unregistered_gate",
                         f"gate {gate} is not in gate registry v{self._registry.version}")
            return []
        if batch.sig is None:
            self._refuse(gate, first, "unsigned_batch", f"batch from {gate} carries no signature")
            return []
        try:
            verify_batch(entry, batch.signed, batch.sig)
        except BatchSignatureInvalid as exc:
            self._refuse(gate, first, "bad_signature", str(exc))
            return []
        if tuple(batch.groups or ()) != entry.groups:
            self._refuse(gate, first, "wrong_group",
                         f"gate {gate} claims groups {list(batch.groups or ())}, registry says "
                         f"{list(entry.groups)}")
            return []
        for ev in batch.events:
            if ev.site != entry.site:
                self._refuse(gate, ev.seq, "wrong_site",
                             f"event seq {ev.seq} of {gate} claims site {ev.site!r}; the gate "
                             f"is registered at {entry.site!r}")
                return []
            if ev.mode != entry.mode:
                self._refuse(gate, ev.seq, "wrong_mode",
                             f"event seq {ev.seq} of {gate} claims mode {ev.mode!r}; the gate "
                             f"is registered as {entry.mode!r}")
                return []
        return batch.events

    def _store_events(self, events: list[GateEvent]) -> None:
        for i in range(0, len(events), self._max_events):
            chunk = events[i:i + self._max_events]
            started = time.perf_counter()
            result = self._store_retry(partial(self._store.add_events, chunk, now=self._clock()))
            if result is None:
                return  # stopping: nothing acknowledged, the gates will send again
            self.metrics.store_seconds.observe(time.perf_counter() - started)
            for gate, seq in sorted(result.acks.items()):
                first, digest = result.proofs.get(gate, (seq + 1, wire.eid_digest(())))
                self._publish(topics.ack(gate), wire.encode_ack(gate, seq, first, digest),
                              qos=1, retain=True)
            self.metrics.events_received.inc(result.received)
            self.metrics.events_stored.inc(result.inserted)
            self.metrics.events_duplicate.inc(result.duplicates)
            self.metrics.acks.inc(len(result.acks))
            if result.anomalies:
                self.metrics.anomalies.labels("duplicate_seq").inc(result.anomalies)
                self.metrics.seq_conflicts.inc(len(result.seq_conflicts))
                for gate, seq, eid, stored in result.seq_conflicts[:20]:
                    log.error("ALARM two devices speak as gate %s: seq %d arrived as event %s,"
                              " stored as %s; its ack stops below seq %d until resolved",
                              gate, seq, eid, stored, seq)
            if result.conflicts:
                self.metrics.conflicts.inc(result.conflicts)
            with self._lock:
                self._batches += 1
                self._received += result.received
                self._inserted += result.inserted
                self._duplicates += result.duplicates
                self._acks += len(result.acks)
            if self._used_stream:
                self._publish_used(chunk)

    def _store_retry(self, call: Callable[[], Any]) -> Any:
        while not self._stop.is_set():
            try:
                return call()
            except StoreError as exc:
                self.metrics.store_errors.inc()
                self._error(f"store: {exc}")
                self._stop.wait(STORE_RETRY_S)
        return None

    def _refuse(self, gate: str, seq: int | None, kind: str, detail: str) -> None:
        log.warning("aggregator %s refused a message from %s: %s", self.client_id, gate, detail)
        self.metrics.refused.labels(kind).inc()
        self.metrics.anomalies.labels(kind).inc()
        with self._lock:
            self._refused += 1
        self._store_retry(partial(
            self._store.record_anomaly, gate=gate, seq=seq, kind=kind, detail=detail,
            now=self._clock(),
        ))

    # --- downlink -------------------------------------------------------------------------
    def _publish_used(self, events: Sequence[GateEvent]) -> None:
        assert self._signer is not None
        per_site: dict[str, list[tuple[str, str, float]]] = {}
        reg = self._registry
        for ev in events:
            if ev.verdict == "admit" and ev.ph is not None:
                # With a registry the site is the gate's registered one (events claiming
                # another were refused before they were stored); without, the event's own.
                entry = reg.get(ev.gate) if reg is not None else None
                if reg is not None and entry is None:
                    continue
                site = entry.site if entry is not None else ev.site
                per_site.setdefault(site, []).append((ev.ph, ev.gate, ev.t))
        now = self._clock()
        for site, used in sorted(per_site.items()):
            for doc in self._signer.used_permits(site, used, now):
                self._publish(topics.site_used(site), doc, qos=1, retain=False)
                self.metrics.documents.labels(documents.KIND_USED_PERMITS).inc()

    def _beacon_loop(self) -> None:
        assert self._signer is not None
        period = self._beacon_period
        while True:
            if self._connected:
                try:
                    beacon = self._signer.time_beacon(self._clock())
                    self._publish(topics.TIME, beacon, qos=0, retain=False)
                    self.metrics.documents.labels(documents.KIND_TIME_BEACON).inc()
                except (CentralError, SyncError, ValueError) as exc:
                    self._error(f"time beacon: {exc}")
            if self._stop.wait(period):
                return

    def _relay(self, kind: str, raw: bytes) -> None:
        topic, retain = RELAY_TOPICS[kind]
        self._publish(topic, raw, qos=1, retain=retain)
        self.metrics.documents.labels(kind).inc()

    def _republish_documents(self) -> None:
        # Retained documents survive in the store even if the broker lost its own copy.
        for kind in (documents.KIND_TRUST_LIST, documents.KIND_REVOCATION_SNAPSHOT):
            try:
                raw = self._store.latest_document(kind)
            except StoreError as exc:
                self._error(f"cannot read {kind} to republish: {exc}")
                continue
            if raw is not None:
                self._relay(kind, raw)
        try:
            kinds = {d.kind for d in self._store.documents()}
        except StoreError as exc:
            self._error(f"cannot list documents to republish: {exc}")
            return
        for kind in sorted(k for k in kinds if k.startswith(GATE_CONFIG_PREFIX)):
            raw = self._store.latest_document(kind)
            if raw is not None:
                gate = kind[len(GATE_CONFIG_PREFIX):]
                self._publish(topics.config(gate), raw, qos=1, retain=True)

    def _error(self, message: str) -> None:
        with self._lock:
            self._last_error = message
        log.warning("aggregator %s: %s", self.client_id, message)
