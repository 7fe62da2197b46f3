"""Helpers for decode tests: QR images drawn with segno, no corpus needed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest


def draw_qr(payload: Any, *, scale: int = 6, border: int = 4, invert: bool = False,
            **make: Any) -> np.ndarray:
    """A grayscale uint8 image of ``payload`` as a QR code (dark modules 0, light 255)."""
    import segno

    qr = make.pop("qr", None) or segno.make_qr(payload, **make)
    matrix = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    matrix = np.pad(matrix, border)
    img = np.where(matrix == 1, 0, 255).astype(np.uint8)
    img = np.kron(img, np.ones((scale, scale), dtype=np.uint8))
    return 255 - img if invert else img


def paste(canvas: np.ndarray, img: np.ndarray, x: int, y: int) -> np.ndarray:
    canvas[y:y + img.shape[0], x:x + img.shape[1]] = img
    return canvas


@pytest.fixture
def qr_image() -> Callable[..., np.ndarray]:
    return draw_qr


@pytest.fixture
def permit_text() -> str:
    """A permit-shaped payload: 'GP1:' + 300 Base45 characters."""
    import random

    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    rnd = random.Random(42)
    return "GP1:" + "".join(rnd.choice(alphabet) for _ in range(300))
