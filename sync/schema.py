"""The gate event: what a gate records in its ledger and ships to the centre.

This is the contract between ``gate_agent/`` (which creates events and commits them
to its ledger and the outbox in one SQLite transaction) and ``sync/`` + ``central/``
(which carry, acknowledge, store and count them). Version ``EVENT_VERSION``; a
field is only ever added, never renamed or re-typed, within a version.

Counting rule used by the centre: an event *admits* ``party`` people when
``verdict == "admit"`` (override admissions included: they carry ``kind ==
"override"``). Every other verdict admits nobody, whatever ``party`` says.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Final

EVENT_VERSION: Final = 1

KINDS: Final = frozenset(
    {"scan", "override", "inspect", "trip_open", "trip_close", "time_override"}
)
VERDICTS: Final = frozenset({"admit", "deny", "inspect", "untrusted_time", "none"})
MODES: Final = frozenset({"entrance", "boarding", "counter"})
TIME_CONFIDENCE: Final = frozenset({"synced", "beacon", "monotonic", "untrusted", "override"})

_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX32_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_PARTY: Final = 64


class EventInvalid(ValueError):
    """An event (from a peer or a file) does not match the schema."""


@dataclass(frozen=True, slots=True)
class GateEvent:
    """One thing that happened at a gate, in the order the gate recorded it.

    ``seq`` starts at 1 per gate and never skips: the centre acknowledges the highest
    contiguous ``seq`` it has stored.
    """

    gate: str
    site: str
    seq: int
    eid: str  # unique id (uuid4 hex), stable across retries
    t: float  # the gate's best wall-clock time, seconds since the epoch (UTC)
    tc: str  # time confidence, one of TIME_CONFIDENCE
    kind: str  # one of KINDS
    verdict: str  # one of VERDICTS
    mode: str  # one of MODES
    reason: str | None = None  # reason code when not admitted (or the override reason code)
    ph: str | None = None  # permit id hash: sha256(permit_id)[:16].hex()
    ptype: str | None = None  # permit type
    slot: int | None = None  # slot start, epoch seconds
    slot_end: int | None = None
    party: int = 0  # people admitted by this event (0 unless verdict == "admit")
    trip: str | None = None  # bus trip id in boarding mode
    note: str | None = None  # free text: the override reason typed by the attendant
    flags: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("offline_soft",)

    @property
    def admitted(self) -> int:
        return self.party if self.verdict == "admit" else 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["v"] = EVENT_VERSION
        d["flags"] = list(self.flags)
        return {k: v for k, v in d.items() if v is not None and v != []}

    @classmethod
    def from_dict(cls, d: Any) -> GateEvent:
        """Validate untrusted input strictly; raise :class:`EventInvalid` with the field."""
        if not isinstance(d, dict):
            raise EventInvalid("event must be a map")
        if d.get("v") != EVENT_VERSION:
            raise EventInvalid(f"unsupported event version {d.get('v')!r}")
        known = set(cls.__dataclass_fields__) | {"v"}
        unknown = set(d) - known
        if unknown:
            raise EventInvalid(f"unknown event fields {sorted(map(str, unknown))}")

        def s(name: str, required: bool = True, pattern: re.Pattern[str] | None = None,
              choices: frozenset[str] | None = None, maxlen: int = 200) -> str | None:
            v = d.get(name)
            if v is None:
                if required:
                    raise EventInvalid(f"missing {name}")
                return None
            if not isinstance(v, str) or len(v) > maxlen:
                raise EventInvalid(f"{name} must be a string of at most {maxlen} characters")
            if pattern is not None and not pattern.match(v):
                raise EventInvalid(f"{name} has an invalid format")
            if choices is not None and v not in choices:
                raise EventInvalid(f"{name} must be one of {sorted(choices)}")
            return v

        def i(name: str, required: bool, lo: int, hi: int) -> int | None:
            v = d.get(name)
            if v is None:
                if required:
                    raise EventInvalid(f"missing {name}")
                return None
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise EventInvalid(f"{name} must be an integer in [{lo}, {hi}]")
            return v

        t = d.get("t")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise EventInvalid("t must be a finite number")
        flags = d.get("flags", [])
        if not isinstance(flags, (list, tuple)) or len(flags) > 16 or not all(
            isinstance(f, str) and _ID_RE.match(f) for f in flags
        ):
            raise EventInvalid("flags must be a short list of identifiers")
        verdict = s("verdict", choices=VERDICTS)
        party = i("party", False, 0, MAX_PARTY) or 0
        return cls(
            gate=str(s("gate", pattern=_ID_RE)),
            site=str(s("site", pattern=_ID_RE)),
            seq=int(i("seq", True, 1, 2**62) or 0),
            eid=str(s("eid", pattern=_HEX32_RE)),
            t=float(t),
            tc=str(s("tc", choices=TIME_CONFIDENCE)),
            kind=str(s("kind", choices=KINDS)),
            verdict=str(verdict),
            mode=str(s("mode", choices=MODES)),
            reason=s("reason", required=False, pattern=_ID_RE),
            ph=s("ph", required=False, pattern=_HEX32_RE),
            ptype=s("ptype", required=False, pattern=_ID_RE),
            slot=i("slot", False, 0, 2**40),
            slot_end=i("slot_end", False, 0, 2**40),
            party=party,
            trip=s("trip", required=False, pattern=_ID_RE),
            note=s("note", required=False, maxlen=500),
            flags=tuple(flags),
        )
