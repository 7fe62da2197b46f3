"""Random and mutated payloads: decoders return a value or raise WireError, nothing else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sync_helpers import make_event

from sync import wire
from sync.errors import WireError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=10), kids,
                                                              max_size=5),
    max_leaves=30,
)
GOOD = wire.encode_batch("g1", [make_event(i) for i in range(1, 4)])


def decode_all(payload: bytes) -> None:
    for fn in (lambda p: wire.decode_batch(p, "g1"), lambda p: wire.decode_ack(p, "g1"),
               lambda p: wire.decode_status(p, "g1"), lambda p: wire.decode_health(p, "g1")):
        try:
            fn(payload)
        except WireError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes(payload: bytes) -> None:
    decode_all(payload)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json(doc: Any) -> None:
    decode_all(json.dumps(doc).encode())
    decode_all(json.dumps({"v": 1, "gate": "g1", "events": [doc], "seq": doc}).encode())


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255), st.integers(0, len(GOOD)))
def test_mutated_good_batch(pos: int, byte: int, cut: int) -> None:
    mutated = GOOD[:pos] + bytes([byte]) + GOOD[pos + 1:]
    decode_all(mutated)
    decode_all(GOOD[:cut])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["seq", "party", "t", "slot", "gate", "eid", "verdict", "flags"]),
       json_values)
def test_event_field_replaced(field: str, value: Any) -> None:
    d = json.loads(GOOD)
    d["events"][1][field] = value
    try:
        events = wire.decode_batch(json.dumps(d).encode(), "g1")
    except WireError:
        return
    assert len(events) == 3 and all(e.gate == "g1" for e in events)
