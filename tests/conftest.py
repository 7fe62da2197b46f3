"""Shared fixtures: the corpus, real Mosquitto brokers, PostgreSQL, Chromium.

Real services only; simulators are for hardware. Every fixture that starts a
process stops it in ``finally``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from realparts import INSTALL_HINT, in_ci, missing_part

REPO = Path(__file__).resolve().parent.parent


def corpus_root() -> Path:
    """The shared corpus: ``GATEPASS_CORPUS`` or ``../shared/corpus`` from the repo root."""
    return Path(os.environ.get("GATEPASS_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    root = corpus_root()
    if not root.is_dir():
        if in_ci():
            pytest.fail(f"CI runs with the shared corpus, and it is not at {root} "
                        "(set GATEPASS_CORPUS)", pytrace=False)
        pytest.skip(f"shared corpus not found at {root} (set GATEPASS_CORPUS)")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Mosquitto:
    """A real Mosquitto on a free 127.0.0.1 port; ``kill()`` and ``start()`` for fault tests."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_conf: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            f"{self.extra_conf}\n"
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "mosquitto.log", "ab"),  # noqa: SIM115
        )
        wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: the broker dies without a goodbye, as in a power cut."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[type[Mosquitto]]:
    """Start extra brokers: ``mosquitto_factory(workdir=..., extra_conf=...)``."""
    started: list[Mosquitto] = []

    class _Factory(Mosquitto):
        def start(self) -> None:
            started.append(self)
            super().start()

    try:
        yield _Factory
    finally:
        for broker in started:
            broker.stop()


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        missing_part("mosquitto is not installed", INSTALL_HINT)
    return binary


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, mosquitto_binary: str) -> Iterator[Mosquitto]:
    """One Mosquitto for the whole test session, on a free port."""
    b = Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _pg_binary(name: str) -> str | None:
    """Debian keeps initdb and postgres in /usr/lib/postgresql/<major>/bin, off the PATH."""
    found = shutil.which(name)
    if found:
        return found
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bindir / name).exists():
            return str(bindir / name)
    return None


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL cluster: Debian's ``initdb`` into a temporary folder, a free
    127.0.0.1 port, run as a non-root user (the server refuses root), removed afterwards."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_user(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                continue
            return pw.pw_uid, pw.pw_gid
        raise RuntimeError("running as root and no postgres or nobody user to run PostgreSQL as")

    def start(self, initdb: str, postgres: str) -> None:
        ids = self._as_user()

        def demote() -> None:
            if ids is not None:
                os.setgid(ids[1])
                os.setuid(ids[0])

        data = self.root / "data"
        if ids is not None:
            os.chown(self.root, *ids)
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115
        subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
            check=True, stdout=log, stderr=log, preexec_fn=demote, timeout=120,
        )
        # A test cluster: durability is the ledger's and the store's concern, not this
        # server's disk flushes, so fsync is off to keep the suite fast on a shared machine.
        self.proc = subprocess.Popen(
            [postgres, "-D", str(data), "-p", str(self.port), "-k", str(self.root),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=log, preexec_fn=demote,
        )
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}; "
                                   f"see {self.root / 'postgres.log'}")
            try:
                psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """The admin URL of a PostgreSQL server this test session started for itself.

    ``GATEPASS_TEST_PG`` names another server to use instead (trust auth, may create databases).
    """
    override = os.environ.get("GATEPASS_TEST_PG")
    if override:
        yield override
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing_part("psycopg is not importable", "make install")
    initdb, postgres = _pg_binary("initdb"), _pg_binary("postgres")
    if initdb is None or postgres is None:
        missing_part("PostgreSQL's server binaries (initdb, postgres) are not installed",
                     INSTALL_HINT)
    root = Path(tempfile.mkdtemp(prefix="gatepass-pg-"))
    cluster = PostgresCluster(root)
    try:
        cluster.start(initdb, postgres)
        yield cluster.admin_dsn
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL, dropped afterwards."""
    import psycopg

    name = f"gatepass_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(postgres_admin_dsn, autocommit=True, connect_timeout=10)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        missing_part("Debian's chromium is not installed", INSTALL_HINT)
    return path


@pytest.fixture
def browser_page(chromium_path: str) -> Iterator[object]:
    """A Playwright page in Debian's headless Chromium (never a downloaded browser)."""
    try:
        from playwright import sync_api
    except ImportError:
        missing_part("playwright is not importable", "make install")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page()
            yield page
        finally:
            browser.close()
