"""scripts/install-system-deps.sh: what it installs, what it says when it cannot."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from realparts import in_ci

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-system-deps.sh"
# The minimum, and what the test servers and browser need.
REQUIRED = {"libzbar0", "mosquitto", "chromium|chromium-browser", "postgresql-15|postgresql",
            "fonts-noto-core"}


def run(*args: str, env: dict[str, str] | None = None, user: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    preexec = None
    if user is not None:
        pw = pwd.getpwnam(user)

        def preexec() -> None:
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, preexec_fn=preexec)


def test_it_lists_every_required_package() -> None:
    r = run("--list")
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) >= REQUIRED


def test_check_names_what_is_missing_and_the_command_to_install_it() -> None:
    r = run("--check", env={"GATEPASS_EXTRA_DEBS": "gatepass-no-such-package"})
    assert r.returncode == 1
    assert "missing: gatepass-no-such-package" in r.stdout
    assert "apt-get install -y --no-install-recommends gatepass-no-such-package" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_without_root_or_sudo_it_prints_the_exact_command_and_fails() -> None:
    env = {"GATEPASS_EXTRA_DEBS": "gatepass-no-such-package",
           "PATH": "/usr/local/bin:/usr/bin:/bin"}
    # A sudo that would ask nobody for a password counts as none (sudo -n fails).
    r = run(env=env, user="nobody")
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends "
            "gatepass-no-such-package") in r.stderr


def test_in_ci_every_package_is_installed() -> None:
    r = run("--check")
    if not in_ci() and r.returncode != 0:
        pytest.skip(f"not every package is installed here: {r.stdout.strip()}")
    assert r.returncode == 0, r.stdout
