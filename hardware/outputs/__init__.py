"""Gate outputs: turnstile relay, green and red lights, buzzer.

``open_outputs(cfg)`` returns a :class:`GateOutputs` driving gpiozero devices on a Pi
(``backend = "gpiozero"``, imported only then) or a :class:`SimulatedOutputs` that
records every change with a timestamp, like gpiozero's ``MockFactory`` pins.

Patterns (lengths from :class:`hardware.config.OutputsConfig`):

* admit: relay pulse (turnstile released), green light, one beep;
* deny: relay held off, red light, ``deny_beeps`` short beeps.

``signal_admit()``/``signal_deny()`` switch the first step at once and return; a
named thread times the rest. A device that raises, or a relay whose feedback input
does not follow, is reported: the signal call raises :class:`OutputFault` when its
first step fails, later failures appear in :meth:`GateOutputs.health`.
"""

from __future__ import annotations

from typing import Any

from hardware.config import OutputsConfig
from hardware.outputs.base import Clock, GateOutputs, Line, OutputHealth
from hardware.outputs.simulated import OutputChange, SimulatedOutputs

__all__ = [
    "Clock",
    "GateOutputs",
    "Line",
    "OutputChange",
    "OutputHealth",
    "SimulatedOutputs",
    "open_outputs",
]


def open_outputs(
    cfg: OutputsConfig | dict[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    pin_factory: Any = None,
    start_thread: bool = True,
) -> GateOutputs:
    """Open the outputs described by ``cfg`` (a model, a plain dict, or ``None``: simulated).

    ``clock`` times pulses (default ``time.monotonic``); ``pin_factory`` is a gpiozero
    pin factory object (e.g. ``MockFactory()``) overriding ``cfg.pin_factory``;
    ``start_thread=False`` leaves timing to explicit :meth:`GateOutputs.tick` calls.
    """
    if cfg is None:
        config = OutputsConfig(backend="simulated")
    elif isinstance(cfg, dict):
        config = OutputsConfig.model_validate(cfg)
    else:
        config = cfg
    kw: dict[str, Any] = {"start_thread": start_thread}
    if clock is not None:
        kw["clock"] = clock
    if config.backend == "simulated":
        return SimulatedOutputs(config, **kw)
    from hardware.outputs.gpio import GpiozeroOutputs

    return GpiozeroOutputs(config, pin_factory=pin_factory, **kw)
