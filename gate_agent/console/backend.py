"""The one interface between the attendant console and the gate agent.

The console (:mod:`gate_agent.console.server`) only ever calls a :class:`ConsoleBackend`;
:class:`gate_agent.agent.GateAgent` implements it, tests use small fakes. Every method is
called from HTTP handler threads, possibly concurrently: implementations lock as needed.

Refusals: a method that cannot do what is asked (no trip open, unknown decision id, head
count above the party...) raises :class:`ActionRefused` (or the agent's
:class:`gate_agent.errors.ConsoleRequestError`), whose message is shown to the attendant as
is; the server answers 409 with ``{"error": str(exc)}``. Something asked for by id that does
not exist (a trip's manifest) raises :class:`NotFound`: 404. Any other exception, a
``ValueError`` or ``KeyError`` from a bug included, is 500 and logged: a bug never passes
for a business refusal.

``snapshot()`` returns JSON-serialisable data of this shape (``?`` = may be ``null``;
times are epoch seconds UTC; keys not listed here are allowed and ignored)::

    {
      "version": int,                      # same number as version()
      "gate": str, "site": str,
      "mode": "entrance" | "boarding" | "counter",
      "languages": {"attendant": "en", "pilgrim": "ar"},   # configured defaults
      "clock": {
        "state": "synced" | "beacon" | "monotonic" | "untrusted" | "override",
        "trusted": bool,                   # False => the console shows the banner
        "now": float?,                     # the agent's best time
        "banner": str?                     # extra detail for the banner (English, for logs)
      },
      "last": null | {                     # the latest decision (scan or override)
        "id": str,                         # decision id (event eid); confirm_party() takes it
        "t": float,
        "kind": "scan" | "override",
        "verdict": "admit" | "deny" | "inspect" | "untrusted_time",
        "reason": str?,                    # GateReason / verifier Reason / override reason code
        "messages": {                      # optional: the console fills missing ones from i18n
          "attendant": {"text": str, "lang": str, "dir": "ltr" | "rtl"},
          "pilgrim":   {"text": str, "lang": str, "dir": "ltr" | "rtl"}
        },
        "permit": null | {                 # for the attendant's ID check
          "type": str, "slot_start": int, "slot_end": int, "party": int,
          "initials": str, "doc_digits": str, "ph": str,
          "route": str?, "departure": int?,
          "site": str?, "gate_groups": [str]?, "health": str?, "issuer": str?  # counter mode
        },
        "admitted": int,                   # people admitted by this decision so far
        "remaining": int,                  # of the party, still available for this slot
        "awaiting_count": bool,            # group: the attendant should confirm a head count
        "flags": [str],
        "would": {"verdict": str, "reason": str?}?,  # counter mode: what an entrance says
        "history": [<row as in "recent">]?           # counter mode: this permit at this gate
      },
      "counters": {
        "gate_admitted": int,              # people admitted at this gate today / since start
        "gate_denied": int,                # refusals at this gate
        "slot_start": int?, "slot_end": int?,
        "slot_admitted": int,              # people admitted for the current slot
        "slot_capacity": int?              # null = no local quota
      },
      "recent": [                          # newest first, at most ~20
        {"id": str, "t": float, "kind": str, "verdict": str, "reason": str?,
         "type": str?, "party": int, "initials": str?}
      ],
      "trip": null | {                     # boarding mode: the open trip
        "id": str, "bus": str, "route": str, "departure": int, "seats": int,
        "boarded": int, "opened_at": float
      },
      "trips": [                           # boarding mode: closed trips, newest first
        {"id": str, "bus": str, "route": str, "departure": int, "seats": int,
         "boarded": int, "closed_at": float?}
      ],
      "health": {
        "fps": float, "decode_ms": float,  # frame rate, median decode time
        "clock": str,                      # same as clock.state
        "sync_backlog": int | None,        # events not yet acknowledged; None: unreadable
        "sync_backlog_error": str | None,  # why the outbox could not be read
        "online": bool?,                   # broker link up
        "source": {                        # the frame source; null when the gate has none
          "state": str,                    # up | reconnecting | finished | failed (banner)
          "name": str, "connected": bool,
          "last_frame_age_s": float,       # since the frame loop last got a frame
          "down_for_s": float?,            # how long the current outage has lasted
          "disconnects": int, "reconnects": int, "last_error": str?, ...
        }?
      }
    }

Manifest rows (``manifest()``): ``{"seq": int, "t": float, "ph": str, "type": str,
"party": int, "initials": str, "doc_digits": str, "kind": str, "note": str?}``.
"""

from __future__ import annotations

from typing import Any, Final, Protocol, runtime_checkable

from verifier.errors import GatepassError

#: Why an attendant overrides the machine. The console offers exactly these; ``note`` is
#: free text (required, at least NOTE_MIN characters, when the code is ``other``).
OVERRIDE_REASONS: Final = (
    "supervisor_approved",
    "elderly_or_disabled",
    "medical",
    "child_with_family",
    "staff_or_volunteer",
    "scanner_fault",
    "permit_damaged",
    "security_concern",
    "other",
)
OVERRIDE_ACTIONS: Final = ("admit", "deny")
NOTE_MAX: Final = 500
NOTE_MIN: Final = 3
#: Time overrides need a real explanation: who checked the clock, against what.
TIME_NOTE_MIN: Final = 5


class ConsoleError(GatepassError):
    """Root of the errors raised by :mod:`gate_agent.console`."""


class ActionRefused(ConsoleError, ValueError):
    """The backend refuses a console action; the message is shown to the attendant."""


class NotFound(ConsoleError, LookupError):
    """What the console asked for by id (a trip) does not exist: 404."""


@runtime_checkable
class ConsoleBackend(Protocol):
    """What the console needs from the agent. See the module docstring for shapes."""

    def snapshot(self) -> dict[str, Any]:
        """The whole console state, JSON-serialisable (shape in the module docstring)."""
        ...

    def version(self) -> int:
        """A counter that grows whenever anything in ``snapshot()`` changes."""
        ...

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until ``version() != version`` or ``timeout`` seconds; return version()."""
        ...

    def override(self, action: str, reason_code: str, note: str, party: int) -> dict[str, Any]:
        """Manual admit/deny of ``party`` people, logged as its own event (kind override).

        ``action`` in OVERRIDE_ACTIONS, ``reason_code`` in OVERRIDE_REASONS (validated by
        the server before the call). Returns the new decision (shape of ``snapshot.last``).
        """
        ...

    def confirm_party(self, decision_id: str, count: int) -> dict[str, Any]:
        """Admit ``count`` (1..remaining) of the group behind ``decision_id``; rest stays.

        Returns the updated decision (shape of ``snapshot.last``).
        """
        ...

    def open_trip(self, bus: str, route: str, departure: int, seats: int) -> dict[str, Any]:
        """Boarding mode: open a trip (refused when one is open). Returns ``snapshot.trip``."""
        ...

    def close_trip(self) -> dict[str, Any]:
        """Boarding mode: close the open trip. Returns it (with ``closed_at``)."""
        ...

    def manifest(self, trip_id: str) -> list[dict[str, Any]]:
        """Who boarded trip ``trip_id`` (rows in the module docstring); KeyError if unknown."""
        ...

    def time_override(self, note: str) -> dict[str, Any]:
        """Trust the current clock on the operator's word; logged. Returns ``snapshot.clock``."""
        ...

    def submit_payload(self, text: str) -> dict[str, Any]:
        """Decide on a typed or keyboard-wedge payload. Returns the decision (``last``)."""
        ...
