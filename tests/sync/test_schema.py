"""GateEvent: the agent <-> sync <-> central contract, validated strictly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sync.schema import EventInvalid, GateEvent


def _event(**kw: Any) -> GateEvent:
    base: dict[str, Any] = dict(
        gate="g-1", site="makkah", seq=5, eid=uuid.uuid4().hex, t=1795611751.5, tc="synced",
        kind="scan", verdict="admit", mode="entrance", ph=uuid.uuid4().hex, ptype="umrah",
        slot=1795610000, slot_end=1795613600, party=3, flags=("offline_soft",),
    )
    base.update(kw)
    return GateEvent(**base)


def test_round_trip_keeps_every_field() -> None:
    e = _event(note="crowd surge", trip="bus-17.0630", reason=None)
    d = e.to_dict()
    assert d["v"] == 1 and "reason" not in d and d["flags"] == ["offline_soft"]
    assert GateEvent.from_dict(d) == e
    bare = _event(flags=(), ph=None)
    assert "flags" not in bare.to_dict() and GateEvent.from_dict(bare.to_dict()) == bare


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gate", "g-1\n"),  # a trailing newline must not pass an identifier check
        ("gate", "a/b"),
        ("gate", "x" * 65),
        ("eid", "A" * 32),
        ("ph", "0" * 31),
        ("seq", 0),
        ("seq", True),
        ("seq", 1.0),
        ("t", float("nan")),
        ("t", "1"),
        ("party", 65),
        ("verdict", "maybe"),
        ("tc", None),
        ("note", "n" * 501),
        ("flags", ["ok", "bad flag"]),
        ("flags", "offline_soft"),
        ("v", 2),
        ("extra", 1),
    ],
)
def test_hostile_fields_refused(field: str, value: Any) -> None:
    d = _event().to_dict()
    d[field] = value
    with pytest.raises(EventInvalid):
        GateEvent.from_dict(d)


@pytest.mark.parametrize("value", [None, [], "event", 5])
def test_non_maps_refused(value: Any) -> None:
    with pytest.raises(EventInvalid):
        GateEvent.from_dict(value)
