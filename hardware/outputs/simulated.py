"""Recording outputs for tests and demos, in the manner of gpiozero's ``MockFactory``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from hardware.config import OutputsConfig
from hardware.outputs.base import DEVICES, Clock, GateOutputs


@dataclass(frozen=True, slots=True)
class OutputChange:
    """One commanded change of an output: clock time, device name, new state."""

    t: float
    device: str
    on: bool


class _SimLine:
    def __init__(self, owner: SimulatedOutputs, device: str) -> None:
        self._owner = owner
        self.device = device
        self.commanded = False
        self.physical = False
        self.stuck: bool | None = None
        self.error: Exception | None = None

    def set(self, on: bool) -> None:
        if self.error is not None:
            raise self.error
        if on != self.commanded:
            self._owner.history.append(OutputChange(self._owner.clock(), self.device, on))
        self.commanded = on
        self.physical = on if self.stuck is None else self.stuck

    def close(self) -> None:
        pass


class SimulatedOutputs(GateOutputs):
    """Outputs that record every change in :attr:`history` and can be made to fail.

    ``fail(device)`` makes a device raise (as gpiozero does on a broken pin);
    ``stick(device, on)`` freezes its physical state so the relay feedback (present
    when ``cfg.pins.relay_feedback`` is set) reveals it. Assert with
    :meth:`assert_states` and :meth:`pulses`.
    """

    def __init__(
        self,
        cfg: OutputsConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        start_thread: bool = True,
    ) -> None:
        config = cfg or OutputsConfig(backend="simulated")
        self.clock = clock
        self.history: list[OutputChange] = []
        self.lines = {d: _SimLine(self, d) for d in DEVICES}
        feedback = None
        if config.pins.relay_feedback is not None:
            def feedback() -> bool:
                return self.lines["relay"].physical
        super().__init__(config, lines=dict(self.lines), feedback=feedback, clock=clock,
                         start_thread=start_thread)

    # ------------------------------------------------------------------ faults

    def fail(self, device: str, error: Exception | None = None) -> None:
        """Make ``device`` raise ``error`` (default ``OSError``) on every switch."""
        self.lines[device].error = error or OSError(f"simulated {device} failure")

    def stick(self, device: str, on: bool | None) -> None:
        """Freeze ``device``'s physical state at ``on`` (``None`` frees it)."""
        line = self.lines[device]
        line.stuck = on
        line.physical = line.commanded if on is None else on

    def repair(self, device: str) -> None:
        """Undo :meth:`fail` and :meth:`stick` for ``device``."""
        self.lines[device].error = None
        self.stick(device, None)

    # ------------------------------------------------------------------ assertions

    def state(self, device: str) -> bool:
        """The commanded state of ``device`` now."""
        return self.lines[device].commanded

    def states(self, device: str) -> list[bool]:
        """Every state ``device`` was switched to, starting from off."""
        return [False, *[c.on for c in self.history if c.device == device]]

    def assert_states(self, device: str, expected: Sequence[bool]) -> None:
        """Raise ``AssertionError`` unless ``device`` went through exactly ``expected``."""
        actual = self.states(device)
        if actual != list(expected):
            raise AssertionError(f"{device} states {actual} != expected {list(expected)}")

    def pulses(self, device: str) -> list[tuple[float, float | None]]:
        """``(start, length)`` of each on-period of ``device``; length ``None`` if still on."""
        out: list[tuple[float, float | None]] = []
        start: float | None = None
        for c in self.history:
            if c.device != device:
                continue
            if c.on and start is None:
                start = c.t
            elif not c.on and start is not None:
                out.append((start, c.t - start))
                start = None
        if start is not None:
            out.append((start, None))
        return out

    def clear_history(self) -> None:
        self.history.clear()
