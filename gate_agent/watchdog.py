"""systemd readiness and watchdog notifications (``sd_notify``), fed by the frame loop.

Under ``Type=notify`` systemd waits for ``READY=1``; with ``WatchdogSec=`` it kills and
restarts a service that does not send ``WATCHDOG=1`` at least that often. The protocol is
one datagram of ``KEY=value`` lines to the unix socket named in ``NOTIFY_SOCKET`` (a path,
or ``@name`` for the abstract namespace); systemd passes the watchdog period in
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, the process it is meant for).

No library: the protocol is the few lines below, documented as stable in sd_notify(3),
and the Python bindings (``systemd-python``, ``sdnotify``) add a C build or an unkept
package for nothing more. Without ``NOTIFY_SOCKET`` (not under systemd, or in tests)
every call is a no-op.

:class:`Watchdog` pings only while the agent says its frame loop is healthy
(:meth:`gate_agent.agent.GateAgent.frame_loop_healthy`): a loop stuck on one frame
stops the pings and systemd restarts the gate.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class SdNotify:
    """Sends ``sd_notify`` messages to ``address``; a no-op when ``address`` is ``None``."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SdNotify:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one message of ``lines``; True when it was sent. Failures are logged once."""
        if self.address is None:
            return False
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]  # the abstract namespace
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto("\n".join(lines).encode("utf-8"), target)
        except OSError as exc:
            if not self._warned:  # systemd gone or the socket wrong: say so, do not spam
                self._warned = True
                log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """systemd's ``WatchdogSec`` for this process (from ``WATCHDOG_USEC``), or ``None``."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid.strip() and pid.strip() != str(os.getpid()):
        return None  # meant for another process (a parent that exec'd us, say)
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Watchdog:
    """A named thread sending ``WATCHDOG=1`` every ``interval_s / 2`` while ``healthy()``.

    ``healthy`` gets the longest time one frame may take (``interval_s / 2``): a frame
    stuck longer stops the pings, and systemd restarts the service at most
    ``interval_s`` after the last one. ``close()`` is safe twice.
    """

    def __init__(self, notifier: SdNotify, interval_s: float,
                 healthy: Callable[[float], bool]) -> None:
        self.notifier = notifier
        self.period_s = interval_s / 2
        self._healthy = healthy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gate-agent-watchdog",
                                        daemon=True)
        self.pings = 0
        self.missed = 0

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def _run(self) -> None:
        was_missing = False
        while True:
            try:
                ok = self._healthy(self.period_s)
            except Exception:  # a failing check is an unhealthy gate, not a dead watchdog
                log.exception("watchdog health check failed")
                ok = False
            if ok:
                if self.notifier.watchdog():
                    self.pings += 1
                if was_missing:
                    log.warning("frame loop healthy again: watchdog pings resumed")
            else:
                self.missed += 1
                if not was_missing:
                    log.error("frame loop stuck or failed: withholding the systemd watchdog "
                              "ping (systemd restarts the gate if this lasts)")
            was_missing = not ok
            if self._stop.wait(self.period_s):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                log.warning("watchdog thread did not stop within 5 s")
