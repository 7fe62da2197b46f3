#!/usr/bin/env python3
"""Check that gatepass's Python dependencies install as wheels on a Raspberry Pi.

For every requirement in pyproject.toml (the core list and the ``pi`` extra) at its pinned
version, or its minimum where it has one, ask pip for binary wheels only, for Raspberry Pi
OS Bookworm on aarch64 (glibc 2.36) and CPython 3.11, with dependencies resolved, so compiled
transitive dependencies (pydantic-core, cffi, numpy under OpenCV) are checked too:

    pip download --only-binary=:all: --platform manylinux_2_17_aarch64 ... --python-version 3.11

A requirement with no such wheel fails the check, unless EXCEPTIONS below names it with what
to do instead on a Pi (a Debian package); those are printed, not hidden. ``--also-armv7``
repeats the check for 32-bit Pi OS (armv7l) and reports what PyPI lacks there, without
failing on it (32-bit Pi OS takes wheels from piwheels instead; see docs/deploy-pi.md).

    python3 scripts/check-pi-wheels.py [--json] [--also-armv7]

It needs ``packaging`` (every venv made by ``make install`` has it).

Exit 0 when every requirement has an aarch64 wheel or a listed exception, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent

# Requirements that have no wheel on PyPI and come from Debian on the Pi instead. Each entry
# says why and what to install; the check prints them with the result.
EXCEPTIONS = {
    "evdev": "sdist only on PyPI; on Raspberry Pi OS: apt install python3-evdev and make the "
             "venv with --system-site-packages (as for picamera2)",
}

# Raspberry Pi OS Bookworm has glibc 2.36: every manylinux tag up to 2_36 applies.
AARCH64 = ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, 37)] + [
    "linux_aarch64"]
ARMV7 = ["manylinux2014_armv7l"] + [f"manylinux_2_{m}_armv7l" for m in range(17, 37)] + [
    "linux_armv7l"]

def requirements() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = data["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"].get("pi", []))


def released_versions(name: str) -> list[Version]:
    r = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name,
                        "--disable-pip-version-check"], capture_output=True, text=True, timeout=120)
    for line in r.stdout.splitlines():
        if line.startswith("Available versions:"):
            return sorted(Version(v.strip()) for v in line.split(":", 1)[1].split(","))
    raise SystemExit(f"check-pi-wheels: pip lists no versions of {name}: {r.stderr.strip()[-200:]}")


def at_floor(req: str) -> str:
    """``name[extras]==version``: the pinned version, or the lowest release the range admits."""
    parsed = Requirement(req)
    extras = f"[{','.join(sorted(parsed.extras))}]" if parsed.extras else ""
    pins = [s.version for s in parsed.specifier if s.operator == "=="]
    if pins:
        return f"{parsed.name}{extras}=={pins[0]}"
    admitted = [v for v in released_versions(parsed.name)
                if not v.is_prerelease and parsed.specifier.contains(v)]
    if not admitted:
        raise SystemExit(f"check-pi-wheels: no release of {parsed.name} satisfies {req!r}")
    return f"{parsed.name}{extras}=={admitted[0]}"


def name_of(req: str) -> str:
    return Requirement(req).name.lower()


def check(req: str, platforms: list[str], dest: Path) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
           "--abi", "cp311", "--abi", "abi3", "--abi", "none", "-d", str(dest)]
    for p in platforms:
        cmd += ["--platform", p]
    r = subprocess.run([*cmd, req], capture_output=True, text=True, timeout=600)
    if r.returncode == 0:
        return True, ""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR")]
    return False, (errors[0] if errors else r.stderr.strip()[-300:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--also-armv7", action="store_true",
                    help="also report what PyPI lacks for 32-bit Pi OS (never fails on it)")
    args = ap.parse_args()

    results: dict[str, dict[str, object]] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="gatepass-piwheels-") as tmp:
        for req in requirements():
            pinned = at_floor(req)
            ok, why = check(pinned, AARCH64, Path(tmp) / "aarch64")
            entry: dict[str, object] = {"checked": pinned, "aarch64": ok}
            if not ok:
                exception = EXCEPTIONS.get(name_of(req))
                entry["error"] = why
                if exception:
                    entry["instead"] = exception
                else:
                    failed = True
            if args.also_armv7:
                ok7, why7 = check(pinned, ARMV7, Path(tmp) / "armv7")
                entry["armv7l_on_pypi"] = ok7
                if not ok7:
                    entry["armv7l_error"] = why7
            results[req] = entry
            if not args.json:
                mark = "ok" if ok else ("instead" if "instead" in entry else "MISSING")
                line = f"{mark:8} {pinned}"
                if not ok:
                    line += f"  ({entry.get('instead') or why})"
                if args.also_armv7:
                    line += f"  [armv7l on PyPI: {'yes' if entry['armv7l_on_pypi'] else 'no'}]"
                print(line)
    summary = {"platform": "Raspberry Pi OS Bookworm aarch64, CPython 3.11",
               "ok": not failed, "requirements": results}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print("check-pi-wheels: " + ("every requirement has an aarch64 wheel or a listed "
                                     "Debian alternative" if not failed else
                                     "some requirements have no aarch64 wheel"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
