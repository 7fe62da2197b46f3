"""``gatepass decode FILE... --json``: one object per file, errors as entries."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import pytest
from decode_helpers import draw_qr, require_decoder

from gatepass.cli import main


def write_png(path: Path, payload: bytes | str, **kw: object) -> Path:
    assert cv2.imwrite(str(path), draw_qr(payload, **kw))
    return path


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict]]:
    rc = main(["decode", "--json", *args])
    out = capsys.readouterr().out
    return rc, [json.loads(line) for line in out.splitlines()]


def test_good_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = b"\x00GP1\xff\xfe" + bytes(range(40))
    a = write_png(tmp_path / "a.png", "GP1:HELLO")
    b = write_png(tmp_path / "b.png", binary)
    c = write_png(tmp_path / "c.png", "日本".encode("shift_jis"))
    rc, rows = run_json(capsys, str(a), str(b), str(c))
    assert rc == 0
    assert rows[0] == {"file": str(a), "codes": [
        {"text": "GP1:HELLO", "bytes_b64": base64.b64encode(b"GP1:HELLO").decode()}]}
    assert base64.b64decode(rows[1]["codes"][0]["bytes_b64"]) == binary
    assert rows[2]["codes"][0]["text"] == "日本"
    assert base64.b64decode(rows[2]["codes"][0]["bytes_b64"]) == "日本".encode("shift_jis")


def test_bad_files_are_error_entries_and_the_rest_is_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_png(tmp_path / "good.png", "GP1:OK")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    garbage = tmp_path / "noise.webp"
    garbage.write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(range(256)) * 4)
    missing = tmp_path / "missing.png"
    files = [text, good, empty, truncated, garbage, missing, tmp_path]
    rc, rows = run_json(capsys, *map(str, files))
    assert rc == 1
    assert [r["file"] for r in rows] == [str(f) for f in files]
    assert rows[1]["codes"][0]["text"] == "GP1:OK"
    for row in rows[:1] + rows[2:]:
        assert set(row) == {"file", "error"}, row
        assert row["file"] in row["error"] and "\n" not in row["error"]


def test_image_without_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 400, 3), 90, np.uint8))
    rc, rows = run_json(capsys, str(blank))
    assert rc == 0 and rows == [{"file": str(blank), "codes": []}]


def test_plain_output_and_unknown_decoder(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    a = write_png(tmp_path / "a.png", "GP1:PLAIN")
    assert main(["decode", str(a)]) == 0
    assert capsys.readouterr().out.strip() == f"{a}: GP1:PLAIN"
    assert main(["decode", "--decoder", "nope", str(a)]) == 2
    assert "unknown decoder 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["zxingcpp", "pyzbar", "opencv", "opencv-aruco"])
def test_each_backend_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              name: str) -> None:
    require_decoder(name)
    a = write_png(tmp_path / "a.png", "GP1:BACKEND", scale=8)
    rc, rows = run_json(capsys, "--decoder", name, str(a))
    assert rc == 0 and [c["text"] for c in rows[0]["codes"]] == ["GP1:BACKEND"]
