"""Keyboard-wedge scanners: one payload per line, from standard input or an evdev device.

A wedge scanner types the payload and presses Enter. Lines are read on a named
thread into a queue so ``close()`` from another thread ends a waiting ``read()``.
From evdev, key events are turned into characters with a US layout (what wedge
scanners emulate by default).

Unplugging: an evdev scanner that is pulled out fails its read with ``OSError``
(``ENODEV``); the source reopens the device path with back-off like an unplugged camera
(:mod:`hardware.sources.reopen`), and a scanner missing at start is waited for. Standard
input cannot be reopened by anyone but whoever started the process, so end of input on a
pipe, terminal or socket (the feeding process died, the terminal hung up) raises
``SourceGaveUp`` at once: the agent exits non-zero and systemd restarts it with a fresh
standard input. A regular file or in-memory stream is a replay, and simply ends.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import stat
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from hardware.config import WedgeSourceConfig
from hardware.errors import DriverMissing, SourceDisconnected, SourceGaveUp
from hardware.sources.base import Clock, log
from hardware.sources.reopen import IDLE, Capture, Idle, ReopeningSource, ReopenPolicy

_EOF = object()
#: How often a waiting ``read()`` checks whether the source was closed.
_POLL_S = 0.05

# Linux input key codes (linux/input-event-codes.h) -> (plain, shifted) for a US layout.
_ROWS: list[tuple[int, str, str]] = [
    (2, "1234567890-=", "!@#$%^&*()_+"),
    (16, "qwertyuiop[]", "QWERTYUIOP{}"),
    (30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
]
KEYMAP: dict[int, tuple[str, str]] = {
    code + i: (plain[i], shifted[i])
    for code, plain, shifted in _ROWS
    for i in range(len(plain))
}
KEYMAP[57] = (" ", " ")  # KEY_SPACE
KEYMAP[15] = ("\t", "\t")  # KEY_TAB
KEYMAP.update({  # keypad
    71: ("7", "7"), 72: ("8", "8"), 73: ("9", "9"), 74: ("-", "-"), 75: ("4", "4"),
    76: ("5", "5"), 77: ("6", "6"), 78: ("+", "+"), 79: ("1", "1"), 80: ("2", "2"),
    81: ("3", "3"), 82: ("0", "0"), 83: (".", "."), 55: ("*", "*"), 98: ("/", "/"),
})
_SHIFT = frozenset({42, 54})  # KEY_LEFTSHIFT, KEY_RIGHTSHIFT
_CAPSLOCK = 58
_ENTER = frozenset({28, 96})  # KEY_ENTER, KEY_KPENTER


class KeyAssembler:
    """Turns key events (``code``, ``value``: 1 down, 0 up, 2 repeat) into finished lines."""

    def __init__(self) -> None:
        self._shift = 0
        self._caps = False
        self._buf: list[str] = []

    def feed(self, code: int, value: int) -> bytes | None:
        """Feed one key event; returns the line's bytes when Enter is pressed."""
        if code in _SHIFT:
            self._shift = max(0, self._shift + (1 if value == 1 else -1 if value == 0 else 0))
            return None
        if value != 1:
            return None
        if code == _CAPSLOCK:
            self._caps = not self._caps
            return None
        if code in _ENTER:
            line = "".join(self._buf).encode("utf-8")
            self._buf.clear()
            return line
        chars = KEYMAP.get(code)
        if chars is None:
            return None  # modifiers and keys a scanner does not send
        ch = chars[1] if self._shift else chars[0]
        if self._caps and ch.isalpha():
            ch = ch.swapcase()
        self._buf.append(ch)
        return None


class _Failed:
    """Queued by a reader thread whose input failed: ``_next()`` raises it in order."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class WedgeSource(ReopeningSource):
    """Scanned lines as frames with ``text`` set (``image`` is ``None``)."""

    def __init__(
        self,
        cfg: WedgeSourceConfig,
        *,
        clock: Clock = time.monotonic,
        stream: IO[bytes] | None = None,
    ) -> None:
        super().__init__(clock=clock, policy=ReopenPolicy.from_config(cfg))
        self.cfg = cfg
        self._queue: queue.Queue[Any] = queue.Queue()
        self._device: Any = None
        self._thread: threading.Thread | None = None
        self._evdev: Any = None
        if cfg.device == "stdin":
            self.name = "wedge:stdin"
            self._stream = stream if stream is not None else sys.stdin.buffer
            self._start(wait_for_device=False)
        else:
            self.name = f"wedge:{cfg.device}"
            try:
                import evdev
            except ImportError as exc:
                raise DriverMissing("evdev is not installed (pip install 'gatepass[pi]')") from exc
            self._evdev = evdev
            # A USB scanner may enumerate after the agent starts: waited for like a drop.
            self._start(wait_for_device=True)

    # -- the device --------------------------------------------------------------------

    def _connect(self) -> None:
        if self._evdev is None:
            if self._thread is not None:
                raise SourceGaveUp(f"{self.name}: standard input cannot be reopened")
            target = self._read_stream
        else:
            self._device = self._open_evdev(self.cfg.device, self.cfg.grab)
            target = self._read_evdev
        # One queue per connection: lines of a device that failed stay with it.
        self._queue = queue.Queue()
        # Daemon as a last resort: should a read ever block, it must not keep the
        # process alive after close().
        self._thread = threading.Thread(target=target, args=(self._queue,),
                                        name=f"{self.name}-reader", daemon=True)
        self._thread.start()

    def _open_evdev(self, path: str, grab: bool) -> Any:
        try:
            device = self._evdev.InputDevice(path)
        except OSError as exc:
            raise SourceDisconnected(
                f"cannot open input device {path}: {exc.strerror or exc}") from exc
        if grab:
            try:
                device.grab()
            except OSError as exc:
                with contextlib.suppress(OSError):
                    device.close()
                raise SourceDisconnected(
                    f"cannot grab input device {path}: {exc.strerror or exc}") from exc
        return device

    def _disconnect(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            with contextlib.suppress(OSError):
                device.close()
        th = self._thread
        if th is not None and th is not threading.current_thread() and self._evdev is not None:
            th.join(timeout=0.5)
            if th.is_alive():
                log.warning("%s: reader thread did not stop", self.name)

    def _close(self) -> None:
        super()._close()
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout=0.5)
            if th.is_alive():
                log.warning("%s: reader thread did not stop", self.name)

    # -- reader threads ------------------------------------------------------------------

    def _put_line(self, q: queue.Queue[Any], line: bytes) -> None:
        line = line.rstrip(b"\r\n")
        if not line:
            return
        if len(line) > self.cfg.max_line_bytes:
            self._skipped += 1
            self._report("dropped a %d-byte line (limit %d)", len(line), self.cfg.max_line_bytes)
            return
        q.put((line, self._clock()))

    def _stream_is_finite(self) -> bool:
        """A regular file or in-memory stream ends; a pipe, terminal or socket is live."""
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            return True
        try:
            return stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            return False

    def _read_stream(self, q: queue.Queue[Any]) -> None:
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            fd = None  # an in-memory stream: plain blocking reads cannot hang
        finite = self._stream_is_finite()
        try:
            if fd is None:
                self._read_lines(q, iter(lambda: self._stream.read(4096), b""))
            else:
                self._read_lines(q, self._poll_fd(fd))
        except (OSError, ValueError) as exc:  # ValueError: stream closed under us
            if not self._closed.is_set():
                q.put(_Failed(SourceGaveUp(
                    f"{self.name}: standard input failed ({exc}); it cannot be reopened")))
                return
        if finite or self._closed.is_set():
            q.put(_EOF)
        else:
            q.put(_Failed(SourceGaveUp(
                f"{self.name}: standard input was closed (end of input); it cannot be reopened")))

    def _poll_fd(self, fd: int) -> Iterator[bytes]:
        # select() with a timeout, so close() stops this thread even on a silent terminal
        # (a blocking read could not be interrupted).
        while not self._closed.is_set():
            ready, _, _ = select.select([fd], [], [], _POLL_S)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                return
            yield chunk

    def _read_lines(self, q: queue.Queue[Any], chunks: Iterator[bytes]) -> None:
        limit = self.cfg.max_line_bytes
        buf = b""
        overlong = False
        for chunk in chunks:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if overlong:
                    overlong = False  # the tail of a line already dropped
                    continue
                self._put_line(q, line)
            if len(buf) > limit + 1:
                # Drop the whole line, not a truncated payload that might still verify.
                if not overlong:
                    self._skipped += 1
                    self._report("dropped an over-long line (limit %d)", limit)
                overlong = True
                buf = b""
        if buf and not overlong:
            self._put_line(q, buf)

    def _read_evdev(self, q: queue.Queue[Any]) -> None:
        keys = KeyAssembler()
        device = self._device
        try:
            for event in device.read_loop():
                if event.type != 1:  # EV_KEY
                    continue
                line = keys.feed(event.code, event.value)
                if line is not None:
                    self._put_line(q, line)
        except (OSError, ValueError) as exc:  # ValueError: the fd was closed under us
            if not self._closed.is_set():
                q.put(_Failed(SourceDisconnected(f"input device failed: {exc}")))
            return
        if not self._closed.is_set():
            q.put(_Failed(SourceDisconnected("input device stopped sending events")))

    # -- the loop --------------------------------------------------------------------------

    def _next(self) -> Capture | Idle | None:
        try:
            item = self._queue.get(timeout=_POLL_S)
        except queue.Empty:
            return IDLE
        if item is _EOF:
            return None
        if isinstance(item, _Failed):
            raise item.error
        line, t = item
        return Capture(None, line, t)
