"""Documents given to the centre (HTTP ``POST /api/documents``): no rollback, no retired signer.

The issue's attack: an old revocation snapshot v1 posted after v2 was accepted and
re-published as the retained snapshot, so a gate installed afterwards admitted a permit
v2 revokes. Here the real aggregator on SQLite and PostgreSQL, a real Mosquitto and the
real dashboard server: the old snapshot gets HTTP 409, is not kept, is not published,
and a gate that starts afterwards still refuses the permit.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from central_helpers import Listener, broker_config, uid, wait_for

from central.aggregator import Aggregator
from central.dashboard import DashboardServer
from central.downlink import held_version
from central.store import Store, open_store
from sync import topics
from sync.downlink import Downlink
from verifier import Reason, RevocationSet, documents, verify_at
from verifier.errors import PermitRefused
from verifier.revocation import sign_delta, sign_snapshot
from verifier.sandbox import Sandbox

pytestmark = pytest.mark.broker


@pytest.fixture(params=["sqlite", "postgres"])
def centre(
    request: pytest.FixtureRequest, broker: Any, tmp_path: Path
) -> Iterator[tuple[Sandbox, Store, Aggregator, DashboardServer]]:
    sb = Sandbox.create(sites=("haram",), seed="rollback")
    url = (
        f"sqlite:///{tmp_path}/central.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = open_store(url)
    agg = Aggregator(
        store=store, broker=broker_config(broker.port), client_id=uid("agg-rb"),
        trust=sb.new_store(), clock=lambda: float(sb.epoch),
    )
    dash = DashboardServer(store=store, sites=[], port=0, give=agg.give, max_body_bytes=1 << 20)
    agg.start()
    dash.start()
    try:
        wait_for(lambda: agg.connected, 30, "aggregator connected")
        yield sb, store, agg, dash
    finally:
        dash.close()
        agg.close()
        store.close()


def post(dash: DashboardServer, raw: bytes) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", dash.port, timeout=10)
    try:
        conn.request("POST", "/api/documents", body=raw)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_old_revocation_snapshot_is_refused_with_409_and_changes_nothing(
    centre: tuple[Sandbox, Store, Aggregator, DashboardServer], broker: Any
) -> None:
    sb, store, _, dash = centre
    permit = sb.issue(slot=(sb.epoch, sb.epoch + 3600))
    pid = sb.permit_id(permit)
    v1 = sign_snapshot([], 1, sb.revoker)
    v2 = sign_snapshot([pid], 2, sb.revoker)
    assert post(dash, v1)[0] == 201
    assert post(dash, v2)[0] == 201
    for raw, why in ((v1, "rollback"), (v2, "rollback"), (sign_snapshot([], 2, sb.revoker),
                                                          "rollback")):
        status, body = post(dash, raw)
        assert status == 409 and why in body["error"], body
    assert [d.version for d in store.documents(documents.KIND_REVOCATION_SNAPSHOT)] == [2, 1]
    assert store.latest_document(documents.KIND_REVOCATION_SNAPSHOT) == v2
    # The session's broker is shared: an earlier test's retained snapshot may still be in
    # place until the centre's publication of v2 lands. Wait for v2 to be published...
    first = Listener(broker.port, [topics.REVOCATION_SNAPSHOT])
    try:
        wait_for(lambda: v2 in first.on(topics.REVOCATION_SNAPSHOT, stale=True), 30,
                 "v2 published")
    finally:
        first.close()
    # ...then a gate installed now gets the retained snapshot: v2 (never v1), so the
    # permit stays refused.
    listener = Listener(broker.port, [topics.REVOCATION_SNAPSHOT])
    try:
        wait_for(lambda: bool(listener.on(topics.REVOCATION_SNAPSHOT, stale=True)), 30,
                 "the retained snapshot")
        got = listener.on(topics.REVOCATION_SNAPSHOT, stale=True)
    finally:
        listener.close()
    assert got == [v2]
    retained = got[0]
    gate_store = sb.new_store()
    revset = RevocationSet(gate_store)
    dl = Downlink(gate="g1", site="haram", trust=gate_store, clock=lambda: float(sb.epoch),
                  on_revocations=lambda item: revset.apply(item.raw, now=float(sb.epoch)))
    dl.handle(topics.REVOCATION_SNAPSHOT, retained, True)
    with pytest.raises(PermitRefused) as info:
        verify_at(permit, sb.epoch + 60, trust=gate_store, revocations=revset)
    assert info.value.reason == Reason.REVOKED


def test_deltas_follow_the_held_version_and_retired_signers_sign_nothing(
    centre: tuple[Sandbox, Store, Aggregator, DashboardServer],
) -> None:
    sb, store, agg, dash = centre
    a, b = b"\x01" * 16, b"\x02" * 16
    status, body = post(dash, sign_delta(0, 1, sb.revoker, add=[a]))
    assert status == 201 and body["version"] == 1
    status, body = post(dash, sign_delta(3, 4, sb.revoker, add=[b]))  # skips 1 -> 3
    assert status == 409 and "version_gap" in body["error"]
    status, body = post(dash, sign_delta(0, 1, sb.revoker, add=[b]))  # same version again
    assert status == 409 and "rollback" in body["error"]
    assert post(dash, sign_snapshot([a, b], 2, sb.revoker))[0] == 201
    assert held_version(store, documents.KIND_REVOCATION_DELTA) == 2
    assert post(dash, sign_delta(2, 3, sb.revoker, remove=[a]))[0] == 201
    # the revocation key retired (until) before the centre's clock: refused, 422
    sb.specs["revoker"].verify_until = sb.epoch - 1
    newer = sb.publish_trust_list()
    assert post(dash, newer)[0] == 201
    status, body = post(dash, sign_delta(3, 4, sb.revoker, add=[a]))
    assert status == 422 and "key_not_valid" in body["error"], body
    # an older trust list is a rollback too
    status, body = post(dash, sb.sign_trust_list(1))
    assert status == 409 and "rollback" in body["error"]
    assert agg.stats().last_error is None or "document" not in (agg.stats().last_error or "")
    kept = sorted((d.kind, d.version) for d in store.documents())
    assert kept == [
        (documents.KIND_REVOCATION_DELTA, 1),
        (documents.KIND_REVOCATION_DELTA, 3),
        (documents.KIND_REVOCATION_SNAPSHOT, 2),
        (documents.KIND_TRUST_LIST, sb.trust_version),
    ]
