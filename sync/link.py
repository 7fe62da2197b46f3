"""The gate's MQTT link: ships the outbox to the centre and carries the downlink in.

One named thread runs paho's network loop and all the link's logic, so every paho
callback and every outbox read/delete happens on that thread (no locks around the
protocol state). What it does, in order, on each turn:

1. Apply the acknowledgements seen on ``gp/v1/gates/{gate}/ack`` (published by the
   central aggregator after it STORED the events): delete the outbox through one only
   when the event ids it names (a digest of the ids stored at ``first..seq``) are this
   gate's own (:meth:`sync.outbox.Outbox.apply_ack`). An ack naming other ids means a
   second device speaks as this gate: nothing is deleted, ``ack_mismatches`` counts it.
   A broker PUBACK deletes nothing: brokers drop acknowledged messages when a
   subscriber lags, and paho's queue dies with the process.
2. If the event right after the acknowledged seq was published more than
   ``ack_timeout_s`` ago and no ack covered it, publish everything unacknowledged again
   (go-back-N; the timeout doubles on each repeat without progress, up to 8x).
   Duplicates are harmless: the centre stores on (gate, seq) once.
3. Live events (queued after the current connection came up) go out at once.
4. The backlog (queued before the connection came up: an outage, a restart) drains in
   seq order at ``drain_rate`` events/s at most, with at most ``max_unacked`` events
   awaiting acknowledgement, so live events are never stuck behind it.

Each batch is signed with the gate's key when the link has a ``signer`` (one signature
per batch, so the per-scan cost at the gate does not change).

Connection: reconnect with exponential backoff and jitter; a refused CONNACK is a
failure, never "connected". Retained status ``online`` on connect, ``offline`` as the
Last Will and on a clean close. Persistent session (MQTT 5 clean_start False with a
session expiry; MQTT 3.1.1 clean_session False) so QoS 1 downlink items queue at the
broker while the gate is away.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sync import topics, wire
from sync.config import BrokerConfig
from sync.errors import LinkError, SyncError, WireError
from sync.netloop import NetLoop
from sync.outbox import AckOutcome, Outbox

log = logging.getLogger(__name__)

#: Handler for a downlink topic: (topic, payload, retained). Runs on the link thread.
MessageHandler = Callable[[str, bytes, bool], None]

MAX_PENDING_ACKS: Final = 64  # acks received out of order, kept until they can apply
MAX_OUTSTANDING_PUBLISHES: Final = 64  # QoS 1 publishes awaiting PUBACK before we pause
BATCHES_PER_TURN: Final = 8  # then let the network loop breathe
JOIN_TIMEOUT_S: Final = 10.0


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds before reconnect attempt ``attempt`` (0-based): exponential, capped, jittered.

    Half the delay is fixed and half random, so a site's gates that lost the broker
    together do not all come back in the same instant.
    """
    delay = float(min(max_s, min_s * 2.0 ** min(attempt, 30)))
    return delay / 2 + rng.uniform(0, delay / 2)


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A snapshot of the link for health pages and tests."""

    connected: bool
    backlog: int
    acked_through: int
    published_through: int
    awaiting_puback: int  # QoS 1 publishes the broker has not confirmed yet
    connects: int  # successful connections (CONNACK accepted), the first included
    republishes: int
    refused_publishes: int
    refused_acks: int  # ack messages that failed to decode (never applied)
    ack_mismatches: int  # acks naming event ids this gate does not hold (never applied)
    handler_errors: int
    last_ack_t: float | None
    last_error: str | None


class GateLink:
    """Ships a gate's outbox over MQTT and dispatches downlink messages to handlers.

    ``GateLink(gate=..., outbox=Outbox(path), broker=BrokerConfig(...))``; add downlink
    handlers with :meth:`subscribe` before :meth:`start`. ``clock`` (wall time, for
    payload timestamps) and ``monotonic`` (timers) are injectable.
    """

    def __init__(
        self,
        *,
        gate: str,
        outbox: Outbox,
        broker: BrokerConfig,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        signer: wire.Signer | None = None,
        groups: Sequence[str] | None = None,
    ) -> None:
        self.gate = topics.check_id(gate, "gate")
        self._signer = signer
        self._groups = None if groups is None else sorted(set(groups))
        wire.encode_raw_batches(self.gate, [], groups=self._groups)  # refuse bad groups now
        self._outbox = outbox
        self._cfg = broker
        self._clock = clock
        self._mono = monotonic
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._net = NetLoop()  # paho's loop() uses select(): no descriptors past 1023
        self._thread: threading.Thread | None = None
        self._handlers: dict[str, tuple[int, MessageHandler]] = {}
        self._health_lock = threading.Lock()
        self._health: dict[str, Any] = {}
        self._health_dirty = False
        self._ack_topic = topics.ack(self.gate)
        self._events_topic = topics.events(self.gate)
        self._closed = False
        # --- link-thread state ----------------------------------------------------------
        self._client: mqtt.Client | None = None
        self._ever_connected = False
        self._state = "down"  # down | connecting | up
        self._connect_started = 0.0
        self._next_attempt = 0.0
        self._attempts = 0
        self._acked = outbox.acked_through()
        self._pending_acks: dict[int, wire.Ack] = {}  # first seq -> newest ack from there
        self._stale_nudge = False  # an ack proved more stored than it could show us
        self._published_high = self._acked
        self._boundary = 0  # max outbox seq when this connection came up
        self._backlog_cursor = 0
        self._live_cursor = 0
        self._inflight: dict[int, tuple[int, float]] = {}  # first seq -> (last seq, sent at)
        self._outstanding: set[int] = set()  # mids awaiting PUBACK
        self._tokens = 0.0
        self._refill_at = 0.0
        self._ack_timeout = broker.ack_timeout_s
        self._next_health = 0.0
        # --- counters, read by status() from other threads (ints: atomic enough) --------
        self._connects = 0
        self._republishes = 0
        self._refused_publishes = 0
        self._handler_errors = 0
        self._refused_acks = 0
        self._ack_mismatches = 0
        self._last_ack_t: float | None = None
        self._last_error: str | None = None
        self._connected = False
        self._last_backlog = 0

    # --- public API --------------------------------------------------------------------------

    def subscribe(self, topic: str, qos: int, handler: MessageHandler) -> None:
        """Deliver messages on ``topic`` (exact name) to ``handler``; call before start()."""
        if self._thread is not None:
            raise LinkError("subscribe() must be called before start()")
        if topic == self._ack_topic:
            raise LinkError("the ack topic is the link's own")
        self._handlers[topic] = (qos, handler)

    def start(self) -> None:
        """Start the link thread; it connects (and reconnects) by itself."""
        if self._closed:
            raise LinkError("link is closed")
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"gatepass-sync-link-{self.gate}", daemon=True
        )
        self._thread.start()

    def set_health(self, fields: Mapping[str, Any]) -> None:
        """Replace the agent's health fields; published soon and every ``health_period_s``."""
        wire.encode_health(self.gate, 0.0, fields)  # refuse bad fields now, in the caller
        with self._health_lock:
            self._health = dict(fields)
            self._health_dirty = True

    def status(self) -> LinkStatus:
        """A snapshot; callable from any thread, also after close() (last known backlog)."""
        with contextlib.suppress(SyncError):
            self._last_backlog = self._outbox.backlog()
        return LinkStatus(
            connected=self._connected,
            backlog=self._last_backlog,
            acked_through=self._acked,
            published_through=self._published_high,
            awaiting_puback=len(self._outstanding),
            connects=self._connects,
            republishes=self._republishes,
            refused_publishes=self._refused_publishes,
            refused_acks=self._refused_acks,
            ack_mismatches=self._ack_mismatches,
            handler_errors=self._handler_errors,
            last_ack_t=self._last_ack_t,
            last_error=self._last_error,
        )

    def close(self) -> None:
        """Publish ``offline``, disconnect and stop the thread; safe to call twice."""
        self._closed = True
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(JOIN_TIMEOUT_S)
            if t.is_alive():
                log.error("link thread %s did not stop within %.0f s", t.name, JOIN_TIMEOUT_S)

    def __enter__(self) -> GateLink:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(0):
                try:
                    busy = self._turn()
                except SyncError as exc:
                    # Outbox unreadable, or the like: say so, keep the link alive, retry.
                    self._error(str(exc))
                    busy = False
                    self._stop.wait(1.0)
                except Exception as exc:  # a bug or a library surprise: never die silently
                    log.exception("gate link %s: unexpected error; reconnecting", self.gate)
                    self._lost(self._mono(), f"unexpected error: {exc!r}"[:300])
                    busy = False
                    self._stop.wait(1.0)
                if not busy and self._state != "up":
                    self._stop.wait(0.05)
        finally:
            self._shutdown()

    def _turn(self) -> bool:
        now = self._mono()
        if self._state == "down":
            if now >= self._next_attempt:
                self._connect(now)
            return False
        client = self._client
        assert client is not None
        rc = self._net.pump(client, 0.01 if self._has_work() else 0.05)
        now = self._mono()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._state != "down":
            self._lost(now, f"network loop: {mqtt.error_string(rc)}")
            return False
        if self._state == "connecting":
            if now - self._connect_started > self._cfg.connect_timeout_s:
                self._lost(now, "no CONNACK within connect_timeout_s")
            return False
        if self._state != "up":
            return False
        self._apply_ack(now)
        self._check_timeout(now)
        busy = self._send_live(now)
        busy = self._send_backlog(now) or busy
        self._maybe_health(now)
        return busy

    def _has_work(self) -> bool:
        return self._state == "up" and (
            self._backlog_cursor < self._boundary or len(self._outstanding) > 0
        )

    # --- connection ------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        cfg = self._cfg
        v5 = cfg.protocol == "5"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.effective_client_id(self.gate),
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
        )
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        client.connect_timeout = cfg.connect_timeout_s
        client.max_inflight_messages_set(MAX_OUTSTANDING_PUBLISHES)
        cfg.apply_security(client)
        client.will_set(
            topics.status(self.gate), wire.encode_status(self.gate, "offline", None),
            qos=1, retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect(self, now: float) -> None:
        try:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
            self._connect_started = now
            self._state = "connecting"
            if not self._ever_connected:
                props: Properties | None = None
                if self._cfg.protocol == "5":
                    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                    props.SessionExpiryInterval = self._cfg.session_expiry_s
                    rc = client.connect(
                        self._cfg.host, self._cfg.port, self._cfg.keepalive,
                        clean_start=False, properties=props,
                    )
                else:
                    rc = client.connect(self._cfg.host, self._cfg.port, self._cfg.keepalive)
                self._ever_connected = True
            else:
                rc = client.reconnect()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise LinkError(mqtt.error_string(rc))
        except (OSError, ValueError, SyncError) as exc:
            # A refused TCP connection, a DNS failure, a TLS handshake failure, a missing
            # password: all the same to us, try again later.
            if isinstance(exc, SyncError) and not isinstance(exc, LinkError):
                self._client = None  # config problem (password): rebuild next time
                self._ever_connected = False
            self._lost(now, f"connect to {self._cfg.host}:{self._cfg.port}: {exc}")

    def _lost(self, now: float, why: str) -> None:
        was_up = self._state == "up"
        self._state = "down"
        self._connected = False
        if self._client is not None:
            # Drop the socket without a DISCONNECT packet: a clean DISCONNECT would cancel
            # the Last Will, and the centre should see "offline" while we are away.
            sock = self._client.socket()
            self._net.forget()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        delay = backoff_delay(self._attempts, self._cfg.reconnect_min_s,
                              self._cfg.reconnect_max_s, self._rng)
        self._attempts = min(self._attempts + 1, 30)
        self._next_attempt = now + delay
        self._error(f"{why}; retrying in {delay:.1f} s")
        if was_up:
            log.warning("gate %s link down: %s", self.gate, why)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        now = self._mono()
        if reason_code.is_failure:
            self._lost(now, f"broker refused the connection: {reason_code}")
            return
        self._state = "up"
        self._connected = True
        self._attempts = 0
        self._connects += 1
        subs = [(self._ack_topic, 1)] + [(t, q) for t, (q, _) in self._handlers.items()]
        rc, _mid = client.subscribe(subs)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(now, f"subscribe failed: {mqtt.error_string(rc)}")
            return
        if not self._publish(topics.status(self.gate),
                             wire.encode_status(self.gate, "online", self._clock()),
                             qos=1, retain=True):
            return  # _publish has marked the link down
        # Everything unacknowledged now counts as backlog; later events are live.
        self._boundary = self._outbox.max_seq()
        self._backlog_cursor = self._acked
        self._live_cursor = max(self._boundary, self._acked)
        self._inflight.clear()
        self._outstanding.clear()
        self._tokens = 0.0
        self._refill_at = now
        self._next_health = now  # health right after connecting
        log.info("gate %s link up (backlog through seq %d)", self.gate, self._boundary)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        if self._state != "down" and not self._stop.is_set():
            self._lost(self._mono(), f"disconnected: {reason_code}")

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        for rc in reason_codes:
            if rc.is_failure:
                self._error(f"broker refused a subscription: {rc}")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        self._outstanding.discard(mid)
        if reason_code.is_failure:
            # MQTT 5 says so (135 = not authorized); MQTT 3.1.1 cannot, hence app acks.
            self._refused_publishes += 1
            self._error(f"broker refused a publish: {reason_code}")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic, payload = msg.topic, bytes(msg.payload)
        if topic == self._ack_topic:
            if not payload:
                return  # a cleared retained ack: nothing acknowledged
            try:
                ack = wire.decode_ack(payload, self.gate)
            except WireError as exc:
                self._refused_acks += 1
                self._error(f"ack refused: {exc}")
                return
            if ack.names() and ack.seq > self._acked:
                assert ack.first is not None
                held = self._pending_acks.get(ack.first)
                if held is None or held.seq < ack.seq:
                    self._pending_acks[ack.first] = ack
                while len(self._pending_acks) > MAX_PENDING_ACKS:
                    # Drop the one furthest from applying; a later ack covers it.
                    del self._pending_acks[max(self._pending_acks)]
            self._last_ack_t = self._clock()
            return
        entry = self._handlers.get(topic)
        if entry is None:
            return
        try:
            entry[1](topic, payload, bool(msg.retain))
        except Exception as exc:  # a handler must never take the link down
            self._handler_errors += 1
            log.exception("downlink handler for %s failed", topic)
            self._error(f"downlink handler for {topic} failed: {exc}")

    # --- publishing ------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        client = self._client
        if client is None:
            return False
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(self._mono(), f"publish on {topic} failed: {mqtt.error_string(info.rc)}")
            return False
        if qos > 0:
            self._outstanding.add(info.mid)
        return True

    def _send(self, rows: list[tuple[int, str]], now: float) -> int | None:
        """Publish ``rows`` as batches; return the last seq sent, None if the link failed."""
        last_sent: int | None = None
        for first, last, payload in wire.encode_raw_batches(
            self.gate, rows, self._cfg.batch_size, signer=self._signer, groups=self._groups
        ):
            if not self._publish(self._events_topic, payload, qos=1):
                return None
            self._inflight[first] = (last, now)
            self._published_high = max(self._published_high, last)
            last_sent = last
        return last_sent

    def _room(self) -> bool:
        return self._state == "up" and len(self._outstanding) < MAX_OUTSTANDING_PUBLISHES

    def _send_live(self, now: float) -> bool:
        busy = False
        for _ in range(BATCHES_PER_TURN):
            if not self._room():
                return True
            rows = self._outbox.pending_raw(self._cfg.batch_size, after_seq=self._live_cursor)
            if not rows:
                return busy
            sent = self._send(rows, now)
            if sent is None:
                return False
            self._live_cursor = sent
            busy = True
        return busy

    def _send_backlog(self, now: float) -> bool:
        rate = self._cfg.drain_rate
        cap = max(float(self._cfg.batch_size), rate * 0.25)
        self._tokens = min(cap, self._tokens + (now - self._refill_at) * rate)
        self._refill_at = now
        busy = False
        for _ in range(BATCHES_PER_TURN):
            if self._backlog_cursor >= self._boundary or not self._room():
                return busy
            window = self._cfg.max_unacked - (self._backlog_cursor - self._acked)
            # Whole batches only (the last one may be short): trickling out every token
            # as it accrues would send thousands of tiny messages for the same events.
            n = int(min(self._cfg.batch_size, self._boundary - self._backlog_cursor, window))
            if n < 1 or self._tokens < n:
                return busy
            rows = self._outbox.pending_raw(n, after_seq=self._backlog_cursor,
                                            through_seq=self._boundary)
            if not rows:
                self._backlog_cursor = self._boundary
                return busy
            sent = self._send(rows, now)
            if sent is None:
                return False
            self._tokens -= len(rows)
            self._backlog_cursor = sent
            busy = True
        return busy

    def _apply_ack(self, now: float) -> None:
        # The outbox checks each ack's digest against the ids it holds, so a stale
        # retained ack, a reset ledger reusing seqs or another device's events under our
        # gate id delete nothing. Acks may arrive out of order (several workers): one
        # that starts above our acked seq waits until the one below it has applied.
        if not self._pending_acks:
            return
        progressed = True
        while progressed:
            progressed = False
            for first in sorted(self._pending_acks):
                ack = self._pending_acks[first]
                outcome, _ = self._outbox.apply_ack(ack)
                if outcome is AckOutcome.AHEAD:
                    continue
                del self._pending_acks[first]
                if outcome is AckOutcome.STALE and ack.seq > self._outbox.acked_through():
                    # Its range starts at rows deleted here, so it cannot be checked, but
                    # the centre holds more: republish now and get an ack from our seq.
                    self._stale_nudge = True
                if outcome is AckOutcome.MISMATCH:
                    self._ack_mismatches += 1
                    self._error(
                        f"centre ack through seq {ack.seq} names events this gate did not "
                        "write: another device may be using this gate id; nothing deleted"
                    )
                    log.error("gate %s: centre holds other events than ours in seqs %d..%d;"
                              " another device may speak as this gate", self.gate,
                              first, ack.seq)
                elif outcome is AckOutcome.APPLIED:
                    progressed = True
                    break
        target = self._outbox.acked_through()
        if target <= self._acked:
            return
        self._acked = target
        self._pending_acks = {f: a for f, a in self._pending_acks.items() if a.seq > target}
        self._ack_timeout = self._cfg.ack_timeout_s
        for first in [f for f, (last, _) in self._inflight.items() if last <= target]:
            del self._inflight[first]
        self._backlog_cursor = max(self._backlog_cursor, target)
        self._live_cursor = max(self._live_cursor, target)

    def _check_timeout(self, now: float) -> None:
        nxt = self._acked + 1
        if self._stale_nudge:
            self._stale_nudge = False
            if self._inflight:
                self._republishes += 1
                log.info("gate %s: centre acked beyond seq %d with a range we cannot check;"
                         " republishing from it", self.gate, nxt)
                self._inflight.clear()
                self._backlog_cursor = self._acked
                self._live_cursor = max(self._boundary, self._acked)
                return
        for first, (last, sent_at) in self._inflight.items():
            if first <= nxt <= last:
                if now - sent_at > self._ack_timeout:
                    self._republishes += 1
                    log.warning("gate %s: no ack for seq %d after %.0f s; republishing",
                                self.gate, nxt, self._ack_timeout)
                    # A centre that is merely slow must not be buried under repeats: wait
                    # twice as long each time in a row, up to 8x; progress resets it.
                    self._ack_timeout = min(self._ack_timeout * 2, self._cfg.ack_timeout_s * 8)
                    self._inflight.clear()
                    self._backlog_cursor = self._acked
                    self._live_cursor = max(self._boundary, self._acked)
                return

    def _maybe_health(self, now: float) -> None:
        with self._health_lock:
            dirty, fields = self._health_dirty, dict(self._health)
            self._health_dirty = False
        if not dirty and now < self._next_health:
            return
        self._next_health = now + self._cfg.health_period_s
        # The link's own figures win over any the agent passed under the same names.
        fields["backlog"] = self._last_backlog = self._outbox.backlog()
        fields["acked"] = self._acked
        fields["republishes"] = self._republishes
        try:
            payload = wire.encode_health(self.gate, self._clock(), fields)
        except WireError as exc:
            self._error(f"health not published: {exc}")
            return
        self._publish(topics.health(self.gate), payload, qos=0, retain=True)

    def _error(self, message: str) -> None:
        self._last_error = message
        log.debug("gate %s: %s", self.gate, message)

    def _shutdown(self) -> None:
        try:
            self._shutdown_client()
        finally:
            self._net.close()
            self._net = NetLoop()  # a link started again gets a fresh one

    def _shutdown_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._state == "up":
            info = client.publish(topics.status(self.gate),
                                  wire.encode_status(self.gate, "offline", self._clock()),
                                  qos=1, retain=True)
            deadline = self._mono() + 2.0
            while (info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not info.is_published()
                   and self._mono() < deadline):
                if self._net.pump(client, 0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            if not info.is_published():
                log.warning("gate %s: offline status not confirmed; the Last Will covers it",
                            self.gate)
        self._state = "down"
        self._connected = False
        with contextlib.suppress(Exception):  # closing anyway: the socket may be gone
            client.disconnect()
            if client.socket() is not None:  # DISCONNECT not flushed yet
                self._net.pump(client, 0.05)
