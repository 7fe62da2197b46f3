"""GateLink against a real Mosquitto: app-level acks, outages, backlog drain."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import FakeCentre, Ledger, wait_for

from sync import topics
from sync.config import BrokerConfig
from sync.link import GateLink, backoff_delay
from sync.outbox import Outbox

pytestmark = pytest.mark.broker


def cfg(port: int, **kw: Any) -> BrokerConfig:
    base: dict[str, Any] = {"port": port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
                            "keepalive": 5, "client_id": f"gp-test-{time.monotonic_ns()}"}
    base.update(kw)
    return BrokerConfig.model_validate(base)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_rows_deleted_only_after_the_centre_acks(tmp_path: Path, broker: Any,
                                                 centre: FakeCentre, protocol: str) -> None:
    gate = f"g-ack-{protocol}"
    centre.ack_enabled = False
    ledger = Ledger(tmp_path / "ledger.db", gate=gate)
    sent = ledger.admit(30)
    with Outbox(tmp_path / "ledger.db") as ob, GateLink(
            gate=gate, outbox=ob, broker=cfg(broker.port, protocol=protocol)) as link:
        wait_for(lambda: centre.seqs(gate) == {e.seq for e in sent}, 15, "centre receives all")
        link.set_health({"clock": "synced", "fps": 12.5})

        def health() -> list[dict[str, object]]:
            with centre.lock:
                return list(centre.health)

        wait_for(lambda: any(h.get("fps") == 12.5 and h.get("backlog") == 30
                             for h in health()), 10, "health with backlog")
        time.sleep(0.5)  # PUBACKs have long arrived; the rows must still be there
        assert ob.backlog() == 30
        assert link.status().acked_through == 0
        centre.ack_enabled = True
        centre.ack_now(gate)
        wait_for(lambda: ob.backlog() == 0, 15, "outbox emptied by the ack")
        assert link.status().acked_through == 30
        more = ledger.admit(5)
        wait_for(lambda: ob.backlog() == 0 and centre.seqs(gate) >= {e.seq for e in more}, 15,
                 "live events acked")
    assert {ev.seq: ev for ev in sent + more} == {s: centre.stored[(gate, s)] for s in
                                                  range(1, 36)}

    def states() -> list[str]:
        with centre.lock:
            return [st.state for st in centre.statuses if st.gate == gate]

    wait_for(lambda: states()[-1:] == ["offline"], 5, "offline status after a clean close")
    assert states()[0] == "online"
    ledger.close()


def test_unstored_batches_are_republished_after_the_ack_timeout(tmp_path: Path,
                                                                broker: Any) -> None:
    # Nobody subscribes at first: the broker PUBACKs and drops every batch.
    ledger = Ledger(tmp_path / "ledger.db", gate="g-void")
    ledger.admit(40)
    with Outbox(tmp_path / "ledger.db") as ob, GateLink(
            gate="g-void", outbox=ob, broker=cfg(broker.port, ack_timeout_s=1.0)) as link:
        wait_for(lambda: link.status().published_through == 40
                 and link.status().awaiting_puback == 0, 10, "first publish PUBACKed")
        centre = FakeCentre(broker.port).start()
        try:
            wait_for(lambda: ob.backlog() == 0, 20, "republished and acked")
            assert link.status().republishes >= 1
            assert centre.seqs("g-void") == set(range(1, 41))
        finally:
            centre.stop()
    ledger.close()


def test_backlog_drains_at_a_bounded_rate_and_live_events_go_first(
        tmp_path: Path, broker: Any, centre: FakeCentre) -> None:
    ledger = Ledger(tmp_path / "ledger.db", gate="g-back")
    ledger.admit(3000)  # queued during an "outage"
    rate = 2000.0
    c = cfg(broker.port, drain_rate=rate, batch_size=100)
    with Outbox(tmp_path / "ledger.db") as ob, GateLink(gate="g-back", outbox=ob,
                                                        broker=c) as link:
        wait_for(lambda: len(centre.seqs("g-back")) > 0, 10, "drain started")
        t0 = time.monotonic()
        live = ledger.admit(20)
        wait_for(lambda: ob.backlog() == 0, 30, "backlog and live events acknowledged")
        elapsed = time.monotonic() - t0
        assert link.status().acked_through == 3020
    with centre.lock:
        order = list(centre.order)
    first_live = min(order.index(e.seq) for e in live)
    last_backlog = max(i for i, s in enumerate(order) if s <= 3000)
    assert first_live < last_backlog  # live events overtook the backlog
    # The drain is bounded: one token bucket (rate/4) and a batch at once, then `rate`/s.
    assert elapsed >= (3000 - rate / 4 - 100) / rate
    ledger.close()


def test_refused_connection_is_never_connected(tmp_path: Path, mosquitto_factory: Any) -> None:
    b = mosquitto_factory(workdir=tmp_path / "m", extra_conf="")
    b.start()
    b.stop()  # nothing listens any more on that port
    Ledger(tmp_path / "ledger.db").admit(3)
    with Outbox(tmp_path / "ledger.db") as ob, GateLink(gate="g1", outbox=ob,
                                                        broker=cfg(b.port)) as link:
        time.sleep(1.0)
        st = link.status()
        assert not st.connected and st.published_through == 0 and st.backlog == 3
        assert st.last_error is not None and "connect" in st.last_error


def test_garbled_acks_delete_nothing(tmp_path: Path, broker: Any, centre: FakeCentre) -> None:
    gate = "g-garble"
    centre.ack_enabled = False
    ledger = Ledger(tmp_path / "ledger.db", gate=gate)
    ledger.admit(20)
    hostile = [b"\xff\xfe", b'{"v":1,"gate":"other","seq":20}', b'{"v":1,"gate":"g-garble"}',
               b'{"v":1,"gate":"g-garble","seq":"20"}', b"[" * 5000, b"{" + b" " * 9000 + b"}"]
    with Outbox(tmp_path / "ledger.db") as ob, GateLink(gate=gate, outbox=ob,
                                                        broker=cfg(broker.port)) as link:
        wait_for(lambda: len(centre.seqs(gate)) == 20, 10, "centre has the events")
        for n, payload in enumerate(hostile, 1):
            info = centre.client.publish(topics.ack(gate), payload, qos=1, retain=True)
            info.wait_for_publish(5)
            wait_for(lambda n=n: link.status().refused_acks == n, 5, f"ack #{n} refused")
        assert ob.backlog() == 20 and link.status().acked_through == 0
        centre.send_ack(gate, 12)  # a partial, valid ack
        wait_for(lambda: ob.backlog() == 8, 10, "valid ack applied")
        assert [e.seq for e in ob.pending(100)] == list(range(13, 21))
    ledger.close()


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(a, 0.5, 30.0, rng) for a in range(12)]
    for a, d in enumerate(delays):
        full = min(30.0, 0.5 * 2**a)
        assert full / 2 <= d <= full
    assert delays[-1] <= 30.0 and delays[5] > delays[0]
    spread = {round(backoff_delay(8, 0.5, 30.0, rng), 3) for _ in range(20)}
    assert len(spread) > 10  # jitter: gates do not reconnect in lockstep
