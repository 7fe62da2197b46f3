"""Cameras, streams and video files through ``cv2.VideoCapture``, with reconnection."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hardware.config import OpenCVSourceConfig
from hardware.errors import DriverMissing, SourceUnavailable
from hardware.sources.base import Clock, Frame, FrameSource, SourceStatus, log


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
    With ``drop_stale`` (the default for cameras and streams) a grabber thread keeps
    reading and ``read()`` returns the newest frame, counting the ones it skipped in
    ``status().dropped``: a slow decoder then never sees seconds-old frames.
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
        live = not self._is_file
        self._drop_stale = live if cfg.drop_stale is None else cfg.drop_stale
        self._grabber: threading.Thread | None = None
        self._cond = threading.Condition()
        self._latest: tuple[npt.NDArray[np.uint8], float] | None = None
        self._ended = False
        self._error: SourceUnavailable | None = None
        self._dropped = 0
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
        if not self._drop_stale:
            item = self._capture()
            return None if item is None else self._frame(item[0], None, item[1])
        if self._grabber is None:
            self._grabber = threading.Thread(target=self._grab_loop, name=f"{self.name}-grabber",
                                             daemon=True)
            self._grabber.start()
        with self._cond:
            while (self._latest is None and not self._ended and self._error is None
                   and not self._closed.is_set()):
                self._cond.wait(0.05)
            latest, self._latest = self._latest, None
            if latest is not None:
                return self._frame(latest[0], None, latest[1])
            if self._error is not None:
                raise self._error
            return None

    def _grab_loop(self) -> None:
        """Keep only the newest frame, so a slow consumer never falls behind a live camera."""
        try:
            while not self._closed.is_set():
                item = self._capture()
                with self._cond:
                    if item is None:
                        self._ended = True
                        return
                    if self._latest is not None:
                        self._dropped += 1
                    self._latest = item
                    self._cond.notify_all()
        except SourceUnavailable as exc:
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _capture(self) -> tuple[npt.NDArray[np.uint8], float] | None:
        """The next image and its capture time, or ``None`` at the end or when closed.

        Only one thread at a time calls this (the reader, or the grabber thread).
        """
        cv2 = self._cv2
        while not self._closed.is_set():
            if self._cap is None and not self._retry():
                continue
            with self._lock:  # close() releases the capture only between reads
                cap = self._cap
                if cap is None:
                    continue
                try:
                    ok, image = cap.read()
                except cv2.error as exc:
                    ok, image = False, None
                    self._last_error = str(exc).strip().splitlines()[-1]
            t = self._clock()
            if self._closed.is_set():
                break
            if ok and image is not None and image.size:
                return image, t
            if not self._reconnect:
                self._connected = False
                self._last_error = "end of stream"
                return None
            self._drop("end of stream" if self._is_file else "read failed")
        self._release()
        return None

    def _release(self) -> None:
        with self._lock:
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
        self._connected = False

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
        down_since = self._down_since
        if give_up is not None and down_since is not None and self._clock() - down_since >= give_up:
            raise SourceUnavailable(
                f"{self.name} has been away for {give_up:g} s: {self._last_error}"
            )
        return False

    def _close(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._grabber is not None:
            self._grabber.join(timeout=2.0)
            if self._grabber.is_alive():
                log.warning("%s: grabber thread did not stop within 2 s", self.name)
        # A read blocked in another thread holds the lock; it releases the capture itself
        # when it returns and sees the source closed.
        if self._lock.acquire(timeout=0.5):
            try:
                cap, self._cap = self._cap, None
            finally:
                self._lock.release()
            if cap is not None:
                cap.release()
        self._connected = False

    def status(self) -> SourceStatus:
        return replace(super().status(), dropped=self._dropped)
