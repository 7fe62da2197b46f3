#!/usr/bin/env bash
# Build gatepass's wheel, install it into a fresh venv outside the repository, and run it from
# another directory: `gatepass --version`, then `gatepass demo --duration 20`. CI runs this
# (`make check-wheel`), so a file the package needs at run time but the wheel leaves out
# (a console page, a catalogue, a template) fails CI instead of a newcomer's first demo.
#
#   scripts/check-wheel.sh [PYTHON]     PYTHON defaults to python3
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3}
work=$(mktemp -d /tmp/gatepass-wheel-XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "check-wheel: building the wheel"
"$python" -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install --quiet --upgrade pip
"$work/build-env/bin/python" -m pip wheel --quiet --no-deps -w "$work/dist" "$repo"
wheel=$(ls "$work"/dist/gatepass-*.whl)
echo "check-wheel: built $(basename "$wheel")"

# Every tracked non-Python file inside a package folder must be in the wheel.
"$work/build-env/bin/python" - "$repo" "$wheel" <<'EOF'
import subprocess, sys, zipfile
from pathlib import Path
repo, wheel = Path(sys.argv[1]), sys.argv[2]
names = set(zipfile.ZipFile(wheel).namelist())
packages = ("gatepass/", "verifier/", "hardware/", "gate_agent/", "sync/", "central/")
tracked = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
missing = [f for f in tracked if f.startswith(packages) and not f.endswith(".py")
           and f not in names]
if missing:
    sys.exit("check-wheel: the wheel lacks package files: " + ", ".join(missing))
print(f"check-wheel: the wheel holds all {len(names)} files, package data included")
EOF

echo "check-wheel: installing it into a fresh venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$wheel"

mkdir -p "$work/elsewhere"
cd "$work/elsewhere"
version=$("$work/venv/bin/gatepass" --version)
echo "check-wheel: $version"
expected=$(cd "$repo" && "$python" -c 'import gatepass; print(gatepass.__version__)')
[ "$version" = "gatepass $expected" ] || { echo "check-wheel: expected gatepass $expected" >&2; exit 1; }

echo "check-wheel: gatepass demo --duration 20 from $PWD"
# The installed package only: no repository on the path, no source tree in the cwd.
env -u PYTHONPATH "$work/venv/bin/gatepass" demo --duration 20 >"$work/demo.log" 2>&1 || {
    echo "check-wheel: the demo failed; its output:" >&2
    tail -40 "$work/demo.log" >&2
    exit 1
}
grep -q "ADMIT" "$work/demo.log" || {
    echo "check-wheel: the demo admitted nobody; its output:" >&2
    tail -40 "$work/demo.log" >&2
    exit 1
}
echo "check-wheel: demo ran from the installed wheel ($(grep -c ADMIT "$work/demo.log") ADMIT lines)"
