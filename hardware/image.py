"""Turning files and odd arrays into 8-bit frames, or a clear :class:`UnusableImage`.

Cameras, folders and callers hand us BGR, BGRA, grayscale, 16-bit, float or boolean
arrays; decoders want one contiguous 8-bit grayscale plane. Anything that cannot be
made into one is refused with a one-line reason instead of crashing a C extension.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hardware.errors import UnusableImage

Gray = npt.NDArray[np.uint8]

#: Files above this size are refused before decoding (a 4K PNG is far smaller).
MAX_IMAGE_BYTES = 64 * 1024 * 1024
#: Decoded images above this many pixels are refused (decompression bombs).
MAX_PIXELS = 50_000_000


def to_gray(frame: Any) -> Gray:
    """Return ``frame`` as a C-contiguous ``uint8`` grayscale array (shape ``(h, w)``).

    Accepts ``(h, w)``, ``(h, w, 1)``, BGR ``(h, w, 3)`` and BGRA ``(h, w, 4)`` arrays of
    unsigned/signed integers, floats (``0..1`` or ``0..255``) or booleans. An empty
    frame (zero height or width) comes back as an empty ``(0, 0)`` array. Raises
    :class:`UnusableImage` for anything else (wrong rank, NaN, strings, objects).
    """
    if not isinstance(frame, np.ndarray):
        raise UnusableImage(f"a frame must be a numpy array, not {type(frame).__name__}")
    arr = frame
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise UnusableImage(f"a frame must be (h, w), (h, w, 3) or (h, w, 4), not {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    arr = _to_uint8(arr)
    if arr.ndim == 3:
        import cv2  # deferred: keep `import hardware` free of OpenCV

        code = cv2.COLOR_BGR2GRAY if arr.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        arr = cv2.cvtColor(np.ascontiguousarray(arr), code)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * np.uint8(255)
    if kind in "ui":
        if arr.dtype.itemsize == 1:  # int8: shift into 0..255
            return (arr.astype(np.int16) + 128).astype(np.uint8)
        hi = int(arr.max())
        lo = int(arr.min())
        if lo >= 0 and hi <= 255:
            return arr.astype(np.uint8)
        # 10/12/16-bit sensors: scale the used range, not the type's range.
        span = max(hi - lo, 1)
        return ((arr.astype(np.float32) - lo) * (255.0 / span)).astype(np.uint8)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise UnusableImage("a float frame contains NaN or infinity")
        scale = 255.0 if float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0 else 1.0
        out: npt.NDArray[np.uint8] = np.clip(arr.astype(np.float32) * scale, 0, 255).astype(
            np.uint8
        )
        return out
    raise UnusableImage(f"a frame cannot have dtype {arr.dtype}")


def read_image(path: str | Path, *, grayscale: bool = False) -> npt.NDArray[np.uint8]:
    """Read an image file (PNG, JPEG, WebP, BMP, TIFF...) as BGR or grayscale ``uint8``.

    Raises :class:`UnusableImage` for missing, empty, oversized, non-image or corrupt
    files; the message names the file.
    """
    import cv2

    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise UnusableImage(f"{p}: not a regular file")
        if size == 0:
            raise UnusableImage(f"{p}: empty file")
        if size > MAX_IMAGE_BYTES:
            raise UnusableImage(f"{p}: {size} bytes is too large for an image")
        raw = np.fromfile(p, dtype=np.uint8)
    except UnusableImage:
        raise
    except OSError as exc:
        raise UnusableImage(f"{p}: cannot read: {exc.strerror or exc}") from exc
    flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(raw, flags)
    except cv2.error as exc:
        raise UnusableImage(f"{p}: not a readable image ({_first_line(str(exc))})") from exc
    if img is None or img.size == 0:
        raise UnusableImage(f"{p}: not a readable image (unknown format or corrupt data)")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise UnusableImage(f"{p}: {img.shape[1]}x{img.shape[0]} pixels is too large")
    return np.ascontiguousarray(img)


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "OpenCV error"
