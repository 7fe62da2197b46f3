"""Debounce: the same payload in consecutive frames is one scan.

A permit held in front of the camera is decoded in every frame for a second or
more; the gate must act once. A payload becomes a *new* scan again only after it
has been out of sight for ``hold_off_s`` seconds (a person stepping back and
showing it again), measured on the caller's monotonic clock, so tests need no
sleeping.

A presentation (``GPP1:``) renews its text every time step while the phone is held
up; its key is the permit it carries, so a code renewing in front of the camera is
still the same scan.
"""

from __future__ import annotations

from gate_agent.decode import Code
from verifier import presentation
from verifier.errors import PermitRefused


def scan_key(data: bytes) -> bytes:
    """What makes two payloads the same scan: the embedded permit of a presentation,
    else the payload itself (an unreadable presentation keys on its own bytes)."""
    if not data.startswith(b"GPP1:"):
        return data
    try:
        permit, _ = presentation.split(data)
    except PermitRefused:
        return data
    return b"GPP1/permit:" + permit


class Debouncer:
    """Pass each payload once per presentation; forget it after ``hold_off_s`` unseen.

    ``feed(codes, t_mono)`` returns the codes that are new scans, in input order,
    each payload at most once per call. Times must not go backwards; a time that
    does (a caller bug or a replaced clock) is treated as "now" for the payloads it
    carries, never as a reason to re-admit.
    """

    def __init__(self, hold_off_s: float = 2.0) -> None:
        if not hold_off_s >= 0.0:  # also refuses NaN
            raise ValueError(f"hold_off_s must be >= 0, not {hold_off_s!r}")
        self.hold_off_s = float(hold_off_s)
        self._last_seen: dict[bytes, float] = {}
        self._now = float("-inf")

    def feed(self, codes: list[Code], t_mono: float) -> list[Code]:
        now = max(float(t_mono), self._now)
        self._now = now
        fresh: list[Code] = []
        fresh_keys: set[bytes] = set()
        for code in codes:
            key = scan_key(code.data)
            last = self._last_seen.get(key)
            # Seen recently: still the same presentation; refresh so a permit held
            # up for a long time is never re-admitted while in view.
            is_new = last is None or now - last > self.hold_off_s
            if is_new and key not in fresh_keys:
                fresh.append(code)
                fresh_keys.add(key)
            self._last_seen[key] = now
        self._expire(now)
        return fresh

    def reset(self) -> None:
        """Forget every payload (e.g. after the gate was closed and reopened)."""
        self._last_seen.clear()

    def _expire(self, now: float) -> None:
        # Bounded memory over a day of traffic: drop payloads out of sight for long.
        if len(self._last_seen) > 256:
            cutoff = now - self.hold_off_s
            self._last_seen = {k: t for k, t in self._last_seen.items() if t >= cutoff}
