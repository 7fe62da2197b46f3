"""QR images drawn with segno for decode tests (a uniquely named module: conftest.py
files share one module name across test folders)."""

from __future__ import annotations

from typing import Any

import numpy as np


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


def require_decoder(name: str) -> None:
    """:func:`realparts.require_decoder` (imported late: subprocesses of these tests load
    this module without pytest's path to ``tests/``)."""
    from realparts import require_decoder as require

    require(name)
