"""Reopen with back-off: the one mechanism every source that can drop out is built on.

A backend says only how to open its device (``_connect``), take the next capture from it
(``_next``) and let go of it (``_disconnect``); :class:`ReopeningSource` does the rest:

- a failure (``SourceDisconnected`` or any ``OSError`` from ``_connect`` or ``_next``)
  releases the device, counts one disconnect per outage, logs it, and reopens after a
  back-off delay that doubles from ``reconnect_delay_s`` to ``max_reconnect_delay_s``
  with up to 20 % jitter (gates that lost power together do not retry in lockstep);
- a source that is away for ``give_up_after_s`` raises :class:`SourceGaveUp` from
  ``read()`` (the agent then exits non-zero for systemd to restart it);
- with ``stall_after_s``, a backend that keeps answering :data:`IDLE` (no frame within its
  poll period) for that long counts as dropped too: a camera that hangs without an error
  (a backend whose driver call itself blocks uses a driver timeout instead; the agent's
  watchdog check is the last resort for a driver that hangs regardless);
- ``close()`` from another thread ends a waiting back-off at once.

Supervision times come from ``time.monotonic`` (``mono``), not from the frame clock,
so a test clock that ticks per call stamps frames exactly as before.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hardware.errors import SourceGaveUp, SourceUnavailable
from hardware.sources.base import Clock, Frame, FrameSource, SourceStatus, log

#: Largest share of a back-off delay taken off at random.
JITTER = 0.2


class Idle(enum.Enum):
    """``_next()`` had nothing within its poll period (the loop checks close and stall)."""

    IDLE = "idle"


IDLE = Idle.IDLE


class Capture(NamedTuple):
    """What a backend's ``_next()`` delivers; the source numbers it into a :class:`Frame`."""

    image: npt.NDArray[np.uint8] | None
    text: bytes | None
    t_mono: float


@dataclass(frozen=True, slots=True)
class ReopenPolicy:
    """How a source reopens: first delay, cap, give-up time, stall time (all seconds)."""

    delay_s: float = 1.0
    max_delay_s: float = 10.0
    give_up_after_s: float | None = 60.0
    stall_after_s: float | None = None

    @classmethod
    def from_config(cls, cfg: Any, *, stall_after_s: float | None = None) -> ReopenPolicy:
        """The policy of a source config (any model with the ``_Reopening`` fields)."""
        return cls(
            delay_s=cfg.reconnect_delay_s, max_delay_s=cfg.max_reconnect_delay_s,
            give_up_after_s=cfg.give_up_after_s, stall_after_s=stall_after_s,
        )


class Backoff:
    """Delays that double from ``first`` to ``cap``, each shortened by up to ``jitter``."""

    def __init__(self, first: float, cap: float, *, jitter: float = JITTER,
                 rng: random.Random | None = None) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"back-off needs 0 < first ({first}) <= cap ({cap})")
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._next = first

    def next(self) -> float:
        """The next delay; never above ``cap``, never below ``(1 - jitter) * first``."""
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self._next = self.first


class ReopeningSource(FrameSource):
    """A :class:`FrameSource` that reopens its device after a failure (see the module doc).

    Subclasses implement ``_connect()`` (open the device; raise ``SourceUnavailable`` or
    ``OSError`` when it is not there), ``_next()`` (a :class:`Capture`, ``None`` at a real
    end, :data:`IDLE` when nothing came within a short poll; raise ``SourceDisconnected``
    or ``OSError`` when the device failed, ``SourceGaveUp`` when it can never come back)
    and ``_disconnect()`` (release the device; must not raise). They call
    :meth:`_start` at the end of ``__init__``.
    """

    def __init__(self, *, clock: Clock = time.monotonic, policy: ReopenPolicy,
                 mono: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        super().__init__(clock=clock)
        self.policy = policy
        self._mono = mono
        self._backoff = Backoff(policy.delay_s, policy.max_delay_s, rng=rng)
        self._down_since: float | None = None
        self._alive_since = mono()
        self._gave_up = False

    # -- for subclasses ----------------------------------------------------------------

    def _connect(self) -> None:
        raise NotImplementedError

    def _next(self) -> Capture | Idle | None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        pass

    def _start(self, *, wait_for_device: bool) -> None:
        """The first open: raise if it fails, or (``wait_for_device``) start as dropped.

        A live device (camera, scanner) may appear after the agent at boot, so it is
        waited for like a drop; a file or folder that is missing at start is a mistake in
        the config, reported at once.
        """
        try:
            self._connect()
        except (SourceUnavailable, OSError) as exc:
            if not wait_for_device:
                if isinstance(exc, SourceUnavailable):
                    raise
                raise SourceUnavailable(f"cannot open {self.name}: {_why(exc)}") from exc
            self._mark_down(_why(exc))
            return
        self._connected = True
        self._alive_since = self._mono()

    # -- the loop ----------------------------------------------------------------------

    def _read(self) -> Frame | None:
        cap = self._pull()
        return None if cap is None else self._frame(cap.image, cap.text, cap.t_mono)

    def _pull(self) -> Capture | None:
        """The next capture, reopening as needed; ``None`` when finished or closed."""
        stall = self.policy.stall_after_s
        while not self._closed.is_set():
            if not self._connected and not self._reopen():
                continue
            try:
                item = self._next()
            except SourceGaveUp:
                self._gave_up = True
                self._connected = False
                raise
            except (SourceUnavailable, OSError) as exc:
                if self._closed.is_set():
                    break
                self._mark_down(_why(exc))
                continue
            if item is IDLE:
                if stall is not None and self._mono() - self._alive_since >= stall:
                    self._mark_down(f"no frame for {stall:g} s")
                continue
            if item is None:
                self._connected = False
                return None
            if stall is not None:
                self._alive_since = self._mono()
            return item
        return None

    def _mark_down(self, why: str) -> None:
        """Release the device and count the outage (once, however many retries fail)."""
        self._disconnect()
        if self._connected or self._down_since is None:
            self._disconnects += 1
            self._down_since = self._mono()
            self._backoff.reset()
            self._report("dropped out (%s); reopening", why)
        self._connected = False
        self._last_error = why

    def _reopen(self) -> bool:
        """Wait the back-off delay and try once; raise ``SourceGaveUp`` past the give-up."""
        down_since = self._down_since if self._down_since is not None else self._mono()
        give_up = self.policy.give_up_after_s
        delay = self._backoff.next()
        if give_up is not None:  # never sleep past the give-up deadline
            delay = max(0.0, min(delay, down_since + give_up - self._mono()))
        if self._closed.wait(delay):
            return False
        try:
            self._connect()
        except SourceGaveUp:
            self._gave_up = True
            raise
        except (SourceUnavailable, OSError) as exc:
            self._disconnect()
            self._last_error = _why(exc)
            if give_up is not None and self._mono() - down_since >= give_up:
                self._gave_up = True
                log.error("%s: could not be reopened within %g s (%s); giving up",
                          self.name, give_up, self._last_error)
                raise SourceGaveUp(
                    f"{self.name} could not be reopened within {give_up:g} s: "
                    f"{self._last_error}"
                ) from None
            return False
        if self._closed.is_set():
            self._disconnect()
            return False
        self._reconnects += 1
        self._down_since = None
        self._connected = True
        self._alive_since = self._mono()
        log.warning("%s: back after %.1f s", self.name, self._mono() - down_since)
        return True

    def _close(self) -> None:
        self._disconnect()
        self._connected = False

    def status(self) -> SourceStatus:
        base = super().status()
        now = self._mono()
        down = self._down_since
        quiet = None
        if self.policy.stall_after_s is not None and base.connected:
            quiet = round(max(0.0, now - self._alive_since), 3)
        return replace(
            base, gave_up=self._gave_up, quiet_for_s=quiet,
            down_for_s=None if down is None or self._connected else round(now - down, 3),
        )


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, SourceUnavailable) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
