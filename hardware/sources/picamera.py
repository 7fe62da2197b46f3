"""The Raspberry Pi camera through picamera2 (imported only when chosen)."""

from __future__ import annotations

import time
from typing import Any

from hardware.config import Picamera2SourceConfig
from hardware.errors import DriverMissing, SourceUnavailable
from hardware.sources.base import Clock, Frame, FrameSource


class Picamera2Source(FrameSource):
    """Frames from ``Picamera2.capture_array()`` as BGR (picamera2's ``RGB888``)."""

    def __init__(self, cfg: Picamera2SourceConfig, *, clock: Clock = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.cfg = cfg
        self.name = f"picamera2:{cfg.camera_num}"
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise DriverMissing(
                "picamera2 is not installed (on Raspberry Pi OS: apt install python3-picamera2)"
            ) from exc
        try:
            cam: Any = Picamera2(cfg.camera_num)
            controls = {"FrameRate": cfg.fps} if cfg.fps else {}
            config = cam.create_video_configuration(
                main={"size": (cfg.width, cfg.height), "format": "RGB888"}, controls=controls
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:  # picamera2 raises plain RuntimeError/IndexError
            raise SourceUnavailable(f"cannot start {self.name}: {exc}") from exc
        self._cam = cam
        self._connected = True

    def _read(self) -> Frame | None:
        try:
            image = self._cam.capture_array("main")
        except Exception as exc:
            if self._closed.is_set():
                return None
            raise SourceUnavailable(f"{self.name} stopped delivering frames: {exc}") from exc
        return self._frame(image, None)

    def _close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()
        self._connected = False
