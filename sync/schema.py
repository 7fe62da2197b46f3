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
from dataclasses import dataclass, field
from typing import Any, Final

EVENT_VERSION: Final = 1

KINDS: Final = frozenset(
    {"scan", "override", "inspect", "trip_open", "trip_close", "time_override"}
)
VERDICTS: Final = frozenset({"admit", "deny", "inspect", "untrusted_time", "none"})
MODES: Final = frozenset({"entrance", "boarding", "counter"})
TIME_CONFIDENCE: Final = frozenset({"synced", "beacon", "monotonic", "untrusted", "override"})

_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEX32_RE = re.compile(r"[0-9a-f]{32}")
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
        # Hand-rolled instead of dataclasses.asdict (which deep-copies): this runs for
        # every event a gate ships and every event the centre stores.
        d: dict[str, Any] = {"v": EVENT_VERSION}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if self.flags:
            d["flags"] = list(self.flags)
        else:
            del d["flags"]
        return d

    @classmethod
    def from_dict(cls, d: Any) -> GateEvent:
        """Validate untrusted input strictly; raise :class:`EventInvalid` with the field."""
        if type(d) is not dict:
            raise EventInvalid("event must be a map")
        if d.get("v") != EVENT_VERSION:
            raise EventInvalid(f"unsupported event version {d.get('v')!r}")
        if not d.keys() <= _KNOWN_KEYS:
            unknown = set(d) - _KNOWN_KEYS
            raise EventInvalid(f"unknown event fields {sorted(map(str, unknown))}")
        t = d.get("t")
        if (type(t) is not float and type(t) is not int) or not math.isfinite(t):
            raise EventInvalid("t must be a finite number")
        flags = d.get("flags", ())
        if (
            type(flags) not in (list, tuple)
            or len(flags) > 16
            or not all(type(f) is str and _ID_RE.fullmatch(f) for f in flags)
        ):
            raise EventInvalid("flags must be a short list of identifiers")
        get = d.get
        return cls(
            gate=_ident(get("gate"), "gate"),
            site=_ident(get("site"), "site"),
            seq=_int(get("seq"), "seq", 1, 2**62),
            eid=_hex32(get("eid"), "eid"),
            t=float(t),
            tc=_choice(get("tc"), "tc", TIME_CONFIDENCE),
            kind=_choice(get("kind"), "kind", KINDS),
            verdict=_choice(get("verdict"), "verdict", VERDICTS),
            mode=_choice(get("mode"), "mode", MODES),
            reason=_opt(_ident, get("reason"), "reason"),
            ph=_opt(_hex32, get("ph"), "ph"),
            ptype=_opt(_ident, get("ptype"), "ptype"),
            slot=None if get("slot") is None else _int(get("slot"), "slot", 0, 2**40),
            slot_end=(
                None if get("slot_end") is None else _int(get("slot_end"), "slot_end", 0, 2**40)
            ),
            party=0 if get("party") is None else _int(get("party"), "party", 0, MAX_PARTY),
            trip=_opt(_ident, get("trip"), "trip"),
            note=_opt(_note, get("note"), "note"),
            flags=tuple(flags),
        )


_FIELD_NAMES: Final = tuple(GateEvent.__dataclass_fields__)
_KNOWN_KEYS: Final = frozenset(_FIELD_NAMES) | {"v"}


def _missing(name: str) -> EventInvalid:
    return EventInvalid(f"missing {name}")


def _ident(v: Any, name: str) -> str:
    if type(v) is str and _ID_RE.fullmatch(v):
        return v
    raise _missing(name) if v is None else EventInvalid(f"{name} has an invalid format")


def _hex32(v: Any, name: str) -> str:
    if type(v) is str and _HEX32_RE.fullmatch(v):
        return v
    raise _missing(name) if v is None else EventInvalid(f"{name} has an invalid format")


def _note(v: Any, name: str) -> str:
    if type(v) is str and len(v) <= 500:
        return v
    raise EventInvalid(f"{name} must be a string of at most 500 characters")


def _choice(v: Any, name: str, choices: frozenset[str]) -> str:
    if type(v) is str and v in choices:
        return v
    raise _missing(name) if v is None else EventInvalid(
        f"{name} must be one of {sorted(choices)}"
    )


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    if type(v) is int and lo <= v <= hi:
        return v
    raise _missing(name) if v is None else EventInvalid(
        f"{name} must be an integer in [{lo}, {hi}]"
    )


def _opt(check: Any, v: Any, name: str) -> Any:
    return None if v is None else check(v, name)
