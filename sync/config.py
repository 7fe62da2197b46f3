"""Broker connection settings for a gate (and anything else that talks MQTT).

Secrets never sit in the config: the password comes from an environment variable
(``password_env``) or a file (``password_file``), read when the link connects, not at
import or validation time. Tests build configs from plain dicts.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sync.errors import SyncConfigError


class TlsConfig(BaseModel):
    """TLS to the broker: CA bundle, optional client certificate and key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = Field(
        None, description="PEM CA bundle that signed the broker's certificate; system CAs if unset"
    )
    cert_file: Path | None = Field(None, description="PEM client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="PEM private key of the client certificate")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be given together")
        return self


class BrokerConfig(BaseModel):
    """Where and how a gate connects to its MQTT broker, and how fast it drains its backlog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", min_length=1, description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker TCP port (8883 is usual for TLS)")
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT version; 3.1.1 for brokers without v5 (amqtt)"
    )
    keepalive: int = Field(
        30, ge=5, le=3600, description="seconds; a cut link is noticed after about 1.5x this"
    )
    client_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="MQTT client id; default the username, else gp-gate-{gate}; stable, the"
        " broker keeps the session (deploy/mosquitto makes it the username anyway)",
    )
    tls: TlsConfig | None = Field(None, description="TLS settings; plain TCP when unset")
    username: str | None = Field(
        None, min_length=1, description="MQTT username (a gate uses its gate id, see deploy/)"
    )
    password_env: str | None = Field(
        None, min_length=1, description="name of the environment variable holding the password"
    )
    password_file: Path | None = Field(
        None, description="file whose first line is the password (e.g. a container secret)"
    )
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=0, le=2**32 - 1,
        description="MQTT 5 session expiry: downlink QoS 1 items queue this long while offline",
    )
    batch_size: int = Field(200, ge=1, le=500, description="events per published message")
    drain_rate: float = Field(
        25000.0, gt=0, description="events/s at most when draining a backlog after an outage"
    )
    max_unacked: int = Field(
        20000, ge=1, description="backlog events published but not yet acknowledged, at most"
    )
    ack_timeout_s: float = Field(
        10.0, gt=0, description="republish unacknowledged events after this many seconds"
    )
    reconnect_min_s: float = Field(0.5, gt=0, description="first reconnect delay")
    reconnect_max_s: float = Field(30.0, gt=0, description="reconnect delay cap (with jitter)")
    connect_timeout_s: float = Field(
        10.0, gt=0, description="give up a connection attempt with no CONNACK after this long"
    )
    health_period_s: float = Field(10.0, gt=0, description="seconds between health publishes")

    @model_validator(mode="after")
    def _rules(self) -> BrokerConfig:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        if (self.password_env or self.password_file) and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    def effective_client_id(self, gate: str) -> str:
        # The shipped broker sets client id = username (use_username_as_clientid) and
        # refuses any other: send what it will use.
        return self.client_id or self.username or f"gp-gate-{gate}"

    def for_client(self, client_id: str) -> BrokerConfig:
        """This config with ``{client_id}`` in ``username`` and ``password_file`` replaced:
        one central config serves every aggregator worker, each with its own broker user
        (``username = "{client_id}"``, ``password_file = ".../{client_id}"``)."""
        update: dict[str, Any] = {}
        if self.username is not None and "{client_id}" in self.username:
            update["username"] = self.username.replace("{client_id}", client_id)
        if self.password_file is not None and "{client_id}" in str(self.password_file):
            update["password_file"] = Path(str(self.password_file).replace("{client_id}",
                                                                           client_id))
        return self.model_copy(update=update) if update else self

    def password(self) -> str | None:
        """Read the password now, from the environment or the file; None when none is set."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise SyncConfigError(f"environment variable {self.password_env} is not set")
            return value
        if self.password_file is not None:
            try:
                lines = self.password_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise SyncConfigError(
                    f"cannot read password file {self.password_file}: {exc.strerror}"
                ) from None
            if not lines or not lines[0]:
                raise SyncConfigError(f"password file {self.password_file} is empty")
            return lines[0]
        return None

    def apply_security(self, client: Any) -> None:
        """Set TLS and username/password on a paho ``Client`` (gate link and aggregator)."""
        if self.tls is not None:
            client.tls_set(
                ca_certs=str(self.tls.ca_file) if self.tls.ca_file else None,
                certfile=str(self.tls.cert_file) if self.tls.cert_file else None,
                keyfile=str(self.tls.key_file) if self.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self.username is not None:
            client.username_pw_set(self.username, self.password())
