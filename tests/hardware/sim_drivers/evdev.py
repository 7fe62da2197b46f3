"""A stand-in for the ``evdev`` package, put on ``sys.path`` by tests/hardware tests.

Like the real one: ``InputDevice(path)`` raises ``FileNotFoundError`` for a device that
is not plugged in, and ``read_loop()`` of a device that is unplugged raises
``OSError(ENODEV)``. ``SIM`` is the USB port: ``plug(path)``, ``unplug(path)``, and
``type_line(path, text)`` which sends the key events a wedge scanner would.
"""

from __future__ import annotations

import errno
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

EV_KEY = 1
_SHIFT = 42
_ENTER = 28


@dataclass
class InputEvent:
    type: int
    code: int
    value: int


def _codes() -> dict[str, tuple[int, bool]]:
    from hardware.sources.wedge import KEYMAP  # the layout the source decodes with

    out: dict[str, tuple[int, bool]] = {}
    for code, (plain, shifted) in KEYMAP.items():
        out.setdefault(plain, (code, False))
        out.setdefault(shifted, (code, True))
    return out


class _Sim:
    def __init__(self) -> None:
        self.plugged: set[str] = set()
        self.devices: list[InputDevice] = []
        self.opened = 0
        self._lock = threading.Lock()

    def plug(self, path: str) -> None:
        self.plugged.add(path)

    def unplug(self, path: str) -> None:
        self.plugged.discard(path)
        for dev in list(self.devices):
            if dev.path == path:
                dev._events.put(None)  # wakes read_loop, which then finds the device gone

    def type_line(self, path: str, text: str) -> None:
        codes = _codes()
        live = [d for d in self.devices if d.path == path and not d._closed]
        if not live:
            raise AssertionError(f"no open device at {path}")
        dev = live[-1]
        for ch in text:
            code, shifted = codes[ch]
            if shifted:
                dev._events.put(InputEvent(EV_KEY, _SHIFT, 1))
            dev._events.put(InputEvent(EV_KEY, code, 1))
            dev._events.put(InputEvent(EV_KEY, code, 0))
            if shifted:
                dev._events.put(InputEvent(EV_KEY, _SHIFT, 0))
        dev._events.put(InputEvent(EV_KEY, _ENTER, 1))
        dev._events.put(InputEvent(EV_KEY, _ENTER, 0))


SIM = _Sim()


class InputDevice:
    def __init__(self, path: str) -> None:
        if path not in SIM.plugged:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.path = path
        self.grabbed = False
        self._closed = False
        self._events: queue.Queue[InputEvent | None] = queue.Queue()
        SIM.opened += 1
        SIM.devices.append(self)

    def grab(self) -> None:
        self.grabbed = True

    def close(self) -> None:
        self._closed = True
        self._events.put(None)

    def read_loop(self) -> Iterator[InputEvent]:
        while True:
            try:
                event = self._events.get(timeout=0.05)
            except queue.Empty:
                event = None
            if self._closed:
                raise OSError(errno.EBADF, "Bad file descriptor")
            if self.path not in SIM.plugged:
                raise OSError(errno.ENODEV, "No such device")
            if event is not None:
                yield event
