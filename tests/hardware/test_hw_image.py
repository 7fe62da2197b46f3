"""Image loading and frame normalisation."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.errors import ImageTooLarge, UnusableImage
from hardware.image import (
    MAX_IMAGE_BYTES,
    MAX_SIDE,
    decode_image,
    probe_image,
    read_image,
    read_image_bytes,
    to_gray,
)


def test_to_gray_conversions() -> None:
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 255  # pure red
    assert to_gray(bgr).shape == (4, 5) and int(to_gray(bgr)[0, 0]) == 76
    assert to_gray(np.ones((2, 2), bool)).tolist() == [[255, 255], [255, 255]]
    assert to_gray(np.full((2, 2), 0.5, np.float32)).tolist() == [[127, 127], [127, 127]]
    assert to_gray(np.array([[0, 4095]], np.uint16)).tolist() == [[0, 255]]
    assert to_gray(np.array([[-128, 127]], np.int8)).tolist() == [[0, 255]]
    assert to_gray(np.zeros((0, 7, 3), np.uint8)).shape == (0, 0)
    view = np.arange(100, dtype=np.uint8).reshape(10, 10)[::2, ::-1]
    out = to_gray(view)
    assert out.flags.c_contiguous and out.tolist() == view.tolist()


def test_read_image(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    cv2.imwrite(str(p), np.full((8, 9, 3), 77, np.uint8))
    assert read_image(p).shape == (8, 9, 3)
    assert read_image(p, grayscale=True).shape == (8, 9)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UnusableImage, match=r"bad\.png: not a readable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(UnusableImage, match="not a regular file"):
        read_image(tmp_path)


# ------------------------------------------------------------------ hostile files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def fake_png(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` over one tiny (wrong) IDAT: only
    the header is ever looked at before such a file is refused."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0"))
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".pgm", ".ppm"])
def test_probe_reads_format_and_size_from_the_header(tmp_path: Path, ext: str) -> None:
    gray = ext == ".pgm"
    img = np.full((37, 53) if gray else (37, 53, 3), 120, np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    info = probe_image(buf.tobytes(), name=f"x{ext}")
    assert (info.width, info.height, info.pixels) == (53, 37, 53 * 37)
    path = tmp_path / f"x{ext}"
    path.write_bytes(buf.tobytes())
    assert read_image(path, grayscale=True).shape == (37, 53)


@pytest.mark.parametrize(("width", "height", "ok"), [
    (MAX_SIDE, 1, True), (MAX_SIDE + 1, 1, False), (1, MAX_SIDE + 1, False),
    (6324, 6324, True),  # 39,992,976 pixels
    (6325, 6325, False),  # 40,005,625 pixels
    (20_000, 20_000, False), (65_535, 65_535, False),
])
def test_header_limits(width: int, height: int, ok: bool) -> None:
    data = fake_png(width, height)
    if ok:
        # Within the limits the header passes; the bogus IDAT is then caught by the
        # decoder, not by the limit.
        assert probe_image(data).pixels == width * height
        with pytest.raises(UnusableImage, match="not a readable image"):
            decode_image(data)
        return
    with pytest.raises(ImageTooLarge, match=f"{width}x{height} pixels|[0-9,]+ pixels") as info:
        probe_image(data, name="claims.png")
    assert str(info.value).startswith("claims.png: image too large: ")
    assert "the limit is 40,000,000 pixels and 16384 pixels a side" in str(info.value)
    assert isinstance(info.value, UnusableImage) and isinstance(info.value, ValueError)


def test_non_regular_files_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "cam.png"
    os.mkfifo(fifo)
    with pytest.raises(UnusableImage, match=r"cam\.png: not a regular file \(a FIFO\)"):
        read_image(fifo)
    with pytest.raises(UnusableImage, match=r"not a regular file \(a character device\)"):
        read_image("/dev/zero")
    with pytest.raises(UnusableImage, match=r"not a regular file \(a directory\)"):
        read_image(tmp_path)
    sock = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock))
        with pytest.raises(UnusableImage, match=r"not a regular file \(a socket\)"):
            read_image(sock)


def test_fifo_swapped_in_after_the_stat_is_caught_by_fstat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: stat says regular file, then the path becomes a FIFO before the open.
    The O_NONBLOCK open returns at once and fstat on the descriptor refuses it."""
    regular = tmp_path / "real.png"
    regular.write_bytes(fake_png(10, 10))
    fifo = tmp_path / "swapped.png"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(
        regular if str(p) == str(fifo) else p, *a, **k))
    with pytest.raises(UnusableImage, match=r"swapped\.png: not a regular file \(a FIFO\)"):
        read_image_bytes(fifo)


def test_size_limits_and_empty_files(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(MAX_IMAGE_BYTES + 1)
    with pytest.raises(ImageTooLarge, match=f"above the limit of {MAX_IMAGE_BYTES} bytes"):
        read_image(big)
    small = tmp_path / "small.png"
    small.write_bytes(fake_png(4, 4))
    with pytest.raises(ImageTooLarge, match="above the limit of 10 bytes"):
        read_image_bytes(small, limit=10)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UnusableImage, match="empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(UnusableImage, match="cannot read: No such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(UnusableImage, match="cannot read: embedded null byte"):
        read_image("bad\x00name.png")


def test_truncated_corrupt_and_unsupported_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    png = cv2.imencode(".png", img)[1].tobytes()
    jpg = cv2.imencode(".jpg", img)[1].tobytes()
    cases = {
        "cut.png": png[: len(png) // 2],
        "crc.png": png[:60] + bytes([png[60] ^ 0xFF]) + png[61:],
        "cut.jpg": jpg[: len(jpg) - 200],
        "no-scan.jpg": jpg[:30],
        "anim.gif": b"GIF89a" + struct.pack("<HH", 10, 10) + b"\x00\x00\x00;",
        "random.bin": bytes(rng.integers(0, 256, 500, dtype=np.uint8)),
        "scan.tiff": cv2.imencode(".tiff", img)[1].tobytes(),  # refused on purpose
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnusableImage, match=rf"{re.escape(name)}: not a readable image") as e:
            read_image(tmp_path / name)
        assert "\n" not in str(e.value)
    with pytest.raises(UnusableImage, match="supported: PNG, JPEG, WebP"):
        read_image(tmp_path / "anim.gif")
    # Bytes after a complete JPEG (some phones append data) are fine.
    (tmp_path / "tail.jpg").write_bytes(jpg + b"trailing vendor data")
    assert read_image(tmp_path / "tail.jpg").shape == (64, 80, 3)


OPENCV_ENV = r"""
import os, sys
from hardware.errors import UnusableImage
from hardware.image import read_image
read_image(sys.argv[1])
try:  # 100x100 = 10,000 pixels: only OpenCV's own limit can refuse this one
    read_image(sys.argv[2])
    outcome = "read"
except UnusableImage as exc:
    outcome = "refused" if "CV_IO_MAX_IMAGE_PIXELS" in str(exc) else str(exc)
print(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"], os.environ["OPENCV_IO_MAX_IMAGE_WIDTH"],
      os.environ["OPENCV_IO_MAX_IMAGE_HEIGHT"], outcome)
"""


@pytest.mark.parametrize(("preset", "expected"), [
    (None, "40000000 16384 16384 read"),
    ("1000000000", "40000000 16384 16384 read"),  # a higher setting is lowered to ours
    ("5000", "5000 16384 16384 refused"),  # a lower one is the operator's, and OpenCV's
])
def test_opencv_own_limits_are_set_before_it_decodes(
    tmp_path: Path, preset: str | None, expected: str
) -> None:
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), np.zeros((8, 8), np.uint8))
    hundred = tmp_path / "hundred.png"
    cv2.imwrite(str(hundred), np.zeros((100, 100), np.uint8))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_IO_MAX")}
    if preset:
        env["OPENCV_IO_MAX_IMAGE_PIXELS"] = preset
    out = subprocess.run([sys.executable, "-c", OPENCV_ENV, str(path), str(hundred)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == expected.split()


def test_folder_source_skips_hostile_files(tmp_path: Path) -> None:
    from hardware.sources import open_source

    cv2.imwrite(str(tmp_path / "00.png"), np.full((40, 60, 3), 10, np.uint8))
    (tmp_path / "01.png").write_bytes(fake_png(20_000, 20_000))
    os.mkfifo(tmp_path / "02.png")
    cv2.imwrite(str(tmp_path / "03.png"), np.full((40, 60, 3), 30, np.uint8))
    with open_source({"kind": "folder", "path": str(tmp_path)}) as src:
        frames = list(src)
        status = src.status()
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 30]  # type: ignore[index]
    assert status.skipped == 1 and "image too large" in (status.last_error or "")


def _webp(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vp8x(width: int, height: int) -> bytes:
    return _webp(b"VP8X", b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little")
                 + (height - 1).to_bytes(3, "little"))


def vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    return _webp(b"VP8L", b"\x2f" + struct.pack("<I", bits) + bytes(16))


@pytest.mark.parametrize(("data", "size"), [
    (vp8x(12_000, 12_000), "12000x12000"),  # between Pillow's warning and error limits
    (vp8x(16_777_216, 16_777_216), "16777216x16777216"),
    (vp8l(16_384, 16_384), "16384x16384"),
    (vp8l(16_384, 2_500), "16384x2500"),
])
def test_webp_bombs_are_refused_from_the_riff_header(data: bytes, size: str) -> None:
    with pytest.raises(ImageTooLarge, match=f"image too large: {size} pixels"):
        probe_image(data)


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_header_size_matches_the_image(tmp_path: Path, lossless: bool) -> None:
    img = np.full((45, 71, 3), 99, np.uint8)
    buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101 if lossless else 80])[1]
    info = probe_image(buf.tobytes())
    assert (info.format, info.width, info.height) == ("WEBP", 71, 45)


def test_jpeg_truncation_is_seen_past_an_exif_thumbnail(tmp_path: Path) -> None:
    """A thumbnail inside APP1 has its own scan and end marker; a truncated main image
    must still be refused, and a complete one read."""
    rng = np.random.default_rng(9)
    thumb = cv2.imencode(".jpg", np.full((8, 8, 3), 50, np.uint8))[1].tobytes()
    main = cv2.imencode(".jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    app1 = b"Exif\x00\x00" + thumb
    with_thumb = main[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + main[2:]
    (tmp_path / "whole.jpg").write_bytes(with_thumb)
    assert read_image(tmp_path / "whole.jpg").shape == (64, 64, 3)
    (tmp_path / "cut.jpg").write_bytes(with_thumb[:-300])
    with pytest.raises(UnusableImage, match="truncated JPEG"):
        read_image(tmp_path / "cut.jpg")
