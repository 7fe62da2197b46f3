"""The verifier's commands end to end: gatepass keys / issue / verify (subprocesses)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

GATEPASS = [sys.executable, "-m", "gatepass"]
SLOT_START = "2026-05-28T21:26:40Z"
INSIDE = "2026-05-28T21:30:00Z"


def gp(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEPASS, *args], input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd
    )


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys") / "k"
    proc = gp(
        "keys",
        "new",
        str(out),
        "--sites",
        "makkah-haram,madinah",
        "--alg",
        "ES256",
        "--alg",
        "EdDSA",
        "--valid-from",
        "2026-01-01T00:00:00Z",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary["keys"]) == {"es256", "eddsa", "central", "revoker"}
    return out


def _issue(keydir: Path, *extra: str) -> list[dict[str, object]]:
    proc = gp(
        "issue",
        "--keys",
        str(keydir),
        "--slot-start",
        SLOT_START,
        "--at",
        "2026-05-20T00:00:00Z",
        *extra,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_keys_new_files_and_modes(keydir: Path) -> None:
    names = {p.name for p in keydir.iterdir()}
    assert {
        "root.pem",
        "es256.pem",
        "eddsa.pem",
        "central.pem",
        "revoker.pem",
        "keys.json",
        "trust.json",
    } <= names
    for pem in keydir.glob("*.pem"):
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600, pem
        assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    trust = json.loads((keydir / "trust.json").read_text())
    assert "PRIVATE" not in json.dumps(trust)
    assert trust["format"] == "gatepass-trust-bundle/1"
    # never overwrites
    again = gp("keys", "new", str(keydir))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_issue_then_verify_args_and_stdin(keydir: Path) -> None:
    permits = _issue(
        keydir,
        "--site",
        "madinah",
        "--party",
        "4",
        "--gates",
        "north,south",
        "--initials",
        "ak",
        "--doc",
        "P7654321",
        "--count",
        "3",
    )
    assert len(permits) == 3 and len({p["permit_id"] for p in permits}) == 3
    payloads = [str(p["payload"]) for p in permits]
    proc = gp("verify", "--trust", str(keydir / "trust.json"), "--at", INSIDE, *payloads)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["ok"] for line in lines] == [True] * 3
    assert lines[0]["party"] == 4 and lines[0]["gate_groups"] == ["north", "south"]
    assert lines[0]["holder_initials"] == "AK" and lines[0]["holder_doc_digits"] == "4321"
    assert lines[0]["reason"] is None and lines[0]["site"] == "madinah"
    # stdin, mixed with a refused line: exit 1, one JSON object per payload, in order
    stdin = payloads[0] + "\nGP1:NOPE\n\n" + payloads[1] + "\n"
    proc = gp("verify", "--trust", str(keydir / "trust.json"), "--at", INSIDE, "-", stdin=stdin)
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(x["ok"], x["reason"]) for x in lines] == [
        (True, None),
        (False, "bad_encoding"),
        (True, None),
    ]
    # slot window from the command line
    proc = gp(
        "verify",
        "--trust",
        str(keydir / "trust.json"),
        "--at",
        "2026-05-28T20:00:00Z",
        "--early",
        "600",
        "--late",
        "0",
        payloads[0],
    )
    assert proc.returncode == 1 and json.loads(proc.stdout)["reason"] == "too_early"


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--trust", "X", "--at", INSIDE],  # nothing to verify
        ["verify", "--trust", "/nonexistent/trust.json", "--at", INSIDE, "GP1:00"],
        ["verify", "--trust", "X", "--at", "tomorrow", "GP1:00"],
        ["verify", "--trust", "X", "--at", INSIDE, "--early", "-5", "GP1:00"],
        ["verify", "--at", INSIDE, "GP1:00"],  # --trust missing (argparse)
        ["issue", "--keys", "/nonexistent", "--slot-start", SLOT_START],
        ["keys", "revoke", "X", "not-hex"],
    ],
)
def test_usage_errors_exit_2(keydir: Path, args: list[str]) -> None:
    args = [
        str(keydir / "trust.json")
        if a == "X" and args[0] == "verify"
        else str(keydir)
        if a == "X"
        else a
        for a in args
    ]
    proc = gp(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1].startswith(("gatepass: error:", "usage:")) or (
        "error:" in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_corrupt_trust_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "trust.json"
    bad.write_text('{"format": "gatepass-trust-bundle/1", "root": 5}')
    proc = gp("verify", "--trust", str(bad), "--at", INSIDE, "GP1:00")
    assert proc.returncode == 2
    assert proc.stderr.startswith("gatepass: error: trust file") and "Traceback" not in proc.stderr


def test_rotate_and_revoke(tmp_path: Path) -> None:
    kd = tmp_path / "k"
    assert (
        gp(
            "keys", "new", str(kd), "--sites", "madinah", "--valid-from", "2026-01-01T00:00:00Z"
        ).returncode
        == 0
    )
    before = _issue(kd, "--site", "madinah")[0]
    rot = gp(
        "keys",
        "rotate",
        str(kd),
        "--name",
        "es256-2026b",
        "--retire",
        "es256",
        "--at",
        "2026-05-01T00:00:00Z",
    )
    assert rot.returncode == 0, rot.stderr
    assert json.loads(rot.stdout)["trust_list_version"] == 2
    after = _issue(kd, "--site", "madinah")[0]  # picks the key valid at issued-at
    forced_old = _issue(kd, "--site", "madinah", "--key", "es256")[0]
    trust = str(kd / "trust.json")
    out = gp(
        "verify",
        "--trust",
        trust,
        "--at",
        INSIDE,
        str(before["payload"]),
        str(after["payload"]),
        str(forced_old["payload"]),
    )
    verdicts = [(x["ok"], x["reason"]) for x in map(json.loads, out.stdout.splitlines())]
    # `before` was issued 2026-05-20 by es256, retired 2026-05-01: refused too
    assert verdicts == [(False, "key_not_valid"), (True, None), (False, "key_not_valid")]
    rev = gp("keys", "revoke", str(kd), str(after["permit_id"]))
    assert rev.returncode == 0, rev.stderr
    assert json.loads(rev.stdout) == {"revocation_version": 1, "revoked": 1}
    out = gp("verify", "--trust", trust, "--at", INSIDE, str(after["payload"]))
    assert out.returncode == 1 and json.loads(out.stdout)["reason"] == "revoked"
    snap = gp("keys", "revoke", str(kd), "--snapshot", "00" * 16)
    assert snap.returncode == 0 and json.loads(snap.stdout)["revoked"] == 2
    out = gp("verify", "--trust", trust, "--at", INSIDE, str(after["payload"]))
    assert json.loads(out.stdout)["reason"] == "revoked"
    show = json.loads(gp("keys", "show", trust).stdout)
    assert show["trust_list_version"] == 2 and show["revocation_version"] == 2
    assert show["revoked"] == 2 and len(show["keys"]) == 4


def test_issue_csv_png_svg_sheet_and_image_verify(keydir: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "holders.csv"
    csv_file.write_text(
        "initials,doc_number,party,gate_groups,ptype\n"
        "AB,X1234567,2,north;east,umrah\n"
        "CD,Y7654321,1,,rawdah\n"
    )
    out = tmp_path / "out"
    proc = gp(
        "issue",
        "--keys",
        str(keydir),
        "--site",
        "makkah-haram",
        "--slot-start",
        SLOT_START,
        "--at",
        "2026-05-20T00:00:00Z",
        "--holders",
        str(csv_file),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"issued": 2, "out": str(out)}
    rows = [json.loads(line) for line in (out / "permits.jsonl").read_text().splitlines()]
    assert [r["ptype"] for r in rows] == ["umrah", "rawdah"]
    assert rows[0]["gate_groups"] == ["north", "east"] and rows[1]["gate_groups"] == ["all"]
    for r in rows:
        assert (out / "qr" / f"{r['ph']}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / "qr" / f"{r['ph']}.svg").read_bytes()
    sheet = (out / "sheet.html").read_text()
    assert sheet.count('class="card"') == 2 and "X1234567" not in sheet
    assert rows[0]["ph"] in sheet and "<svg" in sheet
    images = [str(out / "qr" / f"{r['ph']}.png") for r in rows]
    proc = gp("verify", "--trust", str(keydir / "trust.json"), "--at", INSIDE, "--image", *images)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(x["ok"], x["ph"], x["image"]) for x in lines] == [
        (True, r["ph"], img) for r, img in zip(rows, images, strict=True)
    ]
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np
    import segno  # noqa: F401  (PNG writer below is cv2; segno proves the dependency exists)

    cv2.imwrite(str(blank), np.full((200, 200), 255, np.uint8))
    proc = gp(
        "verify", "--trust", str(keydir / "trust.json"), "--at", INSIDE, "--image", str(blank)
    )
    assert proc.returncode == 1 and json.loads(proc.stdout)["reason"] == "no_code"


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("initials,colour\nAB,red\n", "unknown columns"),
        ("initials,party\nAB,lots\n", "party"),
        ("initials,slot_start\nAB,yesterday\n", "slot_start"),
        ("initials,party\nAB,99\n", "party"),
        ("", "empty"),
        ("initials\nab,extra\n", "more fields"),
    ],
)
def test_issue_bad_csv_is_a_usage_error(
    keydir: Path, tmp_path: Path, csv_text: str, message: str
) -> None:
    f = tmp_path / "h.csv"
    f.write_text(csv_text)
    proc = gp(
        "issue",
        "--keys",
        str(keydir),
        "--site",
        "madinah",
        "--slot-start",
        SLOT_START,
        "--holders",
        str(f),
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_private_keys_never_world_readable_even_with_umask_0(tmp_path: Path) -> None:
    kd = tmp_path / "k"
    proc = subprocess.run(
        ["sh", "-c", f"umask 000 && {sys.executable} -m gatepass keys new {kd}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for pem in kd.glob("*.pem"):
        assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600


def test_stdin_over_long_line_and_binary_garbage(keydir: Path) -> None:
    good = str(_issue(keydir, "--site", "madinah")[0]["payload"])
    stdin = "GP1:" + "0" * 3_000_000 + "\n" + good + "\n" + "GP1:\udcff\n"
    proc = subprocess.run(
        [*GATEPASS, "verify", "--trust", str(keydir / "trust.json"), "--at", INSIDE, "-"],
        input=stdin.encode("utf-8", "surrogateescape"), capture_output=True, timeout=60,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(x["ok"], x["reason"]) for x in lines] == [
        (False, "too_large"), (True, None), (False, "bad_encoding")
    ]
    assert proc.returncode == 1


def test_keys_new_uses_the_product_key_ring_not_the_test_sandbox(tmp_path: Path) -> None:
    """Production keys come from verifier.keyring (fresh random keys); the seeded test
    Sandbox is never even imported by `gatepass keys new`."""
    code = (
        "import sys\n"
        "from gatepass.cli import main\n"
        f"rc = main(['keys', 'new', {str(tmp_path / 'k')!r}])\n"
        "print(rc, 'verifier.sandbox' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()[-1]
    assert out == "0 False"
    first = (tmp_path / "k" / "root.pem").read_bytes()
    subprocess.run([sys.executable, "-m", "gatepass", "keys", "new", str(tmp_path / "k2")],
                   capture_output=True, timeout=60, check=True)
    assert (tmp_path / "k2" / "root.pem").read_bytes() != first
