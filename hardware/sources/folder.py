"""Image files from a folder, in name order, once or looping.

The folder is listed when the source opens and again at the start of every pass of a
looping folder. A folder that vanishes (a USB stick pulled, a network share lost) is a
drop like an unplugged camera: the source reopens it with back-off when it is back (a
folder that runs once skips the files it already delivered), and gives up after
``give_up_after_s``. A folder missing at start is a config mistake: ``SourceUnavailable``.
"""

from __future__ import annotations

import time
from pathlib import Path

from hardware.config import FolderSourceConfig
from hardware.errors import SourceDisconnected, SourceUnavailable, UnusableImage
from hardware.image import read_image
from hardware.sources.base import Clock
from hardware.sources.reopen import Capture, ReopeningSource, ReopenPolicy

#: File name endings taken as images; other files in the folder are ignored.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".pgm",
                            ".ppm", ".pnm"})


class FolderSource(ReopeningSource):
    """Reads every image in a folder; unreadable files are skipped, counted and logged."""

    def __init__(self, cfg: FolderSourceConfig, *, clock: Clock = time.monotonic) -> None:
        super().__init__(clock=clock, policy=ReopenPolicy.from_config(cfg))
        self.cfg = cfg
        self.folder = Path(cfg.path)
        self.name = f"folder:{self.folder}"
        self.files: list[Path] = []
        self._pos = 0
        self._good_in_pass = 0
        self._delivered: set[str] = set()  # a run-once folder that comes back resumes
        try:
            self._start(wait_for_device=False)
        except SourceUnavailable:
            raise SourceUnavailable(f"image folder {self.folder} does not exist") from None

    def _list(self) -> list[Path]:
        if not self.folder.is_dir():
            raise SourceDisconnected(f"image folder {self.folder} does not exist")
        try:
            entries = list(self.folder.glob(self.cfg.pattern))
        except OSError as exc:
            raise SourceDisconnected(f"cannot list {self.folder}: {exc.strerror}") from exc
        files = sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.cfg.loop:
            files = [p for p in files if p.name not in self._delivered]
        return files

    def _connect(self) -> None:
        self.files = self._list()
        self._pos = 0
        self._good_in_pass = 0

    def _next(self) -> Capture | None:
        while not self._closed.is_set():
            if self._pos >= len(self.files):
                # A looping folder with no readable image would spin forever.
                if not self.cfg.loop or self._good_in_pass == 0:
                    if not self.folder.is_dir():
                        raise SourceDisconnected(f"image folder {self.folder} vanished")
                    return None
                self._connect()
                continue
            path = self.files[self._pos]
            self._pos += 1
            try:
                image = read_image(path)
            except UnusableImage as exc:
                if not self.folder.is_dir():
                    raise SourceDisconnected(f"image folder {self.folder} vanished") from exc
                self._skipped += 1
                self._last_error = str(exc)
                self._report("skipped %s", exc)
                continue
            self._good_in_pass += 1
            if not self.cfg.loop:
                self._delivered.add(path.name)
            return Capture(image, None, self._clock())
        return None
