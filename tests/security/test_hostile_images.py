"""Hostile image files given to ``verify --image``, ``decode`` and ``agent scan`` (#9 item 7).

Each command runs as a real subprocess of a small launcher, which reports that child's
own peak memory and CPU time (``os.wait4``). A decompression bomb (a real 389 KB PNG of
20000x20000 zero pixels), a FIFO, a device, a directory, a 40,000-pixel-wide image, an
oversized file and truncated or corrupt PNG/JPEG files must each end in exactly one
``gatepass: error: ...`` line and a non-zero exit, never a hang, a traceback or
"unexpected error".
"""

from __future__ import annotations

import json
import os
import re
import resource
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

GATEPASS = [sys.executable, "-m", "gatepass"]
AT = "2026-05-28T21:30:00Z"
#: Issue #9: a bomb is refused within 5 s and 512 MB of peak memory.
MAX_RSS_BYTES = 512 * 1024 * 1024
MAX_CPU_S = 5.0
#: Only a guard against a hang; the refusal itself takes milliseconds.
WALL_DEADLINE_S = 60.0

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ INFO (gate_agent|gatepass)[.\w]*: ")

pytestmark = pytest.mark.timeout(300)


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    max_rss_bytes: int
    cpu_s: float

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("gatepass: error:")]


#: Runs one command and reports its own rusage. The kernel carries a process's peak RSS
#: across fork and exec, so a child of the (large, long-lived) pytest process would
#: report pytest's peak; a child of this small launcher reports its own.
LAUNCHER = r"""
import json, os, subprocess, sys, time
argv, out, err, cwd, deadline = json.loads(sys.argv[1])
with open(out, "wb") as o, open(err, "wb") as e:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e, cwd=cwd)
end = time.monotonic() + deadline
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if time.monotonic() > end:
        proc.kill()
        os.waitpid(proc.pid, 0)
        print(json.dumps({"timed_out": True}))
        sys.exit(0)
    time.sleep(0.02)
print(json.dumps({"timed_out": False, "rc": os.waitstatus_to_exitcode(status),
                  "maxrss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def run_child(argv: list[str], tmp: Path) -> Run:
    """Run ``argv`` to completion (or fail after the deadline) and measure it alone."""
    out_path, err_path = tmp / "child.out", tmp / "child.err"
    spec = json.dumps([argv, str(out_path), str(err_path), str(tmp), WALL_DEADLINE_S])
    launcher = subprocess.run([sys.executable, "-c", LAUNCHER, spec], capture_output=True,
                              text=True, timeout=WALL_DEADLINE_S + 60)
    assert launcher.returncode == 0, launcher.stderr
    report = json.loads(launcher.stdout)
    if report["timed_out"]:
        pytest.fail(f"{argv[3:]} still running after {WALL_DEADLINE_S:.0f} s: it hangs")
    return Run(rc=report["rc"], stdout=out_path.read_text(), stderr=err_path.read_text(),
               max_rss_bytes=report["maxrss_kib"] * 1024,  # Linux reports KiB
               cpu_s=report["cpu_s"])


# ------------------------------------------------------------------ hostile files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, idat: bytes) -> bytes:
    """A grayscale 8-bit PNG with the given IDAT (zlib stream of filtered rows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid 20000x20000 PNG: every row filter byte 0 and pixels 0, deflated to ~389 KB."""
    z = zlib.compressobj(9)
    row = bytes(20000 + 1)
    idat = b"".join([z.compress(row) for _ in range(20000)] + [z.flush()])
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(png_bytes(20000, 20000, idat))
    assert path.stat().st_size < 500_000
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys") / "k"
    proc = subprocess.run([*GATEPASS, "keys", "new", str(out), "--sites", "makkah-haram"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def gate_toml(tmp_path_factory: pytest.TempPathFactory, keys: Path) -> Path:
    path = tmp_path_factory.mktemp("gate") / "gate.toml"
    path.write_text(
        'gate = "g1"\nsite = "makkah-haram"\nmode = "entrance"\nledger = "ledger.sqlite"\n'
        '[permits]\ntypes = ["umrah"]\ngate_groups = ["north"]\n'
        f'[trust]\nbundle = "{keys / "trust.json"}"\n[clock]\nsystem = "distrust"\n'
        '[console]\nenabled = false\n'
    )
    return path


Command = Callable[[Path], list[str]]


@pytest.fixture(params=["verify", "decode", "agent-scan"])
def command(request: pytest.FixtureRequest, keys: Path, gate_toml: Path) -> Command:
    """Build the argv of one of the three commands that read images."""
    which = request.param

    def argv(image: Path) -> list[str]:
        if which == "verify":
            return [*GATEPASS, "verify", "--trust", str(keys / "trust.json"), "--at", AT,
                    "--image", str(image)]
        if which == "decode":
            return [*GATEPASS, "decode", str(image)]
        return [*GATEPASS, "agent", "scan", "--config", str(gate_toml), "--at", AT,
                str(image)]

    return argv


def assert_one_line_refusal(run: Run, *needles: str) -> None:
    assert run.rc != 0, run.stdout
    assert len(run.error_lines) == 1, run.stderr
    line = run.error_lines[0]
    assert "unexpected" not in line and "Traceback" not in run.stderr, run.stderr
    for needle in needles:
        assert needle in line, line


# ------------------------------------------------------------------ tests


def test_png_bomb_is_refused_fast_and_small(command: Command, bomb: Path,
                                            tmp_path: Path) -> None:
    run = run_child(command(bomb), tmp_path)
    assert_one_line_refusal(run, "bomb.png", "image too large", "400,000,000 pixels",
                            "40,000,000 pixels")
    assert run.max_rss_bytes < MAX_RSS_BYTES, f"peak RSS {run.max_rss_bytes / 2**20:.0f} MiB"
    assert run.cpu_s < MAX_CPU_S, f"{run.cpu_s:.2f} s of CPU"


def test_png_bomb_refused_even_under_a_512_mb_address_space(bomb: Path, tmp_path: Path) -> None:
    """Belt and braces: the decode child cannot map more than 512 MiB at all."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MAX_RSS_BYTES * 2, MAX_RSS_BYTES * 2))

    # RLIMIT_AS counts reserved virtual memory (thread stacks, arenas), so the hard
    # cap is 1 GiB of address space; resident memory is checked against 512 MiB.
    out = subprocess.run([*GATEPASS, "decode", "--json", str(bomb)], capture_output=True,
                         text=True, timeout=WALL_DEADLINE_S, preexec_fn=limit, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "image too large" in json.loads(out.stdout)["error"]


def test_fifo_is_refused_at_once(command: Command, tmp_path: Path) -> None:
    fifo = tmp_path / "permit.png"
    os.mkfifo(fifo)
    run = run_child(command(fifo), tmp_path)  # nobody ever writes: reading would hang
    assert_one_line_refusal(run, "permit.png", "not a regular file (a FIFO)")


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"),
                                            (".", "a directory")])
def test_devices_and_directories_are_refused(command: Command, tmp_path: Path, path: str,
                                             kind: str) -> None:
    run = run_child(command(Path(path)), tmp_path)
    assert_one_line_refusal(run, f"not a regular file ({kind})")


def test_40000_pixel_wide_image_gets_the_limit_error(command: Command, tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    wide.write_bytes(png_bytes(40_000, 8, zlib.compress(bytes((40_000 + 1) * 8))))
    run = run_child(command(wide), tmp_path)
    assert_one_line_refusal(run, "wide.png", "image too large: 40000x8 pixels",
                            "16384 pixels a side")


def test_oversized_file_is_refused_unread(command: Command, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(33 * 1024 * 1024)  # sparse: nothing is actually written
    run = run_child(command(big), tmp_path)
    assert_one_line_refusal(run, "big.png", "above the limit of 33554432 bytes")


def _photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)


def _encoded(ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, _photo())
    assert ok
    return buf.tobytes()


def _flip_middle(data: bytes) -> bytes:
    bad = bytearray(data)
    mid = len(bad) // 2
    bad[mid:mid + 64] = bytes(64)
    return bytes(bad)


@pytest.mark.parametrize(("name", "make"), [
    ("cut.png", lambda: _encoded(".png")[: len(_encoded(".png")) // 2]),
    ("crc.png", lambda: _flip_middle(_encoded(".png"))),
    ("cut.jpg", lambda: _encoded(".jpg")[: len(_encoded(".jpg")) // 2]),
    ("header.jpg", lambda: _encoded(".jpg")[:40]),
    ("noise.jpg", lambda: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8),
    ("text.png", lambda: b"this is not an image\n"),
    ("empty.png", lambda: b""),
])
def test_truncated_or_corrupt_files_get_one_clear_line(
    command: Command, tmp_path: Path, name: str, make: Callable[[], bytes]
) -> None:
    path = tmp_path / name
    path.write_bytes(make())
    run = run_child(command(path), tmp_path)
    assert_one_line_refusal(run, name)
    assert "not a readable image" in run.error_lines[0] or "empty file" in run.error_lines[0]
    # Nothing else on stderr but the agent's own INFO log lines: no libpng, libjpeg or
    # OpenCV chatter beside our line.
    others = [ln for ln in run.stderr.splitlines()
              if ln.strip() and not ln.startswith("gatepass:") and not LOG_LINE.match(ln)]
    assert not others, run.stderr


CMYK_JPEG = r"""
import sys
import numpy as np
from PIL import Image
pixels = np.zeros((6324, 6324, 4), np.uint8)
pixels[:, :, 0] = 200
pixels[:3000, :, 1] = 90
Image.fromarray(pixels, "CMYK").save(sys.argv[1], "JPEG", progressive=True, subsampling=0,
                                     quality=50)
"""


def test_worst_case_within_the_limits_stays_under_512_mb(tmp_path: Path) -> None:
    """The limits must bound memory for what they let through, not only refuse bombs.
    The costliest accepted image measured: 40 MP (6324x6324) progressive 4:4:4 CMYK
    JPEG, whose decoder keeps every DCT coefficient (8 bytes a pixel) until the last
    scan; about 415 MiB peak for the whole command."""
    path = tmp_path / "cmyk.jpg"
    make = subprocess.run([sys.executable, "-c", CMYK_JPEG, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert make.returncode == 0, make.stderr
    run = run_child([*GATEPASS, "decode", "--json", str(path)], tmp_path)
    assert run.rc == 0, run.stderr
    assert json.loads(run.stdout)["codes"] == []
    assert run.max_rss_bytes < MAX_RSS_BYTES, f"peak RSS {run.max_rss_bytes / 2**20:.0f} MiB"
