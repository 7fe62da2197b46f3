"""Wire payloads and topics: round trips, and hostile input refused with WireError."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from sync_helpers import make_event

from sync import topics, wire
from sync.errors import SyncError, TopicError, WireError


def batch_dict(n: int = 3, gate: str = "g1") -> dict[str, Any]:
    return {"v": 1, "gate": gate, "events": [make_event(i, gate=gate).to_dict()
                                               for i in range(1, n + 1)]}


def raw(d: Any) -> bytes:
    return json.dumps(d).encode()


def test_batch_round_trip() -> None:
    events = [make_event(i) for i in range(1, 11)]
    assert wire.decode_batch(wire.encode_batch("g1", events), "g1") == events


def test_raw_batches_split_within_limits_and_round_trip() -> None:
    events = [make_event(i, note="n" * 450) for i in range(1, 1401)]
    rows = [(e.seq, json.dumps(e.to_dict())) for e in events]
    batches = wire.encode_raw_batches("g1", rows, 500)
    assert all(len(p) <= wire.MAX_BATCH_BYTES for _, _, p in batches)
    assert len(batches) > 3  # bytes, not only the 500-event cap, forced splits
    decoded = [e for _, _, p in batches for e in wire.decode_batch(p, "g1")]
    assert decoded == events
    assert batches[0][0] == 1 and batches[-1][1] == 1400
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(batches))


def test_encode_refuses_foreign_or_too_many_events() -> None:
    with pytest.raises(WireError):
        wire.encode_batch("g1", [make_event(1, gate="g2")])
    with pytest.raises(WireError):
        wire.encode_batch("g1", [make_event(i) for i in range(1, 502)])
    with pytest.raises(WireError):
        wire.encode_batch("g1", [])


def _mutations() -> list[tuple[str, bytes]]:
    good = raw(batch_dict())
    b = batch_dict()
    b["events"][1]["gate"] = "g2"
    dup = batch_dict()
    dup["events"][1]["seq"] = 1
    bad_ev = batch_dict()
    bad_ev["events"][2]["party"] = -1
    extra_ev = batch_dict()
    extra_ev["events"][0]["admin"] = True
    nan = good.replace(b'"t": 1700000001.0', b'"t": NaN')
    assert nan != good
    return [
        ("empty", b""),
        ("truncated", good[: len(good) // 2]),
        ("not utf-8", b'{"v":1,"gate":"\xff\xfe"}'),
        ("not json", b"\x00\x01garbage"),
        ("a list", b"[1,2,3]"),
        ("a string", b'"hello"'),
        ("oversized", b'{"v":1,"gate":"g1","events":[' + b" " * wire.MAX_BATCH_BYTES + b"]}"),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
        ("nan", nan),
        ("infinity", b'{"v":1,"gate":"g1","events":[],"x":Infinity}'),
        ("huge int", b'{"v":1,"gate":"g1","events":[' + b"9" * 5000 + b"]}"),
        ("duplicate key", b'{"v":1,"gate":"g1","gate":"g1","events":[]}'),
        ("wrong version", raw({**batch_dict(), "v": 2})),
        ("bool version", raw({**batch_dict(), "v": True})),
        ("unknown key", raw({**batch_dict(), "extra": 1})),
        ("no events", raw({"v": 1, "gate": "g1", "events": []})),
        ("events not list", raw({"v": 1, "gate": "g1", "events": {"a": 1}})),
        ("too many events", raw(batch_dict(501))),
        ("header gate differs from topic", raw(batch_dict(gate="g2"))),
        ("event gate differs from topic", raw(b)),
        ("duplicate seq", raw(dup)),
        ("invalid event field", raw(bad_ev)),
        ("unknown event field", raw(extra_ev)),
        ("event not a map", raw({"v": 1, "gate": "g1", "events": [1]})),
        ("wildcard gate", raw({"v": 1, "gate": "+", "events": []})),
    ]


@pytest.mark.parametrize(("name", "payload"), _mutations(), ids=[m[0] for m in _mutations()])
def test_decode_batch_refuses_hostile_input(name: str, payload: bytes) -> None:
    with pytest.raises(WireError) as info:
        wire.decode_batch(payload, "g1")
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300
    assert isinstance(info.value, SyncError) and isinstance(info.value, ValueError)


def test_decode_batch_refuses_non_bytes_and_bad_topic_gate() -> None:
    with pytest.raises(WireError):
        wire.decode_batch("{}", "g1")  # type: ignore[arg-type]
    with pytest.raises(WireError):
        wire.decode_batch(raw(batch_dict()), "g1/#")


def test_ack_round_trip_and_refusals() -> None:
    assert wire.decode_ack(wire.encode_ack("g1", 42), "g1").seq == 42
    assert wire.decode_ack(wire.encode_ack("g1", 0), "g1").seq == 0
    d = wire.eid_digest(["a" * 32, "b" * 32])
    ack = wire.decode_ack(wire.encode_ack("g1", 42, 41, d), "g1")
    assert (ack.seq, ack.first, ack.digest, ack.names()) == (42, 41, d, True)
    assert not wire.decode_ack(wire.encode_ack("g1", 42), "g1").names()  # names nothing
    for bad in [b"", b"{", b"null", raw({"v": 1, "gate": "g1"}),
                raw({"v": 1, "gate": "g1", "seq": -1}), raw({"v": 1, "gate": "g1", "seq": 1.5}),
                raw({"v": 1, "gate": "g1", "seq": True}), raw({"v": 1, "gate": "g1", "seq": "9"}),
                raw({"v": 1, "gate": "g1", "seq": 2**70}),
                raw({"v": 1, "gate": "g2", "seq": 5}),
                raw({"v": 1, "gate": "g1", "seq": 5, "more": 1}), b"x" * 10_000,
                raw({"v": 1, "gate": "g1", "seq": 5, "first": 1}),
                raw({"v": 1, "gate": "g1", "seq": 5, "digest": "0" * 64}),
                raw({"v": 1, "gate": "g1", "seq": 5, "first": 1, "digest": "0" * 63}),
                raw({"v": 1, "gate": "g1", "seq": 5, "first": 1, "digest": "G" * 64})]:
        with pytest.raises(WireError):
            wire.decode_ack(bad, "g1")
    with pytest.raises(WireError):
        wire.encode_ack("g1", -3)


def test_status_and_health_round_trip_and_refusals() -> None:
    st = wire.decode_status(wire.encode_status("g1", "online", 12.5), "g1")
    assert (st.state, st.t) == ("online", 12.5)
    assert wire.decode_status(wire.encode_status("g1", "offline", None), "g1").t is None
    h = wire.decode_health(wire.encode_health("g1", 3.0, {"backlog": 7, "clock": "synced"}),
                           "g1")
    assert h == {"backlog": 7, "clock": "synced", "t": 3.0}
    with pytest.raises(WireError):
        wire.encode_status("g1", "maybe", 1.0)
    with pytest.raises(WireError):
        wire.decode_status(raw({"v": 1, "gate": "g1", "state": "up"}), "g1")
    with pytest.raises(WireError):
        wire.encode_health("g1", 1.0, {"nested": {"a": 1}})
    with pytest.raises(WireError):
        wire.encode_health("g1", 1.0, {f"k{i}": i for i in range(40)})
    with pytest.raises(WireError):
        wire.decode_health(raw({"v": 1, "gate": "g1", "t": 1, "x": [1]}), "g1")
    with pytest.raises(WireError):
        wire.decode_health(raw({"v": 1, "gate": "g1"}), "g1")


def test_topics_build_and_parse() -> None:
    assert topics.events("g1") == "gp/v1/gates/g1/events"
    assert topics.parse_gate_topic("gp/v1/gates/g-7.a/ack") == ("g-7.a", "ack")
    assert topics.parse_site_used(topics.site_used("mecca")) == "mecca"
    assert topics.SHARED_EVENTS == "$share/agg/gp/v1/gates/+/events"
    for bad in ["gp/v1/gates/g1", "gp/v1/gates/g1/events/x", "gp/v2/gates/g1/events",
                "gp/v1/gates/+/events", "gp/v1/gates/g1/secrets", "gp/v1/gates//events"]:
        with pytest.raises(TopicError):
            topics.parse_gate_topic(bad)
    for bad_id in ["", "a/b", "+", "#", "$SYS", "x" * 65]:
        with pytest.raises(TopicError):
            topics.events(bad_id)
