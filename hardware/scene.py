"""Scene simulator: permit payloads rendered into frames as a gate camera sees them.

::

    sim = SceneSimulator([b"GP1:...", b"GP1:..."], seed=7, size=(1280, 720),
                         impairments=("clean", "blur", "glare"))
    for frame in sim.frames(200):        # or: for frame in sim: (endless)
        frame.image        # (720, 1280, 3) uint8 BGR
        frame.payload      # the bytes shown in this frame, or None (nobody / no code)
        frame.impairment   # "blur", ... or None for an empty frame
        frame.presentation # which presentation (person) this frame belongs to

The stream alternates *presentations* (one person holding one payload up for
``frames_per_presentation`` frames, moving slightly) with *gaps* of empty frames.
Each presentation shows the next payload (round robin) on a phone screen or on
paper, with one impairment from :data:`IMPAIRMENTS`, cycled in order so every
impairment gets the same share. Everything is drawn from a random generator seeded
by ``(seed, presentation)``: the same seed gives the same frames, and
``sim.presentation(k)`` replays presentation ``k`` alone. Only payload bytes are
needed (segno builds the QR matrix, error level Q like the EU DCC).

Speed: QR cards, backgrounds and noise fields are rendered once and cached; a frame
costs one background copy, one perspective warp of the code's bounding box and the
impairment's filter: about 1.5 to 3 ms of CPU for 1280x720 (glare up to 5). A
benchmark needing more frames per second pre-renders: ``list(sim.frames(n))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

#: Impairments, each one realistic situation at a gate lane.
IMPAIRMENTS: tuple[str, ...] = (
    "clean",  # held square-on at a comfortable distance
    "perspective",  # tilted strongly away from the camera
    "small",  # far from the camera: about 1.5 to 2 pixels per module
    "rotation",  # turned in-plane by any angle
    "blur",  # out of focus
    "motion",  # moved while the shutter was open
    "glare",  # a light reflected on the screen or laminate
    "lowlight",  # night, gain turned up: dark and noisy
    "noise",  # strong sensor noise in normal light
    "moire",  # phone screen pixel grid beating with the camera's
    "occlusion",  # a thumb over part of the code
    "darkmode",  # a phone in dark mode: light modules on a dark screen
)
MEDIA: tuple[str, ...] = ("phone", "paper")

_MODULE_PX = 6  # card resolution; the warp scales it to the simulated distance
_QUIET = 4  # modules of quiet zone on each side, as the standard asks


@dataclass(frozen=True, slots=True)
class SceneFrame:
    """One simulated camera frame and the truth about it."""

    image: Image
    payload: bytes | None
    impairment: str | None
    index: int
    presentation: int | None
    medium: str | None = None


@dataclass(frozen=True, slots=True)
class _Placement:
    corners: npt.NDArray[np.float32]  # 4x2 destination corners of the card, frame pixels


class SceneSimulator:
    """Seeded, replayable frames of people showing QR payloads to a camera (see module doc).

    ``payloads``: bytes or str (UTF-8). ``impairments``: names from :data:`IMPAIRMENTS`
    (default: all). ``frames_per_presentation`` and ``gap_frames`` are inclusive
    ``(min, max)`` ranges. ``media`` chooses phone screens and/or paper.
    """

    def __init__(
        self,
        payloads: Sequence[bytes | str],
        *,
        seed: int = 0,
        size: tuple[int, int] = (1280, 720),
        impairments: Sequence[str] | None = None,
        frames_per_presentation: tuple[int, int] = (4, 8),
        gap_frames: tuple[int, int] = (2, 5),
        media: Sequence[str] = MEDIA,
    ) -> None:
        if not payloads:
            raise ValueError("the scene needs at least one payload")
        self.payloads = [p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in payloads]
        self.seed = int(seed)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, not {seed}")
        w, h = size
        if w < 64 or h < 64:
            raise ValueError(f"frame size {size} is too small (at least 64x64)")
        self.size = (int(w), int(h))
        chosen = tuple(impairments) if impairments else IMPAIRMENTS
        unknown = [i for i in chosen if i not in IMPAIRMENTS]
        if unknown:
            raise ValueError(f"unknown impairments {unknown}; known: {', '.join(IMPAIRMENTS)}")
        self.impairments = chosen
        bad_media = [m for m in media if m not in MEDIA]
        if bad_media or not media:
            raise ValueError(f"media must be among {MEDIA}, got {list(media)}")
        self.media = tuple(media)
        for name, (lo, hi) in (("frames_per_presentation", frames_per_presentation),
                               ("gap_frames", gap_frames)):
            if lo < 0 or hi < lo:
                raise ValueError(f"{name} must be a (min, max) range, got {(lo, hi)}")
        if frames_per_presentation[0] < 1:
            raise ValueError("a presentation needs at least one frame")
        self.frames_per_presentation = frames_per_presentation
        self.gap_frames = gap_frames
        self._backgrounds = _backgrounds(self.seed, self.size)

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[SceneFrame]:
        index = 0
        k = 0
        while True:
            for frame in self._presentation_frames(k, index):
                yield frame
                index += 1
            k += 1

    def frames(self, n: int) -> Iterator[SceneFrame]:
        """The first ``n`` frames of the stream."""
        for i, frame in enumerate(self):
            if i >= n:
                return
            yield frame

    def presentation(self, k: int) -> list[SceneFrame]:
        """Replay presentation ``k`` alone: its gap frames, then the frames showing the code.

        The images and truth equal the stream's; ``index`` counts from 0 here.
        """
        return list(self._presentation_frames(k, 0))

    def impairment_of(self, k: int) -> str:
        """The impairment of presentation ``k`` (they cycle in order)."""
        return self.impairments[k % len(self.impairments)]

    # ------------------------------------------------------------------ rendering

    def _presentation_frames(self, k: int, first_index: int) -> Iterator[SceneFrame]:
        rng = np.random.default_rng((self.seed, k))
        impairment = self.impairment_of(k)
        payload = self.payloads[k % len(self.payloads)]
        medium = self.media[int(rng.integers(len(self.media)))]
        if impairment == "darkmode":
            medium = "phone"
        bg = self._backgrounds[int(rng.integers(len(self._backgrounds)))]  # noisy variants
        gap = int(rng.integers(self.gap_frames[0], self.gap_frames[1] + 1))
        shown = int(rng.integers(self.frames_per_presentation[0],
                                 self.frames_per_presentation[1] + 1))
        index = first_index
        for _ in range(gap):
            img = bg[int(rng.integers(len(bg)))].copy()
            yield SceneFrame(img, None, None, index, k, None)
            index += 1
        card = self._card(payload, medium, impairment, rng)
        place = self._place(card.shape, impairment, rng)
        drift = rng.normal(0.0, 2.0, size=2)
        for j in range(shown):
            corners = place.corners + (drift * j + rng.normal(0.0, 0.7, size=2)).astype(np.float32)
            img = bg[int(rng.integers(len(bg)))].copy()
            self._warp(card, corners, img)
            # Sensor noise on the code too (the background variants carry theirs).
            self._add_noise(img, rng, _SENSOR_SIGMA, _bbox(corners, img.shape, 4))
            self._impair(img, corners, impairment, rng)
            yield SceneFrame(img, payload, impairment, index, k, medium)
            index += 1

    def _card(self, payload: bytes, medium: str, impairment: str,
              rng: np.random.Generator) -> Image:
        if impairment == "darkmode":
            return _card(payload, "phone", dark_mode=True).copy()
        card = _card(payload, medium).copy()
        if impairment == "moire" and medium == "phone":
            _moire(card, rng)
        elif impairment == "moire":  # paper shows moire as a printed halftone screen
            _moire(card, rng, strength=0.18)
        return card

    def _place(self, card_shape: tuple[int, ...], impairment: str,
               rng: np.random.Generator) -> _Placement:
        w, h = self.size
        ch, cw = card_shape[:2]
        # Width of the phone or paper card on screen, as a fraction of the frame height.
        frac = {"small": (0.17, 0.23), "perspective": (0.35, 0.5)}.get(impairment, (0.28, 0.5))
        width = float(rng.uniform(*frac)) * h
        height = width * ch / cw
        angle = float(rng.uniform(-12, 12))
        if impairment == "rotation":
            angle = float(rng.uniform(25, 335))
        rad = math.radians(angle)
        c, s = math.cos(rad), math.sin(rad)
        half = np.array([[-width / 2, -height / 2], [width / 2, -height / 2],
                         [width / 2, height / 2], [-width / 2, height / 2]])
        pts = half @ np.array([[c, s], [-s, c]])
        tilt = 0.06
        if impairment == "perspective":
            tilt = 0.22
        pts = pts + rng.uniform(-tilt, tilt, size=(4, 2)) * width
        if impairment == "perspective":
            # Lean the top or one side away: one edge clearly shorter than the other.
            edge = int(rng.integers(4))
            a, b = edge, (edge + 1) % 4
            mid = (pts[a] + pts[b]) / 2
            pts[a] = mid + (pts[a] - mid) * 0.6
            pts[b] = mid + (pts[b] - mid) * 0.6
        span = np.ptp(pts, axis=0)
        margin = span / 2 + 8
        lo_x, hi_x = margin[0], max(margin[0] + 1, w - margin[0])
        lo_y, hi_y = margin[1], max(margin[1] + 1, h - margin[1])
        centre = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
        return _Placement((pts + centre).astype(np.float32))

    def _warp(self, card: Image, corners: npt.NDArray[np.float32], img: Image) -> None:
        import cv2

        h_img, w_img = img.shape[:2]
        x0 = max(math.floor(float(corners[:, 0].min())) - 2, 0)
        y0 = max(math.floor(float(corners[:, 1].min())) - 2, 0)
        x1 = min(math.ceil(float(corners[:, 0].max())) + 2, w_img)
        y1 = min(math.ceil(float(corners[:, 1].max())) + 2, h_img)
        if x1 <= x0 or y1 <= y0:
            return
        ch, cw = card.shape[:2]
        src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], dtype=np.float32)
        dst = corners - np.array([x0, y0], dtype=np.float32)
        m = cv2.getPerspectiveTransform(src, dst)
        roi = np.ascontiguousarray(img[y0:y1, x0:x1])
        # Area-average the card first when it shrinks a lot, as a lens does.
        shrink = cw / max(float(np.ptp(dst[:, 0])), 1.0)
        if shrink > 2.0:
            f = 1.0 / (shrink / 1.5)
            card = np.asarray(cv2.resize(card, None, fx=f, fy=f, interpolation=cv2.INTER_AREA),
                              dtype=np.uint8)
            ch2, cw2 = card.shape[:2]
            src = np.array([[0, 0], [cw2, 0], [cw2, ch2], [0, ch2]], dtype=np.float32)
            m = cv2.getPerspectiveTransform(src, dst)
        cv2.warpPerspective(card, m, (x1 - x0, y1 - y0), dst=roi, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_TRANSPARENT)
        img[y0:y1, x0:x1] = roi

    def _impair(self, img: Image, corners: npt.NDArray[np.float32], impairment: str,
                rng: np.random.Generator) -> None:
        import cv2

        h_img, w_img = img.shape[:2]
        x0 = max(int(corners[:, 0].min()) - 20, 0)
        y0 = max(int(corners[:, 1].min()) - 20, 0)
        x1 = min(int(corners[:, 0].max()) + 20, w_img)
        y1 = min(int(corners[:, 1].max()) + 20, h_img)
        if x1 <= x0 or y1 <= y0:
            return
        roi = img[y0:y1, x0:x1]
        if impairment == "blur":
            sigma = float(rng.uniform(1.2, 2.4))
            roi[:] = cv2.GaussianBlur(roi, (0, 0), sigma)
        elif impairment == "motion":
            length = int(rng.integers(5, 11))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2, :] = 1.0 / length
            rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5),
                                          float(rng.uniform(0, 180)), 1.0)
            kernel = np.asarray(cv2.warpAffine(kernel, rot, (length, length)), dtype=np.float32)
            kernel /= max(float(kernel.sum()), 1e-6)
            roi[:] = cv2.filter2D(roi, -1, kernel)
        elif impairment == "glare":
            _glare(roi, corners - np.array([x0, y0], np.float32), rng)
        elif impairment == "occlusion":
            _thumb(roi, corners - np.array([x0, y0], np.float32), rng)
        elif impairment == "lowlight":
            gain = float(rng.uniform(0.12, 0.22))
            cv2.convertScaleAbs(img, dst=img, alpha=gain, beta=float(rng.uniform(2, 6)))
            self._add_noise(img, rng, 2.5)
        elif impairment == "noise":
            self._add_noise(img, rng, 12.0)

    def _add_noise(self, img: Image, rng: np.random.Generator, sigma: float,
                   box: tuple[int, int, int, int] | None = None) -> None:
        """Add cached zero-mean noise of ``sigma`` grey levels (in ``box`` only if given)."""
        _add_noise(img, _noise_fields(self.size, sigma), rng, box)


# ---------------------------------------------------------------------- cached art

_SENSOR_SIGMA = 3.0


def _bbox(corners: npt.NDArray[np.float32], shape: tuple[int, ...],
          pad: int) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    return (max(int(corners[:, 0].min()) - pad, 0), max(int(corners[:, 1].min()) - pad, 0),
            min(int(corners[:, 0].max()) + pad + 1, w), min(int(corners[:, 1].max()) + pad + 1, h))


def _add_noise(img: Image, fields: tuple[Image, Image], rng: np.random.Generator,
               box: tuple[int, int, int, int] | None = None) -> None:
    import cv2

    pos, neg = fields
    x0, y0, x1, y1 = box if box is not None else (0, 0, img.shape[1], img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    h, w = y1 - y0, x1 - x0
    dy = int(rng.integers(0, pos.shape[0] - h + 1))
    dx = int(rng.integers(0, pos.shape[1] - w + 1))
    target = img[y0:y1, x0:x1]
    out = cv2.add(target, pos[dy:dy + h, dx:dx + w])
    cv2.subtract(out, neg[dy:dy + h, dx:dx + w], dst=out)
    target[:] = out

@lru_cache(maxsize=32)  # about 1 MB each
def _card(payload: bytes, medium: str, dark_mode: bool = False) -> Image:
    """The code on its medium, front-on, BGR (cached per payload and medium).

    ``dark_mode``: a phone app in dark mode draws light modules on a dark screen.
    """
    import cv2
    import segno

    qr = segno.make_qr(payload, error="q", boost_error=False)
    matrix = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    n = matrix.shape[0]
    full = np.zeros((n + 2 * _QUIET, n + 2 * _QUIET), np.uint8)
    full[_QUIET:_QUIET + n, _QUIET:_QUIET + n] = matrix
    modules = cv2.resize(full, None, fx=_MODULE_PX, fy=_MODULE_PX,
                         interpolation=cv2.INTER_NEAREST)
    side = modules.shape[0]
    if medium == "phone":
        dark, light = np.array([25, 20, 20]), np.array([250, 245, 238])  # cool-white screen
        if dark_mode:
            dark, light = np.array([235, 232, 228]), np.array([28, 24, 24])
        code = np.where(modules[..., None] == 1, dark, light).astype(np.uint8)
        bezel = int(side * 0.08)
        card = np.full((int(side * 1.55), side + 2 * bezel, 3), 30, np.uint8)  # phone body
        top = int(side * 0.25)
        card[bezel:card.shape[0] - bezel, bezel:bezel + side] = light  # screen
        card[top:top + side, bezel:bezel + side] = code
        return card
    ink, paper = np.array([45, 40, 40]), np.array([228, 232, 236])
    code = np.where(modules[..., None] == 1, ink, paper).astype(np.uint8)
    margin = int(side * 0.12)
    card = np.full((side + 2 * margin, side + 2 * margin, 3), paper, np.uint8)
    card[margin:margin + side, margin:margin + side] = code
    # Paper is lit unevenly: a gentle diagonal shading.
    ramp = np.linspace(0.85, 1.0, card.shape[1], dtype=np.float32)[None, :, None]
    return (card.astype(np.float32) * ramp).astype(np.uint8)


@lru_cache(maxsize=4)  # about 30 MB per seed and 1280x720 size
def _backgrounds(seed: int, size: tuple[int, int]) -> tuple[tuple[Image, ...], ...]:
    """A few gate-lane backdrops (wall, floor, silhouettes, clutter), each in three
    variants of sensor noise so frames differ without per-frame full-frame work."""
    import cv2

    w, h = size
    out = []
    for b in range(4):
        rng = np.random.default_rng((seed, 10_000 + b))
        top = np.array(rng.integers(90, 200, size=3), np.float32)
        bottom = np.array(rng.integers(40, 140, size=3), np.float32)
        ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = (top * (1 - ramp) + bottom * ramp).repeat(w, axis=1).astype(np.uint8)
        for _ in range(int(rng.integers(6, 14))):  # clutter: signs, doors, bags
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            rw, rh = int(rng.integers(w // 20, w // 4)), int(rng.integers(h // 20, h // 3))
            color = tuple(int(c) for c in rng.integers(0, 256, size=3))
            cv2.rectangle(img, (x, y), (x + rw, y + rh), color, -1)
        for _ in range(int(rng.integers(1, 3))):  # people: a head and shoulders
            cx = int(rng.integers(w // 6, 5 * w // 6))
            color = tuple(int(c) for c in rng.integers(20, 120, size=3))
            cv2.ellipse(img, (cx, h), (w // 7, h // 2), 0, 180, 360, color, -1)
            cv2.circle(img, (cx, h // 2 - h // 12), h // 9, (90, 120, 170), -1)
        # Printed text on a sign: fine high-contrast detail, like real scenes have.
        for _ in range(3):
            x, y = int(rng.integers(0, w - 200)), int(rng.integers(20, h - 10))
            cv2.putText(img, "GATE 7 EXIT", (x, y), cv2.FONT_HERSHEY_SIMPLEX,
                        float(rng.uniform(0.5, 1.2)), (15, 15, 15), 2)
        clean = np.asarray(cv2.GaussianBlur(img, (0, 0), 0.8), dtype=np.uint8)
        variants = []
        for _ in range(3):
            v = clean.copy()
            _add_noise(v, _noise_fields(size, _SENSOR_SIGMA), rng)
            variants.append(v)
        out.append(tuple(variants))
    return tuple(out)


@lru_cache(maxsize=8)
def _noise_fields(size: tuple[int, int], sigma: float) -> tuple[Image, Image]:
    """Positive and negative halves of a Gaussian noise field, a bit larger than the
    frame so that random offsets vary it from frame to frame (cached per size and
    sigma; the offsets come from the seeded generator, so frames stay replayable)."""
    w, h = size
    rng = np.random.default_rng((20_000, int(sigma * 100)))
    noise = rng.normal(0.0, sigma, size=(h + 16, w + 16, 3)).astype(np.float32)
    pos = np.clip(noise, 0, 255).astype(np.uint8)
    neg = np.clip(-noise, 0, 255).astype(np.uint8)
    return pos, neg


def _moire(card: Image, rng: np.random.Generator, strength: float = 0.3) -> None:
    """Multiply a beating grating over the card: screen pixels against camera pixels."""
    h, w = card.shape[:2]
    period = float(rng.uniform(3.0, 6.0))
    theta = float(rng.uniform(0, math.pi))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (xx * math.cos(theta) + yy * math.sin(theta)) * (2 * math.pi / period)
    beat = 0.5 + 0.5 * np.cos(phase) * np.cos(phase * 0.07)
    factor = (1.0 - strength * beat)[..., None]
    card[:] = (card.astype(np.float32) * factor).astype(np.uint8)


def _glare(roi: Image, corners: npt.NDArray[np.float32], rng: np.random.Generator) -> None:
    """A bright, soft reflection over part of the code."""
    import cv2

    h, w = roi.shape[:2]
    centre = corners.mean(axis=0) + rng.uniform(-0.3, 0.3, size=2) * np.ptp(corners, axis=0)
    axes = np.ptp(corners, axis=0) * rng.uniform(0.15, 0.3, size=2)
    strength = float(rng.uniform(0.6, 0.9))
    # Drawn and blurred at a quarter of the size: a soft highlight has no fine detail.
    q = 4
    small = np.zeros((h // q + 1, w // q + 1), np.uint8)
    cv2.ellipse(small, (int(centre[0] / q), int(centre[1] / q)),
                (int(axes[0] / q) + 1, int(axes[1] / q) + 1), float(rng.uniform(0, 180)),
                0, 360, int(255 * strength), -1)
    small = np.asarray(cv2.GaussianBlur(small, (0, 0), max(float(axes.min()) / (2 * q), 0.5)),
                       dtype=np.uint8)
    # Only the glossy surface reflects: clip the glow to the card's outline.
    outline = np.zeros_like(small)
    cv2.fillConvexPoly(outline, np.round(corners / q).astype(np.int32), 255)
    small = cv2.min(small, outline)
    mask = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    roi[:] = cv2.add(roi, cv2.merge([mask, mask, mask]))


def _thumb(roi: Image, corners: npt.NDArray[np.float32], rng: np.random.Generator) -> None:
    """A thumb entering from one edge, covering part of the code."""
    import cv2

    side = int(rng.integers(4))
    a, b = corners[side], corners[(side + 1) % 4]
    centre = corners.mean(axis=0)
    t = float(rng.uniform(0.25, 0.75))
    edge = a + (b - a) * t
    span = float(np.linalg.norm(b - a))
    inward = centre - edge
    inward /= max(float(np.linalg.norm(inward)), 1e-6)
    reach = float(rng.uniform(0.08, 0.18)) * span
    tip = edge + inward * reach
    tail = edge - inward * span * 0.4
    width = int(span * float(rng.uniform(0.12, 0.18)))
    skin = tuple(int(c) for c in rng.integers([90, 120, 170], [130, 160, 220]))
    cv2.line(roi, (int(tail[0]), int(tail[1])), (int(tip[0]), int(tip[1])), skin, width * 2)
    cv2.circle(roi, (int(tip[0]), int(tip[1])), width, skin, -1)


