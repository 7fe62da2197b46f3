"""MQTT topic names of the gatepass protocol (``gp/v1``): builders and parsers.

Every topic either side uses is built here, so a typo cannot split the protocol.
Ids (gate, site) must match :data:`ID_RE`: no ``/``, ``+``, ``#`` or ``$``, so an id
always fills exactly one topic level and can never widen a subscription or an ACL.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from sync.errors import TopicError

PREFIX: Final = "gp/v1"
ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")

#: Leaves under ``gp/v1/gates/{gate}/``: gate -> centre.
UPLINK_LEAVES: Final = frozenset({"events", "status", "health"})
#: Leaves under ``gp/v1/gates/{gate}/``: centre -> gate.
DOWNLINK_LEAVES: Final = frozenset({"ack", "config"})

TRUST: Final = f"{PREFIX}/trust"
REVOCATION_SNAPSHOT: Final = f"{PREFIX}/revocation/snapshot"
REVOCATION_DELTA: Final = f"{PREFIX}/revocation/delta"
TIME: Final = f"{PREFIX}/time"

#: Shared subscription name the aggregator workers join.
SHARE_GROUP: Final = "agg"
ALL_EVENTS: Final = f"{PREFIX}/gates/+/events"
SHARED_EVENTS: Final = f"$share/{SHARE_GROUP}/{ALL_EVENTS}"
ALL_STATUS: Final = f"{PREFIX}/gates/+/status"
ALL_HEALTH: Final = f"{PREFIX}/gates/+/health"


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid gate/site id, else raise :class:`TopicError`."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise TopicError(f"invalid {what} {value!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return value


def gate_topic(gate: str, leaf: str) -> str:
    if leaf not in UPLINK_LEAVES | DOWNLINK_LEAVES:
        raise TopicError(f"unknown gate topic leaf {leaf!r}")
    return f"{PREFIX}/gates/{check_id(gate, 'gate')}/{leaf}"


def events(gate: str) -> str:
    return gate_topic(gate, "events")


def status(gate: str) -> str:
    return gate_topic(gate, "status")


def health(gate: str) -> str:
    return gate_topic(gate, "health")


def ack(gate: str) -> str:
    return gate_topic(gate, "ack")


def config(gate: str) -> str:
    return gate_topic(gate, "config")


def site_used(site: str) -> str:
    return f"{PREFIX}/sites/{check_id(site, 'site')}/used"


class GateTopic(NamedTuple):
    """A parsed ``gp/v1/gates/{gate}/{leaf}`` topic."""

    gate: str
    leaf: str


def parse_gate_topic(topic: str) -> GateTopic:
    """Split ``gp/v1/gates/{gate}/{leaf}``; raise :class:`TopicError` for anything else."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) != 5 or "/".join(parts[:3]) != f"{PREFIX}/gates":
        raise TopicError(f"not a gate topic: {str(topic)[:120]!r}")
    gate, leaf = parts[3], parts[4]
    check_id(gate, "gate")
    if leaf not in UPLINK_LEAVES | DOWNLINK_LEAVES:
        raise TopicError(f"unknown gate topic leaf {leaf[:40]!r}")
    return GateTopic(gate, leaf)


def parse_site_used(topic: str) -> str:
    """Return the site of ``gp/v1/sites/{site}/used``; raise :class:`TopicError` otherwise."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) != 5 or "/".join(parts[:3]) != f"{PREFIX}/sites" or parts[4] != "used":
        raise TopicError(f"not a site used-permit topic: {str(topic)[:120]!r}")
    return check_id(parts[3], "site")
