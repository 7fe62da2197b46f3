"""Frame sources: cameras, image folders, the Pi camera, keyboard wedges, the scene simulator.

``open_source(cfg)`` picks the backend named by ``cfg.kind`` and imports its driver
only then (OpenCV, picamera2, evdev), so a laptop runs the agent without Pi
libraries. Every source is a context manager whose ``read()`` returns the next
:class:`Frame`, or ``None`` once the source is finished (end of a video file or
folder run once, end of a replayed input, or closed from another thread). A source that
drops out (camera unplugged, stream lost, scanner pulled, folder gone) is reopened with
back-off inside ``read()`` by one mechanism, :mod:`hardware.sources.reopen`; drops and
returns are logged and counted in :meth:`FrameSource.status`, and a source still away
after its ``give_up_after_s`` raises :class:`hardware.errors.SourceGaveUp` from ``read()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from hardware.config import (
    FolderSourceConfig,
    OpenCVSourceConfig,
    Picamera2SourceConfig,
    SceneSourceConfig,
    SourceConfig,
    WedgeSourceConfig,
    parse_source_config,
)
from hardware.sources.base import Clock, Frame, FrameSource, SourceStatus

__all__ = ["Clock", "Frame", "FrameSource", "SourceStatus", "open_source"]


def open_source(
    cfg: SourceConfig | dict[str, Any],
    *,
    clock: Clock | None = None,
    stream: IO[bytes] | None = None,
    scene: Any = None,
) -> FrameSource:
    """Open the frame source described by ``cfg`` (a model or a plain dict).

    ``clock`` stamps :attr:`Frame.t_mono` (default ``time.monotonic``); ``stream``
    replaces standard input for a ``wedge`` source with ``device = "stdin"``;
    ``scene`` is an existing :class:`hardware.scene.SceneSimulator` for a ``scene``
    source (otherwise one is built from the config).
    """
    config = parse_source_config(cfg) if isinstance(cfg, dict) else cfg
    kw: dict[str, Any] = {} if clock is None else {"clock": clock}
    factory: Callable[..., FrameSource]
    if isinstance(config, OpenCVSourceConfig):
        from hardware.sources.opencv import OpenCVSource as factory
    elif isinstance(config, FolderSourceConfig):
        from hardware.sources.folder import FolderSource as factory
    elif isinstance(config, Picamera2SourceConfig):
        from hardware.sources.picamera import Picamera2Source as factory
    elif isinstance(config, WedgeSourceConfig):
        from hardware.sources.wedge import WedgeSource as factory

        if stream is not None:
            kw["stream"] = stream
    elif isinstance(config, SceneSourceConfig):
        from hardware.sources.scene import SceneSource as factory

        if scene is not None:
            kw["scene"] = scene
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not a source config: {type(config).__name__}")
    return factory(config, **kw)
