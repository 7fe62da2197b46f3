"""Frame sources: folder, keyboard wedge, OpenCV capture (a generated video), drivers."""

from __future__ import annotations

import importlib.util
import io
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.errors import DriverMissing, HardwareError, SourceGaveUp, SourceUnavailable
from hardware.sources import Frame, open_source
from hardware.sources.wedge import KeyAssembler


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


# ------------------------------------------------------------------ folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((40, 60, 3), 50 * i, np.uint8))
    (tmp_path / "01b.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    (tmp_path / "readme.txt").write_text("not an image, not even tried")
    return tmp_path


def test_folder_once_in_name_order_skipping_broken(image_folder: Path) -> None:
    with open_source({"kind": "folder", "path": str(image_folder)}, clock=Ticks()) as src:
        frames = list(src)
        status = src.status()
    assert [f.index for f in frames] == [0, 1, 2]
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 50, 100]  # type: ignore[index]
    assert [f.t_mono for f in frames] == [1.0, 2.0, 3.0]
    assert all(f.text is None for f in frames)
    assert status.skipped == 1 and "01b.jpg" in (status.last_error or "")
    assert status.finished


def test_folder_loop(image_folder: Path) -> None:
    with open_source({"kind": "folder", "path": str(image_folder), "loop": True}) as src:
        frames = [src.read() for _ in range(7)]
    assert [int(f.image[0, 0, 0]) for f in frames if f] == [0, 50, 100, 0, 50, 100, 0]  # type: ignore[index]


def test_folder_loop_without_readable_images_ends(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"nope")
    with open_source({"kind": "folder", "path": str(tmp_path), "loop": True}) as src:
        assert src.read() is None  # no endless spin over unreadable files


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="does not exist"):
        open_source({"kind": "folder", "path": str(tmp_path / "nope")})


# ------------------------------------------------------------------ wedge


def test_wedge_from_a_pipe() -> None:
    r, w = os.pipe()
    with os.fdopen(r, "rb") as reader:
        src = open_source({"kind": "wedge", "max_line_bytes": 100}, stream=reader, clock=Ticks())
        with src:
            os.write(w, b"GP1:FIRST\r\n\nGP1:SECOND\n" + b"X" * 300 + b"\nGP1:TH")
            assert src.read() == Frame(None, b"GP1:FIRST", 1.0, 0)
            second = src.read()
            assert second is not None and second.text == b"GP1:SECOND"
            os.write(w, b"IRD\n")
            third = src.read()
            assert third is not None and (third.text, third.index) == (b"GP1:THIRD", 2)
            os.close(w)
            # The feeding process is gone: nothing can reopen a pipe, so the source gives
            # up at once (the agent exits non-zero and systemd restarts it).
            with pytest.raises(SourceGaveUp, match="standard input was closed"):
                src.read()
            status = src.status()
            assert status.skipped == 1  # the 300-byte line, dropped whole
            assert status.gave_up and not status.connected


def test_wedge_close_from_another_thread_ends_a_waiting_read() -> None:
    r, w = os.pipe()
    try:
        with os.fdopen(r, "rb") as reader:
            src = open_source({"kind": "wedge"}, stream=reader)
            threading.Timer(0.1, src.close).start()
            t0 = time.monotonic()
            assert src.read() is None
            assert time.monotonic() - t0 < 10.0
            src.close()
    finally:
        os.close(w)


def test_wedge_stream_object() -> None:
    src = open_source({"kind": "wedge"}, stream=io.BytesIO(b"a\nb\n"))
    with src:
        assert [f.text for f in src] == [b"a", b"b"]


def test_key_assembler_us_layout() -> None:
    keys = KeyAssembler()
    # Shift down, g, Shift up, p, 1, Shift+; (colon), a, Enter
    events = [(42, 1), (34, 1), (34, 0), (42, 0), (25, 1), (2, 1), (42, 1), (39, 1), (42, 0),
              (30, 1), (30, 2), (28, 1)]
    lines = [line for code, value in events if (line := keys.feed(code, value)) is not None]
    assert lines == [b"Gp1:a"]


def test_evdev_device_missing_is_clear(tmp_path: Path) -> None:
    cfg = {"kind": "wedge", "device": str(tmp_path / "event99")}
    expected = DriverMissing if importlib.util.find_spec("evdev") is None else SourceUnavailable
    with pytest.raises(expected) as info:
        open_source(cfg)
    assert isinstance(info.value, HardwareError)


def test_picamera2_missing_is_clear() -> None:
    if importlib.util.find_spec("picamera2") is not None:
        pytest.skip("picamera2 is installed here: this checks machines without it")
    with pytest.raises(DriverMissing, match="picamera2") as info:
        open_source({"kind": "picamera2"})
    assert isinstance(info.value, ImportError)


# ------------------------------------------------------------------ OpenCV capture


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "lane.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_video_file_to_the_end(video: Path) -> None:
    with open_source({"kind": "opencv", "device": str(video)}, clock=Ticks()) as src:
        frames = list(src)
        status = src.status()
    assert len(frames) == 5 and [f.index for f in frames] == list(range(5))
    means = [float(f.image.mean()) for f in frames]  # type: ignore[union-attr]
    assert means == sorted(means) and means[-1] > means[0] + 100
    assert status.finished and status.disconnects == 0 and status.last_error == "end of stream"


def test_video_end_reported_and_reopened(video: Path) -> None:
    cfg = {"kind": "opencv", "device": str(video), "on_end": "reconnect",
           "reconnect_delay_s": 0.01}
    with open_source(cfg) as src:
        frames = [src.read() for _ in range(12)]
        status = src.status()
    assert all(f is not None for f in frames)
    assert status.disconnects == 2 and status.reconnects == 2 and status.connected


def test_camera_that_never_comes_back_gives_up(video: Path) -> None:
    cfg = {"kind": "opencv", "device": str(video), "on_end": "reconnect",
           "reconnect_delay_s": 0.01, "max_reconnect_delay_s": 0.02, "give_up_after_s": 0.2}
    with open_source(cfg) as src:
        assert len([src.read() for _ in range(5)]) == 5
        video.unlink()  # the camera is unplugged for good
        t0 = time.monotonic()
        with pytest.raises(SourceUnavailable, match="could not be reopened"):
            src.read()
        assert time.monotonic() - t0 < 20
        assert src.status().disconnects == 1 and not src.status().connected


def test_missing_video_file(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="does not exist"):
        open_source({"kind": "opencv", "device": str(tmp_path / "none.mp4")})


def test_not_a_video(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(SourceUnavailable, match="cannot open"):
        open_source({"kind": "opencv", "device": str(bad)})


def test_absent_camera_retries_until_closed() -> None:
    cfg = {"kind": "opencv", "device": "/dev/video99", "reconnect_delay_s": 0.02,
           "max_reconnect_delay_s": 0.05}
    src = open_source(cfg)
    assert src.status().disconnects == 1 and not src.status().connected
    threading.Timer(0.2, src.close).start()
    assert src.read() is None
    src.close()


# ------------------------------------------------------------------ scene


def test_scene_source_frames_limit() -> None:
    with open_source({"kind": "scene", "frames": 4, "width": 320, "height": 240,
                      "seed": 9}) as src:
        frames = list(src)
        assert src.read() is None
    assert len(frames) == 4 and frames[0].image.shape == (240, 320, 3)  # type: ignore[union-attr]


def test_drop_stale_delivers_the_newest_frame(video: Path) -> None:
    cfg = {"kind": "opencv", "device": str(video), "drop_stale": True}
    with open_source(cfg) as src:
        first = src.read()  # starts the grabber
        assert first is not None
        deadline = time.monotonic() + 10
        while src.status().dropped + 1 < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        rest = list(src)
        status = src.status()
    delivered = [first, *rest]
    assert status.dropped >= 3 and len(delivered) + status.dropped == 5
    assert float(delivered[-1].image.mean()) > 150  # type: ignore[union-attr]  # frame 4
    assert [f.index for f in delivered] == list(range(len(delivered)))


def test_grabber_reports_a_camera_gone_for_good(video: Path) -> None:
    cfg = {"kind": "opencv", "device": str(video), "on_end": "reconnect", "drop_stale": True,
           "reconnect_delay_s": 0.01, "max_reconnect_delay_s": 0.02, "give_up_after_s": 0.2}
    with open_source(cfg) as src:
        assert src.read() is not None
        video.unlink()
        with pytest.raises(SourceUnavailable, match="could not be reopened"):
            for _ in range(10_000):
                src.read()
