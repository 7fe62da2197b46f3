"""The scene simulator as a frame source (``kind = "scene"``)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

from hardware.config import SceneSourceConfig
from hardware.scene import SceneFrame, SceneSimulator
from hardware.sources.base import Clock, Frame, FrameSource

_BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def placeholder_payloads(seed: int, n: int = 4) -> list[bytes]:
    """Permit-shaped payloads ('GP1:' + 300 Base45 characters) for demos without keys."""
    rnd = random.Random(seed)
    return [("GP1:" + "".join(rnd.choice(_BASE45) for _ in range(300))).encode() for _ in range(n)]


class SceneSource(FrameSource):
    """Frames from a :class:`SceneSimulator`; ``last`` is the :class:`SceneFrame` (truth)."""

    def __init__(
        self,
        cfg: SceneSourceConfig,
        *,
        clock: Clock = time.monotonic,
        scene: SceneSimulator | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.cfg = cfg
        payloads = [p.encode("utf-8") for p in cfg.payloads] or placeholder_payloads(cfg.seed)
        self.scene = scene or SceneSimulator(
            payloads, seed=cfg.seed, size=(cfg.width, cfg.height),
            impairments=cfg.impairments or None,
        )
        self.name = f"scene:{cfg.seed}"
        self._frames: Iterator[SceneFrame] = iter(self.scene)
        self.last: SceneFrame | None = None
        self._connected = True

    def _read(self) -> Frame | None:
        if self.cfg.frames is not None and self._index >= self.cfg.frames:
            return None
        self.last = next(self._frames)
        return self._frame(self.last.image, None)
