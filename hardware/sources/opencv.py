"""Cameras, streams and video files through ``cv2.VideoCapture``, reopened with back-off."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from hardware.config import OpenCVSourceConfig
from hardware.errors import DriverMissing, SourceDisconnected, SourceUnavailable
from hardware.sources.base import Clock, Frame, SourceStatus, log
from hardware.sources.reopen import Capture, ReopeningSource, ReopenPolicy


def _is_file(device: int | str) -> bool:
    if isinstance(device, int):
        return False
    return "://" not in device and not device.startswith("/dev/") and not device.isdigit()


class OpenCVSource(ReopeningSource):
    """``cv2.VideoCapture`` on a device index, ``/dev/videoN``, URL or video file.

    A failed read of a camera or stream is a drop: the capture is released and reopened
    with back-off (:mod:`hardware.sources.reopen`), each drop and return logged and
    counted; a camera missing at start is waited for the same way. A video file ends the
    source unless ``on_end = "reconnect"``, which replays it (and reports each replay as a
    return). A stream URL that sends nothing for ``stall_after_s`` times out in OpenCV
    and counts as a drop. With ``drop_stale`` (the default for cameras and streams) a
    grabber thread keeps reading and ``read()`` returns the newest frame, counting the
    ones it skipped in ``status().dropped``: a slow decoder then never sees old frames.
    """

    def __init__(self, cfg: OpenCVSourceConfig, *, clock: Clock = time.monotonic) -> None:
        live = not _is_file(cfg.device)
        super().__init__(clock=clock, policy=ReopenPolicy.from_config(
            cfg, stall_after_s=cfg.stall_after_s if live else None))
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
        self._drop_stale = live if cfg.drop_stale is None else cfg.drop_stale
        self._grabber: threading.Thread | None = None
        self._cond = threading.Condition()
        self._latest: Capture | None = None
        self._ended = False
        self._error: SourceUnavailable | None = None
        self._dropped = 0
        self._start(wait_for_device=self._reconnect)

    # -- the device --------------------------------------------------------------------

    def _connect(self) -> None:
        cv2 = self._cv2
        device: int | str = self.cfg.device
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            if isinstance(device, str) and "://" in device and self.cfg.stall_after_s:
                # A stream that stalls must time out rather than block for ever.
                ms = int(self.cfg.stall_after_s * 1000)
                cap = cv2.VideoCapture(device, cv2.CAP_ANY, [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
            else:
                cap = cv2.VideoCapture(device)
        except cv2.error as exc:
            raise SourceDisconnected(
                f"cannot open {self.name}: OpenCV refused to open it: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from exc
        if not cap.isOpened():
            cap.release()
            raise SourceDisconnected(
                f"cannot open {self.name}: VideoCapture did not open "
                "(missing device, bad URL or codec)"
            )
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
                return
            self._cap = cap

    def _next(self) -> Capture | None:
        """One ``cap.read()``. Only one thread at a time calls this (reader or grabber)."""
        cv2 = self._cv2
        with self._lock:  # close() releases the capture only between reads
            cap = self._cap
            if cap is None:
                if self._closed.is_set():
                    return None
                raise SourceDisconnected("capture released")
            try:
                ok, image = cap.read()
            except cv2.error as exc:
                ok, image = False, None
                self._last_error = str(exc).strip().splitlines()[-1]
        t = self._clock()
        if self._closed.is_set():
            self._disconnect()
            return None
        if ok and image is not None and image.size:
            return Capture(image, None, t)
        if not self._reconnect:
            self._disconnect()
            self._last_error = "end of stream"
            return None
        raise SourceDisconnected("end of stream" if self._is_file else "read failed")

    def _disconnect(self) -> None:
        # From close() in another thread a read may hold the lock: that reader releases
        # the capture itself when it returns and sees the source closed.
        if not self._lock.acquire(timeout=0.5):
            return
        try:
            cap, self._cap = self._cap, None
        finally:
            self._lock.release()
        if cap is not None:
            cap.release()

    # -- newest-frame delivery -----------------------------------------------------------

    def _read(self) -> Frame | None:
        if not self._drop_stale:
            return super()._read()
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
                return self._frame(latest.image, None, latest.t_mono)
            if self._error is not None:
                raise self._error
            return None

    def _grab_loop(self) -> None:
        """Keep only the newest frame, so a slow consumer never falls behind a live camera."""
        try:
            while not self._closed.is_set():
                item = self._pull()  # reopens with back-off; raises SourceGaveUp
                with self._cond:
                    if item is None:
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

    def _close(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._grabber is not None and self._grabber is not threading.current_thread():
            self._grabber.join(timeout=2.0)
            if self._grabber.is_alive():
                log.warning("%s: grabber thread did not stop within 2 s", self.name)
        super()._close()

    def status(self) -> SourceStatus:
        return replace(super().status(), dropped=self._dropped)
