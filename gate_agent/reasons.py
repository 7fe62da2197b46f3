"""Gate policy reason codes: why a *gate* refuses (or only inspects) a verified permit.

Together with :class:`verifier.errors.Reason` (why a permit failed verification) these
are every refusal reason a gate can show. Values are stable wire codes (they travel in
``GateEvent.reason`` and key the message catalogue in :mod:`gate_agent.i18n`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class GateReason(StrEnum):
    """Why gate policy refuses a permit that verified. Stable values: never rename."""

    WRONG_SITE = "wrong_site"
    WRONG_TYPE = "wrong_type"
    WRONG_GATE_GROUP = "wrong_gate_group"
    ALREADY_USED = "already_used"  # admitted at this gate (or the site, per scope) already
    USED_ELSEWHERE = "used_elsewhere"  # the site-wide used-permit stream says another gate
    CAPACITY_FULL = "capacity_full"
    HEALTH_STATUS = "health_status"
    UNTRUSTED_TIME = "untrusted_time"
    OFFLINE_UNCHECKED = "offline_unchecked"  # strict offline policy: site-wide use unknown
    NO_TRIP_OPEN = "no_trip_open"
    WRONG_ROUTE = "wrong_route"
    WRONG_DEPARTURE = "wrong_departure"
    TRIP_FULL = "trip_full"
    PARTY_EXHAUSTED = "party_exhausted"  # the whole party already went in for this slot
    NOT_ADMITTED_COUNTER_ONLY = "not_admitted_counter_only"  # counter mode inspects only
    REENTRY_TOO_SOON = "reentry_too_soon"  # re-entry allowed but the cool-down is running
    NO_CODE = "no_code"  # no QR code could be read in the image (``agent scan``)
    LEDGER_FAILURE = "ledger_failure"  # the admission could not be recorded: nobody goes in


class Verdict(StrEnum):
    """What the gate shows and records for one scan."""

    ADMIT = "admit"
    DENY = "deny"
    INSPECT = "inspect"  # counter mode: nothing admitted, the lookup is logged
    UNTRUSTED_TIME = "untrusted_time"  # clock cannot be trusted to judge a slot window


#: Flags set on events (``GateEvent.flags``).
FLAG_OFFLINE_SOFT: Final = "offline_soft"  # admitted although site-wide use was unknown
FLAG_TIME_OVERRIDE: Final = "time_override"  # decided on an operator-overridden clock
FLAG_NO_LIVE_CODE: Final = "no_live_code"  # holder-bound permit shown bare ('preferred')
FLAG_PARTIAL: Final = "partial"  # part of a group admitted (attendant head count)
