"""The frame-source interface shared by every backend."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

Clock = Callable[[], float]
log = logging.getLogger("hardware.sources")


@dataclass(frozen=True, slots=True)
class Frame:
    """One unit from a source: a camera image, or a text line from a wedge scanner.

    ``image`` is a ``uint8`` BGR or grayscale array (``None`` for wedge lines), ``text``
    the scanned bytes without the line ending (``None`` for cameras), ``t_mono`` the
    source clock's time of capture, ``index`` counts frames from 0 within this source.
    """

    image: npt.NDArray[np.uint8] | None
    text: bytes | None
    t_mono: float
    index: int


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What a source reports about itself (for the agent's health and the console).

    ``skipped`` counts unusable inputs (corrupt files, over-long lines); ``dropped``
    counts good frames passed over to deliver a newer one. ``disconnects`` counts outages
    (a drop and the failed reopen attempts after it are one), ``reconnects`` the returns;
    ``down_for_s`` is how long the current outage has lasted (``None`` while up) and
    ``gave_up`` is true once the source stopped trying (``SourceGaveUp`` was raised);
    ``quiet_for_s`` (live cameras: sources with a stall time) is how long a connected
    source has gone without a frame since its last frame or (re)connection.
    """

    name: str
    connected: bool
    finished: bool
    frames: int
    disconnects: int
    reconnects: int
    skipped: int
    last_error: str | None
    dropped: int = 0
    down_for_s: float | None = None
    gave_up: bool = False
    quiet_for_s: float | None = None


class FrameSource(ABC):
    """A context manager yielding :class:`Frame` objects; ``close()`` is safe twice.

    ``read()`` returns ``None`` once the source is finished or closed; ``close()`` may
    be called from another thread to end a blocking ``read()``.
    """

    name: str = "source"

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._index = 0
        self._connected = False
        self._finished = False
        self._disconnects = 0
        self._reconnects = 0
        self._skipped = 0
        self._last_error: str | None = None

    def read(self) -> Frame | None:
        """The next frame, or ``None`` when the source is finished or closed."""
        if self._closed.is_set() or self._finished:
            return None
        frame = self._read()
        if frame is None:
            self._finished = True
        return frame

    @abstractmethod
    def _read(self) -> Frame | None: ...

    def _frame(self, image: npt.NDArray[np.uint8] | None, text: bytes | None,
               t_mono: float | None = None) -> Frame:
        frame = Frame(image=image, text=text,
                      t_mono=self._clock() if t_mono is None else t_mono, index=self._index)
        self._index += 1
        return frame

    def status(self) -> SourceStatus:
        """Counters and state: frames delivered, drops, returns, skipped inputs."""
        return SourceStatus(
            name=self.name, connected=self._connected and not self._closed.is_set(),
            finished=self._finished or self._closed.is_set(), frames=self._index,
            disconnects=self._disconnects, reconnects=self._reconnects,
            skipped=self._skipped, last_error=self._last_error,
        )

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Release the device; safe to call twice and from another thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._close()

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _report(self, message: str, *args: Any) -> None:
        log.warning("%s: " + message, self.name, *args)
