"""Trusted time: how far the gate may trust its clock to judge slot windows.

A Raspberry Pi has no real-time clock: after a power cut fake-hwclock restores the last
saved time, so the wall clock may be hours behind until NTP answers. The gate therefore
keeps an *anchor*, the last good reading (the system said NTP is synchronised, or sync
delivered a signed time beacon), and extrapolates from it on the monotonic clock, which
cannot be set back. Confidence levels match ``sync.schema.TIME_CONFIDENCE``:

- ``synced``: the system clock is NTP-synchronised (or configured as trusted);
- ``beacon``: extrapolated from a recent signed beacon;
- ``monotonic``: extrapolated from an older good reading, still within its limit;
- ``override``: an operator said the clock is right (logged as an event);
- ``untrusted``: none of the above; the gate answers ``untrusted_time`` instead.

All time sources are injected; :meth:`TrustedClock.now` does arithmetic only (the slow
``timedatectl`` probe runs in :meth:`TrustedClock.poll`, called from a background thread).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

log = logging.getLogger(__name__)

Confidence = Literal["synced", "beacon", "monotonic", "untrusted", "override"]
TRUSTED: Final = frozenset({"synced", "beacon", "monotonic", "override"})


@dataclass(frozen=True, slots=True)
class TimeReading:
    """The gate's best time now and how much it can be trusted."""

    t: float
    confidence: Confidence
    banner: str | None = None  # why time is not (fully) trusted, for the console and logs

    @property
    def trusted(self) -> bool:
        return self.confidence in TRUSTED


def timedatectl_synced(timeout: float = 2.0) -> bool | None:
    """``timedatectl show -p NTPSynchronized --value``: True/False, None when unavailable."""
    try:
        out = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip().lower()
    if out.returncode != 0 or value not in {"yes", "no"}:
        return None
    return value == "yes"


@dataclass(frozen=True, slots=True)
class _Anchor:
    wall: float  # trusted wall time at ...
    mono: float  # ... this monotonic instant
    source: Literal["synced", "beacon"]


class TrustedClock:
    """Tracks how far the clock can be trusted. Thread-safe; all time sources injectable.

    ``system``: 'timedatectl' (trust wall time while ``synced()`` says so), 'trust' (always)
    or 'distrust' (only beacons).
    """

    def __init__(
        self,
        *,
        system: Literal["timedatectl", "trust", "distrust"] = "timedatectl",
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        synced: Callable[[], bool | None] = timedatectl_synced,
        beacon_valid_s: float = 3600.0,
        monotonic_valid_s: float = 6 * 3600.0,
        jump_threshold_s: float = 5.0,
        override_s: float = 8 * 3600.0,
    ) -> None:
        self._system = system
        self._wall = wall
        self._mono = mono
        self._synced_probe = synced
        self._beacon_valid = beacon_valid_s
        self._mono_valid = monotonic_valid_s
        self._jump = jump_threshold_s
        self._override_s = override_s
        self._lock = threading.Lock()
        self._anchor: _Anchor | None = None
        self._system_synced = system == "trust"
        self._override_until: float | None = None
        self._jumps = 0
        self._last_drift: float | None = None
        self._floor: float | None = None

    @property
    def jumps(self) -> int:
        """How many wall-clock jumps have been seen (for metrics and the console)."""
        return self._jumps

    def poll(self) -> None:
        """Ask the system whether NTP is synchronised (may be slow: call it off the hot path)."""
        if self._system == "trust":
            synced: bool | None = True
        elif self._system == "distrust":
            synced = False
        else:
            synced = self._synced_probe()
        wall, mono = self._wall(), self._mono()
        with self._lock:
            self._system_synced = bool(synced)
            if synced:
                self._anchor = _Anchor(wall, mono, "synced")
                self._last_drift = None

    def beacon(self, beacon_t: float, *, received_mono: float | None = None) -> None:
        """A signed time beacon (already verified by sync) says it was ``beacon_t`` then."""
        mono = self._mono() if received_mono is None else received_mono
        with self._lock:
            a = self._anchor
            # A fresh NTP anchor is better than a beacon's network-delayed reading.
            if a is not None and a.source == "synced" and self._system_synced:
                return
            self._anchor = _Anchor(beacon_t, mono, "beacon")
        log.info("time beacon applied", extra={"beacon_t": beacon_t})

    def override(self, *, now_mono: float | None = None) -> TimeReading:
        """Trust the wall clock on the operator's word for ``override_s`` seconds."""
        mono = self._mono() if now_mono is None else now_mono
        with self._lock:
            self._override_until = mono + self._override_s
        return self.now()

    def _note_jump(self, drift: float) -> None:
        # Count a jump once, not on every reading that still shows the same offset.
        if self._last_drift is None or abs(drift - self._last_drift) > self._jump:
            self._jumps += 1
            log.warning("clock jump detected", extra={"drift_s": round(drift, 3)})
        self._last_drift = drift

    def set_floor(self, t: float | None) -> None:
        """Time cannot be earlier than ``t`` (the ledger's last trusted event).

        After a power cut fake-hwclock restores an older time; even a clock that claims to
        be synchronised is not believed while it reads earlier than what was recorded.
        """
        with self._lock:
            self._floor = t

    def now(self) -> TimeReading:
        """The best time now and its confidence. Pure arithmetic: safe on the hot path."""
        reading = self._now()
        floor = self._floor
        if (
            floor is not None and reading.confidence != "override"
            and reading.t < floor - self._jump
        ):
            return TimeReading(
                reading.t, "untrusted",
                f"clock reads {floor - reading.t:.0f} s before the last recorded event:"
                " waiting for NTP or a time beacon",
            )
        return reading

    def _now(self) -> TimeReading:
        wall, mono = self._wall(), self._mono()
        with self._lock:
            if self._override_until is not None and mono < self._override_until:
                return TimeReading(wall, "override", "time trusted on the operator's word")
            a = self._anchor
            if a is None:
                if self._system_synced:
                    return TimeReading(wall, "synced")
                return TimeReading(
                    wall, "untrusted",
                    "clock not synchronised since start: waiting for NTP or a time beacon",
                )
            age = mono - a.mono
            t = a.wall + age
            drift = wall - t
            banner: str | None = None
            if abs(drift) > self._jump:
                self._note_jump(drift)
                banner = f"wall clock differs from trusted time by {drift:+.0f} s"
                # Believe the wall clock again only when a poll confirms NTP after the step.
                self._system_synced = False
            elif self._system_synced:
                return TimeReading(wall, "synced")
            if a.source == "beacon" and age <= self._beacon_valid:
                return TimeReading(t, "beacon", banner)
            if age <= self._mono_valid:
                return TimeReading(t, "monotonic", banner or "no recent time sync")
            return TimeReading(
                t, "untrusted",
                f"last good time reading {age / 3600:.1f} h ago: clock can no longer be trusted",
            )
