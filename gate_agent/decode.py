"""The decode stage: camera frames in, exact QR payloads out.

``make_decoder(name)`` returns a :class:`Decoder` by name:

* ``"default"``: :class:`CascadeDecoder`, a fast zxing-cpp first pass, then targeted
  retries only where a code is likely (see its docstring);
* ``"zxingcpp"``, ``"pyzbar"``, ``"opencv"``, ``"opencv-aruco"``: one library each.

Only OpenCV is certain to be there; zxing-cpp and pyzbar (which needs Debian's
``libzbar0``) may be missing. :func:`backend_status` says which backends import here and
why not; building a missing single backend raises :class:`hardware.errors.DriverMissing`
with that reason, while ``"default"`` works with whatever is there: without ZBar the
cascade skips its last retry, without zxing-cpp it becomes a :class:`FallbackDecoder`
over the backends that import. :func:`availability_note` gives commands the one line to
print about it.

Every decoder reads QR codes only (no 1D barcodes, no Micro QR), returns each symbol
in the frame once, and gives the payload's exact bytes in :attr:`Code.data` with the
text decoded per the symbol's character set in :attr:`Code.text`. A decoder is not
thread-safe (OpenCV detectors and the cascade's last-hit memory are per instance):
make one per camera thread. Libraries are imported when a decoder is built.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hardware.errors import DriverMissing
from hardware.image import Gray, to_gray

log = logging.getLogger("gate_agent.decode")

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]

#: Names accepted by :func:`make_decoder`, single libraries first.
BACKENDS = ("zxingcpp", "pyzbar", "opencv", "opencv-aruco")
DECODERS = (*BACKENDS, "default")


@dataclass(frozen=True, slots=True)
class Code:
    """One QR symbol read from a frame.

    ``data`` is the exact payload bytes; ``text`` those bytes decoded per the symbol's
    character set (ECI, else UTF-8, Shift-JIS or ISO 8859-1 as the bytes allow);
    ``backend`` the library that read it; ``corners`` the four corners in frame pixels
    (top-left, top-right, bottom-right, bottom-left of the symbol), empty if unknown.
    """

    data: bytes
    text: str
    backend: str
    corners: tuple[Point, ...] = field(default=(), compare=False)

    @property
    def center(self) -> Point | None:
        """Centre of the symbol in frame pixels, or ``None`` when corners are unknown."""
        if not self.corners:
            return None
        xs = [p[0] for p in self.corners]
        ys = [p[1] for p in self.corners]
        return (sum(xs) / len(xs), sum(ys) / len(ys))


class Decoder(Protocol):
    """Anything that turns a frame into the QR codes it shows."""

    name: str

    def decode(self, frame: npt.NDArray[Any]) -> list[Code]:
        """Return every QR code in ``frame``; ``[]`` for an empty frame.

        Raises :class:`hardware.errors.UnusableImage` for an array that is no image.
        """
        ...


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """Whether one decoder backend can be used here, and if not, why and how to fix it."""

    name: str
    available: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason}


#: The order in which the default decoder falls back when zxing-cpp is missing.
_FALLBACK_ORDER = ("opencv-aruco", "opencv", "pyzbar")


@functools.cache
def backend_status(name: str) -> BackendStatus:
    """Probe backend ``name`` (one of :data:`BACKENDS`) once per process: import its
    library; never raises."""
    if name in ("zxing", "zxingcpp"):
        return _probe("zxingcpp", "zxingcpp", "zxing-cpp not installed: pip install zxing-cpp")
    if name == "pyzbar":
        return _probe("pyzbar", "pyzbar.wrapper",
                      "pyzbar not installed: pip install pyzbar")
    if name in ("opencv", "opencv-aruco"):
        status = _probe(name, "cv2", "OpenCV not installed: pip install opencv-python-headless")
        attr = "QRCodeDetectorAruco" if name == "opencv-aruco" else "QRCodeDetector"
        if status.available and not hasattr(importlib.import_module("cv2"), attr):
            return BackendStatus(name, False, f"this OpenCV build has no cv2.{attr}")
        return status
    raise ValueError(f"unknown decoder backend {name!r}; choose one of {', '.join(BACKENDS)}")


def _probe(name: str, module: str, missing: str) -> BackendStatus:
    try:
        importlib.import_module(module)
    except (ImportError, OSError) as exc:  # OSError: a native library that will not load
        text = str(exc)
        if "zbar shared library" in text:  # pyzbar is there, Debian's library is not
            reason = "libzbar0 not installed: apt-get install libzbar0"
        elif isinstance(exc, ImportError) and exc.name and module.startswith(exc.name):
            reason = missing
        else:
            reason = f"{module} does not import: {text.splitlines()[0] if text else exc}"
        log.debug("decoder backend %s unavailable: %s", name, reason)
        return BackendStatus(name, False, reason)
    return BackendStatus(name, True)


def require_backend(name: str) -> None:
    """Raise :class:`DriverMissing` naming the reason when backend ``name`` is missing."""
    status = backend_status(name)
    if not status.available:
        raise DriverMissing(f"{status.name} unavailable ({status.reason})")


def availability_note(name: str = "default") -> str | None:
    """One line for a command to print when decoder ``name`` runs without some backend
    it would use (``None`` when nothing is missing), e.g. ``pyzbar unavailable
    (libzbar0 not installed: apt-get install libzbar0); using zxingcpp and opencv (the
    cascade skips its ZBar retry)``.

    For a single backend that is missing, see :func:`require_backend` instead.
    """
    if name != "default":
        return None
    missing = [backend_status(n) for n in ("zxingcpp", "pyzbar")]
    missing = [m for m in missing if not m.available]
    if not missing:
        return None
    what = "; ".join(f"{m.name} unavailable ({m.reason})" for m in missing)
    if backend_status("zxingcpp").available:
        return f"{what}; using zxingcpp and opencv (the cascade skips its ZBar retry)"
    fallback = [n for n in _FALLBACK_ORDER if backend_status(n).available]
    if not fallback:
        return f"{what}; no QR decoder backend is available"
    return f"{what}; using {', '.join(fallback)} (slower, reads fewer codes)"


def make_decoder(name: str = "default") -> Decoder:
    """Build the decoder called ``name`` (one of :data:`DECODERS`).

    Raises ``ValueError`` for an unknown name and :class:`DriverMissing` when the
    backend's library is not available here (``"default"`` only when none is).
    """
    factories: dict[str, Callable[[], Decoder]] = {
        "default": _default_decoder,
        "zxingcpp": ZxingDecoder,
        "zxing": ZxingDecoder,
        "pyzbar": PyzbarDecoder,
        "opencv": lambda: OpenCVDecoder(aruco=False),
        "opencv-aruco": lambda: OpenCVDecoder(aruco=True),
    }
    try:
        factory = factories[name]
    except KeyError:
        raise ValueError(
            f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}"
        ) from None
    if name != "default":
        require_backend(name)
    return factory()


def _default_decoder() -> Decoder:
    if backend_status("zxingcpp").available:
        return CascadeDecoder(use_pyzbar=backend_status("pyzbar").available)
    names = [n for n in _FALLBACK_ORDER if backend_status(n).available]
    if not names:
        raise DriverMissing(f"no QR decoder backend available ({availability_note()})")
    return FallbackDecoder([make_decoder(n) for n in names])


# --------------------------------------------------------------------------- text


def text_from_bytes(data: bytes) -> str:
    """Decode payload bytes the way QR readers do when the symbol names no charset.

    UTF-8 if valid; else Shift-JIS when the bytes are valid Shift-JIS and contain
    double-byte characters (Japanese codes commonly omit the ECI); else ISO 8859-1,
    the QR standard's default, which maps every byte.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("shift_jis")
    except UnicodeDecodeError:
        return data.decode("latin-1")
    if any(ord(ch) > 0xFF for ch in text):
        return text
    return data.decode("latin-1")


def _quad(points: Sequence[Sequence[float]]) -> tuple[Point, ...]:
    return tuple((float(p[0]), float(p[1])) for p in points)


def _shift(corners: tuple[Point, ...], dx: float, dy: float, scale: float) -> tuple[Point, ...]:
    return tuple((x / scale + dx, y / scale + dy) for x, y in corners)


# --------------------------------------------------------------------------- backends


class ZxingDecoder:
    """zxing-cpp (pinned 3.1.1): the fastest and most accurate single library here.

    ``try_invert`` also finds light-on-dark codes (about twice the cost on empty
    frames); ``binarizer`` is one of zxing-cpp's (``LocalAverage``, ``GlobalHistogram``,
    ``FixedThreshold``, ``BoolCast``).
    """

    name = "zxingcpp"

    def __init__(
        self,
        *,
        try_invert: bool = True,
        try_downscale: bool = True,
        try_rotate: bool = True,
        binarizer: str = "LocalAverage",
        return_errors: bool = False,
    ) -> None:
        import zxingcpp

        self._zx = zxingcpp
        self._kwargs: dict[str, Any] = dict(
            formats=zxingcpp.BarcodeFormat.QRCode,
            try_rotate=try_rotate,
            try_downscale=try_downscale,
            try_invert=try_invert,
            binarizer=getattr(zxingcpp.Binarizer, binarizer),
            # Plain: the symbol's charset (ECI or guess), no HRI decoration of GS1 or
            # control characters.
            text_mode=zxingcpp.TextMode.Plain,
            return_errors=return_errors,
        )

    def raw(self, gray: Gray, **overrides: Any) -> list[Any]:
        """zxing-cpp's own results for a grayscale image (valid and, if asked, errors).

        ``overrides`` replace the constructor's options for this call; ``binarizer`` is
        given by name.
        """
        if gray.size == 0:
            return []
        if "binarizer" in overrides:
            overrides["binarizer"] = getattr(self._zx.Binarizer, overrides["binarizer"])
        kwargs = {**self._kwargs, **overrides}
        return list(self._zx.read_barcodes(gray, **kwargs))

    def decode(self, frame: npt.NDArray[Any]) -> list[Code]:
        return self.codes(self.raw(to_gray(frame)))

    def codes(self, results: list[Any], dx: float = 0.0, dy: float = 0.0,
              scale: float = 1.0) -> list[Code]:
        """Valid zxing-cpp results as :class:`Code`, mapped back into frame pixels."""
        out: list[Code] = []
        for r in results:
            if not r.valid:
                continue
            pos = r.position
            corners = _quad([(pos.top_left.x, pos.top_left.y), (pos.top_right.x, pos.top_right.y),
                             (pos.bottom_right.x, pos.bottom_right.y),
                             (pos.bottom_left.x, pos.bottom_left.y)])
            out.append(Code(data=bytes(r.bytes), text=str(r.text), backend=self.name,
                            corners=_shift(corners, dx, dy, scale)))
        return _unique(out)


class PyzbarDecoder:
    """ZBar through pyzbar's ctypes bindings, QR only, raw bytes.

    pyzbar 0.1.9's ``decode()`` raises ``ValueError`` when ZBar reports an unknown
    orientation and returns ZBar's charset *guess* re-encoded as UTF-8, so this
    drives ``libzbar`` through pyzbar's wrapper directly with binary mode on.
    """

    name = "pyzbar"
    #: ``ZBAR_CFG_BINARY`` in zbar >= 0.23 (pyzbar 0.1.9's enum predates it).
    _CFG_BINARY = 4
    #: ZBar's fourcc for 8-bit grayscale ("Y800").
    _Y800 = 808466521

    def __init__(self) -> None:
        from pyzbar import wrapper as zw

        self._zw = zw
        self._scanner = zw.zbar_image_scanner_create()
        zw.zbar_image_scanner_set_config(self._scanner, zw.ZBarSymbol.NONE,
                                         zw.ZBarConfig.CFG_ENABLE, 0)
        zw.zbar_image_scanner_set_config(self._scanner, zw.ZBarSymbol.QRCODE,
                                         zw.ZBarConfig.CFG_ENABLE, 1)
        zw.zbar_image_scanner_set_config(self._scanner, zw.ZBarSymbol.QRCODE,
                                         self._CFG_BINARY, 1)

    def __del__(self) -> None:
        scanner = getattr(self, "_scanner", None)
        if scanner is not None:
            self._zw.zbar_image_scanner_destroy(scanner)
            self._scanner = None

    def decode(self, frame: npt.NDArray[Any]) -> list[Code]:
        return self.decode_gray(to_gray(frame))

    def decode_gray(self, gray: Gray, dx: float = 0.0, dy: float = 0.0,
                    scale: float = 1.0) -> list[Code]:
        if gray.size == 0:
            return []
        zw = self._zw
        h, w = gray.shape
        buf = gray.tobytes()
        image = zw.zbar_image_create()
        try:
            zw.zbar_image_set_format(image, self._Y800)
            zw.zbar_image_set_size(image, w, h)
            data_ptr = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p)
            zw.zbar_image_set_data(image, data_ptr, len(buf), None)
            n = zw.zbar_scan_image(self._scanner, image)
            out: list[Code] = []
            if n <= 0:
                return out
            symbol = zw.zbar_image_first_symbol(image)
            while symbol:
                length = zw.zbar_symbol_get_data_length(symbol)
                data = ctypes.string_at(zw.zbar_symbol_get_data(symbol), length)
                npts = zw.zbar_symbol_get_loc_size(symbol)
                pts = [(zw.zbar_symbol_get_loc_x(symbol, i), zw.zbar_symbol_get_loc_y(symbol, i))
                       for i in range(npts)]
                out.append(Code(data=data, text=text_from_bytes(data), backend=self.name,
                                corners=_shift(_quad(pts), dx, dy, scale)))
                symbol = zw.zbar_symbol_next(symbol)
            return _unique(out)
        finally:
            zw.zbar_image_destroy(image)


class OpenCVDecoder:
    """OpenCV's ``QRCodeDetector`` (or ``QRCodeDetectorAruco``), bytes API."""

    def __init__(self, *, aruco: bool = False) -> None:
        import cv2

        self._cv2 = cv2
        self.name = "opencv-aruco" if aruco else "opencv"
        self._det = cv2.QRCodeDetectorAruco() if aruco else cv2.QRCodeDetector()

    def decode(self, frame: npt.NDArray[Any]) -> list[Code]:
        return self.decode_gray(to_gray(frame))

    def decode_gray(self, gray: Gray, dx: float = 0.0, dy: float = 0.0,
                    scale: float = 1.0) -> list[Code]:
        if gray.size == 0 or min(gray.shape) < 21:
            return []
        try:
            ok, datas, points, _ = self._det.detectAndDecodeBytesMulti(gray)
        except self._cv2.error:
            return []  # OpenCV raises on some degenerate quads; nothing was read
        if not ok or points is None:
            return []
        out: list[Code] = []
        for data, quad in zip(datas, points, strict=False):
            raw = bytes(data)
            if not raw:
                continue
            out.append(Code(data=raw, text=text_from_bytes(raw), backend=self.name,
                            corners=_shift(_quad(quad), dx, dy, scale)))
        return _unique(out)


def _unique(codes: list[Code]) -> list[Code]:
    """Drop repeated reads of the same symbol (same bytes, centres close together)."""
    out: list[Code] = []
    for c in codes:
        if any(o.data == c.data and _near(o, c) for o in out):
            continue
        out.append(c)
    return out


def _near(a: Code, b: Code) -> bool:
    ca, cb = a.center, b.center
    if ca is None or cb is None:
        return True
    size = max(_extent(a), _extent(b), 1.0)
    return math.dist(ca, cb) < size


def _extent(c: Code) -> float:
    if not c.corners:
        return 0.0
    xs = [p[0] for p in c.corners]
    ys = [p[1] for p in c.corners]
    return max(max(xs) - min(xs), max(ys) - min(ys))


class FallbackDecoder:
    """The default decoder where zxing-cpp is missing: each backend in turn, the first
    that reads anything wins. Slower and weaker than the cascade, but it reads."""

    name = "default"

    def __init__(self, decoders: Sequence[Decoder]) -> None:
        if not decoders:
            raise ValueError("a FallbackDecoder needs at least one decoder")
        self.decoders = list(decoders)
        #: The backend that read the codes of the last call ("" when none did).
        self.last_step = ""

    def decode(self, frame: npt.NDArray[Any]) -> list[Code]:
        gray = to_gray(frame)
        self.last_step = ""
        if gray.size == 0:
            return []
        for decoder in self.decoders:
            codes = decoder.decode(gray)
            if codes:
                self.last_step = decoder.name
                return codes
        return []


# --------------------------------------------------------------------------- cascade


@dataclass(frozen=True, slots=True)
class _Roi:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def empty(self) -> bool:
        return self.x1 - self.x0 < 21 or self.y1 - self.y0 < 21


def _roi_around(corners: Sequence[Point], shape: tuple[int, ...], pad: float = 0.35) -> _Roi:
    xs = [p[0] for p in corners]
    ys = [p[1] for p in corners]
    size = max(max(xs) - min(xs), max(ys) - min(ys), 20.0)
    m = pad * size + 8
    h, w = shape[:2]
    return _Roi(max(int(min(xs) - m), 0), max(int(min(ys) - m), 0),
                min(int(max(xs) + m) + 1, w), min(int(max(ys) + m) + 1, h))


def _inside(code: Code, roi: _Roi) -> bool:
    centre = code.center
    return centre is not None and roi.x0 <= centre[0] < roi.x1 and roi.y0 <= centre[1] < roi.y1


def _sharpen(gray: Gray, sigma: float) -> Gray:
    import cv2

    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    return np.asarray(cv2.addWeighted(gray, 2.5, blurred, -1.5, 0), dtype=np.uint8)


class CascadeDecoder:
    """The default: a fast first pass, then targeted retries where a code is likely.

    1. **First pass**: zxing-cpp on the whole frame, normal polarity only (inversion
       doubles the cost of empty frames). A frame dominated by pixel noise (mean
       absolute neighbour difference above ``noise_level``) is read at half
       resolution instead (the 2x2 average halves the noise and quarters the work),
       except every ``noisy_full_every``-th frame, which gets the full-resolution pass,
       so a small code in a noisy stream is still read within a few frames.
       Every ``invert_every``-th frame the pass also looks for light-on-dark codes
       (phones in dark mode), so those are found within that many frames at a
       fraction of the cost.
    2. **Where a code is likely** (if the first pass read nothing; beside codes it
       did read, only finder patterns away from them): the regions
       where zxing-cpp found finder patterns but could not decode, the region of the
       last hit for ``roi_memory`` frames, and the whole image when it is small
       (a still photo, at most ``still_pixels`` pixels). Regions with evidence of a
       code get a ladder of retries (another binariser, sharpening, rescaling, Otsu,
       inversion, then ZBar); the remembered region gets the cheap first steps only.
       The ladder stops at the first read. (Retrying where the picture changed
       against a learnt background was tried: no gain on the simulator, higher cost.)

    Empty frames thus cost one zxing-cpp pass. Payloads are only ever what a QR
    decoder with Reed-Solomon checks returned; the cascade never guesses.
    """

    name = "default"

    def __init__(
        self,
        *,
        invert_every: int = 3,
        roi_memory: int = 8,
        still_pixels: int = 640_000,
        noise_level: float = 12.0,
        noisy_full_every: int = 3,
        use_pyzbar: bool = True,
    ) -> None:
        import cv2

        self._cv2 = cv2
        self._zx = ZxingDecoder(try_invert=False, return_errors=True)
        self._zbar: PyzbarDecoder | None = None
        if use_pyzbar:
            try:
                self._zbar = PyzbarDecoder()
            except ImportError as exc:  # pyzbar or Debian's libzbar0 missing: still decode
                # Commands say so once (availability_note); no warning per decoder.
                log.debug("ZBar unavailable, the cascade's last retry is skipped: %s", exc)
        self.invert_every = invert_every
        self.roi_memory = roi_memory
        self.still_pixels = still_pixels
        self.noise_level = noise_level
        self.noisy_full_every = noisy_full_every
        self._calls = 0
        self._last_hits: list[tuple[Point, ...]] = []
        self._since_hit = 1 << 30
        #: Which step read the codes of the last call ("first", "retry:<step>", "").
        self.last_step = ""

    def reset(self) -> None:
        """Forget the last hit (e.g. when the camera was switched)."""
        self._last_hits = []
        self._since_hit = 1 << 30

    def decode(self, frame: npt.NDArray[Any]) -> list[Code]:
        gray = to_gray(frame)
        self._calls += 1
        self.last_step = ""
        if gray.size == 0:
            return []
        codes, likely = self._first_pass(gray)
        if codes:
            self.last_step = "first"
            # Another person's code beside the one read: retry only where zxing-cpp saw
            # finder patterns away from the codes it already read.
            for corners in likely[:2]:
                roi = _roi_around(corners, gray.shape)
                if any(_inside(c, roi) for c in codes) or roi.empty:
                    continue
                codes += self._retry(gray, roi, True)
        else:
            regions = self._likely_regions(gray, likely)
            for roi, full in regions:
                codes = self._retry(gray, roi, full)
                if codes:
                    break
        codes = _unique(codes)
        if codes:
            self._last_hits = [c.corners for c in codes if c.corners]
            self._since_hit = 0
        else:
            self._since_hit += 1
        return codes

    # ------------------------------------------------------------------ passes

    def _noisy(self, gray: Gray) -> bool:
        cv2 = self._cv2
        rows = np.ascontiguousarray(gray[::16])
        diff = cv2.absdiff(rows[:, 1:], rows[:, :-1])
        return float(cv2.mean(diff)[0]) > self.noise_level

    def _first_pass(self, gray: Gray) -> tuple[list[Code], list[tuple[Point, ...]]]:
        cv2 = self._cv2
        # Inverting turns and full-resolution turns of noisy frames fall on different
        # frames (offset by one) so that no frame pays for both.
        invert = self.invert_every > 0 and (self._calls + 1) % self.invert_every == 0
        h, w = gray.shape
        full_turn = self.noisy_full_every > 0 and self._calls % self.noisy_full_every == 0
        if h * w > self.still_pixels and not full_turn and self._noisy(gray):
            small = cv2.resize(gray, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            results = self._zx.raw(small, try_invert=invert)
            scale = 0.5
        else:
            results = self._zx.raw(gray, try_invert=invert)
            scale = 1.0
        codes = self._zx.codes(results, scale=scale)
        likely = []
        for r in results:
            if r.valid:
                continue
            pos = r.position
            likely.append(_shift(_quad([
                (pos.top_left.x, pos.top_left.y), (pos.top_right.x, pos.top_right.y),
                (pos.bottom_right.x, pos.bottom_right.y), (pos.bottom_left.x, pos.bottom_left.y),
            ]), 0.0, 0.0, scale))
        return codes, likely

    def _likely_regions(self, gray: Gray,
                        likely: list[tuple[Point, ...]]) -> list[tuple[_Roi, bool]]:
        """Regions worth retrying, each with whether it deserves the full ladder."""
        h, w = gray.shape
        regions: list[tuple[_Roi, bool]] = []
        if h * w <= self.still_pixels:
            regions.append((_Roi(0, 0, w, h), True))
        for corners in likely[:2]:
            regions.append((_roi_around(corners, gray.shape), True))
        if self._since_hit < self.roi_memory:
            # Only memory, no evidence in this frame: a few cheap steps, so that the
            # empty frames after a person leaves stay cheap.
            for corners in self._last_hits[:2]:
                regions.append((_roi_around(corners, gray.shape, pad=0.6), False))
        return [(r, full) for r, full in regions if not r.empty]

    def _retry(self, gray: Gray, roi: _Roi, full: bool) -> list[Code]:
        cv2 = self._cv2
        crop = np.ascontiguousarray(gray[roi.y0:roi.y1, roi.x0:roi.x1])
        side = max(crop.shape)
        zx = self._zx
        hist = "GlobalHistogram"

        def attempt(img: Gray, scale: float = 1.0, **kw: Any) -> list[Code]:
            return zx.codes(zx.raw(img, **kw), dx=roi.x0, dy=roi.y0, scale=scale)

        steps: list[tuple[str, Callable[[], list[Code]]]] = []
        whole = roi.x0 == 0 and roi.y0 == 0 and crop.shape == gray.shape
        if not whole:
            # Both polarities: a crop is small, and a dark-mode code read on an
            # inverting turn must be followed in the frames after.
            steps.append(("crop", lambda: attempt(crop, try_invert=True)))
        steps += [
            ("histogram", lambda: attempt(crop, binarizer=hist)),
            ("sharpen", lambda: attempt(_sharpen(crop, 1.5))),
        ]
        if full:
            steps.append(("invert", lambda: attempt(cv2.bitwise_not(crop))))
            if side < 500:
                steps.append(("upscale-sharpen", lambda: attempt(_sharpen(
                    cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC), 2.5),
                    scale=2.0)))
            if side > 120:
                steps.append(("half", lambda: attempt(
                    cv2.resize(crop, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                    scale=0.5)))
                steps.append(("half-histogram", lambda: attempt(
                    cv2.resize(crop, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                    scale=0.5, binarizer=hist)))
            steps.append(("otsu", lambda: attempt(
                cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1])))
            if self._zbar is not None:
                zbar = self._zbar
                steps.append(("zbar", lambda: zbar.decode_gray(crop, dx=roi.x0, dy=roi.y0)))
        for name, step in steps:
            codes = step()
            if codes:
                self.last_step = f"retry:{name}"
                return self._prefer_zxing(gray, codes)
        return []

    def _prefer_zxing(self, gray: Gray, codes: list[Code]) -> list[Code]:
        # A code ZBar read is re-read by zxing-cpp on a tight crop when possible: zxing-cpp
        # honours the symbol's ECI/charset where ZBar's raw bytes leave us guessing.
        out = []
        for code in codes:
            if code.backend == self._zx.name or not code.corners:
                out.append(code)
                continue
            roi = _roi_around(code.corners, gray.shape, pad=0.15)
            crop = np.ascontiguousarray(gray[roi.y0:roi.y1, roi.x0:roi.x1])
            again = [c for c in self._zx.codes(self._zx.raw(crop), dx=roi.x0, dy=roi.y0)
                     if c.data == code.data]
            out.append(again[0] if again else code)
        return out
