"""The scene simulator as a frame source (``kind = "scene"``).

``unplug()`` and ``replug()`` simulate a camera cable pulled out and put back (for
simulations and tests of the gate's recovery): while unplugged, reads fail and reopen
attempts fail, exactly as a real camera's would, through the same reopen mechanism.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

from hardware.config import SceneSourceConfig
from hardware.errors import SourceDisconnected
from hardware.scene import SceneFrame, SceneSimulator
from hardware.sources.base import Clock
from hardware.sources.reopen import Capture, ReopeningSource, ReopenPolicy

_BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def placeholder_payloads(seed: int, n: int = 4) -> list[bytes]:
    """Permit-shaped payloads ('GP1:' + 300 Base45 characters) for demos without keys."""
    rnd = random.Random(seed)
    return [("GP1:" + "".join(rnd.choice(_BASE45) for _ in range(300))).encode() for _ in range(n)]


class SceneSource(ReopeningSource):
    """Frames from a :class:`SceneSimulator`; ``last`` is the :class:`SceneFrame` (truth)."""

    def __init__(
        self,
        cfg: SceneSourceConfig,
        *,
        clock: Clock = time.monotonic,
        scene: SceneSimulator | None = None,
    ) -> None:
        super().__init__(clock=clock, policy=ReopenPolicy.from_config(cfg))
        self.cfg = cfg
        self._plugged = threading.Event()
        self._plugged.set()
        payloads = [p.encode("utf-8") for p in cfg.payloads] or placeholder_payloads(cfg.seed)
        self.scene = scene or SceneSimulator(
            payloads, seed=cfg.seed, size=(cfg.width, cfg.height),
            impairments=cfg.impairments or None,
        )
        self.name = f"scene:{cfg.seed}"
        self._frames: Iterator[SceneFrame] = iter(self.scene)
        self.last: SceneFrame | None = None
        self._start(wait_for_device=True)

    def unplug(self) -> None:
        """Simulate the camera cable pulled out: reads and reopen attempts fail."""
        self._plugged.clear()

    def replug(self) -> None:
        """Simulate the cable put back: the next reopen attempt succeeds."""
        self._plugged.set()

    def _connect(self) -> None:
        if not self._plugged.is_set():
            raise SourceDisconnected(f"{self.name}: camera unplugged (simulated)")

    def _next(self) -> Capture | None:
        if self.cfg.frames is not None and self._index >= self.cfg.frames:
            return None
        if not self._plugged.is_set():
            raise SourceDisconnected("camera unplugged (simulated)")
        self.last = next(self._frames)
        return Capture(self.last.image, None, self._clock())
