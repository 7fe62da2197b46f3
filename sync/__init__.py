"""Carrying gate events to the centre and signed data back: outbox, MQTT link, wire schema.

``sync.GateSync`` is the agent's entry point (see :mod:`sync.facade`). It is loaded on
first use so that ``import sync.schema`` stays light (no paho, no pydantic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.config import BrokerConfig
    from sync.facade import GateSync, SyncStatus

__all__ = ["BrokerConfig", "GateSync", "SyncStatus"]


def __getattr__(name: str) -> Any:
    if name in ("GateSync", "SyncStatus"):
        from sync import facade

        return getattr(facade, name)
    if name == "BrokerConfig":
        from sync import config

        return config.BrokerConfig
    raise AttributeError(f"module 'sync' has no attribute {name!r}")
