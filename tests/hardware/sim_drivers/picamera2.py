"""A stand-in for the ``picamera2`` package, put on ``sys.path`` by tests/hardware tests.

It behaves like the real one where the reopen logic cares: with the camera unplugged,
``Picamera2(n)`` raises ``IndexError`` (no camera at that index), ``start()`` raises
``RuntimeError``, and a capture already running never completes, so
``Picamera2.wait(job, timeout)`` raises ``TimeoutError`` after ``timeout``. ``SIM`` is the
camera's plug: tests call ``SIM.unplug()`` and ``SIM.replug()``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np


class _Sim:
    def __init__(self) -> None:
        self.plugged = True
        self.opened = 0
        self.closed = 0
        self.captures = 0
        self.value = 80
        self._lock = threading.Lock()

    def unplug(self) -> None:
        self.plugged = False

    def replug(self, value: int | None = None) -> None:
        if value is not None:
            self.value = value
        self.plugged = True


SIM = _Sim()


class _Job:
    def __init__(self, cam: Picamera2) -> None:
        self.cam = cam


class Picamera2:
    def __init__(self, camera_num: int = 0) -> None:
        if not SIM.plugged or camera_num != 0:
            raise IndexError("list index out of range")
        SIM.opened += 1
        self._size = (640, 480)
        self._started = False
        self._closed = False

    def create_video_configuration(self, main: dict[str, Any] | None = None,
                                   controls: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"main": dict(main or {}), "controls": dict(controls or {})}

    def configure(self, config: dict[str, Any]) -> None:
        self._size = tuple(config["main"].get("size", self._size))  # type: ignore[assignment]

    def start(self) -> None:
        if not SIM.plugged:
            raise RuntimeError("Failed to start camera: No such device")
        self._started = True

    def capture_array(self, name: str = "main", wait: Any = None) -> Any:
        job = _Job(self)
        return job if wait is False else self.wait(job)

    def wait(self, job: _Job, timeout: float | None = None) -> Any:
        if self._closed or not self._started:
            raise RuntimeError("Camera is not running")
        if not SIM.plugged:
            # libcamera never completes the request of a camera that went away.
            time.sleep(timeout if timeout is not None else 3600)
            raise TimeoutError()
        time.sleep(0.005)
        SIM.captures += 1
        w, h = self._size
        return np.full((h, w, 3), SIM.value, np.uint8)

    def stop(self) -> None:
        if not SIM.plugged:
            raise RuntimeError("camera stop failed")  # the source must still close it
        self._started = False

    def close(self) -> None:
        self._closed = True
        SIM.closed += 1
