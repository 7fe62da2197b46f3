"""A simulated gate camera for the demo: pilgrims step up one at a time and show a permit.

Payloads queue up (:meth:`QueueCamera.present`); each is shown for a few frames rendered
by :class:`hardware.scene.SceneSimulator` (so the agent decodes real pixels), then the
lane is empty for a moment. Frames come at a steady rate, like a camera: idle frames are
a plain background (the decoder finds nothing in them).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from hardware.scene import SceneSimulator
from hardware.sources.base import Frame, FrameSource

#: Impairments the demo uses: realistic yet read at a high rate by the default decoder.
MILD = ("clean", "rotation", "perspective")


class QueueCamera(FrameSource):
    """Frames at ``fps`` showing queued payloads, ``frames_each`` frames per person."""

    def __init__(
        self,
        *,
        name: str,
        seed: int,
        fps: float = 6.0,
        frames_each: int = 5,
        gap_s: float = 1.5,
        size: tuple[int, int] = (960, 540),
        impairments: Sequence[str] = MILD,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.name = name
        self._seed = seed
        self._period = 1.0 / fps
        self._frames_each = frames_each
        self._gap_frames = max(1, round(gap_s * fps))
        self._size = size
        self._impairments = tuple(impairments)
        self._queue: collections.deque[bytes] = collections.deque()
        self._pending: collections.deque[np.ndarray] = collections.deque()
        self._idle = np.full((size[1], size[0], 3), 128, dtype=np.uint8)
        self._gap_left = 0
        self._shown = 0
        self._next = clock()
        self._wake = threading.Event()
        self._qlock = threading.Lock()
        self._sleep = sleep
        self._connected = True

    def present(self, payload: str | bytes, *, impairment: str | None = None) -> None:
        """Queue one person showing ``payload`` (optionally with a given impairment)."""
        data = payload.encode() if isinstance(payload, str) else payload
        with self._qlock:
            self._queue.append(data + b"\x00" + (impairment or "").encode())

    def waiting(self) -> int:
        with self._qlock:
            return len(self._queue) + (1 if self._pending else 0)

    def _render(self, item: bytes) -> list[np.ndarray]:
        payload, _, imp = item.rpartition(b"\x00")
        chosen = (imp.decode(),) if imp else self._impairments
        sim = SceneSimulator(
            [payload], seed=self._seed, size=self._size,
            impairments=(chosen[self._shown % len(chosen)],),
            frames_per_presentation=(self._frames_each, self._frames_each), gap_frames=(0, 0),
        )
        self._shown += 1
        return [f.image for f in sim.presentation(self._shown)]

    def _read(self) -> Frame | None:
        # Pace like a camera: one frame per period; close() ends the wait at once.
        delay = self._next - self._clock()
        if delay > 0:
            if self._sleep is not None:
                self._sleep(delay)
            elif self._closed.wait(delay):
                return None
        self._next = max(self._next + self._period, self._clock() - self._period)
        if not self._pending and self._gap_left <= 0:
            with self._qlock:
                item = self._queue.popleft() if self._queue else None
            if item is not None:
                self._pending.extend(self._render(item))
                self._gap_left = self._gap_frames
        if self._pending:
            return self._frame(self._pending.popleft(), None)
        self._gap_left -= 1
        return self._frame(self._idle, None)
