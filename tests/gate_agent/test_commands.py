"""``gatepass agent check-config`` and ``gatepass agent scan`` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import segno
from agent_helpers import SLOT
from conftest import SITE, slot

from gatepass.cli import main
from verifier.sandbox import Sandbox

AT = "2027-01-15T08:01:00Z"  # SLOT (1_800_000_000) is 2027-01-15T08:00:00Z


def write_config(tmp: Path, bundle: Path, extra: str = "") -> Path:
    p = tmp / "gate.toml"
    p.write_text(
        f'gate = "g1"\nsite = "{SITE}"\nmode = "entrance"\nledger = "ledger.sqlite"\n'
        f'[permits]\ntypes = ["umrah"]\ngate_groups = ["north"]\n'
        f'[trust]\nbundle = "{bundle}"\n[clock]\nsystem = "distrust"\n{extra}'
    )
    return p


def qr_png(tmp: Path, name: str, text: str) -> Path:
    path = tmp / f"{name}.png"
    segno.make(text, error="q", micro=False).save(str(path), scale=4, border=4)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, object]]]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines() if line.strip()]


def test_check_config(tmp_path: Path, bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_config(tmp_path, bundle)
    assert main(["agent", "check-config", str(good)]) == 0
    assert "gate g1 at site haram" in capsys.readouterr().out
    bad = write_config(tmp_path, bundle, '[capacity]\nper_slot = "lots"\ncolour = "red"\n')
    assert main(["agent", "check-config", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "capacity.per_slot" in out and "capacity.colour: unknown key" in out
    missing = write_config(tmp_path, tmp_path / "no-such-bundle.json")
    assert main(["agent", "check-config", str(missing)]) == 1
    assert "cannot read trust file" in capsys.readouterr().out


def test_scan_admits_then_already_used_with_ledger(
    tmp_path: Path, bundle: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, bundle)
    raw = sandbox.issue(site=SITE, slot=slot(), party=2)
    img = qr_png(tmp_path, "permit", raw)
    ledger = tmp_path / "scan-ledger.sqlite"
    argv = ["agent", "scan", "--config", str(cfg), "--at", AT, "--ledger", str(ledger), str(img)]
    code, rows = run(argv, capsys)
    assert code == 0 and len(rows) == 1
    assert (rows[0]["verdict"], rows[0]["reason"], rows[0]["admitted"]) == ("admit", None, 2)
    code, rows = run(argv, capsys)
    assert (rows[0]["verdict"], rows[0]["reason"]) == ("deny", "already_used")


def test_scan_without_ledger_keeps_nothing_and_reports_each_image(
    tmp_path: Path, bundle: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, bundle)
    good = qr_png(tmp_path, "good", sandbox.issue(site=SITE, slot=slot()))
    late = qr_png(tmp_path, "late", sandbox.issue(site=SITE, slot=(SLOT - 9000, SLOT - 7200)))
    blank = tmp_path / "blank.png"
    segno.make("not a permit").save(str(tmp_path / "junk.png"), scale=4)
    blank.write_bytes(b"not an image at all")
    argv = ["agent", "scan", "--config", str(cfg), "--at", AT]
    for _ in range(2):
        code, rows = run([*argv, str(good)], capsys)
        assert rows[0]["verdict"] == "admit"
    code, rows = run([*argv, str(late), str(tmp_path / "junk.png"), str(blank)], capsys)
    assert code == 1  # one image was unreadable, but every image got its line
    assert [r["reason"] for r in rows] == ["too_late", "malformed", "no_code"]
    assert rows[2]["error"]


def test_scan_on_untrusted_clock(
    tmp_path: Path, bundle: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, bundle)  # clock.system = distrust and no --at
    img = qr_png(tmp_path, "permit", sandbox.issue(site=SITE, slot=slot()))
    _code, rows = run(["agent", "scan", "--config", str(cfg), str(img)], capsys)
    assert rows[0]["verdict"] == "untrusted_time"


def test_scan_bad_at(tmp_path: Path, bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, bundle)
    assert main(["agent", "scan", "--config", str(cfg), "--at", "yesterday", "x.png"]) == 2
    assert "ISO 8601" in capsys.readouterr().err
