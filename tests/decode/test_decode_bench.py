"""``gatepass bench decode`` on a tiny generated corpus: shape of the JSON and its counting."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from decode_helpers import draw_qr

from gatepass.bench.decode import corpus_rates, goals, scene_rates
from gatepass.cli import main
from hardware.scene import IMPAIRMENTS


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    import segno

    root = tmp_path / "qr-photos"
    (root / "falsepositives-1").mkdir(parents=True)
    cv2.imwrite(str(root / "falsepositives-1" / "wall.png"), np.full((200, 300), 120, np.uint8))
    (root / "falsepositives-1" / "broken.webp").write_bytes(b"RIFF")
    plain = root / "qrcode-1"
    plain.mkdir()
    for i, text in enumerate(["GP1:ONE", "GP1:TWO", "日本語のテキスト"]):
        raw = text.encode("shift_jis" if i == 2 else "utf-8")
        cv2.imwrite(str(plain / f"{i}.png"), draw_qr(raw))
        (plain / f"{i}.txt").write_text(text, encoding="utf-8")
    cv2.imwrite(str(plain / "3.png"), np.full((100, 100), 255, np.uint8))  # unreadable on purpose
    (plain / "3.txt").write_text("GP1:MISSING")
    seq = root / "qrcode-7"
    seq.mkdir()
    message = "structured append: " + "one message in four symbols, " * 6
    for j, qr in enumerate(segno.make_sequence(message, symbol_count=4)):
        cv2.imwrite(str(seq / f"01-0{j + 1}.png"), draw_qr(None, qr=qr))
    (seq / "01.txt").write_text(message)
    return root


def test_corpus_counting(tiny_corpus: Path) -> None:
    rates = corpus_rates(tiny_corpus, ["zxingcpp", "default"])
    for name in ("zxingcpp", "default"):
        r = rates[name]
        assert r["folders"]["qrcode-1"] == {"correct": 3, "total": 4}
        assert r["folders"]["qrcode-7"] == {"correct": 1, "total": 1}
        assert r["false_detections"] == 0 and r["false_positive_images"] == 2
        assert r["overall"] == {"correct": 4, "total": 5, "rate": 0.8}
    assert any("broken.webp" in u for u in rates["unreadable_files"])
    result = {"corpus": {"decoders": rates}}
    assert goals(result)["default_ge_best_single_every_folder"] is True
    assert goals(result)["default_overall_ge_98pct"] is False


def test_scene_rates_shape() -> None:
    out = scene_rates([b"GP1:" + b"A" * 200], presentations=1, seed=4, names=("zxingcpp",))
    per = out["zxingcpp"]
    n = len(IMPAIRMENTS)
    assert per["all"]["total"] == n and 0 <= per["all"]["read"] <= n
    assert per["clean"]["read"] == 1  # a clean presentation must be read


def test_command_prints_one_json_object(tiny_corpus: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "decode", "--json", "--corpus", str(tiny_corpus), "--skip",
               "frames,scene", "--decoders", "zxingcpp,default"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["corpus"]["decoders"]) == {"zxingcpp", "default", "unreadable_files"}
    assert data["goals"]["zero_false_detections"] is True


def test_missing_corpus_is_a_usage_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "decode", "--corpus", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
