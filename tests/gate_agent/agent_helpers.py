"""Builders shared by the gate agent tests (plain dicts in, validated objects out)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gate_agent.config import AgentConfig, config_from_dict
from verifier.permit import VerifiedPermit

SLOT = 1_800_000_000  # a slot start, epoch seconds
HOUR = 3600


def base_config(tmp: Path, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gate": "g1",
        "site": "haram",
        "mode": "entrance",
        "ledger": str(tmp / "ledger.sqlite"),
        "permits": {"types": ["umrah"], "gate_groups": ["north"]},
        "trust": {"bundle": str(tmp / "trust.json")},
        "clock": {"system": "trust"},
        "console": {"enabled": False, "port": 0},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            merged = copy.deepcopy(data[key])
            merged.update(value)
            data[key] = merged
        else:
            data[key] = value
    return data


def make_config(tmp: Path, **over: Any) -> AgentConfig:
    return config_from_dict(base_config(tmp, **over))


def permit(**kw: Any) -> VerifiedPermit:
    fields: dict[str, Any] = dict(
        permit_id=b"\x01" * 16, ph="ab" * 16, issuer="nusuk", issued_at=SLOT - 86400,
        ptype="umrah", site="haram", gate_groups=("north",), slot_start=SLOT,
        slot_end=SLOT + 2 * HOUR, party=1, holder_initials="A.B.", holder_doc_digits="1234",
        holder_hash=b"\x00" * 6, health="cleared", route=None, departure=None,
        kid=b"k1", alg="ES256",
    )
    fields.update(kw)
    return VerifiedPermit(**fields)


class FakeTime:
    """Wall and monotonic clocks a test moves by hand."""

    def __init__(self, wall: float = SLOT + 60.0, mono: float = 1000.0) -> None:
        self.wall = wall
        self.mono = mono
        self.synced: bool | None = True

    def advance(self, s: float) -> None:
        self.wall += s
        self.mono += s
