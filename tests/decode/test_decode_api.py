"""Decoders on synthetic frames: exact bytes, charsets, several codes, bad frames."""

from __future__ import annotations

import numpy as np
import pytest
from decode_helpers import draw_qr, paste, require_decoder

from gate_agent.decode import (
    BACKENDS,
    DECODERS,
    CascadeDecoder,
    Code,
    make_decoder,
    text_from_bytes,
)
from hardware.errors import HardwareError, UnusableImage


def frame_with(*codes: np.ndarray, size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    w, h = size
    canvas = np.full((h, w), 200, np.uint8)
    x = 60
    for img in codes:
        paste(canvas, img, x, (h - img.shape[0]) // 2)
        x += img.shape[1] + 60
    return canvas


@pytest.mark.parametrize("name", DECODERS)
def test_every_decoder_reads_exact_permit_bytes(name: str, permit_text: str) -> None:
    require_decoder(name)
    frame = frame_with(draw_qr(permit_text, error="q", scale=5))
    codes = make_decoder(name).decode(frame)
    assert [c.data for c in codes] == [permit_text.encode()]
    assert codes[0].text == permit_text
    assert codes[0].backend == (name if name != "default" else "zxingcpp")
    assert len(codes[0].corners) == 4


@pytest.mark.parametrize("name", ["default", "zxingcpp", "pyzbar"])
def test_binary_payload_comes_out_byte_for_byte(name: str) -> None:
    require_decoder(name)
    payload = bytes(range(256))[::-1] + b"\x00\xff\x80"
    codes = make_decoder(name).decode(frame_with(draw_qr(payload, scale=4)))
    assert [c.data for c in codes] == [payload]


@pytest.mark.parametrize("name", ["default", "zxingcpp", "pyzbar"])
def test_shift_jis_text_is_decoded_by_its_charset(name: str) -> None:
    require_decoder(name)
    text = "点茗 ゲート7 入場"
    qr = draw_qr(text.encode("shift_jis"), scale=6)
    codes = make_decoder(name).decode(frame_with(qr))
    assert len(codes) == 1
    assert codes[0].data == text.encode("shift_jis")
    assert codes[0].text == text


def test_eci_utf8_text() -> None:
    text = "تصريح العمرة ١٤٤٧"
    codes = make_decoder().decode(frame_with(draw_qr(text, encoding="utf-8", eci=True)))
    assert [c.text for c in codes] == [text]
    assert codes[0].data == text.encode("utf-8")


@pytest.mark.parametrize("name", ["default", "zxingcpp", "pyzbar"])
def test_several_codes_in_one_frame_each_reported(name: str) -> None:
    require_decoder(name)
    payloads = [f"GP1:PERSON-{i}-" + "X" * 40 for i in range(3)]
    frame = frame_with(*(draw_qr(p, scale=5) for p in payloads))
    codes = make_decoder(name).decode(frame)
    assert sorted(c.text for c in codes) == sorted(payloads)
    xs = sorted(c.center[0] for c in codes if c.center)
    assert len(xs) == 3 and xs[0] < xs[1] < xs[2]


def test_one_d_barcodes_are_not_reported() -> None:
    import zxingcpp

    symbol = zxingcpp.create_barcode("GP1-123456", zxingcpp.BarcodeFormat.Code128)
    bars = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=3), dtype=np.uint8)
    frame = frame_with(bars)
    assert [r.text for r in zxingcpp.read_barcodes(frame)] == ["GP1-123456"]  # it is readable
    for name in ("default", "zxingcpp", "pyzbar"):
        require_decoder(name)
        assert make_decoder(name).decode(frame) == []


def test_default_finds_light_on_dark_codes_within_a_few_frames(permit_text: str) -> None:
    dec = make_decoder("default")
    frame = 255 - frame_with(draw_qr(permit_text, scale=5))
    found = [bool(dec.decode(frame)) for _ in range(8)]
    assert any(found[:3])  # an inverting turn comes within three frames
    assert all(found[found.index(True):])  # then the last hit's region keeps it in sight


def test_default_reads_inverted_still_image_at_once() -> None:
    img = draw_qr("GP1:INVERTED", scale=8, invert=True)
    assert [c.text for c in make_decoder().decode(img)] == ["GP1:INVERTED"]


def test_empty_frames_get_one_pass_and_memory_retries_stop(
    monkeypatch: pytest.MonkeyPatch, permit_text: str
) -> None:
    dec = CascadeDecoder(roi_memory=3)
    retries: list[bool] = []
    real = dec._retry

    def spy(gray, roi, full):  # type: ignore[no-untyped-def]
        retries.append(full)
        return real(gray, roi, full)

    monkeypatch.setattr(dec, "_retry", spy)
    empty = np.full((720, 1280), 128, np.uint8)
    assert dec.decode(empty) == []
    assert retries == []  # nothing likely: no retry at all
    assert dec.decode(frame_with(draw_qr(permit_text, scale=5)))
    for _ in range(6):
        assert dec.decode(empty) == []
    # The last hit's region is retried cheaply for roi_memory frames, then forgotten.
    assert retries == [False, False, False]


@pytest.mark.parametrize("memory", [True, False])
def test_retries_read_a_blurred_frame_zxing_alone_misses(permit_text: str, memory: bool) -> None:
    import cv2

    dec = CascadeDecoder()
    sharp = frame_with(draw_qr(permit_text, scale=4))
    if memory:
        assert dec.decode(sharp)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    assert make_decoder("zxingcpp").decode(blurred) == []  # precondition: a hard frame
    codes = dec.decode(blurred)
    assert [c.data for c in codes] == [permit_text.encode()]
    assert dec.last_step.startswith("retry:")


@pytest.mark.parametrize("sigma", [14, 25])
def test_noisy_frames_take_the_cheap_path_and_still_read(permit_text: str, sigma: int) -> None:
    rng = np.random.default_rng(sigma)
    canvas = np.full((720, 1280), 150, np.uint8)
    qr = np.where(draw_qr(permit_text, scale=2) > 0, 220, 40).astype(np.uint8)
    paste(canvas, qr, 300, 100)
    frame = np.clip(canvas + rng.normal(0, sigma, canvas.shape), 0, 255).astype(np.uint8)
    dec = CascadeDecoder()
    assert dec._noisy(frame)
    reads = [[c.data for c in dec.decode(frame)] for _ in range(3)]
    assert [permit_text.encode()] in reads


def test_a_degraded_second_code_beside_a_read_one_is_retried(permit_text: str) -> None:
    import cv2

    frame = np.full((720, 1280), 200, np.uint8)
    paste(frame, draw_qr(permit_text, scale=4), 60, 100)
    frame = cv2.GaussianBlur(frame, (0, 0), 2.0)
    paste(frame, draw_qr("GP1:SECOND-PERSON", scale=5), 800, 200)
    plain = [c.text for c in make_decoder("zxingcpp").decode(frame)]
    assert plain == ["GP1:SECOND-PERSON"]  # precondition: one library alone misses one
    assert sorted(c.text for c in make_decoder().decode(frame)) == sorted(
        ["GP1:SECOND-PERSON", permit_text])


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((0, 0), np.uint8),
        np.zeros((0, 640, 3), np.uint8),
        np.zeros((480, 0), np.uint8),
        np.zeros((1, 1), np.uint8),
        np.zeros((5, 5, 3), np.uint8),
    ],
)
@pytest.mark.parametrize("name", DECODERS)
def test_empty_and_tiny_frames_give_no_codes(name: str, frame: np.ndarray) -> None:
    require_decoder(name)
    assert make_decoder(name).decode(frame) == []


@pytest.mark.parametrize("name", ["default", "zxingcpp", "pyzbar"])
@pytest.mark.parametrize(
    "convert",
    [
        lambda g: g.astype(np.float32) / 255.0,
        lambda g: g.astype(np.float64),
        lambda g: g.astype(np.uint16) * 257,
        lambda g: g > 127,
        lambda g: np.asfortranarray(g),
        lambda g: np.stack([g, g, g, np.full_like(g, 255)], axis=2),
        lambda g: g[:, :, None],
        lambda g: g[::-1, ::-1],
    ],
    ids=["float01", "float255", "uint16", "bool", "fortran", "bgra", "hw1", "flipped-view"],
)
def test_odd_dtypes_and_layouts_still_decode(name: str, convert, permit_text: str) -> None:  # type: ignore[no-untyped-def]
    require_decoder(name)
    gray = frame_with(draw_qr(permit_text, scale=5), size=(900, 600))
    codes = make_decoder(name).decode(convert(gray))
    assert [c.data for c in codes] == [permit_text.encode()]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((4, 4, 4, 4), np.uint8),
        np.zeros(100, np.uint8),
        np.full((50, 50), np.nan),
        np.full((50, 50), "x"),
        np.empty((50, 50), dtype=object),
        "not an array",
        None,
    ],
    ids=["2ch", "4d", "1d", "nan", "str", "object", "str-arg", "none"],
)
@pytest.mark.parametrize("name", DECODERS)
def test_unusable_frames_raise_one_clear_error(name: str, bad: object) -> None:
    require_decoder(name)
    with pytest.raises(UnusableImage) as info:
        make_decoder(name).decode(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, HardwareError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_unknown_decoder_name() -> None:
    with pytest.raises(ValueError, match="unknown decoder 'zbar'"):
        make_decoder("zbar")
    assert set(BACKENDS) < set(DECODERS)


def test_text_from_bytes_charsets() -> None:
    assert text_from_bytes("Ünïcödé".encode()) == "Ünïcödé"
    assert text_from_bytes("日本".encode("shift_jis")) == "日本"
    assert text_from_bytes(b"caf\xe9") == "café"  # ISO 8859-1, the QR default


def test_code_equality_ignores_position() -> None:
    a = Code(b"x", "x", "zxingcpp", ((0, 0), (1, 0), (1, 1), (0, 1)))
    b = Code(b"x", "x", "zxingcpp", ((5, 5), (6, 5), (6, 6), (5, 6)))
    assert a == b and a.center == (0.5, 0.5)
