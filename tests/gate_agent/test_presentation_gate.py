"""Holder-bound permits at the gate: the presentation policy, the ledger keyed on the
permit (never on the renewing code), the debouncer, untrusted time, the config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from agent_helpers import SLOT, FakeTime, make_config
from conftest import SITE, slot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gate_agent.agent import GateAgent
from gate_agent.clock import TimeReading
from gate_agent.debounce import Debouncer
from gate_agent.decode import Code
from gate_agent.errors import ConfigError
from gate_agent.policy import GateState, decide, decide_refused
from verifier import envelope
from verifier import presentation as gpp
from verifier.errors import PermitRefused, Reason
from verifier.issue import issue_permit
from verifier.sandbox import Sandbox

MakeAgent = Callable[..., GateAgent]
DEVICE = ec.derive_private_key(424242, ec.SECP256R1())
POINT = DEVICE.public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
)


def holder_bound(sandbox: Sandbox, **kw: Any) -> str:
    spec = sandbox.specs["es256"]
    return issue_permit(
        spec.key, issuer=spec.issuer, issued_at=SLOT - 3600, ptype="umrah", site=SITE,
        slot=slot(), gate_groups=("north",), holder_key=POINT, **kw,
    ).text


def present(text: str, now: float) -> str:
    return gpp.make_presentation(envelope.unwrap(text), DEVICE, now)


def test_required_admits_a_live_code_and_refuses_a_copy(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime
) -> None:
    agent = make_agent()  # default policy: required
    permit = holder_bound(sandbox)
    bare = agent.submit_payload(permit)
    assert (bare["verdict"], bare["reason"]) == ("deny", "presentation_required")
    live = agent.submit_payload(present(permit, fake_time.wall))
    assert live["verdict"] == "admit" and live["admitted"] == 1
    assert "no_live_code" not in live["flags"]
    # The next step's code is another text for the same permit: the ledger says used.
    again = agent.submit_payload(present(permit, fake_time.wall + 15))
    assert (again["verdict"], again["reason"]) == ("deny", "already_used")
    assert again["permit"]["ph"] == live["permit"]["ph"]


@pytest.mark.parametrize("mode", ["required", "preferred", "static"])
def test_a_stale_code_is_refused_in_every_mode(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime, mode: str
) -> None:
    agent = make_agent(permits={"presentation": mode})
    d = agent.submit_payload(present(holder_bound(sandbox), fake_time.wall - 120))
    assert (d["verdict"], d["reason"]) == ("deny", "presentation_expired")
    other = present(holder_bound(sandbox), fake_time.wall)
    assert agent.submit_payload(other.replace("GPP1:", "GPP1:0", 1))["verdict"] == "deny"


def test_preferred_admits_a_bare_copy_flagged_for_an_id_check(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime
) -> None:
    agent = make_agent(permits={"presentation": "preferred"})
    d = agent.submit_payload(holder_bound(sandbox))
    assert d["verdict"] == "admit" and "no_live_code" in d["flags"]
    live = agent.submit_payload(present(holder_bound(sandbox), fake_time.wall))
    assert live["verdict"] == "admit" and "no_live_code" not in live["flags"]


def test_static_admits_a_bare_copy_unflagged(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent(permits={"presentation": "static"})
    d = agent.submit_payload(holder_bound(sandbox))
    assert d["verdict"] == "admit" and "no_live_code" not in d["flags"]


def test_paper_permits_work_under_required(make_agent: MakeAgent, sandbox: Sandbox) -> None:
    agent = make_agent()
    d = agent.submit_payload(sandbox.issue(site=SITE, slot=slot()))
    assert d["verdict"] == "admit"


def test_tolerance_comes_from_the_config(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime
) -> None:
    agent = make_agent(permits={"presentation_tolerance_s": 200})
    d = agent.submit_payload(present(holder_bound(sandbox), fake_time.wall - 120))
    assert d["verdict"] == "admit"


@pytest.mark.parametrize("reason", [Reason.PRESENTATION_EXPIRED, Reason.PRESENTATION_IN_FUTURE])
def test_untrusted_clock_is_untrusted_time_not_a_stale_code(tmp_path: Any, reason: Reason) -> None:
    d = decide_refused(PermitRefused(reason), make_config(tmp_path),
                       TimeReading(SLOT, "untrusted"))
    assert d.reason == "untrusted_time"
    trusted = decide_refused(PermitRefused(reason), make_config(tmp_path),
                             TimeReading(SLOT, "synced"))
    assert trusted.reason == reason.value


def test_policy_refuses_a_bare_holder_bound_permit_whatever_verified_it(
    tmp_path: Any, sandbox: Sandbox
) -> None:
    from verifier import verify_at

    permit = verify_at(holder_bound(sandbox), SLOT + 60, trust=sandbox.store,
                       presentation_policy="static")
    state = GateState(time=TimeReading(SLOT + 60, "synced"), site_stream_fresh=True)
    d = decide(permit, make_config(tmp_path), state)
    assert (d.verdict, d.reason) == ("deny", "presentation_required")


def test_config_refuses_an_unknown_presentation_mode(tmp_path: Any) -> None:
    with pytest.raises(ConfigError):
        make_config(tmp_path, permits={"presentation": "sometimes"})
    assert make_config(tmp_path).permits.presentation == "required"


def code(text: str) -> Code:
    return Code(text.encode(), text, "test")


def test_debouncer_keys_presentations_on_their_permit(sandbox: Sandbox) -> None:
    permit = holder_bound(sandbox)
    first, renewed = present(permit, SLOT), present(permit, SLOT + 15)
    assert first != renewed
    other = present(holder_bound(sandbox), SLOT)
    deb = Debouncer(hold_off_s=2.0)
    assert deb.feed([code(first)], 0.0) == [code(first)]
    assert deb.feed([code(renewed)], 0.5) == []  # the code renewed in front of the camera
    assert deb.feed([code(renewed), code(other)], 1.0) == [code(other)]
    assert deb.feed([code(first)], 10.0) == [code(first)]  # shown again after stepping back
    junk = "GPP1:%%%"
    assert deb.feed([code(junk), code(junk)], 11.0) == [code(junk)]


def test_untrusted_gate_clock_shows_untrusted_time_for_live_and_stale_codes(
    make_agent: MakeAgent, sandbox: Sandbox, fake_time: FakeTime
) -> None:
    fake_time.synced = False
    agent = make_agent(clock={"system": "timedatectl"})
    permit = holder_bound(sandbox)
    for when in (fake_time.wall, fake_time.wall - 600):  # live, then a stale screenshot
        d = agent.submit_payload(present(permit, when))
        assert d["verdict"] == "untrusted_time", when
