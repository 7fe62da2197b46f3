"""Turning files and odd arrays into 8-bit frames, or a clear :class:`UnusableImage`.

Cameras, folders and callers hand us BGR, BGRA, grayscale, 16-bit, float or boolean
arrays; decoders want one contiguous 8-bit grayscale plane. Anything that cannot be
made into one is refused with a one-line reason instead of crashing a C extension.

Image files are hostile input (a 48 KB PNG can claim 20000x20000 pixels, a "file" can
be a FIFO that never ends). :func:`read_image` is the one way every command and frame
source reads them, in this order, and refuses at the first step that fails:

1. the path must name a regular file, checked with ``stat`` and again with ``fstat``
   on a descriptor opened ``O_NONBLOCK`` (a FIFO, device, socket or directory is never
   read, and cannot be swapped in between the two checks);
2. at most :data:`MAX_IMAGE_BYTES` are read;
3. the format and the dimensions come from the file header (Pillow's lazy
   ``Image.open``, which parses headers without decoding pixels): only
   :data:`FORMATS`, at most :data:`MAX_SIDE` pixels a side and :data:`MAX_PIXELS` in
   all; a PNG's chunk checksums and a JPEG's end marker are checked before decoding;
4. only then OpenCV decodes, under its own limits (``OPENCV_IO_MAX_IMAGE_PIXELS`` and
   friends, set to the same numbers unless already lower), and the decoded size is
   checked once more.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hardware.errors import ImageTooLarge, UnusableImage

Gray = npt.NDArray[np.uint8]

#: Files above this size are refused before reading (a 4K PNG or a phone JPEG is far
#: smaller).
MAX_IMAGE_BYTES = 32 * 1024 * 1024
#: Images whose header claims more pixels than this are refused before decoding
#: (decompression bombs): 40 megapixels is more than any gate camera or phone photo
#: of a permit needs, and decodes in well under 512 MB.
MAX_PIXELS = 40_000_000
#: Images wider or taller than this are refused before decoding.
MAX_SIDE = 16_384
#: Pillow format names read here (PNG, JPEG, WebP, BMP, PBM/PGM/PPM): the formats gate
#: cameras and phones produce, all of which OpenCV decodes. Anything else is refused as
#: an unsupported format. (A phone's multi-picture JPEG opens as "MPO".) TIFF is left
#: out on purpose: its tile and strip tags size the decoder's buffers (up to 1 GiB in
#: OpenCV) whatever the image's pixel count, so its header does not bound the memory.
#: Measured worst case within the limits: a 40 MP progressive 4:4:4 CMYK JPEG decodes
#: at about 415 MiB peak for the whole command (gatepass decode).
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "PPM")


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


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an image file's header says: Pillow's format name and the size in pixels."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_image(path: str | Path, *, grayscale: bool = False) -> npt.NDArray[np.uint8]:
    """Read an image file (PNG, JPEG, WebP, BMP, PBM/PGM/PPM) as BGR or grayscale ``uint8``.

    Raises :class:`UnusableImage` for a missing, empty, non-regular, non-image, corrupt
    or unsupported file and :class:`ImageTooLarge` for one above :data:`MAX_IMAGE_BYTES`,
    :data:`MAX_SIDE` or :data:`MAX_PIXELS`; each message is one line naming the file.
    """
    name = str(path)
    return decode_image(read_image_bytes(path), name=name, grayscale=grayscale)


def read_image_bytes(path: str | Path, *, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read without ever blocking
    on a FIFO or device (see the module docstring)."""
    p = str(path)
    try:
        before = os.stat(p)
        if not stat.S_ISREG(before.st_mode):
            raise UnusableImage(f"{p}: not a regular file ({_kind(before.st_mode)})")
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except UnusableImage:
        raise
    except OSError as exc:
        raise UnusableImage(f"{p}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:  # e.g. an embedded NUL byte in the path
        raise UnusableImage(f"{p!r}: cannot read: {exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped after the first check
            raise UnusableImage(f"{p}: not a regular file ({_kind(st.st_mode)})")
        if st.st_size > limit:
            raise ImageTooLarge(f"{p}: {st.st_size} bytes is above the limit of {limit} bytes"
                                " for an image file")
        chunks: list[bytes] = []
        got = 0
        while got <= limit:  # bounded even if the file grows while we read
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except UnusableImage:
        raise
    except OSError as exc:
        raise UnusableImage(f"{p}: cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if got > limit:
        raise ImageTooLarge(f"{p}: more than the limit of {limit} bytes for an image file")
    if got == 0:
        raise UnusableImage(f"{p}: empty file")
    return b"".join(chunks)


def probe_image(data: bytes, *, name: str = "image") -> ImageInfo:
    """Format and size from the header of image ``data``, checked against the limits.

    Nothing is decoded. Raises :class:`UnusableImage` (unknown, unsupported or broken
    header; a PNG with a bad chunk checksum or missing its end; a JPEG missing its end
    marker) or :class:`ImageTooLarge`. ``name`` starts every message.
    """
    Image = _pillow()
    if not data:
        raise UnusableImage(f"{name}: empty file")
    webp = _webp_size(data)
    if webp is not None and (max(webp) > MAX_SIDE or webp[0] * webp[1] > MAX_PIXELS):
        raise ImageTooLarge(_too_large(name, f"{webp[0]}x{webp[1]} pixels"))
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as im:
            fmt = str(im.format)
            width, height = (int(v) for v in im.size)
            if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                raise ImageTooLarge(_too_large(name, f"{width}x{height} pixels"))
            if fmt == "PNG":
                # Walks every chunk and checks its CRC without inflating the pixels: a
                # truncated or damaged PNG is refused here, before libpng sees it.
                im.verify()
    except UnusableImage:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses before we see the size (far above our limit); its message
        # carries the pixel count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        what = f"{int(found.group(1)):,} pixels" if found else "far more pixels"
        raise ImageTooLarge(_too_large(name, what)) from exc
    except Image.UnidentifiedImageError as exc:
        raise UnusableImage(f"{name}: not a readable image (unknown format or corrupt "
                            f"header; supported: {_formats()})") from exc
    except Exception as exc:  # Pillow's header parsers raise SyntaxError, struct.error,
        # OSError, EOFError, ValueError... for broken files: all of them mean "corrupt".
        detail = _first_line(str(exc)) if str(exc).strip() else type(exc).__name__
        raise UnusableImage(f"{name}: not a readable image ({detail})") from exc
    if fmt in ("JPEG", "MPO") and not _jpeg_complete(data):
        raise UnusableImage(f"{name}: not a readable image (truncated JPEG: no end marker)")
    return ImageInfo(format=fmt, width=width, height=height)


def decode_image(data: bytes, *, name: str = "image",
                 grayscale: bool = False) -> npt.NDArray[np.uint8]:
    """Decode image ``data`` (probed first with :func:`probe_image`) with OpenCV.

    Returns BGR ``(h, w, 3)`` or, with ``grayscale``, ``(h, w)`` ``uint8``.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageTooLarge(f"{name}: {len(data)} bytes is above the limit of "
                            f"{MAX_IMAGE_BYTES} bytes for an image file")
    probe_image(data, name=name)
    cv2 = _opencv()
    flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:
        raise UnusableImage(f"{name}: not a readable image ({_first_line(str(exc))})") from exc
    if img is None or img.size == 0:
        raise UnusableImage(f"{name}: not a readable image (corrupt image data)")
    h, w = img.shape[:2]
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageTooLarge(_too_large(name, f"{w}x{h} pixels"))
    return np.ascontiguousarray(img)


def quiet_opencv() -> None:
    """Silence OpenCV's own multi-line complaints (a command's one-line error says it
    better). For command-line tools; a long-running agent keeps OpenCV's log."""
    cv2 = _opencv()
    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _too_large(name: str, what: str) -> str:
    return (f"{name}: image too large: {what}; the limit is {MAX_PIXELS:,} pixels and "
            f"{MAX_SIDE} pixels a side")


def _formats() -> str:
    return "PNG, JPEG, WebP, BMP, PBM/PGM/PPM"


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a file"


def _jpeg_complete(data: bytes) -> bool:
    """Whether a JPEG has an end-of-image marker after its first scan starts.

    The marker segments before the first start-of-scan are walked by their lengths (so
    an EXIF thumbnail, with its own scan and end marker, is skipped); entropy-coded
    data never holds 0xFFD9 (0xFF is stuffed as 0xFF00), so an end marker after the
    first scan means the last scan is complete. Bytes after it are allowed (phones
    append data there).
    """
    i = 2  # after SOI
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0xDA:  # start of scan
            return data.rfind(b"\xff\xd9") > i
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return False


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP's RIFF header (``None`` if ``data`` is no WebP).

    Read here, not by Pillow: opening a WebP in Pillow builds libwebp's animation
    decoder, which allocates two canvas-sized buffers before the size can be checked.
    Layouts per the WebP container spec (simple lossy ``VP8 ``, lossless ``VP8L``,
    extended ``VP8X``).
    """
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return (int.from_bytes(data[26:28], "little") & 0x3FFF,
                int.from_bytes(data[28:30], "little") & 0x3FFF)
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    return None


@functools.cache
def _pillow() -> Any:
    import warnings

    from PIL import Image

    # We check the pixel count ourselves, lower than Pillow's warning threshold; its
    # warning would only add a second line to our one-line error.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    return Image


@functools.cache
def _opencv() -> Any:
    # Belt and braces: OpenCV's own decoder limits, read from the environment when it
    # first decodes, set to ours unless the operator set them lower.
    for var, ours in (("OPENCV_IO_MAX_IMAGE_PIXELS", MAX_PIXELS),
                      ("OPENCV_IO_MAX_IMAGE_WIDTH", MAX_SIDE),
                      ("OPENCV_IO_MAX_IMAGE_HEIGHT", MAX_SIDE)):
        current = os.environ.get(var, "")
        if not current.isdigit() or int(current) > ours:
            os.environ[var] = str(ours)
    import cv2

    return cv2


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "OpenCV error"
