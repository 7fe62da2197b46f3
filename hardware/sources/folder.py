"""Image files from a folder, in name order, once or looping."""

from __future__ import annotations

import time
from pathlib import Path

from hardware.config import FolderSourceConfig
from hardware.errors import SourceUnavailable, UnusableImage
from hardware.image import read_image
from hardware.sources.base import Clock, Frame, FrameSource

#: File name endings taken as images; other files in the folder are ignored.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".pgm",
                            ".ppm", ".pnm"})


class FolderSource(FrameSource):
    """Reads every image in a folder; unreadable files are skipped, counted and logged."""

    def __init__(self, cfg: FolderSourceConfig, *, clock: Clock = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.cfg = cfg
        folder = Path(cfg.path)
        self.name = f"folder:{folder}"
        if not folder.is_dir():
            raise SourceUnavailable(f"image folder {folder} does not exist")
        self.files = sorted(
            p for p in folder.glob(cfg.pattern)
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        self._pos = 0
        self._good_in_pass = 0
        self._connected = True

    def _read(self) -> Frame | None:
        while not self._closed.is_set():
            if self._pos >= len(self.files):
                # A looping folder with no readable image would spin forever.
                if not self.cfg.loop or self._good_in_pass == 0:
                    return None
                self._pos = 0
                self._good_in_pass = 0
            path = self.files[self._pos]
            self._pos += 1
            try:
                image = read_image(path)
            except UnusableImage as exc:
                self._skipped += 1
                self._last_error = str(exc)
                self._report("skipped %s", exc)
                continue
            self._good_in_pass += 1
            return self._frame(image, None)
        return None
