"""A gate is never silently blind: the frame loop outlives its source's outages, reports
them (health, metrics, console state), decides again after the replug, turns a source
that gives up into a fatal state, and feeds the systemd watchdog only while it moves.

Real parts: a real image folder removed and made again, real QR images decoded by the
real decoder, a real SQLite ledger, a real unix datagram socket for sd_notify, and
``gatepass agent run`` as a real process. Waits are generous deadlines.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import segno
from agent_helpers import SLOT
from conftest import SITE
from prometheus_client import generate_latest

from gate_agent.agent import GateAgent
from gate_agent.watchdog import SdNotify, Watchdog, watchdog_interval_s
from hardware.sources import open_source
from hardware.sources.reopen import Capture, ReopeningSource, ReopenPolicy
from verifier.sandbox import Sandbox

MakeAgent = Callable[..., GateAgent]
FAST = {"reconnect_delay_s": 0.05, "max_reconnect_delay_s": 0.2}
DEADLINE_S = 60.0


def wait_for(cond: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def blank(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "00-blank.png"), np.full((120, 160), 255, np.uint8))


def qr(folder: Path, payload: str) -> None:
    folder.mkdir(exist_ok=True)
    segno.make(payload, error="q").save(str(folder / "10-permit.png"), scale=4, border=4)


def metric(agent: GateAgent, name: str) -> float:
    for line in generate_latest(agent.metrics_registry).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def source(agent: GateAgent) -> dict[str, Any]:
    health = agent.snapshot()["health"]["source"]
    assert health is not None
    return health  # type: ignore[no-any-return]


def test_frame_loop_survives_an_unplug_and_decides_after_the_replug(
    make_agent: MakeAgent, sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "camera"
    blank(folder)
    src = open_source({"kind": "folder", "path": str(folder), "loop": True,
                       "give_up_after_s": None, **FAST})
    agent = make_agent(source=src)
    agent.start()
    try:
        wait_for(lambda: metric(agent, "gatepass_agent_frames_total") >= 3, "frames")
        up = source(agent)
        assert up["state"] == "up" and up["connected"] and up["disconnects"] == 0
        assert metric(agent, "gatepass_agent_source_up") == 1.0

        shutil.rmtree(folder)  # unplugged
        down = wait_for(lambda: (s := source(agent))["state"] == "reconnecting" and s,
                        "the outage to show")
        assert down["disconnects"] == 1 and "camera" in down["last_error"]
        version = agent.version()
        wait_for(lambda: source(agent)["last_frame_age_s"] >= 0.5, "the frame age to grow")
        assert metric(agent, "gatepass_agent_source_up") == 0.0
        assert metric(agent, "gatepass_agent_source_disconnects_total") == 1.0
        assert metric(agent, "gatepass_agent_source_last_frame_age_seconds") >= 0.5
        assert metric(agent, "gatepass_agent_source_down_seconds") > 0
        # The console is told (its stream sends a snapshot per version) while it lasts.
        wait_for(lambda: agent.version() > version, "a console update during the outage")
        assert agent.frame_loop_healthy(1.0)  # waiting on a source is not a stuck loop
        assert agent.source_failure is None

        permit = sandbox.issue(site=SITE, slot=(SLOT, SLOT + 7200))
        blank(folder)
        qr(folder, permit)  # plugged back in, and a pilgrim shows a permit
        wait_for(lambda: agent.ledger.last_seq() >= 1, "a decision after the replug")
        first = next(iter(agent.ledger.events())).event
        assert (first.verdict, first.party) == ("admit", 1)
        back = source(agent)
        assert back["state"] == "up" and back["reconnects"] == 1 and back["down_for_s"] is None
        assert metric(agent, "gatepass_agent_source_up") == 1.0
        assert metric(agent, "gatepass_agent_source_reconnects_total") == 1.0
    finally:
        agent.close()


def test_a_source_that_gives_up_is_a_fatal_state(make_agent: MakeAgent, tmp_path: Path) -> None:
    folder = tmp_path / "camera"
    blank(folder)
    src = open_source({"kind": "folder", "path": str(folder), "loop": True,
                       "give_up_after_s": 0.3, **FAST})
    agent = make_agent(source=src)
    agent.start()
    try:
        wait_for(lambda: metric(agent, "gatepass_agent_frames_total") >= 1, "frames")
        assert agent.frame_loop_healthy(1.0)
        shutil.rmtree(folder)
        failure = wait_for(lambda: agent.source_failure, "the give-up")
        assert "could not be reopened within 0.3 s" in failure
        health = source(agent)
        assert health["state"] == "failed" and health["gave_up"]
        assert health["error"] == failure
        assert not agent.frame_loop_healthy(1.0)  # no more watchdog pings
        assert metric(agent, "gatepass_agent_source_up") == 0.0
    finally:
        agent.close()


def test_a_finished_source_is_reported_not_fatal(make_agent: MakeAgent, tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    blank(folder)
    agent = make_agent(source=open_source({"kind": "folder", "path": str(folder)}))
    agent.start()
    try:
        wait_for(lambda: source(agent)["state"] == "finished", "the end of the folder")
        assert agent.source_failure is None and agent.frame_loop_healthy(1.0)
    finally:
        agent.close()


# ------------------------------------------------------------------ systemd watchdog


class BlockingDecoder:
    """Decodes nothing; once ``block`` is set, the next frame hangs until ``release``."""

    def __init__(self) -> None:
        self.block = threading.Event()
        self.release = threading.Event()
        self.entered = threading.Event()

    def decode(self, frame: Any) -> list[Any]:
        if self.block.is_set() and not self.release.is_set():
            self.entered.set()
            self.release.wait(DEADLINE_S)
        return []


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, socket.socket]]:
    address = f"@gatepass-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:])
    try:
        yield address, sock
    finally:
        sock.close()


def messages(sock: socket.socket, timeout: float) -> list[str]:
    """Every datagram that arrives within ``timeout`` seconds."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return out


def test_watchdog_pings_stop_while_a_frame_is_stuck(
    make_agent: MakeAgent, tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    address, sock = notify_socket
    folder = tmp_path / "camera"
    blank(folder)
    agent = make_agent(source=open_source({"kind": "folder", "path": str(folder),
                                           "loop": True}))
    decoder = BlockingDecoder()
    agent.decoder = decoder  # type: ignore[assignment]
    notifier = SdNotify(address)
    agent.start()
    dog = Watchdog(notifier, 0.4, agent.frame_loop_healthy).start()
    try:
        pings = wait_for(lambda: [m for m in messages(sock, 1.0) if m == "WATCHDOG=1"],
                         "watchdog pings")
        assert pings
        decoder.block.set()
        assert decoder.entered.wait(DEADLINE_S)
        time.sleep(0.5)  # longer than one frame may take (0.2 s): the loop is stuck now
        messages(sock, 0.01)  # drop what was sent before it counted as stuck
        assert messages(sock, 1.2) == []  # three periods: no ping for a stuck loop
        assert dog.missed >= 1
        decoder.release.set()
        wait_for(lambda: "WATCHDOG=1" in messages(sock, 1.0), "pings to resume")
    finally:
        decoder.release.set()
        dog.close()
        dog.close()  # safe twice
        notifier.close()
        agent.close()


class HangingCamera(ReopeningSource):
    """A live camera whose driver call blocks past every timeout once ``hang`` is set."""

    name = "hanging-camera"

    def __init__(self) -> None:
        super().__init__(policy=ReopenPolicy(0.05, 0.1, None, stall_after_s=0.1))
        self.hang = threading.Event()
        self.release = threading.Event()
        self._start(wait_for_device=True)

    def _connect(self) -> None:
        pass

    def _next(self) -> Capture | None:
        if self.hang.is_set():
            self.release.wait(DEADLINE_S)
            self.hang.clear()
        time.sleep(0.01)
        return Capture(np.zeros((8, 8), np.uint8), None, time.monotonic())


def test_a_camera_driver_that_hangs_stops_the_watchdog(make_agent: MakeAgent) -> None:
    camera = HangingCamera()
    agent = make_agent(source=camera)
    agent.start()
    try:
        wait_for(lambda: metric(agent, "gatepass_agent_frames_total") >= 3, "frames")
        assert agent.frame_loop_healthy(0.1)
        camera.hang.set()
        # Connected, silent for more than 3 x stall_after_s: only a restart helps.
        wait_for(lambda: not agent.frame_loop_healthy(0.1), "the hang to count")
        camera.release.set()
        wait_for(lambda: agent.frame_loop_healthy(0.1), "health after the driver returns")
    finally:
        camera.release.set()
        agent.close()


def test_sd_notify_is_a_no_op_without_a_socket() -> None:
    quiet = SdNotify.from_env({})
    assert not quiet.enabled and not quiet.ready() and not quiet.watchdog()
    assert watchdog_interval_s({"WATCHDOG_USEC": "3000000"}) == 3.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval_s({}) is None


# ------------------------------------------------------------------ gatepass agent run


def gate_toml(tmp_path: Path, bundle: Path, source: str) -> Path:
    cfg = tmp_path / "gate.toml"
    cfg.write_text(
        f'gate = "g1"\nsite = "{SITE}"\nmode = "entrance"\nledger = "{tmp_path}/ledger.sqlite"\n'
        f'[permits]\ntypes = ["umrah"]\n[trust]\nbundle = "{bundle}"\n'
        f'[clock]\nsystem = "trust"\n[console]\nenabled = false\n'
        f"[source]\n{source}\n"
        f'[outputs]\nbackend = "simulated"\n'
    )
    return cfg


def test_agent_run_notifies_systemd(tmp_path: Path, bundle: Path) -> None:
    folder = tmp_path / "camera"
    blank(folder)
    cfg = gate_toml(tmp_path, bundle, f'kind = "folder"\npath = "{folder}"\nloop = true')
    # A short path: unix socket names are limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="gp-") as short:
        path = str(Path(short) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "600000"}
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gatepass", "agent", "run", "--config", str(cfg),
             "--text-logs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            got = messages(sock, 1.0)
            deadline = time.monotonic() + DEADLINE_S
            while sum(m == "WATCHDOG=1" for m in got) < 3 and time.monotonic() < deadline:
                got += messages(sock, 1.0)
            ready = [i for i, m in enumerate(got) if m.startswith("READY=1")]
            assert ready and ready[0] == 0, got
            assert "STATUS=gate g1 running" in got[0]
            assert sum(m == "WATCHDOG=1" for m in got[1:]) >= 3, got
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=DEADLINE_S)
            assert proc.returncode == 0, err
            assert "STOPPING=1" in messages(sock, 1.0) + got
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
            sock.close()


def test_agent_run_exits_non_zero_when_the_camera_never_comes_back(
    tmp_path: Path, bundle: Path
) -> None:
    give_up = 2.0
    cfg = gate_toml(tmp_path, bundle,
                    'kind = "opencv"\ndevice = "/dev/video99"\nreconnect_delay_s = 0.2\n'
                    f'max_reconnect_delay_s = 0.5\ngive_up_after_s = {give_up}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatepass", "agent", "run", "--config", str(cfg), "--text-logs"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        started = None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "running (entrance)" in line:
                started = time.monotonic()
                break
        assert started is not None, "".join(lines)
        _out, rest = proc.communicate(timeout=DEADLINE_S)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    err = "".join(lines) + rest
    assert proc.returncode == 3, err
    # The camera was already missing when the source opened, before "running": the
    # give-up counts from then, so this bound is generous (a loaded 2-core machine).
    assert elapsed < give_up + 30, elapsed
    last = err.strip().splitlines()[-1]
    assert last.startswith("gatepass: error: frame source opencv:/dev/video99 could not be "
                           "reopened within 2 s"), err
    assert "Traceback" not in err


def test_agent_run_on_stdin_exits_non_zero_when_the_feed_closes(
    tmp_path: Path, bundle: Path, sandbox: Sandbox
) -> None:
    """Unplugging a stdin wedge = its feeding process ending: nothing can reopen a pipe,
    so the agent exits 3 at once (after deciding on what it got) for systemd to restart."""
    import json

    from gate_agent.ledger import Ledger

    cfg = gate_toml(tmp_path, bundle, 'kind = "wedge"\ndevice = "stdin"')
    now = int(time.time())
    permit = sandbox.issue(site=SITE, slot=(now - 600, now + 7200))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatepass", "agent", "run", "--config", str(cfg), "--text-logs"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None and proc.stdin is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "running (entrance)" in line:
                break
        proc.stdin.write(permit + "\n")
        proc.stdin.close()  # the scanner bridge died
        proc.wait(timeout=DEADLINE_S)  # its logs are a few lines: no pipe fills up
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    err = "".join(lines) + rest
    assert proc.returncode == 3, err
    assert err.strip().splitlines()[-1].startswith(
        "gatepass: error: frame source wedge:stdin: standard input was closed"), err
    with Ledger(tmp_path / "ledger.sqlite", gate="g1", site=SITE) as ledger:
        events = [r.event for r in ledger.events()]
    assert [(e.verdict, e.party) for e in events] == [("admit", 1)], json.dumps(err)
