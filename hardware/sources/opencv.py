"""Cameras, streams and video files through ``cv2.VideoCapture``, with reconnection."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hardware.config import OpenCVSourceConfig
from hardware.errors import DriverMissing, SourceUnavailable
from hardware.sources.base import Clock, Frame, FrameSource, log


def _is_file(device: int | str) -> bool:
    if isinstance(device, int):
        return False
    return "://" not in device and not device.startswith("/dev/") and not device.isdigit()


class OpenCVSource(FrameSource):
    """``cv2.VideoCapture`` on a device index, ``/dev/videoN``, URL or video file.

    A failed read of a camera or stream counts as a drop: the capture is released and
    reopened after ``reconnect_delay_s`` (doubling up to ``max_reconnect_delay_s``),
    each drop and return logged and counted. A video file ends the source unless
    ``on_end = "reconnect"``, which replays it (and reports each replay as a return).
    """

    def __init__(self, cfg: OpenCVSourceConfig, *, clock: Clock = time.monotonic) -> None:
        super().__init__(clock=clock)
        try:
            import cv2
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise DriverMissing("OpenCV (opencv-python-headless) is not installed") from exc
        self._cv2 = cv2
        self.cfg = cfg
        self.name = f"opencv:{cfg.device}"
        self._is_file = _is_file(cfg.device)
        if cfg.on_end == "auto":
            self._reconnect = not self._is_file
        else:
            self._reconnect = cfg.on_end == "reconnect"
        if self._is_file and not Path(str(cfg.device)).is_file():
            raise SourceUnavailable(f"video file {cfg.device} does not exist")
        self._cap: Any = None
        self._down_since: float | None = None
        self._delay = cfg.reconnect_delay_s
        if not self._open():
            if not self._reconnect:
                raise SourceUnavailable(f"cannot open {self.name}: {self._last_error}")
            self._drop(self._last_error or "cannot open")

    def _open(self) -> bool:
        cv2 = self._cv2
        device: int | str = self.cfg.device
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            cap = cv2.VideoCapture(device)
        except cv2.error as exc:
            self._last_error = f"OpenCV refused to open it: {str(exc).strip().splitlines()[-1]}"
            return False
        if not cap.isOpened():
            cap.release()
            self._last_error = "VideoCapture did not open (missing device, bad URL or codec)"
            return False
        if self.cfg.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.cfg.fourcc))
        if self.cfg.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
        if self.cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
        if self.cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
        with self._lock:
            if self._closed.is_set():
                cap.release()
                return False
            self._cap = cap
        self._connected = True
        return True

    def _drop(self, why: str) -> None:
        with self._lock:
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
        if self._connected or self._down_since is None:
            self._disconnects += 1
            self._down_since = self._clock()
            self._delay = self.cfg.reconnect_delay_s
            self._report("dropped out (%s); reopening", why)
        self._connected = False
        self._last_error = why

    def _read(self) -> Frame | None:
        while not self._closed.is_set():
            if self._cap is None and not self._retry():
                continue
            try:
                ok, image = self._cap.read()
            except self._cv2.error as exc:
                ok, image = False, None
                self._last_error = str(exc).strip().splitlines()[-1]
            if self._closed.is_set():
                break
            if ok and image is not None and image.size:
                return self._frame(image, None)
            if not self._reconnect:
                self._connected = False
                self._last_error = "end of stream"
                return None
            self._drop("end of stream" if self._is_file else "read failed")
        return None

    def _retry(self) -> bool:
        """Wait the backoff delay, then try to reopen; raise after ``give_up_after_s``."""
        if self._closed.wait(self._delay):
            return False
        if self._open():
            down = self._clock() - (self._down_since or self._clock())
            self._reconnects += 1
            self._down_since = None
            log.warning("%s: back after %.1f s", self.name, down)
            return True
        self._delay = min(self._delay * 2, self.cfg.max_reconnect_delay_s)
        give_up = self.cfg.give_up_after_s
        if give_up is not None and self._down_since is not None:
            if self._clock() - self._down_since >= give_up:
                raise SourceUnavailable(
                    f"{self.name} has been away for {give_up:g} s: {self._last_error}"
                )
        return False

    def _close(self) -> None:
        # A read blocked in another thread holds no lock, so release here is safe only
        # when we can take the capture away first.
        with self._lock:
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
        self._connected = False
