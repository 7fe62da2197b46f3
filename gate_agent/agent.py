"""The gate agent: frames in, decisions out, every decision on disk before the gate moves.

Pipeline per frame: source -> decode -> debounce -> ``verifier.verify_at`` -> policy ->
ledger commit (event + outbox row, one transaction) -> outputs (turnstile, lights) ->
console state and metrics. :class:`GateAgent` also implements the console's
:class:`gate_agent.console.backend.ConsoleBackend` and the callbacks sync calls when the
centre sends trust lists, revocations, time beacons and the site-wide used-permit stream.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gate_agent.clock import TimeReading, TrustedClock
from gate_agent.config import AgentConfig
from gate_agent.debounce import Debouncer
from gate_agent.errors import (
    ConfigError,
    ConsoleRequestError,
    LedgerError,
    ShutdownError,
)
from gate_agent.ledger import Ledger, Recorded
from gate_agent.policy import Decision, GateState, decide, decide_refused
from gate_agent.reasons import FLAG_PARTIAL, GateReason, Verdict
from gate_agent.trust import GateTrust
from hardware.errors import SourceGaveUp
from sync.errors import OutboxError
from sync.schema import GateEvent
from verifier.errors import PermitRefused
from verifier.permit import VerifiedPermit
from verifier.verify import SlotWindow, verify_at

if TYPE_CHECKING:
    from gate_agent.decode import Code, Decoder
    from hardware.outputs import GateOutputs
    from hardware.sources import Frame, FrameSource

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
MAX_PAYLOAD_CHARS = 4096  # permits are a few hundred characters; anything longer is junk
RECENT = 20
PENDING_TTL_S = 120.0  # a group awaiting its head count is forgotten after this
PENDING_MAX = 32
OVERRIDE_LINK_S = 120.0  # an override right after a refusal applies to that permit
NOTE_MAX = 500
TIME_NOTE_MIN = 5
HEALTH_PERIOD_S = 2.0
#: Source states in health and on the console: delivering, reopening, done, given up.
SOURCE_UP, SOURCE_RECONNECTING, SOURCE_FINISHED, SOURCE_FAILED = (
    "up", "reconnecting", "finished", "failed")


class SyncLink(Protocol):
    """What the agent needs from ``sync.GateSync``: status for the console and health."""

    def backlog(self) -> int: ...

    def status(self) -> Any: ...

    def publish_health(self, fields: Any) -> None: ...


VerifyFn = Callable[..., VerifiedPermit]


@dataclass
class _Pending:
    """A group permit admitted in principle, waiting for the attendant's head count."""

    permit: VerifiedPermit
    reading: TimeReading
    created_mono: float
    view: dict[str, Any]


class _Metrics:
    """The agent's Prometheus metrics, in the agent's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "gatepass_agent_decisions", "Decisions by verdict and reason",
            ["verdict", "reason"], registry=registry,
        )
        self.admitted = Counter(
            "gatepass_agent_admitted_people", "People admitted (committed)", registry=registry
        )
        self.latency = Histogram(
            "gatepass_agent_decision_seconds", "From payload to committed verdict",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        )
        self.decode = Histogram(
            "gatepass_agent_decode_seconds", "Decoding one frame",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1), registry=registry,
        )
        self.frames = Counter("gatepass_agent_frames", "Frames processed", registry=registry)
        self.fps = Gauge("gatepass_agent_fps", "Frames per second (recent)", registry=registry)
        self.clock_trusted = Gauge(
            "gatepass_agent_clock_trusted", "1 when the clock is trusted", registry=registry
        )
        self.ledger_errors = Counter(
            "gatepass_agent_ledger_errors", "Failed ledger commits", registry=registry
        )
        self.output_errors = Counter(
            "gatepass_agent_output_errors", "Failed turnstile/light signals", registry=registry
        )
        self.sync_backlog = Gauge(
            "gatepass_agent_sync_backlog", "Events not yet acknowledged", registry=registry
        )


class _SourceCollector(Collector):
    """Source gauges and counters, read from the source when Prometheus scrapes.

    Computed at scrape time, so the per-frame path only stores a monotonic timestamp.
    """

    def __init__(self, agent: GateAgent) -> None:
        self._agent = agent

    def describe(self) -> list[Metric]:
        return []  # names not reserved up front: one collector per agent registry

    def collect(self) -> list[Metric]:
        info = self._agent.source_health()
        if info is None:
            return []
        up = GaugeMetricFamily("gatepass_agent_source_up",
                               "1 while the frame source delivers, 0 while down or ended")
        up.add_metric([], 1.0 if info["state"] == SOURCE_UP else 0.0)
        age = GaugeMetricFamily("gatepass_agent_source_last_frame_age_seconds",
                                "Seconds since the frame loop last got a frame (or started)")
        age.add_metric([], float(info["last_frame_age_s"]))
        down = GaugeMetricFamily("gatepass_agent_source_down_seconds",
                                 "How long the current source outage has lasted (0 while up)")
        down.add_metric([], float(info.get("down_for_s") or 0.0))
        drops = CounterMetricFamily("gatepass_agent_source_disconnects",
                                    "Frame source outages (a drop and its failed retries)")
        drops.add_metric([], float(info.get("disconnects") or 0))
        back = CounterMetricFamily("gatepass_agent_source_reconnects",
                                   "Frame source returns after an outage")
        back.add_metric([], float(info.get("reconnects") or 0))
        return [up, age, down, drops, back]


def _permit_view(p: VerifiedPermit) -> dict[str, Any]:
    return {
        "type": p.ptype, "slot_start": p.slot_start, "slot_end": p.slot_end, "party": p.party,
        "initials": p.holder_initials, "doc_digits": p.holder_doc_digits, "ph": p.ph,
        "route": p.route, "departure": p.departure, "site": p.site,
        "gate_groups": list(p.gate_groups), "health": p.health, "issuer": p.issuer,
    }


def _recent_row(rec: Recorded) -> dict[str, Any]:
    ev = rec.event
    return {
        "id": ev.eid, "seq": ev.seq, "t": ev.t, "kind": ev.kind, "verdict": ev.verdict,
        "reason": ev.reason, "type": ev.ptype, "party": ev.party,
        "initials": rec.details.get("initials"),
    }


class GateAgent:
    """One gate: decides on each scan and records it durably before signalling.

    Collaborators are passed in by keyword; ``source``, ``decoder`` and ``outputs`` may be
    ``None`` (``gatepass agent scan`` has no camera and no turnstile; tests feed payloads).
    A context manager: ``start()`` runs the frame and clock threads, ``close()`` (safe
    twice) stops them. Implements :class:`gate_agent.console.backend.ConsoleBackend`.
    """

    def __init__(
        self,
        *,
        config: AgentConfig,
        ledger: Ledger,
        clock: TrustedClock,
        trust: GateTrust,
        source: FrameSource | None = None,
        decoder: Decoder | None = None,
        outputs: GateOutputs | None = None,
        sync: SyncLink | None = None,
        debouncer: Debouncer | None = None,
        verify: VerifyFn | None = None,
        mono: Callable[[], float] = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._cfg = config
        self.ledger = ledger
        self.clock = clock
        self.trust = trust
        self.source = source
        self.decoder = decoder
        self.outputs = outputs
        self.sync = sync
        self.debouncer = debouncer if debouncer is not None else Debouncer(config.debounce_s)
        self._verify: VerifyFn = verify if verify is not None else verify_at
        self._mono = mono
        self.metrics_registry = registry if registry is not None else CollectorRegistry()
        self._m = _Metrics(self.metrics_registry)
        self.metrics_registry.register(_SourceCollector(self))
        # One decision at a time: usage is read, decided on and committed as one step.
        self._decide_lock = threading.RLock()
        self._state_lock = threading.Condition()
        self._version = 0
        self._last: dict[str, Any] | None = None
        self._pending: dict[str, _Pending] = {}
        self._last_refusal: tuple[float, VerifiedPermit] | None = None
        # A clock earlier than what this gate already recorded is wrong (power cut, set back).
        clock.set_floor(ledger.last_trusted_t())
        admitted, denied = ledger.totals()
        self._gate_admitted = admitted
        self._gate_denied = denied
        self._recent: collections.deque[dict[str, Any]] = collections.deque(
            (_recent_row(r) for r in ledger.recent(RECENT)), maxlen=RECENT
        )
        self._slot: tuple[int, int] | None = None
        self._stream_seen_mono: float | None = None
        self._sync_online: bool | None = None
        self._backlog_error: str | None = None
        self._fps = 0.0
        self._decode_ms: collections.deque[float] = collections.deque(maxlen=101)
        self._frame_times: collections.deque[float] = collections.deque(maxlen=120)
        # Frame-loop progress, read by health, metrics and the systemd watchdog.
        self._loop_started_mono = mono()
        self._last_frame_mono: float | None = None
        self._busy_since: float | None = None
        self._source_failure: str | None = None
        self._source_finished = False
        self._source_state_shown: str | None = None
        #: Last applied version per downlink line (seeds sync after a restart).
        self.downlink_versions: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def config(self) -> AgentConfig:
        return self._cfg

    def start(self) -> GateAgent:
        """Start the clock poller and (with a source) the frame loop."""
        if self._threads:
            return self
        self.clock.poll()
        self._threads.append(
            threading.Thread(target=self._clock_loop, name="gate-agent-clock", daemon=True)
        )
        if self.source is not None:
            self._threads.append(
                threading.Thread(target=self._frame_loop, name="gate-agent-frames", daemon=True)
            )
        for th in self._threads:
            th.start()
        log.info("gate agent started", extra={"gate": self._cfg.gate, "mode": self._cfg.mode})
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads; raise :class:`ShutdownError` naming any that would not stop."""
        self._stop.set()
        if self.source is not None:
            self.source.close()  # ends a blocking read()
        stuck = []
        for th in self._threads:
            th.join(timeout)
            if th.is_alive():
                stuck.append(th.name)
        self._threads = []
        with self._state_lock:
            self._state_lock.notify_all()
        if stuck:
            raise ShutdownError(f"threads did not stop within {timeout}s: {', '.join(stuck)}")

    def close(self) -> None:
        """Stop threads and release the outputs; the ledger and source belong to the caller."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            log.info("gate agent stopped", extra={"gate": self._cfg.gate})

    def __enter__(self) -> GateAgent:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def stopped(self) -> threading.Event:
        return self._stop

    def _clock_loop(self) -> None:
        # Health (link state, metrics) every HEALTH_PERIOD_S; the slower timedatectl probe
        # every clock.poll_s.
        last_poll = self._mono()
        while not self._stop.wait(min(HEALTH_PERIOD_S, self._cfg.clock.poll_s)):
            try:
                if self._mono() - last_poll >= self._cfg.clock.poll_s:
                    last_poll = self._mono()
                    self.clock.poll()
                self._refresh_health()
            except Exception:  # a probe failure must not kill the poller
                log.exception("clock poll or health refresh failed")

    def _frame_loop(self) -> None:
        """Read and process frames until the agent stops; never ends silently.

        The source reopens itself after a failure (hardware.sources.reopen); what reaches
        here is final: ``SourceGaveUp`` (or any other error) records a fatal state that
        ``gatepass agent run`` turns into a non-zero exit, and the end of a finite source
        (a folder read once, a video file) is logged and shown on health and console.
        """
        assert self.source is not None
        self._loop_started_mono = self._mono()
        while not self._stop.is_set():
            try:
                frame = self.source.read()
            except SourceGaveUp as exc:
                self._source_failed(str(exc))
                return
            except Exception as exc:
                log.exception("frame source failed")
                name = getattr(self.source, "name", "source")
                self._source_failed(f"{name} failed: {type(exc).__name__}: {exc}")
                return
            if frame is None:
                if not self._stop.is_set():
                    log.warning("frame source finished: no more frames will be read",
                                extra={"source": getattr(self.source, "name", None)})
                    self._source_finished = True
                    self._touch()
                return
            self._last_frame_mono = self._busy_since = self._mono()
            try:
                self.process_frame(frame)
            except Exception:  # one bad frame must not stop the gate
                log.exception("frame %d could not be processed", frame.index)
            finally:
                self._busy_since = None

    def _source_failed(self, why: str) -> None:
        log.error("frame source gave up: %s", why,
                  extra={"source": getattr(self.source, "name", None)})
        self._source_failure = why
        self._touch()

    @property
    def source_failure(self) -> str | None:
        """Why the frame source gave up for good (the agent should exit), or ``None``."""
        return self._source_failure

    def frame_loop_healthy(self, max_busy_s: float) -> bool:
        """True while the frame loop makes progress (for the systemd watchdog).

        Waiting on the source is healthy (a quiet scanner, a camera being reopened: the
        source's own give-up time bounds that); one frame in processing for longer than
        ``max_busy_s``, a source that gave up, or a frame thread that died are not. Nor is
        a live camera that claims to be connected but sent nothing for three times its
        ``stall_after_s``: its driver hangs past every timeout, and only a restart helps.
        """
        if self.source is None:
            return True
        if self._source_failure is not None:
            return False
        now = self._mono()
        busy = self._busy_since
        if busy is not None and now - busy > max_busy_s:
            return False
        if self._stop.is_set() or self._source_finished:
            return True
        stall = getattr(getattr(self.source, "policy", None), "stall_after_s", None)
        if isinstance(stall, (int, float)):
            try:
                quiet = self.source.status().quiet_for_s
            except Exception:  # a health probe must never break the watchdog
                quiet = None
            if quiet is not None and quiet > 3 * stall + max_busy_s:
                return False
        return any(th.name == "gate-agent-frames" and th.is_alive() for th in self._threads)

    def source_health(self) -> dict[str, Any] | None:
        """The source's status plus the loop's view: state and seconds since the last frame."""
        if self.source is None:
            return None
        info = self._device_health(self.source, "status") or {}
        if self._source_failure is not None:
            state = SOURCE_FAILED
            info["error"] = self._source_failure
        elif self._source_finished:
            state = SOURCE_FINISHED
        elif info.get("connected") is False or info.get("ok") is False:
            state = SOURCE_RECONNECTING
        else:
            state = SOURCE_UP
        last = self._last_frame_mono
        since = last if last is not None else self._loop_started_mono
        info["state"] = state
        info["last_frame_age_s"] = round(max(0.0, self._mono() - since), 1)
        return info

    # -- the pipeline ------------------------------------------------------------------

    def process_frame(self, frame: Frame) -> list[dict[str, Any]]:
        """Decode one frame and decide on every new code in it; return the decisions."""
        self._m.frames.inc()
        self._frame_times.append(frame.t_mono)
        if frame.text is not None:
            # A keyboard-wedge line is a deliberate scan: no debounce.
            return [self.handle_payload(frame.text.decode("utf-8", "replace"), origin="wedge")]
        if frame.image is None or self.decoder is None:
            return []
        t0 = self._mono()
        codes: list[Code] = self.decoder.decode(frame.image)
        dt = self._mono() - t0
        self._decode_ms.append(dt * 1000.0)
        self._m.decode.observe(dt)
        fresh = self.debouncer.feed(codes, frame.t_mono)
        return [self.handle_payload(c.text, origin="camera") for c in fresh]

    def handle_payload(self, text: str, *, origin: str = "console") -> dict[str, Any]:
        """Verify, decide, commit, signal and show one scanned payload; return the decision."""
        t0 = self._mono()
        if len(text) > MAX_PAYLOAD_CHARS:
            text = text[: MAX_PAYLOAD_CHARS + 1]  # verify_at refuses it as too large
        with self._decide_lock:
            reading = self.clock.now()
            permit: VerifiedPermit | None = None
            cfg = self._cfg
            try:
                permit = self._verify(
                    text, reading.t, trust=self.trust.store,
                    revocations=self.trust.revocations, window=self._window(),
                    presentation_policy=cfg.permits.presentation,
                    presentation_tolerance_s=cfg.permits.presentation_tolerance_s,
                )
            except PermitRefused as exc:
                permit = None
                decision = decide_refused(exc, cfg, reading)
            try:
                if permit is not None:
                    decision = decide(permit, cfg, self._gate_state(permit, reading))
                view = self._commit(decision, permit, reading, origin)
            except LedgerError as exc:
                view = self._ledger_failed({
                    "id": uuid.uuid4().hex, "t": reading.t, "tc": reading.confidence,
                    "kind": "scan", "permit": _permit_view(permit) if permit else None,
                    "remaining": 0, "flags": [], "origin": origin,
                }, exc)
        self._m.latency.observe(self._mono() - t0)
        return view

    def _window(self) -> SlotWindow:
        return SlotWindow(
            early_s=self._cfg.permits.early_grace_s, late_s=self._cfg.permits.late_grace_s
        )

    def _gate_state(self, permit: VerifiedPermit, reading: TimeReading) -> GateState:
        slot = permit.slot_start
        return GateState(
            time=reading,
            usage=self.ledger.usage(permit.ph, slot),
            used_elsewhere=self._cfg.passback.scope == "site"
            and self.ledger.used_elsewhere(permit.ph),
            site_stream_fresh=self._stream_fresh(),
            slot_admitted=self.ledger.slot_admitted(slot),
            trip=self.ledger.current_trip() if self._cfg.mode == "boarding" else None,
        )

    def _stream_fresh(self) -> bool:
        # Online: the site-wide stream is live (quiet only when nobody went in elsewhere).
        # Offline: what arrived before the cut still counts for stale_after_s.
        if self._sync_online:
            return True
        seen = self._stream_seen_mono
        return seen is not None and self._mono() - seen <= self._cfg.passback.stale_after_s

    def _commit(
        self, d: Decision, permit: VerifiedPermit | None, reading: TimeReading, origin: str
    ) -> dict[str, Any]:
        cfg = self._cfg
        did = uuid.uuid4().hex
        trip = self.ledger.current_trip() if cfg.mode == "boarding" else None
        view: dict[str, Any] = {
            "id": did, "t": reading.t, "tc": reading.confidence, "kind": "scan",
            "verdict": d.verdict.value, "reason": d.reason,
            "permit": _permit_view(permit) if permit is not None else None,
            "admitted": 0, "remaining": d.remaining, "awaiting_count": d.awaiting_count,
            "max_count": d.max_count, "flags": list(d.flags), "origin": origin,
            "trip": trip.trip_id if trip else None,
        }
        if d.would_verdict is not None:
            view["would"] = {"verdict": d.would_verdict.value, "reason": d.would_reason}
        if cfg.mode == "counter" and permit is not None:
            view["history"] = [_recent_row(r) for r in self.ledger.history(permit.ph)]
        if d.awaiting_count and permit is not None:
            # Nothing opens and nothing is recorded until the attendant gives a head count.
            self._expire_pending()
            self._pending[did] = _Pending(permit, reading, self._mono(), view)
            self._publish(view, None)
            return view
        kind = "inspect" if d.verdict == Verdict.INSPECT else "scan"
        view["kind"] = kind
        try:
            event = self.ledger.append(
                t=reading.t, tc=reading.confidence, kind=kind, verdict=d.verdict.value,
                mode=cfg.mode, reason=d.reason, ph=permit.ph if permit else None,
                ptype=permit.ptype if permit else None,
                slot=permit.slot_start if permit else None,
                slot_end=permit.slot_end if permit else None,
                party=d.party if d.verdict == Verdict.ADMIT else 0,
                trip=trip.trip_id if trip and d.verdict == Verdict.ADMIT else None,
                flags=d.flags, details=self._details(permit, origin),
            )
        except LedgerError as exc:
            return self._ledger_failed(view, exc)
        view["id"] = view["event"] = event.eid  # a recorded decision is known by its event
        view["seq"] = event.seq
        view["admitted"] = event.admitted
        if d.verdict == Verdict.DENY and permit is not None:
            self._last_refusal = (self._mono(), permit)
        self._signal(d.verdict)
        self._publish(view, event)
        return view

    @staticmethod
    def _details(permit: VerifiedPermit | None, origin: str) -> dict[str, Any]:
        if permit is None:
            return {"origin": origin}
        return {
            "initials": permit.holder_initials, "doc_digits": permit.holder_doc_digits,
            "party_of": permit.party, "origin": origin,
        }

    def _ledger_failed(self, view: dict[str, Any], exc: LedgerError) -> dict[str, Any]:
        # Not recorded means not admitted: the turnstile stays shut and the attendant sees why.
        self._m.ledger_errors.inc()
        log.error("ledger commit failed: %s", exc)
        view.update(
            verdict=Verdict.DENY.value, reason=GateReason.LEDGER_FAILURE.value, admitted=0,
            awaiting_count=False, error=str(exc),
        )
        self._signal(Verdict.DENY)
        self._publish(view, None)
        return view

    def _signal(self, verdict: Verdict) -> None:
        if self.outputs is None or verdict == Verdict.INSPECT:
            return
        try:
            if verdict == Verdict.ADMIT:
                self.outputs.signal_admit()
            else:
                self.outputs.signal_deny()
        except Exception as exc:
            # The admission is already committed; the attendant lets the person through.
            self._m.output_errors.inc()
            log.error("gate output failed: %s", exc)

    def _publish(self, view: dict[str, Any], event: GateEvent | None) -> None:
        self._m.decisions.labels(view["verdict"], view["reason"] or "").inc()
        if event is not None and event.admitted:
            self._m.admitted.inc(event.admitted)
        log.info(
            "decision",
            extra={k: view.get(k) for k in ("verdict", "reason", "kind", "seq", "origin")}
            | {"ph": (view.get("permit") or {}).get("ph")},
        )
        with self._state_lock:
            self._last = view
            if event is not None:
                if event.admitted:
                    self._gate_admitted += event.admitted
                elif event.verdict in ("deny", "untrusted_time"):
                    self._gate_denied += 1
                self._recent.appendleft(_recent_row(Recorded(event, {
                    "initials": (view.get("permit") or {}).get("initials")})))
                if event.slot is not None and event.slot_end is not None:
                    self._slot = (event.slot, event.slot_end)
            self._bump()

    def _bump(self) -> None:
        # Caller holds _state_lock.
        self._version += 1
        self._state_lock.notify_all()

    def _expire_pending(self) -> None:
        now = self._mono()
        for k in [k for k, p in self._pending.items() if now - p.created_mono > PENDING_TTL_S]:
            del self._pending[k]
        while len(self._pending) >= PENDING_MAX:  # oldest first: dicts keep insertion order
            del self._pending[next(iter(self._pending))]

    # -- sync callbacks ----------------------------------------------------------------

    def on_trust_list(self, signed: bytes) -> None:
        self.trust.apply_trust_list(signed)
        self._touch()

    def on_trust_changed(self) -> None:
        """Sync installed a newer trust list into ``trust.store`` (same object)."""
        self._touch()

    def on_revocations(self, signed: bytes) -> None:
        self.trust.apply_revocations(signed)
        self._touch()

    def on_time_beacon(self, beacon_t: float, received_mono: float | None = None) -> None:
        self.clock.beacon(beacon_t, received_mono=received_mono)
        self._touch()

    def on_used_permits(self, items: Iterable[tuple[str, str, float]]) -> None:
        """The site-wide used-permit stream: (ph, gate, t) admitted at the site."""
        self.ledger.add_site_used(items)
        self._stream_seen_mono = self._mono()

    def on_link(self, online: bool) -> None:
        """Sync's link went up or down (the used-permit stream goes stale while down)."""
        if self._sync_online and not online:
            self._stream_seen_mono = self._mono()  # the stream was live until now
        self._sync_online = online
        self._touch()

    def reload_config(self, new: AgentConfig) -> None:
        """Apply changed rules (from sync or SIGHUP); identity and files cannot change."""
        old = self._cfg
        fixed = ("gate", "site", "mode", "ledger")
        changed = [k for k in fixed if getattr(old, k) != getattr(new, k)]
        if changed:
            raise ConfigError(
                f"cannot change {', '.join(changed)} while running: restart the agent"
            )
        with self._decide_lock:
            self._cfg = new
            self.debouncer.hold_off_s = new.debounce_s
        log.info("config reloaded", extra={"gate": new.gate})
        self._touch()

    def _touch(self) -> None:
        with self._state_lock:
            self._bump()

    def _refresh_health(self) -> None:
        source = self.source_health()
        if source is not None:
            state = source["state"]
            # Consoles re-render on a version change: on a state change, and every
            # refresh while reconnecting so the banner's seconds keep counting.
            if state != self._source_state_shown or state == SOURCE_RECONNECTING:
                self._source_state_shown = state
                self._touch()
        r = self.clock.now()
        self._m.clock_trusted.set(1 if r.trusted else 0)
        fps = self._current_fps()
        self._m.fps.set(fps)
        backlog = self._backlog()
        self._m.sync_backlog.set(float("nan") if backlog is None else backlog)
        sync = self.sync
        if sync is not None:
            try:
                connected = bool(sync.status().connected)
                if connected != self._sync_online:
                    self.on_link(connected)
                fields: dict[str, Any] = {"clock": r.confidence, "fps": round(fps, 1),
                                          "admitted": self._gate_admitted}
                if source is not None:  # the centre sees a blind gate too
                    fields["source"] = source["state"]
                    fields["source_age_s"] = source["last_frame_age_s"]
                sync.publish_health(fields)
            except Exception:
                log.exception("sync status unavailable")

    # -- console backend ---------------------------------------------------------------

    def version(self) -> int:
        with self._state_lock:
            return self._version

    def wait_for_change(self, version: int, timeout: float) -> int:
        with self._state_lock:
            self._state_lock.wait_for(
                lambda: self._version != version or self._stop.is_set(), timeout=max(timeout, 0)
            )
            return self._version

    def _current_fps(self) -> float:
        times = list(self._frame_times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def _backlog(self) -> int | None:
        """Events not yet acknowledged, or ``None`` when the outbox cannot be read.

        Never 0 for "unknown": operators check this figure before they retire a ledger.
        The reason is kept for the console (``sync_backlog_error``) and logged once.
        """
        try:
            n = int(self.sync.backlog()) if self.sync is not None else self.ledger.outbox_backlog()
        except (OutboxError, LedgerError) as exc:
            if self._backlog_error != str(exc):
                log.error("cannot count the sync backlog: %s", exc)
            self._backlog_error = str(exc)
            return None
        self._backlog_error = None
        return n

    def _clock_view(self, r: TimeReading) -> dict[str, Any]:
        return {"state": r.confidence, "trusted": r.trusted, "now": r.t, "banner": r.banner,
                "jumps": self.clock.jumps}

    def snapshot(self) -> dict[str, Any]:
        cfg = self._cfg
        r = self.clock.now()
        trip = self.ledger.current_trip() if cfg.mode == "boarding" else None
        with self._state_lock:
            slot = self._slot
            snap: dict[str, Any] = {
                "version": self._version, "gate": cfg.gate, "site": cfg.site, "mode": cfg.mode,
                "languages": {"attendant": cfg.languages.attendant,
                              "pilgrim": cfg.languages.pilgrim},
                "clock": self._clock_view(r),
                "last": dict(self._last) if self._last is not None else None,
                "counters": {
                    "gate_admitted": self._gate_admitted, "gate_denied": self._gate_denied,
                    "slot_start": slot[0] if slot else None,
                    "slot_end": slot[1] if slot else None,
                    "slot_admitted": 0, "slot_capacity": cfg.capacity.per_slot,
                },
                "recent": list(self._recent),
            }
        if slot is not None:
            snap["counters"]["slot_admitted"] = self.ledger.slot_admitted(slot[0])
        snap["trip"] = None
        if trip is not None:
            row = self.ledger.trip(trip.trip_id) or {}
            snap["trip"] = {k: row.get(k) for k in
                            ("id", "bus", "route", "departure", "seats", "boarded", "opened_at")}
        snap["trips"] = self.ledger.closed_trips() if cfg.mode == "boarding" else []
        median = sorted(self._decode_ms)[len(self._decode_ms) // 2] if self._decode_ms else 0.0
        snap["health"] = {
            "fps": round(self._current_fps(), 1), "decode_ms": round(median, 2),
            "clock": r.confidence, "sync_backlog": self._backlog(),
            "sync_backlog_error": self._backlog_error,
            "online": self._sync_online, "clock_jumps": self.clock.jumps,
            "outputs": self._device_health(self.outputs, "health"),
            "source": self.source_health(),
        }
        return snap

    @staticmethod
    def _device_health(device: Any, method: str) -> dict[str, Any] | None:
        if device is None or not hasattr(device, method):
            return None
        try:
            state = getattr(device, method)()
            return {k: getattr(state, k) for k in state.__dataclass_fields__}
        except Exception as exc:  # health must never break the console
            return {"ok": False, "error": str(exc)}

    def submit_payload(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str) or not text.strip():
            raise ConsoleRequestError("empty payload: scan or paste the permit text")
        return self.handle_payload(text.strip(), origin="console")

    def _note(self, note: str, minimum: int = 0) -> str:
        if not isinstance(note, str):
            raise ConsoleRequestError("note must be text")
        note = " ".join(note.split())  # no control characters or newlines in the log
        if len(note) > NOTE_MAX:
            raise ConsoleRequestError(f"note is longer than {NOTE_MAX} characters: shorten it")
        if len(note) < minimum:
            raise ConsoleRequestError(f"note must say why in at least {minimum} characters")
        return note

    def override(self, action: str, reason_code: str, note: str, party: int) -> dict[str, Any]:
        cfg = self._cfg
        if action not in ("admit", "deny"):
            raise ConsoleRequestError("action must be admit or deny")
        if not isinstance(reason_code, str) or not re.fullmatch(r"[a-z_]{1,64}", reason_code):
            raise ConsoleRequestError("a reason code is required for an override")
        clean = self._note(note)
        if isinstance(party, bool) or not isinstance(party, int) or not 0 <= party <= 64:
            raise ConsoleRequestError("party must be a whole number from 0 to 64")
        if action == "admit" and party < 1:
            raise ConsoleRequestError("an override admission needs a party of at least 1")
        if cfg.mode == "counter" and action == "admit":
            raise ConsoleRequestError("a counter gate admits nobody: send them to an entrance")
        with self._decide_lock:
            r = self.clock.now()
            permit = None
            if self._last_refusal and self._mono() - self._last_refusal[0] <= OVERRIDE_LINK_S:
                permit = self._last_refusal[1]
            trip = self.ledger.current_trip() if cfg.mode == "boarding" else None
            if cfg.mode == "boarding" and action == "admit" and trip is None:
                raise ConsoleRequestError("open a trip before admitting anyone onto a bus")
            try:
                event = self.ledger.append(
                    t=r.t, tc=r.confidence, kind="override", verdict=action, mode=cfg.mode,
                    reason=reason_code, note=clean or None,
                    ph=permit.ph if permit else None, ptype=permit.ptype if permit else None,
                    slot=permit.slot_start if permit else None,
                    slot_end=permit.slot_end if permit else None,
                    party=party if action == "admit" else 0,
                    trip=trip.trip_id if trip and action == "admit" else None,
                    details=self._details(permit, "override"),
                )
            except LedgerError as exc:
                raise ConsoleRequestError(f"override not recorded: {exc}") from None
            self._last_refusal = None
            view: dict[str, Any] = {
                "id": event.eid, "event": event.eid, "seq": event.seq, "t": r.t,
                "tc": r.confidence, "kind": "override", "verdict": action,
                "reason": reason_code, "note": clean,
                "permit": _permit_view(permit) if permit else None,
                "admitted": event.admitted, "remaining": 0, "awaiting_count": False,
                "flags": [], "origin": "console",
            }
            self._signal(Verdict(action))
            self._publish(view, event)
        return view

    def confirm_party(self, decision_id: str, count: int) -> dict[str, Any]:
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConsoleRequestError("count must be a whole number")
        with self._decide_lock:
            self._expire_pending()
            pending = self._pending.get(decision_id)
            if pending is None:
                raise ConsoleRequestError("that group is no longer waiting: scan the permit again")
            permit = pending.permit
            reading = self.clock.now()
            # The state may have moved on (other scans, quota) since the permit was shown.
            d = decide(permit, self._cfg, self._gate_state(permit, reading))
            if d.verdict != Verdict.ADMIT:
                del self._pending[decision_id]
                raise ConsoleRequestError(f"cannot admit this group now: {d.reason}")
            limit = d.max_count if d.awaiting_count else d.party
            if not 1 <= count <= limit:
                raise ConsoleRequestError(
                    f"head count must be between 1 and {limit} for this permit now"
                    f" ({GateReason.PARTY_EXHAUSTED.value} beyond that)"
                )
            trip = self.ledger.current_trip() if self._cfg.mode == "boarding" else None
            flags = list(d.flags) + ([FLAG_PARTIAL] if count < d.remaining or
                                     (not d.awaiting_count and count < d.party) else [])
            try:
                event = self.ledger.append(
                    t=reading.t, tc=reading.confidence, kind="scan", verdict="admit",
                    mode=self._cfg.mode, ph=permit.ph, ptype=permit.ptype,
                    slot=permit.slot_start, slot_end=permit.slot_end, party=count,
                    trip=trip.trip_id if trip else None, flags=flags,
                    details=self._details(permit, "confirm"),
                )
            except LedgerError as exc:
                del self._pending[decision_id]
                return self._ledger_failed(dict(pending.view), exc)
            del self._pending[decision_id]
            view = dict(pending.view)
            remaining = (d.remaining if d.awaiting_count else d.party) - count
            view.update(
                verdict="admit", reason=None, admitted=count, remaining=remaining,
                awaiting_count=False, event=event.eid, seq=event.seq, flags=flags,
                t=reading.t, tc=reading.confidence,
            )
            self._signal(Verdict.ADMIT)
            self._publish(view, event)
        return view

    def open_trip(self, bus: str, route: str, departure: int, seats: int) -> dict[str, Any]:
        cfg = self._cfg
        if cfg.mode != "boarding":
            raise ConsoleRequestError("trips exist only at a boarding gate (mode = 'boarding')")
        if not isinstance(route, str) or not _ID_RE.match(route):
            # Permits name their route as an identifier; anything else could never match.
            raise ConsoleRequestError(
                "route must be the permits' route id: 1-64 letters, digits, '.', '-' or '_'"
            )
        if not isinstance(bus, str) or not bus.strip() or len(bus) > 64 or not bus.isprintable():
            raise ConsoleRequestError("bus must be a short printable label (1-64 characters)")
        if isinstance(departure, bool) or not isinstance(departure, int) or departure < 0:
            raise ConsoleRequestError("departure must be a time in epoch seconds")
        if isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= 500:
            raise ConsoleRequestError("seats must be a whole number from 1 to 500")
        with self._decide_lock:
            r = self.clock.now()
            # The id travels in events (identifier syntax); the label stays in the trip row.
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "", bus)[:24] or "bus"
            trip_id = f"{slug}-{departure}-{uuid.uuid4().hex[:6]}"
            try:
                self.ledger.open_trip(
                    trip_id=trip_id, bus=bus, route=route, departure=departure, seats=seats,
                    t=r.t, tc=r.confidence, mode=cfg.mode,
                )
            except LedgerError as exc:
                raise ConsoleRequestError(str(exc)) from None
            self._touch()
            row = self.ledger.trip(trip_id) or {}
        return {k: row.get(k) for k in
                ("id", "bus", "route", "departure", "seats", "boarded", "opened_at")}

    def close_trip(self) -> dict[str, Any]:
        if self._cfg.mode != "boarding":
            raise ConsoleRequestError("trips exist only at a boarding gate (mode = 'boarding')")
        with self._decide_lock:
            r = self.clock.now()
            try:
                _event, row = self.ledger.close_trip(t=r.t, tc=r.confidence, mode=self._cfg.mode)
            except LedgerError as exc:
                raise ConsoleRequestError(str(exc)) from None
            self._touch()
        return row

    def manifest(self, trip_id: str) -> list[dict[str, Any]]:
        from gate_agent.console.backend import NotFound

        if self.ledger.trip(trip_id) is None:
            raise NotFound(f"unknown trip {trip_id}")
        return self.ledger.manifest(trip_id)

    def time_override(self, note: str) -> dict[str, Any]:
        clean = self._note(note, TIME_NOTE_MIN)
        with self._decide_lock:
            before = self.clock.now()
            try:
                # Recorded first: an override that is not in the log never takes effect.
                self.ledger.append(
                    t=before.t, tc=before.confidence, kind="time_override", verdict="none",
                    mode=self._cfg.mode, note=clean, reason="time_override",
                )
            except LedgerError as exc:
                raise ConsoleRequestError(f"time override not recorded: {exc}") from None
            r = self.clock.override()
            log.warning("clock trusted on the operator's word", extra={"note": clean})
            self._touch()
        return self._clock_view(r)
