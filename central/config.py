"""The central TOML config: broker, store, HTTP listener, sites and the downlink signing key.

Validated strictly (unknown keys are errors). Secrets are never in the file: the
signing key is a path to a PEM file, the broker password comes from an environment
variable or a file (see :class:`sync.config.BrokerConfig`). Nothing is read but the
config file itself at validation time; :func:`load_signing_key` reads the key.

Example::

    [broker]
    host = "127.0.0.1"
    port = 1883

    [store]
    url = "sqlite:///var/lib/gatepass/central.db"   # or postgresql://user@host/db

    [http]
    listen = "127.0.0.1:8080"

    [signing]
    key_file = "/etc/gatepass/central.pem"           # root or "central" role key

    [trust]
    bundle_file = "/etc/gatepass/trust.json"         # checks trust lists/revocations to relay

    [registry]
    file = "/etc/gatepass/gates.registry"            # signed gate registry (gatepass gates);
                                                     # required (check = false: demos only)

    [[sites]]
    id = "haram"
    name = "Masjid al-Haram"
    capacity_per_slot = 5000
    slot_capacity = { "1767225600" = 3000 }          # slot start (epoch s) -> capacity
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from central.errors import CentralConfigError
from sync.config import BrokerConfig
from sync.topics import ID_RE


class StoreConfig(BaseModel):
    """Where events are stored: a SQLite path/URL (default) or a ``postgresql://`` URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        "sqlite:///var/lib/gatepass/central.db",
        min_length=1,
        description="sqlite:///abs/path.db, sqlite:rel.db, a bare path, or postgresql://...",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if "://" in v and not v.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("store url must be sqlite:///path or postgresql://...")
        return v


class HttpConfig(BaseModel):
    """The dashboard/JSON API/metrics listener."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field("127.0.0.1:8080", description="host:port to listen on (port 0: any free)")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024,
        description="larger request bodies are refused with 413 before reading them",
    )
    poll_ms: int = Field(1000, ge=100, le=60000, description="dashboard refresh period")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("listen must be host:port, e.g. 127.0.0.1:8080")
        return v

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class SigningConfig(BaseModel):
    """The key the centre signs its own downlink documents with (time beacons, used permits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: Path = Field(description="PEM private key with the root or 'central' role")
    kid: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{2,64}$", description="key id (hex) if not the default"
    )


class TrustConfig(BaseModel):
    """The trust bundle (root public key + trust list) that checks documents given to relay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle_file: Path = Field(description="trust.json as written by `gatepass keys new`")


NO_REGISTRY = (
    "[registry] is required: file = the signed gate registry (`gatepass gates provision`"
    " writes it), or check = false for a test or demo (then any gate with broker credentials"
    " may claim any site, group or seq)"
)


class RegistryConfig(BaseModel):
    """The signed gate registry: which gates exist, where, and the key each signs with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = Field(
        None,
        description="signed gate registry written by `gatepass gates provision|registry`;"
        " a newer one given through POST /api/documents replaces it (needs [trust])",
    )
    check: bool = Field(
        True,
        description="false: check no gate identity at all (any gate with broker credentials"
        " may then claim any site, group or seq): only for tests and demos, and said so in"
        " the log at every start",
    )

    @model_validator(mode="after")
    def _file_or_no_checks(self) -> RegistryConfig:
        if self.check and self.file is None:
            raise ValueError(NO_REGISTRY)
        if not self.check and self.file is not None:
            raise ValueError("[registry] gives a file and check = false: choose one")
        return self


class AggregatorConfig(BaseModel):
    """How an aggregator worker subscribes, batches and publishes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(
        "gp-central-1", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="MQTT client id of this worker; unique per worker, stable across restarts",
    )
    max_batch_events: int = Field(
        20000, ge=1, le=500_000, description="events stored per transaction at most"
    )
    queue_messages: int = Field(
        1000, ge=1, le=100_000,
        description="received messages waiting for the store; a full queue slows the broker",
    )
    time_beacon_period_s: float = Field(
        5.0, gt=0, le=3600, description="seconds between signed time beacons"
    )
    used_stream: bool = Field(True, description="publish the signed used-permit stream per site")
    shared_subscription: bool = Field(
        True, description="subscribe to events through $share (several workers split the load);"
        " false for brokers without shared subscriptions (amqtt): then run one worker only",
    )


class SiteConfig(BaseModel):
    """A site with its capacity per slot (the number the dashboard charts against)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="site id as the gates send it")
    name: str = Field("", max_length=200, description="display name")
    capacity_per_slot: int = Field(ge=0, description="people admitted per slot at most")
    slot_capacity: dict[str, int] = Field(
        default_factory=dict, description="slot start (epoch seconds) -> capacity override"
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError("site id must be 1-64 of A-Z a-z 0-9 _ . -")
        return v

    @field_validator("slot_capacity")
    @classmethod
    def _slots(cls, v: dict[str, int]) -> dict[str, int]:
        for slot, cap in v.items():
            if not slot.isdigit():
                raise ValueError(f"slot_capacity key {slot!r} must be a slot start in epoch s")
            if cap < 0:
                raise ValueError(f"slot_capacity for {slot} must be >= 0")
        return v

    def capacity(self, slot: int | None) -> int:
        if slot is None:
            return self.capacity_per_slot
        return self.slot_capacity.get(str(slot), self.capacity_per_slot)


class CentralConfig(BaseModel):
    """The whole ``gatepass central`` config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: BrokerConfig = Field(default_factory=BrokerConfig)  # type: ignore[arg-type]
    store: StoreConfig = Field(default_factory=StoreConfig)  # type: ignore[arg-type]
    http: HttpConfig = Field(default_factory=HttpConfig)  # type: ignore[arg-type]
    signing: SigningConfig | None = Field(
        None, description="without it no time beacons or used-permit stream are published"
    )
    trust: TrustConfig | None = Field(
        None, description="without it the centre refuses trust lists and revocations to relay"
    )
    aggregator: AggregatorConfig = Field(default_factory=AggregatorConfig)  # type: ignore[arg-type]
    registry: RegistryConfig | None = Field(
        None, description="required: the signed gate registry, or check = false (tests and"
        " demos only)",
    )
    sites: list[SiteConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _registry_needs_trust(self) -> CentralConfig:
        if self.registry is None:
            raise ValueError(NO_REGISTRY)
        if self.registry.file is not None and self.trust is None:
            raise ValueError("[registry] needs [trust]: the registry is verified against the root")
        return self

    @model_validator(mode="after")
    def _unique_sites(self) -> CentralConfig:
        ids = [s.id for s in self.sites]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"site ids must be unique: {', '.join(dupes)}")
        return self

    def site(self, site_id: str) -> SiteConfig | None:
        return next((s for s in self.sites if s.id == site_id), None)


def parse_config(data: dict[str, Any]) -> CentralConfig:
    """Validate a plain dict; raise :class:`CentralConfigError` naming the first bad field."""
    try:
        return CentralConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise CentralConfigError(f"{where}: {err['msg']}{more}") from None


def load_config(path: str | Path) -> CentralConfig:
    """Read and validate a TOML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CentralConfigError(f"cannot read config {p}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CentralConfigError(f"config {p} is not UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CentralConfigError(f"config {p} is not valid TOML: {exc}") from None
    try:
        return parse_config(data)
    except CentralConfigError as exc:
        raise CentralConfigError(f"config {p}: {exc}") from None
