"""The agent's configuration: one TOML file validated into pydantic models.

Unknown keys are refused everywhere (a typo must not silently fall back to a default).
Tests build configs from plain dicts with :func:`config_from_dict`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gate_agent.errors import ConfigError
from hardware.config import OutputsConfig, SourceConfig
from sync.config import BrokerConfig

_ID = r"^[A-Za-z0-9_.-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PermitRules(_Strict):
    """Which permits this gate accepts and how loosely it reads their slot window."""

    types: list[str] = Field(
        min_length=1, description="permit types accepted here, e.g. ['umrah', 'visit']"
    )
    gate_groups: list[str] = Field(
        default_factory=list,
        description="gate groups this gate belongs to; a permit naming other groups is refused"
        " (empty: any group)",
    )
    early_grace_s: int = Field(
        default=900,
        ge=0,
        le=86400,
        description="seconds before the slot start a permit is admitted",
    )
    late_grace_s: int = Field(
        default=1800,
        ge=0,
        le=86400,
        description="seconds after the slot end a permit is still admitted",
    )
    accepted_health: list[str] = Field(
        default_factory=lambda: ["ok", "cleared"],
        description="permit health statuses admitted; any other status is refused (health_status)",
    )
    presentation: Literal["required", "preferred", "static"] = Field(
        default="required",
        description="holder-bound permits (cnf): 'required' admits only a live presentation"
        " (GPP1:) from the holder's phone, a bare one is presentation_required; 'preferred'"
        " admits a bare one flagged no_live_code (check the holder's ID); 'static' admits it"
        " unflagged. A presentation shown is always verified; paper permits work in every mode",
    )
    presentation_tolerance_s: int = Field(
        default=30,
        ge=0,
        le=300,
        description="seconds a presentation's time step may lie from the gate clock, each side",
    )


class PassbackRules(_Strict):
    """Anti-passback: how far 'already used' reaches and what to do when it cannot be known."""

    scope: Literal["gate", "site"] = Field(
        default="gate",
        description="'gate': this gate's ledger only; 'site': also the site-wide used-permit"
        " stream delivered by sync",
    )
    offline: Literal["strict", "soft"] = Field(
        default="soft",
        description="site scope while the site-wide stream is stale: 'strict' refuses"
        " (offline_unchecked), 'soft' admits and flags the event offline_soft",
    )
    stale_after_s: float = Field(
        default=120.0,
        gt=0,
        le=86400,
        description="the site-wide stream is stale when sync has been offline this long",
    )


class CapacityRules(_Strict):
    """A local quota: people this gate admits per slot."""

    per_slot: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="people admitted per slot at this gate (none: no quota)",
    )


class ReentryRules(_Strict):
    """Whether a permit that went in may come in again within the same slot."""

    allowed: bool = Field(default=False, description="allow re-entry within the same slot")
    max_entries: int = Field(
        default=2, ge=1, le=100, description="entries per permit per slot when re-entry is allowed"
    )
    cooldown_s: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="seconds after an entry before the same permit may re-enter (anti-passback)",
    )


class GroupRules(_Strict):
    """How a group permit (party > 1) is admitted."""

    admission: Literal["full", "ask"] = Field(
        default="full",
        description="'full': the whole remaining party goes in; 'ask': the attendant confirms a"
        " head count and the rest stays available",
    )


class BoardingRules(_Strict):
    """Bus boarding: how strictly a permit's departure must match the open trip."""

    departure_tolerance_s: int = Field(
        default=1800,
        ge=0,
        le=86400,
        description="seconds a permit's departure may differ from the open trip's departure",
    )
    default_seats: int = Field(
        default=50, ge=1, le=500, description="seats offered when opening a trip"
    )


class ConsoleSettings(_Strict):
    """Where the attendant console listens."""

    enabled: bool = Field(default=True, description="serve the console web page")
    host: str = Field(
        default="127.0.0.1", description="listen address (0.0.0.0 for a tablet on the LAN)"
    )
    port: int = Field(default=8080, ge=0, le=65535, description="listen port (0: any free port)")


class TrustSettings(_Strict):
    """Where the keys that permits must be signed by come from."""

    bundle: Path = Field(
        description="trust bundle file (root key, signed trust list, revocations) written by"
        " 'gatepass keys'; sync delivers newer trust lists and revocations"
    )
    revocations: Path | None = Field(
        default=None,
        description="extra signed revocation snapshot/delta file applied after the bundle",
    )


class LanguageSettings(_Strict):
    """Languages of the console's two audiences."""

    attendant: str = Field(
        default="en", pattern=r"^[a-z]{2,3}$", description="attendant's language"
    )
    pilgrim: str = Field(
        default="ar", pattern=r"^[a-z]{2,3}$", description="pilgrim's default language"
    )


class ClockSettings(_Strict):
    """How far the system clock is trusted (a Raspberry Pi has no real-time clock)."""

    system: Literal["timedatectl", "trust", "distrust"] = Field(
        default="timedatectl",
        description="'timedatectl': trust the clock while NTPSynchronized=yes; 'trust': always"
        " (a laptop, a test rig); 'distrust': only signed beacons",
    )
    poll_s: float = Field(
        default=30.0, gt=0, le=3600, description="seconds between sync-state checks"
    )
    beacon_valid_s: float = Field(
        default=3600.0,
        gt=0,
        le=86400,
        description="seconds a signed time beacon counts as 'beacon'",
    )
    monotonic_valid_s: float = Field(
        default=6 * 3600.0,
        gt=0,
        le=7 * 86400,
        description="seconds after the last good reading the monotonic clock is still trusted",
    )
    jump_threshold_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="wall vs monotonic divergence counted as a clock jump",
    )
    override_s: float = Field(
        default=8 * 3600.0, gt=0, le=86400, description="seconds an operator's time override lasts"
    )


class AgentConfig(_Strict):
    """One gate agent: identity, mode, rules, devices, links and files."""

    gate: str = Field(pattern=_ID, description="gate id, unique across all sites")
    site: str = Field(pattern=_ID, description="site id this gate belongs to")
    mode: Literal["entrance", "boarding", "counter"] = Field(
        description="'entrance' admits, 'boarding' admits onto a bus trip, 'counter' inspects"
    )
    ledger: Path = Field(description="SQLite ledger file (also holds the sync outbox)")
    key_file: Path | None = Field(
        default=None,
        description="this gate's private signing key (PEM, mode 0600) written by 'gatepass gates"
        " enrol'; it signs every batch sent to the centre (none: unsigned batches, which a"
        " centre with a gate registry refuses)",
    )
    decoder: str = Field(default="default", description="QR decoder name for gate_agent.decode")
    debounce_s: float = Field(
        default=3.0, ge=0, le=600, description="seconds the same code is ignored after a scan"
    )
    permits: PermitRules = Field(description="accepted permits")
    passback: PassbackRules = Field(
        default_factory=lambda: PassbackRules(), description="anti-passback"
    )
    capacity: CapacityRules = Field(
        default_factory=lambda: CapacityRules(), description="local quota"
    )
    reentry: ReentryRules = Field(
        default_factory=lambda: ReentryRules(), description="re-entry rules"
    )
    group: GroupRules = Field(default_factory=lambda: GroupRules(), description="group admission")
    boarding: BoardingRules = Field(
        default_factory=lambda: BoardingRules(), description="boarding rules"
    )
    source: SourceConfig | None = Field(
        default=None, description="frame source (camera, scanner...)"
    )
    outputs: OutputsConfig | None = Field(
        default=None, description="turnstile relay, lights, buzzer"
    )
    console: ConsoleSettings = Field(
        default_factory=lambda: ConsoleSettings(), description="console"
    )
    broker: BrokerConfig | None = Field(
        default=None, description="MQTT broker for sync (none: offline)"
    )
    trust: TrustSettings = Field(description="trust root, trust list and revocations")
    languages: LanguageSettings = Field(
        default_factory=lambda: LanguageSettings(), description="languages"
    )
    clock: ClockSettings = Field(
        default_factory=lambda: ClockSettings(), description="trusted time"
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentConfig:
        if self.passback.scope == "site" and self.passback.offline == "strict" and not self.broker:
            raise ValueError(
                "passback.scope = 'site' with offline = 'strict' refuses every permit without a"
                " [broker]: add [broker] or set passback.offline = 'soft'"
            )
        return self


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/deploy-pi.md)"
        out.append(f"{where}: {msg}")
    return out


def _resolve(cfg: AgentConfig, base: Path) -> AgentConfig:
    """Relative file paths in a config file are relative to that file."""

    def fix(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    trust = cfg.trust.model_copy(
        update={
            k: fix(getattr(cfg.trust, k)) or getattr(cfg.trust, k)
            for k in ("bundle", "revocations")
        }
    )
    return cfg.model_copy(update={
        "trust": trust, "ledger": fix(cfg.ledger) or cfg.ledger,
        "key_file": fix(cfg.key_file) or cfg.key_file,
    })


def config_from_dict(data: dict[str, Any], *, base_dir: Path | None = None) -> AgentConfig:
    """Validate ``data``; raise :class:`ConfigError` listing every bad field."""
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        raise ConfigError(
            f"invalid agent config ({len(problems)} problem(s)): " + "; ".join(problems),
            problems,
        ) from None
    return _resolve(cfg, base_dir) if base_dir is not None else cfg


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate a TOML config file; raise :class:`ConfigError` saying what is wrong."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config {p} is not UTF-8 text: save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {p} is not valid TOML: {exc}") from None
    return config_from_dict(data, base_dir=p.resolve().parent)


def summary(cfg: AgentConfig) -> str:
    """A few lines saying what this gate will do (for ``check-config``)."""
    lines = [
        f"gate {cfg.gate} at site {cfg.site}, mode {cfg.mode}",
        f"permits: types {', '.join(cfg.permits.types)}; gate groups "
        f"{', '.join(cfg.permits.gate_groups) or 'any'}; grace -{cfg.permits.early_grace_s}s/"
        f"+{cfg.permits.late_grace_s}s",
        f"anti-passback: scope {cfg.passback.scope}, offline {cfg.passback.offline}; re-entry "
        f"{'allowed' if cfg.reentry.allowed else 'refused'}; groups {cfg.group.admission}",
        f"capacity per slot: {cfg.capacity.per_slot or 'unlimited'}",
        f"ledger: {cfg.ledger}",
        f"trust bundle: {cfg.trust.bundle}",
        f"clock: {cfg.clock.system}",
        "console: "
        + (f"http://{cfg.console.host}:{cfg.console.port}" if cfg.console.enabled else "off"),
        f"broker: {'configured' if cfg.broker else 'none (offline gate)'}",
        f"gate key: {cfg.key_file or 'none (batches unsigned)'}",
    ]
    return "\n".join(lines)
