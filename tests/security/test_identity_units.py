"""Unit tests of gate identity (issue #9 items 3 and 4): the signed gate registry, the
gate's batch signature, and the outbox's rule that only an ack naming our ids deletes."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import cbor2
import pytest

from sync import wire
from sync.outbox import AckOutcome, Outbox
from sync.schema import GateEvent
from verifier import documents
from verifier.errors import DocumentRefused, Reason
from verifier.keys import ROLE_REGISTRY, SigningKey
from verifier.registry import (
    BatchSignatureInvalid,
    GateRegistry,
    make_entry,
    newer_registry,
    open_registry,
    parse_registry_body,
    registry_body,
    sign_batch,
    sign_registry,
    verify_batch,
)
from verifier.sandbox import Sandbox

NOW = 1_767_225_600


def _entries(n: int = 3) -> tuple[list[SigningKey], list]:  # type: ignore[type-arg]
    keys = [SigningKey.generate() for _ in range(n)]
    sites = ["makkah-haram", "makkah-haram", "madinah"]
    entries = [
        make_entry(f"gate-{i}", sites[i % 3], [f"grp-{i}"], "entrance", k.public_der())
        for i, k in enumerate(keys)
    ]
    return keys, entries


@pytest.fixture(scope="module")
def sb() -> Sandbox:
    return Sandbox.create(sites=("makkah-haram", "madinah"))


def test_registry_signed_by_root_opens_with_every_field(sb: Sandbox) -> None:
    keys, entries = _entries()
    raw = sign_registry(entries, 1, sb.root)
    reg = open_registry(raw, sb.new_store(), now=NOW)
    assert reg.version == 1 and set(reg.gates) == {"gate-0", "gate-1", "gate-2"}
    e = reg.get("gate-2")
    assert e is not None
    assert (e.site, e.groups, e.mode, e.alg_name) == ("madinah", ("grp-2",), "entrance", "ES256")
    assert e.spki() == keys[2].public_der()


def test_registry_signed_by_a_registry_role_key(sb: Sandbox) -> None:
    key = sb.add_issuer("registrar", roles=(ROLE_REGISTRY,), sites=None)
    sb.publish_trust_list()
    _, entries = _entries()
    assert open_registry(sign_registry(entries, 2, key), sb.new_store(), now=NOW).version == 2


def test_registry_refused_from_unknown_or_unentitled_signers(sb: Sandbox) -> None:
    _, entries = _entries()
    stranger = SigningKey.generate()
    with pytest.raises(DocumentRefused) as exc:
        open_registry(sign_registry(entries, 1, stranger), sb.new_store(), now=NOW)
    assert exc.value.reason == Reason.UNKNOWN_KEY
    # The central key signs beacons and used permits, not who the gates are.
    with pytest.raises(DocumentRefused) as exc:
        open_registry(sign_registry(entries, 1, sb.central), sb.new_store(), now=NOW)
    assert exc.value.reason == Reason.KEY_OUT_OF_SCOPE
    # A permit issuer key neither.
    with pytest.raises(DocumentRefused):
        open_registry(sign_registry(entries, 1, sb.issuers["es256"]), sb.new_store(), now=NOW)


def test_registry_from_a_retired_registry_key_is_refused(sb: Sandbox) -> None:
    key = sb.add_issuer("old-registrar", roles=(ROLE_REGISTRY,), sites=None,
                        verify_until=NOW - 1)
    sb.publish_trust_list()
    _, entries = _entries()
    raw = sign_registry(entries, 3, key)
    with pytest.raises(DocumentRefused) as exc:
        open_registry(raw, sb.new_store(), now=NOW)
    assert exc.value.reason == Reason.KEY_NOT_VALID


def test_registry_of_another_kind_is_refused(sb: Sandbox) -> None:
    _, entries = _entries()
    raw = documents.sign_document(documents.KIND_GATE_CONFIG, registry_body(entries), 1, sb.root)
    with pytest.raises(DocumentRefused) as exc:
        open_registry(raw, sb.new_store(), now=NOW)
    assert exc.value.reason == Reason.WRONG_KIND


def _body(**change: object) -> dict[str, object]:
    _, entries = _entries(1)
    entry = {**registry_body(entries)["gates"][0], **change}
    return {"gates": [entry]}


@pytest.mark.parametrize("body", [
    None, [], {"gates": None}, {"gates": [1]}, {"gates": [], "more": 1},
    _body(id="bad id"), _body(id="x" * 65), _body(site=""), _body(site=3),
    _body(groups="north"), _body(groups=["b", "a"]), _body(groups=["a", "a"]),
    _body(groups=["bad/grp"]), _body(mode="exit"), _body(alg="HS256"), _body(alg="PS256"),
    _body(spki=b"not a key"), _body(spki="MFkw"), _body(extra=1),
    {"gates": [_body()["gates"][0], _body()["gates"][0]]},  # type: ignore[index]
], ids=lambda b: json.dumps(b, default=str)[:60])
def test_malformed_registry_bodies_are_refused(body: object, sb: Sandbox) -> None:
    with pytest.raises(DocumentRefused) as exc:
        parse_registry_body(body)
    assert exc.value.reason in (Reason.MALFORMED, Reason.TOO_LARGE)
    raw = documents.sign_document(documents.KIND_GATE_REGISTRY, body, 1, sb.root)
    with pytest.raises(DocumentRefused):
        open_registry(raw, sb.new_store(), now=NOW)


def test_duplicate_gate_ids_are_refused_when_signing_too() -> None:
    _, entries = _entries(1)
    with pytest.raises(ValueError):
        registry_body([entries[0], entries[0]])


def test_older_or_different_same_version_registry_is_a_rollback(sb: Sandbox) -> None:
    _, entries = _entries()
    v2 = open_registry(sign_registry(entries, 2, sb.root), sb.new_store(), now=NOW)
    v1 = open_registry(sign_registry(entries[:1], 1, sb.root), sb.new_store(), now=NOW)
    other2 = open_registry(sign_registry(entries[:2], 2, sb.root), sb.new_store(), now=NOW)
    assert newer_registry(None, v1) and newer_registry(v1, v2)
    assert newer_registry(v2, v2) is False  # the same registry again: nothing to do
    for offered in (v1, other2):
        with pytest.raises(DocumentRefused) as exc:
            newer_registry(v2, offered)
        assert exc.value.reason == Reason.ROLLBACK


def test_a_corrupted_registry_document_is_refused(sb: Sandbox) -> None:
    _, entries = _entries()
    raw = bytearray(sign_registry(entries, 1, sb.root))
    store = sb.new_store()
    for i in range(0, len(raw), max(1, len(raw) // 97)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        with pytest.raises(DocumentRefused):
            open_registry(bytes(bad), store, now=NOW)


# --- batch signatures --------------------------------------------------------------------


def _event(gate: str, seq: int, site: str = "makkah-haram") -> GateEvent:
    return GateEvent(gate=gate, site=site, seq=seq, eid=uuid.uuid4().hex, t=NOW + seq,
                     tc="synced", kind="scan", verdict="admit", mode="entrance",
                     ph=uuid.uuid4().hex, ptype="umrah", slot=NOW, slot_end=NOW + 3600, party=1)


def test_signed_batch_verifies_and_every_byte_flip_is_refused() -> None:
    key = SigningKey.generate()
    entry = make_entry("gate-a", "makkah-haram", ["north"], "entrance", key.public_der())
    payload = wire.encode_batch("gate-a", [_event("gate-a", s) for s in (1, 2)],
                                signer=lambda b: sign_batch(key, b), groups=["north"])
    batch = wire.decode_signed_batch(payload, "gate-a")
    assert batch.sig is not None and batch.groups == ("north",)
    verify_batch(entry, batch.signed, batch.sig)
    refused = 0
    for i in range(len(payload)):
        bad = bytearray(payload)
        bad[i] ^= 0x01
        try:
            b = wire.decode_signed_batch(bytes(bad), "gate-a")
            if b.sig is None:
                raise BatchSignatureInvalid("unsigned")
            verify_batch(entry, b.signed, b.sig)
        except (wire.WireError, BatchSignatureInvalid):
            refused += 1
    assert refused == len(payload)


def test_batch_signature_of_another_gate_or_context_is_refused() -> None:
    key_a, key_b = SigningKey.generate(), SigningKey.generate()
    entry_a = make_entry("gate-a", "makkah-haram", [], "entrance", key_a.public_der())
    payload = wire.encode_batch("gate-a", [_event("gate-a", 1)],
                                signer=lambda b: sign_batch(key_b, b))
    batch = wire.decode_signed_batch(payload, "gate-a")
    assert batch.sig is not None
    with pytest.raises(BatchSignatureInvalid):
        verify_batch(entry_a, batch.signed, batch.sig)
    # A plain ES256 signature over the same bytes (no batch context) is not a batch signature.
    from verifier import cose
    plain = cose.sign(key_a.alg_id, key_a.private, batch.signed)
    with pytest.raises(BatchSignatureInvalid):
        verify_batch(entry_a, batch.signed, plain)


def test_raw_batches_are_signed_once_each_and_fit_the_limit() -> None:
    key = SigningKey.generate()
    entry = make_entry("g1", "makkah-haram", [], "entrance", key.public_der())
    rows = [(s, json.dumps(_event("g1", s).to_dict(), separators=(",", ":")))
            for s in range(1, 1201)]
    calls: list[int] = []

    def signer(b: bytes) -> bytes:
        calls.append(len(b))
        return sign_batch(key, b)

    out = wire.encode_raw_batches("g1", rows, 500, signer=signer)
    assert len(calls) == len(out) >= 3
    for _, _, payload in out:
        assert len(payload) <= wire.MAX_BATCH_BYTES
        b = wire.decode_signed_batch(payload, "g1")
        assert b.sig is not None
        verify_batch(entry, b.signed, b.sig)


@pytest.mark.parametrize("tail", [
    b',"sig":"' + b"A" * 200 + b'"}', b',"sig":"AA=="}', b',"sig":"A*A"}', b',"sig":1}',
])
def test_malformed_signatures_are_refused(tail: bytes) -> None:
    body = wire.encode_batch("g1", [_event("g1", 1)])
    with pytest.raises(wire.WireError):
        wire.decode_signed_batch(body[:-1] + tail, "g1")


def test_sig_must_be_the_last_member() -> None:
    key = SigningKey.generate()
    payload = wire.encode_batch("g1", [_event("g1", 1)], signer=lambda b: sign_batch(key, b))
    doc = json.loads(payload)
    moved = {"v": 1, "gate": "g1", "sig": doc["sig"], "events": doc["events"]}
    with pytest.raises(wire.WireError):
        wire.decode_signed_batch(json.dumps(moved, separators=(",", ":")).encode(), "g1")


# --- the outbox ack rule -----------------------------------------------------------------


@pytest.fixture
def outbox(tmp_path: Path) -> tuple[Outbox, list[GateEvent]]:
    db = tmp_path / "ledger.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    Outbox.ensure_schema(conn)
    events = [_event("g1", s) for s in range(1, 11)]
    conn.execute("BEGIN")
    for ev in events:
        Outbox.add(conn, ev)
    conn.execute("COMMIT")
    conn.close()
    return Outbox(db), events


def _ack(events: list[GateEvent], first: int, seq: int, **swap: str) -> wire.Ack:
    eids = [swap.get(str(ev.seq), ev.eid) for ev in events if first <= ev.seq <= seq]
    return wire.decode_ack(wire.encode_ack("g1", seq, first, wire.eid_digest(eids)), "g1")


def test_an_ack_naming_our_ids_deletes_through_its_seq(
        outbox: tuple[Outbox, list[GateEvent]]) -> None:
    ob, events = outbox
    assert ob.apply_ack(_ack(events, 1, 4)) == (AckOutcome.APPLIED, 4)
    assert ob.acked_through() == 4 and ob.backlog() == 6
    assert ob.apply_ack(_ack(events, 5, 10)) == (AckOutcome.APPLIED, 6)
    assert ob.backlog() == 0


def test_an_ack_naming_another_id_deletes_nothing(
        outbox: tuple[Outbox, list[GateEvent]]) -> None:
    ob, events = outbox
    fake = uuid.uuid4().hex
    assert ob.apply_ack(_ack(events, 1, 5, **{"3": fake}))[0] is AckOutcome.MISMATCH
    assert ob.backlog() == 10 and ob.acked_through() == 0


def test_acks_that_name_nothing_or_cannot_be_checked_delete_nothing(
        outbox: tuple[Outbox, list[GateEvent]]) -> None:
    ob, events = outbox
    # the old, bare ack: "everything through 10 is stored" with no ids
    bare = wire.decode_ack(wire.encode_ack("g1", 10), "g1")
    assert ob.apply_ack(bare)[0] is AckOutcome.NOTHING
    assert ob.apply_ack(_ack(events, 3, 6))[0] is AckOutcome.AHEAD  # 1..2 not proven yet
    # beyond our newest seq: the centre holds events this gate never wrote
    beyond = wire.decode_ack(wire.encode_ack("g1", 12, 1, wire.eid_digest(
        [ev.eid for ev in events] + [uuid.uuid4().hex, uuid.uuid4().hex])), "g1")
    assert ob.apply_ack(beyond)[0] is AckOutcome.MISMATCH
    assert ob.backlog() == 10
    assert ob.apply_ack(_ack(events, 1, 2))[0] is AckOutcome.APPLIED
    assert ob.apply_ack(_ack(events, 1, 6))[0] is AckOutcome.STALE  # rows 1..2 are gone
    assert ob.backlog() == 8


def test_registry_round_trips_through_cbor_canonically(sb: Sandbox) -> None:
    _, entries = _entries()
    raw = sign_registry(entries, 1, sb.root)
    reg: GateRegistry = open_registry(raw, sb.new_store(), now=NOW)
    body = registry_body(reg.gates.values())
    assert cbor2.dumps(body, canonical=True) == cbor2.dumps(registry_body(entries),
                                                            canonical=True)


# --- the registry at the centre -----------------------------------------------------------


def test_the_centre_takes_newer_registries_only_and_other_workers_adopt_them(
        tmp_path: Path, sb: Sandbox) -> None:
    from central.aggregator import Aggregator
    from central.errors import DownlinkError
    from central.store import open_store
    from sync.config import BrokerConfig

    _, entries = _entries()
    store = sb.new_store()
    raw1 = sign_registry(entries[:1], 1, sb.root)
    raw2 = sign_registry(entries, 2, sb.root)
    reg1 = open_registry(raw1, store, now=NOW)
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as db:
        agg = Aggregator(store=db, broker=BrokerConfig(), client_id="w1", trust=store,
                         registry=reg1, clock=lambda: NOW)
        given = agg.give(raw2)
        assert (given.kind, given.version) == (documents.KIND_GATE_REGISTRY, 2)
        assert agg.registry is not None and set(agg.registry.gates) == {e.gate for e in entries}
        for old in (raw1, sign_registry(entries[:2], 2, sb.root)):
            with pytest.raises(DownlinkError, match="rollback"):
                agg.give(old)
        assert agg.registry.version == 2
        # a worker started later from the config's v1 file adopts the stored v2
        other = Aggregator(store=db, broker=BrokerConfig(), client_id="w2", trust=store,
                           registry=reg1, clock=lambda: NOW)
        assert other.registry is not None and other.registry.version == 2
        agg.close()
        other.close()


def test_a_registry_posted_to_the_dashboard_takes_the_document_path(
        tmp_path: Path, sb: Sandbox) -> None:
    import http.client

    from central.aggregator import Aggregator
    from central.dashboard import DashboardServer
    from central.store import open_store
    from sync.config import BrokerConfig

    _, entries = _entries()
    store = sb.new_store()
    reg1 = open_registry(sign_registry(entries[:1], 1, sb.root), store, now=NOW)

    def post(port: int, raw: bytes) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", "/api/documents", body=raw)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as db:
        agg = Aggregator(store=db, broker=BrokerConfig(), client_id="w1", trust=store,
                         registry=reg1, clock=lambda: NOW)
        dash = DashboardServer(store=db, sites=[], port=0, give=agg.give,
                               max_body_bytes=1 << 20)
        dash.start()
        try:
            assert post(dash.port, sign_registry(entries, 3, sb.root)) == 201
            assert post(dash.port, sign_registry(entries[:2], 2, sb.root)) == 409  # older
            stranger = SigningKey.generate()
            assert post(dash.port, sign_registry(entries, 4, stranger)) >= 400
            assert agg.registry is not None and agg.registry.version == 3
            assert [d.version for d in db.documents(documents.KIND_GATE_REGISTRY)] == [3, 1]
        finally:
            dash.close()
            agg.close()


# --- seq alarms in both stores ------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def central_store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    from central.store import open_store

    url = (f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    with open_store(url) as s:
        yield s


def test_seq_alarm_holds_the_ack_and_resolution_recounts_exactly(central_store) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    store = central_store
    first = [_event("g1", s) for s in (1, 2, 3)]
    r = store.add_events(first, now=1.0)
    assert r.acks == {"g1": 3}
    assert r.proofs["g1"] == (1, wire.eid_digest(e.eid for e in first))
    shared_ph = uuid.uuid4().hex
    fake = replace(_event("g1", 4), ph=shared_ph, t=10.0)
    assert store.add_events([fake], now=2.0).acks == {"g1": 4}  # nobody knows yet
    other = replace(_event("g2", 1), ph=shared_ph, t=20.0)
    assert store.add_events([other], now=3.0).conflicts == 1  # g2 flagged against the fake
    real = _event("g1", 4)
    r = store.add_events([real, _event("g1", 5)], now=4.0)
    assert r.seq_conflicts == (("g1", 4, real.eid, fake.eid),)
    assert r.acks == {"g1": 3}  # never acknowledged as the gate's: held below the alarm
    assert r.proofs["g1"][0] > 3  # names nothing
    again = store.add_events([real], now=5.0)
    assert again.acks == {"g1": 3}
    (alarm,) = store.seq_alarms(open_only=True)
    assert (alarm.seen, alarm.stored_eid) == (2, fake.eid)
    with pytest.raises(Exception, match="neither"):
        store.resolve_seq_alarm("g1", 4, uuid.uuid4().hex, now=6.0)
    what = store.resolve_seq_alarm("g1", 4, real.eid, now=6.0)
    assert "quarantined" in what and store.seq_alarm_count() == 0
    keys = dict(store.stored_keys("g1"))
    assert keys[4] == real.eid and len(keys) == 5
    r = store.add_events([real], now=7.0)
    assert r.acks == {"g1": 5}
    assert r.proofs["g1"] == (4, wire.eid_digest([real.eid, keys[5]]))
    assert sum(c.admitted for c in store.counts() if c.gate == "g1") == 5
    assert sum(c.events for c in store.counts()) == 6
    assert store.conflict_count() == 0  # the quarantined admission no longer stands
    with pytest.raises(Exception, match="no open seq alarm"):
        store.resolve_seq_alarm("g1", 4, real.eid, now=8.0)
    # the quarantined event coming back is an alarm of its own, already resolved: no hold
    store.add_events([fake], now=9.0)
    assert store.add_events([_event("g1", 6)], now=10.0).acks == {"g1": 6}


def test_an_outbox_made_before_event_id_acks_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE sync_outbox (seq INTEGER PRIMARY KEY, gate TEXT NOT NULL,"
                 " body TEXT NOT NULL)")
    events = [_event("g1", s) for s in (1, 2, 3)]
    for ev in events:
        conn.execute("INSERT INTO sync_outbox VALUES (?, ?, ?)",
                     (ev.seq, ev.gate, json.dumps(ev.to_dict(), separators=(",", ":"))))
    conn.close()
    with Outbox(db) as ob:
        assert ob.ids(1, 3) == [(e.seq, e.eid) for e in events]
        assert ob.apply_ack(_ack(events, 1, 2)) == (AckOutcome.APPLIED, 2)
        assert ob.backlog() == 1
