"""Outputs on GPIO pins through gpiozero (imported only when this backend is chosen)."""

from __future__ import annotations

import time
from importlib.metadata import entry_points
from typing import Any

from hardware.config import OutputsConfig
from hardware.errors import DriverMissing, OutputFault
from hardware.outputs.base import DEVICES, Clock, GateOutputs


class _GpioLine:
    def __init__(self, device: Any) -> None:
        self._device = device

    def set(self, on: bool) -> None:
        if on:
            self._device.on()
        else:
            self._device.off()

    def close(self) -> None:
        self._device.close()


def _factory_by_name(name: str) -> Any:
    # gpiozero registers its pin factories as entry points; resolving them here keeps
    # an unknown name a config error rather than a silent fallback.
    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name == name:
            return ep.load()()
    raise OutputFault(f"unknown gpiozero pin factory {name!r}")


class GpiozeroOutputs(GateOutputs):
    """Relay, lights and buzzer as gpiozero ``DigitalOutputDevice`` objects."""

    def __init__(
        self,
        cfg: OutputsConfig,
        *,
        pin_factory: Any = None,
        clock: Clock = time.monotonic,
        start_thread: bool = True,
    ) -> None:
        try:
            from gpiozero import DigitalInputDevice, DigitalOutputDevice
            from gpiozero.exc import GPIOZeroError
        except ImportError as exc:
            raise DriverMissing("gpiozero is not installed (pip install 'gatepass[pi]')") from exc
        factory = pin_factory
        if factory is None and cfg.pin_factory:
            factory = _factory_by_name(cfg.pin_factory)
        pins = cfg.pins
        opened: list[Any] = []
        try:
            lines: dict[str, _GpioLine] = {}
            for device in DEVICES:
                active = cfg.relay_active_high if device == "relay" else cfg.active_high
                dev = DigitalOutputDevice(getattr(pins, device), active_high=active,
                                          initial_value=False, pin_factory=factory)
                opened.append(dev)
                lines[device] = _GpioLine(dev)
            self._feedback_dev: Any = None
            if pins.relay_feedback is not None:
                self._feedback_dev = DigitalInputDevice(pins.relay_feedback, pull_up=False,
                                                        pin_factory=factory)
                opened.append(self._feedback_dev)
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            for dev in opened:
                dev.close()
            raise OutputFault(f"cannot open GPIO outputs: {type(exc).__name__}: {exc}") from exc
        feedback = None
        if self._feedback_dev is not None:
            fb = self._feedback_dev

            def feedback() -> bool:
                return bool(fb.value)

        super().__init__(cfg, lines=dict(lines), feedback=feedback, clock=clock,
                         start_thread=start_thread)

    def _close_extra(self) -> None:
        if self._feedback_dev is not None:
            self._feedback_dev.close()
            self._feedback_dev = None
