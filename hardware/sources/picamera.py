"""The Raspberry Pi camera through picamera2 (imported only when chosen), reopened on failure.

An unplugged or failed camera shows in picamera2 as an exception from ``Picamera2()``,
``start()`` or a capture, or as a capture that never completes: each capture waits at most
``stall_after_s`` (``Picamera2.wait(job, timeout)``), so a hung camera is a drop too. The
camera is then closed and opened again with back-off (:mod:`hardware.sources.reopen`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from hardware.config import Picamera2SourceConfig
from hardware.errors import DriverMissing, SourceDisconnected
from hardware.sources.base import Clock
from hardware.sources.reopen import Capture, ReopeningSource, ReopenPolicy


class Picamera2Source(ReopeningSource):
    """Frames from ``Picamera2.capture_array()`` as BGR (picamera2's ``RGB888``)."""

    def __init__(self, cfg: Picamera2SourceConfig, *, clock: Clock = time.monotonic) -> None:
        super().__init__(clock=clock, policy=ReopenPolicy.from_config(
            cfg, stall_after_s=cfg.stall_after_s))
        self.cfg = cfg
        self.name = f"picamera2:{cfg.camera_num}"
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise DriverMissing(
                "picamera2 is not installed (on Raspberry Pi OS: apt install python3-picamera2)"
            ) from exc
        self._factory: Any = Picamera2
        self._cam: Any = None
        # A CSI camera is there at boot or not at all, but a loose ribbon may be reseated.
        self._start(wait_for_device=True)

    def _connect(self) -> None:
        cfg = self.cfg
        cam: Any = None
        try:
            cam = self._factory(cfg.camera_num)
            controls = {"FrameRate": cfg.fps} if cfg.fps else {}
            config = cam.create_video_configuration(
                main={"size": (cfg.width, cfg.height), "format": "RGB888"}, controls=controls
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:  # picamera2 raises plain RuntimeError/IndexError
            if cam is not None:
                _quietly_close(cam)
            raise SourceDisconnected(f"cannot start {self.name}: {exc}") from exc
        with self._lock:
            if self._closed.is_set():
                _quietly_close(cam)
                return
            self._cam = cam

    def _next(self) -> Capture | None:
        cam = self._cam
        if cam is None:
            if self._closed.is_set():
                return None
            raise SourceDisconnected("camera released")
        stall = self.cfg.stall_after_s
        try:
            job = cam.capture_array("main", wait=False)
            image = cam.wait(job, timeout=stall)
        except TimeoutError as exc:
            raise SourceDisconnected(f"no frame for {stall:g} s") from exc
        except Exception as exc:
            if self._closed.is_set():
                return None
            raise SourceDisconnected(f"{self.name} stopped delivering frames: {exc}") from exc
        return Capture(image, None, self._clock())

    def _disconnect(self) -> None:
        with self._lock:
            cam, self._cam = self._cam, None
        if cam is not None:
            _quietly_close(cam)


def _quietly_close(cam: Any) -> None:
    # A camera that was unplugged may fail to stop; it must still be let go of.
    with contextlib.suppress(Exception):
        cam.stop()
    with contextlib.suppress(Exception):
        cam.close()
