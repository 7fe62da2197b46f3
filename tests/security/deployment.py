"""Start Mosquitto from the SHIPPED deploy/mosquitto files, for security tests.

    from deployment import ShippedBroker          # tests/security is on sys.path
    from central.provisioning.broker import make_users

    users = make_users(["gate-a", "gate-b"], aggregator_workers=2)
    with ShippedBroker(tmp_path, users) as b:      # start() ... stop()
        cfg = b.broker_config("gate-a")            # sync.config.BrokerConfig, plain listener
        b.port, b.tls_port, b.mtls_port, b.password("gate-a"), b.ca_file, b.cert("gate-a")

What is taken as shipped, unchanged: ``deploy/mosquitto/mosquitto.conf`` (every line but
the substitutions below), ``make-certs.sh`` (run into the work dir for the broker's and
the gates' certificates) and the broker's user file written by
:func:`central.provisioning.broker.write_broker_files` (the ACL lives there).

The one text transformation of mosquitto.conf, and nothing else:

1. ``/etc/mosquitto/gatepass`` -> ``<workdir>/etc`` and ``/var/lib/mosquitto/`` ->
   ``<workdir>/data/``;
2. each ``listener PORT [ADDR]`` line -> ``listener <free port> 127.0.0.1`` (1883 is
   :attr:`port`, 8883 :attr:`tls_port`, 8884 :attr:`mtls_port`);
3. a first line ``user <current user>``: Mosquitto started as root otherwise drops to the
   ``mosquitto`` user, which cannot read pytest's private tmp dirs;
4. only if the shipped ``plugin`` path does not exist on this machine (another
   architecture), it is replaced by the dynamic-security plugin found under /usr/lib.

``GATEPASS_DEPLOY_DIR`` (or ``deploy_dir=``) points the same tests at another deployment
directory, e.g. the previous release's, to watch the attacks work there. A config with
``password_file`` gets one written with
:func:`central.provisioning.broker.password_file_line`; an ``acl_file`` is copied from
that directory.
"""

from __future__ import annotations

import getpass
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from central.provisioning.broker import (
    DYNSEC_FILE,
    BrokerUser,
    password_file_line,
    write_broker_files,
    write_secrets,
)
from sync.config import BrokerConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


def deploy_dir() -> Path:
    return Path(os.environ.get("GATEPASS_DEPLOY_DIR") or DEPLOY)
SHIPPED_PORTS = ("1883", "8883", "8884")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _die_with_parent() -> None:
    # A broker must not outlive a killed test run on a shared machine (Linux only). The
    # signal follows the thread that started it: start brokers from the main thread.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def missing_tools() -> list[str]:
    """What this machine lacks to run a ShippedBroker (empty: all there)."""
    missing = [] if mosquitto_binary() else ["mosquitto"]
    if shutil.which("openssl") is None:
        missing.append("openssl")
    if not glob.glob("/usr/lib/*/mosquitto_dynamic_security.so") and not glob.glob(
            "/usr/lib/mosquitto_dynamic_security.so"):
        missing.append("mosquitto_dynamic_security.so")
    return missing


def render_conf(shipped: str, workdir: Path, ports: dict[str, int]) -> str:
    """The documented transformation of the shipped mosquitto.conf (module docstring)."""
    conf = shipped.replace("/etc/mosquitto/gatepass", str(workdir / "etc"))
    conf = conf.replace("/var/lib/mosquitto/", f"{workdir / 'data'}/")

    def listener(m: re.Match[str]) -> str:
        return f"listener {ports[m.group(1)]} 127.0.0.1"

    conf = re.sub(r"^listener (\d+)\b.*$", listener, conf, flags=re.M)
    plugin = re.search(r"^plugin (\S+)$", conf, flags=re.M)
    if plugin and not Path(plugin.group(1)).exists():
        found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))
        if found:
            conf = conf.replace(plugin.group(0), f"plugin {found[0]}")
    return f"user {getpass.getuser()}\n" + conf


class ShippedBroker:
    """Mosquitto from deploy/mosquitto as shipped, with ``users``; a context manager.

    ``cert_gates``: gate ids that get a client certificate (mutual TLS); default every
    gate user. ``users_file``: a dynamic-security.json made elsewhere (make-passwd.sh) to
    install instead of writing one from ``users`` (whose passwords must then match).
    ``tls=False`` skips make-certs.sh, and the TLS listener blocks are then the only lines
    left out of the config (faster, for tests that use the plain listener only).
    """

    def __init__(self, workdir: Path, users: Sequence[BrokerUser], *, tls: bool = True,
                 cert_gates: Sequence[str] | None = None,
                 users_file: Path | None = None, deploy: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.users = list(users)
        self.tls = tls
        self.cert_gates = list(cert_gates if cert_gates is not None else
                               [u.username for u in self.users if u.role == "gate"])
        self.etc = self.workdir / "etc"
        self.secrets = self.workdir / "secrets"
        self.ports = {p: _free_port() for p in SHIPPED_PORTS}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._prepared = False
        self._users_file = users_file
        self.deploy = deploy if deploy is not None else deploy_dir()

    # --- addresses and credentials --------------------------------------------------------
    @property
    def port(self) -> int:
        """The plain local listener (shipped 1883)."""
        return self.ports["1883"]

    @property
    def tls_port(self) -> int:
        """TLS + password (shipped 8883)."""
        return self.ports["8883"]

    @property
    def mtls_port(self) -> int:
        """Mutual TLS, certificate CN = username (shipped 8884)."""
        return self.ports["8884"]

    @property
    def ca_file(self) -> Path:
        return self.etc / "certs" / "ca.crt"

    @property
    def log_file(self) -> Path:
        return self.workdir / "mosquitto.log"

    def cert(self, gate: str) -> tuple[Path, Path]:
        """(certificate, key) of a gate in ``cert_gates``."""
        return self.etc / "certs" / f"{gate}.crt", self.etc / "certs" / f"{gate}.key"

    def user(self, username: str) -> BrokerUser:
        for u in self.users:
            if u.username == username:
                return u
        raise KeyError(username)

    def password(self, username: str) -> str:
        return self.user(username).password

    def password_file(self, username: str) -> Path:
        self.user(username)
        return self.secrets / username

    def broker_config(self, username: str, **overrides: Any) -> BrokerConfig:
        """BrokerConfig for ``username`` on the plain listener, password from its file;
        fast reconnects. ``overrides`` are BrokerConfig fields."""
        data: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "username": username,
            "password_file": self.password_file(username),
            "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
        }
        data.update(overrides)
        return BrokerConfig.model_validate(data)

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # --- lifecycle ------------------------------------------------------------------------
    def _prepare(self) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        (self.etc / "certs").mkdir(parents=True, exist_ok=True)
        if self._users_file is not None:
            shutil.copy(self._users_file, self.etc / DYNSEC_FILE)
        else:
            write_broker_files(self.users, self.etc)
        write_secrets(self.users, self.secrets)
        shipped = (self.deploy / "mosquitto.conf").read_text()
        if re.search(r"^password_file ", shipped, flags=re.M):
            (self.etc / "passwd").write_text(
                "".join(password_file_line(u) + "\n" for u in self.users))
        if re.search(r"^acl_file ", shipped, flags=re.M):
            shutil.copy(self.deploy / "acl", self.etc / "acl")
        if self.tls:
            subprocess.run([str(self.deploy / "make-certs.sh"), str(self.etc / "certs"),
                            "localhost", *self.cert_gates],
                           check=True, capture_output=True, timeout=120)
        else:
            shipped = _drop_tls_listeners(shipped)
        conf = render_conf(shipped, self.workdir, self.ports)
        (self.workdir / "mosquitto.conf").write_text(conf)
        self._prepared = True

    def start(self) -> ShippedBroker:
        if self._proc is not None:
            return self
        if not self._prepared:
            self._prepare()
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        self._log = self.log_file.open("ab")
        self._proc = subprocess.Popen([binary, "-c", str(self.workdir / "mosquitto.conf")],
                                      stdout=self._log, stderr=self._log,
                                      preexec_fn=_die_with_parent)
        wanted = [self.port] + ([self.tls_port, self.mtls_port] if self.tls else [])
        deadline = time.monotonic() + 20
        while not all(_listening(p) for p in wanted):
            if self._proc.poll() is not None:
                self._close_log()
                self._proc = None
                raise RuntimeError(f"mosquitto exited at start:\n{self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen:\n{self.log_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM (Mosquitto saves its persistence file), then SIGKILL after 10 s."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ShippedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _drop_tls_listeners(conf: str) -> str:
    """The shipped config without its TLS listener blocks (a block runs from a
    ``listener`` line to the next blank line); every other line stays."""
    out: list[str] = []
    skipping = False
    for line in conf.splitlines(keepends=True):
        if line.startswith("listener ") and not re.match(r"^listener 1883\b", line):
            skipping = True
            # drop the comment lines just above that describe this listener
            while out and out[-1].startswith("#"):
                out.pop()
        elif skipping and not line.strip():
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out)
