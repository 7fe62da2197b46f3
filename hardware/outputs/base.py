"""Timing of admit/deny patterns over four digital lines, with fault reporting."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from hardware.config import OutputsConfig
from hardware.errors import OutputFault

Clock = Callable[[], float]
log = logging.getLogger("hardware.outputs")

DEVICES = ("relay", "green", "red", "buzzer")


class Line(Protocol):
    """One digital output (relay coil, LED, buzzer)."""

    def set(self, on: bool) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OutputHealth:
    """``ok`` when no output is currently failing; ``faults`` maps device -> last problem."""

    ok: bool
    faults: dict[str, str]
    fault_count: int
    admits: int
    denies: int


@dataclass(order=True, slots=True)
class _Action:
    at: float
    seq: int
    device: str
    on: bool
    check: bool = False  # a feedback check instead of a switch
    pattern: int = 0


class GateOutputs:
    """Drives the admit/deny patterns; a context manager whose ``close()`` is safe twice.

    Subclasses provide the lines (and optionally a relay feedback reader). ``tick()``
    applies every step that is due; the ``gate-outputs`` thread calls it every
    ``cfg.tick_s`` unless built with ``start_thread=False`` (tests call it with a
    fake clock and never sleep).
    """

    def __init__(
        self,
        cfg: OutputsConfig,
        *,
        lines: dict[str, Line],
        feedback: Callable[[], bool] | None = None,
        clock: Clock = time.monotonic,
        start_thread: bool = True,
    ) -> None:
        missing = set(DEVICES) - set(lines)
        if missing:
            raise ValueError(f"outputs need lines for {sorted(missing)}")
        self.cfg = cfg
        self._lines = lines
        self._feedback = feedback
        self._clock = clock
        self._lock = threading.RLock()
        self._pending: list[_Action] = []
        self._seq = 0
        self._pattern = 0
        self._faults: dict[str, str] = {}
        self._fault_count = 0
        self._admits = 0
        self._denies = 0
        self._relay_on = False
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        if start_thread:
            self._thread = threading.Thread(target=self._run, name="gate-outputs", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ signals

    def signal_admit(self) -> None:
        """Release the turnstile for one pulse, green light, one beep."""
        c = self.cfg
        with self._lock:
            self._check_open()
            self._admits += 1
            now = self._clock()
            pattern = self._new_pattern()
            errors = [
                self._switch("red", False),
                self._switch("green", True),
                self._switch("buzzer", True),
                self._switch("relay", True),
            ]
            self._relay_on = True
            self._schedule(now + c.admit_beep_s, "buzzer", False, pattern)
            self._schedule(now + c.admit_light_s, "green", False, pattern)
            # The relay pulse is never cut short by a following signal: the admitted
            # person must be able to pass. A second admit during a pulse extends it
            # (the earlier switch-off and its feedback checks are dropped).
            self._pending = [a for a in self._pending if a.device != "relay"]
            self._schedule(now + c.relay_pulse_s, "relay", False, pattern=-1)
            if self._feedback is not None:
                self._schedule(now + c.feedback_timeout_s, "relay", True, -1, check=True)
                self._schedule(now + c.relay_pulse_s + c.feedback_timeout_s, "relay", False, -1,
                               check=True)
        self._raise_first(errors, "admit")

    def signal_deny(self) -> None:
        """Keep the turnstile locked, red light, ``deny_beeps`` short beeps."""
        c = self.cfg
        with self._lock:
            self._check_open()
            self._denies += 1
            now = self._clock()
            pattern = self._new_pattern()
            errors = [
                self._switch("green", False),
                self._switch("red", True),
                self._switch("buzzer", True),
            ]
            if not self._relay_on:
                errors.append(self._switch("relay", False))
            t = now
            for i in range(c.deny_beeps):
                if i:
                    self._schedule(t, "buzzer", True, pattern)
                t += c.deny_beep_s
                self._schedule(t, "buzzer", False, pattern)
                t += c.deny_beep_gap_s
            self._schedule(now + c.deny_light_s, "red", False, pattern)
        self._raise_first(errors, "deny")

    def health(self) -> OutputHealth:
        """Current faults (a device that raised or a relay that did not follow) and counts."""
        with self._lock:
            return OutputHealth(
                ok=not self._faults, faults=dict(self._faults), fault_count=self._fault_count,
                admits=self._admits, denies=self._denies,
            )

    # ------------------------------------------------------------------ timing

    def tick(self, now: float | None = None) -> None:
        """Apply every step due at ``now`` (default: the clock's time)."""
        with self._lock:
            t = self._clock() if now is None else now
            due = [a for a in self._pending if a.at <= t]
            if not due:
                return
            self._pending = [a for a in self._pending if a.at > t]
            for action in sorted(due):
                if action.check:
                    self._check_feedback(action.on)
                    continue
                if action.pattern != -1 and action.pattern != self._pattern:
                    continue  # superseded by a later signal
                if action.device == "relay" and not action.on:
                    self._relay_on = False
                self._switch(action.device, action.on)

    @property
    def pending(self) -> int:
        """Steps still scheduled (0 when every pattern has finished)."""
        with self._lock:
            return len(self._pending)

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.tick_s):
            try:
                self.tick()
            except Exception:  # keep timing the other outputs whatever one does
                log.exception("output timing step failed")

    def _new_pattern(self) -> int:
        self._pattern += 1
        return self._pattern

    def _schedule(self, at: float, device: str, on: bool, pattern: int,
                  *, check: bool = False) -> None:
        self._seq += 1
        self._pending.append(_Action(at, self._seq, device, on, check, pattern))

    def _switch(self, device: str, on: bool) -> str | None:
        try:
            self._lines[device].set(on)
        except Exception as exc:  # gpiozero raises many types; all mean "did not switch"
            return self._fault(device, f"{device} failed to switch {'on' if on else 'off'}: "
                                       f"{type(exc).__name__}: {exc}")
        if self._faults.get(device, "").startswith(f"{device} failed"):
            del self._faults[device]
        return None

    def _check_feedback(self, expect_on: bool) -> None:
        assert self._feedback is not None
        try:
            actual = bool(self._feedback())
        except Exception as exc:
            self._fault("relay", f"relay feedback unreadable: {type(exc).__name__}: {exc}")
            return
        if actual != expect_on:
            self._fault("relay", f"relay stuck {'on' if actual else 'off'}: feedback did not "
                                 f"follow within {self.cfg.feedback_timeout_s:g} s")
        elif self._faults.get("relay", "").startswith("relay stuck"):
            del self._faults["relay"]

    def _fault(self, device: str, message: str) -> str:
        self._faults[device] = message
        self._fault_count += 1
        log.error("%s", message)
        return message

    @staticmethod
    def _raise_first(errors: list[str | None], what: str) -> None:
        problems = [e for e in errors if e]
        if problems:
            raise OutputFault(f"{what} signal incomplete: {'; '.join(problems)}")

    def _check_open(self) -> None:
        if self._closed:
            raise OutputFault("outputs are closed")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop timing, switch everything off, release the pins; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._pending.clear()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():
                log.warning("gate-outputs thread did not stop within 2 s")
        with self._lock:
            for device in DEVICES:
                self._switch(device, False)
            for line in self._lines.values():
                try:
                    line.close()
                except Exception as exc:
                    log.warning("closing an output failed: %s", exc)
            self._close_extra()

    def _close_extra(self) -> None:
        pass

    def __enter__(self) -> GateOutputs:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
