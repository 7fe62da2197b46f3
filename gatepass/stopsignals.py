"""SIGINT, SIGTERM and SIGHUP for long-running commands, with nothing but a flag in the handler.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread holds a lock: ``threading.Event.set()`` in a handler deadlocks when the signal lands
inside ``Event.wait()`` or ``set()`` on the same event (the stop handler of ``gatepass demo``
was once found nested three times inside ``Event.set()``). So the handler here does nothing
at all: ``signal.set_wakeup_fd`` has the interpreter's C-level handler write the signal
number to a socket, and a named relay thread reads it and sets the events from ordinary,
lock-safe code.

    with StopSignals() as signals:
        while not signals.stop.wait(0.5):
            if signals.take_reload(): ...
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger("gatepass.signals")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: deliberately empty (see the module docstring)."""


class StopSignals:
    """Relay SIGINT/SIGTERM to ``stop`` (and SIGHUP to ``reload`` when asked) from a thread.

    Install from the main thread. ``close()`` restores the previous handlers and wakeup fd;
    it is safe to call twice.
    """

    def __init__(self, stop: threading.Event | None = None, *, reload: bool = False) -> None:
        self.stop = stop if stop is not None else threading.Event()
        self.reload = threading.Event()
        self.received: list[str] = []
        self._signals = STOP_SIGNALS + ((signal.SIGHUP,) if reload else ())
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        self._thread: threading.Thread | None = None
        self._closed = False

    def install(self) -> StopSignals:
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for s in self._signals:
            self._previous[s] = signal.signal(s, _ignore)
        self._thread = threading.Thread(target=self._relay, name="signal-relay", daemon=True)
        self._thread.start()
        return self

    def take_reload(self) -> bool:
        """True once per SIGHUP received since the last call."""
        if self.reload.is_set():
            self.reload.clear()
            return True
        return False

    def _relay(self) -> None:
        while True:
            try:
                data = self._reader.recv(64)
            except OSError:
                return
            if not data:
                return  # close() shut the writer
            for signum in data:
                if signum not in self._signals:
                    continue
                name = signal.Signals(signum).name
                self.received.append(name)
                if signum == signal.SIGHUP:
                    self.reload.set()
                else:
                    log.info("signal %s received, stopping", name)
                    self.stop.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for s, h in self._previous.items():
            signal.signal(s, h)
        if self._thread is not None:  # installed: give the wakeup fd back
            signal.set_wakeup_fd(self._previous_fd)
        self._writer.close()
        if self._thread is not None:
            self._thread.join(2)
        self._reader.close()

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
