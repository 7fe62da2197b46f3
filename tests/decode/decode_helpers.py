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
    """Skip a test that needs decoder backend ``name`` when its library is missing here,
    with the reason and the command that installs it; in CI (``CI=true``) fail instead,
    so a green CI always means every backend was tested. ``default`` always works."""
    import os

    import pytest

    from gate_agent.decode import backend_status

    if name == "default":
        return
    status = backend_status(name)
    if status.available:
        return
    message = f"decoder {name} unavailable here ({status.reason})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must test every backend", pytrace=False)
    pytest.skip(message)
