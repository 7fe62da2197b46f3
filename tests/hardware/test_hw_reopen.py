"""Unplug and replug of every frame source, with simulated drivers and real files.

OpenCV: a real video file deleted and restored; folder: a real folder removed and made
again; picamera2 and evdev: stand-in driver modules (tests/hardware/sim_drivers) put on
``sys.path`` that fail the way the real ones do; standard input: a real pipe.
Waits are generous deadlines, never timing assertions.
"""

from __future__ import annotations

import random
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from hardware.errors import SourceDisconnected, SourceGaveUp, SourceUnavailable
from hardware.sources import Frame, FrameSource, open_source
from hardware.sources.reopen import IDLE, Backoff, Capture, Idle, ReopeningSource, ReopenPolicy

SIM_DRIVERS = Path(__file__).parent / "sim_drivers"
FAST = {"reconnect_delay_s": 0.02, "max_reconnect_delay_s": 0.1}
DEADLINE_S = 30.0


def wait_for(cond: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Reader:
    """Reads a source on a thread, keeping every frame (or the error that ended it)."""

    def __init__(self, src: FrameSource) -> None:
        self.src = src
        self.frames: list[Frame] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._th = threading.Thread(target=self._run, name="test-reader", daemon=True)
        self._th.start()

    def _run(self) -> None:
        try:
            while (frame := self.src.read()) is not None:
                self.frames.append(frame)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def join(self) -> None:
        assert self.done.wait(DEADLINE_S), "the reader did not end"


def sim_driver(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(SIM_DRIVERS))
    sys.modules.pop(name, None)
    module = __import__(name)
    try:
        yield module
    finally:
        sys.modules.pop(name, None)


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from sim_driver(monkeypatch, "picamera2")


@pytest.fixture
def evdev(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from sim_driver(monkeypatch, "evdev")


# ------------------------------------------------------------------ the mechanism


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    b = Backoff(0.5, 4.0, rng=random.Random(7))
    delays = [b.next() for _ in range(8)]
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0.8 * n <= d <= n for d, n in zip(delays, nominal, strict=True))
    assert len(set(delays)) == len(delays)  # jittered: gates do not retry in lockstep
    b.reset()
    assert 0.4 <= b.next() <= 0.5
    with pytest.raises(ValueError, match="back-off"):
        Backoff(2.0, 1.0)


class Flaky(ReopeningSource):
    """A device driven by a script: 'f' a frame, 'x' a failure, 'i' nothing yet."""

    name = "flaky"

    def __init__(self, script: str, *, opens: str = "", policy: ReopenPolicy) -> None:
        super().__init__(policy=policy)
        self.script = list(script)
        self.opens = list(opens)  # per open attempt: 'o' opens, 'x' fails; then all open
        self.connects = 0
        self._start(wait_for_device=True)

    def _connect(self) -> None:
        if self.opens and self.opens.pop(0) == "x":
            raise SourceDisconnected("not there")
        while self.script[:1] == ["i"] and self.connects:  # a reopened device delivers
            self.script.pop(0)
        self.connects += 1

    def _next(self) -> Capture | Idle | None:
        if not self.script:
            return None
        step = self.script.pop(0)
        if step == "x":
            raise OSError(19, "No such device")
        if step == "i":
            time.sleep(0.01)
            return IDLE
        return Capture(np.zeros((2, 2), np.uint8), None, time.monotonic())


def test_failures_are_counted_per_outage_and_reopened() -> None:
    src = Flaky("ffxffxf", opens="oxxo", policy=ReopenPolicy(0.01, 0.02, None))
    with src:
        frames = list(src)
        status = src.status()
    # The first drop needed three attempts (two failed): still one outage.
    assert len(frames) == 5 and [f.index for f in frames] == list(range(5))
    assert (status.disconnects, status.reconnects) == (2, 2)
    assert status.last_error == "No such device" and not status.gave_up


def test_a_silent_device_counts_as_dropped_after_stall_after_s() -> None:
    src = Flaky("f" + "i" * 100_000 + "f", policy=ReopenPolicy(0.01, 0.02, None, stall_after_s=0.2))
    with src:
        assert src.read() is not None
        assert src.read() is not None  # after the stall, a reopen, then the script's frame
        status = src.status()
    assert status.disconnects == 1 and status.reconnects == 1
    assert status.last_error == "no frame for 0.2 s"


def test_gives_up_after_give_up_after_s_and_close_ends_a_back_off() -> None:
    src = Flaky("x", opens="o" + "x" * 10_000, policy=ReopenPolicy(0.01, 0.05, 0.3))
    with pytest.raises(SourceGaveUp, match=r"flaky could not be reopened within 0\.3 s: not there"):
        src.read()
    status = src.status()
    assert status.gave_up and not status.connected and status.disconnects == 1
    assert status.down_for_s is not None and status.down_for_s >= 0.3
    # A long back-off is cut short by close() from another thread.
    slow = Flaky("", opens="x", policy=ReopenPolicy(3600.0, 3600.0, None))
    threading.Timer(0.1, slow.close).start()
    t0 = time.monotonic()
    assert slow.read() is None
    assert time.monotonic() - t0 < DEADLINE_S


# ------------------------------------------------------------------ OpenCV


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "lane.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("drop_stale", [False, True])
def test_opencv_unplug_and_replug(video: Path, tmp_path: Path, drop_stale: bool) -> None:
    spare = tmp_path / "spare.avi"
    shutil.copy(video, spare)
    cfg = {"kind": "opencv", "device": str(video), "on_end": "reconnect",
           "drop_stale": drop_stale, **FAST}
    src = open_source(cfg)
    with src:
        assert src.read() is not None
        video.unlink()  # unplugged: the replay at the end of the file fails to reopen
        reader = Reader(src)
        wait_for(lambda: src.status().disconnects >= 1 and not src.status().connected
                 and src.status().down_for_s is not None, "the drop to show")
        before = len(reader.frames)
        shutil.copy(spare, video)  # plugged back in
        wait_for(lambda: src.status().reconnects >= 1 and len(reader.frames) > before,
                 "a frame after the replug")
        status = src.status()
    reader.join()
    assert reader.error is None
    assert status.reconnects >= 1 and status.disconnects >= 1 and not status.gave_up


class MjpegCamera:
    """An IP camera on 127.0.0.1: multipart JPEG over HTTP, which can hang (``stall``).

    Stalled, it keeps its connections open and says nothing, new ones included: what a
    camera with a crashed encoder does. Only OpenCV's timeouts get a reader out of that.
    """

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 120, np.uint8))
        assert ok
        jpeg = buf.tobytes()
        self.stalled = threading.Event()
        self.stop = threading.Event()
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                while cam.stalled.is_set() and not cam.stop.is_set():
                    time.sleep(0.02)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                part = (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                        % len(jpeg)) + jpeg + b"\r\n"
                try:
                    while not cam.stop.is_set():
                        if not cam.stalled.is_set():
                            self.wfile.write(part)
                        time.sleep(0.05)
                except OSError:
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
        threading.Thread(target=self.server.serve_forever, name="test-mjpeg",
                         daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_opencv_stream_that_stalls_is_dropped_and_reopened() -> None:
    cam = MjpegCamera()
    try:
        src = open_source({"kind": "opencv", "device": cam.url, "stall_after_s": 1.0,
                           "give_up_after_s": 60, **FAST})
        with src:
            assert all(src.read() is not None for _ in range(3))
            cam.stalled.set()  # the stream hangs without closing: no error, no frames
            reader = Reader(src)
            wait_for(lambda: src.status().disconnects == 1 and not src.status().connected,
                     "the stalled stream to count as dropped")
            before = len(reader.frames)
            cam.stalled.clear()
            wait_for(lambda: src.status().reconnects >= 1 and len(reader.frames) > before,
                     "frames after the stream came back")
            status = src.status()
        reader.join()
        assert status.disconnects >= 1 and not status.gave_up and reader.error is None
    finally:
        cam.close()


# ------------------------------------------------------------------ image folder


def _images(folder: Path, values: list[int]) -> None:
    folder.mkdir(exist_ok=True)
    for i, v in enumerate(values):
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.full((20, 30, 3), v, np.uint8))


def test_looping_folder_removed_and_made_again(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    _images(folder, [10, 20])
    src = open_source({"kind": "folder", "path": str(folder), "loop": True, **FAST})
    with src:
        assert src.read() is not None
        shutil.rmtree(folder)
        reader = Reader(src)
        wait_for(lambda: src.status().disconnects == 1 and not src.status().connected,
                 "the folder's loss to show")
        assert "frames" in (src.status().last_error or "")
        _images(folder, [200])  # back, with new content: listed again
        wait_for(lambda: any(int(f.image[0, 0, 0]) == 200 for f in reader.frames  # type: ignore[index]
                             if f.image is not None), "a frame from the new folder")
        status = src.status()
    reader.join()
    assert status.reconnects == 1 and status.connected and reader.error is None


def test_run_once_folder_resumes_without_repeating(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    _images(folder, [10, 20, 30])
    src = open_source({"kind": "folder", "path": str(folder), **FAST})
    with src:
        first = src.read()
        assert first is not None and int(first.image[0, 0, 0]) == 10  # type: ignore[index]
        moved = tmp_path / "away"
        folder.rename(moved)  # the stick is pulled mid-pass
        reader = Reader(src)
        wait_for(lambda: src.status().disconnects == 1, "the drop")
        moved.rename(folder)
        reader.join()
    assert [int(f.image[0, 0, 0]) for f in reader.frames] == [20, 30]  # type: ignore[index]
    assert reader.error is None and src.status().reconnects == 1


def test_folder_that_never_comes_back_gives_up(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    _images(folder, [10])
    src = open_source({"kind": "folder", "path": str(folder), "loop": True,
                       "give_up_after_s": 0.3, **FAST})
    with src:
        assert src.read() is not None
        shutil.rmtree(folder)
        with pytest.raises(SourceGaveUp, match=r"could not be reopened within 0\.3 s"):
            while src.read() is not None:
                pass


# ------------------------------------------------------------------ picamera2


def test_picamera2_unplug_and_replug(picamera2: Any) -> None:
    cfg = {"kind": "picamera2", "width": 64, "height": 48, "stall_after_s": 0.2, **FAST}
    src = open_source(cfg)
    with src:
        frame = src.read()
        assert frame is not None and frame.image.shape == (48, 64, 3)  # type: ignore[union-attr]
        picamera2.SIM.unplug()  # the running capture hangs; reopening raises IndexError
        reader = Reader(src)
        wait_for(lambda: src.status().disconnects == 1 and not src.status().connected,
                 "the stalled camera to count as dropped")
        assert src.status().last_error in ("no frame for 0.2 s", "cannot start picamera2:0: "
                                           "list index out of range")
        closed_while_down = picamera2.SIM.closed
        picamera2.SIM.replug(value=222)
        wait_for(lambda: any(int(f.image[0, 0, 0]) == 222 for f in reader.frames  # type: ignore[index]
                             if f.image is not None), "a frame after the replug")
        status = src.status()
    reader.join()
    assert status.reconnects == 1 and status.connected
    assert closed_while_down >= 1  # the failed camera was closed even though stop() raised
    assert picamera2.SIM.opened == 2


def test_picamera2_absent_at_start_is_waited_for(picamera2: Any) -> None:
    picamera2.SIM.unplug()
    src = open_source({"kind": "picamera2", "width": 32, "height": 24, **FAST})
    with src:
        assert src.status().disconnects == 1 and not src.status().connected
        threading.Timer(0.2, picamera2.SIM.replug).start()
        assert src.read() is not None
        assert src.status().reconnects == 1


# ------------------------------------------------------------------ evdev wedge


DEV = "/dev/input/by-id/usb-Sim_Scanner-event-kbd"


def test_evdev_scanner_unplug_and_replug(evdev: Any) -> None:
    evdev.SIM.plug(DEV)
    src = open_source({"kind": "wedge", "device": DEV, **FAST})
    with src:
        evdev.SIM.type_line(DEV, "GP1:FIRST")
        first = src.read()
        assert first is not None and first.text == b"GP1:FIRST"
        assert evdev.SIM.devices[-1].grabbed
        evdev.SIM.unplug(DEV)  # read_loop raises OSError(ENODEV)
        reader = Reader(src)
        wait_for(lambda: src.status().disconnects == 1 and not src.status().connected,
                 "the unplug to show")
        assert "No such device" in (src.status().last_error or "") or \
            "No such file" in (src.status().last_error or "")
        evdev.SIM.plug(DEV)
        wait_for(lambda: src.status().reconnects == 1, "the scanner to be reopened")
        evdev.SIM.type_line(DEV, "GP1:AFTER")
        wait_for(lambda: len(reader.frames) == 1, "the scan after the replug")
        status = src.status()
    reader.join()
    assert [f.text for f in reader.frames] == [b"GP1:AFTER"]
    assert [f.index for f in reader.frames] == [1]
    assert status.connected and evdev.SIM.opened == 2


def test_evdev_scanner_missing_at_start_is_waited_for(evdev: Any) -> None:
    src = open_source({"kind": "wedge", "device": DEV, "give_up_after_s": 30, **FAST})
    with src:
        status = src.status()
        assert not status.connected and status.disconnects == 1
        assert "cannot open input device" in (status.last_error or "")
        reader = Reader(src)  # reopening happens inside read(), as in the frame loop
        evdev.SIM.plug(DEV)
        wait_for(lambda: src.status().connected, "the late scanner")
        evdev.SIM.type_line(DEV, "GP1:LATE")
        wait_for(lambda: len(reader.frames) == 1, "the scan")
    reader.join()
    assert [f.text for f in reader.frames] == [b"GP1:LATE"]
    assert src.status().reconnects == 1


def test_evdev_scanner_gone_for_good_gives_up(evdev: Any) -> None:
    evdev.SIM.plug(DEV)
    src = open_source({"kind": "wedge", "device": DEV, "give_up_after_s": 0.3, **FAST})
    with src:
        evdev.SIM.unplug(DEV)
        with pytest.raises(SourceGaveUp, match=r"could not be reopened within 0\.3 s"):
            src.read()
        assert isinstance(SourceGaveUp("x"), SourceUnavailable)


# ------------------------------------------------------------------ standard input


def test_stdin_from_a_regular_file_is_a_replay_that_ends(tmp_path: Path) -> None:
    lines = tmp_path / "scans.txt"
    lines.write_bytes(b"GP1:ONE\nGP1:TWO\n")
    with lines.open("rb") as f, open_source({"kind": "wedge"}, stream=f) as src:
        assert [fr.text for fr in src] == [b"GP1:ONE", b"GP1:TWO"]
        assert not src.status().gave_up


# ------------------------------------------------------------------ scene simulator


def test_scene_simulator_unplug_and_replug() -> None:
    src = open_source({"kind": "scene", "width": 320, "height": 240, "seed": 4, **FAST})
    with src:
        assert src.read() is not None
        src.unplug()  # type: ignore[attr-defined]
        reader = Reader(src)
        wait_for(lambda: src.status().disconnects == 1 and not src.status().connected,
                 "the simulated unplug")
        assert "unplugged (simulated)" in (src.status().last_error or "")
        count = len(reader.frames)
        src.replug()  # type: ignore[attr-defined]
        wait_for(lambda: len(reader.frames) > count + 2, "frames after the replug")
        status = src.status()
    reader.join()
    assert status.reconnects == 1 and status.connected and reader.error is None


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("kind", ["opencv", "folder", "picamera2", "wedge", "scene"])
def test_every_source_has_the_reopen_settings(kind: str) -> None:
    from hardware.config import parse_source_config

    extra = {"opencv": {"device": 0}, "folder": {"path": "x"}}.get(kind, {})
    cfg = parse_source_config({"kind": kind, **extra})
    policy = ReopenPolicy.from_config(cfg)
    assert (policy.delay_s, policy.max_delay_s, policy.give_up_after_s) == (1.0, 10.0, 60.0)
    with pytest.raises(ValueError, match="max_reconnect_delay_s"):
        parse_source_config({"kind": kind, **extra, "reconnect_delay_s": 5,
                             "max_reconnect_delay_s": 1})
