"""Issue #9 items 5, 6 and 8 against the real deployment (the shipped broker, the real
aggregator on PostgreSQL, a gate's own downlink path), each test failing if its attack works.

5. An old revocation snapshot given to the centre after a newer one is refused, changes
   nothing, and a gate installed afterwards still refuses the permit the newer one revokes
   (before: v1 was accepted and re-published as the retained snapshot).
6. A revocation key past its ``until`` cannot un-revoke a permit with a delta, at the centre
   or at a gate.
8. Permits with duplicate claim keys, trailing bytes, unsorted keys or long integers, signed
   by the real issuer key, are refused ``non_canonical`` by a running gate agent (before:
   all of them verified, and two verifiers could read two different permits).

Item 7 (hostile images) is tests/security/test_hostile_images.py; item 9 (the DCC expiry
boundary) is a conformance rule, tested in tests/verifier/test_dcc.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployment import missing_tools
from identity_helpers import DEADLINE_S, Deployment, deployment, wait_for
from realparts import missing_part

from central.errors import DocumentNotNewer, DownlinkError
from gate_agent.trust import GateTrust
from sync import topics
from verifier import Reason, verify_at
from verifier.errors import PermitRefused, VerifierError
from verifier.keys import ROLE_REVOCATION
from verifier.revocation import sign_delta, sign_snapshot

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "permits"


@pytest.fixture
def dep(tmp_path: Path, postgres_url: str) -> Iterator[Deployment]:
    missing = missing_tools()
    if missing:
        missing_part(f"not installed: {', '.join(missing)}")
    with deployment(tmp_path, postgres_url) as d:
        yield d


def _permit(d: Deployment) -> tuple[str, bytes]:
    now = int(time.time())
    text = d.sb.issue(site="makkah-haram", slot=(now - 600, now + 3600), party=1)
    return text, d.sb.permit_id(text)


def _new_gate(d: Deployment) -> GateTrust:
    """A gate installed now: the bundle's keys (no revocations), then whatever retained
    revocation snapshot the broker hands a freshly connected gate."""
    trust = GateTrust(d.sb.new_store())
    gate = d.client("gate-b", [topics.REVOCATION_SNAPSHOT])
    wait_for(lambda: bool(gate.on(topics.REVOCATION_SNAPSHOT)), DEADLINE_S,
             "the retained revocation snapshot")
    for raw in gate.on(topics.REVOCATION_SNAPSHOT):
        trust.apply_revocations(raw)
    return trust


def _refusal(text: str, trust: GateTrust) -> Reason | None:
    try:
        verify_at(text, time.time(), trust=trust.store, revocations=trust.revocations)
    except PermitRefused as exc:
        return exc.reason
    return None


def test_an_old_revocation_snapshot_never_reaches_a_new_gate(dep: Deployment) -> None:
    d = dep
    text, pid = _permit(d)
    v1 = sign_snapshot([], 1, d.sb.revoker, issued_at=int(time.time()))
    v2 = sign_snapshot([pid], 2, d.sb.revoker, issued_at=int(time.time()))
    assert d.aggregator.give(v2).version == 2
    with pytest.raises(DocumentNotNewer):
        d.aggregator.give(v1)  # what POST /api/documents calls: HTTP 409
    assert d.store.latest_document("revocation_snapshot") == v2  # kept: v2, not v1
    trust = _new_gate(d)
    assert trust.revocations.version == 2
    assert _refusal(text, trust) is Reason.REVOKED


def test_a_retired_revocation_key_cannot_unrevoke(dep: Deployment) -> None:
    d = dep
    text, pid = _permit(d)
    now = int(time.time())
    retired = d.sb.add_issuer("old-revoker", roles=(ROLE_REVOCATION,), issuer="central",
                              verify_until=now - 60)
    d.aggregator.give(d.sb.publish_trust_list(apply=False))  # the centre and gates get it
    assert d.aggregator.give(sign_snapshot([pid], 1, d.sb.revoker, issued_at=now)).version == 1
    unrevoke = sign_delta(1, 2, retired, remove=[pid], issued_at=now)
    with pytest.raises(DownlinkError):
        d.aggregator.give(unrevoke)
    assert d.store.latest_document("revocation_delta") is None
    trust = _new_gate(d)  # its bundle names the retired key, as the trust list does
    with pytest.raises(VerifierError):
        trust.apply_revocations(unrevoke)  # straight to a gate: refused there too
    assert _refusal(text, trust) is Reason.REVOKED


@pytest.mark.parametrize("vector", [
    "non-canonical-duplicate-claim", "non-canonical-trailing-bytes",
    "non-canonical-claims-order", "non-canonical-long-integer",
    "non-canonical-indefinite-length", "non-canonical-header-order",
    "non-canonical-header-alg-long",
])
def test_non_canonical_permits_are_refused_by_a_running_gate(vector: str, tmp_path: Path) -> None:
    from gate_agent.assembly import assemble
    from gate_agent.config import config_from_dict

    [path] = VECTORS.glob(f"*{vector}.json")
    case = json.loads(path.read_text())
    trust = (path.parent / case["trust"]).resolve()
    cfg = config_from_dict({
        "gate": "g-canon", "site": "makkah-haram", "mode": "entrance",
        "ledger": str(tmp_path / "ledger.db"), "trust": {"bundle": str(trust)},
        "permits": {"types": ["umrah"]}, "clock": {"system": "trust"},
        "console": {"enabled": False},
    })
    with assemble(cfg, with_source=False, with_outputs=False, with_decoder=False) as agent:
        view = agent.handle_payload(case["payload"], origin="test")
    assert view["verdict"] == "deny"
    assert view["reason"] == Reason.NON_CANONICAL.value, view
