"""Child processes the demo and the simulation own: a broker, the central service, workers.

Every child is started with ``PR_SET_PDEATHSIG = SIGKILL`` (Linux) so it dies with us even
if we are killed without a chance to clean up, and every owner is a context manager whose
``stop()`` terminates, then kills, then reaps: no orphans on Ctrl-C, ``--duration`` or an
exception.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


class SimError(RuntimeError):
    """A demo or simulation part failed (a child would not start, a worker failed...)."""


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGKILL us with our parent.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    argv: Sequence[str], *, log: Path | None = None, stdout: int | IO[Any] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child that dies with this process; stderr (and stdout) to ``log``."""
    out: Any = subprocess.DEVNULL
    if log is not None:
        out = open(log, "ab")  # noqa: SIM115 - the child owns the descriptor from here
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else out, stderr=out,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            env=env if env is not None else env_with_repo(),
        )
    finally:
        if log is not None:
            out.close()


def reap(proc: subprocess.Popen[Any] | None, *, grace_s: float = 5.0) -> None:
    """SIGTERM, wait ``grace_s``, then SIGKILL; always waits so no zombie is left."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)


def kill9(proc: subprocess.Popen[Any] | None) -> None:
    """SIGKILL and reap: a power cut for that process."""
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)


class Broker:
    """A real MQTT broker on a free 127.0.0.1 port: Mosquitto when installed, else amqtt.

    ``kind``: ``"auto"``, ``"mosquitto"`` or ``"amqtt"``. amqtt speaks MQTT 3.1.1 only, so
    :attr:`protocol` tells clients which version to use. ``kill()`` is a SIGKILL;
    ``start()`` again restarts it on the same port (Mosquitto keeps its persistence file).
    """

    def __init__(self, workdir: Path, *, kind: str = "auto", port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if kind == "auto":
            kind = "mosquitto" if mosquitto else "amqtt"
        if kind == "mosquitto" and mosquitto is None:
            raise SimError("mosquitto is not installed: use --broker amqtt (or auto)")
        self.kind = kind
        self._mosquitto = mosquitto
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def protocol(self) -> str:
        return "3.1.1" if self.kind == "amqtt" else "5"

    def _argv(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.kind == "mosquitto":
            conf = self.workdir / "mosquitto.conf"
            # No queue limits: a lagging aggregator must slow the broker, not lose messages.
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                f"persistence_location {self.workdir}/\nmax_queued_messages 0\n"
                "max_inflight_messages 0\n"
            )
            assert self._mosquitto is not None
            return [self._mosquitto, "-c", str(conf)]
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{self.port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        binary = Path(sys.executable).parent / "amqtt"
        if binary.exists():
            return [str(binary), "-c", str(conf)]
        return [sys.executable, "-c", "from amqtt.scripts.broker_script import main; main()",
                "-c", str(conf)]

    def start(self, timeout_s: float = 20.0) -> Broker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = spawn(self._argv(), log=self.workdir / f"{self.kind}.log")
        deadline = time.monotonic() + timeout_s
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SimError(
                    f"{self.kind} did not start on port {self.port}: see "
                    f"{self.workdir / (self.kind + '.log')}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        kill9(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        reap(self.proc)
        self.proc = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def gatepass_argv(*args: str) -> list[str]:
    """Run the ``gatepass`` command with this interpreter (works from a checkout too)."""
    return [sys.executable, "-m", "gatepass", *args]


class CentralService:
    """``gatepass central serve --config FILE`` as a child; the dashboard URL from its output."""

    def __init__(self, config: Path, *, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.dashboard_url: str | None = None
        self.restarts = 0
        self._reader: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> CentralService:
        self.dashboard_url = None
        self.proc = spawn(gatepass_argv("central", "serve", "--config", str(self.config)),
                          log=self.log, stdout=subprocess.PIPE)
        found = threading.Event()
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            with open(self.log, "ab") as out:
                for line in proc.stdout:
                    out.write(line)
                    out.flush()
                    text = line.decode("utf-8", "replace")
                    if "dashboard on " in text:
                        self.dashboard_url = text.split("dashboard on ", 1)[1].strip()
                    if "worker " in text:
                        found.set()

        self._reader = threading.Thread(target=read, name="central-stdout", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not found.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SimError(f"central service did not start: see {self.log}")
        return self

    def kill(self) -> None:
        kill9(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        reap(self.proc, grace_s=10.0)
        self.proc = None
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None

    def __enter__(self) -> CentralService:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def install_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop``; returns a function restoring the previous handlers.

    The handler itself only wakes a relay thread (:mod:`gatepass.stopsignals`), so a signal
    landing while the main thread waits on ``stop`` cannot deadlock.
    """
    from gatepass.stopsignals import StopSignals

    return StopSignals(stop).install().close


def env_with_repo() -> dict[str, str]:
    """Our environment with the repository on PYTHONPATH (children import our packages)."""
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
