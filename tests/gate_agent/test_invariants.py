"""Exact counts under concurrency and random traffic: never more than the party, the quota
or the seats, and the console counters always equal the ledger."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable

import pytest
from conftest import SITE, slot

from gate_agent.agent import GateAgent
from gate_agent.errors import ConsoleRequestError
from verifier.sandbox import Sandbox

MakeAgent = Callable[..., GateAgent]


def test_same_permit_from_many_threads_admits_once(
    make_agent: MakeAgent, sandbox: Sandbox
) -> None:
    agent = make_agent()
    raw = sandbox.issue(site=SITE, slot=slot(), party=3)
    barrier = threading.Barrier(8)
    verdicts: list[str] = []

    def scan() -> None:
        barrier.wait(5)
        verdicts.append(agent.submit_payload(raw)["verdict"])

    threads = [threading.Thread(target=scan, name=f"scan-{i}") for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert sorted(verdicts) == ["admit"] + ["deny"] * 7
    assert agent.ledger.totals() == (3, 7)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_traffic_keeps_counts_exact(
    make_agent: MakeAgent, sandbox: Sandbox, seed: int
) -> None:
    rng = random.Random(seed)
    quota = 25
    agent = make_agent(group={"admission": "ask"}, capacity={"per_slot": quota})
    permits = [(sandbox.issue(site=SITE, slot=slot(), party=p), p)
               for p in (rng.randint(1, 5) for _ in range(15))]
    for _ in range(60):
        raw, _party = rng.choice(permits)
        d = agent.submit_payload(raw)
        if d["awaiting_count"] and rng.random() < 0.8:
            # A head count above what is left is refused, never half-applied.
            with contextlib.suppress(ConsoleRequestError):
                agent.confirm_party(d["id"], rng.randint(1, d["remaining"] + 1))
    admitted: dict[str, int] = {}
    for rec in agent.ledger.events():
        if rec.event.verdict == "admit":
            admitted[rec.event.ph or ""] = admitted.get(rec.event.ph or "", 0) + rec.event.party
    parties = {sandbox_ph(sandbox, raw): p for raw, p in permits}
    assert all(n <= parties[ph] for ph, n in admitted.items()), "a party admitted beyond its size"
    total = sum(admitted.values())
    assert total <= quota
    snap = agent.snapshot()
    assert snap["counters"]["gate_admitted"] == total == agent.ledger.totals()[0]
    assert snap["counters"]["slot_admitted"] == total


def sandbox_ph(sandbox: Sandbox, raw: str) -> str:
    from verifier.permit import permit_hash

    return permit_hash(sandbox.permit_id(raw))
