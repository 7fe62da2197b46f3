"""Image loading and frame normalisation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.errors import UnusableImage
from hardware.image import read_image, to_gray


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
